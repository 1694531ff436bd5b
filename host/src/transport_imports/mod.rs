//! The `transport` imports: the generated `Host*` traits implemented on the instance's
//! state, over the transport's resource types (`crate::transport`).
//!
//! Each method resolves its handle in the instance's table (a bad handle traps), applies
//! the sandbox's checks and the instance's limits (subjects, batch sizes, pending acks,
//! subscriptions, resources: a refusal is a `transport-error`, not a trap), converts the
//! WIT types to the transport's and calls it, then converts what comes back. One file per
//! WIT resource; `convert` holds every conversion between the two sides, the transport
//! error's included. The `app` imports are in `delivery`, the `log` import in `log`.

mod connection;
mod convert;
mod pending_ack;
mod subscription;

use crate::bindings::transport;
use crate::instance::InstanceState;

impl transport::Host for InstanceState {}
