//! NATS JetStream through async-nats, executed for the component: connections shared in a
//! pool, sends whose PubAcks are awaited after the call, push subscriptions whose messages
//! wait here until taken and answered.
//!
//! The component decides (subjects, consumer configuration, answers); this module only
//! executes. Each WIT resource has a state type here (`ConnectionHandle`, `PendingAck`,
//! `PendingBatch`, `SubscriptionHandle`) whose methods do the work with the transport's
//! own types (its `TransportError`, `ConnectOptions`, `Delivery`, `AckKind`, and
//! async-nats's consumer configuration). It knows neither the generated bindings nor the
//! instance: the `Host*` traits are implemented in `transport_imports`, which converts
//! from and to the WIT types and applies the sandbox's checks and limits.

mod ack;
mod ack_subject;
mod connect;
mod connect_options;
mod connection;
mod credentials;
mod error;
mod handover;
mod pending_ack;
mod server_url;
mod subscription;
mod unanswered;

pub(crate) use ack::AckKind;
pub(crate) use connect::ClientPool;
pub(crate) use connect_options::{Auth, ConnectOptions, SecretSource, TlsOptions};
pub use connection::ConnectionHandle;
pub(crate) use error::{ApiError, TransportError};
pub(crate) use handover::{HandBack, Handover};
pub(crate) use pending_ack::FailedPublish;
pub use pending_ack::{PendingAck, PendingBatch};
pub use subscription::SubscriptionHandle;
pub(crate) use subscription::{Answerer, Delivery, Kept};

pub(crate) use error::error_chain as chain;

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
