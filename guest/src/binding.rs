//! Whether a subscription may bind to an existing consumer: the checks nats.go makes on
//! `Bind` (reference §5.4), with the reference's messages.

use std::fmt;

/// What matters about an existing consumer for binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingConsumer {
    /// Its name.
    pub name: String,
    /// Its filter subject ("" = the whole stream).
    pub filter_subject: String,
    /// Its deliver subject (none = a pull consumer).
    pub deliver_subject: Option<String>,
    /// Its deliver group.
    pub deliver_group: Option<String>,
    /// Whether a subscriber listens on its deliver subject.
    pub push_bound: bool,
}

/// Why a subscription cannot bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindError {
    /// The durable is filtered on another topic (one durable serves one topic).
    SubjectMismatch {
        consumer: String,
        filter: String,
        topic: String,
    },
    /// A pull consumer cannot feed a push subscription.
    PullConsumer { consumer: String },
    /// A queue subscription needs a consumer with a deliver group.
    QueueWithoutDeliverGroup { consumer: String },
    /// Without a queue group, only one subscriber may listen.
    AlreadyBound { consumer: String },
    /// The consumer has a deliver group; subscribing needs the same queue group.
    DeliverGroupRequired { consumer: String, group: String },
    /// The queue group differs from the consumer's deliver group.
    DeliverGroupMismatch {
        consumer: String,
        queue: String,
        group: String,
    },
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::SubjectMismatch {
                consumer,
                filter,
                topic,
            } => write!(
                f,
                "subject does not match consumer: consumer {consumer:?} is filtered on {filter:?}, not topic {topic:?} (use one durableName per topic)"
            ),
            BindError::PullConsumer { consumer } => write!(
                f,
                "must use pull subscribe to bind to pull based consumer (consumer {consumer:?})"
            ),
            BindError::QueueWithoutDeliverGroup { consumer } => {
                write!(
                    f,
                    "cannot create a queue subscription for a consumer without a deliver group (consumer {consumer:?})"
                )
            }
            BindError::AlreadyBound { consumer } => write!(
                f,
                "consumer is already bound to a subscription (consumer {consumer:?}; set queueGroupName for competing consumers)"
            ),
            BindError::DeliverGroupRequired { consumer, group } => {
                write!(
                    f,
                    "cannot create a subscription for a consumer with a deliver group {group:?} (consumer {consumer:?})"
                )
            }
            BindError::DeliverGroupMismatch {
                consumer,
                queue,
                group,
            } => write!(
                f,
                "cannot create a queue subscription {queue:?} for a consumer with a deliver group {group:?} (consumer {consumer:?})"
            ),
        }
    }
}

/// Checks a subscription on `topic` with `queue_group` against an existing consumer, in
/// nats.go's order. Ok gives the deliver subject to listen on.
pub fn check(
    existing: &ExistingConsumer,
    topic: &str,
    queue_group: Option<&str>,
) -> Result<String, BindError> {
    let consumer = existing.name.clone();
    if !existing.filter_subject.is_empty() && existing.filter_subject != topic {
        return Err(BindError::SubjectMismatch {
            consumer,
            filter: existing.filter_subject.clone(),
            topic: topic.to_string(),
        });
    }
    let Some(deliver_subject) = existing.deliver_subject.clone() else {
        return Err(BindError::PullConsumer { consumer });
    };
    match (existing.deliver_group.as_deref(), queue_group) {
        (None, Some(_)) => Err(BindError::QueueWithoutDeliverGroup { consumer }),
        (None, None) if existing.push_bound => Err(BindError::AlreadyBound { consumer }),
        (None, None) => Ok(deliver_subject),
        (Some(group), None) => Err(BindError::DeliverGroupRequired {
            consumer,
            group: group.to_string(),
        }),
        (Some(group), Some(queue)) if group != queue => Err(BindError::DeliverGroupMismatch {
            consumer,
            queue: queue.to_string(),
            group: group.to_string(),
        }),
        (Some(_), Some(_)) => Ok(deliver_subject),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(filter: &str, group: Option<&str>, bound: bool) -> ExistingConsumer {
        ExistingConsumer {
            name: "d".into(),
            filter_subject: filter.into(),
            deliver_subject: Some("_INBOX.x".into()),
            deliver_group: group.map(str::to_string),
            push_bound: bound,
        }
    }

    #[test]
    fn reference_binding_rules() {
        assert_eq!(
            check(&consumer("orders", Some("q"), true), "orders", Some("q")),
            Ok("_INBOX.x".into())
        );
        assert_eq!(
            check(&consumer("orders", None, false), "orders", None),
            Ok("_INBOX.x".into())
        );
        assert_eq!(
            check(&consumer("", None, false), "orders", None),
            Ok("_INBOX.x".into())
        );
        let cases = [
            (
                consumer("orders", None, false),
                "payments",
                None,
                "subject does not match consumer",
            ),
            (
                consumer("orders", None, true),
                "orders",
                None,
                "consumer is already bound to a subscription",
            ),
            (
                consumer("orders", None, false),
                "orders",
                Some("q"),
                "cannot create a queue subscription for a consumer without a deliver group",
            ),
            (
                consumer("orders", Some("g"), false),
                "orders",
                None,
                "cannot create a subscription for a consumer with a deliver group \"g\"",
            ),
            (
                consumer("orders", Some("g"), false),
                "orders",
                Some("q"),
                "cannot create a queue subscription \"q\" for a consumer with a deliver group \"g\"",
            ),
        ];
        for (existing, topic, queue, text) in cases {
            let err = check(&existing, topic, queue).unwrap_err().to_string();
            assert!(err.starts_with(text), "{err}");
        }
        let pull = ExistingConsumer {
            deliver_subject: None,
            ..consumer("orders", None, false)
        };
        assert_eq!(
            check(&pull, "orders", None).unwrap_err().to_string(),
            r#"must use pull subscribe to bind to pull based consumer (consumer "d")"#
        );
    }
}
