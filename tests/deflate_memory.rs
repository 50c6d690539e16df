//! What compression costs a server per idle connection, on the heap of this process: 60 raw
//! clients that compress as browsers do (context takeover) each send one 16 KiB message and
//! read its compressed echo, then stay connected. With the default `DeflateConfig` the server
//! holds only the decompressor that the client's context needs (about 46 KiB) beyond what the
//! same connections cost without compression; with context takeover on our side too it also
//! holds a compressor (about 370 KiB), which the test measures as well so it can tell the two.

#![cfg(feature = "deflate")]

#[allow(dead_code)] // growth_since is for the peak tests
mod heap;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use syncws::proto::deflate::Compressor;
use syncws::{Config, DeflateConfig};

#[global_allocator]
static GLOBAL: heap::Peak = heap::Peak;

const CONNECTIONS: usize = 60;
const RSV1: u8 = 0b100;
/// The bar: compression state a server connection holds between messages at the defaults.
const STATE_BAR: usize = 64 << 10;

fn server(deflate: Option<DeflateConfig>) -> SocketAddr {
    serve(Config::default().deflate(deflate), echo)
}

/// Heap bytes per connection that `CONNECTIONS` idle connections hold, each after one echo of
/// `msg`, compressed as a context-keeping client compresses it when `compressed`.
fn held_per_connection(addr: SocketAddr, compressed: bool, msg: &str) -> usize {
    let offer = if compressed {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    } else {
        ""
    };
    let frame = if compressed {
        let mut z = Vec::new();
        Compressor::new(15, 6, false)
            .compress(msg.as_bytes(), true, &mut z)
            .unwrap();
        Frame::text(z).rsv(RSV1)
    } else {
        Frame::text(msg)
    };
    let echo_once = |raw: &mut RawConn| {
        raw.send(&frame);
        let f = raw.read_frame();
        assert_eq!(f.rsv != 0, compressed);
        // the client's buffers are the test's, not the server's
        raw.buf = Vec::new();
    };
    // one connection first, so one-time costs (the pool's compressor, the logger) are paid
    let (mut warm, _) = RawConn::connect_with_headers(addr, offer);
    echo_once(&mut warm);
    std::thread::sleep(Duration::from_millis(100));
    let before = heap::mark();
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let (mut raw, _) = RawConn::connect_with_headers(addr, offer);
        echo_once(&mut raw);
        conns.push(raw);
    }
    std::thread::sleep(Duration::from_millis(200));
    let after = heap::mark();
    let per = (after - before).max(0) as usize / CONNECTIONS;
    drop(conns);
    drop(warm);
    per
}

#[test]
fn a_default_server_holds_at_most_64_kib_of_compression_state_per_connection() {
    let msg = varied_text(16 << 10);
    let plain = held_per_connection(server(None), false, &msg);
    let defaults = held_per_connection(server(Some(DeflateConfig::default())), true, &msg);
    let takeover = held_per_connection(
        server(Some(DeflateConfig::default().no_context_takeover(false))),
        true,
        &msg,
    );
    eprintln!(
        "heap per idle connection: {} KiB plain, {} KiB deflate defaults, {} KiB with context takeover",
        plain >> 10,
        defaults >> 10,
        takeover >> 10
    );
    let state = defaults.saturating_sub(plain);
    assert!(
        state <= STATE_BAR,
        "defaults hold {} KiB of compression state per connection",
        state >> 10
    );
    // the decompressor is there (the client keeps its context), the compressor is not
    assert!(state >= 32 << 10, "{} KiB", state >> 10);
    assert!(
        takeover.saturating_sub(plain) > 300 << 10,
        "context takeover: {} KiB",
        takeover.saturating_sub(plain) >> 10
    );
}
