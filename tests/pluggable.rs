//! `jetstream-pubsub serve` as daprd sees it: a gRPC client of our own plays daprd over the
//! real Unix socket (reflection, the instance header, Init, Features, Publish, BulkPublish,
//! PullMessages with acks and nacks, Pause and Resume), against a real nats-server.

#[path = "support/daprd.rs"]
mod daprd;
mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use daprd::{Pull, Serve, init};
use jetstream_pubsub_host::nats_server::{NatsServer, ServerOptions};
use jetstream_pubsub_host::pluggable::proto::{
    BulkMessageEntry, BulkPublishRequest, FeaturesRequest, PauseRequest, PublishRequest,
    ResumeRequest,
};
use tonic::Code;

/// The metadata of the 2021 Dapr docs' Component YAML, plus what daprd adds.
fn docs_metadata<'a>(url: &'a str, durable: &'a str, queue: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("natsURL", url),
        ("durableName", durable),
        ("queueGroupName", queue),
        ("deliverAll", "true"),
        ("consumerID", "orders-app"),
        // Long enough that only an explicit answer can bring a message back in a test.
        ("ackWait", "60s"),
    ]
}

fn publish(topic: &str, data: &[u8]) -> PublishRequest {
    PublishRequest {
        data: data.to_vec(),
        pubsub_name: "orders-pubsub".into(),
        topic: topic.into(),
        metadata: HashMap::new(),
        content_type: String::new(),
    }
}

/// A CloudEvent as daprd builds it for a publish.
fn cloud_event(id: &str, data: &str) -> Vec<u8> {
    format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"orders-app","type":"com.dapr.event.sent","datacontenttype":"application/json","data":{data},"pubsubname":"orders-pubsub","topic":"orders.created"}}"#
    )
    .into_bytes()
}

async fn jetstream(server: &NatsServer) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(server.url()).await.expect("connects"))
}

/// The payloads the stream stored, in order.
async fn stored(server: &NatsServer, stream: &str) -> Vec<String> {
    let js = jetstream(server).await;
    let stream = js.get_stream(stream).await.expect("the stream exists");
    let last = stream
        .get_info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    let mut payloads = Vec::new();
    for sequence in 1..=last {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            payloads.push(String::from_utf8_lossy(&message.payload).into_owned());
        }
    }
    payloads
}

fn text(message: &jetstream_pubsub_host::pluggable::proto::PullMessagesResponse) -> String {
    String::from_utf8_lossy(&message.data).into_owned()
}

#[tokio::test]
async fn reflection_lists_the_pubsub_service_in_v1alpha_and_v1() {
    use tonic_reflection::pb::{v1, v1alpha};
    let serve = Serve::start(&[]);
    let channel = daprd::channel(serve.socket()).await;

    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1alpha reflection answers")
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"dapr.proto.components.v1.PubSub"),
        "{names:?}"
    );

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1 reflection answers")
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("not a service list: {answer:?}");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "dapr.proto.components.v1.PubSub")
    );
}

#[tokio::test]
async fn a_docs_component_publishes_bulk_publishes_and_delivers_with_acks() {
    let Stage {
        server,
        url,
        serve: _serve,
        mut dapr,
    } = stage().await;
    init(
        &mut dapr,
        &docs_metadata(&url, "orders-durable", "orders-workers"),
    )
    .await
    .expect("Init with the docs' metadata succeeds");
    let features = dapr
        .features(FeaturesRequest {})
        .await
        .expect("Features answers")
        .into_inner()
        .features;
    assert_eq!(features, vec!["BULK_PUBSUB", "SUBSCRIBE_WILDCARDS"]);

    dapr.publish(publish(
        "orders.created",
        &cloud_event("evt-1", r#"{"n":1}"#),
    ))
    .await
    .expect("Publish succeeds");
    let bulk = dapr
        .bulk_publish(BulkPublishRequest {
            entries: vec![
                BulkMessageEntry {
                    entry_id: "a".into(),
                    event: cloud_event("evt-2", r#"{"n":2}"#),
                    content_type: "application/cloudevents+json".into(),
                    metadata: HashMap::new(),
                },
                BulkMessageEntry {
                    entry_id: "b".into(),
                    event: b"not stored".to_vec(),
                    content_type: String::new(),
                    metadata: HashMap::from([("bad key".to_string(), "x".to_string())]),
                },
                BulkMessageEntry {
                    entry_id: "c".into(),
                    event: cloud_event("evt-3", r#"{"n":3}"#),
                    content_type: String::new(),
                    metadata: HashMap::new(),
                },
            ],
            pubsub_name: "orders-pubsub".into(),
            topic: "orders.created".into(),
            metadata: HashMap::new(),
        })
        .await
        .expect("BulkPublish answers OK")
        .into_inner();
    assert_eq!(bulk.failed_entries.len(), 1, "{bulk:?}");
    assert_eq!(bulk.failed_entries[0].entry_id, "b");
    assert_eq!(
        bulk.failed_entries[0].error,
        r#"invalid metadata: request metadata "bad key" cannot be sent as a NATS header: names must be printable ASCII without ':' or spaces"#
    );
    let stored = stored(&server, "ORDERS").await;
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert!(
        stored[0].contains("evt-1") && stored[1].contains("evt-2") && stored[2].contains("evt-3")
    );

    let mut pull = Pull::open(&mut dapr, "orders.*")
        .await
        .expect("the stream opens");
    let mut seen = Vec::new();
    let mut ids = BTreeSet::new();
    for _ in 0..3 {
        let message = pull.next().await;
        assert_eq!(
            message.topic_name, "orders.*",
            "the subscribed topic, as Dapr's"
        );
        assert_eq!(
            message.metadata.get("Topic").map(String::as_str),
            Some("orders.created")
        );
        assert!(
            ids.insert(message.id.clone()),
            "ids are unique: {}",
            message.id
        );
        seen.push(text(&message));
        pull.ack(&message).await;
    }
    assert_eq!(seen, stored, "delivered in stream order, unchanged");
    let consumer = support::consumer_info(&url, "ORDERS", "orders-durable")
        .await
        .unwrap();
    assert_eq!(
        consumer.config.deliver_group.as_deref(),
        Some("orders-workers")
    );
    let settled = wait_settled(&url, "ORDERS", "orders-durable").await;
    assert_eq!(settled.delivered.consumer_sequence, 3, "no redelivery");
}

/// The usual stage: a nats-server with the stream ORDERS (`orders.>`), a `serve` process, and
/// daprd's client for the component instance `orders-pubsub` (not initialised yet).
struct Stage {
    server: NatsServer,
    url: String,
    serve: Serve,
    dapr: daprd::Client,
}

async fn stage() -> Stage {
    let server = support::server();
    support::stream(&server, "ORDERS", &["orders.>"]).await;
    let serve = Serve::start(&[]);
    let dapr = serve.client("orders-pubsub").await;
    Stage {
        url: server.url(),
        server,
        serve,
        dapr,
    }
}

/// Waits until the consumer has nothing pending or unanswered.
async fn wait_settled(
    url: &str,
    stream: &str,
    consumer: &str,
) -> async_nats::jetstream::consumer::Info {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = support::consumer_info(url, stream, consumer).await;
        if let Some(info) = &info
            && info.num_pending == 0
            && info.num_ack_pending == 0
        {
            return info.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{consumer} did not settle: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes `m{n}` to `orders.created` for every `n` of `numbers`, one at a time.
async fn publish_numbered(dapr: &mut daprd::Client, numbers: std::ops::RangeInclusive<u32>) {
    for n in numbers {
        dapr.publish(publish("orders.created", format!("m{n}").as_bytes()))
            .await
            .unwrap();
    }
}

/// Receives and acknowledges `m{n}` for every `n` of `numbers` on `pull`, each once and
/// nothing else, long before the 60 s ack wait of [`docs_metadata`]: only released messages
/// come back that soon. Fails naming what came and the consumer's state; the consumer's
/// settled info otherwise.
async fn receive_released(
    pull: &mut Pull,
    url: &str,
    durable: &str,
    numbers: std::ops::RangeInclusive<u32>,
) -> async_nats::jetstream::consumer::Info {
    let want: BTreeSet<String> = numbers.map(|n| format!("m{n}")).collect();
    let started = Instant::now();
    let mut got = BTreeSet::new();
    while got.len() < want.len() {
        let Some(Ok(Some(message))) = pull.within(Duration::from_secs(30)).await else {
            let info = support::consumer_info(url, "ORDERS", durable).await;
            panic!("got only {got:?} of {want:?}; consumer: {info:?}");
        };
        got.insert(text(&message));
        pull.ack(&message).await;
    }
    assert_eq!(
        got, want,
        "nothing lost, nothing acknowledged delivered again"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the unanswered messages came back only after {:?}: they waited for the ack wait (60 s) instead of being released",
        started.elapsed()
    );
    wait_settled(url, "ORDERS", durable).await
}

#[tokio::test]
async fn the_cloud_event_id_deduplicates_every_dapr_publish() {
    let Stage {
        server,
        url: _url,
        serve: _serve,
        mut dapr,
    } = stage().await;
    init(&mut dapr, &[("natsURL", &server.url())])
        .await
        .unwrap();
    for _ in 0..2 {
        dapr.publish(publish(
            "orders.created",
            &cloud_event("evt-same", r#"{"status":"paid"}"#),
        ))
        .await
        .unwrap();
    }
    dapr.publish(publish(
        "orders.created",
        &cloud_event("evt-other", r#"{"status":"shipped"}"#),
    ))
    .await
    .unwrap();
    let stored = stored(&server, "ORDERS").await;
    assert_eq!(
        stored.len(),
        2,
        "the same event twice is stored once: {stored:?}"
    );
}

#[tokio::test]
async fn a_failed_message_comes_back_after_the_backoff_and_maxdeliver_ends_it() {
    let Stage {
        server: _server,
        url,
        serve: _serve,
        mut dapr,
    } = stage().await;
    init(
        &mut dapr,
        &[
            ("natsURL", &url),
            ("durableName", "retrying"),
            ("backOff", "400ms"),
            ("maxDeliver", "2"),
        ],
    )
    .await
    .unwrap();
    let mut pull = Pull::open(&mut dapr, "orders.created").await.unwrap();
    dapr.publish(publish("orders.created", b"fails"))
        .await
        .unwrap();
    let first = pull.next().await;
    let nacked = Instant::now();
    pull.nack(&first, "handler failed").await;
    let again = pull.next().await;
    assert_eq!(text(&again), "fails");
    assert_ne!(
        again.id, first.id,
        "a redelivery is a new message on the stream"
    );
    assert!(
        nacked.elapsed() >= Duration::from_millis(350),
        "redelivered after {:?}, before the backOff step",
        nacked.elapsed()
    );
    pull.nack(&again, "handler failed again").await;
    // maxDeliver 2: nothing more, and the consumer has nothing left to answer.
    dapr.publish(publish("orders.created", b"next"))
        .await
        .unwrap();
    assert_eq!(text(&pull.next().await), "next");
}

#[tokio::test]
async fn two_instances_on_one_socket_and_two_streams_stay_apart() {
    let server = support::server();
    support::stream(&server, "ORDERS", &["orders.>"]).await;
    support::stream(&server, "PAYMENTS", &["payments.>"]).await;
    let serve = Serve::start(&[]);
    let url = server.url();
    let mut billing = serve.client("billing").await;
    let mut shipping = serve.client("shipping").await;
    init(
        &mut billing,
        &[("natsURL", &url), ("durableName", "billing")],
    )
    .await
    .unwrap();
    init(
        &mut shipping,
        &[("natsURL", &url), ("durableName", "shipping")],
    )
    .await
    .unwrap();

    let mut billing_orders = Pull::open(&mut billing, "orders.created").await.unwrap();
    let mut billing_payments = Pull::open(&mut billing, "payments.done").await.unwrap();
    // The header picks the instance: shipping has its own durable, so it gets every order too.
    let mut shipping_orders = Pull::open(&mut shipping, "orders.created").await.unwrap();
    billing
        .publish(publish("orders.created", b"order-1"))
        .await
        .unwrap();
    shipping
        .publish(publish("payments.done", b"payment-1"))
        .await
        .unwrap();

    let order = billing_orders.next().await;
    assert_eq!(text(&order), "order-1");
    billing_orders.ack(&order).await;
    let payment = billing_payments.next().await;
    assert_eq!(text(&payment), "payment-1");
    billing_payments.ack(&payment).await;
    let order = shipping_orders.next().await;
    assert_eq!(text(&order), "order-1");
    shipping_orders.ack(&order).await;

    for durable in ["billing", "shipping"] {
        assert!(
            support::consumer_info(&url, "ORDERS", durable)
                .await
                .is_some(),
            "{durable}"
        );
    }
    // A stream for an instance never initialised is refused, naming it.
    let mut stranger = serve.client("stranger").await;
    let refused = Pull::open(&mut stranger, "orders.created")
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        refused.message(),
        r#"component instance "stranger" is not initialised: call Init first"#
    );
}

#[tokio::test]
async fn a_cancelled_stream_gives_its_messages_back_at_once_and_the_next_resumes_the_durable() {
    let Stage {
        server: _server,
        url,
        serve: _serve,
        mut dapr,
    } = stage().await;
    init(&mut dapr, &docs_metadata(&url, "resumed", ""))
        .await
        .unwrap();
    let mut pull = Pull::open(&mut dapr, "orders.created").await.unwrap();
    publish_numbered(&mut dapr, 1..=5).await;
    let first = pull.next().await;
    assert_eq!(text(&first), "m1");
    pull.ack(&first).await;
    let unanswered = pull.next().await;
    assert_eq!(text(&unanswered), "m2");
    // Two more while the stream is open: the host holds them, untaken by the app.
    publish_numbered(&mut dapr, 6..=7).await;
    // daprd cancels a stream when it unsubscribes: m2 is with the app, unanswered.
    // (Nothing is published while no stream is open: in about one run of ten, such a
    // message was sent by nats-server 2.9.10 to the deliver subject while nobody listened
    // on it, and came back only after the ack wait.)
    drop(pull);
    let mut pull = Pull::open(&mut dapr, "orders.created").await.unwrap();
    publish_numbered(&mut dapr, 8..=8).await;
    // m1 was acked: it must not come again; m2 to m7 were released, m8 is new.
    let settled = receive_released(&mut pull, &url, "resumed", 2..=8).await;
    assert_eq!(settled.ack_floor.stream_sequence, 8);
}

/// daprd re-subscribes by cancelling a stream and opening the next at once, while the
/// cancelled one is still letting go of its durable: the next one takes it over every time,
/// and gets the messages.
#[tokio::test]
async fn a_stream_opened_as_the_last_is_cancelled_takes_over_its_durable() {
    let Stage {
        server: _server,
        url,
        serve: _serve,
        mut dapr,
    } = stage().await;
    init(&mut dapr, &docs_metadata(&url, "takeover", ""))
        .await
        .unwrap();
    let mut pull = Pull::open(&mut dapr, "orders.created").await.unwrap();
    for round in 1..=10 {
        // A message with the app, unanswered, which the cancelled stream must hand back
        // before it lets go: that is what takes it a while.
        publish_numbered(&mut dapr, round..=round).await;
        let _unanswered = pull.next().await;
        drop(pull);
        pull = Pull::open(&mut dapr, "orders.created")
            .await
            .unwrap_or_else(|status| panic!("reopening, round {round}: {status:?}"));
    }
    let settled = receive_released(&mut pull, &url, "takeover", 1..=10).await;
    assert_eq!(settled.ack_floor.stream_sequence, 10);
    // A second stream while this one goes on is a second listener on a bound durable.
    let refused = Pull::open(&mut dapr, "orders.created")
        .await
        .err()
        .expect("a second listener is refused");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("already bound"),
        "{}",
        refused.message()
    );
    drop(pull);
}

#[tokio::test]
async fn pause_stops_new_deliveries_and_resume_restarts_them() {
    let Stage {
        server: _server,
        url,
        serve: _serve,
        mut dapr,
    } = stage().await;
    init(&mut dapr, &[("natsURL", &url), ("durableName", "pausing")])
        .await
        .unwrap();
    let mut pull = Pull::open(&mut dapr, "orders.created").await.unwrap();
    dapr.publish(publish("orders.created", b"before"))
        .await
        .unwrap();
    let in_flight = pull.next().await;
    dapr.pause(PauseRequest {}).await.expect("Pause answers OK");
    // A message in flight is still answered while paused.
    pull.ack(&in_flight).await;
    dapr.publish(publish("orders.created", b"while-paused"))
        .await
        .unwrap();
    assert!(
        pull.within(Duration::from_millis(1500)).await.is_none(),
        "a paused stream delivered"
    );
    let info = support::consumer_info(&url, "ORDERS", "pausing")
        .await
        .unwrap();
    assert_eq!(
        info.ack_floor.stream_sequence, 1,
        "the in-flight message was acked while paused"
    );
    dapr.resume(ResumeRequest {})
        .await
        .expect("Resume answers OK");
    let after = pull.next().await;
    assert_eq!(text(&after), "while-paused");
    pull.ack(&after).await;
    wait_settled(&url, "ORDERS", "pausing").await;
}

/// An Init with `bad` metadata, refused as invalid: the refusal.
async fn init_refused(dapr: &mut daprd::Client, bad: &[(&str, String)]) -> tonic::Status {
    let refused = init(
        dapr,
        &bad.iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
    .await
    .expect_err("bad metadata is refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    refused
}

#[tokio::test]
async fn init_errors_carry_the_cli_text_and_code_and_leave_no_instance() {
    let server = support::server();
    let serve = Serve::start(&[]);
    let mut dapr = serve.client("orders-pubsub").await;
    let bad = [
        ("natsURL", server.url()),
        ("maxAckPending", "lots".to_string()),
    ];
    let refused = init_refused(&mut dapr, &bad).await;
    // The same text as the CLI prints after `error: `.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_jetstream-pubsub"))
        .args(["publish", "--topic", "t", "--data", "x"])
        .env_remove("JETSTREAM_PUBSUB_LOG")
        .args(
            bad.iter()
                .flat_map(|(k, v)| ["--metadata".to_string(), format!("{k}={v}")]),
        )
        .output()
        .expect("the CLI runs");
    let printed = String::from_utf8_lossy(&cli.stderr);
    assert_eq!(printed.trim_end(), format!("error: {}", refused.message()));
    assert!(
        refused
            .message()
            .contains(r#"cannot parse 'maxAckPending' as int: strconv.ParseInt: parsing "lots""#),
        "{}",
        refused.message()
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("nats://{}", closed.local_addr().unwrap());
    drop(closed);
    let refused = init(&mut dapr, &[("natsURL", &nowhere)])
        .await
        .expect_err("no server");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");

    let publish_refused = dapr
        .publish(publish("orders.created", b"x"))
        .await
        .unwrap_err();
    assert_eq!(publish_refused.code(), Code::FailedPrecondition);
    assert!(
        publish_refused.message().contains("not initialised"),
        "{publish_refused:?}"
    );

    // A failed Init leaves a working instance of that name as it was.
    support::stream(&server, "ORDERS", &["orders.>"]).await;
    init(&mut dapr, &[("natsURL", &server.url())])
        .await
        .unwrap();
    init_refused(&mut dapr, &bad).await;
    dapr.publish(publish("orders.created", b"still-there"))
        .await
        .expect("the earlier instance still publishes");
}

#[tokio::test]
async fn a_second_init_replaces_the_instance_and_ends_its_streams() {
    let Stage {
        server: _server,
        url,
        serve: _serve,
        mut dapr,
    } = stage().await;
    init(&mut dapr, &[("natsURL", &url), ("durableName", "first")])
        .await
        .unwrap();
    let mut old = Pull::open(&mut dapr, "orders.created").await.unwrap();
    init(&mut dapr, &[("natsURL", &url), ("durableName", "second")])
        .await
        .unwrap();
    match old.within(Duration::from_secs(10)).await {
        Some(Ok(None)) => {}
        other => panic!("the replaced instance's stream did not end cleanly: {other:?}"),
    }
    let mut new = Pull::open(&mut dapr, "orders.created").await.unwrap();
    dapr.publish(publish("orders.created", b"after"))
        .await
        .unwrap();
    let message = new.next().await;
    assert_eq!(text(&message), "after");
    new.ack(&message).await;
    assert!(
        support::consumer_info(&url, "ORDERS", "second")
            .await
            .is_some()
    );
}

#[tokio::test]
async fn sigterm_with_messages_in_flight_loses_none() {
    let server = support::server();
    support::stream(&server, "ORDERS", &["orders.>"]).await;
    let url = server.url();
    let serve = Serve::start(&[]);
    let socket = serve.socket().to_path_buf();
    let mut dapr = serve.client("orders-pubsub").await;
    init(&mut dapr, &docs_metadata(&url, "survivor", ""))
        .await
        .unwrap();
    let mut pull = Pull::open(&mut dapr, "orders.created").await.unwrap();
    publish_numbered(&mut dapr, 1..=20).await;
    let acked = pull.next().await;
    pull.ack(&acked).await;
    let in_flight = pull.next().await;
    assert_eq!(text(&in_flight), "m2");
    let (status, stderr) = serve.terminate().await;
    assert!(
        status.success(),
        "SIGTERM ends with exit 0: {status:?}\n{stderr}"
    );
    assert!(!socket.exists(), "the socket is removed on exit");
    // The stream ended gracefully (OK), not with an error.
    match pull.within(Duration::from_secs(5)).await {
        Some(Ok(None)) | None => {}
        Some(Ok(Some(message))) => {
            // Messages queued before the end may still arrive; none may be lost.
            assert!(text(&message).starts_with('m'));
        }
        Some(Err(status)) => panic!("the stream failed: {status:?}"),
    }

    let serve = Serve::start(&[]);
    let mut dapr = serve.client("orders-pubsub").await;
    init(&mut dapr, &docs_metadata(&url, "survivor", ""))
        .await
        .unwrap();
    let mut pull = Pull::open(&mut dapr, "orders.created").await.unwrap();
    let settled = receive_released(&mut pull, &url, "survivor", 2..=20).await;
    assert_eq!(settled.ack_floor.stream_sequence, 20);
}

#[tokio::test]
async fn two_serve_processes_compete_on_one_durable_and_queue_group() {
    let server = support::server();
    support::stream(&server, "ORDERS", &["orders.>"]).await;
    let url = server.url();
    let metadata = docs_metadata(&url, "shared", "workers");
    let (one, two) = (Serve::start(&[]), Serve::start(&[]));
    let mut first = one.client("orders-pubsub").await;
    let mut second = two.client("orders-pubsub").await;
    init(&mut first, &metadata).await.unwrap();
    init(&mut second, &metadata).await.unwrap();
    let mut pulls = [
        Pull::open(&mut first, "orders.created").await.unwrap(),
        Pull::open(&mut second, "orders.created").await.unwrap(),
    ];
    for n in 0..40 {
        first
            .publish(publish("orders.created", format!("m{n}").as_bytes()))
            .await
            .unwrap();
    }
    let mut by_replica = [Vec::new(), Vec::new()];
    let deadline = Instant::now() + Duration::from_secs(30);
    while by_replica[0].len() + by_replica[1].len() < 40 {
        assert!(Instant::now() < deadline, "got {by_replica:?}");
        for (pull, got) in pulls.iter_mut().zip(by_replica.iter_mut()) {
            if let Some(Ok(Some(message))) = pull.within(Duration::from_millis(50)).await {
                got.push(text(&message));
                pull.ack(&message).await;
            }
        }
    }
    let all: BTreeSet<_> = by_replica.iter().flatten().cloned().collect();
    assert_eq!(all.len(), 40, "each message once: {by_replica:?}");
    assert!(
        !by_replica[0].is_empty() && !by_replica[1].is_empty(),
        "both replicas took a share: {} and {}",
        by_replica[0].len(),
        by_replica[1].len()
    );
    let settled = wait_settled(&url, "ORDERS", "shared").await;
    assert_eq!(
        settled.delivered.consumer_sequence, 40,
        "no message was delivered twice"
    );
}

#[tokio::test]
async fn a_message_larger_than_daprd_can_receive_is_terminated_and_the_stream_goes_on() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/configs/large-payloads.conf");
    let server = ServerOptions::jetstream()
        .config_file(config)
        .start()
        .expect("nats-server starts");
    support::stream(&server, "ORDERS", &["orders.>"]).await;
    let url = server.url();
    let serve = Serve::start(&[]);
    let mut dapr = serve.client("orders-pubsub").await;
    init(&mut dapr, &[("natsURL", &url), ("durableName", "sized")])
        .await
        .unwrap();
    let mut pull = Pull::open(&mut dapr, "orders.created").await.unwrap();
    let large = vec![b'x'; 5 * 1024 * 1024];
    dapr.publish(publish("orders.created", &large))
        .await
        .expect("a 5 MiB publish is accepted");
    dapr.publish(publish("orders.created", b"small"))
        .await
        .unwrap();
    let message = pull.next().await;
    assert_eq!(
        text(&message),
        "small",
        "the large message is not sent to daprd"
    );
    pull.ack(&message).await;
    let settled = wait_settled(&url, "ORDERS", "sized").await;
    assert_eq!(
        settled.delivered.consumer_sequence, 2,
        "the large one was not redelivered"
    );
    serve.wait_for_stderr("larger than daprd can receive").await;
}

#[tokio::test]
async fn an_answer_for_an_unknown_id_is_ignored() {
    let Stage {
        server,
        url: _url,
        serve,
        mut dapr,
    } = stage().await;
    init(&mut dapr, &[("natsURL", &server.url())])
        .await
        .unwrap();
    let mut pull = Pull::open(&mut dapr, "orders.created").await.unwrap();
    pull.answer("no-such-id", None).await;
    pull.answer("12345", Some("nope")).await;
    dapr.publish(publish("orders.created", b"still-works"))
        .await
        .unwrap();
    let message = pull.next().await;
    assert_eq!(text(&message), "still-works");
    pull.ack(&message).await;
    serve.wait_for_stderr("ignored an answer").await;
}

#[tokio::test]
async fn a_live_socket_is_refused_and_a_stale_one_replaced() {
    let serve = Serve::start(&[]);
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_jetstream-pubsub"))
        .arg("serve")
        .arg("--socket")
        .arg(serve.socket())
        .output()
        .expect("the CLI runs");
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another process is serving on"), "{stderr}");
    assert!(serve.socket().exists(), "the live socket is left alone");

    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("jetstream-wasm.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_jetstream-pubsub"));
    command
        .arg("serve")
        .env("DAPR_COMPONENTS_SOCKETS_FOLDER", dir.path());
    let replaced = Serve::spawn(&mut command, stale.clone());
    assert!(
        replaced.stderr().contains(&stale.display().to_string()),
        "{}",
        replaced.stderr()
    );
    let mut dapr = replaced.client("x").await;
    dapr.ping(jetstream_pubsub_host::pluggable::proto::PingRequest {})
        .await
        .expect("the new server answers on the old path");
}
