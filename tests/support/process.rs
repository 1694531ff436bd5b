//! A `jetstream-pubsub` process the test started: its stderr collected line by line (and
//! echoed, for `--nocapture`), waited on for a line, stopped with SIGTERM as an operator
//! would, killed on drop.

use std::io::BufRead as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a line, or an exit, may take.
const WAIT: Duration = Duration::from_secs(30);

pub struct Running {
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    /// Runs `command` with stderr piped; `label` prefixes its echoed lines.
    pub fn spawn(command: &mut Command, label: &'static str) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("jetstream-pubsub starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let lines = std::io::BufReader::new(child.stderr.take().expect("stderr is piped"));
        let shared = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                eprintln!("[{label}] {line}");
                let mut text = shared.lock().expect("stderr lock");
                text.push_str(&line);
                text.push('\n');
            }
        });
        Running {
            child: Some(child),
            stderr,
        }
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// Blocks until the process has written `text` to stderr; fails the test after a while.
    pub fn wait_for_stderr_blocking(&self, text: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.has_written(text, deadline) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the process has written `text` to stderr; fails the test after a while.
    pub async fn wait_for_stderr(&self, text: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.has_written(text, deadline) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether stderr holds `text` yet; fails the test once `deadline` has passed.
    fn has_written(&self, text: &str, deadline: Instant) -> bool {
        let stderr = self.stderr();
        assert!(
            stderr.contains(text) || Instant::now() < deadline,
            "the process never wrote {text:?}: {stderr}"
        );
        stderr.contains(text)
    }

    /// The address after `metrics: serving /metrics, /healthz and /readyz on http://` on
    /// stderr (`--metrics`), once written.
    pub async fn metrics_address(&self) -> String {
        const SERVING: &str = "metrics: serving /metrics, /healthz and /readyz on http://";
        self.wait_for_stderr(SERVING).await;
        let stderr = self.stderr();
        let line = stderr
            .lines()
            .find_map(|line| line.strip_prefix(SERVING))
            .expect("the metrics line");
        line.trim().to_string()
    }

    /// Sends SIGTERM and waits for the process to exit; its status and stderr. Waits
    /// without blocking the test's runtime, which may drive the other end of the
    /// process's connections.
    pub async fn terminate(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("the process runs");
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("the process can be waited for") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit in {WAIT:?} after SIGTERM: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The reader thread ends with the pipe; give it the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        (status, self.stderr())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
