//! Names the server or the client refuses: `streamName` and `durableName`, which end up inside
//! JetStream API subjects, and `queueGroupName`, which goes on the SUB line.
//!
//! Why: a deliberate fix. The reference sends them unchecked; a space or a `.` breaks the JetStream
//! API subject and the server or nats.go answers with a misleading message (Dapr issue #1655),
//! after the connection is made. We reject them at init, naming the key and the value. A queue
//! group is no subject token: nats.go (and async-nats) refuse only a space, tab, CR or LF in
//! it, so `orders.workers` works there and works here.

use super::error::{MetadataError, NameProblem};

/// The server's limit for stream and consumer names, in bytes (`JSMaxNameLen`).
pub const MAX_NAME_BYTES: usize = 255;

/// Checks a non-empty name: at most [`MAX_NAME_BYTES`] bytes, no whitespace and none of `.`,
/// `*`, `>`, `/`, `\`.
pub fn validate(key: &'static str, value: &str) -> Result<(), MetadataError> {
    let problem = if value.len() > MAX_NAME_BYTES {
        Some(NameProblem::TooLong)
    } else if value
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        Some(NameProblem::ForbiddenCharacter)
    } else {
        None
    };
    match problem {
        Some(problem) => Err(MetadataError::InvalidName {
            key,
            value: value.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

/// Checks a non-empty queue group name as nats.go's `badQueue` does: no space, tab, CR or LF
/// (they would split the SUB protocol line). Anything else, `.` included, is a valid group.
pub fn validate_queue_group(value: &str) -> Result<(), MetadataError> {
    if value.contains([' ', '\t', '\r', '\n']) {
        return Err(MetadataError::InvalidName {
            key: "queueGroupName",
            value: value.to_owned(),
            problem: NameProblem::QueueSeparator,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_groups_refuse_only_protocol_separators() {
        let long = "q".repeat(300);
        for group in [
            "orders.workers",
            "a*b",
            "a>b",
            "a/b",
            "a\u{3000}b",
            long.as_str(),
        ] {
            assert_eq!(validate_queue_group(group), Ok(()), "{group}");
        }
        let rule = "must not contain a space, tab, CR or LF";
        for (group, quoted) in [
            ("a b", r#""a b""#),
            ("a\tb", r#""a\tb""#),
            ("a\rb", r#""a\rb""#),
            ("a\nb", r#""a\nb""#),
        ] {
            assert_eq!(
                validate_queue_group(group).unwrap_err().to_string(),
                format!("invalid queueGroupName {quoted}: {rule}")
            );
        }
    }

    #[test]
    fn valid_names() {
        let long = "a".repeat(255);
        for name in ["a", "my-durable_1", "ÄÖÜ", "$SYS-like", long.as_str()] {
            assert_eq!(validate("durableName", name), Ok(()), "{name}");
        }
    }

    #[test]
    fn invalid_names_name_the_key_and_the_value() {
        let rule = r"must not contain whitespace, '.', '*', '>', '/' or '\'";
        let cases = [
            (
                "durableName",
                "a.b",
                format!(r#"invalid durableName "a.b": {rule}"#),
            ),
            (
                "streamName",
                "s*",
                format!(r#"invalid streamName "s*": {rule}"#),
            ),
            (
                "streamName",
                "s>",
                format!(r#"invalid streamName "s>": {rule}"#),
            ),
            (
                "streamName",
                "a/b",
                format!(r#"invalid streamName "a/b": {rule}"#),
            ),
            (
                "streamName",
                r"a\b",
                format!(r#"invalid streamName "a\\b": {rule}"#),
            ),
            (
                "durableName",
                "a\tb",
                format!(r#"invalid durableName "a\tb": {rule}"#),
            ),
            (
                "durableName",
                "a\u{3000}b",
                format!(r#"invalid durableName "a\u3000b": {rule}"#),
            ),
        ];
        for (key, value, want) in cases {
            assert_eq!(validate(key, value).unwrap_err().to_string(), want);
        }
        let long = "é".repeat(128);
        assert_eq!(
            validate("durableName", &long).unwrap_err().to_string(),
            format!(r#"invalid durableName "{long}": must be at most 255 bytes long"#)
        );
    }
}
