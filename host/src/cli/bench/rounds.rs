//! How the two sides share a round: whole runs in alternation, or turns within the round;
//! and the fresh stream each run gets.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream::stream;
use clap::ValueEnum;

use super::{Bench, Failure};

/// Which implementation a run uses: plain async-nats or the component, or in S7 the
/// component's `PubSub` called directly or through Dapr's pluggable socket ([`Sides`]).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Side {
    Raw,
    Component,
}

impl Side {
    /// Raw first on even rounds, component first on odd ones: drift cancels out.
    pub(super) fn order(round: usize) -> [Side; 2] {
        if round.is_multiple_of(2) {
            [Side::Raw, Side::Component]
        } else {
            [Side::Component, Side::Raw]
        }
    }

    /// Its slot in per-side arrays.
    pub(super) fn index(self) -> usize {
        match self {
            Side::Raw => 0,
            Side::Component => 1,
        }
    }
}

/// What a family of scenarios calls its two sides: the yardstick, in [`Side::Raw`]'s place,
/// and what is measured against it, in [`Side::Component`]'s.
#[derive(Clone, Copy)]
pub(super) struct Sides {
    pub(super) yardstick: &'static str,
    pub(super) measured: &'static str,
}

impl Sides {
    /// Plain async-nats against the component: S1 to S6.
    pub(super) const RAW_AND_COMPONENT: Sides = Sides {
        yardstick: "raw",
        measured: "component",
    };

    /// The component's `PubSub` called directly against the same through Dapr's pluggable
    /// socket: S7.
    pub(super) const DIRECT_AND_SOCKET: Sides = Sides {
        yardstick: "direct",
        measured: "socket",
    };

    pub(super) fn name(self, side: Side) -> &'static str {
        match side {
            Side::Raw => self.yardstick,
            Side::Component => self.measured,
        }
    }
}

/// One figure per round for each side.
pub(super) struct Samples<T> {
    pub(super) sides: Sides,
    pub(super) raw: Vec<T>,
    pub(super) component: Vec<T>,
}

/// A fresh stream with one subject, made for one run and deleted after it.
pub(super) struct Topic {
    pub(super) stream: String,
    pub(super) subject: String,
}

impl Bench {
    /// A fresh file-storage stream for one run.
    async fn topic(&self, tag: &str) -> Result<Topic, Failure> {
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        let topic = Topic {
            stream: format!("BENCH_{}_{tag}_{n}", self.run_id),
            subject: format!("bench.{}.{tag}.{n}", self.run_id),
        };
        self.js
            .create_stream(stream::Config {
                name: topic.stream.clone(),
                subjects: vec![topic.subject.clone()],
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await?;
        Ok(topic)
    }

    async fn remove(&self, topic: &Topic) {
        let _ = self.js.delete_stream(&topic.stream).await;
    }

    /// Runs `run` on a fresh topic, then deletes the stream whatever happened.
    pub(super) async fn on_topic<T, F, Fut>(&self, tag: &str, run: F) -> Result<T, Failure>
    where
        F: FnOnce(Arc<Topic>) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let topic = Arc::new(self.topic(tag).await?);
        let result = run(topic.clone()).await;
        self.remove(&topic).await;
        result
    }

    /// Runs raw and component alternately for every round.
    pub(super) async fn alternate<T, R, FR, C, FC>(
        &self,
        sides: Sides,
        label: &str,
        mut raw: R,
        mut component: C,
    ) -> Result<Samples<T>, Failure>
    where
        R: FnMut() -> FR,
        FR: Future<Output = Result<T, Failure>>,
        C: FnMut() -> FC,
        FC: Future<Output = Result<T, Failure>>,
    {
        let mut samples = Samples {
            sides,
            raw: Vec::new(),
            component: Vec::new(),
        };
        for round in 0..self.rounds {
            for side in Side::order(round) {
                if self.side.is_some_and(|only| only != side) {
                    continue;
                }
                self.out.progress(&format!(
                    "{label}: round {}/{} {}",
                    round + 1,
                    self.rounds,
                    sides.name(side)
                ));
                match side {
                    Side::Raw => samples.raw.push(raw().await?),
                    Side::Component => samples.component.push(component().await?),
                }
            }
        }
        Ok(samples)
    }

    /// Runs `ops` operations per side in every round, the two sides taking turns of `turn`
    /// operations, each side on its own topic. An operation returns how many messages it
    /// moved; a side's rate for the round is its messages over its summed time. Taking
    /// turns within the round, both sides meet the same machine and server: a slow spell of
    /// this shared VM lands on both and cancels out of the ratio, where whole runs in
    /// alternation left S1's ratio ±0.06 from one bench to the next (docs/benchmarks.md).
    pub(super) async fn in_turns<R, FR, C, FC>(
        &self,
        sides: Sides,
        label: &str,
        tag: &str,
        (ops, turn): (usize, usize),
        mut raw: R,
        mut component: C,
    ) -> Result<Samples<f64>, Failure>
    where
        R: FnMut(Arc<Topic>) -> FR,
        FR: Future<Output = Result<usize, Failure>>,
        C: FnMut(Arc<Topic>) -> FC,
        FC: Future<Output = Result<usize, Failure>>,
    {
        let mut samples = Samples {
            sides,
            raw: Vec::new(),
            component: Vec::new(),
        };
        let runs = |side: Side| self.side.is_none_or(|only| only == side);
        for round in 0..self.rounds {
            self.out
                .progress(&format!("{label}: round {}/{}", round + 1, self.rounds));
            let (raw, component) = (&mut raw, &mut component);
            let (moved, spent) = self
                .on_topic(tag, |raw_topic| {
                    self.on_topic(tag, move |component_topic| async move {
                        let mut spent = [Duration::ZERO; 2];
                        let mut moved = [0; 2];
                        let mut done = 0;
                        let mut turns = 0;
                        while done < ops {
                            let n = turn.min(ops - done);
                            for side in Side::order(turns) {
                                if !runs(side) {
                                    continue;
                                }
                                let started = Instant::now();
                                for _ in 0..n {
                                    moved[side.index()] += match side {
                                        Side::Raw => raw(raw_topic.clone()).await?,
                                        Side::Component => {
                                            component(component_topic.clone()).await?
                                        }
                                    };
                                }
                                spent[side.index()] += started.elapsed();
                            }
                            done += n;
                            turns += 1;
                        }
                        Ok((moved, spent))
                    })
                })
                .await?;
            for (side, rates) in [
                (Side::Raw, &mut samples.raw),
                (Side::Component, &mut samples.component),
            ] {
                if runs(side) {
                    rates.push(rate(moved[side.index()], spent[side.index()]));
                }
            }
        }
        Ok(samples)
    }
}

/// Messages per second.
pub(super) fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}
