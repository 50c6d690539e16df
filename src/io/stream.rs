//! The byte stream under a WebSocket: plain TCP, a Unix domain socket, or TLS over TCP through
//! either backend (the TLS side's session handle and socket view are in `tls_stream`).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[cfg(any(feature = "tls", feature = "rustls"))]
use super::tls_stream::TlsHandle;
use super::transport::{Aborter, Split, Transport};
#[cfg(any(feature = "tls", feature = "rustls"))]
use crate::io::Deadline;
use crate::io::socket::Socket;

/// The stream a server or client connection runs over: plain TCP, a Unix domain socket (on Unix),
/// or TLS over TCP (feature `tls` or `rustls`). [`tcp`](Self::tcp) and [`unix`](Self::unix) give
/// the socket underneath.
///
/// The socket is shared, not duplicated: the halves of a split connection and a server's
/// shutdown registry hold the same socket, so a connection costs one file descriptor. Socket
/// timeouts are cached per handle, so setting the value already in force costs no system call
/// (each kind of timeout is only ever set through one handle: reads by the reader, writes by the
/// writer).
///
/// A TLS session cannot be read and written by two threads at once, so the halves of a split
/// TLS connection share it behind a lock, and neither waits for the network while it holds it.
/// The reader waits for bytes *outside* the lock (a `peek` on the socket, under its read
/// timeout) and takes the lock only to decrypt what has arrived; the writer takes it only to
/// encrypt a record, which it then writes to the socket outside the lock. So a writer waits at
/// most for one record's decryption, and a reader for one record's encryption, even while the
/// other half is stuck on the network.
#[derive(Debug)]
pub struct Stream {
    socket: Socket,
    #[cfg(any(feature = "tls", feature = "rustls"))]
    tls: Option<TlsHandle>,
    read_timeout: Option<Option<Duration>>,
    write_timeout: Option<Option<Duration>>,
    /// While set, the total deadline of a phase (handshake, an HTTP request, a response), shared
    /// with the socket view the TLS session reads and writes through, so each of the calls it
    /// makes inside one record gets only the time left. (On plain TCP each `read` and `write`
    /// is one system call, and the callers arm the socket before each.)
    deadline: PhaseDeadline,
}

/// The deadline of the phase a connection is in, shared by a [`Stream`] and the socket view its
/// TLS session reads and writes through, so a peer that trickles bytes cannot stretch a phase
/// past it: each socket read or write is armed with the time left.
#[derive(Debug, Clone, Default)]
pub(crate) struct PhaseDeadline(Arc<Mutex<Option<Instant>>>);

impl PhaseDeadline {
    /// A cell set to `deadline`.
    #[cfg(any(feature = "tls", feature = "rustls"))]
    pub(crate) fn new(deadline: Option<Instant>) -> Self {
        PhaseDeadline(Arc::new(Mutex::new(deadline)))
    }

    #[cfg(any(feature = "tls", feature = "rustls"))]
    pub(super) fn get(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set(&self, deadline: Option<Instant>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = deadline;
    }

    /// Arms the socket's read or write timeout with the time left, if a deadline is set; past
    /// it, fails as an expired socket timeout does.
    #[cfg(any(feature = "tls", feature = "rustls"))]
    pub(super) fn arm(&self, tcp: &TcpStream, write: bool) -> io::Result<()> {
        let Some(deadline) = self.get() else {
            return Ok(());
        };
        // WouldBlock, as an expired socket timeout reports it (the TLS library then stops
        // where it is instead of failing the session).
        let left = Deadline::at(deadline)
            .remaining()
            .map_err(|e| io::Error::new(io::ErrorKind::WouldBlock, e))?;
        match write {
            false => tcp.set_read_timeout(left),
            true => tcp.set_write_timeout(left),
        }
    }
}

impl From<TcpStream> for Stream {
    fn from(tcp: TcpStream) -> Self {
        Stream::plain(Socket::from(tcp))
    }
}

#[cfg(unix)]
impl From<UnixStream> for Stream {
    fn from(unix: UnixStream) -> Self {
        Stream::plain(Socket::from(unix))
    }
}

impl Stream {
    pub(crate) fn plain(socket: Socket) -> Self {
        Stream {
            socket,
            #[cfg(any(feature = "tls", feature = "rustls"))]
            tls: None,
            read_timeout: None,
            write_timeout: None,
            deadline: PhaseDeadline::default(),
        }
    }

    /// A TLS session over `tcp` (the same socket the session writes to), whose socket view
    /// shares `deadline`.
    #[cfg(any(feature = "tls", feature = "rustls"))]
    pub(crate) fn tls(
        tcp: Arc<TcpStream>,
        session: crate::tls::Tls,
        deadline: PhaseDeadline,
    ) -> Self {
        let mut stream = Stream::plain(Socket::Tcp(Arc::clone(&tcp)));
        stream.deadline = deadline;
        stream.tls = Some(TlsHandle::new(tcp, session));
        stream
    }

    /// The socket, the TLS session and the deadline cell of a TLS stream that was not split,
    /// to run another session inside it.
    #[cfg(any(feature = "tls", feature = "rustls"))]
    pub(crate) fn into_tls(self) -> Option<(Arc<TcpStream>, crate::tls::Tls, PhaseDeadline)> {
        let (tcp, session) = self.tls?.into_parts()?;
        Some((tcp, session, self.deadline))
    }

    /// Whether this stream is TLS.
    pub fn is_tls(&self) -> bool {
        #[cfg(any(feature = "tls", feature = "rustls"))]
        return self.tls.is_some();
        #[cfg(not(any(feature = "tls", feature = "rustls")))]
        false
    }

    /// The TCP socket underneath; `None` over a Unix socket.
    pub fn tcp(&self) -> Option<&TcpStream> {
        self.socket.as_tcp().map(|tcp| &**tcp)
    }

    /// The Unix socket underneath; `None` over TCP.
    #[cfg(unix)]
    pub fn unix(&self) -> Option<&UnixStream> {
        match &self.socket {
            Socket::Unix(unix) => Some(unix),
            Socket::Tcp(_) => None,
        }
    }
}
impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(any(feature = "tls", feature = "rustls"))]
        if let Some(tls) = &mut self.tls {
            return tls.read(buf);
        }
        (&self.socket).read(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(any(feature = "tls", feature = "rustls"))]
        if let Some(tls) = &mut self.tls {
            return tls.write(buf);
        }
        (&self.socket).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        #[cfg(any(feature = "tls", feature = "rustls"))]
        if let Some(tls) = &mut self.tls {
            return tls.write_vectored(bufs);
        }
        (&self.socket).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        #[cfg(any(feature = "tls", feature = "rustls"))]
        if let Some(tls) = &mut self.tls {
            return tls.flush();
        }
        Ok(())
    }
}

impl Transport for Stream {
    /// Over TLS, while a deadline is set, each socket call the session makes is armed with the
    /// time left, so the total holds against a peer that trickles bytes inside a record.
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        if !self.is_tls() {
            return;
        }
        self.deadline.set(deadline);
        // The session's socket view changes the timeouts underneath the cache.
        self.read_timeout = None;
        self.write_timeout = None;
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.read_timeout != Some(timeout) {
            self.socket.set_read_timeout(timeout)?;
            self.read_timeout = Some(timeout);
        }
        Ok(())
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.write_timeout != Some(timeout) {
            self.socket.set_write_timeout(timeout)?;
            self.write_timeout = Some(timeout);
        }
        Ok(())
    }

    fn read_to_vec(&mut self, buf: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
        if self.is_tls() {
            return Read::take(self, limit as u64).read_to_end(buf);
        }
        self.socket.read_to_vec(buf, limit)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        // TLS says goodbye first (close_notify), so the peer can tell the end from a cut.
        #[cfg(any(feature = "tls", feature = "rustls"))]
        if let Some(tls) = &self.tls {
            tls.shutdown();
        }
        self.socket.shutdown(Shutdown::Write)
    }

    fn shutdown_both(&mut self) -> io::Result<()> {
        self.socket.shutdown(Shutdown::Both)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        self.socket.set_nonblocking(nonblocking)
    }

    /// Over TLS the mode is switched under the session's lock, as the split reader does, so the
    /// two never undo each other's switch.
    fn write_nonblocking(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(any(feature = "tls", feature = "rustls"))]
        if let Some(tls) = &self.tls {
            return tls.write_nonblocking(buf);
        }
        self.socket.set_nonblocking(true)?;
        let written = (&self.socket).write(buf);
        let restored = self.socket.set_nonblocking(false);
        let n = written?;
        restored.map(|()| n)
    }

    fn flush_nonblocking(&mut self) -> io::Result<()> {
        #[cfg(any(feature = "tls", feature = "rustls"))]
        if let Some(tls) = &self.tls {
            return tls.flush_nonblocking();
        }
        Ok(())
    }

    /// `None` for a Unix socket peer, which has no IP address.
    fn peer_addr(&self) -> Option<SocketAddr> {
        self.socket.peer_addr()
    }
}

impl Split for Stream {
    type ReadHalf = Stream;
    type WriteHalf = Stream;

    /// Two handles on the one socket. Over plain TCP or a Unix socket the kernel lets one
    /// thread read while another writes; over TLS the handles share the session (see [`Stream`]).
    fn split(self) -> io::Result<(Stream, Stream)> {
        #[cfg(any(feature = "tls", feature = "rustls"))]
        let (reader_tls, writer_tls) = self.tls.map(TlsHandle::split).unzip();
        let reader = Stream {
            socket: self.socket.clone(),
            #[cfg(any(feature = "tls", feature = "rustls"))]
            tls: reader_tls,
            read_timeout: self.read_timeout,
            write_timeout: self.write_timeout,
            deadline: self.deadline.clone(),
        };
        #[cfg(any(feature = "tls", feature = "rustls"))]
        let writer = Stream {
            tls: writer_tls,
            ..self
        };
        #[cfg(not(any(feature = "tls", feature = "rustls")))]
        let writer = self;
        Ok((reader, writer))
    }

    fn aborter(&self) -> Option<Aborter> {
        Some(Aborter(self.socket.clone()))
    }
}

#[cfg(all(test, feature = "rustls"))]
mod tests {
    use super::*;

    /// A rustls server and client over loopback on the test certificate, handshake done.
    fn tls_pair() -> (Stream, Stream) {
        use crate::tls::{ClientTls, ServerTls};
        let fixture = |name: &str| {
            let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
            std::fs::read(path).unwrap()
        };
        let server_tls = ServerTls::from_pem(&fixture("server.pem"), &fixture("server.key"));
        let server_tls = server_tls.unwrap();
        let client_tls = ClientTls::builder()
            .add_root_pem(&fixture("ca.pem"))
            .build();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let server = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            server_tls.accept(Arc::new(tcp), deadline).unwrap()
        });
        let tcp = Arc::new(TcpStream::connect(addr).unwrap());
        let mut client = client_tls
            .unwrap()
            .connect("localhost", tcp, deadline)
            .unwrap();
        let mut server = server.join().unwrap();
        for stream in [&mut server, &mut client] {
            stream.set_deadline(None);
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            stream
                .set_write_timeout(Some(Duration::from_secs(5)))
                .unwrap();
        }
        (server, client)
    }

    /// The session takes a write's bytes even when the socket takes only part of their records
    /// (a fan-out's member that reads slowly), so a flush that does not block must report the
    /// records held back, and send them once the socket has room: nothing stays behind.
    #[test]
    fn a_nonblocking_flush_sends_what_the_session_held_back() {
        let (mut server, mut client) = tls_pair();
        // The client reads nothing yet: write until a write takes nothing.
        let chunk = [7u8; 1000];
        let mut taken = 0;
        loop {
            match server.write_nonblocking(&chunk) {
                Ok(n) => taken += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
            assert!(taken < 256 << 20, "the socket never filled");
        }
        let held = server.flush_nonblocking().map_err(|e| e.kind());
        assert_eq!(held, Err(io::ErrorKind::WouldBlock), "{taken} bytes taken");
        let reader = std::thread::spawn(move || {
            let (mut got, mut buf) = (0, vec![0u8; 64 << 10]);
            while got < taken {
                match client.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            got
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.flush_nonblocking().is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(reader.join().unwrap(), taken, "bytes read of those taken");
    }
}
