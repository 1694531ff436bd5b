//! Watching a live subscription's consumer: one deleted under it is recreated, a deleted
//! stream ends the subscription.
//!
//! Why: a push subscription whose consumer was deleted (by an operator, or by the server
//! after an ephemeral consumer's inactivity) receives nothing and reports nothing; it would
//! go silent. So after some empty pumps the component looks its consumer up. Gone, it is
//! recreated from the plan on the same deliver subject, where the listener still listens.
//! A deleted stream cannot be recreated by a subscriber: the subscription ends with a
//! terminal error naming it.

use crate::attach::ConsumerApi;
use crate::consumer::ConsumerPlan;
use crate::failure::PubSubError;

/// Empty pumps (about a second each) between two checks that the consumer still exists.
pub const IDLE_PUMPS_PER_CHECK: u32 = 5;

/// A subscription's empty pumps in a row, which say when its consumer is due a check.
#[derive(Debug, Default)]
pub struct IdlePumps(u32);

impl IdlePumps {
    /// Counts a pump that found nothing; true when the consumer is due a check (every
    /// [`IDLE_PUMPS_PER_CHECK`]-th empty pump in a row).
    pub fn empty(&mut self) -> bool {
        self.0 += 1;
        self.0.is_multiple_of(IDLE_PUMPS_PER_CHECK)
    }

    /// A pump delivered messages: the count starts again.
    pub fn reset(&mut self) {
        self.0 = 0;
    }
}

/// What a check found, and did.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked<I> {
    /// The consumer is there, or could not be looked up now: look again later.
    Unchanged,
    /// The consumer was deleted and has been recreated: the new one, and the warning to log.
    Recreated {
        /// The recreated consumer.
        consumer: I,
        /// Says which consumer was deleted and what it was recreated as.
        warning: String,
    },
    /// The consumer was deleted and recreating it failed; the next check tries again.
    NotRecreated {
        /// Says which consumer was deleted and why recreating it failed.
        warning: String,
    },
}

/// Looks up the subscription's `consumer` of `stream` and recreates it from `plan` on its
/// deliver subject if it was deleted. Err (terminal) when the stream is gone.
pub fn check_consumer<A: ConsumerApi>(
    api: &A,
    stream: &str,
    topic: &str,
    plan: &ConsumerPlan,
    consumer: &A::Info,
) -> Result<Checked<A::Info>, PubSubError> {
    let consumer = A::existing(consumer);
    let name = &consumer.name;
    let gone = || {
        PubSubError::Terminal(format!(
            "stream {stream:?} no longer exists: the subscription to {topic} ended"
        ))
    };
    match api.consumer_info(stream, name) {
        Ok(None) => {}
        Err(err) if err.is_stream_not_found() => return Err(gone()),
        // Present, or the server is unreachable for now: look again later.
        Ok(Some(_)) | Err(_) => return Ok(Checked::Unchanged),
    }
    match api.create_consumer(stream, plan, consumer.deliver_subject.as_deref()) {
        Ok(info) => {
            let warning = format!(
                "consumer {name:?} of stream {stream:?} was deleted; recreated it for {topic} as {:?}",
                A::existing(&info).name
            );
            Ok(Checked::Recreated {
                consumer: info,
                warning,
            })
        }
        Err(err) if err.is_stream_not_found() => Err(gone()),
        Err(err) => Ok(Checked::NotRecreated {
            warning: format!(
                "consumer {name:?} of stream {stream:?} was deleted; recreating it failed: {err}"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attach::fake::{Call, FakeServer};
    use crate::binding::ExistingConsumer;
    use crate::consumer::plan_consumer;
    use crate::failure::{ApiError, STREAM_NOT_FOUND, TransportFailure};
    use crate::metadata::parse;

    fn plan() -> ConsumerPlan {
        let props = [("natsURL", "nats://h"), ("durableName", "d")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        plan_consumer(&parse(&props).expect("valid metadata"), "orders")
    }

    fn listened() -> ExistingConsumer {
        ExistingConsumer {
            name: "d".into(),
            filter_subject: "orders".into(),
            deliver_subject: Some("_INBOX.7".into()),
            deliver_group: None,
            push_bound: true,
        }
    }

    fn check(server: &FakeServer) -> Result<Checked<ExistingConsumer>, PubSubError> {
        check_consumer(server, "S", "orders", &plan(), &listened())
    }

    fn stream_not_found() -> TransportFailure {
        TransportFailure::Jetstream(ApiError {
            status: 404,
            code: STREAM_NOT_FOUND,
            description: "stream not found".into(),
        })
    }

    const GONE: &str = "stream \"S\" no longer exists: the subscription to orders ended";

    #[test]
    fn the_consumer_is_checked_every_fifth_empty_pump_in_a_row() {
        let mut idle = IdlePumps::default();
        let due: Vec<bool> = (0..10).map(|_| idle.empty()).collect();
        assert_eq!(
            due,
            [
                false, false, false, false, true, false, false, false, false, true
            ]
        );
        for _ in 0..4 {
            idle.empty();
        }
        idle.reset();
        assert!(!(0..4).any(|_| idle.empty()));
        assert!(idle.empty());
    }

    #[test]
    fn a_consumer_still_there_or_not_found_for_now_is_left_alone() {
        let present = FakeServer::with([listened()]);
        assert_eq!(check(&present), Ok(Checked::Unchanged));
        let unreachable = FakeServer::default();
        unreachable.fail(
            Call::Info,
            1,
            TransportFailure::TimedOut("timed out".into()),
        );
        assert_eq!(check(&unreachable), Ok(Checked::Unchanged));
        for server in [present, unreachable] {
            assert_eq!(server.calls(), ["info S d"]);
        }
    }

    #[test]
    fn a_deleted_consumer_is_recreated_on_the_same_deliver_subject() {
        let server = FakeServer::default();
        let recreated = ExistingConsumer {
            push_bound: false,
            ..listened()
        };
        assert_eq!(
            check(&server),
            Ok(Checked::Recreated {
                consumer: recreated,
                warning:
                    "consumer \"d\" of stream \"S\" was deleted; recreated it for orders as \"d\""
                        .into(),
            })
        );
        assert_eq!(server.calls(), ["info S d", "create S d on _INBOX.7"]);
    }

    #[test]
    fn a_recreate_that_fails_is_reported_and_tried_at_the_next_check() {
        let server = FakeServer::default();
        server.fail(
            Call::Create,
            1,
            TransportFailure::Denied("permissions violation".into()),
        );
        assert_eq!(
            check(&server),
            Ok(Checked::NotRecreated {
                warning: "consumer \"d\" of stream \"S\" was deleted; recreating it failed: permissions violation"
                    .into(),
            })
        );
    }

    #[test]
    fn a_deleted_stream_ends_the_subscription() {
        // Seen on the lookup, or only on the recreate.
        let server = FakeServer::default();
        server.fail(Call::Info, 1, stream_not_found());
        assert_eq!(check(&server), Err(PubSubError::Terminal(GONE.into())));
        assert_eq!(server.calls(), ["info S d"]);
        let server = FakeServer::default();
        server.fail(Call::Create, 1, stream_not_found());
        assert_eq!(check(&server), Err(PubSubError::Terminal(GONE.into())));
        assert_eq!(server.calls(), ["info S d", "create S d on _INBOX.7"]);
    }
}
