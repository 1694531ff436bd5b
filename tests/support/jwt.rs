//! Mints NATS JWTs for tests: operator, accounts and users, signed with nkeys, so that an
//! operator-mode server (`resolver: MEMORY`) can be configured without nsc or committed keys.
//!
//! The shape is nats-io/jwt v2's: header `{"typ":"JWT","alg":"ed25519-nkey"}`, claims with
//! `jti`, `iat`, `iss` (the issuer's public key), `sub` (the subject's public key), `name`,
//! optional `exp`, and `nats` holding the type-specific claims with `version: 2`; each part
//! base64url without padding, signed with ed25519 by the issuer's nkey.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use nkeys::KeyPair;
use serde_json::{Value, json};

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Encodes and signs `claims` about `subject`, issued by `issuer`.
pub fn encode(
    issuer: &KeyPair,
    subject: &str,
    name: &str,
    expires: Option<i64>,
    nats: Value,
) -> String {
    // A unique id; nats-io/jwt uses a hash of the claims, the server only needs it unique.
    let jti = KeyPair::new_user().public_key()[1..53].to_string();
    let mut claims = json!({
        "jti": jti,
        "iat": now(),
        "iss": issuer.public_key(),
        "sub": subject,
        "name": name,
        "nats": nats,
    });
    if let Some(exp) = expires {
        claims["exp"] = json!(exp);
    }
    let signing_input = format!(
        "{}.{}",
        b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#),
        b64(claims.to_string().as_bytes())
    );
    let signature = issuer
        .sign(signing_input.as_bytes())
        .expect("an nkey with a seed signs");
    format!("{signing_input}.{}", b64(&signature))
}

/// A key and the JWT that describes it.
pub struct Identity {
    pub key: KeyPair,
    pub jwt: String,
}

impl Identity {
    pub fn public_key(&self) -> String {
        self.key.public_key()
    }

    pub fn seed(&self) -> String {
        self.key.seed().expect("a generated key has a seed")
    }
}

/// A self-signed operator.
pub fn operator(name: &str) -> Identity {
    let key = KeyPair::new_operator();
    let jwt = encode(
        &key,
        &key.public_key(),
        name,
        None,
        json!({"type": "operator", "version": 2}),
    );
    Identity { key, jwt }
}

/// An account of `operator`, with unlimited JetStream when `jetstream` is set.
pub fn account(operator: &Identity, name: &str, jetstream: bool) -> Identity {
    let key = KeyPair::new_account();
    let storage = if jetstream { -1 } else { 0 };
    let jwt = encode(
        &operator.key,
        &key.public_key(),
        name,
        None,
        json!({
            "limits": {
                "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                "wildcards": true, "conn": -1, "leaf": -1,
                "mem_storage": storage, "disk_storage": storage,
                "streams": if jetstream { -1 } else { 0 },
                "consumer": if jetstream { -1 } else { 0 },
            },
            "default_permissions": {"pub": {}, "sub": {}},
            "type": "account",
            "version": 2,
        }),
    );
    Identity { key, jwt }
}

/// A user of `account`, expiring at `expires` (unix seconds) when given.
pub fn user(account: &Identity, name: &str, expires: Option<i64>) -> Identity {
    let key = KeyPair::new_user();
    let jwt = encode(
        &account.key,
        &key.public_key(),
        name,
        expires,
        json!({
            "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
            "type": "user", "version": 2,
        }),
    );
    Identity { key, jwt }
}

/// A `.creds` file's text for `user`, as nsc writes it.
pub fn creds(user: &Identity) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\n\
         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n",
        user.jwt,
        user.seed()
    )
}

/// An operator-mode server config: `operator`, `system_account` and a memory resolver
/// preloaded with `accounts` (the system account among them).
pub fn operator_config(operator: &Identity, system: &Identity, accounts: &[&Identity]) -> String {
    let preload: String = accounts
        .iter()
        .map(|a| format!("  {}: \"{}\"\n", a.public_key(), a.jwt))
        .collect();
    format!(
        "operator: \"{}\"\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n{preload}}}\n",
        operator.jwt,
        system.public_key()
    )
}
