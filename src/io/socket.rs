//! The socket under a [`Stream`](super::Stream): a TCP connection or, on Unix, a Unix domain
//! socket connection, shared (not duplicated) by the handles that read, write and shut it down.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

/// One connected socket, cheap to clone (the clones are the same socket).
#[derive(Debug, Clone)]
pub(crate) enum Socket {
    Tcp(Arc<TcpStream>),
    #[cfg(unix)]
    Unix(Arc<UnixStream>),
}

/// Runs `$body` with `$s` bound to the socket of either kind (both have the same methods).
macro_rules! either {
    ($socket:expr, $s:ident => $body:expr) => {
        match $socket {
            Socket::Tcp($s) => $body,
            #[cfg(unix)]
            Socket::Unix($s) => $body,
        }
    };
}

impl Socket {
    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        either!(self, s => s.set_read_timeout(timeout))
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        either!(self, s => s.set_write_timeout(timeout))
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        either!(self, s => s.set_nonblocking(nonblocking))
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        either!(self, s => s.shutdown(how))
    }

    /// TCP_NODELAY (frames reach the peer without waiting for more); Unix sockets do not delay.
    pub(crate) fn set_nodelay(&self) -> io::Result<()> {
        match self {
            Socket::Tcp(tcp) => tcp.set_nodelay(true),
            #[cfg(unix)]
            Socket::Unix(_) => Ok(()),
        }
    }

    /// The peer's IP address and port; none for a Unix socket peer.
    pub(crate) fn peer_addr(&self) -> Option<SocketAddr> {
        match self {
            Socket::Tcp(tcp) => tcp.peer_addr().ok(),
            #[cfg(unix)]
            Socket::Unix(_) => None,
        }
    }

    /// The TCP socket, if this is one.
    pub(crate) fn as_tcp(&self) -> Option<&Arc<TcpStream>> {
        match self {
            Socket::Tcp(tcp) => Some(tcp),
            #[cfg(unix)]
            Socket::Unix(_) => None,
        }
    }

    /// Appends up to `limit` bytes to `buf` (see `Transport::read_to_vec`), through the socket
    /// type's own `read_to_end`, which fills spare capacity without zeroing it first.
    pub(crate) fn read_to_vec(&self, buf: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
        either!(self, s => Read::take(&**s, limit as u64).read_to_end(buf))
    }
}

impl From<TcpStream> for Socket {
    fn from(tcp: TcpStream) -> Self {
        Socket::Tcp(Arc::new(tcp))
    }
}

#[cfg(unix)]
impl From<UnixStream> for Socket {
    fn from(unix: UnixStream) -> Self {
        Socket::Unix(Arc::new(unix))
    }
}

impl Read for &Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        either!(*self, s => (&**s).read(buf))
    }
}

impl Write for &Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        either!(*self, s => (&**s).write(buf))
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        either!(*self, s => (&**s).write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
