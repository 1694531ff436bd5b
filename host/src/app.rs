//! The application's side: the message it gets, the status it answers, and the
//! [`Handler`] an embedder supplies (the CLI supplies one that prints, or posts to an HTTP
//! app). How the component's deliveries reach a handler is `delivery`.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;

/// A message delivered to the application (Dapr's `NewMessage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The subscribed topic (the pattern for a wildcard subscription). Shared by every
    /// message of a subscription: handing one out copies no string.
    pub topic: Arc<str>,
    /// The payload, unchanged: a shared handle on the bytes as they arrived from NATS,
    /// so handing a message to the application copies no payload, however large.
    pub data: bytes::Bytes,
    /// MIME type, when the message carries one.
    pub content_type: Option<String>,
    /// `Topic` = the concrete subject, plus the message's NATS headers.
    pub metadata: Vec<(String, String)>,
    /// Where the server has it: sequences and delivery count (`None` for a message that
    /// no JetStream delivery made, such as a test's own).
    pub delivery: Option<DeliveryInfo>,
}

/// A delivered message's numbers, as JetStream gives them: enough to follow one message
/// through the logs and to find it on the server (`nats stream get STREAM SEQ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryInfo {
    /// Its sequence in the stream.
    pub stream_sequence: u64,
    /// Its sequence in the consumer's deliveries.
    pub consumer_sequence: u64,
    /// How many times the server has delivered it (1 the first time).
    pub delivered: u64,
}

impl Message {
    /// The concrete subject the message was published on (metadata `Topic`).
    pub fn subject(&self) -> &str {
        self.metadata
            .iter()
            .find(|(key, _)| key == "Topic")
            .map_or(&*self.topic, |(_, value)| value.as_str())
    }

    /// A span naming this message (subject, stream and consumer sequence, delivery count):
    /// a line logged inside it can be told apart from the other messages' lines, in the
    /// human format and in JSON alike. Made only where a line is written, never per
    /// message.
    pub fn log_span(&self) -> tracing::Span {
        message_span(Some(self.subject()), self.delivery)
    }
}

/// The span [`Message::log_span`] makes, for code that no longer holds the message.
pub(crate) fn message_span(subject: Option<&str>, delivery: Option<DeliveryInfo>) -> tracing::Span {
    tracing::error_span!(
        "message",
        subject,
        stream_seq = delivery.map(|d| d.stream_sequence),
        consumer_seq = delivery.map(|d| d.consumer_sequence),
        delivered = delivery.map(|d| d.delivered),
    )
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
