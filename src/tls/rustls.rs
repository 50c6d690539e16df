//! The rustls backend (feature `rustls`), with ring for the cryptography. Configurations are
//! built with the provider named explicitly, never the process-wide default, so another crate
//! installing (or compiling in) a different provider changes nothing here.
//!
//! A session is driven by hand over the shared socket view rather than through
//! `rustls::StreamOwned`, because the split reader needs three things that wrapper hides:
//! whether decrypted bytes are waiting (`read_ready`), a read that returns `WouldBlock` with a
//! partial record kept when the socket is non-blocking, and the typed `rustls::Error` of a
//! failed handshake for sorting into [`TlsErrorKind`]s.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, Connection, RootCertStore, ServerConfig};

use super::{ClientSettings, Tls, config_error, set_deadline};
use crate::error::{Error, Result, TlsError, TlsErrorKind, is_timeout_kind};
use crate::io::{PhaseDeadline, Stream, TcpRef};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration for a PEM chain and PKCS#8 key (checked to be PKCS#8 by the caller).
/// rustls itself refuses a key that does not match the leaf certificate.
pub(super) fn server_config(cert_chain: &[u8], key: &[u8]) -> Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_slice_iter(cert_chain)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| config_error(&format!("bad certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(config_error(
            "no certificate found in the certificate chain",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| config_error(&format!("bad private key: {e}")))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(&format!("cannot build a TLS server configuration: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            config_error(&format!(
                "the identity cannot serve TLS (does the key belong to the certificate?): {e}"
            ))
        })?;
    Ok(Arc::new(config))
}

/// A client configuration trusting Mozilla's bundled roots (unless disabled) and the added
/// ones, or anything at all in the insecure test mode.
pub(super) fn client_config(settings: &ClientSettings) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    if settings.default_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for (pem, what) in &settings.roots {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| config_error(&format!("bad root certificate in {what}: {e}")))?;
        if certs.is_empty() {
            return Err(config_error(&format!("no certificate found in {what}")));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| config_error(&format!("bad root certificate in {what}: {e}")))?;
        }
    }
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(&format!("cannot build a TLS client configuration: {e}")))?;
    let config = if settings.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The insecure test mode: any certificate, for any name, is taken as the server's. The
/// handshake signatures are still checked against it (a peer must hold the key of the
/// certificate it shows), as native-tls's insecure mode does.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub(super) fn accept(
    config: &Arc<ServerConfig>,
    tcp: Arc<TcpStream>,
    deadline: Instant,
) -> Result<Stream> {
    let conn = rustls::ServerConnection::new(Arc::clone(config))
        .map_err(|e| config_error(&format!("cannot start a TLS session: {e}")))?;
    let socket = TcpRef::new(Arc::clone(&tcp), PhaseDeadline::new(Some(deadline)));
    handshake(conn.into(), tcp, socket, deadline)
}

/// The client side over `socket` (straight on `tcp`, or through an outer session).
pub(super) fn connect(
    config: &Arc<ClientConfig>,
    name: &str,
    tcp: Arc<TcpStream>,
    socket: TcpRef,
    deadline: Instant,
) -> Result<Stream> {
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| {
        TlsError::new(
            TlsErrorKind::Handshake,
            format!("{name:?} cannot be checked against a certificate: {e}"),
        )
    })?;
    let conn = rustls::ClientConnection::new(Arc::clone(config), server_name)
        .map_err(|e| config_error(&format!("cannot start a TLS session: {e}")))?;
    handshake(conn.into(), tcp, socket, deadline)
}

/// Runs one side of a TLS handshake before `deadline`, every socket call in it armed with the
/// time left; a socket timeout re-arms with what is left, until nothing is. What the session
/// has to send once it is established (a TLS 1.3 server's session tickets) goes out here too.
/// The stream keeps the deadline.
fn handshake(
    mut conn: Connection,
    tcp: Arc<TcpStream>,
    mut socket: TcpRef,
    deadline: Instant,
) -> Result<Stream> {
    set_deadline(&tcp, deadline)?;
    let phase = socket.deadline.clone();
    loop {
        while conn.wants_write() {
            match conn.write_tls(&mut socket) {
                Ok(0) => return Err(handshake_error("the connection closed".into())),
                Ok(_) => {}
                Err(e) if is_timeout_kind(e.kind()) => set_deadline(&tcp, deadline)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(handshake_error(e.to_string())),
            }
        }
        if !conn.is_handshaking() {
            break;
        }
        match conn.read_tls(&mut socket) {
            Ok(0) => {
                let message = "the peer closed the connection during the TLS handshake";
                return Err(handshake_error(message.into()));
            }
            Ok(_) => {}
            Err(e) if is_timeout_kind(e.kind()) => {
                set_deadline(&tcp, deadline)?;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(handshake_error(e.to_string())),
        }
        if let Err(e) = conn.process_new_packets() {
            // Tell the peer why (the alert rustls queued), as far as the socket lets us.
            let _ = conn.write_tls(&mut socket);
            return Err(classify(&e));
        }
    }
    let session = Session { conn, socket };
    Ok(Stream::tls(tcp, Tls::Rustls(Box::new(session)), phase))
}

fn handshake_error(message: String) -> Error {
    TlsError::new(TlsErrorKind::Handshake, message).into()
}

/// Sorts a handshake failure into the kinds callers act on.
fn classify(e: &rustls::Error) -> Error {
    let kind = match e {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => TlsErrorKind::NameMismatch,
        // Unknown issuer, self-signed, expired, not yet valid, revoked, a CA as a leaf, ...
        rustls::Error::InvalidCertificate(_) => TlsErrorKind::UntrustedCertificate,
        _ => TlsErrorKind::Handshake,
    };
    TlsError::new(kind, e.to_string()).into()
}

/// An established rustls session and the socket view it reads and writes through.
pub(crate) struct Session {
    conn: Connection,
    socket: TcpRef,
}

impl Session {
    /// The socket view the session reads and writes through.
    pub(super) fn socket_mut(&mut self) -> &mut TcpRef {
        &mut self.socket
    }

    /// Whether a read would return without the socket: decrypted bytes wait, the peer said
    /// goodbye, or the session failed (the read reports it).
    pub(super) fn read_ready(&mut self) -> bool {
        match self.conn.process_new_packets() {
            Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
            Err(_) => true,
        }
    }

    /// Queues close_notify and sends it with whatever else is pending.
    pub(super) fn shutdown(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.send_pending()
    }

    /// Writes every record the session has ready to the socket. An interrupted system call is
    /// retried here, not reported: `write` may already have taken the caller's bytes, and a
    /// caller retrying on `Interrupted` would send them twice.
    fn send_pending(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.socket) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Read for Session {
    /// Returns decrypted bytes, reading records from the socket until some arrive. A socket
    /// timeout (or `WouldBlock` on a non-blocking socket) comes back as is, with any partial
    /// record kept for the next call. The end of the TCP stream without close_notify reads as
    /// an end, as on plain TCP: WebSocket frames its own end (the close frame), and the
    /// connection layer reports a stream that ends without one.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            self.conn.read_tls(&mut self.socket)?;
            if let Err(e) = self.conn.process_new_packets() {
                let _ = self.conn.write_tls(&mut self.socket);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }
}

impl Write for Session {
    /// Encrypts what the session takes of `buf` (all of it, up to its buffer limit) and sends
    /// it, with anything left from before, before returning.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Records an earlier call could not send go first, before taking new bytes.
        self.send_pending()?;
        let n = self.conn.writer().write(buf)?;
        match self.send_pending() {
            // The bytes are taken: a socket that takes no more now (non-blocking, or its write
            // timeout) gets them with the next write or flush, which reports a failure then.
            // Saying "not written" would make the caller give them again, twice on the wire.
            // (What waits is this write's: the first send emptied the queue, so `n > 0`.)
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
            other => other.map(|()| n),
        }
    }

    /// Sends the records this session holds, then flushes the socket view: inside another
    /// session (an `https://` proxy), records handed to it may still wait there.
    fn flush(&mut self) -> io::Result<()> {
        self.send_pending()?;
        self.socket.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(e: rustls::Error) -> TlsErrorKind {
        match classify(&e) {
            Error::Tls(e) => e.kind(),
            other => panic!("not a TLS error: {other}"),
        }
    }

    #[test]
    fn failures_sort_into_the_kinds_callers_act_on() {
        use CertificateError::*;
        use TlsErrorKind::*;
        let rows = [
            (
                rustls::Error::InvalidCertificate(NotValidForName),
                NameMismatch,
            ),
            (
                rustls::Error::InvalidCertificate(UnknownIssuer),
                UntrustedCertificate,
            ),
            (
                rustls::Error::InvalidCertificate(Expired),
                UntrustedCertificate,
            ),
            (
                rustls::Error::InvalidCertificate(NotValidYet),
                UntrustedCertificate,
            ),
            (
                rustls::Error::InvalidCertificate(BadSignature),
                UntrustedCertificate,
            ),
            (
                rustls::Error::InvalidCertificate(Revoked),
                UntrustedCertificate,
            ),
            (rustls::Error::NoCertificatesPresented, Handshake),
            (
                rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
                Handshake,
            ),
            (
                rustls::Error::InappropriateMessage {
                    expect_types: vec![],
                    got_type: rustls::ContentType::ApplicationData,
                },
                Handshake,
            ),
        ];
        for (error, want) in rows {
            let text = error.to_string();
            assert_eq!(kind(error), want, "{text}");
        }
    }

    #[test]
    fn server_settings_errors_are_config() {
        let err = server_config(
            b"",
            b"-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
        );
        assert!(matches!(err, Err(Error::Tls(e)) if e.kind() == TlsErrorKind::Config));
    }
}
