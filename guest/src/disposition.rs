//! The answer to a delivery, from the application's status and the ack policy.

use std::time::Duration;

use crate::metadata::AckPolicy;

/// Our app-status, free of generated types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The application processed the message.
    Success,
    /// The application wants it again.
    Retry,
    /// The application can never process it.
    Drop,
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

/// Decides the answer. With ack policy `none` nothing is ever sent (as the reference).
/// A retry naks after `ackWait` when it is set (the reference's `NakWithDelay`,
/// components-contrib#3079), at once otherwise. A drop terminates the message: the
/// reference naks, which makes a dropped message come back forever.
pub fn decide(outcome: Outcome, ack_policy: AckPolicy, ack_wait: Duration) -> Option<Answer> {
    if ack_policy == AckPolicy::None {
        return None;
    }
    Some(match outcome {
        Outcome::Success => Answer::Ack,
        Outcome::Retry if ack_wait.is_zero() => Answer::Nak(None),
        Outcome::Retry => Answer::Nak(Some(ack_wait)),
        Outcome::Drop => Answer::Term,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_follow_status_and_policy() {
        let wait = Duration::from_secs(2);
        assert_eq!(
            decide(Outcome::Success, AckPolicy::Explicit, wait),
            Some(Answer::Ack)
        );
        assert_eq!(
            decide(Outcome::Success, AckPolicy::All, Duration::ZERO),
            Some(Answer::Ack)
        );
        assert_eq!(
            decide(Outcome::Retry, AckPolicy::Explicit, wait),
            Some(Answer::Nak(Some(wait)))
        );
        assert_eq!(
            decide(Outcome::Retry, AckPolicy::Explicit, Duration::ZERO),
            Some(Answer::Nak(None))
        );
        assert_eq!(
            decide(Outcome::Drop, AckPolicy::Explicit, wait),
            Some(Answer::Term)
        );
        for outcome in [Outcome::Success, Outcome::Retry, Outcome::Drop] {
            assert_eq!(decide(outcome, AckPolicy::None, wait), None);
        }
    }
}
