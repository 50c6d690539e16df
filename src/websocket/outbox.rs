//! Frames others queue for a connection (a hub's rooms), kept in order and within a byte limit,
//! written by whoever holds the connection's write lock next.
//!
//! ```text
//!   publisher (any thread)          flusher (hub thread)             the member's own sender
//!   offer(frame): push if it fits   try the write lock; write the    under the write lock: the
//!   (never touches the socket)      queue without blocking; stop     queue first (blocking, in
//!                                   where the kernel is full         its write timeout), then
//!                                                                    its own message
//! ```
//!
//! A frame written in part (the kernel took only some of it, or a TLS record is pending) must be
//! finished before any other frame goes out, control frames included; its state is `started`.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::message::MessageRef;
use crate::proto::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};

/// A frame encoded once for many connections: header and payload, unmasked (a server's frames),
/// shared by every member's queue.
pub type Prepared = Arc<[u8]>;

/// Encodes `msg` as one final, unmasked, uncompressed frame, as a server sends it.
pub fn prepare(msg: MessageRef<'_>) -> Prepared {
    let (opcode, payload) = parts(msg);
    unmasked_frame(opcode, 0, payload).into()
}

fn parts(msg: MessageRef<'_>) -> (OpCode, &[u8]) {
    match msg {
        MessageRef::Text(t) => (OpCode::Text, t.as_bytes()),
        MessageRef::Binary(b) => (OpCode::Binary, b),
    }
}

/// One final, unmasked frame: header and payload in one buffer.
pub(crate) fn unmasked_frame(opcode: OpCode, rsv: u8, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        fin: true,
        rsv,
        opcode,
        mask: None,
        len: payload.len() as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut head);
    let mut frame = Vec::with_capacity(n + payload.len());
    frame.extend_from_slice(&head[..n]);
    frame.extend_from_slice(payload);
    frame
}

/// The opcode and payload of a frame made by [`prepare`] (whose header is never masked).
#[cfg(feature = "deflate")]
pub(crate) fn split_prepared(frame: &[u8]) -> (OpCode, &[u8]) {
    let opcode = match frame[0] & 0x0f {
        0x1 => OpCode::Text,
        _ => OpCode::Binary,
    };
    let head = match frame[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    (opcode, &frame[head..])
}

/// How a connection takes what a hub publishes, fixed when it is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "deflate"), allow(dead_code))]
pub(crate) enum Encoding {
    /// As a plain frame: no compression was negotiated.
    Plain,
    /// Compressed, every message on its own at these settings (our side without context
    /// takeover): one compressed frame serves every member that shares them.
    Shared(Compression),
    /// Compressed with the connection's own context (context takeover), which only its own
    /// writer may touch: the plain frame is queued and compressed when it is written.
    Own,
}

/// The settings that decide the bytes of a message compressed on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Compression {
    pub level: u32,
    pub window_bits: u8,
    /// Messages shorter than this go out uncompressed.
    pub threshold: usize,
}

/// Compresses `msg` into a server's final frame (RSV1 set) for members with
/// [`Encoding::Shared`] settings `c`; `None` if it is shorter than their threshold, so goes out
/// plain. Fails only if the compressor does.
#[cfg(feature = "deflate")]
pub(crate) fn compress_shared(
    msg: MessageRef<'_>,
    c: Compression,
) -> std::io::Result<Option<Prepared>> {
    let (opcode, payload) = parts(msg);
    if payload.len() < c.threshold {
        return Ok(None);
    }
    let mut z = Vec::with_capacity(payload.len() / 2 + 64);
    crate::proto::deflate::Compressor::new(c.window_bits, c.level, true)
        .compress(payload, true, &mut z)?;
    Ok(Some(unmasked_frame(opcode, 0b100, &z).into()))
}

/// What became of a frame offered to an outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Queued; `first` when the queue was empty before, so someone should flush it.
    Queued { first: bool },
    /// Not queued: the queue would pass its limit.
    Full,
    /// Not queued: the connection is closed.
    Closed,
}

/// What a non-blocking flush did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Nothing is left in the queue.
    Empty,
    /// The kernel took what it could; the rest waits for the next try.
    WouldBlock,
    /// Another thread holds the write lock; it finishes the queue before its own frame, or
    /// hands it back.
    Busy,
    /// The connection is closed (or the write failed and closed it).
    Closed,
}

/// A connection as a hub sees it: a queue to offer frames to, flushed without blocking, and a
/// way to drop it at once. Implemented by the shared state of a split socket's halves.
pub(crate) trait Outlet: Send + Sync {
    /// The connection's id.
    fn id(&self) -> u64;
    /// Whether this is a server's socket, whose frames go out unmasked (so one encoding serves
    /// every such member).
    fn is_server(&self) -> bool;
    /// How the connection takes published messages (decides which prepared frame it is offered).
    fn encoding(&self) -> Encoding;
    /// Queues a prepared frame if the queue stays within `limit` bytes; `compress` as in
    /// [`Outbox::push`].
    fn offer(&self, frame: &Prepared, compress: bool, limit: usize) -> Offer;
    /// Writes what is queued as far as the kernel takes it now, never blocking.
    fn flush(&self) -> Flushed;
    /// Shuts the connection down at once (no close frame: it could not pass a full buffer).
    fn abort(&self);
    /// Runs `hook` once the connection closes or its last half is dropped (at once if it is
    /// closed already).
    fn when_closed(&self, hook: Box<dyn FnOnce() + Send>);
    /// Bytes queued and not yet written.
    fn queued(&self) -> usize;
}

/// The queue itself: frames in order, the bytes of the first one already written, and the total
/// not yet written.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    frames: VecDeque<Queued>,
    /// Bytes of the front frame already written.
    written: usize,
    /// The front frame is under way: in part written, or refused by a TLS session that must be
    /// given the same bytes again. Nothing else may be written before it is finished.
    started: bool,
    /// Bytes queued and not yet written.
    bytes: usize,
}

/// A queued frame, and whether the connection is still to compress it with its own context
/// ([`Encoding::Own`]) before it goes out.
#[derive(Debug)]
struct Queued {
    frame: Prepared,
    compress: bool,
}

impl Outbox {
    /// Queues `frame` if the queue stays within `limit` bytes; an empty queue takes one frame
    /// of any size, so a frame larger than the limit is not refused for ever. `compress`: the
    /// frame is a plain one the connection compresses itself when it comes to be written.
    pub fn push(&mut self, frame: &Prepared, compress: bool, limit: usize) -> Offer {
        let first = self.frames.is_empty();
        if !first && self.bytes.saturating_add(frame.len()) > limit {
            return Offer::Full;
        }
        self.bytes += frame.len();
        self.frames.push_back(Queued {
            frame: Arc::clone(frame),
            compress,
        });
        Offer::Queued { first }
    }

    /// The unwritten rest of the front frame, if there is one.
    #[cfg(test)]
    pub fn front(&self) -> Option<&[u8]> {
        self.frames.front().map(|q| &q.frame[self.written..])
    }

    /// The front frame and how much of it is written, to write outside the queue's lock: any
    /// front frame when `all`, otherwise only one under way.
    pub fn front_for(&self, all: bool) -> Option<(Prepared, usize)> {
        let front = self.frames.front()?;
        (all || self.started).then(|| (Arc::clone(&front.frame), self.written))
    }

    /// The front frame if the connection is still to compress it (it is not under way then).
    pub fn to_compress(&self) -> Option<Prepared> {
        let front = self.frames.front()?;
        front.compress.then(|| Arc::clone(&front.frame))
    }

    /// Puts the connection's encoding of the front frame in its place (see [`Self::to_compress`]).
    pub fn compressed(&mut self, frame: Prepared) {
        if let Some(front) = self.frames.front_mut() {
            self.bytes = self.bytes - front.frame.len() + frame.len();
            *front = Queued {
                frame,
                compress: false,
            };
        }
    }

    /// Records that `n` more bytes of the front frame went out (and that it is under way).
    pub fn advance(&mut self, n: usize) {
        let Some(front) = self.frames.front() else {
            return;
        };
        self.written += n;
        self.bytes -= n;
        self.started = true;
        if self.written >= front.frame.len() {
            self.frames.pop_front();
            self.written = 0;
            self.started = false;
        }
    }

    /// Records that a write of the front frame was refused and must be retried with the same
    /// bytes before anything else (TLS may have taken part of it into a record).
    pub fn mark_started(&mut self) {
        if !self.frames.is_empty() {
            self.started = true;
        }
    }

    /// Whether the front frame is under way and must be finished first.
    #[cfg(test)]
    pub fn started(&self) -> bool {
        self.started
    }

    /// Whether nothing is queued.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes queued and not yet written.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Forgets everything queued (the connection is gone).
    pub fn clear(&mut self) {
        *self = Outbox::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize, byte: u8) -> Prepared {
        vec![byte; n].into()
    }

    impl Outbox {
        fn push_plain(&mut self, frame: &Prepared, limit: usize) -> Offer {
            self.push(frame, false, limit)
        }
    }

    #[test]
    fn frames_queue_within_the_limit_and_an_empty_queue_takes_any_one() {
        let mut q = Outbox::default();
        assert_eq!(
            q.push_plain(&frame(100, 1), 50),
            Offer::Queued { first: true }
        );
        assert_eq!(q.push_plain(&frame(1, 2), 50), Offer::Full);
        let mut q = Outbox::default();
        assert_eq!(
            q.push_plain(&frame(30, 1), 50),
            Offer::Queued { first: true }
        );
        assert_eq!(
            q.push_plain(&frame(20, 2), 50),
            Offer::Queued { first: false }
        );
        assert_eq!(q.push_plain(&frame(1, 3), 50), Offer::Full);
        assert_eq!(q.bytes(), 50);
    }

    #[test]
    fn prepared_frames_are_final_unmasked_and_whole() {
        let f = prepare(MessageRef::Text("hi"));
        assert_eq!(&f[..], &[0x81, 2, b'h', b'i']);
        let big = vec![7u8; 300];
        let f = prepare(MessageRef::Binary(&big));
        assert_eq!(&f[..4], &[0x82, 126, 1, 44]);
        assert_eq!(&f[4..], &big[..]);
    }

    #[test]
    fn a_frame_compressed_in_place_is_counted_at_its_new_size() {
        let mut q = Outbox::default();
        q.push(&frame(1000, 1), true, 10_000);
        q.push(&frame(1000, 2), true, 10_000);
        assert_eq!(q.bytes(), 2000);
        assert_eq!(q.to_compress().map(|f| f.len()), Some(1000));
        q.compressed(frame(40, 9));
        assert_eq!(q.bytes(), 1040);
        assert_eq!(q.front(), Some(&[9u8; 40][..]));
        assert!(q.to_compress().is_none(), "compressed once");
        // The limit counts it so: 8960 bytes more fit, 8961 do not.
        assert_eq!(q.push_plain(&frame(8961, 3), 10_000), Offer::Full);
        assert_eq!(
            q.push_plain(&frame(8960, 3), 10_000),
            Offer::Queued { first: false }
        );
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let mut q = Outbox::default();
        q.push_plain(&frame(10, 1), 100);
        q.push_plain(&frame(5, 2), 100);
        assert!(!q.started());
        q.advance(4);
        assert!(q.started());
        assert_eq!(q.front(), Some(&[1u8; 6][..]));
        assert_eq!(q.bytes(), 11);
        q.advance(6);
        assert!(!q.started(), "the first frame is done");
        assert_eq!(q.front(), Some(&[2u8; 5][..]));
        q.mark_started();
        assert!(q.started());
        q.advance(5);
        assert!(q.is_empty() && !q.started() && q.bytes() == 0);
        q.mark_started();
        assert!(!q.started(), "nothing to be under way");
    }

    #[test]
    fn a_cleared_queue_lets_go_of_the_shared_frames() {
        // A room's frame is shared by every member's queue; a closed member's queue must not
        // keep it (and its memory) alive.
        let shared = frame(1000, 1);
        let mut q = Outbox::default();
        q.push_plain(&shared, 10_000);
        q.push_plain(&shared, 10_000);
        q.advance(10);
        assert_eq!(Arc::strong_count(&shared), 3);
        q.clear();
        assert_eq!(Arc::strong_count(&shared), 1);
        assert!(q.is_empty() && !q.started() && q.bytes() == 0);
        assert_eq!(q.push_plain(&shared, 10), Offer::Queued { first: true });
    }
}
