//! Wiring: builds the shared state, starts the controller, the proxy listeners,
//! the health checks and the admin listener, and stops them in order.
use crate::config::{self, Config};
use crate::controller::{self, Command, ControllerHandle};
use crate::proxy::server::{self, ListenerSettings};
use crate::proxy::tls::{self, CertStore, TlsError};
use crate::proxy::{health, Proxy};
use crate::snapshot::Snapshot;
use crate::telemetry::{ControllerGauges, Registry};
use crate::Role;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// State shared by every part: one snapshot (the only thing the request path
/// reads), the metric registry, the current config.
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    pub registry: Registry,
    pub gauges: ControllerGauges,
    /// The config in force. Upstream clients (connect timeout, CA) and health
    /// checks follow it; a reload replaces it through `apply_reload`.
    pub config: ArcSwap<Config>,
    /// The HTTPS listener's certificate, when `tls` is configured.
    pub cert_store: OnceLock<Arc<CertStore>>,
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
            config: ArcSwap::from_pointee(config.clone()),
            cert_store: OnceLock::new(),
        })
    }

    /// The data plane's part of a reload (call it before publishing the new
    /// snapshot): swaps the TLS certificate (an unreadable or mismatched pair
    /// rejects the reload and changes nothing) and makes `config` current for
    /// upstream clients and health checks.
    pub fn apply_reload(&self, config: &Config) -> Result<(), TlsError> {
        if let (Some(store), Some(t)) = (self.cert_store.get(), &config.tls) {
            store.reload(t)?;
        }
        self.config.store(Arc::new(config.clone()));
        Ok(())
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
    shutdown: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
}

async fn bind(what: &str, addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("{what}: cannot listen on {addr}: {e}")))
}

impl App {
    /// Starts everything. A TLS certificate problem comes back as an
    /// `InvalidInput` error wrapping `TlsError` (so `run` exits 2 naming
    /// `tls.cert`/`tls.key`); a bind failure as the socket error.
    pub async fn start(config: Config, config_path: Option<PathBuf>) -> std::io::Result<App> {
        let shared = Shared::new(&config);
        let tls = match &config.tls {
            Some(t) => {
                let store = CertStore::new(t).map_err(invalid)?;
                let _ = shared.cert_store.set(store.clone());
                Some((t.listen.clone(), tls::acceptor(store).map_err(invalid)?))
            }
            None => None,
        };
        let proxy = Proxy::new(shared.clone()).map_err(invalid)?;
        let plain = bind("listen", &config.listen).await?;
        let tls = match tls {
            Some((addr, acceptor)) => Some((bind("tls.listen", &addr).await?, acceptor)),
            None => None,
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let settings = ListenerSettings {
            max_header_bytes: config.limits.max_header_bytes,
            connections: Arc::new(Semaphore::new(
                config
                    .limits
                    .max_connections
                    .clamp(1, Semaphore::MAX_PERMITS),
            )),
        };
        let drain = config.timeouts.drain.get();
        let proxy_addr = plain.local_addr()?;
        let tls_addr = match &tls {
            Some((l, _)) => Some(l.local_addr()?),
            None => None,
        };
        let mut listeners = vec![server::spawn(
            plain,
            None,
            proxy.clone(),
            settings.clone(),
            drain,
            shutdown_rx.clone(),
        )];
        if let Some((l, acceptor)) = tls {
            listeners.push(server::spawn(
                l,
                Some(acceptor),
                proxy.clone(),
                settings,
                drain,
                shutdown_rx.clone(),
            ));
        }
        let tasks = Role::ALL
            .iter()
            .map(|&role| health::spawn(proxy.clone(), role, shutdown_rx.clone()))
            .collect();
        let controller = controller::spawn(
            config.clone(),
            config_path,
            shared.clone(),
            shutdown_rx.clone(),
        );
        let admin_addr =
            match crate::admin::start(&config, shared.clone(), controller.clone(), shutdown_rx)
                .await
            {
                Ok((addr, task)) => {
                    listeners.push(task);
                    addr
                }
                Err(e) => {
                    let _ = shutdown.send(true);
                    return Err(e);
                }
            };
        tracing::info!(%proxy_addr, tls = ?tls_addr, %admin_addr, "proxy listening");
        Ok(App {
            proxy_addr,
            tls_addr,
            admin_addr,
            shared,
            controller,
            shutdown,
            listeners,
            tasks,
        })
    }

    /// Stops accepting, drains in-flight requests (bounded by `timeouts.drain`), stops every task.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for l in self.listeners {
            let _ = l.await;
        }
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

/// `canary-proxy run`: serve until SIGTERM/SIGINT (exit 0 after draining);
/// SIGHUP reloads. Exit 2 for a bad config or certificate, 1 for a runtime failure.
pub fn run(config_path: &std::path::Path) -> ExitCode {
    let config = match config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            for line in e.messages() {
                eprintln!("{line}");
            }
            return ExitCode::from(2);
        }
    };
    let mut rt = if config.workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    rt.enable_all();
    if config.workers > 1 {
        rt.worker_threads(config.workers);
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(serve(config, config_path.to_path_buf()))
}

async fn serve(config: Config, path: PathBuf) -> ExitCode {
    // Handlers first: a SIGTERM right after the "listening" line must drain,
    // not kill the process.
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let app = match App::start(config, Some(path)).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{e}");
            let bad_input = e.get_ref().is_some_and(|inner| {
                inner.is::<TlsError>() || inner.is::<crate::proxy::client::CaError>()
            });
            return ExitCode::from(if bad_input { 2 } else { 1 });
        }
    };
    signals.wait_for_stop(&app.controller).await;
    tracing::info!("shutting down: draining in-flight requests");
    app.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Returns on SIGTERM/SIGINT; SIGHUP reloads the config and keeps waiting.
    async fn wait_for_stop(&mut self, controller: &ControllerHandle) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => match controller.call(Command::Reload).await {
                    Ok(v) => tracing::info!(result = %v, "config reloaded (SIGHUP)"),
                    Err(e) => tracing::error!(error = %e, "config reload rejected (SIGHUP)"),
                },
            }
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals)
    }

    async fn wait_for_stop(&mut self, _controller: &ControllerHandle) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
