//! The TLS side of a [`Stream`]: the handle on its session (shared by the halves of a split
//! connection), the socket view the session reads and writes through, and, once split, the
//! queue of records the writer sends outside the session's lock.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};

use super::stream::PhaseDeadline;
#[cfg(doc)]
use super::{Stream, Transport};
use crate::tls::Tls;

/// A [`Stream`]'s TLS session, as one handle (the stream not split) or one of the two of a
/// split connection, which share the session behind a lock (see [`Stream`] for why neither
/// half waits for the network while it holds it).
#[derive(Debug)]
pub(super) struct TlsHandle {
    /// The socket (TLS runs over TCP only), for the split reader's `peek`.
    tcp: Arc<TcpStream>,
    session: Arc<Mutex<Tls>>,
    /// The reader of a split connection: waits outside the lock.
    split_reader: bool,
    /// Frame header and payload gathered into one TLS record (see `write_vectored`).
    gather: Vec<u8>,
    /// Once split: the records on their way to the socket, shared by both halves.
    wire: Option<Arc<Wire>>,
}

impl TlsHandle {
    /// The handle on `session`, which runs over `tcp`.
    pub(super) fn new(tcp: Arc<TcpStream>, session: Tls) -> Self {
        TlsHandle {
            tcp,
            session: Arc::new(Mutex::new(session)),
            split_reader: false,
            gather: Vec::new(),
            wire: None,
        }
    }

    /// The socket and the session back, unless the stream was split (then another handle
    /// shares the session).
    pub(super) fn into_parts(self) -> Option<(Arc<TcpStream>, Tls)> {
        let session = Arc::try_unwrap(self.session).ok()?;
        Some((
            self.tcp,
            session.into_inner().unwrap_or_else(|e| e.into_inner()),
        ))
    }

    /// Splits: this handle becomes the writer's, its session's records going through a
    /// [`Wire`], and the reader's handle is returned beside it.
    pub(super) fn split(mut self) -> (TlsHandle, TlsHandle) {
        let wire = Arc::new(Wire::new(Arc::clone(&self.tcp)));
        self.lock().socket_mut().on_socket().wire = Some(Arc::clone(&wire));
        let reader = TlsHandle {
            tcp: Arc::clone(&self.tcp),
            session: Arc::clone(&self.session),
            split_reader: true,
            gather: Vec::new(),
            wire: Some(Arc::clone(&wire)),
        };
        self.wire = Some(wire);
        (reader, self)
    }

    fn lock(&self) -> MutexGuard<'_, Tls> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
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
    pub(super) fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
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

    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.lock().write(self.one_write(buf))?;
        self.send_wire().map(|()| n)
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.lock().flush()?;
        self.send_wire()
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
    fn nonblocking<T>(&self, f: impl FnOnce(&mut Tls) -> io::Result<T>) -> io::Result<T> {
        let mut session = self.lock();
        self.tcp.set_nonblocking(true)?;
        let done = f(&mut session);
        let restored = self.tcp.set_nonblocking(false);
        let done = done?;
        restored.map(|()| done)
    }

    /// Writes what the session takes of `buf` now, without blocking (see
    /// [`Transport::write_nonblocking`]).
    pub(super) fn write_nonblocking(&self, buf: &[u8]) -> io::Result<usize> {
        self.nonblocking(|session| {
            let Some(wire) = &self.wire else {
                return session.write(buf);
            };
            // Records from before go first; while any wait, nothing new is taken.
            wire.send()?;
            let n = session.write(self.one_write(buf))?;
            match wire.send() {
                // Taken: the rest of its records wait in the queue for the next call.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
                other => other.map(|()| n),
            }
        })
    }

    /// Sends the records the session holds back, without blocking (see
    /// [`Transport::flush_nonblocking`]).
    pub(super) fn flush_nonblocking(&self) -> io::Result<()> {
        self.nonblocking(|session| {
            session.flush()?;
            self.send_wire()
        })
    }

    /// Says goodbye (close_notify), so the peer can tell the end from a cut.
    pub(super) fn shutdown(&self) {
        let _ = self.lock().shutdown();
        let _ = self.send_wire();
    }
}

/// The largest TLS record's payload.
const RECORD: usize = 16 << 10;

/// A shared TCP socket as a byte stream for the TLS session, under the phase deadline of the
/// [`Stream`] it belongs to.
///
/// With `outer` set, the session runs inside another TLS session over the socket (TLS to a
/// `wss://` server inside TLS to an `https://` proxy): its bytes go through `outer`, which
/// reads and writes the socket under the same deadline.
#[derive(Debug)]
pub(crate) struct TcpRef {
    pub(crate) tcp: Arc<TcpStream>,
    pub(crate) deadline: PhaseDeadline,
    pub(crate) outer: Option<Box<Tls>>,
    /// Once the connection is split: where the session's records go instead of the socket
    /// (see [`Wire`]).
    wire: Option<Arc<Wire>>,
    /// While the split reader has the session read: the bytes known to have arrived, which the
    /// socket gives without waiting. Past them a read reports `WouldBlock`, and the session
    /// keeps the part of a record it has.
    arrived: Option<usize>,
}

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

    /// A writer that fails once with `Interrupted`, then takes `step` bytes a call until it
    /// has `room` bytes, then reports `WouldBlock`.
    struct Choppy {
        got: Vec<u8>,
        interrupted: bool,
        step: usize,
        room: usize,
    }

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
}
