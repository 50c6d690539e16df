//! The opening handshake: what the server answers to bad requests (as raw HTTP), its deadline,
//! bytes behind the request, and how the client reports URLs and refusals.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use syncws::{Client, Config, Error, HandshakeError, UrlError};

/// An HTTP response as a raw client read it.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Sends `request` (from another thread, so a huge request cannot block reading the answer) and
/// reads the response head and its `Content-Length` body. For anything but a 101, also checks
/// that the server then ends the connection.
fn exchange(addr: SocketAddr, request: Vec<u8>) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    guard(&stream);
    let mut writer = stream.try_clone().unwrap();
    // The server may stop reading and close early; a failed write is then expected.
    let sending = thread::spawn(move || writer.write_all(&request));
    let mut buf = Vec::new();
    let head = read_head(&mut stream, &mut buf);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let len: usize = head_header(&head, "content-length").map_or(0, |v| v.parse().unwrap());
    while buf.len() < len {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "eof inside the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    if status != 101 {
        assert_eq!(buf.len(), len, "bytes after the body");
        let mut rest = [0u8; 64];
        match stream.read(&mut rest) {
            Ok(0) => {}
            Ok(n) => panic!("bytes after the response: {:?}", &rest[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("server kept the connection open: {e}"),
        }
    }
    let _ = sending.join();
    Reply {
        status,
        head,
        body: buf,
    }
}

/// A request built from lines, with the blank line added.
fn request(lines: &[&str]) -> Vec<u8> {
    let mut out = lines.join("\r\n");
    out.push_str("\r\n\r\n");
    out.into_bytes()
}

const GOOD: &[&str] = &[
    "GET /chat HTTP/1.1",
    "Host: localhost",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
];

/// The good request with line `index` replaced (or removed with `None`).
fn good_but(index: usize, line: Option<&str>) -> Vec<u8> {
    let mut lines: Vec<&str> = GOOD.to_vec();
    match line {
        Some(l) => lines[index] = l,
        None => {
            lines.remove(index);
        }
    }
    request(&lines)
}

fn many_headers(count: usize) -> Vec<u8> {
    let extra: Vec<String> = (0..count).map(|i| format!("X-Filler-{i}: {i}")).collect();
    let mut lines: Vec<&str> = GOOD.to_vec();
    lines.extend(extra.iter().map(String::as_str));
    request(&lines)
}

#[test]
fn bad_requests_get_the_right_status() {
    let huge_value = format!("X-Huge: {}", "a".repeat(1 << 20));
    let rows: Vec<(&str, Vec<u8>, u16)> = vec![
        ("valid", request(GOOD), 101),
        (
            "valid, header names in lowercase and a token list",
            request(&[
                "GET / HTTP/1.1",
                "host: localhost",
                "upgrade: WebSocket",
                "connection: keep-alive, Upgrade",
                "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
                "sec-websocket-version: 13",
            ]),
            101,
        ),
        ("garbage", b"\x00\x01\x02 hello\r\n\r\n".to_vec(), 400),
        ("not http", request(&["HELLO THERE FRIEND"]), 400),
        ("POST", good_but(0, Some("POST /chat HTTP/1.1")), 400),
        ("HTTP/1.0", good_but(0, Some("GET /chat HTTP/1.0")), 400),
        ("no Connection", good_but(3, None), 400),
        (
            "Connection without upgrade",
            good_but(3, Some("Connection: keep-alive")),
            400,
        ),
        ("no key", good_but(4, None), 400),
        (
            "key of 4 bytes",
            good_but(4, Some("Sec-WebSocket-Key: dGVzdA==")),
            400,
        ),
        (
            "key of 17 bytes",
            good_but(4, Some("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=")),
            400,
        ),
        (
            "key not base64",
            good_but(4, Some("Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==")),
            400,
        ),
        (
            "version 8",
            good_but(5, Some("Sec-WebSocket-Version: 8")),
            426,
        ),
        ("no version", good_but(5, None), 426),
        (
            "plain GET",
            request(&["GET / HTTP/1.1", "Host: localhost"]),
            426,
        ),
        ("100 headers", many_headers(100), 431),
        ("10,000 headers", many_headers(10_000), 431),
        (
            "a 1 MB header",
            request(&[GOOD[0], GOOD[1], &huge_value]),
            431,
        ),
    ];
    let addr = echo_server();
    let mut failed = Vec::new();
    for (name, bytes, want) in rows {
        let reply = exchange(addr, bytes);
        if reply.status != want {
            failed.push(format!("{name}: got {}, want {want}", reply.status));
        }
        if reply.status == 426 && want == 426 && name != "plain GET" {
            // RFC 6455 4.4: the versions the server speaks.
            let versions = head_header(&reply.head, "sec-websocket-version");
            if versions != Some("13") {
                failed.push(format!("{name}: Sec-WebSocket-Version {versions:?}"));
            }
        }
        if reply.status >= 400 && reply.body.is_empty() {
            failed.push(format!("{name}: {} without a body", reply.status));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn a_stalled_handshake_is_cut_off_while_others_are_served() {
    let deadline = Duration::from_millis(500);
    let addr = echo_server_with(Config::default().handshake_timeout(deadline));
    let start = Instant::now();
    let mut stalled = TcpStream::connect(addr).unwrap();
    guard(&stalled);
    stalled.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();

    // A second client is served meanwhile.
    assert_echoes(addr, "/", "not blocked");

    let mut buf = Vec::new();
    let head = read_head(&mut stalled, &mut buf);
    let took = start.elapsed();
    assert!(head.starts_with("HTTP/1.1 408 "), "{head}");
    assert!(took >= deadline, "cut off after {took:?}");
    assert!(
        took < deadline + Duration::from_secs(2),
        "cut off after {took:?}"
    );
}

#[test]
fn a_trickling_handshake_is_cut_off_at_the_total_deadline() {
    let deadline = Duration::from_millis(500);
    let addr = echo_server_with(Config::default().handshake_timeout(deadline));
    let start = Instant::now();
    let stream = TcpStream::connect(addr).unwrap();
    guard(&stream);
    let mut writer = stream.try_clone().unwrap();
    // One byte every 50 ms: each read finishes quickly, the whole head never does.
    let trickle = thread::spawn(move || {
        let mut line = b"GET / HTTP/1.1\r\nX-Slow: "
            .iter()
            .chain(std::iter::repeat(&b'a'));
        for _ in 0..200 {
            if writer.write_all(&[*line.next().unwrap()]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    let mut reader = stream;
    let mut answer = Vec::new();
    let _ = reader.read_to_end(&mut answer);
    let took = start.elapsed();
    assert!(
        took < deadline + Duration::from_secs(2),
        "cut off after {took:?}"
    );
    assert!(
        answer.starts_with(b"HTTP/1.1 408 "),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    trickle.join().unwrap();
}

#[test]
fn a_frame_right_behind_the_request_is_kept() {
    let addr = echo_server();
    let early = frames(&[Frame::text("early"), Frame::binary([1, 2, 3])]);
    let mut raw = RawConn::connect_with(addr, &early);
    let echo = raw.read_frame();
    assert_eq!((echo.opcode, echo.payload), (TEXT, b"early".to_vec()));
    let echo = raw.read_frame();
    assert_eq!((echo.opcode, echo.payload), (BINARY, vec![1, 2, 3]));
}

#[test]
fn client_refuses_bad_urls_without_touching_the_network() {
    let rows = [
        ("ws://127.0.0.1:9/chat#room", UrlError::Fragment),
        ("ws://127.0.0.1:99999/", UrlError::BadPort),
        ("ws://127.0.0.1:0/", UrlError::BadPort),
        ("ws://127.0.0.1:port/", UrlError::BadPort),
        ("ws:///path", UrlError::BadHost),
        ("ws://127.0.0.1:9/a b", UrlError::BadCharacter),
    ];
    for (url, want) in rows {
        match Client::connect(url) {
            Err(Error::Url(e)) => assert_eq!(e, want, "{url}"),
            other => panic!("{url}: {other:?}"),
        }
    }
    // A wrong scheme is named, with the ones that would do.
    for (url, got) in [("http://127.0.0.1:9/", "http"), ("127.0.0.1:9", "")] {
        match Client::connect(url) {
            Err(Error::Url(UrlError::UnsupportedScheme(e))) => {
                assert_eq!(e.scheme(), got, "{url}");
                let supported = e.supported().collect::<Vec<_>>();
                assert_eq!(supported, ["ws", "wss", "ws+unix"], "{url}");
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    let e = Client::connect("http://127.0.0.1:9/")
        .unwrap_err()
        .to_string();
    // (without a TLS feature, wss:// is named with the feature it needs)
    assert!(
        e.starts_with("invalid url: unsupported scheme \"http\", expected ws://, wss://")
            && e.ends_with(" or ws+unix://"),
        "{e}"
    );
}

#[test]
fn client_reports_a_refusal_with_status_headers_and_body() {
    let (addr, server) = raw_http_server(|mut stream, head| {
        stream
            .write_all(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 12\r\nX-Why: token\r\n\r\nnot allowed\n",
            )
            .unwrap();
        head
    });
    let result = Client::builder()
        .header("Authorization", "Bearer nope")
        .connect(&ws_url(addr, "/private?x=1"));
    let head = server.join().unwrap();
    assert!(head.starts_with("GET /private?x=1 HTTP/1.1\r\n"), "{head}");
    assert_eq!(head_header(&head, "authorization"), Some("Bearer nope"));
    match result {
        Err(Error::Http(response)) => {
            assert_eq!(response.status, 403);
            assert_eq!(response.body, b"not allowed\n");
            assert!(
                response
                    .headers
                    .iter()
                    .any(|(n, v)| n.eq_ignore_ascii_case("x-why") && v == "token"),
                "{:?}",
                response.headers
            );
        }
        other => panic!("expected Error::Http, got {other:?}"),
    }
}

#[test]
fn client_reads_a_refusal_body_until_the_server_closes() {
    let (addr, server) = raw_http_server(|mut stream, _| {
        stream
            .write_all(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\r\ncome back later")
            .unwrap();
    });
    let result = Client::connect(&ws_url(addr, "/"));
    server.join().unwrap();
    match result {
        Err(Error::Http(response)) => {
            assert_eq!(response.status, 503);
            assert_eq!(response.body, b"come back later");
        }
        other => panic!("expected Error::Http, got {other:?}"),
    }
}

/// A `101` response with the usual headers and `accept` as the accept key.
fn switching(accept: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n"
    )
}

#[test]
fn client_checks_the_servers_101() {
    // Each row turns the right accept key into the head of the server's answer.
    type Answer = fn(&str) -> String;
    let rows: Vec<(&str, Answer, HandshakeError)> = vec![
        (
            "wrong accept",
            |_| switching(SAMPLE_ACCEPT),
            HandshakeError::BadAccept,
        ),
        (
            "no accept",
            |_| {
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    .into()
            },
            HandshakeError::BadAccept,
        ),
        (
            "no upgrade",
            |a| switching(a).replace("Upgrade: websocket\r\n", ""),
            HandshakeError::NotUpgrade,
        ),
        (
            "no connection",
            |a| switching(a).replace("Connection: Upgrade\r\n", ""),
            HandshakeError::MissingConnectionUpgrade,
        ),
        (
            "HTTP/1.0",
            |a| switching(a).replace("HTTP/1.1", "HTTP/1.0"),
            HandshakeError::NotHttp11,
        ),
        (
            "extension not offered",
            |a| switching(a) + "Sec-WebSocket-Extensions: permessage-deflate\r\n",
            HandshakeError::UnexpectedNegotiation,
        ),
        (
            "subprotocol not offered",
            |a| switching(a) + "Sec-WebSocket-Protocol: chat\r\n",
            HandshakeError::UnexpectedNegotiation,
        ),
    ];
    let mut failed = Vec::new();
    for (name, answer, want) in rows {
        let (addr, server) = raw_http_server(move |mut stream, head| {
            let key = head_header(&head, "sec-websocket-key").unwrap();
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            let response = answer(&accept) + "\r\n";
            stream.write_all(response.as_bytes()).unwrap();
            // Stay until the client gives up.
            let _ = stream.read(&mut [0u8; 64]);
        });
        let result = Client::connect(&ws_url(addr, "/"));
        let _ = server.join();
        match result {
            Err(Error::Handshake(e)) if e == want => {}
            other => failed.push(format!("{name}: got {other:?}, want {want:?}")),
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn client_handshake_has_a_deadline() {
    let deadline = Duration::from_millis(300);
    let (addr, server) = raw_http_server(|mut stream, _| {
        // Never answer; wait for the client to give up.
        let _ = stream.read(&mut [0u8; 64]);
    });
    let start = Instant::now();
    let result = Client::builder()
        .config(Config::default().handshake_timeout(deadline))
        .connect(&ws_url(addr, "/"));
    let took = start.elapsed();
    assert!(
        matches!(result, Err(Error::Handshake(HandshakeError::Timeout))),
        "{result:?}"
    );
    assert!(
        took >= deadline && took < deadline + Duration::from_secs(2),
        "{took:?}"
    );
    server.join().unwrap();
}
