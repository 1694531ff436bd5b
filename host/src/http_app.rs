//! Delivery to an application over HTTP, the way the Dapr sidecar delivers a subscribed
//! message to an app: one `POST` per message, and the app's answer read by Dapr's rules.
//!
//! This is an ordinary [`Handler`]: the component decides nothing differently for it. It
//! exists so that `jetstream-pubsub subscribe --app-url` can drive an unchanged Dapr app
//! (or any HTTP service) without a sidecar, and so that an embedder can do the same.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::app::{AppStatus, Handler, Message, message_span};
use crate::cloudevent;

/// Header carrying the subscribed topic (the pattern, for a wildcard subscription).
pub const TOPIC_HEADER: &str = "pubsub-topic";
/// Header carrying the concrete subject the message was published on.
pub const SUBJECT_HEADER: &str = "pubsub-subject";
/// The content type sent when the message has none: Dapr assumes JSON in that case.
pub const DEFAULT_CONTENT_TYPE: &str = "application/json";
/// How long one delivery may take (connect, send, answer) before it counts as failed and
/// the message is retried. Dapr's app channel has no shorter bound; a minute lets slow
/// handlers finish while a hung app still gives its messages back.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The most of an answer's body that is read. The answer only matters as
/// `{"status": "..."}`; a larger body is an app returning data, which Dapr treats as
/// success (no status), so it is not worth buffering without bound.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Request headers a message's metadata may not set. Metadata comes from whoever
/// published the message; letting it set framing or connection headers would let a
/// publisher corrupt the request (or smuggle a second one), and the ones we set ourselves
/// must say what we mean.
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "content-type",
    "expect",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    TOPIC_HEADER,
    SUBJECT_HEADER,
];

/// Why an [`HttpApp`] cannot be made; the text names the URL at fault.
#[derive(Debug, thiserror::Error)]
pub enum HttpAppError {
    /// The URL does not parse.
    #[error("app URL {url:?} is not a valid URL: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What the parser said.
        reason: String,
    },
    /// The URL is not `http://host[:port][/path]`.
    #[error("app URL {url:?} is not supported: {reason}")]
    Unsupported {
        /// The URL as given.
        url: String,
        /// What is missing or not supported.
        reason: &'static str,
    },
}

/// An application reached over HTTP: each message is `POST`ed to one URL, as the Dapr
/// sidecar delivers to an app's subscription route.
///
/// The request:
/// - body: the message unchanged (a CloudEvent as it is); on a raw subscription
///   ([`HttpApp::raw_payload`]), every message wrapped in a new CloudEvent;
/// - `Content-Type`: [`cloudevent::CONTENT_TYPE`] for a JSON object (what daprd decodes as
///   a CloudEvent) and on a raw subscription, else the message's content type,
///   [`DEFAULT_CONTENT_TYPE`] when it has none;
/// - [`TOPIC_HEADER`]: the subscribed topic; [`SUBJECT_HEADER`]: the concrete subject;
/// - one header per metadata entry (the component's `Topic` and the message's NATS headers),
///   when the entry is a valid header name and value and not one of the framing headers.
///
/// The answer, by Dapr's rules (see [`status_of_answer`]): 2xx acknowledges unless the
/// body says `RETRY` or `DROP`; 404 drops; any other status retries. A connection error or
/// a timeout retries too, so a message is never lost because the app is down.
///
/// One client with a connection pool is shared by every delivery (clones share it too),
/// so the parallel deliveries of `concurrency: parallel` are concurrent requests on
/// concurrent connections, and sequential deliveries reuse one keep-alive connection.
///
/// ```no_run
/// # async fn example(pubsub: jetstream_pubsub_host::PubSub) -> Result<(), Box<dyn std::error::Error>> {
/// use jetstream_pubsub_host::HttpApp;
/// let app = HttpApp::new("http://127.0.0.1:3000/orders")?;
/// let subscription = pubsub.subscribe("orders.*", app).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HttpApp {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    client: Client<HttpConnector, Full<Bytes>>,
    url: Uri,
    timeout: Duration,
    /// `Some(pubsub name)` for a raw subscription (Dapr's `rawPayload`): every message is
    /// delivered wrapped in a CloudEvent carrying it as `data_base64`.
    raw_payload: Option<String>,
}

impl fmt::Debug for HttpApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpApp")
            .field("url", &self.inner.url)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpApp {
    /// An app at `url` (`http://host[:port][/path]`), with [`DEFAULT_TIMEOUT`].
    ///
    /// Only plain HTTP: the app is meant to sit next to this process, as an app sits next
    /// to its sidecar.
    pub fn new(url: &str) -> Result<Self, HttpAppError> {
        let uri: Uri =
            url.parse().map_err(
                |err: hyper::http::uri::InvalidUri| HttpAppError::InvalidUrl {
                    url: url.to_string(),
                    reason: err.to_string(),
                },
            )?;
        let unsupported = |reason| HttpAppError::Unsupported {
            url: url.to_string(),
            reason,
        };
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(unsupported("only http:// is supported")),
            None => return Err(unsupported("give the scheme, as in http://127.0.0.1:3000/")),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(unsupported("it names no host"));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                url: uri,
                timeout: DEFAULT_TIMEOUT,
                raw_payload: None,
            }),
        })
    }

    /// Sets how long one delivery may take before it is abandoned and retried.
    pub fn timeout(self, timeout: Duration) -> Self {
        let mut inner = (*self.inner).clone();
        inner.timeout = timeout;
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Delivers as daprd delivers to a raw subscription (`rawPayload: "true"` in its
    /// metadata): each message wrapped in a new CloudEvent that carries it as
    /// `data_base64`, `pubsubname` set to `pubsub_name`.
    pub fn raw_payload(self, pubsub_name: impl Into<String>) -> Self {
        let mut inner = (*self.inner).clone();
        inner.raw_payload = Some(pubsub_name.into());
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The URL messages are posted to.
    pub fn url(&self) -> &Uri {
        &self.inner.url
    }

    /// Posts `message` and returns the app's answer as a status. Never fails: what cannot
    /// be delivered is a retry, logged with the reason.
    pub async fn deliver(&self, message: Message) -> AppStatus {
        let inner = &self.inner;
        // Every line below is about this message, and says which (`Message::log_span`).
        let subject = message.subject().to_string();
        let delivery = message.delivery;
        let span = || message_span(Some(&subject), delivery).entered();
        let request = match build_request(&inner.url, message, inner.raw_payload.as_deref()) {
            Ok(request) => request,
            Err(err) => {
                let _span = span();
                tracing::warn!(url = %inner.url, error = %err, "cannot build the request to the app; the message is retried");
                return AppStatus::Retry;
            }
        };
        let exchange = async {
            let response = inner.client.request(request).await?;
            let status = response.status();
            // Read the answer (bounded) so the connection goes back to the pool.
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .ok();
            Ok::<_, hyper_util::client::legacy::Error>((status, body))
        };
        match tokio::time::timeout(inner.timeout, exchange).await {
            Ok(Ok((status, body))) => {
                let decided = status_of_answer(status, body.as_deref());
                if decided != AppStatus::Success {
                    let _span = span();
                    tracing::warn!(url = %inner.url, http_status = %status, decided = ?decided, "the app did not accept the message");
                }
                decided
            }
            Ok(Err(err)) => {
                let _span = span();
                tracing::warn!(url = %inner.url, error = %ErrorChain(&err), "cannot reach the app; the message is retried");
                AppStatus::Retry
            }
            Err(_) => {
                let _span = span();
                tracing::warn!(url = %inner.url, timeout_secs = inner.timeout.as_secs_f64(), "the app did not answer in time; the message is retried");
                AppStatus::Retry
            }
        }
    }
}

impl Handler for HttpApp {
    fn handle(&self, message: Message) -> BoxFuture<'static, AppStatus> {
        let app = self.clone();
        Box::pin(async move { app.deliver(message).await })
    }
}

/// The request daprd would send for `message`: a JSON object (daprd decodes every message
/// as a CloudEvent map) as it is, as `application/cloudevents+json`; on a raw subscription
/// every message wrapped in a new event; any other payload unchanged with its own content
/// type (where daprd would fail to decode it and retry it until it is dead-lettered: a
/// message a plain NATS client published is delivered instead).
fn build_request(
    url: &Uri,
    message: Message,
    raw_payload: Option<&str>,
) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
    let subject = message.subject().to_string();
    let Message {
        topic,
        mut data,
        mut content_type,
        metadata,
        delivery: _,
    } = message;
    if let Some(pubsub_name) = raw_payload {
        data = Bytes::from(cloudevent::from_raw_payload(&topic, pubsub_name, &data));
        content_type = Some(cloudevent::CONTENT_TYPE.to_string());
    } else if cloudevent::is_json_object(&data) {
        content_type = Some(cloudevent::CONTENT_TYPE.to_string());
    }
    let mut headers = HeaderMap::new();
    for (key, value) in &metadata {
        let Ok(name) = HeaderName::from_bytes(key.as_bytes()) else {
            tracing::debug!(key, "metadata key is not a header name; not sent");
            continue;
        };
        if RESERVED_HEADERS.contains(&name.as_str()) {
            tracing::debug!(key, "metadata key is a reserved header; not sent");
            continue;
        }
        let Ok(value) = HeaderValue::from_str(value) else {
            tracing::debug!(key, "metadata value is not a header value; not sent");
            continue;
        };
        headers.append(name, value);
    }
    let content_type = content_type
        .as_deref()
        .and_then(|text| HeaderValue::from_str(text).ok())
        .unwrap_or(HeaderValue::from_static(DEFAULT_CONTENT_TYPE));
    headers.insert(header::CONTENT_TYPE, content_type);
    // Topics and subjects are NATS subjects: printable ASCII, always valid header values.
    for (name, value) in [(TOPIC_HEADER, &*topic), (SUBJECT_HEADER, &subject)] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(url.clone())
        .body(Full::new(data))?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// The app's answer as a status, by the rules of Dapr's runtime
/// (`pkg/runtime/subscription`, HTTP delivery):
///
/// - 2xx: the body's `status` decides: `SUCCESS` or empty (any case) acknowledges,
///   `RETRY` retries, `DROP` drops, any other value retries (Dapr: "unknown status"). A
///   body that is empty, not JSON, or has no `status` acknowledges.
/// - 404: dropped (Dapr: a non-retriable error, the route does not exist).
/// - any other status: retried.
///
/// `body` is `None` when it could not be read (too large, or the connection broke after
/// the headers); for a 2xx that is read as an unparsable body, i.e. success.
pub fn status_of_answer(status: StatusCode, body: Option<&[u8]>) -> AppStatus {
    if status == StatusCode::NOT_FOUND {
        return AppStatus::Drop;
    }
    if !status.is_success() {
        return AppStatus::Retry;
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        status: Option<String>,
    }
    let said = body
        .and_then(|body| serde_json::from_slice::<Answer>(body).ok())
        .and_then(|answer| answer.status)
        .unwrap_or_default();
    match said.to_ascii_uppercase().as_str() {
        "" | "SUCCESS" => AppStatus::Success,
        "DROP" => AppStatus::Drop,
        _ => AppStatus::Retry,
    }
}

/// An error with its sources, for one log field ("connection refused" sits two levels
/// down in hyper-util's error).
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_follow_dapr_rules() {
        let ok = StatusCode::OK;
        let cases: &[(StatusCode, Option<&[u8]>, AppStatus)] = &[
            (ok, Some(b""), AppStatus::Success),
            (ok, None, AppStatus::Success),
            (ok, Some(br#"{"status":"SUCCESS"}"#), AppStatus::Success),
            (ok, Some(br#"{"status":"success"}"#), AppStatus::Success),
            (ok, Some(br#"{"status":""}"#), AppStatus::Success),
            (ok, Some(br#"{"other":1}"#), AppStatus::Success),
            (ok, Some(b"not json"), AppStatus::Success),
            (ok, Some(br#"{"status":"RETRY"}"#), AppStatus::Retry),
            (ok, Some(br#"{"status":"maybe"}"#), AppStatus::Retry),
            (ok, Some(br#"{"status":"DROP"}"#), AppStatus::Drop),
            (StatusCode::NO_CONTENT, Some(b""), AppStatus::Success),
            (StatusCode::NOT_FOUND, Some(b""), AppStatus::Drop),
            (
                StatusCode::NOT_FOUND,
                Some(br#"{"status":"SUCCESS"}"#),
                AppStatus::Drop,
            ),
            (StatusCode::INTERNAL_SERVER_ERROR, None, AppStatus::Retry),
            (
                StatusCode::BAD_REQUEST,
                Some(br#"{"status":"SUCCESS"}"#),
                AppStatus::Retry,
            ),
            (StatusCode::MOVED_PERMANENTLY, None, AppStatus::Retry),
        ];
        for (status, body, expected) in cases {
            assert_eq!(
                status_of_answer(*status, *body),
                *expected,
                "{status} {:?}",
                body.map(String::from_utf8_lossy)
            );
        }
    }

    #[test]
    fn bad_urls_are_named_in_the_error() {
        for (url, expected) in [
            (
                "https://app:3000/x",
                r#"app URL "https://app:3000/x" is not supported: only http:// is supported"#,
            ),
            (
                "127.0.0.1:3000",
                r#"app URL "127.0.0.1:3000" is not supported"#,
            ),
            (
                "http://exa mple/",
                r#"app URL "http://exa mple/" is not a valid URL"#,
            ),
        ] {
            let err = HttpApp::new(url).expect_err(url).to_string();
            assert!(err.starts_with(expected), "{url}: {err}");
        }
    }

    #[test]
    fn request_carries_data_type_topic_subject_and_valid_metadata() {
        let url: Uri = "http://127.0.0.1:1/orders".parse().expect("valid");
        let message = Message {
            topic: "orders.*".into(),
            data: Bytes::from_static(b"[1]"),
            content_type: None,
            metadata: vec![
                ("Topic".into(), "orders.new".into()),
                ("Nats-Msg-Id".into(), "o-1".into()),
                ("Content-Length".into(), "999".into()),
                ("bad header".into(), "x".into()),
                ("X-Line".into(), "a\nb".into()),
            ],
            delivery: None,
        };
        let request = build_request(&url, message, None).expect("request");
        let headers = request.headers();
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(request.method(), Method::POST);
        assert_eq!(get("content-type"), Some(DEFAULT_CONTENT_TYPE));
        assert_eq!(get(TOPIC_HEADER), Some("orders.*"));
        assert_eq!(get(SUBJECT_HEADER), Some("orders.new"));
        assert_eq!(get("topic"), Some("orders.new"));
        assert_eq!(get("nats-msg-id"), Some("o-1"));
        assert_eq!(get("content-length"), None);
        assert_eq!(get("x-line"), None);
        assert_eq!(headers.len(), 5, "{headers:?}");
    }

    #[test]
    fn cloud_events_go_as_cloud_events_and_raw_subscriptions_wrap() {
        let url: Uri = "http://127.0.0.1:1/orders".parse().expect("valid");
        let message = |data: &'static [u8]| Message {
            topic: "orders".into(),
            data: Bytes::from_static(data),
            content_type: Some("application/json".into()),
            metadata: Vec::new(),
            delivery: None,
        };
        let content_type = |request: &Request<Full<Bytes>>| {
            request
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let event = br#"{"specversion":"1.0","id":"e-1","source":"s","type":"t","data":{}}"#;
        let request = build_request(&url, message(event), None).expect("request");
        assert_eq!(
            content_type(&request).as_deref(),
            Some(cloudevent::CONTENT_TYPE)
        );
        // Any JSON object: daprd decodes it as an event.
        let object = build_request(&url, message(b"{\"id\":1}"), None).expect("request");
        assert_eq!(
            content_type(&object).as_deref(),
            Some(cloudevent::CONTENT_TYPE)
        );
        let plain = build_request(&url, message(b"[1]"), None).expect("request");
        assert_eq!(content_type(&plain).as_deref(), Some("application/json"));
        let raw = build_request(&url, message(b"{\"id\":1}"), Some("pubsub")).expect("request");
        assert_eq!(
            content_type(&raw).as_deref(),
            Some(cloudevent::CONTENT_TYPE)
        );
    }
}
