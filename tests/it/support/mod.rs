//! Test support, by role: upstreams (`upstream`), the proxy under test
//! (`proxy`), a client (`client`), admin API calls and loads (`admin`),
//! waiting (`wait`), the real binary as a child process (`process`).
//!
//! ```ignore
//! let up = TestServer::new()
//!     .route("/slow", |_req| async { resp::delayed(Duration::from_millis(200), resp::text(200, "late")).await })
//!     .echo("/echo")
//!     .start()
//!     .await;
//! let app = start_proxy(YAML, &[("stable", &up), ("canary", &other)]).await;
//! let r = TestClient::new().get(app.proxy_addr, "/slow").await.unwrap();
//! ```
//!
//! Every server listens on 127.0.0.1:0, records the requests it saw, and
//! stops when its `Upstream` is dropped.
#![allow(dead_code)]
pub mod admin;
pub mod client;
pub mod process;
pub mod proxy;
pub mod tls;
pub mod upstream;
pub mod wait;

pub use admin::*;
pub use client::*;
pub use process::*;
pub use proxy::*;
pub use tls::*;
pub use upstream::*;
pub use wait::*;
