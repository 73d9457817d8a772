//! The module layering, checked on the source: a module may use only modules
//! of lower layers (and items of the crate root, like `Role` and `Phase`).
//! That rules out import circles and any import of the wiring (`app`) from
//! below it. Change `LAYERS` only together with the README's Architecture.
use std::collections::BTreeSet;
use std::path::Path;

/// Lowest first; modules on one line are peers and must not use each other.
const LAYERS: &[&[&str]] = &[
    &["certs", "log_limit"],
    &["config"],
    &["telemetry"],
    &["judge", "routing"],
    &["upstream"],
    &["snapshot"],
    &["proxy"],
    &["controller"],
    &["admin"],
    &["app"],
    &["demo", "simulate"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every `crate::name` a file mentions outside comments.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    // Comments out, lines joined: a `use crate::{...}` group may span lines.
    let code: Vec<&str> = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect();
    let code = code.join(" ");
    {
        let mut rest = code.as_str();
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            // `crate::{a::X, b}` names several (on one line, as rustfmt writes short ones).
            let group = match rest.strip_prefix('{') {
                Some(g) => g.split('}').next().unwrap_or(""),
                None => rest,
            };
            for item in group.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name.starts_with(|c: char| c.is_ascii_lowercase()) {
                    out.insert(name);
                }
                if !rest.starts_with('{') {
                    break;
                }
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_only_use_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(own) = layer_of(&top) else {
            violations.push(format!("{}: module `{top}` has no layer", rel.display()));
            continue;
        };
        for used in crate_refs(&std::fs::read_to_string(&f).unwrap()) {
            if used == top {
                continue;
            }
            match layer_of(&used) {
                Some(l) if l < own => {}
                Some(_) => violations.push(format!(
                    "{}: `{top}` uses `crate::{used}`, which is not below it",
                    rel.display()
                )),
                None => violations.push(format!(
                    "{}: uses `crate::{used}`, a module with no layer",
                    rel.display()
                )),
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
