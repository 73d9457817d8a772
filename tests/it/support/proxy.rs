//! Starting the proxy under test and reading what it recorded.
use super::upstream::*;
use canary_proxy::app::App;
use canary_proxy::Role;

/// Parses `yaml` as a config after replacing `{name}` with each upstream's URL
/// (`{dead}` → an address nothing listens on), then starts the App.
pub async fn start_proxy(yaml: &str, upstreams: &[(&str, &Upstream)]) -> App {
    let mut text = yaml.to_string();
    for (name, up) in upstreams {
        text = text.replace(&format!("{{{name}}}"), &up.url());
    }
    if text.contains("{dead}") {
        text = text.replace("{dead}", &format!("http://{}", dead_addr().await));
    }
    let config = canary_proxy::config::parse(&text, &|_| None)
        .unwrap_or_else(|e| panic!("test config invalid:\n{e}\n---\n{text}"));
    App::start(config, None).await.expect("proxy starts")
}

/// Writes `text` to `path` and starts the App from that file (so reloads re-read it).
pub async fn start_from_file(text: &str, path: &std::path::Path) -> App {
    std::fs::write(path, text).unwrap();
    let config = canary_proxy::config::load(path).expect("valid config");
    App::start(config, Some(path.to_path_buf()))
        .await
        .expect("app starts")
}

/// Minimal config: stable + canary, both on loopback, admin on port 0.
pub fn yaml(extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\nupstreams:\n  stable: {{ version: v1, endpoints: [\"{{stable}}\"] }}\n  canary: {{ version: v2, endpoints: [\"{{canary}}\"] }}\n{extra}"
    )
}

/// Requests recorded for `role` with `status` (any method).
pub fn count(app: &App, role: Role, status: u16) -> u64 {
    app.snapshot()
        .backend(role)
        .stats
        .status_counts()
        .iter()
        .filter(|(_, s, _)| *s == status)
        .map(|(_, _, n)| n)
        .sum()
}
