//! A message sent as a [`std::io::Write`]: [`MessageWriter`], from
//! [`WebSocket::send_stream`](crate::WebSocket::send_stream) and
//! [`Writer::send_stream`](crate::Writer::send_stream), and the loop behind `send_from`.
//!
//! ```text
//!   send_stream(kind)         write: bytes into the buffer; a full buffer
//!  -------------------> OPEN  goes out as one fragment when more comes    finish: the buffer
//!                       |  ^  (the first as Text/Binary, then             as the final
//!                       |  |   Continuation)                              fragment --> DONE
//!                       +--+
//!                       |
//!                       +-- dropped (or finish failed) before the end: nothing went out yet:
//!                           nothing happens; fragments went out: a 1011 close follows them
//! ```
//!
//! What the writer sends through is a [`StreamSink`]: the connection itself for a whole socket,
//! the split writer's message slot for a split one (see `split`).

use std::fmt;
use std::io::{self, Read};

use super::State;
use super::conn::{Conn, Link};
use crate::error::{Error, InputError, Result};
use crate::message::MessageKind;
use crate::proto::frame::OpCode;
use crate::proto::utf8::Utf8Validator;

/// Where a [`MessageWriter`] sends its fragments: a whole connection or a split writer.
pub(crate) trait StreamSink {
    /// `Err(Error::Closed)` once a close frame went out (from any half) or the connection ended:
    /// no data frame may follow a close frame (RFC 6455 5.5.1).
    fn check_open(&self) -> Result<()>;
    /// Writes one frame of the message; with compression negotiated the message is compressed
    /// (its first frame decides, as for `send_fragmented`). A failure closes the connection.
    fn fragment(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) -> Result<()>;
    /// Gives up a message whose first fragments went out: sends a 1011 close frame (unless one
    /// went out already) without waiting for the answer.
    fn abandon(&mut self);
}

/// A whole socket's connection (or a split reader's, which sends no data) as a sink.
impl<L: Link> StreamSink for &mut Conn<L> {
    fn check_open(&self) -> Result<()> {
        match self.state() {
            State::Open => Ok(()),
            _ => Err(Error::Closed),
        }
    }

    fn fragment(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) -> Result<()> {
        self.send_frame(opcode, fin, payload, true)
    }

    fn abandon(&mut self) {
        self.abandon_message();
    }
}

/// One outgoing message written piece by piece: the send for messages of any size, or whose
/// size is not known up front.
///
/// Made by [`WebSocket::send_stream`](crate::WebSocket::send_stream) or
/// [`Writer::send_stream`](crate::Writer::send_stream) for a text or binary message. Bytes
/// written are gathered into fragments of [`FRAGMENT_SIZE`](Self::FRAGMENT_SIZE) (64 KiB): many
/// small writes cost one frame per 64 KiB, not one each. A full fragment goes out when the next
/// byte arrives, so [`finish`](Self::finish) always has something to send as the final frame;
/// [`flush`](io::Write::flush) sends what is gathered at once, as a fragment of its own (for
/// messages that trickle, such as a log). Each fragment's write is bounded by
/// [`Config::write_timeout`](crate::Config::write_timeout): a peer that stops reading fails the
/// write (and closes the connection) within it. Memory stays at one fragment's buffer whatever
/// the message's size; nothing limits the size on this side, the peer's limits apply (a syncws
/// peer: `max_message_size` for `recv`, `max_stream_size` for `recv_stream`, and
/// `max_fragments`, 100,000 by default, which at 64 KiB each is 6.25 GiB).
///
/// With permessage-deflate negotiated the message is one compressed message over many frames
/// (RSV1 on the first only), its compression context kept from one fragment to the next; each
/// fragment is flushed, so the peer can inflate it as it arrives.
///
/// Text must be valid UTF-8 as a whole; a character may be split across writes. A write whose
/// bytes cannot continue valid UTF-8 fails with [`InputError::InvalidUtf8`] and takes none of
/// them (the message goes on with the next write), and so does a `finish` inside a character:
/// nothing invalid goes out.
///
/// How a write fails (the [`Error`] is inside the `io::Error`; `?` in a function returning
/// [`syncws::Result`](crate::Result) takes it out again):
/// - kind `BrokenPipe` with [`Error::Closed`] once a close frame went out or came in (another
///   thread closed the connection, the peer closed it) or the connection ended;
/// - kind `InvalidData` with [`Error::InvalidInput`] for text that is not UTF-8;
/// - any other kind: the connection failed (a write timed out, the peer reset), and is closed.
///
/// **Dropped unfinished** (without `finish`, or after a `finish` that failed): if no fragment
/// went out yet, nothing is sent and the connection stays usable. Otherwise the connection is
/// closed with 1011 (internal error) right behind the fragments sent. RFC 6455 has no way to
/// abandon a message half-way, and ending it with a final frame would hand the peer a truncated
/// message (a cut-off file) as if it were whole; a close with an error code makes the peer see
/// the message failed. The drop sends the close frame (within the write timeout) but does not
/// wait for the answer: the next receive on the connection (or the split reader) completes the
/// closing handshake.
///
/// On a split connection the message holds the writer's message slot from `send_stream` until
/// it is finished or dropped: other threads' messages (`send`, `send_fragmented`, another
/// stream, a hub's frames for this member) wait for it, while control frames (the reader's
/// pongs and close reply, `ping`, `pong`, `close`) still go out between its fragments (RFC 6455
/// 5.4). A whole [`WebSocket`](crate::WebSocket) reads nothing while the message is written: a
/// ping that arrives meanwhile is answered by the next receive, after the message. Split the
/// socket when a long message must not delay pongs.
///
/// ```no_run
/// use std::io::Write;
/// let mut ws = syncws::Client::connect("ws://127.0.0.1:9001/")?;
/// let mut message = ws.send_stream(syncws::MessageKind::Text)?;
/// for i in 0..1000 {
///     write!(message, "line {i}\n")?;
/// }
/// message.finish()?;
/// # Ok::<(), syncws::Error>(())
/// ```
pub struct MessageWriter<'a> {
    sink: Box<dyn StreamSink + 'a>,
    kind: MessageKind,
    /// One fragment's buffer, allocated (zeroed) by the first write; `len` bytes of it are
    /// gathered.
    buf: Vec<u8>,
    len: usize,
    /// Text: the validator of what was taken so far.
    utf8: Option<Utf8Validator>,
    /// A fragment went out: dropping unfinished must close.
    started: bool,
    /// The final fragment went out.
    done: bool,
    /// A write to the connection failed, or it was closed: nothing more goes out.
    failed: bool,
}

impl<'a> MessageWriter<'a> {
    /// The most payload bytes in one fragment: large enough that a fast writer makes few system
    /// calls (one per fragment) and a 4 GiB message fits a syncws peer's default fragment
    /// limit, small enough that a control frame waits at most one fragment's write between
    /// them.
    pub const FRAGMENT_SIZE: usize = 64 << 10;

    pub(crate) fn new(sink: Box<dyn StreamSink + 'a>, kind: MessageKind) -> Self {
        MessageWriter {
            sink,
            kind,
            buf: Vec::new(),
            len: 0,
            utf8: (kind == MessageKind::Text).then(Utf8Validator::new),
            started: false,
            done: false,
            failed: false,
        }
    }

    /// Whether the message is text or binary.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// Sends what is gathered as the message's final fragment. Fails with
    /// [`InputError::InvalidUtf8`] if a text message ends inside a character (the message is
    /// then given up as on a drop), or as a write does.
    pub fn finish(mut self) -> Result<()> {
        self.check_open()?;
        if let Some(v) = &mut self.utf8 {
            v.finish()
                .map_err(|_| Error::InvalidInput(InputError::InvalidUtf8))?;
        }
        self.send_gathered(true)
    }

    /// Takes all of `data` into the message, sending full fragments as it goes.
    fn take(&mut self, mut data: &[u8]) -> Result<()> {
        self.check_open()?;
        self.validate(data)?;
        while !data.is_empty() {
            if self.len == Self::FRAGMENT_SIZE {
                self.send_gathered(false)?;
            }
            // Whole fragments of a large write go out from the caller's bytes, uncopied; the
            // last piece stays, to be sent with more or as the final fragment.
            if self.len == 0 && data.len() > Self::FRAGMENT_SIZE {
                let (piece, rest) = data.split_at(Self::FRAGMENT_SIZE);
                self.send(piece, false)?;
                data = rest;
                continue;
            }
            let room = self.room();
            let n = room.len().min(data.len());
            room[..n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
        }
        Ok(())
    }

    /// Reads `reader` to its end into the message (not finishing it); the bytes read. A read
    /// error comes back as [`Error::Io`].
    pub(crate) fn copy_from(&mut self, reader: &mut dyn Read) -> Result<u64> {
        let mut total = 0u64;
        loop {
            self.check_open()?;
            if self.len == Self::FRAGMENT_SIZE {
                self.send_gathered(false)?;
            }
            let at = self.len;
            let n = match reader.read(self.room()) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io(e)),
            };
            let fresh = &self.buf[at..at + n];
            if let Some(v) = &mut self.utf8 {
                v.feed(fresh)
                    .map_err(|_| Error::InvalidInput(InputError::InvalidUtf8))?;
            }
            self.len += n;
            total += n as u64;
        }
    }

    /// The free part of the fragment buffer (allocated on first use).
    fn room(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = vec![0; Self::FRAGMENT_SIZE];
        }
        &mut self.buf[self.len..]
    }

    /// Checks that `data` continues valid UTF-8 (for text) and, only then, takes it into the
    /// validator's state: refused bytes leave it as it was.
    fn validate(&mut self, data: &[u8]) -> Result<()> {
        if let Some(v) = &mut self.utf8 {
            let mut next = v.clone();
            next.feed(data)
                .map_err(|_| Error::InvalidInput(InputError::InvalidUtf8))?;
            *v = next;
        }
        Ok(())
    }

    /// Fails once a write failed or the connection closed. (A finished message is gone:
    /// `finish` takes the writer.)
    fn check_open(&mut self) -> Result<()> {
        if self.failed {
            return Err(Error::Closed);
        }
        let open = self.sink.check_open();
        if open.is_err() {
            self.failed = true;
        }
        open
    }

    fn send_gathered(&mut self, fin: bool) -> Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let result = self.send(&buf[..self.len], fin);
        self.buf = buf;
        self.len = 0;
        result
    }

    fn send(&mut self, piece: &[u8], fin: bool) -> Result<()> {
        let opcode = match (self.started, self.kind) {
            (true, _) => OpCode::Continuation,
            (false, MessageKind::Text) => OpCode::Text,
            (false, MessageKind::Binary) => OpCode::Binary,
        };
        match self.sink.fragment(opcode, fin, piece) {
            Ok(()) => {
                self.started = true;
                self.done = fin;
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

impl io::Write for MessageWriter<'_> {
    /// Takes all of `data` (or fails, see [`MessageWriter`]).
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.take(data)
            .map_err(|e| e.into_io(io::ErrorKind::BrokenPipe))?;
        Ok(data.len())
    }

    /// Sends what is gathered as a fragment now; nothing if nothing is.
    fn flush(&mut self) -> io::Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let sent = self.check_open().and_then(|()| self.send_gathered(false));
        sent.map_err(|e| e.into_io(io::ErrorKind::BrokenPipe))
    }
}

impl Drop for MessageWriter<'_> {
    fn drop(&mut self) {
        if self.started && !self.done && !self.failed {
            self.sink.abandon();
        }
    }
}

impl fmt::Debug for MessageWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageWriter")
            .field("kind", &self.kind)
            .field("gathered", &self.len)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::io::Write;

    /// Records every fragment; the sink refuses once `closed` is set.
    #[derive(Default)]
    struct Frames {
        sent: RefCell<Vec<(OpCode, bool, Vec<u8>)>>,
        closed: Cell<bool>,
        abandoned: Cell<bool>,
    }

    impl Frames {
        fn body(&self) -> Vec<u8> {
            self.sent
                .borrow()
                .iter()
                .flat_map(|f| f.2.clone())
                .collect()
        }
        fn count(&self) -> usize {
            self.sent.borrow().len()
        }
    }

    struct Sink<'a>(&'a Frames);

    impl StreamSink for Sink<'_> {
        fn check_open(&self) -> Result<()> {
            if self.0.closed.get() {
                Err(Error::Closed)
            } else {
                Ok(())
            }
        }
        fn fragment(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) -> Result<()> {
            self.check_open()?;
            self.0
                .sent
                .borrow_mut()
                .push((opcode, fin, payload.to_vec()));
            Ok(())
        }
        fn abandon(&mut self) {
            self.0.abandoned.set(true);
        }
    }

    fn writer(frames: &Frames, kind: MessageKind) -> MessageWriter<'_> {
        MessageWriter::new(Box::new(Sink(frames)), kind)
    }

    const F: usize = MessageWriter::FRAGMENT_SIZE;

    /// Writes `total` bytes in writes of `piece` bytes and finishes; what went out.
    fn write_in_pieces(total: usize, piece: usize) -> Frames {
        let data: Vec<u8> = (0..total).map(|i| i as u8).collect();
        let frames = Frames::default();
        let mut w = writer(&frames, MessageKind::Binary);
        for chunk in data.chunks(piece.max(1)) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap();
        assert_eq!(frames.body(), data, "total {total} piece {piece}");
        frames
    }

    #[test]
    fn fragments_are_full_and_only_the_last_is_final_whatever_the_writes() {
        let cases = [
            (0, 1),
            (1, 1),
            (F, 1),
            (F, F),
            (F + 1, 7),
            (3 * F, F),
            (3 * F + 5, 3 * F + 5),
            (5 * F - 1, 1000),
        ];
        for (total, piece) in cases {
            let frames = write_in_pieces(total, piece);
            let sent = frames.sent.borrow();
            let n = sent.len();
            assert_eq!(n, total.div_ceil(F).max(1), "total {total} piece {piece}");
            for (i, (op, fin, payload)) in sent.iter().enumerate() {
                let first = if i == 0 {
                    OpCode::Binary
                } else {
                    OpCode::Continuation
                };
                assert_eq!(
                    (*op, *fin),
                    (first, i == n - 1),
                    "frame {i} of {total}/{piece}"
                );
                if i < n - 1 {
                    assert_eq!(payload.len(), F);
                }
            }
        }
    }

    #[test]
    fn debug_shows_the_kind_and_what_is_gathered() {
        let frames = Frames::default();
        let mut message = writer(&frames, MessageKind::Text);
        message.write_all(b"abc").unwrap();
        assert_eq!(
            format!("{message:?}"),
            "MessageWriter { kind: Text, gathered: 3, started: false, .. }"
        );
    }

    #[test]
    fn text_may_split_characters_across_writes_but_refuses_invalid_bytes() {
        let text = "aé€𝄞z".repeat(10);
        let frames = Frames::default();
        let mut w = writer(&frames, MessageKind::Text);
        for b in text.as_bytes() {
            w.write_all(std::slice::from_ref(b)).unwrap();
        }
        w.write_all(b"\xe2\x82").unwrap(); // the start of a euro sign
        // A byte that cannot continue it: refused, and nothing of it is taken.
        let err = w.write(b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(
            Error::from(err),
            Error::InvalidInput(InputError::InvalidUtf8)
        ));
        w.write_all(b"\xac!").unwrap(); // completes the euro sign
        w.finish().unwrap();
        assert_eq!(frames.body(), [text.as_bytes(), "€!".as_bytes()].concat());
        assert_eq!(frames.sent.borrow()[0].0, OpCode::Text);

        // Ending inside a character: finish fails and sends nothing.
        let frames = Frames::default();
        let mut w = writer(&frames, MessageKind::Text);
        w.write_all(b"ok \xf0\x9d").unwrap();
        assert!(matches!(
            w.finish(),
            Err(Error::InvalidInput(InputError::InvalidUtf8))
        ));
        assert!(frames.count() == 0 && !frames.abandoned.get());
    }

    #[test]
    fn a_drop_after_fragments_abandons_the_message_and_before_them_sends_nothing() {
        let frames = Frames::default();
        let mut w = writer(&frames, MessageKind::Binary);
        w.write_all(&[1; 100]).unwrap();
        drop(w);
        assert!(frames.count() == 0 && !frames.abandoned.get());

        let mut w = writer(&frames, MessageKind::Binary);
        w.write_all(&vec![1; F + 1]).unwrap();
        drop(w);
        assert_eq!(frames.count(), 1);
        assert!(frames.abandoned.get());
    }

    #[test]
    fn flush_sends_what_is_gathered_and_a_closed_sink_fails_the_next_write() {
        let frames = Frames::default();
        let mut w = writer(&frames, MessageKind::Binary);
        w.flush().unwrap();
        w.write_all(b"abc").unwrap();
        w.flush().unwrap();
        w.flush().unwrap();
        w.write_all(b"def").unwrap();
        w.finish().unwrap();
        let sent: Vec<_> = frames
            .sent
            .borrow()
            .iter()
            .map(|f| (f.0, f.1, f.2.clone()))
            .collect();
        assert_eq!(
            sent,
            [
                (OpCode::Binary, false, b"abc".to_vec()),
                (OpCode::Continuation, true, b"def".to_vec())
            ]
        );

        // A close frame went out (another thread, the peer) after the first fragment: the next
        // write fails at once, even one that would only be gathered, and the drop sends no
        // second close.
        let frames = Frames::default();
        let mut w = writer(&frames, MessageKind::Binary);
        w.write_all(&vec![0; F + 1]).unwrap();
        frames.closed.set(true);
        let err = w.write(b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(matches!(Error::from(err), Error::Closed));
        drop(w);
        assert!(!frames.abandoned.get());
        assert_eq!(frames.count(), 1);
    }

    #[test]
    fn copy_from_reads_to_the_end_in_full_fragments() {
        /// Gives at most 1000 bytes a read.
        struct Small<'r>(&'r [u8]);
        impl Read for Small<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = out.len().min(1000);
                self.0.read(&mut out[..n])
            }
        }
        let data: Vec<u8> = (0..(2 * F + 10)).map(|i| (i * 7) as u8).collect();
        let frames = Frames::default();
        let mut w = writer(&frames, MessageKind::Binary);
        let n = w.copy_from(&mut Small(&data)).unwrap();
        w.finish().unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(frames.count(), 3);
        assert_eq!(frames.body(), data);

        // Text that turns invalid: the bytes before go on, the bad read is refused.
        let frames = Frames::default();
        let mut w = writer(&frames, MessageKind::Text);
        let bad = [&b"fine"[..], b"\xff"].concat();
        let err = w.copy_from(&mut &bad[..]).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(InputError::InvalidUtf8)));
        assert_eq!(w.len, 0, "nothing of the bad read is kept");
    }
}
