//! The offline judge simulator (SPEC §6.6): the real guard on a simulated clock.
// (filled in by the judge work)
use std::process::ExitCode;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
}

pub fn run(_args: Args) -> ExitCode {
    eprintln!("simulate: coming soon");
    ExitCode::from(1)
}
