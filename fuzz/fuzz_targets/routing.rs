//! `routing::decide` (override → sticky → weighted random) with
//! arbitrary rules, headers, cookies, weights, abort flag and random draws.
//!
//! Rules are the ones the config validator lets through (cookie names are
//! RFC 6265 tokens, header names valid, `header_value` non-empty and not
//! `always`/`never`), as the snapshot builds them; headers and cookie values
//! are arbitrary. Asserts, besides "no panic":
//! - weight 0 and not overridden → stable; weight 10000 and not overridden →
//!   canary (so only an override to stable keeps a request off a full canary);
//! - `x-canary: never` (the override header) → stable, `always` or the exact
//!   `header_value` → canary, whatever the weight, sticky key or cookie;
//! - after an abort (weight 0) a request reaches the canary only through the
//!   exact `header_value`, in the header or the override cookie;
//! - an override decision does not depend on the weight or the random draw;
//! - monotone in weight: with the same request and draw, canary at weight w
//!   stays canary at every w' ≥ w (sticky clients never flip back while a
//!   rollout goes up);
//! - a sticky decision (cookie or header present) does not depend on the draw;
//! - a fresh sticky id is drawn exactly when a `Set-Cookie` is asked for (cookie
//!   stickiness, cookie absent or empty, no override), and the client sending
//!   that cookie back gets the same version and no new cookie.
#![no_main]

use arbitrary::Arbitrary;
use canary_proxy::routing::{cookie, decide, sticky_bucket, Decision, RoutingRules, StickyKey};
use canary_proxy::Role;
use http::header::{HeaderName, HeaderValue, COOKIE};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use std::cell::Cell;

#[derive(Arbitrary, Debug)]
enum Sticky {
    None,
    Cookie(String),
    Header(String),
}

#[derive(Arbitrary, Debug)]
enum Name {
    OverrideHeader,
    StickyHeader,
    Cookie,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Always,
    Never,
    HeaderValue,
    Empty,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum CookieName {
    Override,
    Sticky,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Weight {
    Zero,
    Full,
    Bp(u16),
}

impl Weight {
    fn bp(&self) -> u32 {
        match self {
            Weight::Zero => 0,
            Weight::Full => 10_000,
            Weight::Bp(b) => u32::from(*b) % 10_001,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    sticky: Sticky,
    override_header: Option<String>,
    override_header_value: Option<String>,
    override_cookie: Option<String>,
    headers: Vec<(Name, Value)>,
    /// Joined into one `Cookie` header per inner list.
    cookies: Vec<Vec<(CookieName, Value)>>,
    version: String,
    weight: Weight,
    other_weight: Weight,
    aborted: bool,
    rand: u16,
    other_rand: u16,
    sticky_id: u128,
}

/// RFC 6265 cookie-name, as `config::validate` checks it.
fn cookie_name(c: &str) -> bool {
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_graphic() && !br#"()<>@,;:\"/[]?={}"#.contains(&b))
}

fn header_name(s: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(s.as_bytes()).ok()
}

fn rules(i: &Input) -> RoutingRules {
    let cookie_or = |c: &str, dflt: &str| {
        if cookie_name(c) {
            c.to_string()
        } else {
            dflt.to_string()
        }
    };
    RoutingRules {
        sticky: match &i.sticky {
            Sticky::None => None,
            Sticky::Cookie(c) => Some(StickyKey::Cookie(cookie_or(c, "canary_id"))),
            Sticky::Header(h) => Some(StickyKey::Header(
                header_name(h).unwrap_or(HeaderName::from_static("x-user-id")),
            )),
        },
        override_header: i
            .override_header
            .as_deref()
            .map(|h| header_name(h).unwrap_or(HeaderName::from_static("x-canary"))),
        override_header_value: i
            .override_header_value
            .clone()
            .filter(|v| !v.is_empty() && v != "always" && v != "never")
            .filter(|_| i.override_header.is_some()),
        override_cookie: i.override_cookie.as_deref().map(|c| cookie_or(c, "canary")),
        response_header: None,
    }
}

fn value_bytes(v: &Value, r: &RoutingRules) -> Vec<u8> {
    match v {
        Value::Always => b"always".to_vec(),
        Value::Never => b"never".to_vec(),
        Value::HeaderValue => r
            .override_header_value
            .clone()
            .unwrap_or_else(|| "beta".into())
            .into_bytes(),
        Value::Empty => Vec::new(),
        Value::Raw(b) => b.clone(),
    }
}

fn headers(i: &Input, r: &RoutingRules) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in &i.headers {
        let name = match name {
            Name::OverrideHeader => r.override_header.clone(),
            Name::StickyHeader => match &r.sticky {
                Some(StickyKey::Header(h)) => Some(h.clone()),
                _ => None,
            },
            Name::Cookie => Some(COOKIE),
            Name::Other(s) => header_name(s),
        };
        if let (Some(n), Ok(v)) = (name, HeaderValue::from_bytes(&value_bytes(value, r))) {
            h.append(n, v);
        }
    }
    for jar in &i.cookies {
        let mut line = Vec::new();
        for (k, v) in jar {
            let k = match k {
                CookieName::Override => r.override_cookie.clone().unwrap_or_default(),
                CookieName::Sticky => match &r.sticky {
                    Some(StickyKey::Cookie(c)) => c.clone(),
                    _ => String::new(),
                },
                CookieName::Other(s) => s.clone(),
            };
            if !line.is_empty() {
                line.extend_from_slice(b"; ");
            }
            line.extend_from_slice(k.as_bytes());
            line.push(b'=');
            line.extend_from_slice(&value_bytes(v, r));
        }
        if let Ok(v) = HeaderValue::from_bytes(&line) {
            h.append(COOKIE, v);
        }
    }
    h
}

struct Run {
    d: Decision,
    drew_rand: bool,
    drew_id: bool,
}

fn run(r: &RoutingRules, h: &HeaderMap, i: &Input, w: u32, aborted: bool, rand: u32) -> Run {
    let (drew_rand, drew_id) = (Cell::new(false), Cell::new(false));
    let id = format!("{:032x}", i.sticky_id); // as proxy::ids::sticky_id
    let d = decide(
        r,
        h,
        &i.version,
        w,
        aborted,
        || {
            assert!(!drew_rand.replace(true), "rand drawn twice");
            rand
        },
        || {
            assert!(!drew_id.replace(true), "sticky id drawn twice");
            id
        },
    );
    Run {
        d,
        drew_rand: drew_rand.get(),
        drew_id: drew_id.get(),
    }
}

fuzz_target!(|i: Input| {
    let r = rules(&i);
    let h = headers(&i, &r);
    let (w, w2) = (i.weight.bp(), i.other_weight.bp());
    let (rand, rand2) = (u32::from(i.rand) % 10_000, u32::from(i.other_rand) % 10_000);
    let Run {
        d,
        drew_rand,
        drew_id,
    } = run(&r, &h, &i, w, i.aborted, rand);

    // What the request asks for, by the override header (first value) alone.
    let hv = r.override_header_value.as_deref();
    let by_header = r
        .override_header
        .as_ref()
        .and_then(|n| h.get(n))
        .and_then(|v| v.to_str().ok());
    let by_cookie = r.override_cookie.as_deref().and_then(|c| cookie(&h, c));
    let exact = |v: Option<&str>| hv.is_some() && v == hv;

    if by_header == Some("never") {
        assert_eq!((d.role, d.via_override), (Role::Stable, true));
    }
    if exact(by_header) || (by_header == Some("always") && !i.aborted) {
        assert_eq!((d.role, d.via_override), (Role::Canary, true));
    }

    // Set-Cookie exactly when a fresh id was drawn.
    assert_eq!(drew_id, d.assign_cookie.is_some());
    if let Some(c) = &d.assign_cookie {
        assert_eq!(c, &format!("{:032x}", i.sticky_id));
        assert!(matches!(r.sticky, Some(StickyKey::Cookie(_))));
        assert!(!d.via_override);
    }

    if d.via_override {
        assert!(!drew_rand && !drew_id);
        // Independent of weight and draw.
        assert_eq!(run(&r, &h, &i, w2, i.aborted, rand2).d, d);
        if i.aborted && d.role == Role::Canary {
            assert!(
                exact(by_header) || exact(by_cookie),
                "{by_header:?} {by_cookie:?}"
            );
        }
    } else {
        match w {
            0 => assert_eq!(d.role, Role::Stable, "weight 0 reached the canary"),
            10_000 => assert_eq!(d.role, Role::Canary, "weight 100% served stable"),
            _ => {}
        }
        if i.aborted && w == 0 {
            assert_eq!(d.role, Role::Stable);
        }
        // Monotone in weight, same request and draw.
        let d2 = run(&r, &h, &i, w2, i.aborted, rand).d;
        assert!(!d2.via_override);
        let (lo, hi) = if w <= w2 { (&d, &d2) } else { (&d2, &d) };
        if lo.role == Role::Canary {
            assert_eq!(
                hi.role,
                Role::Canary,
                "canary at {} but not at {}",
                w.min(w2),
                w.max(w2)
            );
        }
        // A sticky decision ignores the draw.
        if !drew_rand {
            assert_eq!(run(&r, &h, &i, w, i.aborted, rand2).d.role, d.role);
        }
        // The assigned cookie, sent back, keeps the client where it is.
        if let (Some(id), Some(StickyKey::Cookie(name))) = (&d.assign_cookie, &r.sticky) {
            let mut back = h.clone();
            back.remove(COOKIE);
            back.insert(
                COOKIE,
                HeaderValue::from_str(&format!("{name}={id}")).unwrap(),
            );
            let again = run(&r, &back, &i, w, i.aborted, rand2);
            assert_eq!(
                again.d.role, d.role,
                "sticky cookie {name}={id} changed version"
            );
            assert!(again.d.assign_cookie.is_none() && !again.drew_rand);
        }
    }

    // Helpers: a cookie value never spans two cookies; buckets are in range.
    for name in [r.override_cookie.as_deref(), Some("canary_id")]
        .into_iter()
        .flatten()
    {
        if let Some(v) = cookie(&h, name) {
            assert!(!v.contains(';'), "{v:?}");
        }
    }
    assert!(sticky_bucket(&i.version, &format!("{:032x}", i.sticky_id)) < 10_000);
});
