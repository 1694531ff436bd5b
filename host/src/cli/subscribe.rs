//! `jetstream-pubsub subscribe`.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use clap::Args;
use jetstream_pubsub_host::{AppStatus, HttpApp, Message, cloudevent};
use tokio::sync::Notify;

use super::operations::MetricsArgs;
use super::{ComponentArgs, Failure, ShutdownSignals};

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
    /// Stop after SECS (the messages received are handled and acknowledged first). With
    /// `--count`, fewer messages by then is a failure (exit 1); without it, the normal end
    /// (exit 0), unless no message arrived at all (exit 3).
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// POST each message to this URL, as the Dapr sidecar delivers to an app, instead of
    /// printing it; the app's answer decides ack, retry or drop.
    #[arg(long, value_name = "URL")]
    app_url: Option<String>,
    /// With `--app-url`: how long one delivery may take before it is retried.
    #[arg(long, value_name = "SECS", default_value_t = jetstream_pubsub_host::http_app::DEFAULT_TIMEOUT.as_secs_f64(), requires = "app_url")]
    app_timeout: f64,
    /// A raw subscription (Dapr's `rawPayload: "true"`): the app gets every message
    /// wrapped in a new CloudEvent carrying it as `data_base64`, as daprd delivers it.
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    metrics: MetricsArgs,
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
    /// The CloudEvent an app would get (`--app-url`): the message itself when it is one, a
    /// new one around it on a raw subscription; absent when the app would get the bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    cloudevent: Option<Box<serde_json::value::RawValue>>,
}

fn print(message: &Message, raw_payload: Option<&str>) -> std::io::Result<()> {
    let text = std::str::from_utf8(&message.data).ok();
    // As written: a number in the event is shown to the digit, not as a rounded f64.
    let cloudevent = match raw_payload {
        Some(pubsub_name) => serde_json::from_slice(&cloudevent::from_raw_payload(
            &message.topic,
            pubsub_name,
            &message.data,
        ))
        .ok(),
        None if cloudevent::is_json_object(&message.data) => {
            serde_json::from_slice(message.data.trim_ascii()).ok()
        }
        None => None,
    };
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
        cloudevent,
    };
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &line)?;
    stdout.write_all(b"\n")?;
    stdout.flush()
}

/// Counts acknowledged deliveries against `--count`. A delivery takes a slot before it is
/// handled and gives it back unless it is acknowledged; once every slot is taken, further
/// messages are handed back to the server (retry) so that nothing beyond the count is
/// consumed and lost. `done` fires when `limit` deliveries are acknowledged, which in
/// parallel mode can be after later slots were taken.
struct Quota {
    taken: AtomicU64,
    acked: AtomicU64,
    limit: Option<u64>,
    done: Notify,
}

impl Quota {
    fn new(limit: Option<u64>) -> Self {
        Self {
            taken: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            limit,
            done: Notify::new(),
        }
    }

    /// Takes a slot; false when the count is already spoken for.
    fn take(&self) -> bool {
        match self.limit {
            None => true,
            Some(limit) => self
                .taken
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |taken| {
                    (taken < limit).then_some(taken + 1)
                })
                .is_ok(),
        }
    }

    /// Settles a taken slot with the handler's status.
    fn settle(&self, status: AppStatus) {
        if status == AppStatus::Success {
            let acked = self.acked.fetch_add(1, Ordering::SeqCst) + 1;
            if self.limit.is_some_and(|limit| acked >= limit) {
                self.done.notify_one();
            }
        } else if self.limit.is_some() {
            self.taken.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }
}

/// Where messages go: stdout (with the pub/sub's name for a raw subscription), or an HTTP
/// app.
enum Sink {
    Print { raw_payload: Option<String> },
    Http(HttpApp),
}

impl Sink {
    async fn deliver(&self, message: Message) -> AppStatus {
        match self {
            Sink::Print { raw_payload } => match print(&message, raw_payload.as_deref()) {
                Ok(()) => AppStatus::Success,
                Err(err) => {
                    tracing::error!(error = %err, "cannot write to stdout");
                    AppStatus::Retry
                }
            },
            Sink::Http(app) => app.deliver(message).await,
        }
    }
}

pub(crate) async fn run(args: SubscribeArgs) -> Result<(), Failure> {
    let mut signals = ShutdownSignals::install();
    // Bad arguments are usage errors before anything connects.
    let app = match &args.app_url {
        None => None,
        Some(url) => {
            let timeout = Duration::try_from_secs_f64(args.app_timeout)
                .ok()
                .filter(|t| !t.is_zero())
                .ok_or_else(|| {
                    Failure::Usage(format!(
                        "--app-timeout {} is not a positive number of seconds",
                        args.app_timeout
                    ))
                })?;
            Some(
                HttpApp::new(url)
                    .map_err(|err| Failure::Usage(err.to_string()))?
                    .timeout(timeout),
            )
        }
    };
    let timeout = args
        .timeout
        .map(|secs| {
            Duration::try_from_secs_f64(secs)
                .map_err(|_| Failure::Usage(format!("--timeout {secs} is not a number of seconds")))
        })
        .transpose()?;
    let recorder = args.metrics.install()?;
    let started = args.component.start().await?;
    if let Some(recorder) = recorder {
        recorder.serve(started.runtime.clone()).await?;
    }
    let raw_payload = args.raw.then(|| started.name.clone());
    let sink = match (app, raw_payload) {
        (None, raw_payload) => Sink::Print { raw_payload },
        (Some(app), None) => Sink::Http(app),
        (Some(app), Some(pubsub_name)) => Sink::Http(app.raw_payload(pubsub_name)),
    };
    let super::Started {
        runtime, pubsub, ..
    } = started;
    let quota = Arc::new(Quota::new(args.count));
    let sink = Arc::new(sink);
    let handler = {
        let quota = quota.clone();
        move |message: Message| {
            let quota = quota.clone();
            let sink = sink.clone();
            async move {
                if !quota.take() {
                    return AppStatus::Retry;
                }
                let status = sink.deliver(message).await;
                quota.settle(status);
                status
            }
        }
    };
    let subscription = pubsub.subscribe(&args.topic, handler).await?;
    let what = match &args.app_url {
        None => "received".to_string(),
        Some(url) => format!("acknowledged by {url}"),
    };
    let outcome = tokio::select! {
        _ = quota.done.notified(), if args.count.is_some() => Ok(()),
        _ = async { match timeout { Some(t) => tokio::time::sleep(t).await, None => std::future::pending().await } } => {
            let acked = quota.acked();
            let secs = timeout.unwrap_or_default().as_secs_f64();
            match args.count {
                Some(count) => Err(Failure::Failed(format!("timed out after {secs}s: {what} {acked} of {count} messages"))),
                None if acked == 0 => Err(Failure::Nothing(format!("no message {what} in {secs}s"))),
                None => Ok(()),
            }
        }
        _ = signals.received() => Ok(()),
    };
    // Graceful in every case: messages taken are handled and acknowledged first.
    let stopped = subscription.stop().await;
    let _ = pubsub.close().await;
    runtime.shutdown().await;
    outcome?;
    stopped.map_err(Failure::from)
}
