//! CI smoke of `jetstream-pubsub bench`: the benchmark still runs end to end and reports
//! every scenario. Only the exit code and the report's shape are checked, never a
//! timing: figures depend on the machine, and a debug build's are meaningless anyway.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_jetstream-pubsub");

/// The scenario names as the bench prints them on its `ratio` lines.
const SCENARIOS: [&str; 12] = [
    "S1 publish-awaited",
    "S1f entry-floor",
    "S1s entry-floor-sync",
    "S1c publish-concurrent",
    "S2 publish-pipelined",
    "S3 consume-single",
    "S4 consume-parallel",
    "S5 latency",
    "S6 sandbox",
    "S7 socket-publish-awaited",
    "S7c socket-publish-concurrent",
    "S7s socket-consume-single",
];

/// Runs a short bench with `extra` arguments; its process id and report, once it has
/// exited successfully.
fn quick_bench(extra: &[&str]) -> (u32, String) {
    let child = Command::new(BIN)
        .args(["bench", "--quick", "--rounds", "1", "--scale", "0.2"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the jetstream-pubsub binary runs");
    let pid = child.id();
    let output = child.wait_with_output().expect("the bench's output");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    (pid, stdout)
}

/// Whether the report has `scenario`'s ratio line.
fn has_ratio_line(stdout: &str, scenario: &str) -> bool {
    stdout
        .lines()
        .any(|line| line.starts_with(scenario) && line.contains(" ratio "))
}

#[test]
fn quick_bench_reports_a_ratio_for_every_scenario() {
    let (_, stdout) = quick_bench(&[]);
    for scenario in SCENARIOS {
        assert!(
            has_ratio_line(&stdout, scenario),
            "no ratio line for {scenario}:\n{stdout}"
        );
    }
}

/// `--side` (for profilers) runs one implementation only: its figures are printed, the
/// other side's are not, and no ratio is claimed from one side. `--workers` sets the
/// runtime the report names, and the scenarios run on one of its workers.
#[test]
fn one_side_only_prints_that_side_and_no_ratio() {
    let (_, stdout) = quick_bench(&["--only", "1,3", "--side", "raw", "--workers", "1"]);
    let lines: Vec<&str> = stdout.lines().map(str::trim_start).collect();
    assert!(
        lines.contains(
            &"runtime   tokio multi-thread, workers: 1; the scenarios run on thread tokio-rt-worker"
        ),
        "the runtime named, the scenarios on one of its workers:\n{stdout}"
    );
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

/// `--valgrind --perf-map`, for profilers: the bench runs on the small-pool runtime, and the
/// perf map the process wrote names the component's functions, so a profile of the JIT
/// code can be read.
#[test]
fn profiling_runtime_runs_and_maps_the_components_functions() {
    let (pid, stdout) = quick_bench(&["--only", "1", "--valgrind", "--perf-map"]);
    let map = std::path::PathBuf::from(format!("/tmp/perf-{pid}.map"));
    let written = std::fs::read_to_string(&map);
    let _ = std::fs::remove_file(&map);
    assert!(
        has_ratio_line(&stdout, "S1 publish-awaited"),
        "no S1 ratio line:\n{stdout}"
    );
    let written = written.unwrap_or_else(|err| panic!("{}: {err}", map.display()));
    assert!(
        written
            .lines()
            .any(|line| line.contains("wasm[0]::function[")),
        "no function of the component in {}",
        map.display()
    );
}
