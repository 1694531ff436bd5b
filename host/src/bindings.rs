//! Generated bindings for the `jetstream-pubsub` world (`wit/`). Nothing else lives here.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "jetstream-pubsub",
    imports: {
        // Synchronous: the send is queued at once nearly always, and a synchronous import
        // skips the machinery that lets an async one suspend the component's fiber
        // (about a thousand instructions per publish, counted with callgrind).
        "dapr:jetstream/transport.[method]connection.send": trappable,
        default: async | trappable,
    },
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
