//! The wit-bindgen adapter: exports Dapr's PubSub contract by delegating to the pure
//! modules, and executes their decisions through the host's transport. Generated types
//! go no further than this module and its [`convert`] child.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::attach::{self, ConsumerApi, Target};
use crate::binding::ExistingConsumer;
use crate::consumer::{ConsumerPlan, plan_consumer};
use crate::disposition::Redelivery;
use crate::failure::{self, TransportFailure};
use crate::message::TOPIC_KEY;
use crate::metadata::{self, Concurrency, Metadata};
use crate::publish;
use crate::watch::{self, Checked, IdlePumps};
use convert::{
    batch_entry, call_error, connect_error, connect_options, consumer_config, new_message,
    outbound, publish_error,
};

mod convert;

wit_bindgen::generate!({
    path: "../wit",
    world: "jetstream-pubsub",
});

use dapr::jetstream::app::{self, NewMessage};
use dapr::jetstream::log::{Level, log};
use dapr::jetstream::transport::{self, Connection, PendingAck, TransportError};
use dapr::jetstream::types::{BulkPublishRequest, Error, PublishRequest, SubscribeRequest};
use exports::dapr::jetstream::pubsub::{BulkSent, Guest};

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
    stream: String,
    plan: ConsumerPlan,
    redelivery: Redelivery,
    subscription: transport::Subscription,
    consumer: transport::ConsumerInfo,
    /// Pumps in a row that found nothing: now and then the consumer is looked up, so one
    /// deleted under the subscription is noticed and recreated.
    idle_pumps: IdlePumps,
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
        // Two credentials configured: the reference ignores one silently; we say which.
        for warning in parsed.credentials().warnings() {
            log(Level::Warn, &warning);
        }
        let connection = Connection::connect(&connect_options(&parsed)).map_err(connect_error)?;
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

    fn publish(request: PublishRequest) -> Result<PendingAck, Error> {
        with_ready(|ready| {
            let PublishRequest {
                topic,
                data,
                content_type,
                metadata,
            } = request;
            let message = outbound(topic, data, content_type.as_deref(), &metadata)?;
            #[cfg(feature = "fault-injection")]
            if message.payload.starts_with(b"fault:hoard") {
                return Err(hoard_pending_acks(&ready.connection, &message));
            }
            ready
                .connection
                .send(&message)
                .map_err(|err| publish_error(&message.subject, err))
        })
    }

    fn publish_failed(topic: String, failure: TransportError) -> Error {
        #[cfg(feature = "fault-injection")]
        if topic.starts_with("fault.verdict") {
            panic!("fault injection: trap while judging a failed publish");
        }
        publish_error(&topic, failure)
    }

    fn bulk_publish(request: BulkPublishRequest) -> Result<BulkSent, Error> {
        with_ready(|ready| {
            let BulkPublishRequest {
                topic,
                entries,
                metadata: shared,
            } = request;
            // Entries that cannot become a message fail alone; the rest go out together.
            // Payloads move, they are not copied.
            let mut refused = Vec::new();
            let count = entries.len();
            let mut sendable = Vec::with_capacity(count);
            for (index, entry) in (0u32..).zip(entries) {
                let merged;
                let metadata = if shared.is_empty() {
                    &entry.metadata
                } else {
                    merged = [shared.as_slice(), entry.metadata.as_slice()].concat();
                    &merged
                };
                match batch_entry(entry.data, entry.content_type.as_deref(), metadata) {
                    Ok(message) => sendable.push(message),
                    Err(err) => refused.push((index, err)),
                }
            }
            let sent = if sendable.is_empty() {
                None
            } else {
                match ready.connection.send_batch(&topic, &sendable) {
                    Ok(sent) => Some(sent),
                    // The host sent nothing: every entry that was to go out fails alike.
                    Err(refusal) => {
                        let err = publish_error(&topic, refusal);
                        refused = publish::refuse_batch(count, refused, &err);
                        None
                    }
                }
            };
            Ok(BulkSent { sent, refused })
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
                        let what = format!("looking up the stream for {topic}");
                        let api_prefix = || ready.metadata.api_prefix();
                        return Err(failure::api_error(&what, &err.into(), api_prefix).into());
                    }
                },
            };
            let plan = plan_consumer(&ready.metadata, &topic);
            let consumers = Consumers {
                connection: &ready.connection,
                metadata: &ready.metadata,
            };
            let target = Target {
                stream: &stream,
                topic: &topic,
                plan: &plan,
            };
            let resumed = match &request.resume_consumer {
                Some(name) => attach::resume(&consumers, &target, name)?,
                None => None,
            };
            let (consumer, subscription) = match resumed {
                Some(resumed) => resumed,
                None => attach::listen(&consumers, &target)?,
            };
            if let Some(interval) = plan.keep_alive_interval_ms() {
                subscription.keep_alive(interval);
            }
            let redelivery = Redelivery::from_metadata(&ready.metadata);
            let hand_back = redelivery.hand_back();
            subscription.hand_back(
                hand_back.untaken.map(convert::ack_kind),
                hand_back.suspect.map(convert::ack_kind),
            );
            let id = ready.next_id;
            ready.next_id += 1;
            ready.subscriptions.insert(
                id,
                Subscribed {
                    topic,
                    stream,
                    plan,
                    redelivery,
                    subscription,
                    consumer,
                    idle_pumps: IdlePumps::default(),
                },
            );
            Ok(id)
        })
    }

    fn consumer(subscription: u64) -> Result<transport::ConsumerInfo, Error> {
        with_ready(|ready| {
            Ok(subscribed(&mut ready.subscriptions, subscription)?
                .consumer
                .clone())
        })
    }

    fn pump(subscription: u64, max_messages: u32, wait_ms: u32) -> Result<u32, Error> {
        with_ready(|ready| {
            let concurrency = ready.metadata.concurrency;
            let subscribed = subscribed(&mut ready.subscriptions, subscription)?;
            let in_flight_limit = subscribed.plan.in_flight_limit();
            let max = match concurrency {
                Concurrency::Single => max_messages,
                Concurrency::Parallel => max_messages.min(in_flight_limit),
            };
            let batch = subscribed
                .subscription
                .next_batch(max.max(1), wait_ms)
                .map_err(|err| call_error(&format!("receiving on {}", subscribed.topic), err))?;
            if batch.is_empty() {
                return watch_consumer(ready, subscription).map(|()| 0);
            }
            let subscribed = self::subscribed(&mut ready.subscriptions, subscription)?;
            subscribed.idle_pumps.reset();
            let count = batch.len() as u32;
            // Headers move into the messages, with the answer to each status decided here;
            // the subjects and payloads stay with the host, which answers each message the
            // moment its handler finishes.
            let messages: Vec<NewMessage> = batch
                .into_iter()
                .map(|delivery| new_message(&subscribed.redelivery, delivery))
                .collect();
            #[cfg(feature = "fault-injection")]
            inject_faults(subscribed, &messages);
            let (source, topic) = (&subscribed.subscription, subscribed.topic.as_str());
            match concurrency {
                // One at a time, in order.
                Concurrency::Single => app::deliver_in_order(source, topic, TOPIC_KEY, &messages),
                // Each message is answered after its own handler finished: never on
                // receipt, as the reference's auto-ack does (components-contrib#3656).
                Concurrency::Parallel => {
                    app::deliver_batch(source, topic, TOPIC_KEY, &messages, in_flight_limit)
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
                .map_err(|err| call_error("unsubscribing", err))
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
                .map_err(|err| call_error("flushing on close", err))?;
        }
        Ok(())
    }
}

fn subscribed(
    subscriptions: &mut BTreeMap<u64, Subscribed>,
    id: u64,
) -> Result<&mut Subscribed, Error> {
    subscriptions
        .get_mut(&id)
        .ok_or_else(|| Error::Terminal(format!("no subscription with id {id}")))
}

/// The connection's consumer calls, for [`attach`] and [`watch`]; the metadata names the
/// API prefix in errors.
struct Consumers<'a> {
    connection: &'a Connection,
    metadata: &'a Metadata,
}

impl ConsumerApi for Consumers<'_> {
    type Info = transport::ConsumerInfo;
    type Listener = transport::Subscription;

    fn consumer_info(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<Option<transport::ConsumerInfo>, TransportFailure> {
        Ok(self.connection.consumer_info(stream, name)?)
    }

    fn create_consumer(
        &self,
        stream: &str,
        plan: &ConsumerPlan,
        deliver_subject: Option<&str>,
    ) -> Result<transport::ConsumerInfo, TransportFailure> {
        let mut config = consumer_config(plan);
        config.deliver_subject = deliver_subject.map(str::to_string);
        Ok(self.connection.create_consumer(stream, &config)?)
    }

    fn listen(
        &self,
        deliver_subject: &str,
        queue_group: Option<&str>,
    ) -> Result<transport::Subscription, TransportFailure> {
        Ok(self.connection.subscribe(deliver_subject, queue_group)?)
    }

    fn unsubscribe(&self, listener: &transport::Subscription) -> Result<(), TransportFailure> {
        Ok(listener.unsubscribe()?)
    }

    fn existing(info: &transport::ConsumerInfo) -> ExistingConsumer {
        convert::existing_consumer(info)
    }

    fn api_prefix(&self) -> String {
        self.metadata.api_prefix()
    }
}

/// Called after an empty pump: now and then, checks that the consumer still exists
/// ([`watch::check_consumer`]), and logs what was done about it.
fn watch_consumer(ready: &mut Ready, id: u64) -> Result<(), Error> {
    let Ready {
        metadata,
        connection,
        subscriptions,
        ..
    } = ready;
    let subscribed = subscribed(subscriptions, id)?;
    if !subscribed.idle_pumps.empty() {
        return Ok(());
    }
    let consumers = Consumers {
        connection,
        metadata,
    };
    let checked = watch::check_consumer(
        &consumers,
        &subscribed.stream,
        &subscribed.topic,
        &subscribed.plan,
        &subscribed.consumer,
    )?;
    match checked {
        Checked::Unchanged => {}
        Checked::Recreated { consumer, warning } => {
            log(Level::Warn, &warning);
            subscribed.consumer = consumer;
        }
        Checked::NotRecreated { warning } => log(Level::Warn, &warning),
    }
    Ok(())
}

/// The fault-injection build reads each payload (the shipped component never does) and
/// misbehaves as it asks, before the messages reach the application.
#[cfg(feature = "fault-injection")]
fn inject_faults(subscribed: &Subscribed, messages: &[NewMessage]) {
    for message in messages {
        if let Some(payload) = subscribed.subscription.payload(message.delivery) {
            crate::fault::inject(&payload);
        }
    }
}

/// The fault-injection build, asked to publish `fault:hoard`, sends the message again and
/// again and never hands a pending ack back, until the host refuses a send.
#[cfg(feature = "fault-injection")]
fn hoard_pending_acks(connection: &Connection, message: &transport::OutboundMessage) -> Error {
    loop {
        match connection.send(message) {
            Ok(pending) => std::mem::forget(pending),
            Err(refusal) => return publish_error(&message.subject, refusal),
        }
    }
}
