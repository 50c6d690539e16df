//! The reconnecting client over real loopback sockets: a server restarted on the same port, HTTP
//! refusals worth retrying and not, the close codes that reconnect, the stop handle, giving up,
//! and no thread left behind. Backoff bounds are small so that every test finishes in seconds.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use syncws::{Accept, Backoff, Client, CloseCode, Error, Reconnecting, Response, Server};

/// The tests count the process's threads, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes [`SERIAL`] and renames this thread so that [`threads`] counts it and the threads it
/// starts (they inherit the name) but not the harness's threads waiting for their turn.
fn serial() -> MutexGuard<'static, ()> {
    let turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::write("/proc/thread-self/comm", "under-test").unwrap();
    turn
}

/// Waits of 20 ms doubling to 200 ms, full jitter.
fn quick() -> Backoff {
    Backoff::default()
        .initial(Duration::from_millis(20))
        .max(Duration::from_millis(200))
}

fn reconnecting(url: &str) -> Reconnecting<'static> {
    Client::builder()
        .no_proxy()
        .reconnecting(url)
        .backoff(quick())
}

/// Runs the loop on its own thread and returns what `run` returned, failing the test if it
/// takes longer than `within`.
fn run_within<F>(within: Duration, run: F) -> syncws::Result<()>
where
    F: FnOnce() -> syncws::Result<()> + Send + 'static,
{
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(run());
    });
    result
        .recv_timeout(within)
        .unwrap_or_else(|_| panic!("the reconnect loop still runs after {within:?}"))
}

/// The threads of this process but the test harness's: libtest starts one per test, named
/// after the test (snake case), which may start and wait on [`SERIAL`] while another test
/// counts. The test's own threads are named `under-test`, syncws's `syncws-...`.
fn threads() -> usize {
    let harness = |name: &str| name.contains('_') && !name.contains('-');
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|task| {
            let comm = task.as_ref().unwrap().path().join("comm");
            // A thread that ended since the listing has no comm any more: not counted.
            std::fs::read_to_string(comm).is_ok_and(|name| !harness(name.trim()))
        })
        .count()
}

/// The thread count once threads of earlier tests have ended (it held still for 100 ms).
fn settled_threads() -> usize {
    let deadline = Instant::now() + PROMPTLY;
    let mut count = threads();
    loop {
        thread::sleep(Duration::from_millis(100));
        let now = threads();
        if now == count || Instant::now() >= deadline {
            return now;
        }
        count = now;
    }
}

/// Waits (a bounded while) for the thread count to come back to `before`.
fn assert_threads_back_to(before: usize) {
    let deadline = Instant::now() + PROMPTLY;
    while threads() > before && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    // Fewer is fine: a thread of an earlier test may have ended meanwhile.
    let now = threads();
    assert!(now <= before, "{} threads left behind", now - before);
}

#[test]
fn reconnects_after_a_server_restart_on_the_same_port_and_reruns_the_hook() {
    let _serial = serial();
    let before = settled_threads();
    let first = bind().start(echo).unwrap();
    let addr = first.local_addr();
    let hooks = Arc::new(AtomicUsize::new(0));
    let (got, echoes) = mpsc::channel();
    let ran = {
        let hooks = hooks.clone();
        let url = ws_url(addr, "/");
        thread::spawn(move || {
            let counted = hooks.clone();
            reconnecting(&url)
                .on_connect(move |ws| {
                    let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                    ws.send(format!("hello {n}"))
                })
                .run(|ws| {
                    while let Some(msg) = ws.recv()? {
                        let _ = got.send(msg.into_text().unwrap());
                    }
                    Ok(())
                })
        })
    };
    assert_eq!(echoes.recv_timeout(TIMEOUT).unwrap(), "hello 1");
    // The server goes away (1001) and stays down for a few refused attempts.
    assert!(first.shutdown());
    thread::sleep(Duration::from_millis(300));
    let second = Server::bind(addr).unwrap().start(echo).unwrap();
    assert_eq!(echoes.recv_timeout(TIMEOUT).unwrap(), "hello 2");
    // A normal close (1000) ends the loop.
    assert!(second.shutdown_with(CloseCode::NORMAL, "bye").unwrap());
    let (done, result) = mpsc::channel();
    thread::spawn(move || done.send(ran.join().unwrap()));
    let result = result.recv_timeout(TIMEOUT).expect("the loop did not end");
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(hooks.load(Ordering::SeqCst), 2);
    assert_threads_back_to(before);
}

/// A server whose gatekeeper refuses the first `refusals` requests with `refusal` and accepts
/// the rest, whose handler closes at once with 1000; returns it with the times requests came.
fn refusing_server(
    refusals: usize,
    refusal: impl Fn() -> Response + Send + Sync + 'static,
) -> (syncws::ServerHandle, Arc<Mutex<Vec<Instant>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = bind().gatekeeper(move |_| {
        let mut log = log.lock().unwrap();
        log.push(Instant::now());
        if log.len() <= refusals {
            Err(refusal())
        } else {
            Ok(Accept::new())
        }
    });
    let handle = server
        .start(|ws| Ok(ws.close(CloseCode::NORMAL, "")?))
        .unwrap();
    (handle, seen)
}

#[test]
fn http_refusals_are_retried_only_when_a_retry_can_help() {
    let _serial = serial();
    // (status, retried)
    let rows = [
        (401, false),
        (403, false),
        (404, false),
        (429, true),
        (500, true),
        (502, true),
        (503, true),
    ];
    for (status, retried) in rows {
        let (server, seen) = refusing_server(1, move || Response::new(status));
        let url = url(&server, "/");
        // A first wait of 2 s: a status not retried must come back long before it would end.
        let started = Instant::now();
        let result = run_within(TIMEOUT, move || {
            Client::builder()
                .no_proxy()
                .reconnecting(&url)
                .backoff(
                    Backoff::default()
                        .jitter(0.0)
                        .initial(Duration::from_millis(300)),
                )
                .run(|_| Ok(()))
        });
        let took = started.elapsed();
        let requests = seen.lock().unwrap().len();
        if retried {
            assert!(result.is_ok(), "{status}: {result:?}");
            assert_eq!(requests, 2, "{status}");
        } else {
            assert_eq!(refused_status(result.map(|()| unreachable!())), status);
            assert_eq!(requests, 1, "{status}");
            assert!(
                took < Duration::from_millis(1500),
                "{status}: took {took:?}"
            );
        }
        server.shutdown();
    }
}

#[test]
fn a_503_retry_after_is_waited_out_within_the_backoff_bound() {
    let _serial = serial();
    // (Backoff::max, shortest and longest gap between the two requests)
    let rows = [
        (
            Duration::from_secs(5),
            Duration::from_secs(1),
            Duration::from_millis(2500),
        ),
        // Cut to max: well before the second asked for.
        (
            Duration::from_millis(100),
            Duration::from_millis(0),
            Duration::from_millis(900),
        ),
    ];
    for (max, shortest, longest) in rows {
        let (server, seen) = refusing_server(1, || Response::new(503).header("Retry-After", "1"));
        let url = url(&server, "/");
        let result = run_within(TIMEOUT, move || {
            let backoff = quick().max(max);
            reconnecting(&url).backoff(backoff).run(|_| Ok(()))
        });
        assert!(result.is_ok(), "{result:?}");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        let gap = seen[1] - seen[0];
        assert!(
            shortest <= gap && gap <= longest,
            "max {max:?}: waited {gap:?}"
        );
        server.shutdown();
    }
}

/// How the raw server ends a connection.
#[derive(Debug, Clone, Copy)]
enum End {
    Close(u16),
    /// Drops TCP without a close frame (1006).
    Drop,
}

/// A server that completes each upgrade by hand and ends connection `i` as `ends[i]` says
/// (the last entry for all after); returns its address, how many connections it served and
/// when each came. Its thread ends once `done` is set.
fn ending_server(ends: Vec<End>, done: Arc<AtomicBool>) -> (SocketAddr, Arc<AtomicUsize>, Times) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    let times = Times::default();
    let log = times.clone();
    thread::spawn(move || {
        while !done.load(Ordering::SeqCst) {
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(_) => {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                }
            };
            log.lock().unwrap().push(Instant::now());
            let i = count.fetch_add(1, Ordering::SeqCst);
            let end = ends[i.min(ends.len() - 1)];
            serve_raw(stream, end);
        }
    });
    (addr, served, times)
}

type Times = Arc<Mutex<Vec<Instant>>>;

/// The `101` by hand, then the ending.
fn serve_raw(mut stream: TcpStream, end: End) {
    stream.set_nonblocking(false).unwrap();
    guard(&stream);
    let head = read_head(&mut stream, &mut Vec::new());
    let key = head_header(&head, "sec-websocket-key").expect("no key");
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).unwrap();
    match end {
        End::Drop => drop(stream),
        End::Close(code) => {
            let [hi, lo] = code.to_be_bytes();
            stream.write_all(&[0x88, 2, hi, lo]).unwrap();
            // The client's echo (a masked close frame of 6 + 2 bytes), then we end TCP first.
            let mut echo = [0; 8];
            let _ = stream.read_exact(&mut echo);
        }
    }
}

#[test]
fn close_codes_and_drops_that_reconnect_and_those_that_end_the_loop() {
    let _serial = serial();
    // (how the first connection ends, connections made, what run returns: None for Ok, else
    // the code of the PeerClosed error). Every second connection closes with 1000.
    let rows = [
        (End::Close(1000), 1, None),
        (End::Close(1001), 2, None),
        (End::Close(1011), 2, None),
        (End::Close(1012), 2, None),
        (End::Close(1013), 2, None),
        (End::Drop, 2, None),
        (End::Close(1008), 1, Some(1008)),
        (End::Close(4000), 1, Some(4000)),
    ];
    for (end, connections, error) in rows {
        let done = Arc::new(AtomicBool::new(false));
        let (addr, served, _) = ending_server(vec![end, End::Close(1000)], done.clone());
        let url = ws_url(addr, "/");
        let result = run_within(TIMEOUT, move || {
            reconnecting(&url).run(|ws| {
                while ws.recv()?.is_some() {}
                Ok(())
            })
        });
        done.store(true, Ordering::SeqCst);
        assert_eq!(served.load(Ordering::SeqCst), connections, "{end:?}");
        match (error, result) {
            (None, Ok(())) => {}
            (Some(code), Err(Error::PeerClosed(frame))) => assert_eq!(frame.code.0, code),
            (want, got) => panic!("{end:?}: wanted {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn a_hook_that_fails_on_a_dropped_connection_is_retried_and_one_refused_is_not() {
    let _serial = serial();
    // (how the first connection ends, connections made, hook runs)
    let rows = [(End::Drop, 2), (End::Close(1008), 1)];
    for (end, connections) in rows {
        let done = Arc::new(AtomicBool::new(false));
        let (addr, served, _) = ending_server(vec![end, End::Close(1000)], done.clone());
        let url = ws_url(addr, "/");
        let hooks = Arc::new(AtomicUsize::new(0));
        let counted = hooks.clone();
        let _ = run_within(TIMEOUT, move || {
            reconnecting(&url)
                // A login that waits for the server's answer.
                .on_connect(move |ws| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    ws.recv()?;
                    Ok(())
                })
                .run(|_| Ok(()))
        });
        done.store(true, Ordering::SeqCst);
        assert_eq!(served.load(Ordering::SeqCst), connections, "{end:?}");
        assert_eq!(hooks.load(Ordering::SeqCst), connections, "{end:?}");
    }
}

/// An address nothing listens on.
fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[test]
fn the_stop_handle_ends_a_wait_at_once_and_leaves_no_thread() {
    let _serial = serial();
    let before = settled_threads();
    let url = ws_url(refused_addr(), "/");
    let loop_ = reconnecting(&url).backoff(
        Backoff::default()
            .initial(Duration::from_secs(30))
            .jitter(0.0),
    );
    let stop = loop_.stop_handle();
    let started = Instant::now();
    let stopper = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        stop.stop();
    });
    let result = run_within(TIMEOUT, move || loop_.run(|_| Ok(())));
    assert!(result.is_ok(), "{result:?}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "stopped after {took:?}");
    stopper.join().unwrap();
    assert_threads_back_to(before);
}

#[test]
fn gives_up_after_max_attempts_with_the_last_error() {
    let _serial = serial();
    let (server, seen) = refusing_server(usize::MAX, || Response::new(503));
    let url = url(&server, "/");
    let result = run_within(TIMEOUT, move || {
        reconnecting(&url).max_attempts(3).run(|_| Ok(()))
    });
    assert_eq!(refused_status(result.map(|()| unreachable!())), 503);
    assert_eq!(seen.lock().unwrap().len(), 3);
    server.shutdown();
    // Refused connections too.
    let url = ws_url(refused_addr(), "/");
    let result = run_within(TIMEOUT, move || {
        reconnecting(&url).max_attempts(2).run(|_| Ok(()))
    });
    assert!(matches!(result, Err(Error::Io(_))), "{result:?}");
}

#[test]
fn a_close_this_side_starts_ends_the_loop_whatever_code_the_peer_echoes() {
    let _serial = serial();
    // (split the socket first, close through the writer)
    for split in [false, true] {
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let server = bind()
            .start(move |ws| {
                counted.fetch_add(1, Ordering::SeqCst);
                echo(ws)
            })
            .unwrap();
        let url = url(&server, "/");
        let result = run_within(TIMEOUT, move || {
            reconnecting(&url).run(move |ws| {
                // 1001 would reconnect had the server sent it; here it only echoes ours.
                if split {
                    // As the client example does: another thread closes, the reader sees it end.
                    let (mut reader, writer) = ws.split()?;
                    let closer = thread::spawn(move || writer.close(CloseCode::GOING_AWAY, ""));
                    while reader.recv()?.is_some() {}
                    closer.join().unwrap()
                } else {
                    ws.close(CloseCode::GOING_AWAY, "")
                }
            })
        });
        assert!(result.is_ok(), "split {split}: {result:?}");
        assert_eq!(connections.load(Ordering::SeqCst), 1, "split {split}");
        server.shutdown();
    }
}

#[test]
fn a_split_session_reconnects_on_the_peers_1001() {
    let _serial = serial();
    let done = Arc::new(AtomicBool::new(false));
    let ends = vec![End::Close(1001), End::Close(1000)];
    let (addr, served, _) = ending_server(ends, done.clone());
    let url = ws_url(addr, "/");
    let result = run_within(TIMEOUT, move || {
        reconnecting(&url).run(|ws| {
            let (mut reader, _writer) = ws.split()?;
            while reader.recv()?.is_some() {}
            Ok(())
        })
    });
    done.store(true, Ordering::SeqCst);
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(served.load(Ordering::SeqCst), 2);
}

#[test]
fn the_backoff_starts_again_after_a_connection_that_stayed_up() {
    let _serial = serial();
    // Four 1001s, then 1000. Waits of 100 ms doubling (no jitter): without a reset they grow to
    // 800 ms; when every connection counts as one that stayed up they stay at 100 ms.
    // (reset_after, the longest gap between connections at least, at most)
    let rows = [
        (Duration::ZERO, None, Some(Duration::from_millis(450))),
        (
            Duration::from_secs(3600),
            Some(Duration::from_millis(750)),
            None,
        ),
    ];
    for (reset_after, at_least, at_most) in rows {
        let done = Arc::new(AtomicBool::new(false));
        let mut ends = vec![End::Close(1001); 4];
        ends.push(End::Close(1000));
        let (addr, served, times) = ending_server(ends, done.clone());
        let url = ws_url(addr, "/");
        let backoff = Backoff::default()
            .initial(Duration::from_millis(100))
            .max(Duration::from_secs(1))
            .jitter(0.0)
            .reset_after(reset_after);
        let result = run_within(TIMEOUT, move || {
            reconnecting(&url).backoff(backoff).run(|ws| {
                while ws.recv()?.is_some() {}
                Ok(())
            })
        });
        done.store(true, Ordering::SeqCst);
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(served.load(Ordering::SeqCst), 5);
        let times = times.lock().unwrap();
        let longest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        if let Some(at_least) = at_least {
            assert!(
                longest >= at_least,
                "reset_after {reset_after:?}: {longest:?}"
            );
        }
        if let Some(at_most) = at_most {
            assert!(
                longest <= at_most,
                "reset_after {reset_after:?}: {longest:?}"
            );
        }
    }
}
