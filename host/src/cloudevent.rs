//! CloudEvents envelopes, made where Dapr's sidecar makes them: on the host side, never in
//! the component.
//!
//! Why: the component keeps the reference's contract, in which the string `id` of a JSON
//! payload becomes `Nats-Msg-Id` and JetStream stores one message per id within the stream's
//! duplicate window. Under Dapr that is safe because daprd wraps every application payload in
//! a CloudEvent with a fresh id before the component sees it; only a retry of the same event
//! repeats an id. A front end that stands where the sidecar stands (the CLI's `publish` and
//! `demo`, an embedder's publisher) must wrap the same way, or ordinary business JSON with an
//! `id` field is deduplicated by accident and an update is lost. Envelopes are built as
//! components-contrib's `pubsub/envelope.go` builds them, with the CNCF `cloudevents-sdk`
//! for the format itself.

use cloudevents::event::Data;
use cloudevents::{EventBuilder as _, EventBuilderV10};

/// The content type of a CloudEvent in JSON, as daprd publishes and delivers it.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";
/// The event type daprd gives the events it wraps (`DefaultCloudEventType`).
pub const EVENT_TYPE: &str = "com.dapr.event.sent";
/// The source of events wrapped on the subscriber side (`DefaultCloudEventSource`).
pub const DEFAULT_SOURCE: &str = "Dapr";
/// The content type of a payload that has none and is not JSON (`text/plain`, Dapr's
/// `DefaultCloudEventDataContentType`).
pub const DEFAULT_DATA_CONTENT_TYPE: &str = "text/plain";

/// How a publisher wraps payloads: the event source (daprd uses the app id) and the pub/sub
/// component's name, plus the W3C trace context when there is one.
///
/// ```
/// use jetstream_pubsub_host::cloudevent::Envelope;
///
/// let envelope = Envelope::new("orders-service", "pubsub");
/// let first = envelope.wrap("orders", br#"{"id":"o-1","status":"created"}"#.to_vec(), None);
/// let second = envelope.wrap("orders", br#"{"id":"o-1","status":"paid"}"#.to_vec(), None);
/// assert_ne!(first.id, second.id, "two publishes, two events: neither is a duplicate");
/// assert!(first.wrapped);
/// ```
#[derive(Debug, Clone)]
pub struct Envelope {
    source: String,
    pubsub_name: String,
    traceparent: String,
    tracestate: String,
}

/// A payload ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Wrapped {
    /// What to publish.
    pub data: Vec<u8>,
    /// Its content type: [`CONTENT_TYPE`].
    pub content_type: String,
    /// The event's id, JetStream's deduplication key for it (`None`: an application's
    /// event without a string `id`).
    pub id: Option<String>,
    /// False when the payload already was a CloudEvent and is sent as it is.
    pub wrapped: bool,
}

impl Envelope {
    /// Envelopes from `source` (daprd uses the app id) through the component `pubsub_name`.
    pub fn new(source: impl Into<String>, pubsub_name: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            pubsub_name: pubsub_name.into(),
            traceparent: String::new(),
            tracestate: String::new(),
        }
    }

    /// Carries a W3C trace context (`traceparent`, and `traceid` as daprd writes it too).
    pub fn trace(mut self, traceparent: impl Into<String>, tracestate: impl Into<String>) -> Self {
        self.traceparent = traceparent.into();
        self.tracestate = tracestate.into();
        self
    }

    /// Dapr's publish: a payload that already is a CloudEvent is sent as it is, so its `id`
    /// is the application's deliberate deduplication key; any other payload is wrapped in
    /// a new event with a fresh UUID.
    ///
    /// A CloudEvent is a JSON object sent as `application/cloudevents+json` (daprd's rule),
    /// or one holding string `specversion`, `id`, `source` and `type` whatever its content
    /// type. The payload of a new event becomes `data` as JSON, its text kept to the byte
    /// (no number is rounded), when its content type is `application/json` (with or without
    /// parameters) and it parses; `data_base64` when the content type is
    /// `application/octet-stream` or the bytes are not UTF-8 (Dapr would write them as a
    /// string and lose them); else `data` as a string. Without a content type, a payload
    /// that parses as JSON is `application/json`, any other `text/plain`. `traceid`,
    /// `traceparent` and `tracestate` are always there, empty without a trace, as daprd
    /// writes them.
    pub fn wrap(&self, topic: &str, data: Vec<u8>, content_type: Option<&str>) -> Wrapped {
        let declared = content_type.is_some_and(|c| essence(c).starts_with(CONTENT_TYPE));
        let attributes = context_attributes(&data);
        if let Some(attributes) = &attributes
            && (declared || attributes.complete())
        {
            return Wrapped {
                id: attributes.id.clone(),
                data,
                content_type: CONTENT_TYPE.to_string(),
                wrapped: false,
            };
        }
        let id = uuid::Uuid::new_v4().to_string();
        let json =
            attributes.is_some() || serde_json::from_slice::<serde::de::IgnoredAny>(&data).is_ok();
        let content_type = match content_type.filter(|c| !c.trim().is_empty()) {
            Some(given) => given.to_string(),
            None if json => "application/json".to_string(),
            None => DEFAULT_DATA_CONTENT_TYPE.to_string(),
        };
        let essence = essence(&content_type);
        // JSON data goes in as written: the SDK's `Data::Json` would parse it into a
        // `serde_json::Value` and round numbers beyond f64 (Dapr decodes with `UseNumber`
        // to keep them). A marker no payload can hold (it names this event's fresh id)
        // stands in its place and the text replaces it.
        let marker = format!("jetstream-pubsub-data-{id}");
        let (event_data, raw_json) = if essence.starts_with("application/json") && json {
            (Data::String(marker.clone()), Some(data))
        } else if essence.starts_with("application/octet-stream") {
            (Data::Binary(data), None)
        } else {
            match String::from_utf8(data) {
                Ok(text) => (Data::String(text), None),
                Err(not_text) => (Data::Binary(not_text.into_bytes()), None),
            }
        };
        let builder = EventBuilderV10::new()
            .id(id.clone())
            .source(self.source.clone())
            .ty(EVENT_TYPE)
            .data(content_type, event_data)
            .extension("topic", topic)
            .extension("pubsubname", self.pubsub_name.as_str())
            .extension("traceid", self.traceparent.as_str())
            .extension("traceparent", self.traceparent.as_str())
            .extension("tracestate", self.tracestate.as_str());
        let mut event = serialize(builder);
        if let Some(json) = raw_json {
            event = splice(&event, &format!("\"{marker}\""), json.trim_ascii());
        }
        Wrapped {
            data: event,
            content_type: CONTENT_TYPE.to_string(),
            id: Some(id),
            wrapped: true,
        }
    }
}

/// Whether `payload` is a JSON object: what daprd takes for a CloudEvent when it delivers
/// (it decodes every message into a map). Checked without building the object.
pub fn is_json_object(payload: &[u8]) -> bool {
    starts_an_object(payload) && serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok()
}

fn starts_an_object(payload: &[u8]) -> bool {
    payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// The context attributes of a JSON object payload that decide whether it already is a
/// CloudEvent; the rest of the object (its data above all) is skipped, not built.
#[derive(serde::Deserialize)]
struct ContextAttributes {
    #[serde(default, deserialize_with = "string_or_none")]
    specversion: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    id: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    source: Option<String>,
    #[serde(default, rename = "type", deserialize_with = "string_or_none")]
    ty: Option<String>,
}

impl ContextAttributes {
    /// The four required attributes (`specversion`, `id`, `source`, `type`) are strings.
    fn complete(&self) -> bool {
        self.specversion.is_some()
            && self.id.is_some()
            && self.source.is_some()
            && self.ty.is_some()
    }
}

/// A JSON string as itself, any other JSON value as none.
fn string_or_none<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    use serde::Deserialize as _;
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => Some(text),
        _ => None,
    })
}

/// The context attributes of `payload` when it is a JSON object.
fn context_attributes(payload: &[u8]) -> Option<ContextAttributes> {
    if !starts_an_object(payload) {
        return None;
    }
    serde_json::from_slice(payload).ok()
}

/// A content type's lower-cased media type, parameters left out.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The event daprd delivers for a message of a raw subscription (`rawPayload`): the bytes
/// as `data_base64`, `application/octet-stream`, a fresh id (so a redelivery of the same
/// message carries another id: a limitation daprd has too).
pub fn from_raw_payload(topic: &str, pubsub_name: &str, payload: &[u8]) -> Vec<u8> {
    serialize(
        EventBuilderV10::new()
            .id(uuid::Uuid::new_v4().to_string())
            .source(DEFAULT_SOURCE)
            .ty(EVENT_TYPE)
            .data("application/octet-stream", Data::Binary(payload.to_vec()))
            .extension("topic", topic)
            .extension("pubsubname", pubsub_name),
    )
}

/// A built event as JSON. The builder is given every required attribute and only string
/// extensions with fixed valid names, so it cannot fail; should it, the error is the event.
fn serialize(builder: EventBuilderV10) -> Vec<u8> {
    match builder.build() {
        Ok(event) => serde_json::to_vec(&event).unwrap_or_default(),
        Err(err) => {
            serde_json::to_vec(&serde_json::json!({ "error": err.to_string() })).unwrap_or_default()
        }
    }
}

/// `event` with the first occurrence of `placeholder` replaced by `replacement`.
fn splice(event: &[u8], placeholder: &str, replacement: &[u8]) -> Vec<u8> {
    let needle = placeholder.as_bytes();
    match event
        .windows(needle.len())
        .position(|window| window == needle)
    {
        Some(at) => [&event[..at], replacement, &event[at + needle.len()..]].concat(),
        None => event.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn json_of(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn a_payload_is_wrapped_as_daprd_wraps_it() {
        let envelope = Envelope::new("orders-service", "pubsub");
        let wrapped = envelope.wrap(
            "orders.created",
            br#"{"id":"o-1","total":42}"#.to_vec(),
            None,
        );
        let event = json_of(&wrapped.data);
        let id = wrapped.id.clone().unwrap();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["id"], id.as_str());
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        assert_eq!(event["source"], "orders-service");
        assert_eq!(event["type"], "com.dapr.event.sent");
        assert_eq!(event["datacontenttype"], "application/json");
        assert_eq!(event["data"], json!({"id": "o-1", "total": 42}));
        assert_eq!(event["topic"], "orders.created");
        assert_eq!(event["pubsubname"], "pubsub");
        for trace in ["traceid", "traceparent", "tracestate"] {
            assert_eq!(
                event[trace], "",
                "{trace} is there, empty, as daprd writes it"
            );
        }
        assert_eq!(wrapped.content_type, CONTENT_TYPE);
        assert!(wrapped.wrapped);
    }

    #[test]
    fn json_data_keeps_its_numbers_to_the_digit() {
        let payload = br#" {"amount": 19.90, "big": 123456789012345678901234567890, "n": [1e400]}
"#;
        let wrapped = Envelope::new("s", "p").wrap("t", payload.to_vec(), None);
        let text = String::from_utf8(wrapped.data).unwrap();
        assert!(
            text.contains(
                r#""data":{"amount": 19.90, "big": 123456789012345678901234567890, "n": [1e400]}"#
            ),
            "{text}"
        );
        assert!(!text.contains("jetstream-pubsub-data-"), "{text}");
    }

    #[test]
    fn data_follows_the_content_type() {
        let envelope = Envelope::new("s", "p");
        let event = |data: &[u8], content_type: Option<&str>| {
            json_of(&envelope.wrap("t", data.to_vec(), content_type).data)
        };
        let text = event(b"hello", None);
        assert_eq!(
            (text["datacontenttype"].clone(), text["data"].clone()),
            (json!("text/plain"), json!("hello"))
        );
        // JSON content type that does not parse: a string, as Dapr falls back.
        let broken = event(b"{not json", Some("application/json"));
        assert_eq!(broken["data"], "{not json");
        // A JSON payload declared as text stays text.
        let declared = event(b"{\"a\":1}", Some("text/plain"));
        assert_eq!(declared["data"], "{\"a\":1}");
        let binary = event(&[0, 159, 146, 150], Some("application/octet-stream"));
        assert_eq!(binary["data_base64"], "AJ+Slg==");
        assert!(binary.get("data").is_none());
        // Not UTF-8 under a text type: base64, not a lossy string.
        let lossy = event(&[0xff, 0xfe], Some("text/plain"));
        assert_eq!(lossy["data_base64"], "//4=");
        let parameters = event(b"[1,2]", Some("Application/JSON; charset=utf-8"));
        assert_eq!(parameters["data"], json!([1, 2]));
        // Dapr takes only application/json for JSON: a vendor type is a string.
        let vendor = event(b"[1,2]", Some("application/vnd.orders+json"));
        assert_eq!(vendor["data"], "[1,2]");
    }

    #[test]
    fn a_cloud_event_is_sent_as_it_is() {
        let own = br#"{"specversion":"1.0","id":"evt-7","source":"app","type":"order.paid","data":{"n":1},"ext":{"nested":true}}"#;
        let wrapped = Envelope::new("s", "p").wrap("t", own.to_vec(), Some("application/json"));
        assert_eq!(wrapped.data, own.to_vec());
        assert_eq!(wrapped.id.as_deref(), Some("evt-7"));
        assert!(!wrapped.wrapped);
        // Missing one of the four attributes: not a CloudEvent, so wrapped...
        let partial = br#"{"specversion":"1.0","id":"evt-7","source":"app"}"#;
        assert!(
            Envelope::new("s", "p")
                .wrap("t", partial.to_vec(), None)
                .wrapped
        );
        // ...unless it is declared one, as daprd decides.
        let declared = Envelope::new("s", "p").wrap("t", partial.to_vec(), Some(CONTENT_TYPE));
        assert!(!declared.wrapped);
        assert!(!is_json_object(b"null") && !is_json_object(b"[1]"));
        assert!(!is_json_object(b"\xff") && !is_json_object(b"{broken"));
        assert!(is_json_object(b" {\"a\":[1]}"));
    }

    #[test]
    fn trace_context_is_carried_when_given() {
        let envelope = Envelope::new("s", "p").trace("00-abc-def-01", "k=v");
        let event = json_of(&envelope.wrap("t", b"x".to_vec(), None).data);
        assert_eq!(event["traceparent"], "00-abc-def-01");
        assert_eq!(event["traceid"], "00-abc-def-01");
        assert_eq!(event["tracestate"], "k=v");
    }

    #[test]
    fn raw_payloads_are_delivered_as_data_base64() {
        let event = json_of(&from_raw_payload("orders", "pubsub", b"\x00raw"));
        assert_eq!(event["datacontenttype"], "application/octet-stream");
        assert_eq!(event["data_base64"], "AHJhdw==");
        assert_eq!(event["source"], "Dapr");
        assert_eq!(event["type"], "com.dapr.event.sent");
        assert_eq!(
            (event["topic"].clone(), event["pubsubname"].clone()),
            (json!("orders"), json!("pubsub"))
        );
    }
}
