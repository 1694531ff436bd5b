//! daprd's side of the socket: a gRPC client over a Unix socket that names its component
//! instance in every call, as daprd does. For the bench's S7 and the tests that play daprd;
//! with the `cli` feature (tonic's client), not in the library an embedder builds.

use std::path::Path;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Request, Status};

use super::INSTANCE_HEADER;
use super::proto::pub_sub_client::PubSubClient;

/// Adds `x-component-instance` to every call.
#[derive(Clone)]
pub struct InstanceHeader(MetadataValue<Ascii>);

impl Interceptor for InstanceHeader {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert(INSTANCE_HEADER, self.0.clone());
        Ok(request)
    }
}

/// A client of the pub/sub service for one component instance. Its clones share one
/// HTTP/2 connection, as daprd's calls to a component do.
pub type Client = PubSubClient<InterceptedService<Channel, InstanceHeader>>;

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The instance name cannot be sent as a header value.
    #[error("the component instance name {0:?} is not a valid header value")]
    InstanceName(String),
    /// The socket did not accept a connection.
    #[error("cannot connect to the socket: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A channel over the Unix socket at `path` (the URI is only the `:authority`, which
/// grpc-go sets to `localhost` for a Unix target too).
pub async fn channel(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path = path.to_path_buf();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
}

/// A client over the socket at `path` that names `instance` in every call. It keeps gRPC's
/// default receive limit (4 MiB), as daprd's client keeps grpc-go's.
pub async fn connect(path: &Path, instance: &str) -> Result<Client, ConnectError> {
    let header = InstanceHeader(
        instance
            .parse()
            .map_err(|_| ConnectError::InstanceName(instance.to_string()))?,
    );
    Ok(PubSubClient::with_interceptor(channel(path).await?, header))
}
