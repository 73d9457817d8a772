//! The state file: the rollout's position, written atomically on every phase
//! or weight change so an aborted canary stays at 0 after a restart. A file
//! that does not parse, or describes a state the controller never writes, is
//! corrupt: reported and ignored.
use crate::Phase;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct State {
    /// The canary version this state belongs to (it names the rollout).
    pub version: String,
    pub phase: Phase,
    pub canary_weight: f64,
    /// Plan position, 0-based; `None` in manual mode.
    pub step_index: Option<usize>,
    pub abort: bool,
    pub message: String,
    /// `true` exactly when `phase` is `Paused`.
    pub paused: bool,
}

/// A state the controller never writes: the file is treated as corrupt.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum Inconsistent {
    #[error("canary_weight {0} is not a percentage in 0..100")]
    Weight(f64),
    #[error("abort is {abort} but phase is {phase:?}")]
    AbortPhase { abort: bool, phase: Phase },
    #[error("aborted with canary_weight {0} (an abort is at 0)")]
    AbortedWithWeight(f64),
    #[error("paused is {paused} but phase is {phase:?}")]
    PausedPhase { paused: bool, phase: Phase },
    #[error("phase {0:?} without a plan position (step_index is null)")]
    NoPosition(Phase),
}

impl State {
    /// Whether the controller could have written this state.
    pub(crate) fn check(&self) -> Result<(), Inconsistent> {
        let w = self.canary_weight;
        if !(w.is_finite() && (0.0..=100.0).contains(&w)) {
            return Err(Inconsistent::Weight(w));
        }
        if self.abort != (self.phase == Phase::Degraded) {
            return Err(Inconsistent::AbortPhase {
                abort: self.abort,
                phase: self.phase,
            });
        }
        if self.abort && w != 0.0 {
            return Err(Inconsistent::AbortedWithWeight(w));
        }
        // Files from before `pause: {}` counted as held say `Paused` without `paused`.
        if self.paused && self.phase != Phase::Paused {
            return Err(Inconsistent::PausedPhase {
                paused: self.paused,
                phase: self.phase,
            });
        }
        if self.step_index.is_none() && matches!(self.phase, Phase::Paused | Phase::Progressing) {
            return Err(Inconsistent::NoPosition(self.phase));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
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
    #[error("corrupt state file {path}: {source}")]
    Inconsistent { path: String, source: Inconsistent },
    #[error("cannot write state file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// `Ok(None)` when there is no file; an error when it does not parse or
/// fails [`State::check`].
pub(crate) fn read(path: &Path) -> Result<Option<State>, StateError> {
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
    let state: State = serde_json::from_slice(&text).map_err(|source| StateError::Corrupt {
        path: path.display().to_string(),
        source,
    })?;
    state.check().map_err(|source| StateError::Inconsistent {
        path: path.display().to_string(),
        source,
    })?;
    Ok(Some(state))
}

/// Temp file in the same directory, fsync, rename over, fsync the directory:
/// a crash leaves either the old or the new state, never a torn one. The temp
/// name is random and the file is created exclusively (`O_CREAT|O_EXCL|
/// O_NOFOLLOW`, mode 0600), so a link planted at a guessable name is never
/// followed: the proxy may run with rights over files its directory's other
/// writers should not reach.
pub(crate) fn write(path: &Path, state: &State) -> Result<(), StateError> {
    write_with(path, state, &mut || {
        format!("{:016x}", rand::random::<u64>())
    })
}

/// Tries this many temp names before giving up (a collision means another
/// writer, or someone planting files).
const TEMP_ATTEMPTS: usize = 16;

/// [`write`] with the temp-name suffixes drawn from `suffix` (tests plant files
/// at the names it will try).
fn write_with(
    path: &Path,
    state: &State,
    suffix: &mut dyn FnMut() -> String,
) -> Result<(), StateError> {
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
    let body = serde_json::to_vec_pretty(state).map_err(|e| err(e.into()))?;
    let (tmp, mut f) = create_temp(&dir, &name, suffix).map_err(err)?;
    let result = (|| {
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
        // Ours: created exclusively above, so this never removes a planted file.
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Creates `.<name>.<suffix>.tmp` in `dir`, never opening an existing file or
/// following a link; an occupied name is skipped for the next suffix.
fn create_temp(
    dir: &Path,
    name: &str,
    suffix: &mut dyn FnMut() -> String,
) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let mut last = None;
    for _ in 0..TEMP_ATTEMPTS {
        let tmp = dir.join(format!(".{name}.{}.tmp", suffix()));
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        match o.open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if name_taken(&e) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temp name tried")))
}

/// EEXIST, or ELOOP for a symlink where O_NOFOLLOW is checked first.
fn name_taken(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        return true;
    }
    e.kind() == std::io::ErrorKind::AlreadyExists
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

    /// A symlink planted at the old predictable temp name (`.state.json.tmp.<pid>`)
    /// and at the names the writer will try made it overwrite the link's target
    /// (a root-owned file). Links are skipped now and their targets untouched.
    #[cfg(unix)]
    #[test]
    fn planted_symlinks_at_temp_names_are_never_followed() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "root-owned\n").unwrap();
        let planted = [
            format!(".state.json.tmp.{}", std::process::id()),
            ".state.json.a.tmp".to_string(),
            ".state.json.b.tmp".to_string(),
            ".state.json.c.tmp".to_string(),
        ];
        for name in &planted {
            symlink(&victim, dir.path().join(name)).unwrap();
        }
        // A dangling link too: O_CREAT alone would create its target.
        let dangling_target = dir.path().join("created-through-link");
        symlink(&dangling_target, dir.path().join(".state.json.d.tmp")).unwrap();

        let mut tries = ["a", "b", "c", "d", "e"].into_iter().map(String::from);
        write_with(&p, &state(), &mut || tries.next().unwrap_or_default()).unwrap();
        assert_eq!(read(&p).unwrap(), Some(state()));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root-owned\n");
        assert!(!dangling_target.exists());
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        for name in &planted {
            let link = std::fs::symlink_metadata(dir.path().join(name)).unwrap();
            assert!(link.file_type().is_symlink(), "{name} was replaced");
        }

        // The real writer (random names) with the old predictable name planted.
        write(&p, &state()).unwrap();
        assert_eq!(read(&p).unwrap(), Some(state()));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root-owned\n");

        // Every name taken: an error, the links and their target intact.
        let mut same = || "a".to_string();
        let e = write_with(&p, &state(), &mut same).unwrap_err();
        assert!(matches!(e, StateError::Write { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root-owned\n");
        assert!(std::fs::symlink_metadata(dir.path().join(".state.json.a.tmp")).is_ok());
    }

    #[test]
    fn corrupt_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        std::fs::write(&p, b"{\"version\": 3").unwrap();
        assert!(matches!(read(&p), Err(StateError::Corrupt { .. })));
    }

    #[test]
    fn states_the_controller_never_writes_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        let ok = State {
            version: "v2".into(),
            phase: Phase::Paused,
            canary_weight: 20.0,
            step_index: Some(1),
            abort: false,
            message: String::new(),
            paused: true,
        };
        assert_eq!(ok.check(), Ok(()));
        assert_eq!(state().check(), Ok(()));
        // An old file at `pause: {}`: Paused without `paused`.
        let old = State {
            paused: false,
            ..ok.clone()
        };
        assert_eq!(old.check(), Ok(()));
        let nan = State {
            canary_weight: f64::NAN,
            ..ok.clone()
        };
        assert!(nan.check().is_err());
        let bad = [
            State {
                phase: Phase::Degraded,
                ..ok.clone()
            },
            State {
                abort: true,
                ..ok.clone()
            },
            State {
                canary_weight: 5.0,
                ..state()
            },
            State {
                canary_weight: 101.0,
                ..ok.clone()
            },
            State {
                phase: Phase::Healthy,
                ..ok.clone()
            },
            State {
                step_index: None,
                ..ok.clone()
            },
            State {
                step_index: None,
                paused: false,
                phase: Phase::Progressing,
                ..ok.clone()
            },
        ];
        for b in bad {
            assert!(b.check().is_err(), "{b:?}");
            write(&p, &b).unwrap();
            let e = read(&p).map(|_| ()).unwrap_err();
            assert!(matches!(e, StateError::Inconsistent { .. }), "{e}");
            assert!(e.to_string().starts_with("corrupt state file"), "{e}");
        }
    }
}
