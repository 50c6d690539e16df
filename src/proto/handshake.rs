//! The opening handshake (RFC 6455 4): parse and check requests and responses, compute the accept
//! key, and write the messages. Bytes in, bytes out; no sockets.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::{HandshakeError, InputError};
use crate::proto::http::{self, Framing};

/// The GUID every accept key is derived with (RFC 6455 1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

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

    /// The address the request came from (server side).
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

    /// The first value of query parameter `name`, percent-decoded: for `/chat?token=a%20b`,
    /// `query_param("token")` is `Some("a b")`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
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

/// Decodes `%XX` escapes and `+` (as space); invalid escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
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

/// Whether `name` lists `token` (case-insensitive), for callers outside this module.
pub(crate) fn header_has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    has_token(headers, name, token)
}

/// Whether the request asks for a WebSocket at all (`Upgrade: websocket`). One that does not is
/// plain HTTP.
pub fn is_upgrade(req: &Request) -> bool {
    has_token(&req.headers, "upgrade", "websocket")
}

/// Checks an upgrade request as RFC 6455 4.2.1 requires (after the HTTP rules of
/// [`http::check_request`]) and returns the accept key to answer with.
pub fn check_request(req: &Request) -> Result<String, HandshakeError> {
    if !is_upgrade(req) {
        return Err(HandshakeError::NotUpgrade);
    }
    match http::check_request(req)? {
        Framing::None | Framing::Length(0) => {}
        // Bytes after the head are frames; a body would be read as frames.
        Framing::Length(_) | Framing::Encoded => return Err(HandshakeError::UpgradeWithBody),
    }
    // RFC 6455 4.2.1: "An HTTP/1.1 or higher GET request".
    if req.method != "GET" {
        return Err(HandshakeError::NotGet);
    }
    if req.version != 1 {
        return Err(HandshakeError::NotHttp11);
    }
    if !has_token(&req.headers, "connection", "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    let key = req
        .header("sec-websocket-key")
        .ok_or(HandshakeError::BadKey)?;
    // RFC 6455 4.2.1: the key, base64-decoded, MUST be 16 bytes long.
    match BASE64.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return Err(HandshakeError::BadKey),
    }
    if req.header("sec-websocket-version") != Some("13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    Ok(accept_key(key.as_bytes()))
}

/// The `Sec-WebSocket-Accept` value for a key: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(GUID.as_bytes());
    BASE64.encode(sha.digest().bytes())
}

/// The `101 Switching Protocols` answer: the subprotocol and extension answer that were agreed,
/// then `extra` fields (a gatekeeper's), which are checked and may not include the names the
/// library writes ([`http::UPGRADE_OWNED`]).
pub fn response_101(
    accept: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
    extra: &[(String, String)],
) -> Result<Vec<u8>, InputError> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n");
    out.extend_from_slice(b"Connection: Upgrade\r\n");
    let mut agreed = vec![("Sec-WebSocket-Accept".to_owned(), accept.to_owned())];
    if let Some(p) = protocol {
        agreed.push(("Sec-WebSocket-Protocol".to_owned(), p.to_owned()));
    }
    if let Some(e) = extensions {
        agreed.push(("Sec-WebSocket-Extensions".to_owned(), e.to_owned()));
    }
    http::write_fields(&mut out, &agreed, &[])?;
    http::write_fields(&mut out, extra, http::UPGRADE_OWNED)?;
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// A fresh `Sec-WebSocket-Key`: base64 of 16 bytes from the operating system's random source.
pub fn generate_key() -> String {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).expect("the operating system's random source failed");
    BASE64.encode(raw)
}

/// The client's upgrade request: `library` holds the fields the client itself adds (offered
/// subprotocols and extensions, credentials from the URL), `extra` the user's, which are checked
/// and may not include the names in [`http::REQUEST_OWNED`] nor a second `Origin`.
pub fn client_request(
    host: &str,
    target: &str,
    key: &str,
    library: &[(String, String)],
    extra: &[(String, String)],
) -> Result<Vec<u8>, InputError> {
    // The target goes on the request line: no spaces or controls (a URL parser makes sure,
    // this makes sure whoever called).
    if target.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(InputError::HeaderValue);
    }
    http::check_field("Host", host)?;
    check_client_fields(extra)?;
    let mut out = Vec::with_capacity(200);
    out.extend_from_slice(format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n").as_bytes());
    out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\n");
    let mut own = vec![
        ("Sec-WebSocket-Key".to_owned(), key.to_owned()),
        ("Sec-WebSocket-Version".to_owned(), "13".to_owned()),
    ];
    own.extend_from_slice(library);
    http::write_fields(&mut out, &own, &[])?;
    http::write_fields(&mut out, extra, http::REQUEST_OWNED)?;
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// The checks on a client's own header fields, to run before connecting: valid names and
/// values, none the library writes, `Origin` at most once (a server refuses two).
pub fn check_client_fields(extra: &[(String, String)]) -> Result<(), InputError> {
    http::check_fields(extra, http::REQUEST_OWNED)?;
    let origins = extra
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("origin"))
        .count();
    if origins > 1 {
        return Err(InputError::DuplicateHeader);
    }
    Ok(())
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

/// Checks a `101` response against the key and subprotocols we sent (RFC 6455 4.1, the client's
/// checks); returns the subprotocol the server chose, if any. With `extensions_offered` false,
/// any `Sec-WebSocket-Extensions` in the answer fails the handshake; with it true, checking the
/// answer is the extension's business (`proto::deflate::check_answer`).
pub fn check_response(
    head: &ResponseHead,
    key: &str,
    offered: &[String],
    extensions_offered: bool,
) -> Result<Option<String>, HandshakeError> {
    if !has_token(&head.headers, "upgrade", "websocket") {
        return Err(HandshakeError::NotUpgrade);
    }
    if !has_token(&head.headers, "connection", "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    if head.header("sec-websocket-accept") != Some(accept_key(key.as_bytes()).as_str()) {
        return Err(HandshakeError::BadAccept);
    }
    // RFC 6455 4.1: an extension or subprotocol the client did not ask for MUST fail the
    // connection.
    if !extensions_offered && head.header("sec-websocket-extensions").is_some() {
        return Err(HandshakeError::UnexpectedNegotiation);
    }
    let mut chosen = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"));
    match (chosen.next(), chosen.next()) {
        (None, _) => Ok(None),
        (Some((_, value)), None) if offered.iter().any(|p| p == value.trim()) => {
            Ok(Some(value.trim().to_owned()))
        }
        _ => Err(HandshakeError::UnexpectedNegotiation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn rfc_accept_key_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn request_every_split_point() {
        let bytes = format!("{GOOD}leftover");
        let head_len = GOOD.len();
        for cut in 0..head_len {
            assert_eq!(
                parse_request(&bytes.as_bytes()[..cut], 16),
                Ok(None),
                "cut {cut}"
            );
        }
        let (req, n) = parse_request(bytes.as_bytes(), 16).unwrap().unwrap();
        assert_eq!(n, head_len);
        assert_eq!(
            (req.path(), req.query(), req.target()),
            ("/chat", Some("x=1"), "/chat?x=1")
        );
        assert_eq!(req.origin(), Some("http://example.com"));
        assert_eq!(
            check_request(&req),
            Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_owned())
        );
    }

    fn check(raw: &str) -> Result<String, HandshakeError> {
        let (req, _) = parse_request(raw.as_bytes(), 16)?.expect("complete");
        check_request(&req)
    }

    #[test]
    fn request_table() {
        let swap = |from: &str, to: &str| GOOD.replace(from, to);
        let rows: Vec<(String, Result<(), HandshakeError>)> = vec![
            (swap("Upgrade: websocket", "Upgrade: WebSocket"), Ok(())),
            (
                swap("Connection: Upgrade", "Connection: keep-alive, Upgrade"),
                Ok(()),
            ),
            (swap("Connection: Upgrade", "connection: UPGRADE"), Ok(())),
            (
                swap("Upgrade: websocket", "Upgrade: h2c"),
                Err(HandshakeError::NotUpgrade),
            ),
            (
                swap("Upgrade: websocket\r\n", ""),
                Err(HandshakeError::NotUpgrade),
            ),
            (swap("GET", "POST"), Err(HandshakeError::NotGet)),
            (swap("HTTP/1.1", "HTTP/1.0"), Err(HandshakeError::NotHttp11)),
            (
                swap("Connection: Upgrade", "Connection: close"),
                Err(HandshakeError::MissingConnectionUpgrade),
            ),
            (
                swap("Version: 13", "Version: 8"),
                Err(HandshakeError::UnsupportedVersion),
            ),
            (
                swap("Sec-WebSocket-Version: 13\r\n", ""),
                Err(HandshakeError::UnsupportedVersion),
            ),
            (
                swap("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ=="),
                Err(HandshakeError::BadKey),
            ),
            (
                swap("dGhlIHNhbXBsZSBub25jZQ==", "not base64!"),
                Err(HandshakeError::BadKey),
            ),
            (
                swap("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
                Err(HandshakeError::BadKey),
            ),
            (
                swap("Host: server.example.com\r\n", ""),
                Err(HandshakeError::MissingHost),
            ),
            (
                swap(
                    "Sec-WebSocket-Version: 13",
                    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8",
                ),
                Err(HandshakeError::DuplicateHeader),
            ),
            (
                swap(
                    "Origin: http://example.com",
                    "Origin: http://example.com\r\nOrigin: http://evil.example",
                ),
                Err(HandshakeError::DuplicateHeader),
            ),
            (
                swap(
                    "Sec-WebSocket-Version: 13",
                    "Sec-WebSocket-Version: 13\r\nContent-Length: 0",
                ),
                Ok(()),
            ),
            (
                swap(
                    "Sec-WebSocket-Version: 13",
                    "Sec-WebSocket-Version: 13\r\nContent-Length: 6",
                ),
                Err(HandshakeError::UpgradeWithBody),
            ),
            (
                swap(
                    "Sec-WebSocket-Version: 13",
                    "Sec-WebSocket-Version: 13\r\nTransfer-Encoding: chunked",
                ),
                Err(HandshakeError::UpgradeWithBody),
            ),
        ];
        for (raw, want) in rows {
            assert_eq!(check(&raw).map(|_| ()), want, "{raw}");
        }
    }

    #[test]
    fn written_heads_refuse_forged_fields() {
        let key = generate_key();
        let forged = [("X-A".to_owned(), "b\r\nSet-Cookie: s=1".to_owned())];
        assert_eq!(
            client_request("h", "/", &key, &[], &forged),
            Err(InputError::HeaderValue)
        );
        assert_eq!(
            client_request("h", "/a b", &key, &[], &[]),
            Err(InputError::HeaderValue)
        );
        assert_eq!(
            client_request("h\r\nX: y", "/", &key, &[], &[]),
            Err(InputError::HeaderValue)
        );
        let own = [("Sec-WebSocket-Key".to_owned(), "x".to_owned())];
        assert_eq!(
            client_request("h", "/", &key, &[], &own),
            Err(InputError::ReservedHeader)
        );
        let origins = [
            ("Origin".to_owned(), "http://a".to_owned()),
            ("origin".to_owned(), "http://b".to_owned()),
        ];
        assert_eq!(
            client_request("h", "/", &key, &[], &origins),
            Err(InputError::DuplicateHeader)
        );
        assert_eq!(
            response_101("a", None, None, &forged),
            Err(InputError::HeaderValue)
        );
        let answer = [("Sec-WebSocket-Accept".to_owned(), "x".to_owned())];
        assert_eq!(
            response_101("a", None, None, &answer),
            Err(InputError::ReservedHeader)
        );
        let ok = response_101("a", Some("chat"), Some("permessage-deflate"), &[]).unwrap();
        let ok = String::from_utf8(ok).unwrap();
        assert!(ok.contains("Sec-WebSocket-Protocol: chat\r\n"), "{ok}");
        assert!(
            ok.contains("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            "{ok}"
        );
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
    fn client_side_round_trip() {
        let key = generate_key();
        assert_eq!(BASE64.decode(&key).unwrap().len(), 16);
        assert_ne!(key, generate_key());
        let req = client_request("h:1", "/p?q", &key, &[], &[("X-A".into(), "b".into())]).unwrap();
        let (parsed, n) = parse_request(&req, 16).unwrap().unwrap();
        assert_eq!(n, req.len());
        assert_eq!(parsed.header("x-a"), Some("b"));
        let accept = check_request(&parsed).unwrap();
        let resp = response_101(&accept, None, None, &[]).unwrap();
        for cut in 0..resp.len() {
            assert_eq!(parse_response(&resp[..cut], 16), Ok(None));
        }
        let (head, n) = parse_response(&resp, 16).unwrap().unwrap();
        assert_eq!((head.status, n), (101, resp.len()));
        assert_eq!(check_response(&head, &key, &[], false), Ok(None));
        assert_eq!(
            check_response(&head, &generate_key(), &[], false),
            Err(HandshakeError::BadAccept)
        );
    }

    #[test]
    fn response_table() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let good = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        let proto = |p: &str| {
            good.replace(
                "\r\n\r\n",
                &format!("\r\nSec-WebSocket-Protocol: {p}\r\n\r\n"),
            )
        };
        let offered = ["chat".to_owned(), "v2".to_owned()];
        let rows = [
            (good.to_owned(), &offered[..], Ok(None)),
            (proto("v2"), &offered[..], Ok(Some("v2".to_owned()))),
            (proto("chat"), &offered[..], Ok(Some("chat".to_owned()))),
            (
                proto("v3"),
                &offered[..],
                Err(HandshakeError::UnexpectedNegotiation),
            ),
            (
                proto("chat, v2"),
                &offered[..],
                Err(HandshakeError::UnexpectedNegotiation),
            ),
            (
                good.replace(
                    "\r\n\r\n",
                    "\r\nSec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: v2\r\n\r\n",
                ),
                &offered[..],
                Err(HandshakeError::UnexpectedNegotiation),
            ),
            (
                good.replace(
                    "\r\n\r\n",
                    "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
                ),
                &offered[..],
                Err(HandshakeError::UnexpectedNegotiation),
            ),
            (
                good.replace("Upgrade: websocket\r\n", ""),
                &[],
                Err(HandshakeError::NotUpgrade),
            ),
            (
                good.replace("Connection: Upgrade", "Connection: close"),
                &[],
                Err(HandshakeError::MissingConnectionUpgrade),
            ),
            (
                good.replace("s3pP", "AAAA"),
                &[],
                Err(HandshakeError::BadAccept),
            ),
            (
                proto("chat"),
                &[],
                Err(HandshakeError::UnexpectedNegotiation),
            ),
        ];
        for (raw, offered, want) in rows {
            let (head, _) = parse_response(raw.as_bytes(), 16).unwrap().unwrap();
            assert_eq!(check_response(&head, key, offered, false), want, "{raw}");
        }
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
        assert_eq!(req.protocols(), vec!["chat", "v2", "v3"]);
        assert!(req.wants_keep_alive());
    }

    #[test]
    fn http_response_has_length_and_close() {
        let r = http::response(
            426,
            &[("Sec-WebSocket-Version".into(), "13".into())],
            b"hi",
            http::Persist::Close,
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
