//! The upstream side of HTTP/1.1, driven inside the request's own task by
//! `pool`.
//!
//! hyper's client runs each connection as a separate task fed through a
//! channel: two task hops and a channel round trip per request. A proxy
//! sending a bodiless request to a plain-http upstream needs much less: write
//! one request head, parse one response head (`httparse`, as hyper does), and
//! frame the body by RFC 9112 §6.3. Response bodies are handed to the client
//! as zero-copy slices of the read buffer.
use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use http::{Method, Response, StatusCode, Version};
use std::ops::Range;

/// Most response headers accepted from an upstream (hyper's default is 100).
const MAX_HEADERS: usize = 128;
/// Largest response head accepted (status line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// Largest trailer section skipped at the end of a chunked body.
const MAX_TRAILERS: usize = 64 * 1024;

/// The tokens of every `Connection` field line (comma-separated, trimmed).
pub(crate) fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Does `Connection` name `token` (case-insensitive, comma-separated lists)?
pub(crate) fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(token))
}

/// What went wrong on an upstream HTTP/1.1 connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum H1Error {
    #[error("upstream i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("upstream closed the connection before the response ended")]
    Eof,
    #[error("malformed response head: {0}")]
    Parse(#[from] httparse::Error),
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("invalid or conflicting content-length")]
    ContentLength,
    #[error("unexpected 101 Switching Protocols")]
    UnexpectedUpgrade,
    #[error("malformed chunked body")]
    Chunked,
}

/// Appends the head of a bodiless request to `out`. `headers` are already
/// hop-by-hop stripped; `content-length` is written here, not copied; without
/// a `Host` header, `host` (the endpoint's authority) is sent.
pub(crate) fn encode_head(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    host: Option<&Authority>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut had_length = false;
    let mut had_host = false;
    for (name, value) in headers {
        if *name == header::CONTENT_LENGTH {
            had_length = true;
            continue;
        }
        had_host |= *name == header::HOST;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let (false, Some(host)) = (had_host, host) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(host.as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // Say nothing unless the client did (`content-length: 0`) or the method
    // expects a body (what hyper and curl send for an empty POST).
    if had_length || expects_body(method) {
        out.extend_from_slice(b"content-length: 0\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn expects_body(m: &Method) -> bool {
    matches!(*m, Method::POST | Method::PUT | Method::PATCH)
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RespFraming {
    Length(u64),
    Chunked,
    /// Until the upstream closes; the connection cannot be reused.
    Close,
}

/// A parsed response head.
pub(crate) struct Head {
    pub response: Response<()>,
    pub framing: RespFraming,
    /// The connection may carry another request once this body has ended.
    pub keep_alive: bool,
}

/// Parses a complete response head from the front of `buf` and removes it.
/// `Ok(None)`: more bytes are needed. Interim 1xx responses (100, 103) are
/// consumed and skipped, as a client must (RFC 9110 §15.2).
pub(crate) fn parse_head(
    buf: &mut BytesMut,
    request_method: &Method,
) -> Result<Option<Head>, H1Error> {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut slots);
        let len = match res.parse(buf)? {
            httparse::Status::Partial => {
                if buf.len() > MAX_HEAD {
                    return Err(H1Error::HeadTooLarge);
                }
                return Ok(None);
            }
            httparse::Status::Complete(n) => n,
        };
        let code = res.code.unwrap_or(0);
        let version = res.version.unwrap_or(1);
        let status = StatusCode::from_u16(code).map_err(|_| httparse::Error::Status)?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(H1Error::UnexpectedUpgrade);
        }
        if status.is_informational() {
            buf.advance(len);
            continue;
        }
        // Names now, values as offsets into the head so they can share its bytes.
        let base = buf.as_ptr() as usize;
        let mut fields: Vec<(HeaderName, Range<usize>)> = Vec::with_capacity(res.headers.len());
        for h in res.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| httparse::Error::HeaderName)?;
            let start = h.value.as_ptr() as usize - base;
            fields.push((name, start..start + h.value.len()));
        }
        let head = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(fields.len());
        for (name, range) in fields {
            let value = HeaderValue::from_maybe_shared(head.slice(range))
                .map_err(|_| httparse::Error::HeaderValue)?;
            headers.append(name, value);
        }
        let (framing, mut keep_alive) = framing(&mut headers, status, request_method)?;
        keep_alive &= version == 1 && !connection_has(&headers, "close");
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = if version == 1 {
            Version::HTTP_11
        } else {
            Version::HTTP_10
        };
        *response.headers_mut() = headers;
        return Ok(Some(Head {
            response,
            framing,
            keep_alive,
        }));
    }
}

/// RFC 9112 §6.3, in order. Returns the framing and whether the framing
/// itself allows reuse.
fn framing(
    headers: &mut HeaderMap,
    status: StatusCode,
    method: &Method,
) -> Result<(RespFraming, bool), H1Error> {
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((RespFraming::Length(0), true));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // Transfer-Encoding overrides Content-Length (a smuggling vector if both were honoured).
        headers.remove(header::CONTENT_LENGTH);
        return Ok(if chunked_is_final(headers) {
            (RespFraming::Chunked, true)
        } else {
            (RespFraming::Close, false)
        });
    }
    let mut length = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        for part in v.as_bytes().split(|b| *b == b',') {
            let n = parse_length(part.trim_ascii()).ok_or(H1Error::ContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(H1Error::ContentLength);
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(n) => (RespFraming::Length(n), true),
        None => (RespFraming::Close, false),
    })
}

/// Is `chunked` the final coding of the combined `Transfer-Encoding` list
/// (every field line, in order, as one comma-separated list; RFC 9110 §5.3)?
/// Otherwise the body runs until the upstream closes (RFC 9112 §6.3).
fn chunked_is_final(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .rfind(|c| !c.is_empty())
        .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
}

fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// What the body decoder got out of the buffered bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    Data(Bytes),
    NeedMore,
    Done,
}

/// Incremental body decoder for one response.
#[derive(Debug)]
pub(crate) enum Decoder {
    Length(u64),
    Chunked(Chunk),
    Close,
    Done,
}

/// Position inside a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    Size {
        size: u64,
        digits: u8,
    },
    Ext {
        size: u64,
    },
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line; `seen` counts trailer bytes.
    TrailerStart {
        seen: usize,
    },
    TrailerLine {
        seen: usize,
    },
    EndLf,
}

impl Decoder {
    pub(crate) fn new(framing: RespFraming) -> Decoder {
        match framing {
            RespFraming::Length(0) => Decoder::Done,
            RespFraming::Length(n) => Decoder::Length(n),
            RespFraming::Chunked => Decoder::Chunked(Chunk::Size { size: 0, digits: 0 }),
            RespFraming::Close => Decoder::Close,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Decoder::Done)
    }

    /// Bytes still expected, when the framing says.
    pub(crate) fn remaining(&self) -> Option<u64> {
        match self {
            Decoder::Length(n) => Some(*n),
            Decoder::Done => Some(0),
            _ => None,
        }
    }

    /// Consumes framing from `buf` and returns the next data slice, if any.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, H1Error> {
        match self {
            Decoder::Done => Ok(Decoded::Done),
            Decoder::Close if buf.is_empty() => Ok(Decoded::NeedMore),
            Decoder::Close => Ok(Decoded::Data(buf.split().freeze())),
            Decoder::Length(_) if buf.is_empty() => Ok(Decoded::NeedMore),
            Decoder::Length(n) => {
                let take = (*n).min(buf.len() as u64);
                *n -= take;
                if *n == 0 {
                    *self = Decoder::Done;
                }
                // `take` ≤ buf.len(), so it fits in usize.
                Ok(Decoded::Data(buf.split_to(take as usize).freeze()))
            }
            Decoder::Chunked(state) => {
                let out = decode_chunked(state, buf)?;
                if out == Decoded::Done {
                    *self = Decoder::Done;
                }
                Ok(out)
            }
        }
    }

    /// The upstream closed the connection: the end of a close-delimited
    /// body, a truncation for any other.
    pub(crate) fn eof(&mut self) -> Result<(), H1Error> {
        match self {
            Decoder::Close | Decoder::Done => {
                *self = Decoder::Done;
                Ok(())
            }
            _ => Err(H1Error::Eof),
        }
    }
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

fn decode_chunked(state: &mut Chunk, buf: &mut BytesMut) -> Result<Decoded, H1Error> {
    loop {
        if let Chunk::Data(n) = *state {
            if buf.is_empty() {
                return Ok(Decoded::NeedMore);
            }
            let take = n.min(buf.len() as u64);
            *state = if take == n {
                Chunk::DataCr
            } else {
                Chunk::Data(n - take)
            };
            return Ok(Decoded::Data(buf.split_to(take as usize).freeze()));
        }
        let Some(&b) = buf.first() else {
            return Ok(Decoded::NeedMore);
        };
        buf.advance(1);
        *state = match (*state, b) {
            (Chunk::Size { size, digits }, _) if hex(b).is_some() => {
                if digits >= 16 {
                    return Err(H1Error::Chunked);
                }
                Chunk::Size {
                    size: size * 16 + hex(b).unwrap_or(0),
                    digits: digits + 1,
                }
            }
            (Chunk::Size { digits: 0, .. }, _) => return Err(H1Error::Chunked),
            (Chunk::Size { size, .. }, b';' | b' ' | b'\t') => Chunk::Ext { size },
            (Chunk::Size { size, .. } | Chunk::Ext { size }, b'\r') => Chunk::SizeLf { size },
            (Chunk::Size { size, .. } | Chunk::Ext { size } | Chunk::SizeLf { size }, b'\n') => {
                if size == 0 {
                    Chunk::TrailerStart { seen: 0 }
                } else {
                    Chunk::Data(size)
                }
            }
            (Chunk::Ext { size }, _) => Chunk::Ext { size },
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            (Chunk::DataCr | Chunk::DataLf, b'\n') => Chunk::Size { size: 0, digits: 0 },
            (Chunk::TrailerStart { .. }, b'\r') => Chunk::EndLf,
            (Chunk::TrailerStart { .. } | Chunk::EndLf, b'\n') => return Ok(Decoded::Done),
            (Chunk::TrailerStart { seen } | Chunk::TrailerLine { seen }, _) => {
                if seen >= MAX_TRAILERS {
                    return Err(H1Error::Chunked);
                }
                if b == b'\n' {
                    Chunk::TrailerStart { seen: seen + 1 }
                } else {
                    Chunk::TrailerLine { seen: seen + 1 }
                }
            }
            _ => return Err(H1Error::Chunked),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, method: Method) -> Result<Option<Head>, H1Error> {
        parse_head(&mut BytesMut::from(raw), &method)
    }

    fn decode_all(framing: RespFraming, wire: &[u8], step: usize) -> Result<Vec<u8>, H1Error> {
        let mut d = Decoder::new(framing);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in wire.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match d.decode(&mut buf)? {
                    Decoded::Data(b) => out.extend_from_slice(&b),
                    Decoded::NeedMore => break,
                    Decoded::Done => return Ok(out),
                }
            }
        }
        d.eof()?;
        Ok(out)
    }

    #[test]
    fn encodes_a_request_head() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("svc"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        let endpoint = Authority::from_static("10.0.0.1:8080");
        let mut out = Vec::new();
        // The client's Host wins over the endpoint's authority.
        encode_head(&Method::GET, "/a?b", &h, Some(&endpoint), &mut out);
        assert_eq!(
            out,
            b"GET /a?b HTTP/1.1\r\nhost: svc\r\ncontent-length: 0\r\n\r\n"
        );
        out.clear();
        encode_head(&Method::GET, "/", &HeaderMap::new(), None, &mut out);
        assert_eq!(out, b"GET / HTTP/1.1\r\n\r\n");
        out.clear();
        encode_head(&Method::PUT, "/", &HeaderMap::new(), None, &mut out);
        assert_eq!(out, b"PUT / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
        out.clear();
        encode_head(
            &Method::GET,
            "/h",
            &HeaderMap::new(),
            Some(&endpoint),
            &mut out,
        );
        assert_eq!(out, b"GET /h HTTP/1.1\r\nhost: 10.0.0.1:8080\r\n\r\n");
    }

    #[test]
    fn chunked_frames_the_body_only_as_the_final_coding_of_all_field_lines() {
        for (raw, want) in [
            ("Transfer-Encoding: gzip, chunked\r\n", RespFraming::Chunked),
            (
                "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                RespFraming::Chunked,
            ),
            ("Transfer-Encoding: CHUNKED , \r\n", RespFraming::Chunked),
            // chunked, then gzip on a later line: gzip is the final coding.
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
                RespFraming::Close,
            ),
            ("Transfer-Encoding: chunked, gzip\r\n", RespFraming::Close),
            ("Transfer-Encoding: gzip\r\n", RespFraming::Close),
            ("Transfer-Encoding: chunkedx\r\n", RespFraming::Close),
        ] {
            let h = head(
                &format!("HTTP/1.1 200 OK\r\n{raw}Content-Length: 5\r\n\r\n"),
                Method::GET,
            )
            .unwrap()
            .unwrap();
            assert_eq!(h.framing, want, "{raw:?}");
            // Either way Content-Length is not honoured beside Transfer-Encoding.
            assert!(!h.response.headers().contains_key(header::CONTENT_LENGTH));
            assert_eq!(h.keep_alive, want == RespFraming::Chunked, "{raw:?}");
        }
    }

    #[test]
    fn parses_heads_and_framing() {
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-V: a\r\n\r\nhello",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.response.status(), 200);
        assert_eq!(h.framing, RespFraming::Length(5));
        assert!(h.keep_alive);
        assert_eq!(h.response.headers()["x-v"], "a");

        let h = head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, RespFraming::Chunked);
        assert!(!h.response.headers().contains_key(header::CONTENT_LENGTH));

        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert!(!h.keep_alive);
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", Method::GET)
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = head("HTTP/1.1 200 OK\r\n\r\n", Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep_alive), (RespFraming::Close, false));
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", Method::HEAD)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, RespFraming::Length(0));
        let h = head(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, RespFraming::Length(0));
    }

    #[test]
    fn skips_interim_responses_and_waits_for_more() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        );
        let h = parse_head(&mut buf, &Method::POST).unwrap().unwrap();
        assert_eq!(h.response.status(), 201);
        assert!(buf.is_empty());
        assert!(head("HTTP/1.1 200 OK\r\nContent-Le", Method::GET)
            .unwrap()
            .is_none());
    }

    #[test]
    fn rejects_bad_heads() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            assert!(head(raw, Method::GET).is_err(), "{raw:?}");
        }
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD + 1));
        assert!(matches!(
            head(&huge, Method::GET),
            Err(H1Error::HeadTooLarge)
        ));
        // Equal duplicates are one length (RFC 9110 §8.6).
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, RespFraming::Length(5));
    }

    #[test]
    fn decodes_bodies_split_anywhere() {
        let chunked = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
        for step in 1..chunked.len() {
            assert_eq!(
                decode_all(RespFraming::Chunked, chunked, step).unwrap(),
                b"hello world",
                "step {step}"
            );
            assert_eq!(
                decode_all(RespFraming::Length(11), b"hello world", step).unwrap(),
                b"hello world"
            );
        }
        assert_eq!(
            decode_all(RespFraming::Close, b"until close", 3).unwrap(),
            b"until close"
        );
    }

    #[test]
    fn truncated_and_malformed_bodies_fail() {
        assert!(matches!(
            decode_all(RespFraming::Length(11), b"hello", 2),
            Err(H1Error::Eof)
        ));
        assert!(decode_all(RespFraming::Chunked, b"5\r\nhel", 2).is_err());
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\r\nhelloXX",
            b"11111111111111111\r\n",
        ] {
            assert!(
                matches!(
                    decode_all(RespFraming::Chunked, bad, 1),
                    Err(H1Error::Chunked)
                ),
                "{bad:?}"
            );
        }
    }
}
