//! Dapr metadata parity, end to end: the real component in wasmtime against a real
//! nats-server (one per test). Each test checks what a Dapr user would: which messages a
//! deliver policy hands over, which JetStream API a domain reaches, what the server stored
//! for the consumer, and the reference's errors when a durable cannot be bound.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy};
use jetstream_pubsub_host::nats_server::{NatsServer, ServerOptions};
use jetstream_pubsub_host::{ConsumerSummary, Error, PubSub, Runtime, Subscription};
use support::Recorder;

/// Long enough for a message to arrive on a loaded machine; only reached on failure.
const ARRIVAL: Duration = Duration::from_secs(10);

/// The stream every test uses, and its one subject.
const STREAM: &str = "EVENTS";
const TOPIC: &str = "events";

/// A component initialised with `natsURL` of `server` plus `extra`, on `runtime`.
async fn init(runtime: &Runtime, server: &NatsServer, extra: &[(&str, &str)]) -> PubSub {
    try_init(runtime, server, extra)
        .await
        .unwrap_or_else(|err| panic!("init with {extra:?} fails: {err}"))
}

async fn try_init(
    runtime: &Runtime,
    server: &NatsServer,
    extra: &[(&str, &str)],
) -> Result<PubSub, Error> {
    let mut metadata = support::metadata(&[("natsURL", &server.url())]);
    metadata.extend(support::metadata(extra));
    runtime.pubsub(metadata).await
}

async fn publish(pubsub: &PubSub, topic: &str, payloads: &[&str]) {
    for payload in payloads {
        pubsub
            .publish(topic, payload.as_bytes().to_vec())
            .await
            .unwrap_or_else(|err| panic!("publishing {payload}: {err}"));
    }
}

/// Waits until `payload` has arrived. Single concurrency delivers in stream order, so
/// everything the consumer delivers before it has arrived too.
async fn wait_for(recorder: &Recorder, payload: &str) {
    recorder
        .wait_until(ARRIVAL, payload, |messages| {
            messages.iter().any(|m| m.data == payload.as_bytes())
        })
        .await;
}

/// A raw JetStream client, to see what the server really stored.
async fn raw_jetstream(server: &NatsServer) -> async_nats::jetstream::Context {
    let client = async_nats::connect(server.url())
        .await
        .expect("raw client connects");
    async_nats::jetstream::new(client)
}

async fn stored_consumer(server: &NatsServer, name: &str) -> consumer::Info {
    raw_jetstream(server)
        .await
        .get_consumer_from_stream::<consumer::Config, _, _>(name, STREAM)
        .await
        .unwrap_or_else(|err| panic!("consumer {name} on {STREAM}: {err}"))
        .cached_info()
        .clone()
}

fn now_unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

fn text(summary: &ConsumerSummary, field: &str) -> String {
    summary.config[field]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Stores `stored` in a fresh stream, subscribes with `extra`, publishes `live`, and
/// returns everything the handler received (once the last live message is in) and the
/// consumer the component chose.
async fn delivered(extra: &[(&str, &str)]) -> (Vec<String>, ConsumerSummary) {
    let server = support::server();
    support::stream(&server, STREAM, &[TOPIC]).await;
    let runtime = support::runtime();
    let publisher = init(&runtime, &server, &[]).await;
    publish(&publisher, TOPIC, &["stored-1", "stored-2", "stored-3"]).await;

    let received =
        subscribe_and_collect(&runtime, &server, &publisher, extra, &["live-1", "live-2"]).await;
    runtime.shutdown().await;
    received
}

/// Subscribes with `metadata`, publishes `live`, and returns what the handler received once
/// the last live message is in, and the consumer the component chose.
async fn subscribe_and_collect(
    runtime: &Runtime,
    server: &NatsServer,
    publisher: &PubSub,
    metadata: &[(&str, &str)],
    live: &[&str],
) -> (Vec<String>, ConsumerSummary) {
    let subscriber = init(runtime, server, metadata).await;
    let recorder = Recorder::new();
    let subscription = subscriber
        .subscribe(TOPIC, recorder.accept_all())
        .await
        .unwrap_or_else(|err| panic!("subscribe with {metadata:?}: {err}"));
    publish(publisher, TOPIC, live).await;
    wait_for(&recorder, live.last().expect("at least one live message")).await;
    let consumer = subscription.consumer().clone();
    subscription.stop().await.expect("stops");
    (recorder.payloads(), consumer)
}

/// Stores two messages, waits for the next second, stores one more, then subscribes with
/// `startTime` = that second (plus `extra`): only the message stored from then on, and
/// the live one, must arrive.
async fn delivered_from_now(extra: &[(&str, &str)]) -> (Vec<String>, ConsumerSummary) {
    let server = support::server();
    support::stream(&server, STREAM, &[TOPIC]).await;
    let runtime = support::runtime();
    let publisher = init(&runtime, &server, &[]).await;
    publish(&publisher, TOPIC, &["earlier-1", "earlier-2"]).await;
    // startTime has a resolution of one second: make the earlier messages a second old.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let start = now_unix_seconds().to_string();
    publish(&publisher, TOPIC, &["stored-after-start"]).await;

    let mut metadata = vec![("startTime", start.as_str())];
    metadata.extend_from_slice(extra);
    let (received, consumer) =
        subscribe_and_collect(&runtime, &server, &publisher, &metadata, &["live"]).await;
    runtime.shutdown().await;
    assert_eq!(
        consumer.config["opt_start_time_ns"].as_i64(),
        Some(start.parse::<i64>().expect("seconds") * 1_000_000_000),
        "the consumer starts at startTime"
    );
    (received, consumer)
}

// ---- deliver policies ----------------------------------------------------------------

#[tokio::test]
async fn deliver_policy_all_delivers_the_whole_stream() {
    let (received, consumer) = delivered(&[("deliverPolicy", "all")]).await;
    assert_eq!(
        received,
        ["stored-1", "stored-2", "stored-3", "live-1", "live-2"]
    );
    assert_eq!(text(&consumer, "deliver_policy"), "all");
}

#[tokio::test]
async fn deliver_policy_last_starts_at_the_last_stored_message() {
    let (received, consumer) = delivered(&[("deliverPolicy", "last")]).await;
    assert_eq!(received, ["stored-3", "live-1", "live-2"]);
    assert_eq!(text(&consumer, "deliver_policy"), "last");
}

#[tokio::test]
async fn deliver_policy_new_delivers_only_later_messages() {
    let (received, consumer) = delivered(&[("deliverPolicy", "new")]).await;
    assert_eq!(received, ["live-1", "live-2"]);
    assert_eq!(text(&consumer, "deliver_policy"), "new");
}

#[tokio::test]
async fn deliver_policy_sequence_starts_at_start_sequence() {
    let (received, consumer) =
        delivered(&[("deliverPolicy", "sequence"), ("startSequence", "2")]).await;
    assert_eq!(received, ["stored-2", "stored-3", "live-1", "live-2"]);
    assert_eq!(text(&consumer, "deliver_policy"), "by_start_sequence");
    assert_eq!(consumer.config["opt_start_seq"].as_u64(), Some(2));
}

#[tokio::test]
async fn deliver_policy_time_starts_at_start_time() {
    let (received, consumer) = delivered_from_now(&[("deliverPolicy", "time")]).await;
    assert_eq!(received, ["stored-after-start", "live"]);
    assert_eq!(text(&consumer, "deliver_policy"), "by_start_time");
}

#[tokio::test]
async fn without_deliver_policy_start_time_means_by_time() {
    let (received, consumer) = delivered_from_now(&[]).await;
    assert_eq!(received, ["stored-after-start", "live"]);
    assert_eq!(text(&consumer, "deliver_policy"), "by_start_time");
}

#[tokio::test]
async fn without_deliver_policy_start_sequence_means_by_sequence() {
    let (received, consumer) = delivered(&[("startSequence", "3")]).await;
    assert_eq!(received, ["stored-3", "live-1", "live-2"]);
    assert_eq!(text(&consumer, "deliver_policy"), "by_start_sequence");
}

#[tokio::test]
async fn without_deliver_policy_deliver_all_true_means_all() {
    let (received, consumer) = delivered(&[("deliverAll", "true")]).await;
    assert_eq!(
        received,
        ["stored-1", "stored-2", "stored-3", "live-1", "live-2"]
    );
    assert_eq!(text(&consumer, "deliver_policy"), "all");
}

#[tokio::test]
async fn without_deliver_policy_deliver_all_false_means_last() {
    let (received, consumer) = delivered(&[("deliverAll", "false")]).await;
    assert_eq!(received, ["stored-3", "live-1", "live-2"]);
    assert_eq!(text(&consumer, "deliver_policy"), "last");
}

#[tokio::test]
async fn dapr_docs_2021_example_subscribes_from_its_start_time() {
    // The example YAML of the 2021 Dapr docs: the reference fails it at Subscribe (deliver
    // all with both start options); the seed-era inference starts at startTime.
    let (received, consumer) = delivered(&[
        ("durableName", "docs-2021"),
        ("startSequence", "1"),
        ("startTime", "1630349391"),
        ("deliverAll", "false"),
    ])
    .await;
    // Every message is newer than 2021-08-30.
    assert_eq!(
        received,
        ["stored-1", "stored-2", "stored-3", "live-1", "live-2"]
    );
    assert_eq!(text(&consumer, "deliver_policy"), "by_start_time");
    assert_eq!(
        consumer.config["opt_start_time_ns"].as_i64(),
        Some(1_630_349_391_000_000_000)
    );
}

#[tokio::test]
async fn contradicting_start_option_fails_at_init_with_the_server_wording() {
    let server = support::server();
    support::stream(&server, STREAM, &[TOPIC]).await;
    let runtime = support::runtime();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("deliverPolicy", "all"), ("startSequence", "3")],
            "consumer delivery policy is deliver all, but optional start sequence is also set",
        ),
        (
            // The reference's own docs example (deliverPolicy all with both options).
            &[
                ("deliverPolicy", "all"),
                ("startSequence", "1"),
                ("startTime", "1630349391"),
            ],
            "consumer delivery policy is deliver all, but optional start sequence is also set",
        ),
        (
            &[("deliverPolicy", "new"), ("startTime", "1630349391")],
            "consumer delivery policy is deliver new, but optional start time is also set",
        ),
        (
            &[("deliverPolicy", "last"), ("startSequence", "2")],
            "consumer delivery policy is deliver last, but optional start sequence is also set",
        ),
        (
            &[("deliverPolicy", "sequence")],
            "consumer delivery policy is deliver by start sequence, but optional start sequence is not set",
        ),
        (
            &[
                ("deliverPolicy", "sequence"),
                ("startSequence", "2"),
                ("startTime", "1"),
            ],
            "consumer delivery policy is deliver by start sequence, but optional start time is also set",
        ),
        (
            &[("deliverPolicy", "time")],
            "consumer delivery policy is deliver by start time, but optional start time is not set",
        ),
        (
            &[
                ("deliverPolicy", "time"),
                ("startTime", "1"),
                ("startSequence", "2"),
            ],
            "consumer delivery policy is deliver by start time, but optional start sequence is also set",
        ),
    ];
    for (extra, want) in cases {
        match try_init(&runtime, &server, extra).await {
            Err(Error::InvalidMetadata(got)) => assert_eq!(&got, want, "{extra:?}"),
            Err(other) => panic!("{extra:?}: not a metadata error: {other:?}"),
            Ok(_) => panic!("{extra:?}: init succeeded"),
        }
    }
    // Nothing reached the server: no consumer was left behind.
    let mut stream = raw_jetstream(&server)
        .await
        .get_stream(STREAM)
        .await
        .expect("stream");
    assert_eq!(stream.info().await.expect("info").state.consumer_count, 0);
    runtime.shutdown().await;
}

// ---- domain and API prefix ------------------------------------------------------------

/// A server whose JetStream is in domain `hub`, tracing every protocol message to its
/// log so that the API subjects the component used can be read back.
fn hub_server() -> NatsServer {
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/configs/jetstream-domain-hub.conf"
    );
    ServerOptions::jetstream()
        .config_file(config)
        .arg("-V")
        .start()
        .expect("nats-server starts with the domain config")
}

/// The JetStream API requests (subjects) clients sent to `server`, from its trace log.
fn api_requests(server: &NatsServer) -> Vec<String> {
    let log = std::fs::read_to_string(server.log_file()).expect("server log");
    log.lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once("<<- [")?;
            let mut words = rest.split_whitespace();
            matches!(words.next(), Some("PUB" | "HPUB")).then_some(())?;
            let subject = words.next()?;
            subject.contains(".API.").then(|| subject.to_string())
        })
        .collect()
}

/// Subscribes and publishes through a component with `extra` on a domain server, and
/// returns the API subjects its consumer creation went to.
async fn round_trip_on_hub(extra: &[(&str, &str)]) -> Vec<String> {
    let server = hub_server();
    support::stream(&server, STREAM, &[TOPIC]).await;
    let runtime = support::runtime();
    let pubsub = init(&runtime, &server, extra).await;
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe(TOPIC, recorder.accept_all())
        .await
        .unwrap_or_else(|err| panic!("subscribe with {extra:?}: {err}"));
    publish(&pubsub, TOPIC, &["through-the-hub"]).await;
    wait_for(&recorder, "through-the-hub").await;
    subscription.stop().await.expect("stops");
    runtime.shutdown().await;
    api_requests(&server)
        .into_iter()
        .filter(|s| s.contains(".CONSUMER.") || s.contains(".STREAM.NAMES"))
        .collect()
}

#[tokio::test]
async fn domain_reaches_jetstream_through_the_domain_api() {
    let requests = round_trip_on_hub(&[("domain", "hub")]).await;
    assert!(
        requests
            .iter()
            .any(|s| s.starts_with("$JS.hub.API.CONSUMER.CREATE.EVENTS")),
        "{requests:?}"
    );
    assert!(
        requests.iter().all(|s| s.starts_with("$JS.hub.API.")),
        "every consumer API request goes to the domain: {requests:?}"
    );
}

#[tokio::test]
async fn api_prefix_wins_over_a_wrong_domain() {
    let requests = round_trip_on_hub(&[("domain", "nowhere"), ("apiPrefix", "$JS.hub.API")]).await;
    assert!(
        requests
            .iter()
            .any(|s| s.starts_with("$JS.hub.API.CONSUMER.CREATE.EVENTS")),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|s| s.contains("nowhere")),
        "the domain is not used when apiPrefix is set: {requests:?}"
    );
}

#[tokio::test]
async fn wrong_domain_fails_subscribe_naming_the_api_prefix() {
    let server = hub_server();
    support::stream(&server, STREAM, &[TOPIC]).await;
    let runtime = support::runtime();
    let pubsub = init(&runtime, &server, &[("domain", "nowhere")]).await;
    let err = pubsub
        .subscribe(TOPIC, Recorder::new().accept_all())
        .await
        .err()
        .expect("no JetStream answers in domain nowhere");
    let text = err.to_string();
    assert!(
        text.contains("$JS.nowhere.API") && text.contains(TOPIC),
        "the error names the API prefix and the topic: {text}"
    );
    // Publishing does not use the API prefix (as nats.go): it still reaches the stream.
    let ack = pubsub
        .publish(TOPIC, b"still stored".to_vec())
        .await
        .expect("publish ignores the domain");
    assert_eq!(ack.stream, STREAM);
    runtime.shutdown().await;
}

// ---- durable consumers across runs ------------------------------------------------------

#[tokio::test]
async fn changed_durable_config_is_updated_in_place_or_refused() {
    let server = support::server();
    support::stream(&server, STREAM, &[TOPIC]).await;
    let runtime = support::runtime();
    let durable = [("durableName", "orders-service")];

    // First run: maxDeliver 5.
    let first = init(&runtime, &server, &[durable[0], ("maxDeliver", "5")]).await;
    let recorder = Recorder::new();
    let subscription = first
        .subscribe(TOPIC, recorder.accept_all())
        .await
        .expect("first run subscribes");
    publish(&first, TOPIC, &["run-1"]).await;
    wait_for(&recorder, "run-1").await;
    let deliver_subject = text(subscription.consumer(), "deliver_subject");
    subscription.stop().await.expect("stops");
    assert_eq!(
        stored_consumer(&server, "orders-service")
            .await
            .config
            .max_deliver,
        5
    );

    // Second run, maxDeliver 7: the server updates the durable in place, which keeps its
    // position (only the message published meanwhile arrives).
    publish(&first, TOPIC, &["while-down"]).await;
    let second = init(&runtime, &server, &[durable[0], ("maxDeliver", "7")]).await;
    let recorder = Recorder::new();
    let subscription = second
        .subscribe(TOPIC, recorder.accept_all())
        .await
        .expect("a changed maxDeliver updates the durable");
    assert_eq!(subscription.consumer().config["max_deliver"], 7);
    assert_eq!(
        text(subscription.consumer(), "deliver_subject"),
        deliver_subject,
        "the durable keeps its deliver subject"
    );
    wait_for(&recorder, "while-down").await;
    assert_eq!(recorder.payloads(), ["while-down"]);
    subscription.stop().await.expect("stops");
    assert_eq!(
        stored_consumer(&server, "orders-service")
            .await
            .config
            .max_deliver,
        7
    );

    // Third run, another deliver policy: the server cannot update that; the reference's
    // words, and the durable is unchanged.
    let third = init(&runtime, &server, &[durable[0], ("deliverPolicy", "new")]).await;
    let err = third
        .subscribe(TOPIC, Recorder::new().accept_all())
        .await
        .err()
        .expect("a deliver policy change is refused");
    assert!(matches!(err, Error::Terminal(_)), "{err:?}");
    assert!(
        err.to_string().starts_with(
            "consumer name already in use: creating consumer \"orders-service\" on stream \"EVENTS\""
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("deliver policy can not be updated"),
        "the server's reason is kept: {err}"
    );
    let stored = stored_consumer(&server, "orders-service").await.config;
    assert_eq!(
        (stored.deliver_policy, stored.max_deliver),
        (DeliverPolicy::All, 7)
    );
    runtime.shutdown().await;
}

// ---- binding rules ----------------------------------------------------------------------

#[tokio::test]
async fn durable_reused_on_a_second_topic_is_refused() {
    let server = support::server();
    support::stream(&server, STREAM, &["events.a", "events.b"]).await;
    let runtime = support::runtime();
    let pubsub = init(&runtime, &server, &[("durableName", "one-topic")]).await;
    let subscription = pubsub
        .subscribe("events.a", Recorder::new().accept_all())
        .await
        .expect("first topic");
    let err = pubsub
        .subscribe("events.b", Recorder::new().accept_all())
        .await
        .err()
        .expect("the durable is filtered on events.a");
    assert!(matches!(err, Error::Terminal(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("subject does not match consumer"),
        "{err}"
    );
    assert!(
        err.to_string().contains("events.a") && err.to_string().contains("events.b"),
        "names both topics: {err}"
    );
    assert_eq!(
        stored_consumer(&server, "one-topic")
            .await
            .config
            .filter_subject,
        "events.a"
    );
    subscription.stop().await.expect("stops");
    runtime.shutdown().await;
}

#[tokio::test]
async fn durable_that_is_a_pull_consumer_is_refused_with_the_nats_go_words() {
    let server = support::server();
    support::stream(&server, STREAM, &[TOPIC]).await;
    raw_jetstream(&server)
        .await
        .get_stream(STREAM)
        .await
        .expect("stream")
        .create_consumer(consumer::pull::Config {
            durable_name: Some("puller".to_string()),
            ..Default::default()
        })
        .await
        .expect("pull consumer");
    let runtime = support::runtime();
    let pubsub = init(&runtime, &server, &[("durableName", "puller")]).await;
    let err = pubsub
        .subscribe(TOPIC, Recorder::new().accept_all())
        .await
        .err()
        .expect("a pull consumer cannot feed a push subscription");
    assert!(matches!(err, Error::Terminal(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        r#"must use pull subscribe to bind to pull based consumer (consumer "puller")"#
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn durable_without_queue_group_binds_once_and_resumes_after_a_restart() {
    let server = support::server();
    support::stream(&server, STREAM, &[TOPIC]).await;
    let runtime = support::runtime();
    let pubsub = init(&runtime, &server, &[("durableName", "single")]).await;
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe(TOPIC, recorder.accept_all())
        .await
        .expect("first subscriber");
    let err = pubsub
        .subscribe(TOPIC, Recorder::new().accept_all())
        .await
        .err()
        .expect("a second subscriber without queue group is refused");
    assert!(matches!(err, Error::Terminal(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("consumer is already bound to a subscription"),
        "{err}"
    );

    publish(&pubsub, TOPIC, &["first"]).await;
    wait_for(&recorder, "first").await;
    subscription.stop().await.expect("stops");

    // Once the first is gone, the durable binds again and resumes after what was acked.
    publish(&pubsub, TOPIC, &["second"]).await;
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe(TOPIC, recorder.accept_all())
        .await
        .expect("binds again after the first stopped");
    wait_for(&recorder, "second").await;
    assert_eq!(recorder.payloads(), ["second"]);
    subscription.stop().await.expect("stops");
    runtime.shutdown().await;
}

/// Publishes `count` messages and checks that the two subscribers of one queue group got
/// each exactly once between them, and both got some (neither listens on a dead subject).
async fn assert_shared(pubsub: &PubSub, first: &Recorder, second: &Recorder, count: usize) {
    let payloads: Vec<String> = (0..count).map(|n| format!("job-{n}")).collect();
    for payload in &payloads {
        pubsub
            .publish(TOPIC, payload.clone().into_bytes())
            .await
            .expect("publish");
    }
    let deadline = tokio::time::Instant::now() + ARRIVAL;
    while first.messages().len() + second.messages().len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {:?} + {:?} arrived",
            first.payloads(),
            second.payloads()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A copy of a message for the other member would have reached it before a sentinel.
    support::flush(pubsub, TOPIC, &[first, second]).await;
    let mut all = first.payloads();
    all.extend(second.payloads());
    all.sort();
    let mut want = payloads;
    want.sort();
    assert_eq!(all, want, "each message exactly once across the group");
    assert!(
        !first.messages().is_empty() && !second.messages().is_empty(),
        "both members receive: {} and {}",
        first.messages().len(),
        second.messages().len()
    );
}

fn deliver_subjects(subscriptions: &[&Subscription]) -> Vec<String> {
    subscriptions
        .iter()
        .map(|s| text(s.consumer(), "deliver_subject"))
        .collect()
}

#[tokio::test]
async fn durable_with_queue_group_twice_shares_one_consumer() {
    let server = support::server();
    support::stream(&server, STREAM, &[TOPIC]).await;
    let runtime = support::runtime();
    // A queue group is no subject token: a `.` in it works, as in nats.go.
    let metadata = [
        ("durableName", "workers"),
        ("queueGroupName", "orders.workers"),
    ];
    // Two replicas of the application: two components, same metadata.
    let replica_1 = init(&runtime, &server, &metadata).await;
    let replica_2 = init(&runtime, &server, &metadata).await;
    let (first, second) = (Recorder::new(), Recorder::new());
    let sub_1 = replica_1
        .subscribe(TOPIC, first.accept_all())
        .await
        .expect("first replica");
    let sub_2 = replica_2
        .subscribe(TOPIC, second.accept_all())
        .await
        .expect("second replica joins the durable");
    let stored = stored_consumer(&server, "workers").await.config;
    assert_eq!(
        deliver_subjects(&[&sub_1, &sub_2]),
        vec![stored.deliver_subject.clone().expect("push consumer"); 2],
        "one deliver subject for both"
    );
    assert_eq!(stored.deliver_group.as_deref(), Some("orders.workers"));
    assert_shared(&replica_1, &first, &second, 40).await;
    sub_1.stop().await.expect("stops");
    sub_2.stop().await.expect("stops");
    runtime.shutdown().await;
}

#[tokio::test]
async fn durable_with_queue_group_subscribed_at_once_shares_one_consumer() {
    // Two replicas starting together both find no durable and both create it: the loser
    // must end up on the winner's deliver subject, not on a subject nobody sends to.
    for round in 0..3 {
        let server = support::server();
        support::stream(&server, STREAM, &[TOPIC]).await;
        let runtime = support::runtime();
        let metadata = [("durableName", "racers"), ("queueGroupName", "racers")];
        let replica_1 = init(&runtime, &server, &metadata).await;
        let replica_2 = init(&runtime, &server, &metadata).await;
        let (first, second) = (Recorder::new(), Recorder::new());
        let (sub_1, sub_2) = tokio::join!(
            replica_1.subscribe(TOPIC, first.accept_all()),
            replica_2.subscribe(TOPIC, second.accept_all()),
        );
        let (sub_1, sub_2) = (
            sub_1.unwrap_or_else(|err| panic!("round {round}: first: {err}")),
            sub_2.unwrap_or_else(|err| panic!("round {round}: second: {err}")),
        );
        let stored = stored_consumer(&server, "racers").await.config;
        assert_eq!(
            deliver_subjects(&[&sub_1, &sub_2]),
            vec![stored.deliver_subject.clone().expect("push consumer"); 2],
            "round {round}: both on the consumer's deliver subject"
        );
        assert_shared(&replica_1, &first, &second, 40).await;
        sub_1.stop().await.expect("stops");
        sub_2.stop().await.expect("stops");
        runtime.shutdown().await;
    }
}

// ---- features and the consumer, field for field -----------------------------------------

#[tokio::test]
async fn features_report_bulk_publish_and_wildcards() {
    let server = support::server();
    let runtime = support::runtime();
    let pubsub = init(&runtime, &server, &[]).await;
    let features = pubsub.features().await.expect("features");
    assert!(features.iter().any(|f| f == "BULK_PUBSUB"), "{features:?}");
    assert!(
        features.iter().any(|f| f == "SUBSCRIBE_WILDCARDS"),
        "{features:?}"
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn every_consumer_key_reaches_the_server() {
    let server = support::server();
    support::stream(&server, STREAM, &[TOPIC]).await;
    let runtime = support::runtime();
    // Every consumer key, within 2.9.10's rules: maxDeliver > len(backOff), flow control
    // with a heartbeat >= 100ms, no queue group with heartbeats.
    let pubsub = init(
        &runtime,
        &server,
        &[
            ("durableName", "all-keys"),
            ("deliverPolicy", "sequence"),
            ("startSequence", "2"),
            ("ackPolicy", "all"),
            ("ackWait", "20s"),
            ("maxDeliver", "5"),
            ("backOff", "1s, 2s"),
            ("maxAckPending", "50"),
            ("replicas", "1"),
            ("memoryStorage", "true"),
            ("rateLimit", "8000000"),
            ("heartbeat", "500ms"),
            ("flowControl", "true"),
        ],
    )
    .await;
    publish(&pubsub, TOPIC, &["seq-1", "seq-2"]).await;
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe(TOPIC, recorder.accept_all())
        .await
        .expect("subscribes with every consumer key");
    publish(&pubsub, TOPIC, &["seq-3"]).await;
    wait_for(&recorder, "seq-3").await;
    assert_eq!(
        recorder.payloads(),
        ["seq-2", "seq-3"],
        "heartbeats and flow-control requests never reach the application"
    );

    let info = stored_consumer(&server, "all-keys").await;
    let config = info.config;
    assert_eq!(config.durable_name.as_deref(), Some("all-keys"));
    assert_eq!(
        config.deliver_policy,
        DeliverPolicy::ByStartSequence { start_sequence: 2 }
    );
    assert_eq!(config.ack_policy, AckPolicy::All);
    // The reference sends ackWait 20s too; JetStream replaces it by the first backoff step.
    assert_eq!(config.ack_wait, Duration::from_secs(1));
    assert_eq!(config.max_deliver, 5);
    assert_eq!(
        config.backoff,
        [Duration::from_secs(1), Duration::from_secs(2)]
    );
    assert_eq!(config.max_ack_pending, 50);
    assert_eq!(config.filter_subject, TOPIC);
    assert_eq!(config.rate_limit, 8_000_000);
    assert_eq!(config.idle_heartbeat, Duration::from_millis(500));
    assert!(config.flow_control);
    assert_eq!(config.num_replicas, 1);
    assert!(config.memory_storage);
    assert_eq!(config.deliver_group, None);
    assert_eq!(config.replay_policy, consumer::ReplayPolicy::Instant);
    assert!(
        config
            .deliver_subject
            .as_deref()
            .is_some_and(|s| s.starts_with("_INBOX.")),
        "a fresh inbox, as nats.go's NewInbox: {:?}",
        config.deliver_subject
    );
    subscription.stop().await.expect("stops");
    runtime.shutdown().await;
}

#[tokio::test]
async fn unset_consumer_keys_leave_the_server_defaults() {
    let server = support::server();
    support::stream(&server, STREAM, &[TOPIC]).await;
    let runtime = support::runtime();
    // ackWait alone (no backOff to override it), queue group for the deliver group.
    let pubsub = init(
        &runtime,
        &server,
        &[
            ("durableName", "defaults"),
            ("queueGroupName", "group"),
            ("ackWait", "7s"),
        ],
    )
    .await;
    let subscription = pubsub
        .subscribe(TOPIC, Recorder::new().accept_all())
        .await
        .expect("subscribes");
    let config = stored_consumer(&server, "defaults").await.config;
    assert_eq!(config.deliver_policy, DeliverPolicy::All);
    assert_eq!(config.ack_policy, AckPolicy::Explicit);
    assert_eq!(config.ack_wait, Duration::from_secs(7));
    assert_eq!(config.max_deliver, -1, "server default: unlimited");
    assert!(config.backoff.is_empty());
    assert_eq!(config.max_ack_pending, 1_000, "server default");
    assert_eq!(config.deliver_group.as_deref(), Some("group"));
    assert_eq!(config.rate_limit, 0);
    assert_eq!(config.idle_heartbeat, Duration::ZERO);
    assert!(!config.flow_control);
    assert!(!config.memory_storage);
    subscription.stop().await.expect("stops");
    runtime.shutdown().await;
}

#[tokio::test]
async fn durable_without_queue_group_subscribed_at_once_never_listens_on_a_dead_subject() {
    // Two replicas without a queue group starting together. Whoever subscribes listens on
    // the durable's deliver subject and receives; whoever is refused gets the binding error.
    // (Both may succeed when the second reads the durable before the first listens, exactly
    // as with nats.go's AddConsumer + Bind: JetStream reports no subscriber count to check.)
    for round in 0..3 {
        let server = support::server();
        support::stream(&server, STREAM, &[TOPIC]).await;
        let runtime = support::runtime();
        let metadata = [("durableName", "loner")];
        let replica_1 = init(&runtime, &server, &metadata).await;
        let replica_2 = init(&runtime, &server, &metadata).await;
        let (first, second) = (Recorder::new(), Recorder::new());
        let (sub_1, sub_2) = tokio::join!(
            replica_1.subscribe(TOPIC, first.accept_all()),
            replica_2.subscribe(TOPIC, second.accept_all()),
        );
        let stored = stored_consumer(&server, "loner")
            .await
            .config
            .deliver_subject
            .expect("push consumer");
        let mut listening = Vec::new();
        for (result, recorder) in [(sub_1, first), (sub_2, second)] {
            match result {
                Ok(subscription) => {
                    assert_eq!(
                        text(subscription.consumer(), "deliver_subject"),
                        stored,
                        "round {round}: listens on the consumer's deliver subject"
                    );
                    listening.push((subscription, recorder));
                }
                Err(err) => assert!(
                    err.to_string()
                        .starts_with("consumer is already bound to a subscription"),
                    "round {round}: {err}"
                ),
            }
        }
        assert!(!listening.is_empty(), "round {round}: one subscriber binds");
        publish(&replica_1, TOPIC, &["for-the-listener"]).await;
        for (subscription, recorder) in listening {
            wait_for(&recorder, "for-the-listener").await;
            subscription.stop().await.expect("stops");
        }
        runtime.shutdown().await;
    }
}
