//! The controller: the single writer of the snapshot, the phase and the state
//! file. Plan steps, the guard, admin commands and reloads all go through its
//! one task, which orders and persists them. (Filled in by the controller work.)
use crate::app::Shared;
use crate::config::Config;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    Progressing,
    Paused,
    Healthy,
    Degraded,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::Progressing,
        Phase::Paused,
        Phase::Healthy,
        Phase::Degraded,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "Progressing",
            Phase::Paused => "Paused",
            Phase::Healthy => "Healthy",
            Phase::Degraded => "Degraded",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Command {
    SetWeight(f64),
    Promote { full: bool },
    Abort,
    Retry,
    Pause,
    Resume,
    Reload,
}

/// An admin-visible failure: HTTP status and message (`{"error": message}`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

type Request = (
    Command,
    oneshot::Sender<Result<serde_json::Value, ApiError>>,
);

#[derive(Clone)]
pub struct ControllerHandle {
    tx: mpsc::Sender<Request>,
}

impl ControllerHandle {
    pub async fn call(&self, cmd: Command) -> Result<serde_json::Value, ApiError> {
        let (tx, rx) = oneshot::channel();
        let gone = || ApiError {
            status: 503,
            message: "controller stopped".into(),
        };
        self.tx.send((cmd, tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

/// Starts the controller task.
pub fn spawn(
    _config: Config,
    _config_path: Option<PathBuf>,
    _shared: Arc<Shared>,
    _shutdown: watch::Receiver<bool>,
) -> ControllerHandle {
    let (tx, mut rx) = mpsc::channel::<Request>(64);
    tokio::spawn(async move {
        while let Some((_cmd, reply)) = rx.recv().await {
            let _ = reply.send(Err(ApiError {
                status: 501,
                message: "not implemented".into(),
            }));
        }
    });
    ControllerHandle { tx }
}
