//! The `PubSub` gRPC service: each call finds its component instance by the
//! `x-component-instance` header and goes through the component.

use std::collections::HashMap;
use std::sync::Arc;

use tonic::{Request, Response, Status, Streaming};

use super::instances::{ComponentInstance, Instances};
use super::proto::pub_sub_server::PubSub as PubSubService;
use super::proto::{
    BulkPublishRequest, BulkPublishResponse, BulkPublishResponseFailedEntry, FeaturesRequest,
    FeaturesResponse, PauseRequest, PauseResponse, PingRequest, PingResponse, PubSubInitRequest,
    PubSubInitResponse, PublishRequest, PublishResponse, PullMessagesRequest, ResumeRequest,
    ResumeResponse,
};
use super::status::status;
use super::{INSTANCE_HEADER, PolicyFor, stream};
use crate::{BulkEntry, Metadata, Runtime};

pub(crate) struct Service {
    runtime: Runtime,
    policy_for: Option<PolicyFor>,
    instances: Arc<Instances>,
}

impl Service {
    pub(crate) fn new(
        runtime: Runtime,
        policy_for: Option<PolicyFor>,
        instances: Arc<Instances>,
    ) -> Self {
        Self {
            runtime,
            policy_for,
            instances,
        }
    }

    /// The initialised instance a call is for.
    fn instance<T>(&self, request: &Request<T>) -> Result<Arc<ComponentInstance>, Status> {
        let name = instance_name(request);
        self.instances.get(&name).ok_or_else(|| {
            Status::failed_precondition(format!(
                "component instance {} is not initialised: call Init first",
                shown(&name)
            ))
        })
    }

    fn refuse_when_closing(&self) -> Result<(), Status> {
        if self.instances.closing() {
            return Err(Status::unavailable("the server is shutting down"));
        }
        Ok(())
    }
}

/// The instance a call names: the first `x-component-instance` value, or the empty name
/// (a client that does not multiplex, as daprd before 1.9 and the Java SDK).
fn instance_name<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get(INSTANCE_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn shown(name: &str) -> String {
    if name.is_empty() {
        format!("(no {INSTANCE_HEADER} header)")
    } else {
        format!("{name:?}")
    }
}

/// A protobuf map as metadata pairs, sorted by key: the component reads keys without
/// regard to case and order can decide between two spellings of one key, so the order
/// must not be a hash map's.
fn pairs(map: HashMap<String, String>) -> Metadata {
    let mut pairs: Metadata = map.into_iter().collect();
    pairs.sort();
    pairs
}

fn content_type(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

#[tonic::async_trait]
impl PubSubService for Service {
    async fn init(
        &self,
        request: Request<PubSubInitRequest>,
    ) -> Result<Response<PubSubInitResponse>, Status> {
        self.refuse_when_closing()?;
        let name = instance_name(&request);
        let metadata = pairs(
            request
                .into_inner()
                .metadata
                .map(|metadata| metadata.properties)
                .unwrap_or_default(),
        );
        let runtime = match &self.policy_for {
            Some(policy_for) => {
                let policy = policy_for(&metadata).map_err(Status::invalid_argument)?;
                self.runtime.with_policy(policy)
            }
            None => self.runtime.clone(),
        }
        .named(&name);
        let pubsub = match runtime.pubsub(metadata).await {
            Ok(pubsub) => pubsub,
            Err(err) => {
                tracing::warn!(instance = %shown(&name), error = %err, "Init failed");
                if self.policy_for.is_some() {
                    // Nothing half-made stays behind: the instance's own connections close.
                    runtime.shutdown().await;
                }
                return Err(status(&err));
            }
        };
        let instance = Arc::new(ComponentInstance::new(name.clone(), runtime, pubsub));
        match self.instances.insert(instance) {
            Ok(replaced) => {
                if let Some(replaced) = replaced {
                    tracing::info!(instance = %shown(&name), "Init again: the earlier instance is closed");
                    replaced.close().await;
                }
                tracing::info!(instance = %shown(&name), "component instance initialised");
                Ok(Response::new(PubSubInitResponse {}))
            }
            Err(refused) => {
                refused.close().await;
                Err(Status::unavailable("the server is shutting down"))
            }
        }
    }

    async fn features(
        &self,
        request: Request<FeaturesRequest>,
    ) -> Result<Response<FeaturesResponse>, Status> {
        let instance = self.instance(&request)?;
        let features = instance
            .pubsub
            .features()
            .await
            .map_err(|err| status(&err))?;
        Ok(Response::new(FeaturesResponse { features }))
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let instance = self.instance(&request)?;
        let PublishRequest {
            data,
            topic,
            metadata,
            content_type: given,
            ..
        } = request.into_inner();
        instance
            .pubsub
            .publish_request(crate::PublishRequest {
                topic,
                data,
                content_type: content_type(given),
                metadata: pairs(metadata),
            })
            .await
            .map_err(|err| status(&err))?;
        Ok(Response::new(PublishResponse {}))
    }

    async fn bulk_publish(
        &self,
        request: Request<BulkPublishRequest>,
    ) -> Result<Response<BulkPublishResponse>, Status> {
        let instance = self.instance(&request)?;
        let BulkPublishRequest {
            entries,
            topic,
            metadata,
            ..
        } = request.into_inner();
        let entries = entries
            .into_iter()
            .map(|entry| BulkEntry {
                entry_id: entry.entry_id,
                data: entry.event,
                content_type: content_type(entry.content_type),
                metadata: pairs(entry.metadata),
            })
            .collect();
        let results = instance
            .pubsub
            .bulk_publish(&topic, entries, pairs(metadata))
            .await
            .map_err(|err| status(&err))?;
        let failed_entries = results
            .into_iter()
            .filter_map(|result| {
                result
                    .outcome
                    .err()
                    .map(|err| BulkPublishResponseFailedEntry {
                        entry_id: result.entry_id,
                        error: err.to_string(),
                    })
            })
            .collect();
        Ok(Response::new(BulkPublishResponse { failed_entries }))
    }

    type PullMessagesStream = stream::Responses;

    async fn pull_messages(
        &self,
        request: Request<Streaming<PullMessagesRequest>>,
    ) -> Result<Response<Self::PullMessagesStream>, Status> {
        self.refuse_when_closing()?;
        let instance = self.instance(&request)?;
        let responses = stream::open(instance, request.into_inner()).await?;
        Ok(Response::new(responses))
    }

    async fn pause(
        &self,
        request: Request<PauseRequest>,
    ) -> Result<Response<PauseResponse>, Status> {
        self.instance(&request)?.pause();
        Ok(Response::new(PauseResponse {}))
    }

    async fn resume(
        &self,
        request: Request<ResumeRequest>,
    ) -> Result<Response<ResumeResponse>, Status> {
        self.instance(&request)?.resume();
        Ok(Response::new(ResumeResponse {}))
    }

    async fn ping(&self, _request: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {}))
    }
}
