//! `transport.pending-ack` and `transport.pending-batch`: messages sent by the component
//! whose PubAcks the host awaits after the component's call has returned.
//!
//! Awaiting inside the call would keep the instance locked and its fiber suspended for a
//! whole round trip to the server: single publishes would queue behind one another, and
//! the work of returning through the component would sit between the PubAck's arrival and
//! the caller. Sent first and awaited outside, the round trip holds nothing.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use async_nats::jetstream::context::{Context, PublishAckFuture, PublishError};
use async_nats::jetstream::message::PublishMessage;
use tokio::sync::oneshot;
use wasmtime::component::Resource;

use super::TransportError;
use super::error::from_publish_error;
use crate::bindings::transport;
use crate::instance::InstanceState;

/// Host state behind a `pending-ack` resource.
pub struct PendingAck {
    sent: Sent,
    subject: async_nats::Subject,
}

/// How far a message has got.
enum Sent {
    /// Queued on the connection, its PubAck to come.
    Queued(PublishAckFuture),
    /// Waiting on a task for room on the connection (async-nats's in-flight slots or its
    /// command queue were full), so it goes out even if the pending ack is never awaited;
    /// the task says here when it is queued.
    Waiting(oneshot::Receiver<Result<PublishAckFuture, PublishError>>),
    /// Not sent yet: the resource's place in the table, taken before the message is sent
    /// so that a component at its resource limit is refused before anything goes out.
    Reserved,
}

impl PendingAck {
    /// A place for the pending ack of a message about to be sent.
    pub(crate) fn reserved(subject: async_nats::Subject) -> Self {
        Self {
            sent: Sent::Reserved,
            subject,
        }
    }

    /// Sends without waiting, for the synchronous `send` import: nearly always the
    /// message is queued at the first try; when async-nats has no room for it yet, it
    /// waits on a task of its own. Must run inside the tokio runtime.
    pub(crate) fn send(
        jetstream: Arc<Context>,
        subject: async_nats::Subject,
        publish: PublishMessage,
    ) -> Result<Self, PublishError> {
        let mut waiting = Vec::new();
        let pending = Self::send_or_wait(&jetstream, subject, publish, &mut waiting);
        wait_for_room(waiting);
        pending
    }

    /// Sends one message of several, in order: queued at once while there is room; from
    /// the first that finds none, it and every later one go into `waiting`, to be sent in
    /// order by [`wait_for_room`]. So a call never waits for room on the connection
    /// (holding its instance, and the `PubSub`'s publisher, while the server is slow), and
    /// messages keep their order.
    pub(crate) fn send_or_wait(
        jetstream: &Arc<Context>,
        subject: async_nats::Subject,
        publish: PublishMessage,
        waiting: &mut Vec<Sending>,
    ) -> Result<Self, PublishError> {
        let shared = subject.clone();
        let jetstream = jetstream.clone();
        let mut sending: SendFuture =
            Box::pin(async move { jetstream.send_publish(shared, publish).await });
        if waiting.is_empty()
            && let Poll::Ready(queued) = sending
                .as_mut()
                .poll(&mut TaskContext::from_waker(std::task::Waker::noop()))
        {
            return Ok(Self {
                sent: Sent::Queued(queued?),
                subject,
            });
        }
        let (queued, told) = oneshot::channel();
        waiting.push(Sending { sending, queued });
        Ok(Self {
            sent: Sent::Waiting(told),
            subject,
        })
    }

    /// Waits for the stream's answer; a failure comes with the subject it names.
    pub(crate) async fn outcome(
        self,
    ) -> Result<async_nats::jetstream::publish::PublishAck, FailedPublish> {
        let Self { sent, subject } = self;
        let failed = |error| FailedPublish {
            error,
            subject: subject.to_string(),
        };
        let publish_failed = |err| failed(from_publish_error(&subject, err));
        let ack = match sent {
            Sent::Queued(ack) => ack,
            Sent::Reserved => {
                return Err(failed(TransportError::Other(format!(
                    "the message to {subject} was never sent"
                ))));
            }
            Sent::Waiting(told) => match told.await {
                Ok(queued) => queued.map_err(publish_failed)?,
                Err(_) => {
                    return Err(failed(TransportError::Other(format!(
                        "sending to {subject} did not finish (the host is shutting down)"
                    ))));
                }
            },
        };
        ack.await.map_err(publish_failed)
    }
}

/// A send that found no room yet.
type SendFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<PublishAckFuture, PublishError>> + Send>,
>;

/// A message waiting for room on the connection, and where to say it was queued.
pub(crate) struct Sending {
    sending: SendFuture,
    queued: oneshot::Sender<Result<PublishAckFuture, PublishError>>,
}

/// Sends the messages that found no room, in order, on a task of their own. Must run inside
/// the tokio runtime.
pub(crate) fn wait_for_room(waiting: Vec<Sending>) {
    if waiting.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for Sending { sending, queued } in waiting {
            // The pending ack may be gone (its caller gave up): the message goes out anyway.
            let _ = queued.send(sending.await);
        }
    });
}

/// Host state behind a `pending-batch` resource: the messages of one `send-batch`, in
/// order, each sent with its PubAck to come, or failed before it could be sent.
pub struct PendingBatch {
    messages: Vec<Result<PendingAck, FailedPublish>>,
}

impl PendingBatch {
    pub(crate) fn new(messages: Vec<Result<PendingAck, FailedPublish>>) -> Self {
        Self { messages }
    }

    /// How many messages the batch holds.
    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    /// What a batch of `len` messages counts against the instance's pending-ack limit:
    /// its messages, and at least one, so that empty batches cannot pile up either.
    pub(crate) fn weight_of(len: usize) -> usize {
        len.max(1)
    }

    /// What this batch counts against the pending-ack limit.
    pub(crate) fn weight(&self) -> usize {
        Self::weight_of(self.len())
    }

    /// Waits for every PubAck together: one outcome per message, in order.
    pub(crate) async fn outcomes(
        self,
    ) -> Vec<Result<async_nats::jetstream::publish::PublishAck, FailedPublish>> {
        futures::future::join_all(self.messages.into_iter().map(|message| async move {
            match message {
                Ok(pending) => pending.outcome().await,
                Err(failed) => Err(failed),
            }
        }))
        .await
    }
}

/// A publish whose PubAck did not come, or a message of a batch that could not be sent:
/// the component decides what it means.
pub(crate) struct FailedPublish {
    pub(crate) subject: String,
    pub(crate) error: TransportError,
}

impl transport::HostPendingAck for InstanceState {
    async fn drop(&mut self, this: Resource<PendingAck>) -> wasmtime::Result<()> {
        self.take_pending_ack(this)?;
        Ok(())
    }
}

impl transport::HostPendingBatch for InstanceState {
    async fn drop(&mut self, this: Resource<PendingBatch>) -> wasmtime::Result<()> {
        self.take_pending_batch(this)?;
        Ok(())
    }
}
