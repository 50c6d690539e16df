//! Admission under load over real loopback sockets: many client addresses behind a trusted
//! proxy, and a server that runs out of file descriptors.

mod raw_http;

use std::net::{IpAddr, Ipv4Addr};

use raw_http::Http;
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
