//! The one-line description `canary-proxy check` prints for a valid file.
use super::*;

/// e.g. `listen 0.0.0.0:8080; admin 127.0.0.1:9901 (no token); stable "v1" ×2
/// endpoints (health /health every 5s), canary "v2" ×1; plan of 4 steps: 5% →
/// pause 30s → gate 1m → 100%; guard every 250ms at confidence 0.999: error
/// rate ≤ 2%, +1 pt over stable; 1 webhook`.
pub fn summary(c: &Config) -> String {
    let mut parts = Vec::new();
    let mut listen = format!("listen {}", c.listen);
    if let Some(t) = &c.tls {
        listen.push_str(&format!(" + tls {}", t.listen));
    }
    parts.push(listen);
    parts.push(format!(
        "admin {} ({})",
        c.admin.listen,
        if c.admin.token.is_empty() {
            "no token"
        } else {
            "token set"
        }
    ));
    parts.push(format!(
        "{}, {}",
        upstream("stable", &c.upstreams.stable),
        upstream("canary", &c.upstreams.canary)
    ));
    parts.push(match &c.rollout {
        Some(r) => format!(
            "plan of {} steps from {}%: {}",
            r.steps.len(),
            c.routing.canary_weight,
            r.steps.iter().map(step).collect::<Vec<_>>().join(" → ")
        ),
        None => format!("manual weight {}%", c.routing.canary_weight),
    });
    let r = &c.routing;
    if let Some(s) = &r.sticky {
        match (&s.cookie, &s.header) {
            (Some(k), _) => parts.push(format!("sticky by cookie {k}")),
            (_, Some(h)) => parts.push(format!("sticky by header {h}")),
            _ => {}
        }
    }
    if let Some(o) = &r.override_ {
        let by: Vec<String> = [
            o.header.as_ref().map(|h| format!("header {h}")),
            o.cookie.as_ref().map(|k| format!("cookie {k}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        parts.push(format!("override by {}", by.join(" or ")));
    }
    parts.push(guard(&c.analysis));
    if !c.notify.webhooks.is_empty() {
        let n = c.notify.webhooks.len();
        parts.push(format!("{n} webhook{}", if n == 1 { "" } else { "s" }));
    }
    if let Some(f) = &c.state_file {
        parts.push(format!("state file {}", f.display()));
    }
    parts.join("; ")
}

fn upstream(role: &str, u: &Upstream) -> String {
    let n = u.endpoints.len();
    let mut s = format!(
        "{role} {:?} ×{n} endpoint{}",
        u.version.as_deref().unwrap_or(role),
        if n == 1 { "" } else { "s" }
    );
    if let Some(h) = &u.health_check {
        s.push_str(&format!(" (health {} every {})", h.path, h.interval));
    }
    s
}

fn step(s: &Step) -> String {
    match s.kind() {
        StepKind::SetWeight { weight, analysis } => format!(
            "{weight}%{}",
            if analysis.is_some() {
                " with overrides"
            } else {
                ""
            }
        ),
        StepKind::Pause(Some(d)) => format!("pause {}", format_duration(d)),
        StepKind::Pause(None) => "pause until promote".into(),
        StepKind::Gate(a) => format!(
            "gate {}",
            a.duration.map(|d| d.to_string()).unwrap_or_default()
        ),
    }
}

fn guard(a: &Analysis) -> String {
    let limits: Vec<String> = [
        a.error_rate.max.map(|v| format!("error rate ≤ {v}%")),
        a.error_rate
            .max_increase
            .map(|v| format!("+{v} pt over stable")),
        a.latency.max_p99.map(|v| format!("p99 ≤ {v}")),
        a.latency
            .max_p99_ratio
            .map(|v| format!("p99 ≤ {v}× stable")),
    ]
    .into_iter()
    .flatten()
    .collect();
    format!(
        "guard every {} at confidence {}: {}",
        a.interval,
        a.confidence,
        if limits.is_empty() {
            "no limits".to_string()
        } else {
            limits.join(", ")
        }
    )
}
