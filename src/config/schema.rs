//! The config file's shape. Every struct denies unknown keys so a typo
//! is an error, and every field but `listen` and `upstreams` has a default.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::duration::Dur;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Plain HTTP/1.1 + h2c listener, e.g. `0.0.0.0:8080`.
    pub listen: String,
    /// Runtime worker threads; 0 = one per core.
    #[serde(default)]
    pub workers: usize,
    #[serde(default)]
    pub tls: Option<TlsListener>,
    #[serde(default)]
    pub admin: Admin,
    pub upstreams: Upstreams,
    #[serde(default)]
    pub routing: Routing,
    #[serde(default)]
    pub analysis: Analysis,
    #[serde(default)]
    pub rollout: Option<Rollout>,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub retry: Retry,
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    #[serde(default)]
    pub notify: Notify,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsListener {
    pub listen: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    pub listen: String,
    /// Empty means no token (only allowed on a loopback listener). An empty YAML
    /// value (`token: ${CANARY_ADMIN_TOKEN:-}`) is an empty token.
    #[serde(deserialize_with = "super::duration::null_as_empty")]
    pub token: String,
    /// Names the admin API may be addressed by (`Host`), besides IP addresses
    /// and `localhost`: a browser page that rebinds its own name is refused.
    pub hosts: Vec<String>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: "127.0.0.1:9901".into(),
            token: String::new(),
            hosts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Upstreams {
    pub stable: Upstream,
    pub canary: Upstream,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Value of the `version` metric label; defaults to the role name.
    #[serde(default)]
    pub version: Option<String>,
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// Extra CA bundle (PEM) trusted for https endpoints, on top of the webpki roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Connections in use per endpoint at most (HAProxy `maxconn`); 0 = unlimited.
    /// A request that would need one more gets a 503.
    #[serde(default)]
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Dur,
    pub timeout: Dur,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: "/health".into(),
            interval: Dur::secs(5),
            timeout: Dur::secs(1),
            unhealthy_after: 3,
            healthy_after: 2,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Routing {
    /// Starting canary weight in percent, 0..=100 with up to 2 decimals.
    pub canary_weight: f64,
    pub sticky: Option<Sticky>,
    #[serde(rename = "override")]
    pub override_: Option<Override>,
    pub response_header: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Sticky {
    pub cookie: Option<String>,
    pub header: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Override {
    pub header: Option<String>,
    pub header_value: Option<String>,
    pub cookie: Option<String>,
}

/// The always-on guard's settings. Limits are `Option`: `null`
/// disables a limit; a missing key keeps its default.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Analysis {
    pub interval: Dur,
    pub window: Dur,
    pub min_requests: u64,
    pub confidence: f64,
    pub failure_limit: u32,
    /// `"5xx"`, `"4xx"`, or an exact code like `"429"` (a bare `429` is accepted too).
    #[serde(deserialize_with = "super::duration::status_list")]
    pub error_statuses: Vec<String>,
    pub error_rate: ErrorRateLimits,
    pub latency: LatencyLimits,
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            interval: Dur::millis(250),
            window: Dur::secs(60),
            min_requests: 20,
            confidence: 0.999,
            failure_limit: 0,
            error_statuses: vec!["5xx".into()],
            error_rate: ErrorRateLimits::default(),
            latency: LatencyLimits::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorRateLimits {
    /// Percent.
    pub max: Option<f64>,
    /// Percentage points above stable.
    pub max_increase: Option<f64>,
}

impl Default for ErrorRateLimits {
    fn default() -> Self {
        ErrorRateLimits {
            max: Some(5.0),
            max_increase: Some(2.0),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyLimits {
    pub max_p99: Option<Dur>,
    pub max_p99_ratio: Option<f64>,
}

impl Default for LatencyLimits {
    fn default() -> Self {
        LatencyLimits {
            max_p99: None,
            max_p99_ratio: Some(2.0),
        }
    }
}

/// A partial `analysis` block: per-step overrides (deep-merged over the global
/// block) and, on a gate step, the gate's own keys.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisPatch {
    pub interval: Option<Dur>,
    pub window: Option<Dur>,
    pub min_requests: Option<u64>,
    pub confidence: Option<f64>,
    pub failure_limit: Option<u32>,
    #[serde(deserialize_with = "super::duration::status_list_opt")]
    pub error_statuses: Option<Vec<String>>,
    pub error_rate: Option<ErrorRatePatch>,
    pub latency: Option<LatencyPatch>,
    /// Gate only: how long the gate judges at least.
    pub duration: Option<Dur>,
    /// Gate only: give up (phase Paused, event `inconclusive`) after this; default 5 × duration.
    pub timeout: Option<Dur>,
}

/// `Some(None)` (an explicit `null`) disables the limit for the step.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorRatePatch {
    #[serde(deserialize_with = "super::duration::explicit_null")]
    pub max: Option<Option<f64>>,
    #[serde(deserialize_with = "super::duration::explicit_null")]
    pub max_increase: Option<Option<f64>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyPatch {
    #[serde(deserialize_with = "super::duration::explicit_null")]
    pub max_p99: Option<Option<Dur>>,
    #[serde(deserialize_with = "super::duration::explicit_null")]
    pub max_p99_ratio: Option<Option<f64>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    pub steps: Vec<Step>,
}

/// One plan step: exactly one of `set_weight` (optionally with `analysis`
/// overrides), `pause`, or `analysis` alone (a gate). Checked in validation.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Step {
    pub set_weight: Option<f64>,
    pub pause: Option<Pause>,
    pub analysis: Option<AnalysisPatch>,
}

/// `pause: 30s` waits; `pause: {}` waits for promote.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Pause {
    For(Dur),
    Indefinite(BTreeMap<String, serde_json::Value>),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    pub connect: Dur,
    /// Until the upstream's response headers arrive (NGINX `proxy_read_timeout`-like).
    pub request: Dur,
    pub header_read: Dur,
    pub idle: Dur,
    pub drain: Dur,
    /// Longest wait for a client to take response bytes: between two
    /// successful writes to its socket, or (h2) for a stream's flow-control
    /// window to open (NGINX `send_timeout`).
    pub send: Dur,
    /// An upgraded (WebSocket) connection with no bytes either way for this
    /// long is closed (HAProxy `timeout tunnel`).
    pub tunnel_idle: Dur,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Dur::secs(1),
            request: Dur::secs(30),
            header_read: Dur::secs(10),
            idle: Dur::secs(90),
            drain: Dur::secs(30),
            send: Dur::secs(60),
            tunnel_idle: Dur::secs(3600),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_header_bytes: usize,
    /// Client connections at once, upgraded (WebSocket) tunnels included.
    pub max_connections: usize,
    /// Concurrent streams per HTTP/2 client connection (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub max_h2_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 65536,
            max_connections: 10000,
            max_h2_streams: 128,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Retry {
    /// Retries after the first try.
    pub attempts: u32,
    pub on: Vec<RetryOn>,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 2,
            on: vec![RetryOn::ConnectFailure],
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    ConnectFailure,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Notify {
    pub webhooks: Vec<Webhook>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// Event kinds to send; empty = all.
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default = "default_webhook_timeout")]
    pub timeout: Dur,
}

fn default_webhook_timeout() -> Dur {
    Dur::secs(2)
}
