//! The connection layer: one WebSocket over one byte stream, after the opening handshake.
//!
//! ```text
//!            send/recv data, ping, pong (answered automatically)
//!              +------+
//!              |      v
//!          +----------+   close() sends Close   +-----------+
//!   ------>|   OPEN   |------------------------>|  CLOSING  |
//!          +----------+                         +-----------+
//!            |    |                                   |
//!            |    | peer's Close received:            | peer's Close received,
//!            |    | echo its code, end TCP            | or close timeout: end TCP
//!            |    v                                   v
//!            |  +----------------------------------------+
//!            |  |                 CLOSED                 |
//!            |  +----------------------------------------+
//!            |    ^
//!            +----+ violation: send 1002/1007/1009; no pong in time: 1011; end TCP
//!                   close requested by the owner (e.g. server shutdown): its code; end TCP
//!                   socket error or end-of-stream: nothing can be sent
//! ```
//!
//! A socket is built in one step from an `Opening` (`opening`): what the handshake agreed
//! (role, request, peer, subprotocol, compression, gatekeeper data) and the `CloseRequest` by
//! which its owner may ask it to close. Nothing patches it afterwards, and nothing here knows
//! who the owner is.
//!
//! Files: `receiver` turns bytes into messages and control frames under the RFC's receive rules
//! (`proto::rules`; its `inflate` part for compressed messages), charging what their buffers
//! hold to a `budget` shared with other connections, if given one;
//! `sender` writes frames, `conn` holds the rules that tie them together (pong replies, the
//! closing handshake, deadlines, heartbeat) once for both the whole socket here and the reader
//! of a `split` one; `accessors` what both tell about the connection.

mod accessors;
mod budget;
mod conn;
mod opening;
mod outbox;
mod read_clock;
mod receiver;
mod send_stream;
mod sender;
mod split;
mod stream;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Error, InputError, Result};
use crate::io::{Split, Stream, Transport};
use crate::message::{CloseCode, Message, MessageKind, MessageRef, ToMessage};
use crate::proto::close;
use crate::proto::frame::OpCode;
use conn::{Conn, Info, Link, SentPing};
use sender::Sender;

pub use crate::proto::rules::Role;
pub use budget::MemoryBudget;
pub(crate) use opening::{CloseRequest, Opening};
#[cfg(feature = "deflate")]
pub(crate) use outbox::compress_shared;
pub(crate) use outbox::{Encoding, Flushed, Offer, Outlet, Prepared, prepare};
pub use send_stream::MessageWriter;
pub use split::{Reader, Writer};
pub use stream::MessageReader;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// A close frame went out; waiting for the peer's.
    Closing,
    /// Nothing more can be sent or received.
    Closed,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh connection id for logs.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A WebSocket connection whose opening handshake is done.
///
/// Get one from [`Server::serve`](crate::Server::serve) or [`Client::connect`](crate::Client::connect),
/// or wrap any stream with [`WebSocket::from_stream`]. To receive in one thread while others
/// send, [`split`](WebSocket::split) it.
///
/// ```no_run
/// let mut ws = syncws::Client::connect("ws://127.0.0.1:9001/")?;
/// ws.send("hello")?;
/// while let Some(msg) = ws.recv()? {
///     println!("{msg:?}");
/// }
/// # Ok::<(), syncws::Error>(())
/// ```
pub struct WebSocket<S: Transport = Stream> {
    conn: Conn<Owned<S>>,
}

/// The whole stream, owned by one thread: reads and writes need no lock.
struct Owned<S: Transport> {
    /// `None` only after `split` took it.
    stream: Option<S>,
    sender: Sender,
    close_sent: bool,
    closed: bool,
    /// Set while `try_recv` runs; writes then switch the stream back to blocking.
    nonblocking: bool,
    close_timeout: Duration,
    /// After `split`: closes the connection through its writer.
    split_closer: Option<SplitCloser>,
    /// After `split`: the peer's close frame as the reader saw it, if the peer started the close.
    split_peer_close: Option<SplitPeerClose>,
    /// The last ping written, so its pong gives the round-trip time.
    last_ping: Option<SentPing>,
}

type SplitCloser = Box<dyn Fn(CloseCode, &str) -> Result<()> + Send + Sync>;
type SplitPeerClose = Box<dyn Fn() -> Option<crate::CloseFrame> + Send + Sync>;

impl<S: Transport> Owned<S> {
    fn stream(&mut self) -> &mut S {
        self.stream
            .as_mut()
            .expect("the stream is only taken by split, which consumes the socket")
    }

    /// Runs one write on the blocking stream (switching it back from `try_recv`'s non-blocking
    /// mode for the call). A failed write may cut a frame in half: the connection cannot go on.
    fn write_with(&mut self, f: impl FnOnce(&mut Sender, &mut S) -> io::Result<()>) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        let Owned {
            stream,
            sender,
            closed,
            nonblocking,
            ..
        } = self;
        let stream = stream.as_mut().expect("stream present");
        if *nonblocking {
            stream.set_nonblocking(false)?;
        }
        let result = f(sender, stream);
        if *nonblocking {
            stream.set_nonblocking(true)?;
        }
        result.map_err(|e| {
            let _ = stream.shutdown_both();
            *closed = true;
            Error::Io(e)
        })
    }

    /// Queues a final data frame (see [`WebSocket::feed`]): the queue is written first if the
    /// frame would take it past its limit, and a frame that large is written at once.
    fn feed(&mut self, opcode: OpCode, payload: &[u8]) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        if self.sender.queued() + payload.len() > sender::QUEUE_LIMIT {
            self.flush_queued()?;
        }
        if payload.len() >= sender::QUEUE_LIMIT {
            return self.write_frame(opcode, true, payload, true);
        }
        let fed = self.sender.feed_data(opcode, payload, true);
        fed.map_err(|e| {
            // Only the compressor can fail here, and its state is then unknown.
            self.closed = true;
            Error::Io(e)
        })
    }
}

impl<S: Transport> Link for Owned<S> {
    type Read = S;

    fn read_half(&mut self) -> &mut S {
        self.stream()
    }

    fn bound_reads(&mut self, until: Option<Instant>) {
        if let Some(stream) = self.stream.as_mut() {
            stream.set_deadline(until);
        }
    }

    fn write_frame(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: &[u8],
        compress: bool,
    ) -> Result<()> {
        // Fed messages first, so every frame keeps its place.
        self.write_with(|sender, stream| {
            sender.flush_queue(stream)?;
            sender.write_data(stream, opcode, fin, payload, compress)
        })?;
        if opcode == OpCode::Ping {
            self.last_ping = Some(SentPing::now(payload));
        }
        Ok(())
    }

    fn begin_close(&mut self) -> bool {
        !std::mem::replace(&mut self.close_sent, true)
    }

    fn close_sent(&self) -> bool {
        self.close_sent
    }

    fn set_closed(&mut self) {
        self.closed = true;
    }

    fn is_closed(&self) -> bool {
        self.closed
    }

    fn shutdown_write(&mut self) {
        let _ = self.stream().shutdown_write();
    }

    fn ping_answered(&mut self, payload: &[u8]) -> Option<Instant> {
        let at = self.last_ping?.answered_by(payload)?;
        self.last_ping = None;
        Some(at)
    }

    /// Nothing waits on another half of a whole socket.
    fn set_answered(&mut self) {}

    fn flush_queued(&mut self) -> Result<()> {
        if self.sender.queued() == 0 {
            return Ok(());
        }
        self.write_with(|sender, stream| sender.flush_queue(stream))
    }
}

impl<S: Transport> Drop for Owned<S> {
    /// A connection dropped while open says goodbye with 1001 ("going away") without waiting for
    /// an answer; the write is bounded by the close timeout.
    fn drop(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        if !self.closed && !self.close_sent {
            let payload = close::encode(Some(CloseCode::GOING_AWAY), "");
            let _ = stream.set_nonblocking(false);
            self.sender.set_write_timeout(Some(self.close_timeout));
            // Fed messages go out before the goodbye.
            let _ = self.sender.flush_queue(stream);
            let _ = self
                .sender
                .write_frame(stream, OpCode::Close, true, payload.as_bytes());
            let _ = stream.shutdown_write();
        }
    }
}

impl<S: Transport> WebSocket<S> {
    /// Wraps a stream whose opening handshake has already happened.
    ///
    /// `leftover` holds bytes that arrived right behind the handshake; they are parsed first.
    /// Every frame write sets the stream's write timeout to what is left of
    /// [`Config::write_timeout`] when it needs another value than the one in force.
    pub fn from_stream(stream: S, role: Role, config: Config, leftover: &[u8]) -> Self {
        WebSocket::open(stream, Opening::new(role), config, leftover)
    }

    /// Builds a socket whole from what its opening handshake agreed.
    pub(crate) fn open(stream: S, opening: Opening, config: Config, leftover: &[u8]) -> Self {
        let Opening {
            role,
            request,
            peer,
            protocol,
            data,
            #[cfg(feature = "deflate")]
            deflate,
            close_request,
        } = opening;
        let mut info = Info::new(next_id(), peer.or_else(|| stream.peer_addr()));
        info.request = request.map(Box::new);
        info.protocol = protocol;
        info.data = data;
        info.close_request = close_request;
        #[allow(unused_mut)]
        let mut sender = Sender::new(role == Role::Client, config.write_timeout);
        #[cfg(feature = "deflate")]
        let deflate = deflate.zip(config.deflate.clone());
        #[cfg(feature = "deflate")]
        if let Some((params, settings)) = &deflate {
            sender.set_deflate(params, settings);
            info.deflate = Some(*params);
        }
        let link = Owned {
            stream: Some(stream),
            sender,
            close_sent: false,
            closed: false,
            nonblocking: false,
            close_timeout: config.close_timeout,
            split_closer: None,
            split_peer_close: None,
            last_ping: None,
        };
        #[allow(unused_mut)]
        let mut conn = Conn::new(link, role, config, leftover, info);
        #[cfg(feature = "deflate")]
        if let Some((params, _)) = deflate {
            conn.rx
                .set_inflate(params.peer_window_bits, params.peer_no_context_takeover);
        }
        WebSocket { conn }
    }

    accessors::connection_accessors!();

    /// The code of the close frame this side sent, for the server's log.
    pub(crate) fn sent_close(&self) -> Option<CloseCode> {
        self.conn.sent_close()
    }

    /// The peer's close frame if the peer started the closing handshake (not the echo of a close
    /// this side sent), also after `split` once the reader saw it: what a reconnecting client
    /// decides by.
    pub(crate) fn peer_started_close(&self) -> Option<crate::CloseFrame> {
        match &self.conn.link.split_peer_close {
            Some(read) => read(),
            None => self.conn.peer_started_close().cloned(),
        }
    }

    /// The stream underneath, e.g. to read socket options.
    pub fn get_ref(&self) -> &S {
        self.conn.link.stream.as_ref().expect("stream present")
    }

    /// Receives the next text or binary message.
    ///
    /// Pings are answered and pongs consumed on the way (a pong that answers our last ping
    /// sets [`rtt`](Self::rtt)); while waiting, the heartbeat pings an idle peer
    /// ([`Config::ping_interval`]).
    ///
    /// How it ends, and again on every later call:
    /// - `Ok(None)` for a normal end: the peer closed with 1000, 1001 or no code
    ///   ([`CloseCode::is_normal`]), a close this side started completed (whatever code the peer
    ///   echoed), or the socket's owner closed it (a server's shutdown).
    /// - [`Error::PeerClosed`] with the peer's close frame when the peer closed with any other
    ///   code (1008, 1009, 1011, 4xxx...): the closing handshake completed, but the peer said
    ///   something went wrong.
    /// - [`Error::Protocol`] when the peer broke the protocol or a limit: the connection was
    ///   failed with the RFC's close code and a reason saying what was wrong;
    ///   [`Error::HeartbeatTimeout`] when it did not answer the heartbeat;
    ///   [`Error::Io`] when the connection dropped (without a close frame: 1006).
    ///
    /// The peer's close frame is in [`close_frame`](Self::close_frame) either way.
    pub fn recv(&mut self) -> Result<Option<Message>> {
        self.conn.recv_until(None)
    }

    /// Like [`WebSocket::recv`], but gives up after `timeout` with [`Error::Timeout`]. The
    /// connection stays usable: a message cut off by the deadline continues on the next call.
    /// The timeout is a total, read by read: a peer that trickles a message cannot stretch it.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Message>> {
        self.conn.recv_until(Some(Instant::now() + timeout))
    }

    /// Receives the next message into `buf` (replacing its contents) and says whether it is
    /// text or binary: the allocation-free receive for hot loops. Reuse the same `buf`; once it
    /// and the connection's own buffer have grown to the message size, nothing is allocated.
    /// Text has been validated as UTF-8. Otherwise behaves like [`WebSocket::recv`].
    ///
    /// ```no_run
    /// let mut ws = syncws::Client::connect("ws://127.0.0.1:9001/")?;
    /// let mut buf = Vec::new();
    /// while let Some(kind) = ws.recv_into(&mut buf)? {
    ///     println!("{kind:?}: {} bytes", buf.len());
    /// }
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<MessageKind>> {
        self.conn.recv_into(buf, None)
    }

    /// Receives the next message as a stream: a [`MessageReader`] whose `read` gives its
    /// payload as the frames arrive, for messages of any size in bounded memory. Returns once
    /// the message's first frame arrived (its kind is known then); `Ok(None)` and the errors
    /// end it as in [`WebSocket::recv`]. The message is limited by [`Config::max_stream_size`]
    /// rather than `max_message_size`; what a read returns, and what dropping the reader before
    /// the end does, is on [`MessageReader`].
    ///
    /// ```no_run
    /// use std::io::Read;
    /// let mut ws = syncws::Client::connect("ws://127.0.0.1:9001/")?;
    /// if let Some(mut message) = ws.recv_stream()? {
    ///     let mut head = [0u8; 16];
    ///     let n = message.read(&mut head)?;
    ///     println!("{:?} starting {:?}", message.kind(), &head[..n]);
    /// } // the rest of the message is skipped by the next receive
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn recv_stream(&mut self) -> Result<Option<MessageReader<'_>>> {
        MessageReader::start(&mut self.conn, None)
    }

    /// Like [`WebSocket::recv_stream`], but gives up after `timeout` with [`Error::Timeout`]
    /// (the connection stays usable); the reader's own reads then get the same timeout each
    /// (see [`MessageReader::set_timeout`]).
    pub fn recv_stream_timeout(&mut self, timeout: Duration) -> Result<Option<MessageReader<'_>>> {
        MessageReader::start(&mut self.conn, Some(timeout))
    }

    /// Returns a message if one can be had without waiting, else [`Error::Timeout`].
    pub fn try_recv(&mut self) -> Result<Option<Message>> {
        self.conn.link.stream().set_nonblocking(true)?;
        self.conn.link.nonblocking = true;
        self.conn.nonblocking = true;
        let result = self.conn.recv_until(Some(Instant::now()));
        self.conn.nonblocking = false;
        self.conn.link.nonblocking = false;
        if let Some(stream) = self.conn.link.stream.as_mut() {
            stream.set_nonblocking(false)?;
        }
        result
    }

    /// Sends a text or binary message in one frame: `&str`/`String` as text, `&[u8]`/`Vec<u8>`
    /// as binary, a [`Message`] as what it is. Large payloads are not copied, and the caller's
    /// buffer is never modified.
    ///
    /// With permessage-deflate negotiated (feature `deflate`, see `compression`), messages of
    /// at least the threshold are compressed; see [`WebSocket::send_uncompressed`] to skip that.
    /// Messages [`fed`](Self::feed) before it go out first.
    pub fn send<M: ToMessage>(&mut self, msg: M) -> Result<()> {
        let msg = msg.to_message();
        self.conn
            .send_frame(opcode_of(&msg), true, msg.bytes(), true)
    }

    /// Like [`WebSocket::send`], but never compresses this message: for data that is already
    /// compressed (images, archives) or must not share a compression context with secrets
    /// (compression can reveal secrets mixed with attacker-chosen text, as in CRIME/BREACH).
    /// Without compression negotiated it is `send`.
    pub fn send_uncompressed<M: ToMessage>(&mut self, msg: M) -> Result<()> {
        let msg = msg.to_message();
        self.conn
            .send_frame(opcode_of(&msg), true, msg.bytes(), false)
    }

    /// Sends one message as several frames, one per item; the first item decides text or binary.
    /// With compression negotiated, the message is compressed whatever its pieces' sizes, each
    /// frame decodable as it arrives.
    ///
    /// An empty iterator sends nothing. An item of the other kind is refused with
    /// [`Error::InvalidInput`]; as part of the message is already out, the connection is then
    /// closed with 1011.
    pub fn send_fragmented<I>(&mut self, fragments: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: ToMessage,
    {
        let conn = &mut self.conn;
        let result = fragment_opcodes(fragments, |op, fin, bytes| {
            conn.send_frame(op, fin, bytes, true)
        });
        if let Err(Error::InvalidInput(_)) = result {
            let _ = self.conn.close(CloseCode::INTERNAL_ERROR, "");
        }
        result
    }

    /// Starts sending one message of `kind` as a stream: a [`MessageWriter`] (a
    /// [`std::io::Write`]) whose bytes go out in fragments of 64 KiB as they are written, and
    /// whose [`finish`](MessageWriter::finish) sends the last one. For messages of any size in
    /// bounded memory, or whose size is not known up front. Fails with [`Error::Closed`] if the
    /// connection is closing or closed.
    ///
    /// The socket reads nothing while the message is written: pings that arrive meanwhile are
    /// answered by the next receive (split the socket to answer them between fragments). What a
    /// write returns, and what dropping the writer before `finish` does, is on
    /// [`MessageWriter`].
    ///
    /// ```no_run
    /// use std::io::Write;
    /// let mut ws = syncws::Client::connect("ws://127.0.0.1:9001/")?;
    /// let mut message = ws.send_stream(syncws::MessageKind::Binary)?;
    /// for block in 0..100u8 {
    ///     message.write_all(&[block; 4096])?;
    /// }
    /// message.finish()?;
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn send_stream(&mut self, kind: MessageKind) -> Result<MessageWriter<'_>> {
        if self.conn.state() != State::Open {
            return Err(Error::Closed);
        }
        Ok(MessageWriter::new(Box::new(&mut self.conn), kind))
    }

    /// Sends everything `reader` gives, up to its end, as one message of `kind` (through
    /// [`WebSocket::send_stream`]); returns the number of payload bytes. Text must be valid
    /// UTF-8 as a whole ([`InputError::InvalidUtf8`] otherwise).
    ///
    /// If `reader` fails (its error comes back as [`Error::Io`]) or its text is not UTF-8 once
    /// part of the message went out, the message is given up as a dropped [`MessageWriter`]
    /// gives it up: the connection closes with 1011, so the peer never takes a cut-off file for
    /// a whole one.
    ///
    /// ```no_run
    /// let mut ws = syncws::Client::connect("ws://127.0.0.1:9001/")?;
    /// let file = std::fs::File::open("video.mp4")?;
    /// let bytes = ws.send_from(syncws::MessageKind::Binary, file)?;
    /// println!("sent {bytes} bytes");
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn send_from<R: std::io::Read>(&mut self, kind: MessageKind, mut reader: R) -> Result<u64> {
        let mut message = self.send_stream(kind)?;
        let n = message.copy_from(&mut reader)?;
        message.finish()?;
        Ok(n)
    }

    /// Queues a text or binary message without writing it: batching, for a server that answers
    /// many messages at once (pipelined requests) in few system calls. The queue is written
    /// in one write by [`WebSocket::flush`], before any other frame this socket writes (a
    /// [`send`](Self::send), a pong, a close, a streamed message, so order is kept), and by a
    /// receive before it waits for the peer: while whole messages are already buffered, their
    /// answers gather; once the receive would read from the socket, they go out first. So a
    /// loop of `recv` and `feed` is safe: nothing fed waits behind a receive that blocks. The
    /// queue holds at most 64 KiB: a message that would take it past that writes it first, and
    /// a message that large is written at once behind it. Dropping the socket writes what is
    /// queued before its goodbye.
    ///
    /// Unlike [`send`](Self::send), `Ok` does not mean the message reached the kernel: a write
    /// error shows up on the call that writes (`flush`, a later send or receive). Compression
    /// applies as for `send`.
    ///
    /// ```no_run
    /// let mut ws = syncws::Client::connect("ws://127.0.0.1:9001/")?;
    /// while let Some(msg) = ws.recv()? {
    ///     ws.feed(&msg)?; // written with the others before the next receive waits
    /// }
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn feed<M: ToMessage>(&mut self, msg: M) -> Result<()> {
        if self.conn.state() != State::Open {
            return Err(Error::Closed);
        }
        let msg = msg.to_message();
        let result = self.conn.link.feed(opcode_of(&msg), msg.bytes());
        if result.is_err() {
            self.conn.state = State::Closed;
        }
        result
    }

    /// Writes every message [`fed`](Self::feed) and not yet written, in one write (within
    /// [`Config::write_timeout`]); does nothing if none is. A failure closes the connection.
    pub fn flush(&mut self) -> Result<()> {
        let result = self.conn.link.flush_queued();
        if result.is_err() {
            self.conn.state = State::Closed;
        }
        result
    }

    /// Sends a ping with up to 125 bytes of payload. The pong is consumed by `recv`.
    pub fn ping(&mut self, payload: &[u8]) -> Result<()> {
        check_control(payload)?;
        self.conn.send_frame(OpCode::Ping, true, payload, false)
    }

    /// Sends an unsolicited pong with up to 125 bytes of payload (a one-way heartbeat).
    pub fn pong(&mut self, payload: &[u8]) -> Result<()> {
        check_control(payload)?;
        self.conn.send_frame(OpCode::Pong, true, payload, false)
    }

    /// Closes the connection: sends a close frame with `code` and `reason`, then waits up to the
    /// close timeout for the peer's close frame (discarding data that arrives meanwhile) and ends
    /// TCP.
    ///
    /// Returns `Ok` once the peer answered, [`Error::Timeout`] if it did not answer in time (the
    /// connection is closed either way). Closing a closed connection does nothing. Codes that may
    /// not go on the wire (1005, 1006, 1015, reserved ranges) and reasons over 123 bytes are
    /// refused with [`Error::InvalidInput`].
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        match &self.conn.link.split_closer {
            Some(close) => close(code, reason),
            None => self.conn.close(code, reason),
        }
    }
}

impl<S: Split + 'static> WebSocket<S> {
    /// Splits the connection into a [`Reader`] for one thread and a cloneable [`Writer`] for any
    /// number of others.
    ///
    /// ```no_run
    /// let mut ws = syncws::Client::connect("ws://127.0.0.1:9001/")?;
    /// let (mut reader, writer) = ws.split()?;
    /// std::thread::spawn(move || writer.send("from another thread"));
    /// while let Some(msg) = reader.recv()? {
    ///     println!("{msg:?}");
    /// }
    /// # Ok::<(), syncws::Error>(())
    /// ```
    ///
    /// The socket itself is left closed for receiving and sending; [`WebSocket::close`] on it
    /// still closes the connection through the writer (that is how the server closes a split
    /// connection when its handler returns). It keeps a handle on the connection, so dropping
    /// every half closes the connection (with 1001) once the socket is dropped too.
    pub fn split(&mut self) -> Result<(Reader<S>, Writer<S>)> {
        if self.conn.link.stream.is_none() {
            return Err(Error::Closed);
        }
        // The halves write no queue: what was fed goes out now.
        self.flush()?;
        let stream = self.conn.link.stream.take().expect("checked above");
        #[allow(unused_mut)]
        let mut info = Info::new(self.conn.info.id, self.conn.info.peer);
        #[cfg(feature = "deflate")]
        {
            info.deflate = self.conn.info.deflate;
        }
        let empty = Config::default().read_buffer_size(0);
        let husk = Owned {
            stream: None,
            sender: Sender::new(false, None),
            close_sent: true,
            closed: true,
            nonblocking: false,
            close_timeout: self.conn.config.close_timeout,
            split_closer: None,
            split_peer_close: None,
            last_ping: None,
        };
        let husk = Conn::new(husk, self.conn.role, empty, &[], info);
        let mut conn = std::mem::replace(&mut self.conn, husk);
        self.conn.config = conn.config.clone();
        let sender = std::mem::replace(&mut conn.link.sender, Sender::new(false, None));
        let close_sent = conn.link.close_sent;
        let (reader, writer) = split::split(conn, stream, sender, close_sent)?;
        let closer = writer.clone();
        self.conn.link.split_closer =
            Some(Box::new(move |code, reason| closer.close(code, reason)));
        let watcher = writer.clone();
        self.conn.link.split_peer_close = Some(Box::new(move || watcher.peer_started_close()));
        Ok((reader, writer))
    }
}

pub(crate) fn opcode_of(msg: &MessageRef<'_>) -> OpCode {
    match msg {
        MessageRef::Text(_) => OpCode::Text,
        MessageRef::Binary(_) => OpCode::Binary,
    }
}

pub(crate) fn check_control(payload: &[u8]) -> Result<()> {
    // RFC 6455 5.5: control frames carry at most 125 bytes.
    if payload.len() > 125 {
        return Err(Error::InvalidInput(InputError::ControlTooLong));
    }
    Ok(())
}

/// Feeds the fragments of one message to `write` with their opcodes and FIN bits.
pub(crate) fn fragment_opcodes<I, F>(fragments: I, mut write: F) -> Result<()>
where
    I: IntoIterator,
    I::Item: ToMessage,
    F: FnMut(OpCode, bool, &[u8]) -> Result<()>,
{
    let mut iter = fragments.into_iter().peekable();
    let mut first: Option<bool> = None;
    while let Some(item) = iter.next() {
        let part = item.to_message();
        let is_text = matches!(part, MessageRef::Text(_));
        let opcode = match first {
            None => {
                first = Some(is_text);
                opcode_of(&part)
            }
            Some(kind) if kind == is_text => OpCode::Continuation,
            Some(_) => return Err(Error::InvalidInput(InputError::MixedFragments)),
        };
        write(opcode, iter.peek().is_none(), part.bytes())?;
    }
    Ok(())
}

impl<S: Transport> Iterator for WebSocket<S> {
    type Item = Result<Message>;

    /// The next message; `None` once the connection is closed (normally or after an error, which
    /// is yielded once first).
    fn next(&mut self) -> Option<Self::Item> {
        if self.conn.state == State::Closed {
            return None;
        }
        self.recv().transpose()
    }
}

impl<S: Transport> fmt::Display for WebSocket<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.conn.role {
            Role::Server => "server",
            Role::Client => "client",
        };
        let state = match self.state() {
            State::Open => "OPEN",
            State::Closing => "CLOSING",
            State::Closed => "CLOSED",
        };
        write!(f, "WebSocket({role}, {state})")
    }
}

impl<S: Transport> fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("id", &self.conn.info.id)
            .field("role", &self.conn.role)
            .field("state", &self.state())
            .field("peer", &self.conn.info.peer)
            .finish_non_exhaustive()
    }
}
