//! The `app` imports: where the component delivers messages. An embedder supplies a
//! [`Handler`]; the CLI supplies one that prints, or posts to an HTTP app.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use wasmtime::component::Resource;

use crate::bindings::{app, transport};
use crate::instance::InstanceState;
use crate::transport::{Answerer, SubscriptionHandle};

/// A message delivered to the application (Dapr's `NewMessage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The subscribed topic (the pattern for a wildcard subscription).
    pub topic: String,
    /// The payload, unchanged: a shared handle on the bytes as they arrived from NATS,
    /// so handing a message to the application copies no payload, however large.
    pub data: bytes::Bytes,
    /// MIME type, when the message carries one.
    pub content_type: Option<String>,
    /// `Topic` = the concrete subject, plus the message's NATS headers.
    pub metadata: Vec<(String, String)>,
}

impl Message {
    /// The concrete subject the message was published on (metadata `Topic`).
    pub fn subject(&self) -> &str {
        self.metadata
            .iter()
            .find(|(key, _)| key == "Topic")
            .map_or(self.topic.as_str(), |(_, value)| value.as_str())
    }
}

/// The application's answer (Dapr's `AppResponseStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppStatus {
    /// Processed: acknowledge.
    Success,
    /// Try again later: the message is redelivered.
    Retry,
    /// Never processable: the message is terminated.
    Drop,
    /// Never handled: the application could not be reached before it saw the message (its
    /// channel closed, as when a Dapr sidecar ends a stream). The message goes back to the
    /// server for redelivery within a second, without the retry delay or the ack wait,
    /// since no attempt was made.
    Release,
}

/// Receives messages. Implemented for every `Fn(Message) -> impl Future<Output = AppStatus>`.
pub trait Handler: Send + Sync + 'static {
    /// Handles one message. In parallel mode several calls run at once.
    fn handle(&self, message: Message) -> BoxFuture<'static, AppStatus>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AppStatus> + Send + 'static,
{
    fn handle(&self, message: Message) -> BoxFuture<'static, AppStatus> {
        Box::pin(self(message))
    }
}

/// The handler of instances that only publish: a delivery there is a component bug, and
/// the message is handed back to the server rather than lost.
pub(crate) fn no_subscriber() -> Arc<dyn Handler> {
    Arc::new(|_message: Message| async { AppStatus::Retry })
}

/// A mapped message ready for the handler, with the answer to each status.
struct Ready {
    token: u64,
    answers: app::Answers,
    message: Message,
}

/// The messages the component mapped, with the topic and the payloads the host kept, and
/// what answers them. A token that is not an unanswered delivery of `subscription` is a
/// component bug: it traps, and the host's trap recovery gives the subscription's
/// deliveries to the instance that replaces it.
fn ready(
    subscription: &SubscriptionHandle,
    topic: &str,
    messages: Vec<app::NewMessage>,
) -> wasmtime::Result<(Vec<Ready>, Answerer)> {
    let payloads = subscription.payloads(messages.iter().map(|message| message.delivery));
    let ready = messages
        .into_iter()
        .zip(payloads)
        .map(|(message, payload)| {
            let app::NewMessage {
                delivery,
                content_type,
                metadata,
                answers,
            } = message;
            let data = payload.ok_or_else(|| {
                wasmtime::Error::msg(format!(
                    "the component delivered token {delivery}, which is not an unanswered delivery of its subscription"
                ))
            })?;
            Ok(Ready {
                token: delivery,
                answers,
                message: Message {
                    topic: topic.to_string(),
                    data,
                    content_type,
                    metadata,
                },
            })
        })
        .collect::<wasmtime::Result<_>>()?;
    Ok((ready, subscription.answerer()))
}

/// The component's answer to `status`.
fn answer_to(answers: app::Answers, status: AppStatus) -> Option<transport::AckKind> {
    match status {
        AppStatus::Success => answers.success,
        AppStatus::Retry => answers.retry,
        AppStatus::Drop => answers.drop,
        AppStatus::Release => answers.release,
    }
}

impl app::Host for InstanceState {
    async fn deliver_in_order(
        &mut self,
        source: Resource<SubscriptionHandle>,
        topic: String,
        messages: Vec<app::NewMessage>,
    ) -> wasmtime::Result<()> {
        let _host = self.host_time();
        let (messages, answerer) = ready(self.table.get(&source)?, &topic, messages)?;
        let handler = self.handler();
        for Ready {
            token,
            answers,
            message,
        } in messages
        {
            let status = handler.handle(message).await;
            answerer.answer(token, answer_to(answers, status)).await;
        }
        Ok(())
    }

    async fn deliver_batch(
        &mut self,
        source: Resource<SubscriptionHandle>,
        topic: String,
        messages: Vec<app::NewMessage>,
        max_in_flight: u32,
    ) -> wasmtime::Result<()> {
        let _host = self.host_time();
        let subscription = self.table.get_mut(&source)?;
        let slots = subscription.handler_slots(max_in_flight);
        let (messages, answerer) = ready(subscription, &topic, messages)?;
        let handler = self.handler();
        for Ready {
            token,
            answers,
            message,
        } in messages
        {
            // Acquiring waits for a free slot. The slots are never closed; if they were,
            // trapping passes every unanswered delivery on rather than leaving it behind.
            let slot =
                slots.clone().acquire_owned().await.map_err(|_| {
                    wasmtime::Error::msg("the handler slots of a subscription closed")
                })?;
            answerer.set_handling(token);
            let handled = handler.handle(message);
            let answerer = answerer.clone();
            tokio::spawn(async move {
                let status = AssertUnwindSafe(handled)
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| {
                        tracing::error!("a message handler panicked; the message is retried");
                        AppStatus::Retry
                    });
                answerer.answer(token, answer_to(answers, status)).await;
                drop(slot);
            });
        }
        Ok(())
    }
}
