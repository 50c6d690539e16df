//! syncws servers on 127.0.0.1:0 for the tests to talk to, and what their clients check: an echo,
//! a close code, the status of a refusal.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use syncws::{
    Client, CloseCode, Config, Error, HandlerResult, Message, Server, ServerHandle, WebSocket,
};

use super::TIMEOUT;

/// Starts a syncws server on 127.0.0.1:0 with `handler` and returns its address. The server
/// thread is leaked; it dies with the test process.
pub fn serve<F>(config: Config, handler: F) -> SocketAddr
where
    F: Fn(&mut WebSocket) -> HandlerResult + Send + Sync + 'static,
{
    let server = Server::bind("127.0.0.1:0").unwrap().config(config);
    let addr = server.local_addr();
    thread::spawn(move || server.serve(handler));
    addr
}

/// Sends every message back until the peer closes.
pub fn echo(ws: &mut WebSocket) -> HandlerResult {
    while let Some(msg) = ws.recv()? {
        ws.send(&msg)?;
    }
    Ok(())
}

/// An echo server with the default config.
pub fn echo_server() -> SocketAddr {
    serve(Config::default(), echo)
}

/// An echo server with `config`.
pub fn echo_server_with(config: Config) -> SocketAddr {
    serve(config, echo)
}

pub fn ws_url(addr: SocketAddr, path: &str) -> String {
    format!("ws://{addr}{path}")
}

/// A syncws client connected to `ws://addr/` with `config`.
pub fn connect(addr: SocketAddr, config: Config) -> WebSocket {
    Client::builder()
        .config(config)
        .connect(&ws_url(addr, "/"))
        .unwrap()
}

/// Checks that the echo server at `addr` serves a new client on `path`: `text` there and back,
/// then a normal close.
pub fn assert_echoes(addr: SocketAddr, path: &str, text: &str) {
    let mut ws = Client::connect(&ws_url(addr, path)).unwrap();
    ws.send(text).unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text(text.into())));
    ws.close(CloseCode::NORMAL, "").unwrap();
}

/// How long a server may take to do something that needs no waiting on its side (close a
/// refused connection, deregister a finished one).
pub const PROMPTLY: Duration = Duration::from_secs(3);

/// A server on 127.0.0.1:0, to be configured and started by the test.
pub fn bind() -> Server {
    Server::bind("127.0.0.1:0").expect("bind")
}

/// Starts `server` with the echo handler.
pub fn start(server: Server) -> ServerHandle {
    server.start(echo).expect("start")
}

/// The `ws://` URL of `path` on a started server.
pub fn url(handle: &ServerHandle, path: &str) -> String {
    format!("ws://{}{path}", handle.local_addr())
}

/// Sends `text` and expects it back.
pub fn echo_once(ws: &mut WebSocket, text: &str) {
    ws.send(text).unwrap();
    match ws.recv_timeout(TIMEOUT) {
        Ok(Some(Message::Text(t))) => assert_eq!(t, text),
        other => panic!("echo of {text:?}: {other:?}"),
    }
}

/// Receives until the server closes; returns the close code it sent (a normal code ends the
/// receive with `Ok(None)`, any other with the peer's close frame as an error).
pub fn close_code(ws: &mut WebSocket) -> u16 {
    match ws.recv_timeout(TIMEOUT) {
        Ok(None) => {
            let code = ws.close_frame().expect("a close frame").code;
            assert!(code.is_normal(), "Ok(None) for {code}");
            code.0
        }
        Err(Error::PeerClosed(frame)) => {
            assert!(!frame.code.is_normal(), "an error for {}", frame.code);
            assert_eq!(ws.close_frame(), Some(&*frame));
            frame.code.0
        }
        other => panic!("expected the server to close: {other:?}"),
    }
}

/// The status of a refused upgrade, as the syncws client reports it.
pub fn refused_status(result: syncws::Result<WebSocket>) -> u16 {
    match result {
        Err(Error::Http(r)) => r.status,
        Err(e) => panic!("expected an HTTP refusal, got error {e}"),
        Ok(_) => panic!("expected an HTTP refusal, got a WebSocket"),
    }
}

/// A server handler that splits: its reader forwards to a writer thread that echoes, so the
/// server reads and writes at once.
pub fn split_echo(ws: &mut WebSocket) -> HandlerResult {
    let (mut reader, writer) = ws.split()?;
    let (tx, rx) = mpsc::channel::<Message>();
    let echoer = thread::spawn(move || {
        for msg in rx {
            if writer.send(&msg).is_err() {
                break;
            }
        }
    });
    while let Some(msg) = reader.recv()? {
        tx.send(msg)?;
    }
    drop(tx);
    echoer.join().unwrap();
    Ok(())
}
