//! The component's compute time in one call, for the CPU budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
