//! Dapr `pubsub.jetstream` component metadata: the key table, decoding, validation, and the
//! resulting [`Metadata`].
//!
//! [`parse`] accepts what Dapr's `pubsub.jetstream` accepts, decodes it the same way and rejects
//! what it rejects with the same words (reference §2), in the reference's order. It then makes
//! the deliberate early checks of our design (invalid `concurrency`, out-of-range numbers, bad
//! subject names, deliver-policy conflicts), which the reference only hits later, at connect or
//! Subscribe time. No I/O happens here.
//!
//! ```
//! use jetstream_pubsub_guest::metadata::{parse, DeliverPolicy};
//! let props = [("natsURL", "nats://localhost:4222"), ("deliverPolicy", "new")]
//!     .map(|(k, v)| (k.to_owned(), v.to_owned()));
//! let metadata = parse(&props).expect("valid");
//! assert_eq!(metadata.deliver_policy, DeliverPolicy::New);
//! assert_eq!(metadata.name, "dapr.io - pubsub.jetstream");
//! ```

pub mod credentials;
pub mod decode;
mod deliver;
mod error;
mod key;
pub mod name;
mod quote;
pub mod retry;
mod secret;

use std::time::Duration;

pub use deliver::{AckPolicy, DeliverPolicy};
pub use error::{DecodeError, Limit, MetadataError, NameProblem, StartOption, StartOptionState};
pub use retry::RetryConfigError;
pub use secret::Secret;

use decode::{Base, decode_duration, decode_duration_list, is_truthy, parse_int, parse_uint};
use deliver::{RequestedPolicy, StartOptions};

/// Every metadata key the component reads, in canonical spelling. `user`, `password`,
/// `credsFile`, `nkey` and `tls_ca` are ours, beyond the reference (which ignores them). Keys are matched
/// case-insensitively (Go `strings.EqualFold`) except the `backOff*` retry-config keys, whose
/// `backOff` prefix is case-sensitive as in the reference. Anything else is ignored.
pub const KEYS: &[&str] = &[
    "natsURL",
    "jwt",
    "seedKey",
    "token",
    "tls_client_cert",
    "tls_client_key",
    "user",
    "password",
    "credsFile",
    "nkey",
    "tls_ca",
    "name",
    "streamName",
    "durableName",
    "queueGroupName",
    "startSequence",
    "startTime",
    "deliverAll",
    "flowControl",
    "ackWait",
    "maxDeliver",
    "backOff",
    "maxAckPending",
    "replicas",
    "memoryStorage",
    "rateLimit",
    "heartbeat",
    "deliverPolicy",
    "ackPolicy",
    "domain",
    "apiPrefix",
    "concurrency",
    "concurrencyMode",
    "backOffPolicy",
    "backOffDuration",
    "backOffInitialInterval",
    "backOffRandomizationFactor",
    "backOffMultiplier",
    "backOffMaxInterval",
    "backOffMaxElapsedTime",
    "backOffMaxRetries",
];

/// The connection name when `name` is absent or empty. Dapr parity.
pub const DEFAULT_NAME: &str = "dapr.io - pubsub.jetstream";

/// How the component hands messages of one subscription to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// One message at a time, in order. Dapr's default for this component.
    Single,
    /// Several at once. Unlike the reference (which acks on receipt), messages are still acked
    /// after the handler, and in-flight work is bounded by `maxAckPending` (design decision).
    Parallel,
}

/// Validated component metadata. Every field is decoded as the reference decodes it; see
/// `docs/configuration.md` for each key.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// `natsURL` split on `,`, each entry trimmed and one trailing `/` removed, empty entries
    /// skipped (nats.go `processUrlString`). Never empty.
    pub servers: Vec<String>,
    /// `name`, the NATS connection name; [`DEFAULT_NAME`] when absent or empty.
    pub name: String,
    /// `jwt`, user JWT for decentralized auth. Always together with `seed_key`.
    pub jwt: Option<Secret>,
    /// `seedKey`, the nkey seed that signs the server nonce. Always together with `jwt`.
    pub seed_key: Option<Secret>,
    /// `token`, token auth; the reference uses it only when neither jwt/seed nor TLS client
    /// cert/key is set.
    pub token: Option<Secret>,
    /// `tls_client_cert`: a file path or inline PEM text, as given. Always together with
    /// `tls_client_key`.
    pub tls_client_cert: Option<Secret>,
    /// `tls_client_key`: a file path or inline PEM text, as given. Always together with
    /// `tls_client_cert`.
    pub tls_client_key: Option<Secret>,
    /// `user`, for user/password auth (beyond the reference). Always together with `password`.
    pub user: Option<String>,
    /// `password`, for user/password auth (beyond the reference). Always together with `user`.
    pub password: Option<Secret>,
    /// `credsFile`: a `.creds` file path, or its content inline (beyond the reference). Secret
    /// because the content holds the user's seed.
    pub creds_file: Option<Secret>,
    /// `nkey`: an nkey user seed (`SU...`) for plain nkey auth (beyond the reference).
    pub nkey: Option<Secret>,
    /// `tls_ca`: a file path or inline PEM of the CA certificates the server certificate must
    /// chain to (beyond the reference, which only trusts the system roots). Public material.
    pub tls_ca: Option<String>,
    /// `streamName`; `None` when absent or empty (the stream is then looked up by topic).
    pub stream_name: Option<String>,
    /// `durableName`; `None` (ephemeral consumer) when absent or empty.
    pub durable_name: Option<String>,
    /// `queueGroupName`: the consumer's deliver group and the NATS queue group.
    pub queue_group_name: Option<String>,
    /// The deliver policy with its start option, resolved from `deliverPolicy`,
    /// `startSequence`, `startTime` and the seed-era `deliverAll`.
    pub deliver_policy: DeliverPolicy,
    /// `ackPolicy`.
    pub ack_policy: AckPolicy,
    /// `ackWait`; also the NAK delay. `ZERO` means not set (server default 30s).
    pub ack_wait: Duration,
    /// `maxDeliver`; 0 means not set, negative values are passed on (−1 is unlimited).
    pub max_deliver: i64,
    /// `backOff`; empty means not set.
    pub backoff: Vec<Duration>,
    /// `maxAckPending`; 0 means not set.
    pub max_ack_pending: i64,
    /// `replicas` of the consumer; 0 means as the stream. Never negative.
    pub replicas: i64,
    /// `memoryStorage`: keep the consumer's state in memory.
    pub memory_storage: bool,
    /// `rateLimit` in bits per second; 0 means not set.
    pub rate_limit: u64,
    /// `heartbeat` (idle heartbeat); `ZERO` means not set.
    pub heartbeat: Duration,
    /// `flowControl`.
    pub flow_control: bool,
    /// `domain`, raw; see [`Metadata::api_prefix`].
    pub domain: Option<String>,
    /// `apiPrefix`, raw; see [`Metadata::api_prefix`].
    pub api_prefix_key: Option<String>,
    /// `concurrencyMode`, else `concurrency`, else single.
    pub concurrency: Concurrency,
}

impl Metadata {
    /// The JetStream API prefix, without the trailing dot: `$JS.API` by default,
    /// `$JS.<domain>.API` with `domain`, and `apiPrefix` (one trailing `.` removed) when set,
    /// which wins over `domain` as in nats.go (the reference applies it after the domain).
    ///
    /// ```
    /// # use jetstream_pubsub_guest::metadata::parse;
    /// let props = [("natsURL", "nats://h"), ("domain", "hub")]
    ///     .map(|(k, v)| (k.to_owned(), v.to_owned()));
    /// assert_eq!(parse(&props).unwrap().api_prefix(), "$JS.hub.API");
    /// ```
    pub fn api_prefix(&self) -> String {
        match (&self.api_prefix_key, &self.domain) {
            (Some(prefix), _) => prefix.strip_suffix('.').unwrap_or(prefix).to_owned(),
            (None, Some(domain)) => format!("$JS.{domain}.API"),
            (None, None) => "$JS.API".to_owned(),
        }
    }
}

/// Parses Dapr component metadata (key/value pairs as given in the Component YAML).
///
/// Order of checks, first failure wins:
/// 1. duplicate keys after lowercasing;
/// 2. decoding of every typed key (all failures reported together, as mapstructure does);
/// 3. the reference's validation: `missing nats URL`, `missing seed key`, `missing jwt`,
///    `missing tls client key`, `missing tls client cert`, `deliverPolicy` value,
///    `concurrencyMode` value;
/// 4. the `backOff*` retry-config keys (the reference checks them later in Init);
/// 5. deliberate early checks: `user` / `password` pairing, `nkey` shape, `concurrency` value
///    (only when no `concurrencyMode` overrides it), durations/replicas/startTime ranges,
///    subject names, deliver-policy conflicts.
pub fn parse(props: &[(String, String)]) -> Result<Metadata, MetadataError> {
    key::check_duplicates(props)?;
    let raw = RawMetadata::decode(props)?;
    raw.validate(props)
}

/// Typed values straight from the decoder, before validation. Strings are borrowed as given.
struct RawMetadata<'a> {
    nats_url: &'a str,
    jwt: &'a str,
    seed_key: &'a str,
    token: &'a str,
    tls_client_cert: &'a str,
    tls_client_key: &'a str,
    user: &'a str,
    password: &'a str,
    creds_file: &'a str,
    nkey: &'a str,
    tls_ca: &'a str,
    name: &'a str,
    stream_name: &'a str,
    durable_name: &'a str,
    queue_group_name: &'a str,
    start_sequence: u64,
    start_time: Option<(u64, &'a str)>,
    deliver_all: Option<&'a str>,
    flow_control: bool,
    ack_wait: (i128, &'a str),
    max_deliver: i64,
    backoff: (Vec<i128>, &'a str),
    max_ack_pending: i64,
    replicas: (i64, &'a str),
    memory_storage: bool,
    rate_limit: u64,
    heartbeat: (i128, &'a str),
    deliver_policy: Option<&'a str>,
    ack_policy: Option<&'a str>,
    domain: &'a str,
    api_prefix: &'a str,
    concurrency: &'a str,
    concurrency_mode: &'a str,
}

/// Looks keys up and decodes them, collecting every decode error.
struct Decoder<'a> {
    props: &'a [(String, String)],
    errors: Vec<DecodeError>,
}

impl<'a> Decoder<'a> {
    fn get(&self, key: &str) -> Option<&'a str> {
        key::lookup(self.props, key)
    }

    fn string(&self, key: &str) -> &'a str {
        self.get(key).unwrap_or("")
    }

    fn truthy(&self, key: &str) -> bool {
        self.get(key).is_some_and(is_truthy)
    }

    /// mapstructure: `""` is 0, else `strconv.ParseInt(s, 0, 64)`.
    fn int(&mut self, key: &'static str) -> (i64, &'a str) {
        let raw = self.string(key);
        let value = if raw.is_empty() {
            0
        } else {
            parse_int(raw, Base::Prefixed).unwrap_or_else(|source| {
                self.errors.push(DecodeError::Int { key, source });
                0
            })
        };
        (value, raw)
    }

    /// mapstructure: `""` is 0, else `strconv.ParseUint(s, 0, 64)`; `None` when absent.
    fn uint(&mut self, key: &'static str) -> Option<(u64, &'a str)> {
        let raw = self.get(key)?;
        let value = if raw.is_empty() {
            0
        } else {
            parse_uint(raw, Base::Prefixed).unwrap_or_else(|source| {
                self.errors.push(DecodeError::Uint { key, source });
                0
            })
        };
        Some((value, raw))
    }

    fn duration(&mut self, key: &'static str) -> (i128, &'a str) {
        let raw = self.string(key);
        let value = decode_duration(raw).unwrap_or_else(|source| {
            self.errors.push(DecodeError::Duration { key, source });
            0
        });
        (value, raw)
    }

    fn duration_list(&mut self, key: &'static str) -> (Vec<i128>, &'a str) {
        let raw = self.string(key);
        let value = decode_duration_list(raw).unwrap_or_else(|source| {
            self.errors.push(DecodeError::Duration { key, source });
            Vec::new()
        });
        (value, raw)
    }
}

impl<'a> RawMetadata<'a> {
    fn decode(props: &'a [(String, String)]) -> Result<Self, MetadataError> {
        let mut d = Decoder {
            props,
            errors: Vec::new(),
        };
        let raw = RawMetadata {
            nats_url: d.string("natsURL"),
            jwt: d.string("jwt"),
            seed_key: d.string("seedKey"),
            token: d.string("token"),
            tls_client_cert: d.string("tls_client_cert"),
            tls_client_key: d.string("tls_client_key"),
            user: d.string("user"),
            password: d.string("password"),
            creds_file: d.string("credsFile"),
            nkey: d.string("nkey"),
            tls_ca: d.string("tls_ca"),
            name: d.string("name"),
            stream_name: d.string("streamName"),
            durable_name: d.string("durableName"),
            queue_group_name: d.string("queueGroupName"),
            start_sequence: d.uint("startSequence").map_or(0, |(v, _)| v),
            start_time: d.uint("startTime"),
            deliver_all: d.get("deliverAll"),
            flow_control: d.truthy("flowControl"),
            ack_wait: d.duration("ackWait"),
            max_deliver: d.int("maxDeliver").0,
            backoff: d.duration_list("backOff"),
            max_ack_pending: d.int("maxAckPending").0,
            replicas: d.int("replicas"),
            memory_storage: d.truthy("memoryStorage"),
            rate_limit: d.uint("rateLimit").map_or(0, |(v, _)| v),
            heartbeat: d.duration("heartbeat"),
            deliver_policy: d.get("deliverPolicy"),
            ack_policy: d.get("ackPolicy"),
            domain: d.string("domain"),
            api_prefix: d.string("apiPrefix"),
            concurrency: d.string("concurrency"),
            concurrency_mode: d.string("concurrencyMode"),
        };
        if d.errors.is_empty() {
            Ok(raw)
        } else {
            Err(MetadataError::Decode(d.errors))
        }
    }

    fn validate(self, props: &[(String, String)]) -> Result<Metadata, MetadataError> {
        // The reference's own checks, in its order.
        let servers = split_servers(self.nats_url);
        if servers.is_empty() {
            return Err(MetadataError::MissingNatsUrl);
        }
        match (self.jwt.is_empty(), self.seed_key.is_empty()) {
            (false, true) => return Err(MetadataError::MissingSeedKey),
            (true, false) => return Err(MetadataError::MissingJwt),
            _ => {}
        }
        match (
            self.tls_client_cert.is_empty(),
            self.tls_client_key.is_empty(),
        ) {
            (false, true) => return Err(MetadataError::MissingTlsClientKey),
            (true, false) => return Err(MetadataError::MissingTlsClientCert),
            _ => {}
        }
        let name = if self.name.is_empty() {
            DEFAULT_NAME
        } else {
            self.name
        };
        let requested_policy = self
            .deliver_policy
            .map(RequestedPolicy::parse)
            .transpose()?;
        let ack_policy = AckPolicy::from_metadata(self.ack_policy);
        let mode = concurrency("concurrencyMode", self.concurrency_mode)?;

        // Checked by the reference in Init, after connecting.
        retry::validate(props).map_err(MetadataError::RetryConfig)?;

        // Deliberate early checks.
        match (self.user.is_empty(), self.password.is_empty()) {
            (false, true) => return Err(MetadataError::MissingPassword),
            (true, false) => return Err(MetadataError::MissingUser),
            _ => {}
        }
        if !self.nkey.is_empty() && !self.nkey.starts_with("SU") {
            return Err(MetadataError::NotAUserSeed { key: "nkey" });
        }
        // `concurrency` is checked only when it is the one in force: with a valid
        // `concurrencyMode` the reference never looks at it, so neither do we.
        let concurrency = match mode {
            Some(mode) => mode,
            None => concurrency("concurrency", self.concurrency)?.unwrap_or(Concurrency::Single),
        };
        let ack_wait = to_duration("ackWait", self.ack_wait)?;
        let heartbeat = to_duration("heartbeat", self.heartbeat)?;
        let (backoff_ns, backoff_raw) = self.backoff;
        let backoff = backoff_ns
            .into_iter()
            .map(|ns| to_duration("backOff", (ns, backoff_raw)))
            .collect::<Result<Vec<_>, _>>()?;
        let (replicas, replicas_raw) = self.replicas;
        if replicas < 0 {
            return Err(out_of_range("replicas", replicas_raw, Limit::NotNegative));
        }
        if replicas > i64::from(u32::MAX) {
            return Err(out_of_range("replicas", replicas_raw, Limit::ReplicasRange));
        }
        if let Some((seconds, raw)) = self.start_time
            && seconds > MAX_START_TIME_SECONDS
        {
            return Err(out_of_range("startTime", raw, Limit::StartTimeRange));
        }
        for (key, value) in [
            ("streamName", self.stream_name),
            ("durableName", self.durable_name),
        ] {
            if !value.is_empty() {
                name::validate(key, value)?;
            }
        }
        name::validate_queue_group(self.queue_group_name)?;
        let deliver_policy = deliver::resolve(
            requested_policy,
            self.deliver_all,
            StartOptions {
                sequence: self.start_sequence,
                time: self.start_time.map(|(seconds, _)| seconds),
            },
        )?;

        Ok(Metadata {
            servers,
            name: name.to_owned(),
            jwt: secret(self.jwt),
            seed_key: secret(self.seed_key),
            token: secret(self.token),
            tls_client_cert: secret(self.tls_client_cert),
            tls_client_key: secret(self.tls_client_key),
            user: non_empty(self.user),
            password: secret(self.password),
            creds_file: secret(self.creds_file),
            nkey: secret(self.nkey),
            tls_ca: non_empty(self.tls_ca),
            stream_name: non_empty(self.stream_name),
            durable_name: non_empty(self.durable_name),
            queue_group_name: non_empty(self.queue_group_name),
            deliver_policy,
            ack_policy,
            ack_wait,
            max_deliver: self.max_deliver,
            backoff,
            max_ack_pending: self.max_ack_pending,
            replicas,
            memory_storage: self.memory_storage,
            rate_limit: self.rate_limit,
            heartbeat,
            flow_control: self.flow_control,
            domain: non_empty(self.domain),
            api_prefix_key: non_empty(self.api_prefix),
            concurrency,
        })
    }
}

/// The largest `startTime` whose nanoseconds fit in an `i64` (what JetStream's
/// `opt_start_time` can carry).
const MAX_START_TIME_SECONDS: u64 = (i64::MAX / 1_000_000_000) as u64;

/// nats.go `processUrlString`: split on `,`, trim, drop one trailing `/`, skip empty entries.
fn split_servers(nats_url: &str) -> Vec<String> {
    nats_url
        .split(',')
        .map(|s| {
            let s = s.trim();
            s.strip_suffix('/').unwrap_or(s)
        })
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `single` / `parallel` exactly (Dapr's `pubsub.Concurrency`); `""` means not given.
fn concurrency(key: &'static str, value: &str) -> Result<Option<Concurrency>, MetadataError> {
    match value {
        "" => Ok(None),
        "single" => Ok(Some(Concurrency::Single)),
        "parallel" => Ok(Some(Concurrency::Parallel)),
        _ => Err(MetadataError::InvalidConcurrencyMode {
            key,
            value: value.to_owned(),
        }),
    }
}

/// A decoded duration that the wire can carry: not negative, at most `i64::MAX` nanoseconds.
fn to_duration(key: &'static str, (ns, raw): (i128, &str)) -> Result<Duration, MetadataError> {
    if ns < 0 {
        return Err(out_of_range(key, raw, Limit::NotNegative));
    }
    match u64::try_from(ns) {
        Ok(ns) if ns <= i64::MAX as u64 => Ok(Duration::from_nanos(ns)),
        _ => Err(out_of_range(key, raw, Limit::DurationRange)),
    }
}

fn out_of_range(key: &'static str, raw: &str, limit: Limit) -> MetadataError {
    MetadataError::OutOfRange {
        key,
        value: raw.to_owned(),
        limit,
    }
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

fn secret(value: &str) -> Option<Secret> {
    (!value.is_empty()).then(|| Secret::new(value))
}

#[cfg(test)]
mod tests;
