//! The connection the metadata describes: its servers, the one credential it presents (as
//! NATS auth, or as a TLS client certificate), whether TLS is required, and where each
//! secret comes from.
//!
//! Why: one credential is used, chosen in the reference's precedence (see
//! [`crate::metadata::credentials`]). As in the reference, the client certificate is only
//! presented when it is the chosen credential. TLS is required whenever a client certificate
//! or a CA is configured, so such settings never fall back to plain text. The component has
//! no files: a value with a PEM (or `.creds`) armour is the content itself, anything else is
//! a path the host reads (and its sandbox policy may refuse).
//!
//! ```
//! use jetstream_pubsub_guest::connect::{Auth, SecretSource, plan_connect};
//! use jetstream_pubsub_guest::metadata::parse;
//! let props = [("natsURL", "tls://h:4222"), ("credsFile", "/etc/nats/app.creds")]
//!     .map(|(k, v)| (k.to_owned(), v.to_owned()));
//! let metadata = parse(&props).expect("valid");
//! let plan = plan_connect(&metadata);
//! assert_eq!(plan.auth, Auth::Credentials(SecretSource::File("/etc/nats/app.creds")));
//! assert!(!plan.tls.required);
//! ```

use std::fmt;

use crate::metadata::credentials::Credential;
use crate::metadata::{Metadata, Secret};

/// Timeout for JetStream API requests and publish acknowledgements (the reference's 5 s).
pub const REQUEST_TIMEOUT_MS: u32 = 5_000;

/// Where a credential or certificate comes from (WIT `secret-source`). `Debug` shows a
/// path but never inline content, which may be a private key or a seed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SecretSource<'a> {
    /// The value is the content (it carries a `-----BEGIN` armour).
    Inline(&'a str),
    /// The value is a path for the host to read.
    File(&'a str),
}

impl<'a> SecretSource<'a> {
    /// Content when the value carries a PEM (or `.creds`) armour, else a path.
    pub fn of(value: &'a str) -> Self {
        if value.contains("-----BEGIN") {
            Self::Inline(value)
        } else {
            Self::File(value)
        }
    }
}

impl fmt::Debug for SecretSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Inline(<redacted>)"),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// How the connection authenticates (WIT `auth`); secrets stay [`Secret`]s until the
/// adapter hands them to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth<'a> {
    /// Nothing beyond what the server URLs carry (also when the credential is a client
    /// certificate: it goes in [`Tls`]).
    None,
    /// `token`.
    Token(&'a Secret),
    /// `user` + `password`.
    UserPassword {
        /// The user name.
        user: &'a str,
        /// The password.
        password: &'a Secret,
    },
    /// `jwt` + `seedKey`.
    Jwt {
        /// The user JWT.
        jwt: &'a Secret,
        /// The nkey seed that signs the server nonce.
        seed: &'a Secret,
    },
    /// `nkey`.
    Nkey(&'a Secret),
    /// `credsFile`, as content or path.
    Credentials(SecretSource<'a>),
}

/// TLS settings (WIT `tls-options`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tls<'a> {
    /// TLS even for a `nats://` URL: set by a client certificate or a CA.
    pub required: bool,
    /// `tls_client_cert`, when the client certificate is the chosen credential.
    pub client_cert: Option<SecretSource<'a>>,
    /// `tls_client_key`, likewise.
    pub client_key: Option<SecretSource<'a>>,
    /// `tls_ca`.
    pub ca: Option<SecretSource<'a>>,
}

/// Everything the connect needs (WIT `connect-options`), borrowed from the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectPlan<'a> {
    /// The server URLs, tried in turn.
    pub servers: &'a [String],
    /// The connection name sent in CONNECT.
    pub name: &'a str,
    /// The credential, unless it is a client certificate.
    pub auth: Auth<'a>,
    /// TLS settings, with the client certificate when it is the credential.
    pub tls: Tls<'a>,
    /// The JetStream API prefix ([`Metadata::api_prefix`]).
    pub api_prefix: String,
    /// [`REQUEST_TIMEOUT_MS`].
    pub request_timeout_ms: u32,
}

/// The connection `metadata` describes; see the module doc for the rules.
pub fn plan_connect(metadata: &Metadata) -> ConnectPlan<'_> {
    let mut client_cert = None;
    let mut client_key = None;
    let auth = match metadata.credentials().chosen {
        None => Auth::None,
        Some(Credential::Jwt { jwt, seed }) => Auth::Jwt { jwt, seed },
        Some(Credential::ClientCert { cert, key }) => {
            client_cert = Some(SecretSource::of(cert.expose()));
            client_key = Some(SecretSource::of(key.expose()));
            Auth::None
        }
        Some(Credential::Token(token)) => Auth::Token(token),
        Some(Credential::CredsFile(creds)) => Auth::Credentials(SecretSource::of(creds.expose())),
        Some(Credential::Nkey(seed)) => Auth::Nkey(seed),
        Some(Credential::UserPassword { user, password }) => Auth::UserPassword { user, password },
    };
    let ca = metadata.tls_ca.as_deref().map(SecretSource::of);
    ConnectPlan {
        servers: &metadata.servers,
        name: &metadata.name,
        auth,
        tls: Tls {
            required: client_cert.is_some() || ca.is_some(),
            client_cert,
            client_key,
            ca,
        },
        api_prefix: metadata.api_prefix(),
        request_timeout_ms: REQUEST_TIMEOUT_MS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::parse;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const CREDS: &str = "-----BEGIN NATS USER JWT-----\neyJ0\n------END NATS USER JWT------\n";

    fn metadata(pairs: &[(&str, &str)]) -> Metadata {
        let mut props = vec![(
            "natsURL".to_owned(),
            "nats://a:4222, nats://b:4222".to_owned(),
        )];
        props.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        parse(&props).expect("valid metadata")
    }

    /// The plan's auth and TLS, with every secret exposed, so the cases read as data.
    fn shape(pairs: &[(&str, &str)]) -> (String, bool, [Option<String>; 3]) {
        let metadata = metadata(pairs);
        let plan = plan_connect(&metadata);
        let auth = match plan.auth {
            Auth::None => "none".to_owned(),
            Auth::Token(token) => format!("token {}", token.expose()),
            Auth::UserPassword { user, password } => format!("user {user} {}", password.expose()),
            Auth::Jwt { jwt, seed } => format!("jwt {} {}", jwt.expose(), seed.expose()),
            Auth::Nkey(seed) => format!("nkey {}", seed.expose()),
            Auth::Credentials(source) => format!("creds {}", source_text(source)),
        };
        let Tls {
            required,
            client_cert,
            client_key,
            ca,
        } = plan.tls;
        (
            auth,
            required,
            [client_cert, client_key, ca].map(|source| source.map(source_text)),
        )
    }

    fn source_text(source: SecretSource<'_>) -> String {
        match source {
            SecretSource::Inline(content) => {
                format!("inline {}", content.lines().next().unwrap_or(""))
            }
            SecretSource::File(path) => format!("file {path}"),
        }
    }

    #[test]
    fn without_credentials_the_servers_name_and_api_prefix_are_passed_on() {
        let metadata = metadata(&[("name", "orders-app"), ("domain", "hub")]);
        assert_eq!(
            plan_connect(&metadata),
            ConnectPlan {
                servers: &["nats://a:4222".to_owned(), "nats://b:4222".to_owned()],
                name: "orders-app",
                auth: Auth::None,
                tls: Tls {
                    required: false,
                    client_cert: None,
                    client_key: None,
                    ca: None,
                },
                api_prefix: "$JS.hub.API".to_owned(),
                request_timeout_ms: 5_000,
            }
        );
    }

    #[test]
    fn each_credential_becomes_its_auth() {
        let none = [None, None, None];
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("jwt", "eyJ0"), ("seedKey", "SUAB")], "jwt eyJ0 SUAB"),
            (&[("token", "t0k")], "token t0k"),
            (&[("nkey", "SUABC")], "nkey SUABC"),
            (&[("user", "u"), ("password", "pw")], "user u pw"),
            (&[("credsFile", "/etc/u.creds")], "creds file /etc/u.creds"),
            (
                &[("credsFile", CREDS)],
                "creds inline -----BEGIN NATS USER JWT-----",
            ),
        ];
        for (pairs, auth) in cases {
            assert_eq!(
                shape(pairs),
                ((*auth).to_owned(), false, none.clone()),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn a_client_certificate_is_presented_over_required_tls_only_when_it_is_the_credential() {
        let file = |path: &str| Some(format!("file {path}"));
        let inline = Some("inline -----BEGIN CERTIFICATE-----".to_owned());
        assert_eq!(
            shape(&[("tls_client_cert", "c.pem"), ("tls_client_key", "k.pem")]),
            (
                "none".to_owned(),
                true,
                [file("c.pem"), file("k.pem"), None]
            )
        );
        assert_eq!(
            shape(&[("tls_client_cert", PEM), ("tls_client_key", "k.pem")]),
            (
                "none".to_owned(),
                true,
                [inline.clone(), file("k.pem"), None]
            )
        );
        assert_eq!(
            shape(&[("tls_client_cert", "c.pem"), ("tls_client_key", PEM)]),
            (
                "none".to_owned(),
                true,
                [file("c.pem"), inline.clone(), None]
            )
        );
        // With jwt/seedKey chosen, the certificate is not presented and TLS not required.
        assert_eq!(
            shape(&[
                ("jwt", "eyJ0"),
                ("seedKey", "SUAB"),
                ("tls_client_cert", "c.pem"),
                ("tls_client_key", "k.pem"),
            ]),
            ("jwt eyJ0 SUAB".to_owned(), false, [None, None, None])
        );
        // A CA alone requires TLS, whatever the credential.
        assert_eq!(
            shape(&[("token", "t0k"), ("tls_ca", "/etc/ca.pem")]),
            (
                "token t0k".to_owned(),
                true,
                [None, None, file("/etc/ca.pem")]
            )
        );
        assert_eq!(
            shape(&[("tls_ca", PEM)]),
            ("none".to_owned(), true, [None, None, inline])
        );
    }

    #[test]
    fn a_plan_never_prints_a_secret() {
        const SECRET: &str = "SUSECRETVALUE-91";
        let pem_key = format!("-----BEGIN PRIVATE KEY-----\n{SECRET}\n-----END PRIVATE KEY-----");
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![("jwt", SECRET), ("seedKey", SECRET)],
            vec![("token", SECRET)],
            vec![("nkey", SECRET)],
            vec![("user", "u"), ("password", SECRET)],
            vec![("credsFile", &pem_key)],
            vec![("tls_client_cert", "c.pem"), ("tls_client_key", &pem_key)],
        ];
        for pairs in cases {
            let metadata = metadata(&pairs);
            let printed = format!("{:?}", plan_connect(&metadata));
            assert!(!printed.contains(SECRET), "{printed}");
        }
    }
}
