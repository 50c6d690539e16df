//! Plain HTTP beside the WebSocket: the user's responses, request bodies, keep-alive.

use std::time::Instant;

use crate::error::InputError;
use crate::io::{Transport, read_to_len};
use crate::proto::head::{Request, has_token};
use crate::proto::http::{self as rules, Framing, Persist};

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
    /// Header fields. `Content-Length` is written by the server from the body and may not be
    /// set here, nor `Transfer-Encoding`; `Connection` may only be `close` (the server then closes
    /// after the response) or `keep-alive`. Names must be HTTP tokens and values free of control
    /// characters: a response that breaks these rules is never sent; the server logs the mistake
    /// at error level and answers `500` instead.
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

    /// Adds a header. An invalid one (see [`headers`](Self::headers)) is kept and makes the
    /// server answer `500` instead of this response; use [`try_header`](Self::try_header) to
    /// learn of it here, e.g. when the value comes from user input.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds a header if its name is an HTTP token, its value has no control characters (CR, LF,
    /// NUL…) and it is not one the server writes itself; otherwise says why.
    ///
    /// ```
    /// use syncws::{InputError, Response};
    /// let forged = Response::text(200, "hi").try_header("X-Name", "a\r\nSet-Cookie: s=1");
    /// assert_eq!(forged.unwrap_err(), InputError::HeaderValue);
    /// ```
    pub fn try_header(self, name: &str, value: &str) -> Result<Self, InputError> {
        rules::check_field(name, value)?;
        if is_connection_signal(name, value) {
            return Ok(self.header(name, value));
        }
        rules::check_fields(
            &[(name.to_owned(), value.to_owned())],
            rules::RESPONSE_OWNED,
        )?;
        Ok(self.header(name, value))
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// A refusal that says when to come back: `503` (full, shutting down) or `429` (too many
    /// from one address), with `Retry-After`.
    pub(crate) fn busy(status: u16, why: &str, retry_after: u32) -> Self {
        Response::text(status, format!("{why}\n")).header("Retry-After", &retry_after.to_string())
    }

    /// Whether the handler asked to close the connection after this response.
    fn says_close(&self) -> bool {
        has_token(&self.headers, "connection", "close")
    }

    /// The bytes on the wire, with `Content-Length` and the `Connection` field `persist` asks
    /// for. A `HEAD` request gets the headers without the body. Fails for a header that may not
    /// be sent (see [`headers`](Self::headers)).
    pub(crate) fn to_bytes(
        &self,
        persist: Persist,
        head_only: bool,
    ) -> Result<Vec<u8>, InputError> {
        // `Connection: close` / `keep-alive` is the handler's wish, which `persist` already
        // reflects; any other `Connection` stays and is refused.
        let headers: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(n, v)| !is_connection_signal(n, v))
            .cloned()
            .collect();
        let mut out = rules::response(self.status, &headers, &self.body, persist)?;
        if head_only {
            out.truncate(out.len() - self.body.len());
        }
        Ok(out)
    }

    /// The bytes on the wire and how the connection goes on; if this response may not be sent,
    /// a `500` that closes the connection instead (the mistake logged at error level).
    pub(crate) fn to_bytes_or_500(&self, persist: Persist, head_only: bool) -> (Vec<u8>, Persist) {
        match self.to_bytes(persist, head_only) {
            Ok(bytes) => (bytes, persist),
            Err(e) => {
                log::error!(
                    "a {} response was not sent, 500 instead: {e} (headers {:?})",
                    self.status,
                    self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>()
                );
                let error = Response::text(500, "internal server error\n")
                    .to_bytes(Persist::Close, head_only)
                    .expect("a fixed response is valid");
                (error, Persist::Close)
            }
        }
    }

    /// How the connection goes on after answering `req` with this.
    pub(crate) fn persist(&self, req: &Request) -> Persist {
        match req.wants_keep_alive() && !self.says_close() {
            false => Persist::Close,
            true if req.http_minor_version() == 0 => Persist::KeepAlive10,
            true => Persist::KeepAlive,
        }
    }
}

/// Whether a field is the handler's `Connection: close` or `Connection: keep-alive`.
fn is_connection_signal(name: &str, value: &str) -> bool {
    name.eq_ignore_ascii_case("connection")
        && (value.trim().eq_ignore_ascii_case("close")
            || value.trim().eq_ignore_ascii_case("keep-alive"))
}

/// Why a request body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Longer than the limit: 413.
    TooLarge,
    /// Chunked or otherwise unsupported framing: 501.
    Unsupported,
    /// An `Expect` other than `100-continue`: 417.
    Expectation,
    /// The peer went away, a write failed or the deadline passed.
    Io,
}

/// Reads the body the request announced (`framing`, from [`rules::check_request`]) into it,
/// answering `Expect: 100-continue` first. `buf` holds the bytes that followed the head; what
/// follows the body stays in it for the next request.
pub(crate) fn read_body<S: Transport + ?Sized>(
    stream: &mut S,
    req: &mut Request,
    framing: Framing,
    buf: &mut Vec<u8>,
    deadline: Instant,
    max: usize,
) -> Result<(), BodyError> {
    let len = match framing {
        Framing::None => 0,
        Framing::Length(n) => n,
        Framing::Encoded => return Err(BodyError::Unsupported),
    };
    let len = match usize::try_from(len) {
        Ok(len) if len <= max => len,
        _ => return Err(BodyError::TooLarge),
    };
    match rules::expectation(req) {
        rules::Expect::Nothing => {}
        rules::Expect::Unsupported => return Err(BodyError::Expectation),
        // RFC 9110 10.1.1: a server that will read the body sends 100 first (unless the body
        // is already arriving, which does no harm either way).
        rules::Expect::Continue if len > buf.len() => {
            if crate::io::write_all_by(stream, rules::CONTINUE, deadline).is_err() {
                return Err(BodyError::Io);
            }
        }
        rules::Expect::Continue => {}
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
        let wire = String::from_utf8(r.to_bytes(Persist::KeepAlive, false).unwrap()).unwrap();
        assert!(wire.starts_with("HTTP/1.1 200 OK\r\n"), "{wire}");
        assert!(wire.contains("Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(wire.contains("X-A: b\r\n"));
        assert!(wire.contains("Content-Length: 2\r\n"));
        assert!(!wire.contains("Connection"), "{wire}");
        assert!(wire.ends_with("\r\n\r\nhi"));
        let head = String::from_utf8(r.to_bytes(Persist::Close, true).unwrap()).unwrap();
        assert!(head.ends_with("Connection: close\r\n\r\n"), "{head}");
        assert!(r.says_close());
    }

    #[test]
    fn forged_headers_never_reach_the_wire() {
        let rows = [
            ("X-A", "v\r\nSet-Cookie: s=1", InputError::HeaderValue),
            ("X-A", "v\n\nHTTP/1.1 200 OK", InputError::HeaderValue),
            ("X-A\r\nSet-Cookie", "s=1", InputError::HeaderName),
            ("Content-Length", "0", InputError::ReservedHeader),
            ("Transfer-Encoding", "chunked", InputError::ReservedHeader),
            ("Connection", "upgrade", InputError::ReservedHeader),
        ];
        for (name, value, want) in rows {
            assert_eq!(Response::text(200, "hi").try_header(name, value), Err(want));
            let r = Response::text(200, "hi").header(name, value);
            assert_eq!(r.to_bytes(Persist::KeepAlive, false), Err(want));
            let (sent, persist) = r.to_bytes_or_500(Persist::KeepAlive, false);
            assert_eq!(persist, Persist::Close);
            let sent = String::from_utf8(sent).unwrap();
            assert!(sent.starts_with("HTTP/1.1 500 "), "{sent}");
            assert!(
                !sent.contains("Set-Cookie") && !sent.contains(" 200 "),
                "{sent}"
            );
        }
        assert!(Response::new(200).try_header("Connection", "close").is_ok());
    }
}
