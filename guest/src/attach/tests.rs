//! The consumer logic against [`FakeServer`]: each case checks the result and every
//! transport call made, in order.

use super::fake::{API_PREFIX, Call, FakeServer};
use super::*;
use crate::consumer::plan_consumer;
use crate::failure::ApiError;
use crate::metadata::parse;

/// The plan for `orders` with these metadata keys.
fn plan(pairs: &[(&str, &str)]) -> ConsumerPlan {
    let mut props = vec![("natsURL".to_owned(), "nats://h".to_owned())];
    props.extend(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    plan_consumer(&parse(&props).expect("valid metadata"), "orders")
}

fn target(plan: &ConsumerPlan) -> Target<'_> {
    Target {
        stream: "S",
        topic: "orders",
        plan,
    }
}

/// A consumer on the server: filtered on `orders`, pushing to `deliver_subject`.
fn consumer(
    name: &str,
    deliver_subject: &str,
    group: Option<&str>,
    bound: bool,
) -> ExistingConsumer {
    ExistingConsumer {
        name: name.to_owned(),
        filter_subject: "orders".to_owned(),
        deliver_subject: Some(deliver_subject.to_owned()),
        deliver_group: group.map(str::to_owned),
        push_bound: bound,
    }
}

fn jetstream(status: u16, code: u16, description: &str) -> TransportFailure {
    TransportFailure::Jetstream(ApiError {
        status,
        code,
        description: description.to_owned(),
    })
}

fn no_jetstream(what: &str) -> PubSubError {
    PubSubError::Retriable(format!(
        "{what}: no JetStream answered on {API_PREFIX} (check domain and apiPrefix, and that JetStream is enabled)"
    ))
}

/// The subscription listens on `subject`, and its consumer pushes there.
fn assert_listens_where_it_pushes(attached: &(ExistingConsumer, String), subject: &str) {
    let (consumer, listener) = attached;
    assert_eq!(listener, subject);
    assert_eq!(consumer.deliver_subject.as_deref(), Some(subject));
}

const ALREADY_BOUND: &str = "consumer is already bound to a subscription (consumer \"d\"; set queueGroupName for competing consumers)";

#[test]
fn an_ephemeral_consumer_is_created_on_a_fresh_inbox_and_listened_to() {
    let server = FakeServer::default();
    let plan = plan(&[]);
    let (consumer, listener) = listen(&server, &target(&plan)).expect("attached");
    assert_eq!(listener, "_INBOX.1");
    assert_eq!(consumer.name, "EPH1");
    assert_eq!(
        server.calls(),
        ["create S (ephemeral) on a fresh inbox", "listen _INBOX.1"]
    );
}

#[test]
fn a_consumer_created_without_a_deliver_subject_is_not_listened_to() {
    let server = FakeServer::default();
    server.pull_only.set(true);
    let plan = plan(&[]);
    assert_eq!(
        listen(&server, &target(&plan)).map(|_| ()),
        Err(PubSubError::Terminal(
            "the server created consumer \"EPH0\" without a deliver subject".into()
        ))
    );
    assert_eq!(server.calls(), ["create S (ephemeral) on a fresh inbox"]);
}

#[test]
fn an_existing_durable_is_joined_and_updated_in_place_on_its_deliver_subject() {
    // Unbound without a queue group, or bound in the same deliver group: both are joined.
    for (existing, pairs) in [
        (
            consumer("d", "_INBOX.old", None, false),
            &[("durableName", "d")][..],
        ),
        (
            consumer("d", "_INBOX.old", Some("q"), true),
            &[("durableName", "d"), ("queueGroupName", "q")][..],
        ),
    ] {
        let server = FakeServer::with([existing]);
        let plan = plan(pairs);
        let attached = listen(&server, &target(&plan)).expect("joined");
        assert_listens_where_it_pushes(&attached, "_INBOX.old");
        let group = plan
            .deliver_group
            .as_ref()
            .map(|q| format!(" in {q}"))
            .unwrap_or_default();
        // Joined, not created: no read-back.
        assert_eq!(
            server.calls(),
            [
                "info S d".to_owned(),
                "create S d on _INBOX.old".to_owned(),
                format!("listen _INBOX.old{group}"),
            ]
        );
    }
}

#[test]
fn an_existing_durable_the_binding_rules_refuse_is_neither_updated_nor_listened_to() {
    let cases = [
        (consumer("d", "_INBOX.old", None, true), ALREADY_BOUND.to_owned()),
        (
            ExistingConsumer {
                filter_subject: "payments".into(),
                ..consumer("d", "_INBOX.old", None, false)
            },
            "subject does not match consumer: consumer \"d\" is filtered on \"payments\", not topic \"orders\" (use one durableName per topic)".to_owned(),
        ),
    ];
    for (existing, text) in cases {
        let server = FakeServer::with([existing]);
        let plan = plan(&[("durableName", "d")]);
        assert_eq!(
            listen(&server, &target(&plan)).map(|_| ()),
            Err(PubSubError::Terminal(text))
        );
        assert_eq!(server.calls(), ["info S d"]);
    }
}

#[test]
fn an_update_the_server_refuses_is_terminal_and_one_it_never_answered_retriable() {
    let cases = [
        (
            jetstream(400, 10013, "deliver group can not be updated"),
            PubSubError::Terminal(
                "consumer name already in use: creating consumer \"d\" on stream \"S\": deliver group can not be updated".into(),
            ),
        ),
        (
            TransportFailure::NoResponders("no responders".into()),
            no_jetstream("updating the consumer"),
        ),
        (
            TransportFailure::TimedOut("timed out".into()),
            PubSubError::Retriable("updating the consumer: timed out".into()),
        ),
    ];
    for (failure, error) in cases {
        let server = FakeServer::with([consumer("d", "_INBOX.old", None, false)]);
        server.fail(Call::Create, 1, failure);
        let plan = plan(&[("durableName", "d")]);
        assert_eq!(listen(&server, &target(&plan)).map(|_| ()), Err(error));
        assert_eq!(server.calls(), ["info S d", "create S d on _INBOX.old"]);
    }
}

#[test]
fn a_durable_created_here_is_read_back_and_kept_where_it_listens() {
    let server = FakeServer::default();
    let plan = plan(&[("durableName", "d")]);
    let (consumer, listener) = listen(&server, &target(&plan)).expect("created");
    assert_eq!(
        (consumer.name.as_str(), listener.as_str()),
        ("d", "_INBOX.1")
    );
    assert_eq!(
        server.calls(),
        [
            "info S d",
            "create S d on a fresh inbox",
            "listen _INBOX.1",
            "info S d"
        ]
    );
    // Deleted before the read-back: the listener stays.
    let server = FakeServer::default();
    server.before(Call::Listen, 1, |consumers| {
        consumers.remove("d");
    });
    let (_, listener) = listen(&server, &target(&plan)).expect("created");
    assert_eq!(listener, "_INBOX.1");
    assert_eq!(server.calls().len(), 4);
}

#[test]
fn a_create_that_loses_the_race_joins_the_durable_the_other_replica_created() {
    let server = FakeServer::default();
    // The other replica creates the durable between our lookup and our create.
    server.before(Call::Create, 1, |consumers| {
        let rival = consumer("d", "_INBOX.rival", None, false);
        consumers.insert("d".into(), rival);
    });
    server.fail(
        Call::Create,
        1,
        jetstream(400, 10148, "consumer already exists"),
    );
    let plan = plan(&[("durableName", "d")]);
    let attached = listen(&server, &target(&plan)).expect("joined");
    assert_listens_where_it_pushes(&attached, "_INBOX.rival");
    assert_eq!(
        server.calls(),
        [
            "info S d",
            "create S d on a fresh inbox",
            "info S d",
            "create S d on _INBOX.rival",
            "listen _INBOX.rival",
        ]
    );
}

#[test]
fn a_failed_create_with_no_durable_behind_it_reports_the_create_failure() {
    // The second lookup finds nothing, or fails itself: the create's failure is reported.
    for second_lookup_fails in [false, true] {
        let server = FakeServer::default();
        server.fail(
            Call::Create,
            1,
            jetstream(503, 10023, "insufficient resources"),
        );
        if second_lookup_fails {
            server.fail(
                Call::Info,
                2,
                TransportFailure::TimedOut("timed out".into()),
            );
        }
        let plan = plan(&[("durableName", "d")]);
        assert_eq!(
            listen(&server, &target(&plan)).map(|_| ()),
            Err(PubSubError::Terminal(
                "creating a consumer on stream \"S\" for orders: insufficient resources (status 503, code 10023)".into()
            ))
        );
        assert_eq!(
            server.calls(),
            ["info S d", "create S d on a fresh inbox", "info S d"]
        );
    }
}

#[test]
fn when_another_replica_moved_the_deliver_subject_without_a_queue_group_it_wins() {
    let server = FakeServer::default();
    // Both created the durable; the other replica's create moved its deliver subject before
    // we listened, and it has not listened yet itself.
    server.before(Call::Listen, 1, |consumers| {
        consumers.insert("d".into(), consumer("d", "_INBOX.rival", None, false));
    });
    let plan = plan(&[("durableName", "d")]);
    assert_eq!(
        listen(&server, &target(&plan)).map(|_| ()),
        Err(PubSubError::Terminal(ALREADY_BOUND.into()))
    );
    assert_eq!(
        server.calls(),
        [
            "info S d",
            "create S d on a fresh inbox",
            "listen _INBOX.1",
            "info S d",
            "unsubscribe _INBOX.1",
        ]
    );
}

#[test]
fn when_another_replica_moved_the_deliver_subject_of_a_queue_group_both_listen_there() {
    let server = FakeServer::default();
    server.before(Call::Listen, 1, |consumers| {
        consumers.insert("d".into(), consumer("d", "_INBOX.rival", Some("q"), false));
    });
    let plan = plan(&[("durableName", "d"), ("queueGroupName", "q")]);
    let attached = listen(&server, &target(&plan)).expect("joined where it moved");
    assert_listens_where_it_pushes(&attached, "_INBOX.rival");
    assert_eq!(
        server.calls(),
        [
            "info S d",
            "create S d on a fresh inbox",
            "listen _INBOX.1 in q",
            "info S d",
            "unsubscribe _INBOX.1",
            "create S d on _INBOX.rival",
            "listen _INBOX.rival in q",
        ]
    );
    assert!(server.consumer("d").is_some_and(|d| d.push_bound));
}

#[test]
fn resume_binds_to_the_failed_instances_consumer_though_it_still_looks_bound() {
    // The server still counts the dead instance's listener; the consumer is not updated.
    let server = FakeServer::with([consumer("EPH7", "_INBOX.7", None, true)]);
    let plan = plan(&[]);
    let (consumer, listener) = resume(&server, &target(&plan), "EPH7")
        .expect("resumed")
        .expect("the consumer exists");
    assert_eq!(listener, "_INBOX.7");
    assert_eq!(consumer.name, "EPH7");
    assert_eq!(server.calls(), ["info S EPH7", "listen _INBOX.7"]);
}

#[test]
fn resume_finds_nothing_when_the_consumer_is_gone_and_reports_what_fails() {
    let plan = plan(&[]);
    let server = FakeServer::default();
    assert_eq!(resume(&server, &target(&plan), "EPH7"), Ok(None));
    assert_eq!(server.calls(), ["info S EPH7"]);

    let server = FakeServer::default();
    server.fail(
        Call::Info,
        1,
        TransportFailure::NoResponders("no responders".into()),
    );
    assert_eq!(
        resume(&server, &target(&plan), "EPH7").map(|_| ()),
        Err(no_jetstream("consumer info of \"EPH7\" on stream \"S\""))
    );

    let server = FakeServer::with([ExistingConsumer {
        deliver_subject: None,
        ..consumer("EPH7", "", None, false)
    }]);
    assert_eq!(
        resume(&server, &target(&plan), "EPH7").map(|_| ()),
        Err(PubSubError::Terminal(
            "must use pull subscribe to bind to pull based consumer (consumer \"EPH7\")".into()
        ))
    );

    let server = FakeServer::with([consumer("EPH7", "_INBOX.7", None, false)]);
    server.fail(
        Call::Listen,
        1,
        TransportFailure::Refused("too many subscriptions (16)".into()),
    );
    assert_eq!(
        resume(&server, &target(&plan), "EPH7").map(|_| ()),
        Err(PubSubError::Terminal(
            "subscribing to orders: too many subscriptions (16)".into()
        ))
    );
}
