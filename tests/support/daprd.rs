//! Playing daprd's side of a pluggable component: a `jetstream-pubsub serve` process on a
//! socket of its own, and a gRPC client over that socket that sends the
//! `x-component-instance` header daprd sends.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use jetstream_pubsub_host::pluggable::client::Client;
use jetstream_pubsub_host::pluggable::proto::{
    MetadataRequest, PubSubInitRequest, PullMessagesRequest, PullMessagesResponse, Topic,
};
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

const BIN: &str = env!("CARGO_BIN_EXE_jetstream-pubsub");

/// How long `serve` may take to be ready, and a message to arrive.
const WAIT: Duration = Duration::from_secs(30);

/// A `jetstream-pubsub serve` process.
pub struct Serve {
    child: Option<Child>,
    socket: PathBuf,
    stderr: Arc<Mutex<String>>,
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
        let mut child = command
            .env(
                "JETSTREAM_PUBSUB_LOG",
                std::env::var("JETSTREAM_PUBSUB_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("jetstream-pubsub serve starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let lines = std::io::BufReader::new(child.stderr.take().expect("stderr is piped"));
        let shared = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                eprintln!("[serve] {line}");
                let mut text = shared.lock().expect("stderr lock");
                text.push_str(&line);
                text.push('\n');
            }
        });
        let serve = Serve {
            child: Some(child),
            socket,
            stderr,
            _dir: None,
        };
        let deadline = Instant::now() + WAIT;
        while !serve
            .stderr()
            .contains("serving dapr.proto.components.v1.PubSub")
        {
            assert!(
                Instant::now() < deadline,
                "serve was not ready in {WAIT:?}: {}",
                serve.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        serve
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// Waits until the process has written `text` to stderr; fails the test after a while.
    pub async fn wait_for_stderr(&self, text: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.stderr().contains(text) {
            assert!(
                Instant::now() < deadline,
                "serve never wrote {text:?}: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A client that names `instance` in every call, as daprd does.
    pub async fn client(&self, instance: &str) -> Client {
        client(&self.socket, instance).await
    }

    /// Sends SIGTERM and waits for the process to exit; its status and stderr. Waits
    /// without blocking the test's runtime, which drives the client's side of the
    /// connection the server is shutting down.
    pub async fn terminate(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("the process runs");
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("serve can be waited for") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not exit in {WAIT:?} after SIGTERM: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The reader thread ends with the pipe; give it the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        (status, self.stderr())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
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
