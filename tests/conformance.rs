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
    awaited: BTreeSet<usize>,
    processed: HashSet<usize>,
    order: Vec<usize>,
    counter: usize,
    error_count: usize,
    out_of_order: bool,
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
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let prefix = format!("message-{run_id}-");

    // 3. subscribe to testTopic with the failure pattern.
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
                    if s.error_count == 0 && s.order.last().is_some_and(|last| *last > seq) {
                        s.out_of_order = true;
                    }
                    let fail = s.error_count < 2 || s.counter % 5 == 0;
                    if fail {
                        s.error_count += 1;
                        s.awaited.remove(&seq);
                    }
                    fail
                };
                if fail {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return AppStatus::Retry; // "conf test simulated error"
                }
                let mut s = state.lock().unwrap();
                s.processed.insert(seq);
                s.order.push(seq);
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

    // 5. verify read: every awaited message processed, in order.
    let deadline = Instant::now() + MAX_READ;
    while !state.lock().unwrap().awaited.is_empty() {
        assert!(
            Instant::now() < deadline,
            "awaited messages left: {:?}",
            state.lock().unwrap().awaited
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !state.lock().unwrap().out_of_order,
        "messages processed out of order"
    );

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
    for n in MESSAGE_COUNT + 1..=2 * MESSAGE_COUNT {
        let topic = if n % 2 == 0 {
            "multiTopic1"
        } else {
            "multiTopic2"
        };
        let data = format!("{prefix}{n}");
        pubsub
            .publish(topic, data.clone().into_bytes())
            .await
            .unwrap();
        expected.get_mut(topic).unwrap().push(data);
    }
    wait_for_sets(&expected, &received).await;

    // 7. stop subscribers one by one: delivery stops for that topic only.
    let mut subscribers = vec![Some(sub1), Some(sub2)];
    for iteration in 0..3 {
        let offset = MESSAGE_COUNT * (iteration + 2);
        if iteration > 0 {
            if let Some(subscriber) = subscribers[iteration - 1].take() {
                subscriber.stop().await.unwrap();
            }
            tokio::time::sleep(WAIT_TO_PUBLISH).await;
        }
        for n in offset + 1..=offset + MESSAGE_COUNT {
            let topic = if n % 2 == 0 {
                "multiTopic1"
            } else {
                "multiTopic2"
            };
            let index = if topic == "multiTopic1" { 0 } else { 1 };
            if subscribers[index].is_none() {
                continue;
            }
            let data = format!("{prefix}{n}");
            pubsub
                .publish(topic, data.clone().into_bytes())
                .await
                .unwrap();
            expected.get_mut(topic).unwrap().push(data);
        }
        wait_for_sets(&expected, &received).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_for_sets(&expected, &received).await;

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
    let recorder = Recorder::new();
    let first = pubsub
        .subscribe("test", recorder.accept_all())
        .await
        .unwrap();
    let second = pubsub
        .subscribe("test", recorder.accept_all())
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
    recorder
        .wait_until(Duration::from_secs(1), "one delivery within 1s", |m| {
            !m.is_empty()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        recorder.messages().len(),
        1,
        "exactly one of the two subscribers received it"
    );
    first.stop().await.unwrap();
    second.stop().await.unwrap();
    runtime.shutdown().await;
}
