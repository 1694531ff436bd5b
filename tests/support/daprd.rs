//! Playing daprd's side of a pluggable component: a `jetstream-pubsub serve` process on a
//! socket of its own, and a gRPC client over that socket that sends the
//! `x-component-instance` header daprd sends.

// Each test binary that plays daprd uses part of this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::support::process::Running;

pub use jetstream_pubsub_host::pluggable::client::Client;
use jetstream_pubsub_host::pluggable::proto::{
    MetadataRequest, PubSubInitRequest, PullMessagesRequest, PullMessagesResponse, Topic,
};
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

const BIN: &str = env!("CARGO_BIN_EXE_jetstream-pubsub");

/// How long a message may take to arrive.
const WAIT: Duration = Duration::from_secs(30);

/// A `jetstream-pubsub serve` process.
pub struct Serve {
    process: Running,
    socket: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Serve {
    /// Serves on a socket in a fresh folder, with `args` added.
    pub fn start(args: &[&str]) -> Serve {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let socket = dir.path().join("jetstream-wasm.sock");
        let mut serve = Serve::spawn(
            Command::new(BIN)
                .arg("serve")
                .arg("--socket")
                .arg(&socket)
                .args(args),
            socket,
        );
        serve._dir = Some(dir);
        serve
    }

    /// Runs `command` (a `serve`) and waits until it says it serves on `socket`.
    pub fn spawn(command: &mut Command, socket: PathBuf) -> Serve {
        let process = Running::spawn(
            command.env(
                "JETSTREAM_PUBSUB_LOG",
                std::env::var("JETSTREAM_PUBSUB_LOG").unwrap_or_else(|_| "info".into()),
            ),
            "serve",
        );
        process.wait_for_stderr_blocking("serving dapr.proto.components.v1.PubSub");
        Serve {
            process,
            socket,
            _dir: None,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// Waits until the process has written `text` to stderr; fails the test after a while.
    pub async fn wait_for_stderr(&self, text: &str) {
        self.process.wait_for_stderr(text).await;
    }

    /// The `--metrics` address, once serving.
    pub async fn metrics_address(&self) -> String {
        self.process.metrics_address().await
    }

    /// A client that names `instance` in every call, as daprd does.
    pub async fn client(&self, instance: &str) -> Client {
        client(&self.socket, instance).await
    }

    /// Sends SIGTERM and waits for the process to exit; its status and stderr.
    pub async fn terminate(self) -> (ExitStatus, String) {
        self.process.terminate().await
    }
}

/// A channel over the Unix socket at `path`.
pub async fn channel(path: &Path) -> Channel {
    jetstream_pubsub_host::pluggable::client::channel(path)
        .await
        .expect("the socket accepts a connection")
}

/// A client naming `instance` in every call, with daprd's receive limit (4 MiB).
pub async fn client(path: &Path, instance: &str) -> Client {
    jetstream_pubsub_host::pluggable::client::connect(path, instance)
        .await
        .expect("the socket accepts a connection")
}

/// Init with `properties`, as daprd sends a Component YAML's metadata.
pub async fn init(client: &mut Client, properties: &[(&str, &str)]) -> Result<(), Status> {
    client
        .init(PubSubInitRequest {
            metadata: Some(MetadataRequest {
                properties: properties
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
        })
        .await
        .map(drop)
}

/// A `PullMessages` stream, driven as daprd drives it.
pub struct Pull {
    requests: mpsc::Sender<PullMessagesRequest>,
    responses: Streaming<PullMessagesResponse>,
}

impl Pull {
    /// Opens a stream on `topic`: the first request names it.
    pub async fn open(client: &mut Client, topic: &str) -> Result<Pull, Status> {
        let (requests, receiver) = mpsc::channel(16);
        requests
            .send(PullMessagesRequest {
                topic: Some(Topic {
                    name: topic.to_string(),
                    metadata: Default::default(),
                }),
                ..Default::default()
            })
            .await
            .expect("the request channel is open");
        let responses = client
            .pull_messages(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await?
            .into_inner();
        Ok(Pull {
            requests,
            responses,
        })
    }

    /// The next message; fails the test after a while.
    pub async fn next(&mut self) -> PullMessagesResponse {
        match tokio::time::timeout(WAIT, self.responses.message()).await {
            Ok(Ok(Some(message))) => message,
            Ok(Ok(None)) => panic!("the stream ended"),
            Ok(Err(status)) => panic!("the stream failed: {status:?}"),
            Err(_) => panic!("no message in {WAIT:?}"),
        }
    }

    /// What the stream gives within `wait`: a message, its end (`Ok(None)`), its
    /// failure, or nothing (`None`).
    pub async fn within(
        &mut self,
        wait: Duration,
    ) -> Option<Result<Option<PullMessagesResponse>, Status>> {
        tokio::time::timeout(wait, self.responses.message())
            .await
            .ok()
    }

    /// Acknowledges `message` (the app succeeded).
    pub async fn ack(&self, message: &PullMessagesResponse) {
        self.answer(&message.id, None).await;
    }

    /// Answers `message` with an error (the app failed it).
    pub async fn nack(&self, message: &PullMessagesResponse, error: &str) {
        self.answer(&message.id, Some(error)).await;
    }

    pub async fn answer(&self, id: &str, error: Option<&str>) {
        self.requests
            .send(PullMessagesRequest {
                topic: None,
                ack_message_id: id.to_string(),
                ack_error: error.map(|message| {
                    jetstream_pubsub_host::pluggable::proto::AckMessageError {
                        message: message.to_string(),
                    }
                }),
            })
            .await
            .expect("the request channel is open");
    }
}
