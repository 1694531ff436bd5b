//! What an embedder can tell the sandbox, proven with the real component against real
//! servers: the servers the component may make the host connect to and the files it may make
//! the host read (refusals are values naming the server or path and the rule, never traps),
//! the caps on subscriptions, resources and pooled clients, and that a server slow to answer
//! delays only the instances that asked for it.

mod support;

use std::time::Duration;

use futures::FutureExt as _;
use jetstream_pubsub_host::{Error, Runtime, SandboxLimits, SandboxPolicy};

fn runtime(policy: SandboxPolicy, limits: SandboxLimits) -> Runtime {
    Runtime::builder()
        .policy(policy)
        .limits(limits)
        .build()
        .expect("the embedded component loads")
}

/// The error of a call expected to fail, as text.
fn failure<T>(result: Result<T, Error>, what: &str) -> Error {
    match result {
        Ok(_) => panic!("{what}: expected a failure"),
        Err(err) => err,
    }
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("nats://").to_string()
}

#[tokio::test]
async fn a_server_outside_the_allow_list_is_refused_before_any_connection() {
    let server = support::server();
    support::stream(&server, "POLICY", &["policy"]).await;
    // A listener standing for a server the component was not allowed: a connection attempt
    // would sit in its accept queue.
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_url = format!("nats://{}", elsewhere.local_addr().unwrap());
    let allowed = runtime(
        SandboxPolicy::deny_all()
            .allow_server(&host_port(&server.url()))
            .unwrap(),
        SandboxLimits::default(),
    );

    let err = failure(
        allowed
            .pubsub(support::metadata(&[("natsURL", &elsewhere_url)]))
            .await,
        "a server nobody allowed is refused",
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "cannot connect to {elsewhere_url}: not a server the sandbox allows (allow-server)"
        )),
        "{text}"
    );
    assert!(
        !text.contains(&host_port(&server.url())),
        "the component is not told what is allowed: {text}"
    );
    // An allowed address with the other one smuggled behind an `@` in a path, a query or a
    // fragment: one parse decides what is checked and what is connected to, so it is
    // refused, not connected to the other server.
    for smuggled in ["/@", "?@", "#@"] {
        let url = format!("{}{smuggled}{}", server.url(), host_port(&elsewhere_url));
        let err = failure(
            allowed
                .pubsub(support::metadata(&[("natsURL", &url)]))
                .await,
            "a server smuggled into a URL's path is refused",
        );
        assert!(
            err.to_string()
                .contains("a server URL holds a scheme, a host and a port only"),
            "{url}: {err}"
        );
    }
    assert!(
        elsewhere.accept().now_or_never().is_none(),
        "the host never tried to connect"
    );
    // One server of a cluster list outside the list refuses the whole connect.
    let err = failure(
        allowed
            .pubsub(support::metadata(&[(
                "natsURL",
                &format!("{},{elsewhere_url}", server.url()),
            )]))
            .await,
        "a list with one server nobody allowed is refused",
    );
    assert!(err.to_string().contains("allow-server"), "{err}");

    let pubsub = allowed
        .pubsub(support::metadata(&[("natsURL", &server.url())]))
        .await
        .expect("the allowed server is reached");
    let ack = pubsub.publish("policy", b"hello".to_vec()).await.unwrap();
    assert_eq!((ack.stream.as_str(), ack.sequence), ("POLICY", 1));
    allowed.shutdown().await;
}

#[tokio::test]
async fn a_credential_file_outside_the_allowed_paths_is_refused() {
    let server = support::server();
    let dir = tempfile::tempdir().unwrap();
    let allowed_dir = dir.path().join("allowed");
    std::fs::create_dir(&allowed_dir).unwrap();
    // Not a .creds file: reading it is what the policy decides, parsing it fails after.
    let inside = allowed_dir.join("user.creds");
    std::fs::write(&inside, "not credentials").unwrap();
    let outside = dir.path().join("outside.creds");
    std::fs::write(&outside, "not credentials").unwrap();
    let link = allowed_dir.join("link.creds");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let runtime = runtime(
        SandboxPolicy::deny_all()
            .allow_server(&host_port(&server.url()))
            .unwrap()
            .allow_path(&allowed_dir),
        SandboxLimits::default(),
    );
    let init = |path: &std::path::Path| {
        runtime.pubsub(support::metadata(&[
            ("natsURL", &server.url()),
            ("credsFile", path.to_str().unwrap()),
        ]))
    };

    for refused in [&outside, &link, &allowed_dir.join("../outside.creds")] {
        let text = failure(init(refused).await, "refused").to_string();
        assert!(
            text.contains(&format!(
                "cannot read the credentials file at {:?}",
                refused.to_str().unwrap()
            )) && text.contains("not a file the sandbox allows (allow-path)"),
            "{}: {text}",
            refused.display()
        );
    }
    let text = failure(init(&inside).await, "not a .creds file").to_string();
    assert!(
        text.contains("not a NATS .creds file") && !text.contains("allow-path"),
        "the allowed file is read: {text}"
    );
}

#[tokio::test]
async fn subscriptions_and_resources_are_capped_with_refusals_naming_the_limit() {
    let server = support::server();
    support::stream(&server, "CAPS", &["caps"]).await;
    let md = support::metadata(&[("natsURL", &server.url())]);

    let no_subscriptions = runtime(
        SandboxPolicy::new(),
        SandboxLimits::default().max_subscriptions(0),
    );
    let pubsub = no_subscriptions.pubsub(md.clone()).await.unwrap();
    let err = failure(
        pubsub
            .subscribe("caps", |_| async {
                jetstream_pubsub_host::AppStatus::Success
            })
            .await,
        "no subscription allowed",
    );
    assert!(
        err.to_string()
            .contains("the host limit (max_subscriptions) is 0"),
        "{err}"
    );
    assert!(
        !matches!(err, Error::Trap(_)),
        "a refusal, not a trap: {err}"
    );
    pubsub
        .publish("caps", b"publishing is unaffected".to_vec())
        .await
        .unwrap();

    // One resource: the connection takes it, a publish's pending ack finds no room.
    let one_resource = runtime(
        SandboxPolicy::new(),
        SandboxLimits::default().max_resources(1),
    );
    let pubsub = one_resource.pubsub(md).await.unwrap();
    let err = failure(
        pubsub
            .publish("caps", b"no room for its ack".to_vec())
            .await,
        "no room for a pending ack",
    );
    assert!(err.to_string().contains("max_resources"), "{err}");
    assert!(
        !matches!(err, Error::Trap(_)),
        "a refusal, not a trap: {err}"
    );
    no_subscriptions.shutdown().await;
    one_resource.shutdown().await;
}

#[tokio::test]
async fn the_client_pool_closes_idle_clients_and_refuses_past_its_cap() {
    let server = support::server();
    let runtime = runtime(
        SandboxPolicy::new(),
        SandboxLimits::default().max_clients(1),
    );
    // Two spellings of one server are two sets of connect options: two clients.
    let first = runtime
        .pubsub(support::metadata(&[("natsURL", &server.url())]))
        .await
        .unwrap();
    let other_spelling = server.url().replace("127.0.0.1", "localhost");
    let err = failure(
        runtime
            .pubsub(support::metadata(&[("natsURL", &other_spelling)]))
            .await,
        "the one client is in use",
    );
    assert!(
        err.to_string()
            .contains("already holds 1 NATS clients, its limit (max_clients)"),
        "{err}"
    );
    // Once nothing holds the first client, it is closed to make room.
    drop(first);
    let second = runtime
        .pubsub(support::metadata(&[("natsURL", &other_spelling)]))
        .await
        .expect("the idle client made room");
    second.publish("nowhere", b"x".to_vec()).await.ok();
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_server_slow_to_answer_does_not_stall_other_connects() {
    let server = support::server();
    // Accepts connections and never says a word: a connect to it waits for its timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("nats://{}", silent.local_addr().unwrap());
    let runtime = support::runtime();

    let stuck = tokio::spawn({
        let runtime = runtime.clone();
        async move {
            runtime
                .pubsub(support::metadata(&[("natsURL", &silent_url)]))
                .await
        }
    });
    // The stuck connect is under way once the silent server has its connection.
    let (_held, _) = tokio::time::timeout(Duration::from_secs(30), silent.accept())
        .await
        .expect("the host connects to the silent server")
        .unwrap();

    let pubsub = runtime
        .pubsub(support::metadata(&[("natsURL", &server.url())]))
        .await
        .expect("another server is reached meanwhile");
    assert!(
        !stuck.is_finished(),
        "the other connect finished while the silent server still held its own"
    );
    drop(pubsub);
    assert!(
        stuck.await.unwrap().is_err(),
        "the silent server's connect times out"
    );
    runtime.shutdown().await;
}
