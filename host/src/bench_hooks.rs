//! What `jetstream-pubsub bench` needs of the runtime beyond the public API. Only with the
//! `cli` feature, which the binary requires.
//!
//! The bench reports what the sandbox costs by itself: making an instance and nothing else,
//! calling the component without a fiber, loading a precompiled component, and a runtime
//! set up for valgrind or perf. None of that is for production: an instance nothing can
//! call, one whose imports all trap, an `unsafe` deserialization. An embedder who builds
//! the library with `default-features = false` compiles none of it.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use wasmtime::Store;
use wasmtime::component::{Component, Linker, TypedFunc};

use crate::error::Error;
use crate::runtime::load_error;
use crate::{Runtime, RuntimeBuilder};

pub use crate::runtime::Profiling;

/// The interface the component exports (`wit/pubsub.wit`), as its instance names it.
const PUBSUB_EXPORT: &str = "dapr:jetstream/pubsub@0.1.0";

/// Sets up the runtime `builder` builds for a profiler (see [`Profiling`]).
pub fn profiling(mut builder: RuntimeBuilder, profiling: Profiling) -> RuntimeBuilder {
    builder.profiling = profiling;
    builder
}

/// Makes one instance of `runtime`'s component and drops it, doing nothing else: what the
/// sandbox costs per subscription, without the component's `init` and `subscribe`.
pub async fn instantiate(runtime: &Runtime) -> Result<(), Error> {
    let (_never, stop) = watch::channel(false);
    runtime
        .instantiate(crate::app::no_subscriber(), stop)
        .await
        .map(drop)
}

/// An instance of the component called without a fiber (S1s): the floor of a design that
/// entered the component synchronously. Its imports all trap, so only `features` can be
/// called.
pub struct SyncEntry {
    store: Store<()>,
    features: TypedFunc<(), (Vec<String>,)>,
}

impl SyncEntry {
    /// An instance of `runtime`'s component, on its engine, linked with traps only.
    pub fn new(runtime: &Runtime) -> Result<Self, Error> {
        let component = runtime.pre.instance_pre().component();
        // Wasmtime requires every call of a store to run on a fiber once the store holds an
        // async import; linked with traps only, this one is called on the caller's stack.
        let mut linker = Linker::<()>::new(&runtime.engine);
        linker
            .define_unknown_imports_as_traps(component)
            .map_err(load_error)?;
        let mut store = Store::new(&runtime.engine, ());
        // The epoch ticks for the engine's other instances; this one has no CPU budget.
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = linker
            .instantiate(&mut store, component)
            .map_err(load_error)?;
        let pubsub = instance
            .get_export_index(&mut store, None, PUBSUB_EXPORT)
            .ok_or_else(|| Error::Load(format!("the component exports no {PUBSUB_EXPORT}")))?;
        let features = instance
            .get_export_index(&mut store, Some(&pubsub), "features")
            .ok_or_else(|| Error::Load(format!("{PUBSUB_EXPORT} has no `features`")))?;
        let features = instance
            .get_typed_func(&mut store, features)
            .map_err(load_error)?;
        Ok(Self { store, features })
    }

    /// Calls the component's `features` on the caller's stack.
    pub fn features(&mut self) -> Result<Vec<String>, Error> {
        let (features,) = self.features.call(&mut self.store, ())?;
        Ok(features)
    }
}

/// Compiles `wasm` ahead of time on `runtime`'s engine, then times loading the result
/// (`Component::deserialize`, without linking): what a host shipping precompiled
/// components would pay at start instead of a compile.
pub fn load_precompiled(runtime: &Runtime, wasm: &[u8]) -> Result<Duration, Error> {
    let bytes = runtime
        .engine
        .precompile_component(wasm)
        .map_err(load_error)?;
    let started = Instant::now();
    // SAFETY: `deserialize` requires bytes made by `precompile_component` with a
    // compatible engine; these were made by this very engine a moment ago.
    let component =
        unsafe { Component::deserialize(&runtime.engine, &bytes) }.map_err(load_error)?;
    let elapsed = started.elapsed();
    drop(component);
    Ok(elapsed)
}
