//! The `log` import: the component's diagnostics, written with `tracing` under the
//! target `component`, within the instance's log budget (`sandbox::LogLimit`: line length,
//! lines per second, control characters escaped).

use crate::bindings::log::{self, Level};
use crate::instance::InstanceState;

impl log::Host for InstanceState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let enabled = match level {
            Level::Debug => tracing::enabled!(target: "component", tracing::Level::DEBUG),
            Level::Info => tracing::enabled!(target: "component", tracing::Level::INFO),
            Level::Warn => tracing::enabled!(target: "component", tracing::Level::WARN),
            Level::Error => tracing::enabled!(target: "component", tracing::Level::ERROR),
        };
        // A line nobody would see spends none of the budget.
        if !enabled {
            return Ok(());
        }
        let Some(admitted) = self.log_limit.admit(&message) else {
            return Ok(());
        };
        if admitted.dropped_before > 0 {
            tracing::warn!(
                target: "component",
                dropped = admitted.dropped_before,
                "the component wrote more log lines than its budget; {} were dropped",
                admitted.dropped_before
            );
        }
        let line = admitted.line;
        match level {
            Level::Debug => tracing::debug!(target: "component", "{line}"),
            Level::Info => tracing::info!(target: "component", "{line}"),
            Level::Warn => tracing::warn!(target: "component", "{line}"),
            Level::Error => tracing::error!(target: "component", "{line}"),
        }
        Ok(())
    }
}
