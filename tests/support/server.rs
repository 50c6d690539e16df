//! syncws servers on 127.0.0.1:0 for the tests to talk to.

use std::net::SocketAddr;
use std::thread;

use syncws::{Client, CloseCode, Config, HandlerResult, Message, Server, WebSocket};

/// Starts a syncws server on 127.0.0.1:0 with `handler` and returns its address. The server
/// thread is leaked; it dies with the test process.
pub fn serve<F>(config: Config, handler: F) -> SocketAddr
where
    F: Fn(&mut WebSocket) -> HandlerResult + Send + Sync + 'static,
{
    let server = Server::bind("127.0.0.1:0").unwrap().config(config);
    let addr = server.local_addr().unwrap();
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
