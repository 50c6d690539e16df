//! HTTP beside WebSocket on one port over real loopback sockets: the HTTP handler's view of a
//! request, keep-alive, HTTP/1.0, the final statuses for requests the server cannot serve, and the
//! 426 without a handler. Answers are checked as raw bytes where the client would hide them.

mod raw_http;
mod support;

use raw_http::{End, Http, get};
use support::*;
use syncws::{Client, Config, Response, Server};

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
