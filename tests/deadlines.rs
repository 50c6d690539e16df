//! Receive and send deadlines: a receive cut by its deadline in the middle of a frame, a
//! `try_recv` on an idle socket, and sends to a peer that stops reading.

mod support;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use syncws::{CloseCode, Config, Error, Message, State};

#[test]
fn recv_timeout_in_the_middle_of_a_frame_leaves_the_message_intact() {
    let big = text_of_len(100_000);
    let small = "x".repeat(200);
    // Each row: the message and where the server pauses inside its frame.
    let rows: Vec<(String, usize)> = vec![
        (small.clone(), 1),  // inside the first header byte pair
        (small.clone(), 3),  // inside the 16-bit length
        (small.clone(), 4),  // header complete, no payload
        (small.clone(), 50), // mid payload
        (big.clone(), 9),    // inside the 64-bit length
        (big.clone(), 50_001),
    ];
    let (paused_tx, paused) = mpsc::channel();
    let (resume, resume_rx) = mpsc::channel::<()>();
    let server_rows = rows.clone();
    let (addr, server) = raw_server(move |mut conn| {
        for (text, at) in server_rows {
            let bytes = Frame::text(&text).unmasked().to_bytes();
            conn.write_raw(&bytes[..at]);
            paused_tx.send(()).unwrap();
            resume_rx.recv_timeout(TIMEOUT).unwrap();
            conn.write_raw(&bytes[at..]);
        }
        // Two messages in one write for try_recv, once the client has read everything else; then
        // an echo to show the socket still works.
        resume_rx.recv_timeout(TIMEOUT).unwrap();
        conn.write_raw(&frames(&[
            Frame::text("first").unmasked(),
            Frame::text("second").unmasked(),
        ]));
        let frame = conn.read_frame();
        conn.send(&Frame::new(frame.opcode, &frame.payload).unmasked());
        conn.read_close().close_code()
    });
    let mut ws = connect(addr, Config::default());
    for (text, at) in &rows {
        paused.recv_timeout(TIMEOUT).unwrap();
        let started = Instant::now();
        let r = ws.recv_timeout(Duration::from_millis(150));
        let took = started.elapsed();
        assert!(matches!(r, Err(Error::Timeout)), "split at {at}: {r:?}");
        assert!(
            took >= Duration::from_millis(140),
            "gave up early: {took:?}"
        );
        assert!(took < Duration::from_secs(2), "deadline overshot: {took:?}");
        assert_eq!(ws.state(), State::Open);
        resume.send(()).unwrap();
        let msg = ws.recv_timeout(TIMEOUT).unwrap().unwrap();
        assert!(msg.as_text() == Some(text.as_str()), "split at {at}");
    }
    assert!(matches!(ws.try_recv(), Err(Error::Timeout)));
    resume.send(()).unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("first".into())));
    // "second" came in the same write as "first": it is already buffered.
    assert_eq!(ws.try_recv().unwrap(), Some(Message::Text("second".into())));
    assert!(matches!(ws.try_recv(), Err(Error::Timeout)));
    ws.send("still open").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("still open".into())));
    drop(ws);
    assert_eq!(server.join().unwrap(), Some(1001));
}

#[test]
fn try_recv_on_an_idle_socket_times_out_at_once() {
    let addr = echo_server();
    let mut ws = connect(addr, Config::default());
    let started = Instant::now();
    assert!(matches!(ws.try_recv(), Err(Error::Timeout)));
    assert!(started.elapsed() < Duration::from_millis(500));
    // Blocking mode is back: a normal round trip works.
    ws.send(vec![7u8; 100_000]).unwrap();
    assert_eq!(
        ws.recv().unwrap(),
        Some(Message::Binary(vec![7u8; 100_000]))
    );
    ws.close(CloseCode::NORMAL, "").unwrap();
}

/// A raw server that completes the handshake and then never reads; it holds the socket until
/// the test says it is done.
fn deaf_server() -> (SocketAddr, mpsc::Sender<()>) {
    let (done, done_rx) = mpsc::channel::<()>();
    let (addr, _server) = raw_server(move |conn| {
        let _ = done_rx.recv_timeout(Duration::from_secs(30));
        drop(conn);
    });
    (addr, done)
}

/// Sends 1 MiB messages until one fails; returns that error and how long the failing send took.
fn send_until_stalled(mut send: impl FnMut(&[u8]) -> syncws::Result<()>) -> (Error, Duration) {
    let payload = vec![0x5a; 1 << 20];
    for _ in 0..200 {
        let started = Instant::now();
        if let Err(e) = send(&payload) {
            return (e, started.elapsed());
        }
    }
    panic!("200 MiB went into a peer that never reads");
}

#[test]
fn send_to_a_peer_that_never_reads_fails_within_the_write_timeout() {
    let write_timeout = Duration::from_millis(500);
    let (addr, done) = deaf_server();
    let mut ws = connect(addr, Config::default().write_timeout(Some(write_timeout)));
    let started = Instant::now();
    let (err, took) = send_until_stalled(|p| ws.send(p));
    assert!(err.is_timeout() || matches!(err, Error::Io(_)), "{err:?}");
    assert!(
        took >= write_timeout - Duration::from_millis(50),
        "{took:?}"
    );
    assert!(took < write_timeout + Duration::from_secs(2), "{took:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(ws.state(), State::Closed);
    assert!(matches!(ws.send("more"), Err(Error::Closed)));
    assert!(matches!(ws.ping(b""), Err(Error::Closed)));
    done.send(()).unwrap();
}

#[test]
fn split_send_to_a_peer_that_never_reads_fails_and_ends_the_reader() {
    let write_timeout = Duration::from_millis(500);
    let (addr, done) = deaf_server();
    let mut ws = connect(addr, Config::default().write_timeout(Some(write_timeout)));
    let (mut reader, writer) = ws.split().unwrap();
    let (ended_tx, ended) = mpsc::channel();
    thread::spawn(move || ended_tx.send(reader.recv()).unwrap());
    let (err, took) = send_until_stalled(|p| writer.send(p));
    assert!(err.is_timeout() || matches!(err, Error::Io(_)), "{err:?}");
    assert!(took < write_timeout + Duration::from_secs(2), "{took:?}");
    assert!(writer.is_closed());
    assert!(matches!(writer.send("more"), Err(Error::Closed)));
    // The reader was blocked in recv; the failed write ends it too.
    let r = ended.recv_timeout(Duration::from_secs(3)).unwrap();
    assert!(r.is_err(), "{r:?}");
    done.send(()).unwrap();
}

/// A receive's deadline is kept to the time asked, also right after a longer one: the socket
/// timeout left from that one is not reused (it would end the second receive up to a quarter
/// late, a slack only the connection's own clocks may take).
#[test]
fn a_shorter_receive_deadline_after_a_longer_one_is_kept() {
    let (addr, _quiet) = deaf_server();
    let mut ws = connect(addr, Config::default());
    let long = Duration::from_millis(1000);
    let short = Duration::from_millis(810);
    assert!(matches!(ws.recv_timeout(long), Err(Error::Timeout)));
    let started = Instant::now();
    assert!(matches!(ws.recv_timeout(short), Err(Error::Timeout)));
    let took = started.elapsed();
    assert!(took >= short, "{took:?}");
    assert!(
        took < short + (long - short) / 2,
        "a receive of {short:?} took {took:?}, after one of {long:?}"
    );
}

/// A peer that trickles a message, a piece every 40 ms, cannot stretch a receive deadline:
/// every read after the first runs under what is left of it, whether the frame's payload
/// goes through the read buffer (a small frame) or straight into the message (a large one,
/// binary or text). The message still arrives whole on the next receive.
#[test]
fn a_trickled_message_cannot_stretch_a_receive_deadline() {
    let rows: Vec<(Frame, usize)> = vec![
        (Frame::binary(bytes_of_len(100_000)), 4000),
        (Frame::text(text_of_len(100_000)), 4000),
        (Frame::text(text_of_len(6000)), 200),
    ];
    let sent: Vec<Vec<u8>> = rows.iter().map(|(f, _)| f.payload.clone()).collect();
    let (next_tx, next) = mpsc::channel::<()>();
    let (addr, server) = raw_server(move |mut conn| {
        for (frame, piece) in rows {
            next.recv_timeout(TIMEOUT).unwrap();
            for chunk in frame.unmasked().to_bytes().chunks(piece) {
                conn.write_raw(chunk);
                thread::sleep(Duration::from_millis(40));
            }
        }
        conn.read_close().close_code()
    });
    let mut ws = connect(addr, Config::default());
    let deadline = Duration::from_millis(300);
    for payload in sent {
        next_tx.send(()).unwrap();
        let started = Instant::now();
        let r = ws.recv_timeout(deadline);
        let took = started.elapsed();
        let got = r.map(|m| m.map(|m| m.as_bytes().len()));
        assert!(matches!(got, Err(Error::Timeout)), "{got:?} after {took:?}");
        assert!(took >= deadline, "gave up early: {took:?}");
        assert!(
            took < deadline + Duration::from_millis(250),
            "a receive of {deadline:?} took {took:?}"
        );
        let msg = ws.recv_timeout(TIMEOUT).unwrap().expect("the message");
        assert!(msg.as_bytes() == payload, "the message arrives whole");
    }
    drop(ws);
    assert_eq!(server.join().unwrap(), Some(1001));
}

/// A receive's deadline is kept to the millisecond, not to the coarser measure the heartbeat's
/// wake-ups get: after a receive without a deadline left the socket armed for the heartbeat's
/// next ping, a receive with a deadline a little shorter than that arms it again instead of
/// waiting up to a quarter too long.
#[test]
fn a_deadline_after_a_heartbeat_wait_is_not_overshot() {
    let (addr, server) = raw_server(|mut peer: RawConn| {
        std::thread::sleep(Duration::from_millis(100));
        peer.send(&Frame::text(b"x").unmasked());
        peer.read_close().close_code()
    });
    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(1000)))
        .pong_timeout(Duration::from_secs(5));
    let mut ws = connect(addr, config);
    assert_eq!(ws.recv().unwrap(), Some(Message::from("x")));
    let started = Instant::now();
    let result = ws.recv_timeout(Duration::from_millis(800));
    let took = started.elapsed();
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
    assert!(took >= Duration::from_millis(800), "early: {took:?}");
    assert!(
        took < Duration::from_millis(950),
        "a deadline of 800 ms took {took:?}"
    );
    ws.close(CloseCode::NORMAL, "").unwrap_or(());
    let _ = server.join();
}
