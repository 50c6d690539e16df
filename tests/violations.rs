//! RFC 6455 violations written as raw bytes, one connection per table row: each must be answered
//! with the RFC's close code and then the end of the TCP connection. Plus the near misses that
//! must be accepted, and the client's side of the same rules.

mod support;

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use support::*;
use syncws::{Client, CloseCode, Config, Error, Message, ProtocolError};

const MAX_FRAME: usize = 256 << 10;
const MAX_MESSAGE: usize = 512 << 10;
const MAX_FRAGMENTS: usize = 100;

/// How long a row may wait for the server's answer: it must not wait for bytes that never come.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

fn strict_server() -> SocketAddr {
    echo_server_with(
        Config::default()
            .max_frame_size(MAX_FRAME)
            .max_message_size(MAX_MESSAGE)
            .max_fragments(MAX_FRAGMENTS),
    )
}

/// One row: what the raw client writes (in one write) and the close code it must get back.
struct Case {
    name: String,
    bytes: Vec<u8>,
    code: Option<u16>,
}

fn case(name: impl Into<String>, list: &[Frame], code: u16) -> Case {
    Case {
        name: name.into(),
        bytes: frames(list),
        code: Some(code),
    }
}

/// Runs every row on its own connection, concurrently, and reports all failing rows at once.
fn run(addr: SocketAddr, cases: Vec<Case>) {
    let handles: Vec<_> = cases
        .into_iter()
        .map(|c| {
            let name = c.name.clone();
            let handle = thread::Builder::new()
                .name(c.name.clone())
                .spawn(move || {
                    let mut raw = RawConn::connect(addr);
                    raw.stream.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
                    raw.write_raw(&c.bytes);
                    assert_eq!(raw.expect_close(), c.code, "close code");
                })
                .unwrap();
            (name, handle)
        })
        .collect();
    let failed: Vec<String> = handles
        .into_iter()
        .filter_map(|(name, h)| h.join().is_err().then_some(name))
        .collect();
    assert!(failed.is_empty(), "failing rows: {failed:#?}");
}

#[test]
fn framing_violations_close_with_1002() {
    let mut cases = vec![
        case("rsv1", &[Frame::text("a").rsv(4)], 1002),
        case("rsv2", &[Frame::text("a").rsv(2)], 1002),
        case("rsv3", &[Frame::text("a").rsv(1)], 1002),
        case("rsv1 on a ping", &[Frame::ping("").rsv(4)], 1002),
        case(
            "rsv on a continuation",
            &[Frame::text("a").fin(false), Frame::cont("b").rsv(4)],
            1002,
        ),
        case("fragmented ping", &[Frame::ping("x").fin(false)], 1002),
        case("fragmented pong", &[Frame::pong("x").fin(false)], 1002),
        case(
            "fragmented close",
            &[Frame::close(1000, "").fin(false)],
            1002,
        ),
        case("ping of 126 bytes", &[Frame::ping([0; 126])], 1002),
        case(
            "close of 126 bytes",
            &[Frame::close(1000, [b'a'; 124])],
            1002,
        ),
        case("continuation without a message", &[Frame::cont("a")], 1002),
        case(
            "continuation after a finished message",
            &[Frame::text("a"), Frame::cont("b")],
            1002,
        ),
        case(
            "text inside a fragmented text",
            &[Frame::text("a").fin(false), Frame::text("b")],
            1002,
        ),
        case(
            "binary inside a fragmented text",
            &[Frame::text("a").fin(false), Frame::binary("b")],
            1002,
        ),
        case(
            "text inside a fragmented binary",
            &[
                Frame::binary("a").fin(false),
                Frame::ping(""),
                Frame::text("b"),
            ],
            1002,
        ),
        case("unmasked text", &[Frame::text("a").unmasked()], 1002),
        case("unmasked ping", &[Frame::ping("a").unmasked()], 1002),
        case("unmasked close", &[Frame::close(1000, "").unmasked()], 1002),
        case(
            "unmasked after a masked one",
            &[Frame::text("ok"), Frame::binary("no").unmasked()],
            1002,
        ),
        case(
            "16-bit length for 5 bytes",
            &[Frame::text("hello").len(Len::Ext16(5))],
            1002,
        ),
        case(
            "16-bit length for 0 bytes",
            &[Frame::binary("").len(Len::Ext16(0))],
            1002,
        ),
        case(
            "64-bit length for 5 bytes",
            &[Frame::text("hello").len(Len::Ext64(5))],
            1002,
        ),
        case(
            "64-bit length for 65535 bytes",
            &[Frame::binary(vec![0; 65535]).len(Len::Ext64(65535))],
            1002,
        ),
        case(
            "64-bit length with the top bit set",
            &[Frame::binary("").len(Len::Ext64(1 << 63))],
            1002,
        ),
        case(
            "64-bit length of all ones",
            &[Frame::binary("").len(Len::Ext64(u64::MAX))],
            1002,
        ),
        case(
            "close payload of one byte",
            &[Frame::new(CLOSE, [0x03])],
            1002,
        ),
    ];
    for opcode in (3..=7).chain(11..=15) {
        cases.push(case(
            format!("reserved opcode {opcode}"),
            &[Frame::new(opcode, "")],
            1002,
        ));
    }
    for code in [
        0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        cases.push(case(
            format!("close code {code}"),
            &[Frame::close(code, "")],
            1002,
        ));
    }
    run(strict_server(), cases);
}

#[test]
fn invalid_utf8_closes_with_1007() {
    let large_valid = text_of_len(70_000).into_bytes();
    let mut then_invalid = large_valid.clone();
    then_invalid.push(0xFF);
    let cases = vec![
        case("close reason 0xff", &[Frame::close(1000, [0xFF])], 1007),
        case(
            "close reason cut inside a character",
            &[Frame::close(1000, b"\xe2\x82")],
            1007,
        ),
        case("text 0xff", &[Frame::text(b"\xff")], 1007),
        case("overlong encoding", &[Frame::text(b"\xc0\xaf")], 1007),
        case("utf-16 surrogate", &[Frame::text(b"a\xed\xa0\x80b")], 1007),
        case("above U+10FFFF", &[Frame::text(b"\xf4\x90\x80\x80")], 1007),
        case(
            "text ends inside a character",
            &[Frame::text(b"ok\xe2\x82")],
            1007,
        ),
        case(
            "invalid sequence split across fragments",
            &[Frame::text(b"\xe2\x82").fin(false), Frame::cont(b"(")],
            1007,
        ),
        case(
            "message ends inside a character",
            &[Frame::text(b"\xe2").fin(false), Frame::cont(b"\x82")],
            1007,
        ),
        case(
            "invalid text in a middle fragment, no final fragment",
            &[
                Frame::text("ok").fin(false),
                Frame::cont(b"\xff").fin(false),
            ],
            1007,
        ),
        // The frame claims more bytes than it sends: the server must judge what arrived.
        case(
            "invalid byte in a frame whose rest never comes",
            &[Frame::text(b"abc\xffdef").len(Len::Short(100))],
            1007,
        ),
        case(
            "invalid byte deep in a large frame whose rest never comes",
            &[Frame::text(&then_invalid).len(Len::Ext64(200_000))],
            1007,
        ),
        case(
            "invalid byte in a fragment whose rest never comes",
            &[
                Frame::text(&large_valid).fin(false),
                Frame::cont(b"\xc3\x28").len(Len::Short(50)),
            ],
            1007,
        ),
    ];
    run(strict_server(), cases);
}

#[test]
fn oversized_frames_and_messages_close_with_1009() {
    let big = vec![0u8; 200 << 10];
    let cases = vec![
        // Header only: the server must refuse before reading (or allocating) the payload.
        case(
            "frame one byte above the limit",
            &[Frame::binary("").len(Len::Ext64(MAX_FRAME as u64 + 1))],
            1009,
        ),
        case(
            "frame claiming 2^62 bytes",
            &[Frame::binary("").len(Len::Ext64(1 << 62))],
            1009,
        ),
        case(
            "text frame claiming 2^62 bytes",
            &[Frame::text("").len(Len::Ext64(1 << 62))],
            1009,
        ),
        case(
            "message above the limit across fragments",
            &[
                Frame::binary(&big).fin(false),
                Frame::cont(&big).fin(false),
                Frame::cont("").len(Len::Ext64(big.len() as u64)),
            ],
            1009,
        ),
        case(
            "text message above the limit across fragments",
            &[
                Frame::text(&big).fin(false),
                Frame::cont(&big).fin(false),
                Frame::cont("").len(Len::Ext64(big.len() as u64)),
            ],
            1009,
        ),
        case(
            "one fragment too many",
            &std::iter::once(Frame::text("").fin(false))
                .chain((0..MAX_FRAGMENTS).map(|_| Frame::cont("").fin(false)))
                .collect::<Vec<_>>(),
            1009,
        ),
    ];
    run(strict_server(), cases);
}

#[test]
fn near_misses_are_accepted() {
    let addr = strict_server();
    let mut every_split = Vec::new();
    let sample = "a€𝄞ü";
    for at in 0..=sample.len() {
        let (head, tail) = sample.as_bytes().split_at(at);
        every_split.push((
            format!("split at byte {at}"),
            vec![Frame::text(head).fin(false), Frame::cont(tail)],
            Message::Text(sample.into()),
        ));
    }
    let mut one_byte_fragments: Vec<Frame> = sample
        .bytes()
        .map(|b| Frame::cont([b]).fin(false))
        .collect();
    one_byte_fragments[0].opcode = TEXT;
    one_byte_fragments.push(Frame::cont(""));
    let mut most_fragments = vec![Frame::binary([0]).fin(false)];
    most_fragments.extend((1..MAX_FRAGMENTS - 1).map(|i| Frame::cont([i as u8]).fin(false)));
    most_fragments.push(Frame::cont([0xEE]));
    let most_fragments_payload: Vec<u8> = (0..MAX_FRAGMENTS - 1)
        .map(|i| i as u8)
        .chain([0xEE])
        .collect();
    let frame_at_limit = bytes_of_len(MAX_FRAME);
    let message_at_limit = bytes_of_len(MAX_MESSAGE);
    let (first, second) = message_at_limit.split_at(MAX_FRAME);

    let rows: Vec<(String, Vec<Frame>, Message)> = every_split
        .into_iter()
        .chain([
            (
                "one byte per fragment".to_owned(),
                one_byte_fragments,
                Message::Text(sample.into()),
            ),
            (
                "exactly the most fragments".to_owned(),
                most_fragments,
                Message::Binary(most_fragments_payload),
            ),
            (
                "frame of exactly the largest size".to_owned(),
                vec![Frame::binary(&frame_at_limit)],
                Message::Binary(frame_at_limit.clone()),
            ),
            (
                "message of exactly the largest size".to_owned(),
                vec![Frame::binary(first).fin(false), Frame::cont(second)],
                Message::Binary(message_at_limit.clone()),
            ),
            (
                "16-bit length for 126 bytes".to_owned(),
                vec![Frame::binary([7; 126])],
                Message::Binary(vec![7; 126]),
            ),
            (
                "64-bit length for 65536 bytes".to_owned(),
                vec![Frame::binary(vec![8; 65536])],
                Message::Binary(vec![8; 65536]),
            ),
            (
                "control frames of 125 bytes inside a message".to_owned(),
                vec![
                    Frame::text("a").fin(false),
                    Frame::pong([1; 125]),
                    Frame::cont("b"),
                ],
                Message::Text("ab".into()),
            ),
        ])
        .collect();

    let mut failed = Vec::new();
    for (name, list, want) in rows {
        let mut raw = RawConn::connect(addr);
        raw.write_raw(&frames(&list));
        let echo = raw.read_frame();
        let (opcode, payload) = match &want {
            Message::Text(s) => (TEXT, s.as_bytes()),
            Message::Binary(b) => (BINARY, b.as_slice()),
        };
        if (echo.opcode, echo.payload.as_slice()) != (opcode, payload) {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "rows not echoed intact: {failed:#?}");
}

#[test]
fn every_valid_close_code_is_echoed() {
    let addr = strict_server();
    for code in [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000,
        4999,
    ] {
        let mut raw = RawConn::connect(addr);
        raw.send(&Frame::close(code, "ünïcode reason"));
        assert_eq!(raw.expect_close(), Some(code), "{code}");
    }
}

#[test]
fn client_fails_on_server_violations() {
    let rows: Vec<(&str, Vec<u8>, ProtocolError)> = vec![
        (
            "masked frame",
            Frame::text("hi").to_bytes(),
            ProtocolError::MaskedFrame,
        ),
        (
            "invalid utf-8",
            Frame::text(b"ok\xff").unmasked().to_bytes(),
            ProtocolError::InvalidUtf8,
        ),
        (
            "invalid utf-8 in a frame whose rest never comes",
            Frame::text(b"ok\xff")
                .unmasked()
                .len(Len::Short(90))
                .to_bytes(),
            ProtocolError::InvalidUtf8,
        ),
        (
            "rsv1",
            Frame::text("hi").unmasked().rsv(4).to_bytes(),
            ProtocolError::ReservedBits,
        ),
        (
            "reserved opcode",
            Frame::new(11, "").unmasked().to_bytes(),
            ProtocolError::ReservedOpcode(11),
        ),
        (
            "continuation without a message",
            Frame::cont("x").unmasked().to_bytes(),
            ProtocolError::UnexpectedContinuation,
        ),
        (
            "close code 1005 on the wire",
            Frame::close(1005, "").unmasked().to_bytes(),
            ProtocolError::InvalidCloseCode(1005),
        ),
        (
            "fragmented ping",
            Frame::ping("").unmasked().fin(false).to_bytes(),
            ProtocolError::FragmentedControl,
        ),
        (
            "non-minimal length",
            Frame::text("x").unmasked().len(Len::Ext16(1)).to_bytes(),
            ProtocolError::BadLength,
        ),
    ];
    let mut failed = Vec::new();
    for (name, bytes, expected) in rows {
        let (addr, server) = raw_server(move |mut peer| {
            peer.stream.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
            peer.write_raw(&bytes);
            // The client must not end TCP first; reading its close and leaving ends it.
            peer.read_close().close_code()
        });
        let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
        let got = ws.recv();
        let code = server.join().ok().flatten();
        let want_code = expected.close_code().0;
        let ok = matches!(&got, Err(Error::Protocol(p)) if *p == expected);
        if !ok || code != Some(want_code) {
            failed.push(format!(
                "{name}: recv gave {got:?}, client sent close {code:?}, want {expected:?} and {want_code}"
            ));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn server_handler_sees_the_violation() {
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = serve(Config::default(), move |ws| {
        tx.send(ws.recv())?;
        Ok(())
    });
    let mut raw = RawConn::connect(addr);
    raw.send(&Frame::text("x").rsv(2));
    assert_eq!(raw.expect_close(), Some(CloseCode::PROTOCOL_ERROR.0));
    drop(raw);
    let seen = rx.recv_timeout(TIMEOUT).unwrap();
    assert!(
        matches!(seen, Err(Error::Protocol(ProtocolError::ReservedBits))),
        "{seen:?}"
    );
}
