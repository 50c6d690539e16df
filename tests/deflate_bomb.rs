//! Decompression bombs over a real socket: a few kilobytes on the wire that inflate to 10 MB
//! (and to 1 GiB) against a 1 MiB message limit. The server must close with 1009, and the heap
//! of this process (server and raw client together) must never grow by more than the limit
//! plus a little: the message is refused while inflating, before memory grows. One test in its
//! own binary, so no other test's allocations blur the peak.

#![cfg(feature = "deflate")]

mod heap;
mod support;

use support::*;
use syncws::{Config, DeflateConfig};

#[global_allocator]
static GLOBAL: heap::Peak = heap::Peak;

const LIMIT: usize = 1 << 20;
/// What besides the message may be live at the peak: the decompressor (about 40 KiB), a read
/// buffer, the compressed input piece (64 KiB), a connection thread's bookkeeping.
const SLACK: usize = 512 << 10;

/// Sends `frames` to a fresh connection and returns the close code and the heap's growth at
/// its peak while the server received them.
fn detonate(addr: std::net::SocketAddr, frames: &[Frame]) -> (Option<u16>, usize) {
    let (mut raw, head) =
        RawConn::connect_with_headers(addr, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    assert!(head_header(&head, "sec-websocket-extensions").is_some());
    let wire: Vec<u8> = frames.iter().flat_map(Frame::to_bytes).collect();
    let base = heap::mark();
    raw.write_raw(&wire);
    let code = raw.expect_close();
    let peak = heap::growth_since(base);
    drop(wire);
    (code, peak)
}

#[test]
fn bombs_are_refused_with_1009_before_memory_grows() {
    let config = Config::default()
        .max_message_size(LIMIT)
        .deflate(Some(DeflateConfig::default()));
    let addr = echo_server_with(config);

    // 10 MB of zeros in one frame.
    let ten_mb = zero_bomb(10 << 20, 10 << 20);
    assert!(
        ten_mb.len() < 16 << 10,
        "{} bytes on the wire",
        ten_mb.len()
    );
    let (code, peak) = detonate(addr, &[Frame::binary(&ten_mb).rsv(0b100)]);
    println!(
        "10 MB bomb: {} bytes on the wire, heap peak +{} KiB",
        ten_mb.len(),
        peak >> 10
    );
    assert_eq!(code, Some(1009));
    assert!(peak < LIMIT + SLACK, "heap grew by {peak} bytes");

    // The same as text, in 1 KB fragments (UTF-8 is checked on the inflated zeros too).
    let frames: Vec<Frame> = ten_mb
        .chunks(1024)
        .enumerate()
        .map(|(i, c)| {
            let f = if i == 0 {
                Frame::text(c).rsv(0b100)
            } else {
                Frame::cont(c)
            };
            f.fin((i + 1) * 1024 >= ten_mb.len())
        })
        .collect();
    let (code, peak) = detonate(addr, &frames);
    println!(
        "10 MB bomb in {} fragments: heap peak +{} KiB",
        frames.len(),
        peak >> 10
    );
    assert_eq!(code, Some(1009));
    assert!(peak < LIMIT + SLACK, "heap grew by {peak} bytes");

    // 1 GiB of zeros from about a megabyte on the wire.
    let gib = zero_bomb(1 << 30, 8 << 20);
    let (code, peak) = detonate(addr, &[Frame::binary(&gib).rsv(0b100)]);
    println!(
        "1 GiB bomb: {} KiB on the wire, heap peak +{} KiB",
        gib.len() >> 10,
        peak >> 10
    );
    assert_eq!(code, Some(1009));
    assert!(peak < LIMIT + SLACK, "heap grew by {peak} bytes");

    // A message just under the limit still goes through on the same server.
    let (mut raw, _) =
        RawConn::connect_with_headers(addr, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    let fits = zero_bomb(LIMIT - 1024, LIMIT - 1024);
    raw.send(&Frame::binary(&fits).rsv(0b100));
    let echo = raw.read_frame();
    assert_eq!((echo.opcode, echo.rsv), (BINARY, 0b100));
    raw.send(&Frame::close(1000, ""));
    assert_eq!(raw.expect_close(), Some(1000));
}
