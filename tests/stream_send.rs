//! Messages sent as streams (`send_stream`, `send_from`) over loopback: what the peer sees frame
//! by frame (few frames for many writes, one compressed message over many frames, pongs between
//! a split socket's fragments, other threads' messages after the end), text checked as it is
//! written, a message dropped unfinished, a close in the middle, a stalled peer, and
//! tungstenite as an independent peer. The memory bound of a 100 MiB streamed send is in
//! `tests/stream_heap.rs`, whose binary counts the heap.

mod support;

use std::io::{ErrorKind, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use syncws::{CloseCode, Config, Error, InputError, Message, MessageKind, MessageWriter};

const F: usize = MessageWriter::FRAGMENT_SIZE;

/// Reads frames from the server until the final frame of a data message; control frames on
/// the way are kept too, in order.
fn read_message_frames(raw: &mut RawConn) -> Vec<Frame> {
    let mut frames = Vec::new();
    for _ in 0..100_000 {
        let f = raw.read_frame();
        let end = f.fin && matches!(f.opcode, TEXT | BINARY | CONTINUATION);
        frames.push(f);
        if end {
            return frames;
        }
    }
    panic!("no final frame in 100,000 frames");
}

/// The data frames of `frames` in order, checked to be one message: a text or binary frame
/// first, continuations after it, only the last final.
fn one_message(frames: &[Frame]) -> Vec<&Frame> {
    let data: Vec<&Frame> = frames.iter().filter(|f| f.opcode < CLOSE).collect();
    let (first, rest) = data.split_first().expect("a data frame");
    assert!(matches!(first.opcode, TEXT | BINARY), "{first:?}");
    assert!(rest.iter().all(|f| f.opcode == CONTINUATION));
    let last = data.len() - 1;
    for (i, f) in data.iter().enumerate() {
        assert_eq!(f.fin, i == last, "frame {i} of {}", data.len());
    }
    data
}

fn payload(frames: &[&Frame]) -> Vec<u8> {
    frames.iter().flat_map(|f| f.payload.clone()).collect()
}

#[test]
fn many_small_writes_become_few_full_frames() {
    let data = bytes_of_len(200_000);
    let sent = data.clone();
    let addr = serve(Config::default(), move |ws| {
        let mut message = ws.send_stream(MessageKind::Binary)?;
        for piece in sent.chunks(10) {
            message.write_all(piece)?;
        }
        message.finish()?;
        while ws.recv()?.is_some() {}
        Ok(())
    });
    let mut raw = RawConn::connect(addr);
    let frames = read_message_frames(&mut raw);
    let data_frames = one_message(&frames);
    // 20,000 writes: one frame per 64 KiB, every one full but the last.
    assert_eq!(data_frames.len(), data.len().div_ceil(F));
    assert!(data_frames[..3].iter().all(|f| f.payload.len() == F));
    assert_eq!(data_frames[0].opcode, BINARY);
    assert_eq!(payload(&data_frames), data);
    raw.send(&Frame::close(1000, ""));
    assert_eq!(raw.read_close().close_code(), Some(1000));
}

#[test]
fn text_may_split_characters_across_writes_and_invalid_bytes_are_refused() {
    let text = text_of_len(150_000);
    let sent = text.clone();
    let (tx, rx) = mpsc::channel();
    let addr = serve(Config::default(), move |ws| {
        let mut message = ws.send_stream(MessageKind::Text)?;
        // Pieces of 7 bytes cut through two-, three- and four-byte characters.
        for piece in sent.as_bytes().chunks(7) {
            message.write_all(piece)?;
        }
        let refused = message.write(b"\xc3(").map_err(Error::from);
        message.write_all(" the end".as_bytes())?;
        message.finish()?;
        tx.send(refused.map(|_| ())).unwrap();
        while ws.recv()?.is_some() {}
        Ok(())
    });
    // tungstenite checks the text itself.
    let (mut peer, _) = tungstenite::connect(ws_url(addr, "/")).unwrap();
    let got = peer.read().unwrap();
    assert_eq!(got, tungstenite::Message::text(text + " the end"));
    let refused = rx.recv_timeout(TIMEOUT).unwrap();
    assert!(
        matches!(refused, Err(Error::InvalidInput(InputError::InvalidUtf8))),
        "{refused:?}"
    );
    peer.close(None).unwrap();
}

#[test]
fn a_text_message_ending_inside_a_character_is_not_sent_whole() {
    let (tx, rx) = mpsc::channel();
    let addr = serve(Config::default(), move |ws| {
        let mut message = ws.send_stream(MessageKind::Text)?;
        message.write_all("é".repeat(F).as_bytes())?; // two fragments' worth
        message.write_all(b"\xe2\x82")?; // the start of a euro sign, never completed
        tx.send(message.finish()).unwrap();
        while ws.recv()?.is_some() {}
        Ok(())
    });
    let mut raw = RawConn::connect(addr);
    // The finish fails; the message is given up with 1011, its last bytes never sent.
    let mut frames = Vec::new();
    let close = loop {
        let f = raw.read_frame();
        if f.opcode == CLOSE {
            break f;
        }
        assert!(!f.fin, "{f:?}");
        frames.push(f);
    };
    assert_eq!(close.close_code(), Some(1011));
    assert_eq!(frames[0].opcode, TEXT);
    let sent: Vec<u8> = frames.iter().flat_map(|f| f.payload.clone()).collect();
    assert_eq!(sent, "é".repeat(F).as_bytes());
    let finished = rx.recv_timeout(TIMEOUT).unwrap();
    assert!(
        matches!(finished, Err(Error::InvalidInput(InputError::InvalidUtf8))),
        "{finished:?}"
    );
    raw.send(&Frame::close(1011, ""));
    raw.expect_eof();
}

#[test]
fn a_message_dropped_unfinished_is_closed_with_1011_unless_nothing_went_out() {
    let addr = serve(Config::default(), move |ws| {
        // Nothing went out yet: dropping sends nothing and the connection goes on.
        let mut message = ws.send_stream(MessageKind::Binary)?;
        message.write_all(b"never sent")?;
        drop(message);
        ws.send("after")?;
        // Fragments went out: the drop fails the connection with 1011.
        let mut message = ws.send_stream(MessageKind::Binary)?;
        message.write_all(&vec![1; 2 * F + 1])?;
        drop(message);
        assert!(matches!(ws.send("too late"), Err(Error::Closed)));
        // The next receive completes the closing handshake.
        assert!(ws.recv()?.is_none());
        Ok(())
    });
    let mut raw = RawConn::connect(addr);
    let after = raw.read_frame();
    assert_eq!((after.opcode, after.fin), (TEXT, true));
    assert_eq!(after.payload, b"after");
    let frames: Vec<Frame> = (0..2).map(|_| raw.read_frame()).collect();
    assert!(frames.iter().all(|f| !f.fin), "{frames:?}");
    assert_eq!((frames[0].opcode, frames[1].opcode), (BINARY, CONTINUATION));
    // Right behind the fragments, nothing in between.
    let close = raw.read_frame();
    assert_eq!(close.opcode, CLOSE, "{close:?}");
    assert_eq!(close.close_code(), Some(1011));
    assert_eq!(close.payload[2..], *b"message abandoned");
    raw.send(&Frame::close(1011, ""));
    raw.expect_eof();
}

/// As above, through a split writer: the message slot's guard gives the message up with 1011
/// once fragments went out, and the connection is closed for both halves.
#[test]
fn a_split_writers_message_dropped_unfinished_is_closed_with_1011() {
    let addr = serve(Config::default(), move |ws| {
        let (mut reader, writer) = ws.split()?;
        let mut message = writer.send_stream(MessageKind::Binary)?;
        message.write_all(&vec![1; 2 * F + 1])?;
        drop(message);
        assert!(matches!(writer.send("too late"), Err(Error::Closed)));
        // The reader completes the closing handshake.
        assert!(reader.recv()?.is_none());
        Ok(())
    });
    let mut raw = RawConn::connect(addr);
    let frames: Vec<Frame> = (0..2).map(|_| raw.read_frame()).collect();
    assert!(frames.iter().all(|f| !f.fin), "{frames:?}");
    let close = raw.read_frame();
    assert_eq!(close.opcode, CLOSE, "{close:?}");
    assert_eq!(close.close_code(), Some(1011));
    assert_eq!(close.payload[2..], *b"message abandoned");
    raw.send(&Frame::close(1011, ""));
    raw.expect_eof();
}

/// The abandoned message's 1011 is the socket's goodbye: dropping it (or, once split, its last
/// half) without waiting for the answer sends no 1001 after it.
#[test]
fn a_socket_dropped_after_giving_up_a_message_sends_no_second_close() {
    for split in [false, true] {
        let (addr, server) = raw_server(|mut peer| {
            let frames: Vec<Frame> = (0..2).map(|_| peer.read_frame()).collect();
            assert!(frames.iter().all(|f| !f.fin), "{frames:?}");
            let close = peer.read_frame();
            peer.expect_eof();
            close.close_code()
        });
        let mut ws = connect(addr, Config::default());
        if split {
            let (reader, writer) = ws.split().unwrap();
            let mut message = writer.send_stream(MessageKind::Binary).unwrap();
            message.write_all(&vec![1; 2 * F + 1]).unwrap();
            drop(message);
            drop(reader);
            drop(writer);
        } else {
            let mut message = ws.send_stream(MessageKind::Binary).unwrap();
            message.write_all(&vec![1; 2 * F + 1]).unwrap();
            drop(message);
        }
        drop(ws);
        assert_eq!(server.join().unwrap(), Some(1011), "split: {split}");
    }
}

#[test]
fn our_client_receives_a_streamed_message_dropped_unfinished_as_the_peers_error() {
    let addr = serve(Config::default(), move |ws| {
        let mut message = ws.send_stream(MessageKind::Binary)?;
        message.write_all(&vec![1; 3 * F])?;
        drop(message);
        while ws.recv()?.is_some() {}
        Ok(())
    });
    let mut ws = connect(addr, Config::default());
    match ws.recv_timeout(TIMEOUT) {
        Err(Error::PeerClosed(frame)) => assert_eq!(frame.code, CloseCode::INTERNAL_ERROR),
        other => panic!("expected the server's 1011: {other:?}"),
    }
}

#[test]
fn send_from_goes_to_tungstenite_whole_both_kinds_and_masked() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        guard(&stream);
        let mut ws = tungstenite::accept(stream).unwrap();
        let got = (ws.read().unwrap(), ws.read().unwrap(), ws.read().unwrap());
        let _ = ws.close(None);
        while ws.read().is_ok() {}
        got
    });
    let data = bytes_of_len(3 * F + 12_345);
    let text = text_of_len(2 * F + 3);
    let mut ws = connect(addr, Config::default());
    let n = ws.send_from(MessageKind::Binary, &data[..]).unwrap();
    assert_eq!(n, data.len() as u64);
    ws.send_from(MessageKind::Text, text.as_bytes()).unwrap();
    ws.send_from(MessageKind::Binary, std::io::empty()).unwrap();
    // tungstenite closes once it has all three; our answer lets it finish.
    assert!(ws.recv_timeout(TIMEOUT).unwrap().is_none());
    let (binary, got_text, empty) = peer.join().unwrap();
    assert_eq!(binary, tungstenite::Message::binary(data));
    assert_eq!(got_text, tungstenite::Message::text(text));
    assert_eq!(empty, tungstenite::Message::binary(Vec::new()));
}

/// A reader that gives its steps in order: bytes (as much as fits per read) or an error.
struct Script(std::collections::VecDeque<Result<Vec<u8>, ErrorKind>>);

impl std::io::Read for Script {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        match self.0.pop_front() {
            None => Ok(0),
            Some(Err(kind)) => Err(kind.into()),
            Some(Ok(mut data)) => {
                let n = data.len().min(out.len());
                out[..n].copy_from_slice(&data[..n]);
                if n < data.len() {
                    self.0.push_front(Ok(data.split_off(n)));
                }
                Ok(n)
            }
        }
    }
}

#[test]
fn send_from_reads_again_after_an_interrupt_and_closes_with_1011_when_the_reader_fails() {
    let head = bytes_of_len(2 * F + 1);
    let sent = head.clone();
    let addr = serve(Config::default(), move |ws| {
        let steps = [
            Ok(sent.clone()),
            Err(ErrorKind::Interrupted),
            Ok(b"tail".to_vec()),
        ];
        let n = ws.send_from(MessageKind::Binary, Script(steps.into()))?;
        assert_eq!(n, sent.len() as u64 + 4);
        // Fragments went out before the reader failed: its error, and the message is given up.
        let steps = [Ok(sent.clone()), Err(ErrorKind::Other)];
        match ws.send_from(MessageKind::Binary, Script(steps.into())) {
            Err(Error::Io(e)) => assert_eq!(e.kind(), ErrorKind::Other),
            other => panic!("{other:?}"),
        }
        assert!(matches!(ws.send("too late"), Err(Error::Closed)));
        assert!(ws.recv()?.is_none());
        Ok(())
    });
    let mut raw = RawConn::connect(addr);
    let frames = read_message_frames(&mut raw);
    assert_eq!(
        payload(&one_message(&frames)),
        [&head[..], b"tail"].concat()
    );
    let frames: Vec<Frame> = (0..2).map(|_| raw.read_frame()).collect();
    assert!(frames.iter().all(|f| !f.fin), "{frames:?}");
    let close = raw.read_frame();
    assert_eq!(close.opcode, CLOSE, "{close:?}");
    assert_eq!(close.close_code(), Some(1011));
    raw.send(&Frame::close(1011, ""));
    raw.expect_eof();
}

#[test]
fn a_split_writer_sends_from_a_reader_and_counts_the_bytes() {
    let addr = echo_server();
    let mut ws = connect(addr, Config::default());
    let (mut reader, writer) = ws.split().unwrap();
    let data = bytes_of_len(2 * F + 99);
    let n = writer.send_from(MessageKind::Binary, &data[..]).unwrap();
    assert_eq!(n, data.len() as u64);
    let echoed = reader.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(echoed, Some(Message::Binary(data)));
}

#[test]
fn our_receiver_gets_streamed_messages_whole_and_as_streams() {
    let addr = echo_server();
    let mut ws = connect(addr, Config::default());
    let data = bytes_of_len(5 * F + 17);
    let mut message = ws.send_stream(MessageKind::Binary).unwrap();
    for piece in data.chunks(1000) {
        message.write_all(piece).unwrap();
    }
    message.finish().unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Binary(data.clone())));
    // A streamed send read as a stream (the echo server assembles it in between).
    ws.send_from(MessageKind::Binary, &data[..]).unwrap();
    let mut stream = ws.recv_stream().unwrap().unwrap();
    let mut got = Vec::new();
    std::io::copy(&mut stream, &mut got).unwrap();
    assert_eq!(got, data);
    ws.close(CloseCode::NORMAL, "").unwrap();
}

#[cfg(feature = "deflate")]
#[test]
fn a_compressed_stream_is_one_message_over_many_frames() {
    use syncws::DeflateConfig;
    let text = json_like(10 * F + 99);
    for keep_context in [false, true] {
        let deflate = DeflateConfig::default().no_context_takeover(!keep_context);
        let config = Config::default().deflate(Some(deflate));
        let sent = text.clone();
        let addr = serve(config.clone(), move |ws| {
            for _ in 0..2 {
                let mut message = ws.send_stream(MessageKind::Text)?;
                for piece in sent.as_bytes().chunks(999) {
                    message.write_all(piece)?;
                }
                message.finish()?;
            }
            while ws.recv()?.is_some() {}
            Ok(())
        });
        let offer = if keep_context {
            "permessage-deflate"
        } else {
            "permessage-deflate; server_no_context_takeover"
        };
        let (mut raw, _) =
            RawConn::connect_with_headers(addr, &format!("Sec-WebSocket-Extensions: {offer}\r\n"));
        // An independent inflater (flate2's raw deflate), one for the connection when the
        // server keeps its context, so the second message must refer back to the first.
        let mut inflater = flate2::Decompress::new(false);
        for round in 0..2 {
            let frames = read_message_frames(&mut raw);
            let data = one_message(&frames);
            assert!(data.len() > 1, "round {round}: {} frames", data.len());
            // RFC 7692 6.1: RSV1 on the first frame only.
            assert_eq!(data[0].rsv, 4);
            assert!(data[1..].iter().all(|f| f.rsv == 0));
            let mut wire = payload(&data);
            wire.extend_from_slice(&[0, 0, 0xff, 0xff]);
            if !keep_context {
                inflater = flate2::Decompress::new(false);
            }
            let mut out = Vec::with_capacity(text.len() + 1024);
            inflater
                .decompress_vec(&wire, &mut out, flate2::FlushDecompress::Sync)
                .unwrap();
            assert_eq!(
                out,
                text.as_bytes(),
                "round {round}, context {keep_context}"
            );
            assert!(wire.len() < text.len() / 3, "compressed to {}", wire.len());
        }
        raw.send(&Frame::close(1000, ""));
        assert_eq!(raw.read_close().close_code(), Some(1000));

        // And both ways through our own client and server.
        let addr = echo_server_with(config.clone());
        let mut ws = connect(addr, config);
        assert!(ws.compression().is_some());
        for _ in 0..2 {
            ws.send_from(MessageKind::Text, text.as_bytes()).unwrap();
            assert_eq!(ws.recv().unwrap(), Some(Message::Text(text.clone())));
        }
        ws.close(CloseCode::NORMAL, "").unwrap();
    }
}

/// A server whose handler splits: a thread streams a message through `stream` (given the
/// writer and what the reader received), while the handler's reader answers pings and forwards
/// messages to it.
fn split_server<F>(stream: F) -> (std::net::SocketAddr, mpsc::Receiver<syncws::Result<()>>)
where
    F: Fn(syncws::Writer, mpsc::Receiver<Message>) -> syncws::Result<()>
        + Send
        + Sync
        + Clone
        + 'static,
{
    let (done_tx, done_rx) = mpsc::channel();
    let addr = serve(Config::default(), move |ws| {
        let (mut reader, writer) = ws.split()?;
        let (tx, rx) = mpsc::channel();
        let stream = stream.clone();
        let done_tx = done_tx.clone();
        let streamer = thread::spawn(move || done_tx.send(stream(writer, rx)));
        while let Some(msg) = reader.recv()? {
            let _ = tx.send(msg);
        }
        drop(tx);
        let _ = streamer.join();
        Ok(())
    });
    (addr, done_rx)
}

#[test]
fn a_split_socket_answers_pings_between_the_fragments_of_a_stream() {
    let (addr, done) = split_server(|writer, from_reader| {
        let mut message = writer.send_stream(MessageKind::Binary)?;
        message.write_all(&vec![1; F + 1])?; // one fragment out, one byte gathered
        // The peer pings, then says "go": the reader has answered the ping by then.
        let go = from_reader.recv_timeout(TIMEOUT).expect("go");
        assert_eq!(go, Message::Text("go".into()));
        message.write_all(&vec![2; 2 * F])?;
        message.finish()
    });
    let mut raw = RawConn::connect(addr);
    let first = raw.read_frame();
    assert_eq!((first.opcode, first.fin), (BINARY, false));
    raw.send(&Frame::ping(b"between"));
    raw.send(&Frame::text("go"));
    let mut frames = vec![first];
    frames.extend(read_message_frames(&mut raw));
    let kinds: Vec<(u8, bool)> = frames.iter().map(|f| (f.opcode, f.fin)).collect();
    let pong = frames
        .iter()
        .position(|f| f.opcode == PONG)
        .expect("a pong");
    assert_eq!(frames[pong].payload, b"between");
    assert!(pong > 0 && pong < frames.len() - 1, "{kinds:?}");
    let data = one_message(&frames);
    assert_eq!(payload(&data).len(), 3 * F + 1);
    done.recv_timeout(TIMEOUT).unwrap().unwrap();
    raw.send(&Frame::close(1000, ""));
    assert_eq!(raw.read_close().close_code(), Some(1000));
}

/// Streams a message whose fragments are paced by the peer: after each fragment the stream
/// waits for the peer's "next" (see [`read_paced`]), leaving the frame lock free for a round
/// trip each time, in which anything not kept out by the message slot would get in. `meanwhile`
/// runs after the first fragment.
fn paced_stream(
    writer: &syncws::Writer,
    from_reader: &mpsc::Receiver<Message>,
    meanwhile: impl FnOnce(),
) -> syncws::Result<()> {
    let mut message = writer.send_stream(MessageKind::Binary)?;
    message.write_all(&[1; F])?;
    message.flush()?;
    meanwhile();
    for round in 0..5 {
        let next = from_reader.recv_timeout(TIMEOUT).expect("next");
        assert_eq!(next, Message::Text("next".into()));
        if round < 4 {
            message.write_all(&[2; F])?;
            message.flush()?;
        }
    }
    message.write_all(b"the end")?;
    message.finish()
}

/// The peer's side of [`paced_stream`]: reads the message, saying "next" after each fragment
/// but the last; then the frame that follows it.
fn read_paced(raw: &mut RawConn) -> (Vec<Frame>, Frame) {
    let mut frames = Vec::new();
    for _ in 0..100 {
        let f = raw.read_frame();
        let last = f.fin;
        frames.push(f);
        if last {
            break;
        }
        raw.send(&Frame::text("next"));
    }
    let data = one_message(&frames);
    assert_eq!(data.len(), 6, "{frames:?}");
    assert_eq!(payload(&data).len(), 5 * F + 7);
    (frames, raw.read_frame())
}

#[test]
fn another_threads_send_waits_for_the_stream_and_never_interleaves() {
    let (addr, done) = split_server(|writer, from_reader| {
        let other = writer.clone();
        let mut interloper = None;
        paced_stream(&writer, &from_reader, || {
            let (trying_tx, trying_rx) = mpsc::channel();
            interloper = Some(thread::spawn(move || {
                trying_tx.send(()).unwrap();
                other.send("interloper")
            }));
            trying_rx.recv_timeout(TIMEOUT).unwrap();
        })?;
        interloper.expect("spawned").join().unwrap()
    });
    let mut raw = RawConn::connect(addr);
    let (_, next) = read_paced(&mut raw);
    assert_eq!((next.opcode, next.fin), (TEXT, true));
    assert_eq!(next.payload, b"interloper");
    done.recv_timeout(TIMEOUT).unwrap().unwrap();
    raw.send(&Frame::close(1000, ""));
    assert_eq!(raw.read_close().close_code(), Some(1000));
}

#[test]
fn a_rooms_frames_wait_for_a_members_streamed_message() {
    let hub = syncws::Hub::new().unwrap();
    let members = hub.clone();
    let (done_tx, done) = mpsc::channel();
    let addr = serve(Config::default(), move |ws| {
        let (mut reader, writer) = ws.split()?;
        members.join(ROOM, &writer)?;
        let (tx, from_reader) = mpsc::channel();
        let room = members.clone();
        let done_tx = done_tx.clone();
        let streamer = thread::spawn(move || {
            // Published while the message is under way: the hub's flusher, which tries the
            // member's socket at once, must not slip it in between the fragments.
            let sent = paced_stream(&writer, &from_reader, || {
                let _ = room.publish(ROOM, "room news");
            });
            done_tx.send(sent).unwrap();
        });
        while let Some(msg) = reader.recv()? {
            let _ = tx.send(msg);
        }
        let _ = streamer.join();
        Ok(())
    });
    let mut raw = RawConn::connect(addr);
    let (_, next) = read_paced(&mut raw);
    assert_eq!((next.opcode, &next.payload[..]), (TEXT, &b"room news"[..]));
    done.recv_timeout(TIMEOUT).unwrap().unwrap();
    raw.send(&Frame::close(1000, ""));
    assert_eq!(raw.read_close().close_code(), Some(1000));
}

#[test]
fn a_close_sent_or_received_mid_message_fails_the_streams_next_write() {
    for peer_closes in [false, true] {
        let (addr, done) = split_server(move |writer, from_reader| {
            let mut message = writer.send_stream(MessageKind::Binary)?;
            message.write_all(&vec![1; F + 1])?;
            if peer_closes {
                // The reader forwards nothing: its recv ends with the peer's close.
                assert!(from_reader.recv_timeout(TIMEOUT).is_err());
            } else {
                // Another thread closes; close waits for the peer's answer.
                let closer = writer.clone();
                thread::spawn(move || closer.close(CloseCode::NORMAL, "bye"))
                    .join()
                    .unwrap()?;
            }
            let err = message.write(b"x").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err}");
            assert!(matches!(Error::from(err), Error::Closed));
            assert!(matches!(message.finish(), Err(Error::Closed)));
            Ok(())
        });
        let mut raw = RawConn::connect(addr);
        let first = raw.read_frame();
        assert_eq!((first.opcode, first.fin), (BINARY, false));
        if peer_closes {
            raw.send(&Frame::close(1000, ""));
            assert_eq!(raw.read_close().close_code(), Some(1000));
        } else {
            let close = raw.read_frame();
            assert_eq!(close.opcode, CLOSE, "{close:?}");
            assert_eq!(close.close_code(), Some(1000));
            raw.send(&Frame::close(1000, ""));
        }
        done.recv_timeout(TIMEOUT).unwrap().unwrap();
        raw.expect_eof();
    }
}

#[test]
fn a_stalled_peer_fails_the_stream_within_the_write_timeout() {
    let timeout = Duration::from_millis(300);
    let (tx, rx) = mpsc::channel();
    let config = Config::default().write_timeout(Some(timeout));
    let addr = serve(config, move |ws| {
        let mut message = ws.send_stream(MessageKind::Binary)?;
        let piece = vec![0u8; F];
        // At most 1 GiB: far more than loopback buffers take from a peer that reads nothing.
        for _ in 0..(1 << 30) / F {
            let started = Instant::now();
            if let Err(e) = message.write_all(&piece) {
                tx.send((e.kind(), started.elapsed())).unwrap();
                return Ok(());
            }
        }
        panic!("1 GiB went to a peer that reads nothing");
    });
    let raw = RawConn::connect(addr); // never reads
    let (kind, took) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(
        matches!(kind, ErrorKind::TimedOut | ErrorKind::WouldBlock),
        "{kind:?}"
    );
    // The timeout plus one system call, with room for a loaded machine.
    assert!(took < timeout + Duration::from_secs(2), "took {took:?}");
    drop(raw);
}

#[test]
fn an_unsplit_socket_answers_a_ping_after_its_streamed_message() {
    let addr = serve(Config::default(), move |ws| {
        let mut message = ws.send_stream(MessageKind::Binary)?;
        message.write_all(&vec![3; 3 * F])?;
        message.finish()?;
        while ws.recv()?.is_some() {}
        Ok(())
    });
    let mut raw = RawConn::connect(addr);
    raw.send(&Frame::ping(b"during"));
    let frames = read_message_frames(&mut raw);
    assert!(
        frames.iter().all(|f| f.opcode != PONG),
        "no pong mid-message"
    );
    assert_eq!(one_message(&frames).len(), 3);
    let pong = raw.read_frame();
    assert_eq!((pong.opcode, &pong.payload[..]), (PONG, &b"during"[..]));
    raw.send(&Frame::close(1000, ""));
    assert_eq!(raw.read_close().close_code(), Some(1000));
}

#[test]
fn a_close_mid_message_goes_out_without_the_rooms_queued_frames() {
    let hub = syncws::Hub::new().unwrap();
    let members = hub.clone();
    let (done_tx, done) = mpsc::channel();
    let addr = serve(Config::default(), move |ws| {
        let (mut reader, writer) = ws.split()?;
        members.join(ROOM, &writer)?;
        let mut message = writer.send_stream(MessageKind::Binary)?;
        message.write_all(&[1; F])?;
        message.flush()?;
        // Queued for the member while its message is under way, then a close: the close may
        // come between fragments, the queued message may not (it is dropped with the
        // connection).
        let _ = members.publish(ROOM, "room news");
        let closer = writer.clone();
        let closing = thread::spawn(move || closer.close(CloseCode::NORMAL, ""));
        while reader.recv()?.is_some() {}
        done_tx.send(closing.join().unwrap()).unwrap();
        drop(message);
        Ok(())
    });
    let mut raw = RawConn::connect(addr);
    let first = raw.read_frame();
    assert_eq!((first.opcode, first.fin), (BINARY, false));
    let next = raw.read_frame();
    assert_eq!(next.opcode, CLOSE, "{next:?}");
    raw.send(&Frame::close(1000, ""));
    done.recv_timeout(TIMEOUT).unwrap().unwrap();
    raw.expect_eof();
}

#[test]
fn a_writers_fragments_of_mixed_kinds_close_with_1011() {
    let (addr, done) = split_server(|writer, _| {
        let mixed = writer.send_fragmented([Message::Text("a".into()), Message::Binary(vec![1])]);
        assert!(matches!(mixed, Err(Error::InvalidInput(_))), "{mixed:?}");
        assert!(matches!(writer.send("after"), Err(Error::Closed)));
        Ok(())
    });
    let mut raw = RawConn::connect(addr);
    let first = raw.read_frame();
    assert_eq!((first.opcode, first.fin), (TEXT, false));
    let close = raw.read_frame();
    assert_eq!(close.opcode, CLOSE, "{close:?}");
    assert_eq!(close.close_code(), Some(1011));
    raw.send(&Frame::close(1011, ""));
    done.recv_timeout(TIMEOUT).unwrap().unwrap();
}

/// A send waiting for another thread's streamed message to finish is woken when a close goes
/// out meanwhile, and fails with `Closed` at once: it does not wait on until the stream ends.
#[test]
fn a_send_waiting_for_a_streamed_message_fails_at_once_when_a_close_goes_out() {
    let addr = echo_server();
    let mut ws = connect(addr, Config::default());
    let (mut reader, writer) = ws.split().unwrap();
    let (streaming, waiting, closing) = (writer.clone(), writer.clone(), writer);
    let (started_tx, started) = mpsc::channel();
    let (finish_tx, finish) = mpsc::channel::<()>();
    let streamer = thread::spawn(move || {
        let mut message = streaming.send_stream(MessageKind::Binary).unwrap();
        message.write_all(&[1; 100]).unwrap();
        message.flush().unwrap();
        started_tx.send(()).unwrap();
        let _ = finish.recv_timeout(TIMEOUT);
        drop(message);
    });
    started.recv_timeout(TIMEOUT).unwrap();
    let (result_tx, result) = mpsc::channel();
    let sender = thread::spawn(move || {
        let _ = result_tx.send(waiting.send("after the stream"));
    });
    thread::sleep(Duration::from_millis(200));
    assert!(result.try_recv().is_err(), "the send waits for the stream");
    let closer = thread::spawn(move || closing.close(CloseCode::NORMAL, "bye"));
    let got = result
        .recv_timeout(Duration::from_secs(2))
        .expect("the waiting send was woken by the close");
    assert!(matches!(got, Err(Error::Closed)), "{got:?}");
    finish_tx.send(()).unwrap();
    streamer.join().unwrap();
    sender.join().unwrap();
    while let Ok(Some(_)) = reader.recv_timeout(TIMEOUT) {}
    let _ = closer.join().unwrap();
}
