//! A wasmtime host for the `pubsub.jetstream` WebAssembly component: Dapr's NATS
//! JetStream pub/sub, sandboxed.
//!
//! The component (`guest/`) holds every Dapr semantic: metadata, consumer selection,
//! binding rules, ack decisions. This crate gives it a NATS transport (async-nats) and an
//! application to deliver to, and nothing else. See [`pubsub`] for a complete example.
//!
//! # Features
//!
//! - `dapr-pluggable`: `pluggable`, the server of Dapr's pluggable-component protocol
//!   (gRPC on a Unix socket, with tonic).
//! - `cli`: what the `jetstream-pubsub` binary needs beyond the library: `dapr-pluggable`,
//!   `bench_hooks` (the runtime's hooks for `jetstream-pubsub bench`), `nats_server` (the
//!   nats-server harness of `demo`, `bench` and the integration tests) and
//!   `pluggable::client` (daprd's side of the socket, for the bench and the tests). It is
//!   the default, so that `cargo build`, `cargo install` and `cargo test` build the binary.
//!   An embedder depends with `default-features = false` (and `features =
//!   ["dapr-pluggable"]` for the server) and compiles none of them.

#![warn(missing_docs)]

mod app;
#[cfg(feature = "cli")]
pub mod bench_hooks;
pub(crate) mod bindings;
pub mod cloudevent;
mod delivery;
mod error;
mod health;
pub mod http_app;
mod instance;
mod log;
pub mod manifest;
pub mod metrics;
#[cfg(feature = "cli")]
pub mod nats_server;
#[cfg(feature = "dapr-pluggable")]
pub mod pluggable;
pub mod provision;
pub mod pubsub;
mod redact;
mod runtime;
mod sandbox;
mod transport;
mod transport_imports;

pub use app::{AppStatus, DeliveryInfo, Handler, Message};
/// The type of [`Message::data`], re-exported so handlers need no `bytes` dependency of
/// their own to build or match messages.
pub use bytes::Bytes;
pub use error::Error;
pub use http_app::HttpApp;
pub use pubsub::{
    BulkEntry, BulkEntryResult, ConnectionSettings, ConsumerSummary, Metadata, PubSub, PublishAck,
    PublishRequest, Subscription,
};
pub use runtime::{EMBEDDED_COMPONENT, Runtime, RuntimeBuilder};
pub use sandbox::{SandboxLimits, SandboxPolicy};
