//! Frame assembly: turns bytes from a stream into messages and control frames, enforcing the
//! receive-side rules of RFC 6455. It reads but never writes; what to answer is the caller's
//! business.
//!
//! All state lives in the struct, so a read that fails with a timeout can be retried and the
//! frame continues where it stopped.

use std::io;

use super::budget::Account;
use crate::config::Config;
use crate::error::{ProtocolError, is_timeout_kind};
use crate::io::{ReadBuf, Transport};
use crate::message::Message;
use crate::proto::frame::{FrameHeader, OpCode};
use crate::proto::mask::{apply_mask, extend_masked};
use crate::proto::utf8::Utf8Validator;

#[cfg(feature = "deflate")]
use crate::proto::deflate::{Decompressor, InflateError};

/// Largest piece of a text payload read directly into a message: text is validated after each
/// read, so invalid UTF-8 fails the message as soon as it arrives.
const TEXT_CHUNK: usize = 64 << 10;

/// The smallest step by which a message's buffer grows for a direct read (a payload larger than
/// the read buffer). Later steps double with the buffer, so its capacity stays within twice the
/// bytes received plus one step, whatever a frame header announces.
const GROW_STEP: usize = 64 << 10;

/// One complete thing the peer sent.
#[derive(Debug)]
pub(crate) enum Event {
    /// A whole data message is assembled (text if true); take it with `take_message` or
    /// `swap_message`.
    Message(bool),
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

#[derive(Debug, Clone, Copy)]
struct FrameProgress {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    len: usize,
    done: usize,
}

/// The receiving half of a connection's state.
#[derive(Debug)]
pub(crate) struct Receiver {
    server: bool,
    max_frame: usize,
    max_message: usize,
    max_fragments: usize,
    rbuf: ReadBuf,
    /// The frame whose payload is being read.
    frame: Option<FrameProgress>,
    /// The data message in progress: `Some(true)` text, `Some(false)` binary.
    message: Option<bool>,
    fragments: usize,
    buf: Vec<u8>,
    /// What `buf`'s growth has charged to the shared memory budget, if there is one.
    account: Account,
    utf8: Utf8Validator,
    control: [u8; 125],
    control_len: usize,
    /// Bytes read from the stream so far, so the heartbeat knows when the peer was last heard.
    received: u64,
    /// permessage-deflate, when negotiated; `None` keeps the plain path free of it.
    #[cfg(feature = "deflate")]
    inflate: Option<Box<Inflate>>,
}

/// The receive side of permessage-deflate.
#[cfg(feature = "deflate")]
#[derive(Debug)]
struct Inflate {
    decompressor: Decompressor,
    /// The message in progress is compressed (its first frame had RSV1).
    active: bool,
    /// Compressed payload bytes of the message so far.
    wire: usize,
    /// Unmasked compressed bytes waiting to be inflated (one read's worth at most).
    input: Vec<u8>,
}

impl Receiver {
    pub fn new(server: bool, config: &Config, leftover: &[u8]) -> Self {
        Receiver {
            server,
            max_frame: config.max_frame_size,
            max_message: config.max_message_size,
            max_fragments: config.max_fragments,
            rbuf: ReadBuf::with_leftover(config.effective_read_buffer(), leftover),
            frame: None,
            message: None,
            fragments: 0,
            buf: Vec::new(),
            account: Account::new(config.memory_budget.clone()),
            utf8: Utf8Validator::new(),
            control: [0; 125],
            control_len: 0,
            received: 0,
            #[cfg(feature = "deflate")]
            inflate: None,
        }
    }

    /// Turns on permessage-deflate for received messages.
    #[cfg(feature = "deflate")]
    pub fn set_inflate(&mut self, peer_window_bits: u8, peer_no_context_takeover: bool) {
        self.inflate = Some(Box::new(Inflate {
            decompressor: Decompressor::new(peer_window_bits, peer_no_context_takeover),
            active: false,
            wire: 0,
            input: Vec::new(),
        }));
    }

    /// Whether the message in progress is compressed.
    #[cfg(feature = "deflate")]
    fn inflating(&self) -> bool {
        self.inflate.as_ref().is_some_and(|i| i.active)
    }

    #[cfg(not(feature = "deflate"))]
    fn inflating(&self) -> bool {
        false
    }

    /// Checks the RSV bits of a frame that has some set; true if it starts a compressed message.
    fn check_rsv(&self, h: &FrameHeader) -> Result<bool, ProtocolError> {
        // RFC 7692 6: RSV1 marks the first frame of a compressed message, and only that frame;
        // RFC 6455 5.2: any other RSV bit MUST fail the connection.
        #[cfg(feature = "deflate")]
        if h.rsv == 0b100
            && self.inflate.is_some()
            && matches!(h.opcode, OpCode::Text | OpCode::Binary)
        {
            return Ok(true);
        }
        let _ = h;
        Err(ProtocolError::ReservedBits)
    }

    /// Bytes read from the stream so far.
    pub fn bytes_received(&self) -> u64 {
        self.received
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
            if !retry {
                self.drop_message();
            }
        }
        result
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

    /// Checks a new frame header against the message in progress and the limits.
    fn start_frame(&mut self, h: FrameHeader) -> Result<(), ProtocolError> {
        // RFC 6455 5.2: RSV bits MUST be 0 unless an extension defines them.
        let compressed = h.rsv != 0 && self.check_rsv(&h)?;
        // RFC 6455 5.1: a server MUST close on an unmasked frame, a client on a masked one.
        match (self.server, h.mask.is_some()) {
            (true, false) => return Err(ProtocolError::UnmaskedFrame),
            (false, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if h.len > self.max_frame as u64 {
            return Err(ProtocolError::FrameTooLarge);
        }
        let len = h.len as usize;
        if h.opcode.is_control() {
            self.control_len = 0;
        } else {
            match (h.opcode, self.message) {
                // RFC 6455 5.4: a continuation needs a message in progress, and a new message
                // may not start before the previous one is finished.
                (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
                (OpCode::Continuation, Some(_)) => {}
                (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
                (opcode, None) => {
                    self.message = Some(opcode == OpCode::Text);
                    self.fragments = 0;
                    self.utf8.reset();
                    #[cfg(feature = "deflate")]
                    if let Some(inflate) = self.inflate.as_deref_mut() {
                        inflate.active = compressed;
                        inflate.wire = 0;
                    }
                }
            }
            let _ = compressed;
            self.fragments += 1;
            if self.fragments > self.max_fragments {
                return Err(ProtocolError::TooManyFragments);
            }
            if self.inflating() {
                #[cfg(feature = "deflate")]
                self.start_compressed_frame(len)?;
            } else if self.buf.len() + len > self.max_message {
                return Err(ProtocolError::MessageTooLarge);
            }
            // Nothing is reserved from the announced length: a header is 2 to 14 bytes, and a
            // peer may never send the payload. The buffer grows as the bytes arrive.
        }
        self.frame = Some(FrameProgress {
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
    fn read_payload<R: Transport + ?Sized>(
        &mut self,
        stream: &mut R,
    ) -> Result<Option<Event>, Fault> {
        let Some(mut f) = self.frame else {
            return Ok(None);
        };
        let control = f.opcode.is_control();
        #[cfg(feature = "deflate")]
        if !control && self.inflating() {
            return self.read_compressed(stream, f);
        }
        while f.done < f.len {
            let want = f.len - f.done;
            let avail = self.rbuf.data().len();
            let start = self.buf.len();
            let io_result = if avail > 0 {
                let take = want.min(avail);
                if !control {
                    self.reserve(take, want, f.fin)?;
                }
                let piece = &self.rbuf.data()[..take];
                if control {
                    let dst = &mut self.control[f.done..f.done + take];
                    dst.copy_from_slice(piece);
                    if let Some(key) = f.mask {
                        apply_mask(dst, key, f.done);
                    }
                    self.control_len += take;
                } else {
                    match f.mask {
                        Some(key) => extend_masked(&mut self.buf, piece, key, f.done),
                        None => self.buf.extend_from_slice(piece),
                    }
                }
                self.rbuf.consume(take);
                Ok(())
            } else if !control && want >= self.rbuf.capacity() {
                self.read_direct(stream, want, f.fin, f.mask, f.done)
            } else {
                fill(&mut self.rbuf, stream).map(|n| self.received += n as u64)
            };
            // Account for (and validate) whatever arrived, even if the read then failed.
            if control {
                f.done = self.control_len;
            } else {
                if avail == 0 {
                    self.received += (self.buf.len() - start) as u64;
                }
                f.done += self.buf.len() - start;
                if self.message == Some(true) && self.utf8.feed(&self.buf[start..]).is_err() {
                    return Err(ProtocolError::InvalidUtf8.into());
                }
            }
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
            _ => Some(Event::Message(self.finish_message()?)),
        })
    }

    /// Reads a large payload straight into the message buffer, unmasking what arrived. `offset`
    /// is how much of the frame's payload came before, for the mask phase.
    fn read_direct<R: Transport + ?Sized>(
        &mut self,
        stream: &mut R,
        want: usize,
        last: bool,
        mask: Option<[u8; 4]>,
        offset: usize,
    ) -> Result<(), Fault> {
        let start = self.buf.len();
        let room = self.make_room(want, last)?;
        let result = if self.message == Some(true) {
            // Text: one read at a time so each piece is validated as soon as it arrives.
            self.buf.resize(start + room.min(TEXT_CHUNK), 0);
            let r = stream.read(&mut self.buf[start..]);
            self.buf.truncate(start + *r.as_ref().unwrap_or(&0));
            r
        } else {
            stream.read_to_vec(&mut self.buf, room)
        };
        if let Some(key) = mask {
            apply_mask(&mut self.buf[start..], key, offset);
        }
        match result {
            Ok(0) => Err(Fault::Io(eof())),
            Ok(_) => Ok(()),
            // Part of the payload came before the timeout: count it, retry later.
            Err(e) if self.buf.len() > start && is_timeout_kind(e.kind()) => Ok(()),
            Err(e) => Err(Fault::Io(e)),
        }
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
            .min(self.max_message)
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
        self.message = None;
        self.frame = None;
    }

    /// Ends the message in progress, checking that text did not stop inside a code point.
    fn finish_message(&mut self) -> Result<bool, ProtocolError> {
        let text = self.message.take() == Some(true);
        if text {
            self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(text)
    }

    /// The message just completed, as an owned `Message`; its buffer leaves with it.
    pub fn take_message(&mut self, text: bool) -> Message {
        let buf = std::mem::take(&mut self.buf);
        self.account.release();
        if !text {
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

/// The compressed path: payload bytes are unmasked into a small buffer and inflated into the
/// message as they arrive, so the limits and UTF-8 apply to the inflated bytes, piece by piece.
#[cfg(feature = "deflate")]
impl Receiver {
    /// The size checks for a frame of a compressed message: its compressed bytes are bounded
    /// (empty deflate blocks inflate to nothing, yet cost time), its inflated bytes are checked
    /// while inflating.
    fn start_compressed_frame(&mut self, len: usize) -> Result<(), ProtocolError> {
        let inflate = self.inflate.as_deref_mut().expect("inflating");
        // Deflate grows incompressible data by well under 1/8 (stored blocks, sync flushes).
        let bound = self.max_message.saturating_add(self.max_message / 8 + 1024);
        inflate.wire = inflate.wire.saturating_add(len);
        if inflate.wire > bound {
            return Err(ProtocolError::MessageTooLarge);
        }
        Ok(())
    }

    fn read_compressed<R: Transport + ?Sized>(
        &mut self,
        stream: &mut R,
        mut f: FrameProgress,
    ) -> Result<Option<Event>, Fault> {
        while f.done < f.len {
            let want = f.len - f.done;
            let avail = self.rbuf.data().len();
            let inflate = self.inflate.as_deref_mut().expect("inflating");
            let input = &mut inflate.input;
            input.clear();
            let io_result = if avail > 0 {
                let take = want.min(avail);
                let piece = &self.rbuf.data()[..take];
                match f.mask {
                    Some(key) => extend_masked(input, piece, key, f.done),
                    None => input.extend_from_slice(piece),
                }
                self.rbuf.consume(take);
                Ok(())
            } else if want >= self.rbuf.capacity() {
                // A large frame: read it in pieces past the read buffer, each inflated at once.
                input.resize(want.min(TEXT_CHUNK), 0);
                let r = stream.read(input);
                input.truncate(*r.as_ref().unwrap_or(&0));
                if let Some(key) = f.mask {
                    apply_mask(input, key, f.done);
                }
                self.received += input.len() as u64;
                match r {
                    Ok(0) => Err(Fault::Io(eof())),
                    Ok(_) => Ok(()),
                    Err(e) => Err(Fault::Io(e)),
                }
            } else {
                fill(&mut self.rbuf, stream).map(|n| self.received += n as u64)
            };
            f.done += input.len();
            let inflated = self.inflate_input();
            if let Err(e) = inflated {
                return Err(e.into());
            }
            if let Err(e) = io_result {
                self.frame = Some(f);
                return Err(e);
            }
        }
        self.frame = None;
        if !f.fin {
            return Ok(None);
        }
        let inflate = self.inflate.as_deref_mut().expect("inflating");
        let start = self.buf.len();
        let account = &mut self.account;
        let finished =
            inflate
                .decompressor
                .finish_with(&mut self.buf, self.max_message, &mut |from, to| {
                    account.grow(from, to)
                });
        inflate.active = false;
        self.check_inflated(finished, start)?;
        Ok(Some(Event::Message(self.finish_message()?)))
    }

    /// Inflates the pending input into the message and validates what came out.
    fn inflate_input(&mut self) -> Result<(), ProtocolError> {
        let inflate = self.inflate.as_deref_mut().expect("inflating");
        if inflate.input.is_empty() {
            return Ok(());
        }
        let start = self.buf.len();
        let account = &mut self.account;
        let result = inflate.decompressor.inflate_with(
            &inflate.input,
            &mut self.buf,
            self.max_message,
            &mut |from, to| account.grow(from, to),
        );
        self.check_inflated(result, start)
    }

    /// Checks the new text for UTF-8 and maps an inflate result to the RFC's errors.
    ///
    /// What inflated before a failure is checked too, so the first violation in the inflated
    /// stream decides the close code: bad UTF-8 followed by corrupt data or a bomb is 1007
    /// however the frame was cut into reads (a whole frame inflates in one call, a trickled
    /// one in many).
    fn check_inflated(
        &mut self,
        result: Result<(), InflateError>,
        start: usize,
    ) -> Result<(), ProtocolError> {
        let bad_text = self.message == Some(true) && self.utf8.feed(&self.buf[start..]).is_err();
        let failed = match result {
            _ if bad_text => ProtocolError::InvalidUtf8,
            Ok(()) => return Ok(()),
            Err(InflateError::TooLarge) => ProtocolError::MessageTooLarge,
            Err(InflateError::Corrupt) => ProtocolError::BadCompressedData,
            Err(InflateError::Refused) => ProtocolError::OverMemoryBudget,
        };
        // The connection is failed; drop what the bad message grew.
        if let Some(inflate) = self.inflate.as_deref_mut() {
            inflate.decompressor.reset();
        }
        self.drop_message();
        Err(failed)
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
mod tests {
    use super::*;
    use crate::proto::frame::MAX_HEADER_LEN;

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

    impl io::Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Transport for Trickle {}

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
        for opcode in [OpCode::Binary, OpCode::Text] {
            for sent in [0, 1, 300, 9000, GROW_STEP + 1, 1 << 20, 3 << 20] {
                for piece in [7, 8 << 10, 1 << 20] {
                    if piece * 1000 < sent {
                        continue;
                    }
                    let mut rx = Receiver::new(true, &Config::default(), b"");
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
        let mut rx = Receiver::new(true, &config, b"");
        let mut stream = Trickle {
            data: announcing(OpCode::Binary, 200 << 10, 200 << 10),
            at: 0,
            piece: 16 << 10,
        };
        let event = rx.next_event(&mut stream);
        assert!(matches!(event, Ok(Event::Message(false))), "{event:?}");
        assert_eq!(budget.used(), rx.buf.capacity());
        assert_eq!(rx.take_message(false).len(), 200 << 10);
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
        let mut rx = Receiver::new(true, &config, b"");
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
}
