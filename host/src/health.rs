//! Whether a runtime is fit to serve, for a readiness probe: its NATS connections are up
//! and every subscription is pumping.
//!
//! A runtime and every runtime made from it ([`Runtime::with_policy`],
//! [`Runtime::named`]) report into one [`Health`], so a process with many component
//! instances (`jetstream-pubsub serve`) asks one question.
//!
//! [`Runtime::with_policy`]: crate::Runtime::with_policy
//! [`Runtime::named`]: crate::Runtime::named

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::instance::Shared;

/// What the runtimes of one family report to.
#[derive(Default)]
pub(crate) struct Health {
    /// What each runtime shares with its instances, for its NATS clients (a runtime made
    /// by `with_policy` has its own). Weak: a runtime nobody holds any more is not asked.
    runtimes: Mutex<Vec<Weak<Shared>>>,
    /// Every subscription that has not been stopped, by the state its pump last reported.
    pumps: Mutex<Vec<Weak<PumpHealth>>>,
}

impl Health {
    pub(crate) fn watch_runtime(&self, shared: &Arc<Shared>) {
        let mut runtimes = lock(&self.runtimes);
        runtimes.retain(|shared| shared.strong_count() > 0);
        runtimes.push(Arc::downgrade(shared));
    }

    /// Registers a subscription's pump, pumping until it says otherwise. It counts until
    /// every holder of the returned handle has dropped it.
    pub(crate) fn watch_pump(&self, topic: &str) -> Arc<PumpHealth> {
        let pump = Arc::new(PumpHealth {
            topic: topic.to_string(),
            problem: Mutex::new(None),
        });
        let mut pumps = lock(&self.pumps);
        pumps.retain(|pump| pump.strong_count() > 0);
        pumps.push(Arc::downgrade(&pump));
        pump
    }

    /// `Ok` when every NATS connection is up and every subscription pumping; otherwise the
    /// first reason found, in one line.
    pub(crate) fn readiness(&self) -> Result<(), String> {
        for shared in lock(&self.runtimes).iter().filter_map(Weak::upgrade) {
            if let Some(problem) = shared.pool.connection_problem() {
                return Err(problem);
            }
        }
        for pump in lock(&self.pumps).iter().filter_map(Weak::upgrade) {
            if let Some(problem) = lock(&pump.problem).as_ref() {
                return Err(format!("the subscription to {}: {problem}", pump.topic));
            }
        }
        Ok(())
    }
}

/// What a subscription's pump reports: `None` while it pumps, or why it does not.
pub(crate) struct PumpHealth {
    topic: String,
    problem: Mutex<Option<String>>,
}

impl PumpHealth {
    pub(crate) fn pumping(&self) {
        let mut problem = lock(&self.problem);
        if problem.is_some() {
            *problem = None;
        }
    }

    pub(crate) fn not_pumping(&self, why: impl Into<String>) {
        *lock(&self.problem) = Some(why.into());
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // What is kept here stays consistent whatever panicked while holding it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
