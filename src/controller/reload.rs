//! The parts of a reload only a restart can apply.
use crate::config::Config;
use serde_json::Value;

/// One message per key that changed but needs a restart (listeners, workers).
pub(super) fn restart_only(old: &Config, new: &Config) -> Vec<String> {
    let mut errs = Vec::new();
    if new.listen != old.listen {
        errs.push("listen: changing a listener needs a restart".to_string());
    }
    if new.tls.as_ref().map(|t| &t.listen) != old.tls.as_ref().map(|t| &t.listen) {
        errs.push("tls.listen: changing a listener needs a restart".into());
    }
    if new.admin.listen != old.admin.listen {
        errs.push("admin.listen: changing a listener needs a restart".into());
    }
    if new.workers != old.workers {
        errs.push("workers: changing the worker count needs a restart".into());
    }
    errs
}

/// Values longer than this are cut in a change line.
const MAX_VALUE: usize = 80;
/// Change lines listed before "and N more".
const MAX_CHANGES: usize = 12;

/// What a reload changed, one line per setting, e.g.
/// `upstreams.canary.endpoints: ["http://a:1"] → ["http://b:1"]` or
/// `analysis.error_rate.max: 2.0 → 1.0`. Secrets (the admin token, webhook
/// URLs and keys) are named, never shown. Empty when nothing changed.
pub(super) fn changes(old: &Config, new: &Config) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(old), serde_json::to_value(new)) else {
        return vec!["the config changed".into()];
    };
    let mut out = Vec::new();
    diff("", &a, &b, &mut out);
    if out.len() > MAX_CHANGES {
        let more = out.len() - MAX_CHANGES;
        out.truncate(MAX_CHANGES);
        out.push(format!("and {more} more"));
    }
    out
}

/// Paths whose values may hold credentials.
fn secret(path: &str) -> bool {
    path == "admin.token" || path.starts_with("notify.webhooks")
}

fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    if secret(path) {
        out.push(format!("{path} changed"));
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                diff(&join(k), v, y.get(k).unwrap_or(&Value::Null), out);
            }
            for (k, v) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                diff(&join(k), &Value::Null, v, out);
            }
        }
        // Lists of objects (plan steps) element by element; lists of values
        // (endpoints, statuses) whole.
        (Value::Array(x), Value::Array(y))
            if x.len() == y.len() && x.iter().chain(y).any(Value::is_object) =>
        {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), v, w, out);
            }
        }
        _ => out.push(format!("{path}: {} → {}", shown(a), shown(b))),
    }
}

fn shown(v: &Value) -> String {
    let s = match v {
        Value::Null => "unset".to_string(),
        Value::Array(a) if a.iter().any(Value::is_object) => format!("{} entries", a.len()),
        v => v.to_string(),
    };
    if s.chars().count() > MAX_VALUE {
        let cut: String = s.chars().take(MAX_VALUE - 1).collect();
        format!("{cut}…")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str, canary: &str) -> Config {
        let yaml = format!(
            "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0, token: s3cret }}\nupstreams:\n  stable: {{ endpoints: [\"http://127.0.0.1:1\"] }}\n  canary: {{ endpoints: [\"{canary}\"] }}\n{extra}"
        );
        crate::config::parse(&yaml, &|_| None).expect("valid config")
    }

    #[test]
    fn lists_what_changed_and_nothing_else() {
        let old = config(
            "routing: { canary_weight: 10 }\nrollout:\n  steps: [ { set_weight: 5 }, { pause: 30s } ]\n",
            "http://127.0.0.1:2",
        );
        assert!(changes(&old, &old.clone()).is_empty());
        let new = config(
            "routing: { canary_weight: 25 }\nanalysis: { error_rate: { max: 1.0 } }\nrollout:\n  steps: [ { set_weight: 5 }, { pause: 1m } ]\n",
            "http://127.0.0.1:3",
        );
        let c = changes(&old, &new);
        assert!(
            c.contains(&"routing.canary_weight: 10.0 → 25.0".to_string()),
            "{c:?}"
        );
        assert!(
            c.contains(
                &r#"upstreams.canary.endpoints: ["http://127.0.0.1:2"] → ["http://127.0.0.1:3"]"#
                    .to_string()
            ),
            "{c:?}"
        );
        assert!(
            c.contains(&"analysis.error_rate.max: 5.0 → 1.0".to_string()),
            "{c:?}"
        );
        assert!(
            c.contains(&r#"rollout.steps[1].pause: "30s" → "1m""#.to_string()),
            "{c:?}"
        );
        assert_eq!(c.len(), 4, "{c:?}");
    }

    #[test]
    fn secrets_are_named_not_shown() {
        let old = config("", "http://127.0.0.1:2");
        let mut new = old.clone();
        new.admin.token = "other-secret".into();
        let c = changes(&old, &new);
        assert_eq!(c, vec!["admin.token changed".to_string()]);
        let new = config(
            "notify: { webhooks: [ { url: \"http://127.0.0.1:9/hook?key=abc\" } ] }\n",
            "http://127.0.0.1:2",
        );
        let c = changes(&old, &new);
        assert_eq!(c, vec!["notify.webhooks changed".to_string()]);
        assert!(!c.concat().contains("s3cret") && !c.concat().contains("abc"));
    }

    #[test]
    fn long_diffs_are_cut() {
        let old = config("", "http://127.0.0.1:2");
        let mut new = old.clone();
        new.upstreams.canary.endpoints = (0..40)
            .map(|i| format!("http://127.0.0.1:{}", 1000 + i))
            .collect();
        new.analysis.min_requests = 1;
        new.analysis.failure_limit = 3;
        let c = changes(&old, &new);
        assert!(c.iter().all(|l| l.chars().count() < 200), "{c:?}");
        assert!(c.iter().any(|l| l.ends_with('…')), "{c:?}");
    }
}
