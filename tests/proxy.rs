//! The client against a real HTTP `CONNECT` proxy: tinyproxy (the Debian package), one process
//! per test on a free loopback port with a generated config. `ws://` and `wss://` through an
//! explicit proxy and through an `https://` one (stunnel, also from Debian, terminating TLS in
//! front of tinyproxy), proxy authentication (407 without credentials; tinyproxy answers wrong
//! ones with 401), the proxy environment variables and a proxy that is not listening.
//!
//! The tests that need tinyproxy (and stunnel) are ignored by default; `bash
//! scripts/proxy_test.sh` installs them when missing and runs them.
//!
//! Whether a connection went through the proxy is checked twice, independently: at the sockets
//! (the client's TCP peer is the proxy, and the server saw the connection come from a socket
//! other than the client's) and in tinyproxy's log (the `CONNECT` request for the server's port).
//!
//! Tests must not change their own process's environment (`set_var` is unsafe in edition 2024,
//! the crate forbids unsafe code, and other threads read the environment), so the environment
//! tests run this test binary again as a child (`env_child`) with the variables set.

mod support;

use std::fs;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;
use syncws::{Client, CloseCode, Config, Error, HandlerResult, HandshakeError, Message, WebSocket};

/// Where Debian's `tinyproxy` package puts the binary (it moved between releases).
const TINYPROXY: [&str; 2] = ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"];

/// How long tinyproxy may take to accept connections after it was started.
const PROXY_START: Duration = Duration::from_secs(5);

/// How long a child run of this binary may take.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// A text message the servers here answer with the peer address they see.
const WHO_AM_I: &str = "who am I?";

// ------------------------------------------------------------------ tinyproxy

#[cfg(any(feature = "tls", feature = "rustls"))]
fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn tinyproxy_binary() -> &'static str {
    TINYPROXY
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("tinyproxy is not installed ({TINYPROXY:?}); run scripts/proxy_test.sh")
        })
}

/// A tinyproxy process of this test (a [`Daemon`]: killed and its directory removed on drop).
struct Tinyproxy {
    daemon: Daemon,
    port: u16,
}

impl Tinyproxy {
    /// A proxy without authentication.
    fn start() -> Tinyproxy {
        Tinyproxy::start_with(None)
    }

    /// A proxy that wants `Proxy-Authorization: Basic` for `user` and `password`.
    fn with_auth(user: &str, password: &str) -> Tinyproxy {
        Tinyproxy::start_with(Some((user, password)))
    }

    fn start_with(auth: Option<(&str, &str)>) -> Tinyproxy {
        let binary = tinyproxy_binary();
        let daemon = Daemon::builder("tinyproxy")
            .start_within(PROXY_START)
            .show("tinyproxy.log")
            .ready_when(|d| d.read("tinyproxy.log").contains("Accepting connections"))
            .start(|dir, port| {
                // No `ConnectPort` lines: CONNECT is then allowed to every port.
                let mut config = format!(
                    "Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nLogLevel Info\n\
                     LogFile \"{}\"\n",
                    dir.join("tinyproxy.log").display()
                );
                if let Some((user, password)) = auth {
                    config.push_str(&format!("BasicAuth {user} {password}\n"));
                }
                let config_path = dir.join("tinyproxy.conf");
                fs::write(&config_path, config).unwrap();
                let mut cmd = Command::new(binary);
                cmd.arg("-d").arg("-c").arg(&config_path);
                cmd
            });
        let port = daemon.port();
        Tinyproxy { daemon, port }
    }

    /// `http://127.0.0.1:port`, with `userinfo@` when given.
    fn url(&self, userinfo: Option<&str>) -> String {
        match userinfo {
            Some(u) => format!("http://{u}@127.0.0.1:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    fn log(&self) -> String {
        self.daemon.read("tinyproxy.log")
    }

    /// How many `CONNECT` requests for `port` (any host) tinyproxy logged, refused ones too.
    /// tinyproxy logs `Request (file descriptor N): CONNECT host:port HTTP/1.1` as soon as it
    /// has read the request line, before it answers, so the line is there once the client has
    /// its answer.
    fn connect_requests(&self, port: u16) -> usize {
        let target = format!(":{port} HTTP/");
        self.log()
            .lines()
            .filter(|l| l.contains("Request (file descriptor") && l.contains("CONNECT "))
            .filter(|l| l.contains(&target))
            .count()
    }

    /// How many times tinyproxy opened a connection to `port` (any host): tunnels it set up.
    fn upstream_connections(&self, port: u16) -> usize {
        let target = format!(":{port}");
        self.log()
            .lines()
            .filter(|l| l.contains("opensock: opening connection to"))
            .filter(|l| l.trim_end().ends_with(&target))
            .count()
    }
}

// ------------------------------------------------------------------ servers and checks

/// Echoes every message, except that [`WHO_AM_I`] is answered with the peer address the server
/// sees.
fn peer_echo(ws: &mut WebSocket) -> HandlerResult {
    while let Some(msg) = ws.recv()? {
        if msg.as_text() == Some(WHO_AM_I) {
            let peer = ws.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            ws.send(peer)?;
        } else {
            ws.send(&msg)?;
        }
    }
    Ok(())
}

fn ws_server() -> SocketAddr {
    serve(Config::default(), peer_echo)
}

/// Only the `wss` rows of [`ENV_CASES`] call this, and they need the `tls` feature.
#[cfg(not(any(feature = "tls", feature = "rustls")))]
fn wss_server() -> SocketAddr {
    unreachable!("wss rows need the tls feature")
}

#[cfg(any(feature = "tls", feature = "rustls"))]
fn wss_server() -> SocketAddr {
    let tls =
        syncws::ServerTls::from_pem_files(fixture("server.pem"), fixture("server.key")).unwrap();
    let server = syncws::Server::bind("127.0.0.1:0").unwrap().tls(tls);
    let addr = server.local_addr();
    std::thread::spawn(move || server.serve(peer_echo));
    addr
}

/// Default settings (the proxy from the environment), the test CA trusted.
#[cfg(any(feature = "tls", feature = "rustls"))]
fn connect_trusting_test_ca(url: &str) -> syncws::Result<WebSocket> {
    Client::builder().tls(test_ca()).connect(url)
}

#[cfg(not(any(feature = "tls", feature = "rustls")))]
fn connect_trusting_test_ca(url: &str) -> syncws::Result<WebSocket> {
    Client::connect(url)
}

#[cfg(any(feature = "tls", feature = "rustls"))]
fn test_ca() -> syncws::ClientTls {
    syncws::ClientTls::builder()
        .add_root_file(fixture("ca.pem"))
        .build()
        .unwrap()
}

fn recv(ws: &mut WebSocket) -> Message {
    ws.recv_timeout(TIMEOUT)
        .unwrap()
        .expect("the server closed the connection")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Through a proxy listening on this port.
    Proxied(u16),
    Direct,
}

/// How `ws` reaches the server on `server_port`, from the sockets: the client's TCP peer is the
/// server (which then sees the client's own address) or a proxy (and the server sees another
/// socket, the proxy's).
fn route(ws: &mut WebSocket, server_port: u16) -> Route {
    let tcp = ws.get_ref().tcp().unwrap();
    let local = tcp.local_addr().unwrap();
    let remote = tcp.peer_addr().unwrap();
    ws.send(WHO_AM_I).unwrap();
    let seen: SocketAddr = recv(ws)
        .as_text()
        .expect("a text answer")
        .parse()
        .expect("a socket address");
    if remote.port() == server_port {
        assert_eq!(
            seen, local,
            "direct: the server must see the client's socket"
        );
        Route::Direct
    } else {
        assert_ne!(
            seen, local,
            "proxied: the server must see the proxy's socket"
        );
        Route::Proxied(remote.port())
    }
}

/// A text message, a 1 MiB binary message, then the closing handshake.
fn echo_and_close(ws: &mut WebSocket) {
    let text = text_of_len(1000);
    ws.send(&text).unwrap();
    assert_eq!(recv(ws), Message::Text(text));
    let big = bytes_of_len(1 << 20);
    ws.send(&big).unwrap();
    assert_eq!(recv(ws), Message::Binary(big));
    ws.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(ws.close_frame().map(|f| f.code), Some(CloseCode::NORMAL));
}

/// Checks that `ws` reaches the server on `server_port` through `proxy` ([`route`]), echoes and
/// closes, and that the proxy has by now logged `requests` CONNECTs for that port and opened
/// `tunnels` connections to it.
fn proxied_echo(
    ws: &mut WebSocket,
    proxy: &Tinyproxy,
    server_port: u16,
    requests: usize,
    tunnels: usize,
) {
    assert_eq!(route(ws, server_port), Route::Proxied(proxy.port));
    echo_and_close(ws);
    assert_eq!(
        proxy.connect_requests(server_port),
        requests,
        "{}",
        proxy.log()
    );
    assert_eq!(
        proxy.upstream_connections(server_port),
        tunnels,
        "{}",
        proxy.log()
    );
}

fn refused_status(result: syncws::Result<WebSocket>) -> u16 {
    match result {
        Err(Error::Handshake(HandshakeError::ProxyRefused(status))) => status,
        Err(e) => panic!("expected the proxy to refuse, got {e:?}"),
        Ok(_) => panic!("expected the proxy to refuse, connected"),
    }
}

// ------------------------------------------------------------------ explicit proxy

#[test]
#[ignore = "needs tinyproxy: run scripts/proxy_test.sh"]
fn ws_through_explicit_proxy() {
    let proxy = Tinyproxy::start();
    let addr = ws_server();
    let mut ws = Client::builder()
        .proxy(&proxy.url(None))
        .connect(&ws_url(addr, "/"))
        .unwrap();
    proxied_echo(&mut ws, &proxy, addr.port(), 1, 1);
}

#[cfg(any(feature = "tls", feature = "rustls"))]
#[test]
#[ignore = "needs tinyproxy: run scripts/proxy_test.sh"]
fn wss_through_explicit_proxy() {
    let proxy = Tinyproxy::start();
    let addr = wss_server();
    let mut ws = Client::builder()
        .tls(test_ca())
        .proxy(&proxy.url(None))
        .connect(&format!("wss://localhost:{}/", addr.port()))
        .unwrap();
    assert!(ws.get_ref().is_tls());
    assert_eq!(route(&mut ws, addr.port()), Route::Proxied(proxy.port));
    echo_and_close(&mut ws);
    assert_eq!(proxy.connect_requests(addr.port()), 1, "{}", proxy.log());
    // The tunnel names the host as the URL does; TLS (and so the certificate check for
    // `localhost`) runs inside it, end to end.
    assert!(
        proxy
            .log()
            .contains(&format!("CONNECT localhost:{} HTTP/1.1", addr.port())),
        "{}",
        proxy.log()
    );
}

/// Where Debian's `stunnel4` package puts the binary.
#[cfg(feature = "tls")]
const STUNNEL: &str = "/usr/bin/stunnel4";

/// stunnel terminating TLS (the test certificate, for `localhost`) in front of a tinyproxy:
/// together an `https://` proxy.
#[cfg(feature = "tls")]
fn stunnel_in_front_of(proxy: &Tinyproxy) -> Daemon {
    assert!(
        Path::new(STUNNEL).exists(),
        "stunnel4 is not installed; run scripts/proxy_test.sh"
    );
    let upstream = proxy.port;
    Daemon::builder("stunnel")
        .start_within(PROXY_START)
        .show("stunnel.log")
        .start(move |dir, port| {
            let config = format!(
                "foreground = yes\npid =\noutput = {}\ndebug = info\n\n[https-proxy]\n\
                 accept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{upstream}\ncert = {}\n\
                 key = {}\n",
                dir.join("stunnel.log").display(),
                fixture("server.pem"),
                fixture("server.key"),
            );
            let config_path = dir.join("stunnel.conf");
            fs::write(&config_path, config).unwrap();
            let mut cmd = Command::new(STUNNEL);
            cmd.arg(&config_path);
            cmd
        })
}

/// An `https://` proxy (stunnel and tinyproxy): `CONNECT` inside TLS with the proxy, and for
/// `wss://` TLS with the server inside that. The client's TCP peer is stunnel; tinyproxy,
/// behind it, logs the `CONNECT` it could only read once stunnel had decrypted it.
#[cfg(feature = "tls")]
#[test]
#[ignore = "needs tinyproxy and stunnel4: run scripts/proxy_test.sh"]
fn ws_and_wss_through_an_https_proxy() {
    let proxy = Tinyproxy::start();
    let front = stunnel_in_front_of(&proxy);
    let proxy_url = format!("https://localhost:{}", front.port());
    for (addr, url) in [
        (ws_server(), "ws://127.0.0.1"),
        (wss_server(), "wss://localhost"),
    ] {
        let target = format!("{url}:{}/", addr.port());
        let mut ws = Client::builder()
            .tls(test_ca())
            .proxy(&proxy_url)
            .connect(&target)
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        assert!(ws.get_ref().is_tls());
        assert_eq!(route(&mut ws, addr.port()), Route::Proxied(front.port()));
        echo_and_close(&mut ws);
        assert_eq!(proxy.connect_requests(addr.port()), 1, "{}", proxy.log());
    }
    // The proxy's certificate is checked: without the test CA the client stops before CONNECT.
    let addr = ws_server();
    let result = Client::builder()
        .tls(
            syncws::ClientTls::builder()
                .disable_system_roots(true)
                .build()
                .unwrap(),
        )
        .proxy(&proxy_url)
        .connect(&ws_url(addr, "/"));
    assert!(matches!(result, Err(Error::Tls(_))), "{result:?}");
    assert_eq!(proxy.connect_requests(addr.port()), 0, "{}", proxy.log());
}

#[test]
#[ignore = "needs tinyproxy: run scripts/proxy_test.sh"]
fn proxy_authentication() {
    let proxy = Tinyproxy::with_auth("user", "secret");
    let addr = ws_server();
    let url = ws_url(addr, "/");
    let without = Client::builder().proxy(&proxy.url(None)).connect(&url);
    assert_eq!(refused_status(without), 407);
    // tinyproxy answers wrong credentials with `401 Unauthorized` rather than 407 (its
    // `reqs.c` jumps to `e401`); the client reports whatever status the proxy refused with.
    let wrong = Client::builder()
        .proxy(&proxy.url(Some("user:wrong")))
        .connect(&url);
    let status = refused_status(wrong);
    assert!(matches!(status, 401 | 407), "refused with {status}");
    // Both requests reached the proxy, neither was let through.
    assert_eq!(proxy.connect_requests(addr.port()), 2, "{}", proxy.log());
    assert_eq!(
        proxy.upstream_connections(addr.port()),
        0,
        "{}",
        proxy.log()
    );

    let mut ws = Client::builder()
        .proxy(&proxy.url(Some("user:secret")))
        .connect(&url)
        .unwrap();
    proxied_echo(&mut ws, &proxy, addr.port(), 3, 1);
}

/// Not ignored: needs no tinyproxy, only a port nobody listens on.
#[test]
fn proxy_not_listening() {
    let addr = ws_server();
    let port = free_port();
    let start = Instant::now();
    let result = Client::builder()
        .proxy(&format!("http://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_secs(5))
        .connect(&ws_url(addr, "/"));
    let took = start.elapsed();
    match result {
        Err(Error::Io(e)) => {
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
            let text = Error::Io(e).to_string();
            assert!(
                text.contains(&format!("127.0.0.1:{port}")),
                "the error names the proxy's address: {text}"
            );
        }
        Err(e) => panic!("expected an i/o error, got {e:?}"),
        Ok(_) => panic!("connected through a proxy that is not there"),
    }
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

// ------------------------------------------------------------------ environment

/// Runs [`env_child`] in a child process with the proxy variables `vars` (and no others) to
/// connect to `target`, and checks that it succeeded on the route `expect`.
fn run_child(target: &str, expect: Route, vars: &[(&str, &str)]) {
    let mut cmd = env_child_command(target, vars);
    match expect {
        Route::Proxied(port) => cmd
            .env("SYNCWS_CHILD_EXPECT", "proxied")
            .env("SYNCWS_CHILD_PROXY_PORT", port.to_string()),
        Route::Direct => cmd.env("SYNCWS_CHILD_EXPECT", "direct"),
    };
    let (status, stdout, stderr) = run_bounded(cmd, CHILD_TIMEOUT);
    let report = format!(
        "child with {vars:?} to {target}, expecting {expect:?}: {}\n\
         --- stdout\n{stdout}\n--- stderr\n{stderr}",
        match status {
            Some(s) => s.to_string(),
            None => format!("killed after {CHILD_TIMEOUT:?}"),
        }
    );
    assert!(status.is_some_and(|s| s.success()), "{report}");
    // A misspelt filter would run no test and still exit 0.
    assert!(stdout.contains("SYNCWS_CHILD_DONE"), "{report}");
    assert!(stdout.contains("1 passed"), "{report}");
}

/// The child side of the environment tests: does nothing unless `SYNCWS_CHILD_TARGET` is set;
/// then connects there with the default settings (proxy from the environment), checks the route
/// against `SYNCWS_CHILD_EXPECT`, echoes and closes.
#[test]
#[ignore = "needs tinyproxy: run scripts/proxy_test.sh"]
fn env_child() {
    let Ok(target) = std::env::var("SYNCWS_CHILD_TARGET") else {
        return;
    };
    let expect = std::env::var("SYNCWS_CHILD_EXPECT").expect("SYNCWS_CHILD_EXPECT");
    let server_port = syncws::Url::parse(&target).unwrap().port;
    let mut ws = if target.starts_with("wss:") {
        connect_trusting_test_ca(&target)
    } else {
        Client::connect(&target)
    }
    .unwrap_or_else(|e| panic!("connecting to {target}: {e}"));
    let route = route(&mut ws, server_port);
    match expect.as_str() {
        "proxied" => {
            let port: u16 = std::env::var("SYNCWS_CHILD_PROXY_PORT")
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(route, Route::Proxied(port));
        }
        "direct" => assert_eq!(route, Route::Direct),
        other => panic!("SYNCWS_CHILD_EXPECT={other}"),
    }
    echo_and_close(&mut ws);
    println!("SYNCWS_CHILD_DONE {route:?}");
}

/// Which server a row connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Ws,
    /// Only with the `tls` feature.
    #[cfg_attr(not(any(feature = "tls", feature = "rustls")), allow(dead_code))]
    Wss,
}

/// Which tinyproxy a row's variables name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyKind {
    /// Without authentication.
    Open,
    /// Wanting `user:secret`, which the row's URL carries.
    Auth,
}

/// Which way a row's connection must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Proxy,
    Direct,
}

/// One environment: the child gets `vars` (and no other proxy variable) and connects to the
/// `scheme` server. In the values `{proxy}` stands for the proxy's URL, `{port}` for the
/// server's port and `{other_port}` for another port.
#[derive(Debug)]
struct EnvCase {
    name: &'static str,
    scheme: Scheme,
    proxy: ProxyKind,
    vars: &'static [(&'static str, &'static str)],
    via: Via,
}

const ENV_CASES: &[EnvCase] = &[
    EnvCase {
        name: "HTTP_PROXY",
        scheme: Scheme::Ws,
        proxy: ProxyKind::Open,
        vars: &[("HTTP_PROXY", "{proxy}")],
        via: Via::Proxy,
    },
    EnvCase {
        name: "lowercase http_proxy",
        scheme: Scheme::Ws,
        proxy: ProxyKind::Open,
        vars: &[("http_proxy", "{proxy}")],
        via: Via::Proxy,
    },
    EnvCase {
        name: "NO_PROXY with the address",
        scheme: Scheme::Ws,
        proxy: ProxyKind::Open,
        vars: &[("HTTP_PROXY", "{proxy}"), ("NO_PROXY", "127.0.0.1")],
        via: Via::Direct,
    },
    EnvCase {
        name: "lowercase no_proxy, a list with the address",
        scheme: Scheme::Ws,
        proxy: ProxyKind::Open,
        vars: &[
            ("HTTP_PROXY", "{proxy}"),
            ("no_proxy", "example.com, 127.0.0.1"),
        ],
        via: Via::Direct,
    },
    // The same proxy, with a NO_PROXY that does not match, is used: the bypasses above were
    // NO_PROXY's doing.
    EnvCase {
        name: "NO_PROXY with another host",
        scheme: Scheme::Ws,
        proxy: ProxyKind::Open,
        vars: &[("HTTP_PROXY", "{proxy}"), ("NO_PROXY", "example.com")],
        via: Via::Proxy,
    },
    EnvCase {
        name: "NO_PROXY with the address's block",
        scheme: Scheme::Ws,
        proxy: ProxyKind::Open,
        vars: &[("HTTP_PROXY", "{proxy}"), ("NO_PROXY", "127.0.0.0/8")],
        via: Via::Direct,
    },
    EnvCase {
        name: "NO_PROXY with the address and port",
        scheme: Scheme::Ws,
        proxy: ProxyKind::Open,
        vars: &[("HTTP_PROXY", "{proxy}"), ("NO_PROXY", "127.0.0.1:{port}")],
        via: Via::Direct,
    },
    // Another block, and the same address on another port, do not exempt it.
    EnvCase {
        name: "NO_PROXY with another block",
        scheme: Scheme::Ws,
        proxy: ProxyKind::Open,
        vars: &[("HTTP_PROXY", "{proxy}"), ("NO_PROXY", "10.0.0.0/8")],
        via: Via::Proxy,
    },
    EnvCase {
        name: "NO_PROXY with the address on another port",
        scheme: Scheme::Ws,
        proxy: ProxyKind::Open,
        vars: &[
            ("HTTP_PROXY", "{proxy}"),
            ("NO_PROXY", "127.0.0.1:{other_port}"),
        ],
        via: Via::Proxy,
    },
    EnvCase {
        name: "HTTP_PROXY with credentials",
        scheme: Scheme::Ws,
        proxy: ProxyKind::Auth,
        vars: &[("HTTP_PROXY", "{proxy}")],
        via: Via::Proxy,
    },
    EnvCase {
        name: "ALL_PROXY",
        scheme: Scheme::Ws,
        proxy: ProxyKind::Open,
        vars: &[("ALL_PROXY", "{proxy}")],
        via: Via::Proxy,
    },
    // `wss` uses `HTTPS_PROXY`, not `HTTP_PROXY`.
    #[cfg(any(feature = "tls", feature = "rustls"))]
    EnvCase {
        name: "HTTP_PROXY is not for wss",
        scheme: Scheme::Wss,
        proxy: ProxyKind::Open,
        vars: &[("HTTP_PROXY", "{proxy}")],
        via: Via::Direct,
    },
    #[cfg(any(feature = "tls", feature = "rustls"))]
    EnvCase {
        name: "HTTPS_PROXY for wss",
        scheme: Scheme::Wss,
        proxy: ProxyKind::Open,
        vars: &[("HTTPS_PROXY", "{proxy}")],
        via: Via::Proxy,
    },
];

/// Every row of [`ENV_CASES`] in a child of its own. A proxied row must show up in the proxy's
/// log as one `CONNECT` for the server's port, a direct one not at all; through the
/// authenticating proxy the tunnel must also have been opened (the credentials were taken).
#[test]
#[ignore = "needs tinyproxy: run scripts/proxy_test.sh"]
fn env_proxy_variables() {
    let open = Tinyproxy::start();
    let auth = Tinyproxy::with_auth("user", "secret");
    let ws = ws_server();
    let mut wss = None;
    for case in ENV_CASES {
        let (proxy, proxy_url) = match case.proxy {
            ProxyKind::Open => (&open, open.url(None)),
            ProxyKind::Auth => (&auth, auth.url(Some("user:secret"))),
        };
        let (port, target) = match case.scheme {
            Scheme::Ws => (ws.port(), ws_url(ws, "/")),
            Scheme::Wss => {
                let port = wss.get_or_insert_with(wss_server).port();
                (port, format!("wss://localhost:{port}/"))
            }
        };
        let other_port = port.wrapping_add(1).max(1).to_string();
        let vars: Vec<(&str, String)> = case
            .vars
            .iter()
            .map(|&(name, value)| {
                let value = value
                    .replace("{proxy}", &proxy_url)
                    .replace("{other_port}", &other_port)
                    .replace("{port}", &port.to_string());
                (name, value)
            })
            .collect();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (requests, tunnels) = (
            proxy.connect_requests(port),
            proxy.upstream_connections(port),
        );
        let (route, more) = match case.via {
            Via::Proxy => (Route::Proxied(proxy.port), 1),
            Via::Direct => (Route::Direct, 0),
        };
        run_child(&target, route, &vars);
        assert_eq!(
            proxy.connect_requests(port),
            requests + more,
            "{}: CONNECT requests\n{}",
            case.name,
            proxy.log()
        );
        if case.proxy == ProxyKind::Auth {
            assert_eq!(
                proxy.upstream_connections(port),
                tunnels + more,
                "{}: tunnels\n{}",
                case.name,
                proxy.log()
            );
        }
    }
}
