//! Full duplex: a [`Reader`] for one thread and a cloneable [`Writer`] for any number of others.
//!
//! ```text
//!   Reader (one thread)                    Writer (Clone + Send, many threads)
//!   +---------------------------+          +-----------------------------------+
//!   | read half of the stream   |          | Arc<Shared>                       |
//!   | Receiver + Conn rules     |--pongs-->|   Mutex<write half + Sender>      |
//!   | holds a Writer for pongs  |  close   |   close_sent, closed flags        |
//!   | and close replies         |          |   Condvar: "closed" for close()   |
//!   +---------------------------+          +-----------------------------------+
//! ```
//!
//! Every frame, automatic pongs and close replies included, is written whole under the one
//! lock, so frames never interleave. Beside it, a message slot keeps messages whole: a sender
//! takes it for a whole message (`send`, `send_fragmented`, or a streamed message from
//! `send_stream` until it is finished or dropped) and takes the frame lock for each frame, so
//! control frames still go out between a streamed message's fragments (RFC 6455 5.4) while
//! other messages, and a hub's frames for this member, wait for its end.
//!
//! ```text
//!   send / send_stream:   slot ----------------------------------------> release
//!                           frame lock [frame] ... frame lock [frame]
//!   ping, pong, close,            frame lock [control frame]
//!   the reader's replies:   (never wait for the slot)
//! ```
//!
//! Lock order: the slot's mutex is never held while waiting for the frame lock (it is only
//! held to flip its flag); the frame lock may be held while the slot's mutex is taken briefly
//! (a failed write wakes the waiters). Whoever ends the connection sets `closed`: writers then
//! fail with [`Error::Closed`] and the reader ends. When the last half is dropped, an open
//! connection says goodbye with 1001.
//!
//! Over plain TCP the two halves are two handles on one socket, so a blocked reader never
//! delays a writer. A TLS stream cannot be read and written at once; its halves share the
//! stream behind a lock that the reader takes only once bytes are waiting (see `io::Split`).

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::conn::{Conn, Link, SentPing};
use super::outbox::{Encoding, Flushed, Offer, Outbox, Outlet, Prepared};
use super::send_stream::{MessageWriter, StreamSink};
use super::sender::Sender;
use super::stream::MessageReader;
use super::{State, fragment_opcodes};
use crate::error::{Error, Result};
use crate::io::{Split, Transport};
use crate::message::{CloseCode, CloseFrame, Message, MessageKind, ToMessage};
use crate::proto::close;
use crate::proto::frame::OpCode;

/// The receiving half of a split [`WebSocket`](crate::WebSocket).
///
/// It answers pings and close frames through the connection's writer, enforces the heartbeat
/// and deadlines, and ends (`recv` returns `Ok(None)` or an error) when the connection closes,
/// whichever half closed it.
pub struct Reader<S: Split = crate::io::Stream> {
    conn: Conn<ReadEnd<S>>,
}

/// The sending half of a split [`WebSocket`](crate::WebSocket): clone it for every thread that
/// sends. Sends fail with [`Error::Closed`] once the connection is closed.
pub struct Writer<S: Split = crate::io::Stream> {
    shared: Arc<Shared<S::WriteHalf>>,
}

impl<S: Split> Clone for Writer<S> {
    fn clone(&self) -> Self {
        Writer {
            shared: Arc::clone(&self.shared),
        }
    }
}

// In declared order (`repr(C)`): what every publish to this member touches comes first, beside
// the reference counts, so a publish to a room of thousands reads one or two cache lines per
// member instead of fields strewn across the struct.
#[repr(C)]
struct Shared<W: Transport> {
    /// `closed` for readers that do not wait for it to change (every send, every publish to
    /// this member): one load instead of a lock. Set before `closed`, never cleared.
    closed_now: AtomicBool,
    /// Which of a publish's encodings this connection takes (fixed by the negotiation).
    encoding: Encoding,
    /// Frames a hub queued for this connection, written before the next message of its own.
    outbox: Mutex<Outbox>,
    out: Mutex<Out<W>>,
    /// The message slot (see the module doc).
    slot: Mutex<Slot>,
    /// Signalled when the slot is given back, a close frame goes out, or the connection closes,
    /// if anyone waits for it.
    slot_free: Condvar,
    close_sent: AtomicBool,
    closed: Mutex<bool>,
    closed_changed: Condvar,
    reader_alive: AtomicBool,
    /// The last ping written, for the reader to time its pong.
    last_ping: Mutex<Option<SentPing>>,
    /// The reader saw the peer's close frame or the end of its stream: a waiting
    /// [`Writer::close`] completed rather than timed out.
    answered: AtomicBool,
    /// The peer's close frame when the peer started the closing handshake, for the split
    /// socket's owner (a reconnecting client decides by it after the reader is gone).
    peer_started_close: Mutex<Option<CloseFrame>>,
    close_timeout: Duration,
    id: u64,
    role: super::Role,
    /// Shuts the connection down at once without the write lock (for a hub dropping a member
    /// whose socket is full); `None` for streams that have no such handle.
    aborter: Option<crate::io::Aborter>,
    /// Run once when the connection closes or its last half is dropped (a hub forgetting it).
    on_closed: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

struct Out<W> {
    stream: W,
    sender: Sender,
    /// A message's first frames went out and its final frame did not: only control frames may
    /// come next (and no queued frame of a hub).
    mid_message: bool,
}

pub(crate) struct ReadEnd<S: Split> {
    stream: S::ReadHalf,
    writer: Writer<S>,
}

/// Builds the two halves from the parts of a whole connection.
pub(crate) fn split<S: Split, L: Link>(
    conn: Conn<L>,
    stream: S,
    sender: Sender,
    close_sent: bool,
) -> Result<(Reader<S>, Writer<S>)> {
    let aborter = stream.aborter();
    let encoding = sender.encoding();
    let (read_half, write_half) = stream.split()?;
    let shared = Arc::new(Shared {
        out: Mutex::new(Out {
            stream: write_half,
            sender,
            mid_message: false,
        }),
        slot: Mutex::new(Slot::default()),
        slot_free: Condvar::new(),
        close_sent: AtomicBool::new(close_sent),
        closed: Mutex::new(conn.state == State::Closed),
        closed_now: AtomicBool::new(conn.state == State::Closed),
        closed_changed: Condvar::new(),
        reader_alive: AtomicBool::new(true),
        last_ping: Mutex::new(None),
        answered: AtomicBool::new(false),
        peer_started_close: Mutex::new(None),
        close_timeout: conn.config.close_timeout,
        id: conn.info.id,
        role: conn.role,
        outbox: Mutex::new(Outbox::default()),
        encoding,
        aborter,
        on_closed: Mutex::new(Vec::new()),
    });
    let writer = Writer { shared };
    let link = ReadEnd {
        stream: read_half,
        writer: writer.clone(),
    };
    Ok((
        Reader {
            conn: conn.relink(link),
        },
        writer,
    ))
}

impl<W: Transport> Shared<W> {
    fn lock(&self) -> MutexGuard<'_, Out<W>> {
        // A panic while writing leaves nothing half-updated that matters here.
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_closed(&self) -> bool {
        self.closed_now.load(Ordering::SeqCst)
    }

    fn set_closed(&self) {
        self.closed_now.store(true, Ordering::SeqCst);
        *self.closed.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.closed_changed.notify_all();
        self.wake_slot_waiters();
        self.run_on_closed();
    }

    /// Waits for the message slot and takes it; [`Error::Closed`] once a close frame went out or
    /// the connection closed (also while waiting). Time spent waiting is not the write
    /// timeout's: that bounds each frame once it is being written.
    fn take_slot(&self) -> Result<SlotGuard<'_, W>> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.is_closed() || self.close_sent.load(Ordering::SeqCst) {
                return Err(Error::Closed);
            }
            if !slot.busy {
                slot.busy = true;
                return Ok(SlotGuard { shared: self });
            }
            slot.waiting += 1;
            slot = self.slot_free.wait(slot).unwrap_or_else(|e| e.into_inner());
            slot.waiting -= 1;
        }
    }

    /// Wakes the senders waiting for the slot (to take it, or to see a close). The count is
    /// read under the slot's mutex, which a waiter holds from its check until its wait, so no
    /// waiter is missed; with none, no wake-up is paid for (a system call per message).
    fn wake_slot_waiters(&self) {
        let waiting = self.slot.lock().unwrap_or_else(|e| e.into_inner()).waiting;
        if waiting > 0 {
            self.slot_free.notify_all();
        }
    }

    fn run_on_closed(&self) {
        let hooks = std::mem::take(&mut *self.on_closed.lock().unwrap_or_else(|e| e.into_inner()));
        self.outbox().clear();
        for hook in hooks {
            hook();
        }
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes what others queued, under the write lock and within the write timeout: all of it
    /// before a message or a close of our own (so order holds), only a frame under way before a
    /// control frame (which may come between messages, never inside a frame). The outbox lock
    /// is not held while writing, so publishers never wait on this socket; only writers, which
    /// hold the write lock, take frames off it.
    fn drain_outbox(&self, out: &mut Out<W>, all: bool) -> io::Result<()> {
        loop {
            if all {
                self.compress_front(&mut out.sender)?;
            }
            let (frame, written) = match self.outbox().front_for(all) {
                Some(front) => front,
                None => return Ok(()),
            };
            let Out { stream, sender, .. } = out;
            sender.write_prepared(stream, &frame[written..])?;
            self.outbox().advance(frame.len() - written);
        }
    }

    /// Compresses the front frame with the connection's own context if it is still to be
    /// ([`Encoding::Own`]); under the write lock, since only the writer may touch that context,
    /// and in queue order, since each message refers back to the ones before it.
    fn compress_front(&self, sender: &mut Sender) -> io::Result<()> {
        let Some(plain) = self.outbox().to_compress() else {
            return Ok(());
        };
        let frame = sender.compress_prepared(&plain)?.unwrap_or(plain);
        self.outbox().compressed(frame);
        Ok(())
    }

    /// Writes one frame under the lock. A failed write may have cut a frame in half, so it ends
    /// the connection for everyone and wakes the reader.
    fn write_frame(&self, opcode: OpCode, fin: bool, payload: &[u8], compress: bool) -> Result<()> {
        let mut out = self.lock();
        self.write_locked(&mut out, opcode, fin, payload, compress)
    }

    /// Writes one frame of a message under the lock, noting whether the message is now under
    /// way (its final frame not yet out).
    fn write_message_frame(
        &self,
        out: &mut Out<W>,
        op: OpCode,
        fin: bool,
        payload: &[u8],
        compress: bool,
    ) -> Result<()> {
        out.mid_message = !fin;
        self.write_locked(out, op, fin, payload, compress)
    }

    /// Sends our close frame with 1011 unless a close already went out: a message under way
    /// was given up (RFC 6455 has no other way to end it). Does not wait for the answer.
    fn abandon_message(&self) {
        if self.close_sent.swap(true, Ordering::SeqCst) {
            return;
        }
        log::debug!("ws#{} message given up unfinished", self.id);
        self.wake_slot_waiters();
        let payload = close::encode(Some(CloseCode::INTERNAL_ERROR), "message abandoned");
        let _ = self.write_frame(OpCode::Close, true, payload.as_bytes(), false);
    }

    fn write_locked(
        &self,
        out: &mut Out<W>,
        op: OpCode,
        fin: bool,
        payload: &[u8],
        compress: bool,
    ) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        // A close frame may come between a message's fragments (RFC 6455 5.4); queued
        // messages may not, so they wait (and are dropped with the connection).
        let all = match op {
            OpCode::Text | OpCode::Binary => true,
            OpCode::Close => !out.mid_message,
            _ => false,
        };
        let written = self.drain_outbox(out, all).and_then(|()| {
            let Out { stream, sender, .. } = out;
            sender.write_data(stream, op, fin, payload, compress)
        });
        written.map_err(|e| {
            log::debug!("ws#{} write failed: {e}", self.id);
            let _ = out.stream.shutdown_both();
            self.set_closed();
            Error::Io(e)
        })?;
        if op == OpCode::Ping {
            *self.last_ping.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(SentPing::now(payload));
        }
        Ok(())
    }
}

/// The message slot's state, under its mutex.
#[derive(Default)]
struct Slot {
    /// A message is being sent.
    busy: bool,
    /// Senders waiting on `slot_free` for the slot.
    waiting: usize,
}

/// The message slot, held: given back when dropped. A streamed message sends through it.
struct SlotGuard<'a, W: Transport> {
    shared: &'a Shared<W>,
}

impl<W: Transport> Drop for SlotGuard<'_, W> {
    fn drop(&mut self) {
        self.shared
            .slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .busy = false;
        self.shared.wake_slot_waiters();
    }
}

impl<W: Transport> StreamSink for SlotGuard<'_, W> {
    fn check_open(&self) -> Result<()> {
        let shared = self.shared;
        if shared.is_closed() || shared.close_sent.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn fragment(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) -> Result<()> {
        let shared = self.shared;
        let mut out = shared.lock();
        // RFC 6455 5.5.1: no data frames after a close frame, which may have gone out between
        // two fragments.
        if shared.close_sent.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        shared.write_message_frame(&mut out, opcode, fin, payload, true)
    }

    fn abandon(&mut self) {
        self.shared.abandon_message();
    }
}

impl<W: Transport> Drop for Shared<W> {
    /// The last half is gone: an open connection says goodbye with 1001, then TCP is shut down.
    fn drop(&mut self) {
        let out = self.out.get_mut().unwrap_or_else(|e| e.into_inner());
        let closed = *self.closed.get_mut().unwrap_or_else(|e| e.into_inner());
        if !closed && !*self.close_sent.get_mut() {
            let payload = close::encode(Some(CloseCode::GOING_AWAY), "");
            out.sender.set_write_timeout(Some(self.close_timeout));
            // A queued frame under way is finished first, or the close frame would land inside
            // it; the rest of the queue is dropped.
            let q = self.outbox.get_mut().unwrap_or_else(|e| e.into_inner());
            if let Some((frame, written)) = q.front_for(false) {
                let _ = out
                    .sender
                    .write_prepared(&mut out.stream, &frame[written..]);
            }
            let _ =
                out.sender
                    .write_frame(&mut out.stream, OpCode::Close, true, payload.as_bytes());
        }
        let _ = out.stream.shutdown_both();
        self.run_on_closed();
    }
}

impl<S: Split> Link for ReadEnd<S> {
    type Read = S::ReadHalf;

    fn read_half(&mut self) -> &mut S::ReadHalf {
        &mut self.stream
    }

    fn write_frame(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: &[u8],
        compress: bool,
    ) -> Result<()> {
        self.writer
            .shared
            .write_frame(opcode, fin, payload, compress)
    }

    fn begin_close(&mut self) -> bool {
        let first = !self.writer.shared.close_sent.swap(true, Ordering::SeqCst);
        if first {
            self.writer.shared.wake_slot_waiters();
        }
        first
    }

    fn close_sent(&self) -> bool {
        self.writer.shared.close_sent.load(Ordering::SeqCst)
    }

    fn set_closed(&mut self) {
        self.writer.shared.set_closed();
    }

    fn is_closed(&self) -> bool {
        self.writer.shared.is_closed()
    }

    fn shutdown_write(&mut self) {
        let _ = self.writer.shared.lock().stream.shutdown_write();
    }

    fn ping_answered(&mut self, payload: &[u8]) -> Option<Instant> {
        let shared = &self.writer.shared;
        let mut last = shared.last_ping.lock().unwrap_or_else(|e| e.into_inner());
        let at = last.as_ref()?.answered_by(payload)?;
        *last = None;
        Some(at)
    }

    fn set_answered(&mut self) {
        self.writer.shared.answered.store(true, Ordering::SeqCst);
    }

    fn peer_started_close(&mut self, frame: &CloseFrame) {
        let shared = &self.writer.shared;
        let mut slot = shared
            .peer_started_close
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *slot = Some(frame.clone());
    }
}

impl<S: Split> Drop for ReadEnd<S> {
    fn drop(&mut self) {
        self.writer
            .shared
            .reader_alive
            .store(false, Ordering::SeqCst);
    }
}

impl<S: Split> Reader<S> {
    /// Receives the next message; `Ok(None)` once the connection ended normally,
    /// [`Error::PeerClosed`] when the peer closed it with an error code.
    /// See [`WebSocket::recv`](crate::WebSocket::recv).
    pub fn recv(&mut self) -> Result<Option<Message>> {
        self.conn.recv_until(None)
    }

    /// Receives into a reused buffer without allocating; see
    /// [`WebSocket::recv_into`](crate::WebSocket::recv_into).
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<crate::MessageKind>> {
        self.conn.recv_into(buf, None)
    }

    /// Like [`Reader::recv`], giving up after `timeout` with [`Error::Timeout`]; the connection
    /// stays usable.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Message>> {
        self.conn.recv_until(Some(Instant::now() + timeout))
    }

    /// Receives the next message as a stream; see
    /// [`WebSocket::recv_stream`](crate::WebSocket::recv_stream).
    pub fn recv_stream(&mut self) -> Result<Option<MessageReader<'_>>> {
        MessageReader::start(&mut self.conn, None)
    }

    /// Like [`Reader::recv_stream`], giving up after `timeout`; see
    /// [`WebSocket::recv_stream_timeout`](crate::WebSocket::recv_stream_timeout).
    pub fn recv_stream_timeout(&mut self, timeout: Duration) -> Result<Option<MessageReader<'_>>> {
        MessageReader::start(&mut self.conn, Some(timeout))
    }

    /// Closes the connection and waits (up to the close timeout) for the peer's answer.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        self.conn.close(code, reason)
    }

    /// A writer for this connection.
    pub fn writer(&self) -> Writer<S> {
        self.conn.link.writer.clone()
    }

    super::accessors::connection_accessors!();
}

impl<S: Split> Iterator for Reader<S> {
    type Item = Result<Message>;

    /// The next message; `None` once the connection is closed (an error is yielded once first).
    fn next(&mut self) -> Option<Self::Item> {
        if self.conn.state == State::Closed {
            return None;
        }
        self.recv().transpose()
    }
}

impl<S: Split> Writer<S> {
    /// The peer's close frame if the peer started the closing handshake, as the reader saw it.
    pub(crate) fn peer_started_close(&self) -> Option<CloseFrame> {
        let slot = self.shared.peer_started_close.lock();
        slot.unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends a whole message in one frame; see [`WebSocket::send`](crate::WebSocket::send).
    /// Another thread's message under way goes out first: this waits for it, for a streamed
    /// one until it is finished or dropped (see [`Writer::send_stream`]).
    pub fn send<M: ToMessage>(&self, msg: M) -> Result<()> {
        self.send_message(msg.to_message(), true)
    }

    /// Sends a whole message in one frame, never compressed; see
    /// [`WebSocket::send_uncompressed`](crate::WebSocket::send_uncompressed).
    pub fn send_uncompressed<M: ToMessage>(&self, msg: M) -> Result<()> {
        self.send_message(msg.to_message(), false)
    }

    fn send_message(&self, msg: crate::MessageRef<'_>, compress: bool) -> Result<()> {
        let _slot = self.shared.take_slot()?;
        self.send_checked(|shared, out| {
            let opcode = super::opcode_of(&msg);
            shared.write_message_frame(out, opcode, true, msg.bytes(), compress)
        })
    }

    /// Sends one message in several frames, holding the lock so no other message (and no
    /// control frame) can come between them; it waits for a streamed message under way to
    /// finish. See [`WebSocket::send_fragmented`](crate::WebSocket::send_fragmented): an item of
    /// the other kind closes the connection with 1011 here too.
    pub fn send_fragmented<I>(&self, fragments: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: ToMessage,
    {
        let _slot = self.shared.take_slot()?;
        let result = self.send_checked(|shared, out| {
            fragment_opcodes(fragments, |op, fin, bytes| {
                shared.write_message_frame(out, op, fin, bytes, true)
            })
        });
        if let Err(Error::InvalidInput(_)) = result {
            self.shared.abandon_message();
        }
        result
    }

    /// Starts sending one message of `kind` as a stream: a [`MessageWriter`] whose bytes go
    /// out in fragments as they are written. See
    /// [`WebSocket::send_stream`](crate::WebSocket::send_stream).
    ///
    /// First waits for the message slot: another thread's message under way (a `send`, or a
    /// stream until it is finished or dropped) goes out whole first. From then until this
    /// message is finished or dropped, other threads' messages wait; control frames (the
    /// reader's pongs and close reply, [`ping`](Self::ping), [`close`](Self::close)) still go
    /// out between its fragments. A close sent or received meanwhile makes the stream's next
    /// write fail with [`Error::Closed`]. Fails with `Error::Closed` if the connection is
    /// closing or closed (also while waiting).
    ///
    /// A member of a [`Hub`](crate::Hub) takes no room's frames while its own message is
    /// streamed: they queue within the room's backlog limit (and its full-backlog policy
    /// applies, as to a slow member) and go out after the message.
    ///
    /// ```no_run
    /// use std::io::Write;
    /// let mut ws = syncws::Client::connect("ws://127.0.0.1:9001/")?;
    /// let (mut reader, writer) = ws.split()?;
    /// let sending = std::thread::spawn(move || -> syncws::Result<()> {
    ///     let mut message = writer.send_stream(syncws::MessageKind::Binary)?;
    ///     for _ in 0..1000 {
    ///         message.write_all(&[7; 65536])?;
    ///     }
    ///     message.finish()
    /// });
    /// while let Some(msg) = reader.recv()? {
    ///     println!("{msg:?}"); // pings are answered here meanwhile, between the fragments
    /// }
    /// sending.join().unwrap()?;
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn send_stream(&self, kind: MessageKind) -> Result<MessageWriter<'_>> {
        let slot = self.shared.take_slot()?;
        Ok(MessageWriter::new(Box::new(slot), kind))
    }

    /// Sends everything `reader` gives, up to its end, as one message of `kind`; returns the
    /// number of payload bytes. As [`Writer::send_stream`] for the slot, and as
    /// [`WebSocket::send_from`](crate::WebSocket::send_from) for failures.
    pub fn send_from<R: std::io::Read>(&self, kind: MessageKind, mut reader: R) -> Result<u64> {
        let mut message = self.send_stream(kind)?;
        let n = message.copy_from(&mut reader)?;
        message.finish()?;
        Ok(n)
    }

    /// Sends a ping with up to 125 bytes.
    pub fn ping(&self, payload: &[u8]) -> Result<()> {
        self.control(OpCode::Ping, payload)
    }

    /// Sends an unsolicited pong with up to 125 bytes.
    pub fn pong(&self, payload: &[u8]) -> Result<()> {
        self.control(OpCode::Pong, payload)
    }

    fn control(&self, opcode: OpCode, payload: &[u8]) -> Result<()> {
        super::check_control(payload)?;
        self.send_checked(|shared, out| shared.write_locked(out, opcode, true, payload, false))
    }

    fn send_checked<F>(&self, f: F) -> Result<()>
    where
        F: FnOnce(&Shared<S::WriteHalf>, &mut Out<S::WriteHalf>) -> Result<()>,
    {
        let shared = &*self.shared;
        let mut out = shared.lock();
        // RFC 6455 5.5.1: no data frames after a close frame.
        if shared.close_sent.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        f(shared, &mut out)
    }

    /// Sends a close frame and waits, up to the close timeout, for the reader to see the peer's
    /// answer. If none comes (or no reader is left to see it), the socket is shut down, which
    /// also ends a reader blocked in `recv`.
    pub fn close(&self, code: CloseCode, reason: &str) -> Result<()> {
        close::check_outgoing(code, reason).map_err(Error::InvalidInput)?;
        let shared = &*self.shared;
        if shared.is_closed() {
            return Ok(());
        }
        if !shared.close_sent.swap(true, Ordering::SeqCst) {
            shared.wake_slot_waiters();
            let payload = close::encode(Some(code), reason);
            shared.write_frame(OpCode::Close, true, payload.as_bytes(), false)?;
        }
        // Lock order: never take `out` while holding `closed` (writers take `out`, then `closed`).
        let waited = {
            let closed = shared.closed.lock().unwrap_or_else(|e| e.into_inner());
            let alive = || shared.reader_alive.load(Ordering::SeqCst);
            if alive() {
                let timeout = shared.close_timeout;
                let wait = shared
                    .closed_changed
                    .wait_timeout_while(closed, timeout, |c| !*c && alive());
                wait.map(|(c, _)| *c).unwrap_or(false)
            } else {
                *closed
            }
        };
        // Read this before the shutdown below, which wakes (and may end) the reader.
        let had_reader = shared.reader_alive.load(Ordering::SeqCst);
        // Only an answer from the peer (its close frame, or the end of its stream) completes the
        // close; the reader also ends the connection on its own clocks (the close deadline, the
        // heartbeat), and then it did not complete.
        let answered = shared.answered.load(Ordering::SeqCst);
        if waited && answered {
            return Ok(());
        }
        let _ = shared.lock().stream.shutdown_both();
        shared.set_closed();
        // Without a reader nobody could see an answer; that is no timeout.
        if waited || had_reader {
            Err(Error::Timeout)
        } else {
            Ok(())
        }
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// The connection id used in logs.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The connection as a hub holds it: weakly, so a member whose halves are all gone is not
    /// kept open by its rooms.
    pub(crate) fn outlet(&self) -> std::sync::Weak<dyn Outlet> {
        let shared: Arc<dyn Outlet> = self.shared.clone();
        Arc::downgrade(&shared)
    }
}

impl<S: Split> fmt::Debug for Reader<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("id", &self.conn.info.id)
            .field("state", &self.conn.state())
            .finish_non_exhaustive()
    }
}

impl<S: Split> fmt::Debug for Writer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("id", &self.shared.id)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// Like [`WebSocket`](crate::WebSocket)'s: `Reader(server, OPEN)`.
impl<S: Split> fmt::Display for Reader<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = role_name(self.conn.role);
        write!(f, "Reader({role}, {})", state_name(self.conn.state()))
    }
}

/// Like [`WebSocket`](crate::WebSocket)'s: `Writer(client, OPEN)`, `Writer(client, CLOSING)`
/// once a close frame went out, then `Writer(client, CLOSED)`.
impl<S: Split> fmt::Display for Writer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.is_closed() {
            State::Closed
        } else if self.shared.close_sent.load(Ordering::SeqCst) {
            State::Closing
        } else {
            State::Open
        };
        write!(
            f,
            "Writer({}, {})",
            role_name(self.shared.role),
            state_name(state)
        )
    }
}

fn role_name(role: super::Role) -> &'static str {
    match role {
        super::Role::Server => "server",
        super::Role::Client => "client",
    }
}

fn state_name(state: State) -> &'static str {
    match state {
        State::Open => "OPEN",
        State::Closing => "CLOSING",
        State::Closed => "CLOSED",
    }
}

impl<W: Transport + Send + 'static> Outlet for Shared<W> {
    fn id(&self) -> u64 {
        self.id
    }

    fn is_server(&self) -> bool {
        self.role == super::Role::Server
    }

    fn encoding(&self) -> Encoding {
        self.encoding
    }

    fn offer(&self, frame: &Prepared, compress: bool, limit: usize) -> Offer {
        // Checked under the queue's lock: `set_closed` clears the queue after setting the flag,
        // so nothing offered afterwards stays queued.
        let mut q = self.outbox();
        if self.is_closed() {
            return Offer::Closed;
        }
        q.push(frame, compress, limit)
    }

    fn flush(&self) -> Flushed {
        let mut out = match self.out.try_lock() {
            Ok(out) => out,
            Err(std::sync::TryLockError::WouldBlock) => return Flushed::Busy,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
        };
        if self.is_closed() {
            return Flushed::Closed;
        }
        // A message of this member's own is under way (streamed): queued frames go out after
        // its end, when its next message drains them, or on a later try.
        if out.mid_message {
            return Flushed::Busy;
        }
        match self.write_queued(&mut out) {
            Ok(done) => done,
            Err(e) => {
                log::debug!("ws#{} queued write failed: {e}", self.id);
                let _ = out.stream.shutdown_both();
                self.set_closed();
                Flushed::Closed
            }
        }
    }

    fn abort(&self) {
        if let Some(aborter) = &self.aborter {
            aborter.abort();
        }
        self.set_closed();
    }

    fn when_closed(&self, hook: Box<dyn FnOnce() + Send>) {
        let mut hooks = self.on_closed.lock().unwrap_or_else(|e| e.into_inner());
        if Shared::is_closed(self) {
            drop(hooks);
            hook();
        } else {
            hooks.push(hook);
        }
    }

    fn queued(&self) -> usize {
        self.outbox().bytes()
    }
}

impl<W: Transport> Shared<W> {
    /// Writes queued frames without blocking until the queue is empty or the kernel is full; a
    /// frame the stream refused stays under way, to be given again before anything else.
    fn write_queued(&self, out: &mut Out<W>) -> io::Result<Flushed> {
        let Out { stream, sender, .. } = out;
        loop {
            self.compress_front(sender)?;
            let Some((frame, written)) = self.outbox().front_for(true) else {
                // A TLS session may still hold records the socket did not take.
                return match stream.flush_nonblocking() {
                    Ok(()) => Ok(Flushed::Empty),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Flushed::WouldBlock),
                    Err(e) => Err(e),
                };
            };
            match stream.write_nonblocking(&frame[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.outbox().advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.outbox().mark_started();
                    return Ok(Flushed::WouldBlock);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
