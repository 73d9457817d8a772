//! Which version serves a request (override → sticky → weighted random).
//! A pure decision: the endpoints it leads to are state, kept in
//! `upstream::endpoints`.
use crate::Role;
use http::header::{HeaderName, COOKIE};
use http::HeaderMap;

/// Routing options from `routing:`, parsed once per config.
#[derive(Debug, Clone, Default)]
pub struct RoutingRules {
    pub sticky: Option<StickyKey>,
    pub override_header: Option<HeaderName>,
    /// This exact value routes to canary, and is the only way in after an abort.
    pub override_header_value: Option<String>,
    pub override_cookie: Option<String>,
    pub response_header: Option<HeaderName>,
}

#[derive(Debug, Clone)]
pub enum StickyKey {
    Cookie(String),
    Header(HeaderName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub role: Role,
    /// Chosen by an override: recorded in metrics, not evidence for the guard.
    pub via_override: bool,
    /// A sticky cookie value to assign with `Set-Cookie` (cookie was absent).
    pub assign_cookie: Option<String>,
}

enum Forced {
    Canary { by_value: bool },
    Stable,
}

fn classify(value: &str, header_value: Option<&str>) -> Option<Forced> {
    match value {
        "always" => Some(Forced::Canary { by_value: false }),
        "never" => Some(Forced::Stable),
        v if header_value == Some(v) => Some(Forced::Canary { by_value: true }),
        _ => None,
    }
}

/// Value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// FNV-1a 64: stable across processes and releases, so a client keeps its
/// bucket through restarts. `version` salts it so a new canary draws new clients.
pub fn sticky_bucket(version: &str, key: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in version.bytes().chain([0u8]).chain(key.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // final avalanche (splitmix64) so similar keys spread evenly
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h % 10_000) as u32
}

/// Decides the version for one request.
/// `weight_bp` is the canary weight in basis points, `rand_bp` a uniform draw in [0, 10000).
pub fn decide(
    rules: &RoutingRules,
    headers: &HeaderMap,
    canary_version: &str,
    weight_bp: u32,
    aborted: bool,
    rand_bp: impl FnOnce() -> u32,
    new_sticky_id: impl FnOnce() -> String,
) -> Decision {
    let hv = rules.override_header_value.as_deref();
    let forced = rules
        .override_header
        .as_ref()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| classify(v, hv))
        .or_else(|| {
            rules
                .override_cookie
                .as_deref()
                .and_then(|c| cookie(headers, c))
                .and_then(|v| classify(v, hv))
        });
    match forced {
        Some(Forced::Stable) => {
            return Decision {
                role: Role::Stable,
                via_override: true,
                assign_cookie: None,
            }
        }
        // After an abort only `header_value` still reaches the canary.
        Some(Forced::Canary { by_value }) if by_value || !aborted => {
            return Decision {
                role: Role::Canary,
                via_override: true,
                assign_cookie: None,
            }
        }
        _ => {}
    }
    let pick = |bucket: u32| {
        if bucket < weight_bp {
            Role::Canary
        } else {
            Role::Stable
        }
    };
    match &rules.sticky {
        Some(StickyKey::Cookie(name)) => match cookie(headers, name) {
            Some(v) if !v.is_empty() => Decision {
                role: pick(sticky_bucket(canary_version, v)),
                via_override: false,
                assign_cookie: None,
            },
            _ => {
                let id = new_sticky_id();
                Decision {
                    role: pick(sticky_bucket(canary_version, &id)),
                    via_override: false,
                    assign_cookie: Some(id),
                }
            }
        },
        Some(StickyKey::Header(h)) => match headers.get(h).map(|v| v.as_bytes()) {
            Some(v) if !v.is_empty() => Decision {
                role: pick(sticky_bucket(canary_version, &String::from_utf8_lossy(v))),
                via_override: false,
                assign_cookie: None,
            },
            _ => Decision {
                role: pick(rand_bp()),
                via_override: false,
                assign_cookie: None,
            },
        },
        None => Decision {
            role: if weight_bp == 0 {
                Role::Stable
            } else if weight_bp >= 10_000 {
                Role::Canary
            } else {
                pick(rand_bp())
            },
            via_override: false,
            assign_cookie: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn rules() -> RoutingRules {
        RoutingRules {
            sticky: Some(StickyKey::Cookie("canary_id".into())),
            override_header: Some(HeaderName::from_static("x-canary")),
            override_header_value: Some("beta".into()),
            override_cookie: Some("canary".into()),
            response_header: None,
        }
    }

    fn hdrs(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn go(h: &HeaderMap, w: u32, aborted: bool) -> Decision {
        decide(&rules(), h, "v2", w, aborted, || 0, || "fresh".into())
    }

    #[test]
    fn override_header_beats_cookie_and_sticky() {
        let h = hdrs(&[
            ("x-canary", "never"),
            ("cookie", "canary=always; canary_id=abc"),
        ]);
        assert_eq!(go(&h, 10_000, false).role, Role::Stable);
        let h = hdrs(&[("x-canary", "other"), ("cookie", "canary=always")]);
        let d = go(&h, 0, false);
        assert_eq!((d.role, d.via_override), (Role::Canary, true));
    }

    #[test]
    fn after_abort_only_header_value_reaches_canary() {
        assert_eq!(
            go(&hdrs(&[("x-canary", "always")]), 0, true).role,
            Role::Stable
        );
        assert_eq!(
            go(&hdrs(&[("x-canary", "beta")]), 0, true).role,
            Role::Canary
        );
        assert_eq!(
            go(&hdrs(&[("cookie", "canary=beta")]), 0, true).role,
            Role::Canary
        );
    }

    #[test]
    fn sticky_is_monotonic_in_weight() {
        for i in 0..2000 {
            let id = format!("client-{i}");
            let b = sticky_bucket("v2", &id);
            let mut was_canary = false;
            for w in (0..=10_000).step_by(500) {
                let is_canary = b < w;
                assert!(!was_canary || is_canary);
                was_canary = is_canary;
            }
        }
    }

    #[test]
    fn absent_sticky_cookie_is_assigned() {
        let d = go(&HeaderMap::new(), 5000, false);
        assert_eq!(d.assign_cookie.as_deref(), Some("fresh"));
    }

    #[test]
    fn cookie_parsing() {
        let h = hdrs(&[("cookie", "a=1; canary_id=xyz"), ("cookie", "b=2")]);
        assert_eq!(cookie(&h, "canary_id"), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
