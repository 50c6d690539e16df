//! HTTP/1.1 as the WebSocket handshake meets it: which header fields may be written, how a
//! request's body is framed, what it expects, and plain responses. Pure functions; the server's
//! keep-alive loop and body reading live in the front end.
//!
//! Every head this crate writes goes through [`write_fields`], so a name that is not a token or a
//! value with CR, LF or NUL can never reach the wire (RFC 9110 5.1, 5.5), whoever built it.

use crate::error::{HandshakeError, InputError};
use crate::proto::head::Request;

/// Fields a plain response may not carry from a handler: the server frames the message.
pub const RESPONSE_OWNED: &[&str] = &["content-length", "transfer-encoding", "connection"];

/// Fields of a `101` that the library writes from what was agreed.
pub const UPGRADE_OWNED: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
];

/// Fields of a client's upgrade request that the library writes itself.
pub const REQUEST_OWNED: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
];

/// Whether `b` may appear in a token (RFC 9110 5.6.2 `tchar`).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks one header field: the name a token, the value visible characters, spaces and tabs
/// (and bytes of non-ASCII UTF-8, which RFC 9110 5.5 admits as `obs-text`).
pub fn check_field(name: &str, value: &str) -> Result<(), InputError> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(InputError::HeaderName);
    }
    // RFC 9110 5.5: CR, LF and NUL are invalid in a field value; other controls are too.
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(InputError::HeaderValue);
    }
    Ok(())
}

/// Checks `fields` as [`check_field`] does and refuses any whose name is in `owned` (compared
/// case-insensitively): those belong to whoever frames the message.
pub fn check_fields(fields: &[(String, String)], owned: &[&str]) -> Result<(), InputError> {
    for (name, value) in fields {
        check_field(name, value)?;
        if owned.iter().any(|o| name.eq_ignore_ascii_case(o)) {
            return Err(InputError::ReservedHeader);
        }
    }
    Ok(())
}

/// Appends `Name: value\r\n` for each field, after [`check_fields`]; on an error nothing is
/// appended.
pub fn write_fields(
    out: &mut Vec<u8>,
    fields: &[(String, String)],
    owned: &[&str],
) -> Result<(), InputError> {
    check_fields(fields, owned)?;
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    Ok(())
}

/// What a response says about the connection after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// `Connection: close`: the server closes after this response.
    Close,
    /// HTTP/1.1 keeps the connection by default: nothing to say.
    KeepAlive,
    /// An HTTP/1.0 client asked to keep the connection: `Connection: keep-alive`.
    KeepAlive10,
}

/// A complete HTTP/1.1 response with a body and `Content-Length`. The fields are checked and may
/// not include [`RESPONSE_OWNED`] names.
pub fn response(
    status: u16,
    fields: &[(String, String)],
    body: &[u8],
    persist: Persist,
) -> Result<Vec<u8>, InputError> {
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
    write_fields(&mut out, fields, RESPONSE_OWNED)?;
    out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    match persist {
        Persist::Close => out.extend_from_slice(b"Connection: close\r\n"),
        Persist::KeepAlive => {}
        Persist::KeepAlive10 => out.extend_from_slice(b"Connection: keep-alive\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Ok(out)
}

/// The interim answer to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The reason phrase of a status code (RFC 9110 15), or a generic one for its class.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        },
    }
}

/// How a request's body is framed (RFC 9112 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: neither `Content-Length` nor `Transfer-Encoding`.
    None,
    /// `Content-Length` bytes follow the head.
    Length(u64),
    /// `Transfer-Encoding` (chunked or otherwise), which this server does not read.
    Encoded,
}

/// The rules that give a request one meaning however it is read (RFC 9112 3.2, 6.3; RFC 9110
/// 7.2): returns how its body is framed.
///
/// Refused: HTTP/1.1 without `Host`, more than one `Host`, `Origin`, `Sec-WebSocket-Key` or
/// `Sec-WebSocket-Version`, a `Content-Length` that is not digits or whose copies differ, and
/// `Content-Length` beside `Transfer-Encoding` (the classic smuggling shape).
pub fn check_request(req: &Request) -> Result<Framing, HandshakeError> {
    let count = |name: &str| {
        req.headers()
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    };
    // RFC 9112 3.2: a server MUST respond 400 to an HTTP/1.1 request without Host, or with more
    // than one.
    match count("host") {
        0 if req.http_minor_version() >= 1 => return Err(HandshakeError::MissingHost),
        0 | 1 => {}
        _ => return Err(HandshakeError::DuplicateHeader),
    }
    // RFC 6455 4.1 sends each of these once; a second copy could mean different things to a
    // proxy and to us.
    for name in ["origin", "sec-websocket-key", "sec-websocket-version"] {
        if count(name) > 1 {
            return Err(HandshakeError::DuplicateHeader);
        }
    }
    let mut length: Option<u64> = None;
    for (_, value) in req
        .headers()
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        // RFC 9112 6.3: a list of identical values may be read as one; anything else is an
        // unrecoverable framing error.
        for item in value.split(',').map(str::trim) {
            let parsed = parse_length(item).ok_or(HandshakeError::BadContentLength)?;
            if length.is_some_and(|l| l != parsed) {
                return Err(HandshakeError::BadContentLength);
            }
            length = Some(parsed);
        }
    }
    let encoded = count("transfer-encoding") > 0;
    match (length, encoded) {
        // RFC 9112 6.1: both present "ought to be handled as an error"; a smuggling attempt.
        (Some(_), true) => Err(HandshakeError::BadContentLength),
        (None, true) => Ok(Framing::Encoded),
        (Some(n), false) => Ok(Framing::Length(n)),
        (None, false) => Ok(Framing::None),
    }
}

/// `1*DIGIT`, nothing else: no sign, no spaces, no hex (RFC 9110 8.6).
fn parse_length(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// What a request's `Expect` field asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Nothing (or an HTTP/1.0 request, whose `100-continue` RFC 9110 10.1.1 says to ignore).
    Nothing,
    /// `100-continue`: answer `100 Continue` before reading the body.
    Continue,
    /// Anything else: `417 Expectation Failed`.
    Unsupported,
}

/// Reads a request's expectation (RFC 9110 10.1.1).
pub fn expectation(req: &Request) -> Expect {
    let mut values = req
        .headers()
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("expect"))
        .peekable();
    if values.peek().is_none() || req.http_minor_version() == 0 {
        return Expect::Nothing;
    }
    if values.all(|(_, v)| v.trim().eq_ignore_ascii_case("100-continue")) {
        Expect::Continue
    } else {
        Expect::Unsupported
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::head::parse_request;

    fn req(head: &str) -> Request {
        parse_request(head.as_bytes(), 16).unwrap().unwrap().0
    }

    #[test]
    fn fields_table() {
        let rows: &[(&str, &str, Result<(), InputError>)] = &[
            ("X-A", "b", Ok(())),
            ("X-A", "", Ok(())),
            ("X-A", "a b\tc ~!", Ok(())),
            ("X-A", "caf\u{e9}", Ok(())),
            ("x!#$%&'*+-.^_`|~9", "v", Ok(())),
            ("", "v", Err(InputError::HeaderName)),
            ("X A", "v", Err(InputError::HeaderName)),
            ("X-A:", "v", Err(InputError::HeaderName)),
            ("X-A\r\nSet-Cookie", "v", Err(InputError::HeaderName)),
            ("X-\u{e9}", "v", Err(InputError::HeaderName)),
            ("X-A", "v\r\nSet-Cookie: a=b", Err(InputError::HeaderValue)),
            ("X-A", "v\nx", Err(InputError::HeaderValue)),
            ("X-A", "v\rx", Err(InputError::HeaderValue)),
            ("X-A", "v\0x", Err(InputError::HeaderValue)),
            ("X-A", "v\x7fx", Err(InputError::HeaderValue)),
            ("X-A", "v\x0bx", Err(InputError::HeaderValue)),
        ];
        for (name, value, want) in rows {
            assert_eq!(check_field(name, value), *want, "{name:?}: {value:?}");
            let mut out = b"start".to_vec();
            let fields = [(name.to_string(), value.to_string())];
            assert_eq!(write_fields(&mut out, &fields, &[]), *want);
            if want.is_err() {
                assert_eq!(out, b"start", "nothing written for {name:?}");
            }
        }
    }

    #[test]
    fn owned_fields_are_refused_in_any_case() {
        for name in ["Content-Length", "transfer-encoding", "CONNECTION"] {
            let fields = [(name.to_owned(), "1".to_owned())];
            assert_eq!(
                response(200, &fields, b"x", Persist::KeepAlive),
                Err(InputError::ReservedHeader)
            );
        }
        let fields = [("Sec-WebSocket-Protocol".to_owned(), "x".to_owned())];
        assert_eq!(
            check_fields(&fields, UPGRADE_OWNED),
            Err(InputError::ReservedHeader)
        );
        assert_eq!(
            check_fields(&fields, REQUEST_OWNED),
            Err(InputError::ReservedHeader)
        );
    }

    #[test]
    fn responses_say_how_the_connection_goes_on() {
        let text =
            |persist| String::from_utf8(response(413, &[], b"big", persist).unwrap()).unwrap();
        let close = text(Persist::Close);
        assert!(
            close.starts_with("HTTP/1.1 413 Content Too Large\r\n"),
            "{close}"
        );
        assert!(close.contains("Content-Length: 3\r\nConnection: close\r\n\r\nbig"));
        assert!(!text(Persist::KeepAlive).contains("Connection"));
        assert!(text(Persist::KeepAlive10).contains("Connection: keep-alive\r\n"));
        assert_eq!(reason_phrase(501), "Not Implemented");
        assert_eq!(reason_phrase(417), "Expectation Failed");
        assert_eq!(reason_phrase(599), "Server Error");
    }

    #[test]
    fn every_reason_phrase() {
        let rows = [
            (100, "Continue"),
            (101, "Switching Protocols"),
            (200, "OK"),
            (201, "Created"),
            (202, "Accepted"),
            (204, "No Content"),
            (301, "Moved Permanently"),
            (302, "Found"),
            (303, "See Other"),
            (304, "Not Modified"),
            (307, "Temporary Redirect"),
            (308, "Permanent Redirect"),
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (408, "Request Timeout"),
            (409, "Conflict"),
            (410, "Gone"),
            (411, "Length Required"),
            (413, "Content Too Large"),
            (415, "Unsupported Media Type"),
            (417, "Expectation Failed"),
            (426, "Upgrade Required"),
            (429, "Too Many Requests"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (501, "Not Implemented"),
            (502, "Bad Gateway"),
            (503, "Service Unavailable"),
            (504, "Gateway Timeout"),
            // Codes without a phrase of their own get their class's.
            (103, "Informational"),
            (199, "Informational"),
            (206, "Success"),
            (399, "Redirection"),
            (418, "Client Error"),
            (511, "Server Error"),
            (599, "Server Error"),
        ];
        for (status, phrase) in rows {
            assert_eq!(reason_phrase(status), phrase, "{status}");
        }
    }

    #[test]
    fn request_rules_table() {
        let base = "GET / HTTP/1.1\r\nHost: h\r\n";
        let rows: &[(String, Result<Framing, HandshakeError>)] = &[
            (format!("{base}\r\n"), Ok(Framing::None)),
            ("GET / HTTP/1.0\r\n\r\n".into(), Ok(Framing::None)),
            (
                "GET / HTTP/1.1\r\n\r\n".into(),
                Err(HandshakeError::MissingHost),
            ),
            (
                format!("{base}Host: h\r\n\r\n"),
                Err(HandshakeError::DuplicateHeader),
            ),
            (
                format!("{base}Host: other\r\n\r\n"),
                Err(HandshakeError::DuplicateHeader),
            ),
            (
                format!("{base}Content-Length: 5\r\n\r\n"),
                Ok(Framing::Length(5)),
            ),
            (
                format!("{base}Content-Length: 0\r\n\r\n"),
                Ok(Framing::Length(0)),
            ),
            (
                format!("{base}Content-Length: 5\r\nContent-Length: 5\r\n\r\n"),
                Ok(Framing::Length(5)),
            ),
            (
                format!("{base}Content-Length: 5, 5\r\n\r\n"),
                Ok(Framing::Length(5)),
            ),
            (
                format!("{base}Content-Length: 5\r\nContent-Length: 6\r\n\r\n"),
                Err(HandshakeError::BadContentLength),
            ),
            (
                format!("{base}Content-Length: 5, 6\r\n\r\n"),
                Err(HandshakeError::BadContentLength),
            ),
            (
                format!("{base}Content-Length: +5\r\n\r\n"),
                Err(HandshakeError::BadContentLength),
            ),
            (
                format!("{base}Content-Length: -5\r\n\r\n"),
                Err(HandshakeError::BadContentLength),
            ),
            (
                format!("{base}Content-Length: 0x5\r\n\r\n"),
                Err(HandshakeError::BadContentLength),
            ),
            (
                format!("{base}Content-Length: \r\n\r\n"),
                Err(HandshakeError::BadContentLength),
            ),
            (
                format!("{base}Content-Length: ten\r\n\r\n"),
                Err(HandshakeError::BadContentLength),
            ),
            (
                format!("{base}Content-Length: 99999999999999999999999\r\n\r\n"),
                Err(HandshakeError::BadContentLength),
            ),
            (
                format!("{base}Transfer-Encoding: chunked\r\n\r\n"),
                Ok(Framing::Encoded),
            ),
            (
                format!("{base}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
                Err(HandshakeError::BadContentLength),
            ),
            (
                format!("{base}Origin: a\r\nOrigin: a\r\n\r\n"),
                Err(HandshakeError::DuplicateHeader),
            ),
            (
                format!("{base}Sec-WebSocket-Key: a\r\nsec-websocket-key: b\r\n\r\n"),
                Err(HandshakeError::DuplicateHeader),
            ),
            (
                format!("{base}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n\r\n"),
                Err(HandshakeError::DuplicateHeader),
            ),
        ];
        for (raw, want) in rows {
            assert_eq!(check_request(&req(raw)), *want, "{raw:?}");
        }
    }

    #[test]
    fn expectations() {
        let with = |v: &str, version: &str| {
            expectation(&req(&format!(
                "POST / HTTP/1.{version}\r\nHost: h\r\nExpect: {v}\r\n\r\n"
            )))
        };
        assert_eq!(with("100-continue", "1"), Expect::Continue);
        assert_eq!(with("100-Continue", "1"), Expect::Continue);
        assert_eq!(with("fly", "1"), Expect::Unsupported);
        assert_eq!(with("100-continue", "0"), Expect::Nothing);
        assert_eq!(
            expectation(&req("GET / HTTP/1.1\r\nHost: h\r\n\r\n")),
            Expect::Nothing
        );
    }

    #[test]
    fn http_response_has_length_and_close() {
        let r = response(
            426,
            &[("Sec-WebSocket-Version".into(), "13".into())],
            b"hi",
            Persist::Close,
        )
        .unwrap();
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nhi"));
    }
}
