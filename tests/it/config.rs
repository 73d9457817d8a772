//! The config file and `check`: the real binary on the shipped
//! examples and on broken files, and `config::parse` on the library side.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use canary_proxy::config::{
    self, Analysis, AnalysisPatch, Config, ConfigError, Dur, ErrorRatePatch, LatencyPatch, Pause,
    StepKind,
};

const BIN: &str = env!("CARGO_BIN_EXE_canary-proxy");

/// What `check` runs with: an admin token, as an operator must supply for an
/// example whose admin API listens beyond loopback (none carries a default).
const TEST_ADMIN_TOKEN: &str = "3b9f0c1e7a5d42c8b6e1f09a";

/// Variables the examples read; unset so their `:-` defaults are what is checked.
const EXAMPLE_VARS: &[&str] = &[
    "CANARY_ADMIN_TOKEN",
    "STABLE_VERSION",
    "CANARY_VERSION",
    "CANARY_STATE_FILE",
    "CANARY_DEBUG_VALUE",
    "ALERT_WEBHOOK_URL",
    "TLS_CERT",
    "TLS_KEY",
];

fn check(path: &Path) -> Output {
    check_with_token(path, Some(TEST_ADMIN_TOKEN))
}

/// `check` with CANARY_ADMIN_TOKEN set to `token`, or unset.
fn check_with_token(path: &Path, token: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["check", "--config"]).arg(path);
    for v in EXAMPLE_VARS {
        cmd.env_remove(v);
    }
    if let Some(t) = token {
        cmd.env("CANARY_ADMIN_TOKEN", t);
    }
    cmd.output().expect("run canary-proxy check")
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).expect("write temp config");
    p
}

const MINIMAL: &str = "
listen: 127.0.0.1:8080
upstreams:
  stable: { endpoints: [http://127.0.0.1:9001] }
  canary: { endpoints: [http://127.0.0.1:9002] }
";

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    config::parse(text, &no_env)
}

/// The `path: message` lines of a config that must fail.
fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("config unexpectedly valid:\n{text}"),
        Err(e) => e.messages(),
    }
}

fn assert_has(errs: &[String], prefix: &str) {
    assert!(
        errs.iter().any(|e| e.starts_with(prefix)),
        "no error starting with {prefix:?} in:\n{}",
        errs.join("\n")
    );
}

// ---- the binary ----

#[test]
fn check_accepts_every_shipped_example() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("config/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    for needed in ["canary-proxy.yaml", "sidecar.yaml", "edge.yaml"] {
        assert!(
            files.iter().any(|f| f.ends_with(needed)),
            "config/{needed} missing"
        );
    }
    for f in &files {
        let out = check(f);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}{}",
            f.display(),
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.lines().count(), 1, "one summary line: {stdout}");
        assert!(stdout.contains(": ok ("), "{stdout}");
        assert!(
            stdout.contains("stable") && stdout.contains("canary"),
            "{stdout}"
        );
    }
}

#[test]
fn check_summarises_the_default_example() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/canary-proxy.yaml");
    let out = check(&f);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("listen 0.0.0.0:8080"), "{s}");
    assert!(s.contains("admin 127.0.0.1:9901"), "{s}");
    assert!(s.contains("10% → pause 30s → 50%"), "{s}");
}

#[test]
fn check_lists_every_error_with_its_path_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        &dir,
        "broken.yaml",
        r#"
listen: 0.0.0.0:80800
admin: { listen: 0.0.0.0:9901 }
upstreams:
  stable:
    endpoints: [http://127.0.0.1:9001]
    helth_check: { path: /health }
  canary:
    endpoints: ["htp:/x", http://127.0.0.1:9002/v2]
routing:
  canary_weight: 150
analysis:
  interval: 5
  confidence: 1.5
rollout:
  steps:
    - set_weight: 5
    - pause: { until: promote }
    - analysis: { min_requests: 100 }
notify:
  webhooks: [{ url: "http://hooks.local/x", events: [aborted, explode] }]
"#,
    );
    let out = check(&f);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing on stdout when invalid");
    let lines = stderr_lines(&out);
    let expected = [
        "listen: invalid socket address \"0.0.0.0:80800\"",
        "admin.token: required when admin.listen is not a loopback address",
        "upstreams.stable.helth_check: unknown key `helth_check` (did you mean `health_check`?)",
        "upstreams.canary.endpoints[0]: invalid URL \"htp:/x\"",
        "upstreams.canary.endpoints[1]: invalid URL \"http://127.0.0.1:9002/v2\": an endpoint takes no path",
        "routing.canary_weight: must be a percentage between 0 and 100, got 150",
        "analysis.interval: invalid duration 5: missing unit",
        "analysis.confidence: must be strictly between 0 and 1",
        "rollout.steps[1].pause.until: `pause` takes a duration",
        "rollout.steps[2].analysis.duration: required on an analysis gate",
        "notify.webhooks[0].events[1]: unknown event \"explode\"",
    ];
    for e in expected {
        assert_has(&lines, e);
    }
    assert_eq!(lines.len(), expected.len(), "{}", lines.join("\n"));
    // File order: the lines follow the document.
    let pos = |p: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(p))
            .unwrap_or(usize::MAX)
    };
    assert!(pos("listen:") < pos("upstreams.") && pos("routing.") < pos("rollout."));
}

#[test]
fn check_reports_syntax_errors_env_errors_and_missing_files() {
    let dir = tempfile::tempdir().expect("tempdir");

    let f = write(
        &dir,
        "syntax.yaml",
        "listen: 127.0.0.1:8080\nupstreams:\n  stable: [\n",
    );
    let out = check(&f);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr_lines(&out).join("\n");
    assert!(
        e.contains("YAML syntax error") && e.contains("line 4"),
        "{e}"
    );

    let f = write(
        &dir,
        "env.yaml",
        "listen: ${CANARY_TEST_UNSET_LISTEN}\nupstreams: ${CANARY_TEST_UNSET_UP}\n",
    );
    let out = check(&f);
    assert_eq!(out.status.code(), Some(2));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with(
        "listen: line 1, column 9: environment variable CANARY_TEST_UNSET_LISTEN is not set"
    ));
    assert!(lines[1].contains("CANARY_TEST_UNSET_UP"));

    let out = check(&dir.path().join("absent.yaml"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_lines(&out)[0].starts_with("cannot read"));

    let f = write(&dir, "empty.yaml", "# nothing here\n");
    let out = check(&f);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_lines(&out)[0].contains("`listen` and `upstreams` are required"));
}

/// A self-signed certificate and its key, as PEM files in `dir`.
fn cert_pair(dir: &tempfile::TempDir, name: &str) -> (PathBuf, PathBuf) {
    let (_, cert, key) = crate::support::self_signed(dir.path(), &format!("{name}.test"), name);
    (cert, key)
}

#[test]
fn check_requires_readable_tls_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = cert_pair(&dir, "server");
    let text = format!(
        "{MINIMAL}tls: {{ listen: 127.0.0.1:8443, cert: {}, key: {} }}\n",
        cert.display(),
        dir.path().join("missing.key").display()
    );
    let out = check(&write(&dir, "tls.yaml", &text));
    assert_eq!(out.status.code(), Some(2));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("tls.key: cannot read"), "{lines:?}");

    let text = format!(
        "{MINIMAL}tls: {{ listen: 127.0.0.1:8443, cert: {}, key: {} }}\n",
        cert.display(),
        key.display()
    );
    let out = check(&write(&dir, "tls-ok.yaml", &text));
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("+ tls 127.0.0.1:8443"));
}

/// `canary-proxy run`, killed if it is still running after 20 s.
fn run_briefly(config: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn canary-proxy run");
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("collect run output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `interval: 1ms, window: 277000h` passed `check`, then `run` aborted with
/// "memory allocation of 31910400000000 bytes failed". Both now refuse it.
#[test]
fn analysis_window_slots_are_bounded_and_check_and_run_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        &dir,
        "huge-window.yaml",
        &format!("{MINIMAL}admin: {{ listen: 127.0.0.1:0 }}\nanalysis: {{ interval: 1ms, window: 277000h }}\n"),
    );
    let out = check(&f);
    assert_eq!(out.status.code(), Some(2));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("analysis.window: window 277000h at interval 1ms needs 997200000000 slots, at most 100000"),
        "{lines:?}"
    );
    let (code, stderr) = run_briefly(&f);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("analysis.window: window 277000h"),
        "{stderr}"
    );
    assert!(!stderr.contains("memory allocation"), "{stderr}");

    // The bound itself is accepted; one slot more is not.
    let at = |analysis: &str| parse(&format!("{MINIMAL}analysis: {analysis}\n"));
    at("{ interval: 1ms, window: 100s }").expect("100000 slots");
    at("{ interval: 10us, window: 100s }").expect("sub-ms intervals run at 1 ms");
    let errs = at("{ interval: 1ms, window: 100001ms }")
        .expect_err("100001 slots")
        .messages();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("analysis.window: "), "{errs:?}");
    at("{ interval: 1ms }").expect("60000 slots with the default window");
    // Steps and gates are bounded too, blamed on the key the step writes.
    let errs = errors(&format!(
        "{MINIMAL}analysis: {{ window: 10m }}\nrollout:\n  steps:\n    - set_weight: 5\n      analysis: {{ interval: 1ms }}\n    - analysis: {{ duration: 1m, window: 2000h, interval: 1s }}\n    - set_weight: 50\n      analysis: {{ window: 1000000s }}\n"
    ));
    assert_eq!(
        errs.iter()
            .map(|e| e.split(':').next().unwrap_or_default())
            .collect::<Vec<_>>(),
        [
            "rollout.steps[0].analysis.interval",
            "rollout.steps[1].analysis.window",
            "rollout.steps[2].analysis.window",
        ],
        "{errs:?}"
    );
}

/// A webhook posting into the proxy's own admin API turns every event into a
/// control-plane request (`/api/v1/reload` emits `reloaded`, which reloads...).
#[test]
fn webhook_to_the_own_admin_api_is_refused() {
    let hook = |admin: &str, url: &str| {
        format!("{MINIMAL}admin: {admin}\nnotify:\n  webhooks:\n    - url: http://alerts.example/hook\n    - url: {url}\n")
    };
    let token = "token: 9f1c2a7e5b3d48f6a0c1";
    for (admin, url) in [
        (
            "{ listen: 127.0.0.1:9901 }",
            "http://127.0.0.1:9901/api/v1/reload",
        ),
        (
            "{ listen: 127.0.0.1:9901 }",
            "http://localhost:9901/api/v1/reload",
        ),
        (
            "{ listen: 127.0.0.1:9901 }",
            "http://0.0.0.0:9901/api/v1/pause",
        ),
        ("{ listen: 127.0.0.1:80 }", "http://localhost/api/v1/reload"),
        (
            &format!("{{ listen: 0.0.0.0:9901, {token} }}"),
            "http://127.0.0.1:9901/api/v1/reload",
        ),
        (
            &format!("{{ listen: '[::]:9901', {token} }}"),
            "http://[::1]:9901/api/v1/reload",
        ),
        (
            &format!("{{ listen: 10.1.2.3:9901, {token} }}"),
            "http://10.1.2.3:9901/",
        ),
    ] {
        let errs = errors(&hook(admin, url));
        assert_eq!(errs.len(), 1, "{admin} {url}: {errs:?}");
        assert!(
            errs[0].starts_with("notify.webhooks[1].url: points at this proxy's own admin API"),
            "{admin} {url}: {errs:?}"
        );
    }
    // Elsewhere is fine: another port, another host, the data-plane listener.
    for url in [
        "http://127.0.0.1:9902/hook",
        "http://10.0.0.9:9901/hook",
        "http://127.0.0.1:8080/hook",
    ] {
        parse(&hook("{ listen: 127.0.0.1:9901 }", url)).unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}

/// A 2.4 MB config with 100k endpoints made validation quadratic (~5e9
/// comparisons in the duplicate check; `validate::tests` times that step
/// alone). The whole `check`, YAML parsing included, stays bounded.
#[test]
fn check_takes_a_hundred_thousand_endpoints() {
    let n = 100_000;
    let mut text = String::from("listen: 127.0.0.1:8080\nupstreams:\n  canary: { endpoints: [http://127.0.0.1:9002] }\n  stable:\n    endpoints:\n");
    for i in 0..n {
        text.push_str(&format!(
            "      - http://10.{}.{}.{}:80\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    assert!(text.len() > 2_400_000, "{} bytes", text.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let start = std::time::Instant::now();
    let out = check(&write(&dir, "pool.yaml", &text));
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    println!("check of {n} endpoints (debug build): {took:?}");
    // Generous: YAML parsing of 2.4 MB in a debug build on a shared machine.
    assert!(took < Duration::from_secs(30), "check took {took:?}");

    // A duplicate at the very end still names its first occurrence.
    text.push_str("      - http://10.0.0.7:80\n");
    let errs = errors(&text);
    assert_eq!(
        errs,
        [format!(
            "upstreams.stable.endpoints[{n}]: duplicate of upstreams.stable.endpoints[7]"
        )]
    );
}

/// A readable `upstreams.X.ca`, `tls.cert` or `tls.key` without usable PEM
/// passed `check` and reload, then failed the start. Validation now loads
/// them as the proxy does, so `check` and `run` give the same error.
#[test]
fn pem_files_must_hold_usable_certificates_and_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = cert_pair(&dir, "server");
    let (_, other_key) = cert_pair(&dir, "other");
    let fake_der = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    let with_ca = |ca: &Path| {
        format!(
            "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\nupstreams:\n  stable: {{ endpoints: [http://127.0.0.1:9001] }}\n  canary: {{ endpoints: [https://127.0.0.1:9002], ca: {} }}\n",
            ca.display()
        )
    };
    let with_tls = |c: &Path, k: &Path| {
        format!(
            "{MINIMAL}tls: {{ listen: 127.0.0.1:0, cert: {}, key: {} }}\n",
            c.display(),
            k.display()
        )
    };
    let ca_cases = [
        ("empty.pem", "", "no PEM certificate in the file"),
        (
            "garbage.pem",
            "\u{0}\u{1}garbage",
            "no PEM certificate in the file",
        ),
        (
            "key-only.pem",
            &std::fs::read_to_string(&key).expect("key"),
            "no PEM certificate",
        ),
        ("fake.pem", fake_der, "is not a usable CA certificate"),
        (
            "torn.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n",
            "not valid PEM",
        ),
    ];
    for (name, body, says) in ca_cases {
        let ca = write(&dir, name, body);
        let errs = errors(&with_ca(&ca));
        assert_eq!(errs.len(), 1, "{name}: {errs:?}");
        assert!(
            errs[0].starts_with("upstreams.canary.ca: "),
            "{name}: {errs:?}"
        );
        assert!(errs[0].contains(says), "{name}: {errs:?}");
    }
    parse(&with_ca(&cert)).expect("a real certificate is a usable CA");

    let junk = write(&dir, "junk.txt", "not pem at all\n");
    for (c, k, path, says) in [
        (&junk, &key, "tls.cert: ", "no PEM certificate"),
        (&cert, &junk, "tls.key: ", "no PEM private key"),
        (
            &cert,
            &other_key,
            "tls.key: ",
            "does not match the certificate in tls.cert",
        ),
    ] {
        let errs = errors(&with_tls(c, k));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(path) && errs[0].contains(says),
            "{errs:?}"
        );
    }

    // The binary: `check` and `run` refuse the same file with the same line.
    for (name, text, path) in [
        (
            "bad-ca.yaml",
            with_ca(&write(&dir, "fake2.pem", fake_der)),
            "upstreams.canary.ca: ",
        ),
        ("bad-key.yaml", with_tls(&cert, &other_key), "tls.key: "),
    ] {
        let f = write(&dir, name, &text);
        let out = check(&f);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let lines = stderr_lines(&out);
        assert_eq!(lines.len(), 1, "{name}: {lines:?}");
        assert!(lines[0].starts_with(path), "{name}: {lines:?}");
        let (code, stderr) = run_briefly(&f);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(stderr.contains(&lines[0]), "{name}: run said {stderr}");
    }
}

/// `config/edge.yaml` put the admin API on 0.0.0.0 with the token defaulting
/// to `change-me`, and `check` accepted it. No example listening beyond
/// loopback carries a default token now, and `check` refuses placeholders and
/// short tokens there.
#[test]
fn a_non_loopback_admin_api_needs_a_real_token() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for example in ["config/edge.yaml", "config/compose/canary-proxy.yaml"] {
        let f = root.join(example);
        let text = std::fs::read_to_string(&f).expect("example");
        assert!(text.contains("listen: 0.0.0.0:9901"), "{example}");
        assert!(
            text.contains("token: \"${CANARY_ADMIN_TOKEN}\""),
            "{example}"
        );
        assert!(
            !text.contains("CANARY_ADMIN_TOKEN:-"),
            "{example}: a default token"
        );

        let out = check_with_token(&f, None);
        assert_eq!(out.status.code(), Some(2), "{example} without a token");
        let lines = stderr_lines(&out);
        assert_eq!(lines.len(), 1, "{example}: {lines:?}");
        assert!(
            lines[0].starts_with("admin.token: ")
                && lines[0].contains("environment variable CANARY_ADMIN_TOKEN is not set"),
            "{example}: {lines:?}"
        );
        for (token, says) in [
            ("", "admin.token: required when admin.listen is not a loopback address"),
            ("change-me", "admin.token: \"change-me\" is a well-known placeholder"),
            ("changeme", "admin.token: \"changeme\" is a well-known placeholder"),
            ("secret", "admin.token: \"secret\" is a well-known placeholder"),
            ("token", "admin.token: \"token\" is a well-known placeholder"),
            ("s3cr3t-Tok3n", "admin.token: too short for a non-loopback admin.listen (12 characters, at least 16)"),
        ] {
            let out = check_with_token(&f, Some(token));
            assert_eq!(out.status.code(), Some(2), "{example} with {token:?}");
            let lines = stderr_lines(&out);
            assert_eq!(lines.len(), 1, "{example} with {token:?}: {lines:?}");
            assert!(lines[0].starts_with(says), "{example} with {token:?}: {lines:?}");
        }
        let out = check_with_token(&f, Some(TEST_ADMIN_TOKEN));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{example}: {:?}",
            stderr_lines(&out)
        );
    }
    // On loopback a short token is the operator's choice.
    parse(&format!(
        "{MINIMAL}admin: {{ listen: 127.0.0.1:9901, token: s3cret }}\n"
    ))
    .expect("loopback");
    for admin in ["'10.1.2.3:9901'", "'[::]:9901'"] {
        let errs = errors(&format!(
            "{MINIMAL}admin: {{ listen: {admin}, token: Change_Me }}\n"
        ));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("admin.token: \"Change_Me\" is a well-known placeholder"),
            "{errs:?}"
        );
    }
}

// ---- the library ----

#[test]
fn minimal_config_gets_every_default() {
    let c = parse(MINIMAL).expect("valid");
    assert_eq!(c.workers, 0);
    assert_eq!(c.admin, config::Admin::default());
    assert_eq!(c.analysis, Analysis::default());
    assert_eq!(c.timeouts, config::Timeouts::default());
    assert_eq!(c.limits, config::Limits::default());
    assert_eq!(c.retry, config::Retry::default());
    assert_eq!(c.routing, config::Routing::default());
    assert!(c.tls.is_none() && c.rollout.is_none() && c.state_file.is_none());
    assert!(c.notify.webhooks.is_empty());
    assert_eq!(c.upstreams.canary.version, None);
    // The abuse limits: NGINX send_timeout, HAProxy timeout tunnel and maxconn.
    assert_eq!(c.timeouts.send.get(), std::time::Duration::from_secs(60));
    assert_eq!(
        c.timeouts.tunnel_idle.get(),
        std::time::Duration::from_secs(3600)
    );
    assert_eq!(c.limits.max_h2_streams, 128);
    assert_eq!(c.upstreams.stable.max_connections, 0, "0 = unlimited");
    // A section left empty (all children commented out) is its defaults too.
    let c2 = parse(&format!("{MINIMAL}analysis:\nrouting: {{}}\n")).expect("valid");
    assert_eq!(c2, c);
}

#[test]
fn environment_is_expanded_into_values() {
    let env = |k: &str| match k {
        "PORT" => Some("8088".to_string()),
        "WEIGHT" => Some("12.5".to_string()),
        "TOKEN" => Some("a-long-random-admin-token".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    let text = "
listen: 127.0.0.1:${PORT}      # ${NOT_EXPANDED_IN_COMMENTS}
admin: { listen: '0.0.0.0:9901', token: \"${TOKEN}\" }
upstreams:
  stable: { endpoints: [http://127.0.0.1:9001], version: ${STABLE_V:-v1} }
  canary: { endpoints: [http://127.0.0.1:9002], version: '${EMPTY:-v2}' }
routing: { canary_weight: ${WEIGHT}, response_header: 'x-$${literal}' }
";
    let c = config::parse(text, &env);
    // `$${` is a literal `${`, which is not a valid header name: the error proves it.
    let errs = c.expect_err("literal ${ in a header name").messages();
    assert_eq!(
        errs,
        ["routing.response_header: invalid header name \"x-${literal}\""]
    );
    let c = config::parse(&text.replace("'x-$${literal}'", "x-version"), &env).expect("valid");
    assert_eq!(c.listen, "127.0.0.1:8088");
    assert_eq!(c.admin.token, "a-long-random-admin-token");
    assert_eq!(c.routing.canary_weight, 12.5);
    assert_eq!(c.upstreams.stable.version.as_deref(), Some("v1"));
    assert_eq!(c.upstreams.canary.version.as_deref(), Some("v2"));

    let errs = config::parse("listen: ${A}\nupstreams: ${B:-}\nx: ${C}", &env)
        .expect_err("unset")
        .messages();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].starts_with("listen: line 1, column 9: environment variable A is not set"));
    assert!(errs[1].starts_with("x: line 3, column 4: environment variable C"));

    // Unquoted references are typed as YAML types the result: numbers stay numbers.
    let weight = |w: Option<&str>| {
        let text = format!("{MINIMAL}routing: {{ canary_weight: ${{W:-5}} }}\n");
        let env = |k: &str| (k == "W").then(|| w.unwrap_or_default().to_string());
        config::parse(&text, &env).map(|c| c.routing.canary_weight)
    };
    assert_eq!(weight(None).expect("default"), 5.0);
    assert_eq!(weight(Some("")).expect("empty: default"), 5.0);
    assert_eq!(weight(Some("12.5")).expect("set"), 12.5);
    let errs = weight(Some("lots")).expect_err("not a number").messages();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("routing.canary_weight: invalid type: string \"lots\""));
}

/// A variable holding a line break (and a quote to close the scalar it sits
/// in) used to add keys to the file: `routing.canary_weight: 100` here.
#[test]
fn environment_values_cannot_add_keys() {
    let base = "
listen: 127.0.0.1:8080
upstreams:
  stable: { endpoints: [\"http://127.0.0.1:9001\"] }
  canary:
    endpoints: [\"http://127.0.0.1:9002\"]
    version: REF
";
    for (reference, value) in [
        ("${V}", "v2\nrouting: { canary_weight: 100 }"),
        ("\"${V}\"", "v2\"\nrouting: { canary_weight: 100 } #"),
        ("'${V}'", "v2'\nrouting: { canary_weight: 100 } #"),
        ("[${V}]", "v2]\nrouting: { canary_weight: 100 } #"),
    ] {
        let text = base.replace("REF", reference);
        let env = |k: &str| (k == "V").then(|| value.to_string());
        let what = format!("version: {reference} with V={value:?}");
        match config::parse(&text, &env) {
            Ok(c) => {
                assert_eq!(c.routing.canary_weight, 0.0, "{what}");
                assert_eq!(c.upstreams.canary.version.as_deref(), Some(value), "{what}");
            }
            // `[${V}]` is a list where a string belongs: refused at that field.
            Err(e) => {
                let errs = e.messages();
                assert_eq!(errs.len(), 1, "{what}: {errs:?}");
                assert!(
                    errs[0].starts_with("upstreams.canary.version: "),
                    "{what}: {errs:?}"
                );
                assert!(reference.starts_with('['), "{what}: {errs:?}");
            }
        }
    }

    // A webhook URL cannot bring a second webhook along.
    let text = format!("{MINIMAL}notify:\n  webhooks:\n    - url: ${{HOOK}}\n");
    let hook = "http://hooks.example/a\n    - url: http://attacker.example/";
    let env = |k: &str| (k == "HOOK").then(|| hook.to_string());
    let errs = config::parse(&text, &env)
        .expect_err("a URL with a line break")
        .messages();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("notify.webhooks[0].url: invalid URL"),
        "{errs:?}"
    );
}

#[test]
fn unknown_keys_are_named_with_their_path_at_every_depth() {
    let text = format!(
        "{MINIMAL}
rollouts: {{}}
routing: {{ overide: {{ header: x-canary }} }}
analysis:
  latency: {{ max_p99_ration: 1.5 }}
  error_rate: {{ max: 2, maximum: 3 }}
rollout:
  steps:
    - set_weight: 5
    - set_weight: 10
      analysis: {{ error_rate: {{ max_inc: 1 }} }}
timeouts: {{ conect: 1s, idle: 90s }}
"
    )
    .replace(
        "stable: { endpoints: [http://127.0.0.1:9001] }",
        "stable: { endpoints: [http://127.0.0.1:9001], verison: v1 }",
    );
    let errs = errors(&text);
    for p in [
        "upstreams.stable.verison: unknown key `verison` (did you mean `version`?)",
        "rollouts: unknown key `rollouts` (did you mean `rollout`?)",
        "routing.overide: unknown key `overide` (did you mean `override`?)",
        "analysis.latency.max_p99_ration: unknown key `max_p99_ration` (did you mean `max_p99_ratio`?)",
        "analysis.error_rate.maximum: unknown key `maximum`",
        "rollout.steps[1].analysis.error_rate.max_inc: unknown key `max_inc`",
        "timeouts.conect: unknown key `conect` (did you mean `connect`?)",
    ] {
        assert_has(&errs, p);
    }
    assert_eq!(errs.len(), 7, "{}", errs.join("\n"));
}

#[test]
fn durations_take_units_and_reject_bare_numbers() {
    let c = parse(&format!(
        "{MINIMAL}timeouts: {{ connect: 250ms, request: 1.5s, header_read: 2m, idle: 1h, drain: 0s }}\n"
    ))
    .expect("valid");
    assert_eq!(c.timeouts.connect.get(), Duration::from_millis(250));
    assert_eq!(c.timeouts.request.get(), Duration::from_millis(1500));
    assert_eq!(c.timeouts.header_read.get(), Duration::from_secs(120));
    assert_eq!(c.timeouts.idle.get(), Duration::from_secs(3600));
    assert_eq!(config::format_duration(c.timeouts.idle.get()), "1h");

    let errs = errors(&format!(
        "{MINIMAL}timeouts: {{ connect: 10, request: 5 days, idle: 0s }}\n"
    ));
    assert_has(&errs, "timeouts.connect: invalid duration 10: missing unit");
    assert_has(&errs, "timeouts.request: invalid duration \"5 days\"");
    assert_has(&errs, "timeouts.idle: must be greater than 0");
    assert_eq!(errs.len(), 3, "{errs:?}");
}

#[test]
fn step_overrides_deep_merge_over_the_global_block() {
    let global = parse(&format!(
        "{MINIMAL}analysis:
  min_requests: 50
  error_rate: {{ max: 2.0, max_increase: 1.0 }}
  latency: {{ max_p99: 500ms, max_p99_ratio: 1.5 }}
"
    ))
    .expect("valid")
    .analysis;
    let patch = AnalysisPatch {
        error_rate: Some(ErrorRatePatch {
            max: Some(Some(1.0)),
            max_increase: None,
        }),
        latency: Some(LatencyPatch {
            max_p99: Some(None),
            max_p99_ratio: None,
        }),
        ..Default::default()
    };
    let m = global.merged(&patch);
    assert_eq!(m.error_rate.max, Some(1.0));
    assert_eq!(m.error_rate.max_increase, Some(1.0), "sibling key kept");
    assert_eq!(m.latency.max_p99, None, "explicit null disables");
    assert_eq!(m.latency.max_p99_ratio, Some(1.5));
    assert_eq!(m.min_requests, 50);
    assert_eq!(m.interval, global.interval);
    assert_eq!(global.merged(&AnalysisPatch::default()), global);

    // The same through YAML: `null` vs absent is preserved in the patch.
    let c = parse(&format!(
        "{MINIMAL}rollout:
  steps:
    - set_weight: 5
      analysis: {{ min_requests: 10, error_rate: {{ max: 1.0 }}, latency: {{ max_p99: null }} }}
    - analysis: {{ duration: 1m, min_requests: 500 }}
    - pause: 30s
    - pause: {{}}
    - set_weight: 100
"
    ))
    .expect("valid");
    let steps = &c.rollout.as_ref().expect("plan").steps;
    let StepKind::SetWeight {
        weight,
        analysis: Some(p),
    } = steps[0].kind()
    else {
        panic!("step 0: {:?}", steps[0].kind());
    };
    assert_eq!(weight, 5.0);
    let lat = p.latency.as_ref().expect("latency patch");
    assert_eq!(lat.max_p99, Some(None));
    assert_eq!(lat.max_p99_ratio, None);
    let m = c.analysis.merged(p);
    assert_eq!(
        (m.min_requests, m.error_rate.max, m.latency.max_p99),
        (10, Some(1.0), None)
    );
    assert_eq!(
        m.error_rate.max_increase,
        c.analysis.error_rate.max_increase
    );

    let StepKind::Gate(g) = steps[1].kind() else {
        panic!("step 1 is a gate")
    };
    assert_eq!(g.duration, Some(Dur::secs(60)));
    assert_eq!(g.gate_timeout(), Some(Duration::from_secs(300)));
    assert_eq!(
        steps[2].kind(),
        StepKind::Pause(Some(Duration::from_secs(30)))
    );
    assert_eq!(steps[3].kind(), StepKind::Pause(None));
    assert!(matches!(steps[3].pause, Some(Pause::Indefinite(ref m)) if m.is_empty()));
}

#[test]
fn step_shapes_are_validated() {
    let errs = errors(&format!(
        "{MINIMAL}rollout:
  steps:
    - set_weight: 5
      analysis: {{ duration: 1m, window: 10ms }}
    - set_weight: 10.123
    - set_weight: 20
      pause: 1s
    - analysis: {{ duration: 2m, timeout: 1m, confidence: 1 }}
    - {{}}
    - pause: 0s
"
    ));
    for p in [
        "rollout.steps[0].analysis.duration: gate keys belong on an `analysis` step",
        "rollout.steps[0].analysis.window: must be at least interval",
        "rollout.steps[1].set_weight: at most 2 decimals",
        "rollout.steps[2]: a step is exactly one of",
        "rollout.steps[3].analysis.timeout: must be at least duration",
        "rollout.steps[3].analysis.confidence: must be strictly between 0 and 1",
        "rollout.steps[4]: empty step",
        "rollout.steps[5].pause: must be greater than 0",
    ] {
        assert_has(&errs, p);
    }
    assert_eq!(errs.len(), 8, "{}", errs.join("\n"));
    assert_has(
        &errors(&format!("{MINIMAL}rollout: {{ steps: [] }}\n")),
        "rollout.steps: at least one step",
    );
}

#[test]
fn semantic_rules() {
    let cases: &[(&str, &str)] = &[
        (
            "state_file: /tmp/s.json\n",
            "upstreams.canary.version: required when state_file is set",
        ),
        (
            "admin: { listen: '10.1.2.3:9901' }\n",
            "admin.token: required when admin.listen is not a loopback address",
        ),
        (
            "admin: { listen: localhost:9901 }\n",
            "admin.listen: invalid socket address",
        ),
        (
            "admin: { listen: '127.0.0.1:8080' }\n",
            "admin.listen: same address as listen",
        ),
        (
            "routing: { sticky: {} }\n",
            "routing.sticky: set exactly one of `cookie` and `header`",
        ),
        (
            "routing: { sticky: { cookie: 'a b' } }\n",
            "routing.sticky.cookie: invalid cookie name",
        ),
        (
            "routing: { sticky: { header: 'a:b' } }\n",
            "routing.sticky.header: invalid header name",
        ),
        (
            "routing: { override: { header_value: x } }\n",
            "routing.override.header_value: needs routing.override.header",
        ),
        (
            "routing: { response_header: 'x y' }\n",
            "routing.response_header: invalid header name",
        ),
        (
            "routing: { canary_weight: -1 }\n",
            "routing.canary_weight: must be a percentage between 0 and 100",
        ),
        (
            "analysis: { interval: 0s }\n",
            "analysis.interval: must be greater than 0",
        ),
        (
            "analysis: { window: 100ms, interval: 1s }\n",
            "analysis.window: must be at least interval",
        ),
        (
            "analysis: { min_requests: 0 }\n",
            "analysis.min_requests: must be at least 1",
        ),
        (
            "analysis: { confidence: 0 }\n",
            "analysis.confidence: must be strictly between 0 and 1",
        ),
        (
            "analysis: { error_statuses: [5xx, 6xx] }\n",
            "analysis.error_statuses[1]: invalid status \"6xx\"",
        ),
        (
            "analysis: { error_statuses: [99] }\n",
            "analysis.error_statuses[0]: invalid status \"99\"",
        ),
        (
            "analysis: { error_rate: { max: 0 } }\n",
            "analysis.error_rate.max: must be a percentage",
        ),
        (
            "analysis: { error_rate: { max_increase: -2 } }\n",
            "analysis.error_rate.max_increase: must be percentage points",
        ),
        (
            "analysis: { latency: { max_p99: 0ms } }\n",
            "analysis.latency.max_p99: must be greater than 0",
        ),
        (
            "analysis: { latency: { max_p99_ratio: 1.0 } }\n",
            "analysis.latency.max_p99_ratio: must be greater than 1.0",
        ),
        (
            "limits: { max_connections: 0 }\n",
            "limits.max_connections: must be greater than 0",
        ),
        (
            "limits: { max_h2_streams: 0 }\n",
            "limits.max_h2_streams: must be between 1 and 10000, got 0",
        ),
        (
            "limits: { max_h2_streams: 100000 }\n",
            "limits.max_h2_streams: must be between 1 and 10000, got 100000",
        ),
        (
            "timeouts: { send: 0s }\n",
            "timeouts.send: must be greater than 0",
        ),
        (
            "timeouts: { tunnel_idle: 0ms }\n",
            "timeouts.tunnel_idle: must be greater than 0",
        ),
        (
            "limits: { max_h2_streams: -1 }\n",
            "limits.max_h2_streams: invalid value",
        ),
        (
            "retry: { attempts: 11 }\n",
            "retry.attempts: must be at most 10",
        ),
        (
            "retry: { on: [timeout] }\n",
            "retry.on[0]: unknown variant `timeout`",
        ),
        (
            "notify: { webhooks: [{ url: 'ftp://x' }] }\n",
            "notify.webhooks[0].url: invalid URL \"ftp://x\": scheme must be http or https",
        ),
        (
            "notify: { webhooks: [{ url: 'http://x', timeout: 0s }] }\n",
            "notify.webhooks[0].timeout: must be greater than 0",
        ),
        (
            "notify: { webhooks: [{ events: [step] }] }\n",
            "notify.webhooks[0].url: required",
        ),
        ("workers: -1\n", "workers: invalid value"),
        ("workers: 5000\n", "workers: must be at most 1024"),
        (
            "admin: { token: \"t0ken\\n\" }\n",
            "admin.token: has leading or trailing whitespace",
        ),
        (
            "limits: { max_header_bytes: 0 }\n",
            "limits.max_header_bytes: must be between 1 and 16777216",
        ),
        ("state_file: ''\n", "state_file: must not be empty"),
        (
            "upstreams: 5\n",
            "upstreams: expected a mapping of keys, found integer `5`",
        ),
    ];
    for (extra, expected) in cases {
        // Later keys replace MINIMAL's where repeated, so build the file by merging text.
        let text = if extra.starts_with("upstreams:") {
            format!("listen: 127.0.0.1:8080\n{extra}")
        } else {
            format!("{MINIMAL}{extra}")
        };
        let errs = errors(&text);
        assert_has(&errs, expected);
        assert_eq!(errs.len(), 1, "{extra}: {}", errs.join("\n"));
    }
    // The good side of a few of those rules.
    for extra in [
        "state_file: /tmp/s.json\n",
        "admin: { listen: '0.0.0.0:9901', token: 9f1c2a7e5b3d48f6 }\n",
        "analysis: { error_statuses: [5xx, 429, \"503\"] }\n",
        "routing: { canary_weight: 33.33, sticky: { header: X-User-Id } }\n",
        "notify: { webhooks: [{ url: 'https://hooks.example/x/y?z=1', events: [aborted, promoted] }] }\n",
    ] {
        let text = format!("{MINIMAL}{extra}").replace(
            "canary: { endpoints",
            "canary: { version: v2, endpoints",
        );
        if let Err(e) = parse(&text) {
            panic!("{extra}: {:?}", e.messages());
        }
    }
    let c = parse(&format!(
        "{MINIMAL}analysis: {{ error_statuses: [5xx, 429] }}\n"
    ))
    .expect("valid");
    assert_eq!(c.analysis.error_statuses, ["5xx", "429"]);
}

#[test]
fn endpoint_urls() {
    let with = |eps: &str| {
        format!(
            "listen: 127.0.0.1:8080\nupstreams:\n  stable: {{ endpoints: [http://127.0.0.1:9001] }}\n  canary: {{ endpoints: {eps} }}\n"
        )
    };
    for ok in ["[http://10.0.0.3:8080, 'https://canary.internal', 'http://[::1]:9002/']"] {
        if let Err(e) = parse(&with(ok)) {
            panic!("{ok}: {:?}", e.messages());
        }
    }
    let errs = errors(&with(
        "['10.0.0.3:8080', 'http://a/b', 'http://a?x=1', 'http://u:p@a', 'http://a:0', http://b, http://b]",
    ));
    assert_has(
        &errs,
        "upstreams.canary.endpoints[0]: invalid URL \"10.0.0.3:8080\"",
    );
    assert_has(
        &errs,
        "upstreams.canary.endpoints[1]: invalid URL \"http://a/b\": an endpoint takes no path",
    );
    assert_has(
        &errs,
        "upstreams.canary.endpoints[2]: invalid URL \"http://a?x=1\"",
    );
    assert_has(
        &errs,
        "upstreams.canary.endpoints[3]: invalid URL \"http://u:p@a\"",
    );
    assert_has(
        &errs,
        "upstreams.canary.endpoints[4]: invalid URL \"http://a:0\"",
    );
    assert_has(
        &errs,
        "upstreams.canary.endpoints[6]: duplicate of upstreams.canary.endpoints[5]",
    );
    assert_eq!(errs.len(), 6, "{}", errs.join("\n"));
    assert_has(
        &errors(&with("[]")),
        "upstreams.canary.endpoints: at least one endpoint is required",
    );
}

#[test]
fn several_type_errors_in_one_section_are_all_reported() {
    let errs = errors(
        "
listen: [not, a, string]
upstreams:
  stable:
    endpoints: [http://127.0.0.1:9001, {host: x}]
    health_check: { interval: fast, unhealthy_after: many, path: health }
  canary:
    version: ''
analysis: { min_requests: lots, error_rate: { max: high }, latency: { max_p99: 1 } }
",
    );
    for p in [
        "listen: invalid type: sequence",
        "upstreams.stable.endpoints[1]: invalid type: map, expected a string",
        "upstreams.stable.health_check.interval: invalid duration \"fast\"",
        "upstreams.stable.health_check.unhealthy_after: invalid type: string \"many\"",
        "upstreams.stable.health_check.path: must start with '/'",
        "upstreams.canary.endpoints: required",
        "upstreams.canary.version: must not be empty",
        "analysis.min_requests: invalid type: string \"lots\"",
        "analysis.error_rate.max: invalid type: string \"high\", expected a number",
        "analysis.latency.max_p99: invalid duration 1: missing unit",
    ] {
        assert_has(&errs, p);
    }
    assert_eq!(errs.len(), 10, "{}", errs.join("\n"));

    // Elements no stand-in fits (enum values) are dropped; later ones keep the
    // index written in the file.
    let errs = errors(&format!(
        "{MINIMAL}retry: {{ on: [timeout, connect_failure, bogus, [x]], attempts: 11 }}\n"
    ));
    assert_eq!(
        errs,
        [
            "retry.on[0]: unknown variant `timeout`, expected `connect_failure`",
            "retry.on[2]: unknown variant `bogus`, expected `connect_failure`",
            "retry.on[3]: invalid type: sequence, expected a single value",
            "retry.attempts: must be at most 10 (retries after the first try), got 11",
        ]
    );
}

#[test]
fn numbers_where_strings_belong_ask_for_quotes_and_empty_sections_are_still_checked() {
    let errs = errors(
        "
listen: 127.0.0.1:8080
upstreams:
  stable: { endpoints: [http://127.0.0.1:9001], version: 1.10 }
  canary:
state_file: /tmp/state.json
",
    );
    assert_eq!(
        errs,
        [
            "upstreams.stable.version: invalid type: floating point `1.1`, expected a string (put it in quotes)",
            "upstreams.canary.endpoints: required",
            "upstreams.canary.version: required when state_file is set (the saved state belongs to one canary version)",
        ]
    );
}

/// An annotated example using every key, verbatim but for the TLS file paths.
const FULL_EXAMPLE: &str = r#"
listen: 0.0.0.0:8080              # plain HTTP/1.1 + h2c (prior knowledge)
workers: 0                        # runtime worker threads; 0 = one per core
tls:                              # optional second listener, HTTPS with ALPN h2,http/1.1
  listen: 0.0.0.0:8443
  cert: certs/server.pem
  key: certs/server.key
admin:
  listen: 127.0.0.1:9901
  token: ${CANARY_ADMIN_TOKEN:-}  # when non-empty, every POST/PUT/DELETE needs "Authorization: Bearer <token>"
                                  # a non-loopback admin listen with no token is a config error
upstreams:
  stable:
    version: v1-stable            # value of the `version` metric label; default "stable"
    endpoints: [http://10.0.0.1:8080, http://10.0.0.2:8080]   # http or https
    health_check: { path: /health, interval: 5s, timeout: 1s, unhealthy_after: 3, healthy_after: 2 }
  canary:
    version: v2-canary            # default "canary"; required when state_file is set (it names the rollout)
    endpoints: [http://10.0.0.3:8080]
routing:
  canary_weight: 0                # percent of traffic, 0..100, up to 2 decimals; the starting weight
  sticky:                         # optional: the same client keeps its version while weights rise
    cookie: canary_id             # hash this cookie; if absent, assign one and Set-Cookie it
    # header: x-user-id           # or hash a header instead
  override:                       # NGINX canary-by-header / canary-by-cookie semantics
    header: x-canary              # value "always" -> canary, "never" -> stable, anything else falls through
    # header_value: beta-testers  # optional: this exact value also -> canary, and is the only way in after an abort
    cookie: canary                # same values
  response_header: x-canary-version   # optional: tell the client which version answered
analysis:                         # the always-on guard; see §6 (values here illustrate the keys)
  interval: 250ms                 # how often the guard decides
  window: 60s                     # span of the status/latency figures shown and of ratio baselines
  min_requests: 20
  confidence: 0.999               # P(a canary at half of every limit runs an hour with no abort)
  failure_limit: 0                # abort after more than this many consecutive Failed checks
  error_statuses: ["5xx"]         # also counted as errors: connect failure, upstream timeout
  error_rate: { max: 2.0, max_increase: 1.0 }    # percent; max_increase = points above stable
  latency: { max_p99: 500ms, max_p99_ratio: 1.5 }
rollout:                          # optional progressive plan; without it the weight is manual
  steps:
    - set_weight: 5
      analysis: { error_rate: { max: 1.0 }, latency: { max_p99: 500ms } }   # deep-merged over the global block from here on
    - pause: 30s
    - set_weight: 25
    - analysis: { duration: 1m, min_requests: 500, timeout: 5m }   # gate: wait for a confident pass
    - set_weight: 50
    - pause: {}                   # indefinite: wait for POST /api/v1/promote
    - set_weight: 100
timeouts: { connect: 1s, request: 30s, header_read: 10s, idle: 90s, drain: 30s, send: 60s, tunnel_idle: 1h }
  # idle: wait for the next request's first byte on a kept-alive connection;
  # header_read: first byte to end of headers (hyper's own header timer alone conflates the two)
limits: { max_header_bytes: 65536, max_connections: 10000, max_h2_streams: 128 }
retry: { attempts: 2, on: [connect_failure] }   # retries after the first try; idempotent methods;
                                                # only before the request was handed to the connection
state_file: /var/lib/canary-proxy/state.json    # optional; see §7.2
notify:
  webhooks:
    - url: http://alerts.example/hook
      events: [aborted, promoted, step]
      timeout: 2s
"#;

#[test]
fn the_spec_example_is_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = cert_pair(&dir, "server");
    let text = FULL_EXAMPLE
        .replace("certs/server.pem", &cert.display().to_string())
        .replace("certs/server.key", &key.display().to_string());
    let c = match parse(&text) {
        Ok(c) => c,
        Err(e) => panic!("{}", e.messages().join("\n")),
    };
    assert_eq!(c.admin.token, "", "an empty `token:` is no token");
    assert_eq!(c.rollout.as_ref().map(|r| r.steps.len()), Some(7));
    assert_eq!(c.upstreams.canary.version.as_deref(), Some("v2-canary"));
    let env = |k: &str| (k == "CANARY_ADMIN_TOKEN").then(|| "s3cret".to_string());
    let c = config::parse(&text, &env).expect("valid with a token");
    assert_eq!(c.admin.token, "s3cret");
}
