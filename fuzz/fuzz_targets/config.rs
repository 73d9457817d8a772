//! Config text → `${VAR}` expansion → YAML → validation, as `canary-proxy check`
//! does it (`config::load` minus the file read), then what `run` does with a
//! valid config.
//!
//! Asserts, for any input:
//! - no panic (the parse, the error messages, `check`'s summary line);
//! - a rejected config names at least one problem, each a non-empty line (so
//!   `check` never exits 2 saying nothing);
//! - parsing is deterministic (same text, same result or same error list);
//! - a valid config builds a routing snapshot without panicking, with every
//!   validated endpoint usable (none silently dropped) and every configured
//!   header name present in the routing rules;
//! - a valid config written back out (as JSON, which is YAML) is still valid
//!   and reads the same (compared on its serialized form without nulls).
#![no_main]

use canary_proxy::config::{self, Config, ConfigError};
use canary_proxy::snapshot::Snapshot;
use canary_proxy::telemetry::Registry;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// A fixed stand-in for the environment (the real one would make runs differ).
fn env(name: &str) -> Option<String> {
    match name {
        // Long and random-looking: the seeds listening beyond loopback need one.
        "CANARY_ADMIN_TOKEN" | "TOKEN" => Some("3b9f0c1e7a5d42c8b6e1f09a".into()),
        "CANARY_VERSION" => Some("v2".into()),
        "STABLE_VERSION" => Some("v1".into()),
        "PORT" => Some("8080".into()),
        "WEIGHT" => Some("12.5".into()),
        "EMPTY" => Some(String::new()),
        "ODD" => Some("a: b #c\n- ${X}".into()),
        _ => None,
    }
}

fn messages(e: &ConfigError) -> Vec<String> {
    let m = e.messages();
    assert!(!m.is_empty(), "rejected without a message: {e:?}");
    for line in &m {
        assert!(!line.trim().is_empty(), "empty error line in {m:?}");
    }
    let _ = e.to_string();
    m
}

fn check_valid(c: &Config) {
    let _ = config::summary(c);
    let weight_bp = config::weight_to_bp(c.routing.canary_weight);
    assert!(weight_bp <= 10_000);
    let registry = Registry::default();
    // Certificate and CA files may be absent here: only the routing half is checked.
    let Ok(snap) = Snapshot::build(c, &registry, None, weight_bp, false) else {
        return;
    };
    for (role, up) in [
        (canary_proxy::Role::Stable, &c.upstreams.stable),
        (canary_proxy::Role::Canary, &c.upstreams.canary),
    ] {
        assert_eq!(
            snap.backend(role).endpoints.endpoints.len(),
            up.endpoints.len(),
            "a validated {role} endpoint was dropped: {:?}",
            up.endpoints
        );
    }
    let r = &c.routing;
    if let Some(o) = &r.override_ {
        assert_eq!(snap.rules.override_header.is_some(), o.header.is_some());
    }
    if r.sticky.is_some() {
        assert!(snap.rules.sticky.is_some(), "validated sticky rule dropped");
    }
    assert_eq!(
        snap.rules.response_header.is_some(),
        r.response_header.is_some()
    );
    // A step's `analysis` override is what the snapshot is rebuilt with.
    if let Some(ro) = &c.rollout {
        for s in &ro.steps {
            let _ = s.kind();
            if let Some(a) = &s.analysis {
                let merged = c.analysis.merged(a);
                let _ = canary_proxy::snapshot::ErrorStatuses::parse(&merged.error_statuses);
                let _ = a.gate_timeout();
            }
        }
    }
    let _ = canary_proxy::snapshot::ErrorStatuses::parse(&c.analysis.error_statuses);

    // Round trip: JSON is YAML. The config's `Serialize` is a display form
    // (nulls for absent keys, `null` and absent alike for a step's inherited
    // limits), so the comparison is on that form with nulls dropped: written
    // back out, a valid config stays valid and reads the same. `${` in a value
    // would be expanded again, so it is escaped as a user would write it.
    let shown = without_nulls(serde_json::to_value(c).expect("a config serializes"));
    let text = yaml_safe(&serde_json::to_string(&shown).unwrap()).replace("${", "$${");
    match config::parse(&text, &env) {
        Ok(back) => {
            let again = without_nulls(serde_json::to_value(&back).unwrap());
            assert_eq!(again, shown, "round trip changed the config: {text}");
        }
        Err(e) => panic!("valid config, written back, is rejected: {text}\n{e}"),
    }
}

/// JSON writes non-ASCII characters raw, and YAML refuses the unprintable ones
/// (DEL, C1 controls, U+FEFF...) in a stream even where a quoted value may hold
/// them as escapes: write every non-ASCII character as a YAML escape (they only
/// occur inside JSON strings).
fn yaml_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c as u32 {
            0x20..=0x7e | 0x0a => out.push(c),
            n @ 0..=0xffff => out.push_str(&format!("\\u{n:04x}")),
            n => out.push_str(&format!("\\U{n:08x}")),
        }
    }
    out
}

fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        v => v,
    }
}

fuzz_target!(|data: &[u8]| {
    // `check` reads the file as UTF-8; invalid bytes would stop at the read, so
    // map them to U+FFFD and parse the rest (more coverage per input).
    let text = String::from_utf8_lossy(data);
    let first = config::parse(&text, &env);
    let second = config::parse(&text, &env);
    match (&first, &second) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "non-deterministic parse");
            check_valid(a);
        }
        (Err(a), Err(b)) => assert_eq!(messages(a), messages(b), "non-deterministic errors"),
        _ => panic!("non-deterministic: {first:?} vs {second:?}"),
    }
});
