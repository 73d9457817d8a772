//! `canary-proxy`: parse the command line and hand off to one command.
use canary_proxy::config;
use clap::{Parser, Subcommand, ValueEnum};
use std::ffi::OsStr;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "canary-proxy",
    version,
    about = "L7 reverse proxy that splits stable/canary traffic and rolls a bad canary back by itself"
)]
struct Cli {
    /// Log format on stderr: `text` (coloured only on a terminal without NO_COLOR) or `json`.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once; boxing buys nothing
enum Command {
    /// Serve traffic.
    Run {
        /// The config file (YAML) to serve with; `check` validates it.
        #[arg(long, short, default_value = "config/canary-proxy.yaml")]
        config: PathBuf,
    },
    /// Validate a config file: exit 0 with a summary, or 2 with every error.
    Check {
        /// The config file (YAML) to validate.
        #[arg(long, short, default_value = "config/canary-proxy.yaml")]
        config: PathBuf,
    },
    /// The embedded end-to-end demo: a canary goes bad and is rolled back.
    Demo {
        /// Keep the proxy and the status page up after the summary.
        #[arg(long)]
        keep_running: bool,
    },
    /// The demo upstream service: answers with its role and version, and takes faults at runtime.
    Upstream {
        /// Name it answers with, e.g. `stable` or `canary`.
        #[arg(long)]
        role: String,
        /// Address to listen on, e.g. `0.0.0.0:8080`.
        #[arg(long)]
        listen: String,
        /// Fraction of `/` requests answered with 500 (0..1).
        #[arg(long, default_value_t = 0.0)]
        error_rate: f64,
        /// Added latency per request, e.g. `20ms`.
        #[arg(long)]
        latency: Option<String>,
        /// Value reported as the version (default: the role).
        #[arg(long)]
        version: Option<String>,
    },
    /// Offline judge simulator: abort fraction and detection time over many runs.
    Simulate(canary_proxy::simulate::Args),
}

/// Colour in text logs only when they go to a terminal, and never while
/// `NO_COLOR` is set to a non-empty value (<https://no-color.org>): files,
/// pipes and log collectors get plain text.
fn use_colour(is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    is_terminal && no_color.is_none_or(OsStr::is_empty)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(canary_proxy::log_limit::DEFAULT_FILTER)
    });
    // The logger writes to stderr, so stderr decides.
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Run { config } => canary_proxy::app::run(&config),
        Command::Check { config } => match config::load(&config) {
            Ok(c) => {
                println!("{}: ok ({})", config.display(), config::summary(&c));
                ExitCode::SUCCESS
            }
            Err(e) => {
                for line in e.messages() {
                    eprintln!("{line}");
                }
                ExitCode::from(2)
            }
        },
        Command::Demo { keep_running } => canary_proxy::demo::run(keep_running),
        Command::Upstream {
            role,
            listen,
            error_rate,
            latency,
            version,
        } => canary_proxy::demo::run_upstream(
            &role,
            &listen,
            error_rate,
            latency.as_deref(),
            version.as_deref(),
        ),
        Command::Simulate(args) => canary_proxy::simulate::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some(OsStr::new("1"))));
    }

    /// Every subcommand and every argument (at any depth) has a help line.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            cmd.clone().debug_assert();
            for a in cmd.get_arguments() {
                let text = a.get_help().map(|h| h.to_string()).unwrap_or_default();
                if text.trim().is_empty() {
                    missing.push(format!("{path} --{}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                let about = sub.get_about().map(|h| h.to_string()).unwrap_or_default();
                let name = format!("{path} {}", sub.get_name());
                if about.trim().is_empty() {
                    missing.push(name.clone());
                }
                walk(sub, &name, missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "canary-proxy", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }
}
