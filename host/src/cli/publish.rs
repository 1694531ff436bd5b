//! `jetstream-pubsub publish`: what an application's publish through the Dapr sidecar does.
//! Each payload is wrapped in a CloudEvent with a fresh id first, as daprd wraps it (unless
//! it already is one, or `--raw` asks for the bytes unchanged), so ordinary JSON with an `id`
//! field is never deduplicated by accident.

use std::io::{BufRead as _, Write as _};

use clap::Args;
use jetstream_pubsub_host::cloudevent::{Envelope, Wrapped};
use jetstream_pubsub_host::{BulkEntry, Metadata, PubSub, PublishAck, PublishRequest};

use super::{ComponentArgs, Failure, parse_pair};

/// Lines published per pipelined batch with `--lines`.
const LINES_PER_BATCH: usize = 256;

/// The CloudEvent `source` of the events the CLI wraps (daprd writes the app id there).
const DEFAULT_SOURCE: &str = "jetstream-pubsub";

/// The request metadata key that sets the deduplication id (a NATS header).
const MESSAGE_ID_KEY: &str = "Nats-Msg-Id";

#[derive(Args)]
pub(crate) struct PublishArgs {
    #[command(flatten)]
    component: ComponentArgs,
    /// The subject to publish on.
    #[arg(long)]
    topic: String,
    /// The payload of the one message to publish.
    #[arg(long, conflicts_with = "lines", required_unless_present = "lines")]
    data: Option<String>,
    /// Publish one message per line of standard input.
    #[arg(long)]
    lines: bool,
    /// MIME type of the payload (the event's `datacontenttype`; without it, `application/json`
    /// for a JSON payload and `text/plain` for any other).
    #[arg(long)]
    content_type: Option<String>,
    /// Send the bytes unchanged, without a CloudEvent envelope (Dapr's `rawPayload=true`).
    /// Then, as in Dapr, the string `id` of a JSON object payload becomes its `Nats-Msg-Id`:
    /// two payloads with the same `id` within the stream's duplicate window (2 minutes by
    /// default) are stored once.
    #[arg(long)]
    raw: bool,
    /// The CloudEvent `source` of wrapped payloads.
    #[arg(long, default_value = DEFAULT_SOURCE, conflicts_with = "raw")]
    source: String,
    /// Request metadata, sent as a NATS header (repeatable); `Nats-Msg-Id=ID` sets the
    /// deduplication id on purpose.
    #[arg(long = "request-metadata", value_name = "KEY=VALUE", value_parser = parse_pair)]
    request_metadata: Vec<(String, String)>,
}

/// A payload as it goes out, and the id the stream deduplicates it by, when it has one.
struct Outgoing {
    data: Vec<u8>,
    content_type: Option<String>,
    dedup_id: Option<String>,
}

impl PublishArgs {
    fn outgoing(&self, envelope: &Envelope, payload: Vec<u8>) -> Outgoing {
        let chosen = self
            .request_metadata
            .iter()
            .rev()
            .find(|(key, _)| key.eq_ignore_ascii_case(MESSAGE_ID_KEY))
            .map(|(_, id)| id.clone());
        if self.raw {
            return Outgoing {
                dedup_id: chosen.or_else(|| json_id(&payload)),
                data: payload,
                content_type: self.content_type.clone(),
            };
        }
        let Wrapped {
            data,
            content_type,
            id,
            ..
        } = envelope.wrap(&self.topic, payload, self.content_type.as_deref());
        Outgoing {
            data,
            content_type: Some(content_type),
            dedup_id: chosen.or(id),
        }
    }
}

pub(crate) async fn run(args: PublishArgs) -> Result<(), Failure> {
    let started = args.component.start().await?;
    let envelope = Envelope::new(args.source.clone(), started.name.clone());
    let result = match &args.data {
        Some(data) => {
            publish_one(&started.pubsub, &args, &envelope, data.as_bytes().to_vec()).await
        }
        None => publish_lines(&started.pubsub, &args, &envelope).await,
    };
    let _ = started.pubsub.close().await;
    started.runtime.shutdown().await;
    result
}

async fn publish_one(
    pubsub: &PubSub,
    args: &PublishArgs,
    envelope: &Envelope,
    payload: Vec<u8>,
) -> Result<(), Failure> {
    let outgoing = args.outgoing(envelope, payload);
    let request = PublishRequest {
        topic: args.topic.clone(),
        data: outgoing.data,
        content_type: outgoing.content_type,
        metadata: args.request_metadata.clone(),
    };
    let ack = pubsub.publish_request(request).await?;
    println!("{}", serde_json::to_string(&ack)?);
    if ack.duplicate {
        eprintln!(
            "{}",
            duplicate_note(&ack, outgoing.dedup_id.as_deref(), None)
        );
    }
    Ok(())
}

/// Reads stdin in batches and publishes each batch pipelined; acks print in line order.
async fn publish_lines(
    pubsub: &PubSub,
    args: &PublishArgs,
    envelope: &Envelope,
) -> Result<(), Failure> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let (mut failed, mut duplicates, mut line_number) = (0usize, 0usize, 0usize);
    loop {
        let mut batch = Vec::with_capacity(LINES_PER_BATCH);
        let mut dedup_ids = Vec::with_capacity(LINES_PER_BATCH);
        for line in lines.by_ref().take(LINES_PER_BATCH) {
            let line =
                line.map_err(|err| Failure::Failed(format!("reading standard input: {err}")))?;
            line_number += 1;
            let outgoing = args.outgoing(envelope, line.into_bytes());
            dedup_ids.push(outgoing.dedup_id);
            batch.push(BulkEntry {
                entry_id: line_number.to_string(),
                data: outgoing.data,
                content_type: outgoing.content_type,
                metadata: args.request_metadata.clone(),
            });
        }
        if batch.is_empty() {
            break;
        }
        let results = pubsub
            .bulk_publish(&args.topic, batch, Metadata::new())
            .await?;
        let mut stdout = std::io::stdout().lock();
        for (result, dedup_id) in results.into_iter().zip(dedup_ids) {
            match result.outcome {
                Ok(ack) => {
                    writeln!(stdout, "{}", serde_json::to_string(&ack)?)?;
                    if ack.duplicate {
                        duplicates += 1;
                        let line = Some(result.entry_id.as_str());
                        eprintln!("{}", duplicate_note(&ack, dedup_id.as_deref(), line));
                    }
                }
                Err(err) => {
                    failed += 1;
                    eprintln!("line {}: {err}", result.entry_id);
                }
            }
        }
    }
    let stored = line_number - failed - duplicates;
    eprintln!(
        "published {line_number} lines: {stored} stored, {duplicates} duplicates, {failed} failed"
    );
    if failed > 0 {
        return Err(Failure::Failed(format!(
            "{failed} of {line_number} lines were not published"
        )));
    }
    Ok(())
}

/// One stderr line for a PubAck that reports a duplicate: success in Dapr's contract, but
/// nothing new was stored, and the user should know which id did that.
fn duplicate_note(ack: &PublishAck, id: Option<&str>, line: Option<&str>) -> String {
    let what = match line {
        Some(line) => format!("line {line}: "),
        None => String::new(),
    };
    let id = match id {
        Some(id) => format!("id {id:?}"),
        None => "this message id".to_string(),
    };
    format!(
        "{what}duplicate: stream {} already holds {id} (sequence {}); nothing new was stored",
        ack.stream, ack.sequence
    )
}

/// The string `id` of a JSON object payload: what the component sends as `Nats-Msg-Id` for a
/// raw payload (its rule, `guest/src/publish.rs`), for the duplicate note only.
fn json_id(payload: &[u8]) -> Option<String> {
    match serde_json::from_slice::<serde_json::Value>(payload).ok()? {
        serde_json::Value::Object(mut object) => match object.remove("id")? {
            serde_json::Value::String(id) if !id.is_empty() => Some(id),
            _ => None,
        },
        _ => None,
    }
}
