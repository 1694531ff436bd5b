//! The `app` imports: how the component's deliveries reach the application's [`Handler`],
//! in order or in parallel, and how each is answered as its handler finishes.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt as _;
use wasmtime::component::Resource;

use crate::app::{AppStatus, DeliveryInfo, Handler, Message, message_span};
use crate::bindings::app;
use crate::instance::InstanceState;
use crate::metrics::{Answer, DeliveryMetrics};
use crate::transport::{AckKind, Answerer, Kept, SubscriptionHandle};

/// The longest metadata key the component may name for the subject (Dapr's is `Topic`).
const MAX_SUBJECT_KEY_BYTES: usize = 256;

/// A mapped message ready for the handler, with the answer to each status.
struct Ready {
    token: u64,
    answers: app::Answers,
    message: Message,
}

impl Ready {
    /// Hands the message to `handler` and sends the component's answer to its status,
    /// recording both. A handler that panics is answered as one that asked for a retry.
    async fn handle(self, handler: &dyn Handler, answerer: &Answerer, metrics: &DeliveryMetrics) {
        let Ready {
            token,
            answers,
            message,
        } = self;
        let delivery = message.delivery;
        let in_flight = metrics.handing(delivery.map_or(1, |d| d.delivered));
        let status = AssertUnwindSafe(handler.handle(message))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                let _span = message_span(answerer.subject(token).as_deref(), delivery).entered();
                tracing::error!("a message handler panicked; the message is retried");
                AppStatus::Retry
            });
        drop(in_flight);
        let answer = answer_to(answers, status);
        metrics.answered(counted(answer.as_ref()));
        answerer.answer(token, answer).await;
    }
}

/// An answer as the metrics count it.
fn counted(answer: Option<&AckKind>) -> Answer {
    match answer {
        Some(AckKind::Ack) => Answer::Ack,
        Some(AckKind::Nak(_)) => Answer::Nak,
        Some(AckKind::Term) => Answer::Term,
        Some(AckKind::InProgress) => Answer::InProgress,
        None => Answer::None,
    }
}

/// The messages the component mapped, with the topic, and the subjects and payloads the
/// host kept (each subject first in its message's metadata, under `subject_key`), and what
/// answers them. A token that is not an unanswered delivery of `subscription` is a
/// component bug: it traps, and the host's trap recovery gives the subscription's
/// deliveries to the instance that replaces it.
fn ready(
    subscription: &SubscriptionHandle,
    topic: &str,
    subject_key: &str,
    messages: Vec<app::NewMessage>,
) -> wasmtime::Result<(Vec<Ready>, Answerer)> {
    check_subject_key(subject_key)?;
    let kept = subscription.kept(messages.iter().map(|message| message.delivery));
    let topic: Arc<str> = Arc::from(topic);
    let ready = messages
        .into_iter()
        .zip(kept)
        .map(|(message, kept)| {
            let app::NewMessage {
                delivery,
                content_type,
                metadata: headers,
                answers,
            } = message;
            let Kept {
                subject,
                payload,
                sequences,
            } = kept.ok_or_else(|| {
                wasmtime::Error::msg(format!(
                    "the component delivered token {delivery}, which is not an unanswered delivery of its subscription"
                ))
            })?;
            let mut metadata = Vec::with_capacity(headers.len() + 1);
            metadata.push((subject_key.to_owned(), subject));
            metadata.extend(headers);
            Ok(Ready {
                token: delivery,
                answers,
                message: Message {
                    topic: topic.clone(),
                    data: payload,
                    content_type,
                    metadata,
                    delivery: Some(DeliveryInfo {
                        stream_sequence: sequences.stream,
                        consumer_sequence: sequences.consumer,
                        delivered: sequences.delivered,
                    }),
                },
            })
        })
        .collect::<wasmtime::Result<_>>()?;
    Ok((ready, subscription.answerer()))
}

/// The key is copied into every message: an untrusted component must not make the host
/// copy an arbitrary string a thousand times. A longer one traps.
fn check_subject_key(subject_key: &str) -> wasmtime::Result<()> {
    if subject_key.len() > MAX_SUBJECT_KEY_BYTES {
        return Err(wasmtime::Error::msg(format!(
            "the component named a subject key of {} bytes; at most {MAX_SUBJECT_KEY_BYTES}",
            subject_key.len()
        )));
    }
    Ok(())
}

/// The component's answer to `status`.
fn answer_to(answers: app::Answers, status: AppStatus) -> Option<AckKind> {
    let answer = match status {
        AppStatus::Success => answers.success,
        AppStatus::Retry => answers.retry,
        AppStatus::Drop => answers.drop,
        AppStatus::Release => answers.release,
    };
    answer.map(Into::into)
}

impl app::Host for InstanceState {
    async fn deliver_in_order(
        &mut self,
        source: Resource<SubscriptionHandle>,
        topic: String,
        subject_key: String,
        messages: Vec<app::NewMessage>,
    ) -> wasmtime::Result<()> {
        let _host = self.host_time();
        let (messages, answerer) = ready(self.table.get(&source)?, &topic, &subject_key, messages)?;
        let handler = self.handler();
        let metrics = self.deliveries();
        for ready in messages {
            ready.handle(&*handler, &answerer, &metrics).await;
        }
        Ok(())
    }

    async fn deliver_batch(
        &mut self,
        source: Resource<SubscriptionHandle>,
        topic: String,
        subject_key: String,
        messages: Vec<app::NewMessage>,
        max_in_flight: u32,
    ) -> wasmtime::Result<()> {
        let _host = self.host_time();
        let subscription = self.table.get_mut(&source)?;
        let slots = subscription.handler_slots(max_in_flight);
        let (messages, answerer) = ready(subscription, &topic, &subject_key, messages)?;
        let handler = self.handler();
        let metrics = self.deliveries();
        for ready in messages {
            // Acquiring waits for a free slot. The slots are never closed; if they were,
            // trapping passes every unanswered delivery on rather than leaving it behind.
            let slot =
                slots.clone().acquire_owned().await.map_err(|_| {
                    wasmtime::Error::msg("the handler slots of a subscription closed")
                })?;
            answerer.set_handling(ready.token);
            let (handler, answerer, metrics) = (handler.clone(), answerer.clone(), metrics.clone());
            // Boxed: the task's future (the handler's, then the answer's publish) is large,
            // and tokio moves a future by value more than once while spawning it; a box
            // moves as a pointer. Counted with callgrind on the parallel bench (S4).
            tokio::spawn(Box::pin(async move {
                ready.handle(&*handler, &answerer, &metrics).await;
                drop(slot);
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_key_longer_than_the_limit_traps_naming_its_length() {
        assert!(check_subject_key("Topic").is_ok());
        assert!(check_subject_key(&"k".repeat(MAX_SUBJECT_KEY_BYTES)).is_ok());
        let err = check_subject_key(&"k".repeat(MAX_SUBJECT_KEY_BYTES + 1)).unwrap_err();
        assert!(err.to_string().contains("257 bytes; at most 256"), "{err}");
    }
}
