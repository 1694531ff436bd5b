//! A subscription's NATS subscriber kept open while its instance is replaced after a trap.
//!
//! Unsubscribing when the instance is lost would hand the messages buffered for it back to
//! the server with `-NAK`, and the server counts that as a delivery: with `maxDeliver 1`
//! they would be gone without the application ever seeing them, and otherwise they come
//! back one attempt poorer. Parked instead, the subscriber keeps its place (and its
//! buffer) until the replacement instance subscribes to the same deliver subject and
//! takes it over.
//!
//! The deliveries the lost instance held unanswered are suspects: one of them may have
//! made it trap. A lone one is the culprit and goes back to the server (a delayed `-NAK`,
//! so `maxDeliver` ends a poison message). Several are parked too, to be handed out again
//! one per batch, so a poison message fails alone next time and the innocent ones are
//! not charged a delivery.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::{FutureExt as _, StreamExt as _};

use super::ack::AckKind;

/// The component's answers to the messages it never answered (`subscription.hand-back`):
/// the host sends them, it does not choose them. None leaves a message to the ack wait,
/// which is also what happens before the component has said.
#[derive(Clone, Default)]
pub(crate) struct HandBack {
    /// For messages never taken.
    pub(crate) untaken: Option<AckKind>,
    /// For deliveries a lost instance held.
    pub(crate) suspect: Option<AckKind>,
}

/// Where a subscription's lost instances leave their subscribers for the next one. Shared
/// by every instance of one subscription; what nobody takes over is handed back to the
/// server when the last holder lets go, or at [`Handover::hand_back_unclaimed`].
#[derive(Clone, Default)]
pub(crate) struct Handover(Arc<Shelf>);

#[derive(Default)]
struct Shelf(Mutex<Vec<Parked>>);

/// A subscriber whose instance was lost, with what must be delivered again first.
pub(crate) struct Parked {
    pub(crate) client: super::connect::SharedClient,
    pub(crate) deliver_subject: String,
    pub(crate) queue_group: Option<String>,
    pub(crate) subscriber: async_nats::Subscriber,
    /// Deliveries the lost instance held, to be handed out again one per batch.
    pub(crate) replay: VecDeque<async_nats::Message>,
    /// The component's answers, until the replacement gives its own.
    pub(crate) hand_back: HandBack,
}

/// What becomes of the messages a lost instance held.
pub(crate) struct Triage {
    /// Back to the server, delayed: the culprit.
    pub(crate) culprit: Option<async_nats::Message>,
    /// To hand out again, one per batch, in the order they were received.
    pub(crate) replay: VecDeque<async_nats::Message>,
}

/// Sorts the deliveries a lost instance `held` (in the order handed out) and the ones
/// still `waiting` to be replayed to it. A lone delivery in hand is the culprit: it was
/// alone because it was being replayed, or because it came by itself. Several are each as
/// likely, and all are replayed; the culprit will then fail alone.
pub(crate) fn triage(
    mut held: Vec<async_nats::Message>,
    waiting: VecDeque<async_nats::Message>,
) -> Triage {
    if held.len() == 1 {
        return Triage {
            culprit: held.pop(),
            replay: waiting,
        };
    }
    Triage {
        culprit: None,
        replay: held.into_iter().chain(waiting).collect(),
    }
}

impl Handover {
    /// Keeps `parked` for the next instance.
    pub(crate) fn park(&self, parked: Parked) {
        self.0.lock().push(parked);
    }

    /// The subscriber parked for `deliver_subject` in `queue_group`, if there is one.
    pub(crate) fn claim(&self, deliver_subject: &str, queue_group: Option<&str>) -> Option<Parked> {
        let mut shelf = self.0.lock();
        let index = shelf.iter().position(|parked| {
            parked.deliver_subject == deliver_subject
                && parked.queue_group.as_deref() == queue_group
        })?;
        Some(shelf.swap_remove(index))
    }

    /// Hands back to the server whatever the replacement instance did not take over (it
    /// subscribed differently): nobody else will.
    pub(crate) fn hand_back_unclaimed(&self) {
        for parked in std::mem::take(&mut *self.0.lock()) {
            parked.hand_back();
        }
    }
}

impl Shelf {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Parked>> {
        // Entries are only pushed and removed whole: the list stays consistent.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Shelf {
    fn drop(&mut self) {
        for parked in std::mem::take(&mut *self.lock()) {
            parked.hand_back();
        }
    }
}

impl Parked {
    /// Unsubscribes and returns every message to the server: the ones to replay as
    /// suspects (delayed), the buffered ones at once.
    fn hand_back(mut self) {
        let suspects = self.replay.drain(..).filter_map(|message| message.reply);
        let suspects: Vec<_> = suspects.collect();
        let untouched = drain_buffered(&mut self.subscriber);
        hand_back(&self.client, &self.hand_back, suspects, untouched);
        // Dropping the subscriber unsubscribes.
    }
}

/// Takes the messages already buffered for a subscriber that is going away, so they can
/// be handed back (`-NAK`) instead of waiting out the ack wait on the server.
pub(crate) fn drain_buffered(subscriber: &mut async_nats::Subscriber) -> Vec<async_nats::Subject> {
    let mut replies = Vec::new();
    while let Some(Some(message)) = subscriber.next().now_or_never() {
        if message.status.is_none()
            && let Some(reply) = message.reply
        {
            replies.push(reply);
        }
    }
    replies
}

/// Unsubscribes and takes the messages that reached the client before the unsubscribe
/// went out: the buffered ones and those the client had read but not yet handed over. A
/// plain unsubscribe drops the latter; async-nats's drain delivers them, then ends the
/// subscriber. Messages the server sent after that are dropped by the client and come back
/// after the ack wait: that is why nothing is handed back undelayed while a subscriber is
/// going away (a redelivery would race the unsubscribe). Should the drain not end (the
/// connection is down), what is buffered after [`DRAIN_WAIT`] is taken.
pub(crate) async fn drain(subscriber: &mut async_nats::Subscriber) -> Vec<async_nats::Subject> {
    if subscriber.drain().await.is_err() {
        let _ = subscriber.unsubscribe().await;
        return drain_buffered(subscriber);
    }
    let mut replies = Vec::new();
    let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, subscriber.next()).await {
            Ok(Some(message)) => {
                if message.status.is_none()
                    && let Some(reply) = message.reply
                {
                    replies.push(reply);
                }
            }
            Ok(None) => break,
            Err(_elapsed) => {
                replies.extend(drain_buffered(subscriber));
                break;
            }
        }
    }
    replies
}

/// How long [`drain`] waits for the server to confirm the unsubscribe.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Returns messages to the server without waiting, with the component's answers:
/// `suspects` (deliveries a lost instance held) and `untouched` (messages never taken).
/// Outside a Tokio runtime there is no way to send, and the ack wait brings them back.
pub(crate) fn hand_back(
    client: &async_nats::Client,
    answers: &HandBack,
    suspects: Vec<async_nats::Subject>,
    untouched: Vec<async_nats::Subject>,
) {
    if suspects.is_empty() && untouched.is_empty() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let (client, answers) = (client.clone(), answers.clone());
    runtime.spawn(async move { send_back(&client, &answers, suspects, untouched).await });
}

/// Sends the answers of [`hand_back`] and waits until they are written.
pub(crate) async fn send_back(
    client: &async_nats::Client,
    answers: &HandBack,
    suspects: Vec<async_nats::Subject>,
    untouched: Vec<async_nats::Subject>,
) {
    let batches = [(&answers.suspect, suspects), (&answers.untaken, untouched)];
    for (answer, replies) in batches {
        let Some(answer) = answer else { continue };
        let body = answer.body();
        for reply in replies {
            let _ = client.publish(reply, body.clone()).await;
        }
    }
    let _ = client.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::unanswered::tests::message;

    fn replies(messages: &VecDeque<async_nats::Message>) -> Vec<String> {
        let replies = messages.iter().filter_map(|m| m.reply.as_ref());
        replies.map(|reply| reply.to_string()).collect()
    }

    #[test]
    fn a_lone_message_in_hand_is_the_culprit() {
        let triage = triage(vec![message("poison")], [message("next")].into());
        assert_eq!(triage.culprit.unwrap().reply.unwrap().as_str(), "poison");
        assert_eq!(replies(&triage.replay), vec!["next"]);
    }

    #[test]
    fn several_in_hand_are_all_replayed_ahead_of_the_waiting_ones() {
        let held = vec![message("a"), message("b")];
        let triage = triage(held, [message("c")].into());
        assert!(triage.culprit.is_none());
        assert_eq!(replies(&triage.replay), vec!["a", "b", "c"]);
    }

    #[test]
    fn nothing_in_hand_blames_nobody() {
        let triage = triage(Vec::new(), [message("c")].into());
        assert!(triage.culprit.is_none());
        assert_eq!(replies(&triage.replay), vec!["c"]);
    }
}
