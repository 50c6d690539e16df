//! What a server listens on: a TCP listener or, on Unix, a Unix domain socket (bound to a path,
//! with stale socket files handled, or handed over by the program); who a connection comes from
//! when it has no IP address.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
#[cfg(unix)]
use std::os::unix::net::UnixListener;
#[cfg(unix)]
use std::path::{Path, PathBuf};

use crate::io::Socket;

/// A listening socket for [`Server::from_listener`](super::Server::from_listener): TCP, or a
/// Unix domain socket on Unix. Both convert into it with `From`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A Unix domain socket listener.
    #[cfg(unix)]
    Unix(UnixListener),
}

impl From<TcpListener> for Listener {
    fn from(listener: TcpListener) -> Self {
        Listener::Tcp(listener)
    }
}

#[cfg(unix)]
impl From<UnixListener> for Listener {
    fn from(listener: UnixListener) -> Self {
        Listener::Unix(listener)
    }
}

impl Listener {
    /// Where the listener is bound.
    pub(super) fn bound(&self) -> io::Result<Bound> {
        match self {
            Listener::Tcp(tcp) => Ok(Bound::Tcp(tcp.local_addr()?)),
            #[cfg(unix)]
            Listener::Unix(unix) => Ok(Bound::Unix(unix.local_addr()?)),
        }
    }

    /// The next connection and who it comes from.
    pub(super) fn accept(&self) -> io::Result<(Socket, Peer)> {
        match self {
            Listener::Tcp(tcp) => {
                let (tcp, peer) = tcp.accept()?;
                Ok((Socket::from(tcp), Peer::Ip(peer)))
            }
            #[cfg(unix)]
            Listener::Unix(unix) => {
                let (unix, _) = unix.accept()?;
                Ok((Socket::from(unix), Peer::Unix))
            }
        }
    }
}

/// The address a server is bound to.
#[derive(Debug, Clone)]
pub(super) enum Bound {
    Tcp(SocketAddr),
    #[cfg(unix)]
    Unix(std::os::unix::net::SocketAddr),
}

impl Bound {
    /// The TCP address, or `0.0.0.0:0` for a Unix socket (which has none).
    pub(super) fn socket_addr(&self) -> SocketAddr {
        match self {
            Bound::Tcp(addr) => *addr,
            #[cfg(unix)]
            Bound::Unix(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    /// The path of a Unix socket bound to one.
    #[cfg(unix)]
    pub(super) fn path(&self) -> Option<&Path> {
        match self {
            Bound::Tcp(_) => None,
            Bound::Unix(addr) => addr.as_pathname(),
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Tcp(addr) => addr.fmt(f),
            #[cfg(unix)]
            Bound::Unix(addr) => match addr.as_pathname() {
                Some(path) => write!(f, "unix:{}", path.display()),
                None => write!(f, "unix:{addr:?}"),
            },
        }
    }
}

/// Who a connection comes from: an IP address and port, or a peer on a Unix socket, which has
/// no IP address (its file permissions decided whether it may connect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Peer {
    Ip(SocketAddr),
    #[cfg_attr(not(unix), allow(dead_code))]
    Unix,
}

impl Peer {
    pub(super) fn addr(self) -> Option<SocketAddr> {
        match self {
            Peer::Ip(addr) => Some(addr),
            Peer::Unix => None,
        }
    }

    pub(super) fn ip(self) -> Option<IpAddr> {
        self.addr().map(|a| a.ip())
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ip(addr) => addr.fmt(f),
            Peer::Unix => f.write_str("unix socket"),
        }
    }
}

/// Binds a Unix socket at `path`. A socket file left behind by a server that is gone (nobody
/// accepts on it: connecting is refused) is removed first; a live one fails with `AddrInUse`,
/// and a path that exists but is no socket is never touched (`AlreadyExists`).
#[cfg(unix)]
pub(super) fn bind_unix(path: &Path) -> io::Result<(UnixListener, SocketFile)> {
    use std::os::unix::fs::FileTypeExt;
    match UnixListener::bind(path) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            let meta = std::fs::symlink_metadata(path)?;
            if !meta.file_type().is_socket() {
                let why = format!("{} exists and is not a socket", path.display());
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, why));
            }
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => {
                    let why = format!("a server is listening on {}", path.display());
                    return Err(io::Error::new(io::ErrorKind::AddrInUse, why));
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    log::info!("removing stale socket file {}", path.display());
                    std::fs::remove_file(path)?;
                }
                Err(e) => return Err(e),
            }
            let listener = UnixListener::bind(path)?;
            Ok((listener, SocketFile::of(path)?))
        }
        Err(e) => Err(e),
        Ok(listener) => Ok((listener, SocketFile::of(path)?)),
    }
}

/// The socket file a server created, removed when the server stops unless something else has
/// replaced it meanwhile (compared by device and inode).
#[cfg(unix)]
#[derive(Debug)]
pub(super) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

#[cfg(unix)]
impl SocketFile {
    fn of(path: &Path) -> io::Result<SocketFile> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path)?;
        Ok(SocketFile {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    pub(super) fn remove(&self) {
        use std::os::unix::fs::MetadataExt;
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            log::warn!("cannot remove socket file {}: {e}", self.path.display());
        }
    }
}
