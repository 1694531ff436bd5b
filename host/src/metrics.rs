//! What the library counts, through the [`metrics`] facade: an embedder installs the
//! exporter it already uses (Prometheus, StatsD, OpenTelemetry...), and without one every
//! handle is a no-op.
//!
//! Why the facade rather than `prometheus-client`: the library must not choose the
//! exporter (an embedder may have one already), and it must cost nothing when nobody
//! records. With `metrics`, a library records into whatever recorder the process installed;
//! `prometheus-client` would make every embedder pass a registry through the API.
//!
//! Handles are resolved once (per subscription, per published topic), not per message: on
//! the per-message path a record is an atomic add, or nothing. So a recorder must be
//! installed before the runtime publishes or subscribes (the CLI does it first thing); a
//! handle resolved earlier keeps recording nothing.
//!
//! Every name starts with [`PREFIX`]; counters end in `_total`, durations are in seconds.
//! Labels stay bounded: a subscription is labelled by the topic it subscribed (the pattern,
//! for a wildcard), never by each concrete subject. `docs/operations.md` has the table.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Label, Unit};

/// The common prefix of every metric name.
pub const PREFIX: &str = "jetstream_pubsub";

/// Messages published, by `outcome` (see [`PublishOutcome`]).
pub const PUBLISHED: &str = "jetstream_pubsub_published_total";
/// Bulk-publish entries, by `outcome`, like [`PUBLISHED`].
pub const BULK_ENTRIES: &str = "jetstream_pubsub_bulk_entries_total";
/// From the call to the PubAck (or the failure), per publish.
pub const PUBLISH_DURATION: &str = "jetstream_pubsub_publish_duration_seconds";
/// Messages handed to the application's handler.
pub const DELIVERED: &str = "jetstream_pubsub_delivered_total";
/// Messages handed to the application that the server had delivered before.
pub const REDELIVERED: &str = "jetstream_pubsub_redelivered_total";
/// Answers sent to the server, by `answer`: `ack`, `nak`, `term`, `in_progress` (a
/// keep-alive or an in-progress answer), `none` (`ackPolicy: none`).
pub const ANSWERED: &str = "jetstream_pubsub_answered_total";
/// How long the application's handler took, per message.
pub const HANDLER_DURATION: &str = "jetstream_pubsub_handler_duration_seconds";
/// Messages with the application's handler now.
pub const IN_FLIGHT: &str = "jetstream_pubsub_deliveries_in_flight";
/// Subscriptions running (pumping, or being restarted after a trap).
pub const SUBSCRIPTIONS: &str = "jetstream_pubsub_subscriptions";
/// Component instances alive (publishers and subscriptions).
pub const INSTANCES: &str = "jetstream_pubsub_component_instances";
/// Calls into the component that trapped, by `role` (`publisher`, `subscription`).
pub const TRAPS: &str = "jetstream_pubsub_component_traps_total";
/// Instances replaced after a trap, by `role`.
pub const RESTARTS: &str = "jetstream_pubsub_instance_restarts_total";
/// Requests of the component the sandbox refused, by `rule`.
pub const REFUSALS: &str = "jetstream_pubsub_sandbox_refusals_total";
/// Times a NATS connection came back after it was lost.
pub const RECONNECTS: &str = "jetstream_pubsub_nats_reconnects_total";

/// How a publish, or a bulk entry, ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PublishOutcome {
    /// Stored: the stream acknowledged it.
    Acked,
    /// Acknowledged as a duplicate of a message the stream has (same `Nats-Msg-Id`).
    Duplicate,
    /// Failed; the same call may succeed later.
    FailedRetriable,
    /// Failed for good (refused, invalid, or the component trapped).
    FailedTerminal,
}

impl PublishOutcome {
    const ALL: [PublishOutcome; 4] = [
        PublishOutcome::Acked,
        PublishOutcome::Duplicate,
        PublishOutcome::FailedRetriable,
        PublishOutcome::FailedTerminal,
    ];

    fn label(self) -> &'static str {
        match self {
            PublishOutcome::Acked => "acked",
            PublishOutcome::Duplicate => "duplicate",
            PublishOutcome::FailedRetriable => "failed_retriable",
            PublishOutcome::FailedTerminal => "failed_terminal",
        }
    }
}

/// Which instance trapped or was replaced.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Role {
    Publisher,
    Subscription,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Publisher => "publisher",
            Role::Subscription => "subscription",
        }
    }
}

/// The labels every metric of one runtime carries: `component`, when the runtime is named
/// (`jetstream-pubsub serve` names each by its Dapr component instance).
#[derive(Clone, Debug, Default)]
pub(crate) struct Labels {
    component: Option<Arc<str>>,
}

impl Labels {
    pub(crate) fn named(component: &str) -> Self {
        Self {
            component: Some(component.into()),
        }
    }

    /// These labels and `extra`.
    fn with(&self, extra: &[(&'static str, &str)]) -> Vec<Label> {
        let mut labels = Vec::with_capacity(extra.len() + 1);
        if let Some(component) = &self.component {
            labels.push(Label::new("component", component.to_string()));
        }
        labels.extend(
            extra
                .iter()
                .map(|(key, value)| Label::new(*key, value.to_string())),
        );
        labels
    }

    pub(crate) fn trapped(&self, role: Role) {
        metrics::counter!(TRAPS, self.with(&[("role", role.label())])).increment(1);
    }

    pub(crate) fn restarted(&self, role: Role) {
        metrics::counter!(RESTARTS, self.with(&[("role", role.label())])).increment(1);
    }

    pub(crate) fn reconnects(&self) -> Counter {
        metrics::counter!(RECONNECTS, self.with(&[]))
    }

    /// Counts one live instance until the returned guard is dropped.
    pub(crate) fn instance(&self) -> Live {
        Live::new(metrics::gauge!(INSTANCES, self.with(&[])))
    }

    /// Counts one running subscription until the returned guard is dropped.
    pub(crate) fn subscription(&self) -> Live {
        Live::new(metrics::gauge!(SUBSCRIPTIONS, self.with(&[])))
    }

    /// The handles of what publishing to `topic` records.
    pub(crate) fn publishing(&self, topic: &str) -> PublishMetrics {
        let outcomes = |name: &'static str| {
            PublishOutcome::ALL.map(|outcome| {
                metrics::counter!(
                    name,
                    self.with(&[("topic", topic), ("outcome", outcome.label())])
                )
            })
        };
        PublishMetrics {
            published: outcomes(PUBLISHED),
            bulk_entries: outcomes(BULK_ENTRIES),
            duration: metrics::histogram!(PUBLISH_DURATION, self.with(&[("topic", topic)])),
        }
    }

    /// The handles of what delivering a subscription's messages records.
    pub(crate) fn delivering(&self, topic: &str) -> DeliveryMetrics {
        let answered = |answer: &'static str| {
            metrics::counter!(ANSWERED, self.with(&[("topic", topic), ("answer", answer)]))
        };
        DeliveryMetrics {
            delivered: metrics::counter!(DELIVERED, self.with(&[("topic", topic)])),
            redelivered: metrics::counter!(REDELIVERED, self.with(&[("topic", topic)])),
            ack: answered("ack"),
            nak: answered("nak"),
            term: answered("term"),
            in_progress: answered("in_progress"),
            unanswered: answered("none"),
            handler_duration: metrics::histogram!(HANDLER_DURATION, self.with(&[("topic", topic)])),
            in_flight: metrics::gauge!(IN_FLIGHT, self.with(&[("topic", topic)])),
        }
    }
}

/// Counts a request of the component the sandbox refused under `rule`. Not labelled by
/// component: a refusal is made where no instance is at hand, and refusals are rare.
pub(crate) fn refused(rule: &'static str) {
    metrics::counter!(REFUSALS, "rule" => rule).increment(1);
}

/// A gauge raised by one while this lives.
pub(crate) struct Live(Gauge);

impl Live {
    fn new(gauge: Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// What publishing to one topic records.
pub(crate) struct PublishMetrics {
    published: [Counter; 4],
    bulk_entries: [Counter; 4],
    duration: Histogram,
}

impl PublishMetrics {
    pub(crate) fn published(&self, outcome: PublishOutcome, took: Duration) {
        self.published[outcome as usize].increment(1);
        self.duration.record(took);
    }

    pub(crate) fn bulk_entry(&self, outcome: PublishOutcome) {
        self.bulk_entries[outcome as usize].increment(1);
    }
}

/// What delivering one subscription's messages records.
pub(crate) struct DeliveryMetrics {
    delivered: Counter,
    redelivered: Counter,
    ack: Counter,
    nak: Counter,
    term: Counter,
    in_progress: Counter,
    unanswered: Counter,
    handler_duration: Histogram,
    in_flight: Gauge,
}

/// An answer as counted: which of [`ANSWERED`]'s `answer` values.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answer {
    Ack,
    Nak,
    Term,
    InProgress,
    None,
}

impl DeliveryMetrics {
    /// A message goes to the handler; `delivered` is the server's delivery count.
    pub(crate) fn handing(&self, delivered: u64) -> InFlight<'_> {
        self.delivered.increment(1);
        if delivered > 1 {
            self.redelivered.increment(1);
        }
        self.in_flight.increment(1.0);
        InFlight {
            metrics: self,
            since: std::time::Instant::now(),
        }
    }

    /// The counter of in-progress answers, for the keep-alive that sends them.
    pub(crate) fn in_progress(&self) -> Counter {
        self.in_progress.clone()
    }

    pub(crate) fn answered(&self, answer: Answer) {
        match answer {
            Answer::Ack => &self.ack,
            Answer::Nak => &self.nak,
            Answer::Term => &self.term,
            Answer::InProgress => &self.in_progress,
            Answer::None => &self.unanswered,
        }
        .increment(1);
    }
}

/// A message with the handler: its time is recorded, and the in-flight gauge lowered, when
/// the handler is done (this is dropped), however it ends.
pub(crate) struct InFlight<'a> {
    metrics: &'a DeliveryMetrics,
    since: std::time::Instant,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.handler_duration.record(self.since.elapsed());
        self.metrics.in_flight.decrement(1.0);
    }
}

/// Describes every metric to the installed recorder (type, unit, help text), for exporters
/// that show them (the Prometheus exposition's `# HELP` lines). Call it once, after
/// installing the recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        PUBLISHED,
        Unit::Count,
        "Messages published, by outcome: acked, duplicate, failed_retriable, failed_terminal."
    );
    describe_counter!(
        BULK_ENTRIES,
        Unit::Count,
        "Bulk-publish entries, by outcome: acked, duplicate, failed_retriable, failed_terminal."
    );
    describe_histogram!(
        PUBLISH_DURATION,
        Unit::Seconds,
        "Time from a publish call to its PubAck or failure."
    );
    describe_counter!(
        DELIVERED,
        Unit::Count,
        "Messages handed to the application."
    );
    describe_counter!(
        REDELIVERED,
        Unit::Count,
        "Messages handed to the application that the server had delivered before (delivery count above 1)."
    );
    describe_counter!(
        ANSWERED,
        Unit::Count,
        "Answers sent to the server, by answer: ack, nak, term, in_progress, none (ackPolicy none)."
    );
    describe_histogram!(
        HANDLER_DURATION,
        Unit::Seconds,
        "Time the application's handler took per message."
    );
    describe_gauge!(
        IN_FLIGHT,
        Unit::Count,
        "Messages with the application's handler now."
    );
    describe_gauge!(SUBSCRIPTIONS, Unit::Count, "Subscriptions running.");
    describe_gauge!(INSTANCES, Unit::Count, "Component instances alive.");
    describe_counter!(
        TRAPS,
        Unit::Count,
        "Calls into the component that trapped, by role: publisher, subscription."
    );
    describe_counter!(
        RESTARTS,
        Unit::Count,
        "Component instances replaced after a trap, by role."
    );
    describe_counter!(
        REFUSALS,
        Unit::Count,
        "Requests of the component the sandbox refused, by rule."
    );
    describe_counter!(
        RECONNECTS,
        Unit::Count,
        "Times a NATS connection came back after it was lost."
    );
}
