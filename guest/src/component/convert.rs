//! Conversions between the generated types and the plain modules' types: requests,
//! deliveries and transport failures in; messages, connect options, consumer
//! configurations, answers and Dapr errors out. The decisions are the plain modules'.

use std::time::Duration;

use super::dapr::jetstream::app::{Answers, NewMessage};
use super::dapr::jetstream::transport::{self, TransportError};
use super::dapr::jetstream::types::Error;
use crate::binding::ExistingConsumer;
use crate::connect::{self, Auth, ConnectPlan, SecretSource, Tls};
use crate::consumer::ConsumerPlan;
use crate::disposition::{Answer, Outcome, Redelivery};
use crate::failure::{self, ApiError, PubSubError, TransportFailure};
use crate::metadata::{AckPolicy, DeliverPolicy, Metadata, Secret};
use crate::{message, publish};

/// The message a publish request sends.
pub(super) fn outbound(
    topic: String,
    data: Vec<u8>,
    content_type: Option<&str>,
    metadata: &[(String, String)],
) -> Result<transport::OutboundMessage, Error> {
    let transport::BatchEntry { headers, payload } = batch_entry(data, content_type, metadata)?;
    Ok(transport::OutboundMessage {
        subject: topic,
        headers,
        payload,
    })
}

/// The headers and payload of a message to publish (the subject is the caller's).
pub(super) fn batch_entry(
    data: Vec<u8>,
    content_type: Option<&str>,
    metadata: &[(String, String)],
) -> Result<transport::BatchEntry, Error> {
    let headers = publish::headers(&data, content_type, metadata)
        .map_err(|err| Error::InvalidMetadata(err.to_string()))?;
    Ok(transport::BatchEntry {
        headers,
        payload: data,
    })
}

/// A delivery as the application's message, with the answer to each status decided.
pub(super) fn new_message(redelivery: &Redelivery, delivery: transport::Delivery) -> NewMessage {
    let transport::Delivery {
        token,
        headers,
        delivered,
    } = delivery;
    let (metadata, content_type) = message::metadata(headers);
    let answer = |outcome| redelivery.decide(outcome, delivered).map(ack_kind);
    NewMessage {
        delivery: token,
        content_type,
        metadata,
        answers: Answers {
            success: answer(Outcome::Success),
            retry: answer(Outcome::Retry),
            drop: answer(Outcome::Drop),
            release: answer(Outcome::Release),
        },
    }
}

pub(super) fn ack_kind(answer: Answer) -> transport::AckKind {
    match answer {
        Answer::Ack => transport::AckKind::Ack,
        Answer::Nak(delay) => transport::AckKind::Nak(delay.map(nanos)),
        Answer::Term => transport::AckKind::Term,
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The connection the metadata describes ([`connect::plan_connect`]), as the transport's
/// options.
pub(super) fn connect_options(metadata: &Metadata) -> transport::ConnectOptions {
    let ConnectPlan {
        servers,
        name,
        auth,
        tls:
            Tls {
                required,
                client_cert,
                client_key,
                ca,
            },
        api_prefix,
        request_timeout_ms,
    } = connect::plan_connect(metadata);
    let exposed = |secret: &Secret| secret.expose().to_string();
    transport::ConnectOptions {
        servers: servers.to_vec(),
        name: name.to_string(),
        auth: match auth {
            Auth::None => transport::Auth::None,
            Auth::Token(token) => transport::Auth::Token(exposed(token)),
            Auth::UserPassword { user, password } => {
                transport::Auth::UserPassword((user.to_string(), exposed(password)))
            }
            Auth::Jwt { jwt, seed } => transport::Auth::Jwt(transport::JwtCredentials {
                jwt: exposed(jwt),
                seed: exposed(seed),
            }),
            Auth::Nkey(seed) => transport::Auth::Nkey(exposed(seed)),
            Auth::Credentials(creds) => transport::Auth::Credentials(secret_source(creds)),
        },
        tls: transport::TlsOptions {
            required,
            client_cert: client_cert.map(secret_source),
            client_key: client_key.map(secret_source),
            ca: ca.map(secret_source),
        },
        api_prefix,
        request_timeout_ms,
    }
}

fn secret_source(source: SecretSource<'_>) -> transport::SecretSource {
    match source {
        SecretSource::Inline(content) => transport::SecretSource::Inline(content.to_string()),
        SecretSource::File(path) => transport::SecretSource::File(path.to_string()),
    }
}

/// A consumer plan as the transport's consumer configuration.
pub(super) fn consumer_config(plan: &ConsumerPlan) -> transport::ConsumerConfig {
    let ConsumerPlan {
        durable_name,
        deliver_group,
        deliver_policy,
        ack_policy,
        ack_wait,
        max_deliver,
        backoff,
        max_ack_pending,
        filter_subject,
        rate_limit_bps,
        idle_heartbeat,
        flow_control,
        num_replicas,
        memory_storage,
    } = plan;
    transport::ConsumerConfig {
        durable_name: durable_name.clone(),
        deliver_subject: None,
        deliver_group: deliver_group.clone(),
        deliver_policy: match *deliver_policy {
            DeliverPolicy::All => transport::DeliverPolicy::All,
            DeliverPolicy::Last => transport::DeliverPolicy::Last,
            DeliverPolicy::New => transport::DeliverPolicy::New,
            DeliverPolicy::ByStartSequence(sequence) => {
                transport::DeliverPolicy::ByStartSequence(sequence)
            }
            DeliverPolicy::ByStartTime { unix_seconds } => transport::DeliverPolicy::ByStartTime(
                i64::try_from(unix_seconds)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1_000_000_000),
            ),
        },
        ack_policy: match ack_policy {
            AckPolicy::Explicit => transport::AckPolicy::Explicit,
            AckPolicy::All => transport::AckPolicy::All,
            AckPolicy::None => transport::AckPolicy::None,
        },
        ack_wait_ns: nanos(*ack_wait),
        max_deliver: *max_deliver,
        backoff_ns: backoff.iter().copied().map(nanos).collect(),
        max_ack_pending: *max_ack_pending,
        filter_subject: filter_subject.clone(),
        rate_limit_bps: *rate_limit_bps,
        idle_heartbeat_ns: nanos(*idle_heartbeat),
        flow_control: *flow_control,
        num_replicas: *num_replicas,
        memory_storage: *memory_storage,
    }
}

/// A failed connect as Dapr's error ([`failure::connect_error`]).
pub(super) fn connect_error(err: TransportError) -> Error {
    failure::connect_error(&err.into()).into()
}

/// A failed publish to `topic` as Dapr's error ([`failure::publish_error`]).
pub(super) fn publish_error(topic: &str, err: TransportError) -> Error {
    failure::publish_error(topic, &err.into()).into()
}

/// Any other failed call, `what` naming it, as Dapr's error ([`failure::call_error`]).
pub(super) fn call_error(what: &str, err: TransportError) -> Error {
    failure::call_error(what, &err.into()).into()
}

impl From<TransportError> for TransportFailure {
    fn from(err: TransportError) -> Self {
        match err {
            TransportError::Connection(text) => Self::Connection(text),
            TransportError::TimedOut(text) => Self::TimedOut(text),
            TransportError::NoResponders(text) => Self::NoResponders(text),
            TransportError::Jetstream(transport::ApiError {
                status,
                code,
                description,
            }) => Self::Jetstream(ApiError {
                status,
                code,
                description,
            }),
            TransportError::Denied(text) => Self::Denied(text),
            TransportError::Refused(text) => Self::Refused(text),
            TransportError::Invalid(text) => Self::Invalid(text),
            TransportError::Other(text) => Self::Other(text),
        }
    }
}

impl From<PubSubError> for Error {
    fn from(err: PubSubError) -> Self {
        match err {
            PubSubError::InvalidMetadata(text) => Self::InvalidMetadata(text),
            PubSubError::Terminal(text) => Self::Terminal(text),
            PubSubError::Retriable(text) => Self::Retriable(text),
        }
    }
}

/// What the binding rules look at in a consumer the server described.
pub(super) fn existing_consumer(info: &transport::ConsumerInfo) -> ExistingConsumer {
    ExistingConsumer {
        name: info.name.clone(),
        filter_subject: info.config.filter_subject.clone(),
        deliver_subject: info.config.deliver_subject.clone(),
        deliver_group: info.config.deliver_group.clone(),
        push_bound: info.push_bound,
    }
}
