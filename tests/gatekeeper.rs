//! Deciding an upgrade over real loopback sockets: the gatekeeper (accept with a protocol, header
//! and data; reject with a response written by the test; token or Authorization), the origin
//! policy and subprotocol negotiation. Answers are checked as raw bytes where the client would
//! hide them.

mod raw_http;
mod support;

use raw_http::{Http, upgrade, wait_until};
use support::*;
use syncws::{Accept, Client, Error, HandlerResult, Message, Response, ServerHandle, WebSocket};

// ------------------------------------------------------------------ gatekeeping

/// The first text message on a fresh connection.
fn first_text(ws: &mut WebSocket) -> String {
    match ws.recv_timeout(TIMEOUT) {
        Ok(Some(Message::Text(t))) => t,
        other => panic!("expected a text message: {other:?}"),
    }
}

#[derive(Debug)]
struct User(String);

#[test]
fn gatekeeper_accepts_with_protocol_header_and_data() {
    let server = bind()
        .gatekeeper(|req| {
            Ok(Accept::new()
                .protocol("chat")
                .header("X-Welcome", "yes")
                .data(User(
                    req.query_param("user").unwrap_or_default().into_owned(),
                )))
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
fn refused_origins_are_warned_about_once_per_period_not_once_each() {
    capture_logs();
    let server = start(bind());
    let origin = "http://flood.example";
    for _ in 0..20 {
        let mut c = Http::connect(server.local_addr());
        let r = c.exchange(upgrade("/", &format!("Origin: {origin}\r\n")));
        assert_eq!(r.status, 403);
    }
    let warned = logged(log::Level::Warn, origin);
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert!(
        warned[0].contains("Server::allowed_origins"),
        "{}",
        warned[0]
    );
    // Each one is still there at debug level.
    assert_eq!(logged(log::Level::Debug, origin).len(), 20);
    server.shutdown();
}

#[test]
fn origin_matrix_over_real_sockets() {
    let same_origin = start(bind());
    let listed = start(bind().allowed_origins(["http://app.example", "https://other.example/"]));
    let any = start(bind().allowed_origins(["*"]));
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
        (&any, None, true),
        (&any, Some("http://evil.example".into()), true),
        (&any, Some(home(&any)), true),
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
    any.shutdown();
}

#[test]
fn origin_refusal_names_the_origin_and_how_to_allow_it() {
    let same_origin = start(bind());
    let listed = start(bind().allowed_origins(["http://app.example"]));
    let ask = |server: &ServerHandle, origin: &str| {
        let mut c = Http::connect(server.local_addr());
        c.exchange(upgrade("/", &format!("Origin: {origin}\r\n")))
    };
    let r = ask(&same_origin, "http://evil.example:3000");
    assert_eq!(r.status, 403);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let text = r.text();
    assert!(
        text.starts_with("origin http://evil.example:3000 is not allowed"),
        "{text}"
    );
    assert!(text.contains("Server::allowed_origins"), "{text}");
    let r = ask(&listed, "http://evil.example");
    assert!(
        r.text().contains("not in Server::allowed_origins"),
        "{}",
        r.text()
    );

    // What is echoed is the client's: no control characters, and bounded.
    let long = format!("http://\tx{}.example", "a".repeat(5_000));
    let r = ask(&same_origin, &long);
    assert_eq!(r.status, 403);
    let text = r.text();
    assert!(text.len() < 600, "{} bytes echoed", text.len());
    assert!(text.starts_with("origin http://xaaa"), "{text}");
    assert!(text.contains("aaa... is not allowed"), "{text}");
    assert_eq!(text.matches(char::is_control).collect::<String>(), "\n");
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
