//! A subscription: its own long-lived instance, pumping on a task of its own, restarted
//! after a trap, stopped or paused by signals.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::Handler;
use crate::bindings::{transport, types};
use crate::error::Error;
use crate::health::PumpHealth;
use crate::metrics::{DeliveryMetrics, Role};
use crate::runtime::{Instance, Runtime};
use crate::transport::Handover;

use super::{ConsumerSummary, Metadata};

/// What `close` needs of a running subscription.
pub(super) struct Live {
    flow: Arc<Flow>,
    finished: watch::Receiver<bool>,
}

impl Live {
    pub(super) fn stop(&self) {
        self.flow.stop();
    }

    pub(super) fn is_finished(&self) -> bool {
        *self.finished.borrow()
    }

    /// Resolves once the subscription's pump has ended.
    pub(super) async fn finished(mut self) {
        let _ = self.finished.wait_for(|finished| *finished).await;
    }
}

/// Starts a subscription to `topic` on a new instance: the subscription, and what its
/// `PubSub` keeps to close it.
///
/// The request carries no per-subscription metadata: the reference ignores Dapr's
/// `SubscribeRequest.Metadata`, and so does the component.
pub(super) async fn start(
    runtime: Runtime,
    metadata: Metadata,
    topic: &str,
    handler: Arc<dyn Handler>,
) -> Result<(Subscription, Live), Error> {
    let (stop_sender, stop) = watch::channel(false);
    let (hold_sender, hold) = watch::channel(false);
    let request = types::SubscribeRequest {
        topic: topic.to_string(),
        metadata: Metadata::new(),
        resume_consumer: None,
    };
    let listener = Listener {
        deliveries: Arc::new(runtime.labels.delivering(topic)),
        health: runtime.health.watch_pump(topic),
        runtime,
        metadata,
        handler,
        request,
        stop,
        hold,
        handover: Handover::default(),
    };
    let (instance, id, consumer) = listener.start().await?;
    let running = listener.runtime.labels.subscription();
    let health = listener.health.clone();
    let summary = ConsumerSummary::from(consumer);
    let (finished_sender, finished) = watch::channel(false);
    let pump = listener.pump(instance, id, summary.name.clone());
    let task = tokio::spawn(async move {
        let result = pump.await;
        drop(running);
        let _ = finished_sender.send(true);
        result
    });
    let flow = Arc::new(Flow {
        stop: stop_sender,
        hold: hold_sender,
    });
    let live = Live {
        flow: flow.clone(),
        finished,
    };
    let subscription = Subscription {
        flow,
        task,
        consumer: summary,
        _health: health,
    };
    Ok((subscription, live))
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
    /// What delivering records, for every instance of the subscription.
    deliveries: Arc<DeliveryMetrics>,
    /// Whether the pump is pumping, for the runtime's readiness.
    health: Arc<PumpHealth>,
}

impl Listener {
    /// A fresh instance, initialised and subscribed: its subscription id and consumer.
    async fn start(&self) -> Result<(Instance, u64, transport::ConsumerInfo), Error> {
        let mut instance = self
            .runtime
            .initialised_with_stop(self.handler.clone(), &self.metadata, self.hold.clone())
            .await?;
        let state = instance.store.data_mut();
        state.hand_over_to(self.handover.clone());
        state.record_deliveries(self.deliveries.clone());
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
        // Host-side, by design: none of these is a Dapr or JetStream semantic. The batch
        // bounds what one call into the instance may take (the sandbox's batch limit caps
        // it again); the wait is how long a pump call idles before the loop looks at its
        // stop signal; the quarantine protects innocent messages from an instance that
        // just trapped. What is delivered, in which order and how it is answered is the
        // component's.
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
                    self.health.pumping();
                }
                Ok(Err(err)) => {
                    let err = Error::from(err);
                    if !err.is_retriable() {
                        tracing::error!(%topic, error = %err, "subscription ended");
                        self.health.not_pumping(format!("ended: {err}"));
                        return Err(err);
                    }
                    tracing::warn!(%topic, error = %err, "delivery failed; retrying");
                    self.health.not_pumping(format!("retrying: {err}"));
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(trap) => {
                    traps_in_a_row += 1;
                    quarantine = QUARANTINE_MESSAGES;
                    tracing::error!(%topic, error = %format!("{trap:#}"), "the component trapped; replacing its instance");
                    self.runtime.labels.trapped(Role::Subscription);
                    self.health
                        .not_pumping("its instance trapped and is being replaced");
                    drop(instance);
                    (instance, id) = self
                        .restart(traps_in_a_row)
                        .await
                        .inspect_err(|err| self.health.not_pumping(format!("ended: {err}")))?;
                    self.runtime.labels.restarted(Role::Subscription);
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
    /// Keeps the subscription in the runtime's readiness until it is stopped or dropped:
    /// one that failed stays there, not ready, until then.
    _health: Arc<PumpHealth>,
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
