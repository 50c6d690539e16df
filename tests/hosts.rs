//! DNS rebinding over real loopback sockets: a server bound to a loopback address answers only
//! loopback `Host` names unless `allowed_hosts` names others, for WebSocket upgrades and plain
//! HTTP alike; requests from a trusted proxy are not checked.

mod raw_http;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use raw_http::{Http, Reply};
use syncws::{Response, Server, ServerHandle};

fn start(setup: impl FnOnce(Server) -> Server) -> ServerHandle {
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .http(|_| Response::text(200, "page\n"));
    setup(server).start(|_| Ok(())).unwrap()
}

/// A browser's upgrade request for a page on `host`: `Host` and a same-origin `Origin`.
fn browser_upgrade(addr: SocketAddr, host: &str) -> Reply {
    Http::connect(addr).exchange(format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    ))
}

/// A browser's plain fetch from a page on `host`.
fn browser_get(addr: SocketAddr, host: &str) -> Reply {
    Http::connect(addr).exchange(format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n\r\n"
    ))
}

fn assert_refused(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 403, "{what}: {reply:?}");
    assert!(
        reply.text().contains("allowed_hosts"),
        "{what}: {}",
        reply.text()
    );
}

/// `attacker.example` resolving to 127.0.0.1: same-origin with itself, so only `Host` gives it
/// away. Both the upgrade and a plain fetch (which a rebound page could read) are refused; they
/// were let in before.
#[test]
fn a_rebound_name_is_refused_by_a_loopback_server() {
    let server = start(|s| s);
    let addr = server.local_addr();
    for host in [
        "attacker.example".to_owned(),
        format!("attacker.example:{}", addr.port()),
    ] {
        assert_refused(&browser_upgrade(addr, &host), &host);
        assert_refused(&browser_get(addr, &host), &host);
    }
    server.shutdown();
}

#[test]
fn loopback_names_are_accepted() {
    let server = start(|s| s);
    let addr = server.local_addr();
    let port = addr.port();
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "[::1]".to_owned(),
        format!("[::1]:{port}"),
        "localhost".to_owned(),
    ] {
        assert_eq!(browser_upgrade(addr, &host).status, 101, "{host}");
        assert_eq!(browser_get(addr, &host).status, 200, "{host}");
    }
    server.shutdown();
}

#[test]
fn allowed_hosts_names_the_servers_own_names() {
    let server = start(|s| s.allowed_hosts(["app.example"]));
    let addr = server.local_addr();
    assert_eq!(browser_upgrade(addr, "app.example").status, 101);
    assert_eq!(browser_get(addr, "app.example:8080").status, 200);
    assert_refused(&browser_upgrade(addr, "attacker.example"), "attacker");
    // The list replaces the default.
    assert_refused(&browser_get(addr, "localhost"), "localhost");
    server.shutdown();
}

/// A proxy on the same host forwards the public name; it is the proxy's job to check it.
#[test]
fn requests_from_a_trusted_proxy_are_not_checked() {
    let server = start(|s| s.trusted_proxies([IpAddr::from(Ipv4Addr::LOCALHOST)]));
    let addr = server.local_addr();
    assert_eq!(browser_upgrade(addr, "app.example").status, 101);
    assert_eq!(browser_get(addr, "app.example").status, 200);
    server.shutdown();
}
