//! The client through SOCKS5 proxies (RFC 1928, RFC 1929), over real loopback sockets.
//!
//! Most tests use the hand-written server in `support/socks.rs`, which records each request byte
//! for byte (a name for `socks5h://`, an address for `socks5://`, the credentials) and can play
//! a broken or hostile proxy. The tests marked `needs microsocks` run against the real one (the
//! Debian package); `bash scripts/socks_test.sh` installs it when missing and runs them.
//!
//! `ALL_PROXY` is checked in a child run of this binary (`env_child`) with the variables set:
//! the environment is process-wide and other test threads read it.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;
use syncws::{Client, CloseCode, Config, Error, HandshakeError, Message, WebSocket};

/// Where Debian's `microsocks` package puts the binary.
const MICROSOCKS: &str = "/usr/bin/microsocks";

/// How long a child run of this binary may take.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// A short handshake timeout for the hostile proxies, so a client that waits too long fails
/// the test quickly.
const SHORT: Duration = Duration::from_millis(700);

fn through(proxy: &str) -> syncws::ClientBuilder {
    Client::builder().proxy(proxy)
}

/// `ws://localhost:port/` for the server at `addr`.
fn localhost_url(addr: SocketAddr) -> String {
    format!("ws://localhost:{}/", addr.port())
}

/// A message there and back, then a normal close.
fn echo_and_close(ws: &mut WebSocket) {
    let text = text_of_len(1000);
    ws.send(&text).unwrap();
    assert_eq!(ws.recv_timeout(TIMEOUT).unwrap(), Some(Message::Text(text)));
    let big = bytes_of_len(256 << 10);
    ws.send(&big).unwrap();
    assert_eq!(
        ws.recv_timeout(TIMEOUT).unwrap(),
        Some(Message::Binary(big))
    );
    ws.close(CloseCode::NORMAL, "bye").unwrap();
}

/// The client's TCP peer is the proxy.
fn assert_via(ws: &WebSocket, proxy: SocketAddr) {
    assert_eq!(
        ws.get_ref().tcp().unwrap().peer_addr().unwrap().port(),
        proxy.port()
    );
}

fn handshake_error(result: syncws::Result<WebSocket>) -> HandshakeError {
    match result {
        Err(Error::Handshake(e)) => e,
        Err(e) => panic!("expected a handshake error, got {e:?}"),
        Ok(_) => panic!("expected a handshake error, connected"),
    }
}

// ------------------------------------------------------------------ the hand-written proxy

#[test]
fn socks5h_sends_the_name() {
    let server = echo_server();
    let proxy = FakeSocks::start(SocksScript::Relay(None));
    let mut ws = through(&proxy.url("socks5h", None))
        .connect(&localhost_url(server))
        .unwrap();
    assert_via(&ws, proxy.addr);
    echo_and_close(&mut ws);
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].greeting,
        [5, 1, 0],
        "no credentials: only 'no auth'"
    );
    let port = server.port().to_be_bytes();
    let want = [&[5, 1, 0, 3, 9][..], b"localhost", &port].concat();
    assert_eq!(seen[0].request, want);
}

#[test]
fn socks5_resolves_here() {
    let server = echo_server();
    let proxy = FakeSocks::start(SocksScript::Relay(None));
    let mut ws = through(&proxy.url("socks5", None))
        .connect(&localhost_url(server))
        .unwrap();
    assert_via(&ws, proxy.addr);
    echo_and_close(&mut ws);
    // `localhost` may resolve to ::1 first, where nothing listens: the proxy refuses that one
    // and the client asks for the next address on a new connection.
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|s| s.address_type() != 3), "{seen:?}");
    let port = server.port().to_be_bytes();
    let last = &seen.last().unwrap().request;
    assert_eq!(last, &[&[5, 1, 0, 1, 127, 0, 0, 1][..], &port].concat());
}

#[test]
fn an_ip_literal_goes_as_an_address() {
    let server = echo_server();
    let proxy = FakeSocks::start(SocksScript::Relay(None));
    let mut ws = through(&proxy.url("socks5h", None))
        .connect(&ws_url(server, "/"))
        .unwrap();
    echo_and_close(&mut ws);
    assert_eq!(proxy.seen()[0].address_type(), 1);
}

#[test]
fn username_and_password() {
    let server = echo_server();
    let proxy = FakeSocks::start(SocksScript::Relay(Some(("us:er".into(), "p@ss".into()))));
    // Percent-encoded in the URL, sent decoded.
    let mut ws = through(&proxy.url("socks5h", Some("us%3Aer:p%40ss")))
        .connect(&localhost_url(server))
        .unwrap();
    echo_and_close(&mut ws);
    let seen = &proxy.seen()[0];
    assert_eq!(seen.greeting, [5, 2, 0, 2]);
    assert_eq!(
        seen.credentials,
        Some((b"us:er".to_vec(), b"p@ss".to_vec()))
    );
    assert_eq!(seen.name(), b"localhost");
}

#[test]
fn wrong_password_and_no_password() {
    let server = echo_server();
    let proxy = FakeSocks::start(SocksScript::Relay(Some(("user".into(), "secret".into()))));
    let wrong = through(&proxy.url("socks5", Some("user:guess"))).connect(&localhost_url(server));
    let err = handshake_error(wrong);
    assert_eq!(err, HandshakeError::SocksAuthFailed);
    assert_eq!(
        err.to_string(),
        "socks5 proxy rejected the user name or password"
    );
    let none = through(&proxy.url("socks5", None)).connect(&localhost_url(server));
    let err = handshake_error(none);
    assert_eq!(err, HandshakeError::SocksNoMethod);
    assert!(err.to_string().contains("user name and password"), "{err}");
}

#[test]
fn a_target_the_proxy_cannot_reach() {
    // A port nothing listens on: the proxy answers 5, connection refused.
    let closed = free_port();
    let proxy = FakeSocks::start(SocksScript::Relay(None));
    let result = through(&proxy.url("socks5h", None)).connect(&format!("ws://127.0.0.1:{closed}/"));
    let err = handshake_error(result);
    assert_eq!(err, HandshakeError::SocksRefused(5));
    assert_eq!(
        err.to_string(),
        "socks5 proxy refused to connect: connection refused (code 5)"
    );
}

/// What a hostile or broken proxy answers after the greeting, and the error it must give, in
/// well under the test's timeout.
struct Hostile {
    name: &'static str,
    answer: &'static [&'static [u8]],
    want: HandshakeError,
}

const HOSTILE: &[Hostile] = &[
    Hostile {
        name: "silent",
        answer: &[],
        want: HandshakeError::Timeout,
    },
    Hostile {
        name: "half a method choice",
        answer: &[&[5]],
        want: HandshakeError::Timeout,
    },
    Hostile {
        name: "SOCKS4 version",
        answer: &[&[4, 0]],
        want: HandshakeError::MalformedSocks,
    },
    Hostile {
        name: "an HTTP answer",
        answer: &[b"HTTP/1.1 400 Bad Request\r\n\r\n"],
        want: HandshakeError::MalformedSocks,
    },
    Hostile {
        name: "a method never offered",
        answer: &[&[5, 2]],
        want: HandshakeError::MalformedSocks,
    },
    Hostile {
        name: "no acceptable method",
        answer: &[&[5, 0xFF]],
        want: HandshakeError::SocksNoMethod,
    },
    Hostile {
        name: "not allowed by ruleset",
        answer: &[&[5, 0], &[5, 2, 0, 1, 0, 0, 0, 0, 0, 0]],
        want: HandshakeError::SocksRefused(2),
    },
    Hostile {
        name: "truncated reply",
        answer: &[&[5, 0], &[5, 0, 0, 1, 127, 0]],
        want: HandshakeError::Timeout,
    },
    Hostile {
        name: "unknown address type",
        answer: &[&[5, 0], &[5, 0, 0, 9, 1, 2, 3, 4, 5, 6]],
        want: HandshakeError::MalformedSocks,
    },
    Hostile {
        name: "reply version 0",
        answer: &[&[5, 0], &[0, 90, 0, 0, 0, 0, 0, 0]],
        want: HandshakeError::MalformedSocks,
    },
    // A domain name of 255 bytes announced, a few sent: the client waits for exactly the rest
    // and no longer than its deadline.
    Hostile {
        name: "long bound name, cut short",
        answer: &[&[5, 0], &[5, 0, 0, 3, 255, b'a', b'b']],
        want: HandshakeError::Timeout,
    },
];

#[test]
fn hostile_replies() {
    let config = Config::default().handshake_timeout(SHORT);
    for case in HOSTILE {
        let chunks = case.answer.iter().map(|c| c.to_vec()).collect();
        let proxy = FakeSocks::start(SocksScript::Answer(chunks, Duration::ZERO));
        let start = Instant::now();
        let result = through(&proxy.url("socks5h", None))
            .config(config.clone())
            .connect("ws://localhost:9/");
        let took = start.elapsed();
        match result {
            Err(Error::Handshake(e)) => assert_eq!(e, case.want, "{}", case.name),
            // On a loaded machine the time can run out before a write, an I/O timeout.
            Err(e) if case.want == HandshakeError::Timeout && e.is_timeout() => {}
            Err(e) => panic!("{}: expected {:?}, got {e:?}", case.name, case.want),
            Ok(_) => panic!("{}: connected", case.name),
        }
        assert!(
            took < SHORT + Duration::from_secs(1),
            "{}: {took:?}",
            case.name
        );
    }
}

/// A proxy that trickles a long reply a byte at a time cannot stretch the handshake: the
/// deadline is a total, not per read.
#[test]
fn a_trickling_proxy_meets_the_deadline() {
    let reply: Vec<Vec<u8>> = [&[5u8, 0][..], &[5, 0, 0, 3, 255]]
        .iter()
        .map(|c| c.to_vec())
        .chain((0..300).map(|_| vec![b'a']))
        .collect();
    let proxy = FakeSocks::start(SocksScript::Answer(reply, Duration::from_millis(50)));
    let start = Instant::now();
    let result = through(&proxy.url("socks5h", None))
        .config(Config::default().handshake_timeout(Duration::from_secs(1)))
        .connect("ws://localhost:9/");
    assert_eq!(handshake_error(result), HandshakeError::Timeout);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// RFC 1929 limits (1 to 255 bytes) and RFC 1928's for a name (255) are checked before the
/// client connects: the proxy sees no connection.
#[test]
fn overlong_fields_are_refused_before_connecting() {
    let proxy = FakeSocks::start(SocksScript::Relay(None));
    let long = "x".repeat(256);
    let long_host = format!("ws://{}.example/", "a".repeat(250));
    let rows = [
        (
            proxy.url("socks5", Some(&format!("{long}:pw"))),
            "ws://localhost:9/",
        ),
        (
            proxy.url("socks5", Some(&format!("user:{long}"))),
            "ws://localhost:9/",
        ),
        (proxy.url("socks5h", Some("user")), "ws://localhost:9/"),
        (proxy.url("socks5h", None), long_host.as_str()),
    ];
    for (proxy_url, target) in &rows {
        match through(proxy_url).connect(target) {
            Err(Error::InvalidInput(e)) => {
                assert!(e.to_string().contains("255"), "{e}");
                // The message names the limit, never the credentials.
                assert!(!e.to_string().contains("xxx"), "{e}");
            }
            Err(e) => panic!("{proxy_url} {target}: expected InvalidInput, got {e:?}"),
            Ok(_) => panic!("{proxy_url} {target}: connected"),
        }
    }
    assert_eq!(proxy.accepted(), 0);
}

// ------------------------------------------------------------------ the environment

/// Runs [`env_child`] with `vars` (and no other proxy variable) to connect to `target`.
fn run_child(target: &str, vars: &[(&str, String)]) {
    let cmd = env_child_command(target, vars);
    let (status, stdout, stderr) = run_bounded(cmd, CHILD_TIMEOUT);
    let report = format!("child with {vars:?}: {status:?}\n{stdout}\n{stderr}");
    assert!(status.is_some_and(|s| s.success()), "{report}");
    // A misspelt filter would run no test and still exit 0.
    assert!(stdout.contains("SYNCWS_CHILD_DONE"), "{report}");
}

/// The child side of [`all_proxy_from_the_environment`]: connects to `SYNCWS_CHILD_TARGET`
/// with the default settings (the proxy from the environment), echoes and closes.
#[test]
#[ignore = "run by all_proxy_from_the_environment in a child process"]
fn env_child() {
    let Ok(target) = std::env::var("SYNCWS_CHILD_TARGET") else {
        return;
    };
    let mut ws = Client::connect(&target).unwrap_or_else(|e| panic!("{target}: {e}"));
    echo_and_close(&mut ws);
    println!("SYNCWS_CHILD_DONE");
}

#[test]
fn all_proxy_from_the_environment() {
    let server = echo_server();
    let target = localhost_url(server);
    let proxy = FakeSocks::start(SocksScript::Relay(None));
    run_child(&target, &[("ALL_PROXY", proxy.url("socks5h", None))]);
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].name(), b"localhost");
    // Lowercase, and socks5: resolved in the child.
    run_child(&target, &[("all_proxy", proxy.url("socks5", None))]);
    let seen = proxy.seen();
    assert!(seen.len() >= 2);
    assert_eq!(seen.last().unwrap().address_type(), 1);
    // NO_PROXY exempts the host: the proxy sees nothing more.
    let before = proxy.accepted();
    run_child(
        &target,
        &[
            ("ALL_PROXY", proxy.url("socks5h", None)),
            ("NO_PROXY", "localhost".to_owned()),
        ],
    );
    assert_eq!(proxy.accepted(), before);
    // A NO_PROXY for another host does not.
    run_child(
        &target,
        &[
            ("ALL_PROXY", proxy.url("socks5h", None)),
            ("no_proxy", "example.com".to_owned()),
        ],
    );
    assert_eq!(proxy.accepted(), before + 1);
}

// ------------------------------------------------------------------ microsocks

/// A microsocks process of this test, optionally wanting `user` and `password`.
fn microsocks(auth: Option<(&str, &str)>) -> Daemon {
    assert!(
        std::path::Path::new(MICROSOCKS).exists(),
        "microsocks is not installed; run scripts/socks_test.sh"
    );
    let auth = auth.map(|(u, p)| (u.to_owned(), p.to_owned()));
    Daemon::builder("microsocks")
        .show(DAEMON_OUTPUT)
        .start(move |_dir, port| {
            let mut cmd = Command::new(MICROSOCKS);
            cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
            if let Some((user, password)) = &auth {
                cmd.args(["-u", user, "-P", password]);
            }
            cmd
        })
}

#[test]
#[ignore = "needs microsocks: run scripts/socks_test.sh"]
fn through_microsocks() {
    let proxy = microsocks(None);
    let server = echo_server();
    for scheme in ["socks5", "socks5h"] {
        let url = format!("{scheme}://127.0.0.1:{}", proxy.port());
        let mut ws = through(&url).connect(&localhost_url(server)).unwrap();
        assert_via(&ws, proxy.addr());
        echo_and_close(&mut ws);
    }
    let closed = free_port();
    let url = format!("socks5h://127.0.0.1:{}", proxy.port());
    let result = through(&url).connect(&format!("ws://127.0.0.1:{closed}/"));
    assert!(matches!(
        handshake_error(result),
        HandshakeError::SocksRefused(_)
    ));
}

#[test]
#[ignore = "needs microsocks: run scripts/socks_test.sh"]
fn microsocks_with_password() {
    let proxy = microsocks(Some(("user", "secret")));
    let server = echo_server();
    let port = proxy.port();
    let mut ws = through(&format!("socks5h://user:secret@127.0.0.1:{port}"))
        .connect(&localhost_url(server))
        .unwrap();
    assert_via(&ws, proxy.addr());
    echo_and_close(&mut ws);
    let wrong =
        through(&format!("socks5h://user:guess@127.0.0.1:{port}")).connect(&localhost_url(server));
    assert_eq!(handshake_error(wrong), HandshakeError::SocksAuthFailed);
    let none = through(&format!("socks5h://127.0.0.1:{port}")).connect(&localhost_url(server));
    assert_eq!(handshake_error(none), HandshakeError::SocksNoMethod);
}

#[cfg(feature = "tls")]
#[test]
#[ignore = "needs microsocks: run scripts/socks_test.sh"]
fn wss_through_microsocks() {
    let fixture = |name: &str| format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let tls =
        syncws::ServerTls::from_pem_files(fixture("server.pem"), fixture("server.key")).unwrap();
    let server = syncws::Server::bind("127.0.0.1:0").unwrap().tls(tls);
    let addr = server.local_addr();
    std::thread::spawn(move || server.serve(echo));
    let ca = syncws::ClientTls::builder()
        .add_root_file(fixture("ca.pem"))
        .build()
        .unwrap();
    let proxy = microsocks(None);
    let mut ws = through(&format!("socks5h://127.0.0.1:{}", proxy.port()))
        .tls(ca)
        .connect(&format!("wss://localhost:{}/", addr.port()))
        .unwrap();
    assert!(ws.get_ref().is_tls());
    assert_via(&ws, proxy.addr());
    echo_and_close(&mut ws);
}
