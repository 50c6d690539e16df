//! Connections the server must end on its own, over real loopback sockets: stalled handshakes at
//! their deadline without blocking honest clients, and live connections at shutdown (1001 for
//! sockets, 503 for handshakes in progress, the port freed; for handlers a normal end that
//! reports no error; a code of the caller's choosing).

mod raw_http;
mod support;

use std::net::TcpListener;
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use raw_http::{Http, wait_until};
use support::*;
use syncws::{Client, CloseCode, Config, Error, Server};

// ------------------------------------------------------------------ slow handshakes

/// Deadline for the stalled handshakes. Long enough that the flood and the honest client's echo
/// surely finish before it even on a busy 2-core machine, so "the stalled ones are still open"
/// is a fact and not a race.
const HANDSHAKE: Duration = Duration::from_millis(1000);
const FLOOD: usize = 200;

#[test]
fn stalled_handshakes_neither_block_others_nor_outlive_their_deadline() {
    let server = start(bind().config(Config::default().handshake_timeout(HANDSHAKE)));
    let start = Instant::now();
    let mut stalled: Vec<(Http, Instant)> = Vec::with_capacity(FLOOD);
    // In batches below the listen backlog (128), each taken in before the next: a full accept
    // queue drops SYNs, and a 1 s retransmission would make the timing below meaningless.
    for _ in 0..FLOOD / 50 {
        for _ in 0..50 {
            let mut c = Http::connect(server.local_addr());
            c.send("GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: web");
            stalled.push((c, Instant::now()));
        }
        assert!(wait_until(PROMPTLY, || server.connections() >= stalled.len()));
    }

    let honest = Instant::now();
    let mut ws = Client::connect(&url(&server, "/")).unwrap();
    echo_once(&mut ws, "not stuck behind the flood");
    ws.close(CloseCode::NORMAL, "").unwrap();
    let took = honest.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "honest client took {took:?}"
    );
    // No stalled handshake can have timed out yet: each deadline runs from after `start`.
    assert!(start.elapsed() < HANDSHAKE, "flood too slow to test");
    assert!(
        server.connections() >= FLOOD,
        "stalled handshakes still held: {}",
        server.connections()
    );

    for (i, (c, opened)) in stalled.iter_mut().enumerate() {
        let answer = c.response_or_end();
        let cut = opened.elapsed();
        if let Some(r) = answer {
            assert_eq!(r.status, 408, "stalled #{i}: {}", r.text());
        }
        assert!(
            cut >= HANDSHAKE,
            "stalled #{i} cut after {cut:?}, before the deadline"
        );
        assert!(
            start.elapsed() < HANDSHAKE + PROMPTLY,
            "stalled #{i} still open {:?} after the flood began",
            start.elapsed()
        );
    }
    drop(stalled);
    assert!(
        wait_until(PROMPTLY, || server.connections() == 0),
        "{} connections left",
        server.connections()
    );
    assert!(server.shutdown());
}

// ------------------------------------------------------------------ shutdown

#[test]
fn shutdown_closes_live_sockets_with_1001_and_refuses_handshakes_with_503() {
    let server = bind().shutdown_timeout(Duration::from_secs(3));
    let handle = server.handle();
    let addr = handle.local_addr();
    let (served_tx, served_rx) = mpsc::channel();
    let serving = thread::spawn(move || {
        let result = server.serve(echo);
        let _ = served_tx.send(());
        result
    });

    let (ready_tx, ready_rx) = mpsc::channel();
    let clients: Vec<_> = (0..3)
        .map(|i| {
            let ready = ready_tx.clone();
            thread::spawn(move || {
                let mut ws = Client::connect(&format!("ws://{addr}/")).unwrap();
                echo_once(&mut ws, &format!("client {i}"));
                ready.send(()).unwrap();
                close_code(&mut ws)
            })
        })
        .collect();
    for _ in 0..3 {
        ready_rx.recv_timeout(TIMEOUT).expect("clients connected");
    }
    let mut halfway = Http::connect(addr);
    halfway.send("GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n");
    assert!(wait_until(PROMPTLY, || handle.connections() == 4));

    let began = Instant::now();
    assert!(handle.shutdown(), "every connection thread finished");
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    for client in clients {
        assert_eq!(client.join().unwrap(), 1001);
    }
    let r = halfway.response();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert_eq!(handle.connections(), 0);
    served_rx
        .recv_timeout(PROMPTLY)
        .expect("serve returned after shutdown");
    serving.join().unwrap().unwrap();
    TcpListener::bind(addr).expect("the port is free again");
    assert!(handle.shutdown(), "a second shutdown is harmless");
}

#[test]
fn shutdown_of_an_idle_started_server_frees_the_port() {
    let server = start(bind());
    let addr = server.local_addr();
    assert!(server.shutdown());
    TcpListener::bind(addr).expect("the port is free again");
}

// ------------------------------------------------------------------ shutdown is not an error

/// Every log line of this test process, as "LEVEL message".
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = format!("{} {}", record.level(), record.args());
        LINES.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

/// The log lines that mention `needle`, once logging is captured.
fn logged(needle: &str) -> Vec<String> {
    let lines = LINES.lock().unwrap();
    lines
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Debug);
    });
}

/// A server whose handlers receive until their socket ends and report what ended it; three
/// clients connected to it, each having echoed once. Returns the handle, the clients' threads
/// (each returns its own address and how its receive ended), what the handlers' receives
/// returned, and what reached `on_error`.
#[allow(clippy::type_complexity)]
fn three_live_handlers() -> (
    syncws::ServerHandle,
    Vec<
        thread::JoinHandle<(
            std::net::SocketAddr,
            syncws::Result<Option<syncws::Message>>,
        )>,
    >,
    mpsc::Receiver<String>,
    mpsc::Receiver<syncws::ConnectionError>,
) {
    capture_logs();
    let (errors_tx, errors) = mpsc::channel();
    let (ends_tx, ends) = mpsc::channel();
    let handle = Server::bind("127.0.0.1:0")
        .unwrap()
        .shutdown_timeout(Duration::from_secs(3))
        .on_error(move |e| errors_tx.send(e).unwrap())
        .start(move |ws| {
            let ended = loop {
                match ws.recv() {
                    Ok(Some(msg)) => ws.send(msg)?,
                    other => break other,
                }
            };
            ends_tx.send(format!("{ended:?}")).unwrap();
            ended?;
            Ok(())
        })
        .unwrap();
    let addr = handle.local_addr();
    let (ready_tx, ready) = mpsc::channel();
    let clients = (0..3)
        .map(|i| {
            let ready = ready_tx.clone();
            thread::spawn(move || {
                let mut ws = Client::connect(&format!("ws://{addr}/")).unwrap();
                let me = ws.get_ref().tcp().unwrap().local_addr().unwrap();
                echo_once(&mut ws, &format!("client {i}"));
                ready.send(()).unwrap();
                (me, ws.recv_timeout(TIMEOUT))
            })
        })
        .collect();
    for _ in 0..3 {
        ready.recv_timeout(TIMEOUT).expect("clients connected");
    }
    (handle, clients, ends, errors)
}

#[test]
fn a_shutdown_ends_handlers_normally_and_reports_no_error() {
    let (handle, clients, ends, errors) = three_live_handlers();
    assert!(handle.shutdown());
    for client in clients {
        let (me, ended) = client.join().unwrap();
        // 1001 is a normal end for the client too.
        assert!(matches!(ended, Ok(None)), "{ended:?}");
        let lines = logged(&format!("from {me} ended"));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("closed with 1001"), "{lines:?}");
        assert!(!lines[0].contains("error"), "{lines:?}");
    }
    for _ in 0..3 {
        assert_eq!(ends.recv_timeout(TIMEOUT).unwrap(), "Ok(None)");
    }
    assert!(
        errors.recv_timeout(Duration::from_millis(300)).is_err(),
        "on_error heard nothing"
    );
}

#[test]
fn a_shutdown_closes_with_the_code_asked_for() {
    let (handle, clients, ends, errors) = three_live_handlers();
    assert!(
        handle
            .shutdown_with(CloseCode::SERVICE_RESTART, "back soon")
            .unwrap()
    );
    for client in clients {
        let (me, ended) = client.join().unwrap();
        // 1012 is not a normal end to the client: it learns why, with the reason.
        match ended {
            Err(Error::PeerClosed(frame)) => {
                assert_eq!((frame.code.0, frame.reason.as_str()), (1012, "back soon"))
            }
            other => panic!("{other:?}"),
        }
        let lines = logged(&format!("from {me} ended"));
        assert!(lines[0].contains("closed with 1012"), "{lines:?}");
    }
    for _ in 0..3 {
        assert_eq!(ends.recv_timeout(TIMEOUT).unwrap(), "Ok(None)");
    }
    assert!(errors.recv_timeout(Duration::from_millis(300)).is_err());
}

#[test]
fn a_shutdown_code_that_may_not_be_sent_stops_nothing() {
    let handle = start(bind());
    let r = handle.shutdown_with(CloseCode::ABNORMAL, "");
    assert!(matches!(r, Err(Error::InvalidInput(_))), "{r:?}");
    let r = handle.shutdown_with(CloseCode::NORMAL, &"x".repeat(124));
    assert!(matches!(r, Err(Error::InvalidInput(_))), "{r:?}");
    assert_echoes(handle.local_addr(), "/", "still serving");
    assert!(handle.shutdown());
}
