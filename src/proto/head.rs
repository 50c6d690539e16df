//! HTTP heads as they arrive: a request (method, target, headers, peer, body) or a response,
//! parsed from the start of a byte slice as complete-or-partial. No I/O; the rules on top are in
//! `http.rs` (HTTP) and `handshake.rs` (RFC 6455).

use std::borrow::Cow;

use crate::error::HandshakeError;

/// An HTTP request head as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    target: String,
    version: u8,
    headers: Vec<(String, String)>,
    peer: Option<std::net::SocketAddr>,
    body: Vec<u8>,
}

impl Request {
    /// The method, e.g. `GET`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target as sent, path and query: `/chat?room=1`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The path without the query: `/chat`.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query without the `?`, if there is one: `room=1`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every header, in the order received.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The `Origin` header, which browsers send and other clients usually do not.
    pub fn origin(&self) -> Option<&str> {
        self.header("origin")
    }

    /// The HTTP minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub fn http_minor_version(&self) -> u8 {
        self.version
    }

    /// The address the request came from (server side): `None` from a peer on a Unix socket,
    /// unless it is a trusted proxy that named the client.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.peer
    }

    /// The request body (plain HTTP requests with `Content-Length`; empty otherwise).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The subprotocols the client offered in `Sec-WebSocket-Protocol`, in its order.
    pub fn protocols(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// The first value of query parameter `name`, percent-decoded (`+` as a space, bytes that
    /// do not decode to UTF-8 as U+FFFD): for `/chat?token=a%20b`, `query_param("token")` is
    /// `Some("a b")`.
    ///
    /// A string slice like [`header`](Self::header)'s, borrowed from the request when the value
    /// has nothing to decode (the usual token or id), so reading one costs no allocation; only a
    /// value with `%` or `+` is decoded into a new `String`. Compare it with `as_deref()`:
    /// `req.query_param("token").as_deref() == Some("s3cret")`.
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        self.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k) == name).then(|| decode_component(v))
        })
    }

    pub(crate) fn set_peer(&mut self, peer: Option<std::net::SocketAddr>) {
        self.peer = peer;
    }

    pub(crate) fn set_body(&mut self, body: Vec<u8>) {
        self.body = body;
    }

    /// Whether the client asked to keep the connection open after this request.
    pub(crate) fn wants_keep_alive(&self) -> bool {
        if has_token(&self.headers, "connection", "close") {
            return false;
        }
        // HTTP/1.1 keeps connections open by default, HTTP/1.0 only on request.
        self.version == 1 || has_token(&self.headers, "connection", "keep-alive")
    }
}

/// Splits `host[:port]` at the port's colon, an IPv6 address in brackets: `[::1]:80` gives
/// (`[::1]`, `80`), `[::1]` (`[::1]`, none), `name:80` (`name`, `80`), `name` (`name`, none). The
/// host keeps its brackets and the port is not parsed: each caller has its own rules for both.
/// `None` for an unclosed bracket or anything after `]` but `:port`.
pub fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    Some(match s.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (s, None),
    })
}

/// A query string component, percent-decoded with `+` as a space; borrowed when it has
/// neither.
fn decode_component(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(String::from_utf8_lossy(&percent_decode(s, true)).into_owned())
}

/// Decodes `%XX` escapes (invalid ones stay as they are). With `plus_as_space`, `+` is a space,
/// as in query strings (`application/x-www-form-urlencoded`); without, itself, as in a URL's
/// user info.
pub fn percent_decode(s: &str, plus_as_space: bool) -> Vec<u8> {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|&b| hex(b)),
            bytes.get(i + 2).and_then(|&b| hex(b)),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
            (b'+', _, _) if plus_as_space => out.push(b' '),
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    out
}

/// An HTTP response head as the client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The headers in order.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether any `name` header lists `token` in its comma-separated value (case-insensitive).
pub(crate) fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).trim().to_owned(),
            )
        })
        .collect()
}

fn map_parse_error(e: httparse::Error) -> HandshakeError {
    match e {
        httparse::Error::TooManyHeaders => HandshakeError::TooManyHeaders,
        _ => HandshakeError::MalformedHttp,
    }
}

/// Parses a request head from the start of `buf`: `Ok(None)` if it is not complete yet, else the
/// request and the number of bytes it took (the rest belongs to what follows).
pub fn parse_request(
    buf: &[u8],
    max_headers: usize,
) -> Result<Option<(Request, usize)>, HandshakeError> {
    let mut storage = vec![httparse::EMPTY_HEADER; max_headers];
    let mut req = httparse::Request::new(&mut storage);
    match req.parse(buf).map_err(map_parse_error)? {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(n) => Ok(Some((
            Request {
                method: req.method.unwrap_or_default().to_owned(),
                target: req.path.unwrap_or_default().to_owned(),
                version: req.version.unwrap_or(0),
                headers: owned_headers(req.headers),
                peer: None,
                body: Vec::new(),
            },
            n,
        ))),
    }
}

/// Parses a response head from the start of `buf`, like [`parse_request`]. A WebSocket answer
/// must be HTTP/1.1.
pub fn parse_response(
    buf: &[u8],
    max_headers: usize,
) -> Result<Option<(ResponseHead, usize)>, HandshakeError> {
    parse_any_response(buf, max_headers, true)
}

/// Parses an HTTP proxy's answer to `CONNECT`: HTTP/1.0 is fine there (tinyproxy and others
/// answer in it).
pub fn parse_proxy_response(
    buf: &[u8],
    max_headers: usize,
) -> Result<Option<(ResponseHead, usize)>, HandshakeError> {
    parse_any_response(buf, max_headers, false)
}

fn parse_any_response(
    buf: &[u8],
    max_headers: usize,
    need_11: bool,
) -> Result<Option<(ResponseHead, usize)>, HandshakeError> {
    let mut storage = vec![httparse::EMPTY_HEADER; max_headers];
    let mut res = httparse::Response::new(&mut storage);
    match res.parse(buf).map_err(map_parse_error)? {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(n) => {
            if need_11 && res.version != Some(1) {
                return Err(HandshakeError::NotHttp11);
            }
            let head = ResponseHead {
                status: res.code.unwrap_or(0),
                headers: owned_headers(res.headers),
            };
            Ok(Some((head, n)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::tests::GOOD;

    #[test]
    fn host_and_port_split() {
        type Split<'a> = Option<(&'a str, Option<&'a str>)>;
        let rows: &[(&str, Split<'_>)] = &[
            ("example.com", Some(("example.com", None))),
            ("example.com:8080", Some(("example.com", Some("8080")))),
            ("example.com:", Some(("example.com", Some("")))),
            ("[::1]", Some(("[::1]", None))),
            ("[::1]:9001", Some(("[::1]", Some("9001")))),
            ("[::1]x", None),
            ("[::1", None),
            ("2001:db8::1", Some(("2001", Some("db8::1")))),
            ("", Some(("", None))),
        ];
        for (input, want) in rows {
            assert_eq!(split_host_port(input), *want, "{input:?}");
        }
    }

    #[test]
    fn too_many_headers_and_garbage() {
        let many: String = (0..20).map(|i| format!("X-{i}: y\r\n")).collect();
        let raw = GOOD.replace("\r\n\r\n", &format!("\r\n{many}\r\n"));
        assert_eq!(
            parse_request(raw.as_bytes(), 16),
            Err(HandshakeError::TooManyHeaders)
        );
        assert_eq!(
            parse_request(b"\x16\x03\x01\x02\x00\x01\x00", 16),
            Err(HandshakeError::MalformedHttp)
        );
    }

    #[test]
    fn query_params_and_protocols() {
        let raw = "GET /c?token=a%20b&x=1+2&bad=%zz&empty HTTP/1.1\r\nSec-WebSocket-Protocol: chat, v2\r\n\
            Sec-WebSocket-Protocol: v3\r\n\r\n";
        let (req, _) = parse_request(raw.as_bytes(), 8).unwrap().unwrap();
        assert_eq!(req.query_param("token").as_deref(), Some("a b"));
        assert_eq!(req.query_param("x").as_deref(), Some("1 2"));
        assert_eq!(req.query_param("bad").as_deref(), Some("%zz"));
        assert_eq!(req.query_param("empty").as_deref(), Some(""));
        assert_eq!(req.query_param("missing"), None);
        // Decoded values are new strings; those with nothing to decode borrow from the request.
        assert!(matches!(req.query_param("token"), Some(Cow::Owned(_))));
        assert!(matches!(req.query_param("bad"), Some(Cow::Owned(_))));
        assert!(matches!(req.query_param("empty"), Some(Cow::Borrowed(""))));
        let (plain, _) = parse_request(b"GET /c?a%62=x&id=42 HTTP/1.1\r\n\r\n", 8)
            .unwrap()
            .unwrap();
        assert!(matches!(plain.query_param("id"), Some(Cow::Borrowed("42"))));
        assert_eq!(
            plain.query_param("ab").as_deref(),
            Some("x"),
            "keys are decoded too"
        );
        assert_eq!(req.protocols(), vec!["chat", "v2", "v3"]);
        assert!(req.wants_keep_alive());
    }

    #[test]
    fn keep_alive_by_version_and_connection() {
        let rows = [
            ("HTTP/1.1", "", true),
            ("HTTP/1.1", "Connection: close\r\n", false),
            ("HTTP/1.1", "Connection: keep-alive, close\r\n", false),
            ("HTTP/1.0", "", false),
            ("HTTP/1.0", "Connection: Keep-Alive\r\n", true),
            ("HTTP/1.0", "Connection: close\r\n", false),
        ];
        for (version, field, want) in rows {
            let raw = format!("GET / {version}\r\nHost: h\r\n{field}\r\n");
            let (req, _) = parse_request(raw.as_bytes(), 8).unwrap().unwrap();
            assert_eq!(req.wants_keep_alive(), want, "{raw:?}");
        }
    }

    #[test]
    fn peer_and_body_are_kept() {
        let (mut req, _) = parse_request(b"POST / HTTP/1.1\r\n\r\n", 8)
            .unwrap()
            .unwrap();
        assert_eq!((req.peer_addr(), req.body()), (None, &b""[..]));
        let peer = "127.0.0.1:4000".parse().unwrap();
        req.set_peer(Some(peer));
        req.set_body(b"a=1".to_vec());
        assert_eq!((req.peer_addr(), req.body()), (Some(peer), &b"a=1"[..]));
    }

    #[test]
    fn percent_decoding() {
        let rows: &[(&str, bool, &[u8])] = &[
            ("a%20b", true, b"a b"),
            ("%41%7a%7A%ff", false, b"Azz\xff"),
            ("a+b", true, b"a b"),
            // In a URL's user info `+` is itself.
            ("a+b%2B", false, b"a+b+"),
            // Invalid or cut escapes stay as they are.
            ("%zz%4", true, b"%zz%4"),
            ("%", false, b"%"),
            ("100%", false, b"100%"),
        ];
        for (input, plus, want) in rows {
            assert_eq!(percent_decode(input, *plus), *want, "{input:?}");
        }
    }

    #[test]
    fn responses_need_http_11_but_a_proxy_may_answer_in_10() {
        let ok11 = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        let (head, n) = parse_response(ok11, 8).unwrap().unwrap();
        assert_eq!((head.status, n), (101, ok11.len()));
        assert_eq!(head.header("UPGRADE"), Some("websocket"));
        let ok10 = b"HTTP/1.0 200 Connection established\r\n\r\nrest";
        assert_eq!(parse_response(ok10, 8), Err(HandshakeError::NotHttp11));
        let (head, n) = parse_proxy_response(ok10, 8).unwrap().unwrap();
        assert_eq!((head.status, n), (200, ok10.len() - 4));
        let (head, _) = parse_proxy_response(ok11, 8).unwrap().unwrap();
        assert_eq!(head.status, 101);
        assert_eq!(parse_proxy_response(&ok10[..10], 8), Ok(None));
    }
}
