//! Shared harness of the integration tests: a private nats-server per test (a port it
//! picks, own store, killed by PID on drop), streams, the real component in wasmtime, a
//! handler that records what it received, and the positive signals that nothing more will
//! arrive ([`flush`], [`settled`], [`unbound`]) in place of sleeping and hoping.
#![allow(dead_code)]

pub mod app;
pub mod capture;
pub mod certs;
pub mod cluster;
pub mod jwt;
#[cfg(feature = "cli")]
pub mod metrics;
pub mod process;
pub mod stand_in;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jetstream_pubsub_host::nats_server::{NatsServer, ServerOptions};
use jetstream_pubsub_host::provision::{self, Storage, StreamSpec};
use jetstream_pubsub_host::{
    AppStatus, ConnectionSettings, ConsumerSummary, Message, Metadata, PubSub, Runtime,
};

/// How long the positive signals below may take before the test fails.
const SIGNAL_WAIT: Duration = Duration::from_secs(20);

/// A JetStream server for one test.
pub fn server() -> NatsServer {
    // Host and component logs show with RUST_LOG=... (e.g. RUST_LOG=debug) and --nocapture.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    ServerOptions::jetstream()
        .start()
        .expect("nats-server starts (apt-get install -y nats-server)")
}

/// The connection settings the component reads from `natsURL` = `url`, for provisioning.
pub async fn settings(url: &str) -> ConnectionSettings {
    // One runtime for every test of the process: reading settings connects nothing.
    static RUNTIME: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(runtime)
        .connection_settings(&metadata(&[("natsURL", url)]))
        .await
        .expect("the component reads the server URLs")
}

/// Creates a file stream named `name` on `subjects`.
pub async fn stream(server: &NatsServer, name: &str, subjects: &[&str]) {
    let spec = StreamSpec {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        storage: Storage::File,
        replicas: 1,
    };
    provision::add_stream(&settings(&server.url()).await, &spec)
        .await
        .expect("stream created");
}

/// Publishes each payload to `subject` as a plain NATS client would (no CloudEvent, no
/// headers), each awaited to its PubAck.
pub async fn publish_plain(server: &NatsServer, subject: &str, payloads: &[&str]) {
    let client = async_nats::connect(server.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    for payload in payloads {
        jetstream
            .publish(subject.to_string(), bytes::Bytes::from(payload.to_string()))
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// Metadata pairs from string slices.
pub fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The embedded component (this checkout's `guest/`), compiled by wasmtime.
pub fn runtime() -> Runtime {
    Runtime::new().expect("the embedded component loads")
}

/// An initialised component connected to `server`, with extra metadata.
pub async fn pubsub(server: &NatsServer, extra: &[(&str, &str)]) -> (Runtime, PubSub) {
    let runtime = runtime();
    let mut md = metadata(&[("natsURL", &server.url())]);
    md.extend(metadata(extra));
    let pubsub = runtime.pubsub(md).await.expect("init succeeds");
    (runtime, pubsub)
}

/// Payloads that start with this are [`flush`]'s sentinels.
pub const SENTINEL: &str = "sentinel-";

/// What a handler saw, in arrival order. Sentinels are kept apart: they never show in
/// `messages`, `payloads` or `arrivals`, and are always acknowledged.
#[derive(Clone, Default)]
pub struct Recorder {
    messages: Arc<Mutex<Vec<Message>>>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    sentinels: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A handler that records every message and answers with `decide(message, nth
    /// delivery of this payload)`.
    pub fn handler(
        &self,
        decide: impl Fn(&Message, usize) -> AppStatus + Send + Sync + 'static,
    ) -> impl Fn(Message) -> std::future::Ready<AppStatus> + Send + Sync + 'static {
        let (messages, arrivals) = (self.messages.clone(), self.arrivals.clone());
        let sentinels = self.sentinels.clone();
        move |message: Message| {
            if message.data.starts_with(SENTINEL.as_bytes()) {
                let payload = String::from_utf8_lossy(&message.data).into_owned();
                sentinels.lock().expect("recorder lock").push(payload);
                return std::future::ready(AppStatus::Success);
            }
            let mut seen = messages.lock().expect("recorder lock");
            let nth = seen.iter().filter(|m| m.data == message.data).count() + 1;
            let status = decide(&message, nth);
            seen.push(message);
            arrivals.lock().expect("recorder lock").push(Instant::now());
            std::future::ready(status)
        }
    }

    /// A handler that records and acknowledges everything.
    pub fn accept_all(
        &self,
    ) -> impl Fn(Message) -> std::future::Ready<AppStatus> + Send + Sync + 'static {
        self.handler(|_, _| AppStatus::Success)
    }

    /// When each message arrived, in arrival order.
    pub fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().expect("recorder lock").clone()
    }

    /// The sentinels received, in arrival order.
    pub fn sentinels(&self) -> Vec<String> {
        self.sentinels.lock().expect("recorder lock").clone()
    }

    pub fn messages(&self) -> Vec<Message> {
        self.messages.lock().expect("recorder lock").clone()
    }

    pub fn payloads(&self) -> Vec<String> {
        self.messages()
            .iter()
            .map(|m| String::from_utf8_lossy(&m.data).into_owned())
            .collect()
    }

    pub fn count_of(&self, payload: &str) -> usize {
        self.payloads().iter().filter(|p| *p == payload).count()
    }

    /// Waits until `done(received)` holds, or fails the test after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Message]) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.messages()) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what}; received {:?}",
                    self.payloads()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Proves that nothing published to `topic` before this call is still on its way to the
/// subscriptions recording into `recorders`: publishes sentinels on `topic`, one at a time,
/// until each recorder has received one of them.
///
/// A push consumer delivers in stream order, NATS keeps one publisher's order towards each
/// subscriber, and a single-mode subscription calls its handler in order: so a message
/// stored before the sentinel that reached a recorder either reached that recorder first,
/// or never will. This holds for first deliveries; a redelivery is not ordered with new
/// messages (use [`settled`] for those). The members of a queue group each get only some
/// of the sentinels, which is why more are sent until every recorder has had one.
pub async fn flush(pubsub: &PubSub, topic: &str, recorders: &[&Recorder]) {
    static FLUSHES: AtomicUsize = AtomicUsize::new(0);
    let flush = FLUSHES.fetch_add(1, Ordering::SeqCst);
    let ours = |recorder: &Recorder| {
        let mine = format!("{SENTINEL}{flush}-");
        recorder.sentinels().iter().any(|s| s.starts_with(&mine))
    };
    for n in 0..100 {
        let sentinel = format!("{SENTINEL}{flush}-{n}");
        pubsub
            .publish(topic, sentinel.clone().into_bytes())
            .await
            .unwrap_or_else(|err| panic!("publishing {sentinel} to {topic}: {err}"));
        let deadline = Instant::now() + SIGNAL_WAIT;
        while !recorders.iter().any(|r| r.sentinels().contains(&sentinel)) {
            assert!(
                Instant::now() < deadline,
                "{sentinel} published to {topic} reached no subscriber"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if recorders.iter().all(|r| ours(r)) {
            return;
        }
    }
    panic!("100 sentinels on {topic}, and some subscriber never got one");
}

/// Consumer info straight from the server, with a plain async-nats client; None when the
/// consumer does not exist.
pub async fn consumer_info(
    url: &str,
    stream: &str,
    consumer: &str,
) -> Option<async_nats::jetstream::consumer::Info> {
    let client = async_nats::connect(url)
        .await
        .expect("a plain client connects");
    let jetstream = async_nats::jetstream::new(client);
    let mut consumer = jetstream
        .get_consumer_from_stream::<async_nats::jetstream::consumer::Config, _, _>(consumer, stream)
        .await
        .ok()?;
    consumer.info().await.ok().cloned()
}

/// Waits until `consumer` has nothing left to deliver or redeliver: every stored message
/// was delivered (`num_pending` 0) and every delivery was answered (`num_ack_pending` 0).
/// From then on the server sends nothing until something new is stored, and since the
/// component answers a message only after its handler returned, what the handlers received
/// is final. The info it returns counts in `delivered.consumer_sequence` every delivery the
/// server made, redeliveries included.
pub async fn settled(
    url: &str,
    consumer: &ConsumerSummary,
) -> async_nats::jetstream::consumer::Info {
    let deadline = Instant::now() + SIGNAL_WAIT;
    loop {
        let info = consumer_info(url, &consumer.stream, &consumer.name).await;
        match info {
            Some(info) if info.num_pending == 0 && info.num_ack_pending == 0 => return info,
            _ if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!(
                "consumer {} on {} did not settle in {SIGNAL_WAIT:?}: {:?}",
                consumer.name,
                consumer.stream,
                other.map(|i| (i.num_pending, i.num_ack_pending, i.delivered))
            ),
        }
    }
}

/// Waits until the server no longer has anyone listening for `consumer`'s deliveries (not
/// push-bound), or has deleted it (an ephemeral one, after its inactivity threshold). From
/// then on it delivers nothing, whatever is published.
pub async fn unbound(url: &str, consumer: &ConsumerSummary) {
    let deadline = Instant::now() + SIGNAL_WAIT;
    loop {
        match consumer_info(url, &consumer.stream, &consumer.name).await {
            None => return,
            Some(info) if !info.push_bound => return,
            Some(_) => {
                assert!(
                    Instant::now() < deadline,
                    "consumer {} on {} still has a subscriber after {SIGNAL_WAIT:?}",
                    consumer.name,
                    consumer.stream
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Asserts that the server delivered nothing from stream sequence `first` on to `consumer`
/// (true by itself once an ephemeral consumer is gone: it delivers nothing any more).
pub async fn assert_undelivered(url: &str, consumer: &ConsumerSummary, first: u64) {
    if let Some(info) = consumer_info(url, &consumer.stream, &consumer.name).await {
        assert!(
            info.delivered.stream_sequence < first,
            "consumer {} delivered up to stream sequence {}, past {first}",
            consumer.name,
            info.delivered.stream_sequence
        );
    }
}
