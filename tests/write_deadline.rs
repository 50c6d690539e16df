//! `Config::write_timeout` is a total for one frame's write: against a peer that completed the
//! handshake and then never reads, a 64 MiB send fails with a timeout after the write timeout,
//! not later. Partial writes (the kernel grows its send buffer and takes a little more now and
//! then) must not restart the clock. Client, split writer and server side (plain and TLS), over
//! loopback.

mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{RawConn, raw_server, serve, ws_url};
use syncws::{Client, Config, Error, WebSocket};

const TIMEOUT: Duration = Duration::from_secs(1);
const SIZE: usize = 64 << 20;

fn config() -> Config {
    Config::default().write_timeout(Some(TIMEOUT))
}

/// Runs `send`, returning how long it took and what it returned.
fn timed(send: impl FnOnce() -> Result<(), Error>) -> (Duration, Result<(), Error>) {
    let started = Instant::now();
    let result = send();
    (started.elapsed(), result)
}

/// Checks that a send to a peer that never reads failed with a timeout within the bound.
fn check(side: &str, (took, result): (Duration, Result<(), Error>)) {
    println!(
        "{side}: a {} MiB send to a peer that never reads failed after {took:?} (write timeout \
         {TIMEOUT:?})",
        SIZE >> 20
    );
    let err = result.expect_err("the peer never reads; the send cannot finish");
    assert!(err.is_timeout(), "{side}: {err}");
    assert!(took >= TIMEOUT, "{side}: failed early, after {took:?}");
    assert!(
        took < TIMEOUT * 3 / 2,
        "{side}: failed after {took:?}, write timeout {TIMEOUT:?}"
    );
}

/// A client of a raw server that answers the handshake, then never reads until told to end.
fn client_of_stalled_peer() -> (WebSocket, mpsc::Sender<()>) {
    let (done, wait) = mpsc::channel::<()>();
    let (addr, _server) = raw_server(move |conn: RawConn| {
        let _ = wait.recv_timeout(Duration::from_secs(30));
        drop(conn);
    });
    let ws = Client::builder()
        .no_proxy()
        .config(config())
        .connect(&ws_url(addr, "/"))
        .unwrap();
    (ws, done)
}

#[test]
fn client_send_fails_within_the_write_timeout() {
    let (mut ws, done) = client_of_stalled_peer();
    let big = vec![0u8; SIZE];
    check("client", timed(|| ws.send(&big[..])));
    drop(done);
}

#[test]
fn split_writer_send_fails_within_the_write_timeout() {
    let (mut ws, done) = client_of_stalled_peer();
    let (_reader, writer) = ws.split().unwrap();
    let big = vec![0u8; SIZE];
    check("split writer", timed(|| writer.send(&big[..])));
    drop(done);
}

#[test]
fn server_send_fails_within_the_write_timeout() {
    let (report, results) = mpsc::channel();
    let addr = serve(config(), move |ws| {
        let big = vec![0u8; SIZE];
        let _ = report.send(timed(|| ws.send(&big[..])));
        Ok(())
    });
    let conn = RawConn::connect(addr);
    let outcome = results
        .recv_timeout(Duration::from_secs(30))
        .expect("the handler reports its send");
    check("server", outcome);
    drop(conn);
}

/// Over TLS the bound holds too: the server's handler sends to a wss client that never reads.
#[cfg(any(feature = "tls", feature = "rustls"))]
#[test]
fn server_send_over_tls_fails_within_the_write_timeout() {
    let fixture = |name: &str| format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let tls = syncws::ServerTls::from_pem_files(fixture("server.pem"), fixture("server.key"));
    let (report, results) = mpsc::channel();
    let server = syncws::Server::bind("127.0.0.1:0")
        .unwrap()
        .config(config())
        .tls(tls.unwrap());
    let addr = server.local_addr();
    std::thread::spawn(move || {
        server.serve(move |ws| {
            let big = vec![0u8; SIZE];
            let _ = report.send(timed(|| ws.send(&big[..])));
            Ok(())
        })
    });
    let client_tls = syncws::ClientTls::builder()
        .add_root_file(fixture("ca.pem"))
        .build()
        .unwrap();
    // Connected, and never reads.
    let ws = Client::builder()
        .tls(client_tls)
        .no_proxy()
        .connect(&format!("wss://localhost:{}/", addr.port()))
        .unwrap();
    let outcome = results
        .recv_timeout(Duration::from_secs(30))
        .expect("the handler reports its send");
    check("server over TLS", outcome);
    drop(ws);
}

/// Over TLS a send that reports success is on the wire: when the socket takes only part of a
/// record before the write timeout, the session keeps the rest, and the send must fail (its
/// flush), not succeed with bytes that never leave. The client sends one-record messages to a
/// server that reads nothing until the client gave up; then the server reads, and finds
/// exactly the messages the client was told went, whole and in order.
#[cfg(any(feature = "tls", feature = "rustls"))]
#[test]
fn over_tls_every_send_reported_done_arrives() {
    support::check_every_send_reported_done_arrives(|port, config| {
        support::test_ca_client()
            .config(config)
            .connect(&format!("wss://localhost:{port}/"))
            .unwrap()
    });
}
