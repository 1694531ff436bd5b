//! The embedder's face of the component: publish, subscribe with an async handler,
//! stop, close.
//!
//! ```no_run
//! # async fn demo() -> Result<(), jetstream_pubsub_host::Error> {
//! use jetstream_pubsub_host::{AppStatus, Message, Runtime};
//! let runtime = Runtime::new()?;
//! let pubsub = runtime.pubsub(vec![("natsURL".into(), "nats://127.0.0.1:4222".into())]).await?;
//! let subscription = pubsub
//!     .subscribe("orders", |message: Message| async move {
//!         println!("{}", String::from_utf8_lossy(&message.data));
//!         AppStatus::Success
//!     })
//!     .await?;
//! pubsub.publish("orders", b"hello".to_vec()).await?;
//! subscription.stop().await?;
//! pubsub.close().await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::app::{Handler, no_subscriber};
use crate::bindings::{pubsub, transport, types};
use crate::error::Error;
use crate::runtime::{Instance, Runtime};
use crate::transport::{FailedPublish, Handover, PendingBatch};

/// Component metadata: the `spec.metadata` name/value pairs of a Dapr Component.
pub type Metadata = Vec<(String, String)>;

/// What the stream answered for a published message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PublishAck {
    /// The stream that stored it.
    pub stream: String,
    /// Its stream sequence.
    pub sequence: u64,
    /// True when the stream already had this message id (nothing new was stored).
    pub duplicate: bool,
}

impl From<async_nats::jetstream::publish::PublishAck> for PublishAck {
    fn from(ack: async_nats::jetstream::publish::PublishAck) -> Self {
        Self {
            stream: ack.stream,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        }
    }
}

/// A message to publish, with everything Dapr's `PublishRequest` carries.
#[derive(Debug, Clone, Default)]
pub struct PublishRequest {
    /// The subject.
    pub topic: String,
    /// The payload.
    pub data: Vec<u8>,
    /// MIME type of the payload.
    pub content_type: Option<String>,
    /// Request metadata.
    pub metadata: Metadata,
}

/// One entry of a bulk publish.
#[derive(Debug, Clone, Default)]
pub struct BulkEntry {
    /// Caller-chosen id, returned with the entry's result.
    pub entry_id: String,
    /// The payload.
    pub data: Vec<u8>,
    /// MIME type of the payload.
    pub content_type: Option<String>,
    /// Entry metadata.
    pub metadata: Metadata,
}

/// The outcome of one bulk entry.
#[derive(Debug)]
pub struct BulkEntryResult {
    /// The entry's id.
    pub entry_id: String,
    /// Its PubAck, or why it was not stored.
    pub outcome: Result<PublishAck, Error>,
}

/// Connection settings as the component resolved them from the metadata, for host-side
/// work (provisioning streams) with the same servers and credentials.
#[derive(Clone)]
pub struct ConnectionSettings(
    pub(crate) transport::ConnectOptions,
    /// The sandbox policy the connection is opened under: the runtime's, for settings the
    /// component described; none for settings the user gave (`from_url`).
    pub(crate) Arc<crate::sandbox::SandboxPolicy>,
);

impl std::fmt::Debug for ConnectionSettings {
    // Credentials are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field(
                "servers",
                &crate::transport::redacted_servers(&self.0.servers),
            )
            .field("name", &self.0.name)
            .field("api_prefix", &self.0.api_prefix)
            .finish_non_exhaustive()
    }
}

impl ConnectionSettings {
    /// Plain settings for a server URL list, no credentials.
    pub fn from_url(url: &str) -> Self {
        Self(
            transport::ConnectOptions {
                servers: url
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
                name: "jetstream-pubsub".into(),
                auth: transport::Auth::None,
                tls: transport::TlsOptions {
                    required: false,
                    client_cert: None,
                    client_key: None,
                    ca: None,
                },
                api_prefix: "$JS.API".into(),
                request_timeout_ms: 5_000,
            },
            Arc::default(),
        )
    }

    /// The servers, with any user info masked.
    pub fn servers(&self) -> String {
        crate::transport::redacted_servers(&self.0.servers)
    }
}

/// The consumer a subscription is bound to, as the server reported it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsumerSummary {
    /// The stream.
    pub stream: String,
    /// The consumer's name.
    pub name: String,
    /// Its configuration, as JetStream field names and values.
    pub config: serde_json::Value,
}

impl From<transport::ConsumerInfo> for ConsumerSummary {
    fn from(info: transport::ConsumerInfo) -> Self {
        let c = info.config;
        let deliver_policy = match c.deliver_policy {
            transport::DeliverPolicy::All => serde_json::json!({"deliver_policy": "all"}),
            transport::DeliverPolicy::Last => serde_json::json!({"deliver_policy": "last"}),
            transport::DeliverPolicy::New => serde_json::json!({"deliver_policy": "new"}),
            transport::DeliverPolicy::LastPerSubject => {
                serde_json::json!({"deliver_policy": "last_per_subject"})
            }
            transport::DeliverPolicy::ByStartSequence(seq) => {
                serde_json::json!({"deliver_policy": "by_start_sequence", "opt_start_seq": seq})
            }
            transport::DeliverPolicy::ByStartTime(ns) => {
                serde_json::json!({"deliver_policy": "by_start_time", "opt_start_time_ns": ns})
            }
        };
        let mut config = serde_json::json!({
            "durable_name": c.durable_name,
            "deliver_subject": c.deliver_subject,
            "deliver_group": c.deliver_group,
            "ack_policy": match c.ack_policy { transport::AckPolicy::Explicit => "explicit", transport::AckPolicy::All => "all", transport::AckPolicy::None => "none" },
            "ack_wait_ns": c.ack_wait_ns,
            "max_deliver": c.max_deliver,
            "backoff_ns": c.backoff_ns,
            "max_ack_pending": c.max_ack_pending,
            "filter_subject": c.filter_subject,
            "rate_limit_bps": c.rate_limit_bps,
            "idle_heartbeat_ns": c.idle_heartbeat_ns,
            "flow_control": c.flow_control,
            "num_replicas": c.num_replicas,
            "mem_storage": c.memory_storage,
        });
        if let (Some(config), serde_json::Value::Object(policy)) =
            (config.as_object_mut(), deliver_policy)
        {
            config.extend(policy);
        }
        Self {
            stream: info.stream_name,
            name: info.name,
            config,
        }
    }
}

impl Runtime {
    /// A component instance initialised with `metadata` (Dapr's `Init`), for publishing and
    /// as the parent of subscriptions.
    pub async fn pubsub(&self, metadata: Metadata) -> Result<PubSub, Error> {
        let instance = self.initialised(no_subscriber(), &metadata).await?;
        Ok(PubSub {
            runtime: self.clone(),
            metadata,
            publisher: Mutex::new(Publisher {
                instance,
                poisoned: false,
            }),
            live: std::sync::Mutex::default(),
        })
    }

    /// The connection settings `metadata` describes, without connecting.
    pub async fn connection_settings(
        &self,
        metadata: &Metadata,
    ) -> Result<ConnectionSettings, Error> {
        let (_never, stop) = watch::channel(false);
        let mut instance = self.instantiate(no_subscriber(), stop).await?;
        let (api, store) = instance.call();
        let options = api.call_connection_options(store, metadata).await??;
        Ok(ConnectionSettings(options, self.shared.policy.clone()))
    }

    /// A fresh instance delivering to `handler`, initialised with `metadata`.
    async fn initialised(
        &self,
        handler: Arc<dyn Handler>,
        metadata: &Metadata,
    ) -> Result<Instance, Error> {
        self.initialised_with_stop(handler, metadata, watch::channel(false).1)
            .await
    }

    async fn initialised_with_stop(
        &self,
        handler: Arc<dyn Handler>,
        metadata: &Metadata,
        stop: watch::Receiver<bool>,
    ) -> Result<Instance, Error> {
        let mut instance = self.instantiate(handler, stop).await?;
        let (api, store) = instance.call();
        api.call_init(store, metadata).await??;
        Ok(instance)
    }
}

/// The instance that publishes. A trap poisons an instance ("cannot enter component
/// instance"); the next call gets a fresh, re-initialised one.
struct Publisher {
    instance: Instance,
    poisoned: bool,
}

impl Publisher {
    /// A component that keeps pending acks instead of handing them back would, once it
    /// holds the host's limit, have every later publish refused: its instance is replaced
    /// on the next call instead, as after a trap.
    fn replace_if_keeping_pending_acks(&mut self) {
        let kept = self.instance.store.data().pending_acks();
        if kept > 0 {
            tracing::warn!(
                kept,
                "the component kept pending acks it never handed back; its instance will be replaced"
            );
            self.poisoned = true;
        }
    }
}

/// An initialised component: Dapr's `PubSub`.
pub struct PubSub {
    runtime: Runtime,
    metadata: Metadata,
    publisher: Mutex<Publisher>,
    /// The subscriptions made from this component, so `close` can stop them all.
    live: std::sync::Mutex<Vec<Live>>,
}

/// What `close` needs of a running subscription.
struct Live {
    flow: Arc<Flow>,
    finished: watch::Receiver<bool>,
}

/// The signals that stop or pause a subscription's pump.
struct Flow {
    /// True once the subscription is stopping: the pump ends.
    stop: watch::Sender<bool>,
    /// True while no new message may be taken (paused, or stopping). It is the signal the
    /// instance sees, so a `pump` waiting for messages returns at once.
    hold: watch::Sender<bool>,
}

impl Flow {
    fn stop(&self) {
        let _ = self.stop.send(true);
        let _ = self.hold.send(true);
    }

    fn pause(&self) {
        let _ = self.hold.send(true);
    }

    /// Lets the pump take messages again, unless the subscription is stopping.
    fn resume(&self) {
        let stopping = self.stop.subscribe();
        self.hold.send_if_modified(|hold| {
            let resumed = *hold && !*stopping.borrow();
            if resumed {
                *hold = false;
            }
            resumed
        });
    }
}

/// The refusals of a bulk publish of `entries` entries, placed by entry, checked against
/// the `sent` messages: every entry is either refused or sent, in order.
fn refusals_by_entry(
    entries: usize,
    sent: usize,
    refused: Vec<(u32, types::Error)>,
) -> Result<Vec<Option<types::Error>>, Error> {
    if sent + refused.len() != entries {
        return Err(Error::Trap(format!(
            "the component sent {sent} messages and refused {} entries of a bulk publish of {entries}",
            refused.len()
        )));
    }
    let mut by_entry: Vec<Option<types::Error>> = (0..entries).map(|_| None).collect();
    for (index, refusal) in refused {
        match by_entry.get_mut(index as usize) {
            Some(slot @ None) => *slot = Some(refusal),
            _ => {
                return Err(Error::Trap(format!(
                    "the component refused entry {index} of a bulk publish of {entries} twice, or one that does not exist"
                )));
            }
        }
    }
    Ok(by_entry)
}

/// Records a trap on the publisher, so the next call replaces the instance.
fn note_trap<T>(publisher: &mut Publisher, result: wasmtime::Result<T>) -> Result<T, Error> {
    result.map_err(|trap| {
        publisher.poisoned = true;
        tracing::error!(error = %format!("{trap:#}"), "the component trapped; its instance will be replaced");
        Error::from(trap)
    })
}

impl PubSub {
    /// The publisher instance, replaced first if a trap poisoned it.
    async fn publisher(&self) -> Result<tokio::sync::MutexGuard<'_, Publisher>, Error> {
        let mut publisher = self.publisher.lock().await;
        if publisher.poisoned {
            publisher.instance = self
                .runtime
                .initialised(no_subscriber(), &self.metadata)
                .await?;
            publisher.poisoned = false;
        }
        Ok(publisher)
    }

    /// Dapr feature names the component reports.
    pub async fn features(&self) -> Result<Vec<String>, Error> {
        let mut publisher = self.publisher().await?;
        let (api, store) = publisher.instance.call();
        let result = api.call_features(store).await;
        note_trap(&mut publisher, result)
    }

    /// Publishes `data` on `topic` and waits for the stream's acknowledgement.
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<PublishAck, Error> {
        self.publish_request(PublishRequest {
            topic: topic.to_string(),
            data,
            ..Default::default()
        })
        .await
    }

    /// Publishes a full request (content type, metadata).
    pub async fn publish_request(&self, request: PublishRequest) -> Result<PublishAck, Error> {
        let PublishRequest {
            topic,
            data,
            content_type,
            metadata,
        } = request;
        let request = types::PublishRequest {
            topic,
            data,
            content_type,
            metadata,
        };
        let pending = {
            let mut publisher = self.publisher().await?;
            let (api, store) = publisher.instance.call();
            let sent = api.call_publish(store, &request).await;
            let taken = match note_trap(&mut publisher, sent)? {
                Ok(pending) => publisher
                    .instance
                    .store
                    .data_mut()
                    .take_pending_ack(pending)
                    .map(Ok),
                Err(refused) => Ok(Err(refused)),
            };
            publisher.replace_if_keeping_pending_acks();
            note_trap(&mut publisher, taken)??
        };
        // The instance is free again while the PubAck travels: other publishes go ahead.
        match pending.outcome().await {
            Ok(ack) => Ok(ack.into()),
            Err(failed) => Err(self.publish_failure(failed).await),
        }
    }

    /// What a publish whose PubAck failed reports: the component's verdict. Should the
    /// component be unable to give one (a trap, or an instance that cannot be re-created),
    /// the failure is reported as retriable with the host's text, rather than replaced by
    /// that other error: the message may or may not have been stored.
    async fn publish_failure(&self, failed: FailedPublish) -> Error {
        self.publish_verdict(failed).await.into()
    }

    /// The component's verdict on a failed publish, or the host's retriable fallback.
    async fn publish_verdict(&self, failed: FailedPublish) -> types::Error {
        let FailedPublish { subject, error } = failed;
        let verdict = async {
            let mut publisher = self.publisher().await?;
            let (api, store) = publisher.instance.call();
            let verdict = api.call_publish_failed(store, &subject, &error).await;
            note_trap(&mut publisher, verdict)
        }
        .await;
        match verdict {
            Ok(verdict) => verdict,
            Err(err) => {
                let failure = crate::transport::describe(&error);
                tracing::warn!(error = %err, failure = %failure, "the component gave no verdict on a failed publish; reported as retriable");
                types::Error::Retriable(failure)
            }
        }
    }

    /// Publishes many entries to `topic`, pipelined; one result per entry, in order.
    pub async fn bulk_publish(
        &self,
        topic: &str,
        entries: Vec<BulkEntry>,
        metadata: Metadata,
    ) -> Result<Vec<BulkEntryResult>, Error> {
        // The entry ids stay here and are paired with the outcomes, which come in order.
        let (entry_ids, entries): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .map(|e| {
                let entry = types::BulkEntry {
                    data: e.data,
                    content_type: e.content_type,
                    metadata: e.metadata,
                };
                (e.entry_id, entry)
            })
            .unzip();
        let request = types::BulkPublishRequest {
            topic: topic.to_string(),
            entries,
            metadata,
        };
        let (sent, refused) = {
            let mut publisher = self.publisher().await?;
            let (api, store) = publisher.instance.call();
            let result = api.call_bulk_publish(store, &request).await;
            let taken = match note_trap(&mut publisher, result)? {
                Ok(pubsub::BulkSent { sent, refused }) => match sent {
                    Some(sent) => publisher
                        .instance
                        .store
                        .data_mut()
                        .take_pending_batch(sent)
                        .map(|sent| Ok((Some(sent), refused))),
                    None => Ok(Ok((None, refused))),
                },
                Err(err) => Ok(Err(err)),
            };
            publisher.replace_if_keeping_pending_acks();
            let (sent, refused) = note_trap(&mut publisher, taken)??;
            let sent_count = sent.as_ref().map_or(0, PendingBatch::len);
            // A component that loses or invents entries is replaced like one that trapped.
            // What it did send may have been stored; the caller learns that the bulk failed.
            let refused = refusals_by_entry(entry_ids.len(), sent_count, refused)
                .inspect_err(|_| publisher.poisoned = true)?;
            (sent, refused)
        };
        // The instance is free again while the PubAcks travel.
        let mut acks = match sent {
            Some(sent) => sent.outcomes().await,
            None => Vec::new(),
        }
        .into_iter();
        // One verdict per distinct failure: a batch that failed as a whole (the stream
        // gone, the server away) costs one call into the component, not one per entry.
        let mut verdicts: Vec<(String, types::Error)> = Vec::new();
        let mut results = Vec::with_capacity(entry_ids.len());
        for (entry_id, refusal) in entry_ids.into_iter().zip(refused) {
            let outcome = match refusal {
                Some(refusal) => Err(refusal.into()),
                None => match acks.next() {
                    Some(Ok(ack)) => Ok(ack.into()),
                    Some(Err(failed)) => {
                        let failure = crate::transport::describe(&failed.error);
                        let verdict = match verdicts.iter().find(|(seen, _)| *seen == failure) {
                            Some((_, verdict)) => verdict.clone(),
                            None => {
                                let verdict = self.publish_verdict(failed).await;
                                verdicts.push((failure, verdict.clone()));
                                verdict
                            }
                        };
                        Err(verdict.into())
                    }
                    // refusals_by_entry checked that every entry not refused was sent.
                    None => Err(Error::Trap(
                        "the component sent fewer messages than entries".into(),
                    )),
                },
            };
            results.push(BulkEntryResult { entry_id, outcome });
        }
        Ok(results)
    }

    /// The connection settings of this component's metadata.
    pub async fn connection_settings(&self) -> Result<ConnectionSettings, Error> {
        self.runtime.connection_settings(&self.metadata).await
    }

    /// Subscribes to `topic` (wildcards allowed) and delivers every message to `handler`,
    /// on its own long-lived instance, until [`Subscription::stop`].
    ///
    /// The request carries no per-subscription metadata: the reference ignores Dapr's
    /// `SubscribeRequest.Metadata`, and so does the component.
    pub async fn subscribe(
        &self,
        topic: &str,
        handler: impl Handler,
    ) -> Result<Subscription, Error> {
        let (stop_sender, stop) = watch::channel(false);
        let (hold_sender, hold) = watch::channel(false);
        let request = types::SubscribeRequest {
            topic: topic.to_string(),
            metadata: Metadata::new(),
            resume_consumer: None,
        };
        let listener = Listener {
            runtime: self.runtime.clone(),
            metadata: self.metadata.clone(),
            handler: Arc::new(handler),
            request,
            stop,
            hold,
            handover: Handover::default(),
        };
        let (instance, id, consumer) = listener.start().await?;
        let summary = ConsumerSummary::from(consumer);
        let (finished_sender, finished) = watch::channel(false);
        let pump = listener.pump(instance, id, summary.name.clone());
        let task = tokio::spawn(async move {
            let result = pump.await;
            let _ = finished_sender.send(true);
            result
        });
        let flow = Arc::new(Flow {
            stop: stop_sender,
            hold: hold_sender,
        });
        let mut live = self
            .live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        live.retain(|subscription| !*subscription.finished.borrow());
        live.push(Live {
            flow: flow.clone(),
            finished,
        });
        Ok(Subscription {
            flow,
            task,
            consumer: summary,
        })
    }

    /// Closes the component (Dapr's `Close`): every subscription made from it stops
    /// gracefully (the messages it took are handled and answered; durable consumers stay on
    /// the server), then publishing becomes a terminal error. A subscription's own result is
    /// still returned by its [`Subscription::stop`].
    pub async fn close(&self) -> Result<(), Error> {
        let live = std::mem::take(
            &mut *self
                .live
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for subscription in &live {
            subscription.flow.stop();
        }
        for mut subscription in live {
            let _ = subscription.finished.wait_for(|finished| *finished).await;
        }
        let mut publisher = self.publisher().await?;
        let (api, store) = publisher.instance.call();
        let result = api.call_close(store).await;
        note_trap(&mut publisher, result)??;
        Ok(())
    }
}

/// Everything needed to (re)create a subscription's instance.
struct Listener {
    runtime: Runtime,
    metadata: Metadata,
    handler: Arc<dyn Handler>,
    request: types::SubscribeRequest,
    /// True once stopping (see [`Flow`]).
    stop: watch::Receiver<bool>,
    /// True while paused or stopping: the signal every instance of the subscription sees.
    hold: watch::Receiver<bool>,
    /// Keeps the NATS subscriber of an instance that trapped for the one replacing it.
    handover: Handover,
}

impl Listener {
    /// A fresh instance, initialised and subscribed: its subscription id and consumer.
    async fn start(&self) -> Result<(Instance, u64, transport::ConsumerInfo), Error> {
        let mut instance = self
            .runtime
            .initialised_with_stop(self.handler.clone(), &self.metadata, self.hold.clone())
            .await?;
        instance
            .store
            .data_mut()
            .hand_over_to(self.handover.clone());
        let (api, store) = instance.call();
        let id = api.call_subscribe(store, &self.request).await??;
        let (api, store) = instance.call();
        let consumer = api.call_consumer(store, id).await??;
        Ok((instance, id, consumer))
    }

    /// Moves messages until stopped. A pump call is never abandoned half-way: the stop
    /// signal makes the pending `next-batch` return, the messages already taken are
    /// delivered and answered, then the loop ends and the subscription is closed.
    ///
    /// When the component traps (a bug, or a sandbox limit), its instance is dropped and a
    /// fresh one from the pre-instantiated component resumes on the same consumer. The
    /// NATS subscriber stays open across the change (the handover): messages buffered for
    /// the lost instance go to the new one, not back to the server, and so do the ones it
    /// held, one at a time, unless it held a single one, the likely culprit.
    async fn pump(
        mut self,
        mut instance: Instance,
        mut id: u64,
        consumer: String,
    ) -> Result<(), Error> {
        const MAX_MESSAGES: u32 = 1024;
        const WAIT_MS: u32 = 1_000;
        const QUARANTINE_MESSAGES: u32 = 32;
        let topic = self.request.topic.clone();
        self.request.resume_consumer = Some(consumer);
        let mut traps_in_a_row = 0u32;
        // After a trap, messages are taken one at a time for a while, so a poison message
        // fails alone instead of taking a batch of innocent ones down with it.
        let mut quarantine = 0u32;
        while !*self.stop.borrow() {
            if *self.hold.borrow() {
                // Paused: nothing new is taken until resumed or stopped. Handlers already
                // running answer their messages meanwhile.
                let mut hold = self.hold.clone();
                let mut stop = self.stop.clone();
                tokio::select! {
                    _ = hold.wait_for(|hold| !*hold) => {}
                    _ = stop.wait_for(|stop| *stop) => {}
                }
                continue;
            }
            let max = if quarantine > 0 { 1 } else { MAX_MESSAGES };
            let (api, store) = instance.call();
            match api.call_pump(store, id, max, WAIT_MS).await {
                Ok(Ok(delivered)) => {
                    traps_in_a_row = 0;
                    quarantine = quarantine.saturating_sub(delivered);
                }
                Ok(Err(err)) => {
                    let err = Error::from(err);
                    if !err.is_retriable() {
                        tracing::error!(%topic, error = %err, "subscription ended");
                        return Err(err);
                    }
                    tracing::warn!(%topic, error = %err, "delivery failed; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(trap) => {
                    traps_in_a_row += 1;
                    quarantine = QUARANTINE_MESSAGES;
                    tracing::error!(%topic, error = %format!("{trap:#}"), "the component trapped; replacing its instance");
                    drop(instance);
                    (instance, id) = self.restart(traps_in_a_row).await?;
                }
            }
        }
        let (api, store) = instance.call();
        api.call_unsubscribe(store, id).await??;
        let (api, store) = instance.call();
        api.call_close(store).await??;
        Ok(())
    }

    /// Re-creates the instance after a trap, backing off when traps repeat (a message
    /// that makes the component trap comes back until `maxDeliver` ends it).
    async fn restart(&self, traps_in_a_row: u32) -> Result<(Instance, u64), Error> {
        let mut attempt = traps_in_a_row;
        loop {
            let backoff = Duration::from_millis(50u64 << attempt.min(7).saturating_sub(1));
            tokio::time::sleep(backoff).await;
            match self.start().await {
                Ok((instance, id, _consumer)) => {
                    // A subscriber the new instance did not take over has nobody left.
                    self.handover.hand_back_unclaimed();
                    return Ok((instance, id));
                }
                Err(err) if err.is_retriable() || matches!(err, Error::Trap(_)) => {
                    // Messages must not sit in a subscriber nobody reads while the retries
                    // go on: the server gets them back for other subscribers, or later.
                    self.handover.hand_back_unclaimed();
                    tracing::warn!(topic = %self.request.topic, error = %err, "re-creating the subscription failed; retrying");
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
            if *self.stop.borrow() {
                return Err(Error::Terminal(format!(
                    "stopped while re-creating the subscription to {}",
                    self.request.topic
                )));
            }
        }
    }
}

/// A running subscription: its own instance, pumping on its own task.
pub struct Subscription {
    flow: Arc<Flow>,
    task: JoinHandle<Result<(), Error>>,
    consumer: ConsumerSummary,
}

impl Subscription {
    /// The consumer the component created or bound to.
    pub fn consumer(&self) -> &ConsumerSummary {
        &self.consumer
    }

    /// True once the subscription has ended (stopped, or failed).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops taking new messages (Dapr's `Pause`). Messages already with the handler are
    /// still answered; messages the server sent meanwhile wait in the subscriber, and go
    /// back to the server if the subscription is then stopped.
    pub fn pause(&self) {
        self.flow.pause();
    }

    /// Takes messages again after [`pause`](Self::pause). Does nothing once stopping.
    pub fn resume(&self) {
        self.flow.resume();
    }

    /// Stops gracefully: messages already taken are handled and answered, the rest stay
    /// with the server (a durable consumer resumes there). Returns the pump's error if it
    /// had ended with one.
    pub async fn stop(self) -> Result<(), Error> {
        self.flow.stop();
        match self.task.await {
            Ok(result) => result,
            Err(join) => Err(Error::Trap(format!("the subscription task failed: {join}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(text: &str) -> types::Error {
        types::Error::InvalidMetadata(text.to_string())
    }

    #[test]
    fn refusals_are_placed_by_entry_between_the_sent_messages() {
        let placed =
            refusals_by_entry(4, 2, vec![(1, refusal("second")), (3, refusal("fourth"))]).unwrap();
        let texts: Vec<_> = placed
            .iter()
            .map(|slot| match slot {
                Some(types::Error::InvalidMetadata(text)) => Some(text.as_str()),
                Some(other) => panic!("unexpected {other:?}"),
                None => None,
            })
            .collect();
        assert_eq!(texts, vec![None, Some("second"), None, Some("fourth")]);
        assert!(refusals_by_entry(0, 0, Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn a_component_that_loses_or_invents_entries_is_caught() {
        let err = refusals_by_entry(3, 1, vec![(0, refusal("x"))]).unwrap_err();
        assert_eq!(
            err.to_string(),
            Error::Trap(
                "the component sent 1 messages and refused 1 entries of a bulk publish of 3".into()
            )
            .to_string()
        );
        for refused in [
            vec![(0, refusal("x")), (0, refusal("again"))],
            vec![(0, refusal("x")), (2, refusal("beyond"))],
        ] {
            let err = refusals_by_entry(2, 0, refused).unwrap_err();
            assert!(
                matches!(&err, Error::Trap(text) if text.contains("twice, or one that does not exist")),
                "{err:?}"
            );
        }
    }
}
