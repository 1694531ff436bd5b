//! The `jetstream-pubsub` binary used as a user would: manifests on disk, a real server,
//! output read from stdout, exit codes checked.

mod support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_jetstream-pubsub");

fn manifest(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

fn component(dir: &Path, url: &str, extra: &str) -> PathBuf {
    manifest(
        dir,
        "pubsub.yaml",
        &format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\nspec:\n  type: pubsub.jetstream\n  version: v1\n  metadata:\n  - name: natsURL\n    value: \"{url}\"\n{extra}"
        ),
    )
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn stream_add_publish_and_subscribe_end_to_end() {
    let server = support::server();
    let dir = tempfile::tempdir().unwrap();
    let file = component(
        dir.path(),
        &server.url(),
        "  - name: durableName\n    value: cli\n",
    );
    let file = file.to_str().unwrap();

    let added = run(
        &[
            "stream",
            "add",
            "ORDERS",
            "--subjects",
            "orders.new,orders.old",
            "--url",
            &server.url(),
        ],
        None,
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let summary = &json_lines(&added)[0];
    assert_eq!(summary["name"], "ORDERS");
    assert_eq!(
        summary["subjects"],
        serde_json::json!(["orders.new", "orders.old"])
    );
    assert_eq!(summary["existed"], false);
    let again = run(
        &[
            "stream",
            "add",
            "ORDERS",
            "--subjects",
            "orders.new",
            "--component",
            file,
        ],
        None,
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(json_lines(&again)[0]["existed"], true);

    let one = run(
        &[
            "publish",
            "--component",
            file,
            "--topic",
            "orders.new",
            "--data",
            r#"{"id":"o-1","n":1}"#,
        ],
        None,
    );
    assert!(one.status.success(), "{}", stderr(&one));
    assert_eq!(
        json_lines(&one),
        vec![serde_json::json!({"stream": "ORDERS", "sequence": 1, "duplicate": false})]
    );

    let lines = run(
        &[
            "publish",
            "--component",
            file,
            "--topic",
            "orders.new",
            "--lines",
        ],
        Some("a\nb\n{\"id\":\"o-1\"}\n"),
    );
    assert!(lines.status.success(), "{}", stderr(&lines));
    let acks = json_lines(&lines);
    let sequences: Vec<_> = acks.iter().map(|a| a["sequence"].as_u64()).collect();
    assert_eq!(sequences, vec![Some(2), Some(3), Some(4)]);
    assert!(
        acks.iter().all(|a| a["duplicate"] == false),
        "each line is an event of its own, whatever its business id: {acks:?}"
    );
    assert!(
        stderr(&lines).contains("published 3 lines: 3 stored, 0 duplicates, 0 failed"),
        "{}",
        stderr(&lines)
    );

    let received = run(
        &[
            "subscribe",
            "--component",
            file,
            "--topic",
            "orders.new",
            "--count",
            "4",
            "--timeout",
            "20",
        ],
        None,
    );
    assert!(received.status.success(), "{}", stderr(&received));
    let messages = json_lines(&received);
    let data: Vec<_> = messages
        .iter()
        .map(|m| m["cloudevent"]["data"].clone())
        .collect();
    assert_eq!(
        data,
        vec![
            serde_json::json!({"id": "o-1", "n": 1}),
            "a".into(),
            "b".into(),
            serde_json::json!({"id": "o-1"})
        ]
    );
    assert_eq!(messages[0]["content_type"], "application/cloudevents+json");
    assert_eq!(messages[0]["cloudevent"]["type"], "com.dapr.event.sent");
    assert_eq!(messages[0]["cloudevent"]["pubsubname"], "pubsub");
    assert_eq!(messages[0]["topic"], "orders.new");
    assert_eq!(messages[0]["subject"], "orders.new");
    assert_eq!(messages[0]["metadata"]["Topic"], "orders.new");

    // The durable consumer acknowledged those three: nothing is left to receive.
    let nothing = run(
        &[
            "subscribe",
            "--component",
            file,
            "--topic",
            "orders.new",
            "--count",
            "1",
            "--timeout",
            "1.5",
        ],
        None,
    );
    assert!(!nothing.status.success());
    assert!(
        stderr(&nothing).contains("timed out after 1.5s: received 0 of 1 messages"),
        "{}",
        stderr(&nothing)
    );
}

#[tokio::test]
async fn binary_payloads_print_as_base64() {
    let server = support::server();
    support::stream(&server, "BIN", &["bin"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    pubsub.publish("bin", vec![0xff, 0x00, 0xfe]).await.unwrap();
    runtime.shutdown().await;
    let dir = tempfile::tempdir().unwrap();
    let file = component(dir.path(), &server.url(), "");
    let output = run(
        &[
            "subscribe",
            "--component",
            file.to_str().unwrap(),
            "--topic",
            "bin",
            "--count",
            "1",
            "--timeout",
            "20",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let line = &json_lines(&output)[0];
    assert_eq!(line["data_base64"], "/wD+");
    assert!(line.get("data").is_none());
}

#[test]
fn sigterm_stops_gracefully_and_loses_nothing() {
    let server = support::server();
    let dir = tempfile::tempdir().unwrap();
    let file = component(
        dir.path(),
        &server.url(),
        "  - name: durableName\n    value: graceful\n",
    );
    let file = file.to_str().unwrap();
    assert!(
        run(
            &[
                "stream",
                "add",
                "S",
                "--subjects",
                "s",
                "--url",
                &server.url()
            ],
            None
        )
        .status
        .success()
    );

    let mut subscriber = Command::new(BIN)
        .args(["subscribe", "--component", file, "--topic", "s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(subscriber.stdout.take().unwrap());
    assert!(
        run(
            &[
                "publish",
                "--component",
                file,
                "--topic",
                "s",
                "--data",
                "first"
            ],
            None
        )
        .status
        .success()
    );
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&line).unwrap()["cloudevent"]["data"],
        "first"
    );

    Command::new("kill")
        .args(["-TERM", &subscriber.id().to_string()])
        .status()
        .unwrap();
    let status = subscriber.wait().unwrap();
    assert!(status.success(), "SIGTERM ends with exit 0, got {status:?}");

    // "first" was acknowledged before exit; a message published afterwards is the next one.
    assert!(
        run(
            &[
                "publish",
                "--component",
                file,
                "--topic",
                "s",
                "--data",
                "second"
            ],
            None
        )
        .status
        .success()
    );
    let next = run(
        &[
            "subscribe",
            "--component",
            file,
            "--topic",
            "s",
            "--count",
            "1",
            "--timeout",
            "20",
        ],
        None,
    );
    assert!(next.status.success(), "{}", stderr(&next));
    assert_eq!(json_lines(&next)[0]["cloudevent"]["data"], "second");
}

/// The case a new user hit: two updates of one order, the same business `id`. Wrapped as
/// daprd wraps them, both are stored; a CloudEvent published twice (a retry) and `--raw`
/// JSON with the same `id` are deduplicated, as in Dapr, and the CLI says so.
#[test]
fn updates_with_one_business_id_are_all_stored_and_duplicates_are_reported() {
    let server = support::server();
    let dir = tempfile::tempdir().unwrap();
    let file = component(dir.path(), &server.url(), "");
    let file = file.to_str().unwrap();
    let added = run(
        &[
            "stream",
            "add",
            "ORDERS",
            "--subjects",
            "orders.*",
            "--component",
            file,
        ],
        None,
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let publish = |data: &str, extra: &[&str]| {
        let mut args = vec![
            "publish",
            "--component",
            file,
            "--topic",
            "orders.created",
            "--data",
            data,
        ];
        args.extend_from_slice(extra);
        let output = run(&args, None);
        assert!(
            output.status.success(),
            "a duplicate is success: {}",
            stderr(&output)
        );
        let ack = json_lines(&output).remove(0);
        (ack, stderr(&output))
    };

    let (created, quiet) = publish(r#"{"id":"o-1","status":"created"}"#, &[]);
    let (paid, _) = publish(r#"{"id":"o-1","status":"paid"}"#, &[]);
    assert_eq!(
        (created["sequence"].as_u64(), created["duplicate"].as_bool()),
        (Some(1), Some(false))
    );
    assert_eq!(
        (paid["sequence"].as_u64(), paid["duplicate"].as_bool()),
        (Some(2), Some(false)),
        "the update is stored"
    );
    assert!(!quiet.contains("duplicate"), "{quiet}");

    let event = r#"{"specversion":"1.0","id":"evt-9","source":"orders","type":"order.paid","data":{"id":"o-1"}}"#;
    let (first, _) = publish(event, &[]);
    let (retry, note) = publish(event, &[]);
    assert_eq!(first["duplicate"], false);
    assert_eq!(
        (retry["sequence"].clone(), retry["duplicate"].clone()),
        (first["sequence"].clone(), true.into())
    );
    assert_eq!(
        note.trim_end(),
        format!(
            "duplicate: stream ORDERS already holds id \"evt-9\" (sequence {}); nothing new was stored",
            first["sequence"]
        ),
        "one line naming the id"
    );

    let (raw, _) = publish(r#"{"id":"o-2","status":"created"}"#, &["--raw"]);
    let (raw_again, note) = publish(r#"{"id":"o-2","status":"paid"}"#, &["--raw"]);
    assert_eq!(
        (raw["duplicate"].clone(), raw_again["duplicate"].clone()),
        (false.into(), true.into())
    );
    assert!(note.contains("already holds id \"o-2\""), "{note}");

    // Deduplication on purpose, for wrapped payloads: the request metadata's Nats-Msg-Id.
    let (chosen, _) = publish("a", &["--request-metadata", "Nats-Msg-Id=batch-7"]);
    let (again, note) = publish("b", &["--request-metadata", "Nats-Msg-Id=batch-7"]);
    assert_eq!(
        (chosen["duplicate"].clone(), again["duplicate"].clone()),
        (false.into(), true.into())
    );
    assert!(note.contains("already holds id \"batch-7\""), "{note}");

    let lines = run(
        &[
            "publish",
            "--component",
            file,
            "--topic",
            "orders.created",
            "--lines",
            "--raw",
        ],
        Some("{\"id\":\"o-3\"}\n{\"id\":\"o-3\"}\nplain\n"),
    );
    assert!(lines.status.success(), "{}", stderr(&lines));
    assert!(
        stderr(&lines).contains("line 2: duplicate: stream ORDERS already holds id \"o-3\"")
            && stderr(&lines).contains("published 3 lines: 2 stored, 1 duplicates, 0 failed"),
        "{}",
        stderr(&lines)
    );

    // What a subscriber sees: both updates, each in its own envelope.
    let received = run(
        &[
            "subscribe",
            "--component",
            file,
            "--topic",
            "orders.*",
            "--count",
            "2",
            "--timeout",
            "20",
        ],
        None,
    );
    assert!(received.status.success(), "{}", stderr(&received));
    let statuses: Vec<_> = json_lines(&received)
        .iter()
        .map(|line| line["cloudevent"]["data"]["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        vec![serde_json::json!("created"), serde_json::json!("paid")]
    );
}

#[test]
fn bad_manifests_exit_2_with_one_line_naming_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let base = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: p\nspec:\n  type: pubsub.jetstream\n  version: v1\n  metadata:\n  - name: natsURL\n    value: nats://127.0.0.1:1\n";
    let cases = [
        (
            "type.yaml",
            base.replace("pubsub.jetstream", "pubsub.kafka"),
            "spec.type is \"pubsub.kafka\"",
        ),
        (
            "version.yaml",
            base.replace("version: v1", "version: v9"),
            "spec.version is \"v9\"",
        ),
        (
            "kind.yaml",
            base.replace("kind: Component", "kind: Configuration"),
            "kind is \"Configuration\"",
        ),
        (
            "yaml.yaml",
            "kind: Component\nspec: [unclosed".to_string(),
            "malformed manifest",
        ),
        (
            "secret.yaml",
            base.replace(
                "    value: nats://127.0.0.1:1\n",
                "    secretKeyRef:\n      name: nats-secret\n      key: url\n",
            ),
            "metadata \"natsURL\": secretKeyRef to secret \"nats-secret\" cannot be resolved",
        ),
        (
            "policy.yaml",
            format!("{base}  - name: deliverPolicy\n    value: sometimes\n"),
            "deliver policy sometimes is not one of: all, last, new, sequence, time",
        ),
    ];
    for (name, body, expected) in cases {
        let file = manifest(dir.path(), name, &body);
        let output = run(
            &[
                "publish",
                "--component",
                file.to_str().unwrap(),
                "--topic",
                "t",
                "--data",
                "x",
            ],
            None,
        );
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(expected), "{name}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: one line: {err}");
    }
    let missing = run(
        &[
            "publish",
            "--component",
            "/nonexistent/pubsub.yaml",
            "--topic",
            "t",
            "--data",
            "x",
        ],
        None,
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("cannot read /nonexistent/pubsub.yaml"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn subscribe_times_out_with_a_clear_message() {
    let server = support::server();
    let dir = tempfile::tempdir().unwrap();
    let file = component(dir.path(), &server.url(), "");
    assert!(
        run(
            &[
                "stream",
                "add",
                "Q",
                "--subjects",
                "q",
                "--url",
                &server.url()
            ],
            None
        )
        .status
        .success()
    );
    let started = std::time::Instant::now();
    let output = run(
        &[
            "subscribe",
            "--component",
            file.to_str().unwrap(),
            "--topic",
            "q",
            "--count",
            "2",
            "--timeout",
            "1",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("timed out after 1s: received 0 of 2 messages"),
        "{}",
        stderr(&output)
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn the_sandbox_allows_what_the_manifest_names_and_the_flags_replace_it() {
    let server = support::server();
    let dir = tempfile::tempdir().unwrap();
    // Not credentials: whether the host read it shows in the error that follows.
    let creds = manifest(dir.path(), "user.creds", "not credentials");
    let file = component(
        dir.path(),
        &server.url(),
        &format!(
            "  - name: credsFile\n    value: \"{}\"\n",
            creds.to_str().unwrap()
        ),
    );
    let publish = |extra: &[&str]| {
        let mut args = vec![
            "publish",
            "--component",
            file.to_str().unwrap(),
            "--topic",
            "t",
            "--data",
            "x",
        ];
        args.extend_from_slice(extra);
        run(&args, None)
    };

    // By default the manifest's server and file are allowed: the file is read.
    let read = publish(&[]);
    assert!(
        stderr(&read).contains("not a NATS .creds file"),
        "{}",
        stderr(&read)
    );
    // --allow-path replaces the files the manifest names.
    let other = dir.path().join("elsewhere");
    std::fs::create_dir(&other).unwrap();
    let refused = publish(&["--allow-path", other.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(&format!(
            "cannot read the credentials file at {:?}",
            creds.to_str().unwrap()
        )) && stderr(&refused).contains("(allow-path)"),
        "{}",
        stderr(&refused)
    );
    // --allow-server replaces the manifest's servers.
    let refused = publish(&["--allow-server", "127.0.0.1:1"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(&format!(
            "cannot connect to {}: not a server the sandbox allows (allow-server)",
            server.url()
        )),
        "{}",
        stderr(&refused)
    );
    // A malformed rule is a usage error naming it.
    let bad = publish(&["--allow-server", "localhost"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("cannot allow server \"localhost\": expected HOST:PORT"),
        "{}",
        stderr(&bad)
    );
}

/// The README's main job: 10,000 orders (two updates per order id) through the component,
/// all delivered once, none taken for a duplicate.
#[test]
fn demo_delivers_every_update_once() {
    let server = support::server();
    let output = run(&["demo", "--url", &server.url()], None);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}{}", stderr(&output));
    assert!(
        stdout.contains("published 10000 (") && stdout.contains("0 acknowledged as duplicates"),
        "{stdout}"
    );
    assert!(stdout.contains("delivered 10000 ("), "{stdout}");
    assert!(
        stdout.lines().any(|line| line == "duplicates 0"),
        "{stdout}"
    );
    // Piped, the output is plain: no progress line, no escape code.
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr(&output))] {
        assert!(
            !text.contains('\r') && !text.contains('\x1b'),
            "{name}: {text:?}"
        );
    }
}

/// On a terminal (a pseudo-terminal from `script`), `demo` shows its progress on a line it
/// rewrites, and the results overwrite it.
#[test]
fn demo_shows_progress_on_a_terminal() {
    let server = support::server();
    let command = format!("{BIN} demo --url {} --messages 2000", server.url());
    let output = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("\r\x1b[K  … published 500 of 2000"),
        "{text:?}"
    );
    assert!(text.contains("\r\x1b[Kdelivered 2000 ("), "{text:?}");
}

#[test]
fn a_timeout_without_count_is_a_normal_end_with_messages_and_exit_3_without() {
    let server = support::server();
    let dir = tempfile::tempdir().unwrap();
    let file = component(
        dir.path(),
        &server.url(),
        "  - name: durableName\n    value: waiting\n  - name: deliverAll\n    value: \"true\"\n",
    );
    let file = file.to_str().unwrap();
    let url = server.url();
    let added = run(
        &["stream", "add", "T", "--subjects", "t", "--url", &url],
        None,
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let subscribe = [
        "subscribe",
        "--component",
        file,
        "--topic",
        "t",
        "--timeout",
        "1",
    ];

    let nothing = run(&subscribe, None);
    assert_eq!(nothing.status.code(), Some(3), "{}", stderr(&nothing));
    assert_eq!(stderr(&nothing).trim_end(), "no message received in 1s");

    let published = run(
        &[
            "publish",
            "--component",
            file,
            "--topic",
            "t",
            "--data",
            "x",
        ],
        None,
    );
    assert!(published.status.success(), "{}", stderr(&published));
    let some = run(&subscribe, None);
    assert_eq!(some.status.code(), Some(0), "{}", stderr(&some));
    assert_eq!(json_lines(&some).len(), 1);
}

#[test]
fn logs_written_to_a_file_carry_no_colour_and_json_lines_parse() {
    let server = support::server();
    let dir = tempfile::tempdir().unwrap();
    let file = component(dir.path(), &server.url(), "");
    let log = |format: &str| {
        let path = dir.path().join(format!("{format}.log"));
        let status = Command::new(BIN)
            .args(["--log-format", format, "publish", "--component"])
            .arg(&file)
            .args(["--topic", "nowhere", "--data", "x"])
            .env("JETSTREAM_PUBSUB_LOG", "debug")
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&path).unwrap())
            .status()
            .unwrap();
        // No stream covers `nowhere`: the publish fails, and says so in the log too.
        assert!(!status.success());
        std::fs::read_to_string(path).unwrap()
    };
    let text = log("text");
    assert!(text.lines().count() > 1, "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in a log file: {text:?}"
    );

    let json = log("json");
    let lines: Vec<&str> = json.lines().filter(|line| line.starts_with('{')).collect();
    assert!(lines.len() > 1, "{json}");
    for line in lines {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}"));
        for key in ["timestamp", "level", "target", "fields"] {
            assert!(entry.get(key).is_some(), "no {key} in {line}");
        }
    }
    // The one line that is not a log entry: the command's own error.
    assert!(
        json.lines().any(|line| line.starts_with("error: ")),
        "{json}"
    );
}

#[test]
fn no_secret_reaches_the_log_in_either_format() {
    const PASSWORD: &str = "pa55w0rd-s3cret";
    const SEED: &str = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU";
    for format in ["text", "json"] {
        let output = Command::new(BIN)
            .args([
                "--log-format",
                format,
                "publish",
                "--topic",
                "t",
                "--data",
                "x",
            ])
            .args([
                "--metadata",
                &format!("natsURL=nats://us3r:{PASSWORD}@127.0.0.1:9"),
            ])
            .args(["--metadata", "jwt=eyJhbGciOiJFZDI1NTE5In0.e30.c2ln"])
            .args(["--metadata", &format!("seedKey={SEED}")])
            .env("JETSTREAM_PUBSUB_LOG", "debug")
            .output()
            .unwrap();
        let err = stderr(&output);
        assert!(!output.status.success(), "{format}: {err}");
        assert!(err.lines().count() > 1, "{format}: debug logs were written");
        assert!(err.contains("the JWT is malformed"), "{format}: {err}");
        for secret in [PASSWORD, SEED, &SEED[20..40]] {
            assert!(!err.contains(secret), "{format}: a secret in the log");
        }
    }
}
