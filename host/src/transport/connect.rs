//! Opening NATS connections for the component, and sharing them.
//!
//! Every instance of a runtime (the publisher and one per subscription) calls `connect`
//! with the options its metadata describes; instances with identical options share one
//! async-nats client, so a hundred subscriptions are one TCP connection, not a hundred.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::TransportError;
use crate::bindings::transport::{Auth, ConnectOptions, SecretSource};

/// A connected client and what it was opened with.
#[derive(Clone)]
pub(crate) struct SharedClient {
    pub(crate) client: async_nats::Client,
    /// Files written for inline TLS material; removed when the last user drops them.
    _tls_files: Arc<Vec<tempfile::NamedTempFile>>,
}

/// The clients opened by one runtime, keyed by their full connect options.
#[derive(Default, Clone)]
pub struct ClientPool {
    clients: Arc<Mutex<HashMap<String, SharedClient>>>,
}

impl ClientPool {
    /// The client for `options`, connecting when no instance has yet.
    pub(crate) async fn get_or_connect(
        &self,
        options: &ConnectOptions,
    ) -> Result<SharedClient, TransportError> {
        // Debug of the options is only a map key: it is never printed.
        let key = format!("{options:?}");
        let mut clients = self.clients.lock().await;
        if let Some(shared) = clients.get(&key) {
            return Ok(shared.clone());
        }
        let shared = connect(options).await?;
        clients.insert(key, shared.clone());
        Ok(shared)
    }

    /// Flushes and closes every client (pending acks and publishes are sent first).
    pub(crate) async fn drain_all(&self) {
        let clients: Vec<SharedClient> =
            self.clients.lock().await.drain().map(|(_, c)| c).collect();
        for shared in clients {
            let _ = shared.client.flush().await;
            let _ = shared.client.drain().await;
        }
    }
}

/// Opens one connection. Never gives up reconnecting once connected: the reference's
/// 2-minute reconnect limit (dapr/components-contrib#4563) is a bug we do not copy.
async fn connect(options: &ConnectOptions) -> Result<SharedClient, TransportError> {
    let servers = redacted_servers(&options.servers);
    let mut tls_files = Vec::new();
    let mut nats = match &options.auth {
        Auth::None => async_nats::ConnectOptions::new(),
        Auth::Token(token) => async_nats::ConnectOptions::with_token(token.clone()),
        Auth::UserPassword((user, password)) => {
            async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
        Auth::Nkey(seed) => async_nats::ConnectOptions::with_nkey(seed.clone()),
        Auth::Jwt(credentials) => {
            let key_pair = nkeys::KeyPair::from_seed(&credentials.seed).map_err(|_| {
                TransportError::Denied("seedKey is not a valid nkey user seed".into())
            })?;
            let key_pair = Arc::new(key_pair);
            async_nats::ConnectOptions::with_jwt(credentials.jwt.clone(), move |nonce| {
                let key_pair = key_pair.clone();
                async move { key_pair.sign(&nonce).map_err(async_nats::AuthError::new) }
            })
        }
        Auth::Credentials(source) => {
            let text = read_secret("credentials file", source)?;
            async_nats::ConnectOptions::with_credentials(&text).map_err(|_| {
                TransportError::Denied("the credentials file holds no valid JWT and seed".into())
            })?
        }
    };
    nats = nats
        .name(options.name.clone())
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_millis(u64::from(
            options.request_timeout_ms.max(1),
        ))));
    if options.tls.required {
        nats = nats.require_tls(true);
    }
    if let Some(ca) = &options.tls.ca {
        nats = nats.add_root_certificates(secret_path("tls CA", ca, &mut tls_files)?);
    }
    if let (Some(cert), Some(key)) = (&options.tls.client_cert, &options.tls.client_key) {
        let cert = secret_path("tls client certificate", cert, &mut tls_files)?;
        let key = secret_path("tls client key", key, &mut tls_files)?;
        nats = nats.add_client_certificate(cert, key).require_tls(true);
    }
    let addresses = options.servers.join(",");
    let client = nats.connect(addresses.as_str()).await.map_err(|err| {
        use async_nats::ConnectErrorKind as Kind;
        let what = format!("cannot connect to {servers}");
        match err.kind() {
            Kind::Authentication | Kind::AuthorizationViolation => {
                TransportError::Denied(format!("{what}: authorization failed"))
            }
            Kind::TimedOut => TransportError::TimedOut(format!("{what}: timed out")),
            Kind::ServerParse => TransportError::Invalid(format!("{what}: not a valid server URL")),
            Kind::Tls => TransportError::Connection(format!(
                "{what}: TLS failed: {}",
                redact(&super::error::error_chain(&err), &options.servers)
            )),
            _ => TransportError::Connection(format!(
                "{what}: {}",
                redact(&super::error::error_chain(&err), &options.servers)
            )),
        }
    })?;
    Ok(SharedClient {
        client,
        _tls_files: Arc::new(tls_files),
    })
}

/// Reads a secret the component passed inline or as a path.
fn read_secret(what: &str, source: &SecretSource) -> Result<String, TransportError> {
    match source {
        SecretSource::Inline(text) => Ok(text.clone()),
        SecretSource::File(path) => std::fs::read_to_string(path).map_err(|err| {
            TransportError::Invalid(format!("cannot read the {what} at {path}: {}", err.kind()))
        }),
    }
}

/// async-nats takes TLS material as paths: inline PEM goes to a private temporary file.
fn secret_path(
    what: &str,
    source: &SecretSource,
    files: &mut Vec<tempfile::NamedTempFile>,
) -> Result<PathBuf, TransportError> {
    match source {
        SecretSource::File(path) => {
            std::fs::metadata(path).map_err(|err| {
                TransportError::Invalid(format!("cannot read the {what} at {path}: {}", err.kind()))
            })?;
            Ok(PathBuf::from(path))
        }
        SecretSource::Inline(pem) => {
            use std::io::Write as _;
            let mut file = tempfile::NamedTempFile::new().map_err(|err| {
                TransportError::Other(format!("cannot stage the {what}: {}", err.kind()))
            })?;
            file.write_all(pem.as_bytes()).map_err(|err| {
                TransportError::Other(format!("cannot stage the {what}: {}", err.kind()))
            })?;
            let path = file.path().to_path_buf();
            files.push(file);
            Ok(path)
        }
    }
}

/// Server URLs for messages: user info (`user:password@`, `token@`) is masked.
pub(crate) fn redacted_servers(servers: &[String]) -> String {
    servers
        .iter()
        .map(|s| redact_url(s))
        .collect::<Vec<_>>()
        .join(",")
}

fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    match rest.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}***@{host}"),
        None => url.to_string(),
    }
}

/// Removes any user info of the server URLs from a library message.
fn redact(text: &str, servers: &[String]) -> String {
    let mut text = text.to_string();
    for server in servers {
        if let Some((userinfo, _)) = server
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or(server)
            .rsplit_once('@')
            && !userinfo.is_empty()
        {
            text = text.replace(userinfo, "***");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_masked_in_messages() {
        let servers = vec![
            "nats://alice:s3cret@h:4222".to_string(),
            "tls://tok3n@h2".into(),
            "h3:4222".into(),
        ];
        assert_eq!(
            redacted_servers(&servers),
            "nats://***@h:4222,tls://***@h2,h3:4222"
        );
        assert_eq!(
            redact("failed alice:s3cret and tok3n", &servers),
            "failed *** and ***"
        );
    }
}
