//! The wit-bindgen adapter: exports Dapr's PubSub contract by delegating to the pure
//! modules, and executes their decisions through the host's transport. Generated types
//! go no further than this file.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::binding::{self, ExistingConsumer};
use crate::consumer::{ConsumerPlan, plan_consumer};
use crate::disposition::{self, Answer, Outcome};
use crate::metadata::{self, AckPolicy, Concurrency, DeliverPolicy, Metadata};
use crate::{message, publish};

wit_bindgen::generate!({
    path: "../wit",
    world: "jetstream-pubsub",
});

use dapr::jetstream::app;
use dapr::jetstream::transport::{self, Connection, TransportError};
use dapr::jetstream::types::{
    AppStatus, BulkEntryResult, BulkPublishRequest, Error, NewMessage, PublishAck, PublishRequest,
    SubscribeRequest,
};
use exports::dapr::jetstream::pubsub::Guest;

/// Timeout for JetStream API requests and publish acknowledgements (the reference's 5 s).
const REQUEST_TIMEOUT_MS: u32 = 5_000;

/// Where the component is in its life.
enum Phase {
    /// `init` has not succeeded yet.
    Uninitialized,
    /// Connected and serving.
    Ready(Box<Ready>),
    /// `close` was called.
    Closed,
}

struct Ready {
    metadata: Metadata,
    connection: Connection,
    subscriptions: BTreeMap<u64, Subscribed>,
    next_id: u64,
}

/// One live subscription.
struct Subscribed {
    topic: String,
    subscription: transport::Subscription,
    consumer: transport::ConsumerInfo,
}

thread_local! {
    static PHASE: RefCell<Phase> = const { RefCell::new(Phase::Uninitialized) };
}

struct Component;

export!(Component);

fn with_ready<T>(f: impl FnOnce(&mut Ready) -> Result<T, Error>) -> Result<T, Error> {
    PHASE.with(|phase| match &mut *phase.borrow_mut() {
        Phase::Ready(ready) => f(ready),
        Phase::Uninitialized => Err(Error::Terminal("component is not initialized".into())),
        Phase::Closed => Err(Error::Terminal("component is closed".into())),
    })
}

impl Guest for Component {
    fn init(metadata: Vec<(String, String)>) -> Result<(), Error> {
        let parsed =
            metadata::parse(&metadata).map_err(|err| Error::InvalidMetadata(err.to_string()))?;
        let connection =
            Connection::connect(&connect_options(&parsed)).map_err(|err| connect_error(&err))?;
        PHASE.with(|phase| {
            *phase.borrow_mut() = Phase::Ready(Box::new(Ready {
                metadata: parsed,
                connection,
                subscriptions: BTreeMap::new(),
                next_id: 1,
            }))
        });
        Ok(())
    }

    fn connection_options(
        metadata: Vec<(String, String)>,
    ) -> Result<transport::ConnectOptions, Error> {
        let parsed =
            metadata::parse(&metadata).map_err(|err| Error::InvalidMetadata(err.to_string()))?;
        Ok(connect_options(&parsed))
    }

    fn features() -> Vec<String> {
        vec!["BULK_PUBSUB".to_string(), "SUBSCRIBE_WILDCARDS".to_string()]
    }

    fn publish(request: PublishRequest) -> Result<PublishAck, Error> {
        with_ready(|ready| {
            let message = outbound(
                &request.topic,
                &request.data,
                request.content_type.as_deref(),
            );
            ready
                .connection
                .publish(&message)
                .map(pub_ack)
                .map_err(|err| publish_error(&request.topic, &err))
        })
    }

    fn bulk_publish(request: BulkPublishRequest) -> Result<Vec<BulkEntryResult>, Error> {
        with_ready(|ready| {
            let messages: Vec<_> = request
                .entries
                .iter()
                .map(|e| outbound(&request.topic, &e.data, e.content_type.as_deref()))
                .collect();
            let acks = ready.connection.publish_batch(&messages);
            Ok(request
                .entries
                .into_iter()
                .zip(acks)
                .map(|(entry, ack)| BulkEntryResult {
                    entry_id: entry.entry_id,
                    outcome: ack
                        .map(pub_ack)
                        .map_err(|err| publish_error(&request.topic, &err)),
                })
                .collect())
        })
    }

    fn subscribe(request: SubscribeRequest) -> Result<u64, Error> {
        with_ready(|ready| {
            let topic = request.topic;
            let stream = match &ready.metadata.stream_name {
                Some(stream) => stream.clone(),
                None => match ready.connection.stream_by_subject(&topic) {
                    Ok(Some(stream)) => stream,
                    Ok(None) => {
                        return Err(Error::Retriable(format!(
                            "no stream matches subject {topic}"
                        )));
                    }
                    Err(err) => {
                        return Err(transport_error(
                            &format!("looking up the stream for {topic}"),
                            &err,
                        ));
                    }
                },
            };
            let plan = plan_consumer(&ready.metadata, &topic);
            let (consumer, deliver_subject) = bind_or_create(ready, &stream, &topic, &plan)?;
            let subscription = ready
                .connection
                .subscribe(&deliver_subject, plan.deliver_group.as_deref())
                .map_err(|err| transport_error(&format!("subscribing to {topic}"), &err))?;
            if let Some(interval) = keep_alive_interval(&plan) {
                subscription.keep_alive(interval);
            }
            let id = ready.next_id;
            ready.next_id += 1;
            ready.subscriptions.insert(
                id,
                Subscribed {
                    topic,
                    subscription,
                    consumer,
                },
            );
            Ok(id)
        })
    }

    fn consumer(subscription: u64) -> Result<transport::ConsumerInfo, Error> {
        with_ready(|ready| Ok(subscribed(ready, subscription)?.consumer.clone()))
    }

    fn pump(subscription: u64, max_messages: u32, wait_ms: u32) -> Result<u32, Error> {
        with_ready(|ready| {
            let (ack_policy, ack_wait, concurrency) = (
                ready.metadata.ack_policy,
                ready.metadata.ack_wait,
                ready.metadata.concurrency,
            );
            let in_flight_limit = match ready.metadata.max_ack_pending {
                n if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
                _ => 1_000,
            };
            let subscribed = subscribed(ready, subscription)?;
            let max = match concurrency {
                Concurrency::Single => max_messages,
                Concurrency::Parallel => max_messages.min(in_flight_limit),
            };
            let batch = subscribed
                .subscription
                .next_batch(max.max(1), wait_ms)
                .map_err(|err| {
                    transport_error(&format!("receiving on {}", subscribed.topic), &err)
                })?;
            let count = batch.len() as u32;
            let messages: Vec<NewMessage> = batch
                .iter()
                .map(|delivery| new_message(&subscribed.topic, delivery))
                .collect();
            let answer = |token: u64, status: AppStatus| {
                disposition::decide(outcome(status), ack_policy, ack_wait)
                    .map(|a| (token, ack_kind(a)))
            };
            match concurrency {
                Concurrency::Single => {
                    // One at a time, in order; each answered as soon as it is handled.
                    for (delivery, message) in batch.iter().zip(&messages) {
                        let status = app::deliver(subscription, message);
                        if let Some(reply) = answer(delivery.token, status) {
                            send_answers(subscribed, &[reply])?;
                        }
                    }
                }
                Concurrency::Parallel => {
                    let statuses = app::deliver_batch(subscription, &messages);
                    let replies: Vec<_> = batch
                        .iter()
                        .zip(statuses)
                        .filter_map(|(delivery, status)| answer(delivery.token, status))
                        .collect();
                    send_answers(subscribed, &replies)?;
                }
            }
            Ok(count)
        })
    }

    fn unsubscribe(subscription: u64) -> Result<(), Error> {
        with_ready(|ready| {
            let subscribed = ready.subscriptions.remove(&subscription).ok_or_else(|| {
                Error::Terminal(format!("no subscription with id {subscription}"))
            })?;
            subscribed
                .subscription
                .unsubscribe()
                .map_err(|err| transport_error("unsubscribing", &err))
        })
    }

    fn close() -> Result<(), Error> {
        let previous =
            PHASE.with(|phase| std::mem::replace(&mut *phase.borrow_mut(), Phase::Closed));
        if let Phase::Ready(ready) = previous {
            for (_, subscribed) in ready.subscriptions {
                let _ = subscribed.subscription.unsubscribe();
            }
            ready
                .connection
                .flush()
                .map_err(|err| transport_error("flushing on close", &err))?;
        }
        Ok(())
    }
}

fn subscribed(ready: &mut Ready, id: u64) -> Result<&mut Subscribed, Error> {
    ready
        .subscriptions
        .get_mut(&id)
        .ok_or_else(|| Error::Terminal(format!("no subscription with id {id}")))
}

fn send_answers(
    subscribed: &Subscribed,
    replies: &[(u64, transport::AckKind)],
) -> Result<(), Error> {
    if replies.is_empty() {
        return Ok(());
    }
    subscribed
        .subscription
        .ack(replies)
        .map_err(|err| transport_error(&format!("acknowledging on {}", subscribed.topic), &err))
}

/// Finds the durable to join, or creates the consumer the plan describes.
fn bind_or_create(
    ready: &Ready,
    stream: &str,
    topic: &str,
    plan: &ConsumerPlan,
) -> Result<(transport::ConsumerInfo, String), Error> {
    let mut config = consumer_config(plan);
    if let Some(durable) = &plan.durable_name {
        let existing = ready
            .connection
            .consumer_info(stream, durable)
            .map_err(|err| {
                transport_error(
                    &format!("consumer info of {durable:?} on stream {stream:?}"),
                    &err,
                )
            })?;
        if let Some(existing) = existing {
            let deliver_subject = binding::check(
                &existing_consumer(&existing),
                topic,
                plan.deliver_group.as_deref(),
            )
            .map_err(|err| Error::Terminal(err.to_string()))?;
            // Same durable, maybe new settings: update in place where the server allows it,
            // keeping the deliver subject its other subscribers listen on.
            config.deliver_subject = Some(deliver_subject.clone());
            let info = ready.connection.create_consumer(stream, &config).map_err(|err| match err {
                TransportError::Jetstream(api) => Error::Terminal(format!(
                    "consumer name already in use: creating consumer {durable:?} on stream {stream:?}: {}",
                    api.description
                )),
                other => transport_error("updating the consumer", &other),
            })?;
            return Ok((info, deliver_subject));
        }
    }
    let info = ready
        .connection
        .create_consumer(stream, &config)
        .map_err(|err| {
            transport_error(
                &format!("creating a consumer on stream {stream:?} for {topic}"),
                &err,
            )
        })?;
    let deliver_subject = info.config.deliver_subject.clone().ok_or_else(|| {
        Error::Terminal(format!(
            "the server created consumer {:?} without a deliver subject",
            info.name
        ))
    })?;
    Ok((info, deliver_subject))
}

/// Half the ack wait the server applies (JetStream: the first backoff step when there is a
/// backoff, else `ackWait`, else 30 s): a delivery still unanswered then gets `+WPI`, so a
/// long handler is not redelivered under its feet. None with ack policy `none`.
fn keep_alive_interval(plan: &ConsumerPlan) -> Option<u32> {
    if plan.ack_policy == AckPolicy::None {
        return None;
    }
    let ack_wait = match (plan.backoff.first(), plan.ack_wait) {
        (Some(first), _) => *first,
        (None, wait) if !wait.is_zero() => wait,
        _ => Duration::from_secs(30),
    };
    Some(
        u32::try_from((ack_wait / 2).as_millis())
            .unwrap_or(u32::MAX)
            .max(1),
    )
}

fn existing_consumer(info: &transport::ConsumerInfo) -> ExistingConsumer {
    ExistingConsumer {
        name: info.name.clone(),
        filter_subject: info.config.filter_subject.clone(),
        deliver_subject: info.config.deliver_subject.clone(),
        deliver_group: info.config.deliver_group.clone(),
        push_bound: info.push_bound,
    }
}

fn outbound(topic: &str, data: &[u8], content_type: Option<&str>) -> transport::OutboundMessage {
    transport::OutboundMessage {
        subject: topic.to_string(),
        headers: publish::headers(data, content_type),
        payload: data.to_vec(),
    }
}

fn new_message(topic: &str, delivery: &transport::Delivery) -> NewMessage {
    let (metadata, content_type) = message::metadata(&delivery.subject, &delivery.headers);
    NewMessage {
        topic: topic.to_string(),
        data: delivery.payload.clone(),
        content_type,
        metadata,
    }
}

fn pub_ack(ack: transport::PubAck) -> PublishAck {
    PublishAck {
        stream: ack.stream,
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    }
}

fn outcome(status: AppStatus) -> Outcome {
    match status {
        AppStatus::Success => Outcome::Success,
        AppStatus::Retry => Outcome::Retry,
        AppStatus::Drop => Outcome::Drop,
    }
}

fn ack_kind(answer: Answer) -> transport::AckKind {
    match answer {
        Answer::Ack => transport::AckKind::Ack,
        Answer::Nak(delay) => transport::AckKind::Nak(delay.map(nanos)),
        Answer::Term => transport::AckKind::Term,
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The connection the metadata describes. Auth precedence is the reference's: JWT and
/// seed, else client certificate, else token.
fn connect_options(metadata: &Metadata) -> transport::ConnectOptions {
    let pem_or_path = |value: &str| {
        if value.contains("-----BEGIN") {
            transport::SecretSource::Inline(value.to_string())
        } else {
            transport::SecretSource::File(value.to_string())
        }
    };
    let auth = match (&metadata.jwt, &metadata.seed_key, &metadata.token) {
        (Some(jwt), Some(seed), _) => transport::Auth::Jwt(transport::JwtCredentials {
            jwt: jwt.expose().to_string(),
            seed: seed.expose().to_string(),
        }),
        _ if metadata.tls_client_cert.is_some() && metadata.tls_client_key.is_some() => {
            transport::Auth::None
        }
        (_, _, Some(token)) => transport::Auth::Token(token.expose().to_string()),
        _ => transport::Auth::None,
    };
    let (client_cert, client_key) = match (&metadata.tls_client_cert, &metadata.tls_client_key) {
        (Some(cert), Some(key)) => (
            Some(pem_or_path(cert.expose())),
            Some(pem_or_path(key.expose())),
        ),
        _ => (None, None),
    };
    transport::ConnectOptions {
        servers: metadata.servers.clone(),
        name: metadata.name.clone(),
        auth,
        tls: transport::TlsOptions {
            required: false,
            client_cert,
            client_key,
            ca: None,
        },
        api_prefix: metadata.api_prefix(),
        request_timeout_ms: REQUEST_TIMEOUT_MS,
    }
}

/// A consumer plan as the transport's consumer configuration.
fn consumer_config(plan: &ConsumerPlan) -> transport::ConsumerConfig {
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

fn connect_error(err: &TransportError) -> Error {
    match err {
        TransportError::Invalid(text)
        | TransportError::Refused(text)
        | TransportError::Denied(text) => Error::Terminal(text.clone()),
        other => Error::Retriable(describe(other)),
    }
}

/// A publish failure: retriable unless the request itself is at fault (the reference
/// classifies every broker error as retriable, components-contrib#4395).
fn publish_error(topic: &str, err: &TransportError) -> Error {
    match err {
        TransportError::NoResponders(_) => Error::Retriable(format!(
            "no stream matches subject {topic}: nothing stored the message"
        )),
        TransportError::Invalid(text)
        | TransportError::Refused(text)
        | TransportError::Denied(text) => Error::Terminal(text.clone()),
        other => Error::Retriable(format!("publish to {topic}: {}", describe(other))),
    }
}

fn transport_error(what: &str, err: &TransportError) -> Error {
    match err {
        TransportError::Invalid(_)
        | TransportError::Refused(_)
        | TransportError::Denied(_)
        | TransportError::Jetstream(_) => Error::Terminal(format!("{what}: {}", describe(err))),
        _ => Error::Retriable(format!("{what}: {}", describe(err))),
    }
}

fn describe(err: &TransportError) -> String {
    match err {
        TransportError::Connection(text)
        | TransportError::TimedOut(text)
        | TransportError::NoResponders(text)
        | TransportError::Denied(text)
        | TransportError::Refused(text)
        | TransportError::Invalid(text)
        | TransportError::Other(text) => text.clone(),
        TransportError::Jetstream(api) => format!(
            "{} (status {}, code {})",
            api.description, api.status, api.code
        ),
    }
}
