//! Plain HTTP beside the WebSocket: the user's responses, request bodies, keep-alive.

use std::time::Instant;

use crate::io::{Transport, read_to_len};
use crate::proto::handshake::{self, Request};

/// An HTTP response: from the HTTP handler, or a gatekeeper's rejection.
///
/// ```
/// let page = syncws::Response::html("<h1>hello</h1>");
/// let denied = syncws::Response::text(403, "no token").header("X-Reason", "auth");
/// assert_eq!((page.status, denied.status), (200, 403));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header fields; `Content-Length` and `Connection` are added by the server.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    /// A `200 OK` HTML page.
    pub fn html(body: impl Into<String>) -> Self {
        Response::new(200)
            .header("Content-Type", "text/html; charset=utf-8")
            .body(body.into())
    }

    /// `404 Not Found`.
    pub fn not_found() -> Self {
        Response::text(404, "not found\n")
    }

    /// `403 Forbidden`, the default rejection of the gatekeeper and the origin policy.
    pub fn forbidden() -> Self {
        Response::text(403, "forbidden\n")
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Whether the handler asked to close the connection after this response.
    fn says_close(&self) -> bool {
        handshake::header_has_token(&self.headers, "connection", "close")
    }

    /// The bytes on the wire, with `Content-Length` and, when closing, `Connection: close`.
    /// A `HEAD` request gets the headers without the body.
    pub(crate) fn to_bytes(&self, keep_alive: bool, head_only: bool) -> Vec<u8> {
        let headers: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(n, _)| {
                !n.eq_ignore_ascii_case("content-length") && !n.eq_ignore_ascii_case("connection")
            })
            .cloned()
            .collect();
        let mut out = handshake::http_response(self.status, &headers, &self.body, keep_alive);
        if head_only {
            out.truncate(out.len() - self.body.len());
        }
        out
    }

    /// Whether the connection can stay open after answering `req` with this.
    pub(crate) fn keeps_alive(&self, req: &Request) -> bool {
        req.wants_keep_alive() && !self.says_close()
    }
}

/// Why a request body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Longer than the limit: 413.
    TooLarge,
    /// Chunked or otherwise unsupported framing: 501.
    Unsupported,
    /// Bad `Content-Length`: 400.
    Malformed,
    /// The peer went away or the deadline passed.
    Io,
}

/// Reads the body announced by `Content-Length` into the request. `buf` holds the bytes that
/// followed the head; what follows the body stays in it for the next request.
pub(crate) fn read_body<S: Transport + ?Sized>(
    stream: &mut S,
    req: &mut Request,
    buf: &mut Vec<u8>,
    deadline: Instant,
    max: usize,
) -> Result<(), BodyError> {
    if req.header("transfer-encoding").is_some() {
        return Err(BodyError::Unsupported);
    }
    let len = match req.header("content-length") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| BodyError::Malformed)?,
    };
    if len > max {
        return Err(BodyError::TooLarge);
    }
    if !read_to_len(stream, buf, len, deadline) {
        return Err(BodyError::Io);
    }
    let rest = buf.split_off(len);
    req.set_body(std::mem::replace(buf, rest));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_bytes() {
        let r = Response::text(200, "hi")
            .header("Connection", "close")
            .header("X-A", "b");
        let wire = String::from_utf8(r.to_bytes(true, false)).unwrap();
        assert!(wire.starts_with("HTTP/1.1 200 OK\r\n"), "{wire}");
        assert!(wire.contains("Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(wire.contains("X-A: b\r\n"));
        assert!(wire.contains("Content-Length: 2\r\n"));
        assert!(!wire.contains("Connection"), "{wire}");
        assert!(wire.ends_with("\r\n\r\nhi"));
        let head = String::from_utf8(r.to_bytes(false, true)).unwrap();
        assert!(head.ends_with("Connection: close\r\n\r\n"), "{head}");
        assert!(r.says_close());
    }
}
