//! What the sandbox costs by itself (S6): memory per idle subscription, instantiation,
//! compiling and loading the component, and subscription setup against a raw consumer.

use std::time::{Duration, Instant};

use async_nats::jetstream::stream;
use jetstream_pubsub_host::bench_hooks;
use jetstream_pubsub_host::{AppStatus, Message, Runtime, Subscription};

use super::machine::resident_bytes;
use super::report::{max, median, min, ratio_line, throughput_lines, verdict};
use super::rounds::Sides;
use super::{Bench, Failure};

/// Resident memory of this process with idle component subscriptions.
pub(super) struct IdleMemory {
    subscriptions: usize,
    before: u64,
    after: u64,
}

/// Subscribes `idle_subscriptions` times and reads how much the process grew; the
/// first of S6, run before every other scenario.
pub(super) async fn idle_memory(b: &Bench) -> Result<IdleMemory, Failure> {
    let n = b.sizes.idle_subscriptions;
    b.out
        .progress(&format!("6 sandbox: {n} idle subscriptions"));
    let run_id = b.run_id;
    let subject = |i: usize| format!("bench.{run_id}.idle.{i}");
    let stream = format!("BENCH_{run_id}_idle");
    b.js.create_stream(stream::Config {
        name: stream.clone(),
        subjects: vec![format!("bench.{run_id}.idle.*")],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let before = resident_bytes();
    let mut subscriptions: Vec<Subscription> = Vec::with_capacity(n);
    let mut result = Ok(());
    for i in 0..n {
        match b
            .publisher
            .subscribe(&subject(i), |_message: Message| async {
                AppStatus::Success
            })
            .await
        {
            Ok(subscription) => subscriptions.push(subscription),
            Err(err) => {
                result = Err(Failure::Failed(format!("idle subscription {i}: {err}")));
                break;
            }
        }
    }
    // Let every pump reach its first wait.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = resident_bytes();
    for subscription in subscriptions {
        subscription.stop().await?;
    }
    let _ = b.js.delete_stream(&stream).await;
    result.map(|()| IdleMemory {
        subscriptions: n,
        before,
        after,
    })
}

/// S6, with the memory measured first.
pub(super) async fn cost(
    b: &Bench,
    wasm: &[u8],
    first_compile: Duration,
    memory: IdleMemory,
) -> Result<(), Failure> {
    // Subscription setup, the one part of the sandbox's cost with a raw counterpart.
    let setups = b.sizes.setups;
    let samples = b
        .alternate(
            Sides::RAW_AND_COMPONENT,
            "6 sandbox: subscription setup",
            || {
                b.on_topic("s6", |topic| async move {
                    let started = Instant::now();
                    for _ in 0..setups {
                        let messages = b.raw_consumer(&topic, 0).await?;
                        drop(messages);
                    }
                    Ok(started.elapsed().as_secs_f64() * 1e6 / setups as f64)
                })
            },
            || {
                b.on_topic("s6", |topic| async move {
                    let started = Instant::now();
                    let mut subscriptions = Vec::with_capacity(setups);
                    for _ in 0..setups {
                        subscriptions.push(
                            b.publisher
                                .subscribe(&topic.subject, |_message: Message| async {
                                    AppStatus::Success
                                })
                                .await?,
                        );
                    }
                    let elapsed = started.elapsed();
                    for subscription in subscriptions {
                        subscription.stop().await?;
                    }
                    Ok(elapsed.as_secs_f64() * 1e6 / setups as f64)
                })
            },
        )
        .await?;

    // Instantiation from the pre-instantiated component.
    let mut per_instance = Vec::new();
    for round in 0..b.rounds {
        b.out.progress(&format!(
            "6 sandbox: instantiation round {}/{}",
            round + 1,
            b.rounds
        ));
        for _ in 0..b.sizes.instantiations.min(100) {
            bench_hooks::instantiate(&b.runtime).await?;
        }
        let started = Instant::now();
        for _ in 0..b.sizes.instantiations {
            bench_hooks::instantiate(&b.runtime).await?;
        }
        per_instance.push(started.elapsed().as_secs_f64() * 1e6 / b.sizes.instantiations as f64);
    }

    // Compiling the component, and loading it precompiled.
    let mut compiles = vec![first_compile.as_secs_f64() * 1e3];
    let mut loads = Vec::new();
    for round in 0..b.rounds.min(3) {
        b.out.progress(&format!(
            "6 sandbox: compile round {}/{}",
            round + 1,
            b.rounds.min(3)
        ));
        let started = Instant::now();
        let runtime = Runtime::builder().component_bytes(wasm.to_vec()).build()?;
        compiles.push(started.elapsed().as_secs_f64() * 1e3);
        loads.push(bench_hooks::load_precompiled(&runtime, wasm)?.as_secs_f64() * 1e3);
    }

    let per_subscription =
        memory.after.saturating_sub(memory.before) as f64 / memory.subscriptions.max(1) as f64;
    let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
    b.out.line("\n6  cost of the sandbox");
    b.out.line(&format!(
        "   instantiation        {:>9.1} us   min {:.1} max {:.1}   target < 50 us   {}",
        median(&per_instance),
        min(&per_instance),
        max(&per_instance),
        verdict(median(&per_instance) < 50.0)
    ));
    b.out.line(&format!(
        "   per subscription     {:>9.2} MiB  (RSS growth over {} idle subscriptions / {})   target < 2 MiB   {}",
        mib(per_subscription),
        memory.subscriptions,
        memory.subscriptions,
        verdict(mib(per_subscription) < 2.0)
    ));
    b.out.line(&format!(
        "   host RSS, {} idle    {:>9.1} MiB  (before them {:.1} MiB)   target < 60 MiB   {}",
        memory.subscriptions,
        mib(memory.after as f64),
        mib(memory.before as f64),
        verdict(mib(memory.after as f64) < 60.0)
    ));
    b.out.line(&format!(
        "   component .wasm      {:>9} bytes   target < 300 KB   {}",
        wasm.len(),
        verdict(wasm.len() < 300_000)
    ));
    b.out.line(&format!(
        "   compile (Runtime)    {:>9.1} ms   min {:.1} max {:.1}",
        median(&compiles),
        min(&compiles),
        max(&compiles)
    ));
    b.out.line(&format!(
        "   load precompiled     {:>9.2} ms   min {:.2} max {:.2}",
        median(&loads),
        min(&loads),
        max(&loads)
    ));
    b.out
        .line(&format!("   subscription setup ({setups} per run)"));
    throughput_lines(b, &samples, "us");
    ratio_line(
        b,
        "S6 sandbox (subscription setup time)",
        &samples,
        f64::NAN,
    );
    Ok(())
}
