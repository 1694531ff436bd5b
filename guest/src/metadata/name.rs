//! Names that end up inside NATS subjects (`streamName`, `durableName`, `queueGroupName`).
//!
//! Why: a deliberate fix. The reference sends them unchecked; a space or a `.` breaks the JetStream
//! API subject and the server or nats.go answers with a misleading message (Dapr issue #1655),
//! after the connection is made. We reject them at init, naming the key and the value.

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

#[cfg(test)]
mod tests {
    use super::*;

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
                "queueGroupName",
                "a b",
                format!(r#"invalid queueGroupName "a b": {rule}"#),
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
