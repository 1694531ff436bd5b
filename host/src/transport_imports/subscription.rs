//! `transport.subscription`: the host's batch limits, then the call on the transport's
//! `SubscriptionHandle`; deliveries and answers converted on the way.

use std::time::Duration;

use wasmtime::component::Resource;

use crate::bindings::transport::{self, AckKind, Delivery, TransportError};
use crate::instance::InstanceState;
use crate::transport::{HandBack, SubscriptionHandle};

impl transport::HostSubscription for InstanceState {
    async fn next_batch(
        &mut self,
        this: Resource<SubscriptionHandle>,
        max: u32,
        wait_ms: u32,
    ) -> wasmtime::Result<Result<Vec<Delivery>, TransportError>> {
        let _host = self.host_time();
        let limit = max.min(self.sandbox().max_batch).max(1) as usize;
        // Bounded by bytes too: the payloads of a batch are held here until answered.
        let byte_limit = self.sandbox().max_batch_bytes();
        let wait = Duration::from_millis(u64::from(wait_ms));
        let subscription = self.table.get_mut(&this)?;
        Ok(
            match subscription.next_batch(limit, byte_limit, wait).await {
                Ok(batch) => Ok(batch.into_iter().map(Into::into).collect()),
                Err(err) => Err(err.into()),
            },
        )
    }

    async fn payload(
        &mut self,
        this: Resource<SubscriptionHandle>,
        token: u64,
    ) -> wasmtime::Result<Option<Vec<u8>>> {
        let subscription = self.table.get(&this)?;
        Ok(subscription.payload(token).map(|payload| payload.to_vec()))
    }

    async fn keep_alive(
        &mut self,
        this: Resource<SubscriptionHandle>,
        interval_ms: u32,
    ) -> wasmtime::Result<()> {
        let interval = (interval_ms > 0).then(|| Duration::from_millis(u64::from(interval_ms)));
        let signalled = self.deliveries().in_progress();
        self.table.get_mut(&this)?.keep_alive(interval, signalled);
        Ok(())
    }

    async fn hand_back(
        &mut self,
        this: Resource<SubscriptionHandle>,
        untaken: Option<AckKind>,
        suspect: Option<AckKind>,
    ) -> wasmtime::Result<()> {
        self.table.get_mut(&this)?.hand_back(HandBack {
            untaken: untaken.map(Into::into),
            suspect: suspect.map(Into::into),
        });
        Ok(())
    }

    async fn unsubscribe(
        &mut self,
        this: Resource<SubscriptionHandle>,
    ) -> wasmtime::Result<Result<(), TransportError>> {
        let _host = self.host_time();
        self.table.get_mut(&this)?.unsubscribe().await;
        Ok(Ok(()))
    }

    async fn drop(&mut self, this: Resource<SubscriptionHandle>) -> wasmtime::Result<()> {
        self.take_subscription(this)?.close().await;
        Ok(())
    }
}
