//! `jetstream-pubsub publish`.

use std::io::{BufRead as _, Write as _};

use clap::Args;
use jetstream_pubsub_host::{BulkEntry, PubSub};

use super::{ComponentArgs, Failure};

/// Lines published per pipelined batch with `--lines`.
const LINES_PER_BATCH: usize = 256;

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
    /// MIME type of the payload.
    #[arg(long)]
    content_type: Option<String>,
}

pub(crate) async fn run(args: PublishArgs) -> Result<(), Failure> {
    let (runtime, pubsub) = args.component.pubsub().await?;
    let result = match &args.data {
        Some(data) => publish_one(&pubsub, &args, data.as_bytes().to_vec()).await,
        None => publish_lines(&pubsub, &args).await,
    };
    let _ = pubsub.close().await;
    runtime.shutdown().await;
    result
}

async fn publish_one(pubsub: &PubSub, args: &PublishArgs, data: Vec<u8>) -> Result<(), Failure> {
    let request = jetstream_pubsub_host::PublishRequest {
        topic: args.topic.clone(),
        data,
        content_type: args.content_type.clone(),
        metadata: Vec::new(),
    };
    let ack = pubsub.publish_request(request).await?;
    println!("{}", serde_json::to_string(&ack)?);
    Ok(())
}

/// Reads stdin in batches and publishes each batch pipelined; acks print in line order.
async fn publish_lines(pubsub: &PubSub, args: &PublishArgs) -> Result<(), Failure> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut failed = 0usize;
    let mut line_number = 0usize;
    loop {
        let mut batch = Vec::with_capacity(LINES_PER_BATCH);
        for line in lines.by_ref().take(LINES_PER_BATCH) {
            let line =
                line.map_err(|err| Failure::Failed(format!("reading standard input: {err}")))?;
            line_number += 1;
            batch.push(BulkEntry {
                entry_id: line_number.to_string(),
                data: line.into_bytes(),
                content_type: args.content_type.clone(),
                metadata: Vec::new(),
            });
        }
        if batch.is_empty() {
            break;
        }
        let results = pubsub.bulk_publish(&args.topic, batch, Vec::new()).await?;
        let mut stdout = std::io::stdout().lock();
        for result in results {
            match result.outcome {
                Ok(ack) => writeln!(stdout, "{}", serde_json::to_string(&ack)?)?,
                Err(err) => {
                    failed += 1;
                    eprintln!("line {}: {err}", result.entry_id);
                }
            }
        }
    }
    if failed > 0 {
        return Err(Failure::Failed(format!(
            "{failed} of {line_number} lines were not published"
        )));
    }
    Ok(())
}
