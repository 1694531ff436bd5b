//! The values the embedder's face takes and gives: metadata, publish requests and their
//! acknowledgements, bulk entries and results, connection settings, the consumer summary.

use std::sync::Arc;

use crate::bindings::{transport, types};
use crate::error::Error;

/// Component metadata: the `spec.metadata` name/value pairs of a Dapr Component.
pub type Metadata = Vec<(String, String)>;

/// What the stream answered for a published message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PublishAck {
    /// The stream that stored it.
    pub stream: String,
    /// Its stream sequence.
    pub sequence: u64,
    /// True when the stream already had this message id (nothing new was stored).
    pub duplicate: bool,
}

impl From<async_nats::jetstream::publish::PublishAck> for PublishAck {
    fn from(ack: async_nats::jetstream::publish::PublishAck) -> Self {
        Self {
            stream: ack.stream,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        }
    }
}

/// A message to publish, with everything Dapr's `PublishRequest` carries.
#[derive(Debug, Clone, Default)]
pub struct PublishRequest {
    /// The subject.
    pub topic: String,
    /// The payload.
    pub data: Vec<u8>,
    /// MIME type of the payload.
    pub content_type: Option<String>,
    /// Request metadata.
    pub metadata: Metadata,
}

/// One entry of a bulk publish.
#[derive(Debug, Clone, Default)]
pub struct BulkEntry {
    /// Caller-chosen id, returned with the entry's result.
    pub entry_id: String,
    /// The payload.
    pub data: Vec<u8>,
    /// MIME type of the payload.
    pub content_type: Option<String>,
    /// Entry metadata.
    pub metadata: Metadata,
}

/// The outcome of one bulk entry.
#[derive(Debug)]
pub struct BulkEntryResult {
    /// The entry's id.
    pub entry_id: String,
    /// Its PubAck, or why it was not stored.
    pub outcome: Result<PublishAck, Error>,
}

/// Connection settings as the component resolved them from the metadata, for host-side
/// work (provisioning streams) with the same servers and credentials.
#[derive(Clone)]
pub struct ConnectionSettings(
    pub(crate) crate::transport::ConnectOptions,
    /// The sandbox policy the connection is opened under: the runtime's.
    pub(crate) Arc<crate::sandbox::SandboxPolicy>,
);

impl std::fmt::Debug for ConnectionSettings {
    // Credentials are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("servers", &crate::redact::servers(&self.0.servers))
            .field("name", &self.0.name)
            .field("api_prefix", &self.0.api_prefix)
            .finish_non_exhaustive()
    }
}

impl ConnectionSettings {
    /// The servers, with any user info masked.
    pub fn servers(&self) -> String {
        crate::redact::servers(&self.0.servers)
    }
}

/// The consumer a subscription is bound to, as the server reported it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsumerSummary {
    /// The stream.
    pub stream: String,
    /// The consumer's name.
    pub name: String,
    /// Its configuration, as JetStream field names and values.
    pub config: serde_json::Value,
}

impl From<transport::ConsumerInfo> for ConsumerSummary {
    fn from(info: transport::ConsumerInfo) -> Self {
        let config = serde_json::to_value(ConfigView::from(&info.config))
            .unwrap_or_else(|err| serde_json::json!({ "error": err.to_string() }));
        Self {
            stream: info.stream_name,
            name: info.name,
            config,
        }
    }
}

/// A consumer configuration under JetStream's field names, as the summary shows it.
#[derive(serde::Serialize)]
struct ConfigView<'a> {
    durable_name: &'a Option<String>,
    deliver_subject: &'a Option<String>,
    deliver_group: &'a Option<String>,
    ack_policy: &'static str,
    ack_wait_ns: u64,
    max_deliver: i64,
    backoff_ns: &'a [u64],
    max_ack_pending: i64,
    filter_subject: &'a String,
    rate_limit_bps: u64,
    idle_heartbeat_ns: u64,
    flow_control: bool,
    num_replicas: u32,
    mem_storage: bool,
    #[serde(flatten)]
    deliver_policy: DeliverPolicyView,
}

/// `deliver_policy`, and the start it names, as JetStream spells them.
#[derive(serde::Serialize)]
#[serde(tag = "deliver_policy", rename_all = "snake_case")]
enum DeliverPolicyView {
    All,
    Last,
    New,
    LastPerSubject,
    ByStartSequence { opt_start_seq: u64 },
    ByStartTime { opt_start_time_ns: i64 },
}

impl<'a> From<&'a transport::ConsumerConfig> for ConfigView<'a> {
    fn from(c: &'a transport::ConsumerConfig) -> Self {
        Self {
            durable_name: &c.durable_name,
            deliver_subject: &c.deliver_subject,
            deliver_group: &c.deliver_group,
            ack_policy: match c.ack_policy {
                transport::AckPolicy::Explicit => "explicit",
                transport::AckPolicy::All => "all",
                transport::AckPolicy::None => "none",
            },
            ack_wait_ns: c.ack_wait_ns,
            max_deliver: c.max_deliver,
            backoff_ns: &c.backoff_ns,
            max_ack_pending: c.max_ack_pending,
            filter_subject: &c.filter_subject,
            rate_limit_bps: c.rate_limit_bps,
            idle_heartbeat_ns: c.idle_heartbeat_ns,
            flow_control: c.flow_control,
            num_replicas: c.num_replicas,
            mem_storage: c.memory_storage,
            deliver_policy: match c.deliver_policy {
                transport::DeliverPolicy::All => DeliverPolicyView::All,
                transport::DeliverPolicy::Last => DeliverPolicyView::Last,
                transport::DeliverPolicy::New => DeliverPolicyView::New,
                transport::DeliverPolicy::LastPerSubject => DeliverPolicyView::LastPerSubject,
                transport::DeliverPolicy::ByStartSequence(opt_start_seq) => {
                    DeliverPolicyView::ByStartSequence { opt_start_seq }
                }
                transport::DeliverPolicy::ByStartTime(opt_start_time_ns) => {
                    DeliverPolicyView::ByStartTime { opt_start_time_ns }
                }
            },
        }
    }
}

/// The component's error as the host's: the same three kinds, the text as the component
/// wrote it.
impl From<types::Error> for Error {
    fn from(err: types::Error) -> Self {
        match err {
            types::Error::InvalidMetadata(text) => Error::InvalidMetadata(text),
            types::Error::Terminal(text) => Error::Terminal(text),
            types::Error::Retriable(text) => Error::Retriable(text),
        }
    }
}
