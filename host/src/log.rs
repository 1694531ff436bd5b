//! The `log` import: the component's diagnostics, written with `tracing` under the
//! target `component`.

use crate::bindings::log::{self, Level};
use crate::instance::InstanceState;

impl log::Host for InstanceState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        match level {
            Level::Debug => tracing::debug!(target: "component", "{message}"),
            Level::Info => tracing::info!(target: "component", "{message}"),
            Level::Warn => tracing::warn!(target: "component", "{message}"),
            Level::Error => tracing::error!(target: "component", "{message}"),
        }
        Ok(())
    }
}
