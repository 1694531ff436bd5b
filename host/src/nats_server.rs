//! A local `nats-server` process: started on a loopback port it picks itself (`-p -1`, read
//! back from its log, so no two servers started at once can race for a port), with its own
//! store directory, stopped by PID. Used by `jetstream-pubsub demo` when no server answers, by
//! `bench`, and by the integration tests (restarts, auth and TLS configs, clusters).
//!
//! Only servers started here are ever stopped; a server already running on the
//! machine is never touched.
//!
//! A harness, not part of the sandbox's API: it comes with the `cli` feature (the binary's),
//! and an embedder who builds the library with `default-features = false` does not get it.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The binary is not installed.
    #[error("nats-server is not installed (apt-get install -y nats-server): {0}")]
    NotInstalled(std::io::Error),
    /// It started but never became ready; the log's tail says why.
    #[error("nats-server on port {port} did not become ready: {log_tail}")]
    NotReady {
        /// The port it was given; 0 when it was to pick one and never reported it.
        port: u16,
        /// The last lines of its log.
        log_tail: String,
    },
    /// Any other I/O failure (temp dir, spawning).
    #[error("starting nats-server: {0}")]
    Io(#[from] std::io::Error),
}

impl ServerError {
    /// True when the server could not listen because the port was taken: worth starting
    /// again with other ports when they came from [`free_port`].
    pub fn is_address_in_use(&self) -> bool {
        matches!(self, Self::NotReady { log_tail, .. } if log_tail.contains("address already in use"))
    }
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    jetstream: bool,
    port: Option<u16>,
    config_file: Option<PathBuf>,
    args: Vec<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            jetstream: true,
            port: None,
            config_file: None,
            args: Vec::new(),
        }
    }
}

impl ServerOptions {
    /// JetStream on, a port the server picks, no config file.
    pub fn jetstream() -> Self {
        Self::default()
    }

    /// Listen on this port instead of one the server picks.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Start with `-c FILE` (auth, TLS, cluster settings).
    pub fn config_file(mut self, path: impl AsRef<Path>) -> Self {
        self.config_file = Some(path.as_ref().to_path_buf());
        self
    }

    /// Extra command-line arguments.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Starts the server and waits until it accepts clients.
    pub fn start(self) -> Result<NatsServer, ServerError> {
        let dir = tempfile::Builder::new()
            .prefix("jetstream-pubsub-nats-")
            .tempdir()?;
        // 0 until the server reports the port it picked; restarts then reuse it.
        let port = self.port.unwrap_or(0);
        let mut server = NatsServer {
            options: self,
            port,
            dir,
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }
}

/// A running `nats-server` this process started.
pub struct NatsServer {
    options: ServerOptions,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// A TCP port that was free on the loopback interface a moment ago.
///
/// Racy by nature: another process can take it between this call and its use, so a server
/// started on it can fail with [`ServerError::is_address_in_use`], and the caller has to
/// start again with a new one. Only for ports that must be known before a server starts
/// (a cluster's route ports, which every node lists up front); a client port should be
/// left for the server to pick ([`ServerOptions::port`] unset).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// True when something accepts TCP connections at `host:port`.
pub fn is_listening(address: &str) -> bool {
    use std::net::ToSocketAddrs as _;
    let Ok(mut addresses) = address.to_socket_addrs() else {
        return false;
    };
    addresses.any(|addr| TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok())
}

impl NatsServer {
    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `ws://127.0.0.1:<port>` of the WebSocket listener a config file asked for (`websocket
    /// { listen: "127.0.0.1:-1", no_tls: true }`), as the server last reported it in its log;
    /// `None` without one. Read from the log because a `-1` port is only known once bound.
    pub fn websocket_url(&self) -> Option<String> {
        const LISTENING: &str = "Listening for websocket clients on ";
        let log = std::fs::read_to_string(self.log_file()).ok()?;
        log.lines()
            .rev()
            .find_map(|line| line.split_once(LISTENING))
            .map(|(_, url)| url.trim().to_string())
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The JetStream store directory (kept across restarts).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The server's log file.
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    fn spawn(&mut self) -> Result<(), ServerError> {
        let mut command = Command::new("nats-server");
        // `-p -1`: the server binds a port of its own choosing and logs which one.
        let port = match self.port {
            0 => "-1".to_string(),
            port => port.to_string(),
        };
        command.args(["-a", "127.0.0.1", "-p", &port]);
        if self.options.jetstream {
            command.arg("-js").arg("-sd").arg(self.store_dir());
        }
        if let Some(config) = &self.options.config_file {
            command.arg("-c").arg(config);
        }
        command
            .args(&self.options.args)
            .arg("-l")
            .arg(self.log_file());
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| {
                if err.kind() == std::io::ErrorKind::NotFound {
                    ServerError::NotInstalled(err)
                } else {
                    ServerError::Io(err)
                }
            })?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), ServerError> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
            if self.port == 0
                && let Some(port) = reported_port(&log)
            {
                self.port = port;
            }
            if self.port != 0
                && log.contains("Server is ready")
                && is_listening(&format!("127.0.0.1:{}", self.port))
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_exited)) = child.try_wait()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let log_tail = log
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ");
        self.kill();
        Err(ServerError::NotReady {
            port: self.port,
            log_tail,
        })
    }

    /// Kills the server with SIGKILL (a crash: nothing is flushed) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server gracefully (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store (after `kill` or `stop`). Fails
    /// if another process took the port while the server was down.
    pub fn start_again(&mut self) -> Result<(), ServerError> {
        if self.child.is_none() {
            self.spawn()?;
        }
        Ok(())
    }

    /// Crashes the server (SIGKILL) and starts it again on the same port and store.
    pub fn restart(&mut self) -> Result<(), ServerError> {
        self.kill();
        self.spawn()
    }
}

/// The client port in the log's last "Listening for client connections on HOST:PORT" line
/// (nats-server 2.9 logs it before "Server is ready").
fn reported_port(log: &str) -> Option<u16> {
    let line = log
        .lines()
        .rev()
        .find(|line| line.contains("Listening for client connections on "))?;
    line.trim_end().rsplit(':').next()?.parse().ok()
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_read_from_the_listening_line() {
        let log = "[1] 2026/12/06 19:40:47.431071 [INF] Listening for client connections on 127.0.0.1:42843\n\
                   [1] 2026/12/06 19:40:47.431545 [INF] Listening for route connections on 127.0.0.1:42545\n\
                   [1] 2026/12/06 19:40:47.431600 [INF] Server is ready\n";
        assert_eq!(reported_port(log), Some(42843));
        assert_eq!(reported_port("[1] [INF] Starting nats-server\n"), None);
    }

    #[test]
    fn a_taken_port_is_told_apart() {
        let taken = ServerError::NotReady {
            port: 4222,
            log_tail: "[FTL] Error listening on port: 127.0.0.1:4222, \"listen tcp 127.0.0.1:4222: bind: address already in use\"".into(),
        };
        assert!(taken.is_address_in_use());
        let other = ServerError::NotReady {
            port: 0,
            log_tail: "[FTL] bad config".into(),
        };
        assert!(!other.is_address_in_use());
    }
}
