//! What an (untrusted) component may do: memory, batch sizes, pending acks, and which
//! subjects the transport imports will touch on its behalf.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::bindings::transport::TransportError;

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
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            max_batch: 1024,
            cpu_per_call: Duration::from_secs(2),
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

    /// Payload bytes one `next-batch` hands over before it stops taking more (it always
    /// takes at least one message): an eighth of the instance's memory cap. Payloads stay
    /// in the host, but a batch's messages (and, in parallel mode, its handlers) are all
    /// alive at once, so a backlog of large messages (up to the server's 1 MiB
    /// `max_payload`, or more where raised) is taken in smaller batches.
    pub(crate) fn max_batch_bytes(&self) -> usize {
        (self.memory_bytes / 8).max(1)
    }

    /// Server URLs are the user's choice, given in the metadata; nothing to refuse yet.
    pub(crate) fn check_servers(&self, _servers: &[String]) -> Result<(), TransportError> {
        Ok(())
    }

    /// Publishing is for application subjects: never the JetStream API, the system
    /// account, or another client's inbox.
    pub(crate) fn check_publish(&self, subject: &str) -> Result<(), TransportError> {
        check_application_subject(subject)
    }

    /// A deliver subject the host will listen on or configure for a consumer.
    pub(crate) fn check_deliver_subject(&self, subject: &str) -> Result<(), TransportError> {
        if !is_literal(subject) {
            return Err(TransportError::Refused(format!(
                "deliver subject {subject:?} must be a literal subject"
            )));
        }
        if is_reserved(subject) {
            return Err(TransportError::Refused(format!(
                "deliver subject {subject:?} is reserved to the server"
            )));
        }
        Ok(())
    }
}

/// How long the current call into an instance has computed: wall time since the call
/// began, minus the time spent in host imports (waiting on NATS or the application is not
/// the component's doing).
#[derive(Debug)]
pub(crate) struct CpuMeter {
    call_started: Instant,
    in_host: Arc<AtomicU64>,
}

impl CpuMeter {
    pub(crate) fn new() -> Self {
        Self {
            call_started: Instant::now(),
            in_host: Arc::default(),
        }
    }

    /// Starts metering a new call.
    pub(crate) fn begin_call(&mut self) {
        self.call_started = Instant::now();
        self.in_host.store(0, Ordering::Relaxed);
    }

    /// Compute time of the current call so far.
    pub(crate) fn guest_time(&self) -> Duration {
        self.call_started
            .elapsed()
            .saturating_sub(Duration::from_nanos(self.in_host.load(Ordering::Relaxed)))
    }

    /// Measures one host import; the time until the guard drops is not the guest's.
    pub(crate) fn in_host(&self) -> HostTime {
        HostTime {
            started: Instant::now(),
            total: self.in_host.clone(),
        }
    }
}

/// Guard of one host import's duration.
pub(crate) struct HostTime {
    started: Instant,
    total: Arc<AtomicU64>,
}

impl Drop for HostTime {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.total.fetch_add(nanos, Ordering::Relaxed);
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

fn check_application_subject(subject: &str) -> Result<(), TransportError> {
    if !is_literal(subject) {
        return Err(TransportError::Invalid(format!(
            "cannot publish to {subject:?}: not a literal subject"
        )));
    }
    if is_reserved(subject) || subject.starts_with("_INBOX.") {
        return Err(TransportError::Refused(format!(
            "publishing to {subject:?} is not allowed to the component"
        )));
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
