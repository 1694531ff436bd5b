//! The `backOff*` retry-config keys: validated like the reference, otherwise unused.
//!
//! Why: after connecting, the reference decodes every key that starts with `backOff`
//! (case-sensitive) into dapr/kit's `retry.Config`, a leftover of the 2021 component that is
//! never used, but whose bad values fail Init (reference §2.5). We accept and validate the same
//! keys so the same YAML fails the same way, and ignore their values.

use std::fmt;

use super::decode::{Base, is_go_float32, parse_go_duration, parse_int};
use super::key::{go_to_lower, matches_key};
use super::quote::go_quote;

/// The prefix that selects retry-config keys, matched case-sensitively as dapr/kit does.
pub const PREFIX: &str = "backOff";

/// The retry-config fields: the part after [`PREFIX`] (matched case-insensitively, as
/// mapstructure does), its canonical metadata key, and its type.
const FIELDS: &[(&str, &str, RetryValueKind)] = &[
    ("policy", "backOffPolicy", RetryValueKind::Policy),
    ("duration", "backOffDuration", RetryValueKind::Duration),
    (
        "initialInterval",
        "backOffInitialInterval",
        RetryValueKind::Duration,
    ),
    (
        "randomizationFactor",
        "backOffRandomizationFactor",
        RetryValueKind::Float32,
    ),
    ("multiplier", "backOffMultiplier", RetryValueKind::Float32),
    (
        "maxInterval",
        "backOffMaxInterval",
        RetryValueKind::Duration,
    ),
    (
        "maxElapsedTime",
        "backOffMaxElapsedTime",
        RetryValueKind::Duration,
    ),
    ("maxRetries", "backOffMaxRetries", RetryValueKind::Int64),
];

/// The canonical spellings of the retry-config keys, for documentation and tests.
pub const KEYS: &[&str] = &[
    "backOffPolicy",
    "backOffDuration",
    "backOffInitialInterval",
    "backOffRandomizationFactor",
    "backOffMultiplier",
    "backOffMaxInterval",
    "backOffMaxElapsedTime",
    "backOffMaxRetries",
];

/// The type of a retry-config value, which decides its parse rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryValueKind {
    /// `constant` or `exponential`, any case.
    Policy,
    /// A base-10 integer of **milliseconds**, else a Go duration.
    Duration,
    /// A base-10 signed 64-bit integer.
    Int64,
    /// A Go float32 literal.
    Float32,
}

/// A retry-config key with a bad value. Display is dapr/kit's text, except that it names the
/// metadata key (`backOffPolicy`) where the reference names the struct field (`policy`): the
/// user never wrote `policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfigError {
    /// Canonical metadata key.
    pub key: &'static str,
    /// The value as given.
    pub value: String,
    /// Its expected type.
    pub kind: RetryValueKind,
}

impl fmt::Display for RetryConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, value) = (self.key, go_quote(&self.value));
        match self.kind {
            RetryValueKind::Policy => write!(
                f,
                "error decoding '{key}': invalid PolicyType {value}: unexpected back off policy type: {}",
                self.value
            ),
            RetryValueKind::Duration => {
                write!(f, "error decoding '{key}': invalid duration {value}")
            }
            RetryValueKind::Int64 => write!(f, "error decoding '{key}': invalid int64 {value}"),
            RetryValueKind::Float32 => {
                write!(f, "error decoding '{key}': invalid float32 {value}")
            }
        }
    }
}

impl std::error::Error for RetryConfigError {}

/// Checks every retry-config key present and returns every bad one.
pub fn validate(props: &[(String, String)]) -> Result<(), Vec<RetryConfigError>> {
    let errors: Vec<RetryConfigError> = FIELDS
        .iter()
        .filter_map(|&(field, key, kind)| {
            let value = lookup_field(props, field)?;
            (!is_valid(value, kind)).then(|| RetryConfigError {
                key,
                value: value.to_owned(),
                kind,
            })
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The value whose key is `backOff` + a case-insensitive match of `field`; an exact spelling
/// (after dapr/kit lowercases the first letter) wins over a folded one.
fn lookup_field<'a>(props: &'a [(String, String)], field: &str) -> Option<&'a str> {
    let rest = |k: &'a String| k.strip_prefix(PREFIX);
    let uncapitalized = |r: &str| {
        let mut chars = r.chars();
        chars
            .next()
            .map(|c| go_to_lower(&c.to_string()) + chars.as_str())
            .unwrap_or_default()
    };
    props
        .iter()
        .find(|(k, _)| rest(k).is_some_and(|r| uncapitalized(r) == field))
        .or_else(|| {
            props
                .iter()
                .find(|(k, _)| rest(k).is_some_and(|r| matches_key(r, field)))
        })
        .map(|(_, v)| v.as_str())
}

fn is_valid(value: &str, kind: RetryValueKind) -> bool {
    match kind {
        RetryValueKind::Policy => {
            matches!(go_to_lower(value).as_str(), "constant" | "exponential")
        }
        RetryValueKind::Duration => {
            parse_int(value, Base::Ten).is_ok() || parse_go_duration(value).is_ok()
        }
        RetryValueKind::Int64 => parse_int(value, Base::Ten).is_ok(),
        RetryValueKind::Float32 => is_go_float32(value),
    }
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

    fn texts(pairs: &[(&str, &str)]) -> Vec<String> {
        match validate(&props(pairs)) {
            Ok(()) => vec![],
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn valid_retry_values_pass() {
        let ok = [
            ("backOffPolicy", "Exponential"),
            ("backOffPolicy", "CONSTANT"),
            ("backOffDuration", "500"),
            ("backOffDuration", "-5"),
            ("backOffDuration", "1m"),
            ("backOffInitialInterval", "100ms"),
            ("backOffRandomizationFactor", "0.5"),
            ("backOffMultiplier", "1.5e0"),
            ("backOffMaxInterval", "60s"),
            ("backOffMaxElapsedTime", "15m"),
            ("backOffMaxRetries", "-1"),
            ("backOffMAXRETRIES", "3"),
            // The component's own key and unknown remainders are not retry config.
            ("backOff", "[1s"),
            ("backOffUnknown", "x"),
            // The prefix is case-sensitive.
            ("backoffPolicy", "bogus"),
            ("BACKOFFPOLICY", "bogus"),
        ];
        for (k, v) in ok {
            assert_eq!(texts(&[(k, v)]), Vec::<String>::new(), "{k}={v}");
        }
    }

    #[test]
    fn bad_retry_values_have_the_reference_text_with_the_metadata_key() {
        let bad = [
            (
                ("backOffPolicy", "foo"),
                r#"error decoding 'backOffPolicy': invalid PolicyType "foo": unexpected back off policy type: foo"#,
            ),
            (
                ("backOffPolicy", ""),
                r#"error decoding 'backOffPolicy': invalid PolicyType "": unexpected back off policy type: "#,
            ),
            (
                ("backOffDuration", "x"),
                r#"error decoding 'backOffDuration': invalid duration "x""#,
            ),
            (
                ("backOffDuration", ""),
                r#"error decoding 'backOffDuration': invalid duration """#,
            ),
            (
                ("backOffmaxElapsedTime", "1_000"),
                r#"error decoding 'backOffMaxElapsedTime': invalid duration "1_000""#,
            ),
            (
                ("backOffMaxRetries", "0x10"),
                r#"error decoding 'backOffMaxRetries': invalid int64 "0x10""#,
            ),
            (
                ("backOffMultiplier", "1e39"),
                r#"error decoding 'backOffMultiplier': invalid float32 "1e39""#,
            ),
            (
                ("backOffRandomizationFactor", "half"),
                r#"error decoding 'backOffRandomizationFactor': invalid float32 "half""#,
            ),
        ];
        for ((k, v), want) in bad {
            assert_eq!(texts(&[(k, v)]), vec![want.to_owned()], "{k}={v}");
        }
    }

    #[test]
    fn every_bad_key_is_reported() {
        let got = texts(&[("backOffMaxRetries", "x"), ("backOffPolicy", "y")]);
        assert_eq!(got.len(), 2);
    }
}
