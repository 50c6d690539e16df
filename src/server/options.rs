//! The server-wide options behind [`Server`](super::Server)'s setters, with their defaults.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use super::listen::Peer;
use super::throttle::Throttle;
use super::{Accept, ConnectionError, Response, limits};
use crate::proto::head::Request;

pub(super) type HttpHandler = dyn Fn(&Request) -> Response + Send + Sync;
pub(super) type Gatekeeper =
    dyn Fn(&Request) -> std::result::Result<Accept, Response> + Send + Sync;
pub(super) type PeerFilter = dyn Fn(SocketAddr) -> bool + Send + Sync;
pub(super) type ProtocolSelector = dyn Fn(&[&str]) -> Option<String> + Send + Sync;

/// Server-wide options; every one is set through a [`Server`] method, which documents its
/// default.
pub(crate) struct Options {
    pub(super) http: Option<Arc<HttpHandler>>,
    pub(super) gatekeeper: Option<Arc<Gatekeeper>>,
    pub(super) allowed_origins: Option<Vec<String>>,
    pub(super) allowed_hosts: Option<Vec<String>>,
    /// Whether the listener is on a loopback address (then only loopback `Host` names pass by
    /// default).
    pub(super) loopback_bound: bool,
    pub(super) protocols: Vec<String>,
    pub(super) select_protocol: Option<Arc<ProtocolSelector>>,
    pub(super) peer_filter: Option<Arc<PeerFilter>>,
    pub(super) max_connections: usize,
    pub(super) max_per_ip: Option<usize>,
    pub(super) rate_limit: Option<(u32, Duration)>,
    pub(super) stack_size: usize,
    pub(super) max_body: usize,
    pub(super) max_message_memory: usize,
    /// Seconds, for the refusals whose end is not knowable.
    pub(super) retry_after: u32,
    pub(super) shutdown_timeout: Duration,
    pub(super) errors: Option<SyncSender<ConnectionError>>,
    #[cfg(any(feature = "tls", feature = "rustls"))]
    pub(super) tls: Option<crate::tls::ServerTls>,
    pub(super) trusted_proxies: Vec<IpAddr>,
    /// Whether a peer on a Unix socket is a trusted proxy.
    pub(super) trust_unix_proxy: bool,
    /// The warnings about refused origins: a misconfigured page retries in a loop, and an
    /// attacker can send refused origins as fast as the network allows.
    pub(super) origin_warnings: Throttle,
}

impl Options {
    /// Whether `X-Forwarded-For` from `peer` is believed: a listed proxy address, or a Unix
    /// socket peer where [`trusted_unix_proxy`](super::Server::trusted_unix_proxy) is set.
    pub(super) fn is_trusted(&self, peer: Peer) -> bool {
        match peer.ip() {
            Some(ip) => self.trusted_proxies.contains(&ip),
            None => self.trust_unix_proxy,
        }
    }

    /// Whether connections speak TLS (`wss://`, `https://`).
    pub(crate) fn is_tls(&self) -> bool {
        #[cfg(any(feature = "tls", feature = "rustls"))]
        return self.tls.is_some();
        #[cfg(not(any(feature = "tls", feature = "rustls")))]
        false
    }
}

/// At most one warning about a refused origin per this long, per server.
pub(super) const ORIGIN_WARN_EVERY: Duration = Duration::from_secs(10);

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
            #[cfg(any(feature = "tls", feature = "rustls"))]
            tls: None,
            trusted_proxies: Vec::new(),
            trust_unix_proxy: false,
            origin_warnings: Throttle::new(ORIGIN_WARN_EVERY),
        }
    }
}
