//! What a connection needs of its byte stream (`Transport`), how a stream splits into a reading
//! and a writing handle (`Split`), their implementations for the standard sockets, and the
//! lingering close's drain.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::io::Deadline;
use crate::io::socket::Socket;

/// What a connection needs from its byte stream beyond `Read + Write`: timeouts, a half-close and
/// the peer's address.
///
/// Implemented for [`TcpStream`], `UnixStream` (on Unix) and [`Stream`](crate::Stream);
/// implement it for any other stream (an in-memory pipe in tests) to run a
/// [`WebSocket`](crate::WebSocket) over it. The defaults do nothing, which suits streams
/// without timeouts.
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
pub struct Aborter(pub(super) Socket);

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
}
