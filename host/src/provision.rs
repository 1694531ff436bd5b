//! Stream provisioning: what the Dapr docs tell users to do with the separate `nats` CLI.
//! The component never creates streams (as the reference); operators do, with this.

use crate::pubsub::ConnectionSettings;

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// On disk (survives restarts).
    File,
    /// In memory.
    Memory,
}

/// A stream to create.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Stream name.
    pub name: String,
    /// Subjects it stores (wildcards allowed).
    pub subjects: Vec<String>,
    /// Storage type.
    pub storage: Storage,
    /// Replicas (1, or up to the cluster size).
    pub replicas: usize,
}

/// What the server answered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamSummary {
    /// Stream name.
    pub name: String,
    /// Its subjects.
    pub subjects: Vec<String>,
    /// Storage type.
    pub storage: Storage,
    /// Replicas.
    pub replicas: usize,
    /// Messages stored.
    pub messages: u64,
    /// True when the stream already existed with this name (its config is unchanged).
    pub existed: bool,
}

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Could not connect.
    #[error("cannot connect to {servers}: {reason}")]
    Connect {
        /// Servers tried (credentials masked).
        servers: String,
        /// Why.
        reason: String,
    },
    /// The server refused the stream.
    #[error("cannot create stream {name}: {reason}")]
    Create {
        /// Stream name.
        name: String,
        /// The server's answer.
        reason: String,
    },
}

/// Creates the stream, or reports the existing one of the same name unchanged.
pub async fn add_stream(
    settings: &ConnectionSettings,
    spec: &StreamSpec,
) -> Result<StreamSummary, ProvisionError> {
    use async_nats::jetstream::stream;
    let jetstream = connect(settings).await?;
    let create = |reason: String| ProvisionError::Create {
        name: spec.name.clone(),
        reason,
    };
    let existed = jetstream.get_stream(&spec.name).await.is_ok();
    let config = stream::Config {
        name: spec.name.clone(),
        subjects: spec.subjects.clone(),
        storage: match spec.storage {
            Storage::File => stream::StorageType::File,
            Storage::Memory => stream::StorageType::Memory,
        },
        num_replicas: spec.replicas,
        ..Default::default()
    };
    let mut created = jetstream
        .get_or_create_stream(config)
        .await
        .map_err(|err| create(crate::transport::chain(&err)))?;
    let info = created
        .info()
        .await
        .map_err(|err| create(crate::transport::chain(&err)))?;
    let summary = StreamSummary {
        name: info.config.name.clone(),
        subjects: info.config.subjects.clone(),
        storage: match info.config.storage {
            stream::StorageType::Memory => Storage::Memory,
            _ => Storage::File,
        },
        replicas: info.config.num_replicas,
        messages: info.state.messages,
        existed,
    };
    let _ = jetstream.client().flush().await;
    Ok(summary)
}

/// Deletes a stream and its messages (the demo cleans up after itself).
pub async fn delete_stream(
    settings: &ConnectionSettings,
    name: &str,
) -> Result<(), ProvisionError> {
    connect(settings)
        .await?
        .delete_stream(name)
        .await
        .map_err(|err| ProvisionError::Create {
            name: name.to_string(),
            reason: crate::transport::chain(&err),
        })?;
    Ok(())
}

/// A JetStream context on a connection of its own, opened with the component's settings;
/// the connection closes when the context is dropped.
async fn connect(
    settings: &ConnectionSettings,
) -> Result<async_nats::jetstream::Context, ProvisionError> {
    let shared = crate::transport::ClientPool::new(1)
        .get_or_connect(&settings.0, &settings.1, metrics::Counter::noop())
        .await
        .map_err(|err| ProvisionError::Connect {
            servers: settings.servers(),
            reason: crate::transport::describe(&err),
        })?;
    Ok(async_nats::jetstream::with_prefix(
        shared.client.clone(),
        &settings.0.api_prefix,
    ))
}
