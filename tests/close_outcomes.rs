//! What a receive says when the connection ends, over real loopback sockets: `Ok(None)` for a
//! normal end (1000, 1001, no code, or a close we started, whatever the peer echoes), an error
//! carrying the peer's close frame for any other code (1009, 4001), on whole and split sockets
//! and on the server, where the error callback can tell the peer's word from our failure; the
//! reasons we send when the peer breaks a limit; and the round-trip time of a ping we sent.

mod support;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use support::*;
use syncws::{Client, CloseCode, CloseFrame, Config, Error, Message, Server};

/// A server whose handler reads one message and then closes with `code` and `reason`.
fn closes_with(code: u16, reason: &'static str) -> std::net::SocketAddr {
    serve(Config::default(), move |ws| {
        ws.recv()?;
        ws.close(CloseCode(code), reason)?;
        Ok(())
    })
}

fn frame(code: u16, reason: &str) -> CloseFrame {
    CloseFrame {
        code: CloseCode(code),
        reason: reason.into(),
    }
}

#[test]
fn a_normal_close_from_the_peer_ends_recv_with_none() {
    for code in [1000, 1001] {
        let addr = closes_with(code, "done");
        let mut ws = connect(addr, Config::default());
        ws.send("go").unwrap();
        assert_eq!(ws.recv_timeout(TIMEOUT).unwrap(), None, "{code}");
        assert_eq!(ws.close_frame(), Some(&frame(code, "done")));
        // The end is sticky: asking again says the same.
        assert_eq!(ws.recv_timeout(TIMEOUT).unwrap(), None, "{code}");
    }
}

#[test]
fn a_close_frame_without_a_code_is_a_normal_end() {
    let (addr, _server) = raw_server(|mut conn| {
        conn.send(&Frame::new(CLOSE, []).unmasked());
        conn.read_close();
    });
    let mut ws = connect(addr, Config::default());
    assert_eq!(ws.recv_timeout(TIMEOUT).unwrap(), None);
    assert_eq!(ws.close_frame().map(|f| f.code), Some(CloseCode::NO_STATUS));
}

#[test]
fn an_error_code_from_the_peer_is_an_error_carrying_its_frame() {
    for (code, reason) in [(1009, "too big for me"), (4001, "kicked"), (1011, "")] {
        let addr = closes_with(code, reason);
        let mut ws = connect(addr, Config::default());
        ws.send("go").unwrap();
        match ws.recv_timeout(TIMEOUT) {
            Err(Error::PeerClosed(got)) => assert_eq!(*got, frame(code, reason)),
            other => panic!("{code}: expected PeerClosed, got {other:?}"),
        }
        // Later receives repeat it; the iterator ends.
        let again = ws.recv_timeout(TIMEOUT).unwrap_err();
        assert_eq!(again.peer_close(), Some(&frame(code, reason)));
        assert!(ws.next().is_none());
        assert_eq!(ws.close_frame(), Some(&frame(code, reason)));
    }
}

#[test]
fn an_error_code_reaches_a_split_reader_as_an_error() {
    let addr = closes_with(4001, "kicked");
    let ws = connect(addr, Config::default());
    let (mut reader, writer) = ws_split(ws);
    writer.send("go").unwrap();
    let r = reader.recv_timeout(TIMEOUT);
    assert_eq!(
        r.as_ref().err().and_then(Error::peer_close),
        Some(&frame(4001, "kicked")),
        "{r:?}"
    );
    assert!(writer.send("late").is_err());
}

fn ws_split(mut ws: syncws::WebSocket) -> (syncws::Reader, syncws::Writer) {
    ws.split().unwrap()
}

#[test]
fn a_close_we_started_ends_normally_whatever_code_is_echoed() {
    // The server echoes our code (as the RFC asks): 4001 and 1011 are our words, not errors.
    for code in [4001, 1011] {
        let (seen_tx, seen) = mpsc::channel();
        let addr = serve(Config::default(), move |ws| {
            let r = ws.recv();
            seen_tx.send(format!("{r:?}")).unwrap();
            Ok(())
        });
        let mut ws = connect(addr, Config::default());
        ws.close(CloseCode(code), "ours").unwrap();
        assert_eq!(ws.recv_timeout(TIMEOUT).unwrap(), None, "{code}");
        assert_eq!(ws.close_frame().map(|f| f.code.0), Some(code));
        // The server, which did not start it, hears the peer's error code.
        let server_saw = seen.recv_timeout(TIMEOUT).unwrap();
        assert!(server_saw.contains("PeerClosed"), "{server_saw}");
    }
}

#[test]
fn a_split_writer_close_ends_the_reader_normally() {
    let addr = echo_server();
    let ws = connect(addr, Config::default());
    let (mut reader, writer) = ws_split(ws);
    let reading = thread::spawn(move || reader.recv_timeout(TIMEOUT).map(|m| m.is_none()));
    thread::sleep(Duration::from_millis(50));
    writer.close(CloseCode(4001), "ours").unwrap();
    assert!(
        reading.join().unwrap().unwrap(),
        "the reader ends with Ok(None)"
    );
}

#[test]
fn the_error_callback_tells_a_peers_close_from_a_handler_failure() {
    let (errors_tx, errors) = mpsc::channel();
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .on_error(move |e| errors_tx.send(e).unwrap());
    let addr = server.local_addr();
    thread::spawn(move || {
        server.serve(|ws| {
            while let Some(msg) = ws.recv()? {
                if msg == Message::Text("fail".into()) {
                    return Err("the handler's own failure".into());
                }
            }
            Ok(())
        })
    });

    let mut ws = connect(addr, Config::default());
    ws.close(CloseCode::TOO_BIG, "yours was too big").unwrap();
    let e = errors.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(
        e.peer_close(),
        Some(&frame(1009, "yours was too big")),
        "{e:?}"
    );
    assert!(e.error.to_string().contains("1009"), "{}", e.error);

    let mut ws = connect(addr, Config::default());
    ws.send("fail").unwrap();
    assert_eq!(close_code(&mut ws), 1011);
    let e = errors.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(e.peer_close(), None, "{e:?}");

    // A normal close reports nothing.
    let mut ws = connect(addr, Config::default());
    ws.close(CloseCode::NORMAL, "").unwrap();
    assert!(errors.recv_timeout(Duration::from_millis(300)).is_err());
}

// ------------------------------------------------------------------ reasons we send

/// Sends `frames` from a raw client and returns the close frame the server failed with.
fn failed_with(config: Config, frames: &[Frame]) -> (Option<u16>, String) {
    let addr = echo_server_with(config);
    let mut conn = RawConn::connect(addr);
    for f in frames {
        conn.send(f);
    }
    let close = conn.read_close();
    let reason = String::from_utf8(close.payload.get(2..).unwrap_or_default().to_vec()).unwrap();
    (close.close_code(), reason)
}

#[test]
fn violations_are_explained_in_the_close_reason() {
    let limits = Config::default()
        .max_message_size(1 << 20)
        .max_frame_size(4 << 20)
        .max_fragments(4);
    let big = Frame::binary(vec![0u8; 2 << 20]);
    assert_eq!(
        failed_with(limits.clone(), &[big]),
        (
            Some(1009),
            "message of 2097152 bytes over the 1048576 limit".into()
        )
    );
    let half = || vec![0u8; 600 << 10];
    assert_eq!(
        failed_with(
            limits.clone(),
            &[Frame::binary(half()).fin(false), Frame::cont(half())]
        ),
        (
            Some(1009),
            "message of 1228800 bytes over the 1048576 limit".into()
        )
    );
    let frame_limit = Config::default().max_frame_size(1000);
    assert_eq!(
        failed_with(frame_limit, &[Frame::binary(vec![0u8; 1001])]),
        (Some(1009), "frame of 1001 bytes over the 1000 limit".into())
    );
    let pieces: Vec<Frame> = (0..5)
        .map(|i| {
            let f = if i == 0 {
                Frame::text("a")
            } else {
                Frame::cont("a")
            };
            f.fin(i == 4)
        })
        .collect();
    assert_eq!(
        failed_with(limits.clone(), &pieces),
        (Some(1009), "message in more than 4 fragments".into())
    );
    assert_eq!(
        failed_with(limits.clone(), &[Frame::text([0xC3, 0x28])]),
        (Some(1007), "invalid utf-8 in a text message".into())
    );
    assert_eq!(
        failed_with(limits, &[Frame::new(3, "x")]),
        (Some(1002), "reserved opcode 3".into())
    );
}

// ------------------------------------------------------------------ round-trip time

#[test]
fn rtt_comes_from_a_ping_we_sent() {
    let addr = echo_server();
    let mut ws = connect(addr, Config::default());
    assert_eq!(ws.rtt(), None);
    ws.ping(b"are you there").unwrap();
    ws.send("after the ping").unwrap();
    // The pong comes before the echo, so it has been seen once the echo arrives.
    assert!(ws.recv_timeout(TIMEOUT).unwrap().is_some());
    let rtt = ws.rtt().expect("the pong gave a round-trip time");
    assert!(rtt < TIMEOUT, "{rtt:?}");
}

#[test]
fn rtt_on_a_split_socket_comes_from_a_writers_ping() {
    let addr = echo_server();
    let ws = connect(addr, Config::default());
    let (mut reader, writer) = ws_split(ws);
    assert_eq!(reader.rtt(), None);
    writer.ping(b"").unwrap();
    writer.send("after the ping").unwrap();
    assert!(reader.recv_timeout(TIMEOUT).unwrap().is_some());
    assert!(reader.rtt().is_some());
}

#[test]
fn an_unsolicited_pong_gives_no_rtt() {
    let (addr, _server) = raw_server(|mut conn| {
        let ping = conn.read_frame();
        assert_eq!(ping.opcode, PING);
        // A pong with other data than the ping's, then one with the ping's data.
        conn.send(&Frame::pong("not yours").unmasked());
        conn.send(&Frame::text("between").unmasked());
        conn.send(&Frame::pong(&ping.payload).unmasked());
        conn.send(&Frame::text("after").unmasked());
        conn.read_close();
    });
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    ws.ping(b"mine").unwrap();
    assert!(ws.recv_timeout(TIMEOUT).unwrap().is_some());
    assert_eq!(ws.rtt(), None, "a pong that answers no ping of ours");
    assert!(ws.recv_timeout(TIMEOUT).unwrap().is_some());
    assert!(ws.rtt().is_some());
}
