//! `${VAR}` and `${VAR:-default}` expansion, done on the raw text before YAML
//! parsing (as docker compose does), so a variable can supply any scalar:
//! `canary_weight: ${WEIGHT:-0}` stays a number.
//!
//! Rules:
//! - `${VAR}`: the variable's value; unset is an error naming the variable and
//!   its line (set but empty gives an empty string).
//! - `${VAR:-default}`: `default` when VAR is unset or empty (shell semantics).
//! - `$${` is an escape for a literal `${`. Any other `$` is left alone.
//! - Comments are not expanded: a `${VAR}` after a `#` that starts a comment is
//!   copied as written, so examples can mention variables in comments.
//! - The value is inserted verbatim: quote the reference (`token: "${TOKEN}"`)
//!   when the value may contain YAML-special characters such as `: ` or ` #`.
use super::FieldError;

pub fn expand_env(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<FieldError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let (code, comment) = line.split_at(comment_start(line));
        expand_line(code, n + 1, env, &mut out, &mut errors);
        out.push_str(comment);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn expand_line(
    code: &str,
    line_no: usize,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
    errors: &mut Vec<FieldError>,
) {
    let err = |errors: &mut Vec<FieldError>, col: usize, message: String| {
        errors.push(FieldError {
            path: String::new(),
            message: format!("line {line_no}, column {col}: {message}"),
        })
    };
    let mut rest = code;
    while let Some(start) = rest.find("${") {
        let col = code.len() - rest.len() + start + 1;
        if start > 0 && rest.as_bytes()[start - 1] == b'$' {
            // `$${` → literal `${` (drop one `$`).
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            err(
                errors,
                col,
                "unterminated `${` (write `$${` for a literal `${`)".into(),
            );
            out.push_str(&rest[start..]);
            return;
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if !valid_name(name) {
            err(
                errors,
                col,
                format!("invalid variable reference `${{{inner}}}` (expected ${{NAME}} or ${{NAME:-default}})"),
            );
        } else {
            match (env(name).filter(|v| default.is_none() || !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => err(
                    errors,
                    col,
                    format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} to give a default)"
                    ),
                ),
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Byte offset where this line's comment starts (the line length if none): a `#`
/// at the start or after whitespace, outside a quoted scalar. A quote only opens
/// a scalar where a YAML value can start, so `don't` in a plain scalar is text.
fn comment_start(line: &str) -> usize {
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let prev = if i == 0 { b' ' } else { bytes[i - 1] };
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
                    return i;
                }
                if (b == b'"' || b == b'\'')
                    && (prev.is_ascii_whitespace() || b":[{,-".contains(&prev))
                {
                    quote = Some(b);
                }
            }
        }
        i += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "HOST" => Some("10.0.0.1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn ok(s: &str) -> String {
        expand_env(s, &env).unwrap()
    }

    #[test]
    fn expands_values_and_defaults() {
        assert_eq!(ok("a: ${HOST}:80\n"), "a: 10.0.0.1:80\n");
        assert_eq!(ok("a: ${NOPE:-x y}"), "a: x y");
        assert_eq!(ok("a: ${EMPTY:-d}"), "a: d");
        assert_eq!(ok("a: '${EMPTY}'"), "a: ''");
        assert_eq!(ok("a: ${NOPE:-}"), "a: ");
    }

    #[test]
    fn escape_and_comments_are_left_alone() {
        assert_eq!(ok("a: $${HOST} $x $$y"), "a: ${HOST} $x $$y");
        assert_eq!(
            ok("# ${NOPE}\na: 1 # ${NOPE}\n"),
            "# ${NOPE}\na: 1 # ${NOPE}\n"
        );
        assert_eq!(ok("a: \"x # ${HOST}\""), "a: \"x # 10.0.0.1\"");
        assert_eq!(
            ok("a: don't ${HOST} # ${NOPE}"),
            "a: don't 10.0.0.1 # ${NOPE}"
        );
        assert_eq!(ok("a: b#${HOST}"), "a: b#10.0.0.1");
    }

    #[test]
    fn unset_variables_are_errors_with_their_line() {
        let errs = expand_env(
            "a: 1\nb: ${MISSING}\nc: ${ALSO}x ${BAD NAME}\nd: ${OPEN",
            &env,
        )
        .unwrap_err();
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert!(msgs[0].starts_with("line 2, column 4: environment variable MISSING is not set"));
        assert!(msgs[1].starts_with("line 3, column 4: environment variable ALSO"));
        assert!(msgs[2].contains("invalid variable reference `${BAD NAME}`"));
        assert!(msgs[3].starts_with("line 4, column 4: unterminated"));
    }
}
