//! The handle that watches and stops a running server from any thread.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::accept::Shared;
use super::listen::Bound;
use crate::message::CloseCode;

/// Watches and stops a running [`Server`](super::Server) from any thread. Cheap to clone.
#[derive(Clone)]
pub struct ServerHandle {
    pub(super) shared: Arc<Shared>,
    pub(super) timeout: Duration,
}

impl ServerHandle {
    /// The address the server listens on (the real port after binding port 0); `0.0.0.0:0`
    /// for a server on a Unix socket (see [`local_path`](Self::local_path)).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.bound.socket_addr()
    }

    /// The path of the Unix socket the server listens on; `None` for a TCP server (and for a
    /// Unix socket without a path, e.g. in Linux's abstract namespace).
    #[cfg(unix)]
    pub fn local_path(&self) -> Option<&std::path::Path> {
        self.shared.bound.path()
    }

    /// Live connections, handshakes in progress included.
    pub fn connections(&self) -> usize {
        self.shared.life().conns.len()
    }

    /// Stops the server: no new connections, handshakes in progress get 503, every open
    /// WebSocket gets a close frame with 1001 (going away), and the connection threads get up to
    /// the shutdown timeout to finish. Returns true if they all did; `serve` returns after this.
    ///
    /// A handler blocked in `recv` (or waking to it later) sees the end of its connection as a
    /// normal close: `recv` returns `Ok(None)`, and nothing reaches
    /// [`Server::on_error`](super::Server::on_error).
    ///
    /// A second call waits for the first one to finish.
    pub fn shutdown(&self) -> bool {
        self.stop(CloseCode::GOING_AWAY, "")
    }

    /// Like [`shutdown`](Self::shutdown), closing the open WebSockets with `code` and `reason`
    /// instead of 1001, e.g. 1012 (service restart) so clients know to come back:
    ///
    /// ```no_run
    /// # fn main() -> syncws::Result<()> {
    /// use syncws::{CloseCode, Server};
    /// let handle = Server::bind("127.0.0.1:9001")?.start(|ws| {
    ///     while let Some(msg) = ws.recv()? {
    ///         ws.send(msg)?;
    ///     }
    ///     Ok(())
    /// })?;
    /// // ... later, from any thread:
    /// handle.shutdown_with(CloseCode::SERVICE_RESTART, "deploying, back in a minute")?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Fails with [`Error::InvalidInput`](crate::Error::InvalidInput), stopping nothing, for a
    /// code that may not be sent or a reason over 123 bytes.
    pub fn shutdown_with(&self, code: CloseCode, reason: &str) -> crate::Result<bool> {
        crate::proto::close::check_outgoing(code, reason)?;
        Ok(self.stop(code, reason))
    }

    fn stop(&self, code: CloseCode, reason: &str) -> bool {
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
        wake(&shared.bound);
        let mut life = shared.life();
        for entry in life.conns.values() {
            entry.close_request.request(code, reason);
            // Wakes a thread blocked reading: a WebSocket closes with `code`, a handshake gets
            // 503.
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
            .field("addr", &format_args!("{}", self.shared.bound))
            .field("connections", &self.connections())
            .finish()
    }
}

/// Wakes the accept loop with a connection of our own.
fn wake(bound: &Bound) {
    match bound {
        Bound::Tcp(addr) => {
            let _ = TcpStream::connect_timeout(&wake_addr(*addr), Duration::from_secs(1));
        }
        #[cfg(unix)]
        Bound::Unix(addr) => {
            let _ = std::os::unix::net::UnixStream::connect_addr(addr);
        }
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
