//! The client front end: parse the URL, connect with a deadline, run the opening handshake.

mod url;

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Error, HttpResponse, Result, UrlError};
use crate::io::{Stream, Transport, read_head, read_to_len};
use crate::proto::handshake;
use crate::websocket::{Role, WebSocket};

pub use url::Url;

/// Most body bytes kept from a response that was not `101`.
const MAX_ERROR_BODY: usize = 64 << 10;

/// Opens client connections.
///
/// ```no_run
/// let mut ws = syncws::Client::connect("ws://127.0.0.1:9001/chat")?;
/// ws.send("hello")?;
/// let reply = ws.recv()?;
/// # Ok::<(), syncws::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Client;

impl Client {
    /// Connects to a `ws://` URL with the default settings.
    pub fn connect(url: &str) -> Result<WebSocket> {
        ClientBuilder::default().connect(url)
    }

    /// A builder for connections with extra headers, a config or a connect timeout.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }
}

/// Settings for opening client connections; reusable for many connections.
///
/// ```no_run
/// use std::time::Duration;
/// let mut ws = syncws::Client::builder()
///     .header("Authorization", "Bearer 123")
///     .connect_timeout(Duration::from_secs(3))
///     .connect("ws://127.0.0.1:9001/")?;
/// # Ok::<(), syncws::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    config: Config,
    headers: Vec<(String, String)>,
    connect_timeout: Duration,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            config: Config::default(),
            headers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl ClientBuilder {
    /// Uses `config` for the connection (limits, timeouts).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Adds a header to the upgrade request, e.g. `Authorization` or `Origin`.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// How long each TCP connect attempt may take. Defaults to 10 seconds.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects to `url` and performs the opening handshake.
    ///
    /// Every address the host resolves to is tried in turn, each with its own connect deadline.
    /// An answer other than `101` is returned as [`Error::Http`] with its status and body.
    pub fn connect(&self, url: &str) -> Result<WebSocket> {
        let url = Url::parse(url)?;
        if url.is_tls() {
            return Err(UrlError::UnsupportedScheme.into());
        }
        let tcp = connect_tcp(&url.host, url.port, self.connect_timeout)?;
        tcp.set_nodelay(true)?;
        self.handshake(Stream::from(tcp), &url)
    }

    /// Runs the client side of the opening handshake over an already connected stream.
    pub fn handshake<S: Transport>(&self, mut stream: S, url: &Url) -> Result<WebSocket<S>> {
        let deadline = Instant::now() + self.config.handshake_timeout;
        let key = handshake::generate_key();
        let request =
            handshake::client_request(&url.host_header(), &url.target, &key, &self.headers);
        stream.set_write_timeout(Some(self.config.handshake_timeout))?;
        stream.write_all(&request)?;
        stream.flush()?;
        let mut buf = Vec::new();
        let max_headers = self.config.max_headers;
        let (head, used) = read_head(
            &mut stream,
            &mut buf,
            deadline,
            self.config.max_header_bytes,
            |b| handshake::parse_response(b, max_headers),
        )?;
        if head.status != 101 {
            let body = read_body(&mut stream, &head, buf.split_off(used), deadline);
            return Err(Error::Http(Box::new(HttpResponse {
                status: head.status,
                headers: head.headers,
                body,
            })));
        }
        handshake::check_response(&head, &key)?;
        stream.set_write_timeout(None)?;
        stream.set_read_timeout(None)?;
        Ok(WebSocket::from_stream(
            stream,
            Role::Client,
            self.config.clone(),
            &buf[used..],
        ))
    }
}

/// Tries every resolved address with its own deadline; reports all failures together.
fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream> {
    let addrs = (host, port).to_socket_addrs()?;
    let mut failures = Vec::new();
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => failures.push(format!("{addr}: {e}")),
        }
    }
    if failures.is_empty() {
        return Err(
            io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address")).into(),
        );
    }
    let kind = io::ErrorKind::ConnectionRefused;
    Err(io::Error::new(kind, format!("cannot connect: {}", failures.join("; "))).into())
}

/// Reads the body of a non-101 response: by `Content-Length` if given, else until the server
/// closes; at most 64 KiB and never past the handshake deadline.
fn read_body<S: Transport>(
    stream: &mut S,
    head: &handshake::ResponseHead,
    mut body: Vec<u8>,
    deadline: Instant,
) -> Vec<u8> {
    let want = head
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(usize::MAX)
        .min(MAX_ERROR_BODY);
    // Whatever arrived before the server closed or the deadline is what the caller gets.
    read_to_len(stream, &mut body, want, deadline);
    body.truncate(want);
    body
}
