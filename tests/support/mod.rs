//! Helpers shared by the integration tests, by concern: servers on port 0 ([`server`]), frames
//! built and read byte by byte ([`frames`]), the HTTP side of a hand-made upgrade
//! ([`http_head`]), raw peers that speak WebSocket by hand so tests can send exactly what a
//! well-behaved library never would ([`raw_peer`]), payloads ([`payloads`]), external daemons
//! such as tinyproxy ([`daemon`]) or nginx ([`nginx`]), what the library logged ([`logs`]), a hand-written
//! SOCKS5 server ([`socks`]), what a thread has cost ([`threads`]), `wss://` peers on the test
//! certificate ([`tls`]), a real `redis-server` with a raw RESP client ([`redis_server`])
//! and child runs of a test binary ([`child`]). Everything is re-exported: `use support::*;`.

// Each test file uses a different subset of these helpers.
#![allow(dead_code, unused_imports)]

mod child;
mod daemon;
mod frames;
mod http_head;
mod logs;
mod nginx;
mod payloads;
mod raw_peer;
mod redis_server;
mod rooms;
mod server;
mod socks;
mod threads;
#[cfg(any(feature = "tls", feature = "rustls"))]
mod tls;

pub use child::*;
pub use daemon::*;
pub use frames::*;
pub use http_head::*;
pub use logs::*;
pub use nginx::*;
pub use payloads::*;
pub use raw_peer::*;
pub use redis_server::*;
pub use rooms::*;
pub use server::*;
pub use socks::*;
pub use threads::*;
#[cfg(any(feature = "tls", feature = "rustls"))]
pub use tls::*;

use std::net::TcpStream;
use std::time::Duration;

/// How long any blocking read in a test may wait before the test fails instead of hanging.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How long a peer may take to end TCP after the closing handshake: less than the default close
/// timeout (5 s), so a server that lingers until its timeout instead of closing fails the test.
pub const EOF_WITHIN: Duration = Duration::from_secs(3);

/// Sets both socket timeouts to [`TIMEOUT`] so a broken build fails instead of hanging.
pub fn guard(stream: &TcpStream) {
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
}
