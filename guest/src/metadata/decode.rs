//! Value decoding rules of Dapr's metadata decoder (dapr/kit `DecodeMetadata` on top of
//! mapstructure with `WeaklyTypedInput`), reproduced from Go's standard library.
//!
//! Every function here mirrors one Go function so that the same string is accepted or rejected
//! the same way, and a rejection prints the same text:
//!
//! | Here | Go |
//! |---|---|
//! | [`is_truthy`] | dapr/kit `utils.IsTruthy` |
//! | [`parse_int`] | `strconv.ParseInt(s, base, 64)` |
//! | [`parse_uint`] | `strconv.ParseUint(s, base, 64)` |
//! | [`parse_go_duration`] | `time.ParseDuration` |
//! | [`decode_duration`] | dapr/kit `toTimeDurationHookFunc` |
//! | [`decode_duration_list`] | dapr/kit `toTimeDurationArrayHookFunc` |
//! | [`is_go_float32`] | `strconv.ParseFloat(s, 32)` (validity only) |

use std::fmt;

use super::quote::{go_quote, time_quote};

/// `"truthy"` as Dapr decides it for boolean keys (`flowControl`, `memoryStorage`, the
/// seed-era `deliverAll`): trimmed, case-insensitive `y`, `yes`, `true`, `t`, `on` or `1`.
///
/// Why: Dapr parity. Anything else, `"garbage"` and `""` included, is `false` and never an
/// error.
///
/// ```
/// use jetstream_pubsub_guest::metadata::decode::is_truthy;
/// assert!(is_truthy(" YES "));
/// assert!(!is_truthy("garbage"));
/// ```
pub fn is_truthy(s: &str) -> bool {
    let lowered = s.trim().to_ascii_lowercase();
    matches!(lowered.as_str(), "y" | "yes" | "true" | "t" | "on" | "1")
}

/// Which base a Go integer parse uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// Go's base 0: decimal, `0x`/`0o`/`0b` prefixes, a leading `0` for octal, and `_` digit
    /// separators where Go's literal syntax allows them. Used by the metadata decoder for every
    /// integer key.
    Prefixed,
    /// Plain base 10, no prefixes and no `_`. Used for the seconds fallback of durations and the
    /// retry-config keys.
    Ten,
}

/// Why a Go `strconv` parse failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumErrorKind {
    /// `invalid syntax`
    Syntax,
    /// `value out of range`
    Range,
}

/// Go's `*strconv.NumError`: the function, the rejected input and the reason.
///
/// Why: its Display is part of the reference's decode error texts
/// (`strconv.ParseInt: parsing "abc": invalid syntax`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumError {
    /// `ParseInt` or `ParseUint`.
    pub func: &'static str,
    /// The input as given, sign included.
    pub num: String,
    /// Syntax or range.
    pub kind: NumErrorKind,
}

impl fmt::Display for NumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = match self.kind {
            NumErrorKind::Syntax => "invalid syntax",
            NumErrorKind::Range => "value out of range",
        };
        write!(
            f,
            "strconv.{}: parsing {}: {reason}",
            self.func,
            go_quote(&self.num)
        )
    }
}

impl std::error::Error for NumError {}

/// Go's `strconv.ParseInt(s, base, 64)`, error text included.
///
/// Why: Dapr parity for `maxDeliver`, `maxAckPending`, `replicas` (base 0: `"010"` is 8,
/// `"0x10"` is 16, `"1_000"` is 1000) and for the seconds fallback of durations (base 10).
/// Surrounding spaces and fractions are errors, as in Go.
///
/// ```
/// use jetstream_pubsub_guest::metadata::decode::{parse_int, Base};
/// assert_eq!(parse_int("-0x1_F", Base::Prefixed), Ok(-31));
/// assert_eq!(
///     parse_int("1.5", Base::Prefixed).unwrap_err().to_string(),
///     r#"strconv.ParseInt: parsing "1.5": invalid syntax"#
/// );
/// ```
pub fn parse_int(s: &str, base: Base) -> Result<i64, NumError> {
    let err = |kind| NumError {
        func: "ParseInt",
        num: s.to_owned(),
        kind,
    };
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if s.is_empty() {
        return Err(err(NumErrorKind::Syntax));
    }
    let magnitude = match parse_uint_digits(digits, base) {
        Ok(n) => n,
        Err(NumErrorKind::Range) => u64::MAX,
        Err(kind) => return Err(err(kind)),
    };
    const CUTOFF: u64 = 1 << 63;
    if !neg && magnitude >= CUTOFF {
        return Err(err(NumErrorKind::Range));
    }
    if neg && magnitude > CUTOFF {
        return Err(err(NumErrorKind::Range));
    }
    // magnitude <= 2^63 here; 2^63 negated is i64::MIN, exactly as Go computes it.
    let n = magnitude as i64;
    Ok(if neg { n.wrapping_neg() } else { n })
}

/// Go's `strconv.ParseUint(s, base, 64)`, error text included.
///
/// Why: Dapr parity for `startSequence`, `startTime` and `rateLimit`; a sign of any kind is a
/// syntax error (`strconv.ParseUint: parsing "-1": invalid syntax`).
pub fn parse_uint(s: &str, base: Base) -> Result<u64, NumError> {
    parse_uint_digits(s, base).map_err(|kind| NumError {
        func: "ParseUint",
        num: s.to_owned(),
        kind,
    })
}

/// The body of Go's `ParseUint`, kept byte for byte so that the order of checks (range errors
/// are reported as soon as they happen, underscores are checked at the end) is the same.
fn parse_uint_digits(s0: &str, base: Base) -> Result<u64, NumErrorKind> {
    if s0.is_empty() {
        return Err(NumErrorKind::Syntax);
    }
    let bytes = s0.as_bytes();
    let base0 = base == Base::Prefixed;
    let (radix, digits): (u64, &[u8]) = if base0 && bytes[0] == b'0' {
        match bytes.get(1).map(|b| b | 0x20) {
            Some(b'b') if bytes.len() >= 3 => (2, &bytes[2..]),
            Some(b'o') if bytes.len() >= 3 => (8, &bytes[2..]),
            Some(b'x') if bytes.len() >= 3 => (16, &bytes[2..]),
            _ => (8, &bytes[1..]),
        }
    } else {
        (10, bytes)
    };
    let cutoff = u64::MAX / radix + 1;
    let mut underscores = false;
    let mut n: u64 = 0;
    for &c in digits {
        let d = match c {
            b'_' if base0 => {
                underscores = true;
                continue;
            }
            b'0'..=b'9' => u64::from(c - b'0'),
            _ if (c | 0x20).is_ascii_lowercase() => u64::from((c | 0x20) - b'a' + 10),
            _ => return Err(NumErrorKind::Syntax),
        };
        if d >= radix {
            return Err(NumErrorKind::Syntax);
        }
        if n >= cutoff {
            return Err(NumErrorKind::Range);
        }
        n *= radix;
        n = n.checked_add(d).ok_or(NumErrorKind::Range)?;
    }
    if underscores && !underscore_ok(s0) {
        return Err(NumErrorKind::Syntax);
    }
    Ok(n)
}

/// Go's `strconv.underscoreOK`: an underscore must sit between digits, or between a base
/// prefix and a digit.
fn underscore_ok(s: &str) -> bool {
    let mut s = s.as_bytes();
    if let Some(b'+' | b'-') = s.first() {
        s = &s[1..];
    }
    // saw: b'^' start, b'0' digit or prefix, b'_' underscore, b'!' anything else.
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1] | 0x20, b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = s[1] | 0x20 == b'x';
    }
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c.is_ascii_digit() || (hex && (b'a'..=b'f').contains(&(c | 0x20))) {
            saw = b'0';
            continue;
        }
        if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
            continue;
        }
        if saw == b'_' {
            return false;
        }
        saw = b'!';
    }
    saw != b'_'
}

/// Why Go's `time.ParseDuration` rejected a string; Display is Go's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// `time: invalid duration "<orig>"`
    Invalid {
        /// The whole input.
        orig: String,
    },
    /// `time: missing unit in duration "<orig>"`
    MissingUnit {
        /// The whole input.
        orig: String,
    },
    /// `time: unknown unit "<unit>" in duration "<orig>"`
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        orig: String,
    },
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid { orig } => write!(f, "time: invalid duration {}", time_quote(orig)),
            Self::MissingUnit { orig } => {
                write!(f, "time: missing unit in duration {}", time_quote(orig))
            }
            Self::UnknownUnit { unit, orig } => write!(
                f,
                "time: unknown unit {} in duration {}",
                time_quote(unit),
                time_quote(orig)
            ),
        }
    }
}

impl std::error::Error for DurationError {}

/// Go's `time.ParseDuration`: a signed sequence of decimal numbers, each with an optional
/// fraction and a unit (`ns`, `us`, `µs` (U+00B5), `μs` (U+03BC), `ms`, `s`, `m`, `h`), such as
/// `"300ms"`, `"-1.5h"` or `"2h45m"`. Returns signed nanoseconds.
///
/// Why: Dapr parity for `ackWait`, `heartbeat` and `backOff`; overflow, rounding of fractions
/// and the error texts follow Go exactly.
///
/// ```
/// use jetstream_pubsub_guest::metadata::decode::parse_go_duration;
/// assert_eq!(parse_go_duration("1m30.5s"), Ok(90_500_000_000));
/// assert_eq!(parse_go_duration("-1.5us"), Ok(-1_500));
/// ```
pub fn parse_go_duration(orig: &str) -> Result<i64, DurationError> {
    const MAX: u64 = 1 << 63;
    let invalid = || DurationError::Invalid {
        orig: orig.to_owned(),
    };
    let mut s = orig;
    let mut neg = false;
    if let Some(c @ (b'-' | b'+')) = s.as_bytes().first().copied() {
        neg = c == b'-';
        s = &s[1..];
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // [0-9]*
        let before = s.len();
        let (mut v, rest) = leading_int(s).ok_or_else(invalid)?;
        s = rest;
        let pre = before != s.len();
        // (\.[0-9]*)?
        let mut post = false;
        let (mut f, mut scale) = (0u64, 1f64);
        if let Some(rest) = s.strip_prefix('.') {
            let before = rest.len();
            let (frac, frac_scale, rest) = leading_fraction(rest);
            (f, scale, s) = (frac, frac_scale, rest);
            post = before != s.len();
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit: everything up to the next '.' or digit (both ASCII, so the cut is on a char
        // boundary).
        let unit_len = s
            .bytes()
            .position(|c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit {
                orig: orig.to_owned(),
            });
        }
        let (unit_str, rest) = s.split_at(unit_len);
        s = rest;
        let unit: u64 = match unit_str {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    unit: unit_str.to_owned(),
                    orig: orig.to_owned(),
                });
            }
        };
        if v > MAX / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            // Go computes the fraction in float64 and truncates; so do we.
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > MAX {
                return Err(invalid());
            }
        }
        // Go adds in uint64 and may wrap when both parts are exactly 2^63; keep that.
        d = d.wrapping_add(v);
        if d > MAX {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((d as i64).wrapping_neg());
    }
    if d > MAX - 1 {
        return Err(invalid());
    }
    Ok(d as i64)
}

/// Go's `time.leadingInt`: consumes `[0-9]*`; `None` on overflow past 2^63.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let mut x: u64 = 0;
    let end = s
        .bytes()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(s.len());
    for c in s[..end].bytes() {
        if x > (1 << 63) / 10 {
            return None;
        }
        x = x * 10 + u64::from(c - b'0');
        if x > 1 << 63 {
            return None;
        }
    }
    Some((x, &s[end..]))
}

/// Go's `time.leadingFraction`: consumes `[0-9]*`, stops gaining precision on overflow.
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let mut x: u64 = 0;
    let mut scale = 1f64;
    let mut overflow = false;
    let end = s
        .bytes()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(s.len());
    for c in s[..end].bytes() {
        if overflow {
            continue;
        }
        if x > ((1u64 << 63) - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(c - b'0');
        if y > 1 << 63 {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[end..])
}

/// A value that is neither a Go duration nor a whole number of seconds: both errors, joined
/// with a newline as Go's `errors.Join` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationDecodeError {
    /// Why `time.ParseDuration` failed.
    pub duration: DurationError,
    /// Why the seconds fallback (`strconv.ParseInt(s, 10, 64)`) failed.
    pub seconds: NumError,
}

impl fmt::Display for DurationDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n{}", self.duration, self.seconds)
    }
}

impl std::error::Error for DurationDecodeError {}

/// A duration metadata value as Dapr decodes it: `""` is 0; otherwise a Go duration; failing
/// that, a base-10 integer taken as **seconds**. Returns signed nanoseconds.
///
/// Why: Dapr parity (`"10"` is 10s, `"-5s"` is accepted here; range checks are the caller's).
/// The result is `i128` because the seconds fallback can exceed `i64` nanoseconds: Go wraps such
/// values silently, we keep them exact so the caller can reject them.
///
/// ```
/// use jetstream_pubsub_guest::metadata::decode::decode_duration;
/// assert_eq!(decode_duration("10"), Ok(10_000_000_000));
/// assert_eq!(decode_duration(""), Ok(0));
/// ```
pub fn decode_duration(s: &str) -> Result<i128, DurationDecodeError> {
    if s.is_empty() {
        return Ok(0);
    }
    match parse_go_duration(s) {
        Ok(ns) => Ok(i128::from(ns)),
        Err(duration) => match parse_int(s, Base::Ten) {
            Ok(secs) => Ok(i128::from(secs) * 1_000_000_000),
            Err(seconds) => Err(DurationDecodeError { duration, seconds }),
        },
    }
}

/// A duration-list metadata value (`backOff`) as Dapr decodes it: split on `,`, each part
/// trimmed, empty parts skipped, each part decoded like [`decode_duration`]. The first bad part
/// is the error.
///
/// Why: Dapr parity: `"500ms, 2s, 10s"`, `"1,2"` and `" ,1s,"` are valid, `"[1s, 2s]"` is not.
pub fn decode_duration_list(s: &str) -> Result<Vec<i128>, DurationDecodeError> {
    s.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(decode_duration)
        .collect()
}

/// Whether Go's `strconv.ParseFloat(s, 32)` accepts `s`: decimal or hexadecimal (`0x1p-2`)
/// floats with `_` separators where Go allows them, `inf`/`infinity`/`nan` in any case, and no
/// overflow beyond the float32 range.
///
/// Why: the reference validates the (otherwise unused) `backOffRandomizationFactor` and
/// `backOffMultiplier` keys this way, and fails Init on a bad value.
pub fn is_go_float32(s: &str) -> bool {
    if is_go_float_special(s) {
        return true;
    }
    match scan_go_float(s) {
        Some(value) => value.is_finite() || value.is_nan(),
        None => false,
    }
}

/// Go's `strconv.special`, required to consume the whole string.
fn is_go_float_special(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let unsigned = lower.strip_prefix('+').or_else(|| lower.strip_prefix('-'));
    match unsigned {
        Some(rest) => rest == "inf" || rest == "infinity",
        None => lower == "inf" || lower == "infinity" || lower == "nan",
    }
}

/// Go's `strconv.readFloat` syntax check; on success the value rounded to f32 (infinite when it
/// overflows, which Go reports as a range error).
fn scan_go_float(s: &str) -> Option<f32> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut neg = false;
    match b.first()? {
        b'+' => i += 1,
        b'-' => {
            neg = true;
            i += 1;
        }
        _ => {}
    }
    let hex = i + 2 < b.len() && b[i] == b'0' && b[i + 1] | 0x20 == b'x';
    if hex {
        i += 2;
    }
    let mantissa_start = i;
    let mut underscores = false;
    let mut saw_dot = false;
    let mut saw_digits = false;
    let mut hex_mantissa = 0f64;
    let mut hex_frac_digits: i64 = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'_' {
            underscores = true;
        } else if c == b'.' {
            if saw_dot {
                break;
            }
            saw_dot = true;
        } else if c.is_ascii_digit() || (hex && (b'a'..=b'f').contains(&(c | 0x20))) {
            saw_digits = true;
            if hex {
                let d = (c as char).to_digit(16)?;
                hex_mantissa = hex_mantissa * 16.0 + f64::from(d);
                if saw_dot {
                    hex_frac_digits += 1;
                }
            }
        } else {
            break;
        }
        i += 1;
    }
    if !saw_digits {
        return None;
    }
    let mantissa_end = i;
    let exp_char = if hex { b'p' } else { b'e' };
    let mut exponent: i64 = 0;
    if i < b.len() && b[i] | 0x20 == exp_char {
        i += 1;
        let mut sign = 1;
        match b.get(i)? {
            b'+' => i += 1,
            b'-' => {
                sign = -1;
                i += 1;
            }
            _ => {}
        }
        if !b.get(i)?.is_ascii_digit() {
            return None;
        }
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            if b[i] == b'_' {
                underscores = true;
            } else if exponent < 10_000 {
                exponent = exponent * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        exponent *= sign;
    } else if hex {
        return None;
    }
    if i != b.len() {
        return None;
    }
    if underscores && !underscore_ok(s) {
        return None;
    }
    let magnitude = if hex {
        if hex_mantissa == 0.0 {
            0.0
        } else {
            let exp = (exponent - 4 * hex_frac_digits).clamp(-2000, 2000) as i32;
            (hex_mantissa * 2f64.powi(exp)) as f32
        }
    } else {
        let digits: String = s[mantissa_start..mantissa_end]
            .chars()
            .filter(|&c| c != '_')
            .collect();
        format!("{digits}e{exponent}").parse::<f32>().ok()?
    };
    Some(if neg { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i128 = 1_000_000_000;

    #[test]
    fn truthy_values() {
        for s in [
            "y", "yes", "true", "t", "on", "1", " YES ", "True", "ON\t", "\u{a0}t",
        ] {
            assert!(is_truthy(s), "{s:?} is truthy");
        }
        for s in [
            "", "garbage", "false", "0", "no", "off", "2", "yes!", "tru e",
        ] {
            assert!(!is_truthy(s), "{s:?} is not truthy");
        }
    }

    #[test]
    fn base0_ints_follow_go() {
        let ok: &[(&str, i64)] = &[
            ("0", 0),
            ("10", 10),
            ("-1", -1),
            ("+7", 7),
            ("010", 8),
            ("0x10", 16),
            ("0X1f", 31),
            ("0o17", 15),
            ("0O17", 15),
            ("0b101", 5),
            ("1_000", 1000),
            ("0x_1F", 31),
            ("0_7", 7),
            ("-0b1_0", -2),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
            ("00", 0),
        ];
        for &(s, want) in ok {
            assert_eq!(parse_int(s, Base::Prefixed), Ok(want), "input {s:?}");
        }
        let bad: &[(&str, &str)] = &[
            ("", r#"strconv.ParseInt: parsing "": invalid syntax"#),
            ("abc", r#"strconv.ParseInt: parsing "abc": invalid syntax"#),
            ("1.5", r#"strconv.ParseInt: parsing "1.5": invalid syntax"#),
            (" 5", r#"strconv.ParseInt: parsing " 5": invalid syntax"#),
            ("5 ", r#"strconv.ParseInt: parsing "5 ": invalid syntax"#),
            ("-", r#"strconv.ParseInt: parsing "-": invalid syntax"#),
            ("08", r#"strconv.ParseInt: parsing "08": invalid syntax"#),
            ("0x", r#"strconv.ParseInt: parsing "0x": invalid syntax"#),
            ("0b2", r#"strconv.ParseInt: parsing "0b2": invalid syntax"#),
            (
                "1__0",
                r#"strconv.ParseInt: parsing "1__0": invalid syntax"#,
            ),
            ("_1", r#"strconv.ParseInt: parsing "_1": invalid syntax"#),
            ("1_", r#"strconv.ParseInt: parsing "1_": invalid syntax"#),
            ("--1", r#"strconv.ParseInt: parsing "--1": invalid syntax"#),
            ("１", r#"strconv.ParseInt: parsing "１": invalid syntax"#),
            (
                "9223372036854775808",
                r#"strconv.ParseInt: parsing "9223372036854775808": value out of range"#,
            ),
            (
                "-9223372036854775809",
                r#"strconv.ParseInt: parsing "-9223372036854775809": value out of range"#,
            ),
            (
                "99999999999999999999x",
                r#"strconv.ParseInt: parsing "99999999999999999999x": value out of range"#,
            ),
        ];
        for &(s, want) in bad {
            let err = parse_int(s, Base::Prefixed).expect_err(s);
            assert_eq!(err.to_string(), want, "input {s:?}");
        }
    }

    #[test]
    fn base10_ints_reject_prefixes_and_underscores() {
        assert_eq!(parse_int("010", Base::Ten), Ok(10));
        assert_eq!(parse_int("-12", Base::Ten), Ok(-12));
        for s in ["0x10", "1_000", "0b1"] {
            assert_eq!(
                parse_int(s, Base::Ten).expect_err(s).kind,
                NumErrorKind::Syntax
            );
        }
    }

    #[test]
    fn uints_reject_signs_and_overflow() {
        assert_eq!(
            parse_uint("18446744073709551615", Base::Prefixed),
            Ok(u64::MAX)
        );
        assert_eq!(parse_uint("0x10", Base::Prefixed), Ok(16));
        let bad: &[(&str, &str)] = &[
            ("-1", r#"strconv.ParseUint: parsing "-1": invalid syntax"#),
            ("+1", r#"strconv.ParseUint: parsing "+1": invalid syntax"#),
            (
                "18446744073709551616",
                r#"strconv.ParseUint: parsing "18446744073709551616": value out of range"#,
            ),
        ];
        for &(s, want) in bad {
            let err = parse_uint(s, Base::Prefixed).expect_err(s);
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn go_durations() {
        let ok: &[(&str, i64)] = &[
            ("0", 0),
            ("-0", 0),
            ("+0", 0),
            ("2s", 2_000_000_000),
            ("1m30s", 90_000_000_000),
            ("500ms", 500_000_000),
            ("1.5h", 5_400_000_000_000),
            ("-5s", -5_000_000_000),
            ("+5s", 5_000_000_000),
            ("1ns", 1),
            ("1us", 1_000),
            ("1µs", 1_000),
            ("1μs", 1_000),
            (".5s", 500_000_000),
            ("1.s", 1_000_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("0.000000001s", 1),
            ("0.0000000001s", 0),
            ("9223372036854775807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("2562047h47m16.854775807s", i64::MAX),
        ];
        for &(s, want) in ok {
            assert_eq!(parse_go_duration(s), Ok(want), "input {s:?}");
        }
        let bad: &[(&str, &str)] = &[
            ("", r#"time: invalid duration """#),
            ("x", r#"time: invalid duration "x""#),
            ("-", r#"time: invalid duration "-""#),
            (".s", r#"time: invalid duration ".s""#),
            ("1", r#"time: missing unit in duration "1""#),
            ("1.5", r#"time: missing unit in duration "1.5""#),
            ("1d", r#"time: unknown unit "d" in duration "1d""#),
            ("1S", r#"time: unknown unit "S" in duration "1S""#),
            ("1s ", r#"time: unknown unit "s " in duration "1s ""#),
            (" 1s", r#"time: invalid duration " 1s""#),
            (
                "1é",
                r#"time: unknown unit "\xc3\xa9" in duration "1\xc3\xa9""#,
            ),
            (
                "9223372036854775808ns",
                r#"time: invalid duration "9223372036854775808ns""#,
            ),
            ("3000000h", r#"time: invalid duration "3000000h""#),
            (
                "99999999999999999999s",
                r#"time: invalid duration "99999999999999999999s""#,
            ),
        ];
        for &(s, want) in bad {
            let err = parse_go_duration(s).expect_err(s);
            assert_eq!(err.to_string(), want, "input {s:?}");
        }
    }

    #[test]
    fn duration_values_with_seconds_fallback() {
        assert_eq!(decode_duration(""), Ok(0));
        assert_eq!(decode_duration("10"), Ok(10 * SEC));
        assert_eq!(decode_duration("-3"), Ok(-3 * SEC));
        assert_eq!(decode_duration("0"), Ok(0));
        assert_eq!(decode_duration("1m30s"), Ok(90 * SEC));
        // Go would wrap this product; we keep it exact for the caller to reject.
        assert_eq!(
            decode_duration("9223372036854775807"),
            Ok(i128::from(i64::MAX) * SEC)
        );
        let err = decode_duration("abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "time: invalid duration \"abc\"\nstrconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        let err = decode_duration("0x10").unwrap_err();
        assert_eq!(
            err.to_string(),
            "time: unknown unit \"x\" in duration \"0x10\"\nstrconv.ParseInt: parsing \"0x10\": invalid syntax"
        );
    }

    #[test]
    fn duration_lists() {
        assert_eq!(
            decode_duration_list("500ms, 2s, 10s"),
            Ok(vec![SEC / 2, 2 * SEC, 10 * SEC])
        );
        assert_eq!(decode_duration_list("1,2"), Ok(vec![SEC, 2 * SEC]));
        assert_eq!(decode_duration_list(""), Ok(vec![]));
        assert_eq!(decode_duration_list(" ,1s,"), Ok(vec![SEC]));
        assert_eq!(decode_duration_list(",,"), Ok(vec![]));
        let err = decode_duration_list("[1s, 2s, 4s]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "time: invalid duration \"[1s\"\nstrconv.ParseInt: parsing \"[1s\": invalid syntax"
        );
    }

    #[test]
    fn go_float32_validity() {
        for s in [
            "1",
            "1.5",
            "-2",
            "+.5",
            "5.",
            "1e3",
            "1E-3",
            "1_000.5",
            "0x1p-2",
            "0x1.8p1",
            "inf",
            "-Inf",
            "+infinity",
            "NaN",
            "nan",
            "3.4028234e38",
            "1e-50",
            "0e99999",
        ] {
            assert!(is_go_float32(s), "{s:?} is a float32");
        }
        for s in [
            "", ".", "e5", "1e", "1e+", "abc", "1.5x", " 1", "0x1", "+nan", "infinit", "1__0",
            "_1", "1e39", "-1e39", "1.2.3", "0x", "1f",
        ] {
            assert!(!is_go_float32(s), "{s:?} is not a float32");
        }
    }
}
