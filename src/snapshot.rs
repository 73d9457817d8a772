//! The routing snapshot: everything the request path, the health checker and
//! the admin API read from the running config, built once per change and
//! published behind one `ArcSwap` ([`Live`]). The controller is its only
//! writer; a request loads it once and never sees a half-applied change.
//!
//! The snapshot itself never changes once published. It does point at shared
//! state that outlives it: each version's endpoint set (health flags, idle
//! connections) and hyper client are carried over to the next snapshot while
//! their config is unchanged, so health and keep-alive survive weight changes.
use crate::certs::{self, CaError, TlsError};
use crate::config::{self, Config, HealthCheck};
use crate::routing::{RoutingRules, StickyKey};
use crate::telemetry::export::EndpointHealth;
use crate::telemetry::{Registry, VersionStats};
use crate::upstream::client::{ClientSettings, VersionClient};
use crate::upstream::endpoints::{Endpoint, EndpointSet};
use crate::Role;
use arc_swap::ArcSwap;
use http::header::HeaderName;
use http::Uri;
use rustls::sign::CertifiedKey;
use std::sync::Arc;
use std::time::Duration;

/// The published snapshot: loaded by every reader, stored by the controller.
pub type Live = Arc<ArcSwap<Snapshot>>;

pub struct Snapshot {
    /// Bumped on every publish (tests and logs use it to tell snapshots apart).
    pub generation: u64,
    /// Canary weight in basis points (0..=10000).
    pub weight_bp: u32,
    pub aborted: bool,
    /// `[stable, canary]`, indexed by `Role::index`.
    pub backends: [Backend; 2],
    pub rules: Arc<RoutingRules>,
    pub settings: Arc<ProxySettings>,
    /// The HTTPS listener's certificate (read per handshake), when `tls` is set.
    pub tls_cert: Option<Arc<CertifiedKey>>,
    pub admin: Arc<AdminSettings>,
}

#[derive(Clone)]
pub struct Backend {
    pub role: Role,
    pub version: Arc<str>,
    /// `version` as a response header value (`routing.response_header`), built once.
    pub version_header: Option<http::HeaderValue>,
    pub endpoints: Arc<EndpointSet>,
    /// This version's upstream settings and hyper client (what
    /// `upstream::send` needs besides the endpoint).
    pub client: Arc<VersionClient>,
    pub health_check: Option<HealthCheck>,
    /// Resolved here, once, so the request path records without a lookup.
    pub stats: Arc<VersionStats>,
}

/// What the admin API reads from the config.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// Bearer token for state-changing calls; empty = none.
    pub token: String,
    /// `analysis.window`: the default span of `/v1/metrics`.
    pub window: Duration,
    /// `admin.hosts`: names the admin API answers to besides IPs and localhost.
    pub hosts: Vec<String>,
}

/// Why a config could not become a snapshot (a file it names is unusable).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Per-request settings that change only with the config (or the current step's
/// `error_statuses`).
#[derive(Debug, Clone)]
pub struct ProxySettings {
    pub request_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// `timeouts.send`: the longest a client may leave response bytes untaken.
    pub send_timeout: Duration,
    /// `timeouts.tunnel_idle`: an upgraded connection quiet both ways this long is closed.
    pub tunnel_idle_timeout: Duration,
    pub retry_attempts: u32,
    pub retry_on_connect_failure: bool,
    pub error_statuses: ErrorStatuses,
}

/// Which status codes count as errors for the guard: a bitmap over 0..1024.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorStatuses([u64; 16]);

impl ErrorStatuses {
    /// From `["5xx", "429"]`; patterns are validated by the config module.
    pub fn parse(patterns: &[String]) -> Self {
        let mut bits = ErrorStatuses::default();
        for p in patterns {
            let p = p.trim().to_ascii_lowercase();
            if let Some(class) = p.strip_suffix("xx").and_then(|d| d.parse::<u16>().ok()) {
                for code in class * 100..class * 100 + 100 {
                    bits.set(code);
                }
            } else if let Ok(code) = p.parse::<u16>() {
                bits.set(code);
            }
        }
        bits
    }

    fn set(&mut self, code: u16) {
        if code < 1024 {
            self.0[(code / 64) as usize] |= 1 << (code % 64);
        }
    }

    #[inline]
    pub fn contains(&self, code: u16) -> bool {
        code < 1024 && self.0[(code / 64) as usize] & (1 << (code % 64)) != 0
    }
}

impl Snapshot {
    pub fn backend(&self, role: Role) -> &Backend {
        &self.backends[role.index()]
    }

    /// Same snapshot with a new weight/abort flag (the common controller change).
    pub fn with_weight(&self, weight_bp: u32, aborted: bool) -> Snapshot {
        Snapshot {
            generation: self.generation + 1,
            weight_bp,
            aborted,
            ..self.clone_parts()
        }
    }

    /// Same snapshot with other `error_statuses` (a step's analysis override).
    pub fn with_error_statuses(&self, statuses: ErrorStatuses) -> Snapshot {
        let mut settings = (*self.settings).clone();
        settings.error_statuses = statuses;
        Snapshot {
            generation: self.generation + 1,
            settings: Arc::new(settings),
            ..self.clone_parts()
        }
    }

    /// Every endpoint's health now, as `/metrics` exports it.
    pub fn endpoint_health(&self) -> Vec<EndpointHealth> {
        self.backends
            .iter()
            .flat_map(|b| {
                b.endpoints
                    .endpoints
                    .iter()
                    .map(move |e| (b.role, e.label.clone(), e.is_healthy()))
            })
            .collect()
    }

    fn clone_parts(&self) -> Snapshot {
        Snapshot {
            generation: self.generation,
            weight_bp: self.weight_bp,
            aborted: self.aborted,
            backends: self.backends.clone(),
            rules: self.rules.clone(),
            settings: self.settings.clone(),
            tls_cert: self.tls_cert.clone(),
            admin: self.admin.clone(),
        }
    }

    /// Builds a snapshot from a validated config: reads the certificate and
    /// CA files it names (so a bad one rejects the whole change). Endpoint
    /// sets and clients of `prev` are kept where their config is unchanged.
    pub fn build(
        config: &Config,
        registry: &Registry,
        prev: Option<&Snapshot>,
        weight_bp: u32,
        aborted: bool,
    ) -> Result<Snapshot, BuildError> {
        let t = &config.timeouts;
        let backend = |role: Role, up: &config::Upstream| -> Result<Backend, BuildError> {
            let version: Arc<str> = Arc::from(up.version.as_deref().unwrap_or(role.as_str()));
            let old = prev.map(|p| p.backend(role));
            let endpoints = match old {
                Some(b) if same_endpoints(&b.endpoints, &up.endpoints, up.max_connections) => {
                    b.endpoints.clone()
                }
                _ => Arc::new(EndpointSet::new(
                    up.endpoints
                        .iter()
                        .filter_map(|e| {
                            e.parse::<Uri>().ok().map(|u| {
                                Arc::new(
                                    Endpoint::new(e, u).with_max_connections(up.max_connections),
                                )
                            })
                        })
                        .collect(),
                )),
            };
            let client_settings = ClientSettings {
                connect_timeout: t.connect.get(),
                idle_timeout: t.idle.get(),
                ca: up.ca.clone(),
            };
            let client = match old {
                // Same settings and no CA file to re-read: keep the pooled connections.
                Some(b) if b.client.settings == client_settings && up.ca.is_none() => {
                    b.client.clone()
                }
                _ => Arc::new(VersionClient::build(client_settings, role.as_str())?),
            };
            Ok(Backend {
                role,
                stats: registry.version(role, &version),
                version_header: http::HeaderValue::from_str(&version).ok(),
                version,
                endpoints,
                client,
                health_check: up.health_check.clone(),
            })
        };
        let r = &config.routing;
        let ov = r.override_.clone().unwrap_or_default();
        let header = |s: &Option<String>| s.as_deref().and_then(|h| HeaderName::try_from(h).ok());
        let rules = RoutingRules {
            sticky: r
                .sticky
                .as_ref()
                .and_then(|s| match (&s.cookie, &s.header) {
                    (Some(c), _) => Some(StickyKey::Cookie(c.clone())),
                    (None, h) => header(h).map(StickyKey::Header),
                }),
            override_header: header(&ov.header),
            override_header_value: ov.header_value.clone(),
            override_cookie: ov.cookie.clone(),
            response_header: header(&r.response_header),
        };
        let settings = ProxySettings {
            request_timeout: t.request.get(),
            header_read_timeout: t.header_read.get(),
            idle_timeout: t.idle.get(),
            send_timeout: t.send.get(),
            tunnel_idle_timeout: t.tunnel_idle.get(),
            retry_attempts: config.retry.attempts,
            retry_on_connect_failure: config.retry.on.contains(&config::RetryOn::ConnectFailure),
            error_statuses: ErrorStatuses::parse(&config.analysis.error_statuses),
        };
        let tls_cert = match &config.tls {
            Some(tls) => Some(Arc::new(certs::load_certified_key(&tls.cert, &tls.key)?)),
            None => None,
        };
        Ok(Snapshot {
            generation: prev.map_or(0, |p| p.generation + 1),
            weight_bp,
            aborted,
            backends: [
                backend(Role::Stable, &config.upstreams.stable)?,
                backend(Role::Canary, &config.upstreams.canary)?,
            ],
            rules: Arc::new(rules),
            settings: Arc::new(settings),
            tls_cert,
            admin: Arc::new(AdminSettings {
                token: config.admin.token.clone(),
                window: config.analysis.window.get(),
                hosts: config.admin.hosts.clone(),
            }),
        })
    }
}

/// The same endpoint list with the same connection cap: the endpoint state
/// (health, idle connections, connections in use) carries over. A changed
/// cap starts fresh endpoints, as a changed list does.
fn same_endpoints(set: &EndpointSet, endpoints: &[String], max_connections: usize) -> bool {
    set.endpoints.len() == endpoints.len()
        && set
            .endpoints
            .iter()
            .zip(endpoints)
            .all(|(a, b)| &a.label == b && a.max_connections() == max_connections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_statuses_bitmap() {
        let s = ErrorStatuses::parse(&["5xx".into(), "429".into()]);
        assert!(s.contains(500) && s.contains(599) && s.contains(429));
        assert!(!s.contains(404) && !s.contains(499) && !s.contains(600));
    }
}
