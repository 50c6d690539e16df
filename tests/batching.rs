//! Batching (`feed`): answers to pipelined messages reach the kernel in a few writes instead of
//! one per message, over a real loopback socket whose server side counts its write calls; fed
//! messages go out before a receive waits, before a `send`, when the socket is dropped, and
//! when the queue would pass its limit.

mod support;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use support::*;
use syncws::{Config, Role, Transport, WebSocket};

/// A TCP stream that counts the write calls made on it.
struct Counted {
    tcp: TcpStream,
    writes: Arc<AtomicUsize>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.tcp.write(buf)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.tcp.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Counted {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_read_timeout(timeout)
    }
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_write_timeout(timeout)
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.tcp.shutdown(std::net::Shutdown::Write)
    }
}

/// A server on loopback that upgrades one connection by hand and runs `handler` on a socket
/// over a [`Counted`] stream; returns the address and the write counter.
fn counted_server<F>(
    handler: F,
) -> (
    std::net::SocketAddr,
    Arc<AtomicUsize>,
    thread::JoinHandle<()>,
)
where
    F: FnOnce(&mut WebSocket<Counted>) + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let writes = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&writes);
    let server = thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        guard(&tcp);
        let mut buf = Vec::new();
        let head = read_head(&mut tcp, &mut buf);
        let key = head_header(&head, "sec-websocket-key").expect("a key");
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        tcp.write_all(response.as_bytes()).unwrap();
        let stream = Counted {
            tcp,
            writes: counter,
        };
        let mut ws = WebSocket::from_stream(stream, Role::Server, Config::default(), &buf);
        handler(&mut ws);
    });
    (addr, writes, server)
}

/// Sends `n` numbered text messages in one write (pipelined), then reads `n` answers.
fn pipeline(raw: &mut RawConn, n: usize) {
    let requests: Vec<Frame> = (0..n).map(|i| Frame::text(format!("req {i}"))).collect();
    raw.write_raw(&frames(&requests));
    for i in 0..n {
        let f = raw.read_frame();
        assert_eq!((f.opcode, f.fin), (TEXT, true));
        assert_eq!(f.payload, format!("req {i}").as_bytes());
    }
}

/// An echo server that answers with `send` or with `feed`; how many writes the server made for
/// 50 pipelined messages.
fn writes_for_50(batched: bool) -> usize {
    let (addr, writes, server) = counted_server(move |ws| {
        while let Ok(Some(msg)) = ws.recv() {
            let answered = if batched {
                ws.feed(&msg)
            } else {
                ws.send(&msg)
            };
            answered.unwrap();
        }
    });
    let mut raw = RawConn::connect(addr);
    pipeline(&mut raw, 50);
    let counted = writes.load(Ordering::SeqCst);
    raw.send(&Frame::close(1000, ""));
    assert_eq!(raw.read_close().close_code(), Some(1000));
    server.join().unwrap();
    counted
}

#[test]
fn pipelined_answers_go_out_in_a_few_writes_when_fed() {
    let sent = writes_for_50(false);
    let fed = writes_for_50(true);
    eprintln!("50 pipelined echoes: {sent} writes with send, {fed} with feed");
    // send: each message reaches the kernel before it returns, one write each.
    assert_eq!(sent, 50);
    // feed: the 50 requests arrive in one or a few reads; each read's answers go out together.
    assert!(fed <= 5, "{fed} writes");
}

#[test]
fn fed_messages_go_out_before_a_send_and_when_the_socket_is_dropped() {
    let (addr, writes, server) = counted_server(|ws| {
        ws.feed("one").unwrap();
        ws.feed(&b"two"[..]).unwrap();
        assert_eq!(
            ws.get_ref().writes.load(Ordering::SeqCst),
            0,
            "nothing written yet"
        );
        ws.send("three").unwrap();
        ws.feed("four").unwrap();
        ws.flush().unwrap();
        ws.feed("five").unwrap();
        // dropped here: "five", then the goodbye
    });
    let mut raw = RawConn::connect(addr);
    let mut got = Vec::new();
    for _ in 0..5 {
        let f = raw.read_frame();
        got.push((f.opcode, String::from_utf8(f.payload).unwrap()));
    }
    let want = [
        (TEXT, "one"),
        (BINARY, "two"),
        (TEXT, "three"),
        (TEXT, "four"),
        (TEXT, "five"),
    ];
    let want: Vec<(u8, String)> = want.iter().map(|(o, s)| (*o, s.to_string())).collect();
    assert_eq!(got, want);
    assert_eq!(raw.read_close().close_code(), Some(1001));
    server.join().unwrap();
    // one, two and three in one write or two; four; five and the close.
    assert!(writes.load(Ordering::SeqCst) <= 5);
}

#[test]
fn a_large_fed_message_is_written_at_once_and_order_holds() {
    let big = bytes_of_len(100_000);
    let sent = big.clone();
    let (addr, _, server) = counted_server(move |ws| {
        ws.feed("small").unwrap();
        ws.feed(&sent[..]).unwrap();
        ws.feed("after").unwrap();
        while let Ok(Some(_)) = ws.recv() {}
    });
    let mut raw = RawConn::connect(addr);
    assert_eq!(raw.read_frame().payload, b"small");
    assert_eq!(raw.read_frame().payload, big);
    // "after" waits in the queue until the server's receive would wait: it is there now.
    assert_eq!(raw.read_frame().payload, b"after");
    raw.send(&Frame::close(1000, ""));
    assert_eq!(raw.read_close().close_code(), Some(1000));
    server.join().unwrap();
}

/// The feed queue holds at most 64 KiB: a message that would take it past its limit is
/// preceded by a write of what is queued, so feeding many messages without a flush neither
/// holds them all back nor grows the queue without bound.
#[test]
fn feeding_past_the_queue_limit_writes_what_is_queued_first() {
    let piece = bytes_of_len(10_000);
    let fed = piece.clone();
    let (addr, _, server) = counted_server(move |ws| {
        for _ in 0..20 {
            ws.feed(&fed[..]).unwrap();
        }
        // 200,000 bytes fed, no flush: the queue filled past 64 KiB at the 7th, 13th and 19th.
        let written = ws.get_ref().writes.load(Ordering::SeqCst);
        assert!(written >= 3, "{written} writes while feeding 200,000 bytes");
        ws.flush().unwrap();
    });
    let mut raw = RawConn::connect(addr);
    for i in 0..20 {
        let f = raw.read_frame();
        assert_eq!((f.opcode, f.fin), (BINARY, true), "message {i}");
        assert!(f.payload == piece, "message {i} differs");
    }
    assert_eq!(raw.read_close().close_code(), Some(1001));
    server.join().unwrap();
}

/// A message that fills the queue exactly to its limit still waits with the others.
#[test]
fn a_fed_message_that_fills_the_queue_exactly_waits_too() {
    let (addr, _, server) = counted_server(|ws| {
        // Three frames of 16,384 bytes (a 4-byte header each), then a payload that brings the
        // queue to 64 KiB exactly.
        for _ in 0..3 {
            ws.feed(&bytes_of_len(16_380)[..]).unwrap();
        }
        ws.feed(&bytes_of_len(16_384)[..]).unwrap();
        let written = ws.get_ref().writes.load(Ordering::SeqCst);
        assert_eq!(written, 0, "written before the queue passed its limit");
        ws.flush().unwrap();
    });
    let mut raw = RawConn::connect(addr);
    for len in [16_380, 16_380, 16_380, 16_384] {
        assert_eq!(raw.read_frame().payload.len(), len);
    }
    assert_eq!(raw.read_close().close_code(), Some(1001));
    server.join().unwrap();
}
