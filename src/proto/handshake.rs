//! The opening handshake's own rules (RFC 6455 4): check an upgrade request and a `101`, compute
//! the accept key, write the client's request and the server's `101`. Parsing the heads is in
//! `head.rs`, the HTTP rules beneath these in `http.rs`. Bytes in, bytes out; no sockets.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::{HandshakeError, InputError};
use crate::proto::head::{Request, ResponseHead, has_token};
use crate::proto::http::{self, Framing};

/// The GUID every accept key is derived with (RFC 6455 1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Whether the request asks for a WebSocket at all (`Upgrade: websocket`). One that does not is
/// plain HTTP.
pub fn is_upgrade(req: &Request) -> bool {
    has_token(req.headers(), "upgrade", "websocket")
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
    if req.method() != "GET" {
        return Err(HandshakeError::NotGet);
    }
    if req.http_minor_version() != 1 {
        return Err(HandshakeError::NotHttp11);
    }
    if !has_token(req.headers(), "connection", "upgrade") {
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
pub(crate) mod tests {
    use super::*;
    use crate::proto::head::{parse_request, parse_response};

    /// The RFC's sample upgrade request (RFC 6455 1.3), for the tests of the heads too.
    pub(crate) const GOOD: &str = "GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
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
        // One Origin is what a browser-like client sends: allowed.
        let req = client_request("h", "/", &key, &[], &origins[..1]).unwrap();
        assert!(
            String::from_utf8(req)
                .unwrap()
                .contains("\r\nOrigin: http://a\r\n"),
            "one Origin goes out"
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
}
