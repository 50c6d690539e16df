//! Every way a connection ends: either side closing, the handler's outcome, a silent peer, and
//! codes that must never go on the wire.

mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::*;
use syncws::{Client, CloseCode, CloseFrame, Config, Error, InputError, Message, State};

/// A server that reports the close frame each client sent.
fn close_recorder() -> (std::net::SocketAddr, mpsc::Receiver<Option<CloseFrame>>) {
    let (tx, rx) = mpsc::channel();
    let addr = serve(Config::default(), move |ws| {
        // Ends with Ok(None) for a normal code, an error carrying the frame for others.
        while let Ok(Some(_)) = ws.recv() {}
        tx.send(ws.close_frame().cloned())?;
        Ok(())
    });
    (addr, rx)
}

#[test]
fn client_close_is_echoed_by_the_server() {
    let (addr, seen) = close_recorder();
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    ws.close(CloseCode(4001), "done here").unwrap();
    assert_eq!(ws.state(), State::Closed);
    assert_eq!(ws.close_frame().map(|f| f.code), Some(CloseCode(4001)));

    let got = seen.recv_timeout(TIMEOUT).unwrap().unwrap();
    assert_eq!(got.code, CloseCode(4001));
    assert_eq!(got.reason, "done here");
}

#[test]
fn closed_socket_refuses_to_send_and_reports_the_close() {
    let addr = echo_server();
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    ws.close(CloseCode::NORMAL, "").unwrap();
    assert!(matches!(ws.send("late"), Err(Error::Closed)));
    assert!(matches!(ws.ping(b""), Err(Error::Closed)));
    assert_eq!(ws.recv().unwrap(), None);
    // Closing twice does nothing.
    ws.close(CloseCode::NORMAL, "").unwrap();
}

#[test]
fn dropping_an_open_socket_says_going_away() {
    let (addr, seen) = close_recorder();
    let ws = Client::connect(&ws_url(addr, "/")).unwrap();
    drop(ws);
    let got = seen.recv_timeout(TIMEOUT).unwrap().unwrap();
    assert_eq!(got.code, CloseCode::GOING_AWAY);
}

/// Connects, expects nothing but the server's close, and returns its code.
fn server_close_code(addr: std::net::SocketAddr, path: &str) -> CloseCode {
    let mut ws = Client::connect(&ws_url(addr, path)).unwrap();
    CloseCode(close_code(&mut ws))
}

#[test]
fn handler_returning_ok_closes_with_1000() {
    let addr = serve(Config::default(), |_| Ok(()));
    assert_eq!(server_close_code(addr, "/"), CloseCode::NORMAL);
}

#[test]
fn handler_returning_an_error_closes_with_1011() {
    let addr = serve(Config::default(), |_| Err("no luck".into()));
    assert_eq!(server_close_code(addr, "/"), CloseCode::INTERNAL_ERROR);
}

#[test]
fn handler_panicking_closes_with_1011_and_the_server_keeps_serving() {
    let addr = serve(Config::default(), |ws| {
        if ws.path() == Some("/panic") {
            panic!("handler panics on purpose");
        }
        echo(ws)
    });
    assert_eq!(server_close_code(addr, "/panic"), CloseCode::INTERNAL_ERROR);
    assert_eq!(server_close_code(addr, "/panic"), CloseCode::INTERNAL_ERROR);

    assert_echoes(addr, "/echo", "still serving");
}

#[test]
fn peer_close_code_is_echoed_and_the_server_ends_tcp_first() {
    let addr = echo_server();
    let mut raw = RawConn::connect(addr);
    raw.send(&Frame::close(4000, "bye"));
    // expect_close also checks that the server ends TCP without waiting for us.
    assert_eq!(raw.expect_close(), Some(4000));
}

#[test]
fn empty_close_is_answered_with_an_empty_close() {
    let (addr, seen) = close_recorder();
    let mut raw = RawConn::connect(addr);
    raw.send(&Frame::new(CLOSE, ""));
    // 1005 means "no code" locally and must never be sent.
    assert_eq!(raw.expect_close(), None);
    drop(raw);
    let got = seen.recv_timeout(TIMEOUT).unwrap().unwrap();
    assert_eq!(got.code, CloseCode::NO_STATUS);
}

#[test]
fn data_after_our_close_is_dropped_until_the_peer_answers() {
    let (addr, server) = raw_server(|mut peer| {
        let close = peer.read_frame();
        peer.send(&Frame::text("in flight").unmasked());
        peer.send(&Frame::close(1000, "").unmasked());
        close.close_code()
    });
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    ws.close(CloseCode(3000), "").unwrap();
    assert_eq!(ws.close_frame().map(|f| f.code), Some(CloseCode::NORMAL));
    assert_eq!(server.join().unwrap(), Some(3000));
}

#[test]
fn server_close_reaches_the_client_and_is_echoed() {
    let (addr, server) = raw_server(|mut peer| {
        peer.send(&Frame::close(4000, "server says bye").unmasked());
        let echo = peer.read_frame();
        // The client must not end TCP before the server (RFC 6455 7.1.1): it waits for our EOF.
        drop(peer);
        echo.close_code()
    });
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    // 4000 is not a normal end: the receive says so, with the server's frame.
    let ended = ws.recv().unwrap_err();
    assert_eq!(ended.peer_close(), ws.close_frame());
    let frame = ws.close_frame().unwrap();
    assert_eq!(
        (frame.code, frame.reason.as_str()),
        (CloseCode(4000), "server says bye")
    );
    assert_eq!(server.join().unwrap(), Some(4000));
}

#[test]
fn a_server_lingers_briefly_for_a_client_that_answers_but_keeps_its_socket_open() {
    let (tx, took) = mpsc::channel();
    let addr = serve(Config::default(), move |ws| {
        let start = Instant::now();
        ws.close(CloseCode::NORMAL, "")?;
        tx.send(start.elapsed())?;
        Ok(())
    });
    let mut raw = RawConn::connect(addr);
    assert_eq!(raw.read_frame().close_code(), Some(1000));
    raw.send(&Frame::close(1000, ""));
    // The client keeps its socket open: the server swallows stray bytes for a short while
    // (so its close is not lost to a reset), but not for the whole close timeout.
    let took = took.recv_timeout(TIMEOUT).unwrap();
    assert!(took >= Duration::from_millis(90), "lingered {took:?}");
    assert!(took < Duration::from_millis(900), "lingered {took:?}");
    raw.expect_eof();
}

#[test]
fn a_client_waits_for_the_server_to_end_tcp_after_the_closing_handshake() {
    let (addr, server) = raw_server(|mut peer| {
        peer.send(&Frame::close(1000, "").unmasked());
        let echo = peer.read_frame();
        std::thread::sleep(Duration::from_millis(300));
        echo.close_code()
    });
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    let start = Instant::now();
    assert!(ws.recv().unwrap().is_none());
    // RFC 6455 7.1.1: the client ends TCP after the server does, here 300 ms after its echo.
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(250),
        "returned after {took:?}"
    );
    assert_eq!(server.join().unwrap(), Some(1000));
}

#[test]
fn closing_a_connection_whose_write_failed_is_ok() {
    let (addr, server) = raw_server(drop);
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    server.join().unwrap();
    let data = vec![0u8; 64 << 10];
    let failed = (0..200).find_map(|_| {
        std::thread::sleep(Duration::from_millis(5));
        ws.send(&data[..]).err()
    });
    assert!(matches!(failed, Some(Error::Io(_))), "{failed:?}");
    // The connection is gone: there is no handshake left to do, and nothing to report.
    assert!(matches!(ws.close(CloseCode::NORMAL, ""), Ok(())));
}

#[test]
fn close_gives_up_on_a_silent_peer_within_the_close_timeout() {
    let close_timeout = Duration::from_millis(1000);
    let (addr, server) = raw_server(|mut peer| {
        let close = peer.read_frame();
        // Never answer; wait for the client to give up and end TCP.
        peer.expect_eof();
        close.close_code()
    });
    let mut ws = Client::builder()
        .config(Config::default().close_timeout(close_timeout))
        .connect(&ws_url(addr, "/"))
        .unwrap();
    let start = Instant::now();
    let result = ws.close(CloseCode::NORMAL, "");
    let took = start.elapsed();
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
    assert_eq!(ws.state(), State::Closed);
    assert!(took >= close_timeout, "gave up after {took:?}");
    assert!(
        took < close_timeout + Duration::from_millis(750),
        "close took {took:?} with a close timeout of {close_timeout:?}"
    );
    assert_eq!(server.join().unwrap(), Some(1000));
}

#[test]
fn codes_that_must_not_go_on_the_wire_are_refused_locally() {
    let addr = echo_server();
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        assert!(
            matches!(
                ws.close(CloseCode(code), ""),
                Err(Error::InvalidInput(InputError::CloseCode))
            ),
            "{code}"
        );
    }
    let long = "x".repeat(124);
    assert!(matches!(
        ws.close(CloseCode::NORMAL, &long),
        Err(Error::InvalidInput(InputError::CloseReasonTooLong))
    ));
    // Nothing went out: the connection still works, and the longest reason is fine.
    assert_eq!(ws.state(), State::Open);
    ws.send("open").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("open".into())));
    ws.close(CloseCode::NORMAL, &long[..123]).unwrap();
    assert_eq!(ws.close_frame().map(|f| f.code), Some(CloseCode::NORMAL));
}
