//! `transport.connection`: the sandbox's checks and the instance's limits, then the call
//! on the transport's `ConnectionHandle`.

use wasmtime::component::Resource;

use super::convert;
use crate::bindings::transport::{
    self, BatchEntry, ConnectOptions, ConsumerConfig, ConsumerInfo, OutboundMessage, TransportError,
};
use crate::instance::InstanceState;
use crate::transport::{
    self as nats, ConnectionHandle, PendingAck, PendingBatch, SubscriptionHandle,
};

impl transport::HostConnection for InstanceState {
    async fn connect(
        &mut self,
        options: ConnectOptions,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, TransportError>> {
        let _host = self.host_time();
        let options = nats::ConnectOptions::from(options);
        let reconnects = self.labels.reconnects();
        let connection =
            match ConnectionHandle::connect(self.pool(), &options, self.policy(), reconnects).await
            {
                Ok(connection) => connection,
                Err(err) => return Ok(Err(err.into())),
            };
        Ok(self.push(connection)?.map_err(Into::into))
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
            return Ok(Err(refusal.into()));
        }
        let connection = self.table.get(&this)?;
        if let Err(refusal) = self.sandbox().check_publish(&message.subject) {
            return Ok(Err(convert::refusal(refusal)));
        }
        let (subject, publish) = match convert::publish_message(message) {
            Ok(ready) => ready,
            Err(err) => return Ok(Err(err.into())),
        };
        // Converted once: the PendingAck keeps a reference-counted handle, not a copy.
        let subject = async_nats::Subject::from(subject);
        let jetstream = connection.jetstream();
        // The pending ack's place first: a refusal (the resource limit) sends nothing.
        let slot = match self.push(PendingAck::reserved(subject.clone()))? {
            Ok(slot) => slot,
            Err(refusal) => return Ok(Err(refusal.into())),
        };
        match PendingAck::send(jetstream, subject, publish) {
            Ok(pending) => {
                self.fill_pending_ack(&slot, pending)?;
                Ok(Ok(slot))
            }
            Err(err) => {
                self.table.delete(slot)?;
                Ok(Err(err.into()))
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
        let jetstream = self.table.get(&this)?.jetstream();
        // A refused batch sends nothing and keeps nothing in the host.
        if messages.len() > self.sandbox().max_batch as usize {
            return Ok(Err(nats::TransportError::refused(
                "max_batch",
                format!(
                    "a batch of {} messages exceeds the host limit of {}",
                    messages.len(),
                    self.sandbox().max_batch
                ),
            )
            .into()));
        }
        if let Err(refusal) = self
            .check_pending_acks(PendingBatch::weight_of(messages.len()))
            .and_then(|()| self.sandbox().check_publish(&subject).map_err(Into::into))
        {
            return Ok(Err(refusal.into()));
        }
        // The batch's place first: a refusal (the resource limit) sends nothing.
        let slot = match self.push(PendingBatch::new(Vec::new()))? {
            Ok(slot) => slot,
            Err(refusal) => return Ok(Err(refusal.into())),
        };
        // One subject for the batch, shared (reference-counted) by every message.
        let subject = async_nats::Subject::from(subject);
        let converted = messages.into_iter().map(convert::publish_entry).collect();
        let batch = PendingBatch::send(jetstream, subject, converted);
        self.fill_pending_batch(&slot, batch)?;
        Ok(Ok(slot))
    }

    async fn stream_by_subject(
        &mut self,
        this: Resource<ConnectionHandle>,
        subject: String,
    ) -> wasmtime::Result<Result<Option<String>, TransportError>> {
        let _host = self.host_time();
        let connection = self.table.get(&this)?;
        Ok(connection
            .stream_by_subject(subject)
            .await
            .map_err(Into::into))
    }

    async fn consumer_info(
        &mut self,
        this: Resource<ConnectionHandle>,
        stream: String,
        consumer: String,
    ) -> wasmtime::Result<Result<Option<ConsumerInfo>, TransportError>> {
        let _host = self.host_time();
        let connection = self.table.get(&this)?;
        Ok(match connection.consumer_info(&stream, &consumer).await {
            Ok(info) => Ok(info.as_ref().map(convert::consumer_info)),
            Err(err) => Err(err.into()),
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
                Err(refusal) => return Ok(Err(convert::refusal(refusal))),
            },
            None => connection.new_inbox(),
        };
        let nats_config = convert::consumer_config(config, deliver_subject);
        Ok(
            match connection.create_consumer(&stream, nats_config).await {
                Ok(info) => Ok(convert::consumer_info(&info)),
                Err(err) => Err(err.into()),
            },
        )
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
            .map_err(nats::TransportError::from)
            .and_then(|()| self.check_subscriptions())
        {
            return Ok(Err(refusal.into()));
        }
        let handover = self.handover();
        // The subscriber a lost instance of this subscription left, still listening.
        if let Some(parked) = handover
            .as_ref()
            .and_then(|handover| handover.claim(&deliver_subject, queue_group.as_deref()))
        {
            let handle = SubscriptionHandle::resume(parked, self.stop_signal(), handover);
            return Ok(self.push_subscription(handle)?.map_err(Into::into));
        }
        let connection = self.table.get(&this)?;
        let subscribed = connection
            .subscribe(deliver_subject, queue_group, self.stop_signal(), handover)
            .await;
        match subscribed {
            Ok(handle) => Ok(self.push_subscription(handle)?.map_err(Into::into)),
            Err(err) => Ok(Err(err.into())),
        }
    }

    async fn flush(
        &mut self,
        this: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<Result<(), TransportError>> {
        let _host = self.host_time();
        let connection = self.table.get(&this)?;
        Ok(connection.flush().await.map_err(Into::into))
    }

    async fn drop(&mut self, this: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}
