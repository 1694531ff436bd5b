//! Transport failures as the WIT `transport-error`, built from async-nats errors.

use crate::bindings::transport::{ApiError, TransportError as WitError};

/// A transport failure on its way to the component.
pub(crate) type TransportError = WitError;

/// The JetStream API error inside an async-nats error, when there is one.
pub(crate) fn api_error(err: &async_nats::jetstream::Error) -> WitError {
    // async-nats prints "<description> (code N, error code M)" and has no accessor for the
    // description alone; the contract carries the codes in their own fields.
    let text = err.to_string();
    let codes = format!(" (code {}, error code {})", err.code(), err.error_code().0);
    let description = text.strip_suffix(&codes).unwrap_or(&text).to_string();
    WitError::Jetstream(ApiError {
        status: err.code() as u16,
        code: err.error_code().0 as u16,
        description,
    })
}

/// Maps an error of a JetStream API request (consumer info/create, stream lookup).
pub(crate) fn from_consumer_error(
    what: &str,
    err: async_nats::jetstream::stream::ConsumerError,
) -> WitError {
    use async_nats::jetstream::stream::ConsumerErrorKind as Kind;
    match err.kind() {
        Kind::JetStream(api) => api_error(&api),
        Kind::TimedOut => WitError::TimedOut(format!("{what}: timed out")),
        Kind::InvalidName => WitError::Invalid(format!("{what}: invalid name")),
        Kind::Request => request_error(what, &err),
        _ => WitError::Other(format!("{what}: {err}")),
    }
}

/// A failed API request: "no responders" means JetStream is not there to answer.
pub(crate) fn request_error(what: &str, err: &(dyn std::error::Error + 'static)) -> WitError {
    use async_nats::jetstream::context::{RequestError, RequestErrorKind};
    // async-nats words no responders as "requested JetStream resource does not exist",
    // which misleads: nothing answered on the API prefix at all. Match the kind, not text.
    let mut source = Some(err);
    while let Some(cause) = source {
        if let Some(request) = cause.downcast_ref::<RequestError>()
            && request.kind() == RequestErrorKind::NoResponders
        {
            return WitError::NoResponders(format!(
                "{what}: JetStream did not answer (is JetStream enabled?)"
            ));
        }
        source = cause.source();
    }
    let text = error_chain(err);
    if text.contains("no responders") {
        WitError::NoResponders(format!(
            "{what}: JetStream did not answer (is JetStream enabled?)"
        ))
    } else if text.contains("timed out") {
        WitError::TimedOut(format!("{what}: {text}"))
    } else {
        WitError::Other(format!("{what}: {text}"))
    }
}

/// Maps a publish failure; `subject` is named because it is what the user chose.
pub(crate) fn from_publish_error(
    subject: &str,
    err: async_nats::jetstream::context::PublishError,
) -> WitError {
    use async_nats::jetstream::context::PublishErrorKind as Kind;
    match err.kind() {
        Kind::StreamNotFound => {
            WitError::NoResponders(format!("no stream answered for subject {subject}"))
        }
        Kind::TimedOut => {
            WitError::TimedOut(format!("publish to {subject}: no acknowledgement in time"))
        }
        Kind::BrokenPipe => WitError::Connection(format!("publish to {subject}: connection lost")),
        Kind::MaxPayloadExceeded => {
            // The source says both sizes: "Payload size limit of N exceeded by message size of M".
            use std::error::Error as _;
            let sizes = err
                .source()
                .map(|sizes| format!(" ({sizes}; headers count)"))
                .unwrap_or_default();
            WitError::Invalid(format!(
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
                None => WitError::Other(format!("publish to {subject}: {}", error_chain(&err))),
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
