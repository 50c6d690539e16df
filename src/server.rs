//! The server front end: bind, accept, one thread per client, the handshake in that thread.
//!
//! ```text
//!  accept loop (caller's thread)          connection thread (one per client)
//!  +---------------------------+          +---------------------------------------------+
//!  | accept() -> spawn thread  |--------->| handshake under one deadline                |
//!  | (never reads a byte, so a |          |   bad request -> 400/426/431, end           |
//!  |  stalled client cannot    |          | handler(&mut ws), panics caught             |
//!  |  block accepting)         |          |   Ok -> close 1000, Err/panic -> close 1011 |
//!  +---------------------------+          +---------------------------------------------+
//! ```

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Error, HandshakeError, Result};
use crate::io::{Stream, Transport, read_head};
use crate::message::CloseCode;
use crate::proto::handshake;
use crate::websocket::{Role, WebSocket};

/// What a connection handler returns: `Ok` closes the connection with 1000, an error with 1011.
/// Any error type converts into it with `?`.
pub type HandlerResult = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A WebSocket server: a listening socket and the configuration of its connections.
///
/// ```no_run
/// syncws::Server::bind("127.0.0.1:9001")?.serve(|ws| {
///     while let Some(msg) = ws.recv()? {
///         ws.send(msg)?;
///     }
///     Ok(())
/// })?;
/// # Ok::<(), syncws::Error>(())
/// ```
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: Config,
}

impl Server {
    /// Binds a listening socket. Port 0 picks a free port; see [`Server::local_addr`].
    pub fn bind<A: ToSocketAddrs>(addr: A) -> Result<Server> {
        Ok(Server {
            listener: TcpListener::bind(addr)?,
            config: Config::default(),
        })
    }

    /// Uses `config` for every connection.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The address the server listens on, with the real port after binding port 0.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Accepts connections forever, each in its own thread, calling `handler` with every
    /// WebSocket whose handshake succeeded.
    ///
    /// The handler borrows the socket; when it returns, the server closes the connection: with
    /// 1000 after `Ok`, with 1011 after an error or a panic (which is caught and logged; the server
    /// keeps serving). Returns only if accepting fails for good.
    pub fn serve<F>(self, handler: F) -> Result<()>
    where
        F: Fn(&mut WebSocket) -> HandlerResult + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        let config = Arc::new(self.config);
        log::info!("listening on {}", self.listener.local_addr()?);
        loop {
            let tcp = match self.listener.accept() {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    log::warn!("accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            let handler = Arc::clone(&handler);
            let config = Arc::clone(&config);
            let id = crate::websocket::next_id();
            let spawned = std::thread::Builder::new()
                .name(format!("syncws-{id}"))
                .spawn(move || run_connection(tcp, &config, &*handler));
            if let Err(e) = spawned {
                log::error!("cannot spawn a connection thread: {e}");
            }
        }
    }
}

fn run_connection<F>(tcp: TcpStream, config: &Config, handler: &F)
where
    F: Fn(&mut WebSocket) -> HandlerResult,
{
    let peer = tcp.peer_addr().ok();
    let _ = tcp.set_nodelay(true);
    let mut ws = match accept_with(Stream::Plain(tcp), config.clone()) {
        Ok(ws) => ws,
        Err(e) => {
            log::debug!("handshake with {peer:?} failed: {e}");
            return;
        }
    };
    log::debug!(
        "ws#{} open from {peer:?} path {:?}",
        ws.id(),
        ws.path().unwrap_or("")
    );
    let outcome = catch_unwind(AssertUnwindSafe(|| handler(&mut ws)));
    let code = match &outcome {
        Ok(Ok(())) => CloseCode::NORMAL,
        Ok(Err(e)) => {
            log::debug!("ws#{} handler returned an error: {e}", ws.id());
            CloseCode::INTERNAL_ERROR
        }
        Err(_) => {
            log::error!("ws#{} handler panicked", ws.id());
            CloseCode::INTERNAL_ERROR
        }
    };
    let closed = ws.close(code, "");
    log::debug!(
        "ws#{} from {peer:?} ended: {code}, close {closed:?}",
        ws.id()
    );
}

/// Performs the server side of the opening handshake on any stream with the default config.
///
/// For servers that accept connections themselves. A bad request is answered (400, 426 or 431)
/// before the error is returned.
pub fn accept<S: Transport>(stream: S) -> Result<WebSocket<S>> {
    accept_with(stream, Config::default())
}

/// Like [`accept`], with a config.
pub fn accept_with<S: Transport>(mut stream: S, config: Config) -> Result<WebSocket<S>> {
    let deadline = Instant::now() + config.handshake_timeout;
    let mut buf = Vec::new();
    let max_headers = config.max_headers;
    let head = read_head(
        &mut stream,
        &mut buf,
        deadline,
        config.max_header_bytes,
        |b| handshake::parse_request(b, max_headers),
    );
    let (request, used) = match head {
        Ok(head) => head,
        Err(e) => {
            if let Error::Handshake(h) = e {
                reject(&mut stream, &config, h);
            }
            return Err(e);
        }
    };
    let accept = match handshake::check_request(&request) {
        Ok(accept) => accept,
        Err(h) => {
            reject(&mut stream, &config, h);
            return Err(h.into());
        }
    };
    stream.set_write_timeout(Some(config.handshake_timeout))?;
    stream.write_all(&handshake::response_101(&accept, &[]))?;
    stream.flush()?;
    stream.set_write_timeout(None)?;
    stream.set_read_timeout(None)?;
    let mut ws = WebSocket::from_stream(stream, Role::Server, config, &buf[used..]);
    ws.set_request(request);
    Ok(ws)
}

/// Answers a failed handshake with the status RFC 6455 and HTTP ask for, then closes.
fn reject<S: Transport>(stream: &mut S, config: &Config, error: HandshakeError) {
    let (status, headers): (u16, Vec<(String, String)>) = match error {
        HandshakeError::TooManyHeaders | HandshakeError::HeadersTooLarge => (431, vec![]),
        // RFC 6455 4.2.2: a version we do not speak gets 426 and the versions we do.
        HandshakeError::UnsupportedVersion => {
            (426, vec![("Sec-WebSocket-Version".into(), "13".into())])
        }
        HandshakeError::NotUpgrade => (426, vec![("Upgrade".into(), "websocket".into())]),
        HandshakeError::Timeout => (408, vec![]),
        HandshakeError::Eof => return,
        _ => (400, vec![]),
    };
    let body = format!("{error}\n");
    let response = handshake::http_response(status, &headers, body.as_bytes(), false);
    let _ = stream.set_write_timeout(Some(config.handshake_timeout));
    let _ = stream.write_all(&response);
    let _ = stream.flush();
    let _ = stream.shutdown_write();
    // Drain briefly so the response is not lost to a reset caused by unread request bytes.
    let mut sink = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_millis(500).min(config.close_timeout);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}
