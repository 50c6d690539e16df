//! The client through an `https://` proxy: HTTP `CONNECT` inside a TLS session with the proxy,
//! and for `wss://` a TLS session with the server inside that one (TLS in TLS). The proxy is
//! written here on `native-tls` with the test certificate (for `localhost`), so it can only read
//! the request once the TLS handshake with it succeeded; it records every request head it reads
//! and then only relays bytes.

#![cfg(feature = "tls")]

mod support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use native_tls::{Identity, TlsAcceptor, TlsStream};
use support::*;
use syncws::{
    Client, ClientBuilder, ClientTls, CloseCode, Error, HandshakeError, Message, TlsErrorKind,
};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn test_ca() -> ClientTls {
    ClientTls::builder()
        .add_root_file(fixture("ca.pem"))
        .build()
        .unwrap()
}

/// A client through `proxy` (no credentials) that trusts the test CA.
fn through(proxy: &TlsProxy) -> ClientBuilder {
    Client::builder().proxy(&proxy.url(None)).tls(test_ca())
}

/// A TLS-terminating `CONNECT` proxy on 127.0.0.1:0. Answers `status` (200 relays; 0 never
/// answers, holding the connection until the client leaves).
struct TlsProxy {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl TlsProxy {
    fn start(status: u16) -> TlsProxy {
        let cert = std::fs::read(fixture("server.pem")).unwrap();
        let key = std::fs::read(fixture("server.key")).unwrap();
        let acceptor =
            Arc::new(TlsAcceptor::new(Identity::from_pkcs8(&cert, &key).unwrap()).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let heads2 = Arc::clone(&heads);
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (acceptor, heads) = (Arc::clone(&acceptor), Arc::clone(&heads2));
                thread::spawn(move || {
                    let _ = serve_one(conn, &acceptor, &heads, status);
                });
            }
        });
        TlsProxy { addr, heads }
    }

    /// `https://[userinfo@]localhost:port`, the name in the test certificate.
    fn url(&self, userinfo: Option<&str>) -> String {
        let at = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        format!("https://{at}localhost:{}", self.addr.port())
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn serve_one(
    conn: TcpStream,
    acceptor: &TlsAcceptor,
    heads: &Mutex<Vec<String>>,
    status: u16,
) -> io::Result<()> {
    guard(&conn);
    let tcp = conn.try_clone()?;
    let mut tls = acceptor.accept(conn).map_err(io::Error::other)?;
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        if tls.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    heads.lock().unwrap().push(head.clone());
    if status == 0 {
        let _ = io::copy(&mut tls, &mut io::sink());
        return Ok(());
    }
    if status != 200 {
        let answer = format!("HTTP/1.1 {status} No\r\nContent-Length: 0\r\n\r\n");
        return tls.write_all(answer.as_bytes());
    }
    let target = head
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default()
        .to_owned();
    let upstream = TcpStream::connect(target)?;
    tls.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    relay(tls, tcp, upstream);
    Ok(())
}

/// Copies both ways between the TLS session and the target. The session cannot be read and
/// written at once, so it sits behind a lock and the reading side polls with a short timeout.
fn relay(tls: TlsStream<TcpStream>, tcp: TcpStream, upstream: TcpStream) {
    tcp.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    upstream.set_read_timeout(None).unwrap();
    let tls = Arc::new(Mutex::new(tls));
    let (tls2, mut up_write) = (Arc::clone(&tls), upstream.try_clone().unwrap());
    let to_target = thread::spawn(move || {
        let mut buf = [0u8; 16 << 10];
        loop {
            let got = tls2.lock().unwrap().read(&mut buf);
            match got {
                Ok(0) => break,
                Ok(n) => {
                    if up_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    thread::yield_now()
                }
                Err(_) => break,
            }
        }
        let _ = up_write.shutdown(Shutdown::Write);
    });
    let mut upstream = upstream;
    let mut buf = [0u8; 16 << 10];
    loop {
        match upstream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut session = tls.lock().unwrap();
                if session
                    .write_all(&buf[..n])
                    .and_then(|_| session.flush())
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    let _ = tls.lock().unwrap().shutdown();
    let _ = to_target.join();
}

#[test]
fn ws_through_an_https_proxy() {
    let server = echo_server();
    let proxy = TlsProxy::start(200);
    let mut ws = Client::builder()
        .proxy(&proxy.url(Some("user:pw")))
        .tls(test_ca())
        .connect(&ws_url(server, "/"))
        .unwrap();
    // TLS with the proxy, plain WebSocket inside.
    assert!(ws.get_ref().is_tls());
    assert_eq!(ws.get_ref().tcp().unwrap().peer_addr().unwrap(), proxy.addr);
    let text = text_of_len(1000);
    ws.send(&text).unwrap();
    assert_eq!(ws.recv_timeout(TIMEOUT).unwrap(), Some(Message::Text(text)));
    let big = bytes_of_len(1 << 20);
    ws.send(&big).unwrap();
    assert_eq!(
        ws.recv_timeout(TIMEOUT).unwrap(),
        Some(Message::Binary(big))
    );
    ws.close(CloseCode::NORMAL, "bye").unwrap();
    let heads = proxy.heads();
    assert_eq!(heads.len(), 1);
    let port = server.port();
    assert!(
        heads[0].starts_with(&format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n")),
        "{heads:?}"
    );
    assert!(
        heads[0].contains("Proxy-Authorization: Basic dXNlcjpwdw==\r\n"),
        "{heads:?}"
    );
}

#[test]
fn the_proxy_certificate_is_checked() {
    let server = echo_server();
    let proxy = TlsProxy::start(200);
    let untrusted = ClientTls::builder()
        .disable_system_roots(true)
        .build()
        .unwrap();
    let result = Client::builder()
        .proxy(&proxy.url(None))
        .tls(untrusted)
        .connect(&ws_url(server, "/"));
    match result {
        Err(Error::Tls(e)) => assert_eq!(e.kind(), TlsErrorKind::UntrustedCertificate, "{e}"),
        Err(e) => panic!("expected a TLS error, got {e:?}"),
        Ok(_) => panic!("connected through a proxy with an untrusted certificate"),
    }
    assert!(proxy.heads().is_empty(), "nothing sent before TLS was up");
}

#[test]
fn a_refusal_inside_tls() {
    let proxy = TlsProxy::start(407);
    let result = through(&proxy).connect("ws://127.0.0.1:9/");
    match result {
        Err(Error::Handshake(HandshakeError::ProxyRefused(407))) => {}
        other => panic!("expected ProxyRefused(407), got {other:?}"),
    }
    assert_eq!(proxy.heads().len(), 1);
}

/// The TLS handshake with the proxy and its answer to `CONNECT` count against the handshake
/// timeout: a proxy silent before TLS, or after it, fails the connection in time.
#[test]
fn a_silent_https_proxy_meets_the_deadline() {
    let silent_tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let before_tls = format!(
        "https://localhost:{}",
        silent_tcp.local_addr().unwrap().port()
    );
    let held = thread::spawn(move || silent_tcp.accept().map(|(conn, _)| conn));
    let silent_after_tls = TlsProxy::start(0);
    let timeout = Duration::from_millis(700);
    for (proxy, what) in [
        (before_tls, "before tls"),
        (silent_after_tls.url(None), "after tls"),
    ] {
        let start = std::time::Instant::now();
        let result = Client::builder()
            .proxy(&proxy)
            .tls(test_ca())
            .config(syncws::Config::default().handshake_timeout(timeout))
            .connect("ws://127.0.0.1:9/");
        let took = start.elapsed();
        let err = result.err().unwrap_or_else(|| panic!("{what}: connected"));
        // Reading, the client ends with HandshakeError::Timeout; on a loaded machine the TLS
        // handshake can use up the time and the write of CONNECT find it gone (an I/O timeout).
        assert!(
            matches!(err, Error::Handshake(HandshakeError::Timeout)) || err.is_timeout(),
            "{what}: {err:?}"
        );
        assert!(took < timeout + Duration::from_secs(1), "{what}: {took:?}");
    }
    drop(held);
}

fn wss_server() -> SocketAddr {
    let tls =
        syncws::ServerTls::from_pem_files(fixture("server.pem"), fixture("server.key")).unwrap();
    let server = syncws::Server::bind("127.0.0.1:0").unwrap().tls(tls);
    let addr = server.local_addr();
    thread::spawn(move || server.serve(echo));
    addr
}

/// A `wss://` echo client through a TLS proxy (TLS in TLS), split.
fn split_wss_through_a_proxy() -> (syncws::Reader, syncws::Writer) {
    let server = wss_server();
    let proxy = TlsProxy::start(200);
    let mut ws = through(&proxy)
        .connect(&format!("wss://localhost:{}/", server.port()))
        .unwrap();
    ws.split().unwrap()
}

/// TLS to the server inside TLS to the proxy: the proxy only relays bytes it cannot read, and
/// the connection outlives the handshake deadline (the deadline cell both sessions arm their
/// socket calls with is cleared for both).
#[test]
fn wss_through_an_https_proxy() {
    let server = wss_server();
    let proxy = TlsProxy::start(200);
    let short = syncws::Config::default().handshake_timeout(Duration::from_millis(800));
    let mut ws = through(&proxy)
        .config(short)
        .connect(&format!("wss://localhost:{}/", server.port()))
        .unwrap();
    assert_eq!(ws.get_ref().tcp().unwrap().peer_addr().unwrap(), proxy.addr);
    let heads = proxy.heads();
    assert!(
        heads[0].starts_with(&format!("CONNECT localhost:{} HTTP/1.1\r\n", server.port())),
        "{heads:?}"
    );
    thread::sleep(Duration::from_millis(1000));
    for len in [0, 1, 1000, 70_000, 1 << 20] {
        let big = bytes_of_len(len);
        ws.send(&big).unwrap();
        assert_eq!(
            ws.recv_timeout(TIMEOUT).unwrap(),
            Some(Message::Binary(big))
        );
    }
    ws.close(CloseCode::NORMAL, "bye").unwrap();
}

/// The split reader waits on the socket outside the session's lock; inside TLS in TLS it must
/// also see bytes the outer session has already decrypted, or it waits for a peek that never
/// comes. Many small messages in flight both ways make records of both sessions share reads.
#[test]
fn wss_through_an_https_proxy_split() {
    let (mut reader, writer) = split_wss_through_a_proxy();
    const N: usize = 2000;
    let sender = thread::spawn(move || {
        for i in 0..N {
            writer.send(format!("message {i}")).unwrap();
        }
        writer
    });
    for i in 0..N {
        let got = reader.recv_timeout(TIMEOUT).unwrap().expect("a message");
        assert_eq!(got, Message::Text(format!("message {i}")));
    }
    let writer = sender.join().unwrap();
    let closer = thread::spawn(move || writer.close(CloseCode::NORMAL, "bye"));
    assert_eq!(reader.recv_timeout(TIMEOUT).unwrap(), None);
    closer.join().unwrap().unwrap();
}

/// As `a_split_writer_waiting_for_the_network_does_not_stop_the_reader` in `tls.rs`, inside
/// TLS in TLS: the reader starts late, when every buffer on the way is full and the writer
/// waits for the socket, and must still decrypt while it waits.
#[test]
fn inside_an_https_proxy_a_split_writer_waiting_for_the_network_does_not_stop_the_reader() {
    let (reader, writer) = split_wss_through_a_proxy();
    check_a_late_reader_gets_every_echo(reader, writer, Duration::from_millis(700));
}

/// Inside TLS in TLS a send that reports success is on the wire too: records the inner session
/// handed to the outer one, which the socket did not take before the write timeout, are the
/// outer session's to send, and the send's flush must push them through both sessions (or
/// fail). As `over_tls_every_send_reported_done_arrives` in `write_deadline.rs`, through the
/// proxy: the server reads nothing until the client gave up, then finds exactly the messages
/// the client was told went.
#[test]
fn through_an_https_proxy_every_send_reported_done_arrives() {
    let proxy = TlsProxy::start(200);
    check_every_send_reported_done_arrives(|port, config| {
        through(&proxy)
            .config(config)
            .connect(&format!("wss://localhost:{port}/"))
            .unwrap()
    });
}

/// A split reader inside TLS in TLS with nothing to read sleeps in the kernel until bytes
/// arrive: it asks the outer session for decrypted bytes it holds, and waits on the socket
/// when it holds none, instead of polling the sessions in a loop.
#[test]
fn an_idle_split_reader_inside_an_https_proxy_does_not_spin() {
    let (mut reader, writer) = split_wss_through_a_proxy();
    // A round trip first, so both sessions have read records.
    writer.send("ping").unwrap();
    assert_eq!(
        reader.recv_timeout(TIMEOUT).unwrap(),
        Some(Message::from("ping"))
    );
    check_an_idle_reader_sleeps(reader);
    drop(writer);
}
