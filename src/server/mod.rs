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

mod connection;
mod gate;
mod http;
mod limits;

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::Result;
use crate::message::CloseCode;
use crate::proto::head::Request;
use crate::websocket::{CloseRequest, WebSocket};

pub use connection::{accept, accept_with};
pub use gate::Accept;
pub use http::Response;

/// What a connection handler returns: `Ok` closes the connection with 1000, an error with 1011.
/// Any error type converts into it with `?`.
pub type HandlerResult = std::result::Result<(), BoxError>;

type HttpHandler = dyn Fn(&Request) -> Response + Send + Sync;
type Gatekeeper = dyn Fn(&Request) -> std::result::Result<Accept, Response> + Send + Sync;
type PeerFilter = dyn Fn(SocketAddr) -> bool + Send + Sync;
type ProtocolSelector = dyn Fn(&[&str]) -> Option<String> + Send + Sync;

/// A connection that ended with an error, as passed to [`Server::on_error`].
#[derive(Debug)]
pub struct ConnectionError {
    /// The connection id used in logs.
    pub id: u64,
    /// The peer's address.
    pub peer: Option<SocketAddr>,
    /// What went wrong: a syncws [`Error`](crate::Error) (downcast to inspect it), or the handler's own error.
    pub error: BoxError,
}

/// A boxed error that can cross threads.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Server-wide options; every one is set through a [`Server`] method, which documents its
/// default.
pub(crate) struct Options {
    http: Option<Arc<HttpHandler>>,
    gatekeeper: Option<Arc<Gatekeeper>>,
    allowed_origins: Option<Vec<String>>,
    allowed_hosts: Option<Vec<String>>,
    /// Whether the listener is on a loopback address (then only loopback `Host` names pass by
    /// default).
    loopback_bound: bool,
    protocols: Vec<String>,
    select_protocol: Option<Arc<ProtocolSelector>>,
    peer_filter: Option<Arc<PeerFilter>>,
    max_connections: usize,
    max_per_ip: Option<usize>,
    rate_limit: Option<(u32, Duration)>,
    stack_size: usize,
    max_body: usize,
    max_message_memory: usize,
    retry_after: u32,
    shutdown_timeout: Duration,
    errors: Option<SyncSender<ConnectionError>>,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::ServerTls>,
    trusted_proxies: Vec<IpAddr>,
}

impl Options {
    /// Whether connections speak TLS (`wss://`, `https://`).
    pub(crate) fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            http: None,
            gatekeeper: None,
            allowed_origins: None,
            allowed_hosts: None,
            loopback_bound: false,
            protocols: Vec::new(),
            select_protocol: None,
            peer_filter: None,
            max_connections: limits::default_max_connections(),
            max_per_ip: None,
            rate_limit: None,
            stack_size: 512 << 10,
            max_body: 1 << 20,
            max_message_memory: 1 << 30,
            retry_after: 5,
            shutdown_timeout: Duration::from_secs(5),
            errors: None,
            #[cfg(feature = "tls")]
            tls: None,
            trusted_proxies: Vec::new(),
        }
    }
}

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
    listener: TcpListener,
    config: Config,
    opts: Options,
    shared: Arc<Shared>,
}

/// State shared by the accept loop, the connection threads and every [`ServerHandle`].
struct Shared {
    addr: SocketAddr,
    stopping: AtomicBool,
    life: Mutex<Life>,
    changed: Condvar,
    per_ip: limits::PerIp,
    accept_thread: Mutex<Option<JoinHandle<Result<()>>>>,
}

#[derive(Default)]
struct Life {
    conns: HashMap<u64, Entry>,
    accepting: bool,
    shut_down: bool,
    /// Threads still running when the last shutdown gave up on them.
    stragglers: usize,
}

struct Entry {
    /// The connection's own socket (shared, not duplicated), to shut it down from here.
    socket: Arc<TcpStream>,
    /// How shutdown asks the connection's socket (or handshake) to close.
    close_request: CloseRequest,
}

impl Shared {
    fn life(&self) -> MutexGuard<'_, Life> {
        self.life.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

impl Server {
    /// Binds a listening socket. Port 0 picks a free port; see [`Server::local_addr`].
    pub fn bind<A: ToSocketAddrs>(addr: A) -> Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let shared = Arc::new(Shared {
            addr: listener.local_addr()?,
            stopping: AtomicBool::new(false),
            life: Mutex::new(Life::default()),
            changed: Condvar::new(),
            per_ip: limits::PerIp::default(),
            accept_thread: Mutex::new(None),
        });
        let opts = Options {
            loopback_bound: shared.addr.ip().is_loopback(),
            ..Options::default()
        };
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

    /// The origins browsers may connect from, e.g. `["https://app.example.com"]`.
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
    pub fn peer_filter<F>(mut self, filter: F) -> Self
    where
        F: Fn(SocketAddr) -> bool + Send + Sync + 'static,
    {
        self.opts.peer_filter = Some(Arc::new(filter));
        self
    }

    /// Most live connections (handshakes included); more get `503` with `Retry-After`.
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
    #[cfg(feature = "tls")]
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

    /// Most live connections from one IP address; more get `429`. Defaults to no limit (behind a
    /// reverse proxy every client has the proxy's address).
    pub fn max_connections_per_ip(mut self, max: usize) -> Self {
        self.opts.max_per_ip = Some(max);
        self
    }

    /// Most new connections one IP address may open per `window`; more get `429` with
    /// `Retry-After`. Defaults to no limit.
    pub fn rate_limit(mut self, connections: u32, window: Duration) -> Self {
        self.opts.rate_limit = Some((connections, window));
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
    /// 16 messages of the default 64 MiB maximum at once, and far more of a typical size; set
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

    /// The address the server listens on, with the real port after binding port 0.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.shared.addr)
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
    pub fn serve<F>(self, handler: F) -> Result<()>
    where
        F: Fn(&mut WebSocket) -> HandlerResult + Send + Sync + 'static,
    {
        let shared = Arc::clone(&self.shared);
        self.accept_loop(Arc::new(handler));
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

    fn accept_loop<F>(self, handler: Arc<F>)
    where
        F: Fn(&mut WebSocket) -> HandlerResult + Send + Sync + 'static,
    {
        let Server {
            listener,
            config,
            opts,
            shared,
        } = self;
        let mut config = config;
        if config.memory_budget.is_none() {
            let budget = crate::MemoryBudget::new(opts.max_message_memory);
            config.memory_budget = Some(budget);
        }
        let config = Arc::new(config);
        let opts = Arc::new(opts);
        shared.life().accepting = true;
        log::info!("listening on {}", shared.addr);
        let mut fds = limits::AcceptFailures::default();
        // Out of descriptors, a plain-text answer is all there is room for; a TLS client could
        // not read it, and is just closed.
        let busy = (!opts.is_tls()).then(|| busy_503(&opts));
        while !shared.stopping() {
            let (tcp, peer) = match listener.accept() {
                Ok(conn) => {
                    fds.accepted();
                    conn
                }
                Err(e) => {
                    if !shared.stopping() {
                        fds.failed(&e, &listener, shared.addr, busy.as_deref());
                    }
                    continue;
                }
            };
            if shared.stopping() {
                break;
            }
            admit(tcp, peer, &shared, &opts, &config, &handler);
        }
        drop(listener);
        shared.life().accepting = false;
        shared.changed.notify_all();
        log::info!("stopped accepting on {}", shared.addr);
    }
}

/// The answer to a client the server has no room for.
fn busy_503(opts: &Options) -> Vec<u8> {
    busy(503, "server at capacity", opts.retry_after)
}

/// The bytes of a refusal with `Retry-After` (see [`Response::busy`]).
fn busy(status: u16, why: &str, retry_after: u32) -> Vec<u8> {
    Response::busy(status, why, retry_after)
        .to_bytes_or_500(crate::proto::http::Persist::Close, false)
        .0
}

/// Answers a connection refused at accept time without giving it a thread of its own; over
/// TLS after a TLS handshake, so that a `wss://` client can read why.
fn reject(tcp: TcpStream, opts: &Options, response: &[u8]) {
    #[cfg(feature = "tls")]
    if let Some(tls) = &opts.tls {
        limits::reject_tls(tcp, tls, response);
        return;
    }
    let _ = opts;
    limits::reject_fast(tcp, response);
}

/// Applies the accept-time limits to a new connection and starts its thread.
fn admit<F>(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    opts: &Arc<Options>,
    config: &Arc<Config>,
    handler: &Arc<F>,
) where
    F: Fn(&mut WebSocket) -> HandlerResult + Send + Sync + 'static,
{
    if let Some(filter) = &opts.peer_filter
        && !filter(peer)
    {
        log::debug!("peer filter refused {peer}");
        return;
    }
    let busy = |status: u16, why: &str| busy(status, why, opts.retry_after);
    if shared.life().conns.len() >= opts.max_connections {
        log::debug!(
            "refusing {peer}: {} connections already",
            opts.max_connections
        );
        reject(tcp, opts, &busy(503, "server at capacity"));
        return;
    }
    // A trusted proxy's clients are counted once their request names them.
    let via_proxy = opts.trusted_proxies.contains(&peer.ip());
    if !via_proxy
        && let Err(refusal) = shared
            .per_ip
            .admit(peer.ip(), opts.max_per_ip, opts.rate_limit)
    {
        log::debug!("refusing {peer}: {refusal:?}");
        reject(
            tcp,
            opts,
            &busy(429, "too many connections from your address"),
        );
        return;
    }
    let id = crate::websocket::next_id();
    let close_request = CloseRequest::default();
    let _ = tcp.set_nodelay(true);
    let tcp = Arc::new(tcp);
    let entry = Entry {
        socket: Arc::clone(&tcp),
        close_request: close_request.clone(),
    };
    shared.life().conns.insert(id, entry);
    let guard = Registered {
        shared: Arc::clone(shared),
        id,
        ip: (!via_proxy).then(|| peer.ip()),
    };
    let (opts, config, handler) = (Arc::clone(opts), Arc::clone(config), Arc::clone(handler));
    let spawned = std::thread::Builder::new()
        .name(format!("syncws-{id}"))
        .stack_size(opts.stack_size)
        .spawn(move || {
            let guard = guard;
            let per_ip = &guard.shared.per_ip;
            connection::run(
                tcp,
                peer,
                id,
                per_ip,
                close_request,
                &opts,
                &config,
                &*handler,
            );
        });
    if let Err(e) = spawned {
        // The closure (and with it the guard and the socket) is dropped: the entry is removed.
        log::error!("cannot spawn a connection thread: {e}");
    }
}

/// Removes a connection from the registry when its thread ends.
struct Registered {
    shared: Arc<Shared>,
    id: u64,
    /// The address counted per IP at accept time (none for a trusted proxy).
    ip: Option<IpAddr>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            self.shared.per_ip.release(ip);
        }
        self.shared.life().conns.remove(&self.id);
        self.shared.changed.notify_all();
    }
}

/// Watches and stops a running [`Server`] from any thread. Cheap to clone.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    timeout: Duration,
}

impl ServerHandle {
    /// The address the server listens on (the real port after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Live connections, handshakes in progress included.
    pub fn connections(&self) -> usize {
        self.shared.life().conns.len()
    }

    /// Stops the server: no new connections, handshakes in progress get 503, every open
    /// WebSocket gets a close frame with 1001, and the connection threads get up to the shutdown
    /// timeout to finish. Returns true if they all did; `serve` returns after this.
    ///
    /// A second call waits for the first one to finish.
    pub fn shutdown(&self) -> bool {
        let shared = &self.shared;
        if shared.stopping.swap(true, Ordering::SeqCst) {
            let mut life = shared.life();
            while !life.shut_down {
                life = shared.changed.wait(life).unwrap_or_else(|e| e.into_inner());
            }
            return life.stragglers == 0;
        }
        let deadline = Instant::now() + self.timeout;
        // Wake the accept loop with a connection of our own.
        let _ = TcpStream::connect_timeout(&wake_addr(shared.addr), Duration::from_secs(1));
        let mut life = shared.life();
        for entry in life.conns.values() {
            entry.close_request.request(CloseCode::GOING_AWAY, "");
            // Wakes a thread blocked reading: a WebSocket answers 1001, a handshake 503.
            let _ = entry.socket.shutdown(Shutdown::Read);
        }
        while life.accepting || !life.conns.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            life = shared
                .changed
                .wait_timeout(life, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let stragglers = life.conns.len();
        for entry in life.conns.values() {
            let _ = entry.socket.shutdown(Shutdown::Both);
        }
        if stragglers > 0 {
            log::warn!("shutdown: {stragglers} connection threads still running");
        }
        life.stragglers = stragglers;
        life.shut_down = true;
        drop(life);
        shared.changed.notify_all();
        let thread = shared
            .accept_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        stragglers == 0
    }
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.shared.addr)
            .field("connections", &self.connections())
            .finish()
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

/// Where to connect to reach our own listener (a wildcard address is reached via loopback).
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}
