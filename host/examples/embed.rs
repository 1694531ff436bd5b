//! Embedding the component: load it, init with metadata, subscribe with an async handler,
//! publish, stop, close.
//!
//! ```sh
//! cargo run -p jetstream-pubsub-host --example embed            # nats://127.0.0.1:4222
//! NATS_URL=nats://host:4222 cargo run -p jetstream-pubsub-host --example embed
//! ```
//! The stream `EXAMPLE` (subject `example.greetings`) is created if missing, as the Dapr
//! docs do with `nats stream add`.

use jetstream_pubsub_host::provision::{Storage, StreamSpec, add_stream};
use jetstream_pubsub_host::{AppStatus, Message, Runtime};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let stream = StreamSpec {
        name: "EXAMPLE".into(),
        subjects: vec!["example.greetings".into()],
        storage: Storage::File,
        replicas: 1,
    };
    // The ten lines an embedder writes:
    let runtime = Runtime::new()?;
    let metadata = vec![
        ("natsURL".into(), url),
        ("deliverPolicy".into(), "new".into()),
    ];
    // Provisioning uses the servers and credentials the component reads in the metadata.
    add_stream(&runtime.connection_settings(&metadata).await?, &stream).await?;
    let pubsub = runtime.pubsub(metadata).await?;
    let (done, mut received) = tokio::sync::mpsc::unbounded_channel();
    let subscription = pubsub
        .subscribe("example.greetings", move |message: Message| {
            let _ = done.send(String::from_utf8_lossy(&message.data).into_owned());
            async { AppStatus::Success }
        })
        .await?;
    let ack = pubsub
        .publish(
            "example.greetings",
            br#"{"id":"hello-1","data":"hello"}"#.to_vec(),
        )
        .await?;
    println!(
        "published: stream {} sequence {} duplicate {}",
        ack.stream, ack.sequence, ack.duplicate
    );
    println!("received: {}", received.recv().await.unwrap_or_default());
    subscription.stop().await?;
    pubsub.close().await?;
    runtime.shutdown().await;
    Ok(())
}
