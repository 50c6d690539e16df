//! TLS for `wss://`, through one of two backends chosen by cargo feature:
//!
//! - `tls` (on by default): `native-tls`, i.e. OpenSSL on Linux and the platform's own TLS on
//!   macOS and Windows. Clients trust the platform's roots.
//! - `rustls`: rustls with the `ring` crypto provider, no system library (ring compiles its own
//!   assembly and C), so `--no-default-features --features rustls` links no OpenSSL and needs
//!   no TLS library at run time.
//!   Clients trust Mozilla's root set, bundled through `webpki-roots`: it needs no certificate
//!   files on the machine (containers built `FROM scratch`, distroless images), at the price of
//!   following the crate's release rather than the system's trust settings; add a private CA
//!   with [`ClientTlsBuilder::add_root_file`].
//!
//! The API is the same with either: the same constructors from PEM, the same builder, the same
//! [`TlsErrorKind`]s. Only the escape hatches name the backend's own types
//! (`from_acceptor`/`from_connector` and PKCS#12 for native-tls, `from_rustls` for rustls).
//!
//! **With both features on** (`--all-features`, or `features = ["rustls"]` while the default
//! `tls` stays on), rustls is used for everything built from PEM and for
//! [`ClientTls::builder`], and native-tls only for the native-only constructors. Features are
//! additive across a dependency graph, and `tls` is on unless someone turns it off, so finding
//! both on usually means "rustls was asked for, the default was not removed": the explicit
//! choice wins.
//!
//! Both settings objects are built once and shared: cloning one is cheap, and every connection
//! made with it uses the same underlying configuration.
//!
//! ```no_run
//! # fn main() -> syncws::Result<()> {
//! // Server: certificate chain and PKCS#8 key, both PEM.
//! let tls = syncws::ServerTls::from_pem_files("cert.pem", "key.pem")?;
//! let server = syncws::Server::bind("0.0.0.0:443")?.tls(tls);
//! # let _ = server;
//!
//! // Client: the default roots plus our own CA.
//! let tls = syncws::ClientTls::builder().add_root_file("ca.pem").build()?;
//! let ws = syncws::Client::builder().tls(tls).connect("wss://example.test/")?;
//! # let _ = ws;
//! # Ok(()) }
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::error::{Error, Result, TlsError, TlsErrorKind};
use crate::io::{PhaseDeadline, Stream, TcpRef};

#[cfg(feature = "tls")]
mod native;
#[cfg(feature = "rustls")]
mod rustls;

/// A server's TLS identity (certificate chain and private key), ready to accept connections.
/// Give it to [`Server::tls`](crate::Server::tls).
///
/// Built on native-tls (feature `tls`, the default) or rustls (feature `rustls`); with both
/// compiled in, the PEM constructors use rustls and only the native-tls ones (`from_pkcs12`,
/// `from_acceptor`) use native-tls: turning `rustls` on is the explicit choice, while `tls` is
/// on unless someone turned the default off. `Debug` names the backend.
#[derive(Clone)]
pub struct ServerTls {
    backend: ServerBackend,
}

#[derive(Clone)]
enum ServerBackend {
    #[cfg(feature = "tls")]
    Native(Arc<native_tls::TlsAcceptor>),
    #[cfg(feature = "rustls")]
    Rustls(Arc<::rustls::ServerConfig>),
}

impl ServerTls {
    /// From a PEM certificate chain (leaf first) and a PEM private key in PKCS#8 form
    /// (`-----BEGIN PRIVATE KEY-----`; convert other keys with
    /// `openssl pkcs8 -topk8 -nocrypt -in old.key -out key.pem`). Both backends take the same
    /// files, so switching backend never means converting keys.
    ///
    /// A key that does not belong to the certificate is refused here, with
    /// [`TlsErrorKind::Config`], rather than failing every client's handshake later.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<ServerTls> {
        if !key
            .windows(b"BEGIN PRIVATE KEY".len())
            .any(|w| w == b"BEGIN PRIVATE KEY")
        {
            return Err(config_error(
                "the private key must be PKCS#8 PEM (BEGIN PRIVATE KEY); convert it with \
                 `openssl pkcs8 -topk8 -nocrypt -in old.key -out key.pem`",
            ));
        }
        #[cfg(feature = "rustls")]
        return rustls::server_config(cert_chain, key).map(ServerTls::from_rustls);
        #[cfg(not(feature = "rustls"))]
        native::acceptor_from_pem(cert_chain, key).map(ServerTls::native)
    }

    /// Like [`ServerTls::from_pem`], reading both files.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<ServerTls> {
        let cert = read_file(cert_chain.as_ref())?;
        let key = read_file(key.as_ref())?;
        Self::from_pem(&cert, &key)
    }

    /// From a PKCS#12 archive (`.p12`/`.pfx`) and its password, through native-tls (feature
    /// `tls`; rustls reads no PKCS#12: export PEM with
    /// `openssl pkcs12 -in id.p12 -nodes -nokeys` and `-nocerts` and use [`from_pem`](Self::from_pem)).
    #[cfg(feature = "tls")]
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<ServerTls> {
        native::acceptor_from_pkcs12(der, password).map(ServerTls::native)
    }

    /// From a native-tls acceptor configured by hand (protocol versions, ALPN, ...).
    #[cfg(feature = "tls")]
    pub fn from_acceptor(acceptor: native_tls::TlsAcceptor) -> ServerTls {
        ServerTls::native(Arc::new(acceptor))
    }

    /// From a rustls server configuration built by hand (client certificates, ALPN, another
    /// crypto provider, ...).
    #[cfg(feature = "rustls")]
    pub fn from_rustls(config: Arc<::rustls::ServerConfig>) -> ServerTls {
        ServerTls {
            backend: ServerBackend::Rustls(config),
        }
    }

    #[cfg(feature = "tls")]
    fn native(acceptor: Arc<native_tls::TlsAcceptor>) -> ServerTls {
        ServerTls {
            backend: ServerBackend::Native(acceptor),
        }
    }

    /// Runs the server side of the TLS handshake, all of it before `deadline` (every socket
    /// read and write inside it is armed with the time left). The stream keeps that deadline
    /// for the HTTP handshake that follows.
    pub(crate) fn accept(&self, tcp: Arc<TcpStream>, deadline: Instant) -> Result<Stream> {
        match &self.backend {
            #[cfg(feature = "tls")]
            ServerBackend::Native(acceptor) => native::accept(acceptor, tcp, deadline),
            #[cfg(feature = "rustls")]
            ServerBackend::Rustls(config) => rustls::accept(config, tcp, deadline),
        }
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.backend {
            #[cfg(feature = "tls")]
            ServerBackend::Native(_) => "ServerTls(native-tls)",
            #[cfg(feature = "rustls")]
            ServerBackend::Rustls(_) => "ServerTls(rustls)",
        })
    }
}

/// A client's TLS settings: which certificates it trusts. Give it to
/// [`ClientBuilder::tls`](crate::ClientBuilder::tls); without one, clients trust the default
/// roots.
///
/// The default roots are the platform's with native-tls (feature `tls`) and, with rustls
/// (feature `rustls`), Mozilla's root set compiled into the program through `webpki-roots`
/// (data under CDLA-Permissive-2.0): it works where the machine has no CA files (static
/// binaries, `FROM scratch` containers) but follows the crate's releases, not the system's
/// trust settings. With both features compiled in, [`ClientTls::builder`] and
/// [`ClientTls::new`] use rustls, and only `from_connector` native-tls.
/// `Debug` names the backend.
#[derive(Clone)]
pub struct ClientTls {
    backend: ClientBackend,
}

#[derive(Clone)]
enum ClientBackend {
    #[cfg(feature = "tls")]
    Native(Arc<native_tls::TlsConnector>),
    #[cfg(feature = "rustls")]
    Rustls(Arc<::rustls::ClientConfig>),
}

impl ClientTls {
    /// The default roots, nothing else.
    pub fn new() -> Result<ClientTls> {
        ClientTlsBuilder::default().build()
    }

    /// Settings with extra roots or the insecure test mode.
    pub fn builder() -> ClientTlsBuilder {
        ClientTlsBuilder::default()
    }

    /// From a native-tls connector configured by hand (client certificates, protocol
    /// versions, ...).
    #[cfg(feature = "tls")]
    pub fn from_connector(connector: native_tls::TlsConnector) -> ClientTls {
        ClientTls {
            backend: ClientBackend::Native(Arc::new(connector)),
        }
    }

    /// From a rustls client configuration built by hand (client certificates, other roots,
    /// another crypto provider, ...).
    #[cfg(feature = "rustls")]
    pub fn from_rustls(config: Arc<::rustls::ClientConfig>) -> ClientTls {
        ClientTls {
            backend: ClientBackend::Rustls(config),
        }
    }

    /// The default settings, built once per process.
    pub(crate) fn system() -> Result<ClientTls> {
        static SYSTEM: OnceLock<ClientTls> = OnceLock::new();
        if let Some(tls) = SYSTEM.get() {
            return Ok(tls.clone());
        }
        let tls = ClientTls::new()?;
        Ok(SYSTEM.get_or_init(|| tls).clone())
    }

    /// Runs the client side of the TLS handshake for `host` (sent as SNI and checked against
    /// the certificate), all of it before `deadline`, which the stream keeps for the HTTP
    /// handshake that follows.
    pub(crate) fn connect(
        &self,
        host: &str,
        tcp: Arc<TcpStream>,
        deadline: Instant,
    ) -> Result<Stream> {
        // An IPv6 literal is checked against the certificate without its brackets.
        let name = host.trim_start_matches('[').trim_end_matches(']');
        let socket = TcpRef::new(Arc::clone(&tcp), PhaseDeadline::new(Some(deadline)));
        self.connect_over(name, tcp, socket, deadline)
    }

    /// Like [`connect`](Self::connect), inside the TLS session of `outer` (a tunnel through an
    /// `https://` proxy): TLS in TLS over the one socket, under one deadline.
    pub(crate) fn connect_inside(
        &self,
        host: &str,
        outer: Stream,
        deadline: Instant,
    ) -> Result<Stream> {
        let Some((tcp, session, phase)) = outer.into_tls() else {
            let message = "no tls session to run inside".to_owned();
            return Err(TlsError::new(TlsErrorKind::Handshake, message).into());
        };
        let name = host.trim_start_matches('[').trim_end_matches(']');
        phase.set(Some(deadline));
        let mut socket = TcpRef::new(Arc::clone(&tcp), phase);
        socket.outer = Some(Box::new(session));
        self.connect_over(name, tcp, socket, deadline)
    }

    /// The client handshake for `name` over `socket` (a view of `tcp`, straight or through an
    /// outer session).
    fn connect_over(
        &self,
        name: &str,
        tcp: Arc<TcpStream>,
        socket: TcpRef,
        deadline: Instant,
    ) -> Result<Stream> {
        match &self.backend {
            #[cfg(feature = "tls")]
            ClientBackend::Native(connector) => {
                native::connect(connector, name, tcp, socket, deadline)
            }
            #[cfg(feature = "rustls")]
            ClientBackend::Rustls(config) => rustls::connect(config, name, tcp, socket, deadline),
        }
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.backend {
            #[cfg(feature = "tls")]
            ClientBackend::Native(_) => "ClientTls(native-tls)",
            #[cfg(feature = "rustls")]
            ClientBackend::Rustls(_) => "ClientTls(rustls)",
        })
    }
}

/// Builds [`ClientTls`].
#[derive(Debug, Clone, Default)]
pub struct ClientTlsBuilder {
    roots: Vec<Root>,
    insecure: bool,
    no_system_roots: bool,
}

#[derive(Debug, Clone)]
enum Root {
    Pem(Vec<u8>),
    File(PathBuf),
}

/// What [`ClientTlsBuilder::build`] hands a backend: each added root's PEM text with a name for
/// error messages, and the two switches.
struct ClientSettings {
    roots: Vec<(Vec<u8>, String)>,
    insecure: bool,
    default_roots: bool,
}

impl ClientTlsBuilder {
    /// Also trusts the certificates in this PEM text (one or several, e.g. a private CA).
    pub fn add_root_pem(mut self, pem: &[u8]) -> Self {
        self.roots.push(Root::Pem(pem.to_vec()));
        self
    }

    /// Also trusts the PEM certificates in this file (read when [`build`](Self::build) runs).
    pub fn add_root_file(mut self, path: impl AsRef<Path>) -> Self {
        self.roots.push(Root::File(path.as_ref().to_owned()));
        self
    }

    /// Trusts only the added roots, not the default ones (the platform's with native-tls,
    /// Mozilla's bundled set with rustls).
    pub fn disable_system_roots(mut self, disable: bool) -> Self {
        self.no_system_roots = disable;
        self
    }

    /// **For testing only**: accepts any certificate for any name, so anyone on the path can read
    /// and change the traffic.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Reads the roots and builds the configuration every connection made with it shares.
    pub fn build(&self) -> Result<ClientTls> {
        let mut roots = Vec::with_capacity(self.roots.len());
        for root in &self.roots {
            roots.push(match root {
                Root::Pem(pem) => (pem.clone(), "PEM text".to_owned()),
                Root::File(path) => (read_file(path)?, path.display().to_string()),
            });
        }
        let settings = ClientSettings {
            roots,
            insecure: self.insecure,
            default_roots: !self.no_system_roots,
        };
        #[cfg(feature = "rustls")]
        return rustls::client_config(&settings).map(ClientTls::from_rustls);
        #[cfg(not(feature = "rustls"))]
        native::connector(&settings).map(ClientTls::from_connector)
    }
}

/// An established TLS session over a shared TCP socket, of either backend.
pub(crate) enum Tls {
    #[cfg(feature = "tls")]
    Native(native_tls::TlsStream<crate::io::TcpRef>),
    #[cfg(feature = "rustls")]
    Rustls(Box<rustls::Session>),
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// The socket view the session reads and writes through.
    pub(crate) fn socket_mut(&mut self) -> &mut TcpRef {
        match self {
            #[cfg(feature = "tls")]
            Tls::Native(s) => s.get_mut(),
            #[cfg(feature = "rustls")]
            Tls::Rustls(s) => s.socket_mut(),
        }
    }

    /// Whether a `read` would return without waiting for the socket: decrypted bytes are
    /// buffered (or the session has ended and reports that).
    pub(crate) fn read_ready(&mut self) -> bool {
        match self {
            #[cfg(feature = "tls")]
            Tls::Native(s) => s.buffered_read_size().unwrap_or(0) > 0,
            #[cfg(feature = "rustls")]
            Tls::Rustls(s) => s.read_ready(),
        }
    }

    /// Sends the TLS goodbye (close_notify), so the peer can tell the end from a cut.
    pub(crate) fn shutdown(&mut self) -> io::Result<()> {
        match self {
            #[cfg(feature = "tls")]
            Tls::Native(s) => s.shutdown(),
            #[cfg(feature = "rustls")]
            Tls::Rustls(s) => s.shutdown(),
        }
    }
}

impl Read for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            #[cfg(feature = "tls")]
            Tls::Native(s) => s.read(buf),
            #[cfg(feature = "rustls")]
            Tls::Rustls(s) => s.read(buf),
        }
    }
}

impl Write for Tls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            #[cfg(feature = "tls")]
            Tls::Native(s) => s.write(buf),
            #[cfg(feature = "rustls")]
            Tls::Rustls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            #[cfg(feature = "tls")]
            Tls::Native(s) => s.flush(),
            #[cfg(feature = "rustls")]
            Tls::Rustls(s) => s.flush(),
        }
    }
}

/// Arms both socket timeouts with the time left before `deadline`; past it, the handshake has
/// timed out.
fn set_deadline(tcp: &TcpStream, deadline: Instant) -> Result<()> {
    let left = crate::io::Deadline::at(deadline)
        .remaining()
        .map_err(|_| Error::Handshake(crate::HandshakeError::Timeout))?;
    tcp.set_read_timeout(left)?;
    tcp.set_write_timeout(left)?;
    Ok(())
}

fn config_error(message: &str) -> Error {
    TlsError::new(TlsErrorKind::Config, message.to_owned()).into()
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| config_error(&format!("cannot read {}: {e}", path.display())))
}
