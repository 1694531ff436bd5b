//! `jetstream-pubsub subscribe`.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use clap::Args;
use jetstream_pubsub_host::{AppStatus, Message};
use tokio::sync::Notify;

use super::{ComponentArgs, Failure};

#[derive(Args)]
pub(crate) struct SubscribeArgs {
    #[command(flatten)]
    component: ComponentArgs,
    /// The subject to subscribe to (wildcards allowed).
    #[arg(long)]
    topic: String,
    /// Exit 0 after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Fail if `--count` messages (or, without it, a first message) have not arrived in time.
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
}

/// One printed line per message.
#[derive(serde::Serialize)]
struct Line<'a> {
    topic: &'a str,
    subject: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
    metadata: serde_json::Map<String, serde_json::Value>,
}

fn print(message: &Message) -> std::io::Result<()> {
    let text = std::str::from_utf8(&message.data).ok();
    let line = Line {
        topic: &message.topic,
        subject: message.subject(),
        data: text,
        data_base64: text
            .is_none()
            .then(|| base64::engine::general_purpose::STANDARD.encode(&message.data)),
        content_type: message.content_type.as_deref(),
        metadata: message
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    };
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &line)?;
    stdout.write_all(b"\n")?;
    stdout.flush()
}

/// Prints messages until `limit` have been printed; later ones are handed back to the
/// server (retry) so that nothing beyond the count is consumed and lost.
struct Printer {
    printed: AtomicU64,
    limit: Option<u64>,
    done: Notify,
}

impl Printer {
    fn handle(&self, message: &Message) -> AppStatus {
        let taken = self.printed.fetch_add(1, Ordering::SeqCst);
        if self.limit.is_some_and(|limit| taken >= limit) {
            self.printed.fetch_sub(1, Ordering::SeqCst);
            return AppStatus::Retry;
        }
        if let Err(err) = print(message) {
            tracing::error!(error = %err, "cannot write to stdout");
            self.printed.fetch_sub(1, Ordering::SeqCst);
            return AppStatus::Retry;
        }
        if self.limit.is_some_and(|limit| taken + 1 >= limit) {
            self.done.notify_one();
        }
        AppStatus::Success
    }
}

pub(crate) async fn run(args: SubscribeArgs) -> Result<(), Failure> {
    let (runtime, pubsub) = args.component.pubsub().await?;
    let printer = Arc::new(Printer {
        printed: AtomicU64::new(0),
        limit: args.count,
        done: Notify::new(),
    });
    let handler = {
        let printer = printer.clone();
        move |message: Message| {
            let status = printer.handle(&message);
            async move { status }
        }
    };
    let subscription = pubsub.subscribe(&args.topic, handler).await?;
    let timeout = args.timeout.map(Duration::from_secs_f64);
    let outcome = tokio::select! {
        _ = printer.done.notified(), if args.count.is_some() => Ok(()),
        _ = async { match timeout { Some(t) => tokio::time::sleep(t).await, None => std::future::pending().await } } => {
            let printed = printer.printed.load(Ordering::SeqCst);
            Err(Failure::Failed(match args.count {
                Some(count) => format!("timed out after {}s: received {printed} of {count} messages", timeout.unwrap_or_default().as_secs_f64()),
                None => format!("timed out after {}s: received {printed} messages", timeout.unwrap_or_default().as_secs_f64()),
            }))
        }
        _ = shutdown_signal() => Ok(()),
    };
    // Graceful in every case: messages taken are handled and acknowledged first.
    let stopped = subscription.stop().await;
    let _ = pubsub.close().await;
    runtime.shutdown().await;
    outcome?;
    stopped.map_err(Failure::from)
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
