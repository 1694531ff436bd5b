//! Go's two string-quoting styles, reproduced so that error texts read exactly like the
//! reference's.
//!
//! Dapr's errors embed bad values quoted by Go: `strconv` errors use `strconv.Quote`
//! (`parsing "abc": invalid syntax`), `time.ParseDuration` errors use the `time` package's own,
//! simpler quoting (`time: invalid duration "x"`). The two differ for non-ASCII input, so both
//! are here.

use std::fmt::Write as _;

const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";

/// Quotes `s` like Go's `strconv.Quote`: `"` and `\` are backslashed, the C escapes (`\a`, `\b`,
/// `\f`, `\n`, `\r`, `\t`, `\v`) are used, other control bytes become `\xNN`, non-printable
/// runes become `\uNNNN` / `\UNNNNNNNN`, printable Unicode is kept as is.
///
/// Why: parity with the reference's `strconv.ParseInt: parsing "…"` texts. Go decides
/// "printable" with Unicode tables; this uses std's properties plus a list of format and
/// private-use ranges, which agrees except for code points unassigned in Unicode (Go escapes
/// them, this keeps them).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if is_go_printable(c) => out.push(c),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0B}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7F}' => {
                let b = c as u32 as u8;
                out.push_str("\\x");
                out.push(char::from(LOWER_HEX[usize::from(b >> 4)]));
                out.push(char::from(LOWER_HEX[usize::from(b & 0xF)]));
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Quotes `s` like the unexported `quote` of Go's `time` package (used in
/// `time: invalid duration "…"`): every byte of a non-ASCII rune and every byte below 0x20 is
/// written as `\xNN`; `"` and `\` are backslashed; everything else is kept.
///
/// Why: parity with the reference's duration error texts, which use this quoting and not
/// `strconv.Quote`.
pub fn time_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if (c as u32) >= 0x80 || (c as u32) < 0x20 {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str("\\x");
                out.push(char::from(LOWER_HEX[usize::from(b >> 4)]));
                out.push(char::from(LOWER_HEX[usize::from(b & 0xF)]));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.IsPrint`, approximated without Unicode category tables (see [`go_quote`]).
fn is_go_printable(c: char) -> bool {
    let r = c as u32;
    if r <= 0xFF {
        // Go special-cases Latin-1 exactly like this.
        return (0x20..=0x7E).contains(&r) || ((0xA1..=0xFF).contains(&r) && r != 0xAD);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    const NOT_PRINTABLE: &[(u32, u32)] = &[
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xE000, 0xF8FF),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
        (0xF0000, 0x10FFFF),
    ];
    // Noncharacters (U+xFFFE, U+xFFFF) are unassigned, so not printable in Go.
    if r & 0xFFFE == 0xFFFE {
        return false;
    }
    !NOT_PRINTABLE.iter().any(|&(lo, hi)| (lo..=hi).contains(&r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_matches_strconv_quote() {
        let cases = [
            ("abc", r#""abc""#),
            ("", r#""""#),
            (r#"a"b\c"#, r#""a\"b\\c""#),
            ("a\nb\tc\r\u{7}\u{8}\u{c}\u{b}", r#""a\nb\tc\r\a\b\f\v""#),
            ("\u{1}\u{7f}", r#""\x01\x7f""#),
            ("µs é 日本", "\"µs é 日本\""),
            ("\u{a0}\u{ad}\u{85}", r#""\u00a0\u00ad\u0085""#),
            ("\u{200b}\u{feff}\u{2028}", r#""\u200b\ufeff\u2028""#),
            ("\u{f0000}", r#""\U000f0000""#),
            ("😀", "\"😀\""),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), want, "input {input:?}");
        }
    }

    #[test]
    fn time_quote_matches_go_time_package() {
        let cases = [
            ("x", r#""x""#),
            (r#"a"\"#, r#""a\"\\""#),
            ("µs", r#""\xc2\xb5s""#),
            ("a\tb\u{7f}", "\"a\\x09b\u{7f}\""),
        ];
        for (input, want) in cases {
            assert_eq!(time_quote(input), want, "input {input:?}");
        }
    }
}
