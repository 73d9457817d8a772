//! The real binary as a child process, with the default log filter (no
//! `RUST_LOG`), JSON logs collected, optionally under a lower descriptor limit:
//! signals, `kill -9` and restarts act on a real process.
use super::admin::admin_at;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running `canary-proxy run`, killed when dropped.
pub struct Binary {
    pub child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    /// Every stderr line so far (JSON log records).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Binary {
    /// Starts `canary-proxy --log-format json run --config <config>`;
    /// `nofile` lowers the child's `RLIMIT_NOFILE` (soft and hard) before exec.
    pub fn start(config: &Path, nofile: Option<u64>) -> Binary {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_canary-proxy"));
        cmd.args(["--log-format", "json", "run", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped());
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n as libc::rlim_t,
                        rlim_max: n as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn canary-proxy");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l = log.clone();
        // Drains stderr for the child's whole life (a full pipe would block it).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let f = &v["fields"];
                    if f["message"] == "proxy listening" {
                        let a = |k: &str| f[k].as_str().and_then(|s| s.parse().ok());
                        let _ = tx.send((a("proxy_addr"), a("admin_addr")));
                    }
                }
                l.lock().unwrap().push(line);
            }
        });
        let (proxy, admin) = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok((Some(p), Some(a))) => (p, a),
            other => {
                let _ = child.kill();
                panic!("no readiness line ({other:?}): {:?}", log.lock().unwrap());
            }
        };
        Binary {
            child,
            proxy,
            admin,
            log,
        }
    }

    /// Log lines so far that contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Sends `sig` (`-HUP`, `-KILL`, ...) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill {sig} failed");
    }

    /// SIGKILL: no drain, no final state write.
    pub fn kill9(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    pub async fn status(&self) -> Value {
        admin_at(self.admin, "GET", "/api/v1/status", None, None)
            .await
            .1
    }

    /// Log lines at `level` (`WARN`, `ERROR`, ...) so far.
    pub fn lines_at(&self, level: &str) -> Vec<String> {
        let tag = format!("\"level\":\"{level}\"");
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(&tag))
            .cloned()
            .collect()
    }

    /// CPU time (user + system) the child has used, from /proc.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("/proc/<pid>/stat");
        // Fields after the command name (which may hold spaces) in parentheses.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / hz.max(1))
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
