//! Command-line parsing and the shared plumbing of the subcommands. The CLI keeps no
//! settings of its own: it reads the manifest into metadata and hands it to the runtime. The
//! one thing it reads in the metadata is what its default sandbox policy allows: the
//! servers of `natsURL` and the values that are paths of existing files.

mod bench;
mod demo;
mod operations;
mod publish;
mod serve;
mod stream;
mod subscribe;
mod terminal;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use jetstream_pubsub_host::manifest::Component;
use jetstream_pubsub_host::{Metadata, PubSub, Runtime, RuntimeBuilder, SandboxPolicy};

/// Dapr's NATS JetStream pub/sub component, sandboxed in WebAssembly.
#[derive(Parser)]
#[command(name = "jetstream-pubsub", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines (stderr) are written: `text` for people, `json` (one object a line:
    /// timestamp, level, target, fields) for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// The log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Sets up the log: the level from `JETSTREAM_PUBSUB_LOG` (default `warn`), to stderr.
/// Text is coloured only when stderr is a terminal and `NO_COLOR` is unset or empty
/// (no-color.org), so a log redirected to a file carries no escape codes.
fn init_log(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("JETSTREAM_PUBSUB_LOG")
        .unwrap_or_else(|_| "warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
            builder
                .with_ansi(std::io::stderr().is_terminal() && !no_color)
                .init()
        }
    }
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
    /// Serve the component to a Dapr sidecar as a pluggable pub/sub (gRPC on a Unix socket).
    Serve(serve::ServeArgs),
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
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// Which servers and files the component may name: the sandbox policy of every command
/// that runs the component.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct SandboxArgs {
    /// Lets the component connect to HOST:PORT (repeatable). Without it, exactly the
    /// servers the metadata's natsURL names.
    #[arg(long = "allow-server", value_name = "HOST:PORT")]
    allow_server: Vec<String>,
    /// Lets the component read this file, or any file below this directory (repeatable).
    /// Without it, exactly the existing files whose paths are metadata values.
    #[arg(long = "allow-path", value_name = "PATH")]
    allow_path: Vec<PathBuf>,
}

impl SandboxArgs {
    /// True when neither flag is given: the policy then follows each component's metadata.
    pub(crate) fn is_default(&self) -> bool {
        self.allow_server.is_empty() && self.allow_path.is_empty()
    }

    /// The policy for a component given `metadata`: the flags, or what the metadata names.
    ///
    /// Why the metadata: the manifest is the user's own file, the component may be anyone's
    /// build (`--wasm`), so the servers and files the user wrote down are what the user
    /// allowed; a component naming anything else is refused.
    pub(crate) fn policy(&self, metadata: &Metadata) -> Result<SandboxPolicy, Failure> {
        let mut policy = SandboxPolicy::deny_all();
        if self.allow_server.is_empty() {
            for server in manifest_servers(metadata) {
                policy = policy.allow_server(&server).map_err(usage)?;
            }
        } else {
            for server in &self.allow_server {
                policy = policy.allow_server(server).map_err(usage)?;
            }
        }
        if self.allow_path.is_empty() {
            for (_, value) in metadata {
                if std::path::Path::new(value.trim()).is_file() {
                    policy = policy.allow_path(value.trim());
                }
            }
        } else {
            for path in &self.allow_path {
                policy = policy.allow_path(path);
            }
        }
        Ok(policy)
    }

    /// A runtime builder for `wasm` (or the embedded component) under this policy.
    pub(crate) fn builder(
        &self,
        wasm: Option<&std::path::Path>,
        metadata: &Metadata,
    ) -> Result<RuntimeBuilder, Failure> {
        let builder = Runtime::builder().policy(self.policy(metadata)?);
        Ok(match wasm {
            Some(path) => builder.component_file(path),
            None => builder,
        })
    }
}

/// Whether the component reads `key` as `natsURL`: Go's `strings.EqualFold`, under which
/// the long `ſ` is an `s` too (the component's rule, `guest/src/metadata/key.rs`).
fn is_nats_url_key(key: &str) -> bool {
    key.chars().count() == "natsURL".len()
        && key
            .chars()
            .zip("natsURL".chars())
            .all(|(got, want)| got.eq_ignore_ascii_case(&want) || (got == '\u{17F}' && want == 's'))
}

fn usage(err: impl std::fmt::Display) -> Failure {
    Failure::Usage(err.to_string())
}

/// `HOST:PORT` of each server the metadata's `natsURL` names. A URL that does not parse is
/// left out: the component rejects it.
fn manifest_servers(metadata: &Metadata) -> Vec<String> {
    metadata
        .iter()
        .filter(|(key, _)| is_nats_url_key(key))
        .flat_map(|(_, value)| value.split(','))
        .filter_map(|url| url.trim().parse::<async_nats::ServerAddr>().ok())
        .map(|address| {
            if address.host().contains(':') {
                format!("[{}]:{}", address.host(), address.port())
            } else {
                format!("{}:{}", address.host(), address.port())
            }
        })
        .collect()
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// A failure of a subcommand, with the exit code it maps to.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad input (manifest, arguments): exit 2.
    Usage(String),
    /// The operation failed: exit 1.
    Failed(String),
    /// Nothing happened in the time given (`subscribe --timeout` without `--count`, and no
    /// message): exit 3.
    Nothing(String),
}

impl Failure {
    /// What the command prints after `error: `.
    pub(crate) fn message(&self) -> &str {
        match self {
            Failure::Usage(message) | Failure::Failed(message) | Failure::Nothing(message) => {
                message
            }
        }
    }
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(err: E) -> Self {
        Failure::Failed(err.to_string())
    }
}

/// The pub/sub's name when no manifest gives one (`pubsubname` in the CloudEvents the CLI
/// makes): the name Dapr's own examples give the component.
const DEFAULT_PUBSUB_NAME: &str = "pubsub";

/// A component started for a command.
pub(crate) struct Started {
    pub(crate) runtime: Runtime,
    pub(crate) pubsub: PubSub,
    /// The manifest's `metadata.name`, or [`DEFAULT_PUBSUB_NAME`].
    pub(crate) name: String,
}

impl ComponentArgs {
    /// The manifest (its name and entries, with the overrides applied), or the overrides
    /// alone.
    pub(crate) fn manifest(&self) -> Result<Component, Failure> {
        let component = match &self.component {
            Some(path) => jetstream_pubsub_host::manifest::read_file(path, &self.metadata)
                .map_err(|err| Failure::Usage(err.to_string()))?,
            None if self.metadata.is_empty() => {
                return Err(Failure::Usage(
                    "give --component FILE or --metadata natsURL=...".into(),
                ));
            }
            None => Component {
                name: String::new(),
                metadata: self.metadata.clone(),
            },
        };
        Ok(Component {
            name: Some(component.name)
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| DEFAULT_PUBSUB_NAME.to_string()),
            metadata: component.metadata,
        })
    }

    /// A runtime for this component, under the policy its flags or metadata give.
    pub(crate) fn runtime(&self, metadata: &Metadata) -> Result<Runtime, Failure> {
        self.sandbox
            .builder(self.wasm.as_deref(), metadata)?
            .build()
            .map_err(usage)
    }

    /// A runtime and an initialised component. Metadata the component rejects is a usage
    /// error (exit 2).
    pub(crate) async fn start(&self) -> Result<Started, Failure> {
        let Component { name, metadata } = self.manifest()?;
        let runtime = self.runtime(&metadata)?;
        let pubsub = runtime.pubsub(metadata).await.map_err(|err| match err {
            jetstream_pubsub_host::Error::InvalidMetadata(_) => Failure::Usage(err.to_string()),
            other => Failure::Failed(other.to_string()),
        })?;
        Ok(Started {
            runtime,
            pubsub,
            name,
        })
    }
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    init_log(cli.log_format);
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
            Command::Serve(args) => serve::run(args).await,
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
        Err(Failure::Nothing(message)) => {
            eprintln!("{message}");
            ExitCode::from(3)
        }
    }
}

/// SIGINT and SIGTERM, listened for from the start of the command: a signal that arrives
/// while the subscription is still starting (or right after its first message) is then a
/// graceful stop, not the default action that kills the process.
struct ShutdownSignals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Resolves when either signal arrives (never, when neither could be installed).
    async fn received(&mut self) {
        async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.interrupt) => {}
            _ = next(&mut self.terminate) => {}
        }
    }
}
