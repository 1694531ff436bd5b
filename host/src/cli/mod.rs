//! Command-line parsing and the shared plumbing of the subcommands. The CLI keeps no
//! settings of its own: it reads the manifest into metadata and hands it to the runtime.

mod bench;
mod demo;
mod publish;
mod stream;
mod subscribe;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use jetstream_pubsub_host::{Metadata, PubSub, Runtime};

/// Dapr's NATS JetStream pub/sub component, sandboxed in WebAssembly.
#[derive(Parser)]
#[command(name = "jetstream-pubsub", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish one message, or one per stdin line; prints one JSON line per PubAck.
    Publish(publish::PublishArgs),
    /// Subscribe; print one JSON line per message, or POST each to an HTTP app (`--app-url`).
    Subscribe(subscribe::SubscribeArgs),
    /// Manage streams (what the Dapr docs do with the `nats` CLI).
    Stream {
        #[command(subcommand)]
        command: stream::StreamCommand,
    },
    /// Round trip 10,000 messages through the component against a local server.
    Demo(demo::DemoArgs),
    /// Measure the sandbox's cost: each scenario raw async-nats vs the component.
    Bench(bench::BenchArgs),
}

/// Where the component and its metadata come from.
#[derive(Args, Clone, Debug)]
pub(crate) struct ComponentArgs {
    /// A Dapr Component manifest (`spec.type: pubsub.jetstream`).
    #[arg(long, value_name = "FILE")]
    component: Option<PathBuf>,
    /// Adds or overrides one metadata entry (repeatable).
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_pair)]
    metadata: Vec<(String, String)>,
    /// Loads this component instead of the embedded one.
    #[arg(long, value_name = "PATH")]
    wasm: Option<PathBuf>,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// A failure of a subcommand, with the exit code it maps to.
pub(crate) enum Failure {
    /// Bad input (manifest, arguments): exit 2.
    Usage(String),
    /// The operation failed: exit 1.
    Failed(String),
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(err: E) -> Self {
        Failure::Failed(err.to_string())
    }
}

impl ComponentArgs {
    /// The metadata: the manifest's entries with the overrides applied.
    pub(crate) fn metadata(&self) -> Result<Metadata, Failure> {
        match &self.component {
            Some(path) => jetstream_pubsub_host::manifest::read_file(path, &self.metadata)
                .map_err(|err| Failure::Usage(err.to_string())),
            None if self.metadata.is_empty() => Err(Failure::Usage(
                "give --component FILE or --metadata natsURL=...".into(),
            )),
            None => Ok(self.metadata.clone()),
        }
    }

    pub(crate) fn runtime(&self) -> Result<Runtime, Failure> {
        let builder = Runtime::builder();
        let builder = match &self.wasm {
            Some(path) => builder.component_file(path),
            None => builder,
        };
        builder
            .build()
            .map_err(|err| Failure::Usage(err.to_string()))
    }

    /// A runtime and an initialised component. Metadata the component rejects is a usage
    /// error (exit 2).
    pub(crate) async fn pubsub(&self) -> Result<(Runtime, PubSub), Failure> {
        let metadata = self.metadata()?;
        let runtime = self.runtime()?;
        let pubsub = runtime.pubsub(metadata).await.map_err(|err| match err {
            jetstream_pubsub_host::Error::InvalidMetadata(_) => Failure::Usage(err.to_string()),
            other => Failure::Failed(other.to_string()),
        })?;
        Ok((runtime, pubsub))
    }
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JETSTREAM_PUBSUB_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Command::Bench(args) = &cli.command
        && let Some(workers) = args.workers()
    {
        builder.worker_threads(workers);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Publish(args) => publish::run(args).await,
            Command::Subscribe(args) => subscribe::run(args).await,
            Command::Stream { command } => stream::run(command).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
