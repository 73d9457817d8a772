//! YAML → `Config`, reporting every type error at once with its path.
//!
//! serde stops at the first error, so each top-level section is deserialized on
//! its own from a `serde_yaml::Value`; when it fails, the offending value is cut
//! out (or, for a required field or a list element, replaced by a stand-in) and
//! the section is tried again. Each reported path is "tainted" so the semantic
//! checks that follow stay quiet about values that were replaced.
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::path::{Collector, Seg};
use super::*;

/// Top-level keys in the order they are documented.
pub(super) const SECTIONS: &[&str] = &[
    "listen",
    "workers",
    "tls",
    "admin",
    "upstreams",
    "routing",
    "analysis",
    "rollout",
    "timeouts",
    "limits",
    "retry",
    "state_file",
    "notify",
];

/// Bounds the cut-and-retry loop of one section (each round fixes one value).
const MAX_ROUNDS: usize = 256;

/// Parses YAML text into a tree, or reports the syntax error.
pub(super) fn parse_yaml(text: &str, out: &mut Collector) -> Option<Value> {
    match serde_yaml::from_str(text) {
        Ok(v) => Some(v),
        Err(e) => {
            let at = match e.location() {
                Some(l) if e.to_string().starts_with("duplicate entry") => {
                    format!(" (in the mapping that starts at line {})", l.line())
                }
                Some(l) if !e.to_string().contains(" line ") => {
                    format!(" (at line {} column {})", l.line(), l.column())
                }
                _ => String::new(),
            };
            out.error(String::new(), format!("YAML syntax error: {e}{at}"));
            None
        }
    }
}

/// Deserializes a parsed tree; the returned config is complete (failed sections
/// fall back to defaults or placeholders) and only meaningful where `out` is not
/// tainted.
pub(super) fn deserialize(mut root: Value, out: &mut Collector) -> Option<Config> {
    if let Err(e) = root.apply_merge() {
        out.error(String::new(), format!("YAML merge key (<<) error: {e}"));
        return None;
    }
    let mut map = match root {
        Value::Mapping(m) => m,
        Value::Null => {
            out.error(
                String::new(),
                "the file is empty: `listen` and `upstreams` are required".into(),
            );
            return None;
        }
        other => {
            out.error(
                String::new(),
                format!(
                    "the top level must be a mapping of keys ({}), found {}",
                    SECTIONS.join(", "),
                    kind(&other)
                ),
            );
            return None;
        }
    };
    out.index_document(&map);
    for key in map.keys() {
        match key.as_str() {
            Some(k) if SECTIONS.contains(&k) => {}
            Some(k) => out.error(k.to_string(), unknown_key(k, SECTIONS)),
            None => out.error(
                String::new(),
                format!("top-level key {} is not a string", scalar(key)),
            ),
        }
    }
    let mut take = |key: &str| map.remove(key).filter(|v| !v.is_null());

    let listen = required::<String>("listen", take("listen"), out);
    let upstreams = required::<Upstreams>("upstreams", take("upstreams"), out);
    let workers = optional("workers", take("workers"), out);
    let tls = take("tls").and_then(|v| section("tls", v, out));
    let admin = optional("admin", take("admin"), out);
    let routing = optional("routing", take("routing"), out);
    let analysis = optional("analysis", take("analysis"), out);
    let rollout = take("rollout").and_then(|v| section("rollout", v, out));
    let timeouts = optional("timeouts", take("timeouts"), out);
    let limits = optional("limits", take("limits"), out);
    let retry = optional("retry", take("retry"), out);
    let state_file = take("state_file").and_then(|v| section("state_file", v, out));
    let notify = optional("notify", take("notify"), out);
    Some(Config {
        listen: listen.unwrap_or_default(),
        workers,
        tls,
        admin,
        upstreams: upstreams.unwrap_or_else(|| Upstreams {
            stable: placeholder_upstream(),
            canary: placeholder_upstream(),
        }),
        routing,
        analysis,
        rollout,
        timeouts,
        limits,
        retry,
        state_file,
        notify,
    })
}

fn placeholder_upstream() -> Upstream {
    Upstream {
        version: None,
        endpoints: Vec::new(),
        health_check: None,
        ca: None,
        max_connections: 0,
    }
}

fn required<T: DeserializeOwned>(key: &str, v: Option<Value>, out: &mut Collector) -> Option<T> {
    match v {
        Some(v) => section(key, v, out),
        None => {
            out.error(key.to_string(), "required".into());
            None
        }
    }
}

fn optional<T: DeserializeOwned + Default>(key: &str, v: Option<Value>, out: &mut Collector) -> T {
    v.and_then(|v| section(key, v, out)).unwrap_or_default()
}

/// Deserializes one section, cutting out bad values until it succeeds.
fn section<T: DeserializeOwned>(key: &str, mut value: Value, out: &mut Collector) -> Option<T> {
    // Stand-ins put where a value is required: (path, index into STAND_INS).
    let mut stand_ins: Vec<(Vec<Seg>, usize)> = Vec::new();
    // Lists that lost elements, with the original indices removed, so later
    // errors still name the index as written in the file.
    let mut shifted: Vec<(Vec<Seg>, Vec<usize>)> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let err = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let mut segs = Seg::from_serde(err.path());
        let raw = err.inner().to_string();
        let missing = quoted_after(&raw, "missing field `");
        if let Some(f) = &missing {
            segs.push(Seg::Key(f.clone()));
        } else if let Some(f) = quoted_after(&raw, "unknown field `") {
            if segs.last() != Some(&Seg::Key(f.clone())) {
                segs.push(Seg::Key(f));
            }
        }
        let path = Seg::render(key, &as_written(&segs, &shifted));

        // An error inside a stand-in: try the next kind of stand-in, or, when a
        // stand-in mapping lacks a required field, nest another stand-in.
        if let Some(i) = stand_ins.iter().rposition(|(p, _)| segs.starts_with(p)) {
            let nested_missing = missing.is_some()
                && segs.len() > stand_ins[i].0.len()
                && matches!(STAND_INS[stand_ins[i].1], StandIn::Map);
            if nested_missing {
                stand_ins.push((segs.clone(), 0));
                if put(&mut value, &segs, STAND_INS[0].value()).is_none() {
                    return give_up(key, out);
                }
                continue;
            }
            let base = stand_ins[i].0.clone();
            stand_ins.retain(|(p, _)| !p.starts_with(&base) || *p == base);
            let Some(slot) = stand_ins.iter_mut().find(|(p, _)| *p == base) else {
                return give_up(key, out);
            };
            slot.1 += 1;
            let next = slot.1;
            if next < STAND_INS.len() {
                if put(&mut value, &base, STAND_INS[next].value()).is_none() {
                    return give_up(key, out);
                }
                continue;
            }
            // No stand-in fits (an enum value, say): drop the list element. Later
            // indices shift, so the semantic checks skip that whole list.
            stand_ins.retain(|(p, _)| *p != base);
            match base.split_last() {
                Some((Seg::Index(i), list)) => {
                    let written = match as_written(&base, &shifted).last() {
                        Some(Seg::Index(w)) => *w,
                        _ => *i,
                    };
                    let removed = get_mut(&mut value, list)
                        .and_then(Value::as_sequence_mut)
                        .filter(|items| *i < items.len())
                        .map(|items| items.remove(*i));
                    if removed.is_none() {
                        return give_up(key, out);
                    }
                    out.taint(Seg::render(key, &as_written(list, &shifted)));
                    match shifted.iter_mut().find(|(l, _)| l == list) {
                        Some((_, gone)) => gone.push(written),
                        None => shifted.push((list.to_vec(), vec![written])),
                    }
                }
                _ => return give_up(key, out),
            }
            continue;
        }

        // A `missing field` for a value this loop cut out was already reported.
        let consequence = missing.is_some() && out.is_reported(&path);
        if !consequence {
            out.error(path.clone(), friendly(&raw));
        }
        match segs.last() {
            None => return give_up(key, out),
            Some(Seg::Key(k)) if missing.is_none() => {
                let cut = get_mut(&mut value, &segs[..segs.len() - 1])
                    .and_then(Value::as_mapping_mut)
                    .and_then(|m| m.remove(k.as_str()));
                if cut.is_none() {
                    return give_up(key, out);
                }
            }
            Some(_) => {
                stand_ins.push((segs.clone(), 0));
                if put(&mut value, &segs, STAND_INS[0].value()).is_none() {
                    return give_up(key, out);
                }
            }
        }
    }
    give_up(key, out)
}

/// `segs` (indices into the trimmed value) with list indices as written in the file.
fn as_written(segs: &[Seg], shifted: &[(Vec<Seg>, Vec<usize>)]) -> Vec<Seg> {
    let mut out = segs.to_vec();
    for (list, gone) in shifted {
        if let (true, Some(Seg::Index(i))) = (segs.starts_with(list), segs.get(list.len())) {
            let written = (0..).filter(|o| !gone.contains(o)).nth(*i).unwrap_or(*i);
            out[list.len()] = Seg::Index(written);
        }
    }
    out
}

fn give_up<T>(key: &str, out: &mut Collector) -> Option<T> {
    out.taint(key.to_string());
    None
}

#[derive(Clone, Copy)]
enum StandIn {
    Map,
    Str,
    Seq,
    Num,
    Bool,
}

/// Tried in order until the value deserializes (a struct with defaults, a string, a list…).
const STAND_INS: [StandIn; 5] = [
    StandIn::Map,
    StandIn::Str,
    StandIn::Seq,
    StandIn::Num,
    StandIn::Bool,
];

impl StandIn {
    fn value(self) -> Value {
        match self {
            StandIn::Map => Value::Mapping(Mapping::new()),
            StandIn::Str => Value::String(String::new()),
            StandIn::Seq => Value::Sequence(Vec::new()),
            StandIn::Num => Value::Number(0.into()),
            StandIn::Bool => Value::Bool(false),
        }
    }
}

fn get_mut<'a>(mut v: &'a mut Value, segs: &[Seg]) -> Option<&'a mut Value> {
    for s in segs {
        v = match (s, v) {
            (Seg::Key(k), Value::Mapping(m)) => m.get_mut(k.as_str())?,
            (Seg::Index(i), Value::Sequence(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Sets (inserting a mapping key if needed) the value at `segs`.
fn put(root: &mut Value, segs: &[Seg], new: Value) -> Option<()> {
    let (last, parent) = segs.split_last()?;
    let parent = get_mut(root, parent)?;
    if parent.is_null() {
        // `canary:` with nothing under it reads as null; give it keys.
        *parent = Value::Mapping(Mapping::new());
    }
    match (last, parent) {
        (Seg::Key(k), Value::Mapping(m)) => {
            m.insert(Value::String(k.clone()), new);
        }
        (Seg::Index(i), Value::Sequence(items)) => *items.get_mut(*i)? = new,
        _ => return None,
    }
    Some(())
}

/// The text between `prefix` and the next backtick.
fn quoted_after(msg: &str, prefix: &str) -> Option<String> {
    let rest = &msg[msg.find(prefix)? + prefix.len()..];
    Some(rest[..rest.find('`')?].to_string())
}

/// serde's wording, made to read like an operator's error message.
fn friendly(raw: &str) -> String {
    if raw.starts_with("missing field `") {
        return "required".into();
    }
    if let Some(field) = quoted_after(raw, "unknown field `") {
        let expected: Vec<&str> = raw
            .split_once("expected ")
            .map(|(_, list)| {
                list.trim_start_matches("one of ")
                    .split(", ")
                    .flat_map(|s| s.split(" or "))
                    .map(|s| s.trim().trim_matches('`'))
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        return unknown_key(&field, &expected);
    }
    if raw.contains("untagged enum Pause") {
        return "expected a duration like `30s`, or `{}` to wait for promote".into();
    }
    if raw.contains("untagged enum StatusPattern") {
        return r#"expected a status pattern like "5xx" or a code like 503"#.into();
    }
    if raw.contains("expected struct") || raw.contains("expected a sequence") {
        // "invalid type: string "x", expected struct HealthCheck" → say what goes there.
        let what = if raw.contains("expected a sequence") {
            "a list"
        } else {
            "a mapping of keys"
        };
        let found = raw
            .strip_prefix("invalid type: ")
            .and_then(|r| r.split_once(", expected"))
            .map(|(f, _)| f)
            .unwrap_or("something else");
        return format!("expected {what}, found {found}");
    }
    if raw.starts_with("invalid type: unit value") {
        return match raw.split_once(", expected ") {
            Some((_, what)) => format!("is empty, expected {what}"),
            None => "is empty".into(),
        };
    }
    if raw.ends_with("expected a string") && !raw.contains("type: map") && !raw.contains("sequence")
    {
        // `version: 2` or a token of digits: YAML read a number, and converting it
        // back could change it (`1.10` → `1.1`), so ask for quotes.
        return format!("{raw} (put it in quotes)");
    }
    let raw = &raw.replace("a Value::Tagged enum", "a single value");
    for (rust, words) in [
        ("expected f64", "expected a number"),
        ("expected usize", "expected a whole number >= 0"),
        ("expected u64", "expected a whole number >= 0"),
        ("expected u32", "expected a whole number >= 0"),
    ] {
        if let Some(head) = raw.strip_suffix(rust) {
            return format!("{head}{words}");
        }
    }
    raw.to_string()
}

/// `unknown key `x``, with a suggestion when a known key is close.
pub(super) fn unknown_key(key: &str, known: &[&str]) -> String {
    let best = known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .min()
        .filter(|(d, k)| *d <= 2.max(k.len() / 3) && *d < key.len().max(1));
    match best {
        Some((_, k)) => format!("unknown key `{key}` (did you mean `{k}`?)"),
        None if known.is_empty() => format!("unknown key `{key}`"),
        None => format!(
            "unknown key `{key}` (expected one of: {})",
            known.join(", ")
        ),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn scalar(v: &Value) -> String {
    serde_yaml::to_string(v)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| kind(v).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            unknown_key("endpoint", &["version", "endpoints"]),
            "unknown key `endpoint` (did you mean `endpoints`?)"
        );
        assert_eq!(
            unknown_key("zzz", &["a", "b"]),
            "unknown key `zzz` (expected one of: a, b)"
        );
        assert_eq!(edit_distance("routng", "routing"), 1);
    }
}
