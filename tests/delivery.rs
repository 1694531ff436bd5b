//! Delivery guarantees through the real component in wasmtime against a real
//! nats-server: acks and redelivery, long handlers, single and parallel modes, competing
//! consumers, wildcards, headers, bulk publish, many subscriptions, unsubscribe and close.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use jetstream_pubsub_host::nats_server::ServerOptions;
use jetstream_pubsub_host::{AppStatus, BulkEntry, Error, Message, PublishRequest};
use support::Recorder;

const WAIT: Duration = Duration::from_secs(10);

/// Wraps a recording handler so that each call takes `work` (a yield when zero) and the
/// most calls ever running at once is counted.
fn tracking_concurrency(
    record: impl Fn(Message) -> std::future::Ready<AppStatus> + Send + Sync + 'static,
    work: Duration,
) -> (
    impl Fn(Message) -> BoxFuture<'static, AppStatus> + Send + Sync + 'static,
    Arc<AtomicUsize>,
) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let max = max_in_flight.clone();
    let handler = move |message: Message| {
        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        max_in_flight.fetch_max(now, Ordering::SeqCst);
        let status = record(message);
        let in_flight = in_flight.clone();
        Box::pin(async move {
            if work.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(work).await;
            }
            in_flight.fetch_sub(1, Ordering::SeqCst);
            status.await
        }) as BoxFuture<'static, AppStatus>
    };
    (handler, max)
}

#[tokio::test]
async fn max_deliver_stops_redelivery() {
    let server = support::server();
    support::stream(&server, "JOBS", &["jobs"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[("maxDeliver", "2")]).await;
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe("jobs", recorder.handler(|_, _| AppStatus::Retry))
        .await
        .unwrap();
    pubsub
        .publish("jobs", b"always-fails".to_vec())
        .await
        .unwrap();
    recorder
        .wait_until(WAIT, "two deliveries", |m| m.len() >= 2)
        .await;
    // Settled: the server gave up on the message, so nothing comes again.
    let info = support::settled(&server.url(), subscription.consumer()).await;
    assert_eq!(
        (
            info.delivered.consumer_sequence,
            recorder.count_of("always-fails")
        ),
        (2, 2),
        "maxDeliver 2: delivered twice, then never again"
    );
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn retries_follow_the_backoff_steps() {
    let server = support::server();
    support::stream(&server, "JOBS", &["jobs"]).await;
    // nats-server 2.9 wants maxDeliver > len(backOff).
    let (runtime, pubsub) =
        support::pubsub(&server, &[("backOff", "300ms, 900ms"), ("maxDeliver", "3")]).await;
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe("jobs", recorder.handler(|_, _| AppStatus::Retry))
        .await
        .unwrap();
    pubsub.publish("jobs", b"flaky".to_vec()).await.unwrap();
    recorder
        .wait_until(WAIT, "three deliveries", |m| m.len() >= 3)
        .await;
    let info = support::settled(&server.url(), subscription.consumer()).await;
    let arrivals = recorder.arrivals();
    assert_eq!(
        (info.delivered.consumer_sequence, arrivals.len()),
        (3, 3),
        "maxDeliver 3 ends it: {:?}",
        recorder.payloads()
    );
    assert!(
        arrivals[1] - arrivals[0] >= Duration::from_millis(280),
        "first retry after ~300ms: {:?}",
        arrivals[1] - arrivals[0]
    );
    assert!(
        arrivals[2] - arrivals[1] >= Duration::from_millis(850),
        "second retry after ~900ms: {:?}",
        arrivals[2] - arrivals[1]
    );
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_handler_longer_than_ack_wait_is_not_redelivered() {
    let server = support::server();
    support::stream(&server, "SLOW", &["slow"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[("ackWait", "1s")]).await;
    let (calls, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let handler = {
        let (calls, finished) = (calls.clone(), finished.clone());
        move |_message: Message| {
            let (calls, finished) = (calls.clone(), finished.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2_500)).await;
                finished.fetch_add(1, Ordering::SeqCst);
                AppStatus::Success
            }
        }
    };
    let subscription = pubsub.subscribe("slow", handler).await.unwrap();
    pubsub
        .publish("slow", b"takes-2.5s".to_vec())
        .await
        .unwrap();
    // Two and a half ack waits pass while the handler runs.
    let deadline = Instant::now() + WAIT;
    while finished.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the handler never finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Then it is acknowledged, and the server counts every delivery it ever made: one.
    let info = support::settled(&server.url(), subscription.consumer()).await;
    assert_eq!(
        (
            info.delivered.consumer_sequence,
            calls.load(Ordering::SeqCst)
        ),
        (1, 1),
        "in-progress kept the message from being redelivered"
    );
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn ack_policy_none_sends_no_answers() {
    let server = support::server();
    support::stream(&server, "FIRE", &["fire"]).await;
    let (runtime, pubsub) = support::pubsub(
        &server,
        &[
            ("ackPolicy", "none"),
            ("durableName", "fire"),
            ("ackWait", "1s"),
        ],
    )
    .await;
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe("fire", recorder.handler(|_, _| AppStatus::Retry))
        .await
        .unwrap();
    pubsub.publish("fire", b"once".to_vec()).await.unwrap();
    recorder
        .wait_until(WAIT, "the message", |m| !m.is_empty())
        .await;
    // With ack policy none the server holds nothing pending, so it has nothing to send
    // again, and says it delivered once.
    let info = support::settled(&server.url(), subscription.consumer()).await;
    assert_eq!(
        (info.delivered.consumer_sequence, recorder.count_of("once")),
        (1, 1),
        "ack policy none: a failed message is not redelivered"
    );
    let info = support::consumer_info(&server.url(), "FIRE", "fire")
        .await
        .expect("durable exists");
    assert_eq!(
        info.config.ack_policy,
        async_nats::jetstream::consumer::AckPolicy::None
    );
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn single_mode_delivers_one_at_a_time_in_order() {
    let server = support::server();
    support::stream(&server, "SEQ", &["seq"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    for n in 0..200 {
        pubsub
            .publish("seq", format!("m-{n}").into_bytes())
            .await
            .unwrap();
    }
    let recorder = Recorder::new();
    let (handler, max_in_flight) = tracking_concurrency(recorder.accept_all(), Duration::ZERO);
    let subscription = pubsub.subscribe("seq", handler).await.unwrap();
    recorder
        .wait_until(WAIT, "200 messages", |m| m.len() >= 200)
        .await;
    let expected: Vec<String> = (0..200).map(|n| format!("m-{n}")).collect();
    assert_eq!(
        recorder.payloads(),
        expected,
        "single mode keeps publish order"
    );
    assert_eq!(
        max_in_flight.load(Ordering::SeqCst),
        1,
        "one handler at a time"
    );
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

/// Publishes `fast-0`, `fast-1` and `slow` on `subject` before subscribing (so they arrive
/// in one batch) with a handler that holds `slow` until released, then checks on the server
/// that the fast ones are acknowledged while `slow` is still being handled.
async fn answered_as_each_handler_finishes(concurrency: &str) {
    let stream = format!("PROMPT{}", concurrency.to_uppercase());
    let subject = format!("prompt.{concurrency}");
    let server = support::server();
    support::stream(&server, &stream, &[subject.as_str()]).await;
    let (runtime, pubsub) = support::pubsub(
        &server,
        &[("durableName", "prompt"), ("concurrency", concurrency)],
    )
    .await;
    for payload in ["fast-0", "fast-1", "slow"] {
        pubsub
            .publish(&subject, payload.as_bytes().to_vec())
            .await
            .unwrap();
    }
    let release = Arc::new(tokio::sync::Notify::new());
    let handled = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (release, handled) = (release.clone(), handled.clone());
        move |message: Message| {
            let (release, handled) = (release.clone(), handled.clone());
            Box::pin(async move {
                if message.data == b"slow"[..] {
                    release.notified().await;
                }
                handled.fetch_add(1, Ordering::SeqCst);
                AppStatus::Success
            }) as BoxFuture<'static, AppStatus>
        }
    };
    let subscription = pubsub.subscribe(&subject, handler).await.unwrap();
    let deadline = Instant::now() + WAIT;
    let info = loop {
        let info = support::consumer_info(&server.url(), &stream, "prompt")
            .await
            .unwrap();
        if info.ack_floor.stream_sequence >= 2 || Instant::now() > deadline {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (info.ack_floor.stream_sequence, info.num_ack_pending),
        (2, 1),
        "{concurrency}: the fast messages are acknowledged while the slow one is handled"
    );
    assert_eq!(handled.load(Ordering::SeqCst), 2);
    release.notify_one();
    subscription.stop().await.unwrap();
    let info = support::consumer_info(&server.url(), &stream, "prompt")
        .await
        .unwrap();
    assert_eq!(info.ack_floor.stream_sequence, 3);
    pubsub.close().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn single_mode_answers_each_message_as_its_handler_finishes() {
    answered_as_each_handler_finishes("single").await;
}

#[tokio::test]
async fn parallel_mode_answers_each_message_as_its_handler_finishes() {
    answered_as_each_handler_finishes("parallel").await;
}

#[tokio::test]
async fn parallel_mode_runs_handlers_concurrently_bounded_by_max_ack_pending() {
    let server = support::server();
    support::stream(&server, "PAR", &["par"]).await;
    let (runtime, pubsub) = support::pubsub(
        &server,
        &[("concurrency", "parallel"), ("maxAckPending", "20")],
    )
    .await;
    for n in 0..100 {
        pubsub
            .publish("par", format!("p-{n}").into_bytes())
            .await
            .unwrap();
    }
    let recorder = Recorder::new();
    // p-7 fails the first time: it must come back, the others must not.
    let record = recorder.handler(|m, nth| {
        if m.data == b"p-7"[..] && nth == 1 {
            AppStatus::Retry
        } else {
            AppStatus::Success
        }
    });
    let (handler, max_in_flight) = tracking_concurrency(record, Duration::from_millis(50));
    let subscription = pubsub.subscribe("par", handler).await.unwrap();
    recorder
        .wait_until(WAIT, "101 deliveries", |m| m.len() >= 101)
        .await;
    let info = support::settled(&server.url(), subscription.consumer()).await;
    assert_eq!(info.delivered.consumer_sequence, 101, "the server's count");
    let max = max_in_flight.load(Ordering::SeqCst);
    assert!(max > 1, "handlers ran concurrently (max in flight {max})");
    assert!(
        max <= 20,
        "never more in flight than maxAckPending 20 (max in flight {max})"
    );
    assert_eq!(
        recorder.count_of("p-7"),
        2,
        "the failed message was redelivered"
    );
    let unique: HashSet<String> = recorder.payloads().into_iter().collect();
    assert_eq!(unique.len(), 100);
    assert_eq!(
        recorder.messages().len(),
        101,
        "acked after the handler: nothing else came back"
    );
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn parallel_mode_keeps_free_slots_busy_while_a_handler_is_slow() {
    let server = support::server();
    support::stream(&server, "SLIDE", &["slide"]).await;
    let (runtime, pubsub) = support::pubsub(
        &server,
        &[("concurrency", "parallel"), ("maxAckPending", "2")],
    )
    .await;
    pubsub.publish("slide", b"slow".to_vec()).await.unwrap();
    for n in 0..5 {
        pubsub
            .publish("slide", format!("fast-{n}").into_bytes())
            .await
            .unwrap();
    }
    let recorder = Recorder::new();
    let record = recorder.accept_all();
    let release = Arc::new(tokio::sync::Notify::new());
    let handler = {
        let release = release.clone();
        move |message: Message| {
            let slow = message.data == b"slow"[..];
            let status = record(message);
            let release = release.clone();
            Box::pin(async move {
                if slow {
                    release.notified().await;
                }
                status.await
            }) as BoxFuture<'static, AppStatus>
        }
    };
    let subscription = pubsub.subscribe("slide", handler).await.unwrap();
    // With two slots, one held by the slow handler, the other takes every fast message
    // in turn: nothing waits for the slow one.
    recorder
        .wait_until(
            WAIT,
            "the five fast messages while the slow one runs",
            |m| m.iter().filter(|m| m.data.starts_with(b"fast-")).count() == 5,
        )
        .await;
    release.notify_one();
    subscription.stop().await.unwrap();
    assert_eq!(recorder.messages().len(), 6);
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_panicking_parallel_handler_gets_its_message_redelivered() {
    let server = support::server();
    support::stream(&server, "BOOM", &["boom"]).await;
    let (runtime, pubsub) =
        support::pubsub(&server, &[("concurrency", "parallel"), ("ackWait", "1s")]).await;
    let recorder = Recorder::new();
    let record = recorder.handler(|_, _| AppStatus::Success);
    let seen = Arc::new(AtomicUsize::new(0));
    let handler = {
        let seen = seen.clone();
        move |message: Message| {
            let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
            let status = record(message);
            Box::pin(async move {
                assert!(!first, "the handler fails on its first message");
                status.await
            }) as BoxFuture<'static, AppStatus>
        }
    };
    let subscription = pubsub.subscribe("boom", handler).await.unwrap();
    pubsub.publish("boom", b"boom".to_vec()).await.unwrap();
    recorder
        .wait_until(WAIT, "the message again after the panic", |m| m.len() >= 2)
        .await;
    assert_eq!(recorder.payloads(), vec!["boom", "boom"]);
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn competing_consumers_share_the_work_and_resume_after_restart() {
    let server = support::server();
    support::stream(&server, "WORK", &["work"]).await;
    let md = [("durableName", "workers"), ("queueGroupName", "workers")];
    let (runtime, pubsub) = support::pubsub(&server, &md).await;
    let (first, second) = (Recorder::new(), Recorder::new());
    let sub_a = pubsub.subscribe("work", first.accept_all()).await.unwrap();
    let sub_b = pubsub.subscribe("work", second.accept_all()).await.unwrap();
    assert_eq!(
        sub_a.consumer().config["deliver_subject"],
        sub_b.consumer().config["deliver_subject"],
        "one shared consumer"
    );
    for n in 0..200 {
        pubsub
            .publish("work", format!("w-{n}").into_bytes())
            .await
            .unwrap();
    }
    let total = |a: &Recorder, b: &Recorder| a.messages().len() + b.messages().len();
    let deadline = Instant::now() + WAIT;
    while total(&first, &second) < 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    support::flush(&pubsub, "work", &[&first, &second]).await;
    let mut all: Vec<String> = first
        .payloads()
        .into_iter()
        .chain(second.payloads())
        .collect();
    assert_eq!(all.len(), 200, "each message to exactly one subscriber");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 200);
    assert!(
        !first.messages().is_empty() && !second.messages().is_empty(),
        "both subscribers got work"
    );

    // Restart: stop both, publish more, start one again: only the new messages arrive.
    sub_a.stop().await.unwrap();
    sub_b.stop().await.unwrap();
    for n in 200..220 {
        pubsub
            .publish("work", format!("w-{n}").into_bytes())
            .await
            .unwrap();
    }
    let restarted = Recorder::new();
    let sub_c = pubsub
        .subscribe("work", restarted.accept_all())
        .await
        .unwrap();
    restarted
        .wait_until(WAIT, "the 20 new messages", |m| m.len() >= 20)
        .await;
    support::flush(&pubsub, "work", &[&restarted]).await;
    let expected: Vec<String> = (200..220).map(|n| format!("w-{n}")).collect();
    assert_eq!(
        restarted.payloads(),
        expected,
        "resumed from the durable's position, no replay"
    );
    sub_c.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_second_durable_subscriber_without_queue_group_is_refused() {
    let server = support::server();
    support::stream(&server, "ONE", &["one"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[("durableName", "solo")]).await;
    let sub = pubsub
        .subscribe("one", Recorder::new().accept_all())
        .await
        .unwrap();
    let err = pubsub
        .subscribe("one", Recorder::new().accept_all())
        .await
        .err()
        .expect("second bind refused");
    assert!(
        err.to_string()
            .starts_with("consumer is already bound to a subscription"),
        "{err}"
    );
    sub.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn ephemeral_subscribers_each_get_every_message() {
    let server = support::server();
    support::stream(&server, "FAN", &["fan"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    let (first, second) = (Recorder::new(), Recorder::new());
    let sub_a = pubsub.subscribe("fan", first.accept_all()).await.unwrap();
    let sub_b = pubsub.subscribe("fan", second.accept_all()).await.unwrap();
    for n in 0..10 {
        pubsub
            .publish("fan", format!("f-{n}").into_bytes())
            .await
            .unwrap();
    }
    first
        .wait_until(WAIT, "10 on the first", |m| m.len() >= 10)
        .await;
    second
        .wait_until(WAIT, "10 on the second", |m| m.len() >= 10)
        .await;
    assert_eq!(first.payloads(), second.payloads());
    sub_a.stop().await.unwrap();
    sub_b.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn wildcard_topics_report_pattern_and_subject() {
    let server = support::server();
    support::stream(&server, "ORDERS", &["orders.>"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    let (one_level, all_levels) = (Recorder::new(), Recorder::new());
    let star = pubsub
        .subscribe("orders.*", one_level.accept_all())
        .await
        .unwrap();
    let gt = pubsub
        .subscribe("orders.>", all_levels.accept_all())
        .await
        .unwrap();
    pubsub.publish("orders.eu", b"a".to_vec()).await.unwrap();
    pubsub
        .publish("orders.eu.paris", b"b".to_vec())
        .await
        .unwrap();
    all_levels
        .wait_until(WAIT, "both on orders.>", |m| m.len() >= 2)
        .await;
    one_level
        .wait_until(WAIT, "one on orders.*", |m| !m.is_empty())
        .await;
    // orders.* would have had orders.eu.paris before a sentinel published after it.
    support::flush(&pubsub, "orders.sentinel", &[&one_level, &all_levels]).await;
    let star_seen: Vec<_> = one_level
        .messages()
        .iter()
        .map(|m| (m.topic.to_string(), m.subject().to_string()))
        .collect();
    assert_eq!(
        star_seen,
        vec![("orders.*".to_string(), "orders.eu".to_string())]
    );
    let gt_seen: Vec<_> = all_levels
        .messages()
        .iter()
        .map(|m| (m.topic.to_string(), m.subject().to_string()))
        .collect();
    assert_eq!(
        gt_seen,
        vec![
            ("orders.>".to_string(), "orders.eu".to_string()),
            ("orders.>".to_string(), "orders.eu.paris".to_string())
        ]
    );
    star.stop().await.unwrap();
    gt.stop().await.unwrap();
    runtime.shutdown().await;
}

/// What another NATS client published, as the application gets it: `Topic` is the subject
/// first and only once (a header of that name does not override it), then the headers
/// under their own names; a message without headers has `Topic` alone.
#[tokio::test]
async fn a_foreign_topic_header_never_overrides_the_subject() {
    let server = support::server();
    support::stream(&server, "FOREIGN", &["foreign.>"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe("foreign.>", recorder.accept_all())
        .await
        .unwrap();
    let client = async_nats::connect(server.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Topic", "spoofed");
    headers.insert("Content-Type", "text/plain");
    headers.insert("X-Trace", "t-1");
    jetstream
        .publish_with_headers("foreign.a", headers, "with headers".into())
        .await
        .unwrap()
        .await
        .unwrap();
    support::publish_plain(&server, "foreign.b", &["without"]).await;
    recorder
        .wait_until(WAIT, "both messages", |m| m.len() == 2)
        .await;
    let messages = recorder.messages();
    let with = &messages[0];
    assert_eq!(
        with.metadata[0],
        ("Topic".to_string(), "foreign.a".to_string())
    );
    let mut rest = with.metadata[1..].to_vec();
    rest.sort();
    assert_eq!(
        rest,
        [
            ("Content-Type".to_string(), "text/plain".to_string()),
            ("X-Trace".to_string(), "t-1".to_string()),
        ]
    );
    assert_eq!(with.content_type.as_deref(), Some("text/plain"));
    let without = &messages[1];
    assert_eq!(
        without.metadata,
        [("Topic".to_string(), "foreign.b".to_string())]
    );
    assert_eq!(without.content_type, None);
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn request_metadata_travels_as_headers() {
    let server = support::server();
    support::stream(&server, "HDR", &["hdr"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe("hdr", recorder.accept_all())
        .await
        .unwrap();
    let request = PublishRequest {
        topic: "hdr".into(),
        data: b"{\"id\":\"h-1\"}".to_vec(),
        content_type: Some("application/json".into()),
        metadata: support::metadata(&[
            ("traceparent", "00-abc-def-01"),
            ("tenant", "acme"),
            ("Topic", "spoof"),
        ]),
    };
    pubsub.publish_request(request).await.unwrap();
    recorder
        .wait_until(WAIT, "the message", |m| !m.is_empty())
        .await;
    let message = &recorder.messages()[0];
    let get = |key: &str| {
        message
            .metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("traceparent"), Some("00-abc-def-01"));
    assert_eq!(get("tenant"), Some("acme"));
    assert_eq!(get("Nats-Msg-Id"), Some("h-1"));
    assert_eq!(
        get("Topic"),
        Some("hdr"),
        "Topic is the subject, not a header"
    );
    assert_eq!(
        message
            .metadata
            .iter()
            .filter(|(k, _)| k == "Topic")
            .count(),
        1,
        "one Topic: {:?}",
        message.metadata
    );
    assert_eq!(message.content_type.as_deref(), Some("application/json"));

    let bad = PublishRequest {
        topic: "hdr".into(),
        data: b"x".to_vec(),
        metadata: support::metadata(&[("bad key", "v")]),
        ..Default::default()
    };
    let err = pubsub.publish_request(bad).await.unwrap_err();
    assert!(matches!(err, Error::InvalidMetadata(_)), "{err:?}");
    assert!(err.to_string().contains("\"bad key\""), "{err}");
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn null_and_raw_payloads_have_no_message_id() {
    let server = support::server();
    support::stream(&server, "RAW", &["raw"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    let first = pubsub.publish("raw", b"null".to_vec()).await.unwrap();
    let second = pubsub.publish("raw", b"null".to_vec()).await.unwrap();
    assert_eq!(
        (first.sequence, second.sequence, second.duplicate),
        (1, 2, false),
        "null: no id, stored twice"
    );
    let empty = pubsub.publish("raw", Vec::new()).await.unwrap();
    assert_eq!(empty.sequence, 3, "an empty payload is a message too");
    runtime.shutdown().await;
}

#[tokio::test]
async fn bulk_publish_reports_each_entry() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("small-payload.conf");
    std::fs::write(&config, "max_payload: 2048\n").unwrap();
    let server = ServerOptions::jetstream()
        .config_file(&config)
        .start()
        .unwrap();
    support::stream(&server, "BULK", &["bulk"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    let entry = |id: &str, data: Vec<u8>, metadata: &[(&str, &str)]| BulkEntry {
        entry_id: id.to_string(),
        data,
        content_type: None,
        metadata: support::metadata(metadata),
    };
    let entries = vec![
        entry("a", b"{\"id\":\"bulk-a\"}".to_vec(), &[]),
        entry("too-big", vec![b'x'; 4096], &[]),
        entry("b", b"b".to_vec(), &[]),
        entry("bad-header", b"c".to_vec(), &[("no spaces allowed", "v")]),
        entry("a-again", b"{\"id\":\"bulk-a\"}".to_vec(), &[]),
    ];
    let results = pubsub
        .bulk_publish("bulk", entries, Vec::new())
        .await
        .unwrap();
    let ids: Vec<_> = results.iter().map(|r| r.entry_id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["a", "too-big", "b", "bad-header", "a-again"],
        "one result per entry, in order"
    );
    let a = results[0].outcome.as_ref().unwrap();
    let b = results[2].outcome.as_ref().unwrap();
    assert_eq!((a.sequence, b.sequence), (1, 2));
    let too_big = results[1].outcome.as_ref().unwrap_err();
    assert!(too_big.to_string().contains("max_payload"), "{too_big}");
    assert!(
        matches!(results[3].outcome, Err(Error::InvalidMetadata(_))),
        "{:?}",
        results[3].outcome
    );
    let again = results[4].outcome.as_ref().unwrap();
    assert!(again.duplicate && again.sequence == 1, "{again:?}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_hundred_subscriptions_do_not_wait_on_each_other() {
    let server = support::server();
    support::stream(&server, "MANY", &["many.>"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    let release = Arc::new(tokio::sync::Notify::new());
    let blocked_done = Arc::new(AtomicUsize::new(0));
    let recorder = Recorder::new();
    let mut subscriptions = Vec::new();
    for n in 0..100 {
        let topic = format!("many.{n}");
        let subscription = if n == 0 {
            // The busy one: its handler holds its message until the test releases it.
            let (release, blocked_done) = (release.clone(), blocked_done.clone());
            pubsub
                .subscribe(&topic, move |_m: Message| {
                    let (release, blocked_done) = (release.clone(), blocked_done.clone());
                    async move {
                        release.notified().await;
                        blocked_done.fetch_add(1, Ordering::SeqCst);
                        AppStatus::Success
                    }
                })
                .await
                .unwrap()
        } else {
            pubsub
                .subscribe(&topic, recorder.accept_all())
                .await
                .unwrap()
        };
        subscriptions.push(subscription);
    }
    for n in 0..100 {
        pubsub
            .publish(&format!("many.{n}"), format!("to-{n}").into_bytes())
            .await
            .unwrap();
    }
    recorder
        .wait_until(WAIT, "the 99 other subscriptions' messages", |m| {
            m.len() >= 99
        })
        .await;
    assert_eq!(
        blocked_done.load(Ordering::SeqCst),
        0,
        "all 99 arrived while subscription 0 was still busy"
    );
    release.notify_one();
    for subscription in subscriptions {
        subscription.stop().await.unwrap();
    }
    assert_eq!(blocked_done.load(Ordering::SeqCst), 1);
    runtime.shutdown().await;
}

#[tokio::test]
async fn unsubscribe_stops_only_that_subscription() {
    let server = support::server();
    support::stream(&server, "TWO", &["left", "right"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    let (left, right) = (Recorder::new(), Recorder::new());
    let sub_left = pubsub.subscribe("left", left.accept_all()).await.unwrap();
    let sub_right = pubsub.subscribe("right", right.accept_all()).await.unwrap();
    pubsub.publish("left", b"l1".to_vec()).await.unwrap();
    left.wait_until(WAIT, "l1", |m| !m.is_empty()).await;
    let left_consumer = sub_left.consumer().clone();
    sub_left.stop().await.unwrap();
    // Nobody listens for the stopped consumer's deliveries any more: the server can send
    // it nothing, whatever is published from here on.
    support::unbound(&server.url(), &left_consumer).await;
    let l2 = pubsub.publish("left", b"l2".to_vec()).await.unwrap();
    pubsub.publish("right", b"r1".to_vec()).await.unwrap();
    right.wait_until(WAIT, "r1", |m| !m.is_empty()).await;
    support::assert_undelivered(&server.url(), &left_consumer, l2.sequence).await;
    assert_eq!(
        left.payloads(),
        vec!["l1"],
        "the stopped subscription gets nothing more"
    );
    assert_eq!(right.payloads(), vec!["r1"]);
    sub_right.stop().await.unwrap();
    runtime.shutdown().await;
}

/// A handler that signals when it starts, takes `work`, counts when it has finished, and
/// acknowledges: for checking that stopping waits for a handler in flight.
fn slow_handler(
    work: Duration,
) -> (
    impl Fn(Message) -> BoxFuture<'static, AppStatus> + Send + Sync + 'static,
    Arc<tokio::sync::Notify>,
    Arc<AtomicUsize>,
) {
    let started = Arc::new(tokio::sync::Notify::new());
    let finished = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (started, finished) = (started.clone(), finished.clone());
        move |_m: Message| {
            let (started, finished) = (started.clone(), finished.clone());
            Box::pin(async move {
                started.notify_one();
                tokio::time::sleep(work).await;
                finished.fetch_add(1, Ordering::SeqCst);
                AppStatus::Success
            }) as BoxFuture<'static, AppStatus>
        }
    };
    (handler, started, finished)
}

#[tokio::test]
async fn stop_waits_for_the_handler_and_leaves_the_durable() {
    let server = support::server();
    support::stream(&server, "KEEP", &["keep"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[("durableName", "keeper")]).await;
    let (handler, started, finished) = slow_handler(Duration::from_millis(500));
    let subscription = pubsub.subscribe("keep", handler).await.unwrap();
    pubsub.publish("keep", b"in-flight".to_vec()).await.unwrap();
    tokio::time::timeout(WAIT, started.notified())
        .await
        .expect("the handler started");
    subscription.stop().await.unwrap();
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "stop returned only after the in-flight handler finished"
    );
    pubsub.close().await.unwrap();
    runtime.shutdown().await;

    let info = support::consumer_info(&server.url(), "KEEP", "keeper")
        .await
        .expect("the durable stays on the server");
    assert_eq!(
        info.ack_floor.stream_sequence, 1,
        "the in-flight message was acknowledged before stopping"
    );
    assert_eq!(info.num_ack_pending, 0);
}

#[tokio::test]
async fn messages_buffered_at_stop_go_back_long_before_the_ack_wait() {
    let server = support::server();
    support::stream(&server, "KEEP", &["keep"]).await;
    let metadata = [("durableName", "buffered"), ("ackWait", "60s")];
    let (runtime, pubsub) = support::pubsub(&server, &metadata).await;
    let (handler, started, _finished) = slow_handler(Duration::from_millis(500));
    let subscription = pubsub.subscribe("keep", handler).await.unwrap();
    pubsub.publish("keep", b"in-flight".to_vec()).await.unwrap();
    tokio::time::timeout(WAIT, started.notified())
        .await
        .expect("the handler started");
    // Sent by the server while the handler runs: buffered, never taken.
    for n in 1..=5 {
        pubsub
            .publish("keep", format!("buffered-{n}").into_bytes())
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let info = support::consumer_info(&server.url(), "KEEP", "buffered")
            .await
            .unwrap();
        if info.delivered.stream_sequence == 6 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server never pushed them: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    subscription.stop().await.unwrap();

    let recorder = support::Recorder::new();
    let resumed = pubsub
        .subscribe("keep", recorder.accept_all())
        .await
        .unwrap();
    // Handed back, they come again within seconds; left alone, only after the 60 s ack wait.
    recorder
        .wait_until(
            Duration::from_secs(20),
            "the buffered messages",
            |messages| messages.len() >= 5,
        )
        .await;
    let mut payloads = recorder.payloads();
    payloads.sort();
    assert_eq!(
        payloads,
        (1..=5).map(|n| format!("buffered-{n}")).collect::<Vec<_>>()
    );
    resumed.stop().await.unwrap();
    pubsub.close().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_consumer_deleted_under_the_subscription_is_recreated() {
    let server = support::server();
    support::stream(&server, "GONE", &["gone"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[("durableName", "phoenix")]).await;
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe("gone", recorder.accept_all())
        .await
        .unwrap();
    pubsub.publish("gone", b"before".to_vec()).await.unwrap();
    recorder
        .wait_until(WAIT, "the first message", |m| !m.is_empty())
        .await;

    let client = async_nats::connect(server.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    jetstream
        .delete_consumer_from_stream("phoenix", "GONE")
        .await
        .unwrap();
    pubsub.publish("gone", b"after".to_vec()).await.unwrap();
    recorder
        .wait_until(
            Duration::from_secs(20),
            "the message published after the deletion",
            |m| m.iter().any(|m| m.data == b"after"[..]),
        )
        .await;
    assert!(
        support::consumer_info(&server.url(), "GONE", "phoenix")
            .await
            .is_some(),
        "the durable exists again"
    );
    assert!(!subscription.is_finished());
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_deleted_stream_ends_the_subscription_with_a_clear_error() {
    let server = support::server();
    support::stream(&server, "DOOMED", &["doomed"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    let subscription = pubsub
        .subscribe("doomed", Recorder::new().accept_all())
        .await
        .unwrap();
    let client = async_nats::connect(server.url()).await.unwrap();
    async_nats::jetstream::new(client)
        .delete_stream("DOOMED")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !subscription.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = subscription
        .stop()
        .await
        .expect_err("the subscription ended with an error");
    assert_eq!(
        err.to_string(),
        "stream \"DOOMED\" no longer exists: the subscription to doomed ended"
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn close_stops_every_subscription_after_its_in_flight_handler() {
    let server = support::server();
    support::stream(&server, "CLOSE", &["close.a", "close.b"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[("durableName", "closer")]).await;
    let (handler, started, finished) = slow_handler(Duration::from_millis(500));
    let subscription = pubsub.subscribe("close.a", handler).await.unwrap();
    pubsub
        .publish("close.a", b"in-flight".to_vec())
        .await
        .unwrap();
    tokio::time::timeout(WAIT, started.notified())
        .await
        .expect("the handler started");
    pubsub.close().await.unwrap();
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "close returned only after the in-flight handler finished"
    );
    assert!(subscription.is_finished(), "close stopped the subscription");
    subscription.stop().await.unwrap();
    let err = pubsub
        .publish("close.a", b"late".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "component is closed");
    runtime.shutdown().await;
    let info = support::consumer_info(&server.url(), "CLOSE", "closer")
        .await
        .expect("the durable stays on the server");
    assert_eq!(
        info.ack_floor.stream_sequence, 1,
        "the in-flight message was acknowledged"
    );
}
