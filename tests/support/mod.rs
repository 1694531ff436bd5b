//! Shared harness of the integration tests: a private nats-server per test (free port,
//! own store, killed by PID on drop), streams, the real component in wasmtime, and a
//! handler that records what it received.
#![allow(dead_code)]

pub mod capture;
pub mod certs;
pub mod cluster;
pub mod jwt;
pub mod stand_in;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jetstream_pubsub_host::nats_server::{NatsServer, ServerOptions};
use jetstream_pubsub_host::provision::{self, Storage, StreamSpec};
use jetstream_pubsub_host::{AppStatus, ConnectionSettings, Message, Metadata, PubSub, Runtime};

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

/// Creates a file stream named `name` on `subjects`.
pub async fn stream(server: &NatsServer, name: &str, subjects: &[&str]) {
    let spec = StreamSpec {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        storage: Storage::File,
        replicas: 1,
    };
    provision::add_stream(&ConnectionSettings::from_url(&server.url()), &spec)
        .await
        .expect("stream created");
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

/// What a handler saw, in arrival order.
#[derive(Clone, Default)]
pub struct Recorder {
    messages: Arc<Mutex<Vec<Message>>>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
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
        move |message: Message| {
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
