//! CI smoke of `jetstream-pubsub bench`: the benchmark still runs end to end and reports
//! every scenario. Only the exit code and the report's shape are checked, never a
//! timing: figures depend on the machine, and a debug build's are meaningless anyway.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_jetstream-pubsub");

/// The scenario names as the bench prints them on its `ratio` lines.
const SCENARIOS: [&str; 8] = [
    "S1 publish-awaited",
    "S1f entry-floor",
    "S1c publish-concurrent",
    "S2 publish-pipelined",
    "S3 consume-single",
    "S4 consume-parallel",
    "S5 latency",
    "S6 sandbox",
];

/// Runs a short bench with `extra` arguments; its report, once it has exited successfully.
fn quick_bench(extra: &[&str]) -> String {
    let output = Command::new(BIN)
        .args(["bench", "--quick", "--rounds", "1", "--scale", "0.2"])
        .args(extra)
        .output()
        .expect("the jetstream-pubsub binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

#[test]
fn quick_bench_reports_a_ratio_for_every_scenario() {
    let stdout = quick_bench(&[]);
    for scenario in SCENARIOS {
        assert!(
            stdout
                .lines()
                .any(|line| line.starts_with(scenario) && line.contains(" ratio ")),
            "no ratio line for {scenario}:\n{stdout}"
        );
    }
}

/// `--side` (for profilers) runs one implementation only: its figures are printed, the
/// other side's are not, and no ratio is claimed from one side.
#[test]
fn one_side_only_prints_that_side_and_no_ratio() {
    let stdout = quick_bench(&["--only", "1,3", "--side", "raw"]);
    let lines: Vec<&str> = stdout.lines().map(str::trim_start).collect();
    assert!(
        lines.iter().filter(|line| line.starts_with("raw ")).count() >= 3,
        "raw figures for S1, S1c and S3:\n{stdout}"
    );
    assert!(
        !lines.iter().any(|line| line.starts_with("component ")),
        "no component figures:\n{stdout}"
    );
    for scenario in ["S1 publish-awaited", "S3 consume-single"] {
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with(scenario) && line.contains(" ratio -")),
            "no ratio claimed for {scenario}:\n{stdout}"
        );
    }
    assert!(!stdout.contains("NaN"), "no NaN figures:\n{stdout}");
}
