//! The byte stream under a WebSocket: plain TCP, a Unix domain socket, or TLS over TCP through
//! either backend.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use crate::io::Deadline;
use crate::io::socket::Socket;
use std::time::{Duration, Instant};

/// What a connection needs from its byte stream beyond `Read + Write`: timeouts, a half-close and
/// the peer's address.
///
/// Implemented for [`TcpStream`], `UnixStream` (on Unix) and [`Stream`]; implement it for any
/// other stream (an in-memory pipe in tests) to run a [`WebSocket`](crate::WebSocket) over it. The defaults do
/// nothing, which suits streams without timeouts.
pub trait Transport: Read + Write {
    /// Sets how long a `read` may block; `None` blocks forever.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let _ = timeout;
        Ok(())
    }

    /// Sets how long a `write` may block; `None` blocks forever.
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let _ = timeout;
        Ok(())
    }

    /// Bounds every read and write from now on by `deadline` (`None` lifts it), for the phases
    /// that have one total deadline: the opening handshake, an HTTP exchange. The default does
    /// nothing, which suits streams whose `read` and `write` calls each come back within the
    /// socket timeouts the connection sets before every call; a stream that makes several
    /// socket calls per `read` (TLS reading a record) implements it so a peer that trickles
    /// bytes cannot stretch the phase.
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        let _ = deadline;
    }

    /// Appends bytes to `buf` until `limit` have arrived, the stream ends, or a read fails; bytes
    /// read before a failure stay in `buf`. Large payloads go straight into a message's buffer
    /// through this; TCP fills the vector's spare capacity without zeroing it first.
    fn read_to_vec(&mut self, buf: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
        Read::take(self, limit as u64).read_to_end(buf)
    }

    /// Closes the sending direction, so the peer reads end-of-stream.
    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Closes both directions; a thread blocked reading this stream (or a handle split from it)
    /// wakes up with end-of-stream.
    fn shutdown_both(&mut self) -> io::Result<()> {
        self.shutdown_write()
    }

    /// Switches reads and writes to non-blocking mode and back (for `try_recv`).
    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        let _ = nonblocking;
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Writes what the stream takes now, without blocking: `WouldBlock` when it takes nothing
    /// (a fan-out's flusher, which must never wait on one member). The default switches the
    /// stream to non-blocking for the one call. The mode belongs to the socket, which a split
    /// reader shares: a read that starts meanwhile returns `WouldBlock`, which the reader takes
    /// for a timeout not yet due and retries; a read already waiting is not affected (the
    /// kernel looks at the mode when a call starts).
    fn write_nonblocking(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.set_nonblocking(true)?;
        let written = self.write(buf);
        let restored = self.set_nonblocking(false);
        let n = written?;
        restored.map(|()| n)
    }

    /// Sends what the stream holds back (a TLS session's pending records) without blocking:
    /// `WouldBlock` while some is left.
    fn flush_nonblocking(&mut self) -> io::Result<()> {
        self.set_nonblocking(true)?;
        let flushed = self.flush();
        let restored = self.set_nonblocking(false);
        flushed.and(restored)
    }

    /// The address of the other end, if there is one.
    fn peer_addr(&self) -> Option<SocketAddr> {
        None
    }
}

impl Transport for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn shutdown_both(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Both)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        TcpStream::set_nonblocking(self, nonblocking)
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        TcpStream::peer_addr(self).ok()
    }
}

/// A stream that can be split into a handle for one reading thread and a handle for writing
/// threads, so a connection can receive and send at the same time.
pub trait Split: Transport + Sized {
    /// The handle the reader reads from.
    type ReadHalf: Transport + Send + 'static;
    /// The handle writers write to, one at a time behind a lock.
    type WriteHalf: Transport + Send + 'static;
    /// Splits the stream.
    fn split(self) -> io::Result<(Self::ReadHalf, Self::WriteHalf)>;

    /// A handle that shuts the connection down at once from any thread, without the lock the
    /// writers hold (a fan-out dropping a member whose socket is full). The default has none;
    /// such a stream's writer is then only marked closed.
    fn aborter(&self) -> Option<Aborter> {
        None
    }
}

/// Shuts a connection (TCP or Unix socket) down, both directions, from any thread: a blocked
/// reader or writer on it wakes with an error or end-of-stream.
#[derive(Debug, Clone)]
pub struct Aborter(Socket);

impl Aborter {
    /// A handle on `tcp` (the same socket, not a new connection).
    pub fn new(tcp: Arc<TcpStream>) -> Self {
        Aborter(Socket::Tcp(tcp))
    }

    /// A handle on `unix` (the same socket, not a new connection).
    #[cfg(unix)]
    pub fn unix(unix: Arc<UnixStream>) -> Self {
        Aborter(Socket::Unix(unix))
    }

    /// Shuts the connection down.
    pub fn abort(&self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

impl Split for TcpStream {
    type ReadHalf = TcpStream;
    type WriteHalf = TcpStream;

    /// Two handles on one socket: the kernel lets one thread read while another writes.
    fn split(self) -> io::Result<(TcpStream, TcpStream)> {
        Ok((self.try_clone()?, self))
    }

    fn aborter(&self) -> Option<Aborter> {
        Some(Aborter::new(Arc::new(self.try_clone().ok()?)))
    }
}

#[cfg(unix)]
impl Transport for UnixStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, timeout)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn shutdown_both(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Both)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        UnixStream::set_nonblocking(self, nonblocking)
    }
}

#[cfg(unix)]
impl Split for UnixStream {
    type ReadHalf = UnixStream;
    type WriteHalf = UnixStream;

    /// Two handles on one socket, as for TCP.
    fn split(self) -> io::Result<(UnixStream, UnixStream)> {
        Ok((self.try_clone()?, self))
    }

    fn aborter(&self) -> Option<Aborter> {
        Some(Aborter::unix(Arc::new(self.try_clone().ok()?)))
    }
}

/// Reads and discards until the peer's end-of-stream, an error, or `deadline`: the second half of
/// a lingering close, so that what we sent last is not destroyed by a reset that unread bytes
/// would cause.
pub(crate) fn drain_until<S: Transport + ?Sized>(stream: &mut S, deadline: Instant) {
    let mut sink = [0u8; 1024];
    loop {
        if Deadline::at(deadline).arm_read(stream).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

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
    fn get(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set(&self, deadline: Option<Instant>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = deadline;
    }

    /// Arms the socket's read or write timeout with the time left, if a deadline is set; past
    /// it, fails as an expired socket timeout does.
    #[cfg(any(feature = "tls", feature = "rustls"))]
    fn arm(&self, tcp: &TcpStream, write: bool) -> io::Result<()> {
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

#[cfg(any(feature = "tls", feature = "rustls"))]
#[derive(Debug)]
struct TlsHandle {
    /// The socket (TLS runs over TCP only), for the split reader's `peek`.
    tcp: Arc<TcpStream>,
    session: Arc<std::sync::Mutex<crate::tls::Tls>>,
    /// The reader of a split connection: waits outside the lock.
    split_reader: bool,
    /// Frame header and payload gathered into one TLS record (see `write_vectored`).
    gather: Vec<u8>,
    /// Once split: the records on their way to the socket, shared by both halves.
    wire: Option<Arc<Wire>>,
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
        stream.tls = Some(TlsHandle {
            tcp,
            session: Arc::new(std::sync::Mutex::new(session)),
            split_reader: false,
            gather: Vec::new(),
            wire: None,
        });
        stream
    }

    /// The socket, the TLS session and the deadline cell of a TLS stream that was not split,
    /// to run another session inside it.
    #[cfg(any(feature = "tls", feature = "rustls"))]
    pub(crate) fn into_tls(self) -> Option<(Arc<TcpStream>, crate::tls::Tls, PhaseDeadline)> {
        let tls = self.tls?;
        let session = Arc::try_unwrap(tls.session).ok()?;
        let session = session.into_inner().unwrap_or_else(|e| e.into_inner());
        Some((tls.tcp, session, self.deadline))
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

#[cfg(any(feature = "tls", feature = "rustls"))]
impl TlsHandle {
    fn lock(&self) -> std::sync::MutexGuard<'_, crate::tls::Tls> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let tcp = &*self.tcp;
        if !self.split_reader {
            return self.lock().read(buf);
        }
        loop {
            let outer_ready = {
                let mut session = self.lock();
                if session.read_ready() {
                    return session.read(buf);
                }
                session.socket_mut().outer_ready()
            };
            // Wait for the network without the lock, under this handle's read timeout (unless
            // an outer session already holds bytes for this one). The peek also tells how many
            // bytes have arrived: the session may read that many from the socket and no more,
            // so it never waits for the network while it holds the lock. (`buf` is overwritten
            // by the read anyway. Switching the socket to non-blocking instead would hit the
            // writer, which sends outside the lock.)
            let arrived = match outer_ready {
                true => 0,
                false => match tcp.peek(buf)? {
                    // End of stream: let the session tell a clean close from a truncation.
                    0 => return self.lock().read(buf),
                    n => n,
                },
            };
            let mut session = self.lock();
            session.socket_mut().on_socket().arrived = Some(arrived);
            let got = session.read(buf);
            session.socket_mut().on_socket().arrived = None;
            match got {
                // Only part of a record has arrived; the session keeps it. Wait for the rest.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }

    /// Writes a frame header and its payload as one TLS record (up to 16 KiB), not two: a
    /// record costs 22+ bytes and a system call of its own.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let n = match bufs.iter().position(|b| !b.is_empty()) {
            None => return Ok(0),
            Some(first) if bufs[first].len() >= RECORD || first + 1 == bufs.len() => {
                session.write(self.one_write(&bufs[first]))
            }
            Some(first) => {
                self.gather.clear();
                for b in &bufs[first..] {
                    let room = RECORD - self.gather.len();
                    self.gather.extend_from_slice(&b[..b.len().min(room)]);
                    if self.gather.len() == RECORD {
                        break;
                    }
                }
                session.write(&self.gather)
            }
        }?;
        drop(session);
        self.send_wire().map(|()| n)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.lock().write(self.one_write(buf))?;
        self.send_wire().map(|()| n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.lock().flush()?;
        self.send_wire()
    }

    /// The handle with its session's records going through a [`Wire`], for a split.
    fn with_wire(mut self) -> TlsHandle {
        let wire = Arc::new(Wire::new(Arc::clone(&self.tcp)));
        self.lock().socket_mut().on_socket().wire = Some(Arc::clone(&wire));
        self.wire = Some(wire);
        self
    }

    /// What of `buf` one session write takes: once split, a record's worth, so the queue on
    /// the way to the socket stays a record long; else all of it.
    fn one_write<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        match self.wire {
            Some(_) => &buf[..buf.len().min(RECORD)],
            None => buf,
        }
    }

    /// Once split: writes the records the last session call made, outside the session lock.
    fn send_wire(&self) -> io::Result<()> {
        match &self.wire {
            Some(wire) => wire.send(),
            None => Ok(()),
        }
    }

    /// Runs `f` on the session with the socket non-blocking, under the session's lock. The
    /// mode belongs to the socket, so a split reader reading under the lock never finds it
    /// switched; a peek that starts meanwhile comes back with `WouldBlock`, which the reader
    /// takes for a timeout not yet due. (The writer's own blocking sends are its own calls,
    /// never at the same time as this one.)
    fn nonblocking<T>(
        &self,
        f: impl FnOnce(&mut crate::tls::Tls) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut session = self.lock();
        self.tcp.set_nonblocking(true)?;
        let done = f(&mut session);
        let restored = self.tcp.set_nonblocking(false);
        let done = done?;
        restored.map(|()| done)
    }
}

/// The largest TLS record's payload.
#[cfg(any(feature = "tls", feature = "rustls"))]
const RECORD: usize = 16 << 10;

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
            let _ = tls.lock().shutdown();
            let _ = tls.send_wire();
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
            return tls.nonblocking(|session| {
                let Some(wire) = &tls.wire else {
                    return session.write(buf);
                };
                // Records from before go first; while any wait, nothing new is taken.
                wire.send()?;
                let n = session.write(tls.one_write(buf))?;
                match wire.send() {
                    // Taken: the rest of its records wait in the queue for the next call.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
                    other => other.map(|()| n),
                }
            });
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
            return tls.nonblocking(|session| {
                session.flush()?;
                match &tls.wire {
                    Some(wire) => wire.send(),
                    None => Ok(()),
                }
            });
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

    /// Two handles on the one socket. Over plain TCP or a Unix socket the kernel lets one thread read while
    /// another writes; over TLS the handles share the session (see [`Stream`]).
    fn split(self) -> io::Result<(Stream, Stream)> {
        #[cfg(any(feature = "tls", feature = "rustls"))]
        let writer = Stream {
            tls: self.tls.map(TlsHandle::with_wire),
            ..self
        };
        #[cfg(not(any(feature = "tls", feature = "rustls")))]
        let writer = self;
        let reader = Stream {
            socket: writer.socket.clone(),
            #[cfg(any(feature = "tls", feature = "rustls"))]
            tls: writer.tls.as_ref().map(|t| TlsHandle {
                tcp: Arc::clone(&t.tcp),
                session: Arc::clone(&t.session),
                split_reader: true,
                gather: Vec::new(),
                wire: t.wire.clone(),
            }),
            read_timeout: writer.read_timeout,
            write_timeout: writer.write_timeout,
            deadline: writer.deadline.clone(),
        };
        Ok((reader, writer))
    }

    fn aborter(&self) -> Option<Aborter> {
        Some(Aborter(self.socket.clone()))
    }
}

/// A shared TCP socket as a byte stream for the TLS session, under the phase deadline of the
/// [`Stream`] it belongs to.
///
/// With `outer` set, the session runs inside another TLS session over the socket (TLS to a
/// `wss://` server inside TLS to an `https://` proxy): its bytes go through `outer`, which
/// reads and writes the socket under the same deadline.
#[cfg(any(feature = "tls", feature = "rustls"))]
#[derive(Debug)]
pub(crate) struct TcpRef {
    pub(crate) tcp: Arc<TcpStream>,
    pub(crate) deadline: PhaseDeadline,
    pub(crate) outer: Option<Box<crate::tls::Tls>>,
    /// Once the connection is split: where the session's records go instead of the socket
    /// (see [`Wire`]).
    wire: Option<Arc<Wire>>,
    /// While the split reader has the session read: the bytes known to have arrived, which the
    /// socket gives without waiting. Past them a read reports `WouldBlock`, and the session
    /// keeps the part of a record it has.
    arrived: Option<usize>,
}

#[cfg(any(feature = "tls", feature = "rustls"))]
impl TcpRef {
    /// A view of `tcp` under `deadline`, straight on the socket.
    pub(crate) fn new(tcp: Arc<TcpStream>, deadline: PhaseDeadline) -> Self {
        TcpRef {
            tcp,
            deadline,
            outer: None,
            wire: None,
            arrived: None,
        }
    }

    /// The view that writes to the socket itself: this one, or the outer session's.
    fn on_socket(&mut self) -> &mut TcpRef {
        if self.outer.is_none() {
            return self;
        }
        let outer = self.outer.as_deref_mut().expect("checked above");
        outer.socket_mut().on_socket()
    }

    /// Whether the outer session holds decrypted bytes not read yet, which no socket `peek`
    /// would announce.
    pub(crate) fn outer_ready(&mut self) -> bool {
        self.outer.as_mut().is_some_and(|o| o.read_ready())
    }
}

#[cfg(any(feature = "tls", feature = "rustls"))]
impl Read for TcpRef {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(outer) = &mut self.outer {
            return outer.read(buf);
        }
        self.deadline.arm(&self.tcp, false)?;
        let Some(arrived) = &mut self.arrived else {
            return (&*self.tcp).read(buf);
        };
        if *arrived == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(*arrived);
        let n = (&*self.tcp).read(&mut buf[..n])?;
        *arrived -= n;
        Ok(n)
    }
}

#[cfg(any(feature = "tls", feature = "rustls"))]
impl Write for TcpRef {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(outer) = &mut self.outer {
            return outer.write(buf);
        }
        if let Some(wire) = &self.wire {
            wire.push(&[io::IoSlice::new(buf)]);
            return Ok(buf.len());
        }
        self.deadline.arm(&self.tcp, true)?;
        (&*self.tcp).write(buf)
    }

    /// rustls hands over every record it has ready at once: one system call, not one each.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        if let Some(outer) = &mut self.outer {
            return outer.write_vectored(bufs);
        }
        if let Some(wire) = &self.wire {
            return Ok(wire.push(bufs));
        }
        self.deadline.arm(&self.tcp, true)?;
        (&*self.tcp).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.outer {
            Some(outer) => outer.flush(),
            None => Ok(()),
        }
    }
}

/// The records of a split TLS connection on their way to the socket.
///
/// A session must be used by one thread at a time, so the halves share it behind a lock; if the
/// writer held that lock while the socket made it wait, the reader could not decrypt what
/// arrives meanwhile, and against a peer that stops reading while its own writes are not read
/// (an echo) neither side would move until a write timeout. So once a connection is split, the
/// session's socket view only queues the records the session makes, under the session lock,
/// and they are written to the socket after the lock is let go. The queue holds at most a
/// record or so: a writer hands the session one record's worth at a time and sends it before
/// the next.
#[cfg(any(feature = "tls", feature = "rustls"))]
///
/// A split connection is past the phases with a total deadline (handshake, HTTP), so the
/// socket's write timeout alone bounds these writes.
#[derive(Debug)]
struct Wire {
    tcp: Arc<TcpStream>,
    /// Records the session made, not yet taken by a sender. Held only to move bytes, never
    /// while writing: the session (under its lock) appends here.
    queued: Mutex<Vec<u8>>,
    /// The records being written and how far they got; held by the one thread writing.
    sending: Mutex<(Vec<u8>, usize)>,
}

#[cfg(any(feature = "tls", feature = "rustls"))]
impl Wire {
    fn new(tcp: Arc<TcpStream>) -> Self {
        Wire {
            tcp,
            queued: Mutex::default(),
            sending: Mutex::default(),
        }
    }

    /// Queues the bytes of `bufs`; returns how many.
    fn push(&self, bufs: &[io::IoSlice<'_>]) -> usize {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        bufs.iter()
            .map(|b| {
                queued.extend_from_slice(b);
                b.len()
            })
            .sum()
    }

    /// Writes every queued record to the socket, waiting as the socket's mode and write
    /// timeout say; records the reader's session calls queued meanwhile (an alert, a key
    /// update) go too. What the socket did not take (a timeout, a full non-blocking socket)
    /// stays, in order, for the next call. Only the writer's handle sends, one call at a time.
    fn send(&self) -> io::Result<()> {
        self.send_to(&mut &*self.tcp)
    }

    /// `send`'s loop, writing to `out` (the socket, or a test's writer).
    fn send_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut sending = self.sending.lock().unwrap_or_else(|e| e.into_inner());
        let (buf, at) = &mut *sending;
        loop {
            if *at == buf.len() {
                // The buffer written goes, so an idle connection keeps no record's worth of
                // memory (a hub may hold thousands).
                *at = 0;
                *buf = std::mem::take(&mut *self.queued.lock().unwrap_or_else(|e| e.into_inner()));
                if buf.is_empty() {
                    return Ok(());
                }
            }
            match out.write(&buf[*at..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => *at += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A stream that answers each read from a script and counts the reads.
    struct Scripted {
        reads: VecDeque<io::Result<usize>>,
        calls: usize,
    }

    impl Scripted {
        fn new(reads: impl IntoIterator<Item = io::Result<usize>>) -> Self {
            Scripted {
                reads: reads.into_iter().collect(),
                calls: 0,
            }
        }
    }

    impl Read for Scripted {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            self.reads.pop_front().unwrap_or(Ok(0))
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Transport for Scripted {}

    #[test]
    fn a_drain_reads_on_past_an_interruption_and_stops_at_the_end_or_an_error() {
        let soon = Instant::now() + Duration::from_secs(5);
        let interrupted = || Err(io::ErrorKind::Interrupted.into());
        let reset = || Err(io::ErrorKind::ConnectionReset.into());
        // (script, reads made): a signal is no end, end-of-stream and a failure are.
        let cases: [(Vec<io::Result<usize>>, usize); 4] = [
            (vec![Ok(0), Ok(5)], 1),
            (vec![Ok(5), interrupted(), Ok(5), Ok(0), Ok(5)], 4),
            (vec![Ok(5), reset(), Ok(5)], 2),
            (vec![interrupted(), reset(), Ok(5)], 2),
        ];
        for (i, (script, reads)) in cases.into_iter().enumerate() {
            let mut stream = Scripted::new(script);
            drain_until(&mut stream, soon);
            assert_eq!(stream.calls, reads, "case {i}");
        }
        assert!(Instant::now() < soon, "no case waited for the deadline");
        // Past the deadline nothing is read.
        let mut stream = Scripted::new([Ok(5)]);
        drain_until(&mut stream, Instant::now());
        assert_eq!(stream.calls, 0);
    }

    /// A writer that fails once with `Interrupted`, then takes `step` bytes a call until it
    /// has `room` bytes, then reports `WouldBlock`.
    #[cfg(any(feature = "tls", feature = "rustls"))]
    struct Choppy {
        got: Vec<u8>,
        interrupted: bool,
        step: usize,
        room: usize,
    }

    #[cfg(any(feature = "tls", feature = "rustls"))]
    impl Write for Choppy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if !self.interrupted {
                self.interrupted = true;
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf
                .len()
                .min(self.step)
                .min(self.room.saturating_sub(self.got.len()));
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The wire's sender retries a signal, keeps what a full socket did not take, and sends it
    /// first, in order, next time; a push reports every byte it queued.
    #[cfg(any(feature = "tls", feature = "rustls"))]
    #[test]
    fn the_wire_keeps_what_the_socket_did_not_take_for_the_next_send() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let wire = Wire::new(Arc::new(tcp));
        let data: Vec<u8> = (0..100u8).collect();
        let slices = [io::IoSlice::new(&data[..30]), io::IoSlice::new(&data[30..])];
        assert_eq!(wire.push(&slices), 100);
        let mut out = Choppy {
            got: Vec::new(),
            interrupted: false,
            step: 7,
            room: 60,
        };
        let full = wire.send_to(&mut out).map_err(|e| e.kind());
        assert_eq!(full, Err(io::ErrorKind::WouldBlock));
        assert_eq!(out.got, data[..60]);
        // More queued meanwhile goes after the rest of the first.
        assert_eq!(wire.push(&[io::IoSlice::new(b"more")]), 4);
        out.room = usize::MAX;
        wire.send_to(&mut out).unwrap();
        assert_eq!(out.got, [&data[..], b"more"].concat());
        // Nothing left: a send writes nothing.
        out.room = 0;
        wire.send_to(&mut out).unwrap();
    }

    /// A rustls server and client over loopback on the test certificate, handshake done.
    #[cfg(feature = "rustls")]
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
    #[cfg(feature = "rustls")]
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
