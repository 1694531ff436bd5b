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
use tokio::task::JoinHandle;

use super::TransportError;
use super::error::from_publish_error;

/// Host state behind a `pending-ack` resource.
pub struct PendingAck {
    sent: Sent,
    subject: async_nats::Subject,
}

/// How far a message has got.
enum Sent {
    /// Queued on the connection, its PubAck to come.
    Queued(PublishAckFuture),
    /// Waiting on a task of its own for room on the connection (async-nats's in-flight
    /// slots or its command queue were full), so it goes out even if the pending ack is
    /// never awaited.
    Waiting(JoinHandle<Result<PublishAckFuture, PublishError>>),
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
    ) -> Result<Self, TransportError> {
        let shared = subject.clone();
        let mut sending = Box::pin(async move { jetstream.send_publish(shared, publish).await });
        let sent = match sending.as_mut().poll(&mut noop_context()) {
            Poll::Ready(Ok(queued)) => Sent::Queued(queued),
            Poll::Ready(Err(err)) => return Err(from_publish_error(&subject, err)),
            Poll::Pending => Sent::Waiting(tokio::spawn(sending)),
        };
        Ok(Self { sent, subject })
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
            Sent::Waiting(sending) => match sending.await {
                Ok(queued) => queued.map_err(publish_failed)?,
                Err(join) => {
                    return Err(failed(TransportError::Other(format!(
                        "sending to {subject} did not finish: {join}"
                    ))));
                }
            },
        };
        ack.await.map_err(publish_failed)
    }
}

/// A context whose waker does nothing: for the one poll that tells a message queued at once
/// from one that must wait for room.
fn noop_context() -> TaskContext<'static> {
    TaskContext::from_waker(std::task::Waker::noop())
}

/// The messages of a batch, each queued with its PubAck to come, or failed.
type Messages = Vec<Result<PendingAck, FailedPublish>>;

/// Host state behind a `pending-batch` resource: the messages of one `send-batch`, in
/// order, each sent with its PubAck to come, or failed before it could be sent.
pub struct PendingBatch {
    /// The messages sent, in order.
    messages: Messages,
    /// When the batch found no room on the connection: the task sending it, in order, which
    /// yields every message of the batch once the last one is queued.
    waiting: Option<(JoinHandle<Messages>, String)>,
    /// How many messages the batch holds.
    len: usize,
}

impl PendingBatch {
    pub(crate) fn new(messages: Messages) -> Self {
        Self {
            len: messages.len(),
            messages,
            waiting: None,
        }
    }

    /// Sends `messages` (or why one could not become a message) to `subject` in order, without ever
    /// waiting for room on the connection. One future sends the whole batch, awaiting each
    /// `send_publish` as a plain pipelined publish does, and is polled once here: nearly
    /// always every message is queued then; if one finds no room, the future goes on in
    /// order on a task of its own. So a call never holds its instance (and the `PubSub`'s
    /// publisher) while a slow server makes room, and a batch costs one allocation, not one
    /// per message. Must run inside the tokio runtime.
    pub(crate) fn send(
        jetstream: Arc<Context>,
        subject: async_nats::Subject,
        messages: Vec<Result<PublishMessage, TransportError>>,
    ) -> Self {
        let len = messages.len();
        let shown = subject.to_string();
        let mut sending = Box::pin(async move {
            let mut sent = Vec::with_capacity(messages.len());
            for message in messages {
                sent.push(match message {
                    Ok(publish) => match jetstream.send_publish(subject.clone(), publish).await {
                        Ok(ack) => Ok(PendingAck {
                            sent: Sent::Queued(ack),
                            subject: subject.clone(),
                        }),
                        Err(err) => Err(FailedPublish {
                            error: from_publish_error(&subject, err),
                            subject: subject.to_string(),
                        }),
                    },
                    Err(error) => Err(FailedPublish {
                        error,
                        subject: subject.to_string(),
                    }),
                });
            }
            sent
        });
        match sending.as_mut().poll(&mut noop_context()) {
            Poll::Ready(messages) => Self::new(messages),
            Poll::Pending => Self {
                messages: Vec::new(),
                waiting: Some((tokio::spawn(sending), shown)),
                len,
            },
        }
    }

    /// How many messages the batch holds.
    pub(crate) fn len(&self) -> usize {
        self.len
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
        let Self {
            mut messages,
            waiting,
            len,
        } = self;
        if let Some((sending, subject)) = waiting {
            match sending.await {
                Ok(sent) => messages = sent,
                Err(join) => {
                    let error = TransportError::Other(format!(
                        "sending a batch to {subject} did not finish: {join}"
                    ));
                    return (0..len)
                        .map(|_| {
                            Err(FailedPublish {
                                error: error.clone(),
                                subject: subject.clone(),
                            })
                        })
                        .collect();
                }
            }
        }
        futures::future::join_all(messages.into_iter().map(|message| async move {
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
