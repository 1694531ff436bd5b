//! Dapr's pluggable-component protocol: the component served as
//! `dapr.proto.components.v1.PubSub` over gRPC on a Unix socket, so a Dapr sidecar
//! (daprd) loads it like any pub/sub.
//!
//! daprd finds the socket in its components folder at start, lists its services with
//! gRPC server reflection, and drives one component instance per Component YAML, naming it
//! in the `x-component-instance` header of every call. Each instance here is a [`PubSub`]
//! of its own, with its own NATS connection and, when [`Server::policy_per_instance`] is
//! set, its own sandbox policy. `jetstream-pubsub serve` is this server plus the socket.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use jetstream_pubsub_host::Runtime;
//! use jetstream_pubsub_host::pluggable::Server;
//! let listener = tokio::net::UnixListener::bind("/tmp/dapr-components-sockets/jetstream-wasm.sock")?;
//! Server::new(Runtime::new()?)
//!     .serve(listener, async { let _ = tokio::signal::ctrl_c().await; })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! [`PubSub`]: crate::PubSub

#[cfg(feature = "cli")]
pub mod client;
mod instances;
pub mod proto;
mod service;
mod status;
mod stream;

use std::future::Future;
use std::sync::Arc;

use tokio::net::UnixListener;

use crate::{Metadata, Runtime, SandboxPolicy};
use instances::Instances;
use proto::pub_sub_server::PubSubServer;
use service::Service;

/// The header daprd names the component instance (the YAML's `metadata.name`) in.
pub const INSTANCE_HEADER: &str = "x-component-instance";

/// The largest request accepted (a publish from daprd): JetStream's own limit on a
/// message, `max_payload`, is at most 64 MiB, so larger requests could never be stored.
/// gRPC's default of 4 MiB would refuse messages the server accepts.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024 + 64 * 1024;

/// The largest message delivered to daprd: its gRPC client keeps grpc-go's default receive
/// limit of 4 MiB, and a larger response would end the stream for good (daprd does not
/// reopen it). A larger message is terminated (`+TERM`) with an error in the log instead.
pub const MAX_DELIVERY_BYTES: usize = 4 * 1024 * 1024;

/// How long connections may stay open once every stream has ended at shutdown.
const CONNECTION_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Chooses the sandbox policy of each component instance from its Init metadata.
pub type PolicyFor = Arc<dyn Fn(&Metadata) -> Result<SandboxPolicy, String> + Send + Sync>;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection service could not read the protos' descriptors (a build defect).
    #[error("cannot set up gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The pluggable pub/sub server.
pub struct Server {
    runtime: Runtime,
    policy_for: Option<PolicyFor>,
}

impl Server {
    /// A server whose component instances all run under `runtime` (and its policy).
    pub fn new(runtime: Runtime) -> Self {
        Self {
            runtime,
            policy_for: None,
        }
    }

    /// Gives each instance the policy `policy_for` derives from its Init metadata (see
    /// [`Runtime::with_policy`]). An `Err` refuses the Init with its text
    /// (`InvalidArgument`).
    pub fn policy_per_instance(mut self, policy_for: PolicyFor) -> Self {
        self.policy_for = Some(policy_for);
        self
    }

    /// Serves on `listener` until `shutdown` resolves. Then new streams and Inits are
    /// refused, every stream ends gracefully (messages taken but not answered by daprd go
    /// back to the server, redelivered within a second), every
    /// instance is closed, and the server returns once the connections are done.
    pub async fn serve(
        self,
        listener: UnixListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let instances = Arc::new(Instances::default());
        let service = Service::new(self.runtime, self.policy_for, instances.clone());
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        };
        // daprd (through jhump/protoreflect) asks v1alpha only; v1 is for current tools.
        let v1alpha = reflection().build_v1alpha()?;
        let v1 = reflection().build_v1()?;
        let (closed, streams_ended) = tokio::sync::oneshot::channel::<()>();
        let served = tonic::transport::Server::builder()
            .add_service(v1alpha)
            .add_service(v1)
            .add_service(PubSubServer::new(service).max_decoding_message_size(MAX_REQUEST_BYTES))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                async move {
                    shutdown.await;
                    instances.close_all().await;
                    let _ = closed.send(());
                },
            );
        // Once every stream has ended, a client that keeps its connection open (or stops
        // reading) does not hold the process up for more than the grace period.
        tokio::select! {
            served = served => served?,
            () = async {
                if streams_ended.await.is_ok() {
                    tokio::time::sleep(CONNECTION_GRACE).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => tracing::warn!(grace = ?CONNECTION_GRACE, "connections still open after the shutdown grace period are dropped"),
        }
        Ok(())
    }
}
