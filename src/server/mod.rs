//! The server front end: bind, accept, one thread per client; HTTP beside WebSocket, gatekeeping,
//! limits, and a handle to stop it from any thread.
//!
//! ```text
//!  accept loop (never reads a byte)            connection thread (one per client)
//!  +-------------------------------+           +------------------------------------------+
//!  | peer filter    -> drop        |           | read request head (one deadline)         |
//!  | max_connections -> 503        |  spawn    |   malformed 400 / version 426 / big 431  |
//!  | per-IP cap/rate -> 429        |---------->|   plain HTTP -> http handler, keep-alive |
//!  | register (for shutdown)       |           | origin policy -> 403, gatekeeper -> any  |
//!  +-------------------------------+           | 101, then handler(&mut ws); panics caught|
//!                                              |   Ok -> close 1000, Err/panic -> 1011    |
//!  ServerHandle::shutdown: stop accepting,     +------------------------------------------+
//!  shut every socket's reading side (blocked receives answer 1001, handshakes 503),
//!  wait for the threads up to the shutdown timeout.
//! ```
//!
//! Files: this one is the builder (`Server` and its setters, `serve`, `start`); `options` holds
//! what the setters set; `accept` the accept loop, the accept-time limits and the registry of
//! live connections; `listen` TCP and Unix listeners and peers without an IP address; `limits` per-IP counts, rates and cheap refusals; `connection` one
//! connection's thread; `http` plain responses and bodies; `gate` the origin and host policies
//! and the gatekeeper's answer; `throttle` log lines a flood cannot multiply; `handle` the
//! `ServerHandle` that stops it all.

mod accept;
mod connection;
mod gate;
mod handle;
mod http;
mod limits;
mod listen;
mod options;
mod throttle;
mod upgrade;

use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::config::Config;
use crate::error::Result;
use crate::proto::head::Request;
use crate::websocket::WebSocket;
use accept::{Life, Shared};

pub use gate::Accept;
pub use handle::ServerHandle;
pub use http::Response;
pub use listen::Listener;
use options::HttpHandler;
pub(crate) use options::Options;
pub use upgrade::{accept, accept_with};

/// What a connection handler returns: `Ok` closes the connection with 1000, an error with 1011.
/// Any error type converts into it with `?`.
pub type HandlerResult = std::result::Result<(), BoxError>;

/// A connection that ended with an error, as passed to [`Server::on_error`].
#[derive(Debug)]
pub struct ConnectionError {
    /// The connection id used in logs.
    pub id: u64,
    /// The peer's address: `None` for a peer on a Unix socket (unless a trusted proxy named
    /// the client).
    pub peer: Option<SocketAddr>,
    /// What went wrong: a syncws [`Error`](crate::Error) (downcast to inspect it), or the handler's own error.
    pub error: BoxError,
}

impl ConnectionError {
    /// The peer's close frame when the connection ended because the peer closed it with an
    /// error code ([`Error::PeerClosed`](crate::Error::PeerClosed), passed on by the handler):
    /// the peer's word, not a failure of this server.
    pub fn peer_close(&self) -> Option<&crate::CloseFrame> {
        connection::peer_close_of(&*self.error)
    }
}

/// A boxed error that can cross threads.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A WebSocket server: a listening socket, the configuration of its connections, and its
/// server-wide options.
///
/// ```no_run
/// use syncws::{Accept, Response, Server};
/// Server::bind("127.0.0.1:9001")?
///     .http(|req| match req.path() {
///         "/" => Response::html("<script>new WebSocket('ws://' + location.host + '/ws')</script>"),
///         _ => Response::not_found(),
///     })
///     .gatekeeper(|req| match req.query_param("token").as_deref() {
///         Some("s3cret") => Ok(Accept::new()),
///         _ => Err(Response::forbidden()),
///     })
///     .serve(|ws| {
///         while let Some(msg) = ws.recv()? {
///             ws.send(msg)?;
///         }
///         Ok(())
///     })?;
/// # Ok::<(), syncws::Error>(())
/// ```
pub struct Server {
    listener: Listener,
    config: Config,
    opts: Options,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds a listening socket. Port 0 picks a free port; see [`Server::local_addr`].
    pub fn bind<A: ToSocketAddrs>(addr: A) -> Result<Server> {
        Server::from_listener(TcpListener::bind(addr)?)
    }

    /// Binds a Unix domain socket at `path`, e.g. for a reverse proxy on the same machine
    /// (nginx's `proxy_pass http://unix:/run/app/ws.sock:`) or local tools; the socket file is
    /// removed again when the server stops serving (a `Server` dropped without serving leaves
    /// it, to be replaced as stale by the next bind). Clients connect with a `ws+unix:///run/app/ws.sock:/path` URL or
    /// [`ClientBuilder::unix_socket`](crate::ClientBuilder::unix_socket).
    ///
    /// A socket file left behind by a server that is gone (nobody accepts on it) is removed
    /// and bound again. Fails with `AddrInUse` while another server listens on `path`, and
    /// with `AlreadyExists`, leaving it alone, when `path` is not a socket.
    ///
    /// Permissions: connecting needs write permission on the socket file, which is created
    /// with the mode the process's `umask` leaves of `0o777` (`0o755` with the usual `022`:
    /// only the owner may connect). To choose who may, put the socket in a directory only they
    /// can enter (e.g. `0o750` owned by the group of the proxy), which leaves no moment when
    /// others could connect, or set a umask before binding, or change the mode after binding:
    ///
    /// ```no_run
    /// use std::os::unix::fs::PermissionsExt;
    /// let server = syncws::Server::bind_unix("/run/app/ws.sock")?;
    /// let mode = std::fs::Permissions::from_mode(0o660); // owner and group
    /// std::fs::set_permissions("/run/app/ws.sock", mode)?;
    /// # Ok::<(), syncws::Error>(())
    /// ```
    ///
    /// Peers on a Unix socket have no IP address: see
    /// [`trusted_unix_proxy`](Self::trusted_unix_proxy), [`peer_filter`](Self::peer_filter) and
    /// [`max_connections_per_ip`](Self::max_connections_per_ip) for what that means. TLS is not
    /// served on a Unix socket ([`serve`](Self::serve) refuses it).
    #[cfg(unix)]
    pub fn bind_unix<P: AsRef<std::path::Path>>(path: P) -> Result<Server> {
        let (listener, file) = listen::bind_unix(path.as_ref())?;
        let mut server = Server::from_listener(listener)?;
        Arc::get_mut(&mut server.shared)
            .expect("not shared yet")
            .socket_file = Some(file);
        Ok(server)
    }

    /// A server on a listening socket the program made itself: one inherited through socket
    /// activation (systemd's `LISTEN_FDS`), one with options `bind` does not set
    /// (`SO_REUSEPORT`, a backlog, `IPV6_V6ONLY`), or a Unix socket. Takes a [`TcpListener`]
    /// or, on Unix, a `UnixListener`; the listener must be in blocking mode. A Unix socket
    /// file made this way stays where it is when the server stops (it belongs to the program).
    ///
    /// ```no_run
    /// let listener = std::net::TcpListener::bind("127.0.0.1:9001")?;
    /// let server = syncws::Server::from_listener(listener)?;
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn from_listener<L: Into<Listener>>(listener: L) -> Result<Server> {
        let listener = listener.into();
        let bound = listener.bound()?;
        let opts = Options {
            // A Unix socket is no loopback address: a browser cannot reach it but through a
            // proxy, which names the public host.
            loopback_bound: matches!(bound, listen::Bound::Tcp(a) if a.ip().is_loopback()),
            ..Options::default()
        };
        let shared = Arc::new(Shared {
            bound,
            #[cfg(unix)]
            socket_file: None,
            stopping: AtomicBool::new(false),
            life: Mutex::new(Life::default()),
            changed: Condvar::new(),
            per_ip: limits::PerIp::default(),
            accept_thread: Mutex::new(None),
        });
        Ok(Server {
            listener,
            config: Config::default(),
            opts,
            shared,
        })
    }

    /// Uses `config` for every connection (limits, timeouts, heartbeat; the handshake timeout
    /// also bounds each plain HTTP request).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Answers requests that are not WebSocket upgrades (a page, its favicon, a health check),
    /// with keep-alive. The handler sees method, path, query, headers, body and peer address.
    /// Without one, such requests get `426 Upgrade Required`.
    pub fn http<F>(mut self, handler: F) -> Self
    where
        F: Fn(&Request) -> Response + Send + Sync + 'static,
    {
        self.opts.http = Some(Arc::new(handler));
        self
    }

    /// Decides, before the `101`, whether an upgrade request may open a WebSocket: `Ok(Accept)`
    /// (optionally choosing the subprotocol, adding headers, attaching a value the handler reads
    /// with [`WebSocket::data`]) or `Err(response)`, sent as it is ([`Response::forbidden`] is
    /// the usual one). Without one, every request that passes the origin policy is accepted.
    pub fn gatekeeper<F>(mut self, gatekeeper: F) -> Self
    where
        F: Fn(&Request) -> std::result::Result<Accept, Response> + Send + Sync + 'static,
    {
        self.opts.gatekeeper = Some(Arc::new(gatekeeper));
        self
    }

    /// The origins browsers may connect from, e.g. `["https://app.example.com"]`; an entry `"*"`
    /// allows every origin (for development, or a public API that uses no cookies). The list
    /// replaces the same-origin default: name this server's own origin too if its pages
    /// connect.
    ///
    /// By default a request carrying `Origin` must come from this server itself (scheme, host
    /// and port equal to its `Host`), else it gets 403: this stops a page on another site from
    /// opening a socket with the user's cookies (cross-site WebSocket hijacking). Requests
    /// without `Origin` (non-browser clients) always pass this check.
    pub fn allowed_origins<I, T>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.opts.allowed_origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// The host names this server answers to, e.g. `["app.example.com"]`, compared with the
    /// request's `Host` without its port and case-insensitively; other requests, WebSocket or
    /// plain HTTP, get `403` saying why. A list given here replaces the default (add
    /// `localhost` to it to keep local access). Requests from
    /// [`trusted_proxies`](Self::trusted_proxies) are not checked: the proxy forwards the public
    /// name, and checks it itself (nginx's `server_name`).
    ///
    /// This stops DNS rebinding: a page on an attacker's name that then resolves to your
    /// address is same-origin with itself, so its requests pass the origin policy (their
    /// `Origin` and `Host` agree), and only `Host` shows that the browser believes it talks to
    /// another site. Plain HTTP requests are checked too, since a rebound page can read their
    /// answers just as well.
    ///
    /// Defaults to the loopback names (`localhost`, 127.0.0.0/8, `[::1]`, any port) for a server
    /// bound to a loopback address, the set-up rebinding attacks aim at (development servers,
    /// local tools), and to any name otherwise, since a public server cannot know the names it
    /// is reached by; a server on `0.0.0.0` that is also reachable as 127.0.0.1 should set this.
    pub fn allowed_hosts<I, T>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.opts.allowed_hosts = Some(hosts.into_iter().map(Into::into).collect());
        self
    }

    /// The subprotocols this server speaks, most preferred first; the first one the client
    /// offered is chosen (readable with [`WebSocket::protocol`]). Defaults to none.
    pub fn protocols<I, T>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.opts.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Chooses the subprotocol from the client's offer with a function instead of a preference
    /// list; its answer must be one of the offered values, or `None`.
    pub fn select_protocol<F>(mut self, select: F) -> Self
    where
        F: Fn(&[&str]) -> Option<String> + Send + Sync + 'static,
    {
        self.opts.select_protocol = Some(Arc::new(select));
        self
    }

    /// Accepts a connection only if `filter(peer)` is true; runs before any byte is read, and a
    /// refused connection is closed without an answer.
    ///
    /// Peers on a Unix socket have no address and are not filtered: the socket file's
    /// permissions decide who may connect (see [`bind_unix`](Self::bind_unix)).
    pub fn peer_filter<F>(mut self, filter: F) -> Self
    where
        F: Fn(SocketAddr) -> bool + Send + Sync + 'static,
    {
        self.opts.peer_filter = Some(Arc::new(filter));
        self
    }

    /// Most live connections (handshakes included); more get `503` with
    /// [`retry_after`](Self::retry_after).
    ///
    /// Each connection holds a file descriptor, and a limit above what the process may open
    /// turns the `503` into clients waiting unanswered in the listen backlog while `accept`
    /// fails. Raise the file limit rather than this where more clients must be served; a
    /// handler that opens files of its own needs a lower value or a higher file limit.
    ///
    /// Defaults to what fits in the process's soft limit on open files (`ulimit -n`, read from
    /// `/proc/self/limits` when the server is bound): that limit, minus room for the sockets of
    /// refused clients lingering until their answer is read (an eighth of it, between 8 and
    /// 1,024), minus another eighth and 32 more for the listener and the program's own files;
    /// at most 10,000, and 10,000 where the limit cannot be read. With `ulimit -n 1024` that is
    /// 736.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.opts.max_connections = max;
        self
    }

    /// Serves `wss://` (and `https://` for the HTTP handler): every connection starts with a TLS
    /// handshake, run in the connection's thread under the handshake timeout. A client that does
    /// not speak TLS fails only its own connection.
    ///
    /// Connections refused before they get a thread (over [`max_connections`](Self::max_connections),
    /// the per-IP limit or the rate limit) get their `503` or `429` after a TLS handshake too, so
    /// a `wss://` client reads the status instead of failing its handshake. Those handshakes run
    /// in two shared background threads, each client given 2 seconds, so a refused client that
    /// stalls never holds up the accept loop; when more refusals wait than that keeps up with,
    /// the extra connections are closed without an answer.
    ///
    /// ```no_run
    /// let tls = syncws::ServerTls::from_pem_files("cert.pem", "key.pem")?;
    /// syncws::Server::bind("0.0.0.0:8443")?.tls(tls).serve(|ws| {
    ///     while let Some(msg) = ws.recv()? {
    ///         ws.send(msg)?;
    ///     }
    ///     Ok(())
    /// })?;
    /// # Ok::<(), syncws::Error>(())
    /// ```
    #[cfg(any(feature = "tls", feature = "rustls"))]
    pub fn tls(mut self, tls: crate::tls::ServerTls) -> Self {
        self.opts.tls = Some(tls);
        self
    }

    /// Reverse proxies (e.g. nginx) whose `X-Forwarded-For` header is believed. For a connection
    /// from one of these addresses, the client's address is the last one in `X-Forwarded-For`
    /// that is not itself a trusted proxy; it is what [`Request::peer_addr`] and
    /// [`WebSocket::peer_addr`] return (with port 0), what the logs show, and what
    /// [`max_connections_per_ip`](Self::max_connections_per_ip) and
    /// [`rate_limit`](Self::rate_limit) count (checked once the request has arrived, answered
    /// with `429`). From any other address the header is ignored: anyone can send it. Keep client
    /// addresses out of this list (e.g. nginx's `proxy_bind` to an address of its own): a client
    /// on a trusted address is taken for a proxy, and its own `X-Forwarded-For` believed.
    /// Defaults to none.
    pub fn trusted_proxies<I: IntoIterator<Item = IpAddr>>(mut self, proxies: I) -> Self {
        self.opts.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// Whether peers on a Unix socket are trusted reverse proxies, as
    /// [`trusted_proxies`](Self::trusted_proxies) trusts addresses: set it for a server behind
    /// nginx on the same machine (`proxy_pass http://unix:/run/app/ws.sock:`) and the client
    /// address in `X-Forwarded-For` becomes the peer (`peer_addr`, logs, per-IP limits), and
    /// `Host` is left to the proxy. Only set it when the socket's permissions let nothing but
    /// the proxy connect: any local program that may connect could name any client.
    ///
    /// Defaults to false: a Unix peer's `X-Forwarded-For` is ignored and its `peer_addr` is
    /// `None`.
    pub fn trusted_unix_proxy(mut self, trusted: bool) -> Self {
        self.opts.trust_unix_proxy = trusted;
        self
    }

    /// Most live connections from one IP address; more get `429` with
    /// [`retry_after`](Self::retry_after). Defaults to no limit (behind a
    /// reverse proxy every client has the proxy's address).
    ///
    /// Peers on a Unix socket have no IP address and are not counted (nor by
    /// [`rate_limit`](Self::rate_limit)); [`max_connections`](Self::max_connections) bounds
    /// them all. Behind a [`trusted_unix_proxy`](Self::trusted_unix_proxy), the client each
    /// request names is counted.
    pub fn max_connections_per_ip(mut self, max: usize) -> Self {
        self.opts.max_per_ip = Some(max);
        self
    }

    /// Most new connections one IP address may open per `window`; more get `429` with
    /// `Retry-After` saying when the window frees a slot (whole seconds, rounded up, at least 1).
    /// Defaults to no limit.
    pub fn rate_limit(mut self, connections: u32, window: Duration) -> Self {
        self.opts.rate_limit = Some((connections, window));
        self
    }

    /// The `Retry-After` of refusals whose end the server cannot know: the `503` at
    /// [`max_connections`](Self::max_connections) or while shutting down, and the `429` at
    /// [`max_connections_per_ip`](Self::max_connections_per_ip) (a slot frees when some
    /// connection ends). Sent in whole seconds, rounded up. A [`rate_limit`](Self::rate_limit)
    /// `429` says instead when its window frees a slot. Defaults to 5 seconds: soon enough for
    /// a client to retry without a user noticing, far enough apart that retrying clients do
    /// not themselves keep the server full.
    pub fn retry_after(mut self, after: Duration) -> Self {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        self.opts.retry_after = secs.min(u64::from(u32::MAX)) as u32;
        self
    }

    /// Stack size of each connection thread. Defaults to 512 KiB: plenty for handlers that do
    /// not recurse deeply, and only the pages a thread touches cost memory.
    pub fn thread_stack_size(mut self, bytes: usize) -> Self {
        self.opts.stack_size = bytes;
        self
    }

    /// Most bytes that incoming messages may hold in all connections together, while they are
    /// assembled and inflated, shared through one [`MemoryBudget`](crate::MemoryBudget): a
    /// connection whose message would grow past it is closed with 1013 (try again later), the
    /// others go on. `Config::max_message_size` bounds one message; this bounds their sum, so a
    /// few dozen clients sending large (or small but highly compressed) messages cannot exhaust
    /// the server's memory. A message handed to a handler no longer counts. Defaults to 1 GiB:
    /// 64 messages of the default 16 MiB maximum at once, and far more of a typical size; set
    /// it from the memory the server may use. A budget set in [`Server::config`]
    /// ([`Config::memory_budget`]) is used instead, e.g. to share one between servers.
    pub fn max_message_memory(mut self, bytes: usize) -> Self {
        self.opts.max_message_memory = bytes;
        self
    }

    /// Largest body of a plain HTTP request; larger ones get `413`. Defaults to 1 MiB.
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.opts.max_body = bytes;
        self
    }

    /// How long [`ServerHandle::shutdown`] waits for connection threads. Defaults to 5 seconds.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.opts.shutdown_timeout = timeout;
        self
    }

    /// Receives every connection that ended with an error (failed handshake, protocol violation,
    /// handler error or panic). The callback runs in a thread of its own, fed through a bounded
    /// queue, so a slow callback can never stall a connection; when the queue is full, errors are
    /// only logged.
    pub fn on_error<F>(mut self, callback: F) -> Self
    where
        F: Fn(ConnectionError) + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<ConnectionError>(256);
        let spawned = std::thread::Builder::new()
            .name("syncws-errors".into())
            .spawn(move || rx.into_iter().for_each(callback));
        match spawned {
            Ok(_) => self.opts.errors = Some(tx),
            Err(e) => log::error!("cannot start the error callback thread: {e}"),
        }
        self
    }

    /// The address the server listens on, with the real port after binding port 0. Cannot
    /// fail: it was read once, at [`bind`](Self::bind); the same as
    /// [`ServerHandle::local_addr`]. For a server on a Unix socket, which has no IP address,
    /// `0.0.0.0:0`; see [`local_path`](Self::local_path).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.bound.socket_addr()
    }

    /// The path of the Unix socket the server listens on; `None` for a TCP server (and for a
    /// Unix socket without a path, e.g. in Linux's abstract namespace). The same as
    /// [`ServerHandle::local_path`].
    #[cfg(unix)]
    pub fn local_path(&self) -> Option<&std::path::Path> {
        self.shared.bound.path()
    }

    /// A handle to watch and stop the server from any thread; take it before `serve`.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: Arc::clone(&self.shared),
            timeout: self.opts.shutdown_timeout,
        }
    }

    /// Accepts connections, each in its own thread, calling `handler` with every WebSocket whose
    /// handshake succeeded; returns once [`ServerHandle::shutdown`] has finished.
    ///
    /// The handler borrows the socket; when it returns, the server closes the connection: with
    /// 1000 after `Ok`, with 1011 after an error or a panic (which is caught and logged; the
    /// server keeps serving).
    ///
    /// Fails at once for `tls` on a Unix socket, which is not supported.
    pub fn serve<F>(self, handler: F) -> Result<()>
    where
        F: Fn(&mut WebSocket) -> HandlerResult + Send + Sync + 'static,
    {
        self.check()?;
        let shared = Arc::clone(&self.shared);
        let Server {
            listener,
            config,
            opts,
            shared: _,
        } = self;
        accept::accept_loop(
            listener,
            config,
            opts,
            Arc::clone(&shared),
            Arc::new(handler),
        );
        let mut life = shared.life();
        while !life.shut_down {
            life = shared.changed.wait(life).unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }

    /// Runs the server in a background thread and returns its handle: the way tests and scripts
    /// start and stop a server in a few lines.
    ///
    /// ```no_run
    /// let server = syncws::Server::bind("127.0.0.1:0")?.start(|ws| {
    ///     ws.send("hi")?;
    ///     Ok(())
    /// })?;
    /// let url = format!("ws://{}/", server.local_addr());
    /// // ... use it ...
    /// server.shutdown();
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn start<F>(self, handler: F) -> Result<ServerHandle>
    where
        F: Fn(&mut WebSocket) -> HandlerResult + Send + Sync + 'static,
    {
        self.check()?;
        let handle = self.handle();
        let thread = std::thread::Builder::new()
            .name("syncws-accept".into())
            .spawn(move || self.serve(handler))?;
        *handle
            .shared
            .accept_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(thread);
        Ok(handle)
    }
}

impl Server {
    /// Refuses what cannot be served: TLS on a Unix socket.
    fn check(&self) -> Result<()> {
        #[cfg(unix)]
        if self.opts.is_tls() && matches!(self.listener, Listener::Unix(_)) {
            let why = "TLS on a Unix socket is not supported";
            return Err(std::io::Error::new(std::io::ErrorKind::Unsupported, why).into());
        }
        Ok(())
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &format_args!("{}", self.shared.bound))
            .finish_non_exhaustive()
    }
}
