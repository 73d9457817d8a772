//! Header rules for a reverse proxy: hop-by-hop headers removed in both
//! directions, `X-Forwarded-*` and `X-Real-IP` set from what this proxy saw
//! (a client's `Forwarded` dropped), `x-request-id`.
use crate::upstream::h1::{connection_has, connection_tokens};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// RFC 9110 §7.6.1 hop-by-hop headers (plus the legacy `proxy-connection`, `keep-alive`).
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Is this an HTTP/1.1 upgrade request (`Connection: upgrade` + `Upgrade`)?
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

/// Removes hop-by-hop headers, including every header named in `Connection`.
/// With `keep_upgrade`, `Connection: upgrade` and `Upgrade` survive (WebSocket
/// pass-through). `TE: trailers` survives: gRPC needs it end to end.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none: one pass over the names beats nine removals.
    if !keep_upgrade && !headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = connection_tokens(headers)
            .filter(|t| !(keep_upgrade && t.eq_ignore_ascii_case("upgrade")))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    let te_trailers = headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for h in &HOP_BY_HOP {
        if keep_upgrade && *h == header::UPGRADE {
            continue;
        }
        headers.remove(h);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Appends the peer to `X-Forwarded-For` and replaces `X-Forwarded-Proto` /
/// `X-Forwarded-Host` with what this proxy saw (client values are not trusted).
/// `X-Real-IP` becomes the peer (NGINX's `proxy_set_header X-Real-IP
/// $remote_addr`) and a client's RFC 7239 `Forwarded` is dropped: upstreams
/// that read either would otherwise take a client's word for its address.
/// `peer` is the client's IP as a header value (formatted once per connection).
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    peer: HeaderValue,
    proto: &'static str,
    host: Option<HeaderValue>,
) {
    headers.remove(header::FORWARDED);
    headers.insert(&X_REAL_IP, peer.clone());
    let prior: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let xff = if prior.is_empty() {
        Some(peer)
    } else {
        let peer = peer.to_str().unwrap_or_default();
        HeaderValue::from_str(&format!("{}, {}", prior.join(", "), peer)).ok()
    };
    if let Some(v) = xff {
        headers.insert(&X_FORWARDED_FOR, v);
    }
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    match host {
        Some(h) => {
            headers.insert(&X_FORWARDED_HOST, h);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// A `Host` value (or a request target's authority) fit to forward: an
/// `uri-host [ ":" port ]` (RFC 9110 §7.2), not empty, no user info, no
/// whitespace or delimiters of a path. Allocates nothing.
pub(crate) fn valid_host(v: &[u8]) -> bool {
    let (host, port) = match v.first() {
        None => return false,
        Some(b'[') => match v.iter().position(|&b| b == b']') {
            Some(end) => {
                let inner = &v[1..end];
                let ip_literal = !inner.is_empty()
                    && inner
                        .iter()
                        .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
                if !ip_literal {
                    return false;
                }
                (&v[..=end], &v[end + 1..])
            }
            None => return false,
        },
        Some(_) => {
            let split = v.iter().position(|&b| b == b':').unwrap_or(v.len());
            let (host, port) = v.split_at(split);
            let reg_name = !host.is_empty()
                && host
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b));
            if !reg_name {
                return false;
            }
            (host, port)
        }
    };
    debug_assert!(!host.is_empty());
    match port {
        [] => true,
        [b':', digits @ ..] => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// Keeps a client's `x-request-id` or generates one.
pub(crate) fn ensure_request_id(headers: &mut HeaderMap) {
    let present = headers
        .get(&X_REQUEST_ID)
        .is_some_and(|v| !v.is_empty() && v.len() <= 200);
    if !present {
        if let Ok(v) = HeaderValue::from_bytes(&super::ids::request_id()) {
            headers.insert(&X_REQUEST_ID, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "gzip"),
            ("x-keep", "yes"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn keeps_upgrade_and_te_trailers() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
        ]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["te"], "trailers");
    }

    #[test]
    fn host_values() {
        for ok in [
            "example.com",
            "example.com:8080",
            "127.0.0.1:80",
            "[::1]:8080",
            "[2001:db8::7]",
            "a-b_c.d~e",
            "x:",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            ":80",
            "user@example.com",
            "exa mple.com",
            "example.com/path",
            "example.com:80:80",
            "example.com:123456",
            "example.com:8o",
            "[::1",
            "[]:80",
            "[::1]x",
            "a\tb",
            "ex\"ample",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn forwarded_headers() {
        let mut h = map(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
        ]);
        set_forwarded(
            &mut h,
            HeaderValue::from_static("10.0.0.9"),
            "http",
            Some(HeaderValue::from_static("example.com")),
        );
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert_eq!(h["x-real-ip"], "10.0.0.9");
    }

    /// A client claiming another address through `Forwarded` or `X-Real-IP`
    /// (each possibly repeated) is not believed.
    #[test]
    fn client_forwarded_and_real_ip_are_replaced() {
        let mut h = map(&[
            ("forwarded", "for=203.0.113.7;proto=https;host=evil"),
            ("forwarded", "for=\"[2001:db8::1]\""),
            ("x-real-ip", "203.0.113.7"),
            ("x-real-ip", "198.51.100.1"),
        ]);
        set_forwarded(&mut h, HeaderValue::from_static("10.0.0.9"), "https", None);
        assert!(h.get(header::FORWARDED).is_none());
        let real: Vec<_> = h.get_all("x-real-ip").iter().collect();
        assert_eq!(real, ["10.0.0.9"]);
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert!(h.get("x-forwarded-host").is_none());
    }
}
