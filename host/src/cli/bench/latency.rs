//! End-to-end latency, publish to handler, at a steady 1,000 msg/s (S5).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use jetstream_pubsub_host::{AppStatus, Message};

use super::report::{max, median, min, no_ratio_line, verdict};
use super::rounds::{Side, Sides};
use super::{Bench, Failure, PAYLOAD, STALL};

/// Latency percentiles of one run, in microseconds.
#[derive(Clone, Copy)]
struct Percentiles {
    p50: f64,
    p99: f64,
    p999: f64,
    samples: usize,
}

/// Latencies in nanoseconds, recorded by handlers.
type Latencies = Arc<Mutex<Vec<u64>>>;

/// A payload carrying its send time: nanoseconds since `base`, little-endian, padded.
fn stamped(base: Instant) -> Vec<u8> {
    let mut payload = vec![b'x'; PAYLOAD];
    let nanos = base.elapsed().as_nanos() as u64;
    payload[..8].copy_from_slice(&nanos.to_le_bytes());
    payload
}

fn record(latencies: &Latencies, base: Instant, payload: &[u8]) {
    let Some(stamp) = payload.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
        return;
    };
    let sent = u64::from_le_bytes(stamp);
    let now = base.elapsed().as_nanos() as u64;
    latencies
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(now.saturating_sub(sent));
}

fn percentiles(latencies: &Latencies) -> Percentiles {
    let mut values = latencies
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    values.sort_unstable();
    let at = |q: f64| {
        if values.is_empty() {
            return f64::NAN;
        }
        let index = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
        values[index] as f64 / 1_000.0
    };
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        samples: values.len(),
    }
}

/// Publishes at 1,000 msg/s for `duration` with `publish`, then waits for the handlers.
async fn steady<F, Fut>(
    duration: Duration,
    base: Instant,
    latencies: &Latencies,
    mut publish: F,
) -> Result<(), Failure>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let started = Instant::now();
    let mut sent = 0usize;
    while started.elapsed() < duration {
        ticks.tick().await;
        publish(stamped(base)).await?;
        sent += 1;
    }
    let deadline = Instant::now() + STALL;
    while latencies.lock().map_or(0, |values| values.len()) < sent {
        if Instant::now() > deadline {
            return Err(Failure::Failed(
                "latency run: messages never arrived".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// S5.
pub(super) async fn end_to_end(b: &Bench) -> Result<(), Failure> {
    let duration = b.sizes.latency;
    let base = Instant::now();
    let samples = b
        .alternate(
            Sides::RAW_AND_COMPONENT,
            "5 latency",
            || {
                b.on_topic("s5", |topic| async move {
                    let latencies = Latencies::default();
                    let mut messages = b.raw_consumer(&topic, 0).await?;
                    let receiver = {
                        let latencies = latencies.clone();
                        tokio::spawn(async move {
                            while let Some(Ok(message)) = messages.next().await {
                                record(&latencies, base, &message.payload);
                                let _ = message.ack().await;
                            }
                        })
                    };
                    let result = steady(duration, base, &latencies, |payload| {
                        let subject = topic.subject.clone();
                        async move {
                            b.js.publish(subject, Bytes::from(payload)).await?.await?;
                            Ok(())
                        }
                    })
                    .await;
                    receiver.abort();
                    result.map(|()| percentiles(&latencies))
                })
            },
            || {
                b.on_topic("s5", |topic| async move {
                    let latencies = Latencies::default();
                    let handler = {
                        let latencies = latencies.clone();
                        move |message: Message| {
                            record(&latencies, base, &message.data);
                            async { AppStatus::Success }
                        }
                    };
                    let subscription = b.publisher.subscribe(&topic.subject, handler).await?;
                    let result = steady(duration, base, &latencies, |payload| {
                        let subject = topic.subject.clone();
                        async move {
                            b.publisher.publish(&subject, payload).await?;
                            Ok(())
                        }
                    })
                    .await;
                    subscription.stop().await?;
                    result.map(|()| percentiles(&latencies))
                })
            },
        )
        .await?;
    b.out.line(&format!(
        "\n5  end-to-end latency publish -> handler at 1,000 msg/s ({:.1} s per run; publisher awaits each PubAck)",
        duration.as_secs_f64()
    ));
    for (side, runs) in [
        (Side::Raw, &samples.raw),
        (Side::Component, &samples.component),
    ] {
        if runs.is_empty() {
            continue;
        }
        let pick = |f: fn(&Percentiles) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        let p99s: Vec<f64> = runs.iter().map(|p| p.p99).collect();
        b.out.line(&format!(
            "   {:<10} p50 {:>7.0} us  p99 {:>7.0} us  p99.9 {:>7.0} us   p99 min {:.0} max {:.0}   ({} samples per run)",
            samples.sides.name(side),
            pick(|p| p.p50),
            pick(|p| p.p99),
            pick(|p| p.p999),
            min(&p99s),
            max(&p99s),
            runs.first().map_or(0, |p| p.samples)
        ));
    }
    if samples.raw.is_empty() || samples.component.is_empty() {
        no_ratio_line(b, "S5 latency");
        return Ok(());
    }
    let component_p99 = median(&samples.component.iter().map(|p| p.p99).collect::<Vec<_>>());
    let raw_p99 = median(&samples.raw.iter().map(|p| p.p99).collect::<Vec<_>>());
    b.out.line(&format!(
        "   component p99 {:.2} ms   target < 2 ms   {}",
        component_p99 / 1_000.0,
        verdict(component_p99 < 2_000.0)
    ));
    b.out.line(&format!(
        "S5 latency ratio {:.2}  (p99, component / raw)",
        component_p99 / raw_p99
    ));
    Ok(())
}
