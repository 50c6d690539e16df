//! Connection limits over real loopback sockets: the global cap (503 with Retry-After), the
//! per-IP cap and rate limit (429), the peer filter, and X-Forwarded-For from trusted proxies,
//! which decides whose address the per-IP cap counts.

mod raw_http;
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use raw_http::{End, Http, upgrade, wait_until};
use support::*;
use syncws::{Client, CloseCode, Server};

// ------------------------------------------------------------------ connection limits

/// Opens a raw connection, sends an upgrade request and reads the refusal.
fn refused(addr: SocketAddr) -> raw_http::Reply {
    let mut c = Http::connect(addr);
    let r = c.exchange(upgrade("/", ""));
    assert_eq!(
        c.end(PROMPTLY),
        End::Closed,
        "refused connections are closed"
    );
    r
}

#[test]
fn max_connections_answers_503_with_retry_after() {
    let server = start(bind().max_connections(2));
    let mut a = Client::connect(&url(&server, "/")).unwrap();
    let mut b = Client::connect(&url(&server, "/")).unwrap();
    echo_once(&mut a, "a");
    echo_once(&mut b, "b");
    let r = refused(server.local_addr());
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    assert_eq!(server.connections(), 2);

    // A slot frees when a connection ends.
    a.close(CloseCode::NORMAL, "").unwrap();
    assert!(wait_until(PROMPTLY, || server.connections() == 1));
    let mut c = Client::connect(&url(&server, "/")).unwrap();
    echo_once(&mut c, "c");
    echo_once(&mut b, "b again");
    server.shutdown();
}

/// A refused client's socket lingers: the server reads and discards what the client still
/// sends for a while instead of closing at once, which would answer those bytes with a TCP
/// reset (and can cost a client that reads late its answer). Here the client reads the 503 to
/// its end, then sends more, three times, 100 ms apart: every write goes through, where a
/// socket the server had closed would have answered the first or second with a reset, which
/// fails the write after it.
#[test]
fn a_refused_connection_lingers_reading_what_the_client_still_sends() {
    use std::io::{Read, Write};
    let server = start(bind().max_connections(0));
    let mut tcp = std::net::TcpStream::connect(server.local_addr()).unwrap();
    tcp.set_read_timeout(Some(PROMPTLY)).unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 503 "), "{answer:?}");
    tcp.write_all(upgrade("/", "").as_bytes()).unwrap();
    for _ in 0..2 {
        thread::sleep(Duration::from_millis(100));
        let late = tcp.write_all(b"more of a body");
        assert!(late.is_ok(), "the server reset the connection: {late:?}");
    }
    server.shutdown();
}

#[test]
fn per_ip_cap_answers_429() {
    let server = start(bind().max_connections_per_ip(1));
    let mut a = Client::connect(&url(&server, "/")).unwrap();
    echo_once(&mut a, "a");
    let r = refused(server.local_addr());
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    a.close(CloseCode::NORMAL, "").unwrap();
    assert!(wait_until(PROMPTLY, || server.connections() == 0));
    let mut b = Client::connect(&url(&server, "/")).unwrap();
    echo_once(&mut b, "b");
    server.shutdown();
}

#[test]
fn rate_limit_answers_429_within_the_window_even_after_earlier_connections_ended() {
    let server = start(bind().rate_limit(2, Duration::from_secs(60)));
    for i in 0..2 {
        let mut ws = Client::connect(&url(&server, "/")).unwrap();
        echo_once(&mut ws, &i.to_string());
        ws.close(CloseCode::NORMAL, "").unwrap();
    }
    assert!(wait_until(PROMPTLY, || server.connections() == 0));
    let r = refused(server.local_addr());
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        refused_status(Client::connect(&url(&server, "/"))),
        429,
        "the syncws client sees it too"
    );
    server.shutdown();
}

#[test]
fn rate_limit_retry_after_is_when_the_window_frees_a_slot() {
    let server = start(bind().rate_limit(1, Duration::from_secs(60)));
    let mut ws = Client::connect(&url(&server, "/")).unwrap();
    echo_once(&mut ws, "first");
    let r = refused(server.local_addr());
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u32 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((58..=60).contains(&retry), "Retry-After: {retry}");
    server.shutdown();

    // The same for a client behind a trusted proxy, counted once its request has arrived.
    let proxied = bind()
        .trusted_proxies(["127.0.0.1".parse().unwrap()])
        .rate_limit(1, Duration::from_secs(60));
    let proxied = start(proxied);
    let xff = "X-Forwarded-For: 203.0.113.9\r\n";
    let mut ws = Client::builder()
        .no_proxy()
        .header("X-Forwarded-For", "203.0.113.9")
        .connect(&url(&proxied, "/"))
        .unwrap();
    echo_once(&mut ws, "first");
    let r = Http::connect(proxied.local_addr()).exchange(upgrade("/", xff));
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u32 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((58..=60).contains(&retry), "Retry-After: {retry}");
    proxied.shutdown();
}

#[test]
fn retry_after_of_the_503_and_the_per_ip_429_is_configurable() {
    let default = start(bind().max_connections(0));
    assert_eq!(
        refused(default.local_addr()).header("retry-after"),
        Some("5")
    );
    default.shutdown();

    let full = start(
        bind()
            .max_connections(0)
            .retry_after(Duration::from_secs(7)),
    );
    let r = refused(full.local_addr());
    assert_eq!((r.status, r.header("retry-after")), (503, Some("7")));
    full.shutdown();

    let per_ip = bind()
        .max_connections_per_ip(1)
        .retry_after(Duration::from_millis(8_500));
    let per_ip = start(per_ip);
    let mut ws = Client::connect(&url(&per_ip, "/")).unwrap();
    echo_once(&mut ws, "held");
    let r = refused(per_ip.local_addr());
    assert_eq!((r.status, r.header("retry-after")), (429, Some("9")));
    per_ip.shutdown();
}

#[test]
fn peer_filter_closes_without_a_byte() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handled = Arc::new(AtomicUsize::new(0));
    let (seen2, handled2) = (Arc::clone(&seen), Arc::clone(&handled));
    let server = bind()
        .peer_filter(move |peer| {
            seen2.lock().unwrap().push(peer);
            false
        })
        .start(move |_| {
            handled2.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    let mut c = Http::connect(server.local_addr());
    let me = c.stream.local_addr().unwrap();
    c.send(upgrade("/", ""));
    // `end` fails the test on any byte from the server.
    assert_eq!(c.end(PROMPTLY), End::Closed);
    assert_eq!(*seen.lock().unwrap(), vec![me], "the filter saw the peer");
    assert_eq!(handled.load(Ordering::SeqCst), 0);
    assert_eq!(server.connections(), 0);
    server.shutdown();
}

// ------------------------------------------------------------------ trusted proxies

#[test]
fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    let start = |trusted: &str| {
        let server = Server::bind("127.0.0.1:0")
            .unwrap()
            .trusted_proxies([trusted.parse().unwrap()])
            .max_connections_per_ip(1)
            .http(|req| syncws::Response::text(200, format!("{:?}", req.peer_addr())));
        let addr = server.local_addr();
        thread::spawn(move || {
            server.serve(|ws| {
                ws.send(format!("{:?}", ws.peer_addr()))?;
                while let Some(m) = ws.recv()? {
                    ws.send(m)?;
                }
                Ok(())
            })
        });
        addr
    };
    let via = |addr: SocketAddr, xff: &str| {
        syncws::Client::builder()
            .no_proxy()
            .header("X-Forwarded-For", xff)
            .connect(&format!("ws://{addr}/"))
    };
    let first = |ws: &mut syncws::WebSocket| ws.recv().unwrap().unwrap().into_text().unwrap();
    let addr = start("127.0.0.1");
    let mut a = via(addr, "203.0.113.9").unwrap();
    assert_eq!(first(&mut a), "Some(203.0.113.9:0)");
    // The per-IP limit (1) counts the forwarded client, not the proxy...
    match via(addr, "203.0.113.9") {
        Err(syncws::Error::Http(r)) => assert_eq!(r.status, 429),
        other => panic!("expected 429, got {other:?}"),
    }
    // ... so another client through the same proxy is let in.
    let mut b = via(addr, "198.51.100.7").unwrap();
    assert_eq!(first(&mut b), "Some(198.51.100.7:0)");
    // Entries left of the last untrusted one are whatever the client wrote: ignored.
    let mut c = via(addr, "6.6.6.6, 192.0.2.1").unwrap();
    assert_eq!(first(&mut c), "Some(192.0.2.1:0)");
    // When the first client leaves, its count is released.
    a.close(syncws::CloseCode::NORMAL, "").unwrap();
    let mut again = None;
    assert!(wait_until(Duration::from_secs(3), || {
        again = via(addr, "203.0.113.9").ok();
        again.is_some()
    }));
    assert_eq!(first(again.as_mut().unwrap()), "Some(203.0.113.9:0)");
    // Plain HTTP sees the forwarded address too.
    let reply = Http::connect(addr)
        .exchange("GET / HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 192.0.2.77\r\n\r\n");
    assert_eq!(reply.text(), "Some(192.0.2.77:0)");
    // From an address that is not a trusted proxy, the header is ignored.
    let untrusting = start("127.0.0.2");
    let mut d = via(untrusting, "203.0.113.9").unwrap();
    let seen = first(&mut d);
    assert!(seen.starts_with("Some(127.0.0.1:"), "{seen}");
    drop((b, c));
}
