//! Transport failures, classified as the contract's `transport-error` is (the imports
//! carry them to the component as that), built from async-nats errors.

use crate::sandbox::Refusal;

/// A failure of a transport call, classified so the component can decide between
/// retrying, reporting, or giving up. The text names the subject, stream or server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TransportError {
    /// No server could be reached, or the connection is closed.
    Connection(String),
    /// The call did not complete in time.
    TimedOut(String),
    /// Nobody answered: no stream covers a subject, or JetStream is not enabled.
    NoResponders(String),
    /// The JetStream API answered with an error.
    Jetstream(ApiError),
    /// The server refused the credentials, or a permission check failed.
    Denied(String),
    /// The host refused the request (the sandbox, a limit).
    Refused(String),
    /// The request was malformed.
    Invalid(String),
    /// Anything else.
    Other(String),
}

/// An error answered by the JetStream API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// HTTP-like status (400, 404, 500, 503).
    pub(crate) status: u16,
    /// JetStream error code, e.g. 10059 stream not found, 10014 consumer not found.
    pub(crate) code: u16,
    /// The server's description.
    pub(crate) description: String,
}

impl TransportError {
    /// A request the host refused under the limit `rule`, counted
    /// ([`crate::metrics::REFUSALS`]).
    pub(crate) fn refused(rule: &'static str, text: String) -> Self {
        crate::metrics::refused(rule);
        TransportError::Refused(text)
    }
}

impl From<Refusal> for TransportError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Forbidden(text) => TransportError::Refused(text),
            Refusal::Malformed(text) => TransportError::Invalid(text),
        }
    }
}

/// The JetStream API error inside an async-nats error, when there is one.
pub(crate) fn api_error(err: &async_nats::jetstream::Error) -> TransportError {
    // async-nats prints "<description> (code N, error code M)" and has no accessor for the
    // description alone; the contract carries the codes in their own fields.
    let text = err.to_string();
    let codes = format!(" (code {}, error code {})", err.code(), err.error_code().0);
    let description = text.strip_suffix(&codes).unwrap_or(&text).to_string();
    TransportError::Jetstream(ApiError {
        status: err.code() as u16,
        code: err.error_code().0 as u16,
        description,
    })
}

/// Maps an error of a JetStream API request (consumer info/create, stream lookup).
pub(crate) fn from_consumer_error(
    what: &str,
    err: async_nats::jetstream::stream::ConsumerError,
) -> TransportError {
    use async_nats::jetstream::stream::ConsumerErrorKind as Kind;
    match err.kind() {
        Kind::JetStream(api) => api_error(&api),
        Kind::TimedOut => TransportError::TimedOut(format!("{what}: timed out")),
        Kind::InvalidName => TransportError::Invalid(format!("{what}: invalid name")),
        Kind::Request => request_error(what, &err),
        _ => TransportError::Other(format!("{what}: {err}")),
    }
}

/// A failed API request: "no responders" means JetStream is not there to answer.
pub(crate) fn request_error(what: &str, err: &(dyn std::error::Error + 'static)) -> TransportError {
    use async_nats::jetstream::context::{RequestError, RequestErrorKind};
    // async-nats words no responders as "requested JetStream resource does not exist",
    // which misleads: nothing answered on the API prefix at all. Match the kind, not text.
    let mut source = Some(err);
    while let Some(cause) = source {
        if let Some(request) = cause.downcast_ref::<RequestError>()
            && request.kind() == RequestErrorKind::NoResponders
        {
            return TransportError::NoResponders(format!(
                "{what}: JetStream did not answer (is JetStream enabled?)"
            ));
        }
        source = cause.source();
    }
    let text = error_chain(err);
    if text.contains("no responders") {
        TransportError::NoResponders(format!(
            "{what}: JetStream did not answer (is JetStream enabled?)"
        ))
    } else if text.contains("timed out") {
        TransportError::TimedOut(format!("{what}: {text}"))
    } else {
        TransportError::Other(format!("{what}: {text}"))
    }
}

/// Maps a publish failure; `subject` is named because it is what the user chose.
pub(crate) fn from_publish_error(
    subject: &str,
    err: async_nats::jetstream::context::PublishError,
) -> TransportError {
    use async_nats::jetstream::context::PublishErrorKind as Kind;
    match err.kind() {
        Kind::StreamNotFound => {
            TransportError::NoResponders(format!("no stream answered for subject {subject}"))
        }
        Kind::TimedOut => {
            TransportError::TimedOut(format!("publish to {subject}: no acknowledgement in time"))
        }
        Kind::BrokenPipe => {
            TransportError::Connection(format!("publish to {subject}: connection lost"))
        }
        Kind::MaxPayloadExceeded => {
            // The source says both sizes: "Payload size limit of N exceeded by message size of M".
            use std::error::Error as _;
            let sizes = err
                .source()
                .map(|sizes| format!(" ({sizes}; headers count)"))
                .unwrap_or_default();
            TransportError::Invalid(format!(
                "publish to {subject}: message larger than the server's max_payload{sizes}"
            ))
        }
        _ => {
            use std::error::Error as _;
            match err
                .source()
                .and_then(|s| s.downcast_ref::<async_nats::jetstream::Error>())
            {
                Some(api) => api_error(api),
                None => {
                    TransportError::Other(format!("publish to {subject}: {}", error_chain(&err)))
                }
            }
        }
    }
}

/// An error and its sources on one line.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
