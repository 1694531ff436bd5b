//! One `PullMessages` stream: a subscription whose handler sends each message to daprd and
//! waits for daprd's answer by id.
//!
//! daprd handles the messages of a stream one at a time, in order, and answers each with
//! the id it got. Several may be outstanding (in parallel mode the component hands up to
//! `maxAckPending` to the handler); the rest wait in the subscription, bounded as the
//! component bounds them. When the stream ends (daprd cancels it, or the server shuts down)
//! every message daprd had not answered is released: `-NAK` with no delay, back to the
//! server at once, since the application never finished with it.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};
use tonic::{Status, Streaming};

use super::MAX_DELIVERY_BYTES;
use super::instances::{ComponentInstance, Control, StreamHandle};
use super::proto::{PullMessagesRequest, PullMessagesResponse};
use crate::{AppStatus, Error, Handler, Message};

/// Responses queued for daprd beyond the one it is reading: the handlers wait for room
/// rather than buffer without bound.
const OUTBOUND_QUEUE: usize = 64;

/// How often a stream checks that its subscription is still running.
const FAILURE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a new stream waits for a cancelled stream of the same topic to let go of its
/// durable: its subscription's stop hands messages back and drains the listener (the
/// drain alone may wait 2 s for the server to confirm it), and the server to count the
/// listener gone.
const HANDOFF_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How often, within [`HANDOFF_WAIT`], a stream asks again for a durable still bound.
const HANDOFF_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// The responses of a stream, as tonic sends them.
pub(crate) type Responses =
    tokio_stream::wrappers::ReceiverStream<Result<PullMessagesResponse, Status>>;

/// daprd's answer to one message.
enum Verdict {
    /// An ack: the application succeeded (or daprd dealt with the message itself: a DROP
    /// sent to the dead-letter topic, an expired event).
    Success,
    /// An ack with `ack_error`: the application failed.
    Failed(String),
}

/// The stream's side that handlers and its reader share.
struct Outstanding {
    state: std::sync::Mutex<Open>,
}

struct Open {
    /// `None` once the stream has ended: later messages are released at once.
    out: Option<mpsc::Sender<Result<PullMessagesResponse, Status>>>,
    next_id: u64,
    waiting: HashMap<u64, oneshot::Sender<Verdict>>,
}

impl Outstanding {
    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ends the stream: no new message is sent, and every one waiting is released (its
    /// answer channel dropped). Returns the sender, for a last status.
    fn end(&self) -> Option<mpsc::Sender<Result<PullMessagesResponse, Status>>> {
        let mut open = self.lock();
        open.waiting.clear();
        open.out.take()
    }

    /// Passes daprd's answer to the message's handler.
    fn answer(&self, request: PullMessagesRequest) {
        let Ok(id) = request.ack_message_id.parse::<u64>() else {
            tracing::warn!(id = %request.ack_message_id, "ignored an answer for a message id this stream never sent");
            return;
        };
        let Some(waiting) = self.lock().waiting.remove(&id) else {
            tracing::warn!(
                id,
                "ignored an answer for a message that is not waiting for one (unknown, or answered already)"
            );
            return;
        };
        let verdict = match request.ack_error {
            Some(error) => Verdict::Failed(error.message),
            None => Verdict::Success,
        };
        let _ = waiting.send(verdict);
    }
}

/// The handler of a stream's subscription.
struct Deliver {
    outstanding: Arc<Outstanding>,
    instance: Arc<str>,
}

impl Handler for Deliver {
    fn handle(&self, message: Message) -> BoxFuture<'static, AppStatus> {
        let outstanding = self.outstanding.clone();
        let instance = self.instance.clone();
        Box::pin(async move {
            let delivery = message.delivery;
            let mut response = response(message);
            let size = prost::Message::encoded_len(&response);
            if size > MAX_DELIVERY_BYTES {
                let subject = response.metadata.get("Topic").map(String::as_str);
                let _span = crate::app::message_span(subject, delivery).entered();
                tracing::error!(
                    %instance,
                    size,
                    limit = MAX_DELIVERY_BYTES,
                    "a message is larger than daprd can receive (gRPC's 4 MiB limit); it is terminated rather than end the stream"
                );
                return AppStatus::Drop;
            }
            let (answer, verdict) = oneshot::channel();
            let out = {
                let mut open = outstanding.lock();
                let Some(out) = open.out.clone() else {
                    return AppStatus::Release;
                };
                open.next_id += 1;
                let id = open.next_id;
                open.waiting.insert(id, answer);
                response.id = id.to_string();
                out
            };
            if out.send(Ok(response)).await.is_err() {
                return AppStatus::Release;
            }
            drop(out);
            match verdict.await {
                Ok(Verdict::Success) => AppStatus::Success,
                Ok(Verdict::Failed(error)) => {
                    tracing::debug!(%instance, %error, "the application failed a message; it is retried");
                    AppStatus::Retry
                }
                // The stream ended before daprd answered.
                Err(_) => AppStatus::Release,
            }
        })
    }
}

/// The response for `message`, without its id. The metadata is the message's (`Topic`
/// and its NATS headers); a header sent several times is joined with `, `, as HTTP does.
fn response(message: Message) -> PullMessagesResponse {
    let mut metadata: HashMap<String, String> = HashMap::with_capacity(message.metadata.len());
    for (key, value) in message.metadata {
        metadata
            .entry(key)
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    PullMessagesResponse {
        data: message.data,
        topic_name: message.topic.to_string(),
        metadata,
        content_type: message.content_type.unwrap_or_default(),
        id: String::new(),
    }
}

/// Opens a stream: reads the first request's topic, subscribes, and runs the stream's
/// reader on a task of its own. Returns the responses for tonic to send.
pub(crate) async fn open(
    instance: Arc<ComponentInstance>,
    mut requests: Streaming<PullMessagesRequest>,
) -> Result<Responses, Status> {
    let first = requests.message().await?.ok_or_else(|| {
        Status::invalid_argument("the stream ended before its first request named a topic")
    })?;
    let topic = first
        .topic
        .filter(|topic| !topic.name.is_empty())
        .ok_or_else(|| {
            Status::invalid_argument("the first PullMessagesRequest of a stream must name a topic")
        })?;
    let (out, responses) = mpsc::channel(OUTBOUND_QUEUE);
    let outstanding = Arc::new(Outstanding {
        state: std::sync::Mutex::new(Open {
            out: Some(out),
            next_id: 0,
            waiting: HashMap::new(),
        }),
    });
    let handler = || Deliver {
        outstanding: outstanding.clone(),
        instance: Arc::from(instance.name.as_str()),
    };
    let subscription = match instance.pubsub.subscribe(&topic.name, handler()).await {
        Ok(subscription) => subscription,
        // daprd re-subscribes by cancelling a stream and opening the next at once: until
        // the cancelled stream's subscription has stopped, and the server has seen its
        // listener go, the durable is still bound to it and the component refuses a
        // second listener. Once every stream of this topic has ended, the subscribe is
        // made again until the server lets go, within `HANDOFF_WAIT`; a stream that goes
        // on (a second one daprd meant to keep open) leaves the refusal as it was.
        Err(refused @ Error::Terminal(_)) => {
            let deadline = tokio::time::Instant::now() + HANDOFF_WAIT;
            if !instance.streams_ended(&topic.name, HANDOFF_WAIT).await {
                return Err(super::status::status(&refused));
            }
            loop {
                match instance.pubsub.subscribe(&topic.name, handler()).await {
                    Ok(subscription) => break subscription,
                    Err(Error::Terminal(_)) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(HANDOFF_RETRY).await;
                    }
                    Err(err) => return Err(super::status::status(&err)),
                }
            }
        }
        Err(err) => return Err(super::status::status(&err)),
    };
    let (control, mut controls) = mpsc::unbounded_channel();
    let (finished, done) = watch::channel(false);
    if instance.add_stream(StreamHandle {
        topic: topic.name.clone(),
        control,
        done,
    }) {
        subscription.pause();
    }
    tracing::info!(instance = %instance.name, topic = %topic.name, consumer = %subscription.consumer().name, "stream opened");
    tokio::spawn(async move {
        // A subscription that fails for good (its stream deleted, say) ends the stream with
        // its error; daprd logs it.
        let mut check = tokio::time::interval(FAILURE_CHECK);
        let why = loop {
            tokio::select! {
                _ = check.tick() => if subscription.is_finished() {
                    break "the subscription ended".to_string();
                },
                request = requests.message() => match request {
                    Ok(Some(request)) => outstanding.answer(request),
                    Ok(None) => break "daprd closed the stream".to_string(),
                    Err(status) => break format!("the stream ended: {}", status.message()),
                },
                control = controls.recv() => match control {
                    Some(Control::Pause) => subscription.pause(),
                    Some(Control::Resume) => subscription.resume(),
                    Some(Control::End) | None => break "the component instance is closing".to_string(),
                },
            }
        };
        // Nothing new is taken from here on: a message released below comes straight
        // back to this subscription, and must wait in it to be handed back after the
        // unsubscribe, not be taken again and released again in a loop.
        subscription.pause();
        let out = outstanding.end();
        match subscription.stop().await {
            Ok(()) => {
                tracing::info!(instance = %instance.name, topic = %topic.name, reason = %why, "stream closed")
            }
            Err(err) => {
                tracing::warn!(instance = %instance.name, topic = %topic.name, reason = %why, error = %err, "stream closed; its subscription had failed");
                if let Some(out) = out {
                    let _ = out.send(Err(super::status::status(&err))).await;
                }
            }
        }
        let _ = finished.send(true);
    });
    Ok(tokio_stream::wrappers::ReceiverStream::new(responses))
}
