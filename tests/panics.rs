//! Handler failures over real loopback sockets: a panicking handler closes its connection with
//! 1011 and spares the others, and the error callback sees every failure without stalling
//! connections.

mod raw_http;
mod support;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use raw_http::{Http, wait_until};
use support::*;
use syncws::{Client, CloseCode, ConnectionError, Error, HandlerResult, WebSocket};

// ------------------------------------------------------------------ panics and errors

fn echo_or_panic(ws: &mut WebSocket) -> HandlerResult {
    if ws.path() == Some("/panic") {
        panic!("deliberate panic in a test handler");
    }
    echo(ws)
}

#[test]
fn a_panicking_handler_closes_1011_and_spares_the_others() {
    let server = bind().start(echo_or_panic).unwrap();
    let mut a = Client::connect(&url(&server, "/")).unwrap();
    let mut b = Client::connect(&url(&server, "/")).unwrap();
    echo_once(&mut a, "a1");
    echo_once(&mut b, "b1");
    let mut doomed = Client::connect(&url(&server, "/panic")).unwrap();
    assert_eq!(close_code(&mut doomed), 1011);
    echo_once(&mut a, "a2");
    echo_once(&mut b, "b2");
    let mut c = Client::connect(&url(&server, "/")).unwrap();
    echo_once(&mut c, "c1");
    assert!(wait_until(PROMPTLY, || server.connections() == 3));
    server.shutdown();
}

#[test]
fn on_error_gets_every_failure_without_stalling_connections() {
    // Long against the four connections (well under 0.5 s alone, up to 1 s on a loaded
    // machine), short enough that waiting for four reports stays quick.
    const SLOW: Duration = Duration::from_millis(1500);
    let (tx, rx) = mpsc::channel::<ConnectionError>();
    let server = bind()
        .on_error(move |e| {
            thread::sleep(SLOW);
            let _ = tx.send(e);
        })
        .start(|ws| match ws.path() {
            Some("/fail") => Err("boom".into()),
            Some("/panic") => panic!("deliberate panic in a test handler"),
            _ => echo(ws),
        })
        .unwrap();

    let began = Instant::now();
    // A failed handshake: an upgrade without a key gets 400.
    let mut bad = Http::connect(server.local_addr());
    let bad_addr = bad.stream.local_addr().unwrap();
    let r = bad.exchange(
        "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    for path in ["/fail", "/fail", "/panic"] {
        let mut ws = Client::connect(&url(&server, path)).unwrap();
        assert_eq!(close_code(&mut ws), 1011, "{path}");
    }
    let took = began.elapsed();
    assert!(
        took < SLOW,
        "four failing connections took {took:?}: the slow callback held them up"
    );

    let mut errors: Vec<ConnectionError> = (0..4)
        .map(|_| rx.recv_timeout(TIMEOUT).expect("an error report"))
        .collect();
    // The handshake error comes after the 400 has been sent and lingered over, so not first.
    let at = errors
        .iter()
        .position(|e| e.peer == Some(bad_addr))
        .expect("the failed handshake was reported");
    let handshake = errors.remove(at);
    assert!(
        matches!(
            handshake.error.downcast_ref::<Error>(),
            Some(Error::Handshake(_))
        ),
        "{:?}",
        handshake.error
    );
    let texts: Vec<String> = errors.iter().map(|e| e.error.to_string()).collect();
    assert_eq!(
        texts.iter().filter(|t| *t == "boom").count(),
        2,
        "{texts:?}"
    );
    assert_eq!(
        texts.iter().filter(|t| t.contains("panic")).count(),
        1,
        "{texts:?}"
    );
    // A healthy connection is not reported.
    let mut ws = Client::connect(&url(&server, "/")).unwrap();
    echo_once(&mut ws, "fine");
    ws.close(CloseCode::NORMAL, "").unwrap();
    assert!(
        rx.recv_timeout(SLOW * 2).is_err(),
        "no error for a clean close"
    );
    server.shutdown();
}

#[test]
fn a_client_that_leaves_before_asking_is_not_reported_but_half_a_request_is() {
    let (tx, rx) = mpsc::channel::<ConnectionError>();
    let server = bind()
        .on_error(move |e| {
            let _ = tx.send(e);
        })
        .start(echo)
        .unwrap();
    // Connects and goes away without a byte: nothing went wrong.
    let silent = std::net::TcpStream::connect(server.local_addr()).unwrap();
    let silent_addr = silent.local_addr().unwrap();
    drop(silent);
    // Goes away in the middle of its request line: a failed handshake.
    let mut cut = Http::connect(server.local_addr());
    let cut_addr = cut.stream.local_addr().unwrap();
    std::io::Write::write_all(&mut cut.stream, b"GET / HT").unwrap();
    cut.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let report = rx
        .recv_timeout(TIMEOUT)
        .expect("the cut request was reported");
    assert_eq!(report.peer, Some(cut_addr), "{:?}", report.error);
    assert!(
        matches!(
            report.error.downcast_ref::<Error>(),
            Some(Error::Handshake(_))
        ),
        "{:?}",
        report.error
    );
    // Both connections have ended by now (the cut one was answered and lingered over).
    assert!(
        wait_until(TIMEOUT, || server.connections() == 0),
        "connections left open"
    );
    if let Ok(e) = rx.try_recv() {
        panic!(
            "reported as well: {:?} from {:?} (silent was {silent_addr})",
            e.error, e.peer
        );
    }
    server.shutdown();
}
