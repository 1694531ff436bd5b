//! Dapr's `pubsub.jetstream` as a WebAssembly component.
//!
//! Every Dapr semantic lives here: metadata parsing and validation ([`metadata`]), the
//! connection it describes ([`connect`]), the consumer a subscription needs ([`consumer`]),
//! whether it may bind to an existing one ([`binding`]), how it gets and keeps that
//! consumer ([`attach`], [`watch`]), what a publish sends ([`publish`]), what the
//! application sees ([`message`]), how each delivery is answered ([`disposition`]) and what
//! a transport failure means to Dapr ([`failure`]). These modules are plain Rust, tested
//! natively. [`component`] is the thin wit-bindgen adapter that wires them to the host's
//! transport.

pub mod attach;
pub mod binding;
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

// Allocator infrastructure, not a Dapr semantic: private, compiled where it is the
// component's allocator, and natively for its tests.
#[cfg(any(
    test,
    all(
        feature = "block-cache",
        target_family = "wasm",
        not(target_feature = "atomics")
    )
))]
mod block_cache;

/// The component's allocator: wasi-libc's, behind a cache of small freed blocks
/// (`block_cache`). Only where the component runs: one thread, no atomics. Without the
/// `block-cache` feature (`--no-default-features`) the component uses wasi-libc's
/// allocator alone, for comparison.
#[cfg(all(
    feature = "block-cache",
    target_family = "wasm",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: block_cache::BlockCache<std::alloc::System> =
    block_cache::BlockCache::new(std::alloc::System);
