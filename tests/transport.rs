//! A WebSocket over a stream of the user's own: `Transport`'s defaults, for a stream that
//! implements only `Read`, `Write` and a half-close. Over a loopback TCP pair, the other end
//! read raw.

mod support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use support::tcp_pair;
use syncws::{Config, Error, Role, Transport, WebSocket};

/// A TCP connection behind only `Read`, `Write` and `shutdown_write`: no timeouts, no
/// non-blocking mode. Its writes fail once `fail_writes` is set.
struct Own {
    tcp: TcpStream,
    fail_writes: Arc<AtomicBool>,
}

impl Read for Own {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl Write for Own {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Own {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.tcp.shutdown(Shutdown::Write)
    }
}

/// A loopback TCP connection, its other end reading with a 3 s timeout.
fn tcp_with_peer() -> (TcpStream, TcpStream) {
    let (tcp, peer) = tcp_pair();
    peer.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    (tcp, peer)
}

/// A Unix socket pair, its other end reading with a 3 s timeout.
#[cfg(unix)]
fn unix_with_peer() -> (UnixStream, UnixStream) {
    let (unix, peer) = UnixStream::pair().unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    (unix, peer)
}

/// A client-role WebSocket over [`Own`] (no handshake: `from_stream`) and the raw other end.
fn own_pair() -> (WebSocket<Own>, TcpStream, Arc<AtomicBool>) {
    let (tcp, peer) = tcp_with_peer();
    let fail_writes = Arc::new(AtomicBool::new(false));
    let own = Own {
        tcp,
        fail_writes: Arc::clone(&fail_writes),
    };
    let ws = WebSocket::from_stream(own, Role::Client, Config::default(), &[]);
    (ws, peer, fail_writes)
}

/// A stream without a non-blocking mode cannot serve `try_recv`: it says so at once instead
/// of blocking in a read with nothing to read.
#[test]
fn try_recv_on_a_stream_without_a_nonblocking_mode_fails_at_once() {
    let (mut ws, peer, _) = own_pair();
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(ws.try_recv().map(|m| m.is_some()));
    });
    let got = result
        .recv_timeout(Duration::from_secs(3))
        .expect("try_recv came back without waiting");
    match got {
        Err(Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}"),
        other => panic!("expected an unsupported-operation error, got {other:?}"),
    }
    drop(peer);
}

/// A failed write may have cut a frame, so the connection is ended: on a stream that only
/// implements a half-close, ending both directions closes its sending side, and the peer
/// reads the end of the stream.
#[test]
fn a_failed_write_ends_the_connection_through_the_half_close() {
    let (mut ws, mut peer, fail_writes) = own_pair();
    ws.send("first").unwrap();
    let mut frame = [0u8; 11];
    peer.read_exact(&mut frame).unwrap();
    assert_eq!(&frame[..2], &[0x81, 0x85], "a masked text frame of 5 bytes");
    fail_writes.store(true, Ordering::SeqCst);
    assert!(ws.send("second").is_err());
    let mut rest = Vec::new();
    let read = peer.read_to_end(&mut rest);
    assert!(
        matches!(read, Ok(0)),
        "the peer reads the end of the stream: {read:?}, {rest:?}"
    );
    assert!(matches!(ws.send("third"), Err(Error::Closed)));
}

/// Over a plain socket (a `TcpStream`, a `UnixStream`) the timeouts reach it: a receive from
/// a silent peer and a send to a peer that reads nothing both fail by their time, not never;
/// and the send cut a frame, so the connection was ended both ways: the peer reads what
/// arrived, then the end of the stream, while the WebSocket still exists.
fn keeps_the_read_and_write_timeouts<S, P>(pair: impl FnOnce() -> (S, P))
where
    S: Transport + Send + 'static,
    P: Read,
{
    // The write timeout is long enough for the socket's buffers to fill well inside it even on
    // a loaded machine, so that the send ends on the socket's timeout, not between two writes.
    let timeout = Duration::from_millis(300);
    let write_timeout = Duration::from_secs(2);
    let (stream, mut peer) = pair();
    let config = Config::default().write_timeout(Some(write_timeout));
    let mut ws = WebSocket::from_stream(stream, Role::Client, config, &[]);
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let started = std::time::Instant::now();
        let got = ws.recv_timeout(timeout).map(|m| m.is_some());
        let waited = started.elapsed();
        let big = vec![0u8; 64 << 20];
        let sent = ws.send(&big[..]);
        let _ = done.send((got, waited, sent, ws));
    });
    let (got, waited, sent, ws) = result
        .recv_timeout(Duration::from_secs(10))
        .expect("the receive and the send came back");
    assert!(matches!(got, Err(Error::Timeout)), "{got:?}");
    assert!(waited >= timeout, "{waited:?}");
    let err = sent.expect_err("the peer reads nothing");
    assert!(err.is_timeout(), "{err}");
    let read = peer.read_to_end(&mut Vec::new());
    assert!(matches!(read, Ok(n) if n > 0), "{read:?}");
    drop(ws);
}

#[test]
fn a_tcp_stream_keeps_the_read_and_write_timeouts() {
    keeps_the_read_and_write_timeouts(tcp_with_peer);
}

#[cfg(unix)]
#[test]
fn a_unix_stream_keeps_the_read_and_write_timeouts() {
    keeps_the_read_and_write_timeouts(unix_with_peer);
}

/// Over a plain socket a server that completed the closing handshake ends its sending side:
/// the client reads the close frame and then the end of the stream, while the WebSocket still
/// exists. And `try_recv` switches the socket to non-blocking mode: with nothing to read it
/// returns at once.
fn half_closes_after_the_closing_handshake_and_polls_without_waiting<S, P>(
    pair: impl FnOnce() -> (S, P),
) where
    S: Transport + Send + 'static,
    P: Read + Write,
{
    let (stream, mut peer) = pair();
    let mut ws = WebSocket::from_stream(stream, Role::Server, Config::default(), &[]);
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let polled = ws.try_recv().map(|m| m.is_some());
        let closed = ws.recv().map(|m| m.is_some());
        let _ = done.send((polled, closed, ws));
    });
    thread::sleep(Duration::from_millis(100));
    // A masked close frame, code 1000, mask 0.
    peer.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8])
        .unwrap();
    let (polled, closed, ws) = result
        .recv_timeout(Duration::from_secs(5))
        .expect("the server's receives came back");
    assert!(matches!(polled, Err(Error::Timeout)), "{polled:?}");
    assert!(matches!(closed, Ok(false)), "{closed:?}");
    let mut answer = Vec::new();
    let read = peer.read_to_end(&mut answer);
    assert!(matches!(read, Ok(4)), "{read:?} {answer:x?}");
    assert_eq!(answer, [0x88, 0x02, 0x03, 0xe8]);
    drop(ws);
}

#[test]
fn a_tcp_stream_is_half_closed_after_the_closing_handshake_and_polled_without_waiting() {
    half_closes_after_the_closing_handshake_and_polls_without_waiting(tcp_with_peer);
}

#[cfg(unix)]
#[test]
fn a_unix_stream_is_half_closed_after_the_closing_handshake_and_polled_without_waiting() {
    half_closes_after_the_closing_handshake_and_polls_without_waiting(unix_with_peer);
}

/// A stream with a non-blocking mode but no `write_nonblocking` of its own (the default) writes
/// what the socket takes now, and says `WouldBlock` once it takes nothing, without waiting.
#[test]
fn the_default_nonblocking_write_takes_what_the_socket_takes_and_never_waits() {
    struct Switchable(TcpStream);
    impl Read for Switchable {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }
    impl Write for Switchable {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Transport for Switchable {
        fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
            self.0.set_nonblocking(nonblocking)
        }
    }
    let (tcp, mut peer) = tcp_with_peer();
    let mut stream = Switchable(tcp);
    assert_eq!(stream.write_nonblocking(b"abc").unwrap(), 3);
    let mut got = [0u8; 3];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"abc");
    // The peer reads no more: the socket fills, and a write then takes nothing.
    let chunk = vec![0u8; 64 << 10];
    let mut taken = 0usize;
    let started = std::time::Instant::now();
    let refused = loop {
        match stream.write_nonblocking(&chunk) {
            Ok(n) => taken += n,
            Err(e) => break e,
        }
        assert!(taken < 1 << 30, "the socket never filled");
    };
    assert_eq!(refused.kind(), io::ErrorKind::WouldBlock, "{refused}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // And the stream is blocking again afterwards.
    assert!(stream.0.set_nonblocking(false).is_ok());
    assert!(taken > 0);
}

/// The default non-blocking flush flushes the stream (what a buffering stream holds goes out)
/// in non-blocking mode, and a stream without that mode says so.
#[test]
fn the_default_nonblocking_flush_sends_what_the_stream_buffers() {
    struct Buffered {
        tcp: TcpStream,
        held: Vec<u8>,
    }
    impl Read for Buffered {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.tcp.read(buf)
        }
    }
    impl Write for Buffered {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.held.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.tcp.write_all(&self.held)?;
            self.held.clear();
            Ok(())
        }
    }
    impl Transport for Buffered {
        fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
            self.tcp.set_nonblocking(nonblocking)
        }
    }
    let (tcp, mut peer) = tcp_with_peer();
    let mut stream = Buffered {
        tcp,
        held: Vec::new(),
    };
    stream.write_all(b"held back").unwrap();
    stream.flush_nonblocking().unwrap();
    let mut got = [0u8; 9];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"held back");

    let (tcp, _peer) = tcp_pair();
    let mut plain = Own {
        tcp,
        fail_writes: Arc::default(),
    };
    let refused = plain.flush_nonblocking().map_err(|e| e.kind());
    assert_eq!(refused, Err(io::ErrorKind::Unsupported));
}

/// A hub member over a plain socket whose queue overflows is cut off at once: the room's policy
/// shuts its socket down (not only marks it closed), so the peer reads what the kernel held,
/// then the end of the stream, while the member's halves still exist.
fn an_overflowing_member_is_shut_down<S, P>(pair: impl FnOnce() -> (S, P))
where
    S: syncws::Split + Send + 'static,
    P: Read,
{
    let (stream, mut peer) = pair();
    let mut ws = WebSocket::from_stream(stream, Role::Server, Config::default(), &[]);
    let (reader, writer) = ws.split().unwrap();
    let hub = syncws::Hub::builder()
        .backlog(64 << 10)
        .overflow(syncws::Overflow::Disconnect)
        .build()
        .unwrap();
    hub.join("room", &writer).unwrap();
    let big = vec![0u8; 32 << 10];
    // The first message is on its way (a flusher wrote it) before the room overflows, however
    // late the flusher threads run on a busy machine.
    assert_eq!(hub.publish("room", &big[..]).queued, 1);
    peer.read_exact(&mut [0u8; 1]).unwrap();
    let started = std::time::Instant::now();
    while hub.publish("room", &big[..]).disconnected == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never overflowed"
        );
        thread::sleep(Duration::from_millis(1));
    }
    let read = peer.read_to_end(&mut Vec::new());
    assert!(matches!(read, Ok(n) if n > 0), "{read:?}");
    drop((reader, writer));
}

#[test]
fn an_overflowing_member_over_a_tcp_stream_is_shut_down() {
    an_overflowing_member_is_shut_down(tcp_with_peer);
}

#[cfg(unix)]
#[test]
fn an_overflowing_member_over_a_unix_stream_is_shut_down() {
    an_overflowing_member_is_shut_down(unix_with_peer);
}

/// A TCP connection that splits into the socket itself for reading and a write half of the
/// test's own, made from the socket by `writer` (a stream with a behaviour under test).
struct SplitInto<W> {
    tcp: TcpStream,
    writer: fn(TcpStream) -> W,
}

impl<W> Read for SplitInto<W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl<W> Write for SplitInto<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W> Transport for SplitInto<W> {}

impl<W: Transport + Send + 'static> syncws::Split for SplitInto<W> {
    type ReadHalf = TcpStream;
    type WriteHalf = W;
    fn split(self) -> io::Result<(TcpStream, W)> {
        let reader = self.tcp.try_clone()?;
        Ok((reader, (self.writer)(self.tcp)))
    }
}

/// A write half of the user's own whose non-blocking write is interrupted once (`Interrupted`
/// asks the caller to try again): a room's frame queued on it still goes out, and the member
/// stays.
#[test]
fn a_room_frame_goes_out_after_an_interrupted_nonblocking_write() {
    struct Interrupting {
        tcp: TcpStream,
        interrupted: bool,
    }
    impl Read for Interrupting {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.tcp.read(buf)
        }
    }
    impl Write for Interrupting {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.tcp.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Transport for Interrupting {
        fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
            self.tcp.set_nonblocking(nonblocking)
        }
        fn write_nonblocking(&mut self, buf: &[u8]) -> io::Result<usize> {
            if !std::mem::replace(&mut self.interrupted, true) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            self.tcp.set_nonblocking(true)?;
            let written = self.tcp.write(buf);
            self.tcp.set_nonblocking(false)?;
            written
        }
        fn shutdown_both(&mut self) -> io::Result<()> {
            self.tcp.shutdown(Shutdown::Both)
        }
    }

    let interrupting = |tcp| Interrupting {
        tcp,
        interrupted: false,
    };
    let (writer, hub, mut peer) = room_member(interrupting);
    assert_eq!(hub.publish("room", "hello").queued, 1);
    let mut frame = [0u8; 7];
    peer.read_exact(&mut frame).unwrap();
    assert_eq!(&frame, b"\x81\x05hello");
    assert!(!writer.is_closed());
    assert_eq!(hub.publish("room", "again").queued, 1);
    peer.read_exact(&mut frame).unwrap();
    assert_eq!(&frame, b"\x81\x05again");
}

/// A split write half that takes what a non-blocking write gives (as a TLS session takes
/// bytes it has no room to send yet) and answers each non-blocking flush from `flushes`: `None`
/// sends what it holds, an error kind fails without sending; once the script is used up,
/// flushes send.
struct Holding {
    tcp: TcpStream,
    held: Vec<u8>,
    flushes: std::collections::VecDeque<Option<io::ErrorKind>>,
}

impl Holding {
    fn new(tcp: TcpStream, flushes: &[Option<io::ErrorKind>]) -> Self {
        let flushes = flushes.iter().copied().collect();
        Holding {
            tcp,
            held: Vec::new(),
            flushes,
        }
    }
}

impl Read for Holding {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl Write for Holding {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Holding {
    fn write_nonblocking(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.held.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush_nonblocking(&mut self) -> io::Result<()> {
        if let Some(Some(kind)) = self.flushes.pop_front() {
            return Err(kind.into());
        }
        self.tcp.write_all(&self.held)?;
        self.held.clear();
        Ok(())
    }
    fn shutdown_both(&mut self) -> io::Result<()> {
        self.tcp.shutdown(Shutdown::Both)
    }
}

/// A server-side member of "room" over a `SplitInto` whose write half `writer` makes; the
/// member's writer, the hub and the raw other end.
fn room_member<W: Transport + Send + 'static>(
    writer: fn(TcpStream) -> W,
) -> (syncws::Writer<SplitInto<W>>, syncws::Hub, TcpStream) {
    let (tcp, peer) = tcp_with_peer();
    let stream = SplitInto { tcp, writer };
    let mut ws = WebSocket::from_stream(stream, Role::Server, Config::default(), &[]);
    let (_reader, writer) = ws.split().unwrap();
    let hub = syncws::Hub::new().unwrap();
    hub.join("room", &writer).unwrap();
    (writer, hub, peer)
}

/// A member whose stream holds a frame back while its socket is full (its non-blocking flush
/// says `WouldBlock`) is tried again later, not dropped: the frame arrives, the member stays.
#[test]
fn a_room_member_whose_stream_holds_bytes_back_gets_them_later() {
    let full = |tcp| Holding::new(tcp, &[Some(io::ErrorKind::WouldBlock); 2]);
    let (writer, hub, mut peer) = room_member(full);
    assert_eq!(hub.publish("room", "hello").queued, 1);
    let mut frame = [0u8; 7];
    peer.read_exact(&mut frame).unwrap();
    assert_eq!(&frame, b"\x81\x05hello");
    assert!(!writer.is_closed());
    assert_eq!(hub.count("room"), 1);
}

/// A member whose stream cannot send what it holds (a TLS session whose socket was reset under
/// records it kept) is dropped by the room's flusher at once, instead of being retried as if
/// its socket were only full.
#[test]
fn a_room_member_whose_nonblocking_flush_fails_is_closed() {
    let reset = |tcp| Holding::new(tcp, &[Some(io::ErrorKind::ConnectionReset)]);
    let (writer, hub, mut peer) = room_member(reset);
    assert_eq!(hub.publish("room", "hello").queued, 1);
    let started = std::time::Instant::now();
    while !writer.is_closed() && started.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(5));
    }
    assert!(
        writer.is_closed(),
        "the member is still open after a failed flush"
    );
    assert_eq!(hub.count("room"), 0);
    // Shut down, not only marked closed: the peer reads the end, and no frame before it.
    assert_eq!(peer.read(&mut [0u8; 16]).unwrap(), 0);
}
