//! Generated bindings for the `jetstream-pubsub` world (`wit/`). Nothing else lives here.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "jetstream-pubsub",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "dapr:jetstream/transport.connection": crate::transport::ConnectionHandle,
        "dapr:jetstream/transport.pending-ack": crate::transport::PendingAck,
        "dapr:jetstream/transport.pending-batch": crate::transport::PendingBatch,
        "dapr:jetstream/transport.subscription": crate::transport::SubscriptionHandle,
    },
});

pub(crate) use dapr::jetstream::{app, log, transport, types};
pub(crate) use exports::dapr::jetstream::pubsub;
