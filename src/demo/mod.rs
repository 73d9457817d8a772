//! The demo upstream service and the embedded end-to-end demo (`canary-proxy demo`).
pub mod load;
pub mod runner;
pub mod upstream;
pub mod view;

pub use runner::{Options, Summary};
pub use upstream::{FaultHandle, Upstream};

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            None
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `canary-proxy demo`: exit 0 iff the canary was rolled back by the guard.
pub fn run(keep_running: bool) -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::from(1);
    };
    let opts = Options {
        keep_running,
        output: view::Output::detect(),
        ..Options::default()
    };
    match rt.block_on(runner::run(opts)) {
        Ok(s) if s.rolled_back => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::from(1)
        }
    }
}

/// `canary-proxy upstream`: serve until SIGTERM/SIGINT.
pub fn run_upstream(
    role: &str,
    listen: &str,
    error_rate: f64,
    latency: Option<&str>,
    version: Option<&str>,
) -> ExitCode {
    let addr: SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("--listen {listen:?}: {e} (expected e.g. 0.0.0.0:8080)");
            return ExitCode::from(2);
        }
    };
    if !(0.0..=1.0).contains(&error_rate) {
        eprintln!("--error-rate {error_rate}: must be within 0..1");
        return ExitCode::from(2);
    }
    let latency = match latency.map(crate::config::parse_duration) {
        None => Duration::ZERO,
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            eprintln!("--latency: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(rt) = runtime() else {
        return ExitCode::from(1);
    };
    rt.block_on(async {
        let up = match Upstream::start(role, version.unwrap_or(role), addr).await {
            Ok(u) => u,
            Err(e) => {
                eprintln!("cannot listen on {addr}: {e}");
                return ExitCode::from(1);
            }
        };
        up.fault.set_error_rate(error_rate);
        up.fault.set_latency(latency);
        tracing::info!(role, addr = %up.addr, error_rate, ?latency, "upstream listening");
        wait_for_signal().await;
        tracing::info!("upstream stopping");
        up.shutdown().await;
        ExitCode::SUCCESS
    })
}
