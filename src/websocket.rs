//! The connection: one WebSocket over one byte stream, after the opening handshake.
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
//!            |    | echo its code, end TCP            | or close timeout:
//!            |    v                                   v end TCP
//!            |  +----------------------------------------+
//!            |  |                 CLOSED                 |
//!            |  +----------------------------------------+
//!            |    ^
//!            +----+ protocol violation: send 1002/1007/1009, end TCP
//!                   socket error or EOF: nothing can be sent
//! ```
//!
//! "End TCP" is the lingering close of RFC 6455 7.1.1: the server shuts down its sending side
//! first and the client waits for that; both then read until the peer's end-of-stream, never
//! longer than the close timeout, so a close frame is not lost to a TCP reset.
//!
//! Receiving reads into a fixed buffer and parses every complete frame in it before the next
//! `read`; a payload larger than the buffer is read straight into the message's own buffer. The
//! receive state lives in the struct, not on the stack, so a receive interrupted by a timeout
//! resumes where it stopped, even in the middle of a frame.

use std::fmt;
use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Error, InputError, ProtocolError, Result, is_timeout_kind};
use crate::io::{ReadBuf, Stream, Transport};
use crate::message::{CloseCode, CloseFrame, Message, MessageRef, ToMessage};
use crate::proto::close;
use crate::proto::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use crate::proto::handshake::Request;
use crate::proto::mask::{apply_mask, extend_masked};
use crate::proto::utf8::Utf8Validator;

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepted the connection; receives masked frames, sends unmasked ones.
    Server,
    /// Opened the connection; masks every frame it sends.
    Client,
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's.
    Closing,
    /// Nothing more can be sent or received.
    Closed,
}

/// Payloads up to this size are copied behind the header so the frame goes out in one `write`;
/// larger ones go out with one vectored write of header and payload, uncopied.
const COPY_LIMIT: usize = 16 << 10;
/// A client masks large payloads in pieces of this size, so its write buffer stays small.
const MASK_CHUNK: usize = 64 << 10;
/// Largest piece of a text payload read directly into a message: text is validated after each
/// read, so invalid UTF-8 fails the message as soon as it arrives.
const TEXT_CHUNK: usize = 64 << 10;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh connection id for logs.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A WebSocket connection whose opening handshake is done.
///
/// Get one from [`Server::serve`](crate::Server::serve) or [`Client::connect`](crate::Client::connect),
/// or wrap any stream with [`WebSocket::from_stream`].
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
    stream: S,
    role: Role,
    state: State,
    config: Config,
    rbuf: ReadBuf,
    rx: Rx,
    wbuf: Vec<u8>,
    keys: MaskKeys,
    /// The peer's close frame, once received.
    peer_close: Option<CloseFrame>,
    /// True once a close frame went out.
    close_sent: bool,
    /// The read timeout currently set on the stream, so it is changed only when it must be.
    read_timeout: Option<Duration>,
    info: Info,
}

#[derive(Debug)]
struct Info {
    id: u64,
    peer: Option<SocketAddr>,
    request: Option<Box<Request>>,
    protocol: Option<String>,
}

/// Receive state, kept between calls so a receive can stop and resume anywhere.
#[derive(Debug)]
struct Rx {
    /// The frame whose payload is being read.
    frame: Option<FrameProgress>,
    /// The data message in progress: `Some(true)` text, `Some(false)` binary.
    message: Option<bool>,
    fragments: usize,
    buf: Vec<u8>,
    utf8: Utf8Validator,
    control: [u8; 125],
    control_len: usize,
}

#[derive(Debug, Clone, Copy)]
struct FrameProgress {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    len: usize,
    done: usize,
}

/// What one complete frame (or message) amounted to.
enum Event {
    Message(Message),
    Ping,
    Pong,
    Close,
}

/// Masking keys for a client, drawn from the operating system 64 at a time.
struct MaskKeys {
    pool: [u8; 256],
    used: usize,
}

impl MaskKeys {
    fn new() -> Self {
        MaskKeys {
            pool: [0; 256],
            used: 256,
        }
    }

    fn next(&mut self) -> [u8; 4] {
        if self.used == self.pool.len() {
            // RFC 6455 5.3: the masking key MUST be unpredictable, from a strong source of entropy.
            getrandom::fill(&mut self.pool).expect("the operating system's random source failed");
            self.used = 0;
        }
        let k = &self.pool[self.used..self.used + 4];
        self.used += 4;
        [k[0], k[1], k[2], k[3]]
    }
}

impl<S: Transport> WebSocket<S> {
    /// Wraps a stream whose opening handshake has already happened.
    ///
    /// `leftover` holds bytes that arrived right behind the handshake; they are parsed first.
    pub fn from_stream(stream: S, role: Role, config: Config, leftover: &[u8]) -> Self {
        let peer = stream.peer_addr();
        let rbuf = ReadBuf::with_leftover(config.effective_read_buffer(), leftover);
        WebSocket {
            stream,
            role,
            state: State::Open,
            config,
            rbuf,
            rx: Rx {
                frame: None,
                message: None,
                fragments: 0,
                buf: Vec::new(),
                utf8: Utf8Validator::new(),
                control: [0; 125],
                control_len: 0,
            },
            wbuf: Vec::new(),
            keys: MaskKeys::new(),
            peer_close: None,
            close_sent: false,
            read_timeout: None,
            info: Info {
                id: next_id(),
                peer,
                request: None,
                protocol: None,
            },
        }
    }

    pub(crate) fn set_request(&mut self, request: Request) {
        self.info.request = Some(Box::new(request));
    }

    /// Server or client.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Open, closing or closed.
    pub fn state(&self) -> State {
        self.state
    }

    /// The connection's id, as used in log lines.
    pub fn id(&self) -> u64 {
        self.info.id
    }

    /// The peer's address, if the stream has one.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.info.peer
    }

    /// Server side: the upgrade request the client sent.
    pub fn request(&self) -> Option<&Request> {
        self.info.request.as_deref()
    }

    /// Server side: the request path without the query, e.g. `/chat`.
    pub fn path(&self) -> Option<&str> {
        self.request().map(Request::path)
    }

    /// Server side: the request header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request().and_then(|r| r.header(name))
    }

    /// Server side: the `Origin` the client sent, if any.
    pub fn origin(&self) -> Option<&str> {
        self.request().and_then(Request::origin)
    }

    /// The subprotocol agreed in the handshake, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.info.protocol.as_deref()
    }

    /// The peer's close frame, once the peer has sent one.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.peer_close.as_ref()
    }

    /// The configuration this connection runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The stream underneath, e.g. to read socket options.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    // ---------------------------------------------------------------- receiving

    /// Receives the next text or binary message.
    ///
    /// Pings are answered and pongs skipped on the way. Returns `Ok(None)` once the peer has
    /// closed the connection with a close frame (its code is then in [`WebSocket::close_frame`]),
    /// and again on every later call. A protocol violation by the peer fails the connection with
    /// the RFC's close code and returns [`Error::Protocol`].
    pub fn recv(&mut self) -> Result<Option<Message>> {
        if self.read_timeout.is_some() {
            self.set_read_timeout(None)?;
        }
        self.recv_inner()
    }

    /// Like [`WebSocket::recv`], but gives up after `timeout` with [`Error::Timeout`]. The
    /// connection stays usable: a message cut off by the deadline continues on the next call.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Message>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout);
            }
            self.set_read_timeout(Some(left))?;
            match self.recv_inner() {
                Err(Error::Io(e)) if is_timeout_kind(e.kind()) => continue,
                other => return other,
            }
        }
    }

    fn recv_inner(&mut self) -> Result<Option<Message>> {
        loop {
            if self.state == State::Closed {
                return if self.peer_close.is_some() {
                    Ok(None)
                } else {
                    Err(Error::Closed)
                };
            }
            match self.next_event()? {
                Event::Message(m) if self.state == State::Open => return Ok(Some(m)),
                // RFC 6455 1.4: after sending a close frame, data may still arrive; drop it.
                Event::Message(_) => {}
                Event::Ping => {
                    if self.state == State::Open {
                        let (payload, n) = (self.rx.control, self.rx.control_len);
                        self.write_frame(OpCode::Pong, true, &payload[..n])?;
                    }
                }
                // Unsolicited pongs are allowed and ignored (RFC 6455 5.5.3).
                Event::Pong => {}
                Event::Close => {
                    self.on_peer_close()?;
                    return Ok(None);
                }
            }
        }
    }

    /// Reads until one whole message or control frame is complete.
    fn next_event(&mut self) -> Result<Event> {
        loop {
            if self.rx.frame.is_none() {
                match FrameHeader::parse(self.rbuf.data()) {
                    Ok(Some((header, n))) => {
                        self.rbuf.consume(n);
                        if let Err(e) = self.start_frame(header) {
                            return Err(self.fail(e));
                        }
                    }
                    Ok(None) => {
                        self.fill()?;
                        continue;
                    }
                    Err(e) => return Err(self.fail(e)),
                }
            }
            if let Some(event) = self.read_payload()? {
                return Ok(event);
            }
        }
    }

    /// Checks a new frame header against the connection's state and limits.
    fn start_frame(&mut self, h: FrameHeader) -> std::result::Result<(), ProtocolError> {
        // RFC 6455 5.2: RSV bits MUST be 0 unless an extension defines them.
        if h.rsv != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        // RFC 6455 5.1: a server MUST close on an unmasked frame, a client on a masked one.
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if h.len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge);
        }
        let len = h.len as usize;
        let rx = &mut self.rx;
        match h.opcode {
            OpCode::Continuation | OpCode::Text | OpCode::Binary => {
                match (h.opcode, rx.message) {
                    // RFC 6455 5.4: a continuation needs a message in progress, and a new message
                    // may not start until the previous one is finished.
                    (OpCode::Continuation, None) => {
                        return Err(ProtocolError::UnexpectedContinuation);
                    }
                    (OpCode::Text | OpCode::Binary, Some(_)) => {
                        return Err(ProtocolError::ExpectedContinuation);
                    }
                    (_, Some(_)) => {}
                    (opcode, None) => {
                        rx.message = Some(opcode == OpCode::Text);
                        rx.fragments = 0;
                        rx.utf8.reset();
                    }
                }
                if rx.buf.len() + len > self.config.max_message_size {
                    return Err(ProtocolError::MessageTooLarge);
                }
                rx.fragments += 1;
                if rx.fragments > self.config.max_fragments {
                    return Err(ProtocolError::TooManyFragments);
                }
                // One allocation for a single-frame message; the limit check above bounds it.
                rx.buf.reserve(len);
            }
            OpCode::Close | OpCode::Ping | OpCode::Pong => rx.control_len = 0,
        }
        rx.frame = Some(FrameProgress {
            opcode: h.opcode,
            fin: h.fin,
            mask: h.mask,
            len,
            done: 0,
        });
        Ok(())
    }

    /// Moves payload bytes of the current frame into place. Returns an event once the frame
    /// completes a message or is a control frame.
    fn read_payload(&mut self) -> Result<Option<Event>> {
        let Some(mut f) = self.rx.frame else {
            return Ok(None);
        };
        while f.done < f.len {
            let want = f.len - f.done;
            let avail = self.rbuf.data().len();
            let got = if avail > 0 {
                let take = want.min(avail);
                let start = self.rx.buf.len();
                let piece = &self.rbuf.data()[..take];
                if f.opcode.is_control() {
                    let dst = &mut self.rx.control[f.done..f.done + take];
                    dst.copy_from_slice(piece);
                    if let Some(key) = f.mask {
                        apply_mask(dst, key, f.done);
                    }
                    self.rx.control_len += take;
                } else {
                    match f.mask {
                        Some(key) => extend_masked(&mut self.rx.buf, piece, key, f.done),
                        None => self.rx.buf.extend_from_slice(piece),
                    }
                }
                self.rbuf.consume(take);
                Ok(start)
            } else if !f.opcode.is_control() && want >= self.rbuf.capacity() {
                self.read_direct(want, f.mask, f.done)
            } else {
                self.fill().map(|_| self.rx.buf.len())
            };
            // Bytes that landed in the message buffer: unmask (direct reads only; copies were
            // unmasked on the way) and validate them, even if the read then failed.
            let start = match got {
                Ok(start) => start,
                Err(e) => {
                    self.rx.frame = Some(f);
                    return Err(e);
                }
            };
            if !f.opcode.is_control() {
                let added = self.rx.buf.len() - start;
                f.done += added;
                if self.rx.message == Some(true)
                    && self.rx.utf8.feed(&self.rx.buf[start..]).is_err()
                {
                    return Err(self.fail(ProtocolError::InvalidUtf8));
                }
            } else {
                f.done = self.rx.control_len;
            }
        }
        self.rx.frame = None;
        Ok(match f.opcode {
            OpCode::Ping => Some(Event::Ping),
            OpCode::Pong => Some(Event::Pong),
            OpCode::Close => Some(Event::Close),
            _ if !f.fin => None,
            _ => Some(Event::Message(self.finish_message()?)),
        })
    }

    /// Reads a large payload straight into the message buffer, unmasking what arrived.
    /// `offset` is how much of the frame's payload came before, for the mask phase.
    fn read_direct(&mut self, want: usize, mask: Option<[u8; 4]>, offset: usize) -> Result<usize> {
        let start = self.rx.buf.len();
        let result = if self.rx.message == Some(true) {
            // Text: one read at a time so each piece is validated as soon as it arrives.
            let chunk = want.min(TEXT_CHUNK);
            self.rx.buf.resize(start + chunk, 0);
            let r = self.stream.read(&mut self.rx.buf[start..]);
            self.rx.buf.truncate(start + *r.as_ref().unwrap_or(&0));
            r
        } else {
            self.stream.read_to_vec(&mut self.rx.buf, want)
        };
        if let Some(key) = mask {
            apply_mask(&mut self.rx.buf[start..], key, offset);
        }
        match result {
            Ok(0) => Err(self.on_io_error(eof())),
            Ok(_) => Ok(start),
            Err(e) if self.rx.buf.len() > start && is_timeout_kind(e.kind()) => Ok(start),
            Err(e) => Err(self.on_io_error(e)),
        }
    }

    fn finish_message(&mut self) -> Result<Message> {
        let text = self.rx.message.take() == Some(true);
        let buf = std::mem::take(&mut self.rx.buf);
        if !text {
            return Ok(Message::Binary(buf));
        }
        if self.rx.utf8.finish().is_err() {
            return Err(self.fail(ProtocolError::InvalidUtf8));
        }
        match String::from_utf8(buf) {
            Ok(s) => Ok(Message::Text(s)),
            Err(_) => Err(self.fail(ProtocolError::InvalidUtf8)),
        }
    }

    /// One `read` into the read buffer.
    fn fill(&mut self) -> Result<()> {
        match self.rbuf.fill(&mut self.stream) {
            Ok(0) => Err(self.on_io_error(eof())),
            Ok(_) => Ok(()),
            Err(e) => Err(self.on_io_error(e)),
        }
    }

    /// A failed read or write: timeouts leave the connection as it is, anything else ends it.
    fn on_io_error(&mut self, e: io::Error) -> Error {
        if !is_timeout_kind(e.kind()) && e.kind() != io::ErrorKind::Interrupted {
            if self.state != State::Closed {
                log::debug!("ws#{} ended: {e}", self.info.id);
            }
            self.state = State::Closed;
        }
        Error::Io(e)
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        if self.read_timeout != timeout {
            self.stream.set_read_timeout(timeout)?;
            self.read_timeout = timeout;
        }
        Ok(())
    }

    /// The peer's close frame arrived: check it, answer it, end the connection.
    fn on_peer_close(&mut self) -> Result<()> {
        let frame = match close::parse(&self.rx.control[..self.rx.control_len]) {
            Ok(frame) => frame,
            Err(e) => return Err(self.fail(e)),
        };
        log::debug!(
            "ws#{} peer closed with {} {:?}",
            self.info.id,
            frame.code,
            frame.reason
        );
        if !self.close_sent {
            // RFC 6455 5.5.1: answer with a close frame, typically echoing the status code.
            let code = (frame.code != CloseCode::NO_STATUS).then_some(frame.code);
            let _ = self.write_close(code, "");
        }
        self.peer_close = Some(frame);
        self.end_tcp();
        Ok(())
    }

    /// Fails the connection (RFC 6455 7.1.7): sends the violation's close code, ends TCP, and
    /// returns the error to hand to the caller.
    fn fail(&mut self, e: ProtocolError) -> Error {
        log::debug!("ws#{} failing: {e}", self.info.id);
        if self.state == State::Open && !self.close_sent {
            let _ = self.write_close(Some(e.close_code()), "");
        }
        self.end_tcp();
        Error::Protocol(e)
    }

    /// The lingering TCP close: shut down our sending side (the server first, RFC 6455 7.1.1),
    /// then read and discard until the peer's end-of-stream or the close timeout.
    fn end_tcp(&mut self) {
        self.state = State::Closed;
        let deadline = Instant::now() + self.config.close_timeout;
        if self.role == Role::Server {
            let _ = self.stream.shutdown_write();
        }
        let mut sink = [0u8; 512];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                break;
            }
            self.read_timeout = Some(left);
            match self.stream.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if self.role == Role::Client {
            let _ = self.stream.shutdown_write();
        }
    }

    // ---------------------------------------------------------------- sending

    /// Sends a text or binary message in one frame: `&str`/`String` as text, `&[u8]`/`Vec<u8>`
    /// as binary, a [`Message`] as what it is. The payload is not copied for large messages
    /// and never modified.
    pub fn send<M: ToMessage>(&mut self, msg: M) -> Result<()> {
        self.check_open()?;
        let msg = msg.to_message();
        let opcode = match msg {
            MessageRef::Text(_) => OpCode::Text,
            MessageRef::Binary(_) => OpCode::Binary,
        };
        self.write_frame(opcode, true, msg.bytes())
    }

    /// Sends one message as several frames, one per item: the first item decides text or binary.
    ///
    /// An empty iterator sends nothing. Items of the other kind are refused with
    /// [`Error::InvalidInput`]; as part of the message is already out, the connection is then
    /// closed with 1011.
    pub fn send_fragmented<I>(&mut self, fragments: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: ToMessage,
    {
        self.check_open()?;
        let mut iter = fragments.into_iter().peekable();
        let mut first: Option<bool> = None;
        while let Some(item) = iter.next() {
            let part = item.to_message();
            let is_text = matches!(part, MessageRef::Text(_));
            let opcode = match first {
                None => {
                    first = Some(is_text);
                    if is_text {
                        OpCode::Text
                    } else {
                        OpCode::Binary
                    }
                }
                Some(kind) if kind == is_text => OpCode::Continuation,
                Some(_) => {
                    let _ = self.close(CloseCode::INTERNAL_ERROR, "");
                    return Err(Error::InvalidInput(InputError::MixedFragments));
                }
            };
            self.write_frame(opcode, iter.peek().is_none(), part.bytes())?;
        }
        Ok(())
    }

    /// Sends a ping with up to 125 bytes of payload. The peer's pong is consumed by `recv`.
    pub fn ping(&mut self, payload: &[u8]) -> Result<()> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Sends an unsolicited pong with up to 125 bytes of payload (a one-way heartbeat).
    pub fn pong(&mut self, payload: &[u8]) -> Result<()> {
        self.send_control(OpCode::Pong, payload)
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<()> {
        self.check_open()?;
        if payload.len() > 125 {
            return Err(Error::InvalidInput(InputError::ControlTooLong));
        }
        self.write_frame(opcode, true, payload)
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
        close::check_outgoing(code, reason).map_err(Error::InvalidInput)?;
        if self.state == State::Closed {
            return Ok(());
        }
        if !self.close_sent {
            self.write_close(Some(code), reason)?;
        }
        self.state = State::Closing;
        let deadline = Instant::now() + self.config.close_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::debug!("ws#{} peer did not answer our close in time", self.info.id);
                self.end_tcp();
                return Err(Error::Timeout);
            }
            self.set_read_timeout(Some(left))?;
            match self.next_event() {
                Ok(Event::Close) => return self.on_peer_close(),
                Ok(_) => {}
                Err(e) if e.is_timeout() && self.state != State::Closed => {}
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    // The peer went away after our close; nothing more to wait for.
                    self.state = State::Closed;
                    return Ok(());
                }
                Err(e) => {
                    self.state = State::Closed;
                    return Err(e);
                }
            }
        }
    }

    fn check_open(&self) -> Result<()> {
        match self.state {
            State::Open => Ok(()),
            State::Closing | State::Closed => Err(Error::Closed),
        }
    }

    fn write_close(&mut self, code: Option<CloseCode>, reason: &str) -> Result<()> {
        let mut payload = [0u8; 125];
        let n = close::encode(code, reason, &mut payload);
        self.close_sent = true;
        self.write_frame(OpCode::Close, true, &payload[..n])
    }

    /// Writes one frame; it reaches the kernel in one call unless it is large.
    fn write_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) -> Result<()> {
        let mask = (self.role == Role::Client).then(|| self.keys.next());
        let header = FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask,
            len: payload.len() as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let head_len = header.encode(&mut head);
        let result = match mask {
            None if payload.len() > COPY_LIMIT => {
                write_all_vectored(&mut self.stream, &head[..head_len], payload)
            }
            None => {
                self.wbuf.clear();
                self.wbuf.extend_from_slice(&head[..head_len]);
                self.wbuf.extend_from_slice(payload);
                self.stream.write_all(&self.wbuf)
            }
            Some(key) => {
                self.wbuf.clear();
                self.wbuf.extend_from_slice(&head[..head_len]);
                let mut offset = 0;
                let mut result = Ok(());
                for chunk in payload.chunks(MASK_CHUNK) {
                    extend_masked(&mut self.wbuf, chunk, key, offset);
                    offset += chunk.len();
                    result = self.stream.write_all(&self.wbuf);
                    self.wbuf.clear();
                    if result.is_err() {
                        break;
                    }
                }
                if payload.is_empty() {
                    result = self.stream.write_all(&self.wbuf);
                }
                result
            }
        };
        if self.wbuf.capacity() > 2 * MASK_CHUNK {
            self.wbuf = Vec::new();
        }
        result
            .and_then(|()| self.stream.flush())
            .map_err(|e| self.on_io_error(e))
    }
}

fn write_all_vectored<W: Write + ?Sized>(w: &mut W, head: &[u8], body: &[u8]) -> io::Result<()> {
    let mut bufs = [IoSlice::new(head), IoSlice::new(body)];
    let mut bufs = &mut bufs[..];
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed without a close frame",
    )
}

impl<S: Transport> Iterator for WebSocket<S> {
    type Item = Result<Message>;

    /// The next message; `None` once the connection is closed (normally or after an error, which
    /// is yielded once first).
    fn next(&mut self) -> Option<Self::Item> {
        if self.state == State::Closed {
            return None;
        }
        self.recv().transpose()
    }
}

impl<S: Transport> fmt::Display for WebSocket<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.role {
            Role::Server => "server",
            Role::Client => "client",
        };
        let state = match self.state {
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
            .field("id", &self.info.id)
            .field("role", &self.role)
            .field("state", &self.state)
            .field("peer", &self.info.peer)
            .finish_non_exhaustive()
    }
}

impl<S: Transport> Drop for WebSocket<S> {
    /// A connection dropped while open says goodbye with 1001 ("going away"), without waiting for
    /// an answer; the write is bounded by the close timeout.
    fn drop(&mut self) {
        if self.state == State::Open && !self.close_sent {
            let _ = self
                .stream
                .set_write_timeout(Some(self.config.close_timeout));
            let _ = self.write_close(Some(CloseCode::GOING_AWAY), "");
            let _ = self.stream.shutdown_write();
        }
    }
}
