//! `${VAR}` and `${VAR:-default}` expansion, done on the raw text before parsing.
use super::FieldError;

pub fn expand_env(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<FieldError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            errors.push(FieldError {
                path: String::new(),
                message: format!(
                    "unterminated ${{ at byte {}",
                    text.len() - rest.len() + start
                ),
            });
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (env(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => errors.push(FieldError {
                path: String::new(),
                message: format!("environment variable {name} is not set (write ${{{name}:-default}} for a default)"),
            }),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
