//! What a connection is opened with, as the component describes it (its
//! `connect-options`): servers, name, credentials, TLS, the JetStream API prefix and the
//! request timeout.
//!
//! `Debug` is derived because the pool keys its clients by the whole options; it prints
//! credentials, so it is never logged (`ConnectionSettings` writes its own).

/// Everything needed to open a connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnectOptions {
    /// Server URLs (`nats://`, `tls://`, `ws://`, `wss://`), tried in turn.
    pub(crate) servers: Vec<String>,
    /// Connection name sent in CONNECT (visible in server reports).
    pub(crate) name: String,
    /// Authentication.
    pub(crate) auth: Auth,
    /// TLS settings.
    pub(crate) tls: TlsOptions,
    /// JetStream API prefix without the trailing dot (`$JS.API`, `$JS.hub.API`, ...).
    pub(crate) api_prefix: String,
    /// Bound for one JetStream API request or publish acknowledgement.
    pub(crate) request_timeout_ms: u32,
}

/// How the connection authenticates.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    /// No credentials beyond what the server URLs carry.
    None,
    /// `auth_token` in CONNECT.
    Token(String),
    /// User and password in CONNECT.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// Decentralised auth: a user JWT and the nkey seed that signs the server nonce.
    Jwt {
        /// The user JWT.
        jwt: String,
        /// The user's nkey seed (`SU...`).
        seed: String,
    },
    /// Plain nkey auth: the seed signs the server nonce.
    Nkey(String),
    /// A `.creds` file (or its content) holding the user JWT and seed.
    Credentials(SecretSource),
}

/// TLS settings; absent fields leave the library defaults (system roots, no client
/// certificate).
#[derive(Debug, Clone)]
pub(crate) struct TlsOptions {
    /// Require TLS even when the URL scheme is `nats://`.
    pub(crate) required: bool,
    /// Client certificate chain (PEM) for mutual TLS.
    pub(crate) client_cert: Option<SecretSource>,
    /// Client private key (PEM) for mutual TLS.
    pub(crate) client_key: Option<SecretSource>,
    /// CA certificates (PEM) the server certificate must chain to.
    pub(crate) ca: Option<SecretSource>,
}

/// Where a credential comes from: the host reads a file, under the sandbox policy.
#[derive(Debug, Clone)]
pub(crate) enum SecretSource {
    /// The value itself (a token, an inline PEM document).
    Inline(String),
    /// A file the host reads.
    File(String),
}
