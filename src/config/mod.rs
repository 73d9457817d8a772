//! Config loading: `${VAR}` expansion, YAML parsing (serde_yaml stays inside
//! this module), and validation that reports every error with its field path.
//!
//! Pipeline of [`parse`]: `expand::mark` (each `${VAR}` becomes a placeholder)
//! → YAML → `expand::expand_tree` (values go into the parsed strings, so no
//! value can add keys; unset variables stop here, each named with its field
//! path and line) → `deser` (each top-level section on its own; a bad
//! value is reported, cut out or replaced by a stand-in, and the section retried,
//! so every type error and unknown key is found in one pass) → `validate` (the
//! semantic rules, quiet about values that failed to deserialize). Errors are
//! listed in file order.
mod admin;
mod deser;
mod duration;
mod expand;
mod merge;
mod path;
mod plan;
mod schema;
mod summary;
mod validate;
mod window;

pub use duration::{format_duration, parse_duration, Dur};
pub use plan::StepKind;
pub use schema::*;
pub use summary::summary;
pub use window::{window_slots, MAX_WINDOW_SLOTS, MIN_INTERVAL};

/// Every event kind the controller emits; webhook `events` filters name these.
pub const EVENT_KINDS: &[&str] = &[
    "started",
    "step",
    "paused",
    "resumed",
    "promoted",
    "aborted",
    "retried",
    "inconclusive",
    "weight",
    "reloaded",
    "completed",
    "unhealthy",
];

use std::path::Path;

/// One problem in the config file, located by its field path
/// (`upstreams.canary.endpoints[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
}

impl ConfigError {
    /// Every error as `path: message` lines.
    pub fn messages(&self) -> Vec<String> {
        match self {
            ConfigError::Io { .. } => vec![self.to_string()],
            ConfigError::Invalid(errs) => errs.iter().map(|e| e.to_string()).collect(),
        }
    }
}

/// Reads, expands, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &|k| std::env::var(k).ok())
}

/// Parses config text with `env` as the variable source (tests pass their own).
/// On failure, every problem found is returned, in file order.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let marked = expand::mark(text, env);
    if !marked.errors.is_empty() {
        return Err(ConfigError::Invalid(marked.errors));
    }
    let mut out = path::Collector::default();
    let Some(mut root) = deser::parse_yaml(&marked.text, &mut out) else {
        let mut errors = marked.line_errors();
        errors.extend(out.into_sorted_errors());
        return Err(ConfigError::Invalid(errors));
    };
    expand::expand_tree(&mut root, &marked.refs).map_err(ConfigError::Invalid)?;
    let config = deser::deserialize(root, &mut out);
    if let Some(c) = &config {
        validate::validate(c, &mut out);
    }
    let errors = out.into_sorted_errors();
    match config {
        Some(c) if errors.is_empty() => Ok(c),
        _ => Err(ConfigError::Invalid(errors)),
    }
}

/// Canary weight percent (0..=100, 2 decimals) → basis points (0..=10000).
pub fn weight_to_bp(percent: f64) -> u32 {
    (percent * 100.0).round().clamp(0.0, 10000.0) as u32
}

pub fn bp_to_weight(bp: u32) -> f64 {
    bp as f64 / 100.0
}
