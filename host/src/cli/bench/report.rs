//! What the bench prints: its header, each side's figures, and the ratio lines the smoke
//! test looks for (through `terminal::Output`, with a progress line on a terminal).

use super::machine::{cpu_model, total_memory};
use super::rounds::{Samples, Side};
use super::{Bench, BenchArgs};

impl Bench {
    /// The machine, the server and the command, so the figures can be reproduced.
    pub(super) fn header(&self, args: &BenchArgs) {
        let command: Vec<String> = std::env::args().collect();
        self.out.line(&format!("command   {}", command.join(" ")));
        self.out.line(&format!(
            "machine   {} cores, {}, {} memory",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model(),
            total_memory()
        ));
        self.out.line(&format!(
            "server    nats-server {} at {}{}",
            self.client.server_info().version,
            self.url,
            if args.url.is_none() {
                " (private, file storage)"
            } else {
                ""
            }
        ));
        // Read off the thread, not assumed: `block_on` would name the main thread here.
        self.out.line(&format!(
            "runtime   tokio multi-thread, workers: {}; the scenarios run on thread {}",
            tokio::runtime::Handle::current().metrics().num_workers(),
            std::thread::current().name().unwrap_or("(unnamed)")
        ));
        self.out.line(&format!(
            "rounds    {} (raw and component alternate; medians, spread = (max - min) / median)",
            self.rounds
        ));
        if cfg!(debug_assertions) {
            self.out
                .line("warning   debug build: figures are not meaningful, use --release");
        }
    }
}

pub(super) fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

pub(super) fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

pub(super) fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

pub(super) fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

/// `12,345` for counts and rates; one decimal below 100.
fn figure(value: f64) -> String {
    if value.abs() < 100.0 {
        return format!("{value:.1}");
    }
    let digits = format!("{:.0}", value.abs());
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if value < 0.0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// A throughput scenario's report: its heading, each side's rates, its ratio line.
pub(super) fn throughput_report(
    b: &Bench,
    heading: &str,
    name: &str,
    samples: &Samples<f64>,
    target: f64,
) {
    b.out.line(&format!("\n{heading}"));
    throughput_lines(b, samples, "msg/s");
    ratio_line(b, name, samples, target);
}

pub(super) fn throughput_lines(b: &Bench, samples: &Samples<f64>, unit: &str) {
    for (side, values) in [
        (Side::Raw, &samples.raw),
        (Side::Component, &samples.component),
    ] {
        if values.is_empty() {
            continue;
        }
        let m = median(values);
        b.out.line(&format!(
            "   {:<10} {:>10} {unit}   min {:>10}  max {:>10}  spread {:>5.1}%",
            samples.sides.name(side),
            figure(m),
            figure(min(values)),
            figure(max(values)),
            (max(values) - min(values)) / m * 100.0
        ));
    }
}

/// The ratio line of a run with one side only (`--side`): no ratio can be given.
pub(super) fn no_ratio_line(b: &Bench, name: &str) {
    b.out
        .line(&format!("{name} ratio -  (one side only: --side)"));
}

/// The line the smoke test looks for: the scenario's name and `ratio X.XX` (component
/// median / raw median, or the measured side's over the yardstick's), with the target when
/// the issue sets one on the ratio.
pub(super) fn ratio_line(b: &Bench, name: &str, samples: &Samples<f64>, target: f64) {
    if samples.raw.is_empty() || samples.component.is_empty() {
        no_ratio_line(b, name);
        return;
    }
    let ratio = median(&samples.component) / median(&samples.raw);
    let sides = format!("({} / {})", samples.sides.measured, samples.sides.yardstick);
    let target = if target.is_nan() {
        sides
    } else {
        format!(
            "{sides}   target >= {target:.2}   {}",
            verdict(ratio >= target)
        )
    };
    b.out.line(&format!("{name} ratio {ratio:.2}  {target}"));
}
