//! Opening NATS connections for the component, and sharing them.
//!
//! Every instance of a runtime (the publisher and one per subscription) calls `connect`
//! with the options its metadata describes; instances with identical options share one
//! async-nats client, so a hundred subscriptions are one TCP connection, not a hundred.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use async_nats::ServerAddr;

use super::TransportError;
use super::connect_options::{Auth, ConnectOptions, SecretSource};
use super::credentials::{self, CredentialProblem};
use super::server_url;
use crate::redact;
use crate::sandbox::SandboxPolicy;

/// A connected client and what it was opened with. Every holder of a clone (a
/// `connection` or `subscription` resource, a parked subscriber) keeps it in use: the pool
/// closes only clients that nobody else holds.
#[derive(Clone)]
pub(crate) struct SharedClient {
    pub(crate) client: async_nats::Client,
    /// Files written for inline TLS material; removed when the last user drops them. Its
    /// count of holders is also how the pool tells a client in use from an idle one.
    tls_files: Arc<Vec<tempfile::NamedTempFile>>,
    /// How long a PubAck may still come after the last holder let go: the request timeout
    /// the client was opened with. An idle client is closed only after it.
    ack_grace: Duration,
    /// The servers it was opened for, user info masked: for readiness reasons.
    servers: Arc<str>,
}

impl std::ops::Deref for SharedClient {
    type Target = async_nats::Client;

    fn deref(&self) -> &async_nats::Client {
        &self.client
    }
}

impl SharedClient {
    /// True when only the pool holds this client.
    fn is_idle(&self) -> bool {
        Arc::strong_count(&self.tls_files) == 1
    }
}

/// The clients opened by one runtime, keyed by their full connect options, at most
/// `max_clients` of them.
///
/// The map's lock is never held across a connect: a slot per key is taken under the lock,
/// and the connect runs on the slot (`OnceCell`), so a server that is slow to answer
/// delays only the instances that asked for that same server.
#[derive(Clone)]
pub struct ClientPool {
    slots: Arc<Mutex<HashMap<String, Arc<OnceCell<SharedClient>>>>>,
    max_clients: usize,
}

impl ClientPool {
    /// A pool of at most `max_clients` clients (at least one).
    pub(crate) fn new(max_clients: u32) -> Self {
        Self {
            slots: Arc::default(),
            max_clients: (max_clients as usize).max(1),
        }
    }

    /// The client for `options`, connecting when no instance has yet. The policy is
    /// checked on every call, a shared client included: two runtimes never share a pool,
    /// but the check is what stands between the component and the network.
    ///
    /// `reconnects` counts the times a new client's connection comes back after it was
    /// lost (a shared client counts under the labels of the instance that opened it).
    pub(crate) async fn get_or_connect(
        &self,
        options: &ConnectOptions,
        policy: &SandboxPolicy,
        reconnects: metrics::Counter,
    ) -> Result<SharedClient, TransportError> {
        let addresses = options
            .servers
            .iter()
            .map(|url| server_url::parse(url))
            .collect::<Result<Vec<_>, _>>()?;
        for (url, address) in options.servers.iter().zip(&addresses) {
            policy.check_server(url, address)?;
        }
        // Debug of the options is only a map key: it is never printed.
        let key = format!("{options:?}");
        let (slot, idle) = self.slot(&key, options)?;
        close_all(idle);
        let connected = slot
            .get_or_try_init(|| connect(options, &addresses, policy, reconnects))
            .await;
        if connected.is_err() {
            self.forget_failed(&key, &slot);
        }
        connected.cloned()
    }

    /// The slot of `key`, made when missing; at the limit, idle clients are closed to make
    /// room (returned, to be closed outside the lock).
    fn slot(
        &self,
        key: &str,
        options: &ConnectOptions,
    ) -> Result<(Arc<OnceCell<SharedClient>>, Vec<SharedClient>), TransportError> {
        let mut slots = self.lock();
        if let Some(slot) = slots.get(key) {
            return Ok((slot.clone(), Vec::new()));
        }
        let mut idle = Vec::new();
        if slots.len() >= self.max_clients {
            // A slot someone holds (connecting, or about to clone its client) stays; of the
            // others, idle clients are closed and slots whose connect was abandoned dropped.
            slots.retain(|_, slot| {
                if Arc::strong_count(slot) > 1 {
                    return true;
                }
                match slot.get() {
                    Some(client) if client.is_idle() => {
                        idle.push(client.clone());
                        false
                    }
                    Some(_) => true,
                    None => false,
                }
            });
        }
        if slots.len() >= self.max_clients {
            return Err(TransportError::refused(
                "max_clients",
                format!(
                    "cannot connect to {}: the host already holds {} NATS clients, its limit (max_clients), all in use",
                    redact::servers(&options.servers),
                    slots.len()
                ),
            ));
        }
        let slot = Arc::new(OnceCell::new());
        slots.insert(key.to_string(), slot.clone());
        Ok((slot, idle))
    }

    /// Removes a slot whose connect failed, unless another connect filled it meanwhile.
    fn forget_failed(&self, key: &str, slot: &Arc<OnceCell<SharedClient>>) {
        let mut slots = self.lock();
        if slots
            .get(key)
            .is_some_and(|held| Arc::ptr_eq(held, slot) && !held.initialized())
        {
            slots.remove(key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<OnceCell<SharedClient>>>> {
        // The map stays consistent whatever panicked while holding it.
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Why a client of this pool cannot serve now (its connection is down, or not up yet),
    /// naming its servers; `None` when every client is connected.
    pub(crate) fn connection_problem(&self) -> Option<String> {
        use async_nats::connection::State;
        self.lock().values().find_map(|slot| {
            let shared = slot.get()?;
            let state = match shared.client.connection_state() {
                State::Connected => return None,
                State::Pending => "not established yet",
                State::Disconnected => "down (reconnecting)",
            };
            Some(format!(
                "the NATS connection to {} is {state}",
                shared.servers
            ))
        })
    }

    /// Flushes and closes every client (pending acks and publishes are sent first).
    pub(crate) async fn drain_all(&self) {
        let clients: Vec<SharedClient> = self
            .lock()
            .drain()
            .filter_map(|(_, slot)| slot.get().cloned())
            .collect();
        for shared in clients {
            let _ = shared.client.flush().await;
            let _ = shared.client.drain().await;
        }
    }
}

/// Closes clients the pool let go of, on a task: nobody waits for it. A PubAck of a message
/// sent just before the last holder let go may still be on its way (its caller awaits it
/// outside the component), so each client is closed once its ack timeout has passed.
fn close_all(idle: Vec<SharedClient>) {
    if idle.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let grace = idle
            .iter()
            .map(|shared| shared.ack_grace)
            .max()
            .unwrap_or_default();
        tokio::time::sleep(grace).await;
        for shared in idle {
            let _ = shared.client.flush().await;
            let _ = shared.client.drain().await;
        }
    });
}

/// What a client's connection events do: a lost connection is a warning, its return a
/// line and a count. The first `Connected` is the initial connect, not a return.
fn connection_events(
    servers: String,
    reconnects: metrics::Counter,
) -> impl Fn(async_nats::Event) -> std::future::Ready<()> + Send + Sync + 'static {
    let connected_before = std::sync::atomic::AtomicBool::new(false);
    move |event| {
        match event {
            // The swap marks the first one seen: every later one is a return.
            async_nats::Event::Connected
                if connected_before.swap(true, std::sync::atomic::Ordering::Relaxed) =>
            {
                reconnects.increment(1);
                tracing::info!(%servers, "the NATS connection is back");
            }
            async_nats::Event::Disconnected => {
                tracing::warn!(%servers, "the NATS connection is lost; reconnecting");
            }
            _ => {}
        }
        std::future::ready(())
    }
}

/// Opens one connection. Never gives up reconnecting once connected: the reference's
/// 2-minute reconnect limit (dapr/components-contrib#4563) is a bug we do not copy.
///
/// Every failure is one line that says which credential failed and why (a file that cannot be
/// read, a seed that is not the JWT's, an expired JWT, the server's refusal, a TLS
/// verification error) and never contains a token, password, seed, JWT or key bytes.
async fn connect(
    options: &ConnectOptions,
    addresses: &[ServerAddr],
    policy: &SandboxPolicy,
    reconnects: metrics::Counter,
) -> Result<SharedClient, TransportError> {
    let servers = redact::servers(&options.servers);
    let what = format!("cannot connect to {servers}");
    let mut tls_files = Vec::new();
    let credential = credential_name(options);
    let invalid = |problem: CredentialProblem| {
        TransportError::Denied(format!("{what}: {credential}: {problem}"))
    };
    let mut nats = match &options.auth {
        Auth::None => async_nats::ConnectOptions::new(),
        Auth::Token(token) => async_nats::ConnectOptions::with_token(token.clone()),
        Auth::UserPassword { user, password } => {
            async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
        Auth::Nkey(seed) => {
            credentials::user_key_pair(seed).map_err(invalid)?;
            async_nats::ConnectOptions::with_nkey(seed.trim().to_string())
        }
        Auth::Jwt { jwt, seed } => {
            let key_pair = credentials::check_user(jwt, seed).map_err(invalid)?;
            with_user_jwt(jwt.trim().to_string(), key_pair)
        }
        Auth::Credentials(source) => {
            let text = read_secret("the credentials file", source, policy)?;
            let (jwt, seed) = credentials::parse_creds(&text).map_err(invalid)?;
            let key_pair = credentials::check_user(&jwt, &seed).map_err(invalid)?;
            with_user_jwt(jwt, key_pair)
        }
    };
    match server_url::credentials(addresses) {
        Some(server_url::Credentials::Token(token)) => nats = nats.token(token),
        Some(server_url::Credentials::UserPassword(user, password)) => {
            nats = nats.user_and_password(user, password);
        }
        None => {}
    }
    let request_timeout = Duration::from_millis(u64::from(options.request_timeout_ms.max(1)));
    nats = reconnect_forever(nats)
        .event_callback(connection_events(servers.clone(), reconnects))
        .name(options.name.clone())
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(request_timeout));
    if options.tls.required {
        nats = nats.require_tls(true);
    }
    // Servers a cluster advertises were allowed by nobody: with a server list in force,
    // the client reconnects only to the servers the component named (and the policy let
    // through). List every member in `natsURL` to fail over across a cluster.
    if policy.limits_servers() {
        nats = nats.ignore_discovered_servers();
    }
    if let Some(ca) = &options.tls.ca {
        nats = nats.add_root_certificates(secret_path(
            "the TLS CA",
            ca,
            false,
            policy,
            &mut tls_files,
        )?);
    }
    if let (Some(cert), Some(key)) = (&options.tls.client_cert, &options.tls.client_key) {
        let cert = secret_path(
            "the TLS client certificate",
            cert,
            false,
            policy,
            &mut tls_files,
        )?;
        let key = secret_path("the TLS client key", key, true, policy, &mut tls_files)?;
        nats = nats.add_client_certificate(cert, key).require_tls(true);
    }
    // The user info was applied above; async-nats logs server addresses in full at debug
    // level, so it never sees it. The addresses are the ones the policy checked, parsed
    // once (`server_url`), never text for async-nats to read its own way.
    let addresses = addresses
        .iter()
        .map(server_url::without_user_info)
        .collect::<Vec<_>>();
    let client = nats.connect(addresses).await.map_err(|err| {
        use async_nats::ConnectErrorKind as Kind;
        let cause = redact::user_info(&super::error::error_chain(&err), &options.servers);
        match err.kind() {
            Kind::Authentication | Kind::AuthorizationViolation => {
                TransportError::Denied(format!("{what}: the server refused {credential}: {cause}"))
            }
            Kind::TimedOut => TransportError::TimedOut(format!("{what}: timed out")),
            Kind::ServerParse => TransportError::Invalid(format!("{what}: not a valid server URL")),
            // A verification failure surfaces as a TLS or an IO error depending on the
            // step that saw it; either way it is the TLS setup that failed.
            Kind::Tls | Kind::Io
                if cause.contains("certificate") || matches!(err.kind(), Kind::Tls) =>
            {
                let hint = if options.tls.ca.is_some() && cause.contains("UnknownIssuer") {
                    " (the server certificate is not signed by the configured CA)"
                } else if cause.contains("UnknownIssuer") {
                    " (the server certificate does not chain to the system roots; set a CA)"
                } else {
                    ""
                };
                TransportError::Connection(format!("{what}: TLS failed: {cause}{hint}"))
            }
            _ => TransportError::Connection(format!("{what}: {cause}")),
        }
    })?;
    Ok(SharedClient {
        client,
        tls_files: Arc::new(tls_files),
        ack_grace: request_timeout,
        servers: servers.into(),
    })
}

/// No limit on reconnect attempts, whatever the options held before: the reference
/// (nats.go defaults, 60 attempts 2 s apart) gives up after about 2 minutes and never
/// recovers (dapr/components-contrib#4563). async-nats waits between attempts with an
/// exponential backoff capped at 4 s, so a long outage costs one attempt every 4 s.
fn reconnect_forever(nats: async_nats::ConnectOptions) -> async_nats::ConnectOptions {
    nats.max_reconnects(None)
}

/// Decentralised auth: CONNECT carries the JWT and the nonce signed by the user's key.
fn with_user_jwt(jwt: String, key_pair: nkeys::KeyPair) -> async_nats::ConnectOptions {
    let key_pair = Arc::new(key_pair);
    async_nats::ConnectOptions::with_jwt(jwt, move |nonce| {
        let key_pair = key_pair.clone();
        async move { key_pair.sign(&nonce).map_err(async_nats::AuthError::new) }
    })
}

/// The credential the connection presents, in words, for error messages.
fn credential_name(options: &ConnectOptions) -> &'static str {
    let in_url = options.servers.iter().any(|s| server_url::has_user_info(s));
    match &options.auth {
        Auth::None | Auth::Token(_) | Auth::UserPassword { .. } if in_url => {
            "the credentials in the server URL"
        }
        Auth::Token(_) => "the token",
        Auth::UserPassword { .. } => "the user and password",
        Auth::Nkey(_) => "the nkey seed",
        Auth::Jwt { .. } => "the user JWT and seed",
        Auth::Credentials(_) => "the credentials file",
        Auth::None if options.tls.client_cert.is_some() => "the TLS client certificate",
        Auth::None => "the connection (no credentials configured)",
    }
}

/// The largest credential file the host reads for the component (a `.creds` file, a
/// certificate chain, a CA bundle): far above any real one, and small enough that a
/// component naming a huge file (or `/dev/zero`) cannot make the host hold it.
const MAX_CREDENTIAL_FILE_BYTES: u64 = 1 << 20;

/// Reads a credential file the policy allows: a regular file (a FIFO or a device could block
/// the host or never end) of at most [`MAX_CREDENTIAL_FILE_BYTES`].
fn read_credential_file(
    what: &str,
    path: &str,
    secret: bool,
    policy: &SandboxPolicy,
) -> Result<(PathBuf, Vec<u8>), TransportError> {
    use std::io::Read as _;
    let allowed = policy.readable_path(what, path, secret)?;
    let failed = |why: String| {
        TransportError::Invalid(format!(
            "cannot read {what} at {}: {why}",
            redact::path(path, secret)
        ))
    };
    let metadata = std::fs::metadata(&allowed).map_err(|err| failed(err.kind().to_string()))?;
    if !metadata.is_file() {
        return Err(failed("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(&allowed)
        .and_then(|file| {
            file.take(MAX_CREDENTIAL_FILE_BYTES + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(|err| failed(err.kind().to_string()))?;
    if bytes.len() as u64 > MAX_CREDENTIAL_FILE_BYTES {
        return Err(failed(format!(
            "larger than {MAX_CREDENTIAL_FILE_BYTES} bytes"
        )));
    }
    Ok((allowed, bytes))
}

/// Reads a secret the component passed inline or as a path (one the policy allows).
fn read_secret(
    what: &str,
    source: &SecretSource,
    policy: &SandboxPolicy,
) -> Result<String, TransportError> {
    match source {
        SecretSource::Inline(text) => Ok(text.clone()),
        SecretSource::File(path) => {
            let (_, bytes) = read_credential_file(what, path, false, policy)?;
            String::from_utf8(bytes).map_err(|_| {
                TransportError::Invalid(format!(
                    "cannot read {what} at {}: not UTF-8 text",
                    redact::path(path, false)
                ))
            })
        }
    }
}

/// async-nats takes TLS material as paths, and reads them again at every reconnect. A path
/// is checked against the policy and read now (so the error names it). Under a policy that
/// limits files, async-nats gets a private copy of what was checked (a file replaced later,
/// a link swapped in, is never read); otherwise it gets the path itself, so a certificate
/// rotated on disk is picked up at the next reconnect. Inline PEM goes to a private
/// temporary file too (mode 0600, removed with the client).
fn secret_path(
    what: &str,
    source: &SecretSource,
    secret: bool,
    policy: &SandboxPolicy,
    files: &mut Vec<tempfile::NamedTempFile>,
) -> Result<PathBuf, TransportError> {
    let staged = |bytes: &[u8], files: &mut Vec<tempfile::NamedTempFile>| {
        use std::io::Write as _;
        let mut file = tempfile::NamedTempFile::new()
            .map_err(|err| TransportError::Other(format!("cannot stage {what}: {}", err.kind())))?;
        file.write_all(bytes)
            .map_err(|err| TransportError::Other(format!("cannot stage {what}: {}", err.kind())))?;
        let path = file.path().to_path_buf();
        files.push(file);
        Ok(path)
    };
    match source {
        SecretSource::File(path) => {
            let (allowed, bytes) = read_credential_file(what, path, secret, policy)?;
            if policy.limits_files() {
                staged(&bytes, files)
            } else {
                Ok(allowed)
            }
        }
        SecretSource::Inline(pem) => staged(pem.as_bytes(), files),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_never_stops_reconnecting() {
        // async-nats has no getter; its hand-written Debug lists the field.
        let bounded = async_nats::ConnectOptions::new().max_reconnects(60);
        assert!(format!("{bounded:?}").contains("\"max_reconnects\": Some(60)"));
        let options = reconnect_forever(bounded);
        assert!(
            format!("{options:?}").contains("\"max_reconnects\": None"),
            "{options:?}"
        );
    }
}
