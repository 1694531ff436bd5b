//! What an (untrusted) component may do: memory, batch sizes, pending acks, resources,
//! log lines, which subjects the transport imports will touch on its behalf
//! (this module), and which servers and files it may name ([`policy`]).

mod log_limit;
mod meter;
mod policy;

use std::time::Duration;

pub(crate) use log_limit::LogLimit;
pub(crate) use meter::{CpuMeter, HostTime};
pub use policy::SandboxPolicy;

/// Why the sandbox said no; the text names what was refused and the rule. The transport
/// reports it to the component as its `refused` or `invalid` error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not allowed to the component: a reserved subject, a server or file outside the
    /// policy (`transport-error.refused`).
    Forbidden(String),
    /// Not well formed: a subject that is not literal (`transport-error.invalid`).
    Malformed(String),
}

impl Refusal {
    /// A request the component may not make under `rule`, counted
    /// ([`crate::metrics::REFUSALS`]).
    pub(crate) fn forbidden(rule: &'static str, text: String) -> Self {
        crate::metrics::refused(rule);
        Refusal::Forbidden(text)
    }

    /// A malformed request, refused under `rule` and counted like a forbidden one.
    pub(crate) fn malformed(rule: &'static str, text: String) -> Self {
        crate::metrics::refused(rule);
        Refusal::Malformed(text)
    }
}

/// Limits applied to every component instance. Defaults suit a pub/sub component: they
/// bound what a misbehaving guest can take, far above what the real one needs.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// Linear memory one instance may grow to, in bytes. Default 64 MiB.
    pub memory_bytes: usize,
    /// Most messages one `next-batch` or `send-batch` call may carry, and most sent
    /// messages whose pending ack an instance may hold. Default 1024.
    pub max_batch: u32,
    /// Time the component may compute in one call, not counting the time it waits on
    /// the transport or the application. Default 2 s; a runaway loop traps after it.
    pub cpu_per_call: Duration,
    /// Subscriptions one instance may hold at once. Default 16 (the component holds one
    /// per Dapr subscription instance).
    pub max_subscriptions: u32,
    /// Resources (connections, subscriptions, pending acks and batches, WASI handles) one
    /// instance may hold at once. Default 4096: room for a full window of `max_batch`
    /// pending acks, several times over.
    pub max_resources: u32,
    /// NATS clients one runtime keeps open (instances with the same connect options share
    /// one). Default 16. At the limit, clients no instance uses any more are closed first;
    /// a connect that still finds no room is refused.
    pub max_clients: u32,
    /// Longest log line the component may write, in bytes; a longer one is cut there and
    /// says so. Default 4096.
    pub log_line_bytes: u32,
    /// Log lines per second one instance may write (bursts of up to as many); the excess
    /// is dropped and counted, and the count is logged when lines are let through again.
    /// Default 100.
    pub log_lines_per_second: u32,
    /// Publisher instances one `PubSub` may use at once, so that concurrent callers do not
    /// queue behind one instance. A `PubSub` starts with one and adds one when every
    /// instance it has is busy, up to the runtime's worker threads and at most this many.
    /// Default 8: each costs an instance's memory (a few MiB in use, `memory_bytes` at most).
    pub max_publishers: u32,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            max_batch: 1024,
            cpu_per_call: Duration::from_secs(2),
            max_subscriptions: 16,
            max_resources: 4096,
            max_clients: 16,
            log_line_bytes: 4096,
            log_lines_per_second: 100,
            max_publishers: 8,
        }
    }
}

impl SandboxLimits {
    /// Limits with the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the memory one instance may grow to.
    pub fn memory_bytes(mut self, bytes: usize) -> Self {
        self.memory_bytes = bytes;
        self
    }

    /// Sets how many publisher instances one `PubSub` may use at once (at least one).
    pub fn max_publishers(mut self, instances: u32) -> Self {
        self.max_publishers = instances.max(1);
        self
    }

    /// Sets the compute time one call may take (waiting on imports excluded).
    pub fn cpu_per_call(mut self, budget: Duration) -> Self {
        self.cpu_per_call = budget;
        self
    }

    /// Sets the largest batch a transport call may carry, which is also the most pending
    /// acks an instance may hold.
    pub fn max_batch(mut self, messages: u32) -> Self {
        self.max_batch = messages.max(1);
        self
    }

    /// Sets how many subscriptions one instance may hold at once.
    pub fn max_subscriptions(mut self, subscriptions: u32) -> Self {
        self.max_subscriptions = subscriptions;
        self
    }

    /// Sets how many resources one instance may hold at once.
    pub fn max_resources(mut self, resources: u32) -> Self {
        self.max_resources = resources;
        self
    }

    /// Sets how many NATS clients one runtime keeps open.
    pub fn max_clients(mut self, clients: u32) -> Self {
        self.max_clients = clients.max(1);
        self
    }

    /// Sets the longest log line the component may write, in bytes.
    pub fn log_line_bytes(mut self, bytes: u32) -> Self {
        self.log_line_bytes = bytes;
        self
    }

    /// Sets how many log lines per second one instance may write.
    pub fn log_lines_per_second(mut self, lines: u32) -> Self {
        self.log_lines_per_second = lines;
        self
    }

    /// Payload bytes one `next-batch` hands over before it stops taking more (it always
    /// takes at least one message): an eighth of the instance's memory cap. Payloads stay
    /// in the host, but a batch's messages (and, in parallel mode, its handlers) are all
    /// alive at once, so a backlog of large messages (up to the server's 1 MiB
    /// `max_payload`, or more where raised) is taken in smaller batches.
    pub(crate) fn max_batch_bytes(&self) -> usize {
        (self.memory_bytes / 8).max(1)
    }

    /// Publishing is for application subjects: never the JetStream API, the system
    /// account, or another client's inbox.
    pub(crate) fn check_publish(&self, subject: &str) -> Result<(), Refusal> {
        check_application_subject(subject)
    }

    /// A deliver subject the host will listen on or configure for a consumer.
    pub(crate) fn check_deliver_subject(&self, subject: &str) -> Result<(), Refusal> {
        if !is_literal(subject) {
            return Err(Refusal::forbidden(
                "deliver-subject",
                format!("deliver subject {subject:?} must be a literal subject"),
            ));
        }
        if is_reserved(subject) {
            return Err(Refusal::forbidden(
                "deliver-subject",
                format!("deliver subject {subject:?} is reserved to the server"),
            ));
        }
        Ok(())
    }
}

fn is_reserved(subject: &str) -> bool {
    subject.starts_with("$JS.")
        || subject.starts_with("$SYS.")
        || subject.starts_with("$KV.")
        || subject.starts_with("$O.")
}

/// A subject a message can be published on: not empty, no wildcard, no whitespace.
/// One pass over the bytes: every publish goes through here.
fn is_literal(subject: &str) -> bool {
    !subject.is_empty()
        && !subject
            .bytes()
            .any(|b| matches!(b, b'*' | b'>' | b' ' | b'\t' | b'\r' | b'\n'))
}

fn check_application_subject(subject: &str) -> Result<(), Refusal> {
    if !is_literal(subject) {
        return Err(Refusal::malformed(
            "publish-subject",
            format!("cannot publish to {subject:?}: not a literal subject"),
        ));
    }
    if is_reserved(subject) || subject.starts_with("_INBOX.") {
        return Err(Refusal::forbidden(
            "publish-subject",
            format!("publishing to {subject:?} is not allowed to the component"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_and_system_subjects_are_refused() {
        let limits = SandboxLimits::default();
        for subject in [
            "$JS.API.STREAM.DELETE.x",
            "$SYS.REQ.SERVER.PING",
            "_INBOX.abc",
            "orders.*",
            "a >",
        ] {
            assert!(
                limits.check_publish(subject).is_err(),
                "{subject} must be refused"
            );
        }
        assert!(limits.check_publish("orders.created").is_ok());
        assert!(
            limits
                .check_deliver_subject("$JS.API.CONSUMER.CREATE.x")
                .is_err()
        );
        assert!(limits.check_deliver_subject("_INBOX.x1").is_ok());
    }
}
