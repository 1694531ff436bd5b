//! The `transport` imports: NATS JetStream through async-nats, executed for the component.
//!
//! The component decides (subjects, consumer configuration, answers); this module only
//! executes, and refuses what the sandbox does not allow. Each WIT resource has a state
//! type here (`ConnectionHandle`, `PendingAck`, `PendingBatch`, `SubscriptionHandle`) and a
//! file implementing its `Host*` trait.

mod ack_subject;
mod connect;
mod connection;
mod convert;
mod credentials;
mod error;
mod handover;
mod pending_ack;
mod server_url;
mod subscription;
mod unanswered;

pub(crate) use connect::ClientPool;
pub use connection::ConnectionHandle;
pub(crate) use error::TransportError;
pub(crate) use handover::Handover;
pub(crate) use pending_ack::FailedPublish;
pub use pending_ack::{PendingAck, PendingBatch};
pub(crate) use subscription::Answerer;
pub use subscription::SubscriptionHandle;

use crate::bindings::transport;
use crate::instance::InstanceState;

impl transport::Host for InstanceState {}

pub(crate) use error::error_chain as chain;
pub(crate) use server_url::redacted_servers;

/// A transport error as one line of text, for host-side messages.
pub(crate) fn describe(err: &TransportError) -> String {
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
