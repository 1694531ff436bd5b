//! A plain NATS subscriber standing in for a stream: the test decides when, and with what,
//! each publish is acknowledged.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use futures::StreamExt;
use jetstream_pubsub_host::nats_server::NatsServer;

/// A PubAck that is a JetStream API error.
pub const API_ERROR: &str =
    r#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#;

pub struct StandIn {
    client: async_nats::Client,
    requests: async_nats::Subscriber,
}

impl StandIn {
    /// Listens on `subject`, which no stream covers. Returns once the server routes the
    /// subject here: async-nats's `flush` only empties the client's buffer, so a publish
    /// from another connection could otherwise still find nobody listening.
    pub async fn new(server: &NatsServer, subject: &str) -> Self {
        let client = async_nats::connect(server.url()).await.unwrap();
        let mut requests = client.subscribe(subject.to_string()).await.unwrap();
        client
            .publish(subject.to_string(), "probe".into())
            .await
            .unwrap();
        let probe = requests.next().await.expect("the probe comes back");
        assert_eq!(probe.payload.as_ref(), b"probe");
        Self { client, requests }
    }

    /// Drives `publish` until its message arrives here, and returns that message; a
    /// publish that resolves first (it cannot have its PubAck yet) fails the test.
    pub async fn receive<T: Debug>(
        &mut self,
        publish: &mut Pin<&mut impl Future<Output = T>>,
    ) -> async_nats::Message {
        tokio::select! {
            early = publish.as_mut() => panic!("resolved before its PubAck was sent: {early:?}"),
            request = self.requests.next() => request.expect("the message is sent"),
        }
    }

    /// Answers `request` with `pub_ack` as its PubAck.
    pub async fn answer(&self, request: async_nats::Message, pub_ack: &'static str) {
        let reply = request
            .reply
            .expect("a JetStream publish asks for a PubAck");
        self.client.publish(reply, pub_ack.into()).await.unwrap();
    }
}
