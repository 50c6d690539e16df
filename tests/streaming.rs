//! Messages received as streams (`recv_stream`): what the application reads, what the peer sees
//! (pongs between fragments, close codes), how a stream ends when the connection does, a dropped
//! stream skipped, deadlines on its reads, and larger messages over loopback, compressed or not,
//! on whole and split sockets.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use support::*;
use syncws::{
    Client, Config, Error, Message, MessageKind, ProtocolError, Role, Transport, WebSocket,
};

fn client(addr: std::net::SocketAddr, config: Config) -> WebSocket {
    Client::builder()
        .config(config)
        .connect(&ws_url(addr, "/"))
        .unwrap()
}

/// The peer's frames as a server sends them: unmasked.
fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Frame {
    Frame::new(opcode, payload).fin(fin).unmasked()
}

/// Reads a stream to its end in reads of `piece` bytes, or to its first error.
fn read_all(reader: &mut impl Read, piece: usize) -> (Vec<u8>, Option<std::io::Error>) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; piece];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Some(e)),
        }
    }
}

/// The syncws error inside a stream's read error.
fn inner(e: std::io::Error) -> Error {
    Error::from(e)
}

#[test]
fn pings_between_fragments_are_answered_and_the_heartbeat_spares_a_slow_reader() {
    let data = bytes_of_len(200_000);
    let sent = data.clone();
    let (addr, server) = raw_server(move |mut peer| {
        let parts: Vec<&[u8]> = sent.chunks(70_000).collect();
        peer.send(&frame(BINARY, false, parts[0]));
        peer.send(&frame(PING, true, b"a"));
        peer.send(&frame(CONTINUATION, false, parts[1]));
        peer.send(&frame(PING, true, b"b"));
        peer.send(&frame(CONTINUATION, true, parts[2]));
        // Answer the client's heartbeat; note its pongs, until it closes.
        let mut pongs = Vec::new();
        loop {
            let f = peer.read_frame();
            match f.opcode {
                PING => peer.send(&frame(PONG, true, &f.payload)),
                PONG => pongs.push(f.payload),
                CLOSE => return (pongs, f.close_code()),
                other => panic!("opcode {other}"),
            }
        }
    });
    // A heartbeat much shorter than the pauses between the application's reads.
    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(20)))
        .pong_timeout(Duration::from_millis(60));
    let mut ws = client(addr, config);
    let mut got = Vec::new();
    {
        let mut stream = ws.recv_stream().unwrap().unwrap();
        assert_eq!(stream.kind(), MessageKind::Binary);
        let shown = "MessageReader { kind: Binary, finished: false, .. }";
        assert_eq!(format!("{stream:?}"), shown);
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            thread::sleep(Duration::from_millis(100));
        }
        assert!(stream.is_finished());
        assert_eq!(format!("{stream:?}"), shown.replace("false", "true"));
    }
    assert_eq!(got, data);
    ws.close(syncws::CloseCode::NORMAL, "").unwrap();
    let (pongs, code) = server.join().unwrap();
    assert_eq!(pongs, [b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(code, Some(1000));
}

#[test]
fn a_close_in_the_middle_cuts_the_stream_short_and_recv_reports_it_as_usual() {
    for (code, normal) in [(1000u16, true), (1001, true), (4000, false)] {
        let (addr, server) = raw_server(move |mut peer| {
            peer.send(&frame(TEXT, false, b"half a mess"));
            peer.send(&Frame::close(code, "bye").unmasked());
            peer.read_close().close_code()
        });
        let mut ws = client(addr, Config::default());
        let mut stream = ws.recv_stream().unwrap().unwrap();
        let (got, err) = read_all(&mut stream, 4);
        assert_eq!(got, b"half a mess");
        let err = err.expect("a message cut short is no complete message");
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
        match inner(err) {
            Error::PeerClosed(frame) => assert_eq!(frame.code.0, code),
            other => panic!("{other:?}"),
        }
        // Later reads do not pretend the message ended.
        assert!(stream.read(&mut [0u8; 8]).is_err());
        match ws.recv() {
            Ok(None) => assert!(normal, "{code}"),
            Err(Error::PeerClosed(frame)) => {
                assert!(!normal);
                assert_eq!(frame.code.0, code);
            }
            other => panic!("{code}: {other:?}"),
        }
        assert_eq!(server.join().unwrap(), Some(code));
    }
}

#[test]
fn a_connection_dropped_in_the_middle_is_an_error_not_an_end() {
    let (addr, server) = raw_server(|mut peer| {
        peer.send(&frame(BINARY, false, b"part"));
        peer.stream.shutdown(std::net::Shutdown::Both).unwrap();
    });
    let mut ws = client(addr, Config::default());
    let mut stream = ws.recv_stream().unwrap().unwrap();
    let (got, err) = read_all(&mut stream, 100);
    assert_eq!(got, b"part");
    assert_eq!(err.unwrap().kind(), ErrorKind::UnexpectedEof);
    assert!(ws.recv().is_err());
    server.join().unwrap();
}

#[test]
fn invalid_utf8_fails_the_read_and_closes_with_1007() {
    let (addr, server) = raw_server(|mut peer| {
        peer.send(&frame(TEXT, false, "caf\u{e9} ".as_bytes()));
        peer.send(&frame(CONTINUATION, true, b"ok \xff then"));
        peer.read_close().close_code()
    });
    let mut ws = client(addr, Config::default());
    let mut stream = ws.recv_stream().unwrap().unwrap();
    assert_eq!(stream.kind(), MessageKind::Text);
    let (got, err) = read_all(&mut stream, 3);
    assert!("caf\u{e9} ".as_bytes().starts_with(&got) || got.starts_with(b"caf"));
    assert!(
        std::str::from_utf8(&got).is_ok(),
        "only valid bytes come out"
    );
    let err = err.unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    assert!(matches!(
        inner(err),
        Error::Protocol(ProtocolError::InvalidUtf8)
    ));
    assert_eq!(server.join().unwrap(), Some(1007));
}

#[test]
fn text_that_ends_inside_a_code_point_fails_at_its_end_and_closes_with_1007() {
    let (addr, server) = raw_server(|mut peer| {
        peer.send(&frame(TEXT, false, b"caf"));
        peer.send(&frame(CONTINUATION, true, b"\xc3"));
        peer.read_close().close_code()
    });
    let mut ws = client(addr, Config::default());
    let mut stream = ws.recv_stream().unwrap().unwrap();
    let (got, err) = read_all(&mut stream, 3);
    // The lead byte may come out: only the message's end shows its code point never finishes.
    assert!(b"caf\xc3".starts_with(&got), "{got:?}");
    let err = err.expect("the end of the message fails the read");
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    assert!(matches!(
        inner(err),
        Error::Protocol(ProtocolError::InvalidUtf8)
    ));
    assert_eq!(server.join().unwrap(), Some(1007));
}

#[test]
fn a_dropped_stream_is_skipped_and_the_connection_goes_on() {
    let big = bytes_of_len(300_000);
    let sent = big.clone();
    let (addr, server) = raw_server(move |mut peer| {
        for (i, part) in sent.chunks(100_000).enumerate() {
            let op = if i == 0 { BINARY } else { CONTINUATION };
            peer.send(&frame(op, i == 2, part));
            peer.send(&frame(PING, true, &[i as u8]));
        }
        peer.send(&frame(TEXT, true, b"next"));
        let mut pongs = Vec::new();
        loop {
            let f = peer.read_frame();
            match f.opcode {
                PONG => pongs.push(f.payload),
                CLOSE => return pongs,
                other => panic!("opcode {other}"),
            }
        }
    });
    let mut ws = client(addr, Config::default());
    let mut stream = ws.recv_stream().unwrap().unwrap();
    let mut head = [0u8; 10];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(head, big[..10]);
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("next".into())));
    ws.close(syncws::CloseCode::NORMAL, "").unwrap();
    assert_eq!(server.join().unwrap(), [vec![0], vec![1], vec![2]]);
}

#[test]
fn the_streamed_limit_applies_to_a_skipped_rest_too() {
    let (addr, server) = raw_server(|mut peer| {
        peer.send(&frame(BINARY, false, &[1; 600]));
        peer.send(&frame(CONTINUATION, true, &[2; 600]));
        peer.read_close().close_code()
    });
    let config = Config::default().max_stream_size(1000);
    let mut ws = client(addr, config);
    let mut stream = ws.recv_stream().unwrap().unwrap();
    stream.read_exact(&mut [0u8; 10]).unwrap();
    match ws.recv() {
        Err(Error::Protocol(ProtocolError::MessageTooLarge)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(server.join().unwrap(), Some(1009));
}

/// A peer that sends a message's first fragment, "first ", and its last, "second", once `go`
/// says so (100 ms after, later than a read that did not wait would look); then it waits for
/// the close. Its address, and the code of the close it read.
fn first_then_second() -> (
    mpsc::Sender<()>,
    std::net::SocketAddr,
    thread::JoinHandle<Option<u16>>,
) {
    let (go, wait) = mpsc::channel::<()>();
    let (addr, server) = raw_server(move |mut peer| {
        peer.send(&frame(BINARY, false, b"first "));
        wait.recv().unwrap();
        thread::sleep(Duration::from_millis(100));
        peer.send(&frame(CONTINUATION, true, b"second"));
        peer.read_close().close_code()
    });
    (go, addr, server)
}

#[test]
fn a_read_times_out_and_the_stream_continues() {
    let (go, addr, server) = first_then_second();
    let mut ws = client(addr, Config::default());
    let mut stream = ws
        .recv_stream_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    stream.set_timeout(Some(Duration::from_millis(100)));
    let mut first = [0u8; 6];
    stream.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"first ");
    let err = stream.read(&mut [0u8; 10]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(matches!(inner(err), Error::Timeout));
    go.send(()).unwrap();
    // The next read waits up to the new timeout for the rest.
    stream.set_timeout(Some(Duration::from_secs(5)));
    let (rest, err) = read_all(&mut stream, 100);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(rest, b"second");
    // Nothing more comes: the receive that waits for the next message times out too.
    assert!(matches!(
        ws.recv_stream_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    ws.close(syncws::CloseCode::NORMAL, "").unwrap();
    assert_eq!(server.join().unwrap(), Some(1000));
}

/// A read into an empty buffer reads nothing and ends nothing, whether bytes wait or not.
#[test]
fn an_empty_read_leaves_the_stream_as_it_was() {
    let (go, addr, server) = first_then_second();
    let mut ws = client(addr, Config::default());
    let mut stream = ws.recv_stream().unwrap().unwrap();
    // Bytes wait: none is taken.
    assert_eq!(stream.read(&mut []).unwrap(), 0);
    assert!(!stream.is_finished());
    let mut first = [0u8; 6];
    stream.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"first ");
    // None wait: the read does not wait for them.
    stream.set_timeout(Some(Duration::from_secs(2)));
    assert_eq!(stream.read(&mut []).unwrap(), 0);
    assert!(!stream.is_finished());
    go.send(()).unwrap();
    let (rest, err) = read_all(&mut stream, 100);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(rest, b"second");
    assert!(stream.is_finished());
    ws.close(syncws::CloseCode::NORMAL, "").unwrap();
    assert_eq!(server.join().unwrap(), Some(1000));
}

/// A server that sends `count` messages of `len` bytes each (generated, in fragments of
/// `piece` bytes, every third one text), then closes.
fn sender(config: Config, count: usize, len: usize, piece: usize) -> std::net::SocketAddr {
    serve(config, move |ws| {
        for m in 0..count {
            let data = bytes_of_len(len + m);
            if m % 3 == 2 {
                let text = ascii_of_len(len + m);
                let pieces = text.as_bytes().chunks(piece).map(|c| {
                    // ASCII, so every cut is a valid str.
                    std::str::from_utf8(c).unwrap().to_owned()
                });
                ws.send_fragmented(pieces.collect::<Vec<_>>())?;
            } else {
                ws.send_fragmented(data.chunks(piece))?;
            }
        }
        ws.close(syncws::CloseCode::NORMAL, "")?;
        Ok(())
    })
}

fn ascii_of_len(n: usize) -> String {
    (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect()
}

fn expected(m: usize, len: usize) -> (MessageKind, Vec<u8>) {
    if m % 3 == 2 {
        (MessageKind::Text, ascii_of_len(len + m).into_bytes())
    } else {
        (MessageKind::Binary, bytes_of_len(len + m))
    }
}

#[test]
fn larger_messages_over_loopback_whole_and_split() {
    for (len, piece, read) in [
        (100_000, 1, 7),
        (1 << 20, 4096, 1000),
        (3 << 20, 1 << 20, 70_000),
    ] {
        let count = if piece == 1 { 1 } else { 4 };
        let len = if piece == 1 { 3000 } else { len };
        let addr = sender(Config::default(), count, len, piece);
        let mut ws = client(addr, Config::default());
        for m in 0..count {
            let mut stream = ws.recv_stream().unwrap().unwrap();
            let (kind, want) = expected(m, len);
            assert_eq!(stream.kind(), kind);
            let (got, err) = read_all(&mut stream, read);
            assert!(err.is_none(), "{err:?}");
            assert!(got == want, "message {m} of {len} in pieces of {piece}");
        }
        assert!(ws.recv_stream().unwrap().is_none());
        // The same through the reader of a split socket.
        let addr = sender(Config::default(), count, len, piece);
        let mut ws = client(addr, Config::default());
        let (mut reader, _writer) = ws.split().unwrap();
        for m in 0..count {
            let mut stream = reader.recv_stream().unwrap().unwrap();
            let (got, err) = read_all(&mut stream, read);
            assert!(err.is_none(), "{err:?}");
            assert!(got == expected(m, len).1, "split: message {m}");
        }
        assert!(reader.recv().unwrap().is_none());
    }
}

#[cfg(feature = "deflate")]
#[test]
fn compressed_messages_stream_over_loopback() {
    let deflate = syncws::DeflateConfig::default().threshold(0);
    let config = Config::default().deflate(Some(deflate));
    let len = 2 << 20;
    let addr = sender(config.clone(), 3, len, 100_000);
    let mut ws = client(addr, config);
    assert!(ws.compression().is_some(), "compression negotiated");
    for m in 0..3 {
        let mut stream = ws.recv_stream().unwrap().unwrap();
        let (got, err) = read_all(&mut stream, 50_000);
        assert!(err.is_none(), "{err:?}");
        assert!(got == expected(m, len).1, "message {m}");
    }
    // Whole messages after streamed ones still work with the same context.
    assert!(ws.recv().unwrap().is_none());
}

#[test]
fn a_close_from_another_thread_mid_stream_ends_it_as_closed() {
    let (seen, saw_close) = mpsc::channel::<()>();
    let (addr, server) = raw_server(move |mut peer| {
        peer.send(&frame(BINARY, false, b"first"));
        let close = peer.read_close().close_code();
        seen.send(()).unwrap();
        // The rest of the message, and another one, cross the close: the client drops them.
        peer.send(&frame(CONTINUATION, true, b"rest"));
        peer.send(&frame(TEXT, true, b"late"));
        peer.send(&Frame::close(1000, "").unmasked());
        close
    });
    let mut ws = client(addr, Config::default());
    let (mut reader, writer) = ws.split().unwrap();
    let mut stream = reader.recv_stream().unwrap().unwrap();
    let mut first = [0u8; 5];
    stream.read_exact(&mut first).unwrap();
    let closer = thread::spawn(move || writer.close(syncws::CloseCode::NORMAL, "done"));
    // The reader is not inside a read when the close goes out (data already on its way to a
    // reader blocked in a read still reaches it, as with `recv`).
    saw_close.recv().unwrap();
    let (rest, err) = read_all(&mut stream, 100);
    assert!(rest.is_empty(), "{rest:?}");
    let err = err.expect("cut short by our own close");
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    assert!(matches!(inner(err), Error::Closed));
    assert!(reader.recv().unwrap().is_none());
    closer.join().unwrap().unwrap();
    assert_eq!(server.join().unwrap(), Some(1000));
}

#[test]
fn a_receive_cut_off_by_its_deadline_continues_as_a_stream() {
    let (go, wait) = mpsc::channel::<()>();
    let (addr, server) = raw_server(move |mut peer| {
        peer.send(&frame(TEXT, false, "d\u{e9}but ".as_bytes()));
        wait.recv().unwrap();
        peer.send(&frame(CONTINUATION, true, b"et fin"));
        peer.send(&frame(BINARY, true, b"whole"));
        peer.read_close().close_code()
    });
    let mut ws = client(addr, Config::default());
    assert!(matches!(
        ws.recv_timeout(Duration::from_millis(100)),
        Err(Error::Timeout)
    ));
    go.send(()).unwrap();
    let mut stream = ws.recv_stream().unwrap().unwrap();
    assert_eq!(stream.kind(), MessageKind::Text);
    let (got, err) = read_all(&mut stream, 3);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got, "d\u{e9}but et fin".as_bytes());
    // And whole messages afterwards, with the whole-message path.
    assert_eq!(ws.recv().unwrap(), Some(Message::Binary(b"whole".to_vec())));
    ws.close(syncws::CloseCode::NORMAL, "").unwrap();
    assert_eq!(server.join().unwrap(), Some(1000));
}

#[test]
fn messages_from_a_tungstenite_server_stream_through() {
    use tungstenite::{Bytes, Message as TMessage};
    let text = text_of_len(1 << 20);
    let binary = bytes_of_len(5 << 20);
    let (t, b) = (text.clone(), binary.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        guard(&stream);
        let mut ws = tungstenite::accept(stream).unwrap();
        ws.send(TMessage::Text(t.into())).unwrap();
        ws.send(TMessage::Ping(Bytes::from_static(b"hb"))).unwrap();
        ws.send(TMessage::Binary(b.into())).unwrap();
        let mut pongs = Vec::new();
        loop {
            match ws.read() {
                Ok(TMessage::Pong(p)) => pongs.push(p.to_vec()),
                Ok(TMessage::Close(_)) => {}
                Ok(other) => panic!("{other:?}"),
                Err(tungstenite::Error::ConnectionClosed) => return pongs,
                Err(e) => panic!("{e}"),
            }
        }
    });
    let mut ws = client(addr, Config::default());
    for (kind, want) in [
        (MessageKind::Text, text.into_bytes()),
        (MessageKind::Binary, binary),
    ] {
        let mut stream = ws.recv_stream().unwrap().unwrap();
        assert_eq!(stream.kind(), kind);
        let (got, err) = read_all(&mut stream, 10_000);
        assert!(err.is_none(), "{err:?}");
        assert!(got == want, "{kind:?} differs");
    }
    ws.close(syncws::CloseCode::NORMAL, "").unwrap();
    assert_eq!(server.join().unwrap(), [b"hb".to_vec()]);
}

/// A TCP connection that counts the reads made on it.
struct CountedReads {
    tcp: TcpStream,
    reads: Arc<AtomicUsize>,
}

impl Read for CountedReads {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.tcp.read(buf)
    }
}

impl Write for CountedReads {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Transport for CountedReads {
    fn shutdown_write(&mut self) -> std::io::Result<()> {
        self.tcp.shutdown(Shutdown::Write)
    }
}

/// A streamed message in many fragments smaller than the read buffer goes through the buffer,
/// as [`Config::read_buffer_size`] says: each read fills it with several fragments (a payload
/// is read straight into the stream only when it is larger than the buffer). 200 fragments of
/// 1,000 bytes, all sent before the first read, take one read per 8 KiB, not one per fragment
/// or per fragment the buffer ran out in.
#[test]
fn small_fragments_of_a_streamed_message_are_read_through_the_buffer() {
    const FRAGMENTS: usize = 200;
    const LEN: usize = 1000;
    let (tcp, mut peer) = tcp_pair();
    let data = bytes_of_len(FRAGMENTS * LEN);
    let mut wire = Vec::new();
    for (i, part) in data.chunks(LEN).enumerate() {
        let opcode = if i == 0 { BINARY } else { CONTINUATION };
        wire.extend(frame(opcode, i == FRAGMENTS - 1, part).to_bytes());
    }
    // All of it waits in the socket before the first read.
    peer.write_all(&wire).unwrap();
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = CountedReads {
        tcp,
        reads: Arc::clone(&reads),
    };
    let config = Config::default().read_buffer_size(8 << 10);
    let mut ws = WebSocket::from_stream(counted, Role::Client, config, &[]);
    let mut reader = ws.recv_stream().unwrap().expect("a message");
    let (got, err) = read_all(&mut reader, 64 << 10);
    assert!(err.is_none(), "{err:?}");
    assert!(got == data, "the message arrives whole");
    let reads = reads.load(Ordering::SeqCst);
    let fills = wire.len().div_ceil(8 << 10);
    assert!(
        reads <= fills + 2,
        "{reads} reads for {} bytes through an 8 KiB buffer",
        wire.len()
    );
    drop(peer);
}
