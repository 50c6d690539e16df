//! Messages going back and forth: sizes across every length encoding, fragmentation both ways,
//! ping/pong, iteration, and what a connection tells about itself.

mod support;

use std::sync::mpsc;

use support::*;
use syncws::{Client, CloseCode, Config, Error, InputError, Message, Role, State};

/// Every length encoding boundary (7-bit, 16-bit, 64-bit) and sizes far beyond the read buffer.
const SIZES: &[usize] = &[0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20];

#[test]
fn echo_of_every_size_text_and_binary() {
    let addr = echo_server();
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    assert!(!ws.get_ref().is_tls(), "ws:// is plain TCP");
    for &size in SIZES {
        let text = text_of_len(size);
        ws.send(&text).unwrap();
        match ws.recv().unwrap() {
            Some(Message::Text(got)) => assert!(got == text, "text of {size} bytes differs"),
            other => panic!("text of {size} bytes: got {:?}", other.map(|m| m.len())),
        }

        let bytes = bytes_of_len(size);
        ws.send(&bytes).unwrap();
        match ws.recv().unwrap() {
            Some(Message::Binary(got)) => assert!(got == bytes, "binary of {size} bytes differs"),
            other => panic!("binary of {size} bytes: got {:?}", other.map(|m| m.len())),
        }
    }
    ws.close(CloseCode::NORMAL, "").unwrap();
}

#[test]
fn send_accepts_every_message_kind() {
    let addr = echo_server();
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    ws.send("str").unwrap();
    ws.send(String::from("string")).unwrap();
    ws.send(&b"slice"[..]).unwrap();
    ws.send(b"array").unwrap();
    ws.send(vec![1u8, 2]).unwrap();
    ws.send(Message::Text("message".into())).unwrap();
    let expected = [
        Message::Text("str".into()),
        Message::Text("string".into()),
        Message::Binary(b"slice".to_vec()),
        Message::Binary(b"array".to_vec()),
        Message::Binary(vec![1, 2]),
        Message::Text("message".into()),
    ];
    for want in expected {
        assert_eq!(ws.recv().unwrap(), Some(want));
    }
}

#[test]
fn fragmented_message_from_client_is_reassembled() {
    let addr = echo_server();
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    ws.send_fragmented(["Hel", "", "lo, ", "wörld"]).unwrap();
    assert_eq!(
        ws.recv().unwrap(),
        Some(Message::Text("Hello, wörld".into()))
    );
    let big = bytes_of_len(200_000);
    ws.send_fragmented(big.chunks(70_000)).unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Binary(big)));
}

#[test]
fn fragmented_message_from_server_is_reassembled() {
    let addr = serve(Config::default(), |ws| {
        ws.send_fragmented(["one ", "two ", "three"])?;
        ws.send_fragmented([&[1u8, 2][..], &[][..], &[3][..]])?;
        Ok(())
    });
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    assert_eq!(
        ws.recv().unwrap(),
        Some(Message::Text("one two three".into()))
    );
    assert_eq!(ws.recv().unwrap(), Some(Message::Binary(vec![1, 2, 3])));
    assert_eq!(ws.recv().unwrap(), None);
}

#[test]
fn send_fragmented_puts_one_frame_per_item_on_the_wire() {
    let (addr, server) = raw_server(|mut peer| {
        let got: Vec<(bool, u8, Vec<u8>)> = (0..3)
            .map(|_| peer.read_frame())
            .map(|f| (f.fin, f.opcode, f.payload))
            .collect();
        peer.send(&Frame::close(1000, "").unmasked());
        got
    });
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    ws.send_fragmented(["a", "bc", "d"]).unwrap();
    assert_eq!(ws.recv().unwrap(), None);
    let wire = server.join().unwrap();
    assert_eq!(
        wire,
        vec![
            (false, TEXT, b"a".to_vec()),
            (false, CONTINUATION, b"bc".to_vec()),
            (true, CONTINUATION, b"d".to_vec()),
        ]
    );
}

#[test]
fn send_fragmented_refuses_mixed_kinds() {
    let addr = echo_server();
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    let parts = [Message::Text("a".into()), Message::Binary(vec![1])];
    assert!(matches!(
        ws.send_fragmented(&parts),
        Err(Error::InvalidInput(InputError::MixedFragments))
    ));
}

#[test]
fn fragments_with_interleaved_pings_are_echoed_whole_and_pinged_back() {
    let addr = echo_server();
    let mut raw = RawConn::connect(addr);
    raw.write_raw(&frames(&[
        Frame::text("Hel").fin(false),
        Frame::ping("p1"),
        Frame::cont("lo").fin(false),
        Frame::ping(""),
        Frame::cont(" €").fin(true),
    ]));
    let pong = raw.read_frame();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (PONG, &b"p1"[..]));
    let pong = raw.read_frame();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (PONG, &b""[..]));
    let echo = raw.read_frame();
    assert!(echo.fin);
    assert_eq!(
        (echo.opcode, echo.payload),
        (TEXT, "Hello €".as_bytes().to_vec())
    );
}

#[test]
fn ping_is_answered_with_the_same_payload() {
    let addr = echo_server();
    let mut raw = RawConn::connect(addr);
    for payload in [Vec::new(), b"x".to_vec(), bytes_of_len(125)] {
        raw.send(&Frame::ping(&payload));
        let pong = raw.read_frame();
        assert!(pong.fin && pong.rsv == 0);
        assert_eq!((pong.opcode, pong.payload), (PONG, payload));
    }
}

#[test]
fn unsolicited_pong_is_ignored() {
    let addr = echo_server();
    let mut raw = RawConn::connect(addr);
    raw.send(&Frame::pong("heartbeat"));
    raw.send(&Frame::text("after"));
    let next = raw.read_frame();
    assert_eq!((next.opcode, next.payload), (TEXT, b"after".to_vec()));
}

#[test]
fn client_answers_pings_and_sends_its_own() {
    let (addr, server) = raw_server(|mut peer| {
        peer.write_raw(&frames(&[
            Frame::ping("from server").unmasked(),
            Frame::text("after ping").unmasked(),
        ]));
        let pong = peer.read_frame();
        let ping = peer.read_frame();
        peer.send(&Frame::pong("ignored").unmasked());
        peer.send(&Frame::text("last").unmasked());
        peer.send(&Frame::close(1000, "").unmasked());
        (pong, ping)
    });
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("after ping".into())));
    ws.ping(b"from client").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("last".into())));
    assert_eq!(ws.recv().unwrap(), None);
    let (pong, ping) = server.join().unwrap();
    assert_eq!((pong.opcode, pong.payload), (PONG, b"from server".to_vec()));
    assert_eq!((ping.opcode, ping.payload), (PING, b"from client".to_vec()));
}

#[test]
fn control_payloads_over_125_bytes_are_refused() {
    let addr = echo_server();
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    let long = [0u8; 126];
    for result in [ws.ping(&long), ws.pong(&long)] {
        assert!(matches!(
            result,
            Err(Error::InvalidInput(InputError::ControlTooLong))
        ));
    }
    ws.ping(&long[..125]).unwrap();
    ws.send("still open").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("still open".into())));
}

#[test]
fn socket_iterates_until_the_peer_closes() {
    let addr = serve(Config::default(), |ws| {
        for i in 0..3 {
            ws.send(format!("msg {i}"))?;
        }
        Ok(())
    });
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    let got: Vec<Message> = ws.by_ref().collect::<Result<_, _>>().unwrap();
    let texts: Vec<&str> = got.iter().filter_map(Message::as_text).collect();
    assert_eq!(texts, ["msg 0", "msg 1", "msg 2"]);
    assert_eq!(ws.close_frame().map(|f| f.code), Some(CloseCode::NORMAL));
    assert!(ws.next().is_none());
}

#[test]
fn server_side_iteration_echoes() {
    let addr = serve(Config::default(), |ws| {
        while let Some(msg) = Iterator::next(ws) {
            ws.send(msg?)?;
        }
        Ok(())
    });
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    ws.send("it").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("it".into())));
    ws.close(CloseCode::NORMAL, "").unwrap();
}

/// What the server saw of one connection.
#[derive(Debug)]
struct Seen {
    display: String,
    role: Role,
    state: State,
    path: Option<String>,
    query: Option<String>,
    custom: Option<String>,
    origin: Option<String>,
    peer: Option<std::net::SocketAddr>,
}

#[test]
fn connection_describes_itself() {
    let (tx, rx) = mpsc::channel();
    let addr = serve(Config::default(), move |ws| {
        let seen = Seen {
            display: ws.to_string(),
            role: ws.role(),
            state: ws.state(),
            path: ws.path().map(str::to_owned),
            query: ws.request().and_then(|r| r.query()).map(str::to_owned),
            custom: ws.header("X-CUSTOM").map(str::to_owned),
            origin: ws.origin().map(str::to_owned),
            peer: ws.peer_addr(),
        };
        tx.send(seen)?;
        Ok(())
    });
    // Same origin as the server, so no origin policy can refuse it.
    let origin = format!("http://{addr}");
    let mut ws = Client::builder()
        .header("Origin", &origin)
        .header("x-custom", "yes")
        .connect(&ws_url(addr, "/chat?room=1"))
        .unwrap();
    let seen = rx.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(seen.display, "WebSocket(server, OPEN)");
    assert_eq!((seen.role, seen.state), (Role::Server, State::Open));
    assert_eq!(seen.path.as_deref(), Some("/chat"));
    assert_eq!(seen.query.as_deref(), Some("room=1"));
    assert_eq!(seen.custom.as_deref(), Some("yes"));
    assert_eq!(seen.origin.as_deref(), Some(origin.as_str()));
    assert_eq!(
        seen.peer,
        Some(ws.get_ref().tcp().unwrap().local_addr().unwrap())
    );

    assert_eq!(ws.to_string(), "WebSocket(client, OPEN)");
    assert_eq!(ws.role(), Role::Client);
    assert_eq!(ws.peer_addr(), Some(addr));
    assert_eq!(ws.path(), None);
    assert_eq!(ws.recv().unwrap(), None);
    assert_eq!(ws.state(), State::Closed);
    assert_eq!(ws.to_string(), "WebSocket(client, CLOSED)");
    assert_eq!(
        format!("{ws:?}"),
        format!(
            "WebSocket {{ id: {}, role: Client, state: Closed, peer: Some({addr}), .. }}",
            ws.id()
        )
    );
}

/// Both ends send each frame at once: TCP_NODELAY is on for the server's connection and the
/// client's, so a small frame after another does not wait for the peer's acknowledgement.
#[test]
fn both_ends_send_without_nagles_delay() {
    let (report, nodelay) = mpsc::channel();
    let report = std::sync::Mutex::new(report);
    let addr = serve(Config::default(), move |ws| {
        let on = ws.get_ref().tcp().map(|tcp| tcp.nodelay().unwrap());
        let _ = report.lock().unwrap().send(on);
        Ok(())
    });
    let ws = Client::connect(&ws_url(addr, "/")).unwrap();
    assert!(ws.get_ref().tcp().unwrap().nodelay().unwrap(), "client");
    let server = nodelay.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(server, Some(true), "server");
}
