//! Semantic checks on a deserialized config. Every rule reports into the
//! collector and carries on, so one `check` run lists every problem.
use std::collections::hash_map::{Entry, HashMap};
use std::net::SocketAddr;
use std::path::Path;

use super::admin;
use super::path::Collector;
use super::window::{window_slots, MAX_WINDOW_SLOTS};
use super::*;
use crate::certs as pem;

pub(super) fn validate(c: &Config, out: &mut Collector) {
    let listen = socket(out, "listen", &c.listen);
    let tls = c.tls.as_ref().and_then(|t| {
        let addr = socket(out, "tls.listen", &t.listen);
        tls_files(out, t);
        addr
    });
    if c.workers > 1024 {
        out.check(
            "workers",
            format!("must be at most 1024 (0 = one per core), got {}", c.workers),
        );
    }
    let admin = socket(out, "admin.listen", &c.admin.listen);
    if c.admin.token.trim() != c.admin.token {
        out.check(
            "admin.token",
            "has leading or trailing whitespace (a stray newline from an env file?)",
        );
    }
    if admin.is_some_and(|a| !a.ip().is_loopback()) {
        if c.admin.token.is_empty() {
            out.check(
                "admin.token",
                "required when admin.listen is not a loopback address",
            );
        } else if let Some(m) = admin::weak_token(&c.admin.token) {
            out.check("admin.token", m);
        }
    }
    distinct_listeners(
        out,
        &[
            ("listen", listen),
            ("tls.listen", tls),
            ("admin.listen", admin),
        ],
    );

    upstream(out, "upstreams.stable", &c.upstreams.stable);
    upstream(out, "upstreams.canary", &c.upstreams.canary);
    let (sv, cv) = (&c.upstreams.stable.version, &c.upstreams.canary.version);
    if let (Some(s), Some(v)) = (sv, cv) {
        if s == v && !s.trim().is_empty() {
            out.check(
                "upstreams.canary.version",
                format!("must differ from upstreams.stable.version (both {s:?}): the metrics could not tell them apart"),
            );
        }
    }
    match &c.state_file {
        Some(f) if f.as_os_str().is_empty() => out.check(
            "state_file",
            "must not be empty (remove the key to keep no state)",
        ),
        Some(_) if cv.is_none() => out.check_all(
            &["state_file"],
            "upstreams.canary.version",
            "required when state_file is set (the saved state belongs to one canary version)",
        ),
        _ => {}
    }

    routing(out, &c.routing);
    analysis(out, &c.analysis, &|f| Some(format!("analysis.{f}")));
    if let Some(r) = &c.rollout {
        rollout(out, r, &c.analysis);
    }
    timeouts(out, &c.timeouts);
    // (hyper's HTTP/1 read buffer has an 8 KiB floor: the proxy enforces smaller
    // limits itself rather than through that buffer.)
    if !(1..=16 << 20).contains(&c.limits.max_header_bytes) {
        out.check(
            "limits.max_header_bytes",
            format!(
                "must be between 1 and 16777216, got {}",
                c.limits.max_header_bytes
            ),
        );
    }
    if c.limits.max_connections == 0 {
        out.check("limits.max_connections", "must be greater than 0");
    }
    if !(1..=MAX_H2_STREAMS).contains(&c.limits.max_h2_streams) {
        out.check(
            "limits.max_h2_streams",
            format!(
                "must be between 1 and {MAX_H2_STREAMS}, got {}",
                c.limits.max_h2_streams
            ),
        );
    }
    if c.retry.attempts > 10 {
        out.check(
            "retry.attempts",
            format!(
                "must be at most 10 (retries after the first try), got {}",
                c.retry.attempts
            ),
        );
    }
    for (i, w) in c.notify.webhooks.iter().enumerate() {
        let p = format!("notify.webhooks[{i}]");
        let up = format!("{p}.url");
        if url(out, &up, &w.url, true) {
            if let Some(a) = admin.filter(|a| admin::targets_admin(&w.url, *a)) {
                out.check(
                    up,
                    format!("points at this proxy's own admin API (admin.listen {a}): every event would be posted back into it (a reload there reloads again)"),
                );
            }
        }
        for (j, e) in w.events.iter().enumerate() {
            if !EVENT_KINDS.contains(&e.as_str()) {
                out.check(
                    format!("{p}.events[{j}]"),
                    format!(
                        "unknown event {e:?} (expected one of: {})",
                        EVENT_KINDS.join(", ")
                    ),
                );
            }
        }
        positive(out, &format!("{p}.timeout"), w.timeout);
    }
}

fn socket(out: &mut Collector, path: &str, s: &str) -> Option<SocketAddr> {
    match s.trim().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            out.check(
                path,
                format!("invalid socket address {s:?}: expected IP:PORT such as 0.0.0.0:8080 or [::]:8080 (host names are not resolved)"),
            );
            None
        }
    }
}

fn distinct_listeners(out: &mut Collector, addrs: &[(&str, Option<SocketAddr>)]) {
    for (i, (pa, a)) in addrs.iter().enumerate() {
        for (pb, b) in &addrs[i + 1..] {
            if let (Some(a), Some(b)) = (a, b) {
                if a == b && a.port() != 0 {
                    out.check(*pb, format!("same address as {pa} ({a})"));
                }
            }
        }
    }
}

/// Returns whether `file` can be opened (reporting why not).
fn readable(out: &mut Collector, path: &str, file: &Path) -> bool {
    let shown = file.display();
    let problem = match std::fs::metadata(file) {
        Ok(m) if m.is_dir() => format!("{shown:?} is a directory, not a file"),
        Ok(_) => match std::fs::File::open(file) {
            Ok(_) => return true,
            Err(e) => format!("cannot read {shown:?}: {e}"),
        },
        Err(e) => {
            format!("cannot read {shown:?}: {e} (relative paths are from the working directory)")
        }
    };
    out.check(path, problem);
    false
}

/// The HTTPS listener's chain and key, loaded and paired as at start-up (a
/// file that is readable but holds no usable PEM used to pass `check`).
fn tls_files(out: &mut Collector, t: &TlsListener) {
    let chain = match readable(out, "tls.cert", &t.cert).then(|| pem::cert_chain(&t.cert)) {
        Some(Ok(c)) => Some(c),
        Some(Err(m)) => {
            out.check("tls.cert", m);
            None
        }
        None => None,
    };
    let key = match readable(out, "tls.key", &t.key).then(|| pem::private_key(&t.key)) {
        Some(Ok(k)) => Some(k),
        Some(Err(m)) => {
            out.check("tls.key", m);
            None
        }
        None => None,
    };
    if let (Some(chain), Some(key)) = (chain, key) {
        if let Err(m) = pem::certified_key(chain, key) {
            out.check(
                "tls.key",
                format!(
                    "{:?} does not match the certificate in tls.cert {:?}: {m}",
                    t.key.display().to_string(),
                    t.cert.display().to_string()
                ),
            );
        }
    }
}

fn positive(out: &mut Collector, path: &str, d: Dur) {
    if d.get().is_zero() {
        out.check(path, "must be greater than 0");
    }
}

/// An absolute http(s) URL with a host. Endpoints (`allow_path == false`) may
/// not carry a path or query: the request's own path is appended to them.
/// Returns whether the URL is valid.
fn url(out: &mut Collector, path: &str, s: &str, allow_path: bool) -> bool {
    match url_problem(s, allow_path) {
        Some(p) => {
            out.check(path, p);
            false
        }
        None => true,
    }
}

/// What is wrong with the URL `s`, if anything.
fn url_problem(s: &str, allow_path: bool) -> Option<String> {
    let problem = match s.parse::<http::Uri>() {
        Err(e) => Some(format!(
            "not an absolute http(s) URL like http://10.0.0.1:8080 ({e})"
        )),
        Ok(u) => match (u.scheme_str(), u.authority()) {
            (None, _) => Some("expected an absolute URL like http://10.0.0.1:8080".into()),
            (Some(sch), _) if sch != "http" && sch != "https" => {
                Some(format!("scheme must be http or https, not {sch:?}"))
            }
            (_, None) => Some("missing host".into()),
            (_, Some(a)) if a.host().is_empty() => Some("missing host".into()),
            (_, Some(a)) if a.as_str().contains('@') => {
                Some("credentials in the URL are not supported".into())
            }
            (_, Some(a)) if a.port_u16() == Some(0) => Some("port 0 is not a valid target".into()),
            _ if !allow_path && !matches!(u.path(), "" | "/") => Some(format!(
                "an endpoint takes no path ({:?}): the request path is forwarded as is",
                u.path()
            )),
            _ if !allow_path && u.query().is_some() => Some("an endpoint takes no query".into()),
            _ => None,
        },
    };
    problem.map(|p| format!("invalid URL {s:?}: {p}"))
}

/// More streams per connection than this is a memory-exhaustion setting, not a limit.
const MAX_H2_STREAMS: u32 = 10_000;

fn upstream(out: &mut Collector, p: &str, u: &Upstream) {
    if let Some(v) = &u.version {
        if v.trim().is_empty() {
            out.check(
                format!("{p}.version"),
                "must not be empty (omit it to use the role name)",
            );
        }
    }
    if u.endpoints.is_empty() {
        out.check(
            format!("{p}.endpoints"),
            "at least one endpoint is required",
        );
    }
    // First index of each endpoint: one pass, so a pool of 100k stays linear.
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(u.endpoints.len());
    for (i, e) in u.endpoints.iter().enumerate() {
        // The path is formatted only for an error: pools can be large.
        let ep = || format!("{p}.endpoints[{i}]");
        if let Some(problem) = url_problem(e, false) {
            out.check(ep(), problem);
        }
        match first.entry(e.as_str()) {
            Entry::Occupied(j) => {
                out.check(ep(), format!("duplicate of {p}.endpoints[{}]", j.get()))
            }
            Entry::Vacant(v) => {
                v.insert(i);
            }
        }
    }
    if let Some(h) = &u.health_check {
        let hp = format!("{p}.health_check");
        if !h.path.starts_with('/') {
            out.check(
                format!("{hp}.path"),
                format!("must start with '/', got {:?}", h.path),
            );
        }
        positive(out, &format!("{hp}.interval"), h.interval);
        positive(out, &format!("{hp}.timeout"), h.timeout);
        if h.timeout >= h.interval && !h.interval.get().is_zero() {
            out.check_all(
                &[&format!("{hp}.interval")],
                format!("{hp}.timeout"),
                format!(
                    "must be shorter than interval ({} >= {})",
                    h.timeout, h.interval
                ),
            );
        }
        for (k, v) in [
            ("unhealthy_after", h.unhealthy_after),
            ("healthy_after", h.healthy_after),
        ] {
            if v < 1 {
                out.check(format!("{hp}.{k}"), "must be at least 1");
            }
        }
    }
    if let Some(ca) = &u.ca {
        let cp = format!("{p}.ca");
        if readable(out, &cp, ca) {
            if let Err(m) = pem::ca_certs(ca) {
                out.check(cp, m);
            }
        }
    }
}

fn weight(out: &mut Collector, path: &str, w: f64) {
    if !(0.0..=100.0).contains(&w) {
        out.check(
            path,
            format!("must be a percentage between 0 and 100, got {w}"),
        );
    } else if ((w * 100.0).round() - w * 100.0).abs() > 1e-6 {
        out.check(path, format!("at most 2 decimals, got {w}"));
    }
}

fn header_name(out: &mut Collector, path: &str, h: &str) {
    if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
        out.check(path, format!("invalid header name {h:?}"));
    }
}

/// RFC 6265 cookie-name: a token (no separators, spaces or controls).
fn cookie_name(out: &mut Collector, path: &str, c: &str) {
    let ok = !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_graphic() && !br#"()<>@,;:\"/[]?={}"#.contains(&b));
    if !ok {
        out.check(path, format!("invalid cookie name {c:?}"));
    }
}

fn routing(out: &mut Collector, r: &Routing) {
    weight(out, "routing.canary_weight", r.canary_weight);
    if let Some(s) = &r.sticky {
        match (&s.cookie, &s.header) {
            (Some(c), None) => cookie_name(out, "routing.sticky.cookie", c),
            (None, Some(h)) => header_name(out, "routing.sticky.header", h),
            (Some(_), Some(_)) => out.check(
                "routing.sticky",
                "set exactly one of `cookie` and `header`, not both",
            ),
            (None, None) => out.check(
                "routing.sticky",
                "set exactly one of `cookie` and `header` (or remove `sticky`)",
            ),
        }
    }
    if let Some(o) = &r.override_ {
        if let Some(h) = &o.header {
            header_name(out, "routing.override.header", h);
        }
        if let Some(c) = &o.cookie {
            cookie_name(out, "routing.override.cookie", c);
        }
        if let Some(v) = &o.header_value {
            if o.header.is_none() {
                out.check(
                    "routing.override.header_value",
                    "needs routing.override.header (the header it is matched on)",
                );
            }
            if v.is_empty() || v == "always" || v == "never" {
                out.check(
                    "routing.override.header_value",
                    format!(
                        "must be a non-empty value other than \"always\" and \"never\", got {v:?}"
                    ),
                );
            }
        }
        if o.header.is_none() && o.cookie.is_none() && o.header_value.is_none() {
            out.check(
                "routing.override",
                "set `header` and/or `cookie` (or remove `override`)",
            );
        }
    }
    if let Some(h) = &r.response_header {
        header_name(out, "routing.response_header", h);
    }
}

/// Checks an effective analysis block. `at(field)` gives the path to blame for a
/// field, or `None` when that field is not written here (a step override that
/// inherits it; the global block reports it).
fn analysis(out: &mut Collector, a: &Analysis, at: &dyn Fn(&str) -> Option<String>) {
    let mut check = |field: &str, bad: bool, msg: String| {
        if let (true, Some(p)) = (bad, at(field)) {
            out.check(p, msg);
        }
    };
    check(
        "interval",
        a.interval.get().is_zero(),
        "must be greater than 0".into(),
    );
    if a.window < a.interval {
        let (w, i) = (a.window, a.interval);
        if at("window").is_some() {
            check(
                "window",
                true,
                format!("must be at least interval ({i}), got {w}"),
            );
        } else {
            check(
                "interval",
                true,
                format!("must not exceed window ({w}), got {i}"),
            );
        }
    }
    let slots = window_slots(a.interval.get(), a.window.get());
    if slots > u128::from(MAX_WINDOW_SLOTS) && !a.interval.get().is_zero() {
        let field = if at("window").is_some() {
            "window"
        } else {
            "interval"
        };
        check(
            field,
            true,
            format!(
                "window {} at interval {} needs {slots} slots, at most {MAX_WINDOW_SLOTS} (the guard keeps one per interval, ~1.3 KB each): lengthen interval or shorten window",
                a.window, a.interval
            ),
        );
    }
    check(
        "min_requests",
        a.min_requests < 1,
        "must be at least 1".into(),
    );
    check(
        "confidence",
        !(a.confidence > 0.0 && a.confidence < 1.0),
        format!(
            "must be strictly between 0 and 1 (e.g. 0.999), got {}",
            a.confidence
        ),
    );
    for (i, s) in a.error_statuses.iter().enumerate() {
        check(
            &format!("error_statuses[{i}]"),
            !valid_status(s),
            format!(r#"invalid status {s:?}: expected a class "1xx".."5xx" or a code 100..599"#),
        );
    }
    let percent = |v: Option<f64>| v.is_some_and(|x| !(x > 0.0 && x <= 100.0));
    check(
        "error_rate.max",
        percent(a.error_rate.max),
        format!(
            "must be a percentage in (0, 100], got {}",
            a.error_rate.max.unwrap_or(0.0)
        ),
    );
    check(
        "error_rate.max_increase",
        percent(a.error_rate.max_increase),
        format!(
            "must be percentage points in (0, 100], got {}",
            a.error_rate.max_increase.unwrap_or(0.0)
        ),
    );
    check(
        "latency.max_p99",
        a.latency.max_p99.is_some_and(|d| d.get().is_zero()),
        "must be greater than 0".into(),
    );
    let ratio = a.latency.max_p99_ratio;
    check(
        "latency.max_p99_ratio",
        ratio.is_some_and(|r| !(r > 1.0 && r.is_finite())),
        format!(
            "must be greater than 1.0 (a multiple of the stable p99), got {}",
            ratio.unwrap_or(0.0)
        ),
    );
}

fn valid_status(s: &str) -> bool {
    let s = s.trim().to_ascii_lowercase();
    match s.strip_suffix("xx") {
        Some(class) => matches!(class, "1" | "2" | "3" | "4" | "5"),
        None => s.len() == 3 && s.parse::<u16>().is_ok_and(|c| (100..=599).contains(&c)),
    }
}

/// Whether a step override writes `field` (dotted, as in [`analysis`]).
fn patch_has(p: &AnalysisPatch, field: &str) -> bool {
    let (head, tail) = field.split_once('.').unwrap_or((field, ""));
    match head {
        "interval" => p.interval.is_some(),
        "window" => p.window.is_some(),
        "min_requests" => p.min_requests.is_some(),
        "confidence" => p.confidence.is_some(),
        "failure_limit" => p.failure_limit.is_some(),
        h if h.starts_with("error_statuses") => p.error_statuses.is_some(),
        "error_rate" => p.error_rate.as_ref().is_some_and(|e| match tail {
            "max" => e.max.is_some(),
            _ => e.max_increase.is_some(),
        }),
        "latency" => p.latency.as_ref().is_some_and(|l| match tail {
            "max_p99" => l.max_p99.is_some(),
            _ => l.max_p99_ratio.is_some(),
        }),
        _ => false,
    }
}

fn rollout(out: &mut Collector, r: &Rollout, global: &Analysis) {
    if r.steps.is_empty() {
        out.check(
            "rollout.steps",
            "at least one step is required (remove `rollout` for manual mode)",
        );
    }
    for (i, s) in r.steps.iter().enumerate() {
        let p = format!("rollout.steps[{i}]");
        match (s.set_weight, &s.pause, &s.analysis) {
            (Some(w), None, a) => {
                weight(out, &format!("{p}.set_weight"), w);
                if let Some(a) = a {
                    let ap = format!("{p}.analysis");
                    for k in ["duration", "timeout"] {
                        let set = if k == "duration" { a.duration.is_some() } else { a.timeout.is_some() };
                        if set {
                            out.check(
                                format!("{ap}.{k}"),
                                "gate keys belong on an `analysis` step of its own, not on a set_weight override",
                            );
                        }
                    }
                    step_analysis(out, &ap, a, global);
                }
            }
            (None, Some(pause), None) => match pause {
                Pause::For(d) => {
                    if d.get().is_zero() {
                        out.check(
                            format!("{p}.pause"),
                            "must be greater than 0 (write `pause: {}` to wait for promote)",
                        );
                    }
                }
                Pause::Indefinite(m) => {
                    if let Some(k) = m.keys().next() {
                        out.check(
                            format!("{p}.pause.{k}"),
                            "`pause` takes a duration like `30s`, or `{}` (empty) to wait for promote",
                        );
                    }
                }
            },
            (None, None, Some(a)) => {
                let ap = format!("{p}.analysis");
                match a.duration {
                    None => out.check(
                        format!("{ap}.duration"),
                        "required on an analysis gate (how long it judges at least)",
                    ),
                    Some(d) => {
                        positive(out, &format!("{ap}.duration"), d);
                        if let Some(t) = a.timeout {
                            if t < d {
                                out.check(
                                    format!("{ap}.timeout"),
                                    format!("must be at least duration ({t} < {d})"),
                                );
                            }
                        }
                    }
                }
                step_analysis(out, &ap, a, global);
            }
            (None, None, None) => out.check(
                p,
                "empty step: write one of `set_weight`, `pause`, or `analysis` (a gate)",
            ),
            _ => out.check(
                p,
                "a step is exactly one of `set_weight` (optionally with `analysis` overrides), `pause`, or `analysis` alone (a gate)",
            ),
        }
    }
}

/// A step's analysis keys, checked as merged over the global block and blamed
/// on the keys the step writes.
fn step_analysis(out: &mut Collector, ap: &str, patch: &AnalysisPatch, global: &Analysis) {
    let mut merged = global.merged(patch);
    if !(out.clean("analysis.window") && out.clean("analysis.interval")) {
        // The global value was unreadable (already reported): don't compare a
        // step's value against its stand-in.
        merged.window = merged.window.max(merged.interval);
    }
    analysis(out, &merged, &|f| {
        patch_has(patch, f).then(|| format!("{ap}.{f}"))
    });
}

fn timeouts(out: &mut Collector, t: &Timeouts) {
    for (k, d) in [
        ("connect", t.connect),
        ("request", t.request),
        ("header_read", t.header_read),
        ("idle", t.idle),
        ("send", t.send),
        ("tunnel_idle", t.tunnel_idle),
    ] {
        positive(out, &format!("timeouts.{k}"), d);
    }
    // drain: 0s is allowed (exit without waiting for in-flight requests).
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The duplicate-endpoint check was quadratic: 100k endpoints took ~5e9
    /// comparisons. One pass now, well under a second even in a debug build.
    #[test]
    fn a_hundred_thousand_endpoints_validate_in_linear_time() {
        let text = "listen: 127.0.0.1:8080\nupstreams:\n  stable: { endpoints: [http://127.0.0.1:9001] }\n  canary: { endpoints: [http://127.0.0.1:9002] }\n";
        let mut c = super::super::parse(text, &|_| None).expect("valid");
        let n = 100_000;
        c.upstreams.stable.endpoints = (0..n)
            .map(|i| format!("http://10.{}.{}.{}:80", i >> 16, (i >> 8) & 255, i & 255))
            .collect();
        c.upstreams
            .stable
            .endpoints
            .push("http://10.0.0.7:80".into());
        let start = std::time::Instant::now();
        let mut out = Collector::default();
        validate(&c, &mut out);
        let took = start.elapsed();
        let errs: Vec<String> = out.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errs,
            [format!(
                "upstreams.stable.endpoints[{n}]: duplicate of upstreams.stable.endpoints[7]"
            )]
        );
        println!("validate {n} endpoints: {took:?}");
        assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    }
}
