//! permessage-deflate (RFC 7692) over real loopback sockets: negotiation between our client and
//! server in every combination of settings, compressed echo of every size, what goes on the
//! wire (RSV1, sizes, context takeover) seen by raw peers, and the failures: RSV1 where it does
//! not belong, corrupt data, bombs, and answers the client must refuse.

#![cfg(feature = "deflate")]

mod support;

use std::net::SocketAddr;

use support::*;
use syncws::proto::deflate::{Compressor, Decompressor};
use syncws::{
    Client, CloseCode, Config, DeflateConfig, DeflateParams, Error, HandshakeError, Message,
    MessageKind, ProtocolError,
};

const RSV1: u8 = 0b100;

fn on(deflate: DeflateConfig) -> Config {
    Config::default().deflate(Some(deflate))
}

fn deflate_config() -> Config {
    on(DeflateConfig::default())
}

/// The defaults, but our side keeps its context between messages (the default compresses every
/// message on its own).
fn takeover() -> DeflateConfig {
    DeflateConfig::default().no_context_takeover(false)
}

/// An echo server that first tells, in one uncompressed text message, what it agreed.
fn telling_echo_server(config: Config) -> SocketAddr {
    serve(config, |ws| {
        ws.send_uncompressed(format!("{:?}", ws.compression()))?;
        echo(ws)
    })
}

/// Compresses one message on its own (no context kept), tail stripped, as a peer would send it.
fn compress(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Compressor::new(15, 6, true)
        .compress(msg, true, &mut out)
        .unwrap();
    out
}

/// Inflates one message's payload with a fresh decompressor.
fn inflate(payload: &[u8]) -> Vec<u8> {
    inflate_with(&mut Decompressor::new(15, true), payload)
}

/// A raw client that offered `offer` and was answered with permessage-deflate.
fn raw_deflate_client(addr: SocketAddr, offer: &str) -> (RawConn, String) {
    let (raw, head) =
        RawConn::connect_with_headers(addr, &format!("Sec-WebSocket-Extensions: {offer}\r\n"));
    let answer = head_header(&head, "sec-websocket-extensions")
        .expect("compression accepted")
        .to_owned();
    (raw, answer)
}

#[test]
fn negotiation_matrix_between_our_client_and_server() {
    let configs: Vec<(&str, Option<DeflateConfig>)> = vec![
        ("off", None),
        ("default", Some(DeflateConfig::default())),
        (
            "small windows",
            Some(DeflateConfig::default().window_bits(9).peer_window_bits(10)),
        ),
        (
            "no takeover either way",
            Some(
                DeflateConfig::default()
                    .no_context_takeover(true)
                    .peer_no_context_takeover(true),
            ),
        ),
        (
            "8-bit windows, level 1",
            Some(
                DeflateConfig::default()
                    .window_bits(8)
                    .peer_window_bits(8)
                    .level(1),
            ),
        ),
        (
            "threshold 0, level 0",
            Some(DeflateConfig::default().threshold(0).level(0)),
        ),
    ];
    let text = json_like(50_000);
    let binary = bytes_of_len(70_000);
    for (server_name, server) in &configs {
        let mut server_config = Config::default();
        server_config.deflate = server.clone();
        let addr = telling_echo_server(server_config);
        for (client_name, client) in &configs {
            let pair = format!("server {server_name}, client {client_name}");
            let mut client_config = Config::default();
            client_config.deflate = client.clone();
            let mut ws = Client::builder()
                .config(client_config)
                .connect(&ws_url(addr, "/"))
                .unwrap();
            let ours = ws.compression();
            assert_eq!(
                ours.is_some(),
                server.is_some() && client.is_some(),
                "{pair}"
            );
            // the server saw the same agreement from its end
            let theirs = ours.map(|p| DeflateParams {
                window_bits: p.peer_window_bits,
                no_context_takeover: p.peer_no_context_takeover,
                peer_window_bits: p.window_bits,
                peer_no_context_takeover: p.no_context_takeover,
            });
            let told = ws.recv().unwrap().and_then(Message::into_text);
            assert_eq!(told, Some(format!("{theirs:?}")), "{pair}");
            if let (Some(p), Some(c), Some(s)) = (ours, client, server) {
                assert!(p.window_bits <= c.window_bits.max(8), "{pair}: {p:?}");
                assert!(p.peer_window_bits <= s.window_bits.max(8), "{pair}: {p:?}");
                assert!(
                    p.peer_window_bits <= c.peer_window_bits.max(8),
                    "{pair}: {p:?}"
                );
                assert_eq!(
                    p.peer_no_context_takeover,
                    s.no_context_takeover || c.peer_no_context_takeover,
                    "{pair}"
                );
            }
            for _ in 0..3 {
                ws.send(&text).unwrap();
                assert!(
                    ws.recv().unwrap() == Some(Message::Text(text.clone())),
                    "{pair}"
                );
                ws.send(&binary[..]).unwrap();
                assert!(
                    ws.recv().unwrap() == Some(Message::Binary(binary.clone())),
                    "{pair}"
                );
                ws.send_fragmented([&text[..10], &text[10..20_000], "", &text[20_000..]])
                    .unwrap();
                assert!(
                    ws.recv().unwrap() == Some(Message::Text(text.clone())),
                    "{pair}"
                );
            }
            ws.close(CloseCode::NORMAL, "").unwrap();
        }
    }
}

#[test]
fn compressed_echo_of_every_size() {
    let addr = echo_server_with(deflate_config());
    let mut ws = Client::builder()
        .config(deflate_config())
        .connect(&ws_url(addr, "/"))
        .unwrap();
    assert!(ws.compression().is_some());
    let mut buf = Vec::new();
    for size in [0usize, 1, 10, 63, 64, 65, 1 << 10, 100_000, 1 << 20] {
        let text = text_of_len(size);
        ws.send(&text).unwrap();
        assert!(
            ws.recv().unwrap() == Some(Message::Text(text.clone())),
            "text {size}"
        );
        let bytes = bytes_of_len(size);
        ws.send(&bytes).unwrap();
        assert!(
            ws.recv().unwrap() == Some(Message::Binary(bytes.clone())),
            "binary {size}"
        );
        // the allocation-free receive path inflates the same way
        ws.send(&text).unwrap();
        assert_eq!(ws.recv_into(&mut buf).unwrap(), Some(MessageKind::Text));
        assert!(buf == text.as_bytes(), "recv_into {size}");
        // fragmented: in three pieces, the middle one empty
        let cut = size / 3;
        ws.send_fragmented([&bytes[..cut], &[], &bytes[cut..]])
            .unwrap();
        assert!(
            ws.recv().unwrap() == Some(Message::Binary(bytes.clone())),
            "fragmented {size}"
        );
        ws.send_uncompressed(&text).unwrap();
        assert!(
            ws.recv().unwrap() == Some(Message::Text(text)),
            "uncompressed {size}"
        );
    }
    ws.close(CloseCode::NORMAL, "").unwrap();
}

#[test]
fn split_halves_compress_and_inflate() {
    let addr = echo_server_with(deflate_config());
    let mut ws = Client::builder()
        .config(deflate_config())
        .connect(&ws_url(addr, "/"))
        .unwrap();
    let (mut reader, writer) = ws.split().unwrap();
    assert_eq!(reader.compression(), ws.compression());
    assert!(reader.compression().is_some());
    let text = json_like(200_000);
    let sender = {
        let text = text.clone();
        let writer = writer.clone();
        std::thread::spawn(move || {
            for i in 0..20 {
                match i % 3 {
                    0 => writer.send(&text).unwrap(),
                    1 => writer.send_uncompressed(&text).unwrap(),
                    _ => writer.send_fragmented([&text[..5], &text[5..]]).unwrap(),
                }
            }
        })
    };
    for _ in 0..20 {
        assert!(reader.recv().unwrap() == Some(Message::Text(text.clone())));
    }
    sender.join().unwrap();
    reader.close(CloseCode::NORMAL, "").unwrap();
}

#[test]
fn server_answers_offers_on_the_wire() {
    // the defaults: every answer promises server_no_context_takeover
    let addr = echo_server_with(deflate_config());
    for offer in [
        "permessage-deflate",
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover",
    ] {
        let (mut raw, answer) = raw_deflate_client(addr, offer);
        assert_eq!(answer, "permessage-deflate; server_no_context_takeover");
        raw.send(&Frame::close(1000, ""));
        assert_eq!(raw.expect_close(), Some(1000));
    }
    let addr = echo_server_with(on(takeover().window_bits(12)));
    let rows = [
        (
            "permessage-deflate",
            "permessage-deflate; server_max_window_bits=12",
        ),
        (
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=12",
        ),
        (
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
        ),
        (
            "x-webkit-deflate-frame, permessage-deflate; bad_param, permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
        ),
    ];
    for (offer, want) in rows {
        let (mut raw, answer) = raw_deflate_client(addr, offer);
        assert_eq!(answer, want, "offer {offer}");
        raw.send(&Frame::close(1000, ""));
        assert_eq!(raw.expect_close(), Some(1000));
    }
    // nothing acceptable: no answer, and messages flow uncompressed
    for offer in [
        "x-webkit-deflate-frame",
        "permessage-deflate; server_max_window_bits=7",
    ] {
        let (mut raw, head) =
            RawConn::connect_with_headers(addr, &format!("Sec-WebSocket-Extensions: {offer}\r\n"));
        assert_eq!(
            head_header(&head, "sec-websocket-extensions"),
            None,
            "{offer}"
        );
        raw.send(&Frame::text(json_like(1000)));
        let echo = raw.read_frame();
        assert_eq!((echo.rsv, echo.payload), (0, json_like(1000).into_bytes()));
    }
}

#[test]
fn rsv1_marks_compressed_messages_at_or_above_the_threshold() {
    let addr = serve(deflate_config(), |ws| {
        let big = json_like(5000);
        ws.send(&big)?;
        ws.send_uncompressed(&big)?;
        ws.send(&big[..63])?;
        ws.send(&big[..64])?;
        ws.send_fragmented([&big[..10], &big[10..20], &big[20..]])?;
        ws.ping(b"ping")?;
        echo(ws)
    });
    let (mut raw, _) = raw_deflate_client(addr, "permessage-deflate");
    let big = json_like(5000);
    let mut d = Decompressor::new(15, false);
    let f = raw.read_frame();
    assert_eq!((f.rsv, f.opcode), (RSV1, TEXT));
    assert!(f.payload.len() < big.len() / 4, "{} bytes", f.payload.len());
    assert_eq!(inflate_with(&mut d, &f.payload), big.as_bytes());
    let f = raw.read_frame();
    assert_eq!((f.rsv, &f.payload[..]), (0, big.as_bytes()));
    let f = raw.read_frame();
    assert_eq!((f.rsv, &f.payload[..]), (0, &big.as_bytes()[..63]));
    let f = raw.read_frame();
    assert_eq!(f.rsv, RSV1);
    assert_eq!(inflate_with(&mut d, &f.payload), &big.as_bytes()[..64]);
    // fragmented: RSV1 on the first frame only, each piece decodable as it arrives
    let frames = [raw.read_frame(), raw.read_frame(), raw.read_frame()];
    let rsv: Vec<u8> = frames.iter().map(|f| f.rsv).collect();
    let ops: Vec<u8> = frames.iter().map(|f| f.opcode).collect();
    assert_eq!(
        (rsv, ops),
        (vec![RSV1, 0, 0], vec![TEXT, CONTINUATION, CONTINUATION])
    );
    let mut got = Vec::new();
    d.inflate(&frames[0].payload, &mut got, usize::MAX).unwrap();
    assert_eq!(got, &big.as_bytes()[..10], "first piece alone");
    d.inflate(&frames[1].payload, &mut got, usize::MAX).unwrap();
    d.inflate(&frames[2].payload, &mut got, usize::MAX).unwrap();
    d.finish(&mut got, usize::MAX).unwrap();
    assert_eq!(got, big.as_bytes());
    // control frames are never compressed
    let f = raw.read_frame();
    assert_eq!((f.opcode, f.rsv, &f.payload[..]), (PING, 0, &b"ping"[..]));

    // what the raw client sends: compressed or not, whole or fragmented, the echo comes back
    raw.send(&Frame::pong(b"ping"));
    let msg = json_like(3000);
    let z = compress(msg.as_bytes());
    raw.send(&Frame::text(&z).rsv(RSV1));
    raw.send(&Frame::text(&z[..7]).rsv(RSV1).fin(false));
    raw.send(&Frame::ping(b"between"));
    raw.send(&Frame::cont(&z[7..]));
    raw.send(&Frame::text(&msg));
    raw.send(&Frame::binary([]).rsv(RSV1));
    raw.send(&Frame::binary([0x00]).rsv(RSV1));
    for _ in 0..3 {
        let f = raw.read_frame();
        if f.opcode == PONG {
            assert_eq!(f.payload, b"between");
            continue;
        }
        assert_eq!((f.opcode, f.rsv), (TEXT, RSV1));
        assert_eq!(inflate_with(&mut d, &f.payload), msg.as_bytes());
    }
    let f = raw.read_frame();
    assert_eq!((f.opcode, f.rsv), (TEXT, RSV1));
    assert_eq!(inflate_with(&mut d, &f.payload), msg.as_bytes());
    for _ in 0..2 {
        let f = raw.read_frame();
        assert_eq!((f.opcode, f.rsv, f.payload), (BINARY, 0, vec![]));
    }
    raw.send(&Frame::close(1000, ""));
    assert_eq!(raw.expect_close(), Some(1000));
}

#[test]
fn context_takeover_on_and_off() {
    let msg = varied_text(4000);
    let twice = {
        let msg = msg.clone();
        move |ws: &mut syncws::WebSocket| {
            ws.send(&msg)?;
            ws.send(&msg)?;
            echo(ws)
        }
    };
    let addr = serve(on(takeover()), twice);
    // server side: with takeover the repeat costs a few bytes; without, it is sent afresh
    for (offer, keeps) in [
        ("permessage-deflate", true),
        ("permessage-deflate; server_no_context_takeover", false),
    ] {
        let (mut raw, _) = raw_deflate_client(addr, offer);
        let mut d = Decompressor::new(15, !keeps);
        let (first, second) = (raw.read_frame(), raw.read_frame());
        assert_eq!(inflate_with(&mut d, &first.payload), msg.as_bytes());
        assert_eq!(inflate_with(&mut d, &second.payload), msg.as_bytes());
        if keeps {
            assert!(second.payload.len() * 10 < first.payload.len(), "{offer}");
        } else {
            assert_eq!(second.payload, first.payload, "{offer}");
        }
        raw.send(&Frame::close(1000, ""));
        assert_eq!(raw.expect_close(), Some(1000));
    }
    // client side, as told by a raw server's answer (and by our own setting)
    let rows = [
        ("permessage-deflate", takeover(), true),
        (
            "permessage-deflate; client_no_context_takeover",
            takeover(),
            false,
        ),
        (
            "permessage-deflate",
            DeflateConfig::default().no_context_takeover(true),
            false,
        ),
    ];
    for (answer, config, keeps) in rows {
        let wire = msg.clone();
        let (addr, server) = raw_server_with_headers(
            format!("Sec-WebSocket-Extensions: {answer}\r\n"),
            move |mut raw| {
                let mut d = Decompressor::new(15, !keeps);
                let (first, second) = (raw.read_frame(), raw.read_frame());
                assert_eq!(first.rsv, RSV1);
                assert_eq!(inflate_with(&mut d, &first.payload), wire.as_bytes());
                assert_eq!(inflate_with(&mut d, &second.payload), wire.as_bytes());
                raw.send(&Frame::close(1000, "").unmasked());
                (first.payload.len(), second.payload)
            },
        );
        let mut ws = Client::builder()
            .config(on(config))
            .connect(&ws_url(addr, "/"))
            .unwrap();
        assert_eq!(
            ws.compression().map(|p| p.no_context_takeover),
            Some(!keeps)
        );
        ws.send(&msg).unwrap();
        ws.send(&msg).unwrap();
        assert_eq!(ws.recv().unwrap(), None);
        let (first_len, second) = server.join().unwrap();
        if keeps {
            assert!(second.len() * 10 < first_len, "{answer}");
        } else {
            assert_eq!(second.len(), first_len, "{answer}");
        }
    }
}

#[test]
fn rsv_bits_where_they_do_not_belong_close_with_1002() {
    let text = json_like(200);
    let z = compress(text.as_bytes());
    // compression configured but not offered, offered but not configured, neither
    let rows = [
        (deflate_config(), ""),
        (
            Config::default(),
            "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        ),
        (Config::default(), ""),
    ];
    for (config, offer) in rows {
        let addr = echo_server_with(config);
        let (mut raw, head) = RawConn::connect_with_headers(addr, offer);
        assert_eq!(head_header(&head, "sec-websocket-extensions"), None);
        raw.send(&Frame::text(&z).rsv(RSV1));
        assert_eq!(raw.expect_close(), Some(1002), "offer {offer:?}");
    }
    let addr = echo_server_with(deflate_config());
    let cases: Vec<(&str, Vec<Frame>, u16)> = vec![
        (
            "rsv1 on a continuation",
            vec![
                Frame::text(&z[..3]).rsv(RSV1).fin(false),
                Frame::cont(&z[3..]).rsv(RSV1),
            ],
            1002,
        ),
        (
            "rsv1 on an uncompressed message's continuation",
            vec![Frame::text("a").fin(false), Frame::cont(&z).rsv(RSV1)],
            1002,
        ),
        ("rsv1 on a ping", vec![Frame::ping("").rsv(RSV1)], 1002),
        (
            "rsv1 on a close",
            vec![Frame::close(1000, "").rsv(RSV1)],
            1002,
        ),
        ("rsv2", vec![Frame::text(&z).rsv(0b010)], 1002),
        ("rsv3", vec![Frame::text(&z).rsv(0b001)], 1002),
        ("rsv1 and rsv2", vec![Frame::text(&z).rsv(0b110)], 1002),
        (
            "corrupt data",
            vec![Frame::binary([0xff, 0xff, 0xff, 0xff]).rsv(RSV1)],
            1007,
        ),
        (
            "data after a final block",
            vec![Frame::binary([0x01, 0x00, 0x00, 0xff, 0xff, 0x4a]).rsv(RSV1)],
            1007,
        ),
        (
            "invalid utf-8 inside",
            vec![Frame::text(compress(b"ok \xed\xa0\x80 no")).rsv(RSV1)],
            1007,
        ),
        (
            "utf-8 cut short inside",
            vec![Frame::text(compress("ab€".as_bytes().split_last().unwrap().1)).rsv(RSV1)],
            1007,
        ),
    ];
    for (name, frames, code) in cases {
        let (mut raw, _) = raw_deflate_client(addr, "permessage-deflate");
        for f in &frames {
            raw.send(f);
        }
        assert_eq!(raw.expect_close(), Some(code), "{name}");
    }
}

#[test]
fn rsv1_from_a_server_that_did_not_agree_fails_the_client() {
    let z = compress(json_like(500).as_bytes());
    for answer in ["", "Sec-WebSocket-Extensions: permessage-deflate\r\n"] {
        let payload = z.clone();
        let (addr, server) = raw_server_with_headers(answer.to_owned(), move |mut raw| {
            raw.send(&Frame::text(&payload).rsv(RSV1).unmasked());
            raw.read_close().close_code()
        });
        // without an answer the client runs uncompressed and must refuse RSV1
        let mut ws = Client::builder()
            .config(deflate_config())
            .connect(&ws_url(addr, "/"))
            .unwrap();
        let got = ws.recv();
        if answer.is_empty() {
            assert_eq!(ws.compression(), None);
            assert!(
                matches!(got, Err(Error::Protocol(ProtocolError::ReservedBits))),
                "{got:?}"
            );
            assert_eq!(server.join().unwrap(), Some(1002));
        } else {
            assert_eq!(got.unwrap(), Some(Message::Text(json_like(500))));
        }
    }
}

#[test]
fn client_refuses_answers_it_cannot_accept() {
    use HandshakeError::{BadExtension, UnexpectedNegotiation};
    let rows: Vec<(Option<DeflateConfig>, &str, HandshakeError)> = vec![
        (None, "permessage-deflate", UnexpectedNegotiation),
        (
            Some(DeflateConfig::default()),
            "x-webkit-deflate-frame",
            UnexpectedNegotiation,
        ),
        (
            Some(DeflateConfig::default()),
            "permessage-deflate, permessage-deflate",
            UnexpectedNegotiation,
        ),
        (
            Some(DeflateConfig::default()),
            "permessage-deflate; mystery",
            BadExtension,
        ),
        (
            Some(DeflateConfig::default()),
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            BadExtension,
        ),
        (
            Some(DeflateConfig::default()),
            "permessage-deflate; client_max_window_bits",
            BadExtension,
        ),
        (
            Some(DeflateConfig::default()),
            "permessage-deflate; server_max_window_bits=16",
            BadExtension,
        ),
        (
            Some(DeflateConfig::default()),
            "permessage-deflate; server_max_window_bits=\"1",
            BadExtension,
        ),
        (
            Some(DeflateConfig::default().window_bits(10)),
            "permessage-deflate; client_max_window_bits=11",
            UnexpectedNegotiation,
        ),
        (
            Some(DeflateConfig::default().peer_window_bits(10)),
            "permessage-deflate",
            UnexpectedNegotiation,
        ),
        (
            Some(DeflateConfig::default().peer_no_context_takeover(true)),
            "permessage-deflate",
            UnexpectedNegotiation,
        ),
    ];
    for (deflate, answer, want) in rows {
        let (addr, server) = raw_http_server(move |mut stream, head| {
            let key = head_header(&head, "sec-websocket-key").unwrap();
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: {answer}\r\n\r\n"
            );
            std::io::Write::write_all(&mut stream, response.as_bytes()).unwrap();
            head_header(&head, "sec-websocket-extensions").map(str::to_owned)
        });
        let mut config = Config::default();
        config.deflate = deflate.clone();
        let got = Client::builder().config(config).connect(&ws_url(addr, "/"));
        match got {
            Err(Error::Handshake(e)) => assert_eq!(e, want, "{answer}"),
            other => panic!("{answer}: expected {want:?}, got {other:?}"),
        }
        let offered = server.join().unwrap();
        assert_eq!(offered.is_some(), deflate.is_some(), "{answer}");
    }
}

#[test]
fn client_takes_the_server_limits() {
    // The server limits our window to 9 bits and asks for no context takeover: what we send
    // must inflate with a 9-bit window and stand alone.
    let answer = "permessage-deflate; client_no_context_takeover; client_max_window_bits=9; server_max_window_bits=10";
    let msg = json_like(20_000);
    let wire = msg.clone();
    let (addr, server) = raw_server_with_headers(
        format!("Sec-WebSocket-Extensions: {answer}\r\n"),
        move |mut raw| {
            for _ in 0..2 {
                let f = raw.read_frame();
                let mut d = Decompressor::new(9, true);
                assert_eq!(inflate_with(&mut d, &f.payload), wire.as_bytes());
            }
            // answer compressed with a 10-bit window
            let mut z = Vec::new();
            Compressor::new(10, 6, false)
                .compress(wire.as_bytes(), true, &mut z)
                .unwrap();
            raw.send(&Frame::text(&z).rsv(RSV1).unmasked());
            raw.read_close().close_code()
        },
    );
    let mut ws = Client::builder()
        .config(deflate_config())
        .connect(&ws_url(addr, "/"))
        .unwrap();
    assert_eq!(
        ws.compression(),
        Some(DeflateParams {
            window_bits: 9,
            no_context_takeover: true,
            peer_window_bits: 10,
            peer_no_context_takeover: false,
        })
    );
    ws.send(&msg).unwrap();
    ws.send(&msg).unwrap();
    assert!(ws.recv().unwrap() == Some(Message::Text(msg)));
    ws.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(server.join().unwrap(), Some(1000));
}

#[test]
fn a_bomb_from_the_server_is_refused_by_the_client_with_1009() {
    let zeros = vec![0u8; 10 << 20];
    let z = compress(&zeros);
    assert!(z.len() < 20 << 10, "{} bytes", z.len());
    let (addr, server) = raw_server_with_headers(
        "Sec-WebSocket-Extensions: permessage-deflate\r\n".to_owned(),
        move |mut raw| {
            raw.send(&Frame::binary(&z).rsv(RSV1).unmasked());
            raw.read_close().close_code()
        },
    );
    let mut ws = Client::builder()
        .config(deflate_config().max_message_size(1 << 20))
        .connect(&ws_url(addr, "/"))
        .unwrap();
    let got = ws.recv();
    assert!(
        matches!(got, Err(Error::Protocol(ProtocolError::MessageTooLarge))),
        "{got:?}"
    );
    assert_eq!(server.join().unwrap(), Some(1009));
}

#[test]
fn compressed_size_limits_apply_to_inflated_bytes() {
    let limit = 64 << 10;
    let addr = echo_server_with(deflate_config().max_message_size(limit));
    // exactly the limit inflated is fine, one byte more is not, however small on the wire
    let (mut raw, _) = raw_deflate_client(addr, "permessage-deflate");
    let fits = vec![b'x'; limit];
    raw.send(&Frame::binary(compress(&fits)).rsv(RSV1));
    let echo = raw.read_frame();
    assert_eq!(inflate(&echo.payload), fits);
    let over = vec![b'x'; limit + 1];
    let z = compress(&over);
    assert!(z.len() < 1000);
    raw.send(&Frame::binary(&z).rsv(RSV1));
    assert_eq!(raw.expect_close(), Some(1009));
    // spread over fragments
    let (mut raw, _) = raw_deflate_client(addr, "permessage-deflate");
    raw.send(&Frame::binary(&z[..z.len() / 2]).rsv(RSV1).fin(false));
    raw.send(&Frame::cont(&z[z.len() / 2..]));
    assert_eq!(raw.expect_close(), Some(1009));
    // empty deflate blocks inflate to nothing, but their wire bytes are bounded too
    let (mut raw, _) = raw_deflate_client(addr, "permessage-deflate");
    let empty_blocks: Vec<u8> = [0x00, 0x00, 0x00, 0xff, 0xff].repeat(limit / 4);
    raw.send(&Frame::binary(&empty_blocks).rsv(RSV1));
    assert_eq!(raw.expect_close(), Some(1009));
}

#[test]
fn accept_with_negotiates_too() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut ws = syncws::accept_with(tcp, deflate_config()).unwrap();
        let agreed = ws.compression();
        while let Some(msg) = ws.recv().unwrap() {
            ws.send(&msg).unwrap();
        }
        agreed
    });
    let mut ws = Client::builder()
        .config(deflate_config())
        .connect(&ws_url(addr, "/"))
        .unwrap();
    let text = json_like(10_000);
    ws.send(&text).unwrap();
    assert!(ws.recv().unwrap() == Some(Message::Text(text)));
    ws.close(CloseCode::NORMAL, "").unwrap();
    assert!(ws.compression().is_some());
    assert_eq!(
        server.join().unwrap(),
        ws.compression().map(|p| DeflateParams {
            window_bits: p.peer_window_bits,
            no_context_takeover: p.peer_no_context_takeover,
            peer_window_bits: p.window_bits,
            peer_no_context_takeover: p.no_context_takeover,
        })
    );
}

#[test]
fn a_receive_cut_off_mid_frame_resumes_and_inflates_the_rest() {
    let msg = varied_text(300_000);
    let z = compress(msg.as_bytes());
    let (go_on, wait) = std::sync::mpsc::channel::<()>();
    let (addr, server) = raw_server_with_headers(
        "Sec-WebSocket-Extensions: permessage-deflate\r\n".to_owned(),
        move |mut raw| {
            let wire = Frame::text(&z).rsv(RSV1).unmasked().to_bytes();
            let half = wire.len() / 2;
            raw.write_raw(&wire[..half]);
            wait.recv().unwrap();
            raw.write_raw(&wire[half..]);
            raw.read_close().close_code()
        },
    );
    let mut ws = Client::builder()
        .config(deflate_config())
        .connect(&ws_url(addr, "/"))
        .unwrap();
    let got = ws.recv_timeout(std::time::Duration::from_millis(300));
    assert!(matches!(got, Err(Error::Timeout)), "{got:?}");
    go_on.send(()).unwrap();
    assert!(ws.recv().unwrap() == Some(Message::Text(msg)));
    ws.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(server.join().unwrap(), Some(1000));
}

/// A server that receives every message as a stream and reads it to its end.
fn streaming_sink_server(config: Config) -> SocketAddr {
    serve(config, |ws| {
        while let Some(mut stream) = ws.recv_stream()? {
            std::io::copy(&mut stream, &mut std::io::sink())?;
        }
        Ok(())
    })
}

#[test]
fn the_first_violation_in_the_inflated_text_decides_however_the_frame_arrives() {
    // Bad UTF-8 near the start, then either more than the limit or corrupt data: the UTF-8 comes
    // first in the inflated stream, so the answer is 1007 whether the frame arrives in one piece
    // (inflated in one call) or a byte at a time. Valid text before a bomb is 1009, and so is
    // text that goes bad only past the limit: nothing beyond the byte that crosses it is looked
    // at. The same holds for a message received whole and one received as a stream (whose
    // inflated pieces may reach far past the limit).
    let limit = 64 << 10;
    let config = deflate_config()
        .max_message_size(limit)
        .max_stream_size(limit);
    let whole = echo_server_with(config.clone());
    let streaming = streaming_sink_server(config);
    let mut bad_then_big = b"ok \xff ".to_vec();
    bad_then_big.resize(limit + 100, b'x');
    let bad_then_corrupt = [compress(b"ok \xff and then garbage"), vec![0xff; 3]].concat();
    let good_then_big = vec![b'x'; limit + 100];
    let mut bad_past_the_limit = vec![b'x'; limit + 10];
    bad_past_the_limit.extend_from_slice(b"\xff and more");
    let cases = [
        (compress(&bad_then_big), 1007),
        (bad_then_corrupt, 1007),
        (compress(&good_then_big), 1009),
        (compress(&bad_past_the_limit), 1009),
    ];
    for (i, (payload, code)) in cases.into_iter().enumerate() {
        assert!(payload.len() < 1000, "{}", payload.len());
        let bytes = Frame::text(&payload).rsv(RSV1).to_bytes();
        for (addr, how) in [(whole, "whole"), (streaming, "streamed")] {
            for trickle in [false, true] {
                let (mut raw, _) = raw_deflate_client(addr, "permessage-deflate");
                raw.stream.set_nodelay(true).unwrap();
                if trickle {
                    raw.write_raw(&bytes[..8]);
                    for b in &bytes[8..] {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        raw.write_raw(&[*b]);
                    }
                } else {
                    raw.write_raw(&bytes);
                }
                let got = raw.expect_close();
                assert_eq!(got, Some(code), "case {i}, {how}, trickled: {trickle}");
            }
        }
    }
}
