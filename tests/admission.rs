//! Admission under load over real loopback sockets: many client addresses behind a trusted
//! proxy, and a server that runs out of file descriptors.

mod raw_http;

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use raw_http::{Http, upgrade, wait_until};
use syncws::{Response, Server};

/// Requests the server answers on one keep-alive connection before closing it.
const PER_CONNECTION: u32 = 1000;

/// The n-th of many distinct client addresses.
fn client(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + n)
}

fn forwarded(n: u32) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: {}\r\n\r\n",
        client(n)
    )
}

/// 60,000 clients behind one trusted proxy, each within its rate window for the whole test: all
/// are admitted and all stay counted (a second request from any of them is over its rate). The
/// cost per admission is counted in `server::limits`' unit tests; here the table is exercised
/// at full size through the real request path.
#[test]
fn sixty_thousand_forwarded_clients_are_admitted_and_counted() {
    const CLIENTS: u32 = 60_000;
    const BATCH: u32 = 100;
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .trusted_proxies([IpAddr::from(Ipv4Addr::LOCALHOST)])
        .rate_limit(1, std::time::Duration::from_secs(3600))
        .http(|_| Response::text(200, "ok\n"))
        .start(|_| Ok(()))
        .unwrap();
    let addr = server.local_addr();
    let mut admitted = 0;
    for first in (0..CLIENTS).step_by(PER_CONNECTION as usize) {
        let mut proxy = Http::connect(addr);
        for batch in (first..first + PER_CONNECTION).step_by(BATCH as usize) {
            let requests: String = (batch..batch + BATCH).map(forwarded).collect();
            proxy.send(requests);
            for n in batch..batch + BATCH {
                let reply = proxy.response();
                assert_eq!(reply.status, 200, "client {}", client(n));
                admitted += 1;
            }
        }
    }
    assert_eq!(admitted, CLIENTS);
    // The table kept every one of them: the first, a middle and the last are over their rate.
    for n in [0, CLIENTS / 2, CLIENTS - 1] {
        let reply = Http::connect(addr).exchange(forwarded(n));
        assert_eq!(reply.status, 429, "client {}", client(n));
    }
    assert!(server.shutdown());
}

/// The file descriptor limit of the child server in the test below.
const CHILD_FDS: u32 = 256;

/// Set in the child process: run [`child_server`] instead of the tests.
const CHILD_ENV: &str = "SYNCWS_ADMISSION_CHILD";

/// The child server's `max_connections`, when not the default.
const MAX_ENV: &str = "SYNCWS_ADMISSION_MAX";

/// In the child process (started by the tests below under `prlimit`): an echo server with the
/// default `max_connections` (or [`MAX_ENV`]'s), logging warnings to stderr, printing its port, serving until its
/// stdin closes. In the normal test run: nothing.
#[test]
fn child_server() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Warn)
        .target(env_logger::Target::Stderr)
        .init();
    let mut server = Server::bind("127.0.0.1:0").unwrap();
    if let Some(max) = std::env::var(MAX_ENV).ok().and_then(|v| v.parse().ok()) {
        server = server.max_connections(max);
    }
    let server = server
        .start(|ws| {
            while let Some(msg) = ws.recv()? {
                ws.send(msg)?;
            }
            Ok(())
        })
        .unwrap();
    println!("port={}", server.local_addr().port());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    server.shutdown();
}

/// A server in a child process whose file descriptor limit is [`CHILD_FDS`].
struct Child256 {
    child: Child,
    addr: SocketAddr,
}

impl Child256 {
    fn start(max_connections: Option<usize>) -> Child256 {
        let mut command = Command::new("prlimit");
        if let Some(max) = max_connections {
            command.env(MAX_ENV, max.to_string());
        }
        let mut child = command
            .arg(format!("--nofile={CHILD_FDS}:{CHILD_FDS}"))
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "child_server", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prlimit (util-linux) runs the child server");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        // Bounded: a child that never prints its port exits (panics) or is killed by the
        // harness's timeout; its stdout ends either way.
        let port = loop {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
            // libtest's "test child_server ... " comes first, on the same line.
            let last = line.split_whitespace().last().unwrap_or("");
            if let Some(port) = last
                .strip_prefix("port=")
                .and_then(|p| p.parse::<u16>().ok())
            {
                break port;
            }
        };
        Child256 {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// Stops the child and returns what it logged.
    fn stop(mut self) -> String {
        drop(self.child.stdin.take());
        let mut log = String::new();
        let _ = self.child.stderr.take().unwrap().read_to_string(&mut log);
        let _ = self.child.wait();
        log
    }
}

/// Opens a WebSocket by hand and returns its answer's status (and `Retry-After`).
fn open(addr: SocketAddr) -> (Http, u16, Option<String>) {
    let mut conn = Http::connect(addr);
    let reply = conn.exchange(upgrade("/", ""));
    let retry = reply.header("retry-after").map(str::to_owned);
    (conn, reply.status, retry)
}

/// Opens more clients than fit in [`CHILD_FDS`]: each gets `101` or `503` with `Retry-After`
/// (a hang fails the read, which has raw_http's timeout); once they leave, the server serves
/// again. Returns (accepted, refused, the server's warnings about descriptors).
fn overfill(server: Child256) -> (u32, u32, usize) {
    const CLIENTS: u32 = CHILD_FDS + 60;
    let mut open_ones = Vec::new();
    let (mut accepted, mut busy) = (0, 0);
    for i in 0..CLIENTS {
        let (conn, status, retry) = open(server.addr);
        match status {
            101 => {
                accepted += 1;
                open_ones.push(conn);
            }
            503 => {
                busy += 1;
                assert!(retry.is_some(), "client {i}: 503 without Retry-After");
            }
            other => panic!("client {i}: status {other}"),
        }
    }
    assert!(accepted > 0 && accepted < CHILD_FDS, "{accepted} accepted");
    assert_eq!(accepted + busy, CLIENTS);
    drop(open_ones);
    assert!(
        wait_until(Duration::from_secs(10), || open(server.addr).1 == 101),
        "the server does not serve again after its clients left"
    );
    let log = server.stop();
    let warnings = log
        .lines()
        .filter(|l| l.contains("file descriptors") || l.contains("Too many open files"))
        .count();
    assert!(warnings <= 1, "{warnings} warnings:\n{log}");
    println!("{accepted} accepted, {busy} refused with 503; {warnings} fd warnings");
    (accepted, busy, warnings)
}

/// With the default `max_connections` and 256 file descriptors, clients beyond what fits get
/// `503` with `Retry-After` instead of waiting unanswered in the backlog while `accept` fails
/// with EMFILE (the old default of 10,000 let it run out); the server never runs out.
#[test]
fn the_default_limit_fits_the_file_descriptors() {
    let (accepted, _, warnings) = overfill(Child256::start(None));
    assert_eq!(accepted, 160, "256 - 32 lingering - 32 - 32");
    assert_eq!(warnings, 0);
}

/// With `max_connections` set above what the descriptors allow, `accept` does fail with EMFILE:
/// the server warns once (not per failure, as it did) and answers the clients in the backlog
/// `503` through its spare descriptor instead of leaving them waiting.
#[test]
fn out_of_file_descriptors_clients_get_503_not_a_hang() {
    let (_, _, warnings) = overfill(Child256::start(Some(10_000)));
    assert_eq!(warnings, 1);
}
