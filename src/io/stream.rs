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
/// TLS connection share it behind a lock. The reader waits for bytes *outside* the lock (a
/// `peek` on the socket, under its read timeout) and takes the lock only to decrypt what has
/// arrived, without blocking: a writer waits at most for one record's decryption, never for the
/// network.
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
            // an outer session already holds bytes for this one).
            if !outer_ready && tcp.peek(&mut [0u8])? == 0 {
                // End of stream: let the session tell a clean close from a truncation.
                return self.lock().read(buf);
            }
            let mut session = self.lock();
            tcp.set_nonblocking(true)?;
            let got = session.read(buf);
            tcp.set_nonblocking(false)?;
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
        const RECORD: usize = 16 << 10;
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        match bufs.iter().position(|b| !b.is_empty()) {
            None => Ok(0),
            Some(first) if bufs[first].len() >= RECORD || first + 1 == bufs.len() => {
                session.write(&bufs[first])
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
        if let Some(tls) = &self.tls {
            return tls.lock().write(buf);
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
        if let Some(tls) = &self.tls {
            return tls.lock().flush();
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
            let mut session = tls.lock();
            tls.tcp.set_nonblocking(true)?;
            let written = session.write(buf);
            let restored = tls.tcp.set_nonblocking(false);
            let n = written?;
            return restored.map(|()| n);
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
            let mut session = tls.lock();
            tls.tcp.set_nonblocking(true)?;
            let flushed = session.flush();
            let restored = tls.tcp.set_nonblocking(false);
            return flushed.and(restored);
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
        let reader = Stream {
            socket: self.socket.clone(),
            #[cfg(any(feature = "tls", feature = "rustls"))]
            tls: self.tls.as_ref().map(|t| TlsHandle {
                tcp: Arc::clone(&t.tcp),
                session: Arc::clone(&t.session),
                split_reader: true,
                gather: Vec::new(),
            }),
            read_timeout: self.read_timeout,
            write_timeout: self.write_timeout,
            deadline: self.deadline.clone(),
        };
        Ok((reader, self))
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
}

#[cfg(any(feature = "tls", feature = "rustls"))]
impl TcpRef {
    /// A view of `tcp` under `deadline`, straight on the socket.
    pub(crate) fn new(tcp: Arc<TcpStream>, deadline: PhaseDeadline) -> Self {
        TcpRef {
            tcp,
            deadline,
            outer: None,
        }
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
        (&*self.tcp).read(buf)
    }
}

#[cfg(any(feature = "tls", feature = "rustls"))]
impl Write for TcpRef {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(outer) = &mut self.outer {
            return outer.write(buf);
        }
        self.deadline.arm(&self.tcp, true)?;
        (&*self.tcp).write(buf)
    }

    /// rustls hands over every record it has ready at once: one system call, not one each.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        if let Some(outer) = &mut self.outer {
            return outer.write_vectored(bufs);
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
