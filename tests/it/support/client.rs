//! A test HTTP client (HTTP/1.1 keep-alive or h2c) and the replies it reads.
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;

/// A response read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub version: Version,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A small keep-alive HTTP/1.1 client (or h2c with `h2c()`).
#[derive(Clone)]
pub struct TestClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl Default for TestClient {
    fn default() -> Self {
        Self::new()
    }
}

impl TestClient {
    pub fn new() -> Self {
        TestClient {
            inner: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// HTTP/2 with prior knowledge.
    pub fn h2c() -> Self {
        TestClient {
            inner: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
        }
    }

    pub async fn get(&self, addr: SocketAddr, path: &str) -> Result<Reply, String> {
        self.send(
            Request::get(format!("http://{addr}{path}"))
                .body(Full::default())
                .unwrap(),
        )
        .await
    }

    /// GET with extra headers.
    pub async fn get_with(
        &self,
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let mut b = Request::get(format!("http://{addr}{path}"));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Full::default()).unwrap()).await
    }

    /// GET returning the response with its body unread (to stream or abandon it).
    pub async fn raw(&self, addr: SocketAddr, path: &str) -> Result<Response<Incoming>, String> {
        let req = Request::get(format!("http://{addr}{path}"))
            .body(Full::default())
            .unwrap();
        self.inner.request(req).await.map_err(|e| format!("{e:?}"))
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<Reply, String> {
        let resp = self
            .inner
            .request(req)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
            version: parts.version,
        })
    }
}
