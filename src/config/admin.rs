//! Checks that protect the admin API: a token worth the name when it listens
//! beyond loopback, and no webhook posting back into it (each event would
//! trigger requests to the proxy's own control plane, e.g. a reload that emits
//! `reloaded` that reloads again).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Shortest token accepted on a non-loopback admin listener (16 random
/// characters, e.g. `openssl rand -hex 16` gives 32).
pub(super) const MIN_TOKEN_CHARS: usize = 16;

/// Tokens copied from examples and tutorials, compared without case or
/// punctuation (`Change_Me` is `changeme`).
const PLACEHOLDERS: &[&str] = &[
    "changeme",
    "secret",
    "token",
    "password",
    "passwd",
    "admin",
    "default",
    "example",
    "test",
    "demo",
    "demotoken",
    "mysecret",
    "supersecret",
    "secrettoken",
    "admintoken",
    "letmein",
    "yourtoken",
    "yourtokenhere",
    "tokenhere",
    "replaceme",
    "changethis",
    "placeholder",
    "canary",
    "canaryproxy",
    "1234567890123456",
    "0123456789abcdef",
];
/// Fragments that mark a placeholder however long it is (`change-me-in-production`).
const PLACEHOLDER_PARTS: &[&str] = &[
    "changeme",
    "replaceme",
    "changethis",
    "yourtoken",
    "placeholder",
];

/// Why `token` (non-empty) is unfit for an admin API reachable from the
/// network, if it is.
pub(super) fn weak_token(token: &str) -> Option<String> {
    let plain: String = token
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let placeholder = PLACEHOLDERS.contains(&plain.as_str())
        || PLACEHOLDER_PARTS.iter().any(|p| plain.contains(p))
        || token.chars().all(|c| token.starts_with(c));
    let n = token.chars().count();
    if placeholder {
        Some(format!("{token:?} is a well-known placeholder, not a secret: with a non-loopback admin.listen, set a random token (e.g. `openssl rand -hex 16`)"))
    } else if n < MIN_TOKEN_CHARS {
        Some(format!("too short for a non-loopback admin.listen ({n} characters, at least {MIN_TOKEN_CHARS}): set a random token (e.g. `openssl rand -hex 16`)"))
    } else {
        None
    }
}

/// Whether `url` (already known to be a valid absolute http(s) URL) names the
/// admin listener `admin`. Host names are not resolved: only `localhost` (and
/// `*.localhost`) and IP literals are recognised. A wildcard admin listener
/// matches loopback and wildcard targets; its other local addresses cannot be
/// known here.
pub(super) fn targets_admin(url: &str, admin: SocketAddr) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let Some(auth) = uri.authority() else {
        return false;
    };
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let port = auth.port_u16().unwrap_or(default_port);
    if admin.port() == 0 || port != admin.port() {
        return false;
    }
    let host = auth.host().trim_start_matches('[').trim_end_matches(']');
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    let targets: Vec<IpAddr> = if name == "localhost" || name.ends_with(".localhost") {
        vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        vec![ip.to_canonical()]
    } else {
        return false;
    };
    let listen = admin.ip().to_canonical();
    targets.iter().any(|t| reaches(*t, listen))
}

/// Does a connection to `target` arrive at a socket bound to `listen`?
fn reaches(target: IpAddr, listen: IpAddr) -> bool {
    // Connecting to 0.0.0.0 or :: reaches the local host.
    let local = target.is_loopback() || target.is_unspecified();
    if listen.is_unspecified() {
        return local;
    }
    target == listen || (listen.is_loopback() && target.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(listen: &str, url: &str) -> bool {
        targets_admin(url, listen.parse().expect("socket address"))
    }

    #[test]
    fn weak_tokens_are_named() {
        for t in [
            "change-me",
            "CHANGE_ME",
            "changeme",
            "secret",
            "token",
            "Token!",
            "demo-token",
        ] {
            assert!(
                weak_token(t).is_some_and(|m| m.contains("placeholder")),
                "{t}"
            );
        }
        for t in [
            "change-me-in-production",
            "please-replace-me-now",
            "xxxxxxxxxxxxxxxxxxxx",
        ] {
            assert!(
                weak_token(t).is_some_and(|m| m.contains("placeholder")),
                "{t}"
            );
        }
        let m = weak_token("s3cretS3cret").expect("short");
        assert!(
            m.starts_with("too short for a non-loopback admin.listen (12 characters, at least 16)"),
            "{m}"
        );
        assert_eq!(weak_token("9f1c2a7e5b3d48f6"), None);
        assert_eq!(weak_token("e3b0c44298fc1c149afbf4c8996fb924"), None);
    }

    #[test]
    fn own_admin_address_is_recognised() {
        let lo = "127.0.0.1:9901";
        assert!(at(lo, "http://127.0.0.1:9901/api/v1/reload"));
        assert!(at(lo, "http://localhost:9901/"));
        assert!(at(lo, "http://LocalHost.:9901/"));
        assert!(at(lo, "http://app.localhost:9901/"));
        assert!(at(lo, "http://0.0.0.0:9901/"));
        assert!(at(lo, "http://[::ffff:127.0.0.1]:9901/"));
        assert!(at("127.0.0.1:80", "http://localhost/x"));
        assert!(at("127.0.0.1:443", "https://127.0.0.1/x"));
        assert!(at("0.0.0.0:9901", "http://127.0.0.1:9901/"));
        assert!(at("0.0.0.0:9901", "http://127.0.0.53:9901/"));
        assert!(at("[::]:9901", "http://[::1]:9901/"));
        assert!(at("[::1]:9901", "http://localhost:9901/"));
    }

    #[test]
    fn other_targets_are_not() {
        let lo = "127.0.0.1:9901";
        assert!(!at(lo, "http://127.0.0.1:9902/"));
        assert!(!at(lo, "http://localhost/"));
        assert!(!at(lo, "http://10.0.0.9:9901/"));
        assert!(!at(lo, "http://127.0.0.2:9901/"));
        assert!(!at(lo, "http://alerts.example:9901/"));
        assert!(!at("127.0.0.1:0", "http://127.0.0.1:0/"));
        assert!(!at("10.1.2.3:9901", "http://127.0.0.1:9901/"));
    }
}
