//! A WebSocket over a stream of the user's own: `Transport`'s defaults, for a stream that
//! implements only `Read`, `Write` and a half-close. Over a loopback TCP pair, the other end
//! read raw.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

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

/// A client-role WebSocket over [`Own`] (no handshake: `from_stream`) and the raw other end.
fn own_pair() -> (WebSocket<Own>, TcpStream, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
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
