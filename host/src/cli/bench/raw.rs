//! The raw side: async-nats alone, configured as the component configures its own calls.

use async_nats::jetstream::consumer;
use bytes::Bytes;

use super::rounds::Topic;
use super::{BATCH, Bench, Failure, PAYLOAD};

impl Bench {
    /// Publishes `count` messages on `subject` with async-nats, pipelined, untimed: the
    /// backlog a consume scenario starts from.
    pub(super) async fn fill(&self, subject: &str, count: usize) -> Result<(), Failure> {
        let payload = Bytes::from(vec![b'x'; PAYLOAD]);
        let mut sent = 0;
        while sent < count {
            let n = BATCH.min(count - sent);
            self.raw_batch(subject, &payload, n).await?;
            sent += n;
        }
        Ok(())
    }

    /// Publishes one message with async-nats and awaits its PubAck.
    pub(super) async fn raw_publish(&self, subject: &str, payload: &Bytes) -> Result<(), Failure> {
        self.js
            .publish(subject.to_string(), payload.clone())
            .await?
            .await?;
        Ok(())
    }

    /// Publishes `n` messages with async-nats, every one sent before any PubAck is awaited.
    pub(super) async fn raw_batch(
        &self,
        subject: &str,
        payload: &Bytes,
        n: usize,
    ) -> Result<(), Failure> {
        let mut acks = Vec::with_capacity(n);
        for _ in 0..n {
            acks.push(
                self.js
                    .publish(subject.to_string(), payload.clone())
                    .await?,
            );
        }
        for ack in futures::future::join_all(acks.into_iter().map(IntoFuture::into_future)).await {
            ack?;
        }
        Ok(())
    }

    /// A push consumer configured as the component configures its own (deliver all,
    /// explicit ack, filter = topic, no durable), and its message stream.
    pub(super) async fn raw_consumer(
        &self,
        topic: &Topic,
        max_ack_pending: i64,
    ) -> Result<consumer::push::Messages, Failure> {
        let stream = self.js.get_stream(&topic.stream).await?;
        let consumer: consumer::PushConsumer = stream
            .create_consumer(consumer::push::Config {
                deliver_subject: self.client.new_inbox(),
                deliver_policy: consumer::DeliverPolicy::All,
                ack_policy: consumer::AckPolicy::Explicit,
                filter_subject: topic.subject.clone(),
                max_ack_pending,
                ..Default::default()
            })
            .await?;
        Ok(consumer.messages().await?)
    }
}
