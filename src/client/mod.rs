//! The client front end: parse the URL, connect with a deadline, run the opening handshake.

mod proxy;
mod reconnect;
mod reconnecting;
mod url;

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Error, HandshakeError, HttpResponse, Result};
use crate::io::{Stream, Transport, read_head, read_to_len};
use crate::proto::{handshake, head};
use crate::websocket::{Opening, Role, WebSocket};
use proxy::{Proxy, ProxyKind, ProxySetting};

pub use reconnect::{Backoff, Ending};
pub use reconnecting::{Reconnecting, StopHandle};
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
    /// Connects to a `ws://` or `wss://` URL with the default settings.
    pub fn connect(url: &str) -> Result<WebSocket> {
        ClientBuilder::default().connect(url)
    }

    /// A builder for connections with headers, subprotocols, TLS, proxy and redirect settings.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }
}

/// Settings for opening client connections; reusable for many connections (clones share the
/// TLS connector).
///
/// ```no_run
/// use std::time::Duration;
/// let mut ws = syncws::Client::builder()
///     .header("Authorization", "Bearer 123")
///     .origin("https://app.example")
///     .protocol("chat.v2")
///     .connect_timeout(Duration::from_secs(3))
///     .connect("wss://chat.example/socket")?;
/// assert_eq!(ws.protocol(), Some("chat.v2"));
/// # Ok::<(), syncws::Error>(())
/// ```
///
/// Defaults: connect timeout 10 s per address, up to 5 redirects, proxy from the environment
/// (`HTTPS_PROXY` for `wss`, `HTTP_PROXY` for `ws`, then `ALL_PROXY`, except hosts in
/// `NO_PROXY`; any of them may name an `http`, `https`, `socks5` or `socks5h` proxy, see
/// [`proxy`](Self::proxy)), the system's trusted roots for `wss`.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    config: Config,
    headers: Vec<(String, String)>,
    protocols: Vec<String>,
    connect_timeout: Duration,
    max_redirects: usize,
    proxy: ProxySetting,
    unix_socket: Option<std::path::PathBuf>,
    #[cfg(any(feature = "tls", feature = "rustls"))]
    tls: Option<crate::tls::ClientTls>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            config: Config::default(),
            headers: Vec::new(),
            protocols: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            max_redirects: 5,
            proxy: ProxySetting::Environment,
            unix_socket: None,
            #[cfg(any(feature = "tls", feature = "rustls"))]
            tls: None,
        }
    }
}

impl ClientBuilder {
    /// Uses `config` for the connection (limits, timeouts; its handshake timeout covers the TLS
    /// and HTTP handshakes and a proxy's answer).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Adds a header to the upgrade request, e.g. `Authorization` or `Cookie` (both are dropped
    /// when a redirect leads to another origin).
    ///
    /// `connect` refuses, before sending anything, a name that is not an HTTP token, a value
    /// with CR, LF, NUL or other control characters, a field the library writes itself (`Host`,
    /// `Upgrade`, `Connection`, `Sec-WebSocket-*`, `Content-Length`, `Transfer-Encoding`) and a
    /// second `Origin`, with [`Error::InvalidInput`].
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Connects to the Unix domain socket at `path` instead of the URL's host and port, which
    /// still give the `Host` header (as `curl --unix-socket` does): e.g. `ws://localhost/chat`
    /// through `/run/app/ws.sock`; so do redirects, whatever host they name. No proxy is used. A `ws+unix:///run/app/ws.sock:/chat` URL
    /// names its socket itself and needs no such setting (its own path wins). `wss` over a
    /// Unix socket is not supported. Defaults to none.
    ///
    /// ```no_run
    /// let mut ws = syncws::Client::builder()
    ///     .unix_socket("/run/app/ws.sock")
    ///     .connect("ws://localhost/chat")?;
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn unix_socket<P: Into<std::path::PathBuf>>(mut self, path: P) -> Self {
        self.unix_socket = Some(path.into());
        self
    }

    /// Sends `Origin: origin`, as a browser page from that origin would.
    pub fn origin(self, origin: &str) -> Self {
        self.header("Origin", origin)
    }

    /// Offers a subprotocol (call again to offer several, in order of preference). The server's
    /// choice is checked to be one of them and is read back with
    /// [`WebSocket::protocol`](crate::WebSocket::protocol); a server may also choose none.
    pub fn protocol(mut self, protocol: &str) -> Self {
        self.protocols.push(protocol.to_owned());
        self
    }

    /// How long each TCP connect attempt may take. Defaults to 10 seconds.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Most redirects (301, 302, 303, 307, 308) followed; 0 returns the redirect as
    /// [`Error::Http`]. Defaults to 5. `Authorization` and `Cookie` are not sent to another origin,
    /// and a redirect from `wss` to `ws` is refused.
    pub fn max_redirects(mut self, max: usize) -> Self {
        self.max_redirects = max;
        self
    }

    /// Goes through this proxy, whatever the environment says:
    ///
    /// - `http://[user:password@]host[:port]` (port 80; also without a scheme): HTTP `CONNECT`,
    ///   credentials sent as `Proxy-Authorization: Basic`;
    /// - `https://...` (port 443): the same inside TLS with the proxy, whose certificate is
    ///   checked like a server's (the `tls` settings apply); for `wss://` the TLS session with
    ///   the server runs inside the one with the proxy;
    /// - `socks5://[user:password@]host[:port]` (port 1080): SOCKS5 (RFC 1928), the target's
    ///   name resolved here and its addresses asked for in turn (a new connection to the proxy
    ///   for each, while it answers unreachable or refused); credentials by username/password
    ///   (RFC 1929), each 1 to 255 bytes, else [`Error::InvalidInput`] before connecting;
    /// - `socks5h://...`: the same, but the name is sent for the proxy to resolve (at most 255
    ///   bytes).
    ///
    /// The proxy's answers count against the handshake timeout. A refusal is an
    /// [`Error::Handshake`]: [`HandshakeError::ProxyRefused`] with the HTTP status,
    /// [`HandshakeError::SocksRefused`] with the SOCKS reply code,
    /// [`HandshakeError::SocksAuthFailed`] for rejected credentials. The same URLs work in the
    /// proxy environment variables.
    pub fn proxy(mut self, proxy: &str) -> Self {
        self.proxy = ProxySetting::Explicit(proxy.to_owned());
        self
    }

    /// Connects directly, ignoring the proxy environment variables.
    pub fn no_proxy(mut self) -> Self {
        self.proxy = ProxySetting::Direct;
        self
    }

    /// TLS settings for `wss` URLs (trusted roots, test mode); see [`ClientTls`](crate::ClientTls).
    #[cfg(any(feature = "tls", feature = "rustls"))]
    pub fn tls(mut self, tls: crate::tls::ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Connects to `url` and performs the opening handshake, following redirects.
    ///
    /// Every address the host resolves to is tried in turn, each with its own connect deadline;
    /// if all fail, the error lists every attempt. User info in the URL (`ws://user:pw@host/`)
    /// is sent as `Authorization: Basic` unless an `Authorization` header was set. An answer
    /// other than `101` (or a redirect) is returned as [`Error::Http`] with its status and body.
    pub fn connect(&self, url: &str) -> Result<WebSocket> {
        let mut url = Url::parse(url)?;
        self.check_fields()?;
        let mut headers = self.headers.clone();
        let has_auth = |h: &[(String, String)]| {
            h.iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        };
        if !has_auth(&headers)
            && let Some(auth) = url.basic_auth()
        {
            headers.push(("Authorization".to_owned(), auth));
        }
        let mut hops = 0;
        loop {
            let err = match self.connect_once(&url, &headers) {
                Ok(ws) => return Ok(ws),
                Err(e) => e,
            };
            let Some(location) = redirect_location(&err) else {
                return Err(err);
            };
            if self.max_redirects == 0 {
                return Err(err);
            }
            if hops == self.max_redirects {
                return Err(HandshakeError::TooManyRedirects.into());
            }
            hops += 1;
            let next = url
                .join(location)
                .map_err(|_| Error::Handshake(HandshakeError::BadRedirect))?;
            if url.is_tls() && !next.is_tls() {
                return Err(HandshakeError::InsecureRedirect.into());
            }
            if !url.same_origin(&next) {
                headers.retain(|(n, _)| {
                    !n.eq_ignore_ascii_case("authorization") && !n.eq_ignore_ascii_case("cookie")
                });
                if let Some(auth) = next.basic_auth() {
                    headers.push(("Authorization".to_owned(), auth));
                }
            }
            log::debug!(
                "redirected to {}://{}{}",
                next.scheme,
                next.host_header(),
                next.target
            );
            url = next;
        }
    }

    /// A client for `url` that reconnects with backoff when a connection drops or the server
    /// restarts, running a hook after each connect and a session on each connection; see
    /// [`Reconnecting`]. Each attempt connects as [`connect`](Self::connect) does, with these
    /// settings.
    ///
    /// ```no_run
    /// syncws::Client::builder()
    ///     .header("Authorization", "Bearer 123")
    ///     .reconnecting("wss://chat.example/socket")
    ///     .run(|ws| {
    ///         while let Some(msg) = ws.recv()? {
    ///             println!("{msg:?}");
    ///         }
    ///         Ok(())
    ///     })?;
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn reconnecting<'a>(&self, url: &str) -> Reconnecting<'a> {
        Reconnecting::new(self.clone(), url)
    }

    /// One attempt: TCP (directly or through the proxy) or a Unix socket, TLS for `wss`, then
    /// the handshake.
    fn connect_once(&self, url: &Url, headers: &[(String, String)]) -> Result<WebSocket> {
        let deadline = Instant::now() + self.config.handshake_timeout;
        if let Some(path) = url.unix_socket.as_ref().or(self.unix_socket.as_ref()) {
            let stream = connect_unix(path, url)?;
            return self.handshake_with(stream, url, headers, deadline);
        }
        let proxy = Proxy::choose(&self.proxy, url, &|name| std::env::var(name).ok())?;
        if let Some(proxy) = &proxy {
            proxy.check(url)?;
        }
        let Some(proxy) = proxy else {
            let tcp = connect_tcp(&url.host, url.port, self.connect_timeout)?;
            let stream = self.over_tcp(url, tcp, deadline)?;
            return self.handshake_with(stream, url, headers, deadline);
        };
        let to_proxy = || connect_tcp(&proxy.host, proxy.port, self.connect_timeout);
        let stream = match proxy.kind {
            ProxyKind::Http => {
                let mut tcp = to_proxy()?;
                proxy::http_tunnel(&mut tcp, &proxy, url, deadline, &self.config)?;
                self.over_tcp(url, tcp, deadline)?
            }
            ProxyKind::Socks5 | ProxyKind::Socks5h => {
                let tcp = proxy::socks_open(&proxy, url, deadline, to_proxy)?;
                self.over_tcp(url, tcp, deadline)?
            }
            ProxyKind::Https => {
                let tcp = to_proxy()?;
                tcp.set_nodelay(true)?;
                let mut stream = self.start_tls(&proxy.host, std::sync::Arc::new(tcp), deadline)?;
                proxy::http_tunnel(&mut stream, &proxy, url, deadline, &self.config)?;
                if url.is_tls() {
                    self.start_tls_inside(&url.host, stream, deadline)?
                } else {
                    stream
                }
            }
        };
        self.handshake_with(stream, url, headers, deadline)
    }

    /// The stream to the target over `tcp` (connected to it, or a tunnel): TLS for `wss`.
    fn over_tcp(&self, url: &Url, tcp: TcpStream, deadline: Instant) -> Result<Stream> {
        tcp.set_nodelay(true)?;
        let tcp = std::sync::Arc::new(tcp);
        if url.is_tls() {
            self.start_tls(&url.host, tcp, deadline)
        } else {
            Ok(Stream::plain(crate::io::Socket::Tcp(tcp)))
        }
    }

    /// TLS with `host` (its name checked against the certificate) over `tcp`.
    #[cfg(any(feature = "tls", feature = "rustls"))]
    fn start_tls(
        &self,
        host: &str,
        tcp: std::sync::Arc<TcpStream>,
        deadline: Instant,
    ) -> Result<Stream> {
        let tls = match &self.tls {
            Some(tls) => tls.clone(),
            None => crate::tls::ClientTls::system()?,
        };
        tls.connect(host, tcp, deadline)
    }

    /// TLS with `host` inside the TLS session of `outer` (a tunnel through an `https://` proxy).
    #[cfg(any(feature = "tls", feature = "rustls"))]
    fn start_tls_inside(&self, host: &str, outer: Stream, deadline: Instant) -> Result<Stream> {
        let tls = match &self.tls {
            Some(tls) => tls.clone(),
            None => crate::tls::ClientTls::system()?,
        };
        tls.connect_inside(host, outer, deadline)
    }

    #[cfg(not(any(feature = "tls", feature = "rustls")))]
    fn start_tls_inside(&self, _host: &str, _outer: Stream, _deadline: Instant) -> Result<Stream> {
        let message = "wss:// and https:// proxies need the `tls` or the `rustls` cargo feature";
        let message = message.to_owned();
        Err(crate::error::TlsError::new(crate::TlsErrorKind::NotEnabled, message).into())
    }

    #[cfg(not(any(feature = "tls", feature = "rustls")))]
    fn start_tls(
        &self,
        _host: &str,
        _tcp: std::sync::Arc<TcpStream>,
        _deadline: Instant,
    ) -> Result<Stream> {
        let message = "wss:// and https:// proxies need the `tls` or the `rustls` cargo feature";
        let message = message.to_owned();
        Err(crate::error::TlsError::new(crate::TlsErrorKind::NotEnabled, message).into())
    }

    /// Runs the client side of the opening handshake over an already connected stream (no
    /// redirects are followed).
    pub fn handshake<S: Transport>(&self, stream: S, url: &Url) -> Result<WebSocket<S>> {
        self.check_fields()?;
        let mut headers = self.headers.clone();
        if let Some(auth) = url.basic_auth() {
            headers.push(("Authorization".to_owned(), auth));
        }
        let deadline = Instant::now() + self.config.handshake_timeout;
        self.handshake_with(stream, url, &headers, deadline)
    }

    /// The caller's header fields and subprotocols, checked before anything is sent: valid names
    /// and values, none the library writes itself, one `Origin` at most.
    fn check_fields(&self) -> Result<()> {
        handshake::check_client_fields(&self.headers)?;
        for p in &self.protocols {
            // RFC 6455 4.1: each subprotocol is a token.
            if p.is_empty() || crate::proto::http::check_field(p, "").is_err() {
                return Err(crate::error::InputError::HeaderValue.into());
            }
        }
        Ok(())
    }

    /// The opening handshake over `stream`, all of it before `deadline`.
    fn handshake_with<S: Transport>(
        &self,
        mut stream: S,
        url: &Url,
        headers: &[(String, String)],
        deadline: Instant,
    ) -> Result<WebSocket<S>> {
        // One total deadline for the HTTP exchange (and the TLS handshake before it), held by
        // every socket call in it.
        stream.set_deadline(Some(deadline));
        let key = handshake::generate_key();
        let mut own = Vec::new();
        if !self.protocols.is_empty() {
            own.push((
                "Sec-WebSocket-Protocol".to_owned(),
                self.protocols.join(", "),
            ));
        }
        #[cfg(feature = "deflate")]
        if let Some(deflate) = &self.config.deflate {
            let offer = crate::proto::deflate::offer(deflate);
            own.push(("Sec-WebSocket-Extensions".to_owned(), offer));
        }
        let request =
            handshake::client_request(&url.host_header(), &url.target, &key, &own, headers)?;
        crate::io::write_all_by(&mut stream, &request, deadline)?;
        let mut buf = Vec::new();
        let max_headers = self.config.max_headers;
        let (head, used) = read_head(
            &mut stream,
            &mut buf,
            deadline,
            self.config.max_header_bytes,
            |b| head::parse_response(b, max_headers),
        )?;
        if head.status != 101 {
            let body = read_body(&mut stream, &head, buf.split_off(used), deadline);
            return Err(Error::Http(Box::new(HttpResponse {
                status: head.status,
                headers: head.headers,
                body,
            })));
        }
        let offered_extensions = cfg!(feature = "deflate") && self.deflate_config().is_some();
        let protocol = handshake::check_response(&head, &key, &self.protocols, offered_extensions)?;
        #[cfg(feature = "deflate")]
        let deflate = match self.deflate_config() {
            Some(config) => {
                let answer = head
                    .headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
                    .map(|(_, v)| v.as_str());
                crate::proto::deflate::check_answer(answer, config)?
            }
            None => None,
        };
        stream.set_deadline(None);
        stream.set_write_timeout(None)?;
        stream.set_read_timeout(None)?;
        let mut opening = Opening::new(Role::Client);
        opening.protocol = protocol;
        #[cfg(feature = "deflate")]
        {
            opening.deflate = deflate;
        }
        let ws = WebSocket::open(stream, opening, self.config.clone(), &buf[used..]);
        Ok(ws)
    }
}

impl ClientBuilder {
    #[cfg(feature = "deflate")]
    fn deflate_config(&self) -> Option<&crate::DeflateConfig> {
        self.config.deflate.as_ref()
    }

    #[cfg(not(feature = "deflate"))]
    fn deflate_config(&self) -> Option<&()> {
        None
    }
}

/// The `Location` of a redirect the client follows.
fn redirect_location(err: &Error) -> Option<&str> {
    match err {
        Error::Http(r) if matches!(r.status, 301 | 302 | 303 | 307 | 308) => r
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.as_str()),
        _ => None,
    }
}

/// A plain stream over the Unix socket at `path` (a local connect does not wait for the
/// network, so it has no timeout of its own).
fn connect_unix(path: &std::path::Path, url: &Url) -> Result<Stream> {
    if url.is_tls() {
        let why = "wss over a Unix socket is not supported";
        return Err(io::Error::new(io::ErrorKind::Unsupported, why).into());
    }
    #[cfg(unix)]
    {
        let unix = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot connect to {}: {e}", path.display()),
            )
        })?;
        Ok(Stream::from(unix))
    }
    #[cfg(not(unix))]
    {
        let why = format!("{}: Unix sockets need a Unix system", path.display());
        Err(io::Error::new(io::ErrorKind::Unsupported, why).into())
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
    head: &head::ResponseHead,
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
