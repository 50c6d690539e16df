//! The client's builder over real sockets: redirects, credentials, Origin, subprotocols, every
//! address tried, and an HTTP CONNECT proxy (a small one written here; `tests/proxy.rs` runs
//! against tinyproxy).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::thread;

use support::*;
use syncws::{
    Accept, Client, ClientBuilder, Error, HandshakeError, Message, Request, Response, Server,
    WebSocket,
};

/// What the server saw in the upgrade request that reached its handler.
fn describe(req: &Request) -> String {
    format!(
        "{} auth={:?} cookie={:?} x={:?}",
        req.target(),
        req.header("authorization"),
        req.header("cookie"),
        req.header("x-custom"),
    )
}

/// A server whose gatekeeper redirects per `route` (path -> (status, location)) and whose
/// handler first sends `describe(request)`, then echoes.
fn redirecting_server<F>(route: F) -> SocketAddr
where
    F: Fn(&str) -> Option<(u16, String)> + Send + Sync + 'static,
{
    let server =
        Server::bind("127.0.0.1:0")
            .unwrap()
            .gatekeeper(move |req| match route(req.path()) {
                Some((status, location)) => {
                    Err(Response::new(status).header("Location", &location))
                }
                None => Ok(Accept::new()),
            });
    let addr = server.local_addr();
    thread::spawn(move || {
        server.serve(|ws| {
            let seen = describe(ws.request().expect("server side has the request"));
            ws.send(seen)?;
            echo(ws)
        })
    });
    addr
}

fn client() -> ClientBuilder {
    Client::builder().no_proxy()
}

fn first_text(ws: &mut WebSocket) -> String {
    ws.recv().unwrap().unwrap().into_text().unwrap()
}

#[test]
fn same_origin_redirects_keep_credentials() {
    for status in [301, 302, 303, 307, 308] {
        // An absolute path first, then a relative one with a query.
        let addr = redirecting_server(move |path| match path {
            "/old" => Some((status, "/dir/a".to_owned())),
            "/dir/a" => Some((302, "b?q=1".to_owned())),
            _ => None,
        });
        let mut ws = client()
            .header("Authorization", "Bearer t")
            .header("Cookie", "a=b")
            .header("X-Custom", "1")
            .connect(&ws_url(addr, "/old"))
            .unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(
            first_text(&mut ws),
            r#"/dir/b?q=1 auth=Some("Bearer t") cookie=Some("a=b") x=Some("1")"#,
            "{status}"
        );
        ws.send("still a websocket").unwrap();
        assert_eq!(ws.recv().unwrap(), Some(Message::from("still a websocket")));
    }
}

#[test]
fn cross_origin_redirects_drop_credentials() {
    let landing = redirecting_server(|_| None);
    let start = redirecting_server(move |_| {
        Some((307, format!("ws://127.0.0.1:{}/landing", landing.port())))
    });
    let mut ws = client()
        .header("Authorization", "Bearer t")
        .header("Cookie", "a=b")
        .header("X-Custom", "1")
        .connect(&ws_url(start, "/"))
        .unwrap();
    assert_eq!(
        first_text(&mut ws),
        "/landing auth=None cookie=None x=Some(\"1\")"
    );
    // Credentials from the URL's user info are dropped too.
    let mut ws = client().connect(&format!("ws://user:pw@{start}/")).unwrap();
    assert_eq!(first_text(&mut ws), "/landing auth=None cookie=None x=None");
    // `localhost` is another origin than `127.0.0.1`, even on the same server.
    let port = Arc::new(AtomicU16::new(0));
    let own_port = Arc::clone(&port);
    let by_name = redirecting_server(move |path| match path {
        "/start" => Some((
            302,
            format!("ws://localhost:{}/end", own_port.load(Ordering::SeqCst)),
        )),
        _ => None,
    });
    port.store(by_name.port(), Ordering::SeqCst);
    let mut ws = client()
        .header("Cookie", "a=b")
        .connect(&ws_url(by_name, "/start"))
        .unwrap();
    assert_eq!(first_text(&mut ws), "/end auth=None cookie=None x=None");
}

#[test]
fn user_info_becomes_basic_auth() {
    let addr = redirecting_server(|_| None);
    let mut ws = client()
        .connect(&format!("ws://Aladdin:open%20sesame@{addr}/"))
        .unwrap();
    assert_eq!(
        first_text(&mut ws),
        r#"/ auth=Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==") cookie=None x=None"#
    );
    // An explicit Authorization header wins over the URL's user info.
    let mut ws = client()
        .header("Authorization", "Bearer explicit")
        .connect(&format!("ws://Aladdin:x@{addr}/"))
        .unwrap();
    assert_eq!(
        first_text(&mut ws),
        r#"/ auth=Some("Bearer explicit") cookie=None x=None"#
    );
}

#[test]
fn redirect_loops_stop_at_the_limit() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let addr = redirecting_server(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Some((302, "/again".to_owned()))
    });
    let err = client()
        .max_redirects(3)
        .connect(&ws_url(addr, "/"))
        .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::TooManyRedirects)),
        "{err}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        4,
        "first request + 3 redirects"
    );
    // With redirects off, the redirect itself comes back.
    match client().max_redirects(0).connect(&ws_url(addr, "/")) {
        Err(Error::Http(r)) => {
            assert_eq!(r.status, 302);
            assert!(
                r.headers
                    .iter()
                    .any(|(n, v)| n == "Location" && v == "/again")
            );
        }
        other => panic!("expected the 302, got {other:?}"),
    }
    // A redirect without a Location is just an HTTP answer; a bad Location is an error.
    let addr = redirecting_server(|_| Some((302, "ftp://elsewhere/".to_owned())));
    let err = client().connect(&ws_url(addr, "/")).unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::BadRedirect)),
        "{err}"
    );
}

#[cfg(feature = "tls")]
#[test]
fn redirects_from_wss_to_ws_are_refused() {
    let fixture = |name: &str| format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let plain = redirecting_server(|_| None);
    let tls =
        syncws::ServerTls::from_pem_files(fixture("server.pem"), fixture("server.key")).unwrap();
    let target = format!("ws://127.0.0.1:{}/plain", plain.port());
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .tls(tls)
        .gatekeeper(move |req| match req.path() {
            "/down" => Err(Response::new(301).header("Location", &target)),
            "/https" => Err(Response::new(301).header("Location", "https://localhost/x")),
            "/x" => Ok(Accept::new()),
            _ => Err(Response::new(308).header("Location", "/x")),
        });
    let secure = server.local_addr();
    thread::spawn(move || server.serve(echo));
    let roots = syncws::ClientTls::builder()
        .add_root_file(fixture("ca.pem"))
        .build()
        .unwrap();
    let c = client().tls(roots);
    let err = c
        .connect(&format!("wss://localhost:{}/down", secure.port()))
        .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::InsecureRedirect)),
        "{err}"
    );
    // wss to wss is followed.
    let mut ws = c
        .connect(&format!("wss://localhost:{}/elsewhere", secure.port()))
        .unwrap();
    ws.send("secure").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::from("secure")));
    // ws to wss (an upgrade in safety) is followed too.
    let upgrade_target = format!("wss://localhost:{}/x", secure.port());
    let upgrading = redirecting_server(move |_| Some((301, upgrade_target.clone())));
    let mut ws = c.connect(&ws_url(upgrading, "/")).unwrap();
    ws.send("upgraded").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::from("upgraded")));
}

#[test]
fn subprotocols_are_offered_and_the_choice_checked() {
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .protocols(["v2", "chat"]);
    let addr = server.local_addr();
    thread::spawn(move || {
        server.serve(|ws| {
            let offered = ws.request().unwrap().protocols().join(",");
            ws.send(offered)?;
            echo(ws)
        })
    });
    let mut ws = client()
        .protocol("chat")
        .protocol("v2")
        .connect(&ws_url(addr, "/"))
        .unwrap();
    assert_eq!(first_text(&mut ws), "chat,v2");
    assert_eq!(ws.protocol(), Some("v2"), "the server's preference");
    let ws = client()
        .protocol("other")
        .connect(&ws_url(addr, "/"))
        .unwrap();
    assert_eq!(
        ws.protocol(),
        None,
        "no common protocol: the server chose none"
    );
    // A server that picks something not offered fails the handshake.
    let (rogue, handle) = raw_http_server(|mut stream, head| {
        let key = head_header(&head, "sec-websocket-key").unwrap();
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: evil\r\n\r\n"
        );
        stream.write_all(response.as_bytes()).unwrap();
        head
    });
    let err = client()
        .protocol("chat")
        .connect(&ws_url(rogue, "/"))
        .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::UnexpectedNegotiation)),
        "{err}"
    );
    assert_eq!(
        head_header(&handle.join().unwrap(), "sec-websocket-protocol"),
        Some("chat")
    );
}

#[test]
fn origin_is_sent_and_judged_by_the_server() {
    let addr = echo_server();
    let err = client()
        .origin("https://evil.example")
        .connect(&ws_url(addr, "/"))
        .unwrap_err();
    assert!(matches!(&err, Error::Http(r) if r.status == 403), "{err}");
    let mut ws = client()
        .origin(&format!("http://{addr}"))
        .connect(&ws_url(addr, "/"))
        .unwrap();
    ws.send("same origin").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::from("same origin")));
}

#[test]
fn every_address_is_tried_and_all_failures_reported() {
    // A port with nothing listening, on every address "localhost" has.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addrs: Vec<SocketAddr> = ("localhost", port).to_socket_addrs().unwrap().collect();
    let err = client()
        .connect(&format!("ws://localhost:{port}/"))
        .unwrap_err();
    let text = err.to_string();
    for addr in &addrs {
        assert!(
            text.contains(&addr.to_string()),
            "{addr} missing from: {text}"
        );
    }
    // With a server on one of them, the connection succeeds whatever failed first.
    let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let live = listener.local_addr().unwrap();
    drop(listener);
    let server = Server::bind(live).unwrap();
    thread::spawn(move || server.serve(echo));
    let mut ws = client()
        .connect(&format!("ws://localhost:{}/", live.port()))
        .unwrap();
    ws.send("found").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::from("found")));
}

// ------------------------------------------------------------------ a small CONNECT proxy

/// Serves `CONNECT` tunnels on 127.0.0.1:0; with `auth`, demands that `Proxy-Authorization`.
/// Returns its address and a count of tunnels opened.
fn connect_proxy(auth: Option<&'static str>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&tunnels);
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let count = Arc::clone(&count);
            thread::spawn(move || tunnel(client, auth, &count));
        }
    });
    (addr, tunnels)
}

fn tunnel(client: TcpStream, auth: Option<&str>, count: &AtomicUsize) {
    guard(&client);
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        lines.push(line.trim_end().to_owned());
    }
    let mut client = client;
    let target = lines[0]
        .strip_prefix("CONNECT ")
        .and_then(|r| r.strip_suffix(" HTTP/1.1"))
        .expect("a CONNECT request")
        .to_owned();
    if let Some(want) = auth {
        let given = lines
            .iter()
            .find_map(|l| l.strip_prefix("Proxy-Authorization: "));
        if given != Some(want) {
            let _ = client.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
            );
            return;
        }
    }
    let Ok(upstream) = TcpStream::connect(&target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    count.fetch_add(1, Ordering::SeqCst);
    client
        .write_all(b"HTTP/1.0 200 Connection established\r\n\r\n")
        .unwrap();
    let (mut up_read, mut up_write) = (upstream.try_clone().unwrap(), upstream);
    let mut client_write = client.try_clone().unwrap();
    let down = thread::spawn(move || {
        let _ = std::io::copy(&mut up_read, &mut client_write);
        let _ = client_write.shutdown(std::net::Shutdown::Write);
    });
    let mut buffered = reader.buffer().to_vec();
    let _ = up_write.write_all(&buffered);
    buffered.clear();
    let _ = std::io::copy(&mut reader.get_mut().take(u64::MAX), &mut up_write);
    let _ = up_write.shutdown(std::net::Shutdown::Write);
    let _ = down.join();
}

#[test]
fn connect_proxy_tunnels_and_authenticates() {
    let target = echo_server();
    let (open, tunnels) = connect_proxy(None);
    let mut ws = Client::builder()
        .proxy(&format!("http://{open}"))
        .connect(&ws_url(target, "/"))
        .unwrap();
    let big = bytes_of_len(1 << 20);
    ws.send(big.as_slice()).unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Binary(big)));
    assert_eq!(tunnels.load(Ordering::SeqCst), 1, "went through the proxy");

    // "user:pw" in the proxy URL becomes Proxy-Authorization: Basic dXNlcjpwdw==.
    let (guarded, tunnels) = connect_proxy(Some("Basic dXNlcjpwdw=="));
    let err = Client::builder()
        .proxy(&format!("http://{guarded}"))
        .connect(&ws_url(target, "/"))
        .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::ProxyRefused(407))),
        "{err}"
    );
    let mut ws = Client::builder()
        .proxy(&format!("http://user:pw@{guarded}"))
        .connect(&ws_url(target, "/"))
        .unwrap();
    ws.send("through").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::from("through")));
    assert_eq!(tunnels.load(Ordering::SeqCst), 1);
    // The proxy cannot reach the target: its 502 comes back as the refusal.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = Client::builder()
        .proxy(&format!("http://{open}"))
        .connect(&ws_url(closed, "/"))
        .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::ProxyRefused(502))),
        "{err}"
    );
}
