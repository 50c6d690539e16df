//! The native-tls backend (feature `tls`): OpenSSL on Linux, the platform's TLS elsewhere.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use native_tls::HandshakeError as NativeHandshakeError;

use super::{Tls, config_error, set_deadline};
use crate::error::{Error, Result, TlsError, TlsErrorKind};
use crate::io::{PhaseDeadline, Stream, TcpRef};

type Session = native_tls::TlsStream<TcpRef>;

/// An acceptor for a PEM chain and PKCS#8 key (checked to be PKCS#8 by the caller).
#[cfg(not(feature = "rustls"))]
pub(super) fn acceptor_from_pem(
    cert_chain: &[u8],
    key: &[u8],
) -> Result<Arc<native_tls::TlsAcceptor>> {
    let identity = native_tls::Identity::from_pkcs8(cert_chain, key)
        .map_err(|e| config_error(&format!("bad certificate or key: {e}")))?;
    acceptor(identity)
}

pub(super) fn acceptor_from_pkcs12(
    der: &[u8],
    password: &str,
) -> Result<Arc<native_tls::TlsAcceptor>> {
    let identity = native_tls::Identity::from_pkcs12(der, password)
        .map_err(|e| config_error(&format!("bad PKCS#12 archive: {e}")))?;
    acceptor(identity)
}

fn acceptor(identity: native_tls::Identity) -> Result<Arc<native_tls::TlsAcceptor>> {
    let acceptor = native_tls::TlsAcceptor::new(identity)
        .map_err(|e| config_error(&format!("cannot build a TLS acceptor: {e}")))?;
    let acceptor = Arc::new(acceptor);
    self_test(&acceptor)?;
    Ok(acceptor)
}

/// One handshake in memory, so that a key that does not belong to the certificate (which
/// OpenSSL drops silently) is reported now, not as every client's failed handshake.
fn self_test(acceptor: &Arc<native_tls::TlsAcceptor>) -> Result<()> {
    let (server_end, client_end) = pipe::pair();
    let acceptor = Arc::clone(acceptor);
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

/// A connector trusting the default roots (unless disabled) and the added ones.
#[cfg(not(feature = "rustls"))]
pub(super) fn connector(settings: &super::ClientSettings) -> Result<native_tls::TlsConnector> {
    let mut builder = native_tls::TlsConnector::builder();
    for (pem, what) in &settings.roots {
        let certs = native_tls::Certificate::stack_from_pem(pem)
            .map_err(|e| config_error(&format!("bad root certificate in {what}: {e}")))?;
        if certs.is_empty() {
            return Err(config_error(&format!("no certificate found in {what}")));
        }
        for cert in certs {
            builder.add_root_certificate(cert);
        }
    }
    builder
        .disable_built_in_roots(!settings.default_roots)
        .danger_accept_invalid_certs(settings.insecure)
        .danger_accept_invalid_hostnames(settings.insecure);
    builder
        .build()
        .map_err(|e| config_error(&format!("cannot build a TLS connector: {e}")))
}

pub(super) fn accept(
    acceptor: &native_tls::TlsAcceptor,
    tcp: Arc<TcpStream>,
    deadline: Instant,
) -> Result<Stream> {
    let socket = TcpRef::new(Arc::clone(&tcp), PhaseDeadline::new(Some(deadline)));
    handshake(tcp, socket, deadline, |socket| acceptor.accept(socket))
}

/// The client side over `socket` (straight on `tcp`, or through an outer session).
pub(super) fn connect(
    connector: &native_tls::TlsConnector,
    name: &str,
    tcp: Arc<TcpStream>,
    socket: TcpRef,
    deadline: Instant,
) -> Result<Stream> {
    handshake(tcp, socket, deadline, |socket| {
        connector.connect(name, socket)
    })
}

/// Runs one side of a TLS handshake (`start` begins it on the socket view) before `deadline`,
/// every socket call in it armed with the time left; the stream keeps the deadline.
fn handshake<F>(tcp: Arc<TcpStream>, socket: TcpRef, deadline: Instant, start: F) -> Result<Stream>
where
    F: FnOnce(TcpRef) -> std::result::Result<Session, NativeHandshakeError<TcpRef>>,
{
    set_deadline(&tcp, deadline)?;
    let phase = socket.deadline.clone();
    let started = start(socket);
    let session = finish(started, &tcp, deadline)?;
    Ok(Stream::tls(tcp, Tls::Native(session), phase))
}

/// Drives a handshake that stopped on a socket timeout until it completes or the deadline passes.
fn finish(
    mut result: std::result::Result<Session, NativeHandshakeError<TcpRef>>,
    tcp: &TcpStream,
    deadline: Instant,
) -> Result<Session> {
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

/// An in-memory byte pipe for the acceptor's self-test: two ends, each reading what the other
/// wrote; dropping an end ends the other's reads.
mod pipe {
    use std::collections::VecDeque;
    use std::io::{self, Read, Write};
    use std::sync::{Arc, Condvar, Mutex};

    #[derive(Debug, Default)]
    struct Channel {
        bytes: Mutex<(VecDeque<u8>, bool)>,
        ready: Condvar,
    }

    /// `Debug` because native-tls's handshake errors print their stream.
    #[derive(Debug)]
    pub(super) struct End {
        incoming: Arc<Channel>,
        outgoing: Arc<Channel>,
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
