//! `transport.connection`: publishing, stream lookup and consumer management on one
//! (shared) async-nats client.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use wasmtime::component::Resource;

use super::connect::SharedClient;
use super::convert;
use super::error::{api_error, from_consumer_error, from_publish_error};
use super::server_url::redacted_servers;
use super::{FailedPublish, PendingAck, PendingBatch, SubscriptionHandle, TransportError};
use crate::bindings::transport::{
    self, BatchEntry, ConnectOptions, ConsumerConfig, ConsumerInfo, OutboundMessage,
};
use crate::instance::InstanceState;

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
}

impl transport::HostConnection for InstanceState {
    async fn connect(
        &mut self,
        options: ConnectOptions,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, TransportError>> {
        let _host = self.host_time();
        let reconnects = self.labels.reconnects();
        let shared = match self
            .pool()
            .get_or_connect(&options, self.policy(), reconnects)
            .await
        {
            Ok(shared) => shared,
            Err(err) => return Ok(Err(err)),
        };
        tracing::debug!(servers = %redacted_servers(&options.servers), "connected");
        let mut jetstream = jetstream::with_prefix(shared.client.clone(), &options.api_prefix);
        jetstream.set_timeout(Duration::from_millis(u64::from(
            options.request_timeout_ms.max(1),
        )));
        self.push(ConnectionHandle {
            shared,
            jetstream: Arc::new(jetstream),
        })
    }

    fn send(
        &mut self,
        this: Resource<ConnectionHandle>,
        message: OutboundMessage,
    ) -> wasmtime::Result<Result<Resource<PendingAck>, TransportError>> {
        // Not metered as host time: the send never waits here (a send that must wait for
        // room does so on a task of its own), so there is no wait to keep off the
        // component's CPU budget, and two clock reads per publish are saved.
        if let Err(refusal) = self.check_pending_acks(1) {
            return Ok(Err(refusal));
        }
        let connection = self.table.get(&this)?;
        if let Err(refusal) = self.sandbox().check_publish(&message.subject) {
            return Ok(Err(refusal));
        }
        let (subject, publish) = match convert::publish_message(message) {
            Ok(ready) => ready,
            Err(err) => return Ok(Err(err)),
        };
        // Converted once: the PendingAck keeps a reference-counted handle, not a copy.
        let subject = async_nats::Subject::from(subject);
        let jetstream = connection.jetstream.clone();
        // The pending ack's place first: a refusal (the resource limit) sends nothing.
        let slot = match self.push(PendingAck::reserved(subject.clone()))? {
            Ok(slot) => slot,
            Err(refusal) => return Ok(Err(refusal)),
        };
        match PendingAck::send(jetstream, subject.clone(), publish) {
            Ok(pending) => {
                self.fill_pending_ack(&slot, pending)?;
                Ok(Ok(slot))
            }
            Err(err) => {
                self.table.delete(slot)?;
                Ok(Err(from_publish_error(&subject, err)))
            }
        }
    }

    async fn send_batch(
        &mut self,
        this: Resource<ConnectionHandle>,
        subject: String,
        messages: Vec<BatchEntry>,
    ) -> wasmtime::Result<Result<Resource<PendingBatch>, TransportError>> {
        let _host = self.host_time();
        let jetstream = self.table.get(&this)?.jetstream.clone();
        // A refused batch sends nothing and keeps nothing in the host.
        if messages.len() > self.sandbox().max_batch as usize {
            return Ok(Err(TransportError::Refused(format!(
                "a batch of {} messages exceeds the host limit of {}",
                messages.len(),
                self.sandbox().max_batch
            ))));
        }
        if let Err(refusal) = self
            .check_pending_acks(PendingBatch::weight_of(messages.len()))
            .and_then(|()| self.sandbox().check_publish(&subject))
        {
            return Ok(Err(refusal));
        }
        // The batch's place first: a refusal (the resource limit) sends nothing.
        let slot = match self.push(PendingBatch::new(Vec::new()))? {
            Ok(slot) => slot,
            Err(refusal) => return Ok(Err(refusal)),
        };
        // One subject for the batch, shared (reference-counted) by every message.
        let shared_subject = async_nats::Subject::from(subject.as_str());
        let failed = |error: TransportError| FailedPublish {
            subject: subject.clone(),
            error,
        };
        let converted = messages
            .into_iter()
            .map(|message| convert::publish_entry(message).map_err(failed))
            .collect();
        let batch = PendingBatch::send(jetstream, shared_subject, converted);
        self.fill_pending_batch(&slot, batch)?;
        Ok(Ok(slot))
    }

    async fn stream_by_subject(
        &mut self,
        this: Resource<ConnectionHandle>,
        subject: String,
    ) -> wasmtime::Result<Result<Option<String>, TransportError>> {
        let _host = self.host_time();
        use async_nats::jetstream::context::GetStreamByNameErrorKind as Kind;
        let connection = self.table.get(&this)?;
        Ok(
            match connection
                .jetstream
                .stream_by_subject(subject.clone())
                .await
            {
                Ok(name) => Ok(Some(name)),
                Err(err) => match err.kind() {
                    Kind::NotFound => Ok(None),
                    Kind::InvalidSubject => Err(TransportError::Invalid(format!(
                        "invalid subject {subject:?}"
                    ))),
                    Kind::JetStream(api) => Err(api_error(&api)),
                    Kind::Request => Err(super::error::request_error("stream lookup", &err)),
                },
            },
        )
    }

    async fn consumer_info(
        &mut self,
        this: Resource<ConnectionHandle>,
        stream: String,
        consumer: String,
    ) -> wasmtime::Result<Result<Option<ConsumerInfo>, TransportError>> {
        let _host = self.host_time();
        let connection = self.table.get(&this)?;
        let found = connection
            .jetstream
            .get_consumer_from_stream::<jetstream::consumer::Config, _, _>(
                consumer.as_str(),
                stream.as_str(),
            )
            .await;
        Ok(match found {
            Ok(consumer) => Ok(Some(convert::consumer_info(consumer.cached_info()))),
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
        })
    }

    async fn create_consumer(
        &mut self,
        this: Resource<ConnectionHandle>,
        stream: String,
        config: ConsumerConfig,
    ) -> wasmtime::Result<Result<ConsumerInfo, TransportError>> {
        let _host = self.host_time();
        let connection = self.table.get(&this)?;
        let deliver_subject = match &config.deliver_subject {
            Some(subject) => match self.sandbox().check_deliver_subject(subject) {
                Ok(()) => subject.clone(),
                Err(refusal) => return Ok(Err(refusal)),
            },
            None => connection.client().new_inbox(),
        };
        let nats_config = convert::consumer_config(config, deliver_subject);
        let created = connection
            .jetstream
            .create_consumer_on_stream(nats_config, stream.as_str())
            .await;
        Ok(match created {
            Ok(consumer) => Ok(convert::consumer_info(consumer.cached_info())),
            Err(err) => Err(from_consumer_error(
                &format!("creating a consumer on stream {stream}"),
                err,
            )),
        })
    }

    async fn subscribe(
        &mut self,
        this: Resource<ConnectionHandle>,
        deliver_subject: String,
        queue_group: Option<String>,
    ) -> wasmtime::Result<Result<Resource<SubscriptionHandle>, TransportError>> {
        let _host = self.host_time();
        if let Err(refusal) = self
            .sandbox()
            .check_deliver_subject(&deliver_subject)
            .and_then(|()| self.check_subscriptions())
        {
            return Ok(Err(refusal));
        }
        let handover = self.handover();
        // The subscriber a lost instance of this subscription left, still listening.
        if let Some(parked) = handover
            .as_ref()
            .and_then(|handover| handover.claim(&deliver_subject, queue_group.as_deref()))
        {
            let handle = SubscriptionHandle::resume(parked, self.stop_signal(), handover);
            return self.push_subscription(handle);
        }
        let connection = self.table.get(&this)?;
        let client = connection.shared.clone();
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
                return Ok(Err(TransportError::Connection(format!(
                    "subscribing to {deliver_subject}: {err}"
                ))));
            }
        };
        let handle = SubscriptionHandle::new(
            client,
            deliver_subject,
            queue_group,
            subscriber,
            self.stop_signal(),
            handover,
        );
        self.push_subscription(handle)
    }

    async fn flush(
        &mut self,
        this: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<Result<(), TransportError>> {
        let _host = self.host_time();
        let connection = self.table.get(&this)?;
        Ok(connection
            .client()
            .flush()
            .await
            .map_err(|err| TransportError::Connection(format!("flush: {err}"))))
    }

    async fn drop(&mut self, this: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}
