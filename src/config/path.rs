//! Field paths (`upstreams.canary.endpoints[0]`) and the error collector shared
//! by deserialization and the semantic checks.
use std::collections::HashMap;

use serde_yaml::{Mapping, Value};

use super::FieldError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    /// serde_path_to_error's path, cut at the first segment it could not name.
    pub(super) fn from_serde(path: &serde_path_to_error::Path) -> Vec<Seg> {
        use serde_path_to_error::Segment;
        let mut out = Vec::new();
        for s in path.iter() {
            match s {
                Segment::Seq { index } => out.push(Seg::Index(*index)),
                Segment::Map { key } => out.push(Seg::Key(key.clone())),
                Segment::Enum { .. } => {}
                Segment::Unknown => break,
            }
        }
        out
    }

    pub(super) fn render(section: &str, segs: &[Seg]) -> String {
        let mut s = section.to_string();
        for seg in segs {
            match seg {
                Seg::Key(k) => {
                    s.push('.');
                    s.push_str(k);
                }
                Seg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }
}

/// True when `path` is `base` or lies inside it (`a.b` is inside `a`, `a[0]` too;
/// `ab` is not).
pub(super) fn within(path: &str, base: &str) -> bool {
    base.is_empty()
        || path == base
        || (path.starts_with(base) && matches!(path.as_bytes()[base.len()], b'.' | b'['))
}

/// Collects errors. Paths whose values failed to deserialize are "tainted":
/// they hold stand-ins, so semantic checks on or around them are dropped.
#[derive(Debug, Default)]
pub(super) struct Collector {
    pub errors: Vec<FieldError>,
    tainted: Vec<String>,
    /// Path → position of the value in the document (pre-order), to sort errors.
    order: HashMap<String, usize>,
}

impl Collector {
    /// A deserialization error: always reported, and its path is tainted.
    pub(super) fn error(&mut self, path: String, message: String) {
        if !path.is_empty() {
            self.taint(path.clone());
        }
        self.errors.push(FieldError { path, message });
    }

    /// Records where each value sits in the file, so errors can be listed in file order.
    pub(super) fn index_document(&mut self, root: &Mapping) {
        fn walk(prefix: &str, v: &Value, order: &mut HashMap<String, usize>) {
            match v {
                Value::Mapping(m) => walk_map(prefix, m, order),
                Value::Sequence(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let p = format!("{prefix}[{i}]");
                        order.insert(p.clone(), order.len() + 1);
                        walk(&p, item, order);
                    }
                }
                _ => {}
            }
        }
        fn walk_map(prefix: &str, m: &Mapping, order: &mut HashMap<String, usize>) {
            for (k, v) in m {
                let Some(k) = k.as_str() else { continue };
                let p = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                order.insert(p.clone(), order.len() + 1);
                walk(&p, v, order);
            }
        }
        walk_map("", root, &mut self.order);
    }

    /// The errors in file order: by the position of the path, or of its nearest
    /// ancestor present in the file (a missing key sorts right after its parent).
    pub(super) fn into_sorted_errors(self) -> Vec<FieldError> {
        let order = self.order;
        let rank = |path: &str| -> usize {
            let mut p = path;
            loop {
                if let Some(r) = order.get(p) {
                    return *r;
                }
                match p.rfind(['.', '[']) {
                    Some(i) => p = &p[..i],
                    None => return 0,
                }
            }
        };
        let mut errors = self.errors;
        errors.sort_by_key(|e| rank(&e.path));
        errors
    }

    pub(super) fn taint(&mut self, path: String) {
        self.tainted.push(path);
    }

    pub(super) fn is_reported(&self, path: &str) -> bool {
        self.tainted.iter().any(|t| t == path)
    }

    /// No tainted value at, inside or around `path`.
    pub(super) fn clean(&self, path: &str) -> bool {
        !self
            .tainted
            .iter()
            .any(|t| within(path, t) || within(t, path))
    }

    /// A semantic error, dropped when it concerns a tainted value.
    pub(super) fn check(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        if self.clean(&path) {
            self.errors.push(FieldError {
                path,
                message: message.into(),
            });
        }
    }

    /// A semantic error that relates several fields: dropped if any is tainted.
    pub(super) fn check_all(
        &mut self,
        involved: &[&str],
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        if involved.iter().all(|p| self.clean(p)) {
            self.check(path, message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_respects_segment_boundaries() {
        assert!(within("a.b", "a"));
        assert!(within("a[0].c", "a"));
        assert!(within("a", "a"));
        assert!(!within("ab", "a"));
        assert!(!within("a", "a.b"));
    }
}
