//! Full duplex: a split client with many senders and one reader at once, a split server that
//! reads and writes at once, and every half of a split socket learning how the connection ended.

mod support;

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

use support::*;
use syncws::{CloseCode, Config, Error, Message, State};

const SENDERS: u32 = 8;
const PER_SENDER: u32 = 500;

/// Message `i` of sender `t`: sizes from empty to over 64 KiB, text and binary, some sent as
/// three fragments. The first bytes name the sender and index so the reader can check content.
fn message_of(t: u32, i: u32) -> (Message, bool) {
    let len = match i % 50 {
        0 => 70_000 + (t as usize) * 1000,
        25 => 65_536 + 3,
        _ => ((i * 37 + t * 11) % 2000) as usize,
    };
    let fragmented = i % 7 == 3;
    let msg = if i.is_multiple_of(2) {
        let mut s = format!("{t}:{i}:");
        s.push_str(&text_of_len(len));
        Message::Text(s)
    } else {
        let mut b = Vec::with_capacity(len + 8);
        b.extend_from_slice(&t.to_be_bytes());
        b.extend_from_slice(&i.to_be_bytes());
        b.extend(bytes_of_len(len).iter().map(|x| x.wrapping_add(t as u8)));
        Message::Binary(b)
    };
    (msg, fragmented)
}

/// Which sender and index a message claims to be.
fn origin_of(msg: &Message) -> (u32, u32) {
    match msg {
        Message::Text(s) => {
            let mut parts = s.splitn(3, ':');
            let t = parts.next().unwrap().parse().unwrap();
            let i = parts.next().unwrap().parse().unwrap();
            (t, i)
        }
        Message::Binary(b) => (
            u32::from_be_bytes(b[0..4].try_into().unwrap()),
            u32::from_be_bytes(b[4..8].try_into().unwrap()),
        ),
    }
}

/// Three fragments of one message: text split on character boundaries, binary anywhere.
fn send_in_fragments(writer: &syncws::Writer, msg: &Message) {
    match msg {
        Message::Text(s) => {
            let cuts: Vec<usize> = (0..=s.len()).filter(|&k| s.is_char_boundary(k)).collect();
            let (a, b) = (cuts[cuts.len() / 3], cuts[2 * cuts.len() / 3]);
            writer
                .send_fragmented([&s[..a], &s[a..b], &s[b..]])
                .unwrap();
        }
        Message::Binary(v) => {
            let (a, b) = (v.len() / 3, 2 * v.len() / 3);
            writer
                .send_fragmented([&v[..a], &v[a..b], &v[b..]])
                .unwrap();
        }
    }
}

/// What the validating raw server saw.
#[derive(Debug, Default)]
struct Seen {
    messages: usize,
    fragmented: usize,
    pings: usize,
    close: Option<u16>,
}

/// A raw server that checks every frame a client sends (masked, no RSV bits, control frames
/// whole and short, fragments of one message never interleaved with another data message),
/// echoes every message and answers pings.
fn validating_echo(mut conn: RawConn) -> Seen {
    let mut seen = Seen::default();
    // The message being assembled: opcode, payload, number of frames.
    let mut partial: Option<(u8, Vec<u8>, usize)> = None;
    loop {
        // `read_frame` itself asserts the mask bit.
        let frame = conn.read_frame();
        assert_eq!(frame.rsv, 0, "rsv bits set");
        match frame.opcode {
            PING | PONG | CLOSE => {
                assert!(frame.fin, "fragmented control frame");
                assert!(frame.payload.len() <= 125, "control frame too long");
            }
            TEXT | BINARY => assert!(
                partial.is_none(),
                "a new data message began inside a fragmented one"
            ),
            CONTINUATION => assert!(partial.is_some(), "continuation without a message"),
            op => panic!("reserved opcode {op}"),
        }
        match frame.opcode {
            PING => {
                seen.pings += 1;
                conn.send(&Frame::pong(&frame.payload).unmasked());
            }
            PONG => {}
            CLOSE => {
                seen.close = frame.close_code();
                conn.send(&Frame::close(1000, "").unmasked());
                // RFC 6455 7.1.1: the server ends TCP first.
                conn.stream.shutdown(std::net::Shutdown::Write).unwrap();
                conn.expect_eof();
                return seen;
            }
            op => {
                let (opcode, mut payload, n) = partial.take().unwrap_or((op, Vec::new(), 0));
                payload.extend_from_slice(&frame.payload);
                if frame.fin {
                    seen.messages += 1;
                    if n > 0 {
                        seen.fragmented += 1;
                    }
                    conn.send(&Frame::new(opcode, &payload).unmasked());
                } else {
                    partial = Some((opcode, payload, n + 1));
                }
            }
        }
    }
}

#[test]
fn split_client_with_eight_senders_and_a_reader_at_once() {
    let (addr, server) = raw_server(validating_echo);
    let mut ws = connect(addr, Config::default());
    let (mut reader, writer) = ws.split().unwrap();

    let start = Arc::new(Barrier::new(SENDERS as usize + 1));
    let senders: Vec<_> = (0..SENDERS)
        .map(|t| {
            let writer = writer.clone();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                for i in 0..PER_SENDER {
                    let (msg, fragmented) = message_of(t, i);
                    if fragmented {
                        send_in_fragments(&writer, &msg);
                    } else {
                        writer.send(&msg).unwrap();
                    }
                    if i % 100 == 0 {
                        writer.ping(&i.to_be_bytes()).unwrap();
                    }
                }
            })
        })
        .collect();
    let receiving = thread::spawn(move || {
        let mut next = [0u32; SENDERS as usize];
        for _ in 0..SENDERS * PER_SENDER {
            let msg = reader
                .recv()
                .unwrap()
                .expect("closed before every echo arrived");
            let (t, i) = origin_of(&msg);
            // Each sender's messages come back in the order it sent them.
            assert_eq!(i, next[t as usize], "sender {t} out of order");
            next[t as usize] += 1;
            assert!(msg == message_of(t, i).0, "message {t}:{i} corrupted");
        }
        (reader, next)
    });
    start.wait();
    for s in senders {
        s.join().unwrap();
    }
    let (mut reader, next) = receiving.join().unwrap();
    assert_eq!(next, [PER_SENDER; SENDERS as usize]);

    reader.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(reader.state(), State::Closed);
    assert!(matches!(writer.send("late"), Err(Error::Closed)));

    let seen = server.join().unwrap();
    assert_eq!(seen.messages, (SENDERS * PER_SENDER) as usize);
    let fragmented = (0..PER_SENDER).filter(|i| i % 7 == 3).count() * SENDERS as usize;
    assert_eq!(seen.fragmented, fragmented);
    assert_eq!(seen.pings, (SENDERS * PER_SENDER.div_ceil(100)) as usize);
    assert_eq!(seen.close, Some(1000));
}

#[test]
fn split_server_echoes_while_reading_and_answers_pings() {
    let addr = serve(Config::default(), split_echo);
    let mut conn = RawConn::connect(addr);
    let count = 300u32;
    // The client writes everything before reading a byte, from a second handle; megabytes of
    // echo pile up meanwhile, which only a server that reads while it writes survives.
    let mut out = RawConn {
        stream: conn.stream.try_clone().unwrap(),
        buf: Vec::new(),
        expect_masked: false,
    };
    let writing = thread::spawn(move || {
        for i in 0..count {
            let body = bytes_of_len(if i % 10 == 0 {
                100_000
            } else {
                i as usize * 13
            });
            let mut msg = i.to_be_bytes().to_vec();
            msg.extend_from_slice(&body);
            if i % 5 == 0 {
                let (a, b) = msg.split_at(msg.len() / 2);
                out.write_raw(&frames(&[
                    Frame::binary(a).fin(false),
                    Frame::ping(format!("p{i}")),
                    Frame::cont(b),
                ]));
            } else {
                out.send(&Frame::binary(&msg));
            }
        }
    });
    let mut next = 0u32;
    let mut pongs = Vec::new();
    while next < count || pongs.len() < (count / 5) as usize {
        let frame = conn.read_frame();
        match frame.opcode {
            BINARY => {
                assert!(frame.fin, "the echo is one frame");
                let i = u32::from_be_bytes(frame.payload[..4].try_into().unwrap());
                assert_eq!(i, next, "echo out of order");
                let len = if i % 10 == 0 {
                    100_000
                } else {
                    i as usize * 13
                };
                assert_eq!(&frame.payload[4..], &bytes_of_len(len)[..], "echo {i}");
                next += 1;
            }
            PONG => pongs.push(String::from_utf8(frame.payload).unwrap()),
            op => panic!("unexpected opcode {op}"),
        }
    }
    writing.join().unwrap();
    let expected: Vec<String> = (0..count).step_by(5).map(|i| format!("p{i}")).collect();
    assert_eq!(pongs, expected, "every ping answered, in order");
    conn.send(&Frame::close(1000, ""));
    assert_eq!(conn.expect_close(), Some(1000));
}

// ------------------------------------------------------------------ every half learns

#[test]
fn when_the_peer_closes_every_half_learns_it() {
    let addr = serve(Config::default(), |ws| {
        // Close with 1000 after the first message.
        ws.recv()?;
        Ok(())
    });
    let mut ws = connect(addr, Config::default());
    let (mut reader, writer) = ws.split().unwrap();
    let other = writer.clone();
    writer.send("bye").unwrap();
    assert_eq!(reader.recv().unwrap(), None);
    assert_eq!(
        reader.close_frame().map(|f| f.code),
        Some(CloseCode::NORMAL)
    );
    assert_eq!(reader.state(), State::Closed);
    assert_eq!(
        reader.recv().unwrap(),
        None,
        "and again on every later call"
    );
    assert!(writer.is_closed() && other.is_closed());
    let from_thread = thread::spawn(move || other.send("late")).join().unwrap();
    assert!(matches!(from_thread, Err(Error::Closed)), "{from_thread:?}");
    assert!(matches!(writer.send("late"), Err(Error::Closed)));
    assert!(matches!(writer.ping(b""), Err(Error::Closed)));
    assert!(
        writer.close(CloseCode::NORMAL, "").is_ok(),
        "closing twice is a no-op"
    );
}

/// A writer's close returns as soon as the peer's answer completes the handshake, while the
/// reader that saw the answer is still held: it does not wait out the close timeout for the
/// reader to go.
#[test]
fn a_writer_close_returns_once_answered_while_the_reader_lives_on() {
    let close_timeout = std::time::Duration::from_secs(3);
    let mut ws = connect(
        echo_server(),
        Config::default().close_timeout(close_timeout),
    );
    let (mut reader, writer) = ws.split().unwrap();
    let (ended_tx, ended) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let reading = thread::spawn(move || {
        ended_tx.send(reader.recv().map(|m| m.is_none())).unwrap();
        // The reader stays alive until the test is done.
        let _ = released.recv_timeout(TIMEOUT * 2);
        drop(reader);
    });
    let started = std::time::Instant::now();
    let closed = writer.close(CloseCode::NORMAL, "");
    let took = started.elapsed();
    assert!(closed.is_ok(), "{closed:?}");
    assert!(
        took < close_timeout / 2,
        "the close took {took:?} (close timeout {close_timeout:?})"
    );
    assert!(
        ended.recv_timeout(TIMEOUT).unwrap().unwrap(),
        "a normal end"
    );
    release.send(()).unwrap();
    reading.join().unwrap();
}

#[test]
fn server_halves_learn_the_client_closed() {
    let (tx, results) = mpsc::channel();
    let addr = serve(Config::default(), move |ws| {
        let (mut reader, writer) = ws.split()?;
        let r = reader.recv();
        // 4000 is the client's error code: the reader's recv ends with it as an error.
        let end = matches!(&r, Err(Error::PeerClosed(f)) if f.code == CloseCode(4000));
        let code = reader.close_frame().map(|f| f.code);
        let send = writer.send("late");
        tx.send((end, code, matches!(send, Err(Error::Closed))))?;
        Ok(())
    });
    let mut conn = RawConn::connect(addr);
    conn.send(&Frame::close(4000, "done"));
    assert_eq!(conn.expect_close(), Some(4000));
    let (end, code, send_closed) = results.recv_timeout(TIMEOUT).unwrap();
    assert!(end, "reader's recv did not return PeerClosed(4000)");
    assert_eq!(code, Some(CloseCode(4000)));
    assert!(send_closed, "writer's send did not fail with Closed");
}

#[test]
fn dropping_every_half_says_going_away() {
    let (addr, server) = raw_server(|mut conn| {
        let frame = conn.read_frame();
        assert_eq!(frame.payload, b"still here");
        conn.expect_close()
    });
    let mut ws = connect(addr, Config::default());
    let (reader, writer) = ws.split().unwrap();
    let clones: Vec<_> = (0..4).map(|_| writer.clone()).collect();
    // The reader goes first; the writers still work.
    drop(reader);
    writer.send("still here").unwrap();
    thread::scope(|s| {
        for w in clones {
            s.spawn(move || drop(w));
        }
    });
    drop(writer);
    drop(ws);
    assert_eq!(server.join().unwrap(), Some(1001));
}

#[test]
fn halves_display_like_the_websocket() {
    let addr = serve(Config::default(), |ws| {
        ws.recv()?;
        Ok(())
    });
    let mut ws = connect(addr, Config::default());
    assert_eq!(ws.to_string(), "WebSocket(client, OPEN)");
    let (mut reader, writer) = ws.split().unwrap();
    assert_eq!(reader.to_string(), "Reader(client, OPEN)");
    assert_eq!(writer.to_string(), "Writer(client, OPEN)");
    let id = writer.id();
    assert_eq!(
        format!("{reader:?}"),
        format!("Reader {{ id: {id}, state: Open, .. }}")
    );
    assert_eq!(
        format!("{writer:?}"),
        format!("Writer {{ id: {id}, closed: false, .. }}")
    );
    writer.send("bye").unwrap();
    assert_eq!(reader.recv().unwrap(), None);
    assert_eq!(reader.to_string(), "Reader(client, CLOSED)");
    assert_eq!(writer.to_string(), "Writer(client, CLOSED)");
}

/// A failed write ends the connection for both halves at once: the reader ends instead of
/// handing out messages it had already read into its buffer (the connection is gone, and
/// nothing could answer them), and closing it is a closed connection's close, which does
/// nothing.
#[test]
fn after_the_writer_failed_the_reader_ends_and_its_close_does_nothing() {
    let (done, wait) = mpsc::channel::<()>();
    let (addr, server) = raw_server(move |mut conn: RawConn| {
        // Three messages in one write, so one read takes them all in; then no more reading.
        let three: Vec<u8> = ["one", "two", "three"]
            .iter()
            .flat_map(|m| Frame::text(m.as_bytes()).unmasked().to_bytes())
            .collect();
        conn.write_raw(&three);
        let _ = wait.recv_timeout(std::time::Duration::from_secs(30));
    });
    let config = Config::default().write_timeout(Some(std::time::Duration::from_millis(300)));
    let mut ws = connect(addr, config);
    let (mut reader, writer) = ws.split().unwrap();
    assert_eq!(reader.recv().unwrap(), Some(Message::from("one")));
    let err = writer.send(vec![0u8; 64 << 20]).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(writer.is_closed());
    reader.close(CloseCode::NORMAL, "").unwrap();
    assert!(
        matches!(reader.recv(), Err(Error::Closed)),
        "a message after the connection ended"
    );
    drop(done);
    server.join().unwrap();
}

/// With the reader gone nobody can see the peer's answer, so a writer's close sends its close
/// frame, shuts the socket and returns at once with `Ok`, instead of waiting out the close
/// timeout for an answer no one would read.
#[test]
fn a_writers_close_without_a_reader_does_not_wait_for_the_answer() {
    let (addr, server) = raw_server(|mut peer: RawConn| {
        let close = peer.read_close().close_code();
        peer.expect_eof();
        close
    });
    let config = Config::default().close_timeout(std::time::Duration::from_secs(5));
    let mut ws = connect(addr, config);
    let (reader, writer) = ws.split().unwrap();
    drop(reader);
    let started = std::time::Instant::now();
    writer.close(CloseCode::NORMAL, "bye").unwrap();
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(2), "waited {took:?}");
    assert_eq!(server.join().unwrap(), Some(1000));
}

/// A reader is an iterator over the messages: it yields each, then ends with the connection.
#[test]
fn a_reader_iterates_over_the_messages_until_the_close() {
    let (addr, server) = raw_server(|mut peer: RawConn| {
        peer.send(&Frame::text(b"one").unmasked());
        peer.send(&Frame::binary(b"two").unmasked());
        peer.send(&Frame::close(1000, "").unmasked());
        peer.read_close().close_code()
    });
    let mut ws = connect(addr, Config::default());
    let (reader, _writer) = ws.split().unwrap();
    let got: Vec<Message> = reader.map(Result::unwrap).collect();
    assert_eq!(
        got,
        [Message::from("one"), Message::Binary(b"two".to_vec())]
    );
    assert_eq!(server.join().unwrap(), Some(1000));
}

/// A reader takes a message as a stream within its timeout, and gives up with `Timeout` when
/// none comes in time; the connection goes on.
#[test]
fn a_readers_streamed_receive_has_a_timeout() {
    use std::io::Read;
    let (go, wait) = mpsc::channel::<()>();
    let (addr, server) = raw_server(move |mut peer: RawConn| {
        peer.send(&Frame::binary(b"streamed").unmasked());
        wait.recv().unwrap();
        peer.send(&Frame::text(b"later").unmasked());
        peer.read_close().close_code()
    });
    let mut ws = connect(addr, Config::default());
    let (mut reader, _writer) = ws.split().unwrap();
    let timeout = std::time::Duration::from_secs(5);
    let mut stream = reader.recv_stream_timeout(timeout).unwrap().unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"streamed");
    let short = std::time::Duration::from_millis(50);
    assert!(matches!(
        reader.recv_stream_timeout(short),
        Err(Error::Timeout)
    ));
    go.send(()).unwrap();
    assert_eq!(reader.recv().unwrap(), Some(Message::from("later")));
    reader.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(server.join().unwrap(), Some(1000));
}

/// A writer sends an unsolicited pong (a one-way heartbeat) with its payload.
#[test]
fn a_writer_sends_a_pong_of_its_own() {
    let (addr, server) = raw_server(|mut peer: RawConn| {
        let pong = peer.read_frame();
        let close = peer.read_close().close_code();
        (pong.opcode, pong.payload, close)
    });
    let mut ws = connect(addr, Config::default());
    let (mut reader, writer) = ws.split().unwrap();
    writer.pong(b"beat").unwrap();
    let _ = reader.close(CloseCode::NORMAL, "");
    assert_eq!(server.join().unwrap(), (PONG, b"beat".to_vec(), Some(1000)));
}
