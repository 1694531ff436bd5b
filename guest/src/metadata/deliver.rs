//! Deliver and ack policies: what `deliverPolicy`, `startSequence`, `startTime`, the seed-era
//! `deliverAll` and `ackPolicy` select.

use super::decode::is_truthy;
use super::error::{MetadataError, StartOption, StartOptionState};

/// Where a new consumer starts, with its start option inside, so that no start sequence or time
/// exists without the policy that uses it (and none is ever sent with a policy that rejects it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverPolicy {
    /// Every message still in the stream (`deliver_policy: all`). Dapr's default.
    All,
    /// Only the last message in the stream, then new ones (`last`).
    Last,
    /// Only messages published after the consumer is created (`new`).
    New,
    /// From this stream sequence on (`by_start_sequence` + `opt_start_seq`); always > 0.
    ByStartSequence(u64),
    /// From this time on (`by_start_time` + `opt_start_time`). `0` is the epoch; the value
    /// always fits in signed 64-bit nanoseconds.
    ByStartTime {
        /// Seconds since 1970-01-01T00:00:00Z.
        unix_seconds: u64,
    },
}

impl DeliverPolicy {
    /// The JetStream `deliver_policy` JSON value.
    pub fn wire_name(&self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Last => "last",
            Self::New => "new",
            Self::ByStartSequence(_) => "by_start_sequence",
            Self::ByStartTime { .. } => "by_start_time",
        }
    }

    /// `opt_start_seq`, present only with [`DeliverPolicy::ByStartSequence`].
    pub fn opt_start_seq(&self) -> Option<u64> {
        match self {
            Self::ByStartSequence(seq) => Some(*seq),
            _ => None,
        }
    }

    /// `opt_start_time` in unix seconds, present only with [`DeliverPolicy::ByStartTime`].
    pub fn opt_start_time_unix(&self) -> Option<u64> {
        match self {
            Self::ByStartTime { unix_seconds } => Some(*unix_seconds),
            _ => None,
        }
    }
}

/// How deliveries are acknowledged. Dapr parity: `ackPolicy` is matched exactly (`explicit`,
/// `all`, `none`); anything else, `""` and `"NONE"` included, is `Explicit` without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckPolicy {
    /// Each message is acked (or nak'ed) on its own. The default.
    Explicit,
    /// Acking a message acks every earlier one.
    All,
    /// No acks; the component neither acks nor naks.
    None,
}

impl AckPolicy {
    /// The policy for an `ackPolicy` value (absent means `Explicit`).
    pub fn from_metadata(value: Option<&str>) -> Self {
        match value {
            Some("all") => Self::All,
            Some("none") => Self::None,
            _ => Self::Explicit,
        }
    }

    /// The JetStream `ack_policy` JSON value.
    pub fn wire_name(&self) -> &'static str {
        match self {
            Self::Explicit => "explicit",
            Self::All => "all",
            Self::None => "none",
        }
    }
}

/// A valid `deliverPolicy` value, before its start option is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RequestedPolicy {
    All,
    Last,
    New,
    Sequence,
    Time,
}

impl RequestedPolicy {
    /// Dapr parity: exact, case-sensitive values; `""` means `all`.
    pub(super) fn parse(value: &str) -> Result<Self, MetadataError> {
        match value {
            "all" | "" => Ok(Self::All),
            "last" => Ok(Self::Last),
            "new" => Ok(Self::New),
            "sequence" => Ok(Self::Sequence),
            "time" => Ok(Self::Time),
            _ => Err(MetadataError::InvalidDeliverPolicy {
                value: value.to_owned(),
            }),
        }
    }

    /// The policy in the server's words, for its conflict messages.
    fn server_words(self) -> &'static str {
        match self {
            Self::All => "deliver all",
            Self::Last => "deliver last",
            Self::New => "deliver new",
            Self::Sequence => "deliver by start sequence",
            Self::Time => "deliver by start time",
        }
    }
}

/// The start options as decoded: `startSequence` counts as set when > 0, `startTime` when the
/// key is present (an empty value is the epoch), exactly as the reference passes them on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StartOptions {
    pub(super) sequence: u64,
    pub(super) time: Option<u64>,
}

/// Chooses the deliver policy.
///
/// * `deliverPolicy` given: it rules, and a start option that contradicts it is rejected now
///   with the server's wording and in the server's order of checks (nats-server
///   `checkConsumerCfg`), instead of at Subscribe as in the reference.
/// * `deliverPolicy` absent: the seed-era inference of the original component, so configs
///   written for it keep working: `startTime` → by start time; else `startSequence` > 0 → by
///   start sequence; else `deliverAll` truthy → all; else `deliverAll` given → last; else all.
///   The start option not chosen is not sent.
pub(super) fn resolve(
    requested: Option<RequestedPolicy>,
    deliver_all: Option<&str>,
    start: StartOptions,
) -> Result<DeliverPolicy, MetadataError> {
    let conflict = |policy: RequestedPolicy, option, state| MetadataError::StartOptionConflict {
        policy: policy.server_words(),
        option,
        state,
    };
    let seq_set = start.sequence > 0;
    let Some(policy) = requested else {
        return Ok(match (start.time, deliver_all) {
            (Some(unix_seconds), _) => DeliverPolicy::ByStartTime { unix_seconds },
            (None, _) if seq_set => DeliverPolicy::ByStartSequence(start.sequence),
            (None, Some(v)) if is_truthy(v) => DeliverPolicy::All,
            (None, Some(_)) => DeliverPolicy::Last,
            (None, None) => DeliverPolicy::All,
        });
    };
    match policy {
        RequestedPolicy::All | RequestedPolicy::Last | RequestedPolicy::New => {
            if seq_set {
                return Err(conflict(
                    policy,
                    StartOption::Sequence,
                    StartOptionState::AlsoSet,
                ));
            }
            if start.time.is_some() {
                return Err(conflict(
                    policy,
                    StartOption::Time,
                    StartOptionState::AlsoSet,
                ));
            }
            Ok(match policy {
                RequestedPolicy::All => DeliverPolicy::All,
                RequestedPolicy::Last => DeliverPolicy::Last,
                _ => DeliverPolicy::New,
            })
        }
        RequestedPolicy::Sequence => {
            if !seq_set {
                return Err(conflict(
                    policy,
                    StartOption::Sequence,
                    StartOptionState::NotSet,
                ));
            }
            if start.time.is_some() {
                return Err(conflict(
                    policy,
                    StartOption::Time,
                    StartOptionState::AlsoSet,
                ));
            }
            Ok(DeliverPolicy::ByStartSequence(start.sequence))
        }
        RequestedPolicy::Time => {
            let Some(unix_seconds) = start.time else {
                return Err(conflict(
                    policy,
                    StartOption::Time,
                    StartOptionState::NotSet,
                ));
            };
            if seq_set {
                return Err(conflict(
                    policy,
                    StartOption::Sequence,
                    StartOptionState::AlsoSet,
                ));
            }
            Ok(DeliverPolicy::ByStartTime { unix_seconds })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn start(sequence: u64, time: Option<u64>) -> StartOptions {
        StartOptions { sequence, time }
    }

    /// The server's table (reference §5.3), one row per case.
    #[test]
    fn given_policy_rules_and_conflicts_use_the_server_wording() {
        use RequestedPolicy as R;
        let ok: &[(R, StartOptions, DeliverPolicy)] = &[
            (R::All, start(0, None), DeliverPolicy::All),
            (R::Last, start(0, None), DeliverPolicy::Last),
            (R::New, start(0, None), DeliverPolicy::New),
            (
                R::Sequence,
                start(7, None),
                DeliverPolicy::ByStartSequence(7),
            ),
            (
                R::Time,
                start(0, Some(0)),
                DeliverPolicy::ByStartTime { unix_seconds: 0 },
            ),
            (
                R::Time,
                start(0, Some(1_630_349_391)),
                DeliverPolicy::ByStartTime {
                    unix_seconds: 1_630_349_391,
                },
            ),
        ];
        for &(policy, opts, want) in ok {
            assert_eq!(resolve(Some(policy), Some("false"), opts), Ok(want));
        }
        let bad: &[(R, StartOptions, &str)] = &[
            (
                R::All,
                start(1, None),
                "deliver all, but optional start sequence is also set",
            ),
            (
                R::All,
                start(1, Some(5)),
                "deliver all, but optional start sequence is also set",
            ),
            (
                R::All,
                start(0, Some(0)),
                "deliver all, but optional start time is also set",
            ),
            (
                R::Last,
                start(3, None),
                "deliver last, but optional start sequence is also set",
            ),
            (
                R::Last,
                start(0, Some(1)),
                "deliver last, but optional start time is also set",
            ),
            (
                R::New,
                start(3, None),
                "deliver new, but optional start sequence is also set",
            ),
            (
                R::New,
                start(0, Some(1)),
                "deliver new, but optional start time is also set",
            ),
            (
                R::Sequence,
                start(0, None),
                "deliver by start sequence, but optional start sequence is not set",
            ),
            (
                R::Sequence,
                start(0, Some(1)),
                "deliver by start sequence, but optional start sequence is not set",
            ),
            (
                R::Sequence,
                start(5, Some(1)),
                "deliver by start sequence, but optional start time is also set",
            ),
            (
                R::Time,
                start(0, None),
                "deliver by start time, but optional start time is not set",
            ),
            (
                R::Time,
                start(5, None),
                "deliver by start time, but optional start time is not set",
            ),
            (
                R::Time,
                start(5, Some(1)),
                "deliver by start time, but optional start sequence is also set",
            ),
        ];
        for &(policy, opts, want) in bad {
            let err = resolve(Some(policy), None, opts).expect_err(want);
            assert_eq!(
                err.to_string(),
                format!("consumer delivery policy is {want}"),
                "{policy:?} {opts:?}"
            );
        }
    }

    #[test]
    fn absent_policy_uses_the_seed_era_inference() {
        let cases: &[(StartOptions, Option<&str>, DeliverPolicy)] = &[
            (start(0, None), None, DeliverPolicy::All),
            (start(0, None), Some("true"), DeliverPolicy::All),
            (start(0, None), Some(" YES"), DeliverPolicy::All),
            (start(0, None), Some("false"), DeliverPolicy::Last),
            (start(0, None), Some(""), DeliverPolicy::Last),
            (start(0, None), Some("garbage"), DeliverPolicy::Last),
            (
                start(4, None),
                Some("true"),
                DeliverPolicy::ByStartSequence(4),
            ),
            (
                start(4, Some(9)),
                Some("true"),
                DeliverPolicy::ByStartTime { unix_seconds: 9 },
            ),
            (
                start(0, Some(0)),
                None,
                DeliverPolicy::ByStartTime { unix_seconds: 0 },
            ),
            // The Dapr docs' 2021 example.
            (
                start(1, Some(1_630_349_391)),
                Some("false"),
                DeliverPolicy::ByStartTime {
                    unix_seconds: 1_630_349_391,
                },
            ),
        ];
        for &(opts, deliver_all, want) in cases {
            assert_eq!(
                resolve(None, deliver_all, opts),
                Ok(want),
                "{opts:?} {deliver_all:?}"
            );
        }
    }

    #[test]
    fn deliver_policy_values_are_case_sensitive() {
        assert_eq!(RequestedPolicy::parse(""), Ok(RequestedPolicy::All));
        assert_eq!(RequestedPolicy::parse("time"), Ok(RequestedPolicy::Time));
        for bad in ["ALL", "All", " all", "by_start_time", "last_per_subject"] {
            assert_eq!(
                RequestedPolicy::parse(bad).unwrap_err().to_string(),
                format!("deliver policy {bad} is not one of: all, last, new, sequence, time")
            );
        }
    }

    #[test]
    fn ack_policy_falls_back_to_explicit() {
        let cases = [
            (None, AckPolicy::Explicit),
            (Some("explicit"), AckPolicy::Explicit),
            (Some("all"), AckPolicy::All),
            (Some("none"), AckPolicy::None),
            (Some(""), AckPolicy::Explicit),
            (Some("NONE"), AckPolicy::Explicit),
            (Some("Explicit"), AckPolicy::Explicit),
            (Some("bogus"), AckPolicy::Explicit),
        ];
        for (value, want) in cases {
            assert_eq!(AckPolicy::from_metadata(value), want, "{value:?}");
        }
    }

    #[test]
    fn wire_names() {
        assert_eq!(
            DeliverPolicy::ByStartSequence(1).wire_name(),
            "by_start_sequence"
        );
        assert_eq!(DeliverPolicy::ByStartSequence(1).opt_start_seq(), Some(1));
        assert_eq!(DeliverPolicy::All.opt_start_seq(), None);
        let t = DeliverPolicy::ByStartTime { unix_seconds: 3 };
        assert_eq!(
            (t.wire_name(), t.opt_start_time_unix()),
            ("by_start_time", Some(3))
        );
        assert_eq!(AckPolicy::None.wire_name(), "none");
    }
}
