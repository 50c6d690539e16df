//! The server front end over real loopback sockets: HTTP beside WebSocket, gatekeeping, the
//! origin policy, subprotocols, connection limits, slow handshakes, shutdown, panics and the
//! error callback. Answers are checked as raw bytes where the client would hide them.

mod raw_http;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use raw_http::{End, Http, get, upgrade, wait_until};
use syncws::{
    Accept, Client, CloseCode, Config, ConnectionError, Error, HandlerResult, Message, Response,
    Server, ServerHandle, WebSocket,
};

/// Bound on every receive in these tests: a bug fails the test instead of hanging it.
const TIMEOUT: Duration = Duration::from_secs(10);

/// How long a server may take to do something that needs no waiting on its side (close a
/// refused connection, deregister a finished one).
const PROMPTLY: Duration = Duration::from_secs(3);

fn echo(ws: &mut WebSocket) -> HandlerResult {
    while let Some(msg) = ws.recv()? {
        ws.send(&msg)?;
    }
    Ok(())
}

fn start(server: Server) -> ServerHandle {
    server.start(echo).expect("start")
}

fn bind() -> Server {
    Server::bind("127.0.0.1:0").expect("bind")
}

fn url(handle: &ServerHandle, path: &str) -> String {
    format!("ws://{}{path}", handle.local_addr())
}

/// Sends `text` and expects it back.
fn echo_once(ws: &mut WebSocket, text: &str) {
    ws.send(text).unwrap();
    match ws.recv_timeout(TIMEOUT) {
        Ok(Some(Message::Text(t))) => assert_eq!(t, text),
        other => panic!("echo of {text:?}: {other:?}"),
    }
}

/// The first text message on a fresh connection.
fn first_text(ws: &mut WebSocket) -> String {
    match ws.recv_timeout(TIMEOUT) {
        Ok(Some(Message::Text(t))) => t,
        other => panic!("expected a text message: {other:?}"),
    }
}

/// Receives until the server closes; returns the close code it sent.
fn close_code(ws: &mut WebSocket) -> u16 {
    match ws.recv_timeout(TIMEOUT) {
        Ok(None) => ws.close_frame().expect("a close frame").code.0,
        other => panic!("expected the server to close: {other:?}"),
    }
}

/// The status of a refused upgrade, as the syncws client reports it.
fn refused_status(result: syncws::Result<WebSocket>) -> u16 {
    match result {
        Err(Error::Http(r)) => r.status,
        Err(e) => panic!("expected an HTTP refusal, got error {e}"),
        Ok(_) => panic!("expected an HTTP refusal, got a WebSocket"),
    }
}

// ------------------------------------------------------------------ HTTP beside WebSocket

/// An HTTP handler that describes what it saw, and a couple of fixed routes.
fn http_server() -> Server {
    bind().max_body_size(16).http(|req| match req.path() {
        "/favicon.ico" => Response::not_found(),
        "/bye" => Response::text(200, "bye\n").header("Connection", "close"),
        _ => Response::text(
            200,
            format!(
                "{} {} query={} q={} x-test={} peer={} body={}",
                req.method(),
                req.path(),
                req.query().unwrap_or("-"),
                req.query_param("q").unwrap_or_default(),
                req.header("X-TEST").unwrap_or("-"),
                req.peer_addr().map_or("-".into(), |a| a.to_string()),
                String::from_utf8_lossy(req.body()),
            ),
        )
        .header("X-Served-By", "test"),
    })
}

#[test]
fn http_handler_sees_method_path_query_headers_peer_and_body() {
    let handle = start(http_server());
    let mut c = Http::connect(handle.local_addr());
    let me = c.stream.local_addr().unwrap();

    let r = c.exchange("GET /info?q=a%20b&x=1 HTTP/1.1\r\nHost: localhost\r\nX-Test: yes\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-served-by"), Some("test"));
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; charset=utf-8"),
        "handler's headers are sent as given"
    );
    let want = format!("GET /info query=q=a%20b&x=1 q=a b x-test=yes peer={me} body=");
    assert_eq!(r.text(), want);
    assert_eq!(r.header("content-length"), Some(&*want.len().to_string()));

    // Same connection: a POST whose body the handler reads.
    let r = c.exchange(
        "POST /form HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello=world",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        format!("POST /form query=- q= x-test=- peer={me} body=hello=world")
    );
    handle.shutdown();
}

#[test]
fn keep_alive_answers_several_requests_on_one_connection_until_close() {
    let handle = start(http_server());
    let mut c = Http::connect(handle.local_addr());
    let page = c.exchange("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(page.status, 200);
    assert_eq!(page.header("connection"), None, "keep-alive is the default");
    let icon = c.exchange("GET /favicon.ico HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!((icon.status, icon.text().as_str()), (404, "not found\n"));

    // Two pipelined requests in one write are answered in order.
    c.send("GET /a HTTP/1.1\r\nHost: localhost\r\n\r\nGET /favicon.ico HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(c.response().text().starts_with("GET /a "));
    assert_eq!(c.response().status, 404);

    // The client asks to close: answered, marked, and closed by the server.
    let last = c.exchange("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(last.status, 200);
    assert_eq!(last.header("connection"), Some("close"));
    assert_eq!(c.end(PROMPTLY), End::Closed);

    // The handler asks to close.
    let mut c = Http::connect(handle.local_addr());
    let bye = c.exchange("GET /bye HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!((bye.status, bye.header("connection")), (200, Some("close")));
    assert_eq!(c.end(PROMPTLY), End::Closed);
    handle.shutdown();
}

#[test]
fn http_1_0_closes_unless_keep_alive_is_asked_for() {
    let handle = start(http_server());
    let mut c = Http::connect(handle.local_addr());
    let r = c.exchange("GET / HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert_eq!(c.end(PROMPTLY), End::Closed);

    let mut c = Http::connect(handle.local_addr());
    for _ in 0..2 {
        let r = c.exchange("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        // RFC 9112 9.3: an HTTP/1.0 client learns that the connection persists only if told.
        assert_eq!(
            (r.status, r.header("connection")),
            (200, Some("keep-alive"))
        );
    }
    handle.shutdown();
}

#[test]
fn requests_the_server_cannot_serve_get_a_final_status_and_a_close() {
    let big_header = format!("X-Big: {}\r\n", "x".repeat(2000));
    let many_headers: String = (0..20).map(|i| format!("X-H{i}: v\r\n")).collect();
    let rows: Vec<(&str, String, u16)> = vec![
        (
            "chunked body",
            "POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .into(),
            501,
        ),
        (
            "body over max_body_size",
            format!(
                "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 17\r\n\r\n{}",
                "b".repeat(17)
            ),
            413,
        ),
        (
            "huge announced body, none sent",
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 999999999\r\n\r\n".into(),
            413,
        ),
        (
            "bad content-length",
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: ten\r\n\r\n".into(),
            400,
        ),
        (
            "header too large",
            format!("GET / HTTP/1.1\r\nHost: localhost\r\n{big_header}\r\n"),
            431,
        ),
        (
            "too many headers",
            format!("GET / HTTP/1.1\r\nHost: localhost\r\n{many_headers}\r\n"),
            431,
        ),
    ];
    let config = Config::default().max_header_bytes(1024).max_headers(16);
    let handle = start(http_server().config(config));
    for (what, request, status) in rows {
        let mut c = Http::connect(handle.local_addr());
        let r = c.exchange(&request);
        assert_eq!(r.status, status, "{what}: {}", r.text());
        assert_eq!(r.header("connection"), Some("close"), "{what}");
        assert_eq!(c.end(PROMPTLY), End::Closed, "{what}");
    }
    // The limits are limits, not refusals: a body of exactly max_body_size is served.
    let mut c = Http::connect(handle.local_addr());
    let r = c.exchange(format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 16\r\n\r\n{}",
        "b".repeat(16)
    ));
    assert_eq!(r.status, 200);
    assert!(r.text().ends_with(&format!("body={}", "b".repeat(16))));
    handle.shutdown();
}

#[test]
fn plain_get_without_http_handler_gets_426() {
    let handle = start(bind());
    let mut c = Http::connect(handle.local_addr());
    let r = c.exchange("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(r.status, 426);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    assert_eq!(c.end(PROMPTLY), End::Closed);
    // The same server still upgrades.
    let mut ws = Client::connect(&url(&handle, "/")).unwrap();
    echo_once(&mut ws, "still a websocket server");
    handle.shutdown();
}

#[test]
fn http_and_websocket_share_one_port() {
    let handle = start(http_server());
    assert_eq!(get(handle.local_addr(), "/favicon.ico").status, 404);
    let mut ws = Client::connect(&url(&handle, "/ws")).unwrap();
    echo_once(&mut ws, "hello");
    handle.shutdown();
}

// ------------------------------------------------------------------ gatekeeping

#[derive(Debug)]
struct User(String);

#[test]
fn gatekeeper_accepts_with_protocol_header_and_data() {
    let server = bind()
        .gatekeeper(|req| {
            Ok(Accept::new()
                .protocol("chat")
                .header("X-Welcome", "yes")
                .data(User(req.query_param("user").unwrap_or_default())))
        })
        .start(|ws| {
            let user = ws.data::<User>().map_or("no data", |u| u.0.as_str());
            let reply = format!("{user} {}", ws.protocol().unwrap_or("none"));
            ws.send(reply)?;
            Ok(())
        })
        .unwrap();
    let mut c = Http::connect(server.local_addr());
    let r = c.exchange(upgrade(
        "/?user=ann",
        "Sec-WebSocket-Protocol: superchat, chat\r\n",
    ));
    assert_eq!(r.status, 101);
    assert_eq!(r.header("x-welcome"), Some("yes"));
    assert_eq!(r.header("sec-websocket-protocol"), Some("chat"));
    assert_eq!(c.frame(), (0x1, b"ann chat".to_vec()));
    server.shutdown();
}

#[test]
fn gatekeeper_rejection_reaches_the_client_as_it_was_written() {
    let server = start(bind().gatekeeper(|_| {
        Err(Response::text(401, "who are you?\n").header("WWW-Authenticate", "Bearer"))
    }));
    match Client::connect(&url(&server, "/")) {
        Err(Error::Http(r)) => {
            assert_eq!(r.status, 401);
            assert_eq!(r.body, b"who are you?\n");
            let auth = r
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"));
            assert_eq!(auth.map(|(_, v)| v.as_str()), Some("Bearer"));
        }
        Err(e) => panic!("expected 401, got {e}"),
        Ok(_) => panic!("expected 401, got a WebSocket"),
    }
    assert!(wait_until(PROMPTLY, || server.connections() == 0));
    server.shutdown();
}

#[derive(Debug)]
struct Via(&'static str);

#[test]
fn token_in_url_and_authorization_header_both_authenticate() {
    let server = bind()
        .gatekeeper(|req| {
            if req.query_param("token").as_deref() == Some("s3cret") {
                Ok(Accept::new().data(Via("query")))
            } else if req.header("authorization") == Some("Bearer s3cret") {
                Ok(Accept::new().data(Via("header")))
            } else {
                Err(Response::forbidden())
            }
        })
        .start(|ws| {
            let via = ws.data::<Via>().map_or("none", |v| v.0);
            ws.send(via)?;
            Ok(())
        })
        .unwrap();
    let rows: &[(&str, Option<&str>, Result<&str, u16>)] = &[
        ("/?token=s3cret", None, Ok("query")),
        ("/?a=1&token=s3cr%65t", None, Ok("query")),
        ("/?token=wrong", None, Err(403)),
        ("/", Some("Bearer s3cret"), Ok("header")),
        ("/", Some("Bearer nope"), Err(403)),
        ("/", None, Err(403)),
    ];
    for (path, auth, want) in rows {
        let mut client = Client::builder();
        if let Some(auth) = auth {
            client = client.header("Authorization", auth);
        }
        let result = client.connect(&url(&server, path));
        match want {
            Ok(via) => assert_eq!(first_text(&mut result.unwrap()), *via, "{path} {auth:?}"),
            Err(status) => match result {
                Err(Error::Http(r)) => {
                    assert_eq!(r.status, *status, "{path} {auth:?}");
                    assert_eq!(r.body, b"forbidden\n", "Response::forbidden body");
                }
                other => panic!("{path} {auth:?}: expected {status}, got {:?}", other.err()),
            },
        }
    }
    server.shutdown();
}

// ------------------------------------------------------------------ origin policy

#[test]
fn origin_matrix_over_real_sockets() {
    let same_origin = start(bind());
    let listed = start(bind().allowed_origins(["http://app.example", "https://other.example/"]));
    let home = |h: &ServerHandle| format!("http://{}", h.local_addr());
    let port = same_origin.local_addr().port();
    let rows: Vec<(&ServerHandle, Option<String>, bool)> = vec![
        (&same_origin, None, true),
        (&same_origin, Some(home(&same_origin)), true),
        (
            &same_origin,
            Some(format!("http://127.0.0.1:{}", port + 1)),
            false,
        ),
        (
            &same_origin,
            Some(format!("https://127.0.0.1:{port}")),
            false,
        ),
        (&same_origin, Some("http://evil.example".into()), false),
        (&same_origin, Some("null".into()), false),
        (&listed, None, true),
        (&listed, Some("http://app.example".into()), true),
        (&listed, Some("https://other.example".into()), true),
        (&listed, Some(home(&listed)), false),
        (&listed, Some("http://evil.example".into()), false),
    ];
    for (server, origin, accepted) in rows {
        let mut client = Client::builder();
        if let Some(o) = &origin {
            client = client.header("Origin", o);
        }
        let result = client.connect(&url(server, "/"));
        if accepted {
            let mut ws = result.unwrap_or_else(|e| panic!("origin {origin:?}: {e}"));
            echo_once(&mut ws, "ok");
        } else {
            assert_eq!(refused_status(result), 403, "origin {origin:?}");
        }
    }
    same_origin.shutdown();
    listed.shutdown();
}

// ------------------------------------------------------------------ subprotocols

/// Upgrades by hand offering `offer` (None: no header); returns the answered subprotocol header
/// and the protocol the server-side socket reports.
fn negotiate(server: &ServerHandle, offer: Option<&str>) -> (Option<String>, String) {
    let mut c = Http::connect(server.local_addr());
    let extra = offer.map_or(String::new(), |o| {
        format!("Sec-WebSocket-Protocol: {o}\r\n")
    });
    let r = c.exchange(upgrade("/", &extra));
    assert_eq!(r.status, 101, "offer {offer:?}");
    let (opcode, payload) = c.frame();
    assert_eq!(opcode, 0x1);
    (
        r.header("sec-websocket-protocol").map(str::to_owned),
        String::from_utf8(payload).unwrap(),
    )
}

fn report_protocol(ws: &mut WebSocket) -> HandlerResult {
    let p = ws.protocol().unwrap_or("none").to_owned();
    ws.send(p)?;
    Ok(())
}

#[test]
fn subprotocol_is_the_servers_preference_among_those_offered() {
    let server = bind().protocols(["b", "a"]).start(report_protocol).unwrap();
    let rows: &[(Option<&str>, Option<&str>)] = &[
        (Some("a, b"), Some("b")),
        (Some("b, a"), Some("b")),
        (Some("a"), Some("a")),
        (Some("c, a"), Some("a")),
        (Some("a\r\nSec-WebSocket-Protocol: b"), Some("b")),
        (Some("c"), None),
        (None, None),
    ];
    for (offer, want) in rows {
        let (header, on_server) = negotiate(&server, *offer);
        assert_eq!(header.as_deref(), *want, "offer {offer:?}");
        assert_eq!(on_server, want.unwrap_or("none"), "offer {offer:?}");
    }
    server.shutdown();
}

#[test]
fn select_protocol_chooses_from_the_offer() {
    let last = bind()
        .select_protocol(|offered| offered.last().map(|p| p.to_string()))
        .start(report_protocol)
        .unwrap();
    assert_eq!(
        negotiate(&last, Some("x, y")),
        (Some("y".into()), "y".into())
    );
    assert_eq!(negotiate(&last, None), (None, "none".into()));

    // RFC 6455 4.2.2: the answer must be one the client offered, whatever the selector says.
    let rogue = bind()
        .select_protocol(|_| Some("zzz".into()))
        .start(report_protocol)
        .unwrap();
    assert_eq!(negotiate(&rogue, Some("x")), (None, "none".into()));
    last.shutdown();
    rogue.shutdown();
}

// ------------------------------------------------------------------ connection limits

/// Opens a raw connection, sends an upgrade request and reads the refusal.
fn refused(addr: SocketAddr) -> raw_http::Reply {
    let mut c = Http::connect(addr);
    let r = c.exchange(upgrade("/", ""));
    assert_eq!(
        c.end(PROMPTLY),
        End::Closed,
        "refused connections are closed"
    );
    r
}

#[test]
fn max_connections_answers_503_with_retry_after() {
    let server = start(bind().max_connections(2));
    let mut a = Client::connect(&url(&server, "/")).unwrap();
    let mut b = Client::connect(&url(&server, "/")).unwrap();
    echo_once(&mut a, "a");
    echo_once(&mut b, "b");
    let r = refused(server.local_addr());
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    assert_eq!(server.connections(), 2);

    // A slot frees when a connection ends.
    a.close(CloseCode::NORMAL, "").unwrap();
    assert!(wait_until(PROMPTLY, || server.connections() == 1));
    let mut c = Client::connect(&url(&server, "/")).unwrap();
    echo_once(&mut c, "c");
    echo_once(&mut b, "b again");
    server.shutdown();
}

#[test]
fn per_ip_cap_answers_429() {
    let server = start(bind().max_connections_per_ip(1));
    let mut a = Client::connect(&url(&server, "/")).unwrap();
    echo_once(&mut a, "a");
    let r = refused(server.local_addr());
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    a.close(CloseCode::NORMAL, "").unwrap();
    assert!(wait_until(PROMPTLY, || server.connections() == 0));
    let mut b = Client::connect(&url(&server, "/")).unwrap();
    echo_once(&mut b, "b");
    server.shutdown();
}

#[test]
fn rate_limit_answers_429_within_the_window_even_after_earlier_connections_ended() {
    let server = start(bind().rate_limit(2, Duration::from_secs(60)));
    for i in 0..2 {
        let mut ws = Client::connect(&url(&server, "/")).unwrap();
        echo_once(&mut ws, &i.to_string());
        ws.close(CloseCode::NORMAL, "").unwrap();
    }
    assert!(wait_until(PROMPTLY, || server.connections() == 0));
    let r = refused(server.local_addr());
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        refused_status(Client::connect(&url(&server, "/"))),
        429,
        "the syncws client sees it too"
    );
    server.shutdown();
}

#[test]
fn peer_filter_closes_without_a_byte() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handled = Arc::new(AtomicUsize::new(0));
    let (seen2, handled2) = (Arc::clone(&seen), Arc::clone(&handled));
    let server = bind()
        .peer_filter(move |peer| {
            seen2.lock().unwrap().push(peer);
            false
        })
        .start(move |_| {
            handled2.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    let mut c = Http::connect(server.local_addr());
    let me = c.stream.local_addr().unwrap();
    c.send(upgrade("/", ""));
    // `end` fails the test on any byte from the server.
    assert_eq!(c.end(PROMPTLY), End::Closed);
    assert_eq!(*seen.lock().unwrap(), vec![me], "the filter saw the peer");
    assert_eq!(handled.load(Ordering::SeqCst), 0);
    assert_eq!(server.connections(), 0);
    server.shutdown();
}

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
    const SLOW: Duration = Duration::from_millis(500);
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
fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    let start = |trusted: &str| {
        let server = Server::bind("127.0.0.1:0")
            .unwrap()
            .trusted_proxies([trusted.parse().unwrap()])
            .max_connections_per_ip(1)
            .http(|req| syncws::Response::text(200, format!("{:?}", req.peer_addr())));
        let addr = server.local_addr().unwrap();
        thread::spawn(move || {
            server.serve(|ws| {
                ws.send(format!("{:?}", ws.peer_addr()))?;
                while let Some(m) = ws.recv()? {
                    ws.send(m)?;
                }
                Ok(())
            })
        });
        addr
    };
    let via = |addr: SocketAddr, xff: &str| {
        syncws::Client::builder()
            .no_proxy()
            .header("X-Forwarded-For", xff)
            .connect(&format!("ws://{addr}/"))
    };
    let first = |ws: &mut syncws::WebSocket| ws.recv().unwrap().unwrap().into_text().unwrap();
    let addr = start("127.0.0.1");
    let mut a = via(addr, "203.0.113.9").unwrap();
    assert_eq!(first(&mut a), "Some(203.0.113.9:0)");
    // The per-IP limit (1) counts the forwarded client, not the proxy...
    match via(addr, "203.0.113.9") {
        Err(syncws::Error::Http(r)) => assert_eq!(r.status, 429),
        other => panic!("expected 429, got {other:?}"),
    }
    // ... so another client through the same proxy is let in.
    let mut b = via(addr, "198.51.100.7").unwrap();
    assert_eq!(first(&mut b), "Some(198.51.100.7:0)");
    // Entries left of the last untrusted one are whatever the client wrote: ignored.
    let mut c = via(addr, "6.6.6.6, 192.0.2.1").unwrap();
    assert_eq!(first(&mut c), "Some(192.0.2.1:0)");
    // When the first client leaves, its count is released.
    a.close(syncws::CloseCode::NORMAL, "").unwrap();
    let mut again = None;
    assert!(wait_until(Duration::from_secs(3), || {
        again = via(addr, "203.0.113.9").ok();
        again.is_some()
    }));
    assert_eq!(first(again.as_mut().unwrap()), "Some(203.0.113.9:0)");
    // Plain HTTP sees the forwarded address too.
    let reply = Http::connect(addr)
        .exchange("GET / HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 192.0.2.77\r\n\r\n");
    assert_eq!(reply.text(), "Some(192.0.2.77:0)");
    // From an address that is not a trusted proxy, the header is ignored.
    let untrusting = start("127.0.0.2");
    let mut d = via(untrusting, "203.0.113.9").unwrap();
    let seen = first(&mut d);
    assert!(seen.starts_with("Some(127.0.0.1:"), "{seen}");
    drop((b, c));
}
