//! `transport.connection`: publishing, stream lookup and consumer management on one
//! (shared) async-nats client.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use tokio::sync::watch;

use super::connect::{ClientPool, SharedClient};
use super::connect_options::ConnectOptions;
use super::error::{api_error, from_consumer_error, request_error};
use super::{Handover, SubscriptionHandle, TransportError};
use crate::redact;
use crate::sandbox::SandboxPolicy;

/// Host state behind a `connection` resource.
pub struct ConnectionHandle {
    shared: SharedClient,
    /// Shared, so a send that must wait for room can finish on a task of its own.
    jetstream: Arc<jetstream::Context>,
}

impl ConnectionHandle {
    fn client(&self) -> &async_nats::Client {
        &self.shared.client
    }

    /// Connects, or joins the pool's client opened with the same options, under `policy`;
    /// `reconnects` counts a new client's reconnections.
    pub(crate) async fn connect(
        pool: &ClientPool,
        options: &ConnectOptions,
        policy: &SandboxPolicy,
        reconnects: metrics::Counter,
    ) -> Result<Self, TransportError> {
        let shared = pool.get_or_connect(options, policy, reconnects).await?;
        tracing::debug!(servers = %redact::servers(&options.servers), "connected");
        let mut jetstream = jetstream::with_prefix(shared.client.clone(), &options.api_prefix);
        jetstream.set_timeout(Duration::from_millis(u64::from(
            options.request_timeout_ms.max(1),
        )));
        Ok(Self {
            shared,
            jetstream: Arc::new(jetstream),
        })
    }

    /// The JetStream context sends go through ([`super::PendingAck::send`],
    /// [`super::PendingBatch::send`]).
    pub(crate) fn jetstream(&self) -> Arc<jetstream::Context> {
        self.jetstream.clone()
    }

    /// A fresh inbox subject, for a consumer whose deliver subject the host picks.
    pub(crate) fn new_inbox(&self) -> String {
        self.client().new_inbox()
    }

    /// The one stream whose subjects cover `subject`; none when no stream does.
    pub(crate) async fn stream_by_subject(
        &self,
        subject: String,
    ) -> Result<Option<String>, TransportError> {
        use async_nats::jetstream::context::GetStreamByNameErrorKind as Kind;
        match self.jetstream.stream_by_subject(subject.clone()).await {
            Ok(name) => Ok(Some(name)),
            Err(err) => match err.kind() {
                Kind::NotFound => Ok(None),
                Kind::InvalidSubject => Err(TransportError::Invalid(format!(
                    "invalid subject {subject:?}"
                ))),
                Kind::JetStream(api) => Err(api_error(&api)),
                Kind::Request => Err(request_error("stream lookup", &err)),
            },
        }
    }

    /// A consumer's info; none when the consumer does not exist.
    pub(crate) async fn consumer_info(
        &self,
        stream: &str,
        consumer: &str,
    ) -> Result<Option<consumer::Info>, TransportError> {
        let found = self
            .jetstream
            .get_consumer_from_stream::<consumer::Config, _, _>(consumer, stream)
            .await;
        match found {
            Ok(consumer) => Ok(Some(consumer.cached_info().clone())),
            Err(err) => match err.kind() {
                async_nats::jetstream::stream::ConsumerErrorKind::JetStream(api)
                    if api.error_code() == async_nats::jetstream::ErrorCode::CONSUMER_NOT_FOUND =>
                {
                    Ok(None)
                }
                _ => Err(from_consumer_error(
                    &format!("consumer info for {consumer} on stream {stream}"),
                    err,
                )),
            },
        }
    }

    /// Creates the consumer, or updates a durable in place where the server allows it.
    pub(crate) async fn create_consumer(
        &self,
        stream: &str,
        config: consumer::Config,
    ) -> Result<consumer::Info, TransportError> {
        let created = self
            .jetstream
            .create_consumer_on_stream(config, stream)
            .await;
        match created {
            Ok(consumer) => Ok(consumer.cached_info().clone()),
            Err(err) => Err(from_consumer_error(
                &format!("creating a consumer on stream {stream}"),
                err,
            )),
        }
    }

    /// Starts listening on `deliver_subject`, in `queue_group` when given. `handover` is
    /// where the subscriber goes if the instance is lost, when it may be replaced.
    pub(crate) async fn subscribe(
        &self,
        deliver_subject: String,
        queue_group: Option<String>,
        stop: watch::Receiver<bool>,
        handover: Option<Handover>,
    ) -> Result<SubscriptionHandle, TransportError> {
        let client = self.shared.clone();
        let subscriber = match &queue_group {
            Some(group) => {
                client
                    .queue_subscribe(deliver_subject.clone(), group.clone())
                    .await
            }
            None => client.subscribe(deliver_subject.clone()).await,
        };
        let subscriber = match subscriber {
            Ok(subscriber) => subscriber,
            Err(err) => {
                return Err(TransportError::Connection(format!(
                    "subscribing to {deliver_subject}: {err}"
                )));
            }
        };
        Ok(SubscriptionHandle::new(
            client,
            deliver_subject,
            queue_group,
            subscriber,
            stop,
            handover,
        ))
    }

    /// Flushes pending publishes and acknowledgements.
    pub(crate) async fn flush(&self) -> Result<(), TransportError> {
        self.client()
            .flush()
            .await
            .map_err(|err| TransportError::Connection(format!("flush: {err}")))
    }
}
