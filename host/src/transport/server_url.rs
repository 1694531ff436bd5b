//! Server URLs as the component names them (`natsURL`): parsed once, strictly, and that one
//! parse is what the policy checks, what async-nats connects to and what messages show.
//!
//! Why one parse: a URL read two ways is a way around the sandbox. Checked as
//! `nats://allowed:4222/@elsewhere:4222` (a path holding an `@`) by one parser and cut at its
//! last `@` by another, it would pass the allow-list as `allowed` and connect to
//! `elsewhere`, with the user's credentials. So a server URL may hold a scheme, user info,
//! a host and a port, nothing else, and async-nats gets the parsed address, never the text.

use async_nats::ServerAddr;

use super::TransportError;
use crate::redact;

/// The address of `url`, user info included: `nats://`, `tls://`, `ws://` or `wss://` (or
/// no scheme: `nats://`), a host, a port (4222 by default; 80 and 443 for `ws` and `wss`), and
/// no path, query or fragment.
pub(crate) fn parse(url: &str) -> Result<ServerAddr, TransportError> {
    let invalid = |why: &str| {
        TransportError::Invalid(format!("cannot connect to {}: {why}", redact::server(url)))
    };
    let address: ServerAddr = url
        .trim()
        .parse()
        .map_err(|_| invalid("not a valid server URL"))?;
    if address.host().is_empty() {
        return Err(invalid("the URL names no host"));
    }
    let inner = address.clone().into_inner();
    if !matches!(inner.path(), "" | "/") || inner.query().is_some() || inner.fragment().is_some() {
        return Err(invalid(
            "a server URL holds a scheme, a host and a port only (no path, query or fragment)",
        ));
    }
    Ok(address)
}

/// `address` without its user info: what async-nats connects to (it would log user info at
/// debug level; the host applies the credentials itself, [`credentials`]).
pub(crate) fn without_user_info(address: &ServerAddr) -> ServerAddr {
    let mut url = address.clone().into_inner();
    // Both only fail for URLs that cannot have user info, which then have none to remove.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    ServerAddr::from_url(url).unwrap_or_else(|_| address.clone())
}

/// Whether `url` carries user info (`user:password@`, `token@`).
pub(crate) fn has_user_info(url: &str) -> bool {
    url.parse::<ServerAddr>()
        .is_ok_and(|address| address.has_user_pass() || address.username().is_some())
}

/// Credentials written in a server URL.
pub(crate) enum Credentials {
    /// `nats://token@host`.
    Token(String),
    /// `nats://user:password@host`.
    UserPassword(String, String),
}

/// The credentials of the first server URL that has some, percent-decoded. async-nats 0.51
/// parses URL user info but never sends it; nats.go does, and lets it override the token and
/// user/password options (reference §4.2), so the host applies it itself.
pub(crate) fn credentials(servers: &[ServerAddr]) -> Option<Credentials> {
    servers.iter().find_map(|address| {
        let user = percent_decode(address.username()?);
        Some(match address.password() {
            Some(password) => Credentials::UserPassword(user, percent_decode(password)),
            None => Credentials::Token(user),
        })
    })
}

/// `%XX` escapes of a URL component decoded (invalid escapes are kept as written).
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(urls: &[&str]) -> Vec<ServerAddr> {
        urls.iter().map(|u| parse(u).unwrap()).collect()
    }

    #[test]
    fn url_credentials_are_found_and_decoded() {
        match credentials(&parsed(&["nats://h:1", "nats://al%40ice:p%3Aw@h2:2"])) {
            Some(Credentials::UserPassword(user, password)) => {
                assert_eq!((user.as_str(), password.as_str()), ("al@ice", "p:w"));
            }
            _ => panic!("user and password expected"),
        }
        match credentials(&parsed(&["tls://t0k3n@h"])) {
            Some(Credentials::Token(token)) => assert_eq!(token, "t0k3n"),
            _ => panic!("token expected"),
        }
        assert!(credentials(&parsed(&["nats://h:4222", "h2"])).is_none());
        assert_eq!(percent_decode("a%2"), "a%2");
        let bare = |url: &str| {
            without_user_info(&parse(url).unwrap())
                .as_url_str()
                .to_string()
        };
        assert_eq!(bare("nats://a:b@h:1"), "nats://h:1");
        assert_eq!(bare("t@h"), "nats://h");
        assert_eq!(bare("tls://h"), "tls://h");
    }

    #[test]
    fn only_scheme_user_host_and_port_are_accepted() {
        for smuggled in [
            "nats://127.0.0.1:4222/@evil.example:4222",
            "127.0.0.1:4222/@evil:1",
            "nats://127.0.0.1:4222?@evil:1",
            "nats://127.0.0.1:4222#@evil:1",
            "ws://allowed:80\\@evil:80",
            "nats://h:4222/path",
            "nats://:4222",
            "http://h:80",
        ] {
            match parse(smuggled) {
                Err(TransportError::Invalid(text)) => {
                    assert!(!text.contains('\n'), "{text}");
                }
                other => panic!("{smuggled}: {other:?}"),
            }
        }
        for fine in [
            "nats://h:4222",
            "nats://h:4222/",
            "h",
            "wss://u:p@h",
            "[::1]:4222",
        ] {
            assert!(parse(fine).is_ok(), "{fine}");
        }
    }
}
