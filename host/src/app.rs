//! The `app` imports: where the component delivers messages. An embedder supplies a
//! [`Handler`]; the CLI supplies one that prints, or posts to an HTTP app.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::bindings::{app, types};
use crate::instance::InstanceState;

/// A message delivered to the application (Dapr's `NewMessage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The subscribed topic (the pattern for a wildcard subscription).
    pub topic: String,
    /// The payload, unchanged.
    pub data: Vec<u8>,
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

fn to_message(message: types::NewMessage) -> Message {
    let types::NewMessage {
        topic,
        data,
        content_type,
        metadata,
    } = message;
    Message {
        topic,
        data,
        content_type,
        metadata,
    }
}

fn to_status(status: AppStatus) -> types::AppStatus {
    match status {
        AppStatus::Success => types::AppStatus::Success,
        AppStatus::Retry => types::AppStatus::Retry,
        AppStatus::Drop => types::AppStatus::Drop,
    }
}

impl app::Host for InstanceState {
    async fn deliver(
        &mut self,
        _subscription: u64,
        message: types::NewMessage,
    ) -> wasmtime::Result<types::AppStatus> {
        let _host = self.host_time();
        Ok(to_status(self.handler().handle(to_message(message)).await))
    }

    async fn deliver_batch(
        &mut self,
        _subscription: u64,
        messages: Vec<types::NewMessage>,
    ) -> wasmtime::Result<Vec<types::AppStatus>> {
        let _host = self.host_time();
        let handler = self.handler();
        let statuses = futures::future::join_all(
            messages
                .into_iter()
                .map(|message| handler.handle(to_message(message))),
        )
        .await;
        Ok(statuses.into_iter().map(to_status).collect())
    }
}
