//! Decompression bombs over a real socket: a few kilobytes on the wire that inflate to 10 MB
//! (and to 1 GiB) against a 1 MiB message limit. The server must close with 1009, and the heap
//! of this process (server and raw client together) must never grow by more than the limit
//! plus a little: the message is refused while inflating, before memory grows. One test in its
//! own binary, so no other test's allocations blur the peak.

#![cfg(feature = "deflate")]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use support::*;
use syncws::proto::deflate::Compressor;
use syncws::{Config, DeflateConfig};

/// Tracks live heap bytes and their high-water mark.
struct Peak;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grew(by: isize) {
    let now = LIVE.fetch_add(by, Ordering::SeqCst) + by;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size() as isize);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        grew(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Peak = Peak;

const LIMIT: usize = 1 << 20;
/// What besides the message may be live at the peak: the decompressor (about 40 KiB), a read
/// buffer, the compressed input piece (64 KiB), a connection thread's bookkeeping.
const SLACK: usize = 512 << 10;

/// `total` zero bytes compressed as one message, `piece` bytes at a time (each piece flushed,
/// the tail stripped at the end), as a hostile peer would build it without holding it all.
fn zero_bomb(total: usize, piece: usize) -> Vec<u8> {
    let zeros = vec![0u8; piece];
    let mut c = Compressor::new(15, 9, true);
    let mut out = Vec::new();
    let pieces = total / piece;
    for i in 0..pieces {
        c.compress(&zeros, i + 1 == pieces, &mut out).unwrap();
    }
    out
}

/// Sends `frames` to a fresh connection and returns the close code and the heap's growth at
/// its peak while the server received them.
fn detonate(addr: std::net::SocketAddr, frames: &[Frame]) -> (Option<u16>, usize) {
    let (mut raw, head) =
        RawConn::connect_with_headers(addr, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    assert!(head_header(&head, "sec-websocket-extensions").is_some());
    let wire: Vec<u8> = frames.iter().flat_map(Frame::to_bytes).collect();
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    raw.write_raw(&wire);
    let code = raw.expect_close();
    let peak = PEAK.load(Ordering::SeqCst) - base;
    drop(wire);
    (code, peak.max(0) as usize)
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
