//! Dapr's pluggable socket (S7): the component served by `pluggable::Server` on a Unix
//! socket and driven as daprd drives it, against the same work on the component's `PubSub`
//! called directly. What the gRPC hop costs, not what the sandbox costs: both sides go
//! through the component.
//!
//! daprd publishes with one unary `Publish` per message (one caller awaiting its answer, or
//! many callers at once under load), and consumes with one `PullMessages` stream per topic,
//! answering each message by its id once the application has handled it, one at a time.
//! The direct side does the same shape of work: an awaited `publish`, the same number of
//! callers, a single-mode subscription. The server runs in this process on the bench's
//! runtime, with NATS connections of its own; daprd's side of the gRPC work runs here too,
//! on the same cores, as a daprd beside the component would.

use std::time::Duration;

use bytes::Bytes;
use jetstream_pubsub_host::pluggable::client::{self, Client};
use jetstream_pubsub_host::pluggable::proto::{
    MetadataRequest, PubSubInitRequest, PublishRequest, PullMessagesRequest, Topic as StreamTopic,
};
use jetstream_pubsub_host::pluggable::{ServeError, Server};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::consume::{Counter, component_single};
use super::publish::{callers_at_once, publish_from_callers, publish_once};
use super::report::throughput_report;
use super::rounds::{Sides, Topic};
use super::{Bench, CONCURRENT_CALLERS, Failure, PAYLOAD, STALL, TURN, nats_url};

/// The component instance the bench's client names, as daprd names a Component YAML.
const INSTANCE: &str = "bench";

/// How long the server may take to stop once the client has gone.
const SERVER_STOP: Duration = Duration::from_secs(15);

/// S7: awaited publishes, concurrent publishes and a single-mode consume, each directly and
/// through the socket.
pub(super) async fn pluggable(b: &Bench) -> Result<(), Failure> {
    b.out.progress("7 socket: starting the pluggable server");
    let socket = Socket::start(b).await?;
    let measured = measure(b, &socket.client).await;
    let stopped = socket.stop().await;
    measured.and(stopped)
}

async fn measure(b: &Bench, client: &Client) -> Result<(), Failure> {
    let payload = Bytes::from(vec![b'x'; PAYLOAD]);
    publish_awaited(b, client, &payload).await?;
    publish_concurrent(b, client, &payload).await?;
    consume_single(b, client).await
}

/// A pluggable server on a socket in a folder of its own, and a client initialised on it.
struct Socket {
    client: Client,
    stop: oneshot::Sender<()>,
    served: JoinHandle<Result<(), ServeError>>,
    _dir: tempfile::TempDir,
}

impl Socket {
    async fn start(b: &Bench) -> Result<Socket, Failure> {
        let dir = tempfile::Builder::new()
            .prefix("jetstream-pubsub-bench-")
            .tempdir()?;
        let path = dir.path().join("jetstream-wasm.sock");
        let listener = UnixListener::bind(&path)?;
        let (stop, stopped) = oneshot::channel::<()>();
        // The same compiled component under the bench's policy, with NATS connections of
        // its own: closing the server's instance drains them, and only them.
        let server = Server::new(b.runtime.with_policy(b.policy.clone()));
        let served = tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        let mut client = client::connect(&path, INSTANCE).await?;
        client
            .init(PubSubInitRequest {
                metadata: Some(MetadataRequest {
                    properties: nats_url(&b.url).into_iter().collect(),
                }),
            })
            .await?;
        Ok(Socket {
            client,
            stop,
            served,
            _dir: dir,
        })
    }

    /// Closes the client's connection, then stops the server (which closes the instance).
    async fn stop(self) -> Result<(), Failure> {
        drop(self.client);
        let _ = self.stop.send(());
        tokio::time::timeout(SERVER_STOP, self.served)
            .await
            .map_err(|_| Failure::Failed("the pluggable server did not stop".into()))???;
        Ok(())
    }
}

/// One unary `Publish` on `topic`, awaited.
async fn publish(mut client: Client, topic: &str, payload: &Bytes) -> Result<(), Failure> {
    client
        .publish(PublishRequest {
            pubsub_name: INSTANCE.into(),
            topic: topic.into(),
            data: payload.to_vec(),
            ..Default::default()
        })
        .await?;
    Ok(())
}

async fn publish_awaited(b: &Bench, client: &Client, payload: &Bytes) -> Result<(), Failure> {
    let count = b.sizes.publish_awaited;
    let samples = b
        .in_turns(
            Sides::DIRECT_AND_SOCKET,
            "7 socket publish-awaited",
            "s7",
            (count, TURN),
            |topic| publish_once(b, topic, payload.to_vec()),
            |topic| async move {
                publish(client.clone(), &topic.subject, payload).await?;
                Ok(1)
            },
        )
        .await?;
    throughput_report(
        b,
        &format!(
            "7  publish, one awaited at a time: PubSub::publish / a unary Publish through the pluggable socket ({PAYLOAD} B, {count} messages per side and round, in turns of {TURN})"
        ),
        "S7 socket-publish-awaited",
        &samples,
        f64::NAN,
    );
    Ok(())
}

async fn publish_concurrent(b: &Bench, client: &Client, payload: &Bytes) -> Result<(), Failure> {
    let per_caller = (b.sizes.publish_awaited / CONCURRENT_CALLERS).max(1);
    let count = per_caller * CONCURRENT_CALLERS;
    let samples = b
        .alternate(
            Sides::DIRECT_AND_SOCKET,
            "7 socket publish-concurrent",
            || {
                b.on_topic("s7c", |topic| async move {
                    publish_from_callers(b, &topic, per_caller, payload).await
                })
            },
            || {
                b.on_topic("s7c", |topic| async move {
                    let (client, subject, payload) =
                        (client.clone(), topic.subject.clone(), payload.clone());
                    callers_at_once(per_caller, move || {
                        let (client, subject, payload) =
                            (client.clone(), subject.clone(), payload.clone());
                        async move { publish(client, &subject, &payload).await }
                    })
                    .await
                })
            },
        )
        .await?;
    throughput_report(
        b,
        &format!(
            "7c publish, {CONCURRENT_CALLERS} callers at once, each awaiting its answer: PubSub::publish / unary Publish calls on one connection to the socket ({PAYLOAD} B, {count} messages per run)"
        ),
        "S7c socket-publish-concurrent",
        &samples,
        f64::NAN,
    );
    Ok(())
}

async fn consume_single(b: &Bench, client: &Client) -> Result<(), Failure> {
    let count = b.sizes.socket_consume;
    let samples = b
        .alternate(
            Sides::DIRECT_AND_SOCKET,
            "7 socket consume-single",
            || {
                b.on_topic("s7s", |topic| async move {
                    b.fill(&topic.subject, count).await?;
                    component_single(b, &topic, count).await
                })
            },
            || {
                b.on_topic("s7s", |topic| async move {
                    b.fill(&topic.subject, count).await?;
                    pull(client.clone(), &topic, count).await
                })
            },
        )
        .await?;
    throughput_report(
        b,
        &format!(
            "7s consume, single mode, no-op handler: a PubSub subscription / a PullMessages stream answering each message by id, one at a time ({count} messages per run; first to last delivery)"
        ),
        "S7s socket-consume-single",
        &samples,
        f64::NAN,
    );
    Ok(())
}

/// Consumes the `count` messages `topic` holds through one `PullMessages` stream, as daprd
/// does: each message is answered (success) by its id before the next is read. Messages
/// per second, first to last delivery; the stream is closed and its end awaited, so the
/// server's subscription is gone before the next run.
async fn pull(mut client: Client, topic: &Topic, count: usize) -> Result<f64, Failure> {
    let (requests, receiver) = mpsc::channel(16);
    requests
        .send(PullMessagesRequest {
            topic: Some(StreamTopic {
                name: topic.subject.clone(),
                metadata: Default::default(),
            }),
            ..Default::default()
        })
        .await?;
    let mut responses = client
        .pull_messages(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await?
        .into_inner();
    let counter = Counter::new(count);
    for _ in 0..count {
        let message = tokio::time::timeout(STALL, responses.message())
            .await
            .map_err(|_| Failure::Failed("socket consume stalled".into()))??
            .ok_or_else(|| Failure::Failed("the PullMessages stream ended".into()))?;
        counter.hit();
        requests
            .send(PullMessagesRequest {
                ack_message_id: message.id,
                ..Default::default()
            })
            .await?;
    }
    drop(requests);
    while tokio::time::timeout(STALL, responses.message())
        .await
        .map_err(|_| Failure::Failed("the PullMessages stream did not end".into()))??
        .is_some()
    {}
    Ok(counter.rate())
}
