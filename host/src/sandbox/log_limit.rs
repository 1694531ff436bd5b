//! Bounds on what the component writes to the host's log.
//!
//! Why: the `log` import is the one way the component writes into the host, and a log line
//! costs the host time and disk. A component looping on `log` could flood the embedder's
//! logs, a line of megabytes would be copied into every sink, and a line holding a newline
//! could pass for a line of the host's own. So lines are cut to a length, control
//! characters are escaped, and lines over a rate are dropped and counted, never buffered.

use std::time::{Duration, Instant};

use super::SandboxLimits;

/// One instance's log budget: a fixed window of one second.
#[derive(Debug)]
pub(crate) struct LogLimit {
    line_bytes: usize,
    per_second: u32,
    window_started: Instant,
    written_in_window: u32,
    dropped: u64,
}

/// A line the budget lets through.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Admitted {
    /// The line, cut to the limit and with control characters escaped.
    pub(crate) line: String,
    /// Lines dropped since the last one let through.
    pub(crate) dropped_before: u64,
}

const WINDOW: Duration = Duration::from_secs(1);

impl LogLimit {
    pub(crate) fn new(limits: &SandboxLimits) -> Self {
        Self {
            line_bytes: limits.log_line_bytes as usize,
            per_second: limits.log_lines_per_second,
            window_started: Instant::now(),
            written_in_window: 0,
            dropped: 0,
        }
    }

    /// The line to write for `message`, or `None` when the rate is spent (it is counted).
    pub(crate) fn admit(&mut self, message: &str) -> Option<Admitted> {
        self.admit_at(message, Instant::now())
    }

    fn admit_at(&mut self, message: &str, now: Instant) -> Option<Admitted> {
        if now.duration_since(self.window_started) >= WINDOW {
            self.window_started = now;
            self.written_in_window = 0;
        }
        if self.written_in_window >= self.per_second {
            self.dropped += 1;
            return None;
        }
        self.written_in_window += 1;
        Some(Admitted {
            line: bounded_line(message, self.line_bytes),
            dropped_before: std::mem::take(&mut self.dropped),
        })
    }
}

/// `message` with control characters escaped (`\n` as the two characters `\` `n`), cut
/// at a character boundary to at most `limit` bytes of the original; a cut line ends with
/// how many bytes were left out.
fn bounded_line(message: &str, limit: usize) -> String {
    let mut end = message.len().min(limit);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let kept = &message[..end];
    let mut line = String::with_capacity(kept.len() + 32);
    for c in kept.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    if end < message.len() {
        line.push_str(&format!(" ... ({} more bytes cut)", message.len() - end));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(line_bytes: u32, per_second: u32) -> LogLimit {
        LogLimit::new(
            &SandboxLimits::default()
                .log_line_bytes(line_bytes)
                .log_lines_per_second(per_second),
        )
    }

    #[test]
    fn lines_over_the_rate_are_dropped_and_counted() {
        let mut log = limit(100, 3);
        let start = Instant::now();
        for i in 0..3 {
            assert!(log.admit_at(&format!("line {i}"), start).is_some());
        }
        for _ in 0..5 {
            assert_eq!(log.admit_at("flood", start), None);
        }
        let next = log
            .admit_at("after", start + WINDOW)
            .expect("a new second lets lines through");
        assert_eq!(next.dropped_before, 5);
        assert_eq!(
            log.admit_at("again", start + WINDOW)
                .map(|a| a.dropped_before),
            Some(0)
        );
    }

    #[test]
    fn long_lines_are_cut_at_a_character_boundary() {
        assert_eq!(bounded_line("short", 10), "short");
        assert_eq!(
            bounded_line("abcdefghij-rest", 10),
            "abcdefghij ... (5 more bytes cut)"
        );
        // 'é' is two bytes: a cut inside it keeps the character out.
        assert_eq!(bounded_line("aé", 2), "a ... (2 more bytes cut)");
    }

    #[test]
    fn control_characters_cannot_forge_lines() {
        assert_eq!(
            bounded_line("ok\nERROR host: forged\r\u{1b}[31m", 100),
            "ok\\nERROR host: forged\\r\\u{1b}[31m"
        );
    }
}
