//! Where an untrusted component may make the host connect, and which files it may make the
//! host read.
//!
//! Why: the component names the NATS servers (its `natsURL`) and the credential files
//! (`credsFile`, the TLS certificate, key and CA paths) in what it passes to `connect`. The
//! host does the connecting and the reading, so without a rule here a component could make
//! it open a connection to any address or present any readable file to a server of its
//! choosing. An embedder says which servers and files are allowed; everything else is
//! refused with a `transport-error.refused` value that names the server or path and the
//! rule, never with a trap.

use std::path::{Path, PathBuf};

use super::Refusal;
use crate::error::Error;
use crate::redact;

/// Which servers and files the component may name. The default, [`SandboxPolicy::new`],
/// allows every server and every file (a library user who sets nothing keeps what the
/// component's metadata says); [`SandboxPolicy::deny_all`] allows none, and each
/// `allow_*` call adds one entry to the list of its kind.
///
/// ```
/// use jetstream_pubsub_host::SandboxPolicy;
///
/// let policy = SandboxPolicy::deny_all()
///     .allow_server("nats.internal:4222")?
///     .allow_path("/etc/nats/creds");
/// # Ok::<(), jetstream_pubsub_host::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct SandboxPolicy {
    /// `None`: any server.
    servers: Option<Vec<AllowedServer>>,
    /// `None`: any file.
    paths: Option<Vec<PathBuf>>,
}

/// One `HOST:PORT` entry of the server list. Hosts compare without regard to case, as DNS
/// names do; a name and the address it resolves to are different entries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedServer {
    host: String,
    port: u16,
}

impl SandboxPolicy {
    /// A policy that allows every server and every file: what the component's metadata
    /// names is used as it is.
    pub fn new() -> Self {
        Self::default()
    }

    /// A policy that allows no server and no file until `allow_*` adds them.
    pub fn deny_all() -> Self {
        Self {
            servers: Some(Vec::new()),
            paths: Some(Vec::new()),
        }
    }

    /// Allows the server at `HOST:PORT` (an IPv6 host in brackets: `[::1]:4222`). From the
    /// first call on, servers not in the list are refused. A server URL the component
    /// names matches when its host and port (4222 when the URL has none; 80 and 443 for
    /// `ws://` and `wss://`) are an entry's.
    pub fn allow_server(mut self, host_port: &str) -> Result<Self, Error> {
        let server = parse_host_port(host_port).ok_or_else(|| {
            Error::Policy(format!(
                "cannot allow server {host_port:?}: expected HOST:PORT (for example 127.0.0.1:4222)"
            ))
        })?;
        self.servers.get_or_insert_with(Vec::new).push(server);
        Ok(self)
    }

    /// Allows reading the file at `path`, or every file below it when it is a directory.
    /// From the first call on, other files are refused. Paths are compared after resolving
    /// `..` and symbolic links, on both sides, so a link cannot lead out of an allowed
    /// directory; an allowed path that does not exist (yet) is compared as written.
    pub fn allow_path(mut self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.paths.get_or_insert_with(Vec::new).push(resolved);
        self
    }

    /// Refuses a server the policy does not allow. Called for every server of a `connect`,
    /// on the address as parsed once (what async-nats will connect to), before any
    /// connection is opened; `url` is only shown (user info masked). The refusal names the
    /// server and the rule, not the list: the component is not told what else is allowed.
    pub(crate) fn check_server(
        &self,
        url: &str,
        address: &async_nats::ServerAddr,
    ) -> Result<(), Refusal> {
        let Some(allowed) = &self.servers else {
            return Ok(());
        };
        let host = normalized_host(address.host());
        let port = address.port();
        if allowed
            .iter()
            .any(|rule| rule.port == port && rule.host == host)
        {
            return Ok(());
        }
        Err(Refusal::forbidden(
            "allow-server",
            format!(
                "cannot connect to {}: not a server the sandbox allows (allow-server)",
                redact::server(url)
            ),
        ))
    }

    /// Whether the policy limits servers: then async-nats must not follow the servers a
    /// cluster advertises, which nobody allowed.
    pub(crate) fn limits_servers(&self) -> bool {
        self.servers.is_some()
    }

    /// Whether the policy limits files: then what the host checked is what it hands on.
    pub(crate) fn limits_files(&self) -> bool {
        self.paths.is_some()
    }

    /// The path the host may read for `path` (resolved, when the policy limits files, so
    /// what is read is what was checked), or a refusal naming it. `what` says which
    /// credential it is; `secret` hides the path itself (a key pasted without armour is
    /// taken for a path and must not be echoed).
    pub(crate) fn readable_path(
        &self,
        what: &str,
        path: &str,
        secret: bool,
    ) -> Result<PathBuf, Refusal> {
        let Some(allowed) = &self.paths else {
            return Ok(PathBuf::from(path));
        };
        let shown = redact::path(path, secret);
        let refused = || {
            Refusal::forbidden(
                "allow-path",
                format!(
                    "cannot read {what} at {shown}: not a file the sandbox allows (allow-path)"
                ),
            )
        };
        // A file that cannot be resolved does not exist (or is unreachable): refused
        // alike, so a component cannot probe the file system outside the list.
        let resolved = std::fs::canonicalize(path).map_err(|_| refused())?;
        if allowed.iter().any(|rule| resolved.starts_with(rule)) {
            Ok(resolved)
        } else {
            Err(refused())
        }
    }
}

/// `HOST:PORT` or `[V6]:PORT`.
fn parse_host_port(text: &str) -> Option<AllowedServer> {
    let (host, port) = text.trim().rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok()?;
    if host.is_empty()
        || host.contains(['/', '@', ' '])
        || (host.contains(':') && !text.contains('['))
    {
        return None;
    }
    Some(AllowedServer {
        host: normalized_host(host),
        port,
    })
}

/// A host as compared: DNS names in lower case, IPv6 addresses in their canonical form
/// (`0:0::1` is `::1`).
fn normalized_host(host: &str) -> String {
    match host.parse::<std::net::Ipv6Addr>() {
        Ok(v6) => v6.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(policy: &SandboxPolicy, url: &str) -> Result<(), Refusal> {
        policy.check_server(url, &url.parse().expect("a valid URL"))
    }

    fn refused(result: Result<impl std::fmt::Debug, Refusal>) -> String {
        match result {
            Err(Refusal::Forbidden(text)) => text,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn servers_match_by_host_and_port() {
        let policy = SandboxPolicy::new()
            .allow_server("127.0.0.1:4222")
            .unwrap()
            .allow_server("Nats.Example:443")
            .unwrap()
            .allow_server("[::1]:5222")
            .unwrap();
        for url in [
            "nats://127.0.0.1:4222",
            "127.0.0.1",
            "tls://user:pw@127.0.0.1:4222",
            "wss://nats.example",
            "nats://[::1]:5222",
        ] {
            assert!(check(&policy, url).is_ok(), "{url}");
        }
        let text = refused(check(&policy, "nats://s3cret@10.0.0.9:4222"));
        assert_eq!(
            text,
            "cannot connect to nats://***@10.0.0.9:4222: not a server the sandbox allows (allow-server)"
        );
        assert!(check(&policy, "nats://127.0.0.1:4223").is_err());
        assert!(check(&policy, "ws://nats.example").is_err(), "port 80");
        // One IPv6 address, two spellings.
        let v6 = SandboxPolicy::new().allow_server("[0:0::1]:4222").unwrap();
        assert!(check(&v6, "nats://[::1]:4222").is_ok());
    }

    #[test]
    fn the_default_allows_everything_and_deny_all_nothing() {
        assert!(check(&SandboxPolicy::new(), "nats://anywhere:1").is_ok());
        assert!(
            SandboxPolicy::new()
                .readable_path("the credentials file", "/etc/hostname", false)
                .is_ok()
        );
        let none = SandboxPolicy::deny_all();
        assert!(refused(check(&none, "nats://127.0.0.1")).contains("allow-server"));
        assert!(
            refused(none.readable_path("the TLS CA", "/etc/hostname", false))
                .ends_with("not a file the sandbox allows (allow-path)")
        );
    }

    #[test]
    fn bad_server_rules_name_the_value() {
        for bad in ["localhost", "nats://h:4222", "h:port", ":4222", "::1:4222"] {
            match SandboxPolicy::new().allow_server(bad) {
                Err(Error::Policy(text)) => assert!(text.contains(&format!("{bad:?}")), "{text}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn paths_are_exact_files_or_directories_after_resolving_links() {
        let dir = tempfile::tempdir().unwrap();
        let allowed_dir = dir.path().join("creds");
        std::fs::create_dir(&allowed_dir).unwrap();
        let inside = allowed_dir.join("user.creds");
        std::fs::write(&inside, "x").unwrap();
        let single = dir.path().join("ca.pem");
        std::fs::write(&single, "x").unwrap();
        let outside = dir.path().join("other.pem");
        std::fs::write(&outside, "x").unwrap();
        let policy = SandboxPolicy::deny_all()
            .allow_path(&allowed_dir)
            .allow_path(&single);
        let read = |path: &Path| policy.readable_path("the TLS CA", path.to_str().unwrap(), false);
        assert!(read(&inside).is_ok());
        assert!(read(&single).is_ok());
        assert!(refused(read(&outside)).contains("other.pem"));
        // `..` and a link out of the allowed directory resolve to the file they name.
        assert!(read(&allowed_dir.join("../other.pem")).is_err());
        let link = allowed_dir.join("link.pem");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert!(read(&link).is_err());
        // Missing files are refused like forbidden ones; a secret path is not shown.
        assert!(read(&allowed_dir.join("missing")).is_err());
        let text = refused(policy.readable_path("the TLS client key", "SECRETKEY", true));
        assert!(!text.contains("SECRETKEY"), "{text}");
    }
}
