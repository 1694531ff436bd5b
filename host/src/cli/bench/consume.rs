//! Consuming: single mode with a no-op handler (S3), and parallel mode with a handler that
//! sleeps 1 ms, at three maxAckPending (S4).

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use jetstream_pubsub_host::{AppStatus, Message, PubSub};
use tokio::sync::Notify;

use super::report::{median, ratio_line, throughput_lines, throughput_report, verdict};
use super::rounds::{Side, Sides, Topic, rate};
use super::{Bench, Failure, STALL};

/// Counts handled messages and notes when the first and the `target`-th were handled.
pub(super) struct Counter {
    target: usize,
    handled: AtomicUsize,
    first: OnceLock<Instant>,
    last: OnceLock<Instant>,
    done: Notify,
}

impl Counter {
    pub(super) fn new(target: usize) -> Arc<Self> {
        Arc::new(Self {
            target,
            handled: AtomicUsize::new(0),
            first: OnceLock::new(),
            last: OnceLock::new(),
            done: Notify::new(),
        })
    }

    pub(super) fn hit(&self) {
        let now = Instant::now();
        let n = self.handled.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 {
            let _ = self.first.set(now);
        }
        if n == self.target {
            let _ = self.last.set(now);
            self.done.notify_one();
        }
    }

    /// Waits for the target; fails when nothing moves for [`STALL`].
    pub(super) async fn wait(&self, what: &str) -> Result<(), Failure> {
        let mut seen = 0;
        loop {
            if tokio::time::timeout(STALL, self.done.notified())
                .await
                .is_ok()
            {
                return Ok(());
            }
            let now = self.handled.load(Ordering::Relaxed);
            if now >= self.target {
                return Ok(());
            }
            if now == seen {
                return Err(Failure::Failed(format!(
                    "{what}: stalled at {now} of {} messages",
                    self.target
                )));
            }
            seen = now;
        }
    }

    /// Messages per second between the first and the last handled message.
    pub(super) fn rate(&self) -> f64 {
        match (self.first.get(), self.last.get()) {
            (Some(first), Some(last)) => rate(self.target.saturating_sub(1), *last - *first),
            _ => 0.0,
        }
    }
}

/// S3.
pub(super) async fn single(b: &Bench) -> Result<(), Failure> {
    let count = b.sizes.consume;
    let samples = b
        .alternate(
            Sides::RAW_AND_COMPONENT,
            "3 consume-single",
            || {
                b.on_topic("s3", |topic| async move {
                    b.fill(&topic.subject, count).await?;
                    let counter = Counter::new(count);
                    let mut messages = b.raw_consumer(&topic, 0).await?;
                    for _ in 0..count {
                        let message = tokio::time::timeout(STALL, messages.next())
                            .await
                            .map_err(|_| Failure::Failed("raw consume stalled".into()))?
                            .ok_or_else(|| Failure::Failed("raw consumer ended".into()))??;
                        counter.hit();
                        message.ack().await?;
                    }
                    Ok(counter.rate())
                })
            },
            || {
                b.on_topic("s3", |topic| async move {
                    b.fill(&topic.subject, count).await?;
                    component_single(b, &topic, count).await
                })
            },
        )
        .await?;
    throughput_report(
        b,
        &format!(
            "3  consume, explicit ack, single mode, no-op handler ({count} messages per run; first to last delivery)"
        ),
        "S3 consume-single",
        &samples,
        0.90,
    );
    Ok(())
}

/// Consumes the `count` messages `topic` holds through the component (`b.publisher`),
/// single mode, no-op handler: messages per second, first to last delivery.
pub(super) async fn component_single(
    b: &Bench,
    topic: &Topic,
    count: usize,
) -> Result<f64, Failure> {
    let counter = Counter::new(count);
    let handler = {
        let counter = counter.clone();
        move |_message: Message| {
            counter.hit();
            async { AppStatus::Success }
        }
    };
    let subscription = b.publisher.subscribe(&topic.subject, handler).await?;
    let waited = counter.wait("component consume").await;
    subscription.stop().await?;
    waited?;
    Ok(counter.rate())
}

/// The 1 ms handler of scenario 4.
const HANDLER_SLEEP: Duration = Duration::from_millis(1);

/// S4.
pub(super) async fn parallel(b: &Bench) -> Result<(), Failure> {
    let mut results = Vec::new();
    for (max_ack_pending, count) in b.sizes.parallel {
        let parallel: PubSub = b
            .runtime
            .pubsub(vec![
                ("natsURL".into(), b.url.clone()),
                ("concurrency".into(), "parallel".into()),
                ("maxAckPending".into(), max_ack_pending.to_string()),
            ])
            .await?;
        let parallel = &parallel;
        let samples = b
            .alternate(
                Sides::RAW_AND_COMPONENT,
                &format!("4 consume-parallel maxAckPending {max_ack_pending}"),
                || {
                    b.on_topic("s4", |topic| async move {
                        b.fill(&topic.subject, count).await?;
                        let counter = Counter::new(count);
                        let mut messages = b.raw_consumer(&topic, max_ack_pending).await?;
                        for _ in 0..count {
                            let message = tokio::time::timeout(STALL, messages.next())
                                .await
                                .map_err(|_| Failure::Failed("raw consume stalled".into()))?
                                .ok_or_else(|| Failure::Failed("raw consumer ended".into()))??;
                            let counter = counter.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(HANDLER_SLEEP).await;
                                counter.hit();
                                let _ = message.ack().await;
                            });
                        }
                        counter.wait("raw parallel consume").await?;
                        Ok(counter.rate())
                    })
                },
                || {
                    b.on_topic("s4", |topic| async move {
                        b.fill(&topic.subject, count).await?;
                        let counter = Counter::new(count);
                        let handler = {
                            let counter = counter.clone();
                            move |_message: Message| {
                                let counter = counter.clone();
                                async move {
                                    tokio::time::sleep(HANDLER_SLEEP).await;
                                    counter.hit();
                                    AppStatus::Success
                                }
                            }
                        };
                        let subscription = parallel.subscribe(&topic.subject, handler).await?;
                        let waited = counter.wait("component parallel consume").await;
                        subscription.stop().await?;
                        waited?;
                        Ok(counter.rate())
                    })
                },
            )
            .await?;
        parallel.close().await?;
        results.push((max_ack_pending, count, samples));
    }
    b.out.line(
        "\n4  consume, parallel mode, handler sleeps 1 ms (raw: one task per message, bounded by maxAckPending)",
    );
    for (max_ack_pending, count, samples) in &results {
        b.out.line(&format!(
            "   maxAckPending {max_ack_pending} ({count} messages per run)"
        ));
        throughput_lines(b, samples, "msg/s");
    }
    let median_of = |max_ack_pending: i64, side: Side| {
        results
            .iter()
            .find(|(m, _, _)| *m == max_ack_pending)
            .map_or(0.0, |(_, _, s)| {
                median(match side {
                    Side::Raw => &s.raw,
                    Side::Component => &s.component,
                })
            })
    };
    let scaling = |side| median_of(100, side) / median_of(1, side).max(1e-9);
    let component_scaling = scaling(Side::Component);
    if b.side.is_none() {
        b.out.line(&format!(
            "   scaling maxAckPending 100 / 1: component {component_scaling:.1}x, raw {:.1}x   target >= 50x   {}",
            scaling(Side::Raw),
            verdict(component_scaling >= 50.0)
        ));
    }
    // Targets from issue 21: none at 100, where the handler's sleep bounds both sides.
    for (max_ack_pending, target) in [(100, f64::NAN), (1000, 0.90)] {
        if let Some((_, _, samples)) = results.iter().find(|(m, _, _)| *m == max_ack_pending) {
            ratio_line(
                b,
                &format!("S4 consume-parallel (maxAckPending {max_ack_pending})"),
                samples,
                target,
            );
        }
    }
    Ok(())
}
