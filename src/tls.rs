//! TLS for `wss://` (cargo feature `tls`, on by default), through `native-tls` (OpenSSL on
//! Linux, the platform libraries elsewhere).
//!
//! Both settings objects are built once and shared: cloning one is cheap, and every connection
//! made with it uses the same underlying acceptor or connector.
//!
//! ```no_run
//! # fn main() -> syncws::Result<()> {
//! // Server: certificate chain and PKCS#8 key, both PEM.
//! let tls = syncws::ServerTls::from_pem_files("cert.pem", "key.pem")?;
//! let server = syncws::Server::bind("0.0.0.0:443")?.tls(tls);
//! # let _ = server;
//!
//! // Client: the system's roots plus our own CA.
//! let tls = syncws::ClientTls::builder().add_root_file("ca.pem").build()?;
//! let ws = syncws::Client::builder().tls(tls).connect("wss://example.test/")?;
//! # let _ = ws;
//! # Ok(()) }
//! ```

use std::fmt;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use native_tls::{HandshakeError as NativeHandshakeError, TlsStream};

use crate::error::{Error, Result, TlsError, TlsErrorKind};
use crate::io::{PhaseDeadline, Stream, TcpRef};

/// A server's TLS identity (certificate chain and private key), ready to accept connections.
/// Give it to [`Server::tls`](crate::Server::tls).
#[derive(Clone)]
pub struct ServerTls {
    acceptor: Arc<native_tls::TlsAcceptor>,
}

impl ServerTls {
    /// From a PEM certificate chain (leaf first) and a PEM private key in PKCS#8 form
    /// (`-----BEGIN PRIVATE KEY-----`; convert other keys with
    /// `openssl pkcs8 -topk8 -nocrypt -in old.key -out key.pem`).
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
        let identity = native_tls::Identity::from_pkcs8(cert_chain, key)
            .map_err(|e| config_error(&format!("bad certificate or key: {e}")))?;
        Self::from_identity(identity)
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

    /// From a PKCS#12 archive (`.p12`/`.pfx`) and its password.
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<ServerTls> {
        let identity = native_tls::Identity::from_pkcs12(der, password)
            .map_err(|e| config_error(&format!("bad PKCS#12 archive: {e}")))?;
        Self::from_identity(identity)
    }

    /// From an acceptor configured by hand (protocol versions, ALPN, ...).
    pub fn from_acceptor(acceptor: native_tls::TlsAcceptor) -> ServerTls {
        ServerTls {
            acceptor: Arc::new(acceptor),
        }
    }

    fn from_identity(identity: native_tls::Identity) -> Result<ServerTls> {
        let acceptor = native_tls::TlsAcceptor::new(identity)
            .map_err(|e| config_error(&format!("cannot build a TLS acceptor: {e}")))?;
        let tls = Self::from_acceptor(acceptor);
        tls.self_test()?;
        Ok(tls)
    }

    /// One handshake in memory, so that a key that does not belong to the certificate (which
    /// OpenSSL drops silently) is reported now, not as every client's failed handshake.
    fn self_test(&self) -> Result<()> {
        let (server_end, client_end) = pipe::pair();
        let acceptor = Arc::clone(&self.acceptor);
        let server = std::thread::spawn(move || acceptor.accept(server_end).map(drop));
        let client = native_tls::TlsConnector::builder()
            .danger_accept_invalid_certs(true)
            .danger_accept_invalid_hostnames(true)
            .build()
            .map_err(|e| config_error(&format!("cannot build a TLS connector: {e}")))?;
        let client_result = client.connect("localhost", client_end).map(drop);
        let server_result = server
            .join()
            .map_err(|_| config_error("the TLS self-test panicked"))?;
        match (server_result, client_result) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), _) => Err(config_error(&format!(
                "the identity cannot serve TLS (does the key belong to the certificate?): {e:?}"
            ))),
            (_, Err(e)) => Err(config_error(&format!(
                "the identity cannot serve TLS (does the key belong to the certificate?): {e:?}"
            ))),
        }
    }

    /// Runs the server side of the TLS handshake, all of it before `deadline` (every socket
    /// read and write inside it is armed with the time left). The stream keeps that deadline
    /// for the HTTP handshake that follows.
    pub(crate) fn accept(&self, tcp: Arc<TcpStream>, deadline: Instant) -> Result<Stream> {
        handshake(tcp, deadline, |socket| self.acceptor.accept(socket))
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerTls")
    }
}

/// A client's TLS settings: which certificates it trusts. Give it to
/// [`ClientBuilder::tls`](crate::ClientBuilder::tls); without one, clients trust the system's
/// roots.
#[derive(Clone)]
pub struct ClientTls {
    connector: Arc<native_tls::TlsConnector>,
}

impl ClientTls {
    /// The system's trusted roots, nothing else.
    pub fn new() -> Result<ClientTls> {
        ClientTlsBuilder::default().build()
    }

    /// Settings with extra roots or the insecure test mode.
    pub fn builder() -> ClientTlsBuilder {
        ClientTlsBuilder::default()
    }

    /// From a connector configured by hand (client certificates, protocol versions, ...).
    pub fn from_connector(connector: native_tls::TlsConnector) -> ClientTls {
        ClientTls {
            connector: Arc::new(connector),
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
        handshake(tcp, deadline, |socket| self.connector.connect(name, socket))
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
        set_deadline(&tcp, deadline)?;
        phase.set(Some(deadline));
        let socket = TcpRef {
            tcp: Arc::clone(&tcp),
            deadline: phase.clone(),
            outer: Some(Box::new(session)),
        };
        let session = finish(self.connector.connect(name, socket), &tcp, deadline)?;
        Ok(Stream::tls(tcp, session, phase))
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientTls")
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

    /// Trusts only the added roots, not the system's.
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

    /// Reads the roots and builds the connector every connection made with it shares.
    pub fn build(&self) -> Result<ClientTls> {
        let mut builder = native_tls::TlsConnector::builder();
        for root in &self.roots {
            let (pem, what) = match root {
                Root::Pem(pem) => (pem.clone(), "PEM text".to_owned()),
                Root::File(path) => (read_file(path)?, path.display().to_string()),
            };
            let certs = native_tls::Certificate::stack_from_pem(&pem)
                .map_err(|e| config_error(&format!("bad root certificate in {what}: {e}")))?;
            if certs.is_empty() {
                return Err(config_error(&format!("no certificate found in {what}")));
            }
            for cert in certs {
                builder.add_root_certificate(cert);
            }
        }
        builder
            .disable_built_in_roots(self.no_system_roots)
            .danger_accept_invalid_certs(self.insecure)
            .danger_accept_invalid_hostnames(self.insecure);
        let connector = builder
            .build()
            .map_err(|e| config_error(&format!("cannot build a TLS connector: {e}")))?;
        Ok(ClientTls::from_connector(connector))
    }
}

/// An established TLS session over a shared TCP socket.
pub(crate) type Tls = TlsStream<TcpRef>;

fn set_deadline(tcp: &TcpStream, deadline: Instant) -> Result<()> {
    let left = crate::io::Deadline::at(deadline)
        .remaining()
        .map_err(|_| Error::Handshake(crate::HandshakeError::Timeout))?;
    tcp.set_read_timeout(left)?;
    tcp.set_write_timeout(left)?;
    Ok(())
}

/// Runs one side of a TLS handshake (`start` begins it on the socket view) before `deadline`,
/// every socket call in it armed with the time left; the stream keeps the deadline.
fn handshake<F>(tcp: Arc<TcpStream>, deadline: Instant, start: F) -> Result<Stream>
where
    F: FnOnce(TcpRef) -> std::result::Result<Tls, NativeHandshakeError<TcpRef>>,
{
    set_deadline(&tcp, deadline)?;
    let phase = PhaseDeadline::new(Some(deadline));
    let started = start(TcpRef {
        tcp: Arc::clone(&tcp),
        deadline: phase.clone(),
        outer: None,
    });
    let session = finish(started, &tcp, deadline)?;
    Ok(Stream::tls(tcp, session, phase))
}

/// Drives a handshake that stopped on a socket timeout until it completes or the deadline passes.
fn finish(
    mut result: std::result::Result<Tls, NativeHandshakeError<TcpRef>>,
    tcp: &TcpStream,
    deadline: Instant,
) -> Result<Tls> {
    loop {
        match result {
            Ok(tls) => return Ok(tls),
            Err(NativeHandshakeError::Failure(e)) => return Err(classify(&e)),
            Err(NativeHandshakeError::WouldBlock(mid)) => {
                set_deadline(tcp, deadline)?;
                result = mid.handshake();
            }
        }
    }
}

/// Sorts a handshake failure into the kinds callers act on, from OpenSSL's verify result.
fn classify(e: &native_tls::Error) -> Error {
    let message = e.to_string();
    let lower = message.to_ascii_lowercase();
    let kind = if lower.contains("hostname mismatch") || lower.contains("ip address mismatch") {
        TlsErrorKind::NameMismatch
    } else if lower.contains("certificate verify failed") {
        TlsErrorKind::UntrustedCertificate
    } else {
        TlsErrorKind::Handshake
    };
    TlsError::new(kind, message).into()
}

fn config_error(message: &str) -> Error {
    TlsError::new(TlsErrorKind::Config, message.to_owned()).into()
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| config_error(&format!("cannot read {}: {e}", path.display())))
}

/// An in-memory byte pipe for the acceptor's self-test: two ends, each reading what the other
/// wrote; dropping an end ends the other's reads.
mod pipe {
    use std::collections::VecDeque;
    use std::io::{self, Read, Write};
    use std::sync::{Arc, Condvar, Mutex};

    #[derive(Default)]
    struct Channel {
        bytes: Mutex<(VecDeque<u8>, bool)>,
        ready: Condvar,
    }

    pub(super) struct End {
        incoming: Arc<Channel>,
        outgoing: Arc<Channel>,
    }

    impl std::fmt::Debug for End {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("pipe::End")
        }
    }

    pub(super) fn pair() -> (End, End) {
        let (a, b) = (Arc::new(Channel::default()), Arc::new(Channel::default()));
        (
            End {
                incoming: Arc::clone(&a),
                outgoing: Arc::clone(&b),
            },
            End {
                incoming: b,
                outgoing: a,
            },
        )
    }

    impl Read for End {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut state = self
                .incoming
                .bytes
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            while state.0.is_empty() && !state.1 {
                state = self
                    .incoming
                    .ready
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
            let n = buf.len().min(state.0.len());
            for (dst, src) in buf.iter_mut().zip(state.0.drain(..n)) {
                *dst = src;
            }
            Ok(n)
        }
    }

    impl Write for End {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut state = self
                .outgoing
                .bytes
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if state.1 {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            state.0.extend(buf);
            self.outgoing.ready.notify_all();
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Drop for End {
        fn drop(&mut self) {
            for channel in [&self.incoming, &self.outgoing] {
                channel.bytes.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
                channel.ready.notify_all();
            }
        }
    }
}
