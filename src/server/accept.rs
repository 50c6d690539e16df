//! The accept loop and the registry of live connections: accept-time limits (peer filter,
//! capacity, per-IP counts and rates), refusals that cost no thread, and one thread per admitted
//! connection, deregistered when it ends.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::options::Options;
use super::{HandlerResult, Response, connection, limits};
use crate::config::Config;
use crate::error::Result;
use crate::websocket::{CloseRequest, WebSocket};

/// State shared by the accept loop, the connection threads and every [`ServerHandle`].
pub(super) struct Shared {
    pub(super) addr: SocketAddr,
    pub(super) stopping: AtomicBool,
    pub(super) life: Mutex<Life>,
    pub(super) changed: Condvar,
    pub(super) per_ip: limits::PerIp,
    pub(super) accept_thread: Mutex<Option<JoinHandle<Result<()>>>>,
}

#[derive(Default)]
pub(super) struct Life {
    pub(super) conns: HashMap<u64, Entry>,
    pub(super) accepting: bool,
    pub(super) shut_down: bool,
    /// Threads still running when the last shutdown gave up on them.
    pub(super) stragglers: usize,
}

pub(super) struct Entry {
    /// The connection's own socket (shared, not duplicated), to shut it down from here.
    pub(super) socket: Arc<TcpStream>,
    /// How shutdown asks the connection's socket (or handshake) to close.
    pub(super) close_request: CloseRequest,
}

impl Shared {
    pub(super) fn life(&self) -> MutexGuard<'_, Life> {
        self.life.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// Accepts until shutdown; each admitted connection gets a thread of its own.
pub(super) fn accept_loop<F>(
    listener: TcpListener,
    mut config: Config,
    opts: Options,
    shared: Arc<Shared>,
    handler: Arc<F>,
) where
    F: Fn(&mut WebSocket) -> HandlerResult + Send + Sync + 'static,
{
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
        let answer = refusal
            .response(opts.retry_after)
            .to_bytes_or_500(crate::proto::http::Persist::Close, false)
            .0;
        reject(tcp, opts, &answer);
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
