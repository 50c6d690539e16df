//! The server behind a real reverse proxy: nginx (the Debian package), one process per test in
//! the foreground on a free loopback port, with a generated config doing the standard WebSocket
//! proxying (`proxy_http_version 1.1`, `Upgrade`/`Connection` headers, `X-Forwarded-For` from
//! `$proxy_add_x_forwarded_for`) in front of one or two in-process syncws servers (an `upstream`,
//! round robin). This is how users run more than one server.
//!
//! Covered: echo of text, binary and fragmented messages of every length encoding; pings
//! answered with pongs; heartbeats from either side; close codes both ways; a server shutdown
//! reaching the client as 1001; `trusted_proxies` feeding the peer address (`peer_addr`, logs,
//! per-IP limit and rate limit) from `X-Forwarded-For`, while a client's forged header is not
//! believed; two instances sharing the connections, and one that stops being routed around; a
//! backend on a Unix socket (`proxy_pass http://unix:PATH:`), trusted as the proxy or not.
//!
//! Every test checks that its connections went through nginx: nginx adds an `X-Test-Proxy`
//! header naming its own port, which the backend records, and its access log shows the `101`s.
//!
//! The tests are ignored by default; `bash scripts/nginx_test.sh` installs nginx when missing
//! and runs them.

#![cfg(unix)]

mod support;

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use syncws::{
    Client, CloseCode, CloseFrame, Config, Error, HandlerResult, Message, Server, ServerHandle,
    WebSocket,
};

/// How long to wait for something that happens once a connection has ended (an access log
/// line, a backend thread recording the close).
const SETTLE: Duration = Duration::from_secs(5);

/// The address nginx connects to the backends from when a test wants the proxy's address to
/// differ from the client's (`proxy_bind`); the clients of these tests are all on 127.0.0.1.
const PROXY_ADDR: &str = "127.0.0.3";

// ------------------------------------------------------------------ nginx

/// What a test's nginx looks like beyond the standard WebSocket proxying.
#[derive(Default)]
struct NginxConf<'a> {
    /// The backends of the `upstream`, round robin.
    upstreams: Vec<SocketAddr>,
    /// Instead of the `upstream`: one backend on this Unix socket.
    unix_upstream: Option<PathBuf>,
    /// More directives for the `server` block.
    server_extra: &'a str,
    /// More directives for the proxying `location`.
    location_extra: &'a str,
}

/// An nginx process of this test (a [`Daemon`]: stopped and its directory removed on drop; when
/// the test fails, its config, output and logs are printed).
struct Nginx {
    daemon: Daemon,
    port: u16,
}

impl Nginx {
    /// nginx in front of `upstreams` with the standard configuration.
    fn start(upstreams: &[SocketAddr]) -> Nginx {
        Nginx::start_with(NginxConf {
            upstreams: upstreams.to_vec(),
            ..NginxConf::default()
        })
    }

    fn start_with(conf: NginxConf<'_>) -> Nginx {
        assert!(conf.upstreams.is_empty() != conf.unix_upstream.is_none());
        let daemon = start_nginx("scripts/nginx_test.sh", 256, |_, port| {
            nginx_http(port, &conf)
        });
        let port = daemon.port();
        Nginx { daemon, port }
    }

    fn addr(&self) -> SocketAddr {
        self.daemon.addr()
    }

    fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    fn read(&self, name: &str) -> String {
        self.daemon.read(name)
    }

    /// Access log lines of requests for `path` answered with `status`. nginx writes a proxied
    /// WebSocket's line when the connection ends.
    fn logged(&self, path: &str, status: u16) -> usize {
        let request = format!("\"GET {path} HTTP/1.1\" {status} ");
        self.read("access.log")
            .lines()
            .filter(|l| l.contains(&request))
            .count()
    }

    /// Waits (bounded) until the access log has `n` lines for `path` with `status`.
    fn expect_logged(&self, path: &str, status: u16, n: usize) {
        let deadline = Instant::now() + SETTLE;
        while self.logged(path, status) < n && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            self.logged(path, status),
            n,
            "access log lines for GET {path} -> {status}:\n{}",
            self.read("access.log")
        );
    }
}

/// The `http` block of a test's nginx: an `upstream` of the backends (or a Unix socket) and one
/// server on loopback that proxies WebSockets to it, telling the backend its forwarded-for chain
/// and (`X-Test-Proxy`) nginx's own port.
fn nginx_http(port: u16, conf: &NginxConf<'_>) -> String {
    let servers: String = conf
        .upstreams
        .iter()
        .map(|a| format!("        server {a};\n"))
        .collect();
    let (upstream, pass) = match &conf.unix_upstream {
        None => (
            format!("upstream syncws_backends {{\n{servers}    }}"),
            "http://syncws_backends".to_owned(),
        ),
        Some(path) => (String::new(), format!("http://unix:{}:", path.display())),
    };
    let location = ws_location(
        &pass,
        &format!(
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Test-Proxy {port};
            {}",
            conf.location_extra
        ),
    );
    format!(
        "    {upstream}
    server {{
        listen 127.0.0.1:{port};
        {server_extra}
        {location}
    }}",
        server_extra = conf.server_extra,
    )
}

// ------------------------------------------------------------------ backends

/// What a backend saw of one connection.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    peer: Option<SocketAddr>,
    forwarded_for: Option<String>,
    /// nginx's port, from the `X-Test-Proxy` header that only the tests' nginx adds.
    proxy: Option<u16>,
}

#[derive(Default)]
struct Records {
    seen: Mutex<Vec<Seen>>,
    /// The client's close frame, recorded by echo connections that ended normally.
    closes: Mutex<Vec<Option<CloseFrame>>>,
}

/// An in-process syncws server with the [`app`] handler; shut down on drop.
struct Backend {
    handle: ServerHandle,
    records: Arc<Records>,
}

impl Backend {
    /// A backend named `name` (what it answers on `/name`), trusting nginx on 127.0.0.1.
    fn start(name: &str) -> Backend {
        Backend::start_with(name, |s| s.trusted_proxies([ip("127.0.0.1")]))
    }

    fn start_with(name: &str, setup: impl FnOnce(Server) -> Server) -> Backend {
        Backend::start_on(Server::bind("127.0.0.1:0").unwrap(), name, setup)
    }

    /// A backend on a Unix socket at `path` that any local user may connect to (nginx's
    /// workers run as `nobody` when the tests run as root).
    fn start_unix(path: &Path, name: &str, setup: impl FnOnce(Server) -> Server) -> Backend {
        use std::os::unix::fs::PermissionsExt;
        let server = Server::bind_unix(path).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o666)).unwrap();
        Backend::start_on(server, name, setup)
    }

    fn start_on(server: Server, name: &str, setup: impl FnOnce(Server) -> Server) -> Backend {
        let records = Arc::new(Records::default());
        let server = server.shutdown_timeout(Duration::from_secs(3));
        let (name, recorded) = (name.to_owned(), Arc::clone(&records));
        let handle = setup(server)
            .start(move |ws| app(ws, &name, &recorded))
            .unwrap();
        Backend { handle, records }
    }

    fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    fn seen(&self) -> Vec<Seen> {
        self.records.seen.lock().unwrap().clone()
    }

    /// Waits (bounded) for `n` recorded client close frames and returns them.
    fn closes(&self, n: usize) -> Vec<Option<CloseFrame>> {
        let deadline = Instant::now() + SETTLE;
        loop {
            let closes = self.records.closes.lock().unwrap().clone();
            if closes.len() >= n || Instant::now() >= deadline {
                return closes;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Asserts that every connection this backend saw came through `nginx`.
    fn expect_all_via(&self, nginx: &Nginx, n: usize) {
        let seen = self.seen();
        assert_eq!(seen.len(), n, "connections seen: {seen:?}");
        for s in &seen {
            assert_eq!(s.proxy, Some(nginx.port), "not through nginx: {s:?}");
            assert!(s.forwarded_for.is_some(), "no X-Forwarded-For: {s:?}");
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// The handler of every backend, by path: `/name` sends the backend's name first, `/whoami` the
/// peer address it sees, `/close4002` closes with 4002, `/heartbeat` waits in `recv` for a while
/// and sends the heartbeat's round trip (or `none`); after that (and on any other path) it
/// echoes, and records the client's close frame once the client has closed.
fn app(ws: &mut WebSocket, name: &str, records: &Records) -> HandlerResult {
    let path = ws.path().unwrap_or("").to_owned();
    records.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        peer: ws.peer_addr(),
        forwarded_for: ws.header("x-forwarded-for").map(str::to_owned),
        proxy: ws.header("x-test-proxy").and_then(|p| p.parse().ok()),
    });
    match path.as_str() {
        "/name" => ws.send(name)?,
        "/whoami" => {
            let peer = ws.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            ws.send(peer)?;
        }
        "/close4002" => {
            ws.close(CloseCode(4002), "server says bye")?;
            return Ok(());
        }
        "/heartbeat" => {
            let until = Instant::now() + Duration::from_millis(1200);
            loop {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match ws.recv_timeout(left) {
                    Err(e) if e.is_timeout() => {}
                    Err(e) => return Err(e.into()),
                    Ok(Some(msg)) => ws.send(&msg)?,
                    Ok(None) => return Ok(()),
                }
            }
            let rtt = match ws.rtt() {
                Some(rtt) => format!("rtt {}", rtt.as_micros()),
                None => "none".to_owned(),
            };
            ws.send(rtt)?;
        }
        _ => {}
    }
    // Until the client closes: normally (Ok(None)) or with its own code (PeerClosed).
    loop {
        match ws.recv() {
            Ok(Some(msg)) => ws.send(&msg)?,
            Ok(None) | Err(Error::PeerClosed(_)) => break,
            Err(e) => return Err(e.into()),
        }
    }
    records
        .closes
        .lock()
        .unwrap()
        .push(ws.close_frame().cloned());
    Ok(())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ------------------------------------------------------------------ clients

fn connect(url: &str) -> WebSocket {
    connect_with(Client::builder(), url)
}

fn connect_with(builder: syncws::ClientBuilder, url: &str) -> WebSocket {
    builder
        .no_proxy()
        .connect(url)
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// A client that tells nginx it is `addr`: the tests' nginx for distinct clients takes the
/// client's address from `X-Test-Client` (the realip module), as it would from a CDN in front.
fn as_client(addr: &str) -> syncws::ClientBuilder {
    Client::builder().header("X-Test-Client", addr)
}

/// The standard config plus the realip module trusting loopback clients to name their address
/// in `X-Test-Client`: several distinct clients from one machine.
const DISTINCT_CLIENTS: &str = "set_real_ip_from 127.0.0.1; real_ip_header X-Test-Client;";

fn recv(ws: &mut WebSocket) -> Message {
    ws.recv_timeout(TIMEOUT)
        .unwrap()
        .expect("the server closed the connection")
}

fn recv_text(ws: &mut WebSocket) -> String {
    recv(ws).into_text().expect("a text message")
}

/// The status of a refused handshake.
fn refused(result: syncws::Result<WebSocket>) -> syncws::HttpResponse {
    match result {
        Err(Error::Http(response)) => *response,
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, the connection was accepted"),
    }
}

/// The refusal is syncws's own, passed on by nginx (which adds no 429 of its own here).
fn assert_from_backend(response: &syncws::HttpResponse) {
    let body = String::from_utf8_lossy(&response.body);
    assert!(
        body.contains("too many connections from your address"),
        "not the backend's answer: {response:?}"
    );
}

fn header<'a>(response: &'a syncws::HttpResponse, name: &str) -> Option<&'a str> {
    response
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

// ------------------------------------------------------------------ echo, ping, close

#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn echo_through_nginx() {
    let backend = Backend::start("a");
    let nginx = Nginx::start(&[backend.addr()]);
    let mut ws = connect(&nginx.url("/echo"));
    // The client's TCP peer is nginx, not the backend.
    assert_eq!(
        ws.get_ref().tcp().unwrap().peer_addr().unwrap(),
        nginx.addr()
    );
    // Each length encoding: 7-bit, the largest 7-bit, 16-bit, 64-bit.
    for len in [0, 125, 126, 65536, 1 << 20] {
        let text = text_of_len(len);
        ws.send(text.as_str()).unwrap();
        assert_eq!(recv(&mut ws), Message::Text(text), "text of {len} bytes");
        let bytes = bytes_of_len(len);
        ws.send(bytes.as_slice()).unwrap();
        assert_eq!(
            recv(&mut ws),
            Message::Binary(bytes),
            "binary of {len} bytes"
        );
    }
    ws.send_fragmented(["frag", "ment", "ed"]).unwrap();
    assert_eq!(recv_text(&mut ws), "fragmented");
    ws.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(
        backend.closes(1)[0].as_ref().map(|c| c.code),
        Some(CloseCode::NORMAL)
    );
    backend.expect_all_via(&nginx, 1);
    assert_eq!(
        backend.seen()[0].forwarded_for.as_deref(),
        Some("127.0.0.1")
    );
    nginx.expect_logged("/echo", 101, 1);
}

#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn ping_gets_its_pong_through_nginx() {
    let backend = Backend::start("a");
    let nginx = Nginx::start(&[backend.addr()]);
    // A pong is consumed inside `recv`, so the raw client observes it on the wire.
    let mut raw = RawConn::connect(nginx.addr());
    raw.send(&Frame::ping("abc"));
    let pong = raw.read_frame();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (PONG, &b"abc"[..]));
    raw.send(&Frame::text("after the ping"));
    let echo = raw.read_frame();
    assert_eq!(
        (echo.opcode, echo.payload.as_slice()),
        (TEXT, &b"after the ping"[..])
    );
    raw.send(&Frame::close(1000, ""));
    assert_eq!(raw.expect_close(), Some(1000));

    // The library's own ping: the pong is swallowed and the connection goes on.
    let mut ws = connect(&nginx.url("/echo"));
    ws.ping(b"abc").unwrap();
    ws.send("after the ping").unwrap();
    assert_eq!(recv_text(&mut ws), "after the ping");
    ws.close(CloseCode::NORMAL, "").unwrap();
    backend.expect_all_via(&nginx, 2);
    nginx.expect_logged("/", 101, 1);
    nginx.expect_logged("/echo", 101, 1);
}

#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn close_codes_pass_through_nginx_both_ways() {
    let backend = Backend::start("a");
    let nginx = Nginx::start(&[backend.addr()]);

    // Client closes: the server sees the code and the reason.
    let mut ws = connect(&nginx.url("/echo"));
    ws.send("hi").unwrap();
    assert_eq!(recv_text(&mut ws), "hi");
    ws.close(CloseCode(4001), "bye").unwrap();
    let closes = backend.closes(1);
    assert_eq!(
        closes,
        [Some(CloseFrame {
            code: CloseCode(4001),
            reason: "bye".into()
        })]
    );

    // Server closes: the client sees the code and the reason, and the closing handshake ends.
    let mut ws = connect(&nginx.url("/close4002"));
    // 4002 is not a normal end: it comes back as an error carrying the frame.
    let ended = ws.recv_timeout(TIMEOUT).unwrap_err();
    assert_eq!(ended.peer_close(), ws.close_frame());
    assert_eq!(
        ws.close_frame(),
        Some(&CloseFrame {
            code: CloseCode(4002),
            reason: "server says bye".into()
        })
    );
    assert!(matches!(ws.send("late"), Err(Error::Closed)));
    backend.expect_all_via(&nginx, 2);
    nginx.expect_logged("/echo", 101, 1);
    nginx.expect_logged("/close4002", 101, 1);
}

#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn server_shutdown_reaches_the_client_as_1001() {
    let backend = Backend::start("a");
    let nginx = Nginx::start(&[backend.addr()]);
    let mut ws = connect(&nginx.url("/echo"));
    ws.send("hi").unwrap();
    assert_eq!(recv_text(&mut ws), "hi");
    assert!(
        backend.handle.shutdown(),
        "connection threads did not finish"
    );
    assert!(ws.recv_timeout(TIMEOUT).unwrap().is_none());
    assert_eq!(
        ws.close_frame().map(|c| c.code),
        Some(CloseCode::GOING_AWAY)
    );
    // Nothing listens behind nginx any more: 502 from nginx itself.
    let response = refused(Client::builder().no_proxy().connect(&nginx.url("/echo")));
    assert_eq!(response.status, 502);
    backend.expect_all_via(&nginx, 1);
}

// ------------------------------------------------------------------ heartbeats

#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn server_heartbeat_crosses_nginx() {
    let config = Config::default().ping_interval(Some(Duration::from_millis(200)));
    let backend = Backend::start_with("a", |s| s.config(config).trusted_proxies([ip("127.0.0.1")]));
    let nginx = Nginx::start(&[backend.addr()]);
    // The client's heartbeat is off: only the server pings, the client answers inside `recv`.
    let quiet = Config::default().ping_interval(None);
    let mut ws = connect_with(Client::builder().config(quiet), &nginx.url("/heartbeat"));
    let answer = recv_text(&mut ws);
    let micros: u64 = answer
        .strip_prefix("rtt ")
        .unwrap_or_else(|| panic!("the server's heartbeat got no pong: {answer}"))
        .parse()
        .unwrap();
    assert!(micros < 1_000_000, "round trip of {micros} us");
    assert!(ws.rtt().is_none(), "the client did not ping");
    ws.close(CloseCode::NORMAL, "").unwrap();
    backend.expect_all_via(&nginx, 1);
    nginx.expect_logged("/heartbeat", 101, 1);
}

#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn client_heartbeat_crosses_nginx() {
    let backend = Backend::start("a");
    let nginx = Nginx::start(&[backend.addr()]);
    let config = Config::default().ping_interval(Some(Duration::from_millis(200)));
    let mut ws = connect_with(Client::builder().config(config), &nginx.url("/echo"));
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        match ws.recv_timeout(Duration::from_millis(100)) {
            Err(e) if e.is_timeout() => {}
            other => panic!("expected only timeouts while idle, got {other:?}"),
        }
    }
    let rtt = ws.rtt().expect("the client's heartbeat got no pong");
    assert!(rtt < Duration::from_secs(1), "round trip of {rtt:?}");
    // Still a working connection.
    ws.send("still here").unwrap();
    assert_eq!(recv_text(&mut ws), "still here");
    ws.close(CloseCode::NORMAL, "").unwrap();
    backend.expect_all_via(&nginx, 1);
}

/// An nginx in front of `backend` that connects to it from `PROXY_ADDR` (127.0.0.3), so the
/// backend can tell it from the client on 127.0.0.1.
fn nginx_from_proxy_addr(backend: &Backend) -> Nginx {
    let bind = format!("proxy_bind {PROXY_ADDR};");
    Nginx::start_with(NginxConf {
        upstreams: vec![backend.addr()],
        location_extra: &bind,
        ..NginxConf::default()
    })
}

// ------------------------------------------------------------------ X-Forwarded-For

#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    // nginx connects to the backend from 127.0.0.3, the only trusted address; the client is on
    // 127.0.0.1, which nginx appends to X-Forwarded-For.
    let backend = Backend::start_with("a", |s| s.trusted_proxies([ip(PROXY_ADDR)]));
    let nginx = nginx_from_proxy_addr(&backend);

    let mut ws = connect(&nginx.url("/whoami"));
    assert_eq!(recv_text(&mut ws), "127.0.0.1:0");
    ws.close(CloseCode::NORMAL, "").unwrap();

    // A forged header is kept by nginx in front of the real address, and not believed.
    let spoofing = Client::builder().header("X-Forwarded-For", "203.0.113.5");
    let mut ws = connect_with(spoofing, &nginx.url("/whoami"));
    assert_eq!(recv_text(&mut ws), "127.0.0.1:0");
    ws.close(CloseCode::NORMAL, "").unwrap();

    backend.expect_all_via(&nginx, 2);
    let seen = backend.seen();
    assert_eq!(seen[0].forwarded_for.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        seen[1].forwarded_for.as_deref(),
        Some("203.0.113.5, 127.0.0.1")
    );
    assert!(
        seen.iter()
            .all(|s| s.peer == Some("127.0.0.1:0".parse().unwrap()))
    );
    nginx.expect_logged("/whoami", 101, 2);
}

#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn forwarded_for_from_an_untrusted_proxy_is_ignored() {
    // The backend trusts 127.0.0.1 only, nginx comes from 127.0.0.3.
    let backend = Backend::start("a");
    let nginx = nginx_from_proxy_addr(&backend);
    let spoofing = Client::builder().header("X-Forwarded-For", "203.0.113.5");
    let mut ws = connect_with(spoofing, &nginx.url("/whoami"));
    let peer: SocketAddr = recv_text(&mut ws).parse().unwrap();
    assert_eq!(peer.ip(), ip(PROXY_ADDR));
    assert_ne!(peer.port(), 0, "the socket's own address, with its port");
    ws.close(CloseCode::NORMAL, "").unwrap();
    backend.expect_all_via(&nginx, 1);
    assert_eq!(
        backend.seen()[0].forwarded_for.as_deref(),
        Some("203.0.113.5, 127.0.0.1")
    );
}

/// A browser's upgrade request to nginx for a page on `host` (`Host` and a same-origin
/// `Origin`); returns the socket and the answer's head.
fn upgrade_as_host(nginx: &Nginx, host: &str) -> (TcpStream, Vec<u8>, String) {
    let mut stream = TcpStream::connect(nginx.addr()).unwrap();
    guard(&stream);
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let head = read_head(&mut stream, &mut buf);
    (stream, buf, head)
}

/// nginx on the same host forwards the public name (`proxy_set_header Host $host`) to a backend
/// bound to 127.0.0.1: the backend's DNS rebinding check (loopback names only) leaves requests
/// from its trusted proxy alone, so the public set-up keeps working.
#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn a_public_host_name_passes_through_a_trusted_nginx() {
    let backend = Backend::start("a");
    let nginx = Nginx::start(&[backend.addr()]);
    let (stream, buf, head) = upgrade_as_host(&nginx, "app.example");
    assert!(head.starts_with("HTTP/1.1 101 "), "not upgraded: {head}");
    let mut ws = RawConn {
        stream,
        buf,
        expect_masked: false,
    };
    ws.send(&Frame::text("through nginx"));
    assert_eq!(ws.read_frame().payload, b"through nginx");
    ws.send(&Frame::close(1000, ""));
    assert_eq!(ws.read_close().close_code(), Some(1000));
    backend.expect_all_via(&nginx, 1);
    nginx.expect_logged("/echo", 101, 1);
}

/// The same request from a proxy the backend does not trust (nginx binding 127.0.0.3) is taken
/// for a browser's, and the rebinding check refuses the name.
#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn a_public_host_name_from_an_untrusted_proxy_is_refused() {
    let backend = Backend::start("a");
    let nginx = nginx_from_proxy_addr(&backend);
    let (_stream, _, head) = upgrade_as_host(&nginx, "app.example");
    assert!(head.starts_with("HTTP/1.1 403 "), "not refused: {head}");
    nginx.expect_logged("/echo", 403, 1);
}

/// A client that connects from the trusted proxy's own address cannot be told from the proxy:
/// the entry nginx appends for it (127.0.0.1) is a trusted address and is skipped, so the
/// address the client wrote itself is taken. This is what "the last address that is not a
/// trusted proxy" means (nginx's `real_ip_recursive on` does the same); deployments keep
/// client addresses out of `trusted_proxies` (here: `proxy_bind`, as in the test above).
#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn a_client_on_the_proxys_own_address_is_taken_for_a_proxy() {
    let backend = Backend::start("a");
    let nginx = Nginx::start(&[backend.addr()]);
    let spoofing = Client::builder().header("X-Forwarded-For", "203.0.113.5");
    let mut ws = connect_with(spoofing, &nginx.url("/whoami"));
    assert_eq!(recv_text(&mut ws), "203.0.113.5:0");
    ws.close(CloseCode::NORMAL, "").unwrap();
    // Without a forged entry every address in the chain is trusted: the socket's peer is used.
    let mut ws = connect(&nginx.url("/whoami"));
    let peer: SocketAddr = recv_text(&mut ws).parse().unwrap();
    assert_eq!(peer.ip(), ip("127.0.0.1"));
    assert_ne!(peer.port(), 0, "the socket's own address, with its port");
    ws.close(CloseCode::NORMAL, "").unwrap();
    backend.expect_all_via(&nginx, 2);
}

/// A forged header that is not an address list must not hide the address nginx appended: the
/// client is still the last entry that is not a trusted proxy. (Fails while `forwarded_client`
/// in src/server/connection.rs gives up on the whole header when any entry does not parse, and
/// falls back to the proxy's own socket address.)
#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn a_malformed_forged_entry_does_not_hide_the_client() {
    let backend = Backend::start_with("a", |s| s.trusted_proxies([ip(PROXY_ADDR)]));
    let nginx = nginx_from_proxy_addr(&backend);
    let spoofing = Client::builder().header("X-Forwarded-For", "not-an-address");
    let mut ws = connect_with(spoofing, &nginx.url("/whoami"));
    let peer = recv_text(&mut ws);
    ws.close(CloseCode::NORMAL, "").unwrap();
    backend.expect_all_via(&nginx, 1);
    assert_eq!(
        backend.seen()[0].forwarded_for.as_deref(),
        Some("not-an-address, 127.0.0.1")
    );
    assert_eq!(
        peer, "127.0.0.1:0",
        "the client's address as nginx forwarded it"
    );
}

// ------------------------------------------------------------------ limits and logs per client

#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn per_ip_limit_counts_clients_behind_nginx() {
    let backend = Backend::start_with("a", |s| {
        s.trusted_proxies([ip("127.0.0.1")])
            .max_connections_per_ip(2)
    });
    let nginx = Nginx::start_with(NginxConf {
        upstreams: vec![backend.addr()],
        server_extra: DISTINCT_CLIENTS,
        ..NginxConf::default()
    });
    let url = nginx.url("/whoami");
    let mut first = connect_with(as_client("198.51.100.1"), &url);
    let mut second = connect_with(as_client("198.51.100.1"), &url);
    assert_eq!(recv_text(&mut first), "198.51.100.1:0");
    assert_eq!(recv_text(&mut second), "198.51.100.1:0");
    // The third one from the same client: the backend's 429, passed on by nginx.
    let response = refused(as_client("198.51.100.1").no_proxy().connect(&url));
    assert_eq!(response.status, 429, "{response:?}");
    assert_from_backend(&response);
    // Another client behind the same proxy is not affected.
    let mut other = connect_with(as_client("198.51.100.2"), &url);
    assert_eq!(recv_text(&mut other), "198.51.100.2:0");
    // Once one of the first client's connections has ended, it may open another.
    first.close(CloseCode::NORMAL, "").unwrap();
    backend.closes(1);
    let deadline = Instant::now() + SETTLE;
    let mut again = loop {
        match as_client("198.51.100.1").no_proxy().connect(&url) {
            Ok(ws) => break ws,
            Err(Error::Http(r)) if r.status == 429 && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("after a close: {e}"),
        }
    };
    assert_eq!(recv_text(&mut again), "198.51.100.1:0");
    for mut ws in [second, other, again] {
        ws.close(CloseCode::NORMAL, "").unwrap();
    }
    nginx.expect_logged("/whoami", 429, 1);
    nginx.expect_logged("/whoami", 101, 4);
    assert!(backend.seen().iter().all(|s| s.proxy == Some(nginx.port)));
}

#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn rate_limit_counts_clients_behind_nginx() {
    let backend = Backend::start_with("a", |s| {
        s.trusted_proxies([ip("127.0.0.1")])
            .rate_limit(2, Duration::from_secs(60))
    });
    let nginx = Nginx::start_with(NginxConf {
        upstreams: vec![backend.addr()],
        server_extra: DISTINCT_CLIENTS,
        ..NginxConf::default()
    });
    let url = nginx.url("/whoami");
    for _ in 0..2 {
        let mut ws = connect_with(as_client("198.51.100.1"), &url);
        assert_eq!(recv_text(&mut ws), "198.51.100.1:0");
        ws.close(CloseCode::NORMAL, "").unwrap();
    }
    let response = refused(as_client("198.51.100.1").no_proxy().connect(&url));
    assert_eq!(response.status, 429, "{response:?}");
    assert_from_backend(&response);
    assert!(
        header(&response, "retry-after").is_some(),
        "no Retry-After: {response:?}"
    );
    let mut other = connect_with(as_client("198.51.100.2"), &url);
    assert_eq!(recv_text(&mut other), "198.51.100.2:0");
    other.close(CloseCode::NORMAL, "").unwrap();
    nginx.expect_logged("/whoami", 429, 1);
    nginx.expect_logged("/whoami", 101, 3);
    backend.expect_all_via(&nginx, 3);
}

#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn logs_name_the_client_behind_nginx() {
    let logs = captured_logs();
    let backend = Backend::start("a");
    let nginx = Nginx::start_with(NginxConf {
        upstreams: vec![backend.addr()],
        server_extra: DISTINCT_CLIENTS,
        ..NginxConf::default()
    });
    let mut ws = connect_with(as_client("198.51.100.77"), &nginx.url("/logged"));
    ws.send("hi").unwrap();
    assert_eq!(recv_text(&mut ws), "hi");
    ws.close(CloseCode::NORMAL, "").unwrap();
    backend.closes(1);
    backend.expect_all_via(&nginx, 1);
    let text = logs.text();
    assert!(
        text.lines()
            .any(|l| l.contains("open from 198.51.100.77:0") && l.contains("\"/logged\"")),
        "no log line names the client:\n{text}"
    );
}

/// Everything syncws logs at debug level, from the first call on (one logger per process).
fn captured_logs() -> &'static LogSink {
    static SINK: OnceLock<LogSink> = OnceLock::new();
    SINK.get_or_init(|| {
        let sink = LogSink::default();
        env_logger::Builder::new()
            .parse_filters("syncws=debug")
            .format(|buf, record| writeln!(buf, "{}", record.args()))
            .target(env_logger::Target::Pipe(Box::new(sink.clone())))
            .try_init()
            .expect("no logger installed yet");
        sink
    })
}

#[derive(Clone, Default)]
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl LogSink {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ------------------------------------------------------------------ a backend on a Unix socket

/// A directory for a backend's socket under the system's temporary directory (which nginx's
/// workers may enter), removed on drop.
struct SocketDir(PathBuf);

impl SocketDir {
    fn new(name: &str) -> SocketDir {
        let dir = std::env::temp_dir().join(format!("syncws-nginx-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        SocketDir(dir)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("ws.sock")
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// nginx (with distinct clients) in front of the Unix socket at `path`.
fn nginx_to_unix(path: &Path) -> Nginx {
    Nginx::start_with(NginxConf {
        unix_upstream: Some(path.to_owned()),
        server_extra: DISTINCT_CLIENTS,
        ..NginxConf::default()
    })
}

#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn a_unix_socket_backend_behind_nginx_names_its_clients() {
    let dir = SocketDir::new("trusted");
    let backend = Backend::start_unix(&dir.socket(), "u", |s| {
        s.trusted_unix_proxy(true).max_connections_per_ip(1)
    });
    let nginx = nginx_to_unix(&dir.socket());
    let url = nginx.url("/whoami");
    let mut first = connect_with(as_client("198.51.100.1"), &url);
    assert_eq!(recv_text(&mut first), "198.51.100.1:0");
    let big = text_of_len(100_000);
    first.send(big.as_str()).unwrap();
    assert_eq!(recv_text(&mut first), big);
    // The same client again: counted by the address nginx forwarded, over its limit.
    let response = refused(as_client("198.51.100.1").no_proxy().connect(&url));
    assert_eq!(response.status, 429, "{response:?}");
    assert_from_backend(&response);
    // Another client through the same socket is not affected.
    let mut other = connect_with(as_client("198.51.100.2"), &url);
    assert_eq!(recv_text(&mut other), "198.51.100.2:0");
    for mut ws in [first, other] {
        ws.close(CloseCode::NORMAL, "").unwrap();
    }
    backend.closes(2);
    nginx.expect_logged("/whoami", 101, 2);
    nginx.expect_logged("/whoami", 429, 1);
    assert!(backend.seen().iter().all(|s| s.proxy == Some(nginx.port)));
}

#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn an_untrusted_unix_proxy_names_nobody() {
    let dir = SocketDir::new("untrusted");
    let backend = Backend::start_unix(&dir.socket(), "u", |s| s.max_connections_per_ip(1));
    let nginx = nginx_to_unix(&dir.socket());
    let url = nginx.url("/whoami");
    // X-Forwarded-For is not believed: no address, and no per-IP count either (both served).
    let mut first = connect_with(as_client("198.51.100.1"), &url);
    let mut second = connect_with(as_client("198.51.100.1"), &url);
    assert_eq!(recv_text(&mut first), "");
    assert_eq!(recv_text(&mut second), "");
    for mut ws in [first, second] {
        ws.close(CloseCode::NORMAL, "").unwrap();
    }
    backend.closes(2);
    backend.expect_all_via(&nginx, 2);
    assert!(backend.seen().iter().all(|s| s.peer.is_none()));
    nginx.expect_logged("/whoami", 101, 2);
}

// ------------------------------------------------------------------ several instances

#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn two_instances_share_the_connections() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let nginx = Nginx::start(&[a.addr(), b.addr()]);
    let mut conns: Vec<(String, WebSocket)> = (0..10)
        .map(|_| {
            let mut ws = connect(&nginx.url("/name"));
            (recv_text(&mut ws), ws)
        })
        .collect();
    for (i, (_, ws)) in conns.iter_mut().enumerate() {
        let msg = format!("message {i}: {}", text_of_len(1000 + i));
        ws.send(msg.as_str()).unwrap();
        assert_eq!(recv_text(ws), msg);
    }
    let mut served: HashMap<String, usize> = HashMap::new();
    for (name, mut ws) in conns {
        *served.entry(name).or_default() += 1;
        ws.close(CloseCode::NORMAL, "").unwrap();
    }
    assert_eq!(served.len(), 2, "served by: {served:?}");
    assert!(served.keys().all(|n| n == "a" || n == "b"), "{served:?}");
    a.expect_all_via(&nginx, served["a"]);
    b.expect_all_via(&nginx, served["b"]);
    assert_eq!(a.closes(served["a"]).len(), served["a"]);
    assert_eq!(b.closes(served["b"]).len(), served["b"]);
    nginx.expect_logged("/name", 101, 10);
}

#[test]
#[ignore = "needs nginx: run scripts/nginx_test.sh"]
fn an_instance_that_stops_is_routed_around() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let nginx = Nginx::start(&[a.addr(), b.addr()]);
    let mut on_a = None;
    let mut on_b = None;
    for _ in 0..4 {
        let mut ws = connect(&nginx.url("/name"));
        match recv_text(&mut ws).as_str() {
            "a" if on_a.is_none() => on_a = Some(ws),
            "b" if on_b.is_none() => on_b = Some(ws),
            _ => ws.close(CloseCode::NORMAL, "").unwrap(),
        }
    }
    let (mut on_a, mut on_b) = (on_a.expect("none on a"), on_b.expect("none on b"));
    // a stops: its client hears 1001 through nginx, b's client is not disturbed.
    assert!(a.handle.shutdown());
    assert!(on_a.recv_timeout(TIMEOUT).unwrap().is_none());
    assert_eq!(
        on_a.close_frame().map(|c| c.code),
        Some(CloseCode::GOING_AWAY)
    );
    on_b.send("still here").unwrap();
    assert_eq!(recv_text(&mut on_b), "still here");
    // New connections all go to b.
    for _ in 0..6 {
        let mut ws = connect(&nginx.url("/name"));
        assert_eq!(recv_text(&mut ws), "b");
        ws.close(CloseCode::NORMAL, "").unwrap();
    }
    on_b.close(CloseCode::NORMAL, "").unwrap();
    let seen = a.seen().len() + b.seen().len();
    assert!(
        a.seen()
            .iter()
            .chain(&b.seen())
            .all(|s| s.proxy == Some(nginx.port) && s.path == "/name")
    );
    nginx.expect_logged("/name", 101, seen);
}
