//! What an operator sees of a long-running `jetstream-pubsub`: `/metrics` scraped with a
//! real HTTP client after a known workload and read whole by a Prometheus text-format
//! parser, `/healthz` and `/readyz` while the NATS server goes away and comes back, and the
//! log lines about one message, in JSON.

#[path = "support/daprd.rs"]
mod daprd;
mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jetstream_pubsub_host::pluggable::proto::{
    BulkMessageEntry, BulkPublishRequest, PublishRequest,
};
use support::app::{App, reply};
use support::metrics::{Scrape, recorder};
use support::process::Running;

const BIN: &str = env!("CARGO_BIN_EXE_jetstream-pubsub");

/// How long a count or a state may take to show.
const WAIT: Duration = Duration::from_secs(30);

/// A GET with hyper's client: the status and the body.
async fn get(url: &str) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client
        .get(url.parse().expect("a URL"))
        .await
        .unwrap_or_else(|err| panic!("GET {url}: {err}"));
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).expect("UTF-8"))
}

/// `/metrics` at `address`, parsed whole.
async fn scrape(address: &str) -> Scrape {
    let (status, body) = get(&format!("http://{address}/metrics")).await;
    assert_eq!(status, 200, "{body}");
    Scrape::parse(body)
}

/// Polls until `check` holds, or fails with `what`.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(done) = check().await {
            return done;
        }
        assert!(Instant::now() < deadline, "{what} within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribe_counts_a_known_workload_and_readyz_follows_the_server() {
    let mut server = support::server();
    support::stream(&server, "OPS", &["ops.>"]).await;
    // "retry" fails once, "drop" is refused for good (404), the rest succeed.
    let app = App::start(|request, nth| match (request.body.as_str(), nth) {
        ("retry", 1) => reply(500, ""),
        ("drop", _) => reply(404, ""),
        _ => reply(200, ""),
    })
    .await;
    support::publish_plain(&server, "ops.eu", &["a", "b", "c", "retry", "drop"]).await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pubsub.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\nspec:\n  type: pubsub.jetstream\n  version: v1\n  metadata:\n  - name: natsURL\n    value: \"{}\"\n  - name: durableName\n    value: ops\n  - name: ackWait\n    value: 1s\n",
            server.url()
        ),
    )
    .unwrap();
    let subscriber = Running::spawn(
        Command::new(BIN)
            .args(["--log-format", "json", "subscribe", "--component"])
            .arg(&manifest)
            .args(["--topic", "ops.*", "--app-url", &app.url("/ops")])
            .args(["--metrics", "127.0.0.1:0"]),
        "subscribe",
    );
    let address = subscriber.metrics_address().await;

    let topic = [("topic", "ops.*")];
    let answered = |answer: &'static str| [("topic", "ops.*"), ("answer", answer)];
    let metrics = eventually("every message answered", async || {
        let metrics = scrape(&address).await;
        let answers = metrics.value("jetstream_pubsub_answered_total", &answered("ack"))
            + metrics.value("jetstream_pubsub_answered_total", &answered("term"));
        (answers == 5.0).then_some(metrics)
    })
    .await;
    let body = &metrics.body;
    // Five messages, one of them twice (its retry), all answered.
    for (metric, count) in [
        ("jetstream_pubsub_delivered_total", 6.0),
        ("jetstream_pubsub_redelivered_total", 1.0),
        ("jetstream_pubsub_handler_duration_seconds_count", 6.0),
        ("jetstream_pubsub_deliveries_in_flight", 0.0),
    ] {
        assert_eq!(metrics.value(metric, &topic), count, "{metric}: {body}");
    }
    for (answer, count) in [("ack", 4.0), ("nak", 1.0), ("term", 1.0), ("none", 0.0)] {
        assert_eq!(
            metrics.value("jetstream_pubsub_answered_total", &answered(answer)),
            count,
            "{answer}: {body}"
        );
    }
    assert_eq!(metrics.value("jetstream_pubsub_subscriptions", &[]), 1.0);
    // The publisher instance and the subscription's.
    assert_eq!(
        metrics.value("jetstream_pubsub_component_instances", &[]),
        2.0,
        "{body}"
    );
    assert_eq!(
        metrics.value(
            "jetstream_pubsub_component_traps_total",
            &[("role", "subscription")]
        ),
        0.0
    );
    assert!(
        metrics
            .scrape
            .docs
            .contains_key("jetstream_pubsub_delivered_total"),
        "every metric is described: {body}"
    );
    // Labels stay bounded: the concrete subject is never a label value.
    assert!(!body.contains("ops.eu"), "{body}");

    // The log line about the dropped message says which one it was.
    let log = subscriber.stderr();
    let dropped = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| {
            line["fields"]["message"] == "the app did not accept the message"
                && line["fields"]["decided"] == "Drop"
        })
        .unwrap_or_else(|| panic!("a JSON line about the dropped message: {log}"));
    let span = &dropped["span"];
    assert_eq!(span["name"], "message", "{dropped}");
    assert_eq!(span["subject"], "ops.eu", "{dropped}");
    assert_eq!(span["stream_seq"], 5, "{dropped}");
    assert_eq!(span["delivered"], 1, "{dropped}");
    assert!(span["consumer_seq"].as_u64().is_some(), "{dropped}");

    // Health: up while the process runs; ready only while the server is there.
    assert_eq!(
        get(&format!("http://{address}/healthz")).await,
        (200, "ok\n".into())
    );
    assert_eq!(
        get(&format!("http://{address}/readyz")).await,
        (200, "ready\n".into())
    );
    server.stop();
    let reason = eventually("/readyz answers 503", async || {
        let (status, body) = get(&format!("http://{address}/readyz")).await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(
        reason.starts_with(&format!(
            "the NATS connection to nats://127.0.0.1:{} is down",
            server.port()
        )),
        "{reason}"
    );
    assert_eq!(get(&format!("http://{address}/healthz")).await.0, 200);
    server.start_again().expect("the server starts again");
    eventually("/readyz answers 200 again", async || {
        (get(&format!("http://{address}/readyz")).await.0 == 200).then_some(())
    })
    .await;
    let metrics = scrape(&address).await;
    assert_eq!(
        metrics.value("jetstream_pubsub_nats_reconnects_total", &[]),
        1.0,
        "{}",
        metrics.body
    );

    let (status, _) = subscriber.terminate().await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_counts_publishes_by_outcome_and_names_the_component_instance() {
    let server = support::server();
    support::stream(&server, "ORD", &["ord.>"]).await;
    let serve = daprd::Serve::start(&["--metrics", "127.0.0.1:0"]);
    let address = serve.metrics_address().await;
    let mut dapr = serve.client("orders-pubsub").await;
    daprd::init(&mut dapr, &[("natsURL", &server.url())])
        .await
        .expect("Init succeeds");
    let event = |id: &str| {
        format!(r#"{{"specversion":"1.0","id":"{id}","source":"app","type":"t","data":{{}}}}"#)
            .into_bytes()
    };
    let publish = |topic: &str, data: Vec<u8>| PublishRequest {
        data,
        pubsub_name: "orders-pubsub".into(),
        topic: topic.into(),
        metadata: HashMap::new(),
        content_type: "application/cloudevents+json".into(),
    };
    for id in ["e1", "e2", "e3", "e1"] {
        dapr.publish(publish("ord.created", event(id)))
            .await
            .expect("Publish succeeds");
    }
    // No stream listens there.
    let failed = dapr
        .publish(publish("nowhere", event("e9")))
        .await
        .expect_err("nothing stores it");
    let failed_outcome = match failed.code() {
        tonic::Code::Unavailable => "failed_retriable",
        _ => "failed_terminal",
    };
    dapr.bulk_publish(BulkPublishRequest {
        entries: vec![
            BulkMessageEntry {
                entry_id: "ok".into(),
                event: event("e4"),
                content_type: "application/cloudevents+json".into(),
                metadata: HashMap::new(),
            },
            BulkMessageEntry {
                entry_id: "refused".into(),
                event: b"x".to_vec(),
                content_type: String::new(),
                metadata: HashMap::from([("bad key".to_string(), "x".to_string())]),
            },
        ],
        pubsub_name: "orders-pubsub".into(),
        topic: "ord.created".into(),
        metadata: HashMap::new(),
    })
    .await
    .expect("BulkPublish answers");

    let metrics = scrape(&address).await;
    let body = &metrics.body;
    let published = |topic: &'static str, outcome: &'static str| {
        metrics.value(
            "jetstream_pubsub_published_total",
            &[
                ("component", "orders-pubsub"),
                ("topic", topic),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(published("ord.created", "acked"), 3.0, "{body}");
    assert_eq!(published("ord.created", "duplicate"), 1.0, "{body}");
    assert_eq!(
        published("nowhere", failed_outcome),
        1.0,
        "{failed:?} {body}"
    );
    assert_eq!(
        published("nowhere", "acked") + published("nowhere", "duplicate"),
        0.0
    );
    let bulk = |outcome: &'static str| {
        metrics.value(
            "jetstream_pubsub_bulk_entries_total",
            &[
                ("component", "orders-pubsub"),
                ("topic", "ord.created"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(bulk("acked"), 1.0, "{body}");
    assert_eq!(bulk("failed_terminal"), 1.0, "{body}");
    assert_eq!(
        metrics.value(
            "jetstream_pubsub_publish_duration_seconds_count",
            &[("component", "orders-pubsub"), ("topic", "ord.created")]
        ),
        4.0,
        "{body}"
    );
    assert_eq!(
        metrics.value(
            "jetstream_pubsub_component_instances",
            &[("component", "orders-pubsub")]
        ),
        1.0,
        "{body}"
    );
    assert_eq!(
        get(&format!("http://{address}/readyz")).await,
        (200, "ready\n".into())
    );
    drop(dapr);
    let (status, _) = serve.terminate().await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_refusals_are_counted_by_rule() {
    let server = support::server();
    // The flags fix the policy for every instance: the server the YAML names is not on it.
    let serve = daprd::Serve::start(&["--metrics", "127.0.0.1:0", "--allow-server", "127.0.0.1:1"]);
    let address = serve.metrics_address().await;
    let mut dapr = serve.client("refused").await;
    let refused = daprd::init(&mut dapr, &[("natsURL", &server.url())])
        .await
        .expect_err("the sandbox refuses the server");
    assert!(
        refused
            .message()
            .contains("not a server the sandbox allows (allow-server)"),
        "{refused:?}"
    );
    let metrics = scrape(&address).await;
    assert_eq!(
        metrics.value(
            "jetstream_pubsub_sandbox_refusals_total",
            &[("rule", "allow-server")]
        ),
        1.0,
        "{}",
        metrics.body
    );
    drop(dapr);
    let (status, _) = serve.terminate().await;
    assert!(status.success(), "{status:?}");
}

/// Callers of one `PubSub` at once, each on a task of its own as a sidecar's requests are,
/// spread over several publisher instances; each caller's messages are stored in its order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_spread_over_publishers_and_each_keeps_its_order() {
    const CALLERS: usize = 16;
    const EACH: usize = 40;
    let handle = recorder();
    let server = support::server();
    support::stream(&server, "POOL", &["pool.>"]).await;
    // Named, so this test's figures are its own whatever else the process records.
    let runtime = support::runtime().named("publishers-test");
    let pubsub = std::sync::Arc::new(
        runtime
            .pubsub(support::metadata(&[("natsURL", &server.url())]))
            .await
            .expect("init succeeds"),
    );
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..CALLERS {
        let pubsub = pubsub.clone();
        callers.spawn(async move {
            let mut sequences = Vec::new();
            for n in 0..EACH {
                let ack = pubsub
                    .publish(
                        &format!("pool.c{caller}"),
                        format!("{caller}-{n}").into_bytes(),
                    )
                    .await
                    .expect("publish succeeds");
                sequences.push(ack.sequence);
            }
            (caller, sequences)
        });
    }
    let client = async_nats::connect(server.url()).await.unwrap();
    let stream = async_nats::jetstream::new(client)
        .get_stream("POOL")
        .await
        .unwrap();
    while let Some(joined) = callers.join_next().await {
        let (caller, sequences) = joined.expect("the caller ran");
        for (n, sequence) in sequences.iter().enumerate() {
            let stored = stream.get_raw_message(*sequence).await.unwrap();
            assert_eq!(
                stored.payload,
                format!("{caller}-{n}").as_bytes(),
                "caller {caller}'s message {n} at sequence {sequence}"
            );
        }
        assert!(
            sequences.windows(2).all(|pair| pair[0] < pair[1]),
            "caller {caller}'s messages were stored out of its order: {sequences:?}"
        );
    }
    let instances = Scrape::parse(handle.render()).value(
        "jetstream_pubsub_component_instances",
        &[("component", "publishers-test")],
    );
    // One per worker at most (4 here), and more than one: the callers did not all queue
    // behind the first.
    assert!(
        (2.0..=4.0).contains(&instances),
        "{instances} publisher instances"
    );
    pubsub.close().await.expect("close succeeds");
    let after_close = pubsub
        .publish("pool.c0", b"late".to_vec())
        .await
        .expect_err("closed");
    assert_eq!(after_close.to_string(), "component is closed");
}
