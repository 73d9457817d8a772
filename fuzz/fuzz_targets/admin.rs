//! The admin API's input parsers, fed the same bytes: the `PUT /api/v1/weight`
//! body, the `POST /api/v1/promote?full=` query, the `GET /v1/metrics` query and
//! the `Authorization` header.
//!
//! Asserts, for any input:
//! - no panic;
//! - an accepted weight is finite, in 0..=100, has at most 2 decimals (it maps
//!   to basis points and back exactly), came from a JSON object whose only key
//!   is `canary_weight` holding a number, and its canonical body
//!   `{"canary_weight": <w>}` is accepted as the same basis points;
//! - `full=` is accepted only for the documented spellings, and a query
//!   without a `full` key is `false`;
//! - an accepted `/v1/metrics` window is in (0, 1h]; the version is canary
//!   unless the query names the stable one; errors name the offending key;
//! - `Authorization` accepts exactly `Bearer <token>` (scheme case-insensitive,
//!   surrounding blanks ignored) and never accepts a different or a prefix token.
#![no_main]

use canary_proxy::admin::{authorized, parse_apm_query, parse_full, parse_weight};
use canary_proxy::config::{bp_to_weight, weight_to_bp};
use canary_proxy::Role;
use http::{header::AUTHORIZATION, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::time::Duration;

fn weight(body: &[u8]) {
    match parse_weight(body) {
        Ok(w) => {
            assert!(w.is_finite() && (0.0..=100.0).contains(&w), "{w}");
            let bp = weight_to_bp(w);
            assert!(bp <= 10_000);
            // At most 2 decimals, up to the float tolerance parse_weight allows.
            assert!(
                (bp as f64 - w * 100.0).abs() <= 1e-6,
                "{w} is not 2-decimal"
            );
            // (parse_weight's tolerance: 1e-6 hundredths, so 20.09999999 is
            // 20.10; plus float rounding.)
            assert!((bp_to_weight(bp) - w).abs() <= 1.001e-8, "{w} vs {bp}bp");
            let v: Value = serde_json::from_slice(body).expect("accepted body is JSON");
            let obj = v.as_object().expect("accepted body is an object");
            assert_eq!(obj.len(), 1, "{obj:?}");
            assert!(obj["canary_weight"].is_number(), "{obj:?}");
            let canonical = format!("{{\"canary_weight\": {w}}}");
            // (serde_json's float parse may be 1 ulp off: compare basis points.)
            let again = parse_weight(canonical.as_bytes()).expect("canonical body accepted");
            assert_eq!(weight_to_bp(again), bp, "{canonical}");
        }
        Err(msg) => assert!(!msg.is_empty()),
    }
}

fn pairs(q: &str) -> impl Iterator<Item = (&str, &str)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
}

fn full(q: &str) {
    let first = pairs(q).find(|(k, _)| *k == "full").map(|(_, v)| v);
    match (parse_full(q), first) {
        (Ok(f), None) => assert!(!f),
        (Ok(f), Some(v)) => {
            assert!(matches!(v, "true" | "1" | "" | "false" | "0"), "{v:?}");
            assert_eq!(f, matches!(v, "true" | "1" | ""));
        }
        (Err(msg), Some(v)) => {
            assert!(!matches!(v, "true" | "1" | "" | "false" | "0"));
            assert!(msg.starts_with("full="), "{msg}");
        }
        (Err(msg), None) => panic!("no full= key, yet rejected: {msg}"),
    }
}

fn apm(q: &str) {
    let versions = ["v1".to_string(), "v2".to_string()];
    match parse_apm_query(q, &versions) {
        Ok(r) => {
            if let Some(w) = r.window {
                assert!(!w.is_zero() && w <= Duration::from_secs(3600), "{w:?}");
            }
            let last_version = pairs(q).filter(|(k, _)| *k == "version").last();
            let want = match last_version {
                Some((_, "stable" | "v1")) => Role::Stable,
                _ => Role::Canary,
            };
            assert_eq!(r.role, want, "{q:?}");
        }
        Err(msg) => assert!(
            ["metric=", "window", "invalid window", "version="]
                .iter()
                .any(|p| msg.starts_with(p)),
            "{msg}"
        ),
    }
}

fn auth(data: &[u8]) {
    // The token from the first line, the header value from the rest.
    let s = String::from_utf8_lossy(data);
    let (token, given) = s.split_once('\n').unwrap_or((&s, ""));
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(given) {
        h.insert(AUTHORIZATION, v);
    }
    let ok = authorized(token, &h);
    if token.is_empty() {
        assert!(ok, "no token configured must allow");
        return;
    }
    if ok {
        let v = h.get(AUTHORIZATION).unwrap().to_str().unwrap().trim();
        let (scheme, rest) = v.split_once(' ').unwrap();
        assert!(scheme.eq_ignore_ascii_case("bearer"), "{v:?}");
        assert_eq!(rest.trim(), token, "accepted a different token");
    }
    // The right token is accepted (a token as validated: no surrounding blanks;
    // as a header value: visible ASCII and inner spaces).
    if token.trim() == token && token.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        assert!(authorized(token, &h));
        let short = &token[..token.len() - 1];
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {short}")).unwrap(),
        );
        assert!(!authorized(token, &h), "prefix of the token accepted");
    }
}

fuzz_target!(|data: &[u8]| {
    weight(data);
    if let Ok(q) = std::str::from_utf8(data) {
        full(q);
        apm(q);
    }
    auth(data);
});
