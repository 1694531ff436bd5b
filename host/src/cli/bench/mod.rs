//! `jetstream-pubsub bench`: what the sandbox costs, measured against plain async-nats.
//!
//! Every scenario does the same work twice per round, once with async-nats alone ("raw")
//! and once through the component (S7: through the component directly, and through Dapr's
//! pluggable socket), against the same server in the same process. The two alternate, and
//! which goes first swaps every round (S1, S1f, S1s, S2 and S7's awaited publish take turns
//! within the round instead), so load from other processes on a small machine falls on both
//! alike: the ratio of the medians (component / raw) is the figure that matters, the
//! absolute rates are context. Targets are issue 7's; issue 21 raised S3's and set S1c's
//! and S4's at maxAckPending 1000. A miss is printed as `MISS` and never fails the
//! process, because a timing depends on the machine.
//!
//! This module holds the command line, the sizes and the order of the scenarios. How the
//! two sides share a round is `rounds`, the raw side's async-nats calls `raw`; each family
//! of scenarios has its module (`publish`: S1, S1f, S1s, S1c, S2; `consume`: S3, S4;
//! `latency`: S5; `sandbox`: S6; `socket`: S7, the component through Dapr's pluggable
//! socket against the component called directly); `report` prints, `machine` reads what
//! the machine is.

mod consume;
mod latency;
mod machine;
mod publish;
mod raw;
mod report;
mod rounds;
mod sandbox;
mod socket;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use clap::Args;
use jetstream_pubsub_host::bench_hooks::{self, Profiling};
use jetstream_pubsub_host::nats_server::ServerOptions;
use jetstream_pubsub_host::{EMBEDDED_COMPONENT, Metadata, PubSub, Runtime, SandboxPolicy};

use super::terminal::Output;
use super::{Failure, SandboxArgs};
use rounds::Side;

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
    /// Messages per run of S7's consume (through the socket, one at a time).
    socket_consume: usize,
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
            socket_consume: n(50_000, 5_000),
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

/// Everything the scenarios share.
struct Bench {
    url: String,
    client: async_nats::Client,
    js: jetstream::Context,
    runtime: Runtime,
    /// The sandbox policy of `runtime`, for the server of S7.
    policy: SandboxPolicy,
    /// The component every component-side publish goes through (shared with S1c's
    /// callers, each on a task of its own).
    publisher: Arc<PubSub>,
    run_id: u64,
    serial: AtomicUsize,
    sizes: Sizes,
    rounds: usize,
    /// The one side to run, when not both.
    side: Option<Side>,
    out: Output,
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
    let out = Output::stdout();
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
    let policy = args.sandbox.policy(&nats_url(url))?;
    let builder = Runtime::builder()
        .policy(policy.clone())
        .component_bytes(wasm.clone());
    let profiling = Profiling {
        valgrind: args.valgrind,
        perf_map: args.perf_map,
    };
    let runtime = bench_hooks::profiling(builder, profiling)
        .build()
        .map_err(|err| Failure::Usage(err.to_string()))?;
    let first_compile = compile_started.elapsed();
    let client = async_nats::connect(url).await?;
    let js = jetstream::new(client.clone());
    let publisher = Arc::new(runtime.pubsub(nats_url(url)).await?);
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let bench = Bench {
        url: url.to_string(),
        client,
        js,
        runtime,
        policy,
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
        Some(sandbox::idle_memory(&bench).await?)
    } else {
        None
    };
    if wanted(1) {
        publish::awaited(&bench).await?;
    }
    if wanted(2) {
        publish::pipelined(&bench).await?;
    }
    if wanted(3) {
        consume::single(&bench).await?;
    }
    if wanted(4) {
        consume::parallel(&bench).await?;
    }
    if wanted(5) {
        latency::end_to_end(&bench).await?;
    }
    if let Some(memory) = memory {
        sandbox::cost(&bench, &wasm, first_compile, memory).await?;
    }
    // Last, so that S1 to S6 run as they ran before it existed.
    if wanted(7) {
        socket::pluggable(&bench).await?;
    }
    bench.publisher.close().await?;
    bench.runtime.shutdown().await;
    Ok(())
}

fn nats_url(url: &str) -> Metadata {
    vec![("natsURL".into(), url.to_string())]
}
