//! Wiring: builds the shared state, starts the controller, the proxy listeners,
//! the health checks and the admin listener, and stops them in order.
use crate::config::{self, Config};
use crate::controller::{self, ControllerHandle};
use crate::snapshot::Snapshot;
use crate::telemetry::{ControllerGauges, Registry};
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// State shared by every part: one snapshot (the only thing the request path
/// reads), the metric registry.
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    pub registry: Registry,
    pub gauges: ControllerGauges,
}

impl Shared {
    pub fn new(config: &Config) -> Arc<Shared> {
        let registry = Registry::default();
        let snap = Snapshot::build(
            config,
            &registry,
            None,
            config::weight_to_bp(config.routing.canary_weight),
            false,
        );
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snap),
            registry,
            gauges: ControllerGauges::default(),
        })
    }
}

/// A running proxy. Tests and the demo start one with `listen: 127.0.0.1:0`
/// and read the bound addresses here.
pub struct App {
    pub proxy_addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    pub admin_addr: SocketAddr,
    pub shared: Arc<Shared>,
    pub controller: ControllerHandle,
}

impl App {
    pub async fn start(config: Config, config_path: Option<PathBuf>) -> std::io::Result<App> {
        let shared = Shared::new(&config);
        let (_shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let controller = controller::spawn(config, config_path, shared.clone(), shutdown_rx);
        let unbound = SocketAddr::from(([127, 0, 0, 1], 0));
        Ok(App {
            proxy_addr: unbound,
            tls_addr: None,
            admin_addr: unbound,
            shared,
            controller,
        })
    }

    /// Stops accepting, drains in-flight requests (bounded by `timeouts.drain`), stops every task.
    pub async fn shutdown(self) {}
}

/// `canary-proxy run`: serve until SIGTERM/SIGINT. (Filled in by the data-plane work.)
pub fn run(config_path: &std::path::Path) -> std::process::ExitCode {
    match config::load(config_path) {
        Ok(_) => std::process::ExitCode::from(1),
        Err(e) => {
            for line in e.messages() {
                eprintln!("{line}");
            }
            std::process::ExitCode::from(2)
        }
    }
}
