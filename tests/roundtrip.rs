//! Publish and subscribe through the real component, in wasmtime, against a real
//! nats-server: the round trip (over TCP and over WebSocket), deduplication, and the
//! application's retry and drop.

mod support;

use std::time::Duration;

use futures::StreamExt;
use jetstream_pubsub_host::AppStatus;
use jetstream_pubsub_host::nats_server::ServerOptions;
use support::Recorder;
use support::stand_in::{self, StandIn};

#[tokio::test]
async fn published_message_reaches_the_handler_unchanged() {
    let server = support::server();
    support::stream(&server, "ORDERS", &["orders.*"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe("orders.*", recorder.accept_all())
        .await
        .unwrap();

    let payload = br#"{"id": "ABCD", "data": "test"}"#.to_vec();
    let ack = pubsub
        .publish("orders.created", payload.clone())
        .await
        .unwrap();
    assert_eq!(
        (ack.stream.as_str(), ack.sequence, ack.duplicate),
        ("ORDERS", 1, false)
    );

    recorder
        .wait_until(Duration::from_secs(5), "the message", |m| !m.is_empty())
        .await;
    let message = &recorder.messages()[0];
    assert_eq!(message.data, payload, "exact bytes");
    assert_eq!(
        &*message.topic, "orders.*",
        "Topic is the subscribed pattern"
    );
    assert_eq!(
        message.subject(),
        "orders.created",
        "metadata Topic is the concrete subject"
    );
    assert!(
        message
            .metadata
            .contains(&("Nats-Msg-Id".to_string(), "ABCD".to_string())),
        "{:?}",
        message.metadata
    );

    subscription.stop().await.unwrap();
    pubsub.close().await.unwrap();
    let after_close = pubsub
        .publish("orders.created", b"late".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(after_close, jetstream_pubsub_host::Error::Terminal(_)),
        "{after_close:?}"
    );
    assert_eq!(after_close.to_string(), "component is closed");
    runtime.shutdown().await;
}

/// `natsURL` may name a WebSocket listener (`ws://`): the component publishes and
/// consumes through it. The listener speaks only WebSocket, so a client that opened plain
/// TCP there would never get the server's INFO and init would fail.
#[tokio::test]
async fn a_ws_url_publishes_and_consumes_over_websocket() {
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/configs/websocket.conf"
    );
    let server = ServerOptions::jetstream()
        .config_file(config)
        .start()
        .expect("nats-server starts with a websocket listener");
    let ws_url = server
        .websocket_url()
        .expect("the server reports its websocket port");
    assert!(ws_url.starts_with("ws://127.0.0.1:"), "{ws_url}");
    support::stream(&server, "ORDERS", &["orders.*"]).await;
    let runtime = support::runtime();
    let pubsub = runtime
        .pubsub(support::metadata(&[("natsURL", &ws_url)]))
        .await
        .expect("init connects over websocket");
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe("orders.*", recorder.accept_all())
        .await
        .unwrap();

    let ack = pubsub
        .publish("orders.created", b"over websocket".to_vec())
        .await
        .unwrap();
    assert_eq!((ack.stream.as_str(), ack.sequence), ("ORDERS", 1));
    recorder
        .wait_until(Duration::from_secs(5), "the message", |m| !m.is_empty())
        .await;
    assert_eq!(recorder.payloads(), vec!["over websocket"]);
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn same_cloudevent_id_is_stored_and_delivered_once() {
    let server = support::server();
    support::stream(&server, "EVENTS", &["events"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe("events", recorder.accept_all())
        .await
        .unwrap();

    let event = br#"{"specversion":"1.0","id":"evt-1","type":"t","source":"s"}"#.to_vec();
    let first = pubsub.publish("events", event.clone()).await.unwrap();
    let second = pubsub.publish("events", event.clone()).await.unwrap();
    assert!(!first.duplicate && second.duplicate, "{first:?} {second:?}");
    assert_eq!(
        first.sequence, second.sequence,
        "the repeat is not stored again"
    );
    // A raw payload has no id: published twice, stored twice.
    pubsub.publish("events", b"raw".to_vec()).await.unwrap();
    pubsub.publish("events", b"raw".to_vec()).await.unwrap();

    // The raw pair was stored after the event: a second copy of the event would have
    // arrived before it.
    recorder
        .wait_until(Duration::from_secs(5), "the raw pair", |m| {
            m.iter().filter(|m| m.data == b"raw"[..]).count() == 2
        })
        .await;
    assert_eq!(
        recorder.count_of(std::str::from_utf8(&event).unwrap()),
        1,
        "the event is delivered once"
    );
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn retry_redelivers_the_message() {
    let server = support::server();
    support::stream(&server, "JOBS", &["jobs"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    let recorder = Recorder::new();
    let handler = recorder.handler(|_, nth| {
        if nth == 1 {
            AppStatus::Retry
        } else {
            AppStatus::Success
        }
    });
    let subscription = pubsub.subscribe("jobs", handler).await.unwrap();

    pubsub.publish("jobs", b"job-1".to_vec()).await.unwrap();
    recorder
        .wait_until(Duration::from_secs(5), "a redelivery", |m| m.len() >= 2)
        .await;
    // Acknowledged: the server holds nothing pending and delivered twice in all.
    let info = support::settled(&server.url(), subscription.consumer()).await;
    assert_eq!(info.delivered.consumer_sequence, 2);
    assert_eq!(
        recorder.payloads(),
        vec!["job-1", "job-1"],
        "delivered again after retry, then acknowledged"
    );
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

/// A drop is `+TERM`, not `+ACK` (which is what the reference sends, the Dapr sidecar having
/// turned DROP into success): never redelivered, and announced by the server.
#[tokio::test]
async fn drop_is_never_redelivered_and_the_server_announces_it() {
    let server = support::server();
    support::stream(&server, "JOBS", &["jobs"]).await;
    let watcher = async_nats::connect(server.url())
        .await
        .expect("raw client connects");
    let mut terminated = watcher
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.JOBS.>")
        .await
        .expect("advisory subscription");
    watcher.flush().await.expect("flush");
    // With ackWait 1s an unanswered or nak'd message would be back within a second.
    let (runtime, pubsub) = support::pubsub(&server, &[("ackWait", "1s")]).await;
    let recorder = Recorder::new();
    let handler = recorder.handler(|m, _| {
        if m.data == b"poison"[..] {
            AppStatus::Drop
        } else {
            AppStatus::Success
        }
    });
    let subscription = pubsub.subscribe("jobs", handler).await.unwrap();

    pubsub.publish("jobs", b"poison".to_vec()).await.unwrap();
    pubsub.publish("jobs", b"fine".to_vec()).await.unwrap();
    recorder
        .wait_until(Duration::from_secs(5), "both messages", |m| m.len() >= 2)
        .await;
    // Terminated and acknowledged: nothing pending, two deliveries in all.
    let info = support::settled(&server.url(), subscription.consumer()).await;
    assert_eq!(info.delivered.consumer_sequence, 2, "no redelivery");
    assert_eq!(
        recorder.count_of("poison"),
        1,
        "a dropped message is terminated: {:?}",
        recorder.payloads()
    );
    assert_eq!(recorder.count_of("fine"), 1);
    let advisory = tokio::time::timeout(Duration::from_secs(5), terminated.next())
        .await
        .expect("a MSG_TERMINATED advisory in time")
        .expect("advisory subscription open");
    let advisory: serde_json::Value =
        serde_json::from_slice(&advisory.payload).expect("advisory is JSON");
    assert_eq!(
        (advisory["stream"].as_str(), advisory["stream_seq"].as_u64()),
        (Some("JOBS"), Some(1)),
        "the poison message (sequence 1) is the terminated one: {advisory}"
    );
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn subscribe_without_a_stream_names_the_topic() {
    let server = support::server();
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    let err = pubsub
        .subscribe("nowhere", Recorder::new().accept_all())
        .await
        .err()
        .expect("no stream, no subscription");
    assert_eq!(err.to_string(), "no stream matches subject nowhere");
    let err = pubsub.publish("nowhere", b"x".to_vec()).await.unwrap_err();
    assert!(err.is_retriable(), "{err:?}");
    assert!(
        err.to_string()
            .contains("no stream matches subject nowhere"),
        "{err}"
    );
    runtime.shutdown().await;
}

/// A publish waiting for its PubAck does not hold up the next one: the component sends,
/// and the host awaits the acknowledgement outside the instance. A plain subscriber
/// stands in for a stream on `slow.orders`, so the test decides when (and what) the
/// PubAck is.
#[tokio::test]
async fn a_publish_awaiting_its_pub_ack_does_not_hold_up_the_next() {
    let server = support::server();
    support::stream(&server, "ORDERS", &["orders.*"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    let mut stand_in = StandIn::new(&server, "slow.orders").await;

    let slow = pubsub.publish("slow.orders", b"first".to_vec());
    tokio::pin!(slow);
    let request = stand_in.receive(&mut slow).await;
    assert_eq!(request.payload.as_ref(), b"first");

    let fast = tokio::select! {
        early = &mut slow => panic!("the second publish waited for the first: {early:?}"),
        fast = pubsub.publish("orders.created", b"second".to_vec()) => fast,
    };
    assert_eq!(fast.unwrap().stream, "ORDERS");

    stand_in
        .answer(request, r#"{"stream":"STAND_IN","seq":7}"#)
        .await;
    let ack = slow.await.unwrap();
    assert_eq!(
        (ack.stream.as_str(), ack.sequence, ack.duplicate),
        ("STAND_IN", 7, false)
    );

    // A PubAck that is an API error: the component says what it means, naming the topic.
    let failing = pubsub.publish("slow.orders", b"third".to_vec());
    tokio::pin!(failing);
    let request = stand_in.receive(&mut failing).await;
    stand_in.answer(request, stand_in::API_ERROR).await;
    let err = failing.await.unwrap_err();
    assert!(
        matches!(err, jetstream_pubsub_host::Error::Retriable(_)),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("slow.orders") && text.contains("maximum messages exceeded"),
        "{text}"
    );
    runtime.shutdown().await;
}
