//! Per-instance state: what one component instance (one `Store`) owns.

use std::sync::Arc;

use tokio::sync::watch;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::app::Handler;
use crate::bindings::types;
use crate::metrics::{self, DeliveryMetrics, Labels};
use crate::sandbox::{CpuMeter, HostTime, LogLimit, SandboxLimits, SandboxPolicy};
use crate::transport::{
    ClientPool, Handover, PendingAck, PendingBatch, SubscriptionHandle, TransportError,
};

/// What every instance of one runtime shares: the NATS clients, the limits and the policy.
pub(crate) struct Shared {
    pub(crate) pool: ClientPool,
    pub(crate) limits: SandboxLimits,
    pub(crate) policy: Arc<SandboxPolicy>,
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
    /// Subscription handles in the table, against `SandboxLimits::max_subscriptions`.
    subscriptions: u32,
    /// What the component may still write to the host's log.
    pub(crate) log_limit: LogLimit,
    /// A subscription instance's place to leave its subscriber if it is lost, for the
    /// instance that replaces it (`None`: nothing replaces this instance).
    handover: Option<Handover>,
    /// The labels of what this instance records.
    pub(crate) labels: Labels,
    /// What delivering to the application records, on a subscription's instance.
    deliveries: Option<Arc<DeliveryMetrics>>,
    /// Counts this instance among the live ones while it lives.
    _live: metrics::Live,
}

impl InstanceState {
    /// State for a new instance. The WASI context grants no files, no environment, no
    /// arguments, and denies every socket address; stdout and stderr are discarded. The
    /// clocks and random numbers are the host's (wasmtime-wasi's defaults).
    pub(crate) fn new(
        shared: Arc<Shared>,
        labels: &Labels,
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
        let mut table = ResourceTable::new();
        table.set_max_capacity(shared.limits.max_resources as usize);
        Self {
            table,
            log_limit: LogLimit::new(&shared.limits),
            subscriptions: 0,
            wasi: WasiCtx::builder().build(),
            store_limits,
            shared,
            handler,
            stop,
            meter: CpuMeter::new(),
            pending_acks: 0,
            handover: None,
            labels: labels.clone(),
            deliveries: None,
            _live: labels.instance(),
        }
    }

    pub(crate) fn sandbox(&self) -> &SandboxLimits {
        &self.shared.limits
    }

    pub(crate) fn policy(&self) -> &SandboxPolicy {
        &self.shared.policy
    }

    pub(crate) fn pool(&self) -> &ClientPool {
        &self.shared.pool
    }

    pub(crate) fn handler(&self) -> Arc<dyn Handler> {
        self.handler.clone()
    }

    /// Makes this a subscription's instance, recording its deliveries with `deliveries`.
    pub(crate) fn record_deliveries(&mut self, deliveries: Arc<DeliveryMetrics>) {
        self.deliveries = Some(deliveries);
    }

    /// What delivering records; a publisher's instance (which never delivers, unless the
    /// component is broken) records under an empty topic.
    pub(crate) fn deliveries(&mut self) -> Arc<DeliveryMetrics> {
        let labels = &self.labels;
        self.deliveries
            .get_or_insert_with(|| Arc::new(labels.delivering("")))
            .clone()
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
            return Err(TransportError::refused(
                "max_batch",
                format!(
                    "the component holds {held} pending acks and the host limit is {limit}: hand them back before sending {adding} more"
                ),
            ));
        }
        Ok(())
    }

    /// Puts a resource the component asked for in the table, or refuses it when the
    /// instance holds `SandboxLimits::max_resources` already: a value the component can
    /// handle, not a trap.
    pub(crate) fn push<T: Send + 'static>(
        &mut self,
        entry: T,
    ) -> wasmtime::Result<Result<Resource<T>, TransportError>> {
        match self.table.push(entry) {
            Ok(resource) => Ok(Ok(resource)),
            Err(wasmtime::component::ResourceTableError::Full) => Ok(Err(TransportError::refused(
                "max_resources",
                format!(
                    "the component holds {} resources, the host limit (max_resources): drop some first",
                    self.table.max_capacity()
                ),
            ))),
            Err(other) => Err(other.into()),
        }
    }

    /// Refuses a subscription over `SandboxLimits::max_subscriptions`.
    pub(crate) fn check_subscriptions(&self) -> Result<(), TransportError> {
        let limit = self.sandbox().max_subscriptions;
        if self.subscriptions >= limit {
            return Err(TransportError::refused(
                "max_subscriptions",
                format!(
                    "the component holds {} subscriptions, the host limit (max_subscriptions) is {limit}",
                    self.subscriptions
                ),
            ));
        }
        Ok(())
    }

    /// Puts a subscription in the table, counted against `max_subscriptions`.
    pub(crate) fn push_subscription(
        &mut self,
        subscription: SubscriptionHandle,
    ) -> wasmtime::Result<Result<Resource<SubscriptionHandle>, TransportError>> {
        let resource = self.push(subscription)?;
        if resource.is_ok() {
            self.subscriptions += 1;
        }
        Ok(resource)
    }

    /// Takes a subscription out of the table (the component dropped it).
    pub(crate) fn take_subscription(
        &mut self,
        subscription: Resource<SubscriptionHandle>,
    ) -> wasmtime::Result<SubscriptionHandle> {
        let subscription = self.table.delete(subscription)?;
        self.subscriptions = self.subscriptions.saturating_sub(1);
        Ok(subscription)
    }

    /// Puts a sent message's pending ack in the place reserved for it (`push` of
    /// [`PendingAck::reserved`] before sending), counting it.
    pub(crate) fn fill_pending_ack(
        &mut self,
        slot: &Resource<PendingAck>,
        pending: PendingAck,
    ) -> wasmtime::Result<()> {
        *self.table.get_mut(slot)? = pending;
        self.pending_acks += 1;
        Ok(())
    }

    /// Puts a sent batch in the place reserved for it (`push` of an empty batch before
    /// sending), counting its weight.
    pub(crate) fn fill_pending_batch(
        &mut self,
        slot: &Resource<PendingBatch>,
        batch: PendingBatch,
    ) -> wasmtime::Result<()> {
        let weight = batch.weight();
        *self.table.get_mut(slot)? = batch;
        self.pending_acks += weight;
        Ok(())
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
