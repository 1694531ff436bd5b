//! How the servers and files a component names appear in messages and log lines: user
//! info in a server URL masked, a secret path never shown (secrets never print).
//!
//! Below the sandbox and the transport, which both word refusals and failures with it.

use async_nats::ServerAddr;

/// `url` for a message or a log line: `scheme://host:port` as parsed, user info masked
/// (`***@`). A URL that does not parse is shown escaped (no line breaks), user info masked.
pub(crate) fn server(url: &str) -> String {
    match url.trim().parse::<ServerAddr>() {
        Ok(address) => {
            let inner = address.clone().into_inner();
            let user_info = if address.username().is_some() || address.has_user_pass() {
                "***@"
            } else {
                ""
            };
            let host = address.host();
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            format!("{}://{user_info}{host}:{}", inner.scheme(), address.port())
        }
        Err(_) => {
            let masked = match url.rsplit_once('@') {
                Some((_, host)) => format!("***@{host}"),
                None => url.to_string(),
            };
            format!("{masked:?}")
        }
    }
}

/// Server URLs for messages, comma separated, each [`server`].
pub(crate) fn servers(servers: &[String]) -> String {
    servers
        .iter()
        .map(|s| server(s))
        .collect::<Vec<_>>()
        .join(",")
}

/// Removes any user info of the server URLs from a library message: the user info as
/// written in each URL (`user:password`, or a token) becomes `***`.
pub(crate) fn user_info(text: &str, servers: &[String]) -> String {
    let mut text = text.to_string();
    for server in servers {
        // As the connection reads it: a URL without a scheme is a `nats://` one.
        let Ok(address) = server.trim().parse::<ServerAddr>() else {
            continue;
        };
        let user_info = match (address.username(), address.password()) {
            (None, _) => continue,
            (Some(user), None) => user.to_string(),
            (Some(user), Some(password)) => format!("{user}:{password}"),
        };
        text = text.replace(&user_info, "***");
    }
    text
}

/// A path for an error message. The value of a secret key (the TLS client key) is never
/// shown: key material pasted without its PEM armour is taken for a path and must not be
/// echoed.
pub(crate) fn path(path: &str, secret: bool) -> String {
    let path_like = path.len() <= 1024 && !path.contains(['\n', '\r']);
    if secret || !path_like {
        "the path given (not shown)".to_string()
    } else {
        format!("{path:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_masked_in_messages() {
        let urls = vec![
            "nats://alice:s3cret@h:4222".to_string(),
            "tls://tok3n@h2".into(),
            "h3:4222".into(),
            "nats://x\n@bad url".into(),
            "bob:pa55@h4:4222".into(),
        ];
        assert_eq!(
            servers(&urls),
            "nats://***@h:4222,tls://***@h2:4222,nats://h3:4222,\"***@bad url\",nats://***@h4:4222"
        );
        assert_eq!(
            user_info("failed alice:s3cret and tok3n, bob:pa55", &urls),
            "failed *** and ***, ***"
        );
    }
}
