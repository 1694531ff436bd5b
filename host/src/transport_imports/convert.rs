//! WIT transport types to and from the transport's (its own, and async-nats's consumer
//! configuration and messages). Destructured exhaustively, so a field added to the
//! contract cannot be forgotten here. One conversion per type, in one direction: what the
//! component passes in, what the host hands back.

use std::str::FromStr as _;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};

use crate::bindings::transport::{
    self as wit, AckPolicy, BatchEntry, ConsumerConfig, ConsumerInfo, DeliverPolicy, Headers,
    OutboundMessage,
};
use crate::sandbox::Refusal;
use crate::transport::{self as nats, TransportError};

/// A WIT outbound message as an async-nats publish, validated (header names and values
/// that would break the protocol are refused, not panicked on).
pub(crate) fn publish_message(
    message: OutboundMessage,
) -> Result<(String, jetstream::message::PublishMessage), TransportError> {
    let OutboundMessage {
        subject,
        headers,
        payload,
    } = message;
    Ok((subject, publish_entry(BatchEntry { headers, payload })?))
}

/// Headers and payload as an async-nats publish, validated like [`publish_message`].
pub(crate) fn publish_entry(
    entry: BatchEntry,
) -> Result<jetstream::message::PublishMessage, TransportError> {
    let BatchEntry { headers, payload } = entry;
    let mut publish = jetstream::message::PublishMessage::build().payload(payload.into());
    if !headers.is_empty() {
        publish = publish.headers(headers_from_wit(&headers)?);
    }
    Ok(publish)
}

fn headers_from_wit(headers: &Headers) -> Result<async_nats::HeaderMap, TransportError> {
    let mut map = async_nats::HeaderMap::new();
    for (name, value) in headers {
        let header = async_nats::header::HeaderName::from_str(name)
            .map_err(|_| TransportError::Invalid(format!("invalid header name {name:?}")))?;
        if value.contains(['\r', '\n']) {
            return Err(TransportError::Invalid(format!(
                "header {name} has a line break in its value"
            )));
        }
        map.append(header, value.as_str());
    }
    Ok(map)
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A WIT consumer configuration as async-nats's wire superset.
pub(crate) fn consumer_config(config: ConsumerConfig, deliver_subject: String) -> consumer::Config {
    let ConsumerConfig {
        durable_name,
        deliver_subject: _,
        deliver_group,
        deliver_policy,
        ack_policy,
        ack_wait_ns,
        max_deliver,
        backoff_ns,
        max_ack_pending,
        filter_subject,
        rate_limit_bps,
        idle_heartbeat_ns,
        flow_control,
        num_replicas,
        memory_storage,
    } = config;
    consumer::Config {
        deliver_subject: Some(deliver_subject),
        durable_name,
        deliver_group,
        deliver_policy: match deliver_policy {
            DeliverPolicy::All => consumer::DeliverPolicy::All,
            DeliverPolicy::Last => consumer::DeliverPolicy::Last,
            DeliverPolicy::New => consumer::DeliverPolicy::New,
            DeliverPolicy::LastPerSubject => consumer::DeliverPolicy::LastPerSubject,
            DeliverPolicy::ByStartSequence(start_sequence) => {
                consumer::DeliverPolicy::ByStartSequence { start_sequence }
            }
            DeliverPolicy::ByStartTime(ns) => consumer::DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            },
        },
        ack_policy: match ack_policy {
            AckPolicy::Explicit => consumer::AckPolicy::Explicit,
            AckPolicy::All => consumer::AckPolicy::All,
            AckPolicy::None => consumer::AckPolicy::None,
        },
        ack_wait: Duration::from_nanos(ack_wait_ns),
        max_deliver,
        backoff: backoff_ns.into_iter().map(Duration::from_nanos).collect(),
        max_ack_pending,
        filter_subject,
        rate_limit: rate_limit_bps,
        idle_heartbeat: Duration::from_nanos(idle_heartbeat_ns),
        flow_control,
        num_replicas: num_replicas as usize,
        memory_storage,
        ..Default::default()
    }
}

/// What the server reported about a consumer, as WIT.
pub(crate) fn consumer_info(info: &consumer::Info) -> ConsumerInfo {
    let config = &info.config;
    ConsumerInfo {
        stream_name: info.stream_name.clone(),
        name: info.name.clone(),
        config: ConsumerConfig {
            durable_name: config.durable_name.clone(),
            deliver_subject: config.deliver_subject.clone(),
            deliver_group: config.deliver_group.clone(),
            deliver_policy: match config.deliver_policy {
                consumer::DeliverPolicy::All => DeliverPolicy::All,
                consumer::DeliverPolicy::Last => DeliverPolicy::Last,
                consumer::DeliverPolicy::New => DeliverPolicy::New,
                consumer::DeliverPolicy::LastPerSubject => DeliverPolicy::LastPerSubject,
                consumer::DeliverPolicy::ByStartSequence { start_sequence } => {
                    DeliverPolicy::ByStartSequence(start_sequence)
                }
                consumer::DeliverPolicy::ByStartTime { start_time } => DeliverPolicy::ByStartTime(
                    start_time
                        .unix_timestamp_nanos()
                        .clamp(i64::MIN as i128, i64::MAX as i128) as i64,
                ),
            },
            ack_policy: match config.ack_policy {
                consumer::AckPolicy::None => AckPolicy::None,
                consumer::AckPolicy::All => AckPolicy::All,
                _ => AckPolicy::Explicit,
            },
            ack_wait_ns: nanos(config.ack_wait),
            max_deliver: config.max_deliver,
            backoff_ns: config.backoff.iter().copied().map(nanos).collect(),
            max_ack_pending: config.max_ack_pending,
            filter_subject: config.filter_subject.clone(),
            rate_limit_bps: config.rate_limit,
            idle_heartbeat_ns: nanos(config.idle_heartbeat),
            flow_control: config.flow_control,
            num_replicas: u32::try_from(config.num_replicas).unwrap_or(u32::MAX),
            memory_storage: config.memory_storage,
        },
        push_bound: info.push_bound,
        num_pending: info.num_pending,
        num_ack_pending: info.num_ack_pending as u64,
    }
}

impl From<wit::ConnectOptions> for nats::ConnectOptions {
    fn from(options: wit::ConnectOptions) -> Self {
        let wit::ConnectOptions {
            servers,
            name,
            auth,
            tls,
            api_prefix,
            request_timeout_ms,
        } = options;
        let wit::TlsOptions {
            required,
            client_cert,
            client_key,
            ca,
        } = tls;
        nats::ConnectOptions {
            servers,
            name,
            auth: match auth {
                wit::Auth::None => nats::Auth::None,
                wit::Auth::Token(token) => nats::Auth::Token(token),
                wit::Auth::UserPassword((user, password)) => {
                    nats::Auth::UserPassword { user, password }
                }
                wit::Auth::Jwt(wit::JwtCredentials { jwt, seed }) => nats::Auth::Jwt { jwt, seed },
                wit::Auth::Nkey(seed) => nats::Auth::Nkey(seed),
                wit::Auth::Credentials(source) => nats::Auth::Credentials(source.into()),
            },
            tls: nats::TlsOptions {
                required,
                client_cert: client_cert.map(Into::into),
                client_key: client_key.map(Into::into),
                ca: ca.map(Into::into),
            },
            api_prefix,
            request_timeout_ms,
        }
    }
}

impl From<wit::SecretSource> for nats::SecretSource {
    fn from(source: wit::SecretSource) -> Self {
        match source {
            wit::SecretSource::Inline(text) => nats::SecretSource::Inline(text),
            wit::SecretSource::File(path) => nats::SecretSource::File(path),
        }
    }
}

impl From<wit::AckKind> for nats::AckKind {
    fn from(kind: wit::AckKind) -> Self {
        match kind {
            wit::AckKind::Ack => nats::AckKind::Ack,
            wit::AckKind::Nak(delay_ns) => nats::AckKind::Nak(delay_ns),
            wit::AckKind::InProgress => nats::AckKind::InProgress,
            wit::AckKind::Term => nats::AckKind::Term,
        }
    }
}

impl From<nats::Delivery> for wit::Delivery {
    fn from(delivery: nats::Delivery) -> Self {
        let nats::Delivery {
            token,
            headers,
            delivered,
        } = delivery;
        wit::Delivery {
            token,
            headers,
            delivered,
        }
    }
}

/// A sandbox refusal as the component gets it (by way of the transport's error, which
/// says how a refusal is classified).
pub(super) fn refusal(refusal: Refusal) -> wit::TransportError {
    TransportError::from(refusal).into()
}

impl From<TransportError> for wit::TransportError {
    fn from(err: TransportError) -> Self {
        match err {
            TransportError::Connection(text) => wit::TransportError::Connection(text),
            TransportError::TimedOut(text) => wit::TransportError::TimedOut(text),
            TransportError::NoResponders(text) => wit::TransportError::NoResponders(text),
            TransportError::Jetstream(nats::ApiError {
                status,
                code,
                description,
            }) => wit::TransportError::Jetstream(wit::ApiError {
                status,
                code,
                description,
            }),
            TransportError::Denied(text) => wit::TransportError::Denied(text),
            TransportError::Refused(text) => wit::TransportError::Refused(text),
            TransportError::Invalid(text) => wit::TransportError::Invalid(text),
            TransportError::Other(text) => wit::TransportError::Other(text),
        }
    }
}
