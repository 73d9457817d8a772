//! Browser defences for the admin API. A web page the operator opens can
//! send requests to the admin listener on loopback (a "simple" cross-site
//! POST needs no CORS preflight) or rebind its own name to 127.0.0.1. So:
//! - `Host` must be an IP literal, `localhost`, or a name in `admin.hosts`
//!   (DNS rebinding needs a name of the attacker's);
//! - a state-changing request with an `Origin` other than the admin's own,
//!   or `Sec-Fetch-Site: cross-site`/`same-site`, is refused.
//!
//! curl and scripts send neither `Origin` nor `Sec-Fetch-Site` and are
//! unaffected; the status page's own buttons send the admin's own origin.
use http::header::{HOST, ORIGIN};
use http::HeaderMap;
use std::net::IpAddr;

/// Why a request was refused (the 403 message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    Host(String),
    Origin(String),
    FetchSite(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Host(h) => write!(
                f,
                "Host {h:?} is not this admin API's address: use an IP address or localhost, or list the name in admin.hosts"
            ),
            Refusal::Origin(o) => write!(
                f,
                "cross-origin request from {o:?} refused: the admin API only takes state changes from its own page or from clients that send no Origin"
            ),
            Refusal::FetchSite(s) => write!(
                f,
                "cross-site request refused (Sec-Fetch-Site: {s})"
            ),
        }
    }
}

/// The host part of a `Host` value (`[::1]:9901` → `::1`, `a.b:80` → `a.b`).
fn host_part(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match value.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => value,
    }
}

/// Checks `Host` (every request but the probes) and, for a state-changing
/// request, `Origin` and `Sec-Fetch-Site`.
pub(super) fn check(headers: &HeaderMap, mutating: bool, hosts: &[String]) -> Result<(), Refusal> {
    // HTTP/1.1 requires Host (hyper answers 400 without one); an absent one
    // can only come from HTTP/1.0 tools, which are not browsers.
    let host = headers.get(HOST).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if let Some(h) = host {
        let name = host_part(h.trim());
        let allowed = name.parse::<IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || hosts
                .iter()
                .any(|a| host_part(a).eq_ignore_ascii_case(name));
        if !allowed {
            return Err(Refusal::Host(h.to_string()));
        }
    }
    if !mutating {
        return Ok(());
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if matches!(site, "cross-site" | "same-site") {
            return Err(Refusal::FetchSite(site.to_string()));
        }
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("\u{fffd}");
        let own = host.is_some_and(|h| {
            origin.eq_ignore_ascii_case(&format!("http://{h}"))
                || origin.eq_ignore_ascii_case(&format!("https://{h}"))
        });
        if !own {
            return Err(Refusal::Origin(origin.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn hosts_by_ip_localhost_or_listed() {
        let hosts = vec!["canary-proxy".to_string(), "admin.example:9901".to_string()];
        for ok in [
            "127.0.0.1:9901",
            "[::1]:9901",
            "LOCALHOST:9901",
            "10.1.2.3",
            "canary-proxy:9901",
            "admin.example",
        ] {
            assert_eq!(check(&h(&[("host", ok)]), false, &hosts), Ok(()), "{ok}");
        }
        for bad in [
            "rebind.attacker.example:9901",
            "localhost.attacker.example",
            "127.0.0.1.nip.io:9901",
        ] {
            assert!(
                matches!(
                    check(&h(&[("host", bad)]), false, &hosts),
                    Err(Refusal::Host(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn cross_origin_state_changes_are_refused() {
        let own = h(&[
            ("host", "127.0.0.1:9901"),
            ("origin", "http://127.0.0.1:9901"),
        ]);
        assert_eq!(check(&own, true, &[]), Ok(()));
        let other = h(&[
            ("host", "127.0.0.1:9901"),
            ("origin", "http://evil.example"),
        ]);
        assert!(matches!(check(&other, true, &[]), Err(Refusal::Origin(_))));
        // `Origin: null` (sandboxed frames, file:// pages) is another origin too.
        let null = h(&[("host", "127.0.0.1:9901"), ("origin", "null")]);
        assert!(check(&null, true, &[]).is_err());
        let site = h(&[("host", "127.0.0.1:9901"), ("sec-fetch-site", "cross-site")]);
        assert!(matches!(
            check(&site, true, &[]),
            Err(Refusal::FetchSite(_))
        ));
        // Reads are not refused for their origin; scripts send neither header.
        assert_eq!(check(&other, false, &[]), Ok(()));
        assert_eq!(check(&h(&[("host", "127.0.0.1:9901")]), true, &[]), Ok(()));
    }
}
