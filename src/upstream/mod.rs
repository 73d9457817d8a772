//! Everything on the upstream side of the proxy: the endpoints of each
//! version (health flags, idle connections), the HTTP/1.1 codec and per-thread
//! connection pool for plain-http endpoints, and hyper's client for the rest.
pub mod client;
pub mod endpoints;
pub mod h1;
pub mod pool;

/// Methods a client may safely resend (RFC 9110 §9.2.2): the request may be
/// retried on another connection or endpoint without changing its effect.
pub fn idempotent(m: &http::Method) -> bool {
    use http::Method;
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}
