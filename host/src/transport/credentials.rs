//! Checks on NATS user credentials before they are sent, so that a failure says why.
//!
//! Why: a NATS server answers every bad credential with the same `Authorization Violation`.
//! The two most common mistakes with decentralised auth, a seed that is not the JWT's user
//! and an expired JWT, can be seen on the client side from public parts of the JWT (its
//! subject and expiry), so they are reported as such. Nothing here ever prints a JWT, a seed
//! or a signature; errors describe shapes only.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

/// What a credential check found wrong. Display never contains credential material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CredentialProblem {
    /// The seed does not decode as an nkey seed.
    InvalidSeed,
    /// The seed is an nkey seed, but not a user's (`SU...`).
    NotAUserSeed,
    /// The JWT is not three base64url parts with a JSON payload carrying a subject.
    MalformedJwt(&'static str),
    /// The seed's public key is not the JWT's subject: the server would reject the signature.
    SeedNotForJwt,
    /// The JWT's `exp` has passed.
    Expired {
        /// `exp`, unix seconds.
        expires: i64,
        /// How long ago.
        seconds_ago: i64,
    },
    /// A `.creds` text without the armoured JWT or seed.
    MalformedCreds(&'static str),
}

impl std::fmt::Display for CredentialProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidSeed => f.write_str("the seed is not a valid nkey seed"),
            Self::NotAUserSeed => f.write_str("the seed is not a user seed (SU...)"),
            Self::MalformedJwt(why) => write!(f, "the JWT is malformed: {why}"),
            Self::SeedNotForJwt => f.write_str(
                "the seed does not belong to the JWT's user (its public key is not the JWT subject)",
            ),
            Self::Expired {
                expires,
                seconds_ago,
            } => write!(
                f,
                "the user JWT has expired (exp {expires}, {seconds_ago} s ago)"
            ),
            Self::MalformedCreds(why) => write!(f, "not a NATS .creds file: {why}"),
        }
    }
}

/// The public claims of a user JWT that the checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UserClaims {
    subject: String,
    expires: Option<i64>,
}

fn user_claims(jwt: &str) -> Result<UserClaims, CredentialProblem> {
    let mut parts = jwt.trim().split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(CredentialProblem::MalformedJwt(
            "not three dot-separated parts",
        ));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| CredentialProblem::MalformedJwt("the claims are not base64url"))?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| CredentialProblem::MalformedJwt("the claims are not JSON"))?;
    let subject = claims
        .get("sub")
        .and_then(serde_json::Value::as_str)
        .ok_or(CredentialProblem::MalformedJwt("no subject (sub) claim"))?
        .to_string();
    let expires = claims.get("exp").and_then(serde_json::Value::as_i64);
    Ok(UserClaims { subject, expires })
}

/// Checks a user JWT and its seed; returns the key pair that signs the server nonce.
pub(crate) fn check_user(jwt: &str, seed: &str) -> Result<nkeys::KeyPair, CredentialProblem> {
    let key_pair = user_key_pair(seed)?;
    let claims = user_claims(jwt)?;
    if key_pair.public_key() != claims.subject {
        return Err(CredentialProblem::SeedNotForJwt);
    }
    if let Some(expires) = claims.expires {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if expires <= now {
            return Err(CredentialProblem::Expired {
                expires,
                // `exp` is input: any i64, so the difference may not fit.
                seconds_ago: now.saturating_sub(expires),
            });
        }
    }
    Ok(key_pair)
}

/// An nkey user seed as a key pair.
pub(crate) fn user_key_pair(seed: &str) -> Result<nkeys::KeyPair, CredentialProblem> {
    let key_pair =
        nkeys::KeyPair::from_seed(seed.trim()).map_err(|_| CredentialProblem::InvalidSeed)?;
    if !matches!(key_pair.key_pair_type(), nkeys::KeyPairType::User) {
        return Err(CredentialProblem::NotAUserSeed);
    }
    Ok(key_pair)
}

/// The JWT and seed of a `.creds` text: the first non-empty line after each armour header
/// (`-----BEGIN NATS USER JWT-----`, `-----BEGIN USER NKEY SEED-----`), as nsc writes them.
pub(crate) fn parse_creds(text: &str) -> Result<(String, String), CredentialProblem> {
    let after = |marker: &str| {
        let mut lines = text.lines();
        lines.find(|line| line.contains(marker))?;
        lines
            .map(str::trim)
            .find(|line| !line.is_empty())
            .map(str::to_string)
    };
    let jwt = after("BEGIN NATS USER JWT")
        .ok_or(CredentialProblem::MalformedCreds("no NATS USER JWT block"))?;
    let seed = after("BEGIN USER NKEY SEED")
        .ok_or(CredentialProblem::MalformedCreds("no USER NKEY SEED block"))?;
    Ok((jwt, seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_with(claims: &serde_json::Value) -> String {
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#),
            b64(claims.to_string().as_bytes()),
            b64(b"sig")
        )
    }

    #[test]
    fn checks_say_why_without_material() {
        let user = nkeys::KeyPair::new_user();
        let seed = user.seed().expect("a generated key has a seed");
        let other = nkeys::KeyPair::new_user()
            .seed()
            .expect("a generated key has a seed");
        let account = nkeys::KeyPair::new_account()
            .seed()
            .expect("a generated key has a seed");
        let valid = jwt_with(&serde_json::json!({"sub": user.public_key()}));
        let expired = jwt_with(&serde_json::json!({"sub": user.public_key(), "exp": 1000}));
        assert!(check_user(&valid, &seed).is_ok());
        let cases = [
            (
                valid.clone(),
                other.clone(),
                CredentialProblem::SeedNotForJwt,
            ),
            (valid.clone(), account, CredentialProblem::NotAUserSeed),
            (
                valid.clone(),
                "SUnotaseed".into(),
                CredentialProblem::InvalidSeed,
            ),
            (
                "a.b".into(),
                seed.clone(),
                CredentialProblem::MalformedJwt("not three dot-separated parts"),
            ),
            (
                "a.!!.c".into(),
                seed.clone(),
                CredentialProblem::MalformedJwt("the claims are not base64url"),
            ),
        ];
        for (jwt, seed, want) in cases {
            let got = check_user(&jwt, &seed).err();
            assert_eq!(got.as_ref(), Some(&want));
            let text = want.to_string();
            assert!(!text.contains(&seed) && !text.contains(&jwt), "{text}");
        }
        match check_user(&expired, &seed) {
            Err(CredentialProblem::Expired { expires: 1000, .. }) => {}
            other => panic!("{other:?}"),
        }
        // Any `exp` a JWT can carry is handled, the extremes included.
        for exp in [i64::MIN, -1, 0, i64::MAX] {
            let jwt = jwt_with(&serde_json::json!({"sub": user.public_key(), "exp": exp}));
            let checked = check_user(&jwt, &seed);
            match exp {
                i64::MAX => assert!(checked.is_ok(), "{checked:?}"),
                _ => assert!(
                    matches!(checked, Err(CredentialProblem::Expired { expires, seconds_ago })
                        if expires == exp && seconds_ago >= 0),
                    "{exp}: {checked:?}"
                ),
            }
        }
    }

    #[test]
    fn creds_text_is_parsed_like_nsc_writes_it() {
        let text = "-----BEGIN NATS USER JWT-----\neyJ.a.b\n------END NATS USER JWT------\n\n\
                    ***** IMPORTANT *****\n\n-----BEGIN USER NKEY SEED-----\nSUAX\n\
                    ------END USER NKEY SEED------\n";
        assert_eq!(
            parse_creds(text),
            Ok(("eyJ.a.b".to_string(), "SUAX".to_string()))
        );
        assert_eq!(
            parse_creds("eyJ.a.b"),
            Err(CredentialProblem::MalformedCreds("no NATS USER JWT block"))
        );
    }
}
