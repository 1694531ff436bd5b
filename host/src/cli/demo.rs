//! `jetstream-pubsub demo`: the main job on an embedded default. Provisions a stream,
//! publishes through the component, consumes through the component, and reports.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use jetstream_pubsub_host::cloudevent::Envelope;
use jetstream_pubsub_host::nats_server::{NatsServer, ServerOptions, is_listening};
use jetstream_pubsub_host::provision::{self, Storage, StreamSpec};
use jetstream_pubsub_host::{AppStatus, BulkEntry, Message, Runtime};

use super::operations::MetricsArgs;
use super::terminal::Output;
use super::{Failure, SandboxArgs};

/// The pub/sub's name in the demo's CloudEvents (`pubsubname`).
const PUBSUB_NAME: &str = "pubsub";

/// Entries per pipelined bulk publish.
const BATCH: usize = 500;

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// The NATS server; when nothing answers there, a temporary one is started.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    url: String,
    /// How many messages to round-trip.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Loads this component instead of the embedded one.
    #[arg(long, value_name = "PATH")]
    wasm: Option<std::path::PathBuf>,
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// What the consumer side saw.
#[derive(Default)]
struct Received {
    ids: HashSet<usize>,
    deliveries: usize,
    first: Option<Instant>,
    last: Option<Instant>,
}

pub(crate) async fn run(args: DemoArgs) -> Result<(), Failure> {
    let recorder = args.metrics.install()?;
    let (url, _server) = server(&args.url)?;
    let connection = vec![("natsURL".to_string(), url.clone())];
    let runtime = args
        .sandbox
        .builder(args.wasm.as_deref(), &connection)?
        .build()
        .map_err(|err| Failure::Usage(err.to_string()))?;
    if let Some(recorder) = recorder {
        recorder.serve(runtime.clone()).await?;
    }

    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let stream = format!("DEMO_{run_id}");
    let topic = format!("demo.{run_id}.orders");
    let settings = runtime.connection_settings(&connection).await?;
    let spec = StreamSpec {
        name: stream.clone(),
        subjects: vec![topic.clone()],
        storage: Storage::File,
        replicas: 1,
    };
    provision::add_stream(&settings, &spec).await?;
    let out = Output::stdout();
    out.line(&format!(
        "stream    {stream} (subject {topic}) on {}",
        settings.servers()
    ));

    let result = round_trip(&runtime, &url, &topic, args.messages, &out).await;
    let _ = provision::delete_stream(&settings, &stream).await;
    runtime.shutdown().await;
    result
}

/// Uses the server at `url`, or starts a temporary one when nothing answers there.
fn server(url: &str) -> Result<(String, Option<NatsServer>), Failure> {
    let address = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .rsplit('@')
        .next()
        .unwrap_or(url);
    let address = if address.contains(':') {
        address.to_string()
    } else {
        format!("{address}:4222")
    };
    if is_listening(&address) {
        println!("server    {url} (already running)");
        return Ok((url.to_string(), None));
    }
    let server = ServerOptions::jetstream()
        .start()
        .map_err(|err| Failure::Failed(err.to_string()))?;
    println!(
        "server    nothing answered at {url}; started nats-server -js at {} (stopped at the end)",
        server.url()
    );
    Ok((server.url(), Some(server)))
}

async fn round_trip(
    runtime: &Runtime,
    url: &str,
    topic: &str,
    count: usize,
    out: &Output,
) -> Result<(), Failure> {
    let pubsub = runtime
        .pubsub(vec![("natsURL".into(), url.to_string())])
        .await?;
    let received = Arc::new(Mutex::new(Received::default()));
    let handler = {
        let received = received.clone();
        move |message: Message| {
            let mut seen = received
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            seen.first.get_or_insert(now);
            seen.last = Some(now);
            seen.deliveries += 1;
            if let Some(id) = event_number(&message.data) {
                seen.ids.insert(id);
            }
            async { AppStatus::Success }
        }
    };
    let subscription = pubsub.subscribe(topic, handler).await?;

    let envelope = Envelope::new("jetstream-pubsub-demo", PUBSUB_NAME);
    let started = Instant::now();
    let mut published = 0usize;
    let mut duplicates_acked = 0usize;
    for chunk_start in (0..count).step_by(BATCH) {
        let entries = (chunk_start..(chunk_start + BATCH).min(count))
            .map(|n| {
                // Orders as an application would publish them, two updates per order under
                // one business id, each wrapped as daprd wraps it: all are delivered, none
                // is taken for a duplicate of the other.
                let status = if n % 2 == 0 { "created" } else { "paid" };
                let order = format!(r#"{{"id":"order-{}","n":{n},"status":"{status}"}}"#, n / 2)
                    .into_bytes();
                let event = envelope.wrap(topic, order, Some("application/json"));
                BulkEntry {
                    entry_id: n.to_string(),
                    data: event.data,
                    content_type: Some(event.content_type),
                    metadata: Vec::new(),
                }
            })
            .collect();
        for result in pubsub.bulk_publish(topic, entries, Vec::new()).await? {
            let ack = result.outcome.map_err(|err| {
                Failure::Failed(format!("publishing entry {}: {err}", result.entry_id))
            })?;
            published += 1;
            duplicates_acked += usize::from(ack.duplicate);
        }
        let delivered = received.lock().map(|r| r.ids.len()).unwrap_or_default();
        out.progress(&format!(
            "published {published} of {count}, delivered {delivered}"
        ));
    }
    let publish_time = started.elapsed();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let delivered = received.lock().map(|r| r.ids.len()).unwrap_or_default();
        if delivered >= published || Instant::now() >= deadline {
            break;
        }
        out.progress(&format!("delivered {delivered} of {published}"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let consumer = serde_json::to_string(&subscription.consumer().config)?;
    subscription.stop().await?;
    pubsub.close().await?;

    let seen = received
        .lock()
        .map_err(|_| Failure::Failed("the demo handler panicked".into()))?;
    let delivered = seen.ids.len();
    let duplicates = seen.deliveries - delivered;
    let consume_time = match (seen.first, seen.last) {
        (Some(first), Some(last)) if last > first => last - first,
        _ => Duration::from_millis(1),
    };
    out.line(&format!(
        "published {published} ({:.0} msg/s, {duplicates_acked} acknowledged as duplicates)",
        rate(published, publish_time)
    ));
    out.line(&format!(
        "delivered {delivered} ({:.0} msg/s)",
        rate(delivered, consume_time)
    ));
    out.line(&format!("duplicates {duplicates}"));
    out.line(&format!("consumer  {consumer}"));
    if delivered == published && duplicates == 0 && published == count {
        out.line("ok: delivered == published, no duplicates");
        Ok(())
    } else {
        Err(Failure::Failed(format!(
            "delivered {delivered} of {published} published with {duplicates} duplicates"
        )))
    }
}

fn event_number(data: &[u8]) -> Option<usize> {
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    value.get("data")?.get("n")?.as_u64().map(|n| n as usize)
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}
