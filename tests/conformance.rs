//! Dapr's pub/sub conformance scenario for jetstream (components-contrib
//! `tests/conformance/pubsub/pubsub.go` with `tests/config/pubsub/jetstream/pubsub.yml`), and
//! the reference's own unit tests (`pubsub/jetstream/jetstream_test.go`), ported as
//! written, through the real component in wasmtime against a real nats-server.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jetstream_pubsub_host::{AppStatus, Message, PubSub};
use support::Recorder;

/// The conformance run's settings (defaults of `tests/config/pubsub/tests.yml`).
const MESSAGE_COUNT: usize = 10;
const MAX_READ: Duration = Duration::from_secs(60);
const WAIT_TO_PUBLISH: Duration = Duration::from_secs(5);

/// State of the conformance handler for `testTopic`.
#[derive(Default)]
struct Conformance {
    /// Published and not yet handled successfully. Only a success takes a message off:
    /// one whose handler failed has to come back.
    awaited: BTreeSet<usize>,
    processed: HashSet<usize>,
    /// Sequences delivered at least once.
    seen: HashSet<usize>,
    /// The sequence of the latest first delivery.
    last_first_delivery: usize,
    counter: usize,
    error_count: usize,
    /// (latest first delivery so far, the earlier sequence delivered after it).
    out_of_order: Vec<(usize, usize)>,
}

fn sequence(prefix: &str, message: &Message) -> Option<usize> {
    std::str::from_utf8(&message.data)
        .ok()?
        .strip_prefix(prefix)?
        .parse()
        .ok()
}

/// Subscribes a handler that forwards prefixed payloads into a shared list.
async fn forward(
    pubsub: &PubSub,
    topic: &str,
    sink: Arc<Mutex<Vec<String>>>,
    prefix: String,
) -> jetstream_pubsub_host::Subscription {
    pubsub
        .subscribe(topic, move |message: Message| {
            let text = String::from_utf8_lossy(&message.data).into_owned();
            if text.starts_with(&prefix) {
                sink.lock().unwrap().push(text);
            }
            async { AppStatus::Success }
        })
        .await
        .unwrap()
}

/// Waits until each topic received exactly the multiset sent to it (Dapr's
/// `receiveInBackground`: sorted comparison, so a duplicate fails it too).
async fn wait_for_sets(
    expected: &BTreeMap<&str, Vec<String>>,
    received: &BTreeMap<&str, Arc<Mutex<Vec<String>>>>,
) {
    let deadline = Instant::now() + MAX_READ;
    loop {
        let matches = expected.iter().all(|(topic, want)| {
            let mut got = received[topic].lock().unwrap().clone();
            got.sort();
            let mut want = want.clone();
            want.sort();
            got == want
        });
        if matches {
            return;
        }
        if Instant::now() >= deadline {
            let got: BTreeMap<_, _> = received
                .iter()
                .map(|(t, r)| (*t, r.lock().unwrap().clone()))
                .collect();
            panic!("timed out: expected {expected:?}, received {got:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn dapr_conformance_scenario() {
    let server = support::server();
    support::stream(
        &server,
        "pubsub",
        &["testTopic", "multiTopic1", "multiTopic2", "testTopicBulk"],
    )
    .await;
    // 1. init, with the conformance component file's metadata.
    let (runtime, pubsub) = support::pubsub(
        &server,
        &[
            ("name", "config-test"),
            ("flowControl", "true"),
            ("heartbeat", "5s"),
        ],
    )
    .await;
    // 2. ping: the component has none (Dapr accepts "ping is not implemented").
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let prefix = format!("message-{run_id}-");

    // 3. subscribe to testTopic with the failure pattern: the first two deliveries and
    // every fifth fail.
    let state = Arc::new(Mutex::new(Conformance::default()));
    let handler = {
        let (state, prefix) = (state.clone(), prefix.clone());
        move |message: Message| {
            let state = state.clone();
            let prefix = prefix.clone();
            async move {
                let Some(seq) = sequence(&prefix, &message) else {
                    return AppStatus::Success;
                };
                let fail = {
                    let mut s = state.lock().unwrap();
                    if s.processed.contains(&seq) {
                        return AppStatus::Success;
                    }
                    s.counter += 1;
                    // Dapr checks order only while `errorCount == 0`; as the first delivery
                    // always fails, that checks one message against nothing and can never
                    // fire. What it means to check ("only consider order when we receive a
                    // message for the first time; messages that fail and are re-queued will
                    // naturally come out of order") is checked here: each first delivery
                    // comes after the first deliveries of the messages published before it.
                    if s.seen.insert(seq) {
                        if seq < s.last_first_delivery {
                            let last = s.last_first_delivery;
                            s.out_of_order.push((last, seq));
                        }
                        s.last_first_delivery = seq;
                    }
                    let fail = s.error_count < 2 || s.counter % 5 == 0;
                    if fail {
                        s.error_count += 1;
                    }
                    fail
                };
                if fail {
                    // Dapr HEAD also drops a failed message from the awaited set ("dapr
                    // resiliency policy will apply"); its earlier versions did not. Here
                    // it stays awaited: the component naks it, so it must come back.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return AppStatus::Retry; // "conf test simulated error"
                }
                let mut s = state.lock().unwrap();
                s.processed.insert(seq);
                s.awaited.remove(&seq);
                AppStatus::Success
            }
        }
    };
    let main_subscription = pubsub.subscribe("testTopic", handler).await.unwrap();

    // 4. publish message-<runID>-1..10, raw strings.
    tokio::time::sleep(WAIT_TO_PUBLISH).await;
    for n in 1..=MESSAGE_COUNT {
        state.lock().unwrap().awaited.insert(n);
        pubsub
            .publish("testTopic", format!("{prefix}{n}").into_bytes())
            .await
            .unwrap();
    }

    // 5. verify read: every message handled successfully (the failed ones after their
    // redelivery), first deliveries in publish order.
    let deadline = Instant::now() + MAX_READ;
    while !state.lock().unwrap().awaited.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let s = state.lock().unwrap();
        assert!(
            s.out_of_order.is_empty(),
            "messages received out of order (latest first delivery, then an earlier one): {:?}",
            s.out_of_order
        );
        assert!(
            s.awaited.is_empty(),
            "expected to read {MESSAGE_COUNT} messages; never handled successfully: {:?} \
             (deliveries {}, simulated errors {})",
            s.awaited,
            s.counter,
            s.error_count
        );
        assert!(s.error_count >= 2, "the failure pattern ran");
    }

    // 6. multiple handlers: messages 11..20, even to topic 1, odd to topic 2.
    let topic1 = Arc::new(Mutex::new(Vec::new()));
    let topic2 = Arc::new(Mutex::new(Vec::new()));
    let sub1 = forward(&pubsub, "multiTopic1", topic1.clone(), prefix.clone()).await;
    let sub2 = forward(&pubsub, "multiTopic2", topic2.clone(), prefix.clone()).await;
    let received = BTreeMap::from([
        ("multiTopic1", topic1.clone()),
        ("multiTopic2", topic2.clone()),
    ]);
    let mut expected: BTreeMap<&str, Vec<String>> =
        BTreeMap::from([("multiTopic1", Vec::new()), ("multiTopic2", Vec::new())]);
    let topic_of = |n: usize| {
        if n.is_multiple_of(2) {
            "multiTopic1"
        } else {
            "multiTopic2"
        }
    };
    for n in MESSAGE_COUNT + 1..=2 * MESSAGE_COUNT {
        let data = format!("{prefix}{n}");
        pubsub
            .publish(topic_of(n), data.clone().into_bytes())
            .await
            .unwrap();
        expected.get_mut(topic_of(n)).unwrap().push(data);
    }
    wait_for_sets(&expected, &received).await;

    // 7. stop subscribers one by one: delivery stops for that topic only. Dapr publishes
    // nothing to a stopped topic, which leaves stopping untested; here the stopped topic
    // gets its messages too, and must receive none.
    let consumers = [sub1.consumer().clone(), sub2.consumer().clone()];
    let mut subscribers = vec![Some(sub1), Some(sub2)];
    // Stream sequences of what was published to a stopped topic, per topic index.
    let mut sent_while_stopped: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    for iteration in 0..3 {
        let offset = MESSAGE_COUNT * (iteration + 2);
        if iteration > 0 {
            let stopped = iteration - 1;
            if let Some(subscriber) = subscribers[stopped].take() {
                subscriber.stop().await.unwrap();
            }
            // The positive signal: the server has nobody left to deliver to.
            support::unbound(&server.url(), &consumers[stopped]).await;
            tokio::time::sleep(WAIT_TO_PUBLISH).await;
        }
        for n in offset + 1..=offset + MESSAGE_COUNT {
            let topic = topic_of(n);
            let index = if topic == "multiTopic1" { 0 } else { 1 };
            let data = format!("{prefix}{n}");
            let ack = pubsub
                .publish(topic, data.clone().into_bytes())
                .await
                .unwrap();
            if subscribers[index].is_some() {
                expected.get_mut(topic).unwrap().push(data);
            } else {
                sent_while_stopped[index].push(ack.sequence);
            }
        }
        wait_for_sets(&expected, &received).await;
    }
    // Both stopped: their consumers were unbound before anything was published to them
    // while stopped, so the server cannot have delivered it (it says so too, if it still
    // keeps the ephemeral consumers), and nothing of it reached a handler.
    for (index, consumer) in consumers.iter().enumerate() {
        let first = sent_while_stopped[index].iter().min().copied();
        let first = first.expect("each topic got messages while stopped");
        support::assert_undelivered(&server.url(), consumer, first).await;
    }
    for (topic, got) in &received {
        let mut got = got.lock().unwrap().clone();
        got.sort();
        let mut want = expected[topic].clone();
        want.sort();
        assert_eq!(
            got, want,
            "{topic} received only what was sent before its stop"
        );
    }

    // 8. close.
    main_subscription.stop().await.unwrap();
    for subscriber in subscribers.into_iter().flatten() {
        subscriber.stop().await.unwrap();
    }
    pubsub.close().await.unwrap();
    runtime.shutdown().await;
}

/// `TestJetStream_Publish_ClosedIsTerminal`.
#[tokio::test]
async fn reference_publish_after_close_is_terminal() {
    let server = support::server();
    support::stream(&server, "test", &["test"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    pubsub.close().await.unwrap();
    let err = pubsub.publish("test", b"x".to_vec()).await.unwrap_err();
    assert!(
        matches!(err, jetstream_pubsub_host::Error::Terminal(_)),
        "{err:?}"
    );
    runtime.shutdown().await;
}

/// `TestNewJetStream_EmphemeralPushConsumer`.
#[tokio::test]
async fn reference_ephemeral_push_consumer() {
    let server = support::server();
    support::stream(&server, "test", &["test"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe("test", recorder.accept_all())
        .await
        .unwrap();
    let payload = br#"{"id": "ABCD", "data": "test"}"#.to_vec();
    pubsub.publish("test", payload.clone()).await.unwrap();
    recorder
        .wait_until(Duration::from_secs(1), "the message within 1s", |m| {
            !m.is_empty()
        })
        .await;
    assert_eq!(recorder.messages()[0].data, payload);
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

/// `TestNewJetStream_DurableQueuePushConsumer`.
#[tokio::test]
async fn reference_durable_queue_push_consumer() {
    let server = support::server();
    support::stream(&server, "test", &["test"]).await;
    let (runtime, pubsub) = support::pubsub(
        &server,
        &[("durableName", "test"), ("queueGroupName", "test")],
    )
    .await;
    let (first_seen, second_seen) = (Recorder::new(), Recorder::new());
    let first = pubsub
        .subscribe("test", first_seen.accept_all())
        .await
        .unwrap();
    let second = pubsub
        .subscribe("test", second_seen.accept_all())
        .await
        .unwrap();
    for subscription in [&first, &second] {
        let consumer = subscription.consumer();
        assert_eq!(consumer.name, "test");
        assert_eq!(consumer.config["durable_name"], "test");
        assert_eq!(consumer.config["deliver_group"], "test");
    }
    pubsub
        .publish("test", br#"{"id": "ABCD-1", "data": "test"}"#.to_vec())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    while first_seen.messages().len() + second_seen.messages().len() == 0 {
        assert!(Instant::now() < deadline, "receive timeout");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Dapr watches the second subscriber for 10 ms. Here: sentinels until each member has
    // had one; a copy of the message for a member would have reached it before.
    support::flush(&pubsub, "test", &[&first_seen, &second_seen]).await;
    let payloads: Vec<String> = first_seen
        .payloads()
        .into_iter()
        .chain(second_seen.payloads())
        .collect();
    assert_eq!(
        payloads,
        vec![r#"{"id": "ABCD-1", "data": "test"}"#],
        "exactly one of the two subscribers received it"
    );
    first.stop().await.unwrap();
    second.stop().await.unwrap();
    runtime.shutdown().await;
}
