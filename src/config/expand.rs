//! `${VAR}` and `${VAR:-default}` expansion, done inside parsed YAML values so
//! a variable supplies one value and never the file's structure: a value
//! holding a line break, `: `, `#` or a quote stays part of its string.
//!
//! How: [`mark`] swaps each reference in the raw text for a placeholder (private
//! use characters and an index, padded to the reference's length so YAML error
//! columns stay right) and notes whether it sat in a quoted scalar; the text is
//! parsed; [`expand_tree`] puts the values into the strings that hold
//! placeholders, naming the field path in any error.
//!
//! Rules:
//! - `${VAR}`: the variable's value; unset is an error naming the variable, the
//!   field and the line (set but empty gives an empty value).
//! - `${VAR:-default}`: `default`, taken literally, when VAR is unset or empty.
//! - `$${` is an escape for a literal `${`. Any other `$` is left alone.
//! - References in comments are not expanded (examples can mention variables).
//! - Types: an unquoted value made of references reads as YAML would read the
//!   result when it is a number, boolean or null (`canary_weight: ${W:-5}` is a
//!   number, `token: ${T:-}` is empty); anything else, and every quoted value,
//!   is a string.
use serde_yaml::{Mapping, Value};

use super::FieldError;

const START: char = '\u{E000}';
const END: char = '\u{E001}';
const PAD: char = '\u{E002}';

/// One `${...}` found in the text.
#[derive(Debug)]
pub(super) struct Ref {
    line: usize,
    col: usize,
    name: String,
    /// The value, or why there is none.
    value: Result<String, String>,
    quoted: bool,
}

/// The config text with placeholders, and what each placeholder stands for.
#[derive(Debug)]
pub(super) struct Marked {
    pub text: String,
    pub refs: Vec<Ref>,
    /// Problems found before parsing (a reserved character in the file).
    pub errors: Vec<FieldError>,
}

impl Marked {
    /// Every reference problem, located by line: for when the YAML did not parse.
    pub(super) fn line_errors(&self) -> Vec<FieldError> {
        let mut out = self.errors.clone();
        for r in &self.refs {
            if let Err(m) = &r.value {
                out.push(FieldError {
                    path: String::new(),
                    message: format!("line {}, column {}: {m}", r.line, r.col),
                });
            }
        }
        out
    }
}

/// Replaces references by placeholders, resolving each from `env`.
pub(super) fn mark(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Marked {
    let mut m = Marked {
        text: String::with_capacity(text.len()),
        refs: Vec::new(),
        errors: Vec::new(),
    };
    // Byte searches (memchr) keep a large file fast even in a debug build:
    // U+E000..U+E002 all start with 0xEE in UTF-8.
    let reserved = text.as_bytes().contains(&0xEE);
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if !line.as_bytes().contains(&b'$') {
            // Nothing to expand (the common line): no need to track quotes.
            m.text.push_str(line);
        } else {
            mark_line(line, n + 1, env, &mut m);
        }
        if !reserved {
            continue;
        }
        if let Some(col) = line.find([START, END, PAD]) {
            m.errors.push(FieldError {
                path: String::new(),
                message: format!(
                    "line {}, column {}: character U+E000..U+E002 is reserved",
                    n + 1,
                    line[..col].chars().count() + 1
                ),
            });
        }
    }
    m
}

fn mark_line(line: &str, line_no: usize, env: &dyn Fn(&str) -> Option<String>, m: &mut Marked) {
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    let mut copied = 0; // bytes of `line` already in m.text
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let prev = if i == 0 { b' ' } else { bytes[i - 1] };
        if b == b'$' && bytes.get(i + 1) == Some(&b'$') && bytes.get(i + 2) == Some(&b'{') {
            // `$${` → literal `${` (drop one `$`).
            m.text.push_str(&line[copied..i]);
            copied = i + 1;
            i += 3;
            continue;
        }
        if b == b'$' && bytes.get(i + 1) == Some(&b'{') {
            m.text.push_str(&line[copied..i]);
            let col = line[..i].chars().count() + 1;
            let (len, name, value) = match line[i + 2..].find('}') {
                Some(end) => {
                    let inner = &line[i + 2..i + 2 + end];
                    let (name, value) = resolve(inner, env);
                    (end + 3, name, value)
                }
                None => {
                    // The rest of the line (but its line break) is the bad reference.
                    let rest = line[i..].trim_end_matches(['\n', '\r']).len();
                    let msg = "unterminated `${` (write `$${` for a literal `${`)";
                    (rest, String::new(), Err(msg.to_string()))
                }
            };
            let width = line[i..i + len].chars().count();
            push_placeholder(&mut m.text, m.refs.len(), width);
            m.refs.push(Ref {
                line: line_no,
                col,
                name,
                value,
                quoted: quote.is_some(),
            });
            i += len;
            copied = i;
            continue;
        }
        match quote {
            Some(b'"') if b == b'\\' => i += 1, // skip the escaped char
            Some(q) if b == q => {
                if q == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                    i += 1; // '' inside single quotes
                } else {
                    quote = None;
                }
            }
            Some(_) => {}
            None => {
                if b == b'#' && prev.is_ascii_whitespace() {
                    break; // a comment: copied as written
                }
                // A quote opens a scalar only where a value can start, so
                // `don't` in a plain scalar is text.
                if (b == b'"' || b == b'\'')
                    && (prev.is_ascii_whitespace() || b":[{,-".contains(&prev))
                {
                    quote = Some(b);
                }
            }
        }
        i += 1;
    }
    m.text.push_str(&line[copied..]);
}

/// `NAME` or `NAME:-default` → (name, value or error message).
fn resolve(inner: &str, env: &dyn Fn(&str) -> Option<String>) -> (String, Result<String, String>) {
    let (name, default) = match inner.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (inner, None),
    };
    if !valid_name(name) {
        let msg = format!(
            "invalid variable reference `${{{inner}}}` (expected ${{NAME}} or ${{NAME:-default}})"
        );
        return (name.to_string(), Err(msg));
    }
    let value = match (
        env(name).filter(|v| default.is_none() || !v.is_empty()),
        default,
    ) {
        (Some(v), _) => Ok(v),
        (None, Some(d)) => Ok(d.to_string()),
        (None, None) => Err(format!(
            "environment variable {name} is not set (set it, or write ${{{name}:-default}} to give a default)"
        )),
    };
    (name.to_string(), value)
}

fn push_placeholder(out: &mut String, index: usize, width: usize) {
    let digits = index.to_string();
    out.push(START);
    out.push_str(&digits);
    out.push(END);
    for _ in digits.len() + 2..width {
        out.push(PAD);
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Puts the values into every string (key or value) holding placeholders.
/// Errors name the field path; a reference used through a YAML alias is
/// reported once.
pub(super) fn expand_tree(root: &mut Value, refs: &[Ref]) -> Result<(), Vec<FieldError>> {
    let mut w = Walk {
        refs,
        seen: vec![false; refs.len()],
        errors: Vec::new(),
    };
    w.value(root, "");
    // A reference outside any scalar (in a tag or an anchor name, say).
    for (i, r) in refs.iter().enumerate() {
        if !w.seen[i] {
            let m = match &r.value {
                Err(m) => m.clone(),
                Ok(_) => format!("${{{}}} is not inside a YAML value", r.name),
            };
            w.errors.push((i, line_error("", r, &m)));
        }
    }
    if w.errors.is_empty() {
        return Ok(());
    }
    w.errors.sort_by_key(|(i, _)| *i);
    Err(w.errors.into_iter().map(|(_, e)| e).collect())
}

fn line_error(path: &str, r: &Ref, m: &str) -> FieldError {
    FieldError {
        path: path.to_string(),
        message: format!("line {}, column {}: {m}", r.line, r.col),
    }
}

struct Walk<'a> {
    refs: &'a [Ref],
    seen: Vec<bool>,
    errors: Vec<(usize, FieldError)>,
}

impl Walk<'_> {
    fn value(&mut self, v: &mut Value, path: &str) {
        match v {
            Value::String(s) if s.contains(START) => {
                if let Some(new) = self.string(s, path, true) {
                    *v = new;
                }
            }
            Value::Sequence(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.value(item, &format!("{path}[{i}]"));
                }
            }
            Value::Mapping(map) => self.mapping(map, path),
            Value::Tagged(t) => self.value(&mut t.value, path),
            _ => {}
        }
    }

    fn mapping(&mut self, map: &mut Mapping, path: &str) {
        let keyed = map
            .keys()
            .any(|k| k.as_str().is_some_and(|s| s.contains(START)));
        if keyed {
            // Keys with references: rebuild the mapping with the expanded keys.
            let old = std::mem::take(map);
            for (mut k, v) in old {
                if let Value::String(s) = &k {
                    if s.contains(START) {
                        if let Some(Value::String(new)) = self.string(s, path, false) {
                            k = Value::String(new);
                        }
                    }
                }
                map.insert(k, v);
            }
        }
        for (k, v) in map.iter_mut() {
            let key = k.as_str().map(str::to_string).unwrap_or_default();
            let p = if path.is_empty() {
                key
            } else {
                format!("{path}.{key}")
            };
            self.value(v, &p);
        }
    }

    /// The expanded scalar, typed as described in the module docs when
    /// `typed`; `None` when a reference failed (reported).
    fn string(&mut self, s: &str, path: &str, typed: bool) -> Option<Value> {
        let mut out = String::with_capacity(s.len());
        let mut plain = true;
        let mut ok = true;
        let mut rest = s;
        while let Some(start) = rest.find(START) {
            out.push_str(&rest[..start]);
            let after = &rest[start + START.len_utf8()..];
            let Some(end) = after.find(END) else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let found = after[..end]
                .parse::<usize>()
                .ok()
                .and_then(|i| self.refs.get(i).map(|r| (i, r)));
            let Some((i, r)) = found else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            match &r.value {
                Ok(v) => out.push_str(v),
                Err(m) => {
                    ok = false;
                    if !self.seen[i] {
                        self.errors.push((i, line_error(path, r, m)));
                    }
                }
            }
            self.seen[i] = true;
            plain &= !r.quoted;
            rest = after[end + END.len_utf8()..].trim_start_matches(PAD);
        }
        out.push_str(rest);
        if !ok {
            return None;
        }
        Some(if typed && plain {
            plain_scalar(out)
        } else {
            Value::String(out)
        })
    }
}

/// What YAML would make of `s` as an unquoted scalar, limited to null, booleans
/// and numbers: nothing else can come out of a value, whatever it holds.
fn plain_scalar(s: String) -> Value {
    let t = s.trim_matches([' ', '\t']);
    if t.is_empty() {
        return Value::Null;
    }
    let scalar_chars = t
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._+-~".contains(&b));
    if scalar_chars {
        if let Ok(v @ (Value::Null | Value::Bool(_) | Value::Number(_))) =
            serde_yaml::from_str::<Value>(t)
        {
            return v;
        }
    }
    Value::String(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "HOST" => Some("10.0.0.1".into()),
            "EMPTY" => Some(String::new()),
            "NUM" => Some("12.5".into()),
            "EVIL" => Some("x\ncanary_weight: 100".into()),
            _ => None,
        }
    }

    /// Marks, parses and expands `text`.
    fn run(text: &str) -> Result<Value, Vec<String>> {
        let m = mark(text, &env);
        let mut v: Value = serde_yaml::from_str(&m.text).map_err(|e| vec![e.to_string()])?;
        expand_tree(&mut v, &m.refs)
            .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        Ok(v)
    }

    fn get(text: &str, key: &str) -> Value {
        run(text).expect("expands")[key].clone()
    }

    #[test]
    fn expands_values_and_defaults() {
        assert_eq!(get("a: ${HOST}:80\n", "a"), "10.0.0.1:80");
        assert_eq!(get("a: ${NOPE:-x y}", "a"), "x y");
        assert_eq!(get("a: ${EMPTY:-d}", "a"), "d");
        assert_eq!(get("a: '${EMPTY}'", "a"), "");
        assert_eq!(get("a: ${NOPE:-}", "a"), Value::Null);
        assert_eq!(get("a: ${NUM}", "a"), Value::from(12.5));
        assert_eq!(get("a: \"${NUM}\"", "a"), "12.5");
        assert_eq!(get("a: [${HOST}, '${NUM}']", "a")[1], "12.5");
        assert_eq!(get("a: { b: ${NOPE:-7} }", "a")["b"], Value::from(7));
    }

    #[test]
    fn a_value_never_becomes_structure() {
        for text in [
            "a: ${EVIL}\n",
            "a: \"${EVIL}\"\n",
            "a: '${EVIL}'\n",
            "a: [${EVIL}]\n",
        ] {
            let v = run(text).expect("expands");
            let m = v.as_mapping().expect("mapping");
            assert_eq!(m.len(), 1, "{text}: {v:?}");
            let a = if v["a"].is_sequence() {
                &v["a"][0]
            } else {
                &v["a"]
            };
            assert_eq!(a, "x\ncanary_weight: 100", "{text}");
        }
    }

    #[test]
    fn escape_and_comments_are_left_alone() {
        assert_eq!(get("a: $${HOST} $x $$y", "a"), "${HOST} $x $$y");
        assert_eq!(get("# ${NOPE}\na: 1 # ${NOPE}\n", "a"), Value::from(1));
        assert_eq!(get("a: \"x # ${HOST}\"", "a"), "x # 10.0.0.1");
        assert_eq!(get("a: don't ${HOST} # ${NOPE}", "a"), "don't 10.0.0.1");
        assert_eq!(get("a: b#${HOST}", "a"), "b#10.0.0.1");
    }

    #[test]
    fn errors_name_the_field_and_line() {
        let errs = run("a: 1\nb: ${MISSING}\nc: [x, ${ALSO}x, '${BAD NAME}']\nd: ${OPEN")
            .expect_err("unset");
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs[0].starts_with("b: line 2, column 4: environment variable MISSING is not set"));
        assert!(errs[1].starts_with("c[1]: line 3, column 8: environment variable ALSO"));
        assert!(errs[2]
            .starts_with("c[2]: line 3, column 19: invalid variable reference `${BAD NAME}`"));
        assert!(
            errs[3].starts_with("d: line 4, column 4: unterminated"),
            "{}",
            errs[3]
        );
    }

    #[test]
    fn placeholders_keep_yaml_error_columns() {
        let m = mark("a: ${HOST} b: c\n", &env);
        let e = serde_yaml::from_str::<Value>(&m.text).expect_err("bad yaml");
        let raw = serde_yaml::from_str::<Value>("a: ${HOST} b: c\n").expect_err("bad yaml");
        assert_eq!(
            e.location().map(|l| l.column()),
            raw.location().map(|l| l.column())
        );
        assert!(mark("a: \u{E000}", &env).errors[0]
            .message
            .contains("reserved"));
    }
}
