//! An untrusted component that misbehaves cannot crash, stall or widen the host: a trap
//! is contained and the instance re-created (the messages it held or had buffered reach the
//! application without being charged a delivery, and a handler still running keeps its
//! message in progress), a runaway loop is stopped by the CPU budget
//! (waiting on imports does not count), unbounded allocation hits the memory cap, pending
//! acks are bounded, and the transport refuses subjects outside the component's reach.
//!
//! The misbehaving component is the real one built with the `fault-injection` feature:
//! payloads starting with `fault:trap`, `fault:spin` or `fault:hog` make it trap, loop or
//! allocate while it holds that message, a publish of `fault:hoard` makes it send
//! without end, keeping every pending ack, and a failed publish to a `fault.verdict`
//! subject makes it trap while judging the failure.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use jetstream_pubsub_host::{AppStatus, BulkEntry, Message, Runtime, SandboxLimits};
use support::Recorder;
use support::stand_in::{self, StandIn};

const WAIT: Duration = Duration::from_secs(15);

/// Builds the fault-injecting component once per test binary.
fn faulty_component() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap()
                .to_path_buf();
            let target = workspace.join("target/guest-wasm-faults");
            let status = Command::new(option_env!("CARGO").unwrap_or("cargo"))
                .current_dir(&workspace)
                .args([
                    "build",
                    "--locked",
                    "-p",
                    "jetstream-pubsub-guest",
                    "--features",
                    "fault-injection",
                ])
                .args(["--target", "wasm32-wasip2", "--profile", "guest-release"])
                .env("CARGO_TARGET_DIR", &target)
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .status()
                .expect("cargo runs");
            assert!(
                status.success(),
                "building the fault-injecting component failed"
            );
            target.join("wasm32-wasip2/guest-release/jetstream_pubsub_guest.wasm")
        })
        .clone()
}

fn faulty_runtime(limits: SandboxLimits) -> Runtime {
    Runtime::builder()
        .component_file(faulty_component())
        .limits(limits)
        .build()
        .expect("the faulty component loads")
}

#[tokio::test]
async fn a_trap_is_contained_and_costs_the_messages_taken_with_it_nothing() {
    let metrics = support::metrics::recorder();
    let server = support::server();
    support::stream(&server, "TRAP", &["trap"]).await;
    // Named: the trap and the restart are counted under this name alone.
    let runtime = faulty_runtime(SandboxLimits::default()).named("trap-contained");
    // One delivery each: a message handed back to the server after the trap would be
    // gone, so every innocent one must reach the application through the new instance.
    let md = support::metadata(&[
        ("natsURL", &server.url()),
        ("durableName", "trap"),
        ("maxDeliver", "1"),
    ]);
    let pubsub = runtime.pubsub(md).await.unwrap();
    // Stored before the consumer exists, they arrive together: the trap hits while m-1
    // and m-2 are taken but not yet handled.
    for payload in ["m-1", "fault:trap", "m-2"] {
        pubsub
            .publish("trap", payload.as_bytes().to_vec())
            .await
            .unwrap();
    }
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe("trap", recorder.accept_all())
        .await
        .unwrap();
    recorder
        .wait_until(WAIT, "m-1 and m-2", |m| m.len() >= 2)
        .await;
    pubsub.publish("trap", b"m-3".to_vec()).await.unwrap();
    recorder
        .wait_until(WAIT, "m-3 after the trap", |m| {
            m.iter().any(|m| m.data == b"m-3"[..])
        })
        .await;
    assert_eq!(
        recorder.payloads(),
        vec!["m-1", "m-2", "m-3"],
        "each innocent message once, in order; the poison one never"
    );
    assert!(
        !subscription.is_finished(),
        "the subscription lives on a fresh instance"
    );
    // The poison message traps its instance at least once (twice when it came in a batch:
    // replayed alone, it traps again and is known for the culprit), and every trap is
    // followed by a fresh instance.
    let counted = support::metrics::Scrape::parse(metrics.render());
    let labels = [("component", "trap-contained"), ("role", "subscription")];
    let traps = counted.value("jetstream_pubsub_component_traps_total", &labels);
    let restarts = counted.value("jetstream_pubsub_instance_restarts_total", &labels);
    assert!(traps >= 1.0, "{}", counted.body);
    assert_eq!(restarts, traps, "{}", counted.body);
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn the_lone_message_held_by_a_trapped_instance_comes_back_in_a_second_not_after_the_ack_wait()
{
    let server = support::server();
    support::stream(&server, "POISON", &["poison"]).await;
    let runtime = faulty_runtime(SandboxLimits::default());
    let md = support::metadata(&[
        ("natsURL", &server.url()),
        ("durableName", "poison"),
        ("ackWait", "60s"),
        ("maxDeliver", "2"),
    ]);
    let pubsub = runtime.pubsub(md).await.unwrap();
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe("poison", recorder.accept_all())
        .await
        .unwrap();
    pubsub
        .publish("poison", b"fault:trap".to_vec())
        .await
        .unwrap();
    // The component's suspect answer (a NAK delayed by a second) brings it back for its
    // second and last delivery; without one it would wait out the 60 s ack wait.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let info = support::consumer_info(&server.url(), "POISON", "poison")
            .await
            .expect("the durable exists");
        if info.delivered.consumer_sequence >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the suspect was not redelivered within 20 s: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        recorder.payloads().is_empty(),
        "the poison message never reached the app"
    );
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_handler_still_running_when_its_instance_traps_keeps_its_message() {
    let server = support::server();
    support::stream(&server, "KEEP", &["keep"]).await;
    let runtime = faulty_runtime(SandboxLimits::default());
    // With a 1 s ack wait, the slow message is redelivered unless its in-progress signals
    // go on after the instance that took it traps.
    let md = support::metadata(&[
        ("natsURL", &server.url()),
        ("durableName", "keep"),
        ("concurrency", "parallel"),
        ("ackWait", "1s"),
        ("maxDeliver", "5"),
    ]);
    let pubsub = runtime.pubsub(md).await.unwrap();
    let slow_starts = Arc::new(AtomicUsize::new(0));
    let handler = {
        let slow_starts = slow_starts.clone();
        move |message: Message| {
            let slow_starts = slow_starts.clone();
            Box::pin(async move {
                if message.data == b"slow"[..] {
                    slow_starts.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                AppStatus::Success
            }) as futures::future::BoxFuture<'static, AppStatus>
        }
    };
    let subscription = pubsub.subscribe("keep", handler).await.unwrap();
    pubsub.publish("keep", b"slow".to_vec()).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while slow_starts.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the slow handler never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pubsub
        .publish("keep", b"fault:trap".to_vec())
        .await
        .unwrap();
    // Three ack waits, while the handler of the first delivery still runs: a wait that
    // has to pass for a missing in-progress to show.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    // Then `slow` (stream sequence 1) is acknowledged, so it can never come back: a
    // redelivery could only have happened while its handler ran, and would have started
    // another one.
    let deadline = Instant::now() + WAIT;
    loop {
        let info = support::consumer_info(&server.url(), "KEEP", "keep").await;
        if info.is_some_and(|info| info.ack_floor.stream_sequence >= 1) {
            break;
        }
        assert!(Instant::now() < deadline, "slow was never acknowledged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        slow_starts.load(Ordering::SeqCst),
        1,
        "the message whose handler was running was not redelivered"
    );
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_runaway_loop_is_stopped_and_waiting_does_not_count() {
    let server = support::server();
    support::stream(&server, "SPIN", &["spin", "other"]).await;
    let budget = Duration::from_millis(300);
    let runtime = faulty_runtime(SandboxLimits::new().cpu_per_call(budget));
    let md = support::metadata(&[("natsURL", &server.url()), ("maxDeliver", "1")]);
    let pubsub = runtime.pubsub(md).await.unwrap();

    // A handler slower than the budget, and pumps that wait a second each: neither is
    // the component computing, so neither may trip the budget.
    let other = Recorder::new();
    let record = other.accept_all();
    let slow_handler = move |message: Message| {
        let status = record(message);
        async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            status.await
        }
    };
    let other_subscription = pubsub.subscribe("other", slow_handler).await.unwrap();
    let spinner = Recorder::new();
    let spin_subscription = pubsub
        .subscribe("spin", spinner.accept_all())
        .await
        .unwrap();

    pubsub
        .publish("spin", b"fault:spin".to_vec())
        .await
        .unwrap();
    let started = Instant::now();
    pubsub.publish("other", b"slow-1".to_vec()).await.unwrap();
    other
        .wait_until(WAIT, "slow-1 while the other instance spins", |m| {
            !m.is_empty()
        })
        .await;
    pubsub
        .publish("spin", b"after-spin".to_vec())
        .await
        .unwrap();
    spinner
        .wait_until(WAIT, "the spinning subscription to recover", |m| {
            !m.is_empty()
        })
        .await;
    assert!(started.elapsed() < WAIT);
    assert_eq!(
        spinner.payloads(),
        vec!["after-spin"],
        "the runaway call was stopped, the subscription went on"
    );
    // Settled: slow-1 was answered after its handler, once (a handler cut off by the
    // budget would leave it unacknowledged, and maxDeliver 1 never sends it again).
    let info = support::settled(&server.url(), other_subscription.consumer()).await;
    assert_eq!(info.delivered.consumer_sequence, 1);
    assert_eq!(
        other.payloads(),
        vec!["slow-1"],
        "the slow handler was not cut off, nor its message redelivered"
    );
    other_subscription.stop().await.unwrap();
    spin_subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn unbounded_allocation_hits_the_memory_cap() {
    let server = support::server();
    support::stream(&server, "HOG", &["hog"]).await;
    let runtime = faulty_runtime(SandboxLimits::new().memory_bytes(32 << 20));
    let md = support::metadata(&[("natsURL", &server.url()), ("maxDeliver", "1")]);
    let pubsub = runtime.pubsub(md).await.unwrap();
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe("hog", recorder.accept_all())
        .await
        .unwrap();
    // The ones after the hog arrive while it allocates, or in its batch: with one
    // delivery each, they must all reach the application through the next instance.
    let after: Vec<String> = (1..=20).map(|i| format!("after-hog-{i}")).collect();
    let publishes = std::iter::once("fault:hog".to_string())
        .chain(after.iter().cloned())
        .map(|payload| pubsub.publish("hog", payload.into_bytes()));
    for ack in futures::future::join_all(publishes).await {
        ack.unwrap();
    }
    recorder
        .wait_until(WAIT, "the messages after the hog", |m| {
            m.len() >= after.len()
        })
        .await;
    let mut received = recorder.payloads();
    received.sort_by_key(|payload| payload.trim_start_matches("after-hog-").parse::<u32>().ok());
    assert_eq!(received, after, "each once, and never the hog");
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

#[tokio::test]
async fn the_transport_refuses_subjects_outside_the_components_reach() {
    let server = support::server();
    support::stream(&server, "SAFE", &["safe"]).await;
    let (runtime, pubsub) = support::pubsub(&server, &[]).await;
    for subject in [
        "$JS.API.STREAM.DELETE.SAFE",
        "$SYS.REQ.SERVER.PING",
        "_INBOX.someone-else",
    ] {
        let err = pubsub.publish(subject, b"{}".to_vec()).await.unwrap_err();
        assert!(err.to_string().contains("not allowed"), "{subject}: {err}");
    }
    let ack = pubsub
        .publish("safe", b"still-here".to_vec())
        .await
        .unwrap();
    assert_eq!(
        (ack.stream.as_str(), ack.sequence),
        ("SAFE", 1),
        "the stream was not deleted"
    );
    let recorder = Recorder::new();
    let subscription = pubsub
        .subscribe("safe", recorder.handler(|_, _| AppStatus::Success))
        .await
        .unwrap();
    recorder
        .wait_until(WAIT, "the stored message", |m| !m.is_empty())
        .await;
    subscription.stop().await.unwrap();
    runtime.shutdown().await;
}

/// A component that sends without handing its pending acks back is refused once it holds
/// as many as the host's batch limit: it cannot pile up unbounded host state, and its
/// instance is replaced rather than left refusing every later publish.
#[tokio::test]
async fn a_component_cannot_pile_up_pending_acks() {
    let server = support::server();
    support::stream(&server, "HOARD", &["hoard"]).await;
    let runtime = faulty_runtime(SandboxLimits::new().max_batch(8));
    let md = support::metadata(&[("natsURL", &server.url())]);
    let pubsub = runtime.pubsub(md).await.unwrap();

    let err = pubsub
        .publish("hoard", b"fault:hoard".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(err, jetstream_pubsub_host::Error::Terminal(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("holds 8 pending acks"), "{err}");

    // The eight sends the host allowed were stored; the ninth never left.
    let client = async_nats::connect(server.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let mut stream = jetstream.get_stream("HOARD").await.unwrap();
    let deadline = Instant::now() + WAIT;
    let mut stored = 0;
    while Instant::now() < deadline {
        stored = stream.info().await.unwrap().state.messages;
        if stored >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stream.info().await.unwrap().state.messages, 8, "{stored}");

    // The instance that kept them is replaced: publishing works again, well past the limit.
    // The 28 below also bounds a ninth send: had it left, it would have been stored before
    // these, which are acknowledged.
    for n in 1..=20 {
        pubsub
            .publish("hoard", format!("after-{n}").into_bytes())
            .await
            .unwrap_or_else(|err| panic!("publish {n} after the hoard: {err}"));
    }
    assert_eq!(stream.info().await.unwrap().state.messages, 28);
    runtime.shutdown().await;
}

/// A bulk publish larger than the host's batch limit is refused entry by entry, naming the
/// limit, and nothing of it is stored; a batch at the limit goes through, and its pending
/// acks, awaited by the host after the call, do not count against the next batch.
#[tokio::test]
async fn a_bulk_publish_over_the_batch_limit_fails_entry_by_entry() {
    let server = support::server();
    support::stream(&server, "BATCH", &["batch"]).await;
    let runtime = Runtime::builder()
        .limits(SandboxLimits::new().max_batch(4))
        .build()
        .unwrap();
    let md = support::metadata(&[("natsURL", &server.url())]);
    let pubsub = runtime.pubsub(md).await.unwrap();
    let entries = |count: usize| -> Vec<BulkEntry> {
        (0..count)
            .map(|n| BulkEntry {
                entry_id: format!("e{n}"),
                data: format!("m{n}").into_bytes(),
                content_type: None,
                metadata: Vec::new(),
            })
            .collect()
    };

    // Five messages to send (over the limit of four) and one entry the component refuses
    // itself: that one keeps its own error, the others fail with the host's refusal.
    let mut over = entries(5);
    over.insert(
        2,
        BulkEntry {
            entry_id: "bad-header".into(),
            data: b"x".to_vec(),
            content_type: None,
            metadata: support::metadata(&[("no spaces allowed", "v")]),
        },
    );
    let mut results = pubsub
        .bulk_publish("batch", over, Vec::new())
        .await
        .unwrap();
    assert_eq!(results.len(), 6);
    let bad = results.remove(2);
    assert_eq!(bad.entry_id, "bad-header");
    assert!(
        matches!(
            bad.outcome,
            Err(jetstream_pubsub_host::Error::InvalidMetadata(_))
        ),
        "{:?}",
        bad.outcome
    );
    let ids: Vec<_> = results.iter().map(|r| r.entry_id.as_str()).collect();
    assert_eq!(ids, ["e0", "e1", "e2", "e3", "e4"]);
    for result in &results {
        let err = result.outcome.as_ref().unwrap_err();
        assert!(
            matches!(err, jetstream_pubsub_host::Error::Terminal(_)),
            "{}: {err:?}",
            result.entry_id
        );
        assert!(
            err.to_string()
                .contains("a batch of 5 messages exceeds the host limit of 4"),
            "{err}"
        );
    }
    let client = async_nats::connect(server.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let mut stream = jetstream.get_stream("BATCH").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 0);

    for round in 0..2u64 {
        let results = pubsub
            .bulk_publish("batch", entries(4), Vec::new())
            .await
            .unwrap();
        let sequences: Vec<u64> = results
            .iter()
            .map(|result| result.outcome.as_ref().unwrap().sequence)
            .collect();
        let first = round * 4 + 1;
        assert_eq!(sequences, (first..first + 4).collect::<Vec<_>>());
    }
    assert_eq!(stream.info().await.unwrap().state.messages, 8);
    runtime.shutdown().await;
}

/// A component that traps while judging a failed PubAck does not turn the failure into a
/// trap: the caller gets the failure itself, retriable, and the instance is replaced.
#[tokio::test]
async fn a_trap_while_judging_a_failed_publish_still_reports_the_failure() {
    let server = support::server();
    support::stream(&server, "AFTER", &["after"]).await;
    let runtime = faulty_runtime(SandboxLimits::default());
    let md = support::metadata(&[("natsURL", &server.url())]);
    let pubsub = runtime.pubsub(md).await.unwrap();
    let mut stand_in = StandIn::new(&server, "fault.verdict").await;

    let publish = pubsub.publish("fault.verdict", b"judged".to_vec());
    tokio::pin!(publish);
    let request = stand_in.receive(&mut publish).await;
    stand_in.answer(request, stand_in::API_ERROR).await;
    let err = publish.await.unwrap_err();
    assert!(
        matches!(err, jetstream_pubsub_host::Error::Retriable(_)),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("maximum messages exceeded"),
        "{err}"
    );

    let ack = pubsub.publish("after", b"after".to_vec()).await.unwrap();
    assert_eq!((ack.stream.as_str(), ack.sequence), ("AFTER", 1));
    runtime.shutdown().await;
}
