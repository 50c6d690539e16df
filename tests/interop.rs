//! syncws against an independent implementation, tungstenite, in both directions.

mod support;

use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;

use support::*;
use syncws::{Client, CloseCode, CloseFrame, Config, Message};
use tungstenite::protocol::CloseFrame as TCloseFrame;
use tungstenite::protocol::frame::coding::CloseCode as TCloseCode;
use tungstenite::{Bytes, Message as TMessage};

/// Reads with tungstenite until the connection is closed, returning the close frame it saw.
fn t_drain<S: std::io::Read + std::io::Write>(
    ws: &mut tungstenite::WebSocket<S>,
) -> Option<TCloseFrame> {
    let mut seen = None;
    loop {
        match ws.read() {
            Ok(TMessage::Close(frame)) => seen = frame,
            Ok(other) => panic!("unexpected message while closing: {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => return seen,
            Err(e) => panic!("tungstenite failed while closing: {e}"),
        }
    }
}

#[test]
fn tungstenite_client_against_our_server() {
    let (tx, rx) = mpsc::channel();
    let addr = serve(Config::default(), move |ws| {
        // tungstenite closes with 4000, which ends the echo with an error carrying its frame.
        let _ = echo(ws);
        tx.send(ws.close_frame().cloned())?;
        Ok(())
    });
    let (mut ws, response) = tungstenite::connect(ws_url(addr, "/interop")).unwrap();
    assert_eq!(response.status(), 101);

    let big = bytes_of_len(1 << 20);
    let sent = [
        TMessage::text("hello, wörld"),
        TMessage::binary(vec![0u8, 1, 2, 255]),
        TMessage::binary(big.clone()),
        TMessage::text(text_of_len(1 << 20)),
    ];
    for msg in sent {
        ws.send(msg.clone()).unwrap();
        assert_eq!(ws.read().unwrap(), msg);
    }

    ws.send(TMessage::Ping(Bytes::from_static(b"are you there")))
        .unwrap();
    assert_eq!(
        ws.read().unwrap(),
        TMessage::Pong(Bytes::from_static(b"are you there"))
    );

    ws.close(Some(TCloseFrame {
        code: TCloseCode::from(4000),
        reason: "tungstenite leaves".into(),
    }))
    .unwrap();
    let echoed = t_drain(&mut ws).expect("no close frame from our server");
    assert_eq!(u16::from(echoed.code), 4000);
    drop(ws);

    let seen = rx.recv_timeout(TIMEOUT).unwrap().unwrap();
    assert_eq!(
        seen,
        CloseFrame {
            code: CloseCode(4000),
            reason: "tungstenite leaves".into()
        }
    );
}

#[test]
fn our_server_closing_is_seen_by_tungstenite() {
    let addr = serve(Config::default(), |ws| {
        ws.send("bye soon")?;
        Err("handler gives up".into())
    });
    let (mut ws, _) = tungstenite::connect(ws_url(addr, "/")).unwrap();
    assert_eq!(ws.read().unwrap(), TMessage::text("bye soon"));
    let frame = t_drain(&mut ws).expect("no close frame");
    assert_eq!(u16::from(frame.code), 1011);
}

/// A tungstenite server on 127.0.0.1:0 for one connection, running `f` on it.
fn tungstenite_server<F, T>(f: F) -> (std::net::SocketAddr, thread::JoinHandle<T>)
where
    F: FnOnce(&mut tungstenite::WebSocket<std::net::TcpStream>) -> T + Send + 'static,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        guard(&stream);
        let mut ws = tungstenite::accept(stream).unwrap();
        f(&mut ws)
    });
    (addr, handle)
}

#[test]
fn our_client_against_tungstenite_server() {
    let (addr, server) = tungstenite_server(|ws| {
        let mut pings = Vec::new();
        // Echo data, note pings (tungstenite answers them itself), stop at the close.
        loop {
            match ws.read().unwrap() {
                msg @ (TMessage::Text(_) | TMessage::Binary(_)) => ws.send(msg).unwrap(),
                TMessage::Ping(p) => pings.push(p.to_vec()),
                TMessage::Close(frame) => {
                    let frame = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    assert!(t_drain(ws).is_none());
                    return (pings, frame);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    let big = bytes_of_len(1 << 20);
    let sent = [
        Message::Text("hello, wörld".into()),
        Message::Binary(vec![0, 1, 2, 255]),
        Message::Binary(big),
        Message::Text(text_of_len(1 << 20)),
    ];
    for msg in sent {
        ws.send(&msg).unwrap();
        assert_eq!(ws.recv().unwrap(), Some(msg));
    }
    ws.ping(b"ping from syncws").unwrap();
    // tungstenite's pong comes back in between; recv skips it.
    ws.send("after ping").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("after ping".into())));
    ws.send_fragmented(["frag", "mented"]).unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("fragmented".into())));

    ws.close(CloseCode(4001), "syncws leaves").unwrap();
    assert_eq!(
        ws.close_frame().map(|f| (f.code, f.reason.as_str())),
        Some((CloseCode(4001), "syncws leaves"))
    );
    let (pings, close) = server.join().unwrap();
    assert_eq!(pings, vec![b"ping from syncws".to_vec()]);
    assert_eq!(close, Some((4001, "syncws leaves".to_owned())));
}

#[test]
fn tungstenite_server_pings_and_closes_our_client() {
    let (addr, server) = tungstenite_server(|ws| {
        ws.send(TMessage::Ping(Bytes::from_static(b"from tungstenite")))
            .unwrap();
        ws.send(TMessage::text("after ping")).unwrap();
        let pong = ws.read().unwrap();
        ws.close(Some(TCloseFrame {
            code: TCloseCode::Normal,
            reason: "tungstenite is done".into(),
        }))
        .unwrap();
        let echoed = t_drain(ws).map(|f| u16::from(f.code));
        (pong, echoed)
    });
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("after ping".into())));
    assert_eq!(ws.recv().unwrap(), None);
    assert_eq!(
        ws.close_frame().map(|f| (f.code, f.reason.as_str())),
        Some((CloseCode::NORMAL, "tungstenite is done"))
    );
    let (pong, echoed) = server.join().unwrap();
    assert_eq!(
        pong,
        TMessage::Pong(Bytes::from_static(b"from tungstenite"))
    );
    assert_eq!(echoed, Some(1000));
}
