//! What a failed transport call means to Dapr: retriable or terminal, and the text that
//! names what failed.
//!
//! Why: the host reports every NATS failure as a value (WIT `transport-error`), never as a
//! trap, and leaves the judgement to the component. Dapr's caller acts on the class alone
//! (retry a retriable error, give up on a terminal one), so the class must say whether the
//! same request can succeed later. The request itself at fault (refused by the sandbox,
//! malformed, denied) is terminal; a server that is away, slow or electing a leader is
//! retriable.

use std::fmt;

/// JetStream's error code for a stream that does not exist.
pub const STREAM_NOT_FOUND: u16 = 10059;

/// A failed transport call as the host reports it (WIT `transport-error`), free of
/// generated types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportFailure {
    /// No server could be reached, or the connection is closed.
    Connection(String),
    /// The call did not complete in time.
    TimedOut(String),
    /// Nobody answered: no stream covers a published subject (or a cluster is electing its
    /// leader), or no JetStream serves the API prefix of a request.
    NoResponders(String),
    /// The JetStream API answered with an error.
    Jetstream(ApiError),
    /// The server refused the credentials, or a permission check failed.
    Denied(String),
    /// The host refused the request (sandbox policy or limit).
    Refused(String),
    /// The request was malformed.
    Invalid(String),
    /// Anything else.
    Other(String),
}

/// An error answered by the JetStream API (WIT `api-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP-like status (400, 404, 500, 503).
    pub status: u16,
    /// JetStream error code, e.g. [`STREAM_NOT_FOUND`].
    pub code: u16,
    /// The server's description.
    pub description: String,
}

impl TransportFailure {
    /// Whether the JetStream API said the stream does not exist.
    pub fn is_stream_not_found(&self) -> bool {
        matches!(self, Self::Jetstream(api) if api.code == STREAM_NOT_FOUND)
    }
}

/// The host's text, or for a JetStream API error the server's description with its status
/// and code.
impl fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connection(text)
            | Self::TimedOut(text)
            | Self::NoResponders(text)
            | Self::Denied(text)
            | Self::Refused(text)
            | Self::Invalid(text)
            | Self::Other(text) => f.write_str(text),
            Self::Jetstream(api) => write!(
                f,
                "{} (status {}, code {})",
                api.description, api.status, api.code
            ),
        }
    }
}

/// Why a pubsub call failed, in Dapr's classes (WIT `error`): the class tells the caller
/// what to do next, as `pubsub.NewRetriableError` / `NewTerminalError` do in Dapr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PubSubError {
    /// The metadata is invalid; the same input fails again.
    InvalidMetadata(String),
    /// The operation cannot succeed as asked: do not retry.
    Terminal(String),
    /// A transient failure: the same request may succeed later.
    Retriable(String),
}

/// A failed connect. The host refusing a server or file, a malformed option or refused
/// credentials will fail the same way again; anything else (no server reachable yet) may
/// not.
pub fn connect_error(err: &TransportFailure) -> PubSubError {
    match err {
        TransportFailure::Invalid(text)
        | TransportFailure::Refused(text)
        | TransportFailure::Denied(text) => PubSubError::Terminal(text.clone()),
        other => PubSubError::Retriable(other.to_string()),
    }
}

/// A publish failure: retriable unless the request itself is at fault (the reference
/// classifies every broker error as retriable, components-contrib#4395).
pub fn publish_error(topic: &str, err: &TransportFailure) -> PubSubError {
    match err {
        // Also what a cluster answers while the stream's leader is being elected.
        TransportFailure::NoResponders(_) => PubSubError::Retriable(format!(
            "no stream matches subject {topic}, or its leader is being elected: nothing stored the message"
        )),
        TransportFailure::Invalid(text)
        | TransportFailure::Refused(text)
        | TransportFailure::Denied(text) => PubSubError::Terminal(text.clone()),
        other => {
            // The host's texts already name the publish; say it once.
            let text = other.to_string();
            if text.starts_with("publish to ") {
                PubSubError::Retriable(text)
            } else {
                PubSubError::Retriable(format!("publish to {topic}: {text}"))
            }
        }
    }
}

/// Any other failed call, `what` naming it: terminal when the request is at fault or the
/// JetStream API refused it, retriable when the server could not be reached or answer.
pub fn call_error(what: &str, err: &TransportFailure) -> PubSubError {
    match err {
        TransportFailure::Invalid(_)
        | TransportFailure::Refused(_)
        | TransportFailure::Denied(_)
        | TransportFailure::Jetstream(_) => PubSubError::Terminal(format!("{what}: {err}")),
        _ => PubSubError::Retriable(format!("{what}: {err}")),
    }
}

/// A failed JetStream API request. When nothing answered, the request went to an API
/// prefix no JetStream serves: the error names it (`api_prefix` is asked only then), since
/// a wrong `domain` or `apiPrefix` is the usual cause.
pub fn api_error(
    what: &str,
    err: &TransportFailure,
    api_prefix: impl FnOnce() -> String,
) -> PubSubError {
    match err {
        TransportFailure::NoResponders(_) => PubSubError::Retriable(format!(
            "{what}: no JetStream answered on {} (check domain and apiPrefix, and that JetStream is enabled)",
            api_prefix()
        )),
        other => call_error(what, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PubSubError::{Retriable, Terminal};

    fn jetstream(code: u16) -> TransportFailure {
        TransportFailure::Jetstream(ApiError {
            status: 404,
            code,
            description: "stream not found".into(),
        })
    }

    /// One failure of each kind, with its text.
    fn each_kind() -> Vec<TransportFailure> {
        vec![
            TransportFailure::Connection("connection closed".into()),
            TransportFailure::TimedOut("timed out after 5s".into()),
            TransportFailure::NoResponders("no responders".into()),
            jetstream(STREAM_NOT_FOUND),
            TransportFailure::Denied("authorization violation".into()),
            TransportFailure::Refused("subject $JS.x is reserved".into()),
            TransportFailure::Invalid("bad subject".into()),
            TransportFailure::Other("broken pipe".into()),
        ]
    }

    #[test]
    fn a_failure_prints_the_host_text_or_the_api_error_with_status_and_code() {
        let texts: Vec<String> = each_kind().iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "connection closed",
                "timed out after 5s",
                "no responders",
                "stream not found (status 404, code 10059)",
                "authorization violation",
                "subject $JS.x is reserved",
                "bad subject",
                "broken pipe",
            ]
        );
    }

    #[test]
    fn only_a_stream_not_found_code_means_the_stream_is_gone() {
        assert!(jetstream(10059).is_stream_not_found());
        assert!(!jetstream(10014).is_stream_not_found());
        assert!(!jetstream(10148).is_stream_not_found());
        assert!(!TransportFailure::Other("stream not found".into()).is_stream_not_found());
    }

    /// The class of an error: `T` terminal, `R` retriable, `M` invalid metadata.
    fn class(err: &PubSubError) -> char {
        match err {
            Terminal(_) => 'T',
            Retriable(_) => 'R',
            PubSubError::InvalidMetadata(_) => 'M',
        }
    }

    #[test]
    fn only_a_request_at_fault_fails_for_good_and_an_api_error_only_outside_connect_and_publish() {
        // Per kind of failure, in the order of `each_kind`: its class for a connect, a
        // publish and any other call.
        let expected = [
            "RRR", // connection
            "RRR", // timed out
            "RRR", // no responders
            "RRT", // jetstream
            "TTT", // denied
            "TTT", // refused
            "TTT", // invalid
            "RRR", // other
        ];
        for (err, classes) in each_kind().iter().zip(expected) {
            let got: String = [
                connect_error(err),
                publish_error("orders", err),
                call_error("receiving on orders", err),
            ]
            .iter()
            .map(class)
            .collect();
            assert_eq!(got, classes, "{err:?}");
        }
    }

    #[test]
    fn each_error_says_the_host_text_once_and_names_what_failed() {
        let closed = TransportFailure::Connection("connection closed".into());
        let refused = TransportFailure::Refused("subject $JS.x is reserved".into());
        let cases = [
            // A connect has nothing to name but the host's words.
            (connect_error(&closed), "connection closed"),
            (connect_error(&refused), "subject $JS.x is reserved"),
            // A publish names its topic, unless the request itself is at fault.
            (
                publish_error("orders", &closed),
                "publish to orders: connection closed",
            ),
            (
                publish_error("orders", &jetstream(STREAM_NOT_FOUND)),
                "publish to orders: stream not found (status 404, code 10059)",
            ),
            (
                publish_error("orders", &refused),
                "subject $JS.x is reserved",
            ),
            (
                publish_error(
                    "orders",
                    &TransportFailure::NoResponders("no responders".into()),
                ),
                "no stream matches subject orders, or its leader is being elected: \
                 nothing stored the message",
            ),
            // A host text that names the publish already is not prefixed twice.
            (
                publish_error(
                    "orders",
                    &TransportFailure::TimedOut("publish to orders: no PubAck in 5s".into()),
                ),
                "publish to orders: no PubAck in 5s",
            ),
            // Any other call names what it was doing, whatever the class.
            (
                call_error("receiving on orders", &closed),
                "receiving on orders: connection closed",
            ),
            (
                call_error("receiving on orders", &refused),
                "receiving on orders: subject $JS.x is reserved",
            ),
        ];
        for (err, text) in cases {
            let (Terminal(got) | Retriable(got) | PubSubError::InvalidMetadata(got)) = &err;
            assert_eq!(got, text);
        }
    }

    #[test]
    fn an_unanswered_api_request_names_the_prefix_it_went_to() {
        let prefix = || "$JS.hub.API".to_string();
        assert_eq!(
            api_error(
                "looking up the stream for orders",
                &TransportFailure::NoResponders("no responders".into()),
                prefix
            ),
            Retriable(
                "looking up the stream for orders: no JetStream answered on $JS.hub.API \
                 (check domain and apiPrefix, and that JetStream is enabled)"
                    .into()
            )
        );
        // Every other failure is classified as any call's, and the prefix is not asked for.
        for err in each_kind()
            .into_iter()
            .filter(|err| !matches!(err, TransportFailure::NoResponders(_)))
        {
            assert_eq!(
                api_error("x", &err, || unreachable!("asked for the prefix")),
                call_error("x", &err)
            );
        }
    }
}
