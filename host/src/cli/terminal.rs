//! Standard output for commands that take a while (`bench`, `demo`): result lines, and on a
//! terminal a progress line that the next result overwrites. Piped or redirected, only the
//! result lines are written, with no carriage return or escape code.

use std::io::{IsTerminal as _, Write as _};

/// Writes results; on a terminal, also a progress line that results overwrite.
pub(crate) struct Output {
    tty: bool,
}

impl Output {
    /// Standard output, with progress when it is a terminal.
    pub(crate) fn stdout() -> Self {
        Self {
            tty: std::io::stdout().is_terminal(),
        }
    }

    /// Shows `text` as the progress line, on a terminal only.
    pub(crate) fn progress(&self, text: &str) {
        if self.tty {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[K  … {text}");
            let _ = out.flush();
        }
    }

    /// Writes a result line (over the progress line, on a terminal).
    pub(crate) fn line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        if self.tty {
            let _ = write!(out, "\r\x1b[K");
        }
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}
