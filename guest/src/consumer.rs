//! The JetStream consumer the component asks for on Subscribe, chosen from the metadata.
//!
//! Why: the consumer configuration must be field for field the reference's (reference §5.1), so
//! that an existing durable created by Dapr's component is reused, and a Dapr user gets the same
//! delivery. The only difference is the start option: the reference sends `startSequence` and
//! `startTime` whatever the deliver policy (and the server then rejects mixes); here the deliver
//! policy carries exactly the start option it uses (see [`crate::metadata::DeliverPolicy`]).

use std::time::Duration;

use crate::metadata::{AckPolicy, DeliverPolicy, Metadata};

/// The push-consumer configuration for one subscription. Zero values (`0`, `Duration::ZERO`,
/// empty lists, `None`) mean "not sent", and the server applies its default, exactly as the
/// reference omits them. The deliver subject (a fresh inbox) is the transport's business.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerPlan {
    /// `durable_name`: `durableName`; `None` creates an ephemeral consumer.
    pub durable_name: Option<String>,
    /// `deliver_group`: `queueGroupName`, also the NATS queue group of the subscription.
    pub deliver_group: Option<String>,
    /// `deliver_policy` with `opt_start_seq` / `opt_start_time` inside. Always sent.
    pub deliver_policy: DeliverPolicy,
    /// `ack_policy`. Always sent.
    pub ack_policy: AckPolicy,
    /// `ack_wait`; `ZERO` is not sent (server default 30s).
    pub ack_wait: Duration,
    /// `max_deliver`; 0 is not sent (server default −1, unlimited).
    pub max_deliver: i64,
    /// `backoff`; empty is not sent. The server then takes `ack_wait` from its first entry.
    pub backoff: Vec<Duration>,
    /// `max_ack_pending`; 0 is not sent (server default 1000).
    pub max_ack_pending: i64,
    /// `filter_subject`: the subscribed topic, wildcards included.
    pub filter_subject: String,
    /// `rate_limit_bps`; 0 is not sent.
    pub rate_limit_bps: u64,
    /// `idle_heartbeat`; `ZERO` is not sent.
    pub idle_heartbeat: Duration,
    /// `flow_control`; `false` is not sent.
    pub flow_control: bool,
    /// `num_replicas`; always sent, 0 means as the stream.
    pub num_replicas: u32,
    /// `mem_storage`; `false` is not sent.
    pub memory_storage: bool,
}

/// JetStream's `max_ack_pending` when the consumer does not set one.
pub const DEFAULT_MAX_ACK_PENDING: u32 = 1_000;

/// The ack wait JetStream applies when neither `backOff` nor `ackWait` is set.
const SERVER_ACK_WAIT: Duration = Duration::from_secs(30);

impl ConsumerPlan {
    /// How many of the subscription's messages may be with the application at once: the
    /// consumer's `max_ack_pending` ([`DEFAULT_MAX_ACK_PENDING`] when unset or negative).
    /// Parallel handlers in flight never exceed what the consumer lets be unacked.
    pub fn in_flight_limit(&self) -> u32 {
        match self.max_ack_pending {
            n if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
            _ => DEFAULT_MAX_ACK_PENDING,
        }
    }

    /// How often, in ms, an unanswered delivery gets `+WPI`: half the ack wait the server
    /// applies (the first backoff step when there is a backoff, else `ackWait`, else 30 s),
    /// at least 1 ms, so a long handler is not redelivered under its feet. None with ack
    /// policy `none`, which has nothing to keep alive.
    pub fn keep_alive_interval_ms(&self) -> Option<u32> {
        if self.ack_policy == AckPolicy::None {
            return None;
        }
        let ack_wait = match (self.backoff.first(), self.ack_wait) {
            (Some(first), _) => *first,
            (None, wait) if !wait.is_zero() => wait,
            _ => SERVER_ACK_WAIT,
        };
        Some(
            u32::try_from((ack_wait / 2).as_millis())
                .unwrap_or(u32::MAX)
                .max(1),
        )
    }
}

/// The consumer for a subscription to `topic` under `metadata`: field for field the reference's
/// `ConsumerConfig` (reference §5.1). `ReplayPolicy` stays the server default (`instant`), as in
/// the reference.
///
/// ```
/// use jetstream_pubsub_guest::{consumer::plan_consumer, metadata::parse};
/// let props = [("natsURL", "nats://h"), ("durableName", "d"), ("queueGroupName", "q")]
///     .map(|(k, v)| (k.to_owned(), v.to_owned()));
/// let plan = plan_consumer(&parse(&props).unwrap(), "orders");
/// assert_eq!(plan.filter_subject, "orders");
/// assert_eq!(plan.deliver_group.as_deref(), Some("q"));
/// ```
pub fn plan_consumer(metadata: &Metadata, topic: &str) -> ConsumerPlan {
    ConsumerPlan {
        durable_name: metadata.durable_name.clone(),
        deliver_group: metadata.queue_group_name.clone(),
        deliver_policy: metadata.deliver_policy,
        ack_policy: metadata.ack_policy,
        ack_wait: metadata.ack_wait,
        max_deliver: metadata.max_deliver,
        backoff: metadata.backoff.clone(),
        max_ack_pending: metadata.max_ack_pending,
        filter_subject: topic.to_owned(),
        rate_limit_bps: metadata.rate_limit,
        idle_heartbeat: metadata.heartbeat,
        flow_control: metadata.flow_control,
        // `parse` guarantees 0 <= replicas <= u32::MAX; saturate rather than panic regardless.
        num_replicas: u32::try_from(metadata.replicas.max(0)).unwrap_or(u32::MAX),
        memory_storage: metadata.memory_storage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::parse;

    fn props(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_send_only_policies_and_filter() {
        let metadata = parse(&props(&[("natsURL", "nats://localhost:4222")])).unwrap();
        assert_eq!(
            plan_consumer(&metadata, "test"),
            ConsumerPlan {
                durable_name: None,
                deliver_group: None,
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::ZERO,
                max_deliver: 0,
                backoff: vec![],
                max_ack_pending: 0,
                filter_subject: "test".to_owned(),
                rate_limit_bps: 0,
                idle_heartbeat: Duration::ZERO,
                flow_control: false,
                num_replicas: 0,
                memory_storage: false,
            }
        );
    }

    #[test]
    fn every_field_comes_from_its_key() {
        let metadata = parse(&props(&[
            ("natsURL", "nats://localhost:4222"),
            ("durableName", "myDurable"),
            ("queueGroupName", "myQueue"),
            ("deliverPolicy", "sequence"),
            ("startSequence", "5"),
            ("ackPolicy", "all"),
            ("ackWait", "2s"),
            ("maxDeliver", "10"),
            ("backOff", "500ms, 2s, 10s"),
            ("maxAckPending", "5000"),
            ("replicas", "3"),
            ("memoryStorage", "true"),
            ("rateLimit", "20000"),
            ("heartbeat", "1s"),
            ("flowControl", "true"),
        ]))
        .unwrap();
        assert_eq!(
            plan_consumer(&metadata, "orders.*"),
            ConsumerPlan {
                durable_name: Some("myDurable".to_owned()),
                deliver_group: Some("myQueue".to_owned()),
                deliver_policy: DeliverPolicy::ByStartSequence(5),
                ack_policy: AckPolicy::All,
                ack_wait: Duration::from_secs(2),
                max_deliver: 10,
                backoff: vec![
                    Duration::from_millis(500),
                    Duration::from_secs(2),
                    Duration::from_secs(10)
                ],
                max_ack_pending: 5000,
                filter_subject: "orders.*".to_owned(),
                rate_limit_bps: 20000,
                idle_heartbeat: Duration::from_secs(1),
                flow_control: true,
                num_replicas: 3,
                memory_storage: true,
            }
        );
    }

    #[test]
    fn in_flight_handlers_are_bounded_by_max_ack_pending_or_its_server_default() {
        let with = |max_ack_pending| ConsumerPlan {
            max_ack_pending,
            ..plan_consumer(&parse(&props(&[("natsURL", "nats://h")])).unwrap(), "t")
        };
        let limits: Vec<u32> = [0, -1, 1, 5_000, i64::MAX]
            .into_iter()
            .map(|n| with(n).in_flight_limit())
            .collect();
        assert_eq!(limits, [1_000, 1_000, 1, 5_000, u32::MAX]);
    }

    #[test]
    fn keep_alive_is_half_the_ack_wait_the_server_applies() {
        let ms = Duration::from_millis;
        let with = |ack_policy, ack_wait, backoff: &[Duration]| ConsumerPlan {
            ack_policy,
            ack_wait,
            backoff: backoff.to_vec(),
            ..plan_consumer(&parse(&props(&[("natsURL", "nats://h")])).unwrap(), "t")
        };
        let cases = [
            // The first backoff step wins over ackWait.
            (
                with(AckPolicy::Explicit, ms(10_000), &[ms(2_000), ms(8_000)]),
                Some(1_000),
            ),
            (with(AckPolicy::All, ms(10_000), &[]), Some(5_000)),
            (with(AckPolicy::Explicit, Duration::ZERO, &[]), Some(15_000)),
            // Never below 1 ms, never past u32::MAX.
            (with(AckPolicy::Explicit, ms(1), &[]), Some(1)),
            (
                with(AckPolicy::Explicit, ms(10_000_000_000), &[]),
                Some(u32::MAX),
            ),
            (with(AckPolicy::None, ms(10_000), &[ms(2_000)]), None),
        ];
        for (plan, interval) in cases {
            assert_eq!(plan.keep_alive_interval_ms(), interval, "{plan:?}");
        }
    }

    #[test]
    fn seed_era_config_plans_only_the_chosen_start_option() {
        // The Dapr docs' 2021 example: subscribes from the start time, sequence not sent.
        let metadata = parse(&props(&[
            ("natsURL", "nats://localhost:4222"),
            ("startSequence", "1"),
            ("startTime", "1630349391"),
            ("deliverAll", "false"),
        ]))
        .unwrap();
        let plan = plan_consumer(&metadata, "t");
        assert_eq!(
            plan.deliver_policy,
            DeliverPolicy::ByStartTime {
                unix_seconds: 1_630_349_391
            }
        );
        assert_eq!(plan.deliver_policy.opt_start_seq(), None);
    }
}
