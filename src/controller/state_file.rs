//! The state file (SPEC §7.2): the rollout's position, written atomically on
//! every phase or weight change so an aborted canary stays at 0 after a restart.
use crate::Phase;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// The canary version this state belongs to (it names the rollout).
    pub version: String,
    pub phase: Phase,
    pub canary_weight: f64,
    /// Plan position; `None` in manual mode.
    pub step_index: Option<usize>,
    pub abort: bool,
    pub message: String,
    /// Held by an operator (`pause`, `PUT weight`) or an inconclusive gate.
    pub paused: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("corrupt state file {path}: {source}")]
    Corrupt {
        path: String,
        source: serde_json::Error,
    },
    #[error("cannot write state file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// `Ok(None)` when there is no file.
pub fn read(path: &Path) -> Result<Option<State>, StateError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.display().to_string(),
                source,
            })
        }
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|source| StateError::Corrupt {
            path: path.display().to_string(),
            source,
        })
}

/// Temp file in the same directory, fsync, rename over, fsync the directory:
/// a crash leaves either the old or the new state, never a torn one.
pub fn write(path: &Path, state: &State) -> Result<(), StateError> {
    let err = |source| StateError::Write {
        path: path.display().to_string(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let body = serde_json::to_vec_pretty(state).map_err(|e| err(e.into()))?;
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // Directory fsync makes the rename durable; not supported everywhere.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            version: "v2".into(),
            phase: Phase::Degraded,
            canary_weight: 0.0,
            step_index: Some(2),
            abort: true,
            message: "manual abort".into(),
            paused: false,
        }
    }

    #[test]
    fn round_trip_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        assert!(read(&p).unwrap().is_none());
        write(&p, &state()).unwrap();
        assert_eq!(read(&p).unwrap(), Some(state()));
        // overwrite leaves no temp files behind
        write(&p, &state()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        std::fs::write(&p, b"{\"version\": 3").unwrap();
        assert!(matches!(read(&p), Err(StateError::Corrupt { .. })));
    }
}
