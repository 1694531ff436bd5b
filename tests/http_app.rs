//! `jetstream-pubsub subscribe --app-url`: messages delivered to a real HTTP app started by
//! the test, through the real component in wasmtime, from a real nats-server. The app
//! records every request and answers as each test scripts it; the tests check what reached
//! the app, how often, and what the CLI reported.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use jetstream_pubsub_host::PublishRequest;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::Command;

use support::app::{App, Received, Reply, reply};

const BIN: &str = env!("CARGO_BIN_EXE_jetstream-pubsub");

/// A manifest with a durable consumer and `ackWait: 1s`, so that a nak'd or unanswered
/// message would be back within about a second.
fn manifest(dir: &Path, url: &str, extra: &str) -> PathBuf {
    let path = dir.join("pubsub.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\nspec:\n  type: pubsub.jetstream\n  version: v1\n  metadata:\n  - name: natsURL\n    value: \"{url}\"\n  - name: durableName\n    value: http-app\n  - name: ackWait\n    value: 1s\n{extra}"
        ),
    )
    .unwrap();
    path
}

/// Runs `jetstream-pubsub subscribe --component FILE --topic TOPIC ARGS...` to its end.
async fn subscribe(file: &Path, topic: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["subscribe", "--component", file.to_str().unwrap()])
        .args(["--topic", topic])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn success_answers_acknowledge_and_nothing_comes_back() {
    let server = support::server();
    support::stream(&server, "OK", &["ok"]).await;
    let app = App::start(|request, _| match request.body.as_str() {
        "empty" => reply(200, ""),
        "success" => reply(200, r#"{"status":"SUCCESS"}"#),
        "lowercase" => reply(200, r#"{"status":"success"}"#),
        "not-json" => reply(200, "thanks"),
        _ => reply(204, ""),
    })
    .await;
    support::publish_plain(
        &server,
        "ok",
        &["empty", "success", "lowercase", "not-json", "no-content"],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(dir.path(), &server.url(), "");
    let url = app.url("/ok");

    // Ask for one more than there is: the run ends on its timeout, having watched for
    // redeliveries for several ack waits.
    let output = subscribe(
        &file,
        "ok",
        &["--app-url", &url, "--count", "6", "--timeout", "4"],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!(
            "timed out after 4s: acknowledged by {url} 5 of 6 messages"
        )),
        "{}",
        stderr(&output)
    );
    for body in ["empty", "success", "lowercase", "not-json", "no-content"] {
        assert_eq!(app.count_of(body), 1, "{body} delivered once");
    }
    assert!(
        output.stdout.is_empty(),
        "with --app-url nothing goes to stdout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_unknown_status_and_server_errors_are_redelivered() {
    let server = support::server();
    support::stream(&server, "RETRY", &["retry"]).await;
    let app = App::start(|request, nth| match (request.body.as_str(), nth) {
        ("retry", 1) => reply(200, r#"{"status":"RETRY"}"#),
        ("unknown", 1) => reply(200, r#"{"status":"LATER"}"#),
        ("error", 1) => reply(500, "boom"),
        ("unavailable", 1) => reply(503, ""),
        _ => reply(200, ""),
    })
    .await;
    let payloads = ["retry", "unknown", "error", "unavailable"];
    support::publish_plain(&server, "retry", &payloads).await;
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(dir.path(), &server.url(), "");

    let output = subscribe(
        &file,
        "retry",
        &[
            "--app-url",
            &app.url("/"),
            "--count",
            "4",
            "--timeout",
            "30",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    for body in payloads {
        assert_eq!(
            app.count_of(body),
            2,
            "{body}: refused once, acknowledged on redelivery"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_and_not_found_are_never_redelivered() {
    let server = support::server();
    support::stream(&server, "DROP", &["drop"]).await;
    let app = App::start(|request, _| match request.body.as_str() {
        "drop" => reply(200, r#"{"status":"DROP"}"#),
        "missing" => reply(404, "no such route"),
        _ => reply(200, r#"{"status":"SUCCESS"}"#),
    })
    .await;
    support::publish_plain(&server, "drop", &["drop", "missing", "kept"]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(dir.path(), &server.url(), "");
    let url = app.url("/drop");

    let output = subscribe(
        &file,
        "drop",
        &["--app-url", &url, "--count", "3", "--timeout", "4"],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!(
            "timed out after 4s: acknowledged by {url} 1 of 3 messages"
        )),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        (
            app.count_of("drop"),
            app.count_of("missing"),
            app.count_of("kept")
        ),
        (1, 1, 1),
        "dropped messages are terminated, not redelivered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn request_carries_body_content_type_topic_subject_and_headers() {
    let server = support::server();
    support::stream(&server, "ORDERS", &["orders.*"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    pubsub
        .publish_request(PublishRequest {
            topic: "orders.new".into(),
            data: b"plain words".to_vec(),
            content_type: Some("text/plain; charset=utf-8".into()),
            metadata: support::metadata(&[("X-Tenant", "acme")]),
        })
        .await
        .unwrap();
    pubsub
        .publish("orders.old", br#"{"id":"o-2"}"#.to_vec())
        .await
        .unwrap();
    runtime.shutdown().await;
    let app = App::start(|_, _| reply(200, "")).await;
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(dir.path(), &server.url(), "");

    let output = subscribe(
        &file,
        "orders.*",
        &[
            "--app-url",
            &app.url("/orders"),
            "--count",
            "2",
            "--timeout",
            "20",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let received = app.received();
    assert_eq!(received.len(), 2, "{received:?}");
    let first = &received[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/orders");
    assert_eq!(first.body, "plain words");
    assert_eq!(
        first.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(first.header("pubsub-topic"), Some("orders.*"));
    assert_eq!(first.header("pubsub-subject"), Some("orders.new"));
    assert_eq!(first.header("x-tenant"), Some("acme"));
    let second = &received[1];
    assert_eq!(second.body, r#"{"id":"o-2"}"#);
    assert_eq!(
        second.header("content-type"),
        Some("application/cloudevents+json"),
        "a JSON object is what daprd decodes as an event, and delivers as one"
    );
    assert_eq!(second.header("pubsub-subject"), Some("orders.old"));
    assert_eq!(second.header("nats-msg-id"), Some("o-2"));
    assert_eq!(second.header("x-tenant"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_mode_posts_concurrently_single_mode_one_at_a_time() {
    let server = support::server();
    support::stream(&server, "WORK", &["work.*"]).await;
    let slow = |_: &Received, _| Reply {
        status: 200,
        body: "",
        delay: Duration::from_millis(300),
    };
    let payloads: Vec<String> = (0..10).map(|n| format!("job-{n}")).collect();
    let payloads: Vec<&str> = payloads.iter().map(String::as_str).collect();
    support::publish_plain(&server, "work.parallel", &payloads).await;
    support::publish_plain(&server, "work.single", &payloads[..3]).await;
    let dir = tempfile::tempdir().unwrap();

    let parallel_app = App::start(slow).await;
    let file = manifest(
        dir.path(),
        &server.url(),
        "  - name: concurrency\n    value: parallel\n",
    );
    let output = subscribe(
        &file,
        "work.parallel",
        &[
            "--app-url",
            &parallel_app.url("/"),
            "--count",
            "10",
            "--timeout",
            "30",
            "--metadata",
            "durableName=parallel",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    for body in &payloads {
        assert_eq!(parallel_app.count_of(body), 1, "{body}");
    }
    // The ten messages are taken in one or a few batches; a 300 ms app sees many at once.
    assert!(
        parallel_app.max_in_flight() >= 5,
        "parallel deliveries overlap: at most {} requests were in flight at once",
        parallel_app.max_in_flight()
    );

    let single_app = App::start(slow).await;
    let file = manifest(dir.path(), &server.url(), "");
    let output = subscribe(
        &file,
        "work.single",
        &[
            "--app-url",
            &single_app.url("/"),
            "--count",
            "3",
            "--timeout",
            "30",
            "--metadata",
            "durableName=single",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(single_app.max_in_flight(), 1, "single mode: one at a time");
    let order: Vec<_> = single_app.received().into_iter().map(|r| r.body).collect();
    assert_eq!(
        order,
        ["job-0", "job-1", "job-2"],
        "single mode keeps order"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn app_down_is_retried_and_the_message_arrives_once_it_is_up() {
    let server = support::server();
    support::stream(&server, "LATE", &["late"]).await;
    // A port held for the app from the start, but not listened on yet: connecting is
    // refused, and no other process can take the port before the app listens.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(dir.path(), &server.url(), "");
    let url = format!("http://127.0.0.1:{port}/late");
    let mut subscriber = Command::new(BIN)
        .args(["subscribe", "--component", file.to_str().unwrap()])
        .args(["--topic", "late", "--app-url", &url])
        .args(["--count", "1", "--timeout", "30"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    support::publish_plain(&server, "late", &["patient"]).await;

    // Wait until the CLI says it could not reach the app, at least twice (a redelivery).
    let mut lines = tokio::io::BufReader::new(subscriber.stderr.take().unwrap()).lines();
    let mut failures = 0;
    let mut log = Vec::new();
    while failures < 2 {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the CLI logs failed deliveries")
            .unwrap()
            .unwrap_or_else(|| panic!("the CLI ended early: {log:#?}"));
        if line.contains("cannot reach the app") {
            failures += 1;
        }
        log.push(line);
    }
    let log_rest = tokio::spawn(async move {
        let mut rest = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push(line);
        }
        rest
    });

    let listener = socket.listen(1024).unwrap();
    let app = App::serve(listener, |_, _| reply(200, ""));
    let status = tokio::time::timeout(Duration::from_secs(30), subscriber.wait())
        .await
        .expect("the CLI ends once the app acknowledges")
        .unwrap();
    let rest = log_rest.await.unwrap();
    assert!(status.success(), "{status:?}: {log:#?} {rest:#?}");
    assert_eq!(app.count_of("patient"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_app_times_out_and_the_message_is_retried() {
    let server = support::server();
    support::stream(&server, "SLOW", &["slow"]).await;
    let app = App::start(|_, nth| Reply {
        status: 200,
        body: "",
        delay: if nth == 1 {
            Duration::from_secs(5)
        } else {
            Duration::ZERO
        },
    })
    .await;
    support::publish_plain(&server, "slow", &["sleepy"]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(dir.path(), &server.url(), "");

    let output = subscribe(
        &file,
        "slow",
        &[
            "--app-url",
            &app.url("/"),
            "--app-timeout",
            "0.5",
            "--count",
            "1",
            "--timeout",
            "20",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("the app did not answer in time"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        app.count_of("sleepy"),
        2,
        "abandoned once, then acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_app_urls_exit_2_naming_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(dir.path(), "nats://127.0.0.1:1", "");
    for (url, expected) in [
        (
            "https://app.example/x",
            r#"app URL "https://app.example/x" is not supported: only http:// is supported"#,
        ),
        (
            "localhost:3000",
            r#"app URL "localhost:3000" is not supported"#,
        ),
    ] {
        let output = subscribe(&file, "t", &["--app-url", url]).await;
        assert_eq!(output.status.code(), Some(2), "{url}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(expected),
            "{url}: {}",
            stderr(&output)
        );
    }
}

/// An app written for Dapr gets what daprd gives it: the event the publisher's sidecar
/// made, as `application/cloudevents+json`; on a raw subscription, a new event carrying the
/// bytes as `data_base64`.
#[tokio::test(flavor = "multi_thread")]
async fn a_dapr_app_receives_the_cloud_event_it_expects() {
    let server = support::server();
    support::stream(&server, "ORDERS", &["orders.*"]).await;
    let app = App::start(|_, _| reply(200, r#"{"status":"SUCCESS"}"#)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(dir.path(), &server.url(), "");
    let published = Command::new(BIN)
        .args(["publish", "--component", file.to_str().unwrap()])
        .args([
            "--topic",
            "orders.new",
            "--data",
            r#"{"id":"o-1","status":"paid"}"#,
        ])
        .output()
        .await
        .unwrap();
    assert!(published.status.success(), "{}", stderr(&published));
    // A CloudEvent from a plain NATS client, no content type: still delivered as one.
    let foreign = r#"{"specversion":"1.0","id":"ext-1","source":"billing","type":"invoice.sent"}"#;
    support::publish_plain(&server, "orders.ext", &[foreign]).await;

    let output = subscribe(
        &file,
        "orders.*",
        &[
            "--app-url",
            &app.url("/orders"),
            "--count",
            "2",
            "--timeout",
            "20",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let received = app.received();
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[1].body, foreign);
    assert_eq!(
        received[1].header("content-type"),
        Some("application/cloudevents+json")
    );
    assert_eq!(
        received[0].header("content-type"),
        Some("application/cloudevents+json")
    );
    let event: serde_json::Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "com.dapr.event.sent");
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(
        event["data"],
        serde_json::json!({"id": "o-1", "status": "paid"})
    );
    assert_eq!(event["topic"], "orders.new");
    assert_eq!(event["pubsubname"], "pubsub");
    assert_eq!(
        received[0].header("nats-msg-id"),
        event["id"].as_str(),
        "the event's id is the message id"
    );

    // A raw subscription (its own durable) wraps what a plain NATS client published.
    support::publish_plain(&server, "orders.raw", &["raw bytes"]).await;
    let raw_file = dir.path().join("raw.yaml");
    std::fs::write(
        &raw_file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("value: http-app", "value: http-app-raw"),
    )
    .unwrap();
    let output = subscribe(
        &raw_file,
        "orders.raw",
        &[
            "--raw",
            "--app-url",
            &app.url("/raw"),
            "--count",
            "1",
            "--timeout",
            "20",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let raw = app.received().pop().unwrap();
    assert_eq!(raw.path, "/raw");
    assert_eq!(
        raw.header("content-type"),
        Some("application/cloudevents+json")
    );
    let event: serde_json::Value = serde_json::from_str(&raw.body).unwrap();
    assert_eq!(event["data_base64"], "cmF3IGJ5dGVz");
    assert_eq!(event["datacontenttype"], "application/octet-stream");
    assert_eq!(event["topic"], "orders.raw");
}
