//! Wiring: builds the first snapshot, starts the controller, the proxy
//! listeners, the health checks and the admin listener, and stops them in
//! order. Nothing imports this module but the binary, the demo and tests.
use crate::config::{self, Config};
use crate::controller::{self, Command, ControllerHandle};
use crate::proxy::server::{self, ListenerSettings};
use crate::proxy::{health, tls, Proxy};
use crate::snapshot::{BuildError, Live, Snapshot};
use crate::telemetry::Registry;
use crate::Role;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// A running proxy. Tests and the demo start one with `listen: 127.0.0.1:0`
/// and read the bound addresses here.
pub struct App {
    pub proxy_addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    pub admin_addr: SocketAddr,
    pub controller: ControllerHandle,
    live: Live,
    registry: Arc<Registry>,
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
    /// Starts everything. A certificate or CA file problem comes back as an
    /// `InvalidInput` error wrapping `BuildError` (so `run` exits 2 naming
    /// the field); a bind failure as the socket error.
    pub async fn start(config: Config, config_path: Option<PathBuf>) -> std::io::Result<App> {
        let registry = Arc::new(Registry::default());
        let first = Snapshot::build(
            &config,
            &registry,
            None,
            config::weight_to_bp(config.routing.canary_weight),
            false,
        )
        .map_err(invalid)?;
        let live: Live = Arc::new(ArcSwap::from_pointee(first));
        let tls = match &config.tls {
            Some(t) => Some((
                t.listen.clone(),
                tls::acceptor(live.clone()).map_err(invalid)?,
            )),
            None => None,
        };
        let proxy = Proxy::new(live.clone());
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
            max_h2_streams: config.limits.max_h2_streams,
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
            .map(|&role| health::spawn(live.clone(), role, shutdown_rx.clone()))
            .collect();
        let controller = controller::spawn(
            config.clone(),
            config_path,
            live.clone(),
            registry.clone(),
            shutdown_rx.clone(),
        );
        let admin = crate::admin::start(
            &config,
            live.clone(),
            registry.clone(),
            controller.clone(),
            shutdown_rx,
        )
        .await;
        let admin_addr = match admin {
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
            controller,
            live,
            registry,
            shutdown,
            listeners,
            tasks,
        })
    }

    /// The snapshot in force now (what the next request will see).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.live.load_full()
    }

    /// Every per-version counter this process has recorded, and the gauges.
    pub fn registry(&self) -> &Registry {
        &self.registry
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
            let bad_input = e.get_ref().is_some_and(|inner| inner.is::<BuildError>());
            return ExitCode::from(if bad_input { 2 } else { 1 });
        }
    };
    signals.wait_for_stop(&app.controller).await;
    tracing::info!("shutting down: draining in-flight requests");
    app.shutdown().await;
    ExitCode::SUCCESS
}

/// What a reload changed, from its reply's `changes` (not the whole status).
#[cfg(unix)]
fn reload_summary(reply: &serde_json::Value) -> String {
    let changes: Vec<&str> = reply["changes"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str()).collect())
        .unwrap_or_default();
    if changes.is_empty() {
        "nothing changed".into()
    } else {
        changes.join("; ")
    }
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
                    Ok(v) => tracing::info!("config reloaded (SIGHUP): {}", reload_summary(&v)),
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
