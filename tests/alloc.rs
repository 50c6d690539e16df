//! The hot loop allocates nothing: after warm-up, sending with `send(&[u8])` and receiving with
//! `recv_into` a reused buffer performs zero heap allocations per message on the client thread,
//! a client's large sends (masked piece by piece) allocate nothing either, and a server sends a
//! large message without copying it.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use support::{echo_server, tcp_pair, ws_url};
use syncws::{Client, Config, MessageKind, Role, WebSocket};

/// Counts allocations made by the current thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the thread-local may already be gone while a thread shuts down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn send_and_recv_into_allocate_nothing_per_message() {
    let addr = echo_server();
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    let sizes: Vec<usize> = (0..1000).map(|i| (i * 37) % 3000).collect();
    let payload: Vec<u8> = (0..3000).map(|i| i as u8).collect();
    let mut buf = Vec::new();
    // Warm-up: both of the receiver's buffers and the sender's reach their largest size.
    for _ in 0..3 {
        ws.send(&payload[..]).unwrap();
        assert_eq!(ws.recv_into(&mut buf).unwrap(), Some(MessageKind::Binary));
    }
    let before = allocations();
    for &n in &sizes {
        ws.send(&payload[..n]).unwrap();
        assert_eq!(ws.recv_into(&mut buf).unwrap(), Some(MessageKind::Binary));
        assert_eq!(buf, payload[..n]);
    }
    let during = allocations() - before;
    assert_eq!(
        during,
        0,
        "{during} allocations for {} round trips",
        sizes.len()
    );

    ws.send("text too").unwrap();
    assert_eq!(ws.recv_into(&mut buf).unwrap(), Some(MessageKind::Text));
    assert_eq!(buf, b"text too");
}

/// A client masks a message larger than its copy buffer piece by piece through that one
/// buffer: once it has grown, large sends allocate nothing either, whatever their size. (The
/// receiver may give memory back after a large message, so only the sends are counted.)
#[test]
fn large_client_sends_reuse_one_bounded_buffer() {
    let addr = echo_server();
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    let payload: Vec<u8> = (0..(1usize << 20)).map(|i| (i % 251) as u8).collect();
    let mut buf = Vec::new();
    ws.send(&payload[..]).unwrap();
    assert_eq!(ws.recv_into(&mut buf).unwrap(), Some(MessageKind::Binary));
    let sizes = [20 << 10, 64 << 10, 1 << 20, 100 << 10, 40_000, 300 << 10];
    let mut sending = 0;
    for &n in sizes.iter().cycle().take(30) {
        let before = allocations();
        ws.send(&payload[..n]).unwrap();
        sending += allocations() - before;
        assert_eq!(ws.recv_into(&mut buf).unwrap(), Some(MessageKind::Binary));
        assert!(buf == payload[..n], "the echo of {n} bytes differs");
    }
    assert_eq!(sending, 0, "{sending} allocations in 30 large sends");
}

/// With permessage-deflate, a client's steady sends allocate nothing either: the compressor
/// and its output buffer are kept from one message to the next.
#[cfg(feature = "deflate")]
#[test]
fn compressed_client_sends_allocate_nothing_per_message() {
    let config = Config::default().deflate(Some(syncws::DeflateConfig::default()));
    let addr = support::echo_server_with(config.clone());
    let mut ws = Client::builder()
        .no_proxy()
        .config(config)
        .connect(&ws_url(addr, "/"))
        .unwrap();
    let text = "the quick brown fox jumps over the lazy dog; ".repeat(100);
    let mut buf = Vec::new();
    for _ in 0..3 {
        ws.send(&text[..]).unwrap();
        assert_eq!(ws.recv_into(&mut buf).unwrap(), Some(MessageKind::Text));
    }
    let mut sending = 0;
    for i in 0..200 {
        let n = (i * 37) % text.len();
        let before = allocations();
        ws.send(&text[..n]).unwrap();
        sending += allocations() - before;
        assert_eq!(ws.recv_into(&mut buf).unwrap(), Some(MessageKind::Text));
        assert!(buf == text.as_bytes()[..n], "the echo of {n} bytes differs");
    }
    assert_eq!(sending, 0, "{sending} allocations in 200 compressed sends");
}

#[test]
fn recv_allocates_once_per_message() {
    let addr = echo_server();
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    ws.send(&[1u8; 100][..]).unwrap();
    ws.recv().unwrap();
    let before = allocations();
    for _ in 0..100 {
        ws.send(&[7u8; 100][..]).unwrap();
        let msg = ws.recv().unwrap().unwrap();
        assert_eq!(msg.len(), 100);
    }
    let per_message = (allocations() - before) as f64 / 100.0;
    assert!(
        per_message <= 1.0,
        "{per_message} allocations per received message"
    );
}

/// A large message from a server (unmasked) goes out without being copied: the header and the
/// caller's payload leave in one vectored write, and sending 1 MiB allocates nothing.
#[test]
fn a_large_server_send_is_not_copied() {
    use std::io::Read;
    let (tcp, mut peer) = tcp_pair();
    let draining = std::thread::spawn(move || {
        let mut total = 0;
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n @ 1..) = peer.read(&mut buf) {
            total += n;
        }
        total
    });
    let mut ws = WebSocket::from_stream(tcp, Role::Server, Config::default(), &[]);
    let payload = vec![7u8; 1 << 20];
    ws.send(&payload[..]).unwrap();
    let before = allocations();
    for _ in 0..3 {
        ws.send(&payload[..]).unwrap();
    }
    let during = allocations() - before;
    assert_eq!(during, 0, "{during} allocations for three 1 MiB sends");
    drop(ws);
    // Four frames of 1 MiB with a 10-byte header each, and the 1001 close frame.
    assert_eq!(draining.join().unwrap(), 4 * ((1 << 20) + 10) + 4);
}
