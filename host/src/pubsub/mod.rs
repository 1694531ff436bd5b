//! The embedder's face of the component: publish, subscribe with an async handler,
//! stop, close.
//!
//! ```no_run
//! # async fn demo() -> Result<(), jetstream_pubsub_host::Error> {
//! use jetstream_pubsub_host::{AppStatus, Message, Runtime};
//! let runtime = Runtime::new()?;
//! let pubsub = runtime.pubsub(vec![("natsURL".into(), "nats://127.0.0.1:4222".into())]).await?;
//! let subscription = pubsub
//!     .subscribe("orders", |message: Message| async move {
//!         println!("{}", String::from_utf8_lossy(&message.data));
//!         AppStatus::Success
//!     })
//!     .await?;
//! pubsub.publish("orders", b"hello".to_vec()).await?;
//! subscription.stop().await?;
//! pubsub.close().await?;
//! # Ok(()) }
//! ```

mod publisher;
mod subscription;
mod types;

use std::sync::Arc;

use tokio::sync::watch;

use crate::app::{Handler, no_subscriber};
use crate::error::Error;
use crate::runtime::{Instance, Runtime};
use publisher::{PublishedTopics, Publishers, note_trap};
use subscription::Live;

pub use subscription::Subscription;
pub use types::{
    BulkEntry, BulkEntryResult, ConnectionSettings, ConsumerSummary, Metadata, PublishAck,
    PublishRequest,
};

impl Runtime {
    /// A component instance initialised with `metadata` (Dapr's `Init`), for publishing and
    /// as the parent of subscriptions.
    pub async fn pubsub(&self, metadata: Metadata) -> Result<PubSub, Error> {
        let instance = self.initialised(no_subscriber(), &metadata).await?;
        Ok(PubSub {
            publishers: Publishers::new(instance, Publishers::size_for(self)),
            runtime: self.clone(),
            metadata,
            live: std::sync::Mutex::default(),
            published: PublishedTopics::default(),
        })
    }

    /// The connection settings `metadata` describes, without connecting.
    pub async fn connection_settings(
        &self,
        metadata: &Metadata,
    ) -> Result<ConnectionSettings, Error> {
        let (_never, stop) = watch::channel(false);
        let mut instance = self.instantiate(no_subscriber(), stop).await?;
        let (api, store) = instance.call();
        let options = api.call_connection_options(store, metadata).await??;
        Ok(ConnectionSettings(
            options.into(),
            self.shared.policy.clone(),
        ))
    }

    /// A fresh instance delivering to `handler`, initialised with `metadata`.
    async fn initialised(
        &self,
        handler: Arc<dyn Handler>,
        metadata: &Metadata,
    ) -> Result<Instance, Error> {
        self.initialised_with_stop(handler, metadata, watch::channel(false).1)
            .await
    }

    async fn initialised_with_stop(
        &self,
        handler: Arc<dyn Handler>,
        metadata: &Metadata,
        stop: watch::Receiver<bool>,
    ) -> Result<Instance, Error> {
        let mut instance = self.instantiate(handler, stop).await?;
        let (api, store) = instance.call();
        api.call_init(store, metadata).await??;
        Ok(instance)
    }
}

/// An initialised component: Dapr's `PubSub`.
pub struct PubSub {
    runtime: Runtime,
    metadata: Metadata,
    /// The instances publishes go through.
    publishers: Publishers,
    /// The subscriptions made from this component, so `close` can stop them all.
    live: std::sync::Mutex<Vec<Live>>,
    /// What publishing records, by topic.
    published: PublishedTopics,
}

impl PubSub {
    /// Dapr feature names the component reports.
    pub async fn features(&self) -> Result<Vec<String>, Error> {
        let mut publisher = self.publisher().await?;
        let (api, store) = publisher.instance.call();
        let result = api.call_features(store).await;
        note_trap(&mut publisher, result)
    }

    /// Publishes `data` on `topic` and waits for the stream's acknowledgement.
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<PublishAck, Error> {
        self.publish_request(PublishRequest {
            topic: topic.to_string(),
            data,
            ..Default::default()
        })
        .await
    }

    /// The connection settings of this component's metadata.
    pub async fn connection_settings(&self) -> Result<ConnectionSettings, Error> {
        self.runtime.connection_settings(&self.metadata).await
    }

    /// Subscribes to `topic` (wildcards allowed) and delivers every message to `handler`,
    /// on its own long-lived instance, until [`Subscription::stop`].
    ///
    /// The request carries no per-subscription metadata: the reference ignores Dapr's
    /// `SubscribeRequest.Metadata`, and so does the component.
    pub async fn subscribe(
        &self,
        topic: &str,
        handler: impl Handler,
    ) -> Result<Subscription, Error> {
        let (subscription, live) = subscription::start(
            self.runtime.clone(),
            self.metadata.clone(),
            topic,
            Arc::new(handler),
        )
        .await?;
        let mut all = self
            .live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        all.retain(|subscription| !subscription.is_finished());
        all.push(live);
        Ok(subscription)
    }

    /// Closes the component (Dapr's `Close`): every subscription made from it stops
    /// gracefully (the messages it took are handled and answered; durable consumers stay on
    /// the server), then publishing becomes a terminal error. A subscription's own result is
    /// still returned by its [`Subscription::stop`].
    pub async fn close(&self) -> Result<(), Error> {
        let live = std::mem::take(
            &mut *self
                .live
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for subscription in &live {
            subscription.stop();
        }
        for subscription in live {
            subscription.finished().await;
        }
        self.close_publishers().await
    }
}
