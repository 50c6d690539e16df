//! wss:// over real sockets: our server and client with the test CA in `tests/fixtures`,
//! tungstenite as the peer both ways, certificate failures, non-TLS clients on the TLS port,
//! and a split connection with concurrent senders over one TLS session.
//!
//! Every test runs on the backend the build picks: native-tls with the default `tls` feature,
//! rustls with `--no-default-features --features rustls` and whenever `rustls` is on. The
//! independent peers (native-tls directly, tungstenite over it) are OpenSSL in both builds, so
//! the rustls runs also cross TLS implementations.
#![cfg(any(feature = "tls", feature = "rustls"))]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use syncws::{
    Client, ClientBuilder, ClientTls, CloseCode, Config, Error, Message, Server, ServerTls,
    TlsErrorKind, WebSocket,
};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn server_tls(cert: &str, key: &str) -> ServerTls {
    ServerTls::from_pem_files(fixture(cert), fixture(key)).unwrap()
}

/// A wss echo server with the identity `cert`/`key`.
fn wss_server(cert: &str, key: &str, config: Config) -> SocketAddr {
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .config(config)
        .tls(server_tls(cert, key))
        .http(|req| syncws::Response::text(200, format!("https ok {}\n", req.path())));
    let addr = server.local_addr();
    thread::spawn(move || server.serve(echo));
    addr
}

/// A wss server with the test identity whose connections run `handler`.
fn wss_serving<F>(handler: F) -> SocketAddr
where
    F: Fn(&mut WebSocket) -> syncws::HandlerResult + Send + Sync + 'static,
{
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .tls(server_tls("server.pem", "server.key"));
    let addr = server.local_addr();
    thread::spawn(move || server.serve(handler));
    addr
}

fn trusting_client() -> ClientBuilder {
    let tls = ClientTls::builder()
        .add_root_file(fixture("ca.pem"))
        .build()
        .unwrap();
    Client::builder().tls(tls).no_proxy()
}

/// A native-tls connector trusting the test CA (an independent TLS client) and a guarded TCP
/// connection to `addr` for it.
fn native_tls_to(addr: SocketAddr) -> (native_tls::TlsConnector, TcpStream) {
    let connector = native_tls::TlsConnector::builder()
        .add_root_certificate(native_tls::Certificate::from_pem(&read_fixture("ca.pem")).unwrap())
        .build()
        .unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    guard(&tcp);
    (connector, tcp)
}

fn wss_url(host: &str, addr: SocketAddr, path: &str) -> String {
    format!("wss://{host}:{}{path}", addr.port())
}

fn tls_kind(result: syncws::Result<WebSocket>) -> TlsErrorKind {
    match result {
        Err(Error::Tls(e)) => e.kind(),
        Err(e) => panic!("expected a TLS error, got {e}"),
        Ok(_) => panic!("expected a TLS error, connected"),
    }
}

#[test]
fn the_features_pick_the_backend() {
    let tls = server_tls("server.pem", "server.key");
    let client = ClientTls::new().unwrap();
    // rustls whenever it is compiled in, native-tls otherwise.
    let want = if cfg!(feature = "rustls") {
        "rustls"
    } else {
        "native-tls"
    };
    assert_eq!(format!("{tls:?}"), format!("ServerTls({want})"));
    assert_eq!(format!("{client:?}"), format!("ClientTls({want})"));
}

#[test]
fn wss_echo_with_our_client() {
    let addr = wss_server("server.pem", "server.key", Config::default());
    for host in ["localhost", "127.0.0.1"] {
        let mut ws = trusting_client()
            .connect(&wss_url(host, addr, "/echo"))
            .unwrap();
        assert!(ws.get_ref().is_tls());
        for n in [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20] {
            let text = text_of_len(n);
            ws.send(text.as_str()).unwrap();
            assert_eq!(ws.recv().unwrap(), Some(Message::Text(text)), "text {n}");
            let bytes = bytes_of_len(n);
            ws.send(bytes.as_slice()).unwrap();
            assert_eq!(
                ws.recv().unwrap(),
                Some(Message::Binary(bytes)),
                "binary {n}"
            );
        }
        ws.ping(b"tls ping").unwrap();
        ws.send("after ping").unwrap();
        assert_eq!(ws.recv().unwrap(), Some(Message::from("after ping")));
        ws.close(CloseCode::NORMAL, "done").unwrap();
        assert_eq!(ws.close_frame().map(|f| f.code), Some(CloseCode::NORMAL));
    }
}

/// PKCS#12 goes through native-tls whichever backend serves PEM (rustls reads no PKCS#12).
#[cfg(feature = "tls")]
#[test]
fn pkcs12_identity_serves_the_same_certificate() {
    let tls = ServerTls::from_pkcs12(&read_fixture("server.p12"), "syncws").unwrap();
    let server = Server::bind("127.0.0.1:0").unwrap().tls(tls);
    let addr = server.local_addr();
    thread::spawn(move || server.serve(echo));
    let mut ws = trusting_client()
        .connect(&wss_url("localhost", addr, "/"))
        .unwrap();
    ws.send("p12").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::from("p12")));
    assert!(matches!(
        ServerTls::from_pkcs12(&read_fixture("server.p12"), "wrong"),
        Err(Error::Tls(e)) if e.kind() == TlsErrorKind::Config
    ));
}

#[test]
fn bad_server_settings_are_clear_errors() {
    let err = ServerTls::from_pem_files(fixture("server.pem"), fixture("missing.key")).unwrap_err();
    assert!(err.to_string().contains("missing.key"), "{err}");
    // A certificate where the key should be.
    let err = ServerTls::from_pem(&read_fixture("server.pem"), &read_fixture("server.pem"));
    assert!(matches!(err, Err(Error::Tls(e)) if e.kind() == TlsErrorKind::Config));
    // The key of another certificate.
    let err = ServerTls::from_pem(&read_fixture("server.pem"), &read_fixture("other.key"));
    assert!(matches!(err, Err(Error::Tls(e)) if e.kind() == TlsErrorKind::Config));
    let err = ClientTls::builder().add_root_pem(b"not a pem").build();
    assert!(matches!(err, Err(Error::Tls(e)) if e.kind() == TlsErrorKind::Config));
}

#[test]
fn untrusted_certificates_are_refused() {
    let addr = wss_server("server.pem", "server.key", Config::default());
    // The system's roots do not include the test CA.
    let plain = Client::builder().no_proxy();
    let kind = tls_kind(plain.connect(&wss_url("localhost", addr, "/")));
    assert_eq!(kind, TlsErrorKind::UntrustedCertificate);
    // A self-signed certificate is not trusted through the CA either.
    let selfsigned = wss_server("self.pem", "self.key", Config::default());
    let kind = tls_kind(trusting_client().connect(&wss_url("localhost", selfsigned, "/")));
    assert_eq!(kind, TlsErrorKind::UntrustedCertificate);
    // ... unless the test mode says so.
    let insecure = ClientTls::builder().insecure(true).build().unwrap();
    let mut ws = Client::builder()
        .tls(insecure)
        .no_proxy()
        .connect(&wss_url("localhost", selfsigned, "/"))
        .unwrap();
    ws.send("insecure").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::from("insecure")));
    // Roots only from the file, none from the system: still trusted through the CA.
    let only_ca = ClientTls::builder()
        .add_root_file(fixture("ca.pem"))
        .disable_system_roots(true)
        .build()
        .unwrap();
    let ws = Client::builder()
        .tls(only_ca)
        .no_proxy()
        .connect(&wss_url("localhost", addr, "/"));
    assert!(ws.is_ok());
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    // Signed by the trusted CA, but for other.example.
    let addr = wss_server("other.pem", "other.key", Config::default());
    let kind = tls_kind(trusting_client().connect(&wss_url("localhost", addr, "/")));
    assert_eq!(kind, TlsErrorKind::NameMismatch);
    let kind = tls_kind(trusting_client().connect(&wss_url("127.0.0.1", addr, "/")));
    assert_eq!(kind, TlsErrorKind::NameMismatch);
    // The right certificate names 127.0.0.1, not 127.0.0.2 (also loopback).
    let server = Server::bind("127.0.0.2:0")
        .unwrap()
        .tls(server_tls("server.pem", "server.key"));
    let other_ip = server.local_addr();
    thread::spawn(move || server.serve(echo));
    let kind = tls_kind(trusting_client().connect(&format!("wss://{other_ip}/")));
    assert_eq!(kind, TlsErrorKind::NameMismatch);
}

/// A wss client reaching a server that does not speak TLS: a handshake failure, not a hang, on
/// either backend.
#[test]
fn a_plain_server_is_a_handshake_failure() {
    let server = Server::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    thread::spawn(move || server.serve(echo));
    let started = Instant::now();
    let kind = tls_kind(trusting_client().connect(&wss_url("localhost", addr, "/")));
    assert_eq!(kind, TlsErrorKind::Handshake);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn non_tls_clients_fail_only_their_own_connection() {
    let config = Config::default().handshake_timeout(Duration::from_millis(500));
    let addr = wss_server("server.pem", "server.key", config);
    // Plain HTTP, garbage, and silence, all at once.
    let mut plain = TcpStream::connect(addr).unwrap();
    guard(&plain);
    plain.write_all(upgrade_request("/").as_bytes()).unwrap();
    let mut garbage = TcpStream::connect(addr).unwrap();
    guard(&garbage);
    garbage.write_all(&[0xFF; 4096]).unwrap();
    let mut silent = TcpStream::connect(addr).unwrap();
    guard(&silent);
    let started = Instant::now();
    // A real client is served meanwhile.
    let mut ws = trusting_client()
        .connect(&wss_url("localhost", addr, "/"))
        .unwrap();
    ws.send("still serving").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::from("still serving")));
    // The broken ones get no HTTP answer, just the end of the connection.
    for (name, stream) in [
        ("plain", &mut plain),
        ("garbage", &mut garbage),
        ("silent", &mut silent),
    ] {
        let mut got = Vec::new();
        let _ = stream.read_to_end(&mut got);
        assert!(
            !got.starts_with(b"HTTP/"),
            "{name}: a TLS server answered in plain text"
        );
    }
    // The silent one was dropped at the handshake deadline, not later.
    assert!(started.elapsed() < Duration::from_secs(3));
    ws.send("and after").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::from("and after")));
}

#[test]
fn https_requests_reach_the_http_handler() {
    let addr = wss_server("server.pem", "server.key", Config::default());
    let (connector, tcp) = native_tls_to(addr);
    let mut tls = connector.connect("localhost", tcp).unwrap();
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("https ok /health\n"), "{answer}");
}

#[test]
fn tungstenite_client_against_our_wss_server() {
    let addr = wss_server("server.pem", "server.key", Config::default());
    let (connector, tcp) = native_tls_to(addr);
    let (mut ws, response) = tungstenite::client_tls_with_config(
        wss_url("localhost", addr, "/t"),
        tcp,
        None,
        Some(tungstenite::Connector::NativeTls(connector)),
    )
    .unwrap();
    assert_eq!(response.status(), 101);
    for n in [0, 125, 65536, 1 << 20] {
        let text = text_of_len(n);
        ws.send(tungstenite::Message::text(text.clone())).unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::text(text));
    }
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(_)) => {}
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn our_client_against_a_tungstenite_wss_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let identity =
        native_tls::Identity::from_pkcs8(&read_fixture("server.pem"), &read_fixture("server.key"))
            .unwrap();
    let acceptor = native_tls::TlsAcceptor::new(identity).unwrap();
    let server = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        guard(&tcp);
        let tls = acceptor.accept(tcp).unwrap();
        let mut ws = tungstenite::accept(tls).unwrap();
        let mut echoed = 0;
        loop {
            match ws.read() {
                Ok(m @ (tungstenite::Message::Text(_) | tungstenite::Message::Binary(_))) => {
                    ws.send(m).unwrap();
                    echoed += 1;
                }
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => return echoed,
                Err(e) => panic!("tungstenite server: {e}"),
            }
        }
    });
    let mut ws = trusting_client()
        .connect(&wss_url("localhost", addr, "/"))
        .unwrap();
    for n in [0, 125, 65536, 1 << 20] {
        let bytes = bytes_of_len(n);
        ws.send(bytes.as_slice()).unwrap();
        assert_eq!(ws.recv().unwrap(), Some(Message::Binary(bytes)));
    }
    ws.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(server.join().unwrap(), 4);
}

#[test]
fn split_over_tls_with_concurrent_senders() {
    const SENDERS: usize = 4;
    const EACH: usize = 300;
    let addr = wss_server("server.pem", "server.key", Config::default());
    let mut ws = trusting_client()
        .connect(&wss_url("localhost", addr, "/split"))
        .unwrap();
    let (mut reader, writer) = ws.split().unwrap();
    let senders: Vec<_> = (0..SENDERS)
        .map(|t| {
            let writer = writer.clone();
            thread::spawn(move || {
                for i in 0..EACH {
                    // Sizes cross the 16 KiB TLS record size now and then.
                    let size = if i.is_multiple_of(50) {
                        40_000
                    } else {
                        10 + i % 300
                    };
                    let mut body = format!("{t}:{i}:").into_bytes();
                    body.resize(size, b'a' + (i % 26) as u8);
                    writer.send(body).unwrap();
                }
            })
        })
        .collect();
    let mut next = [0usize; SENDERS];
    for _ in 0..SENDERS * EACH {
        let msg = reader.recv_timeout(TIMEOUT).unwrap().expect("closed early");
        let bytes = msg.into_bytes();
        let text = String::from_utf8_lossy(&bytes[..12.min(bytes.len())]).to_string();
        let mut parts = text.split(':');
        let t: usize = parts.next().unwrap().parse().unwrap();
        let i: usize = parts.next().unwrap().parse().unwrap();
        // Each sender's messages come back in its order, whole and uncorrupted.
        assert_eq!(i, next[t], "sender {t}");
        next[t] += 1;
        let size = if i.is_multiple_of(50) {
            40_000
        } else {
            10 + i % 300
        };
        assert_eq!(bytes.len(), size);
        let fill = b'a' + (i % 26) as u8;
        let prefix = format!("{t}:{i}:").len();
        assert!(
            bytes[prefix..].iter().all(|&b| b == fill),
            "{t}:{i} corrupted"
        );
    }
    for s in senders {
        s.join().unwrap();
    }
    // A writer is never stuck behind the reader waiting for the network: with the reader
    // blocked in recv and nothing to read, a send completes at once.
    let blocked_reader = thread::spawn(move || {
        let got = reader.recv();
        (reader, got)
    });
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    writer.send("while the reader waits").unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    let (reader, got) = blocked_reader.join().unwrap();
    assert_eq!(got.unwrap(), Some(Message::from("while the reader waits")));
    let mut reader = reader;
    reader.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(reader.recv().unwrap(), None);
    assert!(writer.send("too late").is_err());
}

/// A split writer that the network holds up must not hold the reader up with it. Against an
/// echo server that reads one message, then writes it back before reading on, the writer sends
/// far more than the socket buffers hold: the server stops reading as soon as the echoes are
/// not read, and the writer waits for the socket. The reader must go on decrypting meanwhile,
/// or neither side moves until a write timeout ends the connection.
#[test]
fn a_split_writer_waiting_for_the_network_does_not_stop_the_reader() {
    let addr = wss_server("server.pem", "server.key", Config::default());
    let mut ws = trusting_client()
        .connect(&wss_url("localhost", addr, "/"))
        .unwrap();
    let (reader, writer) = ws.split().unwrap();
    // The reader starts late, as a busy application would.
    check_a_late_reader_gets_every_echo(reader, writer, Duration::from_millis(500));
}

#[test]
fn server_side_split_over_tls() {
    let addr = wss_serving(|ws| {
        let (mut reader, writer) = ws.split()?;
        let w = writer.clone();
        // A ticker sends on its own while the reader echoes.
        let ticker = thread::spawn(move || {
            for i in 0..50 {
                if w.send(format!("tick {i}")).is_err() {
                    break;
                }
            }
        });
        while let Some(msg) = reader.recv()? {
            writer.send(msg)?;
        }
        let _ = ticker.join();
        Ok(())
    });
    let mut ws = trusting_client()
        .connect(&wss_url("localhost", addr, "/"))
        .unwrap();
    for i in 0..50 {
        ws.send(format!("echo {i}")).unwrap();
    }
    let (mut ticks, mut echoes) = (0, 0);
    while ticks + echoes < 100 {
        let text = ws.recv().unwrap().unwrap().into_text().unwrap();
        if let Some(n) = text.strip_prefix("tick ") {
            assert_eq!(n.parse::<usize>().unwrap(), ticks);
            ticks += 1;
        } else {
            assert_eq!(text, format!("echo {echoes}"));
            echoes += 1;
        }
    }
    ws.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(ws.close_frame().map(|f| f.code), Some(CloseCode::NORMAL));
}

/// How long [`Relay`] holds back the second half of a record it cuts.
const HOLD: Duration = Duration::from_millis(600);

/// A TCP relay between one client and `upstream` that watches and tampers with what the server
/// sends: it counts the TLS records, can cut the next chunk in two (the second half [`HOLD`]
/// later, a record reaching the client in parts), and lets the test write bytes of its own to
/// the client.
struct Relay {
    addr: SocketAddr,
    /// TLS records the server has sent so far (counted before they are passed on).
    records: Arc<AtomicUsize>,
    /// Set to cut the next chunk from the server; told once its first half has gone out.
    cut_next: Arc<Mutex<Option<mpsc::Sender<()>>>>,
    /// The socket to the client, once it has connected.
    client: Arc<OnceLock<TcpStream>>,
    /// Set to pass nothing on from now on, either way, and keep both sockets open.
    swallow: Arc<AtomicBool>,
    /// Set to hold back the last byte of every record from the server for [`HOLD`], and pause
    /// after it (so each record arrives in parts, the next one only after it).
    tails: Arc<AtomicBool>,
    /// When the last tail held back was passed on.
    tail_sent: Arc<Mutex<Option<Instant>>>,
    /// When the client's end of stream reached the relay.
    client_ended: Arc<OnceLock<Instant>>,
    /// When the server's end of stream reached the relay (all before it passed on).
    server_ended: Arc<OnceLock<Instant>>,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let relay = Relay {
            addr: listener.local_addr().unwrap(),
            records: Arc::default(),
            cut_next: Arc::default(),
            client: Arc::default(),
            swallow: Arc::default(),
            tails: Arc::default(),
            tail_sent: Arc::default(),
            client_ended: Arc::default(),
            server_ended: Arc::default(),
        };
        let server_ended = Arc::clone(&relay.server_ended);
        let (tails, tail_sent, client_ended) = (
            Arc::clone(&relay.tails),
            Arc::clone(&relay.tail_sent),
            Arc::clone(&relay.client_ended),
        );
        let (records, cut_next, client) = (
            Arc::clone(&relay.records),
            Arc::clone(&relay.cut_next),
            Arc::clone(&relay.client),
        );
        let (swallow, swallow_up) = (Arc::clone(&relay.swallow), Arc::clone(&relay.swallow));
        thread::spawn(move || {
            let (down, _) = listener.accept().unwrap();
            let up = TcpStream::connect(upstream).unwrap();
            guard(&down);
            guard(&up);
            client.set(down.try_clone().unwrap()).unwrap();
            let (mut from_client, mut to_server) =
                (down.try_clone().unwrap(), up.try_clone().unwrap());
            thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = from_client.read(&mut buf) {
                    if n == 0 {
                        let _ = client_ended.set(Instant::now());
                        break;
                    }
                    if !swallow_up.load(Ordering::SeqCst) && to_server.write_all(&buf[..n]).is_err()
                    {
                        return;
                    }
                }
                if !swallow_up.load(Ordering::SeqCst) {
                    let _ = to_server.shutdown(std::net::Shutdown::Write);
                }
            });
            let (mut from_server, mut to_client) = (up, down);
            let mut count = RecordCount::default();
            let mut buf = vec![0u8; 64 << 10];
            while let Ok(n @ 1..) = from_server.read(&mut buf) {
                if swallow.load(Ordering::SeqCst) {
                    continue;
                }
                count.feed(&buf[..n]);
                records.store(count.records, Ordering::SeqCst);
                let cut = cut_next.lock().unwrap().take();
                let sent = match cut {
                    Some(told) => to_client.write_all(&buf[..n / 2]).and_then(|()| {
                        let _ = told.send(());
                        thread::sleep(HOLD);
                        to_client.write_all(&buf[n / 2..n])
                    }),
                    None if tails.load(Ordering::SeqCst) => {
                        // Record by record (the server writes whole ones): all but the last
                        // byte, the last byte after HOLD, then a pause before the next.
                        let mut sent = Ok(());
                        let mut at = 0;
                        while at + 5 <= n && sent.is_ok() {
                            let len = 5 + u16::from_be_bytes([buf[at + 3], buf[at + 4]]) as usize;
                            let end = (at + len).min(n);
                            sent = to_client.write_all(&buf[at..end - 1]).and_then(|()| {
                                thread::sleep(HOLD);
                                *tail_sent.lock().unwrap() = Some(Instant::now());
                                to_client.write_all(&buf[end - 1..end])
                            });
                            thread::sleep(HOLD / 4);
                            at = end;
                        }
                        sent.and_then(|()| to_client.write_all(&buf[at..n]))
                    }
                    None => to_client.write_all(&buf[..n]),
                };
                if sent.is_err() {
                    break;
                }
            }
            let _ = server_ended.set(Instant::now());
            if !swallow.load(Ordering::SeqCst) {
                let _ = to_client.shutdown(std::net::Shutdown::Write);
            }
        });
        relay
    }

    fn records(&self) -> usize {
        self.records.load(Ordering::SeqCst)
    }
}

/// Counts the TLS records in a byte stream that arrives cut anywhere: each is a 5-byte header
/// (type, version, 16-bit length) and that many bytes.
#[derive(Default)]
struct RecordCount {
    head: Vec<u8>,
    body_left: usize,
    records: usize,
}

impl RecordCount {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (5 - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.head.len() == 5 {
                self.body_left = u16::from_be_bytes([self.head[3], self.head[4]]) as usize;
                self.head.clear();
                self.records += 1;
            }
        }
    }
}

/// Our client on a `wss://` server with the default config, through a [`Relay`] that sees every
/// record the server sends.
fn relayed_client() -> (Relay, WebSocket) {
    let relay = Relay::start(wss_server("server.pem", "server.key", Config::default()));
    let ws = trusting_client()
        .connect(&wss_url("localhost", relay.addr, "/"))
        .unwrap();
    (relay, ws)
}

/// A TLS record that reaches a split reader in two parts, the second [`HOLD`] later: the
/// reader waits for the rest outside the session's lock, so a send meanwhile goes out at once,
/// and the message arrives whole.
#[test]
fn a_record_in_two_parts_does_not_hold_up_the_writer() {
    let (relay, mut ws) = relayed_client();
    let (mut reader, writer) = ws.split().unwrap();
    let (cut, first_half_sent) = mpsc::channel();
    *relay.cut_next.lock().unwrap() = Some(cut);
    writer.send("cut in two").unwrap();
    let reading = thread::spawn(move || {
        let first = reader.recv_timeout(TIMEOUT);
        (first, reader.recv_timeout(TIMEOUT))
    });
    first_half_sent.recv_timeout(TIMEOUT).unwrap();
    // The reader has the first half and waits for the rest.
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    writer.send("meanwhile").unwrap();
    let waited = started.elapsed();
    let (first, second) = reading.join().unwrap();
    assert_eq!(first.unwrap(), Some(Message::from("cut in two")));
    assert_eq!(second.unwrap(), Some(Message::from("meanwhile")));
    assert!(
        waited < HOLD / 2,
        "the send waited {waited:?} for the reader"
    );
}

/// A record no key of the session decrypts (a corrupted one) fails a split reader's receive at
/// once, not by its timeout: the relay then passes nothing on, so no alert reaches the server
/// and no end of stream the client.
#[test]
fn a_corrupt_record_fails_a_split_reader_at_once() {
    let (relay, mut ws) = relayed_client();
    let (mut reader, _writer) = ws.split().unwrap();
    // Application data, TLS 1.2 on the wire (as 1.3 also labels it), 32 bytes of noise.
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    record.extend([0xa5; 32]);
    relay.swallow.store(true, Ordering::SeqCst);
    relay.client.get().unwrap().write_all(&record).unwrap();
    let started = Instant::now();
    let got = reader.recv_timeout(Duration::from_secs(3));
    assert!(matches!(&got, Err(e) if !e.is_timeout()), "{got:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// A split client that closes waits for the server to end the connection first (RFC 6455
/// 7.1.1: the server SHOULD close the TCP connection first), also when the server's last
/// records (its close frame, its TLS close_notify) reach it in parts: the client's end of
/// stream comes after the last of the server's bytes.
#[test]
fn a_closing_split_client_waits_for_the_servers_last_record_in_parts() {
    let (relay, mut ws) = relayed_client();
    let (mut reader, _writer) = ws.split().unwrap();
    relay.tails.store(true, Ordering::SeqCst);
    reader.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(reader.recv_timeout(TIMEOUT).unwrap(), None);
    let waiting = Instant::now();
    while (relay.client_ended.get().is_none() || relay.server_ended.get().is_none())
        && waiting.elapsed() < TIMEOUT
    {
        thread::sleep(Duration::from_millis(10));
    }
    let ended = *relay
        .client_ended
        .get()
        .expect("the client ended the connection");
    let last = relay
        .tail_sent
        .lock()
        .unwrap()
        .expect("a tail was held back");
    assert!(
        ended > last,
        "the client ended {:?} before the server's last bytes",
        last - ended
    );
}

/// A split reader over TLS with nothing to read sleeps in the kernel until bytes arrive; it does
/// not poll the session in a loop.
#[test]
fn an_idle_split_reader_does_not_spin() {
    let addr = wss_server("server.pem", "server.key", Config::default());
    let mut ws = trusting_client()
        .connect(&wss_url("localhost", addr, "/"))
        .unwrap();
    let (reader, _writer) = ws.split().unwrap();
    check_an_idle_reader_sleeps(reader);
}

/// A frame the server sends over 16 KiB goes out in as few TLS records as its bytes need: the
/// header travels in the first record with the payload, not in a record of its own.
#[test]
fn a_frame_takes_as_few_records_as_its_bytes() {
    let (relay, mut ws) = relayed_client();
    // Payload length, then records: the header is 4 bytes up to 64 KiB, 10 beyond.
    for (len, records) in [(16 << 10 | 1, 2), (32 << 10, 3), (40_000, 3), (100_000, 7)] {
        let before = relay.records();
        let bytes = bytes_of_len(len);
        ws.send(bytes.as_slice()).unwrap();
        assert_eq!(
            ws.recv_timeout(TIMEOUT).unwrap(),
            Some(Message::Binary(bytes))
        );
        assert_eq!(relay.records() - before, records, "a frame of {len} bytes");
    }
}

#[test]
fn tls_handshake_respects_the_client_deadline() {
    // A "server" that accepts TCP and never answers the TLS hello.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        thread::sleep(Duration::from_secs(2));
        drop(tcp);
    });
    let config = Config::default().handshake_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = trusting_client()
        .config(config)
        .connect(&wss_url("localhost", addr, "/"))
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(1500), "{err}");
    assert!(
        matches!(err, Error::Handshake(syncws::HandshakeError::Timeout)),
        "{err}"
    );
    holder.join().unwrap();
}

/// The socket under a TLS client that, once `trickle` is set, sends one byte per write, 15 ms
/// apart, and fails as soon as the server has said anything (or closed).
#[derive(Debug)]
struct Trickle {
    tcp: TcpStream,
    trickle: Arc<AtomicBool>,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.trickle.load(Ordering::SeqCst) || buf.is_empty() {
            return self.tcp.write(buf);
        }
        self.tcp.set_nonblocking(true)?;
        let answered = self.tcp.peek(&mut [0u8]);
        self.tcp.set_nonblocking(false)?;
        if !matches!(&answered, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
            return Err(std::io::Error::other("the server has answered"));
        }
        thread::sleep(Duration::from_millis(15));
        self.tcp.write(&buf[..1])
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A client that trickles its upgrade request inside one TLS record, a byte at a time (each
/// well within any socket timeout, the record complete only after 4 s), is answered at the
/// server's handshake deadline: every socket read inside the record gets only the time left.
#[test]
fn a_record_trickled_in_cannot_stretch_the_handshake() {
    const DEADLINE: Duration = Duration::from_millis(800);
    let addr = wss_server(
        "server.pem",
        "server.key",
        Config::default().handshake_timeout(DEADLINE),
    );
    // TLS 1.2, whose handshake ends with the server's last word (1.3 servers send session
    // tickets after it, which would look like an answer).
    let connector = native_tls::TlsConnector::builder()
        .add_root_certificate(native_tls::Certificate::from_pem(&read_fixture("ca.pem")).unwrap())
        .max_protocol_version(Some(native_tls::Protocol::Tlsv12))
        .build()
        .unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    guard(&tcp);
    let connected = Instant::now();
    let trickle = Arc::new(AtomicBool::new(false));
    let socket = Trickle {
        tcp,
        trickle: Arc::clone(&trickle),
    };
    let mut tls = connector.connect("localhost", socket).unwrap();
    trickle.store(true, Ordering::SeqCst);
    let request = upgrade_request(&format!("/{}", "p".repeat(150)));
    assert!(request.len() * 15 > 4000);
    let sent = tls.write_all(request.as_bytes());
    let took = connected.elapsed();
    assert!(sent.is_err(), "the whole request went in, {took:?}");
    assert!(
        took < DEADLINE + Duration::from_secs(1),
        "answered after {took:?}"
    );
}

#[test]
fn one_builder_connects_from_many_threads() {
    let addr = wss_server("server.pem", "server.key", Config::default());
    let builder = Arc::new(trusting_client());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let builder = Arc::clone(&builder);
            thread::spawn(move || {
                let mut ws = builder.connect(&wss_url("localhost", addr, "/")).unwrap();
                ws.send(format!("{i}")).unwrap();
                assert_eq!(ws.recv().unwrap(), Some(Message::from(format!("{i}"))));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn heartbeat_and_shutdown_work_over_tls() {
    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(100)))
        .pong_timeout(Duration::from_secs(2));
    let (tx, rx) = std::sync::mpsc::channel();
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .config(config)
        .tls(server_tls("server.pem", "server.key"));
    let addr = server.local_addr();
    let handle = server
        .start(move |ws| {
            // Waits in recv while the heartbeat pings; the shutdown ends the wait.
            let got = ws.recv();
            // A shutdown ends it like a normal close.
            let _ = tx.send((ws.rtt(), matches!(got, Ok(None))));
            Ok(())
        })
        .unwrap();
    let mut ws = trusting_client()
        .connect(&wss_url("localhost", addr, "/"))
        .unwrap();
    // The client answers pings while it waits; the server measures the round trip.
    let (mut reader, _writer) = ws.split().unwrap();
    let waiting = thread::spawn(move || {
        let got = reader.recv();
        (got, reader.close_frame().map(|f| f.code))
    });
    thread::sleep(Duration::from_millis(400));
    assert!(handle.shutdown());
    let (rtt, ended) = rx.recv_timeout(TIMEOUT).unwrap();
    assert!(rtt.is_some(), "a heartbeat ping was answered over TLS");
    assert!(ended);
    let (got, code) = waiting.join().unwrap();
    assert_eq!(got.unwrap(), None);
    assert_eq!(code, Some(CloseCode::GOING_AWAY));
}

/// A wss server with `setup` applied, echoing.
fn wss_server_with(setup: impl FnOnce(Server) -> Server) -> SocketAddr {
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .tls(server_tls("server.pem", "server.key"));
    let server = setup(server);
    let addr = server.local_addr();
    thread::spawn(move || server.serve(echo));
    addr
}

fn http_status(result: syncws::Result<WebSocket>) -> syncws::HttpResponse {
    match result {
        Err(Error::Http(response)) => *response,
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, connected"),
    }
}

fn retry_after(response: &syncws::HttpResponse) -> Option<&str> {
    response
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
        .map(|(_, v)| v.as_str())
}

/// Refusals at accept time (over capacity, over the rate) reach a wss client as HTTP answers
/// after a TLS handshake, not as a TLS failure (they used to be written in plain text).
#[test]
fn accept_time_refusals_are_readable_over_tls() {
    let full = wss_server_with(|s| s.max_connections(1));
    let url = wss_url("localhost", full, "/");
    let mut first = trusting_client().connect(&url).unwrap();
    let refused = http_status(trusting_client().connect(&url));
    assert_eq!(refused.status, 503);
    assert!(retry_after(&refused).is_some(), "{refused:?}");
    first.send("still here").unwrap();
    assert_eq!(first.recv().unwrap(), Some(Message::from("still here")));

    let limited = wss_server_with(|s| s.rate_limit(1, Duration::from_secs(600)));
    let url = wss_url("localhost", limited, "/");
    drop(trusting_client().connect(&url).unwrap());
    let refused = http_status(trusting_client().connect(&url));
    assert_eq!(refused.status, 429);
    assert!(retry_after(&refused).is_some(), "{refused:?}");
}

/// Refused clients that never start their TLS handshake do not hold up the accept loop: the
/// handshake of a refusal runs outside it, so a client admitted behind them is served at once.
#[test]
fn silent_refused_clients_do_not_stall_accepts() {
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .tls(server_tls("server.pem", "server.key"))
        .max_connections(1)
        .start(echo)
        .unwrap();
    let url = wss_url("localhost", server.local_addr(), "/");
    let mut first = trusting_client().connect(&url).unwrap();
    // Refused (the server is full); each may hold a refusal thread for 2 s, 8 s in all.
    let silent: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(server.local_addr()).unwrap())
        .collect();
    // A client queued behind them is refused too: once it has its answer, the accept loop has
    // taken (and refused) every silent one, so none can take the slot the first one frees.
    let probe = http_status(trusting_client().connect(&url));
    assert_eq!(probe.status, 503, "{probe:?}");
    first.close(CloseCode::NORMAL, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.connections() > 0 {
        assert!(
            Instant::now() < deadline,
            "the first connection did not end"
        );
        thread::sleep(Duration::from_millis(5));
    }
    // Queued behind the silent ones: had the accept loop run their handshakes, it would
    // reach this one after 8 s.
    let started = Instant::now();
    let mut ws = trusting_client().connect(&url).unwrap();
    let took = started.elapsed();
    ws.send("in").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::from("in")));
    assert!(took < Duration::from_secs(4), "served after {took:?}");
    drop(silent);
    server.shutdown();
}

/// With both features on, each backend serves the other: a native-tls server (through
/// `from_acceptor`) for the rustls client the builder makes, and a rustls server (from PEM) for
/// a native-tls client (through `from_connector`).
#[cfg(all(feature = "tls", feature = "rustls"))]
#[test]
fn both_backends_in_one_build_talk_to_each_other() {
    let identity =
        native_tls::Identity::from_pkcs8(&read_fixture("server.pem"), &read_fixture("server.key"))
            .unwrap();
    let acceptor = native_tls::TlsAcceptor::new(identity).unwrap();
    let native = ServerTls::from_acceptor(acceptor);
    assert_eq!(format!("{native:?}"), "ServerTls(native-tls)");
    let server = Server::bind("127.0.0.1:0").unwrap().tls(native);
    let native_addr = server.local_addr();
    thread::spawn(move || server.serve(echo));
    let mut ws = trusting_client()
        .connect(&wss_url("localhost", native_addr, "/"))
        .unwrap();
    ws.send("rustls to native-tls").unwrap();
    assert_eq!(
        ws.recv().unwrap(),
        Some(Message::from("rustls to native-tls"))
    );

    let rustls_addr = wss_server("server.pem", "server.key", Config::default());
    let (connector, _) = native_tls_to(rustls_addr);
    let client = ClientTls::from_connector(connector);
    assert_eq!(format!("{client:?}"), "ClientTls(native-tls)");
    let mut ws = Client::builder()
        .tls(client)
        .no_proxy()
        .connect(&wss_url("localhost", rustls_addr, "/"))
        .unwrap();
    ws.send("native-tls to rustls").unwrap();
    assert_eq!(
        ws.recv().unwrap(),
        Some(Message::from("native-tls to rustls"))
    );
}

/// A rustls configuration built by hand goes in through `from_rustls`, on both sides.
#[cfg(feature = "rustls")]
#[test]
fn hand_built_rustls_settings() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = CertificateDer::pem_slice_iter(&read_fixture("server.pem"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(&read_fixture("server.key")).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&read_fixture("ca.pem")) {
        roots.add(cert.unwrap()).unwrap();
    }
    let client = |versions: &[&'static rustls::SupportedProtocolVersion]| {
        let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        ClientTls::from_rustls(Arc::new(config))
    };
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .tls(ServerTls::from_rustls(Arc::new(server)));
    let addr = server.local_addr();
    thread::spawn(move || server.serve(echo));
    let url = wss_url("localhost", addr, "/");
    let versions = [&rustls::version::TLS12, &rustls::version::TLS13];
    let mut ws = Client::builder()
        .tls(client(&versions))
        .no_proxy()
        .connect(&url)
        .unwrap();
    ws.send("tls 1.2").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::from("tls 1.2")));
    // The server takes TLS 1.2 only and a client held to 1.3 fails: the settings given by hand
    // are the ones in force on both sides.
    let only_13 = Client::builder()
        .tls(client(&[&rustls::version::TLS13]))
        .no_proxy();
    assert_eq!(tls_kind(only_13.connect(&url)), TlsErrorKind::Handshake);
}

/// A frame over 16 KiB leaves in few system calls: after the first record (the header with
/// the payload's start), each write hands the session as much of the payload as it takes at
/// once, and the session gives the socket all the records that makes in one call, not one
/// record per call. Counted on the server's handler thread (rustls writes with `writev`).
#[cfg(feature = "rustls")]
#[test]
fn a_large_frame_leaves_in_few_system_calls() {
    const LEN: usize = 1 << 20;
    let (report, calls) = mpsc::channel();
    let report = Mutex::new(report);
    let addr = wss_serving(move |ws| {
        let bytes = bytes_of_len(LEN);
        ws.recv()?;
        let before = thread_write_calls();
        ws.send(bytes.as_slice())?;
        let _ = report.lock().unwrap().send(thread_write_calls() - before);
        ws.recv()?;
        Ok(())
    });
    let mut ws = trusting_client()
        .connect(&wss_url("localhost", addr, "/"))
        .unwrap();
    ws.send("go").unwrap();
    assert_eq!(
        ws.recv_timeout(TIMEOUT).unwrap(),
        Some(Message::Binary(bytes_of_len(LEN)))
    );
    let calls = calls.recv_timeout(TIMEOUT).unwrap();
    println!("{LEN} bytes in {calls} write calls");
    // 64 records of 16 KiB; 1 + 16 calls of up to 64 KiB each when nothing is partial.
    assert!(
        (1..=32).contains(&calls),
        "{calls} write calls for {LEN} bytes"
    );
}

/// A split reader gets a message whose record the session decrypted in one go but handed over
/// in parts (more than one read asked for): the rest is already in the session, so the reader
/// must not wait on the socket for it, where nothing more will come.
#[test]
fn a_split_reader_takes_what_the_session_already_decrypted() {
    let (report, done) = mpsc::channel();
    let report = Mutex::new(report);
    let addr = wss_serving(move |ws| {
        ws.recv()?;
        // One frame, one record, then silence.
        ws.send(vec![7u8; 12_000])?;
        let _ = report.lock().unwrap().send(());
        ws.recv()?;
        Ok(())
    });
    let mut ws = trusting_client()
        .connect(&wss_url("localhost", addr, "/"))
        .unwrap();
    let (mut reader, writer) = ws.split().unwrap();
    writer.send("go").unwrap();
    done.recv_timeout(TIMEOUT).unwrap();
    let got = reader.recv_timeout(Duration::from_secs(3));
    assert_eq!(got.unwrap(), Some(Message::Binary(vec![7u8; 12_000])));
}

/// Over TLS too, a peer that trickles a message cannot stretch a receive deadline: the
/// session reads a record in many socket calls, and each is armed with what is left. A relay
/// passes the server's bytes on 1,000 at a time every 40 ms (a 16 KiB record takes 650 ms);
/// a 300 ms receive gives up on time, and the message arrives whole on the next one.
#[test]
fn a_trickled_message_over_tls_cannot_stretch_a_receive_deadline() {
    let big = bytes_of_len(60_000);
    let sent = big.clone();
    let addr = wss_serving(move |ws| {
        ws.send(&sent[..])?;
        let _ = ws.recv();
        Ok(())
    });
    let relay = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = relay.local_addr().unwrap().port();
    thread::spawn(move || {
        let (mut client, _) = relay.accept().unwrap();
        let mut server = TcpStream::connect(addr).unwrap();
        let (mut upstream, mut to_server) =
            (client.try_clone().unwrap(), server.try_clone().unwrap());
        thread::spawn(move || std::io::copy(&mut upstream, &mut to_server));
        let mut buf = [0u8; 1000];
        while let Ok(n @ 1..) = server.read(&mut buf) {
            if client.write_all(&buf[..n]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(40));
        }
    });
    let mut ws = trusting_client()
        .connect(&format!("wss://localhost:{port}/"))
        .unwrap();
    let deadline = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let r = ws.recv_timeout(deadline);
    let took = started.elapsed();
    let got = r.map(|m| m.map(|m| m.as_bytes().len()));
    assert!(matches!(got, Err(Error::Timeout)), "{got:?} after {took:?}");
    assert!(
        took < deadline + Duration::from_millis(250),
        "a receive of {deadline:?} took {took:?}"
    );
    let msg = ws.recv_timeout(TIMEOUT).unwrap().expect("the message");
    assert!(msg.as_bytes() == big, "the message arrives whole");
}

/// A rustls client over `tcp`, trusting the test CA: strict about the end of TLS (an end without
/// close_notify is an error to it), and independent of our own client. The handshake runs with
/// its first write.
#[cfg(feature = "rustls")]
fn rustls_client(tcp: TcpStream) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&read_fixture("ca.pem")) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let session = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    rustls::StreamOwned::new(session, tcp)
}

/// Does the opening handshake over `tls`; the server sends nothing behind its answer.
#[cfg(feature = "rustls")]
fn upgrade_over(tls: &mut (impl Read + Write)) {
    tls.write_all(upgrade_request("/").as_bytes()).unwrap();
    let mut behind = Vec::new();
    let head = read_head(tls, &mut behind);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(behind.is_empty(), "{behind:?}");
}

/// A send over TLS to a peer that reset the connection fails at once: the session took the
/// bytes, but they never left, so the send must not report them sent.
#[cfg(feature = "rustls")]
#[test]
fn a_send_over_tls_to_a_reset_peer_fails() {
    let (go, wait) = mpsc::channel::<()>();
    let (done, sent) = mpsc::channel();
    let wait = Mutex::new(wait);
    let addr = wss_serving(move |ws| {
        wait.lock().unwrap().recv().unwrap();
        let _ = done.send(ws.send("anyone there?").map_err(|e| e.to_string()));
        Ok(())
    });
    let tcp = TcpStream::connect(addr).unwrap();
    guard(&tcp);
    let mut tls = rustls_client(tcp);
    upgrade_over(&mut tls);
    reset_tcp(tls.sock);
    thread::sleep(Duration::from_millis(100));
    go.send(()).unwrap();
    let sent = sent.recv_timeout(TIMEOUT).unwrap();
    assert!(sent.is_err(), "the send reported success");
}

/// After the closing handshake the server ends TLS with close_notify before its TCP end, so a
/// strict client (rustls treats an end without it as a possible truncation) sees a clean end.
#[cfg(feature = "rustls")]
#[test]
fn the_server_ends_tls_with_close_notify() {
    let addr = wss_server("server.pem", "server.key", Config::default());
    let tcp = TcpStream::connect(addr).unwrap();
    guard(&tcp);
    let mut tls = rustls_client(tcp);
    upgrade_over(&mut tls);
    tls.write_all(&Frame::close(1000, "").to_bytes()).unwrap();
    let mut rest = Vec::new();
    let end = tls.read_to_end(&mut rest);
    assert!(end.is_ok(), "the end of TLS: {end:?}");
    assert_eq!(rest, Frame::close(1000, "").unmasked().to_bytes());
}

/// TLS and the first request share one handshake deadline: a client that spent most of it
/// before its hello has only the rest for its request, not a whole timeout again.
#[cfg(feature = "rustls")]
#[test]
fn the_tls_handshake_and_the_first_request_share_one_deadline() {
    let timeout = Duration::from_millis(800);
    let config = Config::default().handshake_timeout(timeout);
    let addr = wss_server("server.pem", "server.key", config);
    let tcp = TcpStream::connect(addr).unwrap();
    guard(&tcp);
    thread::sleep(Duration::from_millis(500));
    let mut tls = rustls_client(tcp);
    let request = upgrade_request("/");
    let (start, rest) = request.split_at(request.len() / 2);
    tls.write_all(start.as_bytes()).unwrap();
    // 1 s after connecting: past the deadline, though well within a timeout of the TLS end.
    thread::sleep(Duration::from_millis(500));
    let _ = tls.write_all(rest.as_bytes());
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}
