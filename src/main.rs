//! `canary-proxy`: parse the command line and hand off to one command.
use canary_proxy::config;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "canary-proxy",
    version,
    about = "L7 reverse proxy that splits stable/canary traffic and rolls a bad canary back by itself"
)]
struct Cli {
    /// Log format.
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
        #[arg(long, short, default_value = "config/canary-proxy.yaml")]
        config: PathBuf,
    },
    /// Validate a config file: exit 0 with a summary, or 2 with every error.
    Check {
        #[arg(long, short, default_value = "config/canary-proxy.yaml")]
        config: PathBuf,
    },
    /// The embedded end-to-end demo: a canary goes bad and is rolled back.
    Demo {
        /// Keep the proxy and the status page up after the summary.
        #[arg(long)]
        keep_running: bool,
    },
    /// The demo upstream service.
    Upstream {
        #[arg(long)]
        role: String,
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

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
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
