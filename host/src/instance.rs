//! Per-instance state: what one component instance (one `Store`) owns.

use std::sync::Arc;

use tokio::sync::watch;
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::app::Handler;
use crate::bindings::types;
use crate::sandbox::{CpuMeter, HostTime, SandboxLimits};
use crate::transport::ClientPool;

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

    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
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
