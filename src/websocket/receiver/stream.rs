//! The receiver's streamed path: a message's payload handed out piece by piece as it arrives
//! (see `MessageReader`), never assembled. Each step moves at most [`STREAM_CHUNK`] payload
//! bytes (inflated bytes, for a compressed message) into the stream's chunk, validated; the
//! caller drains the chunk before the next step. Memory stays at the read buffer, one chunk and
//! the inflater's window, whatever the message's size.
//!
//! ```text
//!   begin_stream            next_chunk: Data (a message started, or bytes in the chunk)
//!  ------------> WAITING ------------------------> IN MESSAGE --+ next_chunk: Data
//!                   ^                                 |   ^      | (drain the chunk)
//!                   |   end_stream (next recv, or     |   +------+
//!                   +---  the end of the message) ----+ next_chunk: Message(kind) = its end
//! ```
//!
//! Control frames between fragments come out as their events, as in the whole-message path.
//! While streaming, the message limit is the streamed-message limit; the whole-message limit
//! returns with `end_stream`.

use std::io;

use super::{Event, Fault, Receiver, Sink, extend, fill, read_once, read_outcome};
use crate::error::{ProtocolError, is_timeout_kind};
use crate::io::Transport;
use crate::message::MessageKind;
use crate::proto::frame::FrameHeader;
use crate::proto::mask::apply_mask;

/// The most payload bytes one step hands out: large enough that a fast reader makes few
/// steps, small enough to be the whole cost of a streamed message.
pub(crate) const STREAM_CHUNK: usize = 64 << 10;

/// A streamed receive's state.
#[derive(Debug, Default)]
pub(crate) struct Streaming {
    /// Payload bytes ready for the reader, from `at` on.
    chunk: Vec<u8>,
    at: usize,
    /// The whole-message limit, restored by `end_stream`.
    whole_max: usize,
    /// The kind of the message being streamed, once it started.
    kind: Option<MessageKind>,
    /// Its last frame has arrived; what the inflater still holds comes out, then its end.
    ending: bool,
    /// Inflated bytes of the message so far, against the streamed-message limit.
    inflated: usize,
    /// The inflater may hold more output, or input is left: step it before reading more.
    #[cfg(feature = "deflate")]
    pending: bool,
    /// The restored tail of a compressed message went in.
    #[cfg(feature = "deflate")]
    tail_fed: bool,
}

impl Receiver {
    /// Receives the next message as a stream, with `max` as its size limit. A whole-message
    /// receive that a timeout cut off continues as a stream, with what it had as its first
    /// bytes.
    pub fn begin_stream(&mut self, max: usize) {
        if self.stream.is_some() {
            return;
        }
        let mut s = Box::new(Streaming {
            whole_max: self.limits.max_message,
            kind: self.msg.kind,
            ..Streaming::default()
        });
        if self.msg.kind.is_some() {
            s.chunk = std::mem::take(&mut self.buf);
            s.inflated = s.chunk.len();
            self.account.release();
        }
        self.limits.max_message = max;
        self.stream = Some(s);
    }

    /// Back to whole messages; what the stream still held is dropped.
    pub fn end_stream(&mut self) {
        if let Some(s) = self.stream.take() {
            self.limits.max_message = s.whole_max;
        }
    }

    /// Whether a streamed receive is on (waiting for a message, or in one).
    pub fn streaming(&self) -> bool {
        self.stream.is_some()
    }

    /// The kind of the message being streamed, once it started.
    pub fn stream_kind(&self) -> Option<MessageKind> {
        self.stream.as_ref()?.kind
    }

    /// Streamed bytes not yet handed out.
    pub fn stream_data(&self) -> &[u8] {
        match &self.stream {
            Some(s) => &s.chunk[s.at..],
            None => &[],
        }
    }

    /// Marks `n` streamed bytes as handed out.
    pub fn stream_consume(&mut self, n: usize) {
        if let Some(s) = self.stream.as_deref_mut() {
            s.at = (s.at + n).min(s.chunk.len());
        }
    }

    /// Drops the streamed bytes not yet handed out (the message is being skipped).
    pub fn stream_discard(&mut self) {
        if let Some(s) = self.stream.as_deref_mut() {
            s.at = s.chunk.len();
        }
    }

    /// One step of the streamed receive: `Data` once a message started and whenever bytes
    /// wait in the chunk, a control frame's event, or `Message(kind)` at the message's end
    /// (the stream then ends). Failures are handled as in `next_event`.
    pub fn next_chunk<R: Transport + ?Sized>(&mut self, stream: &mut R) -> Result<Event, Fault> {
        // The stream ended while the connection was closing, and the receive goes on to the
        // peer's close frame: what else arrives is whole messages, which the closing drops.
        if self.stream.is_none() {
            return self.next_event(stream);
        }
        let result = self.next_chunk_or_fault(stream);
        if let Err(fault) = &result {
            let retry = matches!(fault, Fault::Io(e)
                if is_timeout_kind(e.kind()) || e.kind() == io::ErrorKind::Interrupted);
            if let Fault::Protocol(e) = fault {
                let refused = self.refused.take();
                self.violation =
                    crate::proto::rules::describe(*e, refused.as_ref(), &self.msg, &self.limits);
            }
            if !retry {
                self.drop_message();
                self.end_stream();
            }
        }
        result
    }

    fn next_chunk_or_fault<R: Transport + ?Sized>(
        &mut self,
        stream: &mut R,
    ) -> Result<Event, Fault> {
        loop {
            let s = self.stream.as_deref_mut().expect("streaming");
            if s.at < s.chunk.len() {
                return Ok(Event::Data);
            }
            s.chunk.clear();
            s.at = 0;
            let ending = s.ending;
            #[cfg(feature = "deflate")]
            if s.pending {
                self.pump()?;
                continue;
            }
            if ending {
                if let Some(event) = self.end_of_message()? {
                    return Ok(event);
                }
                continue;
            }
            let Some(mut f) = self.frame else {
                match FrameHeader::parse(self.rbuf.data())? {
                    Some((header, n)) => {
                        self.rbuf.consume(n);
                        self.start_frame(header)?;
                        let data = self.frame.is_some_and(|f| f.sink != Sink::Control);
                        if data && self.msg.fragments == 1 {
                            let s = self.stream.as_deref_mut().expect("streaming");
                            s.kind = self.msg.kind;
                            return Ok(Event::Data);
                        }
                    }
                    None => self.received += fill(&mut self.rbuf, stream)? as u64,
                }
                continue;
            };
            if f.sink == Sink::Control {
                if let Some(event) = self.read_payload(stream)? {
                    return Ok(event);
                }
                continue;
            }
            if f.done == f.len {
                self.frame = None;
                if f.fin {
                    let s = self.stream.as_deref_mut().expect("streaming");
                    s.ending = true;
                }
                continue;
            }
            let (n, io_result) = self.read_piece(stream, &f);
            f.done += n;
            self.frame = Some(f);
            if n > 0 {
                self.absorb_piece(f.sink)?;
            }
            io_result?;
        }
    }

    /// Moves up to one chunk of the data frame's payload into the chunk (or the inflater's
    /// input), unmasked: from the read buffer if bytes wait there, else with one read straight
    /// from the stream for a payload larger than the read buffer, else by filling the buffer.
    fn read_piece<R: Transport + ?Sized>(
        &mut self,
        stream: &mut R,
        f: &super::FrameProgress,
    ) -> (usize, Result<(), Fault>) {
        let want = (f.len - f.done).min(STREAM_CHUNK);
        let dst = match f.sink {
            #[cfg(feature = "deflate")]
            Sink::Inflate => {
                let inflate = self.inflate.as_deref_mut().expect("inflating");
                inflate.at = 0;
                &mut inflate.input
            }
            _ => &mut self.stream.as_deref_mut().expect("streaming").chunk,
        };
        dst.clear();
        let avail = self.rbuf.data().len();
        if avail > 0 {
            let take = want.min(avail);
            extend(dst, &self.rbuf.data()[..take], f);
            self.rbuf.consume(take);
            return (take, Ok(()));
        }
        if f.len - f.done < self.rbuf.capacity() {
            let filled = fill(&mut self.rbuf, stream);
            return (0, filled.map(|n| self.received += n as u64));
        }
        let result = read_once(stream, dst, want);
        if let Some(key) = f.mask {
            apply_mask(dst, key, f.done);
        }
        let n = dst.len();
        self.received += n as u64;
        (n, read_outcome(result))
    }

    /// Checks the piece that just arrived: text for UTF-8; compressed bytes are inflated.
    fn absorb_piece(&mut self, sink: Sink) -> Result<(), ProtocolError> {
        #[cfg(feature = "deflate")]
        if sink == Sink::Inflate {
            return self.pump();
        }
        let _ = sink;
        let s = self.stream.as_deref_mut().expect("streaming");
        s.inflated = s.inflated.saturating_add(s.chunk.len());
        if s.kind == Some(MessageKind::Text) && self.utf8.feed(&s.chunk).is_err() {
            return Err(ProtocolError::InvalidUtf8);
        }
        Ok(())
    }

    /// The message's last frame is in: once the inflater gave out everything (and the restored
    /// tail), the message ends. `None` while the inflater still has output to give.
    fn end_of_message(&mut self) -> Result<Option<Event>, ProtocolError> {
        #[cfg(feature = "deflate")]
        if self.msg.compressed {
            let s = self.stream.as_deref_mut().expect("streaming");
            let inflate = self.inflate.as_deref_mut().expect("inflating");
            if !s.tail_fed && inflate.decompressor.needs_tail() {
                s.tail_fed = true;
                s.pending = true;
                inflate.input.clear();
                inflate
                    .input
                    .extend_from_slice(&crate::proto::deflate::TAIL);
                inflate.at = 0;
                return Ok(None);
            }
            inflate.decompressor.end_message();
        }
        let kind = std::mem::take(&mut self.msg).kind;
        let kind = kind.expect("a data frame belongs to a message");
        if kind == MessageKind::Text {
            self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        self.end_stream();
        Ok(Some(Event::Message(kind)))
    }

    /// Inflates what input waits into the empty chunk, at most one chunk's worth; checks the
    /// streamed-message limit and, for text, UTF-8 on what came out.
    #[cfg(feature = "deflate")]
    fn pump(&mut self) -> Result<(), ProtocolError> {
        use crate::proto::deflate::InflateError;
        let s = self.stream.as_deref_mut().expect("streaming");
        let inflate = self.inflate.as_deref_mut().expect("inflating");
        let result = inflate.decompressor.inflate_bounded(
            &inflate.input[inflate.at..],
            &mut s.chunk,
            STREAM_CHUNK,
        );
        let used = *result.as_ref().unwrap_or(&0);
        inflate.at += used;
        // The chunk was empty: `inflate_bounded` leaves input unused only when it filled the
        // room (else it fails), so a full chunk is the one sign that more is to come.
        s.pending = s.chunk.len() == STREAM_CHUNK;
        let before = s.inflated;
        s.inflated = s.inflated.saturating_add(s.chunk.len());
        // As in the whole-message path, the first violation in the inflated bytes decides, and
        // it looks no further than the byte that crosses the limit: text that goes bad only
        // after it is too large, not invalid (a chunk may reach far past the limit).
        let seen = (self.limits.max_message.saturating_add(1)).saturating_sub(before);
        let checked = &s.chunk[..s.chunk.len().min(seen)];
        let text = s.kind == Some(MessageKind::Text);
        let failed = match result {
            _ if text && self.utf8.feed(checked).is_err() => ProtocolError::InvalidUtf8,
            _ if s.inflated > self.limits.max_message => ProtocolError::MessageTooLarge,
            Ok(_) => return Ok(()),
            Err(InflateError::TooLarge) => ProtocolError::MessageTooLarge,
            Err(InflateError::Corrupt) => ProtocolError::BadCompressedData,
            Err(InflateError::Refused) => ProtocolError::OverMemoryBudget,
        };
        s.pending = false;
        inflate.decompressor.reset();
        Err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Stutter, expected, late_tail, masked, messages, receive_all};
    use super::*;
    use crate::config::Config;
    use crate::proto::frame::OpCode;
    use crate::websocket::Role;

    /// What streaming `wire` gives, read in pieces of `piece` bytes with a timeout after each
    /// and handed out `piece` bytes at a time: the events in order (a streamed message as its
    /// kind and all its bytes), the bytes of a message cut off by a violation, and the violation.
    type Streamed = (Vec<(String, Vec<u8>)>, Vec<u8>, Option<ProtocolError>);

    fn stream_all(rx: &mut Receiver, wire: &[u8], piece: usize, max: usize) -> Streamed {
        let mut stream = Stutter {
            data: wire.to_vec(),
            at: 0,
            piece,
            stall: false,
        };
        let mut got: Vec<(String, Vec<u8>)> = Vec::new();
        let mut current = Vec::new();
        rx.begin_stream(max);
        while got.last().is_none_or(|(what, _)| what != "Close") {
            match rx.next_chunk(&mut stream) {
                Ok(Event::Data) => {
                    let data = rx.stream_data();
                    assert!(data.len() <= STREAM_CHUNK, "{} bytes at once", data.len());
                    let n = data.len().min(piece);
                    current.extend_from_slice(&data[..n]);
                    rx.stream_consume(n);
                }
                Ok(Event::Message(kind)) => {
                    assert!(!rx.streaming(), "the stream ends with its message");
                    got.push((format!("{kind:?}"), std::mem::take(&mut current)));
                    rx.begin_stream(max);
                }
                Ok(event) => got.push((format!("{event:?}"), rx.control_payload().to_vec())),
                Err(Fault::Io(e)) if is_timeout_kind(e.kind()) => {
                    assert!(stream.at < stream.data.len(), "piece {piece}: wire ran out");
                }
                Err(Fault::Protocol(e)) => return (got, current, Some(e)),
                Err(e) => panic!("piece {piece}: {e:?}"),
            }
        }
        assert_eq!(stream.at, wire.len());
        (got, current, None)
    }

    fn small_buffer() -> Config {
        Config {
            read_buffer_size: 256,
            ..Config::default()
        }
    }

    #[test]
    fn streamed_messages_match_whole_ones_for_every_read_size() {
        let (text, binary, short) = messages();
        let (a, b) = text.as_bytes().split_at(500);
        let wire = [
            masked(OpCode::Ping, true, 0, b"p1"),
            masked(OpCode::Text, false, 0, &a[..100]),
            masked(OpCode::Continuation, false, 0, &[]),
            masked(OpCode::Continuation, false, 0, &a[100..]),
            masked(OpCode::Ping, true, 0, b"p2"),
            masked(OpCode::Continuation, true, 0, b),
            masked(OpCode::Binary, true, 0, &binary),
            masked(OpCode::Pong, true, 0, b""),
            masked(OpCode::Binary, true, 0, b""),
            masked(OpCode::Text, true, 0, short.as_bytes()),
            masked(OpCode::Close, true, 0, &[3, 232]),
        ]
        .concat();
        let mut want = expected(&text, &binary, &short);
        want.insert(1, ("Ping".to_owned(), b"p2".to_vec()));
        want.insert(5, ("Binary".to_owned(), Vec::new()));
        for piece in (1..=40).chain([255, 256, 257, 1000, 1 << 20]) {
            let mut whole = Receiver::new(Role::Server, &small_buffer(), b"");
            assert_eq!(receive_all(&mut whole, &wire, piece), want, "piece {piece}");
            let mut rx = Receiver::new(Role::Server, &small_buffer(), b"");
            let got = stream_all(&mut rx, &wire, piece, usize::MAX);
            assert_eq!(got, (want.clone(), Vec::new(), None), "piece {piece}");
        }
    }

    #[cfg(feature = "deflate")]
    fn compress_all(pieces: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut deflate = crate::proto::deflate::Compressor::new(15, 6, false);
        let last = pieces.len() - 1;
        let mut frames = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let mut out = Vec::new();
            deflate.compress(piece, i == last, &mut out).unwrap();
            frames.push(out);
        }
        frames
    }

    /// One message in frames, RSV1 on the first when compressed.
    fn message(opcode: OpCode, frames: &[Vec<u8>], compressed: bool) -> Vec<u8> {
        let last = frames.len() - 1;
        let mut wire = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            let op = if i == 0 { opcode } else { OpCode::Continuation };
            let rsv = if i == 0 && compressed { 0b100 } else { 0 };
            wire.extend(masked(op, i == last, rsv, frame));
        }
        wire
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn compressed_messages_stream_in_bounded_steps() {
        let (text, _, short) = messages();
        let zeros = vec![0u8; 3 << 20];
        let (a, b) = text.as_bytes().split_at(500);
        let bomb = compress_all(&[&zeros]);
        assert!(bomb[0].len() < 10_000);
        let wire = [
            message(OpCode::Text, &compress_all(&[a, b]), true),
            masked(OpCode::Ping, true, 0, b"p"),
            message(OpCode::Binary, &bomb, true),
            message(OpCode::Text, &compress_all(&[short.as_bytes()]), true),
            masked(OpCode::Close, true, 0, &[3, 232]),
        ]
        .concat();
        let row = |what: &str, bytes: &[u8]| (what.to_owned(), bytes.to_vec());
        let want = vec![
            row("Text", text.as_bytes()),
            row("Ping", b"p"),
            row("Binary", &zeros),
            row("Text", short.as_bytes()),
            row("Close", &[3, 232]),
        ];
        for piece in (1..=20).chain([255, 256, 257, 4096, 1 << 20]) {
            let mut rx = Receiver::new(Role::Server, &small_buffer(), b"");
            rx.set_inflate(15, false);
            let got = stream_all(&mut rx, &wire, piece.max(1000), usize::MAX);
            assert_eq!(got, (want.clone(), Vec::new(), None), "piece {piece}");
        }
    }

    /// A text message with 0xff at `bad`, in frames of `frame` bytes.
    fn bad_text(len: usize, bad: usize, frame: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut text: Vec<u8> = "\u{e9}t\u{e9} \u{1f600}"
            .bytes()
            .cycle()
            .take(len)
            .collect();
        text[bad] = 0xff;
        let frames = text.chunks(frame).map(<[u8]>::to_vec).collect();
        (text, frames)
    }

    #[test]
    fn invalid_utf8_fails_the_read_that_reaches_it_at_every_position() {
        for bad in 0..60 {
            for (frame, piece) in [(1, 1), (7, 3), (60, 1000)] {
                let (text, frames) = bad_text(60, bad, frame);
                let wire = message(OpCode::Text, &frames, false);
                let mut rx = Receiver::new(Role::Server, &small_buffer(), b"");
                let (got, cut, err) = stream_all(&mut rx, &wire, piece, usize::MAX);
                assert_eq!(
                    err,
                    Some(ProtocolError::InvalidUtf8),
                    "bad {bad} frame {frame}"
                );
                assert!(got.is_empty());
                assert!(
                    cut.len() <= bad && text.starts_with(&cut),
                    "bad {bad}: {cut:?}"
                );
            }
        }
    }

    #[test]
    fn the_last_bytes_of_a_streamed_payload_are_read_with_what_follows() {
        // As for whole messages: once what is left of a frame fits the 8 KiB read buffer, it is
        // read into the buffer with the frames behind it. A 12,000-byte frame whose last 100
        // bytes come with 50 small messages: one read fills the buffer, one takes the rest of
        // the first piece, one the second piece; the 50 messages need no read of their own.
        let mut stream = late_tail(12_000);
        let mut rx = Receiver::new(Role::Server, &Config::default(), b"");
        let mut streamed = 0;
        let mut messages = 0;
        rx.begin_stream(usize::MAX);
        while messages < 51 {
            match rx.next_chunk(&mut stream) {
                Ok(Event::Data) => {
                    streamed += rx.stream_data().len();
                    rx.stream_discard();
                }
                Ok(Event::Message(_)) => {
                    messages += 1;
                    rx.begin_stream(usize::MAX);
                }
                other => panic!("message {messages}: {other:?}"),
            }
        }
        assert_eq!(streamed, 12_000 + 50 * 2 + 40);
        assert_eq!(stream.reads, 3);
    }

    #[test]
    fn text_that_ends_inside_a_code_point_fails_at_its_end() {
        for frame in [1, 2, 4] {
            let frames: Vec<Vec<u8>> = b"caf\xc3".chunks(frame).map(<[u8]>::to_vec).collect();
            let wire = message(OpCode::Text, &frames, false);
            for piece in [1, 3, 1000] {
                let mut rx = Receiver::new(Role::Server, &small_buffer(), b"");
                let (got, cut, err) = stream_all(&mut rx, &wire, piece, usize::MAX);
                assert_eq!(err, Some(ProtocolError::InvalidUtf8), "frame {frame}");
                assert!(got.is_empty());
                // The lead byte is a valid prefix, so it may come out before the end shows
                // that its code point never finishes.
                assert!(b"caf\xc3".starts_with(&cut), "{cut:?}");
            }
        }
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn invalid_utf8_in_compressed_text_fails_at_every_position() {
        for bad in 0..60 {
            let (text, frames) = bad_text(60, bad, 7);
            let pieces: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            let wire = message(OpCode::Text, &compress_all(&pieces), true);
            for piece in [1, 5, 1000] {
                let mut rx = Receiver::new(Role::Server, &small_buffer(), b"");
                rx.set_inflate(15, false);
                let (got, cut, err) = stream_all(&mut rx, &wire, piece, usize::MAX);
                assert_eq!(err, Some(ProtocolError::InvalidUtf8), "bad {bad}");
                assert!(got.is_empty());
                assert!(
                    cut.len() <= bad && text.starts_with(&cut),
                    "bad {bad}: {cut:?}"
                );
            }
        }
    }

    #[test]
    fn limits_crossed_in_the_middle_fail_after_the_bytes_before() {
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let frames: Vec<Vec<u8>> = data.chunks(300).map(<[u8]>::to_vec).collect();
        let wire = message(OpCode::Binary, &frames, false);
        for piece in [1, 7, 300, 1 << 20] {
            // The streamed-message limit: the frame that would cross it is refused.
            let mut rx = Receiver::new(Role::Server, &small_buffer(), b"");
            let (_, cut, err) = stream_all(&mut rx, &wire, piece, 1000);
            assert_eq!(err, Some(ProtocolError::MessageTooLarge), "piece {piece}");
            assert_eq!(cut, data[..900], "piece {piece}");
            assert!(rx.violation().contains("1000 limit"), "{}", rx.violation());
            // The fragment limit applies as to whole messages.
            let config = Config {
                max_fragments: 4,
                ..small_buffer()
            };
            let mut rx = Receiver::new(Role::Server, &config, b"");
            let (_, cut, err) = stream_all(&mut rx, &wire, piece, usize::MAX);
            assert_eq!(err, Some(ProtocolError::TooManyFragments), "piece {piece}");
            assert_eq!(cut, data[..1200], "piece {piece}");
            // The whole-message limit is not the streamed one, and comes back after a stream.
            let config = Config {
                max_message_size: 1000,
                ..small_buffer()
            };
            let mut rx = Receiver::new(Role::Server, &config, b"");
            let twice = [wire.clone(), wire.clone()].concat();
            let mut stream = Stutter {
                data: twice,
                at: 0,
                piece,
                stall: false,
            };
            rx.begin_stream(usize::MAX);
            let mut streamed = 0;
            loop {
                match rx.next_chunk(&mut stream) {
                    Ok(Event::Data) => {
                        streamed += rx.stream_data().len();
                        rx.stream_discard();
                    }
                    Ok(Event::Message(_)) => break,
                    Err(Fault::Io(e)) if is_timeout_kind(e.kind()) => {}
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(streamed, data.len());
            let whole = loop {
                match rx.next_event(&mut stream) {
                    Err(Fault::Io(e)) if is_timeout_kind(e.kind()) => {}
                    other => break other,
                }
            };
            assert!(
                matches!(whole, Err(Fault::Protocol(ProtocolError::MessageTooLarge))),
                "{whole:?}"
            );
        }
    }

    /// The whole-message path inflates no further than one byte past the limit, so text that
    /// goes bad beyond it is too large there; a streamed receive, whose chunk may reach far past
    /// the limit, must not look further either.
    #[cfg(feature = "deflate")]
    #[test]
    fn compressed_text_bad_only_past_the_limit_is_too_large() {
        let limit = 300;
        for bad in [limit, limit + 1, limit + 10, 5000] {
            let mut text = vec![b'x'; bad];
            text.extend_from_slice(b"\xff and more");
            let wire = message(OpCode::Text, &compress_all(&[&text]), true);
            let expect = match bad {
                // The byte that crosses the limit is itself looked at, as in the whole path.
                300 => ProtocolError::InvalidUtf8,
                _ => ProtocolError::MessageTooLarge,
            };
            let config = Config {
                max_message_size: limit,
                ..small_buffer()
            };
            for piece in [1, 100, 1 << 20] {
                let mut rx = Receiver::new(Role::Server, &small_buffer(), b"");
                rx.set_inflate(15, false);
                let (_, _, err) = stream_all(&mut rx, &wire, piece, limit);
                assert_eq!(err, Some(expect), "streamed, bad at {bad}, piece {piece}");
                let mut rx = Receiver::new(Role::Server, &config, b"");
                rx.set_inflate(15, false);
                let mut stream = Stutter {
                    data: wire.clone(),
                    at: 0,
                    piece,
                    stall: false,
                };
                let whole = loop {
                    match rx.next_event(&mut stream) {
                        Err(Fault::Io(e)) if is_timeout_kind(e.kind()) => {}
                        other => break other,
                    }
                };
                assert!(
                    matches!(whole, Err(Fault::Protocol(e)) if e == expect),
                    "whole, bad at {bad}, piece {piece}: {whole:?}"
                );
            }
        }
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn bad_text_ahead_of_corrupt_data_is_the_violation() {
        // A stored block holding 0xff, then a block of the reserved type: corrupt.
        let payload = [0x00, 0x01, 0x00, 0xfe, 0xff, 0xff, 0x07];
        let wire = masked(OpCode::Text, true, 0b100, &payload);
        for piece in [1, 3, 1000] {
            let mut rx = Receiver::new(Role::Server, &small_buffer(), b"");
            rx.set_inflate(15, false);
            let (_, _, err) = stream_all(&mut rx, &wire, piece, usize::MAX);
            assert_eq!(err, Some(ProtocolError::InvalidUtf8), "piece {piece}");
        }
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn a_compressed_stream_stops_at_its_limit_while_inflating() {
        let zeros = vec![0u8; 1 << 20];
        let wire = message(OpCode::Binary, &compress_all(&[&zeros]), true);
        for piece in [1, 100, 1 << 20] {
            let mut rx = Receiver::new(Role::Server, &small_buffer(), b"");
            rx.set_inflate(15, false);
            let (_, cut, err) = stream_all(&mut rx, &wire, piece.max(1000), 200_000);
            assert_eq!(err, Some(ProtocolError::MessageTooLarge), "piece {piece}");
            assert!(cut.len() <= 200_000 && cut.len() >= 200_000 - STREAM_CHUNK);
        }
    }
}
