//! The offline judge simulator (`canary-proxy simulate`): the real `judge::Guard` on a
//! simulated clock, over many independent runs.
mod dist;
mod run;

pub use dist::Latency;
pub use run::{run_seed, RunResult, Scenario};

use crate::config::{self, parse_duration, Analysis, Dur};
use serde::Serialize;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Take the `analysis` block from this config file (defaults without it).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Canary error rate from `--fault-at` on, percent (`2.68` or `2.68%`); default: the stable rate.
    #[arg(long, value_parser = parse_percent)]
    pub canary_error_rate: Option<f64>,
    /// Stable error rate, percent.
    #[arg(long, value_parser = parse_percent, default_value = "0.1")]
    pub stable_error_rate: f64,
    /// Canary latency from `--fault-at` on: `lognormal:MEDIAN:SIGMA` or `const:DUR`; default: stable's.
    #[arg(long)]
    pub canary_latency: Option<Latency>,
    /// Stable latency distribution.
    #[arg(long, default_value = "lognormal:20ms:0.5")]
    pub stable_latency: Latency,
    /// Total request rate (both versions), per second.
    #[arg(long, default_value_t = 200.0)]
    pub rps: f64,
    /// Canary share of the traffic, percent.
    #[arg(long, default_value_t = 50.0)]
    pub weight: f64,
    /// Simulated length of each run.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub duration: std::time::Duration,
    /// Number of independent runs.
    #[arg(long, default_value_t = 100)]
    pub runs: u64,
    /// Random seed; the same seed gives the same results.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// When the canary turns bad (before it, it behaves like stable).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub fault_at: std::time::Duration,
    /// Override `error_rate.max` (percent), or `off`.
    #[arg(long, value_parser = parse_limit)]
    pub max_error_rate: Option<Limit>,
    /// Override `error_rate.max_increase` (points), or `off`.
    #[arg(long, value_parser = parse_limit)]
    pub max_increase: Option<Limit>,
    /// Override `latency.max_p99` (a duration), or `off`.
    #[arg(long, value_parser = parse_duration_limit)]
    pub max_p99: Option<Limit>,
    /// Override `latency.max_p99_ratio`, or `off`.
    #[arg(long, value_parser = parse_limit)]
    pub max_p99_ratio: Option<Limit>,
    /// Configure only the limits given with `--max-*` flags; all others off.
    #[arg(long)]
    pub only: bool,
    /// Override `analysis.confidence`.
    #[arg(long)]
    pub confidence: Option<f64>,
    /// Override `analysis.interval`.
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<std::time::Duration>,
    /// Override `analysis.window`.
    #[arg(long, value_parser = parse_duration)]
    pub window: Option<std::time::Duration>,
    /// Override `analysis.min_requests`.
    #[arg(long)]
    pub min_requests: Option<u64>,
    /// Override `analysis.failure_limit`.
    #[arg(long)]
    pub failure_limit: Option<u32>,
    /// Worker threads (default: one per core). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output: a text summary or one JSON object.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// A limit override: a value (percent, points, ratio or seconds) or `off`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Off,
    Value(f64),
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage"))?;
    if (0.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s:?} must be between 0 and 100 (percent)"))
    }
}

fn parse_limit(s: &str) -> Result<Limit, String> {
    if s == "off" {
        return Ok(Limit::Off);
    }
    match s.trim_end_matches('%').parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Limit::Value(v)),
        _ => Err(format!("{s:?}: expected a positive number or `off`")),
    }
}

fn parse_duration_limit(s: &str) -> Result<Limit, String> {
    if s == "off" {
        return Ok(Limit::Off);
    }
    parse_duration(s).map(|d| Limit::Value(d.as_secs_f64()))
}

/// The run's settings: config (or defaults), then the flags.
fn analysis(args: &Args) -> Result<Analysis, String> {
    let mut a = match &args.config {
        Some(path) => {
            config::load(path)
                .map_err(|e| e.messages().join("\n"))?
                .analysis
        }
        None => Analysis::default(),
    };
    if args.only {
        a.error_rate.max = None;
        a.error_rate.max_increase = None;
        a.latency.max_p99 = None;
        a.latency.max_p99_ratio = None;
    }
    let value = |l: Limit| match l {
        Limit::Off => None,
        Limit::Value(v) => Some(v),
    };
    if let Some(l) = args.max_error_rate {
        a.error_rate.max = value(l);
    }
    if let Some(l) = args.max_increase {
        a.error_rate.max_increase = value(l);
    }
    if let Some(l) = args.max_p99 {
        a.latency.max_p99 = value(l).map(|s| Dur(std::time::Duration::from_secs_f64(s)));
    }
    if let Some(l) = args.max_p99_ratio {
        a.latency.max_p99_ratio = value(l);
    }
    if let Some(c) = args.confidence {
        if !(c > 0.0 && c < 1.0) {
            return Err(format!("--confidence {c}: must be in (0, 1)"));
        }
        a.confidence = c;
    }
    if let Some(i) = args.interval {
        a.interval = Dur(i);
    }
    if let Some(w) = args.window {
        a.window = Dur(w);
    }
    if let Some(m) = args.min_requests {
        a.min_requests = m;
    }
    if let Some(f) = args.failure_limit {
        a.failure_limit = f;
    }
    if a.interval.get().is_zero() || a.window.get() < a.interval.get() {
        return Err("analysis.interval must be above 0 and at most analysis.window".into());
    }
    Ok(a)
}

pub fn scenario(args: &Args) -> Result<Scenario, String> {
    if !(args.rps.is_finite() && args.rps >= 0.0) {
        return Err(format!("--rps {}: must be a number >= 0", args.rps));
    }
    if !(0.0..=100.0).contains(&args.weight) {
        return Err(format!("--weight {}: must be 0..100", args.weight));
    }
    let analysis = analysis(args)?;
    let stable_lat = dist::BucketSampler::new(&args.stable_latency);
    let behaviour = |p: f64, l| run::Behaviour {
        error_p: p / 100.0,
        latency: l,
    };
    let canary_lat = args
        .canary_latency
        .as_ref()
        .map_or_else(|| stable_lat.clone(), dist::BucketSampler::new);
    Ok(Scenario {
        analysis,
        canary_rps: args.rps * args.weight / 100.0,
        stable_rps: args.rps * (100.0 - args.weight) / 100.0,
        stable: behaviour(args.stable_error_rate, stable_lat.clone()),
        canary_before: behaviour(args.stable_error_rate, stable_lat),
        canary_after: behaviour(
            args.canary_error_rate.unwrap_or(args.stable_error_rate),
            canary_lat,
        ),
        fault_at_s: args.fault_at.as_secs_f64(),
        duration_s: args.duration.as_secs_f64(),
    })
}

/// Runs `runs` independent runs over `threads` threads; result `i` comes from
/// `run_seed(seed, i)` whatever the thread count.
pub fn simulate(sc: &Scenario, runs: u64, seed: u64, threads: usize) -> Vec<RunResult> {
    let threads = threads.max(1).min(runs.max(1) as usize);
    let mut out = vec![
        RunResult {
            aborted_at: None,
            detection_s: None,
            blast_radius: 0
        };
        runs as usize
    ];
    std::thread::scope(|s| {
        for (t, chunk) in out
            .chunks_mut((runs as usize).div_ceil(threads).max(1))
            .enumerate()
        {
            let base = t as u64 * (runs.div_ceil(threads as u64));
            s.spawn(move || {
                for (j, slot) in chunk.iter_mut().enumerate() {
                    *slot = run::run(sc, run_seed(seed, base + j as u64));
                }
            });
        }
    });
    out
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Spread {
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Summary {
    pub runs: u64,
    pub aborted: u64,
    pub abort_fraction: f64,
    pub detection_s: Option<Spread>,
    pub blast_radius: Option<Spread>,
}

/// Nearest-rank percentiles; `None` when empty.
fn spread(mut v: Vec<f64>) -> Option<Spread> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Spread {
        p50: at(0.5),
        p95: at(0.95),
        max: v[v.len() - 1],
    })
}

pub fn summarize(results: &[RunResult]) -> Summary {
    let aborted: Vec<&RunResult> = results.iter().filter(|r| r.aborted_at.is_some()).collect();
    let n = results.len() as u64;
    Summary {
        runs: n,
        aborted: aborted.len() as u64,
        abort_fraction: if n == 0 {
            0.0
        } else {
            aborted.len() as f64 / n as f64
        },
        detection_s: spread(aborted.iter().filter_map(|r| r.detection_s).collect()),
        blast_radius: spread(aborted.iter().map(|r| r.blast_radius as f64).collect()),
    }
}

pub fn run(args: Args) -> ExitCode {
    let sc = match scenario(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("simulate: {e}");
            return ExitCode::from(2);
        }
    };
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let started = Instant::now();
    let results = simulate(&sc, args.runs, args.seed, threads);
    let s = summarize(&results);
    match args.format {
        Format::Json => match serde_json::to_string(&s) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("simulate: {e}");
                return ExitCode::from(1);
            }
        },
        Format::Text => print_text(&args, &sc, &s, started.elapsed().as_secs_f64()),
    }
    ExitCode::SUCCESS
}

fn print_text(args: &Args, sc: &Scenario, s: &Summary, secs: f64) {
    let a = &sc.analysis;
    let lim = |o: Option<f64>| o.map_or("off".to_string(), |v| v.to_string());
    println!(
        "limits: error_rate.max {} max_increase {} latency.max_p99 {} max_p99_ratio {}; interval {} window {} confidence {} min_requests {} failure_limit {}",
        lim(a.error_rate.max),
        lim(a.error_rate.max_increase),
        a.latency.max_p99.map_or("off".to_string(), |d| d.to_string()),
        lim(a.latency.max_p99_ratio),
        a.interval,
        a.window,
        a.confidence,
        a.min_requests,
        a.failure_limit
    );
    println!(
        "traffic: canary {:.1} req/s, stable {:.1} req/s; {} runs of {} from seed {}",
        sc.canary_rps,
        sc.stable_rps,
        s.runs,
        config::format_duration(args.duration),
        args.seed
    );
    // one-sided 95% Wilson upper bound on the abort probability
    let hi = crate::judge::wilson(s.aborted, s.runs, 1.645).map_or(1.0, |b| b.1);
    println!(
        "aborted: {}/{} ({:.2}%, 95% upper bound {:.2}%)",
        s.aborted,
        s.runs,
        100.0 * s.abort_fraction,
        100.0 * hi
    );
    match (&s.detection_s, &s.blast_radius) {
        (Some(d), Some(b)) => {
            println!(
                "detection: p50 {:.2}s  p95 {:.2}s  max {:.2}s (first bad response to abort)",
                d.p50, d.p95, d.max
            );
            println!(
                "blast radius: p50 {:.0}  p95 {:.0}  max {:.0} failed canary requests before the abort",
                b.p50, b.p95, b.max
            );
        }
        (None, Some(b)) => println!(
            "blast radius: p50 {:.0}  p95 {:.0}  max {:.0} (aborts before the fault)",
            b.p50, b.p95, b.max
        ),
        _ => println!("detection: none aborted"),
    }
    println!("wall time: {secs:.1}s");
}
