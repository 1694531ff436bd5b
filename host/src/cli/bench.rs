//! `jetstream-pubsub bench`: what the sandbox costs, measured against plain async-nats.
//!
//! Every scenario does the same work twice per round, once with async-nats alone ("raw")
//! and once through the component, against the same server in the same process. The two
//! alternate, and which goes first swaps every round (S1, S1f, S1s and S2 take turns within
//! the round instead), so load from other processes on a small machine falls on both
//! alike: the ratio of the medians (component / raw) is the figure that matters, the
//! absolute rates are context. Targets are issue 7's; a miss is printed as `MISS` and never
//! fails the process, because a timing depends on the machine.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use futures::StreamExt as _;
use jetstream_pubsub_host::nats_server::ServerOptions;
use jetstream_pubsub_host::{
    AppStatus, BulkEntry, EMBEDDED_COMPONENT, Message, Metadata, Profiling, PubSub, Runtime,
    Subscription,
};
use tokio::sync::Notify;

use super::{Failure, SandboxArgs};

/// Payload size of every published message (issue 7: 128 bytes).
const PAYLOAD: usize = 128;
/// Entries per bulk publish, and acks in flight on the raw side of scenario 2.
const BATCH: usize = 256;
/// Publishes per turn where the two sides take turns within a round (scenario 1).
const TURN: usize = 100;
/// Batches per turn in scenario 2 (2,560 messages).
const BATCHES_PER_TURN: usize = 10;
/// Callers publishing at once in scenario 1c.
const CONCURRENT_CALLERS: usize = 32;
/// A run that makes no progress for this long has stalled: fail rather than hang.
const STALL: Duration = Duration::from_secs(15);

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// A NATS server to use; without it a private nats-server (JetStream, file storage)
    /// is started and stopped at the end.
    #[arg(long)]
    url: Option<String>,
    /// Rounds per scenario; each round runs raw and component once (default 5, quick 2).
    #[arg(long)]
    rounds: Option<usize>,
    /// A short version of every scenario (seconds): a smoke check, not figures.
    #[arg(long)]
    quick: bool,
    /// Multiplies every message count and duration, e.g. 0.2 for a CI smoke.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Runs only these scenarios (e.g. `--only 2,4`), for profiling one of them.
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    only: Vec<u8>,
    /// Loads this component instead of the embedded one.
    #[arg(long, value_name = "PATH")]
    wasm: Option<PathBuf>,
    /// Runs one side only, for a profiler (`valgrind --tool=callgrind`, `strace -c`) to
    /// count what that side costs; no ratio can be given then.
    #[arg(long, value_enum)]
    side: Option<Side>,
    /// A runtime valgrind can run (16 instances, small memory reservations): for counting
    /// instructions with `valgrind --tool=callgrind`, not for timing.
    #[arg(long)]
    valgrind: bool,
    /// Writes /tmp/perf-PID.map, so perf and callgrind name the component's functions.
    #[arg(long)]
    perf_map: bool,
    /// Worker threads of the async runtime both sides run on (default: one per core, as
    /// tokio's default). The component side's awaited publishes are sensitive to it on a
    /// machine shared with the server (docs/benchmarks.md, "The runtime's workers").
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

impl BenchArgs {
    /// The runtime's worker threads, when the command line sets them.
    pub(crate) fn workers(&self) -> Option<usize> {
        self.workers.map(usize::from)
    }
}

/// How much work each scenario does per run.
struct Sizes {
    publish_awaited: usize,
    publish_pipelined: usize,
    consume: usize,
    /// (maxAckPending, messages) for scenario 4.
    parallel: [(i64, usize); 3],
    latency: Duration,
    instantiations: usize,
    idle_subscriptions: usize,
    setups: usize,
}

impl Sizes {
    fn new(quick: bool, scale: f64) -> Self {
        let n = |full: usize, short: usize| {
            let base = if quick { short } else { full };
            ((base as f64 * scale).round() as usize).max(1)
        };
        Self {
            publish_awaited: n(20_000, 1_000),
            publish_pipelined: n(100_000, 5_000),
            consume: n(100_000, 10_000),
            parallel: [
                (1, n(500, 40)),
                (100, n(20_000, 1_000)),
                (1000, n(50_000, 2_000)),
            ],
            latency: Duration::from_secs_f64(if quick { 0.5 } else { 5.0 } * scale.min(1.0)),
            instantiations: n(2_000, 200),
            // The target is stated for 100 idle subscriptions: only a smaller scale shrinks it.
            idle_subscriptions: ((100.0 * scale.min(1.0)).round() as usize).max(2),
            setups: n(20, 3),
        }
    }
}

/// Which implementation a run uses.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Side {
    Raw,
    Component,
}

impl Side {
    /// Raw first on even rounds, component first on odd ones: drift cancels out.
    fn order(round: usize) -> [Side; 2] {
        if round.is_multiple_of(2) {
            [Side::Raw, Side::Component]
        } else {
            [Side::Component, Side::Raw]
        }
    }

    /// Its slot in per-side arrays.
    fn index(self) -> usize {
        match self {
            Side::Raw => 0,
            Side::Component => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Side::Raw => "raw",
            Side::Component => "component",
        }
    }
}

/// One figure per round for each side.
struct Samples<T> {
    raw: Vec<T>,
    component: Vec<T>,
}

/// Writes results; on a terminal, also a progress line that results overwrite.
struct Output {
    tty: bool,
}

impl Output {
    fn progress(&self, text: &str) {
        if self.tty {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[K  … {text}");
            let _ = out.flush();
        }
    }

    fn line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        if self.tty {
            let _ = write!(out, "\r\x1b[K");
        }
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// Everything the scenarios share.
struct Bench {
    url: String,
    client: async_nats::Client,
    js: jetstream::Context,
    runtime: Runtime,
    /// The component instance every component-side publish goes through.
    publisher: PubSub,
    run_id: u64,
    serial: AtomicUsize,
    sizes: Sizes,
    rounds: usize,
    /// The one side to run, when not both.
    side: Option<Side>,
    out: Output,
}

/// A fresh stream with one subject, made for one run and deleted after it.
struct Topic {
    stream: String,
    subject: String,
}

/// Runs the bench on a task of the runtime, as an embedder's request handlers run. Awaited
/// in the runtime's `block_on` instead, the scenarios would run on the main thread, which
/// is no worker: every wake-up between them and async-nats's connection task would cross
/// threads, and raw S1 ran at two thirds of the speed there (9,700 against 14,400 msg/s,
/// alternated, 28 Nov): a slower yardstick that hid part of what the component costs.
pub(crate) async fn run(args: BenchArgs) -> Result<(), Failure> {
    tokio::spawn(run_on_a_worker(args))
        .await
        .map_err(|err| Failure::Failed(format!("the bench task failed: {err}")))?
}

async fn run_on_a_worker(args: BenchArgs) -> Result<(), Failure> {
    let out = Output {
        tty: std::io::stdout().is_terminal(),
    };
    let (url, mut server) = match &args.url {
        Some(url) => (url.clone(), None),
        None => {
            out.progress("starting nats-server -js (file storage)");
            let server = ServerOptions::jetstream()
                .start()
                .map_err(|err| Failure::Failed(err.to_string()))?;
            (server.url(), Some(server))
        }
    };
    let result = bench(&args, &url, out).await;
    if let Some(server) = server.as_mut() {
        server.stop();
    }
    result
}

async fn bench(args: &BenchArgs, url: &str, out: Output) -> Result<(), Failure> {
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        return Err(Failure::Usage(format!(
            "--scale must be a positive number, got {}",
            args.scale
        )));
    }
    let rounds = args.rounds.unwrap_or(if args.quick { 2 } else { 5 }).max(1);
    let wasm = match &args.wasm {
        Some(path) => std::fs::read(path)
            .map_err(|err| Failure::Usage(format!("reading {}: {err}", path.display())))?,
        None => EMBEDDED_COMPONENT.to_vec(),
    };
    out.progress("compiling the component");
    let compile_started = Instant::now();
    let runtime = Runtime::builder()
        .policy(args.sandbox.policy(&nats_url(url))?)
        .component_bytes(wasm.clone())
        .profiling(Profiling {
            valgrind: args.valgrind,
            perf_map: args.perf_map,
        })
        .build()
        .map_err(|err| Failure::Usage(err.to_string()))?;
    let first_compile = compile_started.elapsed();
    let client = async_nats::connect(url).await?;
    let js = jetstream::new(client.clone());
    let publisher = runtime.pubsub(nats_url(url)).await?;
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let bench = Bench {
        url: url.to_string(),
        client,
        js,
        runtime,
        publisher,
        run_id,
        serial: AtomicUsize::new(0),
        sizes: Sizes::new(args.quick, args.scale),
        rounds,
        side: args.side,
        out,
    };
    bench.header(args);
    // Memory first, while the process holds nothing but the runtime: later scenarios
    // leave allocator caches behind that would be counted against the subscriptions.
    let wanted = |n: u8| args.only.is_empty() || args.only.contains(&n);
    let memory = if wanted(6) {
        Some(idle_memory(&bench).await?)
    } else {
        None
    };
    if wanted(1) {
        scenario_publish_awaited(&bench).await?;
    }
    if wanted(2) {
        scenario_publish_pipelined(&bench).await?;
    }
    if wanted(3) {
        scenario_consume_single(&bench).await?;
    }
    if wanted(4) {
        scenario_consume_parallel(&bench).await?;
    }
    if wanted(5) {
        scenario_latency(&bench).await?;
    }
    if let Some(memory) = memory {
        scenario_sandbox(&bench, &wasm, first_compile, memory).await?;
    }
    bench.publisher.close().await?;
    bench.runtime.shutdown().await;
    Ok(())
}

/// The CPU model, from /proc/cpuinfo.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Total memory, from /proc/meminfo.
fn total_memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
        })
        .map_or_else(
            || "unknown".into(),
            |kib| format!("{:.1} GiB", kib / (1024.0 * 1024.0)),
        )
}

fn nats_url(url: &str) -> Metadata {
    vec![("natsURL".into(), url.to_string())]
}

impl Bench {
    /// The machine, the server and the command, so the figures can be reproduced.
    fn header(&self, args: &BenchArgs) {
        let command: Vec<String> = std::env::args().collect();
        self.out.line(&format!("command   {}", command.join(" ")));
        self.out.line(&format!(
            "machine   {} cores, {}, {} memory",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model(),
            total_memory()
        ));
        self.out.line(&format!(
            "server    nats-server {} at {}{}",
            self.client.server_info().version,
            self.url,
            if args.url.is_none() {
                " (private, file storage)"
            } else {
                ""
            }
        ));
        // Read off the thread, not assumed: `block_on` would name the main thread here.
        self.out.line(&format!(
            "runtime   tokio multi-thread, workers: {}; the scenarios run on thread {}",
            tokio::runtime::Handle::current().metrics().num_workers(),
            std::thread::current().name().unwrap_or("(unnamed)")
        ));
        self.out.line(&format!(
            "rounds    {} (raw and component alternate; medians, spread = (max - min) / median)",
            self.rounds
        ));
        if cfg!(debug_assertions) {
            self.out
                .line("warning   debug build: figures are not meaningful, use --release");
        }
    }

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
    async fn on_topic<T, F, Fut>(&self, tag: &str, run: F) -> Result<T, Failure>
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
    async fn alternate<T, R, FR, C, FC>(
        &self,
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
                    side.name()
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
    async fn in_turns<R, FR, C, FC>(
        &self,
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

    /// Publishes `count` messages on `subject` with async-nats, pipelined, untimed: the
    /// backlog a consume scenario starts from.
    async fn fill(&self, subject: &str, count: usize) -> Result<(), Failure> {
        let payload = Bytes::from(vec![b'x'; PAYLOAD]);
        let mut sent = 0;
        while sent < count {
            let n = BATCH.min(count - sent);
            self.raw_batch(subject, &payload, n).await?;
            sent += n;
        }
        Ok(())
    }

    /// Publishes one message with async-nats and awaits its PubAck.
    async fn raw_publish(&self, subject: &str, payload: &Bytes) -> Result<(), Failure> {
        self.js
            .publish(subject.to_string(), payload.clone())
            .await?
            .await?;
        Ok(())
    }

    /// Publishes `n` messages with async-nats, every one sent before any PubAck is awaited.
    async fn raw_batch(&self, subject: &str, payload: &Bytes, n: usize) -> Result<(), Failure> {
        let mut acks = Vec::with_capacity(n);
        for _ in 0..n {
            acks.push(
                self.js
                    .publish(subject.to_string(), payload.clone())
                    .await?,
            );
        }
        for ack in futures::future::join_all(acks.into_iter().map(IntoFuture::into_future)).await {
            ack?;
        }
        Ok(())
    }

    /// A push consumer configured as the component configures its own (deliver all,
    /// explicit ack, filter = topic, no durable), and its message stream.
    async fn raw_consumer(
        &self,
        topic: &Topic,
        max_ack_pending: i64,
    ) -> Result<consumer::push::Messages, Failure> {
        let stream = self.js.get_stream(&topic.stream).await?;
        let consumer: consumer::PushConsumer = stream
            .create_consumer(consumer::push::Config {
                deliver_subject: self.client.new_inbox(),
                deliver_policy: consumer::DeliverPolicy::All,
                ack_policy: consumer::AckPolicy::Explicit,
                filter_subject: topic.subject.clone(),
                max_ack_pending,
                ..Default::default()
            })
            .await?;
        Ok(consumer.messages().await?)
    }
}

/// Counts handled messages and notes when the first and the `target`-th were handled.
struct Counter {
    target: usize,
    handled: AtomicUsize,
    first: OnceLock<Instant>,
    last: OnceLock<Instant>,
    done: Notify,
}

impl Counter {
    fn new(target: usize) -> Arc<Self> {
        Arc::new(Self {
            target,
            handled: AtomicUsize::new(0),
            first: OnceLock::new(),
            last: OnceLock::new(),
            done: Notify::new(),
        })
    }

    fn hit(&self) {
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
    async fn wait(&self, what: &str) -> Result<(), Failure> {
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
    fn rate(&self) -> f64 {
        match (self.first.get(), self.last.get()) {
            (Some(first), Some(last)) => rate(self.target.saturating_sub(1), *last - *first),
            _ => 0.0,
        }
    }
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

// Scenario 1 ------------------------------------------------------------------------

async fn scenario_publish_awaited(b: &Bench) -> Result<(), Failure> {
    let count = b.sizes.publish_awaited;
    let payload = Bytes::from(vec![b'x'; PAYLOAD]);
    let samples = b
        .in_turns(
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
            |topic| {
                let payload = payload.to_vec();
                async move {
                    b.publisher.publish(&topic.subject, payload).await?;
                    Ok(1)
                }
            },
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
    scenario_entry_floor(b, &payload).await?;
    scenario_publish_concurrent(b, &payload).await
}

/// What entering the component costs by itself in scenario 1: the raw publish against the
/// same raw publish preceded by a call to `features`, the component's smallest export (it
/// takes nothing, touches no NATS and returns two short strings). No component that is
/// called once per publish can do better than this ratio on the machine at hand. S1s makes
/// the same call on an instance linked without async imports, which wasmtime runs on the
/// caller's stack instead of a fiber: the floor of a synchronous design, which would need
/// a transport that never waits inside a call (docs/benchmarks.md).
async fn scenario_entry_floor(b: &Bench, payload: &Bytes) -> Result<(), Failure> {
    let count = b.sizes.publish_awaited;
    let synchronous = Mutex::new(b.runtime.bench_sync_entry()?);
    let raw_publish = |topic: Arc<Topic>| async move {
        b.raw_publish(&topic.subject, payload).await?;
        Ok(1)
    };
    for entry in [Entry::Fiber, Entry::Synchronous] {
        let synchronous = &synchronous;
        let names = entry.names();
        let samples = b
            .in_turns(
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
    /// On the caller's stack ([`Runtime::bench_sync_entry`]).
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
/// application requests): no target in issue 7, but it shows whether single publishes
/// overlap or queue behind one another's round trips.
async fn scenario_publish_concurrent(b: &Bench, payload: &Bytes) -> Result<(), Failure> {
    let per_caller = (b.sizes.publish_awaited / CONCURRENT_CALLERS).max(1);
    let count = per_caller * CONCURRENT_CALLERS;
    let samples = b
        .alternate(
            "1 publish-concurrent",
            || {
                b.on_topic("s1c", |topic| async move {
                    callers_at_once(per_caller, || b.raw_publish(&topic.subject, payload)).await
                })
            },
            || {
                b.on_topic("s1c", |topic| async move {
                    callers_at_once(per_caller, || async {
                        b.publisher
                            .publish(&topic.subject, payload.to_vec())
                            .await?;
                        Ok(())
                    })
                    .await
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
        f64::NAN,
    );
    Ok(())
}

/// `CONCURRENT_CALLERS` callers at once, each publishing `per_caller` times and awaiting
/// every PubAck before its next publish: messages per second over all of them.
async fn callers_at_once<F, Fut>(per_caller: usize, publish: F) -> Result<f64, Failure>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let started = Instant::now();
    let callers = (0..CONCURRENT_CALLERS).map(|_| async {
        for _ in 0..per_caller {
            publish().await?;
        }
        Ok::<_, Failure>(())
    });
    for caller in futures::future::join_all(callers).await {
        caller?;
    }
    Ok(rate(per_caller * CONCURRENT_CALLERS, started.elapsed()))
}

// Scenario 2 ------------------------------------------------------------------------

async fn scenario_publish_pipelined(b: &Bench) -> Result<(), Failure> {
    let batches = (b.sizes.publish_pipelined / BATCH).max(1);
    let count = batches * BATCH;
    let payload = Bytes::from(vec![b'x'; PAYLOAD]);
    let samples = b
        .in_turns(
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

// Scenario 3 ------------------------------------------------------------------------

async fn scenario_consume_single(b: &Bench) -> Result<(), Failure> {
    let count = b.sizes.consume;
    let samples = b
        .alternate(
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
        0.85,
    );
    Ok(())
}

// Scenario 4 ------------------------------------------------------------------------

/// The 1 ms handler of scenario 4.
const HANDLER_SLEEP: Duration = Duration::from_millis(1);

async fn scenario_consume_parallel(b: &Bench) -> Result<(), Failure> {
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
    if let Some((_, _, samples)) = results.iter().find(|(m, _, _)| *m == 100) {
        ratio_line(
            b,
            "S4 consume-parallel (maxAckPending 100)",
            samples,
            f64::NAN,
        );
    }
    Ok(())
}

// Scenario 5 ------------------------------------------------------------------------

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

async fn scenario_latency(b: &Bench) -> Result<(), Failure> {
    let duration = b.sizes.latency;
    let base = Instant::now();
    let samples = b
        .alternate(
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
            side.name(),
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

// Scenario 6 ------------------------------------------------------------------------

/// Resident memory of this process with idle component subscriptions.
struct IdleMemory {
    subscriptions: usize,
    before: u64,
    after: u64,
}

/// VmRSS of this process, in bytes (0 where /proc is not available).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or(0, |kib| kib * 1024)
}

async fn idle_memory(b: &Bench) -> Result<IdleMemory, Failure> {
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

async fn scenario_sandbox(
    b: &Bench,
    wasm: &[u8],
    first_compile: Duration,
    memory: IdleMemory,
) -> Result<(), Failure> {
    // Subscription setup, the one part of the sandbox's cost with a raw counterpart.
    let setups = b.sizes.setups;
    let samples = b
        .alternate(
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
            b.runtime.bench_instantiate().await?;
        }
        let started = Instant::now();
        for _ in 0..b.sizes.instantiations {
            b.runtime.bench_instantiate().await?;
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
        loads.push(runtime.bench_load_precompiled(wasm)?.as_secs_f64() * 1e3);
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

// Figures ---------------------------------------------------------------------------

fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

/// `12,345` for counts and rates; one decimal below 100.
fn figure(value: f64) -> String {
    if value.abs() < 100.0 {
        return format!("{value:.1}");
    }
    let digits = format!("{:.0}", value.abs());
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if value < 0.0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// A throughput scenario's report: its heading, each side's rates, its ratio line.
fn throughput_report(b: &Bench, heading: &str, name: &str, samples: &Samples<f64>, target: f64) {
    b.out.line(&format!("\n{heading}"));
    throughput_lines(b, samples, "msg/s");
    ratio_line(b, name, samples, target);
}

fn throughput_lines(b: &Bench, samples: &Samples<f64>, unit: &str) {
    for (side, values) in [
        (Side::Raw, &samples.raw),
        (Side::Component, &samples.component),
    ] {
        if values.is_empty() {
            continue;
        }
        let m = median(values);
        b.out.line(&format!(
            "   {:<10} {:>10} {unit}   min {:>10}  max {:>10}  spread {:>5.1}%",
            side.name(),
            figure(m),
            figure(min(values)),
            figure(max(values)),
            (max(values) - min(values)) / m * 100.0
        ));
    }
}

/// The ratio line of a run with one side only (`--side`): no ratio can be given.
fn no_ratio_line(b: &Bench, name: &str) {
    b.out
        .line(&format!("{name} ratio -  (one side only: --side)"));
}

/// The line the smoke test looks for: the scenario's name and `ratio X.XX` (component
/// median / raw median), with the target when the issue sets one on the ratio.
fn ratio_line(b: &Bench, name: &str, samples: &Samples<f64>, target: f64) {
    if samples.raw.is_empty() || samples.component.is_empty() {
        no_ratio_line(b, name);
        return;
    }
    let ratio = median(&samples.component) / median(&samples.raw);
    let target = if target.is_nan() {
        String::from("(component / raw)")
    } else {
        format!(
            "(component / raw)   target >= {target:.2}   {}",
            verdict(ratio >= target)
        )
    };
    b.out.line(&format!("{name} ratio {ratio:.2}  {target}"));
}
