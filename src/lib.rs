//! canary-proxy: an L7 reverse proxy that splits traffic between a `stable`
//! and a `canary` version, records every outcome in its hot path, and rolls the
//! canary back by itself when the live evidence says it is worse.
//!
//! Data goes round one loop with a single writer: the controller builds a
//! snapshot from the config and its rollout state and publishes it (one
//! `ArcSwap`); requests read it and record outcomes in telemetry (atomics);
//! the controller reads telemetry each tick, asks the judge, and publishes the
//! next snapshot. Imports go one way, lowest first: certs, config, telemetry,
//! judge and routing, upstream, snapshot, proxy, controller, admin, app, then
//! demo and simulate (checked by `tests/it/layers.rs`).

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

// The public surface is what the binary, the tests, the fuzz targets, the
// benches and the example use. The data plane (`proxy`, `upstream`), the judge
// and the controller's insides are private: `App` and the admin API are how
// anything drives them.
pub mod admin;
pub mod app;
pub mod certs;
pub mod config;
mod controller;
pub mod demo;
mod judge;
pub mod log_limit;
mod proxy;
pub mod routing;
pub mod simulate;
pub mod snapshot;
pub mod telemetry;
mod upstream;

pub use controller::{CallError, Command, ControllerHandle};

use serde::{Deserialize, Serialize};

/// Which of the two versions a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Stable,
    Canary,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Stable, Role::Canary];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stable => "stable",
            Role::Canary => "canary",
        }
    }

    /// Index into per-role arrays (`[stable, canary]`).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a rollout stands: shown in the status, the `canary_phase` gauge and
/// the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Walking the plan.
    Progressing,
    /// The plan waits for an operator (`pause`, `PUT weight`, `pause: {}`, an
    /// inconclusive gate).
    Paused,
    /// Plan finished, or manual mode with no abort.
    Healthy,
    /// Aborted: weight 0 until `retry`.
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
    /// Index into `ALL` (the `canary_phase` gauge).
    pub fn index(self) -> u8 {
        self as u8
    }
}
