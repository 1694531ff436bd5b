//! A credential value that never prints.

use std::fmt;

/// A secret metadata value (`jwt`, `seedKey`, `token`, TLS client key material). `Debug` and
/// `Display` print `<redacted>`; only [`Secret::expose`] gives the value.
///
/// Why: the design rule that no secret ever appears in a log line or an error text; `Metadata`
/// derives `Debug`, so its secrets must redact themselves.
///
/// ```
/// use jetstream_pubsub_guest::metadata::Secret;
/// let token = Secret::new("s3cr3t");
/// assert_eq!(format!("{token:?} {token}"), "Secret(<redacted>) <redacted>");
/// assert_eq!(token.expose(), "s3cr3t");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that needs it (the connect options).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("SUACS34K232OKPRD");
        for out in [format!("{s:?}"), format!("{s}"), format!("{s:#?}")] {
            assert!(!out.contains("SUACS34K"), "{out}");
        }
        assert_eq!(s.expose(), "SUACS34K232OKPRD");
    }
}
