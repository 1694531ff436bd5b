//! `transport.pending-ack` and `transport.pending-batch`: the component only drops them
//! (the host takes them out of the table to await them); a drop forgets the
//! acknowledgements, never the messages, and frees their place under the pending-ack
//! limit.

use wasmtime::component::Resource;

use crate::bindings::transport;
use crate::instance::InstanceState;
use crate::transport::{PendingAck, PendingBatch};

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
