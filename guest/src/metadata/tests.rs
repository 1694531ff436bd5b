//! Table-driven tests of [`parse`]: the reference's vectors (§2.6), its additional table, and one
//! case per rule, each asserting the parsed value or the exact error text.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::consumer::plan_consumer;

const URL: (&str, &str) = ("natsURL", "nats://localhost:4222");

fn props(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Parses `natsURL` plus `pairs`.
fn parse_with_url(pairs: &[(&str, &str)]) -> Result<Metadata, MetadataError> {
    let mut all = vec![URL];
    all.extend_from_slice(pairs);
    parse(&props(&all))
}

fn error_text(pairs: &[(&str, &str)]) -> String {
    match parse(&props(pairs)) {
        Ok(m) => panic!("{pairs:?} parsed to {m:?}"),
        Err(e) => e.to_string(),
    }
}

fn one_decode_error(line: &str) -> String {
    format!("1 error(s) decoding:\n\n* {line}")
}

fn defaults() -> Metadata {
    Metadata {
        servers: vec!["nats://localhost:4222".to_owned()],
        name: DEFAULT_NAME.to_owned(),
        jwt: None,
        seed_key: None,
        token: None,
        tls_client_cert: None,
        tls_client_key: None,
        user: None,
        password: None,
        creds_file: None,
        nkey: None,
        tls_ca: None,
        stream_name: None,
        durable_name: None,
        queue_group_name: None,
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::ZERO,
        max_deliver: 0,
        backoff: vec![],
        max_ack_pending: 0,
        replicas: 0,
        memory_storage: false,
        rate_limit: 0,
        heartbeat: Duration::ZERO,
        flow_control: false,
        domain: None,
        api_prefix_key: None,
        concurrency: Concurrency::Single,
    }
}

/// The fields shared by the reference's two valid vectors.
const REFERENCE_COMMON: &[(&str, &str)] = &[
    ("natsURL", "nats://localhost:4222"),
    ("name", "myName"),
    ("durableName", "myDurable"),
    ("queueGroupName", "myQueue"),
    ("flowControl", "true"),
    ("ackWait", "2s"),
    ("maxDeliver", "10"),
    ("backOff", "500ms, 2s, 10s"),
    ("maxAckPending", "5000"),
    ("replicas", "3"),
    ("memoryStorage", "true"),
    ("rateLimit", "20000"),
    ("heartbeat", "1s"),
];

fn reference_common_expected() -> Metadata {
    Metadata {
        name: "myName".to_owned(),
        durable_name: Some("myDurable".to_owned()),
        queue_group_name: Some("myQueue".to_owned()),
        flow_control: true,
        ack_wait: Duration::from_secs(2),
        max_deliver: 10,
        backoff: vec![
            Duration::from_millis(500),
            Duration::from_secs(2),
            Duration::from_secs(10),
        ],
        max_ack_pending: 5000,
        replicas: 3,
        memory_storage: true,
        rate_limit: 20000,
        heartbeat: Duration::from_secs(1),
        ..defaults()
    }
}

// ---- The reference's vectors (§2.6) ----

#[test]
fn reference_valid_metadata() {
    let mut input = REFERENCE_COMMON.to_vec();
    input.extend([
        ("startSequence", "1"),
        ("startTime", "1629328511"),
        ("domain", "hub"),
    ]);
    // The reference parses this to "deliver all" and then fails at Subscribe (all + start
    // options); without deliverPolicy we apply the seed-era inference: start time wins.
    assert_eq!(
        parse(&props(&input)),
        Ok(Metadata {
            deliver_policy: DeliverPolicy::ByStartTime {
                unix_seconds: 1_629_328_511
            },
            domain: Some("hub".to_owned()),
            ..reference_common_expected()
        })
    );
}

#[test]
fn reference_valid_metadata_with_token() {
    let mut input = REFERENCE_COMMON.to_vec();
    input.extend([
        ("token", "myToken"),
        ("deliverPolicy", "sequence"),
        ("startSequence", "5"),
        ("ackPolicy", "all"),
        ("apiPrefix", "HUB"),
        ("concurrencyMode", "parallel"),
    ]);
    let expected = Metadata {
        token: Some(Secret::new("myToken")),
        deliver_policy: DeliverPolicy::ByStartSequence(5),
        ack_policy: AckPolicy::All,
        api_prefix_key: Some("HUB".to_owned()),
        concurrency: Concurrency::Parallel,
        ..reference_common_expected()
    };
    assert_eq!(parse(&props(&input)), Ok(expected.clone()));
    assert_eq!(expected.api_prefix(), "HUB");

    // The reference's vector also sets startTime, which the server rejects with
    // deliverPolicy=sequence at Subscribe; we reject it at parse with the same words.
    input.push(("startTime", "1629328511"));
    assert_eq!(
        error_text(&input),
        "consumer delivery policy is deliver by start sequence, but optional start time is also set"
    );
}

#[test]
fn reference_error_vectors() {
    let base: &[(&str, &str)] = &[
        ("natsURL", "nats://localhost:4222"),
        ("name", "myName"),
        ("durableName", "myDurable"),
        ("queueGroupName", "myQueue"),
        ("startSequence", "1"),
        ("startTime", "1629328511"),
        ("flowControl", "true"),
    ];
    let cases = [
        (("jwt", "eyJhbGciOiJIUzI1NiJ9.e30.x"), "missing seed key"),
        (
            (
                "seedKey",
                "SUACS34K232OKPRDOMKC6QEWXWUDJTT6R6RZM2WPMURUS5Z3POU7BNIL4Y",
            ),
            "missing jwt",
        ),
        (
            ("tls_client_cert", "/path/to/tls.pem"),
            "missing tls client key",
        ),
        (
            ("tls_client_key", "/path/to/tls.key"),
            "missing tls client cert",
        ),
    ];
    for (extra, want) in cases {
        let mut input = base.to_vec();
        input.push(extra);
        assert_eq!(error_text(&input), want, "{extra:?}");
    }
}

// ---- The additional table of §2.6 ----

#[test]
fn nothing_but_the_url_gives_the_defaults() {
    assert_eq!(parse_with_url(&[]), Ok(defaults()));
}

#[test]
fn missing_nats_url() {
    for input in [
        &[][..],
        &[("natsURL", "")][..],
        &[("natsURL", " , ,")][..],
        &[("natsURL", " / ")][..],
        &[("name", "x")][..],
    ] {
        assert_eq!(error_text(input), "missing nats URL", "{input:?}");
    }
}

#[test]
fn deliver_policy_is_case_sensitive() {
    assert_eq!(
        error_text(&[URL, ("deliverPolicy", "ALL")]),
        "deliver policy ALL is not one of: all, last, new, sequence, time"
    );
}

#[test]
fn ack_policy_never_fails() {
    let cases = [
        ("NONE", AckPolicy::Explicit),
        ("", AckPolicy::Explicit),
        ("explicit", AckPolicy::Explicit),
        ("all", AckPolicy::All),
        ("none", AckPolicy::None),
    ];
    for (value, want) in cases {
        let m = parse_with_url(&[("ackPolicy", value)]).unwrap();
        assert_eq!(m.ack_policy, want, "{value:?}");
    }
}

#[test]
fn concurrency_keys() {
    let ok: &[(&[(&str, &str)], Concurrency)] = &[
        (&[], Concurrency::Single),
        (&[("concurrencyMode", "parallel")], Concurrency::Parallel),
        (&[("concurrencyMode", "single")], Concurrency::Single),
        (&[("concurrency", "parallel")], Concurrency::Parallel),
        (
            &[("concurrency", "single"), ("concurrencyMode", "parallel")],
            Concurrency::Parallel,
        ),
        (
            &[("concurrency", "parallel"), ("concurrencyMode", "single")],
            Concurrency::Single,
        ),
        (
            &[("concurrency", "parallel"), ("concurrencyMode", "")],
            Concurrency::Parallel,
        ),
        (&[("concurrency", "")], Concurrency::Single),
        // A valid concurrencyMode wins, and the reference never validates the loser.
        (
            &[("concurrency", "bogus"), ("concurrencyMode", "parallel")],
            Concurrency::Parallel,
        ),
        (
            &[("concurrency", "PARALLEL"), ("concurrencyMode", "single")],
            Concurrency::Single,
        ),
        // Keys are case-insensitive here, concurrencyMode included (the reference reads that one
        // case-sensitively).
        (&[("CONCURRENCYMODE", "parallel")], Concurrency::Parallel),
        (&[("Concurrency", "parallel")], Concurrency::Parallel),
    ];
    for &(input, want) in ok {
        assert_eq!(
            parse_with_url(input).unwrap().concurrency,
            want,
            "{input:?}"
        );
    }
    let bad: &[(&[(&str, &str)], &str)] = &[
        (
            &[("concurrencyMode", "bogus")],
            "invalid concurrencyMode bogus",
        ),
        (
            &[("concurrencyMode", "Parallel")],
            "invalid concurrencyMode Parallel",
        ),
        // Deliberate fix: the reference accepts these and fails at Subscribe.
        (
            &[("concurrency", "PARALLEL")],
            "invalid concurrencyMode PARALLEL",
        ),
        // An empty concurrencyMode is absent: concurrency is in force, and checked.
        (
            &[("concurrency", "bogus"), ("concurrencyMode", "")],
            "invalid concurrencyMode bogus",
        ),
        // Both invalid: concurrencyMode's error, as the reference (which never reads the other).
        (
            &[("concurrency", "x"), ("concurrencyMode", "y")],
            "invalid concurrencyMode y",
        ),
    ];
    for &(input, want) in bad {
        let mut all = vec![URL];
        all.extend_from_slice(input);
        assert_eq!(error_text(&all), want, "{input:?}");
    }
}

#[test]
fn int_keys_use_base_zero() {
    let cases = [
        ("010", 8),
        ("0x10", 16),
        ("-1", -1),
        ("", 0),
        ("1_000", 1000),
        ("0b11", 3),
    ];
    for (value, want) in cases {
        let m = parse_with_url(&[("maxDeliver", value), ("maxAckPending", value)]).unwrap();
        assert_eq!(
            (m.max_deliver, m.max_ack_pending),
            (want, want),
            "{value:?}"
        );
    }
    let bad = [
        (
            "maxDeliver",
            "1.5",
            r#"cannot parse 'maxDeliver' as int: strconv.ParseInt: parsing "1.5": invalid syntax"#,
        ),
        (
            "maxDeliver",
            "abc",
            r#"cannot parse 'maxDeliver' as int: strconv.ParseInt: parsing "abc": invalid syntax"#,
        ),
        (
            "maxAckPending",
            " 5",
            r#"cannot parse 'maxAckPending' as int: strconv.ParseInt: parsing " 5": invalid syntax"#,
        ),
        (
            "replicas",
            "99999999999999999999",
            r#"cannot parse 'replicas' as int: strconv.ParseInt: parsing "99999999999999999999": value out of range"#,
        ),
    ];
    for (key, value, want) in bad {
        assert_eq!(
            error_text(&[URL, (key, value)]),
            one_decode_error(want),
            "{key}={value}"
        );
    }
}

#[test]
fn uint_keys_reject_negatives() {
    let bad = [
        (
            "startSequence",
            "-1",
            r#"cannot parse 'startSequence' as uint: strconv.ParseUint: parsing "-1": invalid syntax"#,
        ),
        (
            "startTime",
            "-5",
            r#"cannot parse 'startTime' as uint: strconv.ParseUint: parsing "-5": invalid syntax"#,
        ),
        (
            "rateLimit",
            "1e6",
            r#"cannot parse 'rateLimit' as uint: strconv.ParseUint: parsing "1e6": invalid syntax"#,
        ),
    ];
    for (key, value, want) in bad {
        assert_eq!(error_text(&[URL, (key, value)]), one_decode_error(want));
    }
    let m = parse_with_url(&[("rateLimit", "0x400"), ("startSequence", "010")]).unwrap();
    assert_eq!(m.rate_limit, 1024);
    assert_eq!(m.deliver_policy, DeliverPolicy::ByStartSequence(8));
}

#[test]
fn start_time_present_but_empty_is_the_epoch() {
    let m = parse_with_url(&[("startTime", "")]).unwrap();
    assert_eq!(
        m.deliver_policy,
        DeliverPolicy::ByStartTime { unix_seconds: 0 }
    );
    let m = parse_with_url(&[("deliverPolicy", "time"), ("startTime", "")]).unwrap();
    assert_eq!(
        m.deliver_policy,
        DeliverPolicy::ByStartTime { unix_seconds: 0 }
    );
}

#[test]
fn duration_keys() {
    let cases = [
        ("10", Duration::from_secs(10)),
        ("1m30s", Duration::from_secs(90)),
        ("500ms", Duration::from_millis(500)),
        ("1.5h", Duration::from_secs(5400)),
        ("", Duration::ZERO),
        ("0", Duration::ZERO),
        ("-0s", Duration::ZERO),
        ("1µs", Duration::from_micros(1)),
    ];
    for (value, want) in cases {
        let m = parse_with_url(&[("ackWait", value), ("heartbeat", value)]).unwrap();
        assert_eq!((m.ack_wait, m.heartbeat), (want, want), "{value:?}");
    }
    assert_eq!(
        error_text(&[URL, ("ackWait", "abc")]),
        one_decode_error(
            "error decoding 'ackWait': time: invalid duration \"abc\"\nstrconv.ParseInt: parsing \"abc\": invalid syntax"
        )
    );
    assert_eq!(
        error_text(&[URL, ("heartbeat", "5 s")]),
        one_decode_error(
            "error decoding 'heartbeat': time: unknown unit \" s\" in duration \"5 s\"\nstrconv.ParseInt: parsing \"5 s\": invalid syntax"
        )
    );
}

#[test]
fn backoff_lists() {
    let ms = Duration::from_millis;
    let cases: &[(&str, Vec<Duration>)] = &[
        ("1,2", vec![ms(1000), ms(2000)]),
        ("500ms, 2s, 10s", vec![ms(500), ms(2000), ms(10000)]),
        (" ,1s,", vec![ms(1000)]),
        ("", vec![]),
    ];
    for (value, want) in cases {
        assert_eq!(
            &parse_with_url(&[("backOff", value)]).unwrap().backoff,
            want
        );
    }
    assert_eq!(
        error_text(&[URL, ("backOff", "[1s, 2s]")]),
        one_decode_error(
            "error decoding 'backOff': time: invalid duration \"[1s\"\nstrconv.ParseInt: parsing \"[1s\": invalid syntax"
        )
    );
}

#[test]
fn truthy_booleans() {
    let cases = [
        ("YES ", true),
        ("false", false),
        ("xyz", false),
        ("1", true),
        ("", false),
    ];
    for (value, want) in cases {
        let m = parse_with_url(&[("flowControl", value), ("memoryStorage", value)]).unwrap();
        assert_eq!(
            (m.flow_control, m.memory_storage),
            (want, want),
            "{value:?}"
        );
    }
}

#[test]
fn keys_are_case_insensitive() {
    for key in ["NatsUrl", "NATSURL", "natsurl"] {
        let m = parse(&props(&[(key, "nats://a:4222")])).unwrap();
        assert_eq!(m.servers, vec!["nats://a:4222".to_owned()]);
    }
    let m = parse_with_url(&[
        ("DURABLENAME", "d"),
        ("ackwait", "3s"),
        ("ac\u{212A}Pending", "x"),    // not a key: ignored
        ("MaxAc\u{212A}Pending", "7"), // Kelvin sign folds to k, as in Go's EqualFold
    ])
    .unwrap();
    assert_eq!(m.durable_name.as_deref(), Some("d"));
    assert_eq!(m.ack_wait, Duration::from_secs(3));
    assert_eq!(m.max_ack_pending, 7);
}

#[test]
fn duplicate_keys_after_lowercasing() {
    assert_eq!(
        error_text(&[("natsURL", "nats://a"), ("natsurl", "nats://b")]),
        "failed to resolve aliases: key natsurl is duplicate in the metadata"
    );
    assert_eq!(
        error_text(&[URL, ("consumerID", "a"), ("CONSUMERID", "b")]),
        "failed to resolve aliases: key consumerid is duplicate in the metadata"
    );
}

#[test]
fn backoff_policy_is_validated() {
    assert_eq!(
        error_text(&[URL, ("backOffPolicy", "foo")]),
        one_decode_error(
            r#"error decoding 'backOffPolicy': invalid PolicyType "foo": unexpected back off policy type: foo"#
        )
    );
    let m = parse_with_url(&[
        ("backOffPolicy", "exponential"),
        ("backOffMaxRetries", "3"),
        ("backOffDuration", "5000"),
    ]);
    assert_eq!(m, Ok(defaults()));
}

// ---- Our rules ----

#[test]
fn decode_errors_are_all_reported_sorted() {
    let text = error_text(&[
        URL,
        ("ackWait", "x"),
        ("startSequence", "-1"),
        ("maxDeliver", "abc"),
    ]);
    assert_eq!(
        text,
        "3 error(s) decoding:\n\n\
         * cannot parse 'maxDeliver' as int: strconv.ParseInt: parsing \"abc\": invalid syntax\n\
         * cannot parse 'startSequence' as uint: strconv.ParseUint: parsing \"-1\": invalid syntax\n\
         * error decoding 'ackWait': time: invalid duration \"x\"\nstrconv.ParseInt: parsing \"x\": invalid syntax"
    );
    let Err(MetadataError::Decode(errors)) =
        parse(&props(&[URL, ("maxDeliver", "abc"), ("ackWait", "x")]))
    else {
        panic!("expected decode errors");
    };
    let keys: Vec<_> = errors.iter().map(DecodeError::key).collect();
    assert_eq!(keys, ["ackWait", "maxDeliver"]);
}

#[test]
fn validation_order() {
    // Each input has two faults; the first in the documented order wins.
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("natsURL", ""), ("natsurl", ""), ("maxDeliver", "x")],
            "failed to resolve aliases: key natsurl is duplicate in the metadata",
        ),
        (
            &[("maxDeliver", "x")],
            "1 error(s) decoding:\n\n* cannot parse 'maxDeliver' as int: strconv.ParseInt: parsing \"x\": invalid syntax",
        ),
        (&[("jwt", "j"), ("name", "")], "missing nats URL"),
        (
            &[URL, ("jwt", "j"), ("tls_client_cert", "c")],
            "missing seed key",
        ),
        (
            &[URL, ("seedKey", "s"), ("tls_client_key", "k")],
            "missing jwt",
        ),
        (
            &[URL, ("tls_client_cert", "c"), ("deliverPolicy", "x")],
            "missing tls client key",
        ),
        (
            &[URL, ("tls_client_key", "k"), ("deliverPolicy", "x")],
            "missing tls client cert",
        ),
        (
            &[URL, ("deliverPolicy", "x"), ("concurrencyMode", "y")],
            "deliver policy x is not one of: all, last, new, sequence, time",
        ),
        (
            &[URL, ("concurrencyMode", "y"), ("backOffPolicy", "z")],
            "invalid concurrencyMode y",
        ),
        (
            &[URL, ("backOffPolicy", "z"), ("concurrency", "y")],
            "1 error(s) decoding:\n\n* error decoding 'backOffPolicy': invalid PolicyType \"z\": unexpected back off policy type: z",
        ),
        (
            &[URL, ("concurrency", "y"), ("ackWait", "-1s")],
            "invalid concurrencyMode y",
        ),
        (
            &[URL, ("ackWait", "-1s"), ("durableName", "a.b")],
            r#"invalid ackWait "-1s": must not be negative"#,
        ),
        (
            &[
                URL,
                ("durableName", "a.b"),
                ("deliverPolicy", "new"),
                ("startSequence", "3"),
            ],
            r#"invalid durableName "a.b": must not contain whitespace, '.', '*', '>', '/' or '\'"#,
        ),
        (
            &[URL, ("deliverPolicy", "new"), ("startSequence", "3")],
            "consumer delivery policy is deliver new, but optional start sequence is also set",
        ),
    ];
    for &(input, want) in cases {
        assert_eq!(error_text(input), want, "{input:?}");
    }
}

#[test]
fn servers_are_split_like_nats_go() {
    let m = parse(&props(&[(
        "natsURL",
        " nats://a:4222/ ,, tls://b:4223,nats://c// ,",
    )]))
    .unwrap();
    assert_eq!(m.servers, ["nats://a:4222", "tls://b:4223", "nats://c/"]);
}

#[test]
fn name_defaults_when_empty() {
    assert_eq!(parse_with_url(&[("name", "")]).unwrap().name, DEFAULT_NAME);
    assert_eq!(parse_with_url(&[("name", " app ")]).unwrap().name, " app ");
}

#[test]
fn api_prefix_from_domain_and_prefix() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "$JS.API"),
        (&[("domain", "")], "$JS.API"),
        (&[("domain", "hub")], "$JS.hub.API"),
        (&[("apiPrefix", "HUB")], "HUB"),
        (&[("apiPrefix", "HUB.")], "HUB"),
        (
            &[("domain", "hub"), ("apiPrefix", "$JS.leaf.API.")],
            "$JS.leaf.API",
        ),
    ];
    for &(input, want) in cases {
        assert_eq!(
            parse_with_url(input).unwrap().api_prefix(),
            want,
            "{input:?}"
        );
    }
}

#[test]
fn numbers_the_wire_cannot_carry_are_rejected() {
    let cases = [
        (
            "ackWait",
            "-5s",
            r#"invalid ackWait "-5s": must not be negative"#,
        ),
        (
            "ackWait",
            "-5",
            r#"invalid ackWait "-5": must not be negative"#,
        ),
        (
            "heartbeat",
            "-1ms",
            r#"invalid heartbeat "-1ms": must not be negative"#,
        ),
        (
            "backOff",
            "1s, -2s",
            r#"invalid backOff "1s, -2s": must not be negative"#,
        ),
        (
            "ackWait",
            "9223372037",
            r#"invalid ackWait "9223372037": must be at most 2562047h47m16.854775807s (64-bit nanoseconds)"#,
        ),
        (
            "backOff",
            "1s,-9223372036854775807",
            r#"invalid backOff "1s,-9223372036854775807": must not be negative"#,
        ),
        (
            "replicas",
            "-1",
            r#"invalid replicas "-1": must not be negative"#,
        ),
        (
            "replicas",
            "0x100000000",
            r#"invalid replicas "0x100000000": must be at most 4294967295"#,
        ),
        (
            "startTime",
            "9223372037",
            r#"invalid startTime "9223372037": must be at most 9223372036 (unix seconds whose nanoseconds fit in 64 bits)"#,
        ),
    ];
    for (key, value, want) in cases {
        assert_eq!(error_text(&[URL, (key, value)]), want, "{key}={value}");
    }
    let m = parse_with_url(&[
        ("startTime", "9223372036"),
        ("ackWait", "9223372036"),
        ("replicas", "4294967295"),
        ("maxDeliver", "-1"),
        ("maxAckPending", "-1"),
    ])
    .unwrap();
    assert_eq!(
        m.deliver_policy,
        DeliverPolicy::ByStartTime {
            unix_seconds: 9_223_372_036
        }
    );
    assert_eq!(m.ack_wait, Duration::from_secs(9_223_372_036));
    assert_eq!(m.replicas, 4_294_967_295);
    assert_eq!((m.max_deliver, m.max_ack_pending), (-1, -1));
}

#[test]
fn subject_names_are_checked_and_empty_means_absent() {
    let rule = r"must not contain whitespace, '.', '*', '>', '/' or '\'";
    let cases = [
        ("durableName", "a.b"),
        ("durableName", "my durable"),
        ("streamName", "s>"),
        ("streamName", "a/b"),
    ];
    for (key, value) in cases {
        assert_eq!(
            error_text(&[URL, (key, value)]),
            format!("invalid {key} \"{value}\": {rule}")
        );
    }
    let long = "x".repeat(256);
    assert_eq!(
        error_text(&[URL, ("streamName", &long)]),
        format!("invalid streamName \"{long}\": must be at most 255 bytes long")
    );
    let m = parse_with_url(&[
        ("durableName", ""),
        ("queueGroupName", ""),
        ("streamName", ""),
    ]);
    assert_eq!(m, Ok(defaults()));
    let m = parse_with_url(&[("streamName", "ORDERS"), ("durableName", "d-1")]).unwrap();
    assert_eq!(m.stream_name.as_deref(), Some("ORDERS"));
    assert_eq!(m.durable_name.as_deref(), Some("d-1"));
}

/// A queue group is no subject token: as in nats.go, only a space, tab, CR or LF is refused.
#[test]
fn queue_group_names_may_hold_dots_but_not_spaces() {
    let m = parse_with_url(&[("queueGroupName", "orders.workers")]).unwrap();
    assert_eq!(m.queue_group_name.as_deref(), Some("orders.workers"));
    let m = parse_with_url(&[("queueGroupName", "q*")]).unwrap();
    assert_eq!(m.queue_group_name.as_deref(), Some("q*"));
    assert_eq!(
        error_text(&[URL, ("queueGroupName", "my queue")]),
        r#"invalid queueGroupName "my queue": must not contain a space, tab, CR or LF"#
    );
}

#[test]
fn given_deliver_policy_rules_over_start_options() {
    let ok: &[(&[(&str, &str)], DeliverPolicy)] = &[
        (&[("deliverPolicy", "all")], DeliverPolicy::All),
        (&[("deliverPolicy", "")], DeliverPolicy::All),
        (&[("deliverPolicy", "last")], DeliverPolicy::Last),
        (&[("deliverPolicy", "new")], DeliverPolicy::New),
        (
            &[("deliverPolicy", "new"), ("startSequence", "0")],
            DeliverPolicy::New,
        ),
        (
            &[("deliverPolicy", "sequence"), ("startSequence", "42")],
            DeliverPolicy::ByStartSequence(42),
        ),
        (
            &[("deliverPolicy", "time"), ("startTime", "1630349391")],
            DeliverPolicy::ByStartTime {
                unix_seconds: 1_630_349_391,
            },
        ),
        // deliverAll is ignored once deliverPolicy is given.
        (
            &[("deliverPolicy", "all"), ("deliverAll", "false")],
            DeliverPolicy::All,
        ),
        (
            &[("deliverPolicy", "new"), ("deliverAll", "true")],
            DeliverPolicy::New,
        ),
    ];
    for &(input, want) in ok {
        assert_eq!(
            parse_with_url(input).unwrap().deliver_policy,
            want,
            "{input:?}"
        );
    }
    let bad: &[(&[(&str, &str)], &str)] = &[
        (
            &[("deliverPolicy", "all"), ("startSequence", "1")],
            "deliver all, but optional start sequence is also set",
        ),
        (
            &[("deliverPolicy", ""), ("startTime", "")],
            "deliver all, but optional start time is also set",
        ),
        (
            &[("deliverPolicy", "last"), ("startTime", "0")],
            "deliver last, but optional start time is also set",
        ),
        (
            &[("deliverPolicy", "sequence")],
            "deliver by start sequence, but optional start sequence is not set",
        ),
        (
            &[("deliverPolicy", "time"), ("startSequence", "2")],
            "deliver by start time, but optional start time is not set",
        ),
        // The docs' example YAML with deliverPolicy=all always failed in the reference.
        (
            &[
                ("deliverPolicy", "all"),
                ("startSequence", "1"),
                ("startTime", "1630349391"),
            ],
            "deliver all, but optional start sequence is also set",
        ),
    ];
    for &(input, want) in bad {
        let mut all = vec![URL];
        all.extend_from_slice(input);
        assert_eq!(
            error_text(&all),
            format!("consumer delivery policy is {want}"),
            "{input:?}"
        );
    }
}

#[test]
fn absent_deliver_policy_uses_the_seed_era_inference() {
    let cases: &[(&[(&str, &str)], DeliverPolicy)] = &[
        (&[], DeliverPolicy::All),
        (&[("deliverAll", "true")], DeliverPolicy::All),
        (&[("DeliverAll", "false")], DeliverPolicy::Last),
        (&[("deliverAll", "")], DeliverPolicy::Last),
        (
            &[("startSequence", "0"), ("deliverAll", "true")],
            DeliverPolicy::All,
        ),
        (
            &[("startSequence", "3"), ("deliverAll", "true")],
            DeliverPolicy::ByStartSequence(3),
        ),
        (
            &[
                ("startSequence", "1"),
                ("startTime", "1630349391"),
                ("deliverAll", "false"),
            ],
            DeliverPolicy::ByStartTime {
                unix_seconds: 1_630_349_391,
            },
        ),
        // The reference's e2e auth config.
        (
            &[
                ("startSequence", "0"),
                ("startTime", "0"),
                ("deliverAll", "true"),
            ],
            DeliverPolicy::ByStartTime { unix_seconds: 0 },
        ),
    ];
    for &(input, want) in cases {
        assert_eq!(
            parse_with_url(input).unwrap().deliver_policy,
            want,
            "{input:?}"
        );
    }
}

#[test]
fn unknown_keys_are_ignored() {
    let m = parse_with_url(&[("consumerID", "app"), ("hearbeat", "x"), ("userName", "x")]);
    assert_eq!(m, Ok(defaults()));
    // `backoff` is not unknown: it matches `backOff` case-insensitively, so its value is decoded.
    let m = parse_with_url(&[("backoff", "[bad")]);
    assert!(matches!(m, Err(MetadataError::Decode(_))));
}

#[test]
fn secrets_are_kept_and_redacted() {
    let m = parse_with_url(&[
        ("jwt", "J"),
        ("seedKey", "S"),
        ("token", "T"),
        ("tls_client_cert", "-----BEGIN CERTIFICATE-----"),
        ("tls_client_key", "/etc/key.pem"),
    ])
    .unwrap();
    assert_eq!(m.jwt.as_ref().map(Secret::expose), Some("J"));
    assert_eq!(m.seed_key.as_ref().map(Secret::expose), Some("S"));
    assert_eq!(m.token.as_ref().map(Secret::expose), Some("T"));
    assert_eq!(
        m.tls_client_cert.as_ref().map(Secret::expose),
        Some("-----BEGIN CERTIFICATE-----")
    );
    assert_eq!(
        m.tls_client_key.as_ref().map(Secret::expose),
        Some("/etc/key.pem")
    );
}

/// A recognisable secret goes through every error path (and a success); it must appear in no
/// Display or Debug output.
#[test]
fn secrets_never_appear_in_errors_or_debug() {
    const SECRET: &str = "SUPERSECRET-8f3a";
    let all_secrets: Vec<(&str, &str)> = vec![
        ("jwt", SECRET),
        ("seedKey", SECRET),
        ("token", SECRET),
        ("tls_client_cert", SECRET),
        ("tls_client_key", SECRET),
        ("user", "alice"),
        ("password", SECRET),
        ("credsFile", SECRET),
        ("nkey", SECRET),
    ];
    let with_all = |extra: &[(&'static str, &'static str)]| {
        let mut v = vec![URL];
        v.extend(all_secrets.iter().copied());
        v.extend_from_slice(extra);
        v
    };
    let inputs: Vec<Vec<(&str, &str)>> = vec![
        // duplicate key, on a secret key and on another key
        with_all(&[("TOKEN", SECRET)]),
        with_all(&[("NAME", "x"), ("name", "y")]),
        // decode errors
        with_all(&[
            ("maxDeliver", "x"),
            ("startSequence", "-1"),
            ("ackWait", "y"),
        ]),
        // missing pieces
        vec![("jwt", SECRET), ("seedKey", SECRET), ("token", SECRET)],
        vec![URL, ("jwt", SECRET), ("token", SECRET)],
        vec![URL, ("seedKey", SECRET), ("token", SECRET)],
        vec![URL, ("tls_client_cert", SECRET), ("token", SECRET)],
        vec![URL, ("tls_client_key", SECRET), ("token", SECRET)],
        vec![URL, ("password", SECRET), ("nkey", SECRET)],
        vec![URL, ("user", "u"), ("credsFile", SECRET), ("token", SECRET)],
        vec![URL, ("nkey", "xSUPERSECRET-8f3a"), ("token", SECRET)],
        // later checks
        with_all(&[("deliverPolicy", "x")]),
        with_all(&[("concurrencyMode", "x")]),
        with_all(&[("backOffPolicy", "x")]),
        with_all(&[("concurrency", "x")]),
        with_all(&[("ackWait", "-1s")]),
        with_all(&[("replicas", "-1")]),
        with_all(&[("startTime", "99999999999")]),
        with_all(&[("durableName", "a.b")]),
        with_all(&[("deliverPolicy", "sequence")]),
    ];
    for input in &inputs {
        let err = parse(&props(input)).expect_err("every input is invalid");
        for out in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
            assert!(!out.contains(SECRET), "secret leaked for {input:?}: {out}");
        }
    }
    let ok = parse(&props(&with_all(&[]))).unwrap();
    for out in [format!("{ok:?}"), format!("{ok:#?}")] {
        assert!(!out.contains(SECRET), "secret leaked: {out}");
    }
    let plan = plan_consumer(&ok, "t");
    assert!(!format!("{plan:?}").contains(SECRET));
}

#[test]
fn keys_table_is_complete() {
    assert_eq!(KEYS.len(), 41);
    for key in retry::KEYS {
        assert!(KEYS.contains(key), "{key}");
    }
}

// ---- Property test: any input gives Ok or Err, never a panic ----

/// A key: a real one with random letter case, or anything.
fn any_key() -> impl Strategy<Value = String> {
    let real = (prop::sample::select(KEYS), any::<u64>()).prop_map(|(key, bits)| {
        key.chars()
            .enumerate()
            .map(|(i, c)| {
                if bits >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect::<String>()
    });
    let exact = prop::sample::select(KEYS).prop_map(str::to_owned);
    prop_oneof![4 => exact, 3 => real, 1 => ".*", 1 => "\\PC{0,12}"]
}

/// A value: numbers (huge ones too), durations, lists, policy words, odd Unicode, empty.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[-+]?(0[xXoObB])?[0-9a-fA-F_]{0,25}",
        "[-+]?[0-9]{0,22}(\\.[0-9]{0,12})?(ns|us|µs|μs|ms|s|m|h|d|)",
        "([-+]?[0-9.]{0,6}(ms|s|h)?[ ,]{0,2}){0,6}",
        prop::sample::select(vec![
            "all",
            "last",
            "new",
            "sequence",
            "time",
            "ALL",
            "explicit",
            "none",
            "single",
            "parallel",
            "true",
            "yes",
            "0",
            "-1",
            "9223372036",
            "9223372037",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "2562047h47m16.854775808s",
            "a.b",
            "nats://h:4222",
            "exponential",
            "1e39",
            "0x1p-2",
        ])
        .prop_map(str::to_owned),
        ".*",
        "\\PC{0,300}",
    ]
}

/// Cases per property: 2,000 in the test suite; `PROPTEST_CASES=1000000` for a fuzzing run.
fn fuzz_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(2_000)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(fuzz_cases()))]

    #[test]
    fn parse_and_plan_never_panic(
        with_url in any::<bool>(),
        pairs in prop::collection::vec((any_key(), any_value()), 0..14),
        topic in ".*",
    ) {
        let mut input: Vec<(String, String)> = Vec::new();
        if with_url {
            input.push(("natsURL".to_owned(), "nats://localhost:4222".to_owned()));
        }
        input.extend(pairs);
        match parse(&input) {
            Ok(metadata) => {
                let plan = plan_consumer(&metadata, &topic);
                prop_assert_eq!(i64::from(plan.num_replicas), metadata.replicas);
                prop_assert!(!metadata.servers.is_empty());
                let _ = format!("{metadata:?} {plan:?} {}", metadata.api_prefix());
            }
            Err(err) => {
                prop_assert!(!err.to_string().is_empty());
                let _ = format!("{err:?}");
            }
        }
    }
}

/// The keys beyond the reference: values kept as given (secrets wrapped), pairing and shape
/// errors with exact texts that name the key and never the value.
#[test]
fn auth_keys_beyond_the_reference() {
    let m = parse_with_url(&[
        ("user", "alice"),
        ("password", "pw"),
        ("credsFile", "/etc/nats/u.creds"),
        ("nkey", "SUAKEY"),
        ("tls_ca", "/etc/nats/ca.pem"),
    ])
    .unwrap();
    assert_eq!(m.user.as_deref(), Some("alice"));
    assert_eq!(m.password.as_ref().map(Secret::expose), Some("pw"));
    assert_eq!(
        m.creds_file.as_ref().map(Secret::expose),
        Some("/etc/nats/u.creds")
    );
    assert_eq!(m.nkey.as_ref().map(Secret::expose), Some("SUAKEY"));
    assert_eq!(m.tls_ca.as_deref(), Some("/etc/nats/ca.pem"));
    // Case-insensitive like every key; empty means absent.
    let m = parse_with_url(&[
        ("USER", "a"),
        ("Password", "b"),
        ("TLS_CA", ""),
        ("credsfile", ""),
    ])
    .unwrap();
    assert_eq!(
        (m.user.as_deref(), m.tls_ca, m.creds_file),
        (Some("a"), None, None)
    );

    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[URL, ("user", "alice")], "missing password (user is set)"),
        (
            &[URL, ("user", "alice"), ("password", "")],
            "missing password (user is set)",
        ),
        (&[URL, ("password", "pw")], "missing user (password is set)"),
        (
            &[URL, ("nkey", "UAPUBLICKEY")],
            "invalid nkey: not an nkey user seed (expected a seed starting with SU; the value is not shown)",
        ),
        (
            &[URL, ("nkey", "SAACCOUNTSEED")],
            "invalid nkey: not an nkey user seed (expected a seed starting with SU; the value is not shown)",
        ),
        // The reference's checks come first.
        (&[URL, ("jwt", "j"), ("password", "pw")], "missing seed key"),
    ];
    for &(input, want) in cases {
        assert_eq!(error_text(input), want, "{input:?}");
    }
}
