//! Errors of metadata parsing. Display texts are the reference's own where the reference
//! rejects the input, and say key, value and rule where we reject more (a deliberate fix).
//!
//! No variant ever carries the value of a secret key (`jwt`, `seedKey`, `token`,
//! `tls_client_cert`, `tls_client_key`, `password`, `credsFile`, `nkey`): those keys can only
//! fail by being missing, or (`nkey`) by a shape check whose text names the key only.

use std::fmt;

use super::decode::{DurationDecodeError, NumError};
use super::quote::go_quote;
use super::retry::RetryConfigError;

/// Why Dapr component metadata was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataError {
    /// Two keys are equal after lowercasing (`natsURL` and `natsurl`). Dapr parity: dapr/kit
    /// rejects this for every key, known or not, and prints the lowercased key.
    DuplicateKey {
        /// The key, lowercased.
        key: String,
    },
    /// One or more values could not be decoded into their key's type. Dapr parity: mapstructure
    /// collects every failing key and prints `N error(s) decoding:` followed by one sorted
    /// `* <message>` line per key.
    Decode(Vec<DecodeError>),
    /// `natsURL` absent, empty, or only separators and spaces. Dapr parity (`missing nats URL`);
    /// the "only separators" case is a deliberate early check (the reference fails at connect).
    MissingNatsUrl,
    /// `jwt` without `seedKey`. Dapr parity.
    MissingSeedKey,
    /// `seedKey` without `jwt`. Dapr parity.
    MissingJwt,
    /// `tls_client_cert` without `tls_client_key`. Dapr parity.
    MissingTlsClientKey,
    /// `tls_client_key` without `tls_client_cert`. Dapr parity.
    MissingTlsClientCert,
    /// `user` without `password` (keys beyond the reference). Worded like the reference's
    /// pairing errors.
    MissingPassword,
    /// `password` without `user` (keys beyond the reference).
    MissingUser,
    /// `nkey` is not an nkey user seed (it must start with `SU`). The value is a secret and is
    /// never printed.
    NotAUserSeed {
        /// Canonical key name.
        key: &'static str,
    },
    /// `deliverPolicy` is not one of `all`, `""`, `last`, `new`, `sequence`, `time` (exact case).
    /// Dapr parity.
    InvalidDeliverPolicy {
        /// The value as given.
        value: String,
    },
    /// `concurrencyMode` or `concurrency` is neither `single` nor `parallel` (exact case). Dapr
    /// parity for `concurrencyMode`; for `concurrency` a deliberate fix (the reference accepts it
    /// and fails at Subscribe after creating the consumer). Both print the reference's text.
    InvalidConcurrencyMode {
        /// `concurrencyMode` or `concurrency`.
        key: &'static str,
        /// The value as given.
        value: String,
    },
    /// A retry-config key (`backOffPolicy`, `backOffDuration`, ...) has a bad value. Dapr parity:
    /// the reference fails Init on these; aggregated like [`MetadataError::Decode`].
    RetryConfig(Vec<RetryConfigError>),
    /// A decoded number is outside what the wire format can carry (negative durations or
    /// replicas, durations beyond 64-bit nanoseconds, a start time beyond 64-bit nanoseconds).
    /// A deliberate fix: the reference passes such values on, to be wrapped or rejected later.
    OutOfRange {
        /// Canonical key name.
        key: &'static str,
        /// The value as given.
        value: String,
        /// The rule it breaks.
        limit: Limit,
    },
    /// A name used in NATS subjects (`streamName`, `durableName`) is not a valid subject token,
    /// or a `queueGroupName` holds a protocol separator. A deliberate fix: the reference lets
    /// the server or nats.go reject it later, with misleading messages (Dapr issue #1655).
    InvalidName {
        /// Canonical key name.
        key: &'static str,
        /// The value as given.
        value: String,
        /// The rule it breaks.
        problem: NameProblem,
    },
    /// `deliverPolicy` and a start option (`startSequence`, `startTime`) contradict each other.
    /// The text is the JetStream server's (error 10094) without nats.go's `nats: ` prefix;
    /// a deliberate fix: the reference only fails at Subscribe.
    StartOptionConflict {
        /// The policy in the server's words: `deliver all`, `deliver by start sequence`, ...
        policy: &'static str,
        /// Which start option.
        option: StartOption,
        /// Whether it is set but must not be, or the other way round.
        state: StartOptionState,
    },
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateKey { key } => write!(
                f,
                "failed to resolve aliases: key {key} is duplicate in the metadata"
            ),
            Self::Decode(errors) => write_aggregate(f, errors),
            Self::MissingNatsUrl => f.write_str("missing nats URL"),
            Self::MissingSeedKey => f.write_str("missing seed key"),
            Self::MissingJwt => f.write_str("missing jwt"),
            Self::MissingTlsClientKey => f.write_str("missing tls client key"),
            Self::MissingTlsClientCert => f.write_str("missing tls client cert"),
            Self::MissingPassword => f.write_str("missing password (user is set)"),
            Self::MissingUser => f.write_str("missing user (password is set)"),
            Self::NotAUserSeed { key } => write!(
                f,
                "invalid {key}: not an nkey user seed (expected a seed starting with SU; the value is not shown)"
            ),
            Self::InvalidDeliverPolicy { value } => write!(
                f,
                "deliver policy {value} is not one of: all, last, new, sequence, time"
            ),
            Self::InvalidConcurrencyMode { value, .. } => {
                write!(f, "invalid concurrencyMode {value}")
            }
            Self::RetryConfig(errors) => write_aggregate(f, errors),
            Self::OutOfRange { key, value, limit } => {
                write!(f, "invalid {key} {}: {limit}", go_quote(value))
            }
            Self::InvalidName {
                key,
                value,
                problem,
            } => write!(f, "invalid {key} {}: {problem}", go_quote(value)),
            Self::StartOptionConflict {
                policy,
                option,
                state,
            } => write!(
                f,
                "consumer delivery policy is {policy}, but optional {option} is {state}"
            ),
        }
    }
}

impl std::error::Error for MetadataError {}

/// mapstructure's aggregate format: `N error(s) decoding:\n\n* a\n* b`, lines sorted.
fn write_aggregate<E: fmt::Display>(f: &mut fmt::Formatter<'_>, errors: &[E]) -> fmt::Result {
    let mut points: Vec<String> = errors.iter().map(|e| format!("* {e}")).collect();
    points.sort();
    write!(
        f,
        "{} error(s) decoding:\n\n{}",
        errors.len(),
        points.join("\n")
    )
}

/// One key whose value could not be decoded; Display is mapstructure's text, naming the key in
/// its canonical spelling and quoting the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// `cannot parse '<key>' as int: strconv.ParseInt: parsing "<v>": <reason>`
    Int {
        /// Canonical key name.
        key: &'static str,
        /// Go's parse error, which holds the value.
        source: NumError,
    },
    /// `cannot parse '<key>' as uint: strconv.ParseUint: parsing "<v>": <reason>`
    Uint {
        /// Canonical key name.
        key: &'static str,
        /// Go's parse error, which holds the value.
        source: NumError,
    },
    /// `error decoding '<key>': time: invalid duration "<v>"\nstrconv.ParseInt: ...`
    Duration {
        /// Canonical key name.
        key: &'static str,
        /// Both failed attempts, which hold the value.
        source: DurationDecodeError,
    },
}

impl DecodeError {
    /// The canonical key at fault.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Int { key, .. } | Self::Uint { key, .. } | Self::Duration { key, .. } => key,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int { key, source } => write!(f, "cannot parse '{key}' as int: {source}"),
            Self::Uint { key, source } => write!(f, "cannot parse '{key}' as uint: {source}"),
            Self::Duration { key, source } => write!(f, "error decoding '{key}': {source}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The range rule a value breaks (see [`MetadataError::OutOfRange`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Durations and replicas: the JetStream wire fields are unsigned.
    NotNegative,
    /// Durations: JetStream carries them as signed 64-bit nanoseconds.
    DurationRange,
    /// `startTime`: unix seconds whose nanoseconds fit in a signed 64-bit integer.
    StartTimeRange,
    /// `replicas`: the component carries it as a 32-bit count.
    ReplicasRange,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotNegative => "must not be negative",
            Self::DurationRange => "must be at most 2562047h47m16.854775807s (64-bit nanoseconds)",
            Self::StartTimeRange => {
                "must be at most 9223372036 (unix seconds whose nanoseconds fit in 64 bits)"
            }
            Self::ReplicasRange => "must be at most 4294967295",
        })
    }
}

/// Why a name is not a valid NATS subject token (see [`MetadataError::InvalidName`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// Longer than the server's 255-byte limit for stream and consumer names.
    TooLong,
    /// Contains whitespace or one of `.`, `*`, `>`, `/`, `\`.
    ForbiddenCharacter,
    /// A queue group containing a space, tab, CR or LF (nats.go's `nats: invalid queue name`).
    QueueSeparator,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLong => "must be at most 255 bytes long",
            Self::ForbiddenCharacter => r"must not contain whitespace, '.', '*', '>', '/' or '\'",
            Self::QueueSeparator => "must not contain a space, tab, CR or LF",
        })
    }
}

/// A start option of the consumer, in the server's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOption {
    /// `startSequence` (`opt_start_seq`).
    Sequence,
    /// `startTime` (`opt_start_time`).
    Time,
}

impl fmt::Display for StartOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sequence => "start sequence",
            Self::Time => "start time",
        })
    }
}

/// How a start option contradicts the deliver policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOptionState {
    /// Given, but the policy does not take it.
    AlsoSet,
    /// Not given, but the policy needs it.
    NotSet,
}

impl fmt::Display for StartOptionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AlsoSet => "also set",
            Self::NotSet => "not set",
        })
    }
}
