//! Dapr's `pubsub.jetstream` as a WebAssembly component.
//!
//! Every Dapr semantic lives here: metadata parsing and validation ([`metadata`]), the
//! consumer a subscription needs ([`consumer`]), whether it may bind to an existing one
//! ([`binding`]), what a publish sends ([`publish`]), what the application sees
//! ([`message`]) and how each delivery is answered ([`disposition`]). These modules are
//! plain Rust, tested natively. [`component`] is the thin wit-bindgen adapter that wires
//! them to the host's transport.

pub mod attach;
pub mod binding;
pub mod block_cache;
// The adapter exists only in the component: natively there is no host to import from,
// and the export symbols (`dapr:jetstream/pubsub@0.1.0#...`) cannot be linked.
#[cfg(target_family = "wasm")]
pub mod component;
pub mod connect;
pub mod consumer;
pub mod disposition;
pub mod failure;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod message;
pub mod metadata;
pub mod publish;
pub mod watch;

/// The component's allocator: wasi-libc's, behind a cache of small freed blocks
/// ([`block_cache`]). Only where the component runs: one thread, no atomics.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: block_cache::BlockCache<std::alloc::System> =
    block_cache::BlockCache::new(std::alloc::System);
