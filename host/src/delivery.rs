//! The `app` imports: how the component's deliveries reach the application's [`Handler`],
//! in order or in parallel, and how each is answered as its handler finishes.

use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
use wasmtime::component::Resource;

use crate::app::{AppStatus, Message};
use crate::bindings::app;
use crate::instance::InstanceState;
use crate::transport::{AckKind, Answerer, SubscriptionHandle};

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
