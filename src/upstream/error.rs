//! The one error of the upstream face: what went wrong, on which endpoint,
//! whether a retry is safe, and the request itself when it is.
use super::endpoints::Endpoint;
use super::h1::H1Error;
use super::UpstreamRequest;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// What happened to an upstream request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The version has no healthy endpoint to send to.
    NoEndpoint,
    /// No connection could be made (refused, `timeouts.connect`, TLS
    /// handshake): nothing was sent, so a retry is safe.
    Connect,
    /// The endpoint has `max_connections` connections in use: nothing was
    /// sent, so another endpoint may take the request.
    Limit,
    /// The response head did not arrive before the deadline.
    Timeout,
    /// The connection failed after the request was handed to it (reset,
    /// closed, malformed response): the upstream may have acted on it.
    Upstream,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::NoEndpoint => "no healthy endpoint",
            ErrorKind::Connect => "connect failed",
            ErrorKind::Limit => "upstream connection limit reached",
            ErrorKind::Timeout => "timed out waiting for the response head",
            ErrorKind::Upstream => "upstream failed after the request was sent",
        }
    }
}

/// The underlying error, when there is one.
#[derive(Debug)]
pub(super) enum Cause {
    Io(std::io::Error),
    H1(H1Error),
    Client(hyper_util::client::legacy::Error),
    Uri(http::uri::InvalidUriParts),
}

impl Cause {
    fn as_error(&self) -> &(dyn StdError + 'static) {
        match self {
            Cause::Io(e) => e,
            Cause::H1(e) => e,
            Cause::Client(e) => e,
            Cause::Uri(e) => e,
        }
    }
}

/// Why an upstream request got no response head.
#[derive(Debug)]
pub(crate) struct UpstreamError {
    kind: ErrorKind,
    endpoint: Option<Arc<Endpoint>>,
    cause: Option<Cause>,
    /// The request, whole, when nothing of it was sent (boxed: only failures pay).
    request: Option<Box<UpstreamRequest>>,
}

impl UpstreamError {
    pub(crate) fn no_endpoint() -> Self {
        UpstreamError {
            kind: ErrorKind::NoEndpoint,
            endpoint: None,
            cause: None,
            request: None,
        }
    }

    /// Nothing was sent; `request` comes back when the connector kept it.
    pub(super) fn connect(
        endpoint: &Arc<Endpoint>,
        cause: Cause,
        request: Option<UpstreamRequest>,
    ) -> Self {
        UpstreamError {
            kind: ErrorKind::Connect,
            endpoint: Some(endpoint.clone()),
            cause: Some(cause),
            request: request.map(Box::new),
        }
    }

    /// The endpoint is at its connection cap; the request comes back whole.
    pub(super) fn limit(endpoint: &Arc<Endpoint>, request: UpstreamRequest) -> Self {
        UpstreamError {
            kind: ErrorKind::Limit,
            endpoint: Some(endpoint.clone()),
            cause: None,
            request: Some(Box::new(request)),
        }
    }

    pub(super) fn timeout(endpoint: &Arc<Endpoint>) -> Self {
        UpstreamError {
            kind: ErrorKind::Timeout,
            endpoint: Some(endpoint.clone()),
            cause: None,
            request: None,
        }
    }

    pub(super) fn upstream(endpoint: &Arc<Endpoint>, cause: Cause) -> Self {
        UpstreamError {
            kind: ErrorKind::Upstream,
            endpoint: Some(endpoint.clone()),
            cause: Some(cause),
            request: None,
        }
    }

    pub(crate) fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The endpoint that failed (none for `NoEndpoint`).
    pub(crate) fn endpoint(&self) -> Option<&Arc<Endpoint>> {
        self.endpoint.as_ref()
    }

    /// Nothing of the request reached an upstream: sending it again cannot
    /// apply it twice, whatever its method.
    pub(crate) fn is_retry_safe(&self) -> bool {
        matches!(self.kind, ErrorKind::Connect | ErrorKind::Limit)
    }

    /// The request back, to send again: `Ok` when a retry is safe and the
    /// request was kept (always for bodiless plain-http requests; for
    /// hyper's client when `Attempt::give_back` asked for it). Otherwise the
    /// error itself.
    pub(crate) fn into_request(mut self) -> Result<UpstreamRequest, UpstreamError> {
        match self.request.take() {
            Some(r) if self.is_retry_safe() => Ok(*r),
            _ => Err(self),
        }
    }
}

impl fmt::Display for UpstreamError {
    /// `connect failed: client error (Connect): tcp connect error: Connection refused`:
    /// the kind, then the whole chain of causes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.describe())?;
        let mut next = self.cause.as_ref().map(Cause::as_error);
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

impl StdError for UpstreamError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause.as_ref().map(Cause::as_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Arc<Endpoint> {
        Arc::new(Endpoint::new(
            "http://127.0.0.1:1",
            "http://127.0.0.1:1".parse().unwrap(),
        ))
    }

    fn request() -> UpstreamRequest {
        UpstreamRequest::bodiless(http::Request::get("/x").body(()).unwrap().into_parts().0)
    }

    #[test]
    fn only_a_connect_failure_gives_the_request_back() {
        let ep = endpoint();
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = UpstreamError::connect(&ep, Cause::Io(refused), Some(request()));
        assert!(e.is_retry_safe());
        assert_eq!(e.to_string(), "connect failed: connection refused");
        assert_eq!(e.endpoint().unwrap().label, "http://127.0.0.1:1");
        let back = e.into_request().unwrap();
        assert_eq!(back.head.uri, "/x");
        assert!(back.body.is_none() && !back.upgrade);

        // A connector that did not keep the request: safe, but nothing to resend.
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = UpstreamError::connect(&ep, Cause::Io(refused), None);
        assert!(e.is_retry_safe());
        assert_eq!(e.into_request().unwrap_err().kind(), ErrorKind::Connect);

        for e in [
            UpstreamError::timeout(&ep),
            UpstreamError::upstream(&ep, Cause::H1(H1Error::Eof)),
            UpstreamError::no_endpoint(),
        ] {
            assert!(!e.is_retry_safe(), "{e}");
            assert!(e.into_request().is_err());
        }
        assert_eq!(
            UpstreamError::upstream(&ep, Cause::H1(H1Error::Eof)).to_string(),
            "upstream failed after the request was sent: upstream closed the connection before the response ended"
        );
    }

    #[test]
    fn stays_small() {
        // Returned by value on every attempt: the request it may carry is boxed.
        assert!(std::mem::size_of::<UpstreamError>() <= 128);
    }
}
