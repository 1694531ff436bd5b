//! `transport.subscription`: messages pushed by a consumer, buffered until the component
//! takes them, and the component's answers sent back to the server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use tokio::sync::watch;

use super::TransportError;
use super::ack::AckKind;
use super::ack_subject::{self, Sequences};
use super::connect::SharedClient;
use super::handover::{self, HandBack, Handover, Parked, Triage};
use super::unanswered::{Pending, Unanswered};

/// Host state behind a `subscription` resource.
pub struct SubscriptionHandle {
    /// Held, not only used: while the handle lives, the pool keeps the client open.
    client: SharedClient,
    deliver_subject: String,
    queue_group: Option<String>,
    state: Lifecycle,
    /// Where the subscriber goes if this handle's instance is lost, for the next one.
    handover: Option<Handover>,
    /// Deliveries handed out and not answered yet, by token. The component answers by
    /// token, so it can only ever acknowledge what it was given.
    unanswered: SharedUnanswered,
    /// Set when the host wants the pump to finish: `next-batch` then returns at once.
    stop: watch::Receiver<bool>,
    /// Sends in-progress for unanswered deliveries, when the component asked for it.
    keep_alive: Option<tokio::task::JoinHandle<()>>,
    /// The component's answers to what it never answers itself.
    hand_back: HandBack,
    /// Parallel mode's handlers run on tasks of their own, at most `size` at once (set by
    /// the first `deliver-batch`); `unsubscribe` waits for them all.
    handler_slots: Option<HandlerSlots>,
}

/// The bound on a subscription's concurrently running handlers.
struct HandlerSlots {
    semaphore: Arc<tokio::sync::Semaphore>,
    size: u32,
}

/// A message pushed by a consumer: what the component needs to map and answer it. The
/// payload stays here ([`SubscriptionHandle::kept`]): the component passes it through
/// without reading it.
pub(crate) struct Delivery {
    /// Token to answer this delivery with (valid on its subscription only).
    pub(crate) token: u64,
    /// Its headers; a name with several values gives several pairs, in the order of its
    /// values (async-nats keeps names in a hash map). None when it has none. Its subject stays here with its payload ([`SubscriptionHandle::kept`]).
    pub(crate) headers: Option<Vec<(String, String)>>,
    /// How many times it has been delivered (1 on the first delivery).
    pub(crate) delivered: u64,
}

/// What the host keeps of a delivery it handed to the component, for the application's
/// message: the bytes the mapping passes through unchanged never cross the boundary.
pub(crate) struct Kept {
    /// The subject it was published on.
    pub(crate) subject: String,
    /// Its payload.
    pub(crate) payload: bytes::Bytes,
    /// Its numbers, read from the reply subject.
    pub(crate) sequences: Sequences,
}

/// Unanswered deliveries, shared with the keep-alive task.
type SharedUnanswered = Arc<Mutex<Unanswered>>;

impl Drop for SubscriptionHandle {
    /// Nothing is lost when a subscription goes away without answering (its instance
    /// trapped, or it dropped the subscription). A subscription still listening when its
    /// instance is lost parks its subscriber for the instance that replaces this one, with
    /// the deliveries to replay ([`handover`]); only a lone delivery in hand (the likely
    /// culprit) goes back to the server, with a delayed `-NAK`. Without a replacement,
    /// deliveries held and messages buffered but never taken get the component's
    /// `hand-back` answers.
    fn drop(&mut self) {
        if let Some(task) = self.keep_alive.take() {
            // Handlers still running on tasks of their own outlive the instance: their
            // deliveries stay in progress until they answer. The keep-alive ends by itself
            // once nothing else holds the unanswered set.
            if !lock(&self.unanswered).any_handling() {
                task.abort();
            }
        }
        // Deliveries whose handlers still run on their own tasks are answered by them.
        let (held, waiting) = {
            let mut unanswered = lock(&self.unanswered);
            let held = unanswered
                .drain_idle()
                .into_iter()
                .map(Pending::into_message);
            (held.collect::<Vec<_>>(), unanswered.take_replay())
        };
        let state = std::mem::replace(&mut self.state, Lifecycle::Closed);
        let (suspects, untouched): (Vec<async_nats::Message>, _) =
            match (state, self.handover.take()) {
                (Lifecycle::Active(subscriber), Some(handover)) => {
                    let Triage { culprit, replay } = handover::triage(held, waiting);
                    handover.park(Parked {
                        client: self.client.clone(),
                        deliver_subject: std::mem::take(&mut self.deliver_subject),
                        queue_group: self.queue_group.take(),
                        subscriber,
                        replay,
                        hand_back: self.hand_back.clone(),
                    });
                    (culprit.into_iter().collect(), Vec::new())
                }
                (state, _) => {
                    let untouched = match state {
                        Lifecycle::Active(mut subscriber) => {
                            handover::drain_buffered(&mut subscriber)
                        }
                        Lifecycle::Closed => Vec::new(),
                    };
                    (held.into_iter().chain(waiting).collect(), untouched)
                }
            };
        let suspects = suspects.into_iter().filter_map(|message| message.reply);
        handover::hand_back(&self.client, &self.hand_back, suspects.collect(), untouched);
    }
}

fn lock(unanswered: &SharedUnanswered) -> std::sync::MutexGuard<'_, Unanswered> {
    // The queue stays consistent whatever a panicking holder did: entries are only
    // inserted and removed whole.
    unanswered
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where a subscription is in its life.
enum Lifecycle {
    /// Listening; messages arrive in the subscriber's buffer.
    Active(async_nats::Subscriber),
    /// Unsubscribed: no more messages; answers to earlier ones are still sent.
    Closed,
}

impl SubscriptionHandle {
    /// A handle on `subscriber`, listening on `deliver_subject` (in `queue_group`).
    /// `handover` is where it goes if the instance is lost, when it may be replaced.
    pub(crate) fn new(
        client: SharedClient,
        deliver_subject: String,
        queue_group: Option<String>,
        subscriber: async_nats::Subscriber,
        stop: watch::Receiver<bool>,
        handover: Option<Handover>,
    ) -> Self {
        Self {
            client,
            deliver_subject,
            queue_group,
            state: Lifecycle::Active(subscriber),
            handover,
            unanswered: Arc::new(Mutex::new(Unanswered::starting_at(1))),
            stop,
            keep_alive: None,
            hand_back: HandBack::default(),
            handler_slots: None,
        }
    }

    /// Takes over what a lost instance parked: its subscriber, and what to replay first.
    pub(crate) fn resume(
        parked: Parked,
        stop: watch::Receiver<bool>,
        handover: Option<Handover>,
    ) -> Self {
        let Parked {
            client,
            deliver_subject,
            queue_group,
            subscriber,
            replay,
            hand_back,
        } = parked;
        let mut handle = Self::new(
            client,
            deliver_subject,
            queue_group,
            subscriber,
            stop,
            handover,
        );
        lock(&handle.unanswered).replay(replay);
        handle.hand_back = hand_back;
        handle
    }

    /// The slots parallel handlers take, `size` of them (fixed by the first call).
    pub(crate) fn handler_slots(&mut self, size: u32) -> Arc<tokio::sync::Semaphore> {
        let slots = self.handler_slots.get_or_insert_with(|| {
            let size = size.clamp(1, tokio::sync::Semaphore::MAX_PERMITS as u32);
            HandlerSlots {
                semaphore: Arc::new(tokio::sync::Semaphore::new(size as usize)),
                size,
            }
        });
        slots.semaphore.clone()
    }

    /// Waits until no handler of this subscription is running.
    async fn handlers_finished(&self) {
        if let Some(HandlerSlots { semaphore, size }) = &self.handler_slots {
            // Never closed, so acquiring only waits; the permits go back at once.
            let _all = semaphore.acquire_many(*size).await;
        }
    }

    /// Turns one pushed NATS message into a delivery, or handles it when it is a
    /// status message (idle heartbeat, flow-control request) the component never sees.
    /// `payload_bytes` grows by the payload size of a delivery: payloads stay here, and the
    /// batch limit in bytes bounds what the host holds for the component.
    async fn accept(
        &mut self,
        message: async_nats::Message,
        payload_bytes: &mut usize,
    ) -> Option<Delivery> {
        if let Some(status) = message.status {
            if status == async_nats::StatusCode::IDLE_HEARTBEAT {
                // A flow-control request carries a reply subject that must be answered.
                if let Some(reply) = message.reply {
                    let _ = self.client.publish(reply, bytes::Bytes::new()).await;
                }
            }
            return None;
        }
        let reply = message.reply.clone()?;
        let sequences = ack_subject::sequences(&reply)?;
        // Payload, subject and headers stay here until the delivery is answered.
        *payload_bytes += message.length.max(message.payload.len());
        let headers = header_pairs(message.headers.as_ref());
        let token = lock(&self.unanswered).push(Pending::new(reply, sequences, message));
        Some(Delivery {
            token,
            headers,
            delivered: sequences.delivered,
        })
    }

    /// The payload of the unanswered delivery `token` (a cheap, shared handle).
    pub(crate) fn payload(&self, token: u64) -> Option<bytes::Bytes> {
        lock(&self.unanswered)
            .get(token)
            .map(|pending| pending.payload.clone())
    }

    /// What the host kept of the unanswered deliveries `tokens` for the application
    /// (cheap, shared handles), in order, under one lock (a batch is delivered at once).
    pub(crate) fn kept(&self, tokens: impl IntoIterator<Item = u64>) -> Vec<Option<Kept>> {
        let unanswered = lock(&self.unanswered);
        tokens
            .into_iter()
            .map(|token| {
                unanswered.get(token).map(|pending| Kept {
                    // Copied straight into the application's `String`: a clone of the
                    // `Subject` would first allocate to share its buffer (counted).
                    subject: pending.subject.as_str().to_owned(),
                    payload: pending.payload.clone(),
                    sequences: pending.sequences,
                })
            })
            .collect()
    }

    /// Unsubscribes, and returns the reply subjects of the messages never taken (buffered,
    /// or waiting to be replayed, and the ones the client had read): they get the
    /// component's `untaken` answer, for another subscriber of the consumer, instead of
    /// waiting out the ack wait.
    async fn stop_listening(&mut self) -> Vec<async_nats::Subject> {
        let waiting = lock(&self.unanswered).take_replay();
        let mut untaken: Vec<_> = waiting.into_iter().filter_map(|m| m.reply).collect();
        if let Lifecycle::Active(mut subscriber) =
            std::mem::replace(&mut self.state, Lifecycle::Closed)
        {
            untaken.extend(handover::drain(&mut subscriber).await);
        }
        untaken
    }

    /// What answers this subscription's deliveries, apart from the resource (so handlers
    /// can be awaited without holding the instance's resource table).
    pub(crate) fn answerer(&self) -> Answerer {
        Answerer {
            client: self.client.clone(),
            unanswered: self.unanswered.clone(),
        }
    }
}

/// Sends the component's answers for a subscription's deliveries.
#[derive(Clone)]
pub(crate) struct Answerer {
    client: SharedClient,
    unanswered: SharedUnanswered,
}

impl Answerer {
    /// Notes that a handler on a task of its own will answer delivery `token`, so losing
    /// the instance does not hand it back to the server while it is being handled.
    pub(crate) fn set_handling(&self, token: u64) {
        lock(&self.unanswered).set_handling(token);
    }

    /// The subject of unanswered delivery `token`, for a log line about it.
    pub(crate) fn subject(&self, token: u64) -> Option<String> {
        lock(&self.unanswered)
            .get(token)
            .map(|pending| pending.subject.to_string())
    }

    /// Answers delivery `token` (`None`: leaves it unanswered, for `ackPolicy: none`).
    /// The answer is queued on the client, not waited for: as a plain NATS consumer
    /// acknowledges. An answer that cannot be sent (the connection is closed for good)
    /// leaves the message to the server, which redelivers it after its ack wait.
    pub(crate) async fn answer(&self, token: u64, kind: Option<AckKind>) {
        let Some(kind) = kind else {
            lock(&self.unanswered).remove(token);
            return;
        };
        let answered = {
            let mut unanswered = lock(&self.unanswered);
            match kind {
                // In progress keeps the delivery open: it must still be answered later.
                AckKind::InProgress => unanswered
                    .get(token)
                    .map(|p| (p.reply.clone(), p.subject.clone(), p.sequences)),
                _ => unanswered
                    .remove(token)
                    .map(|p| (p.reply, p.subject, p.sequences)),
            }
        };
        let Some((reply, subject, sequences)) = answered else {
            tracing::debug!(token, "no unanswered delivery has this token");
            return;
        };
        if let Err(err) = self.client.publish(reply, kind.body()).await {
            tracing::warn!(
                subject = %subject,
                stream_seq = sequences.stream,
                consumer_seq = sequences.consumer,
                delivered = sequences.delivered,
                error = %err,
                "an acknowledgement could not be sent; the server will redeliver the message"
            );
        }
    }
}

/// What the component does with a subscription (`transport.subscription`), executed.
impl SubscriptionHandle {
    /// Waits up to `wait` for the first message, then takes it with the ones already
    /// buffered, at most `limit` of them and, once `byte_limit` payload bytes are held, no
    /// more. Empty when nothing arrived in time, or when the host is stopping the pump.
    /// Cancel safety: a message returned is owned by the caller until answered; a message
    /// never returned stays with the server, which redelivers it.
    pub(crate) async fn next_batch(
        &mut self,
        limit: usize,
        byte_limit: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, TransportError> {
        let mut bytes = 0usize;
        let mut batch = Vec::new();
        // What a lost instance held goes first, alone: should it fail again, it fails by
        // itself and is known for the culprit.
        let replay = (!*self.stop.borrow())
            .then(|| lock(&self.unanswered).next_replay())
            .flatten();
        if let Some(message) = replay
            && let Some(delivery) = self.accept(message, &mut bytes).await
        {
            return Ok(vec![delivery]);
        }
        let deadline = tokio::time::Instant::now() + wait;
        while batch.is_empty() {
            if *self.stop.borrow() {
                break;
            }
            let Lifecycle::Active(subscriber) = &mut self.state else {
                return Err(TransportError::Other("the subscription is closed".into()));
            };
            let mut stop = self.stop.clone();
            let next = tokio::select! {
                next = tokio::time::timeout_at(deadline, subscriber.next()) => next,
                _ = stop.changed() => break,
            };
            match next {
                Err(_elapsed) => break,
                Ok(None) => {
                    self.state = Lifecycle::Closed;
                    return Err(TransportError::Connection(
                        "the server ended the subscription".into(),
                    ));
                }
                Ok(Some(message)) => {
                    if let Some(delivery) = self.accept(message, &mut bytes).await {
                        batch.push(delivery);
                    }
                }
            }
            // Take what is already buffered, without waiting again.
            while batch.len() < limit && bytes < byte_limit {
                let Lifecycle::Active(subscriber) = &mut self.state else {
                    break;
                };
                match subscriber.next().now_or_never() {
                    Some(Some(message)) => {
                        if let Some(delivery) = self.accept(message, &mut bytes).await {
                            batch.push(delivery);
                        }
                    }
                    _ => break,
                }
            }
        }
        Ok(batch)
    }

    /// While a delivery is unanswered, sends in-progress (`+WPI`) for it every `interval`
    /// (`None`: stops doing so); `signalled` counts each one sent.
    pub(crate) fn keep_alive(&mut self, interval: Option<Duration>, signalled: metrics::Counter) {
        if let Some(task) = self.keep_alive.take() {
            task.abort();
        }
        if let Some(interval) = interval {
            let (client, unanswered) = (self.client.clone(), self.unanswered.clone());
            self.keep_alive = Some(tokio::spawn(async move {
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
                loop {
                    ticks.tick().await;
                    // Only this task is left: the subscription is gone and no handler of
                    // it still runs, so nothing here can be answered any more.
                    if Arc::strong_count(&unanswered) == 1 {
                        break;
                    }
                    let replies = lock(&unanswered).replies();
                    for reply in replies {
                        let _ = client
                            .publish(reply, bytes::Bytes::from_static(b"+WPI"))
                            .await;
                        signalled.increment(1);
                    }
                }
            }));
        }
    }

    /// How the host answers, for the component, the messages it never answers itself.
    pub(crate) fn hand_back(&mut self, hand_back: HandBack) {
        self.hand_back = hand_back;
    }

    /// Stops listening; the messages never taken get the component's `untaken` answer.
    /// Returns once the handlers of this subscription still running have finished and
    /// their answers are on their way.
    pub(crate) async fn unsubscribe(&mut self) {
        let untaken = self.stop_listening().await;
        handover::send_back(&self.client, &self.hand_back, Vec::new(), untaken).await;
        // Handlers still running answer their messages before the consumer is left alone,
        // and answers already queued must reach the server.
        self.handlers_finished().await;
        let _ = self.client.flush().await;
    }

    /// The component let go of the subscription: stops listening, and hands back the
    /// messages never taken without waiting.
    pub(crate) async fn close(mut self) {
        let untaken = self.stop_listening().await;
        handover::hand_back(&self.client, &self.hand_back, Vec::new(), untaken);
    }
}

/// NATS headers as pairs; a name with several values gives several pairs, in the order of
/// its values. None for a message without headers, or with an empty header map.
fn header_pairs(headers: Option<&async_nats::HeaderMap>) -> Option<Vec<(String, String)>> {
    let headers = headers.filter(|headers| !headers.is_empty())?;
    let mut pairs = Vec::new();
    for (name, values) in headers.iter() {
        for value in values {
            let name: &str = name.as_ref();
            pairs.push((name.to_owned(), value.as_str().to_owned()));
        }
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_without_headers_or_with_an_empty_map_has_none() {
        assert_eq!(header_pairs(None), None);
        assert_eq!(header_pairs(Some(&async_nats::HeaderMap::new())), None);
    }

    #[test]
    fn each_value_of_a_header_is_a_pair() {
        let mut headers = async_nats::HeaderMap::new();
        headers.append("X-Tag", "a");
        headers.append("X-Tag", "b");
        assert_eq!(
            header_pairs(Some(&headers)),
            Some(vec![
                ("X-Tag".to_string(), "a".to_string()),
                ("X-Tag".to_string(), "b".to_string()),
            ])
        );
    }
}
