//! The accept loop and the registry of live connections: accept-time limits (peer filter,
//! capacity, per-IP counts and rates), refusals that cost no thread, and one thread per admitted
//! connection, deregistered when it ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::listen::{Bound, Listener, Peer};
use super::options::Options;
use super::{HandlerResult, Response, connection, limits};
use crate::config::Config;
use crate::error::Result;
use crate::io::Socket;
use crate::websocket::{CloseRequest, WebSocket};

/// State shared by the accept loop, the connection threads and every [`ServerHandle`].
pub(super) struct Shared {
    pub(super) bound: Bound,
    /// The socket file [`Server::bind_unix`](super::Server::bind_unix) created, removed once
    /// the server stops accepting.
    #[cfg(unix)]
    pub(super) socket_file: Option<super::listen::SocketFile>,
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
    pub(super) socket: Socket,
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
    listener: Listener,
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
    log::info!("listening on {}", shared.bound);
    let mut fds = limits::AcceptFailures::default();
    // Out of descriptors, a plain-text answer is all there is room for; a TLS client could
    // not read it, and is just closed.
    let busy = (!opts.is_tls()).then(|| busy_503(&opts));
    while !shared.stopping() {
        let (socket, peer) = match listener.accept() {
            Ok(conn) => {
                fds.accepted();
                conn
            }
            Err(e) => {
                if !shared.stopping() {
                    fds.failed(&e, &listener, &shared.bound, busy.as_deref());
                }
                continue;
            }
        };
        if shared.stopping() {
            break;
        }
        admit(socket, peer, &shared, &opts, &config, &handler);
    }
    drop(listener);
    #[cfg(unix)]
    if let Some(file) = &shared.socket_file {
        file.remove();
    }
    shared.life().accepting = false;
    shared.changed.notify_all();
    log::info!("stopped accepting on {}", shared.bound);
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
fn reject(socket: Socket, opts: &Options, response: &[u8]) {
    // A TLS server listens on TCP only (`serve` refuses TLS over a Unix socket).
    #[cfg(any(feature = "tls", feature = "rustls"))]
    if let (Some(tls), Some(tcp)) = (&opts.tls, socket.as_tcp()) {
        limits::reject_tls(Arc::clone(tcp), tls, response);
        return;
    }
    let _ = opts;
    limits::reject_fast(socket, response);
}

/// Applies the accept-time limits to a new connection and starts its thread.
///
/// A peer on a Unix socket has no IP address: the peer filter does not see it (the socket
/// file's permissions decided whether it may connect) and it is not counted per IP; only
/// `max_connections` applies. Behind a trusted proxy, the client its request names is counted.
fn admit<F>(
    socket: Socket,
    peer: Peer,
    shared: &Arc<Shared>,
    opts: &Arc<Options>,
    config: &Arc<Config>,
    handler: &Arc<F>,
) where
    F: Fn(&mut WebSocket) -> HandlerResult + Send + Sync + 'static,
{
    if let (Some(filter), Some(addr)) = (&opts.peer_filter, peer.addr())
        && !filter(addr)
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
        reject(socket, opts, &busy(503, "server at capacity"));
        return;
    }
    // A trusted proxy's clients are counted once their request names them.
    let via_proxy = opts.is_trusted(peer);
    let counted = peer.ip().filter(|_| !via_proxy);
    if let Some(ip) = counted
        && let Err(refusal) = shared.per_ip.admit(ip, opts.max_per_ip, opts.rate_limit)
    {
        log::debug!("refusing {peer}: {refusal:?}");
        let answer = refusal
            .response(opts.retry_after)
            .to_bytes_or_500(crate::proto::http::Persist::Close, false)
            .0;
        reject(socket, opts, &answer);
        return;
    }
    let id = crate::websocket::next_id();
    let close_request = CloseRequest::default();
    let _ = socket.set_nodelay();
    let entry = Entry {
        socket: socket.clone(),
        close_request: close_request.clone(),
    };
    shared.life().conns.insert(id, entry);
    let guard = Registered {
        shared: Arc::clone(shared),
        id,
        ip: counted,
    };
    let (opts, config, handler) = (Arc::clone(opts), Arc::clone(config), Arc::clone(handler));
    let spawned = std::thread::Builder::new()
        .name(format!("syncws-{id}"))
        .stack_size(opts.stack_size)
        .spawn(move || {
            let guard = guard;
            let per_ip = &guard.shared.per_ip;
            connection::run(
                socket,
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
    /// The address counted per IP at accept time (none for a trusted proxy or a Unix peer).
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
