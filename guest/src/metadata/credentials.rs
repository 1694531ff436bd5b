//! Which credential a connection uses when the metadata sets several, and the warnings that
//! say so.
//!
//! Why: Dapr parity with one fix. The reference picks exactly one credential, first match
//! wins: `jwt` + `seedKey`, else `tls_client_cert` + `tls_client_key`, else `token`, and
//! silently ignores the others. We keep that order (a manifest written for Dapr connects the
//! same way), put our own keys after it (`credsFile`, `nkey`, `user` + `password`), and return
//! one warning per ignored credential naming both keys, so nothing is ignored silently.
//!
//! ```
//! use jetstream_pubsub_guest::metadata::{credentials::Credential, parse};
//! let props = [("natsURL", "nats://h"), ("token", "t"), ("user", "u"), ("password", "p")]
//!     .map(|(k, v)| (k.to_owned(), v.to_owned()));
//! let metadata = parse(&props).expect("valid");
//! let choice = metadata.credentials();
//! assert!(matches!(choice.chosen, Some(Credential::Token(_))));
//! assert_eq!(
//!     choice.warnings(),
//!     ["two credentials are configured, token and user/password: token is used, \
//!       user/password is ignored"]
//! );
//! ```

use super::{Metadata, Secret};

/// One way of authenticating, borrowed from [`Metadata`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// `jwt` + `seedKey`: decentralised auth.
    Jwt {
        /// The user JWT.
        jwt: &'a Secret,
        /// The user's nkey seed.
        seed: &'a Secret,
    },
    /// `tls_client_cert` + `tls_client_key`: mutual TLS.
    ClientCert {
        /// Certificate chain, path or inline PEM.
        cert: &'a Secret,
        /// Private key, path or inline PEM.
        key: &'a Secret,
    },
    /// `token`.
    Token(&'a Secret),
    /// `credsFile`: a `.creds` file path or its content.
    CredsFile(&'a Secret),
    /// `nkey`: a user seed signing the server nonce.
    Nkey(&'a Secret),
    /// `user` + `password`.
    UserPassword {
        /// The user name.
        user: &'a str,
        /// The password.
        password: &'a Secret,
    },
}

impl Credential<'_> {
    /// The metadata keys that configure this credential, as a user wrote them.
    pub fn keys(&self) -> &'static str {
        match self {
            Self::Jwt { .. } => "jwt/seedKey",
            Self::ClientCert { .. } => "tls_client_cert/tls_client_key",
            Self::Token(_) => "token",
            Self::CredsFile(_) => "credsFile",
            Self::Nkey(_) => "nkey",
            Self::UserPassword { .. } => "user/password",
        }
    }
}

/// The credential used, and those configured but ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialChoice<'a> {
    /// The first configured credential in precedence order; `None` when there is none (the
    /// server URLs may still carry `user:password@` or `token@`).
    pub chosen: Option<Credential<'a>>,
    /// Every other configured credential, in precedence order.
    pub ignored: Vec<Credential<'a>>,
}

impl CredentialChoice<'_> {
    /// One warning per ignored credential, naming its keys and the chosen one's. Never a value.
    pub fn warnings(&self) -> Vec<String> {
        let Some(chosen) = &self.chosen else {
            return Vec::new();
        };
        self.ignored
            .iter()
            .map(|ignored| {
                format!(
                    "two credentials are configured, {chosen} and {ignored}: {chosen} is used, \
                     {ignored} is ignored",
                    chosen = chosen.keys(),
                    ignored = ignored.keys()
                )
            })
            .collect()
    }
}

impl Metadata {
    /// The credential the connection uses, in the reference's precedence (`jwt`/`seedKey`,
    /// `tls_client_cert`/`tls_client_key`, `token`) followed by ours (`credsFile`, `nkey`,
    /// `user`/`password`).
    pub fn credentials(&self) -> CredentialChoice<'_> {
        let configured = [
            self.jwt
                .as_ref()
                .zip(self.seed_key.as_ref())
                .map(|(jwt, seed)| Credential::Jwt { jwt, seed }),
            self.tls_client_cert
                .as_ref()
                .zip(self.tls_client_key.as_ref())
                .map(|(cert, key)| Credential::ClientCert { cert, key }),
            self.token.as_ref().map(Credential::Token),
            self.creds_file.as_ref().map(Credential::CredsFile),
            self.nkey.as_ref().map(Credential::Nkey),
            self.user
                .as_deref()
                .zip(self.password.as_ref())
                .map(|(user, password)| Credential::UserPassword { user, password }),
        ];
        let mut configured = configured.into_iter().flatten();
        CredentialChoice {
            chosen: configured.next(),
            ignored: configured.collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;

    fn choose(pairs: &[(&str, &str)]) -> (Option<&'static str>, Vec<String>) {
        let mut props = vec![("natsURL".to_owned(), "nats://h".to_owned())];
        props.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let metadata = parse(&props).expect("valid metadata");
        let choice = metadata.credentials();
        (choice.chosen.map(|c| c.keys()), choice.warnings())
    }

    type Pairs = &'static [(&'static str, &'static str)];

    const JWT: &[(&str, &str)] = &[("jwt", "J"), ("seedKey", "SUX")];
    const CERT: &[(&str, &str)] = &[("tls_client_cert", "c.pem"), ("tls_client_key", "k.pem")];
    const TOKEN: &[(&str, &str)] = &[("token", "T")];
    const CREDS: &[(&str, &str)] = &[("credsFile", "/u.creds")];
    const NKEY: &[(&str, &str)] = &[("nkey", "SUABC")];
    const USER: &[(&str, &str)] = &[("user", "u"), ("password", "P")];

    #[test]
    fn each_credential_alone_is_chosen_without_warning() {
        let cases: &[(Pairs, Option<&str>)] = &[
            (&[], None),
            (JWT, Some("jwt/seedKey")),
            (CERT, Some("tls_client_cert/tls_client_key")),
            (TOKEN, Some("token")),
            (CREDS, Some("credsFile")),
            (NKEY, Some("nkey")),
            (USER, Some("user/password")),
        ];
        for (pairs, want) in cases {
            assert_eq!(choose(pairs), (*want, vec![]), "{pairs:?}");
        }
    }

    #[test]
    fn reference_precedence_is_kept_and_each_ignored_credential_is_named() {
        let warn = |chosen: &str, ignored: &str| {
            format!(
                "two credentials are configured, {chosen} and {ignored}: {chosen} is used, \
                 {ignored} is ignored"
            )
        };
        type Case = (
            Vec<(&'static str, &'static str)>,
            &'static str,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            ([JWT, TOKEN].concat(), "jwt/seedKey", vec!["token"]),
            (
                [JWT, CERT].concat(),
                "jwt/seedKey",
                vec!["tls_client_cert/tls_client_key"],
            ),
            (
                [CERT, TOKEN].concat(),
                "tls_client_cert/tls_client_key",
                vec!["token"],
            ),
            ([TOKEN, USER].concat(), "token", vec!["user/password"]),
            ([NKEY, CREDS].concat(), "credsFile", vec!["nkey"]),
            ([USER, NKEY].concat(), "nkey", vec!["user/password"]),
            (
                [USER, NKEY, CREDS, TOKEN, CERT, JWT].concat(),
                "jwt/seedKey",
                vec![
                    "tls_client_cert/tls_client_key",
                    "token",
                    "credsFile",
                    "nkey",
                    "user/password",
                ],
            ),
        ];
        for (pairs, chosen, ignored) in cases {
            let want: Vec<String> = ignored.iter().map(|i| warn(chosen, i)).collect();
            assert_eq!(choose(&pairs), (Some(chosen), want), "{pairs:?}");
        }
    }

    #[test]
    fn warnings_never_carry_values() {
        const SECRET: &str = "SUSECRETVALUE-91";
        let pairs = [
            ("jwt", SECRET),
            ("seedKey", SECRET),
            ("token", SECRET),
            ("tls_client_cert", SECRET),
            ("tls_client_key", SECRET),
            ("credsFile", SECRET),
            ("nkey", SECRET),
            ("user", SECRET),
            ("password", SECRET),
        ];
        let (_, warnings) = choose(&pairs);
        assert_eq!(warnings.len(), 5);
        for warning in warnings {
            assert!(!warning.contains(SECRET), "{warning}");
        }
    }
}
