//! The demo upstream service and the embedded end-to-end demo (SPEC §8).
// (filled in by the demo work)
use std::process::ExitCode;

pub fn run(_keep_running: bool) -> ExitCode {
    println!("demo: coming soon");
    ExitCode::SUCCESS
}

pub fn run_upstream(
    _role: &str,
    _listen: &str,
    _error_rate: f64,
    _latency: Option<&str>,
    _version: Option<&str>,
) -> ExitCode {
    eprintln!("upstream: coming soon");
    ExitCode::from(1)
}
