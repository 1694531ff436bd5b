//! The answer to a delivery, from the application's status and the redelivery settings.

use std::time::Duration;

use crate::metadata::{AckPolicy, Metadata};

/// The redelivery delay of a released message. A channel to the application closes when its
/// subscription is going away, and an undelayed `-NAK` would bring the message straight back
/// to that very subscription, or, once it has unsubscribed, to a deliver subject the server
/// still counts as listened to for a moment (it learns of an unsubscribe asynchronously):
/// either way the message would be held until the ack wait. A second is enough for the
/// server to know where interest is, and far less than any ack wait.
pub const RELEASE_DELAY: Duration = Duration::from_secs(1);

/// The redelivery delay of the deliveries an instance held when it was lost (it trapped or
/// hit a sandbox limit) and that are not handed to its replacement: one of them is the
/// likely cause, so they stay away a moment and the messages behind get through first.
pub const SUSPECT_DELAY: Duration = Duration::from_secs(1);

/// The answers the host gives, on the component's behalf, to messages the component never
/// answered (see `transport.subscription.hand-back`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandBack {
    /// Messages never taken (buffered when the subscription stops or its instance is lost).
    pub untaken: Option<Answer>,
    /// Deliveries a lost instance held, not handed to its replacement.
    pub suspect: Option<Answer>,
}

/// Our app-status, free of generated types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The application processed the message.
    Success,
    /// The application wants it again.
    Retry,
    /// The application can never process it.
    Drop,
    /// The application never got it (its channel closed first): no attempt was made.
    Release,
}

/// What to send back to the server for one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `+ACK`.
    Ack,
    /// `-NAK`, with a redelivery delay when set.
    Nak(Option<Duration>),
    /// `+TERM`: never redeliver.
    Term,
}

/// The settings that shape answers: taken once from the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redelivery {
    /// `ackPolicy`: with `none`, nothing is ever sent.
    pub ack_policy: AckPolicy,
    /// `ackWait`: the nak delay when there is no `backOff` (zero = none).
    pub ack_wait: Duration,
    /// `backOff`: nak delays by delivery attempt.
    pub backoff: Vec<Duration>,
}

impl Redelivery {
    /// The redelivery settings of the metadata.
    pub fn from_metadata(metadata: &Metadata) -> Self {
        Self {
            ack_policy: metadata.ack_policy,
            ack_wait: metadata.ack_wait,
            backoff: metadata.backoff.clone(),
        }
    }

    /// Decides the answer to a delivery seen for the `delivered`-th time.
    ///
    /// - Ack policy `none`: nothing is sent (as the reference).
    /// - Success: `+ACK`.
    /// - Retry: `-NAK`, delayed by `backOff[delivered - 1]` (the last step repeating) when
    ///   `backOff` is set, else by `ackWait` when set (the reference's `NakWithDelay`,
    ///   components-contrib#3079), else redelivered at once. The server applies `backOff`
    ///   only to ack timeouts, so without this a failing handler would retry in a hot loop
    ///   despite the user's backoff: a deliberate improvement on the reference.
    /// - Drop: `+TERM`. The reference acknowledges a dropped message (the Dapr sidecar turns
    ///   DROP into success). A terminated message is not redelivered either, but the server
    ///   records it as terminated and publishes a `MSG_TERMINATED` advisory.
    /// - Release: `-NAK` after [`RELEASE_DELAY`] whatever the retry settings: the
    ///   application never saw the message, so it goes back for redelivery (to another
    ///   replica, or to the next stream) without waiting out a retry delay or `ackWait`.
    pub fn decide(&self, outcome: Outcome, delivered: u64) -> Option<Answer> {
        if self.ack_policy == AckPolicy::None {
            return None;
        }
        Some(match outcome {
            Outcome::Success => Answer::Ack,
            Outcome::Retry => Answer::Nak(self.nak_delay(delivered)),
            Outcome::Drop => Answer::Term,
            Outcome::Release => Answer::Nak(Some(RELEASE_DELAY)),
        })
    }

    /// The answers to messages the component never answered. Untaken ones are released,
    /// as a message the application never saw: redelivered after [`RELEASE_DELAY`], since
    /// an undelayed `-NAK` races the unsubscribe that goes with it. The suspects of a lost
    /// instance wait [`SUSPECT_DELAY`]. Ack policy `none`: nothing is sent.
    pub fn hand_back(&self) -> HandBack {
        HandBack {
            untaken: self.decide(Outcome::Release, 1),
            suspect: (self.ack_policy != AckPolicy::None)
                .then_some(Answer::Nak(Some(SUSPECT_DELAY))),
        }
    }

    fn nak_delay(&self, delivered: u64) -> Option<Duration> {
        if let Some(last) = self.backoff.last() {
            let step = usize::try_from(delivered.saturating_sub(1)).unwrap_or(usize::MAX);
            return Some(*self.backoff.get(step).unwrap_or(last));
        }
        (!self.ack_wait.is_zero()).then_some(self.ack_wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redelivery(ack_policy: AckPolicy, ack_wait: Duration, backoff: &[u64]) -> Redelivery {
        Redelivery {
            ack_policy,
            ack_wait,
            backoff: backoff
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
        }
    }

    #[test]
    fn what_the_component_never_answered_goes_back_delayed_unless_nothing_is_sent() {
        let explicit = redelivery(AckPolicy::Explicit, Duration::from_secs(30), &[5_000]);
        assert_eq!(
            explicit.hand_back(),
            HandBack {
                untaken: Some(Answer::Nak(Some(RELEASE_DELAY))),
                suspect: Some(Answer::Nak(Some(SUSPECT_DELAY))),
            }
        );
        let none = redelivery(AckPolicy::None, Duration::ZERO, &[]);
        assert_eq!(
            none.hand_back(),
            HandBack {
                untaken: None,
                suspect: None
            }
        );
    }

    #[test]
    fn answers_follow_status_and_policy() {
        let wait = Duration::from_secs(2);
        let explicit = redelivery(AckPolicy::Explicit, wait, &[]);
        assert_eq!(explicit.decide(Outcome::Success, 1), Some(Answer::Ack));
        assert_eq!(
            explicit.decide(Outcome::Retry, 1),
            Some(Answer::Nak(Some(wait)))
        );
        assert_eq!(explicit.decide(Outcome::Drop, 1), Some(Answer::Term));
        let immediate = redelivery(AckPolicy::All, Duration::ZERO, &[]);
        assert_eq!(immediate.decide(Outcome::Success, 1), Some(Answer::Ack));
        assert_eq!(immediate.decide(Outcome::Retry, 3), Some(Answer::Nak(None)));
        assert_eq!(
            explicit.decide(Outcome::Release, 3),
            Some(Answer::Nak(Some(RELEASE_DELAY)))
        );
        let none = redelivery(AckPolicy::None, wait, &[100]);
        for outcome in [
            Outcome::Success,
            Outcome::Retry,
            Outcome::Drop,
            Outcome::Release,
        ] {
            assert_eq!(none.decide(outcome, 1), None);
        }
    }

    #[test]
    fn retry_follows_the_backoff_steps_then_repeats_the_last() {
        let backoff = redelivery(
            AckPolicy::Explicit,
            Duration::from_secs(9),
            &[100, 500, 2_000],
        );
        let delays: Vec<_> = (1..=5).map(|n| backoff.decide(Outcome::Retry, n)).collect();
        let ms = |n| Some(Answer::Nak(Some(Duration::from_millis(n))));
        assert_eq!(
            delays,
            vec![ms(100), ms(500), ms(2_000), ms(2_000), ms(2_000)]
        );
        assert_eq!(
            backoff.decide(Outcome::Retry, 0),
            ms(100),
            "a zero count is treated as the first delivery"
        );
    }
}
