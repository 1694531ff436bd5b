//! How metadata keys are matched: Go's `strings.EqualFold` against the canonical spelling, and
//! Go's `strings.ToLower` for duplicate detection.
//!
//! Why: Dapr parity. dapr/kit rejects keys that are equal after `strings.ToLower`, and
//! mapstructure matches a key to a field with `strings.EqualFold`. The two differ on a few
//! non-ASCII letters (the Kelvin sign `K` folds to `k`, the long `ſ` folds to `s`), so both are
//! reproduced.

use super::error::MetadataError;

/// Go's `strings.ToLower`, rune by rune with the simple case mapping (no final-sigma rule; `İ`
/// becomes `i`).
pub fn go_to_lower(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '\u{130}' {
                return 'i';
            }
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(l), None) => l,
                _ => c,
            }
        })
        .collect()
}

/// Go's `strings.EqualFold(key, canonical)` for an ASCII `canonical` key.
pub fn matches_key(key: &str, canonical: &str) -> bool {
    let mut key_chars = key.chars();
    for want in canonical.chars() {
        let Some(got) = key_chars.next() else {
            return false;
        };
        let folds = got.eq_ignore_ascii_case(&want)
            || (got == '\u{212A}' && want.eq_ignore_ascii_case(&'k'))
            || (got == '\u{17F}' && want.eq_ignore_ascii_case(&'s'));
        if !folds {
            return false;
        }
    }
    key_chars.next().is_none()
}

/// The value for `canonical`: the entry spelled exactly so if there is one, else the first
/// entry matching case-insensitively (Go picks a random one among several Unicode-fold matches;
/// we pick the first, deterministically).
pub fn lookup<'a>(props: &'a [(String, String)], canonical: &str) -> Option<&'a str> {
    props
        .iter()
        .find(|(k, _)| k == canonical)
        .or_else(|| props.iter().find(|(k, _)| matches_key(k, canonical)))
        .map(|(_, v)| v.as_str())
}

/// Rejects two keys that are equal after lowercasing, known keys or not.
///
/// Why: Dapr parity (`failed to resolve aliases: key natsurl is duplicate in the metadata`).
pub fn check_duplicates(props: &[(String, String)]) -> Result<(), MetadataError> {
    let mut seen = std::collections::HashSet::with_capacity(props.len());
    for (key, _) in props {
        let lowered = go_to_lower(key);
        if seen.contains(&lowered) {
            return Err(MetadataError::DuplicateKey { key: lowered });
        }
        seen.insert(lowered);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn keys_match_like_equal_fold() {
        assert!(matches_key("natsURL", "natsURL"));
        assert!(matches_key("NATSURL", "natsURL"));
        assert!(matches_key("natsurl", "natsURL"));
        assert!(matches_key("ac\u{212A}Wait", "ackWait"));
        assert!(matches_key("\u{17F}treamName", "streamName"));
        assert!(!matches_key("natsURL ", "natsURL"));
        assert!(!matches_key("natsUR", "natsURL"));
        assert!(!matches_key("hearbeat", "heartbeat"));
    }

    #[test]
    fn lookup_prefers_the_exact_spelling() {
        let p = props(&[("\u{17F}treamName", "a"), ("streamName", "b")]);
        assert_eq!(lookup(&p, "streamName"), Some("b"));
        let p = props(&[("STREAMNAME", "c")]);
        assert_eq!(lookup(&p, "streamName"), Some("c"));
        assert_eq!(lookup(&p, "durableName"), None);
    }

    #[test]
    fn duplicates_after_lowercasing_are_rejected() {
        type Pairs = &'static [(&'static str, &'static str)];
        let cases: &[(Pairs, Option<&str>)] = &[
            (&[("natsURL", "a"), ("natsurl", "b")], Some("natsurl")),
            (&[("Foo", "a"), ("FOO", "b")], Some("foo")),
            (&[("a\u{212A}", "a"), ("ak", "b")], Some("ak")),
            (&[("natsURL", "a"), ("name", "b")], None),
            // ToLower leaves the long s alone, so these are not duplicates for dapr/kit.
            (&[("\u{17F}treamName", "a"), ("streamName", "b")], None),
        ];
        for (pairs, want) in cases {
            let got = check_duplicates(&props(pairs)).err().map(|e| e.to_string());
            let want = want.map(|k| {
                format!("failed to resolve aliases: key {k} is duplicate in the metadata")
            });
            assert_eq!(got, want, "{pairs:?}");
        }
    }
}
