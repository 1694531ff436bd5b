//! Errors of the host library.

/// Why a host operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The component rejected the metadata; the text names the key and value at fault.
    #[error("invalid metadata: {0}")]
    InvalidMetadata(String),
    /// The operation cannot succeed as asked (closed component, bound consumer, ...).
    #[error("{0}")]
    Terminal(String),
    /// A transient failure; the same call may succeed later.
    #[error("{0}")]
    Retriable(String),
    /// The component could not be loaded or instantiated.
    #[error("cannot load the component: {0}")]
    Load(String),
    /// A sandbox policy rule is malformed; the text names the value at fault.
    #[error("{0}")]
    Policy(String),
    /// The component trapped (a bug or a limit hit inside the sandbox).
    #[error("the component trapped: {0}")]
    Trap(String),
}

impl Error {
    /// True when retrying the same call may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Error::Retriable(_))
    }
}

impl From<wasmtime::Error> for Error {
    fn from(err: wasmtime::Error) -> Self {
        Error::Trap(format!("{err:#}"))
    }
}
