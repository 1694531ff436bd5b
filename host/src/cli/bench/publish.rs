//! Publishing: one awaited PubAck at a time (S1), what entering the component costs by
//! itself (S1f, S1s), many callers at once (S1c), and pipelined (S2).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use jetstream_pubsub_host::BulkEntry;
use jetstream_pubsub_host::bench_hooks::SyncEntry;

use super::report::throughput_report;
use super::rounds::{Sides, Topic, rate};
use super::{BATCH, BATCHES_PER_TURN, Bench, CONCURRENT_CALLERS, Failure, PAYLOAD, TURN};

/// S1, then its floors S1f and S1s, then S1c.
pub(super) async fn awaited(b: &Bench) -> Result<(), Failure> {
    let count = b.sizes.publish_awaited;
    let payload = Bytes::from(vec![b'x'; PAYLOAD]);
    let samples = b
        .in_turns(
            Sides::RAW_AND_COMPONENT,
            "1 publish-awaited",
            "s1",
            (count, TURN),
            |topic| {
                let payload = &payload;
                async move {
                    b.raw_publish(&topic.subject, payload).await?;
                    Ok(1)
                }
            },
            |topic| publish_once(b, topic, payload.to_vec()),
        )
        .await?;
    throughput_report(
        b,
        &format!(
            "1  publish, one awaited PubAck at a time ({PAYLOAD} B, {count} messages per side and round, in turns of {TURN})"
        ),
        "S1 publish-awaited",
        &samples,
        0.95,
    );
    entry_floor(b, &payload).await?;
    concurrent(b, &payload).await
}

/// What entering the component costs by itself in scenario 1: the raw publish against the
/// same raw publish preceded by a call to `features`, the component's smallest export (it
/// takes nothing, touches no NATS and returns two short strings). No component that is
/// called once per publish can do better than this ratio on the machine at hand. S1s makes
/// the same call on an instance linked without async imports, which wasmtime runs on the
/// caller's stack instead of a fiber: the floor of a synchronous design, which would need
/// a transport that never waits inside a call (docs/benchmarks.md).
async fn entry_floor(b: &Bench, payload: &Bytes) -> Result<(), Failure> {
    let count = b.sizes.publish_awaited;
    let synchronous = Mutex::new(SyncEntry::new(&b.runtime)?);
    let raw_publish = |topic: Arc<Topic>| async move {
        b.raw_publish(&topic.subject, payload).await?;
        Ok(1)
    };
    for entry in [Entry::Fiber, Entry::Synchronous] {
        let synchronous = &synchronous;
        let names = entry.names();
        let samples = b
            .in_turns(
                Sides::RAW_AND_COMPONENT,
                names.label,
                names.tag,
                (count, TURN),
                raw_publish,
                |topic| async move {
                    match entry {
                        Entry::Fiber => drop(b.publisher.features().await?),
                        Entry::Synchronous => {
                            let mut instance = synchronous
                                .lock()
                                .map_err(|_| Failure::Failed("the S1s instance panicked".into()))?;
                            drop(instance.features()?);
                        }
                    }
                    raw_publish(topic).await
                },
            )
            .await?;
        throughput_report(
            b,
            &format!(
                "{} ({count} messages per side and round, in turns of {TURN})",
                names.description
            ),
            names.scenario,
            &samples,
            f64::NAN,
        );
    }
    Ok(())
}

/// How the floor scenarios enter the component.
#[derive(Clone, Copy)]
enum Entry {
    /// Through the runtime's instance, on a fiber, as every call of the component is.
    Fiber,
    /// On the caller's stack ([`SyncEntry`]).
    Synchronous,
}

/// What the bench calls a floor scenario: its progress label, topic tag, `ratio` line
/// name and heading.
struct EntryNames {
    label: &'static str,
    tag: &'static str,
    scenario: &'static str,
    description: &'static str,
}

impl Entry {
    fn names(self) -> EntryNames {
        match self {
            Entry::Fiber => EntryNames {
                label: "1 entry-floor",
                tag: "s1f",
                scenario: "S1f entry-floor",
                description: "1f the floor of S1: a raw publish, alone and after one call to the component's `features`",
            },
            Entry::Synchronous => EntryNames {
                label: "1 entry-floor-sync",
                tag: "s1s",
                scenario: "S1s entry-floor-sync",
                description: "1s the same floor with the call made synchronously, on the caller's stack, not a fiber",
            },
        }
    }
}

/// Many callers sharing one `PubSub`, each awaiting its own PubAck (a sidecar serving many
/// application requests): it shows whether single publishes overlap or queue behind one
/// another's round trips (issue 21's target: 0.90).
async fn concurrent(b: &Bench, payload: &Bytes) -> Result<(), Failure> {
    let per_caller = (b.sizes.publish_awaited / CONCURRENT_CALLERS).max(1);
    let count = per_caller * CONCURRENT_CALLERS;
    let samples = b
        .alternate(
            Sides::RAW_AND_COMPONENT,
            "1 publish-concurrent",
            || {
                b.on_topic("s1c", |topic| async move {
                    let (js, subject, payload) =
                        (b.js.clone(), topic.subject.clone(), payload.clone());
                    callers_at_once(per_caller, move || {
                        let (js, subject, payload) = (js.clone(), subject.clone(), payload.clone());
                        async move {
                            js.publish(subject, payload).await?.await?;
                            Ok(())
                        }
                    })
                    .await
                })
            },
            || {
                b.on_topic("s1c", |topic| async move {
                    publish_from_callers(b, &topic, per_caller, payload).await
                })
            },
        )
        .await?;
    throughput_report(
        b,
        &format!(
            "1c publish, {CONCURRENT_CALLERS} callers at once, each awaiting its PubAck ({PAYLOAD} B, {count} messages per run)"
        ),
        "S1c publish-concurrent",
        &samples,
        0.90,
    );
    Ok(())
}

/// One publish through the component, its PubAck awaited: one message of S1's component
/// side, and of S7's direct side.
pub(super) async fn publish_once(
    b: &Bench,
    topic: Arc<Topic>,
    payload: Vec<u8>,
) -> Result<usize, Failure> {
    b.publisher.publish(&topic.subject, payload).await?;
    Ok(1)
}

/// `CONCURRENT_CALLERS` callers publishing through the component at once, each awaiting
/// its PubAck: S1c's component side, and S7c's direct side.
pub(super) async fn publish_from_callers(
    b: &Bench,
    topic: &Topic,
    per_caller: usize,
    payload: &Bytes,
) -> Result<f64, Failure> {
    let (publisher, subject, payload) =
        (b.publisher.clone(), topic.subject.clone(), payload.clone());
    callers_at_once(per_caller, move || {
        let (publisher, subject, payload) = (publisher.clone(), subject.clone(), payload.clone());
        async move {
            publisher.publish(&subject, payload.to_vec()).await?;
            Ok(())
        }
    })
    .await
}

/// `CONCURRENT_CALLERS` callers at once, each on a task of its own (as a sidecar serves
/// each application request on its own task), each publishing `per_caller` times and
/// awaiting every PubAck before its next publish: messages per second over all of them.
pub(super) async fn callers_at_once<F, Fut>(per_caller: usize, publish: F) -> Result<f64, Failure>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), Failure>> + Send + 'static,
{
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENT_CALLERS {
        let publish = publish.clone();
        callers.spawn(async move {
            for _ in 0..per_caller {
                publish().await?;
            }
            Ok::<_, Failure>(())
        });
    }
    while let Some(caller) = callers.join_next().await {
        caller.map_err(|err| Failure::Failed(format!("a publishing caller failed: {err}")))??;
    }
    Ok(rate(per_caller * CONCURRENT_CALLERS, started.elapsed()))
}

/// S2.
pub(super) async fn pipelined(b: &Bench) -> Result<(), Failure> {
    let batches = (b.sizes.publish_pipelined / BATCH).max(1);
    let count = batches * BATCH;
    let payload = Bytes::from(vec![b'x'; PAYLOAD]);
    let samples = b
        .in_turns(
            Sides::RAW_AND_COMPONENT,
            "2 publish-pipelined",
            "s2",
            (batches, BATCHES_PER_TURN),
            |topic| {
                let payload = payload.clone();
                async move {
                    b.raw_batch(&topic.subject, &payload, BATCH).await?;
                    Ok(BATCH)
                }
            },
            |topic| {
                let entries = (0..BATCH)
                    .map(|i| BulkEntry {
                        entry_id: i.to_string(),
                        data: payload.to_vec(),
                        ..Default::default()
                    })
                    .collect();
                async move {
                    let results = b
                        .publisher
                        .bulk_publish(&topic.subject, entries, Vec::new())
                        .await?;
                    for result in results {
                        if let Err(err) = result.outcome {
                            return Err(Failure::Failed(format!(
                                "bulk entry {}: {err}",
                                result.entry_id
                            )));
                        }
                    }
                    Ok(BATCH)
                }
            },
        )
        .await?;
    throughput_report(
        b,
        &format!(
            "2  publish pipelined ({PAYLOAD} B, {count} messages per side and round in batches of {BATCH}: bulk_publish / {BATCH} acks in flight; in turns of {BATCHES_PER_TURN} batches)"
        ),
        "S2 publish-pipelined",
        &samples,
        0.85,
    );
    Ok(())
}
