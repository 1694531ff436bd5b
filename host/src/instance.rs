//! Per-instance state: what one component instance (one `Store`) owns.

use std::sync::Arc;

use tokio::sync::watch;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::app::Handler;
use crate::bindings::types;
use crate::sandbox::{CpuMeter, HostTime, SandboxLimits};
use crate::transport::{ClientPool, Handover, PendingAck, PendingBatch, TransportError};

/// What every instance of one runtime shares: the NATS clients and the limits.
pub(crate) struct Shared {
    pub(crate) pool: ClientPool,
    pub(crate) limits: SandboxLimits,
}

/// The data of one component instance's `Store`.
pub(crate) struct InstanceState {
    pub(crate) table: ResourceTable,
    wasi: WasiCtx,
    pub(crate) store_limits: StoreLimits,
    shared: Arc<Shared>,
    handler: Arc<dyn Handler>,
    stop: watch::Receiver<bool>,
    pub(crate) meter: CpuMeter,
    /// Pending acks still in the table, alone or in batches (a batch counts its messages,
    /// and at least one): the host takes them out after the call, but a component could
    /// keep sending without handing them back.
    pending_acks: usize,
    /// A subscription instance's place to leave its subscriber if it is lost, for the
    /// instance that replaces it (`None`: nothing replaces this instance).
    handover: Option<Handover>,
}

impl InstanceState {
    /// State for a new instance. The WASI context grants nothing: no files, no
    /// sockets, no environment, no arguments; stdout and stderr are discarded.
    pub(crate) fn new(
        shared: Arc<Shared>,
        handler: Arc<dyn Handler>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(shared.limits.memory_bytes)
            .instances(16)
            .tables(16)
            .memories(4)
            .trap_on_grow_failure(true)
            .build();
        Self {
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().build(),
            store_limits,
            shared,
            handler,
            stop,
            meter: CpuMeter::new(),
            pending_acks: 0,
            handover: None,
        }
    }

    pub(crate) fn sandbox(&self) -> &SandboxLimits {
        &self.shared.limits
    }

    pub(crate) fn pool(&self) -> &ClientPool {
        &self.shared.pool
    }

    pub(crate) fn handler(&self) -> Arc<dyn Handler> {
        self.handler.clone()
    }

    /// Starts timing a host import: its duration does not count against the CPU budget.
    pub(crate) fn host_time(&self) -> HostTime {
        self.meter.in_host()
    }

    /// Refuses to send `adding` messages that would leave the instance holding more
    /// pending acks than its batch limit.
    pub(crate) fn check_pending_acks(&self, adding: usize) -> Result<(), TransportError> {
        let limit = self.sandbox().max_batch;
        if self.pending_acks.saturating_add(adding) > limit as usize {
            let held = self.pending_acks;
            return Err(TransportError::Refused(format!(
                "the component holds {held} pending acks and the host limit is {limit}: hand them back before sending {adding} more"
            )));
        }
        Ok(())
    }

    pub(crate) fn push_pending_ack(
        &mut self,
        pending: PendingAck,
    ) -> wasmtime::Result<Resource<PendingAck>> {
        let resource = self.table.push(pending)?;
        self.pending_acks += 1;
        Ok(resource)
    }

    pub(crate) fn push_pending_batch(
        &mut self,
        batch: PendingBatch,
    ) -> wasmtime::Result<Resource<PendingBatch>> {
        let weight = batch.weight();
        let resource = self.table.push(batch)?;
        self.pending_acks += weight;
        Ok(resource)
    }

    /// Pending acks the component holds: after a call, ones it never handed back.
    pub(crate) fn pending_acks(&self) -> usize {
        self.pending_acks
    }

    /// Takes a pending ack out of the table, to await it or to forget it.
    pub(crate) fn take_pending_ack(
        &mut self,
        pending: Resource<PendingAck>,
    ) -> wasmtime::Result<PendingAck> {
        let pending = self.table.delete(pending)?;
        self.pending_acks = self.pending_acks.saturating_sub(1);
        Ok(pending)
    }

    /// Takes a pending batch out of the table, to await it or to forget it.
    pub(crate) fn take_pending_batch(
        &mut self,
        batch: Resource<PendingBatch>,
    ) -> wasmtime::Result<PendingBatch> {
        let batch = self.table.delete(batch)?;
        self.pending_acks = self.pending_acks.saturating_sub(batch.weight());
        Ok(batch)
    }

    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    pub(crate) fn handover(&self) -> Option<Handover> {
        self.handover.clone()
    }

    /// Makes this instance one that is replaced when lost: its subscribers are kept for
    /// the next instance of the same subscription.
    pub(crate) fn hand_over_to(&mut self, handover: Handover) {
        self.handover = Some(handover);
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for InstanceState {}
