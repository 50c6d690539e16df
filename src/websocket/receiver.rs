//! Frame assembly: turns bytes from a stream into messages and control frames. It reads but
//! never writes; what to answer is the caller's business.
//!
//! Each frame header goes through the receive rules ([`check_frame`]); its payload then moves,
//! through one loop, into the frame's [`Sink`]: the control buffer, the message buffer (text
//! validated as it arrives) or, for a compressed message, the inflater's input (inflated into the
//! message buffer as it arrives; see `inflate`). All state lives in the struct, so a read that
//! fails with a timeout can be retried and the frame continues where it stopped.

use std::io;

use super::Role;
use super::budget::Account;
use crate::config::Config;
use crate::error::{ProtocolError, is_timeout_kind};
use crate::io::{ReadBuf, Transport};
use crate::message::{Message, MessageKind};
use crate::proto::frame::{FrameHeader, OpCode};
use crate::proto::mask::{apply_mask, extend_masked};
use crate::proto::rules::{FrameVerdict, Limits, MessageState, check_frame, describe};
use crate::proto::utf8::Utf8Validator;

#[cfg(feature = "deflate")]
mod inflate;
#[cfg(feature = "deflate")]
use inflate::Inflate;
mod stream;
use stream::Streaming;

/// Largest piece read directly into a text message or the inflater's input: such bytes are
/// validated (or inflated) after each read, so invalid data fails the message as soon as it
/// arrives.
const TEXT_CHUNK: usize = 64 << 10;

/// The smallest step by which a message's buffer grows for a direct read (a payload larger than
/// the read buffer). Later steps double with the buffer, so its capacity stays within twice the
/// bytes received plus one step, whatever a frame header announces.
const GROW_STEP: usize = 64 << 10;

/// One complete thing the peer sent.
#[derive(Debug)]
pub(crate) enum Event {
    /// A whole data message is assembled; take it with `take_message` or `swap_message`.
    Message(MessageKind),
    /// A streamed message started, or more of its bytes wait in the stream's chunk (see
    /// `next_chunk`).
    Data,
    Ping,
    Pong,
    Close,
}

/// Why no event came.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The peer broke the protocol; the connection must be failed with its close code.
    Protocol(ProtocolError),
    /// The stream failed, ended, or a read timed out (then the receive can be retried).
    Io(io::Error),
}

impl From<ProtocolError> for Fault {
    fn from(e: ProtocolError) -> Self {
        Fault::Protocol(e)
    }
}

/// Where the payload of the frame being read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// The control buffer: ping, pong and close payloads, 125 bytes at most.
    Control,
    /// The message buffer; text is validated as it arrives.
    Message,
    /// The inflater's input, inflated into the message buffer as it arrives.
    #[cfg(feature = "deflate")]
    Inflate,
}

#[derive(Debug, Clone, Copy)]
struct FrameProgress {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    len: usize,
    done: usize,
    sink: Sink,
}

/// The receiving half of a connection's state.
#[derive(Debug)]
pub(crate) struct Receiver {
    limits: Limits,
    rbuf: ReadBuf,
    /// The frame whose payload is being read.
    frame: Option<FrameProgress>,
    /// The data message in progress, as the receive rules see it.
    msg: MessageState,
    buf: Vec<u8>,
    /// What `buf`'s growth has charged to the shared memory budget, if there is one.
    account: Account,
    utf8: Utf8Validator,
    control: [u8; 125],
    control_len: usize,
    /// Bytes read from the stream so far, so the heartbeat knows when the peer was last heard.
    received: u64,
    /// The frame header the receive rules refused, until the violation is described.
    refused: Option<FrameHeader>,
    /// What the last violation was, in words (sizes and limits), for the close reason.
    violation: String,
    /// permessage-deflate, when negotiated; `None` keeps the plain path free of it.
    #[cfg(feature = "deflate")]
    inflate: Option<Box<Inflate>>,
    /// A streamed receive, while one is on; `None` keeps the whole-message path free of it.
    stream: Option<Box<Streaming>>,
}

impl Receiver {
    pub fn new(role: Role, config: &Config, leftover: &[u8]) -> Self {
        Receiver {
            limits: Limits {
                role,
                max_frame: config.max_frame_size,
                max_message: config.max_message_size,
                max_fragments: config.max_fragments,
                compression: false,
            },
            rbuf: ReadBuf::with_leftover(config.effective_read_buffer(), leftover),
            frame: None,
            msg: MessageState::default(),
            buf: Vec::new(),
            account: Account::new(config.memory_budget.clone()),
            utf8: Utf8Validator::new(),
            control: [0; 125],
            control_len: 0,
            received: 0,
            refused: None,
            violation: String::new(),
            #[cfg(feature = "deflate")]
            inflate: None,
            stream: None,
        }
    }

    /// Bytes read from the stream so far.
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    /// What the peer's last violation was, in words, once `next_event` returned one.
    pub fn violation(&self) -> &str {
        &self.violation
    }

    /// The payload of the last control frame returned.
    pub fn control_payload(&self) -> &[u8] {
        &self.control[..self.control_len]
    }

    /// Reads until one whole message or control frame is complete. A failure that ends the
    /// connection frees the message in progress (and gives its bytes back to the budget); a
    /// timeout keeps it for the next call.
    pub fn next_event<R: Transport + ?Sized>(&mut self, stream: &mut R) -> Result<Event, Fault> {
        let result = self.next_event_or_fault(stream);
        if let Err(fault) = &result {
            let retry = matches!(fault, Fault::Io(e)
                if is_timeout_kind(e.kind()) || e.kind() == io::ErrorKind::Interrupted);
            if let Fault::Protocol(e) = fault {
                let refused = self.refused.take();
                self.violation = describe(*e, refused.as_ref(), &self.msg, &self.limits);
            }
            if !retry {
                self.drop_message();
            }
        }
        result
    }

    /// Whether the read buffer holds what the next `next_event` returns without reading: a
    /// control frame, or the rest of a message up to its final frame, every frame whole. False
    /// when unsure (a frame in progress, a streamed receive), so a caller that writes before
    /// reading writes too early at worst, never too late.
    pub fn event_buffered(&self) -> bool {
        if self.frame.is_some() || self.stream.is_some() {
            return false;
        }
        let mut data = self.rbuf.data();
        loop {
            let Ok(Some((h, n))) = FrameHeader::parse(data) else {
                return false;
            };
            let Some(end) = usize::try_from(h.len).ok().and_then(|l| l.checked_add(n)) else {
                return false;
            };
            if data.len() < end {
                return false;
            }
            if h.fin || h.opcode.is_control() {
                return true;
            }
            data = &data[end..];
        }
    }

    fn next_event_or_fault<R: Transport + ?Sized>(
        &mut self,
        stream: &mut R,
    ) -> Result<Event, Fault> {
        loop {
            if self.frame.is_none() {
                match FrameHeader::parse(self.rbuf.data())? {
                    Some((header, n)) => {
                        self.rbuf.consume(n);
                        self.start_frame(header)?;
                    }
                    None => {
                        self.received += fill(&mut self.rbuf, stream)? as u64;
                        continue;
                    }
                }
            }
            if let Some(event) = self.read_payload(stream)? {
                return Ok(event);
            }
        }
    }

    /// Checks a new frame header against the receive rules and decides where its payload goes.
    #[inline]
    fn start_frame(&mut self, h: FrameHeader) -> Result<(), ProtocolError> {
        let verdict = check_frame(&h, &self.msg, &self.limits).inspect_err(|_| {
            self.refused = Some(h);
        })?;
        let sink = match verdict {
            FrameVerdict::Control => {
                self.control_len = 0;
                Sink::Control
            }
            FrameVerdict::Start(next) => {
                self.msg = next;
                self.utf8.reset();
                self.data_sink()
            }
            FrameVerdict::Continue(next) => {
                self.msg = next;
                self.data_sink()
            }
        };
        // Nothing is reserved from the announced length: a header is 2 to 14 bytes, and a peer
        // may never send the payload. The buffer grows as the bytes arrive.
        self.frame = Some(FrameProgress {
            opcode: h.opcode,
            fin: h.fin,
            mask: h.mask,
            // At most `max_frame`, which the rules checked.
            len: h.len as usize,
            done: 0,
            sink,
        });
        Ok(())
    }

    /// Where the payload of the message in progress goes.
    fn data_sink(&self) -> Sink {
        #[cfg(feature = "deflate")]
        if self.msg.compressed {
            return Sink::Inflate;
        }
        Sink::Message
    }

    /// Moves payload bytes of the current frame into its sink. Returns an event once the frame
    /// completes a message or is a control frame.
    fn read_payload<R: Transport + ?Sized>(
        &mut self,
        stream: &mut R,
    ) -> Result<Option<Event>, Fault> {
        let Some(mut f) = self.frame else {
            return Ok(None);
        };
        while f.done < f.len {
            let avail = self.rbuf.data().len();
            let (n, io_result) = if avail > 0 {
                (self.take_buffered(&f, avail)?, Ok(()))
            } else if f.sink != Sink::Control && f.len - f.done >= self.rbuf.capacity() {
                self.read_direct(stream, &f)
            } else {
                let filled = fill(&mut self.rbuf, stream);
                (0, filled.map(|n| self.received += n as u64))
            };
            f.done += n;
            // Validate (or inflate) whatever arrived, even if the read then failed.
            self.absorb(f.sink, n)?;
            if let Err(e) = io_result {
                self.frame = Some(f);
                return Err(e);
            }
        }
        self.frame = None;
        Ok(match f.opcode {
            OpCode::Ping => Some(Event::Ping),
            OpCode::Pong => Some(Event::Pong),
            OpCode::Close => Some(Event::Close),
            _ if !f.fin => None,
            _ => Some(Event::Message(self.finish_message(f.sink)?)),
        })
    }

    /// Moves the frame's bytes that are already in the read buffer (`avail` of them) into its
    /// sink, unmasking them; returns how many.
    #[inline]
    fn take_buffered(&mut self, f: &FrameProgress, avail: usize) -> Result<usize, ProtocolError> {
        let want = f.len - f.done;
        let take = want.min(avail);
        if f.sink == Sink::Message {
            self.reserve(take, want, f.fin)?;
        }
        let piece = &self.rbuf.data()[..take];
        match f.sink {
            Sink::Control => {
                let dst = &mut self.control[f.done..f.done + take];
                dst.copy_from_slice(piece);
                if let Some(key) = f.mask {
                    apply_mask(dst, key, f.done);
                }
            }
            Sink::Message => extend(&mut self.buf, piece, f),
            #[cfg(feature = "deflate")]
            Sink::Inflate => {
                let input = &mut self.inflate.as_deref_mut().expect("inflating").input;
                input.clear();
                extend(input, piece, f);
            }
        }
        self.rbuf.consume(take);
        Ok(take)
    }

    /// Reads a large payload past the read buffer, straight into its sink, and unmasks what
    /// arrived; returns how many bytes did, and how the reading went. Binary goes into the
    /// message buffer as far as it has room; text and compressed bytes come one read of at most
    /// `TEXT_CHUNK` at a time, so each piece is checked as soon as it arrives.
    fn read_direct<R: Transport + ?Sized>(
        &mut self,
        stream: &mut R,
        f: &FrameProgress,
    ) -> (usize, Result<(), Fault>) {
        let want = f.len - f.done;
        let (dst, result) = match f.sink {
            Sink::Message => {
                let room = match self.make_room(want, f.fin) {
                    Ok(room) => room,
                    Err(e) => return (0, Err(e.into())),
                };
                let start = self.buf.len();
                let result = if self.msg.kind == Some(MessageKind::Text) {
                    read_once(stream, &mut self.buf, room.min(TEXT_CHUNK))
                } else {
                    stream.read_to_vec(&mut self.buf, room)
                };
                (&mut self.buf[start..], result)
            }
            #[cfg(feature = "deflate")]
            Sink::Inflate => {
                let input = &mut self.inflate.as_deref_mut().expect("inflating").input;
                input.clear();
                let result = read_once(stream, input, want.min(TEXT_CHUNK));
                (&mut input[..], result)
            }
            Sink::Control => unreachable!("a control payload fits the read buffer"),
        };
        if let Some(key) = f.mask {
            apply_mask(dst, key, f.done);
        }
        let n = dst.len();
        self.received += n as u64;
        (n, read_outcome(result))
    }

    /// Checks the `n` payload bytes that just reached the frame's sink: text for UTF-8,
    /// compressed bytes by inflating them.
    #[inline]
    fn absorb(&mut self, sink: Sink, n: usize) -> Result<(), ProtocolError> {
        if n == 0 {
            return Ok(());
        }
        match sink {
            Sink::Control => self.control_len += n,
            Sink::Message => {
                let text = self.msg.kind == Some(MessageKind::Text);
                if text && self.utf8.feed(&self.buf[self.buf.len() - n..]).is_err() {
                    return Err(ProtocolError::InvalidUtf8);
                }
            }
            #[cfg(feature = "deflate")]
            Sink::Inflate => return self.inflate_input(),
        }
        Ok(())
    }

    /// How many of the `want` payload bytes to read straight into the message buffer now: what
    /// fits, after growing the buffer if it is full.
    fn make_room(&mut self, want: usize, last: bool) -> Result<usize, ProtocolError> {
        if self.buf.len() == self.buf.capacity() {
            self.reserve(want.min(GROW_STEP), want, last)?;
        }
        Ok(want.min(self.buf.capacity() - self.buf.len()))
    }

    /// Makes room for `extra` more bytes in the message buffer. When it must grow, it grows
    /// exactly, by its own size (at least by `extra`), but in the message's last frame (`last`)
    /// not past the `left` bytes the frame still brings, and never past the message limit.
    /// Memory follows the bytes that arrived, never the length a header announced, and a large
    /// message costs only a few reallocations. The growth is charged to the budget first.
    fn reserve(&mut self, extra: usize, left: usize, last: bool) -> Result<(), ProtocolError> {
        let (len, cap) = (self.buf.len(), self.buf.capacity());
        if cap - len >= extra {
            return Ok(());
        }
        let double = if last { cap.min(left) } else { cap };
        let target = (len + extra.max(double))
            .min(self.limits.max_message)
            .max(len + extra);
        if !self.account.grow(cap, target) {
            return Err(ProtocolError::OverMemoryBudget);
        }
        self.buf.reserve_exact(target - len);
        // Should the allocator round up, the budget still sees the real capacity.
        let real = self.buf.capacity();
        if real > target {
            self.account.force(target, real);
        }
        Ok(())
    }

    /// Frees the message in progress: the connection failed.
    fn drop_message(&mut self) {
        self.buf = Vec::new();
        self.account.release();
        self.msg = MessageState::default();
        self.frame = None;
    }

    /// Ends the message in progress (its last frame went to `sink`), checking that text did not
    /// stop inside a code point.
    #[inline]
    fn finish_message(&mut self, sink: Sink) -> Result<MessageKind, ProtocolError> {
        #[cfg(feature = "deflate")]
        if sink == Sink::Inflate {
            self.finish_inflate()?;
        }
        let _ = sink;
        let kind = std::mem::take(&mut self.msg).kind;
        let kind = kind.expect("a data frame belongs to a message");
        if kind == MessageKind::Text {
            self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(kind)
    }

    /// The message just completed, as an owned `Message`; its buffer leaves with it.
    pub fn take_message(&mut self, kind: MessageKind) -> Message {
        let buf = std::mem::take(&mut self.buf);
        self.account.release();
        if kind == MessageKind::Binary {
            return Message::Binary(buf);
        }
        // Validated as it arrived; std checks once more, as safe code must.
        match String::from_utf8(buf) {
            Ok(s) => Message::Text(s),
            Err(e) => Message::Binary(e.into_bytes()),
        }
    }

    /// The message just completed, swapped into `out`; `out`'s old buffer (cleared, capacity
    /// kept) receives the next message, so a loop of `recv_into` allocates nothing once both
    /// buffers are large enough.
    pub fn swap_message(&mut self, out: &mut Vec<u8>) {
        std::mem::swap(&mut self.buf, out);
        self.buf.clear();
        // The buffer given back was the caller's; it is not charged until it grows.
        self.account.release();
    }
}

/// Appends a piece of the frame's payload to `dst`, unmasked.
#[inline]
fn extend(dst: &mut Vec<u8>, piece: &[u8], f: &FrameProgress) {
    match f.mask {
        Some(key) => extend_masked(dst, piece, key, f.done),
        None => dst.extend_from_slice(piece),
    }
}

/// One `read` appending at most `max` bytes to `dst`.
fn read_once<R: Transport + ?Sized>(
    stream: &mut R,
    dst: &mut Vec<u8>,
    max: usize,
) -> io::Result<usize> {
    let start = dst.len();
    dst.resize(start + max, 0);
    let result = stream.read(&mut dst[start..]);
    dst.truncate(start + *result.as_ref().unwrap_or(&0));
    result
}

/// How a read straight into a frame's sink went; end-of-stream is an error here. Bytes that
/// came before a failure (a timeout) count all the same: the caller takes them in before it
/// hands the failure on.
fn read_outcome(result: io::Result<usize>) -> Result<(), Fault> {
    match result {
        Ok(0) => Err(Fault::Io(eof())),
        Ok(_) => Ok(()),
        Err(e) => Err(Fault::Io(e)),
    }
}

/// One `read` into the read buffer; end-of-stream is an error here.
fn fill<R: Transport + ?Sized>(rbuf: &mut ReadBuf, stream: &mut R) -> Result<usize, Fault> {
    match rbuf.fill(stream) {
        Ok(0) => Err(Fault::Io(eof())),
        Ok(n) => Ok(n),
        Err(e) => Err(Fault::Io(e)),
    }
}

/// The error for a connection that ended without a close frame (1006, abnormal closure).
pub(crate) fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed without a close frame",
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::proto::frame::MAX_HEADER_LEN;

    fn raw_frame(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut head = [0u8; MAX_HEADER_LEN];
        let header = FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask: Some([1, 2, 3, 4]),
            len: payload.len() as u64,
        };
        let n = header.encode(&mut head);
        [&head[..n], payload].concat()
    }

    #[test]
    fn an_event_is_buffered_only_once_its_frames_are_whole() {
        let text = raw_frame(OpCode::Text, true, b"hello");
        let start = raw_frame(OpCode::Binary, false, &[7; 300]);
        let ping = raw_frame(OpCode::Ping, true, b"p");
        let end = raw_frame(OpCode::Continuation, true, b"!");
        // (bytes, whether the next event needs no read); every shorter prefix needs one.
        let cases: [(Vec<u8>, bool); 5] = [
            (text.clone(), true),
            (start.clone(), false),
            ([&start[..], &ping[..]].concat(), true),
            ([&start[..], &end[..]].concat(), true),
            ([&text[..], &start[..]].concat(), true),
        ];
        let config = Config::default();
        for (bytes, whole) in cases {
            let rx = Receiver::new(Role::Server, &config, &bytes);
            assert_eq!(rx.event_buffered(), whole, "{bytes:?}");
            let first = FrameHeader::parse(&bytes).unwrap().unwrap();
            let first_len = first.1 + first.0.len as usize;
            for cut in 0..first_len.min(bytes.len()) {
                let rx = Receiver::new(Role::Server, &config, &bytes[..cut]);
                assert!(!rx.event_buffered(), "cut at {cut} of {bytes:?}");
            }
        }
    }

    /// The test peers below only serve reads: what the receiver writes (pongs, closes) goes
    /// nowhere, and as transports they have no options to set.
    macro_rules! read_only_transport {
        ($($peer:ty),*) => {$(
            impl io::Write for $peer {
                fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                    Ok(b.len())
                }
                fn flush(&mut self) -> io::Result<()> {
                    Ok(())
                }
            }

            impl Transport for $peer {}
        )*};
    }

    /// Serves its bytes in reads of at most `piece`, then times out (a peer that went quiet).
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        piece: usize,
    }

    impl io::Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out.len().min(self.piece).min(self.data.len() - self.at);
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    /// The header of a masked frame announcing `len` bytes, followed by `sent` payload bytes.
    fn announcing(opcode: OpCode, len: u64, sent: usize) -> Vec<u8> {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: Some([1, 2, 3, 4]),
            len,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut head);
        let mut wire = head[..n].to_vec();
        wire.resize(n + sent, b'a');
        wire
    }

    #[test]
    fn message_buffer_grows_with_the_bytes_that_arrived() {
        let announced = 64u64 << 20;
        let limits = Config::default()
            .max_frame_size(announced as usize)
            .max_message_size(announced as usize);
        for opcode in [OpCode::Binary, OpCode::Text] {
            for sent in [0, 1, 300, 9000, GROW_STEP + 1, 1 << 20, 3 << 20] {
                for piece in [7, 8 << 10, 1 << 20] {
                    if piece * 1000 < sent {
                        continue;
                    }
                    let mut rx = Receiver::new(Role::Server, &limits, b"");
                    let mut stream = Trickle {
                        data: announcing(opcode, announced, sent),
                        at: 0,
                        piece,
                    };
                    // Every byte is taken, then the quiet peer times the receive out.
                    while stream.at < stream.data.len() {
                        match rx.next_event(&mut stream) {
                            Err(Fault::Io(e)) if is_timeout_kind(e.kind()) => {}
                            other => panic!("{other:?}"),
                        }
                    }
                    let (len, cap) = (rx.buf.len(), rx.buf.capacity());
                    assert!(len <= sent, "{opcode:?} sent {sent}: {len} buffered");
                    assert!(
                        cap <= 2 * sent + GROW_STEP,
                        "{opcode:?} sent {sent} in pieces of {piece}: capacity {cap}"
                    );
                }
            }
        }
    }

    #[test]
    fn growth_is_charged_to_the_budget_and_given_back() {
        let budget = crate::MemoryBudget::new(300 << 10);
        let config = Config::default().memory_budget(Some(budget.clone()));
        // A message within the budget: charged while it grows, given back when taken.
        let mut rx = Receiver::new(Role::Server, &config, b"");
        let mut stream = Trickle {
            data: announcing(OpCode::Binary, 200 << 10, 200 << 10),
            at: 0,
            piece: 16 << 10,
        };
        let event = rx.next_event(&mut stream);
        assert!(
            matches!(event, Ok(Event::Message(MessageKind::Binary))),
            "{event:?}"
        );
        assert_eq!(budget.used(), rx.buf.capacity());
        assert_eq!(rx.take_message(MessageKind::Binary).len(), 200 << 10);
        assert_eq!(budget.used(), 0);
        // One past it: refused, and nothing stays charged.
        let mut stream = Trickle {
            data: announcing(OpCode::Binary, 1 << 20, 1 << 20),
            at: 0,
            piece: 16 << 10,
        };
        let event = rx.next_event(&mut stream);
        assert!(
            matches!(event, Err(Fault::Protocol(ProtocolError::OverMemoryBudget))),
            "{event:?}"
        );
        assert_eq!(budget.used(), 0);
        // A message cut off by a timeout keeps its charge until the receiver is dropped.
        let mut rx = Receiver::new(Role::Server, &config, b"");
        let mut stream = Trickle {
            data: announcing(OpCode::Text, 1 << 20, 100 << 10),
            at: 0,
            piece: 16 << 10,
        };
        while stream.at < stream.data.len() {
            match rx.next_event(&mut stream) {
                Err(Fault::Io(e)) if is_timeout_kind(e.kind()) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(budget.used() >= 100 << 10);
        drop(rx);
        assert_eq!(budget.used(), 0);
    }

    /// Serves its bytes in reads of at most `piece`, each followed by a read that times out.
    pub(super) struct Stutter {
        pub(super) data: Vec<u8>,
        pub(super) at: usize,
        pub(super) piece: usize,
        pub(super) stall: bool,
    }

    impl io::Read for Stutter {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.stall = !self.stall;
            let n = out.len().min(self.piece).min(self.data.len() - self.at);
            if !self.stall || n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    /// Serves `pieces` one per read (the rest of a piece stays for the next), counting reads.
    pub(super) struct Pieces {
        pub(super) pieces: std::collections::VecDeque<Vec<u8>>,
        pub(super) reads: usize,
    }

    impl io::Read for Pieces {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            let Some(mut piece) = self.pieces.pop_front() else {
                return Err(io::ErrorKind::WouldBlock.into());
            };
            let n = piece.len().min(out.len());
            out[..n].copy_from_slice(&piece[..n]);
            if n < piece.len() {
                self.pieces.push_front(piece.split_off(n));
            }
            Ok(n)
        }
    }

    read_only_transport!(Trickle, Stutter, Pieces);

    /// A binary frame of `len` bytes whose last 100 come in a second piece, with 50 small text
    /// messages ("m0" to "m49") behind them.
    pub(super) fn late_tail(len: usize) -> Pieces {
        let first = masked(OpCode::Binary, true, 0, &vec![7; len]);
        let (head, tail) = first.split_at(first.len() - 100);
        let mut second = tail.to_vec();
        for i in 0..50 {
            second.extend(masked(OpCode::Text, true, 0, format!("m{i}").as_bytes()));
        }
        Pieces {
            pieces: [head.to_vec(), second].into(),
            reads: 0,
        }
    }

    /// How many reads it takes to receive [`late_tail`]`(len)` as whole messages.
    fn reads_for_a_late_tail(len: usize) -> usize {
        let mut stream = late_tail(len);
        let mut rx = Receiver::new(Role::Server, &Config::default(), b"");
        for i in 0..51 {
            match rx.next_event(&mut stream) {
                Ok(Event::Message(kind)) => drop(rx.take_message(kind)),
                other => panic!("message {i}: {other:?}"),
            }
        }
        stream.reads
    }

    #[test]
    fn the_last_bytes_of_a_payload_are_read_with_what_follows() {
        // The read buffer holds 8 KiB. The end of a frame, when it is less than that, is read
        // into the buffer with the frames behind it, not on its own: a 100-byte frame whose
        // header came alone takes two reads in all; a 12,000-byte frame, whose first part
        // fills the buffer once and then comes to less than a buffer, three.
        assert_eq!(reads_for_a_late_tail(100), 2);
        assert_eq!(reads_for_a_late_tail(12_000), 3);
    }

    #[test]
    fn a_large_payload_is_read_straight_into_the_message_not_through_the_buffer() {
        // 1 MiB arriving at once: after the first buffer's worth it goes straight into the
        // message in a few large reads, not in 128 reads of 8 KiB through the read buffer.
        let reads = reads_for_a_late_tail(1 << 20);
        assert!(reads < 40, "{reads} reads for 1 MiB");
    }

    /// A masked frame carrying `payload`.
    pub(super) fn masked(opcode: OpCode, fin: bool, rsv: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask: Some(key),
            len: payload.len() as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut head);
        let mut wire = head[..n].to_vec();
        let start = wire.len();
        wire.extend_from_slice(payload);
        apply_mask(&mut wire[start..], key, 0);
        wire
    }

    /// Receives everything in `wire`, in reads of `piece` bytes with a timeout after each,
    /// and lists what came: messages by kind and bytes, control frames by opcode and payload.
    pub(super) fn receive_all(
        rx: &mut Receiver,
        wire: &[u8],
        piece: usize,
    ) -> Vec<(String, Vec<u8>)> {
        let mut stream = Stutter {
            data: wire.to_vec(),
            at: 0,
            piece,
            stall: false,
        };
        let mut got = Vec::new();
        while got.last().is_none_or(|(what, _)| what != "Close") {
            match rx.next_event(&mut stream) {
                Ok(Event::Message(kind)) => {
                    let message = rx.take_message(kind);
                    got.push((format!("{kind:?}"), message.into_bytes()));
                }
                Ok(event) => got.push((format!("{event:?}"), rx.control_payload().to_vec())),
                Err(Fault::Io(e)) if is_timeout_kind(e.kind()) => {}
                Err(e) => panic!("piece {piece}: {e:?}"),
            }
        }
        assert_eq!(stream.at, wire.len());
        got
    }

    /// Messages that take every way through the payload loop: through the read buffer and past
    /// it, text and binary, fragmented with control frames between the fragments.
    pub(super) fn messages() -> (String, Vec<u8>, String) {
        let text: String = "h\u{e9}llo w\u{f6}rld \u{1f600} ".repeat(40);
        let binary: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        (text, binary, "caf\u{e9}".to_owned())
    }

    pub(super) fn expected(text: &str, binary: &[u8], short: &str) -> Vec<(String, Vec<u8>)> {
        let row = |what: &str, bytes: &[u8]| (what.to_owned(), bytes.to_vec());
        vec![
            row("Ping", b"p1"),
            row("Text", text.as_bytes()),
            row("Binary", binary),
            row("Pong", b""),
            row("Text", short.as_bytes()),
            row("Close", &[3, 232]),
        ]
    }

    #[test]
    fn every_read_size_with_timeouts_between_gives_the_same_events() {
        let config = Config {
            read_buffer_size: 256,
            ..Config::default()
        };
        let (text, binary, short) = messages();
        let (a, b) = text.as_bytes().split_at(500);
        let wire = [
            masked(OpCode::Ping, true, 0, b"p1"),
            masked(OpCode::Text, false, 0, &a[..100]),
            masked(OpCode::Continuation, false, 0, &a[100..]),
            masked(OpCode::Ping, true, 0, b"p2"),
            masked(OpCode::Continuation, true, 0, b),
            masked(OpCode::Binary, true, 0, &binary),
            masked(OpCode::Pong, true, 0, b""),
            masked(OpCode::Text, true, 0, short.as_bytes()),
            masked(OpCode::Close, true, 0, &[3, 232]),
        ]
        .concat();
        let mut want = expected(&text, &binary, &short);
        want.insert(1, ("Ping".to_owned(), b"p2".to_vec()));
        for piece in (1..=40).chain([255, 256, 257, 1000, 1 << 20]) {
            let mut rx = Receiver::new(Role::Server, &config, b"");
            assert_eq!(receive_all(&mut rx, &wire, piece), want, "piece {piece}");
        }
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn compressed_messages_take_the_same_loop() {
        use crate::proto::deflate::Compressor;
        let config = Config {
            read_buffer_size: 256,
            ..Config::default()
        };
        let (text, binary, short) = messages();
        let mut deflate = Compressor::new(15, 6, false);
        let mut compress = |input: &[u8], fin: bool| {
            let mut out = Vec::new();
            deflate.compress(input, fin, &mut out).unwrap();
            out
        };
        // Binary that does not compress much, so that its frame is read past the read buffer.
        let noise: Vec<u8> = (0..3000u32)
            .map(|i| (i.wrapping_mul(i).wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let noisy = compress(&noise, true);
        assert!(noisy.len() > 1000, "read past the read buffer");
        let (a, b) = text.as_bytes().split_at(500);
        let (first, second) = (compress(a, false), compress(b, true));
        let wire = [
            masked(OpCode::Ping, true, 0, b"p1"),
            masked(OpCode::Text, false, 0b100, &first),
            masked(OpCode::Ping, true, 0, b"p2"),
            masked(OpCode::Continuation, true, 0, &second),
            masked(OpCode::Binary, true, 0b100, &noisy),
            // An uncompressed message between compressed ones.
            masked(OpCode::Binary, true, 0, &binary),
            masked(OpCode::Pong, true, 0, b""),
            masked(OpCode::Text, true, 0b100, &compress(short.as_bytes(), true)),
            masked(OpCode::Close, true, 0, &[3, 232]),
        ]
        .concat();
        let mut want = expected(&text, &binary, &short);
        want.insert(1, ("Ping".to_owned(), b"p2".to_vec()));
        want.insert(3, ("Binary".to_owned(), noise.clone()));
        for piece in (1..=40).chain([255, 256, 257, 1000, 1 << 20]) {
            let mut rx = Receiver::new(Role::Server, &config, b"");
            rx.set_inflate(15, false);
            assert_eq!(receive_all(&mut rx, &wire, piece), want, "piece {piece}");
        }
    }
}
