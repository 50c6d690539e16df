//! The HTTP edge under attack, over real loopback sockets: forged header fields from handlers,
//! gatekeepers, the public `Response` field and the client builder never reach the wire;
//! requests that could be read two ways are refused; `Expect`; and total deadlines against peers
//! that trickle bytes (inside TLS records too) or never read.

mod raw_http;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use raw_http::{End, Http, upgrade, wait_until};
use syncws::{
    Accept, Client, Config, Error, HandlerResult, InputError, Response, Server, ServerHandle,
    WebSocket,
};

/// How long a server may take to close a refused connection.
const PROMPTLY: Duration = Duration::from_secs(3);

/// The handshake timeout of the slow-peer tests.
const HANDSHAKE: Duration = Duration::from_secs(2);

fn echo(ws: &mut WebSocket) -> HandlerResult {
    while let Some(msg) = ws.recv()? {
        ws.send(&msg)?;
    }
    Ok(())
}

fn bind() -> Server {
    Server::bind("127.0.0.1:0").expect("bind")
}

fn start(server: Server) -> ServerHandle {
    server.start(echo).expect("start")
}

/// A server whose HTTP handler echoes the request body, and puts the `v` query parameter (user
/// input) into a header.
fn reflecting_server() -> ServerHandle {
    start(bind().http(|req| {
        let mut r = Response::text(200, "ok\n").body(req.body().to_vec());
        if let Some(v) = req.query_param("v") {
            r = r.header("X-Echo", &v);
        }
        r
    }))
}

fn assert_not_forged(r: &raw_http::Reply) {
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(r.header("set-cookie"), None, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
}

#[test]
fn a_handler_cannot_split_a_response_with_user_input() {
    let handle = reflecting_server();
    // `a%0d%0aSet-Cookie: admin=1%0d%0a%0d%0aHTTP/1.1 200 OK` decoded into a header value.
    let forged = "GET /?v=a%0d%0aSet-Cookie:%20admin=1%0d%0aContent-Length:%200%0d%0a%0d%0a\
                  HTTP/1.1%20200%20OK HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut c = Http::connect(handle.local_addr());
    // A second request pipelined behind: a split response would answer it with forged bytes.
    c.send(forged)
        .send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let r = c.response();
    assert_not_forged(&r);
    assert_eq!(c.end(PROMPTLY), End::Closed);

    for v in ["a%0ab", "a%0db", "a%00b"] {
        let mut c = Http::connect(handle.local_addr());
        let r = c.exchange(format!("GET /?v={v} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
        assert_not_forged(&r);
    }
    // A clean value goes through.
    let mut c = Http::connect(handle.local_addr());
    let r = c.exchange("GET /?v=fine HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!((r.status, r.header("x-echo")), (200, Some("fine")));
    handle.shutdown();
}

#[test]
fn bad_names_reserved_fields_and_the_public_field_are_refused_too() {
    let handle = start(bind().http(|req| match req.path() {
        "/name" => Response::text(200, "x").header("X-A\r\nSet-Cookie", "admin=1"),
        "/space" => Response::text(200, "x").header("X A", "1"),
        "/length" => Response::text(200, "x").header("Content-Length", "0"),
        "/chunked" => Response::text(200, "x").header("Transfer-Encoding", "chunked"),
        "/field" => Response {
            status: 200,
            headers: vec![("X-A".into(), "b\r\nSet-Cookie: admin=1".into())],
            body: b"x".to_vec(),
        },
        _ => Response::text(200, "x").header("Connection", "close"),
    }));
    for path in ["/name", "/space", "/length", "/chunked", "/field"] {
        let mut c = Http::connect(handle.local_addr());
        let r = c.exchange(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
        assert_not_forged(&r);
        assert_eq!(c.end(PROMPTLY), End::Closed, "{path}");
    }
    // The handler's own `Connection: close` is honoured, not refused.
    let mut c = Http::connect(handle.local_addr());
    let r = c.exchange("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    handle.shutdown();
}

#[test]
fn a_gatekeeper_cannot_forge_fields_of_the_101() {
    let handle = start(bind().gatekeeper(|req| match req.path() {
        "/forged" => Ok(Accept::new().header("X-User", "bob\r\nSet-Cookie: admin=1")),
        "/reserved" => Ok(Accept::new().header("Sec-WebSocket-Accept", "x")),
        _ => Ok(Accept::new().header("X-User", "bob")),
    }));
    for path in ["/forged", "/reserved"] {
        let mut c = Http::connect(handle.local_addr());
        let r = c.exchange(upgrade(path, ""));
        assert_not_forged(&r);
        assert_eq!(c.end(PROMPTLY), End::Closed, "{path}");
    }
    let mut c = Http::connect(handle.local_addr());
    let r = c.exchange(upgrade("/", ""));
    assert_eq!((r.status, r.header("x-user")), (101, Some("bob")));
    handle.shutdown();
}

#[test]
fn the_client_refuses_forged_fields_before_connecting() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let rows: Vec<(syncws::ClientBuilder, InputError)> = vec![
        (
            Client::builder().header("X-A", "b\r\nSet-Cookie: a=1"),
            InputError::HeaderValue,
        ),
        (
            Client::builder().header("X-A\r\nB", "c"),
            InputError::HeaderName,
        ),
        (
            Client::builder().origin("https://a.example\r\nX: y"),
            InputError::HeaderValue,
        ),
        (
            Client::builder().protocol("chat\r\nX: y"),
            InputError::HeaderValue,
        ),
        (
            Client::builder().protocol("two words"),
            InputError::HeaderValue,
        ),
        (
            Client::builder().header("Sec-WebSocket-Key", "x"),
            InputError::ReservedHeader,
        ),
        (
            Client::builder().header("host", "evil"),
            InputError::ReservedHeader,
        ),
        (
            Client::builder().header("Sec-WebSocket-Protocol", "x"),
            InputError::ReservedHeader,
        ),
        (
            Client::builder()
                .origin("https://a.example")
                .header("Origin", "https://b.example"),
            InputError::DuplicateHeader,
        ),
    ];
    for (i, (builder, want)) in rows.into_iter().enumerate() {
        match builder.no_proxy().connect(&url) {
            Err(Error::InvalidInput(got)) => assert_eq!(got, want, "row {i}"),
            other => panic!("row {i}: {other:?}"),
        }
    }
    // Nothing reached the network.
    listener.set_nonblocking(true).unwrap();
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
}

#[test]
fn requests_that_could_be_read_two_ways_get_400() {
    let handle = reflecting_server();
    let post = |extra: &str| format!("POST / HTTP/1.1\r\nHost: localhost\r\n{extra}\r\nhello");
    let rows: Vec<(&str, String)> = vec![
        (
            "two lengths",
            post("Content-Length: 5\r\nContent-Length: 6\r\n"),
        ),
        ("a length list", post("Content-Length: 5, 6\r\n")),
        ("a signed length", post("Content-Length: +5\r\n")),
        (
            "length and chunked",
            post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
        ),
        ("no host", "GET / HTTP/1.1\r\n\r\n".into()),
        (
            "two hosts",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(),
        ),
        (
            "upgrade with a body",
            upgrade("/", "Content-Length: 7\r\n") + "\u{81}\u{1}\0\0\0\0a",
        ),
        (
            "upgrade chunked",
            upgrade("/", "Transfer-Encoding: chunked\r\n") + "0\r\n\r\n",
        ),
        (
            "two origins",
            upgrade("/", "Origin: http://a\r\nOrigin: http://b\r\n"),
        ),
        (
            "two keys",
            upgrade("/", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"),
        ),
        (
            "two versions",
            upgrade("/", "Sec-WebSocket-Version: 13\r\n"),
        ),
    ];
    for (what, request) in rows {
        let mut c = Http::connect(handle.local_addr());
        let r = c.exchange(request);
        assert_eq!(r.status, 400, "{what}: {r:?}");
        assert!(r.text().contains(' '), "{what}: a reason: {r:?}");
        assert_eq!(c.end(PROMPTLY), End::Closed, "{what}");
    }
    // Identical copies mean one thing, and are served.
    let mut c = Http::connect(handle.local_addr());
    let r = c.exchange(post("Content-Length: 5\r\nContent-Length: 5\r\n"));
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    handle.shutdown();
}

/// A request refused with 400 is answered, then the socket lingers: the server reads and
/// discards what the client still sends for a while (half a second) instead of closing at once,
/// which would answer those bytes with a reset that can cost a client reading late its answer.
/// Both late writes go through, where after a close the first would draw a reset that fails the
/// second.
#[test]
fn a_refused_request_lingers_reading_what_the_client_still_sends() {
    let handle = reflecting_server();
    let mut c = Http::connect(handle.local_addr());
    let r = c.exchange("GET / HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 400, "{r:?}");
    for _ in 0..2 {
        thread::sleep(Duration::from_millis(100));
        let late = c.stream.write_all(b"more of a request nobody reads");
        assert!(late.is_ok(), "the server reset the connection: {late:?}");
    }
    assert_eq!(c.end(PROMPTLY), End::Closed);
    handle.shutdown();
}

#[test]
fn expect_100_continue_is_answered_and_other_expectations_get_417() {
    let handle = start(
        bind()
            .max_body_size(100)
            .http(|req| Response::text(200, "").body(req.body().to_vec())),
    );
    let mut c = Http::connect(handle.local_addr());
    c.send(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let interim = c.response();
    assert_eq!(interim.status, 100, "{interim:?}");
    c.send("hello");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));

    // Too large: refused at once, no 100, so the client need not send the body.
    let mut c = Http::connect(handle.local_addr());
    let r = c.exchange(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(c.end(PROMPTLY), End::Closed);

    let mut c = Http::connect(handle.local_addr());
    let r = c.exchange(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nExpect: coffee\r\n\r\n",
    );
    assert_eq!(r.status, 417, "{r:?}");
    handle.shutdown();
}

#[test]
fn error_statuses_carry_their_reason_phrases() {
    let handle = start(bind().max_body_size(10).http(|_| Response::text(200, "")));
    let rows = [
        (
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\n",
            "HTTP/1.1 413 Content Too Large\r\n",
        ),
        (
            "POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "HTTP/1.1 501 Not Implemented\r\n",
        ),
        (
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nExpect: x\r\n\r\n",
            "HTTP/1.1 417 Expectation Failed\r\n",
        ),
    ];
    for (request, status_line) in rows {
        let mut c = Http::connect(handle.local_addr());
        c.send(request);
        let mut head = vec![0u8; status_line.len()];
        c.stream.read_exact(&mut head).unwrap();
        assert_eq!(String::from_utf8_lossy(&head), status_line);
    }
    handle.shutdown();
}

// ------------------------------------------------------------------ total deadlines

/// Reads `tcp` until the server closes it; returns when that was, or `None` past `bound`.
fn watch_close(tcp: TcpStream, bound: Duration) -> thread::JoinHandle<Option<Instant>> {
    thread::spawn(move || {
        let until = Instant::now() + bound;
        let mut sink = [0u8; 4096];
        while Instant::now() < until {
            tcp.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            match (&tcp).read(&mut sink) {
                Ok(0) => return Some(Instant::now()),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return Some(Instant::now()),
            }
        }
        None
    })
}

/// Sends `bytes` one at a time, `pace` apart, until `done` is set.
fn trickle(mut tcp: &TcpStream, bytes: &[u8], pace: Duration, done: &AtomicBool) {
    for b in bytes.iter().cycle() {
        if done.load(Ordering::SeqCst) || tcp.write_all(&[*b]).is_err() {
            return;
        }
        thread::sleep(pace);
    }
}

#[test]
fn a_plain_request_head_trickled_is_cut_off_at_its_deadline() {
    let config = Config::default().handshake_timeout(HANDSHAKE);
    let handle = start(bind().config(config));
    let tcp = TcpStream::connect(handle.local_addr()).unwrap();
    let started = Instant::now();
    let watcher = watch_close(tcp.try_clone().unwrap(), Duration::from_secs(10));
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            trickle(
                &tcp,
                upgrade("/", "").as_bytes(),
                Duration::from_millis(200),
                &done,
            )
        });
        let closed = watcher.join().unwrap();
        done.store(true, Ordering::SeqCst);
        let took = closed
            .expect("still open after 10 s")
            .duration_since(started);
        assert!(took >= HANDSHAKE - Duration::from_millis(100), "{took:?}");
        assert!(took < HANDSHAKE + Duration::from_millis(1600), "{took:?}");
    });
    handle.shutdown();
}

#[test]
fn a_pipelining_client_that_never_reads_frees_its_thread_at_the_write_deadline() {
    let config = Config::default().write_timeout(Some(Duration::from_secs(1)));
    let big = vec![b'x'; 1 << 20];
    let handle = start(
        bind()
            .config(config)
            .http(move |_| Response::new(200).body(big.clone())),
    );
    let mut c = Http::connect(handle.local_addr());
    let requests: String = (0..64)
        .map(|_| "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .collect();
    c.send(requests);
    // Never read: the server's writes stop once the socket buffers are full.
    assert!(wait_until(Duration::from_secs(5), || handle.connections() == 1));
    let started = Instant::now();
    let freed = wait_until(Duration::from_secs(10), || handle.connections() == 0);
    println!(
        "never-reading client released after {:?}",
        started.elapsed()
    );
    assert!(freed, "the server thread is still writing after 10 s");
    handle.shutdown();
}

#[test]
fn a_normal_client_is_served_beside_the_tests_above() {
    // The same server set-up serves a real client: the deadline phases end at the 101.
    let config = Config::default().handshake_timeout(HANDSHAKE);
    let handle = start(bind().config(config));
    let mut ws = Client::connect(&format!("ws://{}/", handle.local_addr())).unwrap();
    // Longer than the handshake deadline: the open socket does not inherit it.
    assert!(matches!(
        ws.recv_timeout(HANDSHAKE + Duration::from_millis(300)),
        Err(Error::Timeout)
    ));
    ws.send("still open").unwrap();
    assert_eq!(
        ws.recv().unwrap().and_then(|m| m.into_text()),
        Some("still open".to_owned())
    );
    handle.shutdown();
}

#[cfg(any(feature = "tls", feature = "rustls"))]
mod tls {
    use super::*;
    use std::sync::Arc;
    use syncws::ServerTls;

    fn fixture(name: &str) -> String {
        format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn wss_server() -> ServerHandle {
        let tls = ServerTls::from_pem_files(fixture("server.pem"), fixture("server.key")).unwrap();
        let config = Config::default().handshake_timeout(HANDSHAKE);
        start(bind().config(config).tls(tls))
    }

    #[test]
    fn a_trickled_client_hello_is_cut_off_at_the_handshake_deadline() {
        let handle = wss_server();
        let tcp = TcpStream::connect(handle.local_addr()).unwrap();
        let started = Instant::now();
        // A TLS record header announcing a 16 KiB handshake record, then its body a byte at a time
        // (each byte well within any socket timeout).
        (&tcp).write_all(&[0x16, 0x03, 0x01, 0x40, 0x00]).unwrap();
        let watcher = watch_close(tcp.try_clone().unwrap(), Duration::from_secs(10));
        let done = Arc::new(AtomicBool::new(false));
        let pacer = {
            let (tcp, done) = (tcp.try_clone().unwrap(), Arc::clone(&done));
            thread::spawn(move || trickle(&tcp, &[0x01], Duration::from_millis(200), &done))
        };
        let closed = watcher.join().unwrap();
        done.store(true, Ordering::SeqCst);
        pacer.join().unwrap();
        let took = closed
            .expect("still open after 10 s")
            .duration_since(started);
        println!("trickled ClientHello closed after {took:?} (handshake timeout {HANDSHAKE:?})");
        assert!(took >= HANDSHAKE - Duration::from_millis(100), "{took:?}");
        assert!(took < HANDSHAKE + Duration::from_secs(1), "{took:?}");
        handle.shutdown();
    }

    /// A client-side TCP view for the TLS session that can be switched to writing one byte per
    /// `pace`, so one TLS record reaches the server a byte at a time.
    #[derive(Debug)]
    struct Slow {
        tcp: TcpStream,
        slow: Arc<AtomicBool>,
    }

    impl Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.tcp.read(buf)
        }
    }

    impl Write for Slow {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if !self.slow.load(Ordering::SeqCst) || buf.is_empty() {
                return self.tcp.write(buf);
            }
            let n = self.tcp.write(&buf[..1])?;
            thread::sleep(Duration::from_millis(200));
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn tls_and_a_request_head_trickled_inside_one_record_share_one_deadline() {
        let handle = wss_server();
        let tcp = TcpStream::connect(handle.local_addr()).unwrap();
        let started = Instant::now();
        let raw = tcp.try_clone().unwrap();
        // Most of the deadline goes by before TLS starts: the HTTP head gets only what is left.
        thread::sleep(HANDSHAKE * 3 / 5);
        let ca = native_tls::Certificate::from_pem(&std::fs::read(fixture("ca.pem")).unwrap());
        let connector = native_tls::TlsConnector::builder()
            .add_root_certificate(ca.unwrap())
            .build()
            .unwrap();
        let slow = Arc::new(AtomicBool::new(false));
        let stream = Slow {
            tcp,
            slow: Arc::clone(&slow),
        };
        let mut session = connector
            .connect("localhost", stream)
            .expect("tls handshake");
        // From here the server's bytes are only watched for its close, not decrypted.
        let watcher = watch_close(raw, Duration::from_secs(15));
        slow.store(true, Ordering::SeqCst);
        let writer = thread::spawn(move || {
            // One write: one TLS record, which the server reads a byte at a time.
            let _ = session.write_all(upgrade("/", "").as_bytes());
        });
        let closed = watcher.join().unwrap();
        let took = closed
            .expect("still open after 15 s")
            .duration_since(started);
        println!("trickled head over TLS closed after {took:?} (handshake timeout {HANDSHAKE:?})");
        // The 408 may take up to a second after the deadline, then a short linger.
        assert!(took >= HANDSHAKE - Duration::from_millis(100), "{took:?}");
        assert!(took < HANDSHAKE + Duration::from_millis(1600), "{took:?}");
        writer.join().unwrap();
        handle.shutdown();
    }
}
