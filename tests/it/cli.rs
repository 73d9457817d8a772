//! The command line of the real binary: every `--help` explains every option
//! and subcommand, and logs carry no colour codes when they go to a pipe.
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_canary-proxy");

fn help(sub: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(sub)
        .arg("--help")
        .env_remove("NO_COLOR")
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "{sub:?} --help: {:?}", out.status);
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// Removes clap's `[default: …]` / `[possible values: …]` annotations, which are
/// not help text.
fn without_annotations(text: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

/// `(name, help text)` of every entry in the section `header` ("Options:" or
/// "Commands:"): the text is what follows the name on its line, or (clap's
/// long layout) the next line.
fn entries(help: &str, header: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = help.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim() == header) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut i = start + 1;
    while i < lines.len() && !lines[i].trim().is_empty() {
        let line = lines[i].trim_start();
        let indent = lines[i].len() - line.len();
        // Entries are indented 2 (6 for a long option without a short form);
        // clap's long layout puts the help on the next line, indented 10.
        if indent < 8 {
            let (name, rest) = line.split_once("  ").unwrap_or((line, ""));
            let mut text = without_annotations(rest);
            if text.is_empty() {
                if let Some(next) = lines.get(i + 1) {
                    let t = next.trim_start();
                    if next.len() - t.len() >= 8 && !t.is_empty() {
                        text = without_annotations(t);
                    }
                }
            }
            // `-c, --config <CONFIG>` → `--config`; `run` → `run`.
            let name = name
                .split([',', ' '])
                .find(|w| w.starts_with("--"))
                .unwrap_or_else(|| name.split(' ').next().unwrap_or(name))
                .to_string();
            out.push((name, text));
        }
        i += 1;
    }
    out
}

#[test]
fn every_help_explains_every_option_and_subcommand() {
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &["--log-format", "--help", "--version"]),
        (&["run"], &["--config", "--log-format", "--help"]),
        (&["check"], &["--config", "--log-format", "--help"]),
        (&["demo"], &["--keep-running", "--log-format", "--help"]),
        (
            &["upstream"],
            &[
                "--role",
                "--listen",
                "--error-rate",
                "--latency",
                "--version",
                "--log-format",
                "--help",
            ],
        ),
        (
            &["simulate"],
            &[
                "--config",
                "--canary-error-rate",
                "--rps",
                "--runs",
                "--seed",
                "--format",
                "--only",
                "--help",
            ],
        ),
    ];
    for (sub, expected) in cases {
        let text = help(sub);
        let options = entries(&text, "Options:");
        assert!(
            !options.is_empty(),
            "{sub:?}: no options parsed from\n{text}"
        );
        for want in *expected {
            assert!(
                options.iter().any(|(n, _)| n == want),
                "{sub:?} --help does not list {want}:\n{text}"
            );
        }
        for (name, about) in &options {
            assert!(
                !about.is_empty(),
                "{sub:?} --help: {name} has no help text:\n{text}"
            );
        }
    }

    let top = help(&[]);
    let commands = entries(&top, "Commands:");
    let names: Vec<&str> = commands.iter().map(|(n, _)| n.as_str()).collect();
    for want in ["run", "check", "demo", "upstream", "simulate"] {
        assert!(names.contains(&want), "--help does not list {want}:\n{top}");
    }
    for (name, about) in &commands {
        assert!(
            !about.is_empty(),
            "subcommand {name} has no help text:\n{top}"
        );
    }
}

fn assert_plain(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(
        !text.contains("\x1b["),
        "{what}: ANSI escape codes in piped output:\n{}",
        text.replace('\x1b', "\\x1b")
    );
}

#[test]
fn check_writes_no_colour_to_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "listen: 127.0.0.1:0\nupstreams:\n  stable: { endpoints: [htp:/x] }\n  canary: { endpoints: [http://127.0.0.1:1] }\n  helth_check: {}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .env_remove("NO_COLOR")
        .output()
        .expect("the binary runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!out.stderr.is_empty(), "check printed no error");
    assert_plain("check stdout", &out.stdout);
    assert_plain("check stderr", &out.stderr);
}

/// `run`'s logs (tracing, text format) to a pipe: plain text, with and
/// without `NO_COLOR`.
#[test]
fn run_logs_no_colour_to_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("proxy.yaml");
    std::fs::write(
        &cfg,
        "listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\nupstreams:\n  stable: { endpoints: [http://127.0.0.1:1] }\n  canary: { endpoints: [http://127.0.0.1:1] }\n",
    )
    .unwrap();
    for no_color in [None, Some("1")] {
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match no_color {
            None => cmd.env_remove("NO_COLOR"),
            Some(v) => cmd.env("NO_COLOR", v),
        };
        let mut child = cmd.spawn().expect("the binary runs");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut r = BufReader::new(stderr);
            let mut line = Vec::new();
            while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                if String::from_utf8_lossy(&line).contains("proxy listening") {
                    let _ = tx.send(());
                }
                all.append(&mut line);
            }
            all
        });
        let started = rx.recv_timeout(Duration::from_secs(30)).is_ok();
        let _ = child.kill();
        let _ = child.wait();
        let stderr = reader.join().unwrap();
        let mut stdout = Vec::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut stdout)
            .unwrap();
        let text = String::from_utf8_lossy(&stderr).into_owned();
        assert!(
            started,
            "NO_COLOR={no_color:?}: no `proxy listening` log line:\n{text}"
        );
        assert!(text.contains("INFO"), "{text}");
        assert_plain(&format!("run stderr, NO_COLOR={no_color:?}"), &stderr);
        assert_plain(&format!("run stdout, NO_COLOR={no_color:?}"), &stdout);
    }
}
