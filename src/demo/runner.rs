//! The embedded demo story: stable and canary upstreams, the proxy with a short
//! plan, a paced load; once the canary is at 50% its errors are switched on and
//! the guard must roll it back by itself.
use super::load::{Load, LoadStats, Sample};
use super::upstream::Upstream;
use super::view::{Frame, Output, View};
use crate::app::App;
use crate::Role;
use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The story's timeline and load; `Default` is the CLI demo.
#[derive(Debug, Clone)]
pub struct Options {
    pub rps: u32,
    pub workers: usize,
    /// The plan's pause at 20%.
    pub pause_at_20: Duration,
    /// How long the canary looks fine at 50% before its errors start.
    pub healthy_at_50: Duration,
    /// Fraction of canary answers that fail once the fault is on.
    pub canary_error_rate: f64,
    /// How long to keep showing traffic after the rollback.
    pub after_rollback: Duration,
    /// Give up (not rolled back) after this.
    pub timeout: Duration,
    pub keep_running: bool,
    pub output: Output,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rps: 300,
            workers: 8,
            pause_at_20: Duration::from_secs(6),
            healthy_at_50: Duration::from_secs(5),
            canary_error_rate: 0.4,
            after_rollback: Duration::from_secs(3),
            timeout: Duration::from_secs(60),
            keep_running: false,
            output: Output::Lines,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start an upstream: {0}")]
    Upstream(std::io::Error),
    #[error("the embedded demo config is invalid: {0}")]
    Config(String),
    #[error("cannot start the proxy: {0}")]
    Proxy(std::io::Error),
}

/// How the story ended.
#[derive(Debug, Clone)]
pub struct Summary {
    pub rolled_back: bool,
    /// First failed canary answer a client saw → canary weight 0.
    pub detection: Option<Duration>,
    /// Fault switched on → canary weight 0.
    pub fault_to_rollback: Option<Duration>,
    pub total_requests: u64,
    pub failed_requests: u64,
    pub canary_failed: u64,
    pub final_phase: String,
    pub final_weight: Option<f64>,
    pub message: String,
    pub elapsed: Duration,
}

impl Summary {
    pub fn line(&self) -> String {
        let detect = match self.detection {
            Some(d) => format!(
                "canary rolled back {:.0} ms after the first failed canary answer",
                d.as_secs_f64() * 1000.0
            ),
            None => "canary NOT rolled back".into(),
        };
        format!(
            "{detect}; clients saw {} failed of {} requests ({} from the canary); final phase {} (canary weight {}); {:.1} s in all",
            self.failed_requests,
            self.total_requests,
            self.canary_failed,
            self.final_phase,
            self.final_weight
                .map_or_else(|| "?".into(), |w| format!("{w}%")),
            self.elapsed.as_secs_f64()
        )
    }
}

/// The demo's config: the proxy, both upstreams on loopback, a short plan.
pub fn config_yaml(stable: &str, canary: &str, pause_at_20: Duration) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
upstreams:
  stable:
    version: v1-stable
    endpoints: [http://{stable}]
    health_check: {{ path: /health, interval: 1s, timeout: 500ms }}
  canary:
    version: v2-canary
    endpoints: [http://{canary}]
    health_check: {{ path: /health, interval: 1s, timeout: 500ms }}
routing:
  canary_weight: 0
  response_header: x-canary-version
  override: {{ header: x-canary, header_value: debug }}
analysis:
  interval: 250ms
  window: 30s
  error_rate: {{ max: 5.0, max_increase: 2.0 }}
  latency: {{ max_p99_ratio: 3.0 }}
rollout:
  steps:
    - set_weight: 20
    - pause: {pause}
    - set_weight: 50
    - pause: {{}}
    - set_weight: 100
timeouts: {{ drain: 2s }}
"#,
        pause = crate::config::format_duration(pause_at_20)
    )
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Admin API reader (the public contract, valid whatever the internals do).
struct Admin {
    client: HttpClient,
    base: String,
}

impl Admin {
    async fn get(&self, path: &str) -> Option<Value> {
        let uri: Uri = format!("{}{}", self.base, path).parse().ok()?;
        let req = http::Request::get(uri).body(Empty::new()).ok()?;
        let resp = tokio::time::timeout(Duration::from_secs(2), self.client.request(req))
            .await
            .ok()?
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let body = Limited::new(resp.into_body(), 4 << 20)
            .collect()
            .await
            .ok()?
            .to_bytes();
        serde_json::from_slice(&body).ok()
    }
}

/// Status fields the view needs, read tolerantly.
#[derive(Default, Clone)]
struct Status {
    phase: String,
    weight: Option<f64>,
    abort: bool,
    message: String,
    step: Option<(u64, u64)>,
    verdict: String,
}

fn parse_status(v: &Value) -> Status {
    let steps = match &v["steps"] {
        Value::Array(a) => Some(a.len() as u64),
        Value::Number(n) => n.as_u64(),
        _ => None,
    };
    Status {
        phase: v["phase"].as_str().unwrap_or("?").to_string(),
        weight: v["canary_weight"].as_f64(),
        abort: v["abort"].as_bool().unwrap_or(false),
        message: v["message"].as_str().unwrap_or("").to_string(),
        step: v["step_index"].as_u64().zip(steps),
        verdict: verdict_line(&v["verdict"]),
    }
}

/// Fallback while the admin API does not answer: the controller's gauges.
fn status_from_gauges(app: &App, prev: &Status) -> Status {
    use crate::Phase;
    use std::sync::atomic::Ordering::Relaxed;
    let g = &app.registry().gauges;
    let phase = Phase::ALL
        .get(g.phase.load(Relaxed) as usize)
        .copied()
        .unwrap_or(Phase::Progressing);
    Status {
        phase: phase.as_str().to_string(),
        weight: Some(crate::config::bp_to_weight(g.weight_bp.load(Relaxed))),
        abort: phase == Phase::Degraded && g.aborts.load(Relaxed) > 0,
        message: prev.message.clone(),
        step: prev.step,
        verdict: "admin API not answering; phase and weight from the controller's gauges".into(),
    }
}

fn verdict_line(v: &Value) -> String {
    let Some(result) = v["result"].as_str() else {
        return "verdict: -".into();
    };
    let mut s = format!("verdict {result}");
    for m in v["metrics"].as_array().into_iter().flatten() {
        let value = m["value"]
            .as_f64()
            .map_or_else(|| "-".into(), |x| format!("{x:.2}"));
        s.push_str(&format!(
            " · {} {} (limit {}, n={})",
            m["metric"].as_str().unwrap_or("?"),
            value,
            m["limit"]
                .as_f64()
                .map_or_else(|| "-".into(), |x| format!("{x}")),
            m["evidence"].as_u64().unwrap_or(0)
        ));
    }
    s
}

fn events_of(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        _ => v["events"].as_array().cloned().unwrap_or_default(),
    }
}

/// Prints events not yet shown. The list is a bounded "most recent" one, so
/// new events are those after the last one already printed.
struct EventTail {
    last: Option<Value>,
}

impl EventTail {
    fn new_events(&mut self, events: Vec<Value>) -> Vec<Value> {
        let start = match &self.last {
            None => 0,
            Some(l) => events.iter().rposition(|e| e == l).map_or(0, |i| i + 1),
        };
        if let Some(l) = events.last() {
            self.last = Some(l.clone());
        }
        events.into_iter().skip(start).collect()
    }
}

/// Everything the story runs on; kept up after the summary with `--keep-running`.
struct Stage {
    app: App,
    stable: Upstream,
    canary: Upstream,
    load: Load,
}

impl Stage {
    async fn stop(self) {
        self.load.stop().await;
        self.app.shutdown().await;
        self.stable.shutdown().await;
        self.canary.shutdown().await;
    }
}

/// Runs the story and returns its summary.
pub async fn run(opts: Options) -> Result<Summary, DemoError> {
    let t0 = Instant::now();
    let mut view = View::new(opts.output);
    let stable = Upstream::start_local("stable", "v1-stable")
        .await
        .map_err(DemoError::Upstream)?;
    let canary = Upstream::start_local("canary", "v2-canary")
        .await
        .map_err(DemoError::Upstream)?;
    let yaml = config_yaml(
        &stable.addr.to_string(),
        &canary.addr.to_string(),
        opts.pause_at_20,
    );
    let config = crate::config::parse(&yaml, &|_| None)
        .map_err(|e| DemoError::Config(e.messages().join("; ")))?;
    let app = App::start(config, None).await.map_err(DemoError::Proxy)?;
    let proxy_url = format!("http://{}/", app.proxy_addr);
    let admin = Admin {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: format!("http://{}", app.admin_addr),
    };
    view.say(&format!(
        "canary-proxy demo: proxy {proxy_url}  status page http://{}/",
        app.admin_addr
    ));
    view.say(&format!(
        "plan: 20% → pause {} → 50% → hold; the canary turns bad {} s after reaching 50%",
        crate::config::format_duration(opts.pause_at_20),
        opts.healthy_at_50.as_secs_f64()
    ));
    let target: Uri = proxy_url
        .parse()
        .map_err(|e| DemoError::Config(format!("proxy address: {e}")))?;
    let load = Load::start(target, opts.rps, opts.workers);
    let stats = load.stats.clone();
    let stage = Stage {
        app,
        stable,
        canary,
        load,
    };

    let deadline = t0 + opts.timeout;
    // Ctrl-C/SIGTERM ends the story early (with a summary) or the keep-running hold.
    let (sig_tx, mut interrupted) = tokio::sync::watch::channel(false);
    let signals = tokio::spawn(async move {
        super::wait_for_signal().await;
        let _ = sig_tx.send(true);
    });
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut samples: VecDeque<Sample> = VecDeque::new();
    let mut tail = EventTail { last: None };
    let mut status = Status {
        phase: "-".into(),
        verdict: "waiting for the admin API".into(),
        ..Status::default()
    };
    let mut at_50: Option<Instant> = None;
    let mut fault_at: Option<Instant> = None;
    let mut rollback_at: Option<Instant> = None;
    let mut done_at: Option<Instant> = None;

    loop {
        // Between ticks, watch the routing snapshot closely so the rollback
        // instant is measured to a few ms, not to the 250 ms redraw.
        let tick_fut = tick.tick();
        tokio::pin!(tick_fut);
        loop {
            tokio::select! {
                _ = &mut tick_fut => break,
                _ = tokio::time::sleep(Duration::from_millis(2)) => {
                    if fault_at.is_some() && rollback_at.is_none() {
                        let snap = stage.app.snapshot();
                        if snap.weight_bp == 0 {
                            rollback_at = Some(Instant::now());
                        }
                    }
                }
            }
        }
        let now = Instant::now();
        match admin.get("/api/v1/status").await {
            Some(v) => status = parse_status(&v),
            None => status = status_from_gauges(&stage.app, &status),
        }
        if let Some(v) = admin.get("/api/v1/events").await {
            for e in tail.new_events(events_of(&v)) {
                let weight = e["canary_weight"]
                    .as_f64()
                    .map_or_else(String::new, |w| format!(" (weight {w}%)"));
                view.event(
                    now - t0,
                    e["kind"].as_str().unwrap_or("event"),
                    &format!("{}{weight}", e["message"].as_str().unwrap_or("")),
                );
            }
        }
        let sample = stats.sample();
        samples.push_back(sample.clone());
        while samples.len() > 5 {
            samples.pop_front();
        }
        let oldest = samples.front().unwrap_or(&sample);
        view.frame(&Frame {
            elapsed: now - t0,
            phase: status.phase.clone(),
            weight: status.weight,
            step: status.step,
            stable: sample.rates_since(oldest, Role::Stable),
            canary: sample.rates_since(oldest, Role::Canary),
            verdict: status.verdict.clone(),
            canary_fault: stage.canary.fault.error_rate(),
        });

        // The story.
        if at_50.is_none() && status.weight.is_some_and(|w| w >= 50.0) {
            at_50 = Some(now);
        }
        if let (Some(t50), None) = (at_50, fault_at) {
            if now >= t50 + opts.healthy_at_50 {
                stage.canary.fault.set_error_rate(opts.canary_error_rate);
                fault_at = Some(Instant::now());
                view.event(
                    now - t0,
                    "fault",
                    &format!(
                        "canary v2-canary now answers {:.0}% of requests with 500",
                        opts.canary_error_rate * 100.0
                    ),
                );
            }
        }
        if fault_at.is_some() && rollback_at.is_none() && status.weight == Some(0.0) {
            rollback_at = Some(now);
        }
        if rollback_at.is_some() && status.abort && done_at.is_none() {
            done_at = Some(now);
        }
        if *interrupted.borrow() {
            view.say("interrupted");
            break;
        }
        if done_at.is_some_and(|d| now >= d + opts.after_rollback) || now >= deadline {
            break;
        }
    }

    let first_err = stats.first_canary_error();
    let detection = match (first_err.or(fault_at), rollback_at) {
        (Some(e), Some(r)) => Some(r.saturating_duration_since(e)),
        _ => None,
    };
    let summary = summarize(
        &stats,
        &status,
        rollback_at.is_some() && status.abort,
        detection,
        fault_at.zip(rollback_at).map(|(f, r)| r - f),
        t0.elapsed(),
    );
    view.freeze();
    view.say("");
    if !status.message.is_empty() {
        view.say(&format!("abort message: {}", status.message));
    }
    view.say(&format!("summary: {}", summary.line()));

    if opts.keep_running {
        stage.load.set_rps(20);
        view.say(&format!(
            "\nstill running (Ctrl-C to stop):\n  proxy        {proxy_url}\n  status page  http://{}/\n  admin API    http://{}/api/v1/status\n  retry        curl -X POST http://{}/api/v1/retry",
            stage.app.admin_addr, stage.app.admin_addr, stage.app.admin_addr
        ));
        let _ = interrupted.wait_for(|i| *i).await;
    }
    signals.abort();
    stage.stop().await;
    Ok(summary)
}

fn summarize(
    stats: &LoadStats,
    status: &Status,
    rolled_back: bool,
    detection: Option<Duration>,
    fault_to_rollback: Option<Duration>,
    elapsed: Duration,
) -> Summary {
    let canary = &stats.roles[Role::Canary.index()];
    use std::sync::atomic::Ordering::Relaxed;
    Summary {
        rolled_back,
        detection,
        fault_to_rollback,
        total_requests: stats.total(),
        failed_requests: stats.failed(),
        canary_failed: canary.errors.load(Relaxed),
        final_phase: if status.phase.is_empty() {
            "?".into()
        } else {
            status.phase.clone()
        },
        final_weight: status.weight,
        message: status.message.clone(),
        elapsed,
    }
}
