//! The close timeout: a close (on the socket, through a writer, on a split socket) returns
//! within it when the peer never answers, and so does the goodbye of a socket dropped open
//! towards a peer that stopped reading.

mod support;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use syncws::{CloseCode, Config, Error, Role, State, WebSocket};

const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// Runs a close against a peer that never answers and checks that it gave up with `Timeout`
/// after the close timeout: not before, and not much later.
fn gives_up_within_the_close_timeout(close: impl FnOnce() -> syncws::Result<()>) {
    let started = Instant::now();
    let r = close();
    let took = started.elapsed();
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    assert!(
        took >= CLOSE_TIMEOUT - Duration::from_millis(50),
        "{took:?}"
    );
    assert!(took < CLOSE_TIMEOUT + Duration::from_secs(1), "{took:?}");
}

/// A raw server that reads the client's close frame and never answers it; reports the code and
/// holds the socket until the test is done.
fn mute_closer() -> (SocketAddr, mpsc::Receiver<Option<u16>>, mpsc::Sender<()>) {
    let (code_tx, code) = mpsc::channel();
    let (done, done_rx) = mpsc::channel::<()>();
    let (addr, _server) = raw_server(move |mut conn| {
        code_tx.send(conn.read_close().close_code()).unwrap();
        let _ = done_rx.recv_timeout(Duration::from_secs(30));
        drop(conn);
    });
    (addr, code, done)
}

#[test]
fn close_returns_within_the_close_timeout_when_the_peer_never_answers() {
    let (addr, code, done) = mute_closer();
    let mut ws = connect(addr, Config::default().close_timeout(CLOSE_TIMEOUT));
    gives_up_within_the_close_timeout(|| ws.close(CloseCode::NORMAL, "bye"));
    assert_eq!(ws.state(), State::Closed);
    assert_eq!(code.recv_timeout(TIMEOUT).unwrap(), Some(1000));
    done.send(()).unwrap();
}

#[test]
fn writer_close_returns_within_the_close_timeout_when_the_peer_never_answers() {
    let (addr, code, done) = mute_closer();
    let mut ws = connect(addr, Config::default().close_timeout(CLOSE_TIMEOUT));
    let (mut reader, writer) = ws.split().unwrap();
    let (ended_tx, ended) = mpsc::channel();
    thread::spawn(move || ended_tx.send(reader.recv()).unwrap());
    gives_up_within_the_close_timeout(|| writer.close(CloseCode::NORMAL, "bye"));
    assert!(writer.is_closed());
    assert_eq!(code.recv_timeout(TIMEOUT).unwrap(), Some(1000));
    // The reader, blocked in recv, is woken by the shutdown.
    let r = ended.recv_timeout(Duration::from_secs(1)).unwrap();
    assert!(r.is_err(), "{r:?}");
    done.send(()).unwrap();
}

#[test]
fn close_on_a_split_socket_returns_within_the_close_timeout() {
    // The path the server takes when a handler that split its socket returns.
    let (addr, code, done) = mute_closer();
    let mut ws = connect(addr, Config::default().close_timeout(CLOSE_TIMEOUT));
    let (reader, _writer) = ws.split().unwrap();
    let reading = thread::spawn(move || {
        let mut reader = reader;
        reader.recv()
    });
    gives_up_within_the_close_timeout(|| ws.close(CloseCode::NORMAL, ""));
    assert_eq!(code.recv_timeout(TIMEOUT).unwrap(), Some(1000));
    assert!(reading.join().unwrap().is_err());
    done.send(()).unwrap();
}

/// A peer that answers a writer's close by ending the stream (no close frame) completes the
/// closing handshake all the same: the close succeeds, without waiting out the close timeout.
#[test]
fn writer_close_succeeds_when_the_peer_answers_by_ending_the_stream() {
    let (addr, _server) = raw_server(|mut conn| {
        let code = conn.read_close().close_code();
        drop(conn);
        code
    });
    let mut ws = connect(
        addr,
        Config::default().close_timeout(Duration::from_secs(3)),
    );
    let (mut reader, writer) = ws.split().unwrap();
    let reading = thread::spawn(move || reader.recv());
    let started = Instant::now();
    let r = writer.close(CloseCode::NORMAL, "");
    assert!(r.is_ok(), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        reading.join().unwrap().is_err(),
        "no close frame came: not a normal end"
    );
}

#[test]
fn writer_close_is_no_success_when_the_connection_fails_before_the_peer_answers() {
    // The reader fails the connection (no pong in time) while the writer waits for the answer
    // to its close; the peer then drops TCP without ever answering. The close did not
    // complete, so it must not say Ok.
    let (addr, _server) = raw_server(|mut conn| {
        let close = conn.read_close().close_code();
        thread::sleep(Duration::from_millis(600));
        drop(conn);
        close
    });
    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(100)))
        .pong_timeout(Duration::from_millis(200))
        .close_timeout(Duration::from_secs(5));
    let mut ws = connect(addr, config);
    let (mut reader, writer) = ws.split().unwrap();
    let reading = thread::spawn(move || reader.recv());
    // A heartbeat ping is out (and never answered) before the close.
    thread::sleep(Duration::from_millis(150));
    let r = writer.close(CloseCode::NORMAL, "");
    let ended = reading.join().unwrap();
    assert!(matches!(r, Err(Error::Timeout)), "{r:?} {ended:?}");
    assert!(matches!(ended, Err(Error::HeartbeatTimeout)), "{ended:?}");
}

/// Fills the sending side of `tcp` until the peer, which never reads, takes nothing more: no
/// write has gone through for 200 ms, first of 64 KiB, then of one byte (the kernel appends a
/// small write to the last unsent packet while it has room). Bounded at 5 s.
fn fill_until_stalled(tcp: &TcpStream) {
    tcp.set_nonblocking(true).unwrap();
    let started = Instant::now();
    for chunk in [64 << 10, 1] {
        let chunk = vec![0u8; chunk];
        let mut last_progress = Instant::now();
        while last_progress.elapsed() < Duration::from_millis(200) {
            assert!(started.elapsed() < Duration::from_secs(5), "never stalled");
            match (&mut &*tcp).write(&chunk) {
                Ok(_) => last_progress = Instant::now(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("filling the socket: {e}"),
            }
        }
    }
    tcp.set_nonblocking(false).unwrap();
}

/// A socket dropped while open, over a connection whose peer stopped reading: the 1001 it
/// says goodbye with (and the messages fed before it) cannot go out, and the drop gives up
/// after the close timeout, not after the much longer write timeout of its sends.
#[test]
fn a_socket_dropped_towards_a_stalled_peer_gives_up_within_the_close_timeout() {
    let (tcp, peer) = tcp_pair();
    let config = Config::default()
        .write_timeout(Some(Duration::from_secs(20)))
        .close_timeout(CLOSE_TIMEOUT);
    let mut ws = WebSocket::from_stream(tcp, Role::Server, config.clone(), &[]);
    ws.feed(vec![7u8; 60 << 10]).unwrap();
    // What the peer will never read: the connection's buffers are full.
    fill_until_stalled(ws.get_ref());
    let started = Instant::now();
    drop(ws);
    let took = started.elapsed();
    assert!(took < CLOSE_TIMEOUT * 4, "the drop took {took:?}");
    drop(peer);

    // The same when the last half of a split socket goes.
    let (tcp, peer) = tcp_pair();
    let mut ws = WebSocket::from_stream(tcp, Role::Server, config, &[]);
    fill_until_stalled(ws.get_ref());
    let (reader, writer) = ws.split().unwrap();
    drop(ws);
    drop(reader);
    let started = Instant::now();
    drop(writer);
    let took = started.elapsed();
    assert!(
        took < CLOSE_TIMEOUT * 4,
        "the last half's drop took {took:?}"
    );
    drop(peer);
}
