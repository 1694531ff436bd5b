//! The engine, the linker and the pre-instantiated component: built once per process,
//! then every instance (the publisher, one per subscription) is a cheap `instantiate`.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, PoolingAllocationConfig, Store, UpdateDeadline};

use crate::app::Handler;
use crate::bindings::pubsub::Guest;
use crate::bindings::{JetstreamPubsub, JetstreamPubsubPre};
use crate::error::Error;
use crate::health::Health;
use crate::instance::{InstanceState, Shared};
use crate::metrics::Labels;
use crate::sandbox::{SandboxLimits, SandboxPolicy};
use crate::transport::ClientPool;

/// The component this host was built with (`guest/`, compiled for `wasm32-wasip2`).
pub const EMBEDDED_COMPONENT: &[u8] = include_bytes!(env!("GUEST_WASM"));

/// Loads the component and makes instances of it.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) pre: JetstreamPubsubPre<InstanceState>,
    pub(crate) shared: Arc<Shared>,
    /// The labels of every metric this runtime's instances record.
    pub(crate) labels: Labels,
    /// Where this runtime and every runtime made from it report their health.
    pub(crate) health: Arc<Health>,
}

/// Builds a [`Runtime`]: which component, which limits, which servers and files.
pub struct RuntimeBuilder {
    component: ComponentSource,
    limits: SandboxLimits,
    policy: SandboxPolicy,
    /// Set by `bench_hooks::profiling` only: the default everywhere else.
    pub(crate) profiling: Profiling,
}

/// What a profiler needs of the runtime, for `jetstream-pubsub bench` (`bench_hooks`, with
/// the `cli` feature); an embedder has no use for it in production.
#[derive(Clone, Copy, Debug, Default)]
pub struct Profiling {
    /// A runtime valgrind can run: the pool reserves 8 TB of address space for its
    /// 1,024 instances, which valgrind cannot map. This one holds 16 instances with
    /// 256 MiB memory reservations, so its compiled code checks bounds explicitly: count
    /// instructions with it, do not time it.
    pub valgrind: bool,
    /// Writes `/tmp/perf-PID.map`, so `perf` and callgrind can name the component's
    /// functions (by their Rust names, for a component built with its name section).
    pub perf_map: bool,
}

enum ComponentSource {
    Embedded,
    File(std::path::PathBuf),
    Bytes(Vec<u8>),
}

impl RuntimeBuilder {
    /// Loads the component from a `.wasm` file instead of the embedded one.
    pub fn component_file(mut self, path: impl AsRef<Path>) -> Self {
        self.component = ComponentSource::File(path.as_ref().to_path_buf());
        self
    }

    /// Loads the component from bytes instead of the embedded one.
    pub fn component_bytes(mut self, bytes: Vec<u8>) -> Self {
        self.component = ComponentSource::Bytes(bytes);
        self
    }

    /// Sets the sandbox limits of every instance.
    pub fn limits(mut self, limits: SandboxLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets which servers the component may make the host connect to and which files it
    /// may make the host read. Without it, every server and file is allowed
    /// ([`SandboxPolicy::new`]): set one whenever the component is not your own build.
    pub fn policy(mut self, policy: SandboxPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Compiles the component and type-checks its imports once.
    pub fn build(self) -> Result<Runtime, Error> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Preemption for runaway guests: every call gets a deadline in epoch ticks.
        config.epoch_interruption(true);
        if self.profiling.perf_map {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let instances = if self.profiling.valgrind {
            config
                .memory_reservation(VALGRIND_MEMORY_RESERVATION)
                .memory_guard_size(VALGRIND_MEMORY_GUARD);
            VALGRIND_MAX_INSTANCES
        } else {
            MAX_INSTANCES
        };
        // Pooling: instances, memories and the fibers async calls run on come from
        // pre-reserved slots. On demand, every call into an instance would map and unmap
        // a fresh fiber stack (measured: ~15% of an awaited publish).
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .total_core_instances(instances * 8)
            .total_memories(instances * 2)
            .total_tables(instances * 8)
            .total_stacks(instances)
            .max_memory_size(self.limits.memory_bytes);
        config.allocation_strategy(pool);
        let engine = Engine::new(&config).map_err(load_error)?;
        spawn_epoch_ticker(&engine);
        let component = match &self.component {
            ComponentSource::Embedded => Component::new(&engine, EMBEDDED_COMPONENT),
            ComponentSource::Bytes(bytes) => Component::new(&engine, bytes),
            ComponentSource::File(path) => Component::from_file(&engine, path),
        }
        .map_err(load_error)?;
        let mut linker: Linker<InstanceState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(load_error)?;
        JetstreamPubsub::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(load_error)?;
        let pre = linker.instantiate_pre(&component).map_err(load_error)?;
        let pre = JetstreamPubsubPre::new(pre).map_err(load_error)?;
        let shared = Arc::new(Shared {
            pool: ClientPool::new(self.limits.max_clients),
            limits: self.limits,
            policy: Arc::new(self.policy),
        });
        let health = Arc::new(Health::default());
        health.watch_runtime(&shared);
        Ok(Runtime {
            engine,
            pre,
            shared,
            labels: Labels::default(),
            health,
        })
    }
}

/// A failure to compile, link or instantiate the component.
pub(crate) fn load_error(err: wasmtime::Error) -> Error {
    Error::Load(format!("{err:#}"))
}

/// A live component instance and its store. Calls into it are serialised by `&mut`.
pub(crate) struct Instance {
    pub(crate) store: Store<InstanceState>,
    pub(crate) bindings: JetstreamPubsub,
}

impl Instance {
    /// The exports and the store for one call, with the CPU budget restarted.
    pub(crate) fn call(&mut self) -> (&Guest, &mut Store<InstanceState>) {
        self.store.data_mut().meter.begin_call();
        self.store.set_epoch_deadline(1);
        (self.bindings.dapr_jetstream_pubsub(), &mut self.store)
    }
}

/// Live instances one runtime can hold: the publisher and a thousand subscriptions.
const MAX_INSTANCES: u32 = 1_024;

/// The pool of a runtime for valgrind ([`Profiling::valgrind`]): small enough to map.
const VALGRIND_MAX_INSTANCES: u32 = 16;
const VALGRIND_MEMORY_RESERVATION: u64 = 1 << 28;
const VALGRIND_MEMORY_GUARD: u64 = 1 << 16;

/// How often the engine's epoch advances: the granularity of the CPU budget.
const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// Advances the engine's epoch until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(err) = spawned {
        tracing::error!(error = %err, "cannot start the epoch thread: runaway guests will not be stopped");
    }
}

impl Runtime {
    /// A builder for the embedded component with default limits.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            component: ComponentSource::Embedded,
            limits: SandboxLimits::default(),
            policy: SandboxPolicy::default(),
            profiling: Profiling::default(),
        }
    }

    /// The embedded component with default limits.
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// A fresh instance delivering to `handler`; `stop` ends its pumps early.
    pub(crate) async fn instantiate(
        &self,
        handler: Arc<dyn Handler>,
        stop: watch::Receiver<bool>,
    ) -> Result<Instance, Error> {
        let mut store = Store::new(
            &self.engine,
            InstanceState::new(self.shared.clone(), &self.labels, handler, stop),
        );
        store.limiter(|state| &mut state.store_limits);
        // At each tick the call's compute time (host imports excluded) is checked against
        // the budget; under it, the guest yields to the executor and goes on.
        let budget = self.shared.limits.cpu_per_call;
        store.epoch_deadline_callback(move |store| {
            let used = store.data().meter.guest_time();
            if used > budget {
                return Err(wasmtime::Error::msg(format!(
                    "the component computed for more than {budget:?} in one call (CPU budget)"
                )));
            }
            Ok(UpdateDeadline::Yield(1))
        });
        store.set_epoch_deadline(1);
        let bindings = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(load_error)?;
        Ok(Instance { store, bindings })
    }

    /// The same compiled component and limits under another sandbox policy, with NATS
    /// clients of its own: no recompilation. A host serving several users' components
    /// (one per Dapr Component YAML, as `jetstream-pubsub serve` does) gives each the
    /// servers and files its own configuration names.
    pub fn with_policy(&self, policy: SandboxPolicy) -> Runtime {
        let shared = Arc::new(Shared {
            pool: ClientPool::new(self.shared.limits.max_clients),
            limits: self.shared.limits.clone(),
            policy: Arc::new(policy),
        });
        self.health.watch_runtime(&shared);
        Runtime {
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            shared,
            labels: self.labels.clone(),
            health: self.health.clone(),
        }
    }

    /// The same runtime (clients, limits, policy), whose metrics carry the label
    /// `component="NAME"`: a host running several components tells them apart
    /// (`jetstream-pubsub serve` names each by its Dapr component instance).
    pub fn named(&self, component: &str) -> Runtime {
        Runtime {
            labels: Labels::named(component),
            ..self.clone()
        }
    }

    /// `Ok` while every NATS connection of this runtime, and of every runtime made from
    /// it, is up and every subscription is pumping; otherwise why not, in one line (for a
    /// readiness probe, as `jetstream-pubsub` serves at `/readyz`). A runtime with no
    /// connection and no subscription yet is ready.
    pub fn readiness(&self) -> Result<(), String> {
        self.health.readiness()
    }

    /// Flushes and closes every NATS connection the runtime's instances opened.
    pub async fn shutdown(&self) {
        self.shared.pool.drain_all().await;
    }
}
