//! `transport.pending-ack` and `transport.pending-batch`: messages sent by the component
//! whose PubAcks the host awaits after the component's call has returned.
//!
//! Awaiting inside the call would keep the instance locked and its fiber suspended for a
//! whole round trip to the server: single publishes would queue behind one another, and
//! the work of returning through the component would sit between the PubAck's arrival and
//! the caller. Sent first and awaited outside, the round trip holds nothing.

use async_nats::jetstream::context::PublishAckFuture;
use wasmtime::component::Resource;

use super::TransportError;
use super::error::from_publish_error;
use crate::bindings::transport;
use crate::instance::InstanceState;

/// Host state behind a `pending-ack` resource.
pub struct PendingAck {
    ack: PublishAckFuture,
    subject: async_nats::Subject,
}

impl PendingAck {
    pub(crate) fn new(ack: PublishAckFuture, subject: async_nats::Subject) -> Self {
        Self { ack, subject }
    }

    /// Waits for the stream's answer; a failure comes with the subject it names.
    pub(crate) async fn outcome(
        self,
    ) -> Result<async_nats::jetstream::publish::PublishAck, FailedPublish> {
        let Self { ack, subject } = self;
        ack.await.map_err(|err| FailedPublish {
            error: from_publish_error(&subject, err),
            subject: subject.to_string(),
        })
    }
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

/// A publish whose PubAck did not come: the component decides what it means.
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
