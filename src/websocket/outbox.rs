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
    let (opcode, payload) = match msg {
        MessageRef::Text(t) => (OpCode::Text, t.as_bytes()),
        MessageRef::Binary(b) => (OpCode::Binary, b),
    };
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode,
        mask: None,
        len: payload.len() as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut head);
    let mut frame = Vec::with_capacity(n + payload.len());
    frame.extend_from_slice(&head[..n]);
    frame.extend_from_slice(payload);
    frame.into()
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
    /// Queues a prepared frame if the queue stays within `limit` bytes.
    fn offer(&self, frame: &Prepared, limit: usize) -> Offer;
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
    frames: VecDeque<Prepared>,
    /// Bytes of the front frame already written.
    written: usize,
    /// The front frame is under way: in part written, or refused by a TLS session that must be
    /// given the same bytes again. Nothing else may be written before it is finished.
    started: bool,
    /// Bytes queued and not yet written.
    bytes: usize,
}

impl Outbox {
    /// Queues `frame` if the queue stays within `limit` bytes; an empty queue takes one frame
    /// of any size, so a frame larger than the limit is not refused for ever.
    pub fn push(&mut self, frame: &Prepared, limit: usize) -> Offer {
        let first = self.frames.is_empty();
        if !first && self.bytes.saturating_add(frame.len()) > limit {
            return Offer::Full;
        }
        self.bytes += frame.len();
        self.frames.push_back(Arc::clone(frame));
        Offer::Queued { first }
    }

    /// The unwritten rest of the front frame, if there is one.
    #[cfg(test)]
    pub fn front(&self) -> Option<&[u8]> {
        self.frames.front().map(|f| &f[self.written..])
    }

    /// The front frame and how much of it is written, to write outside the queue's lock: any
    /// front frame when `all`, otherwise only one under way.
    pub fn front_for(&self, all: bool) -> Option<(Prepared, usize)> {
        let frame = self.frames.front()?;
        (all || self.started).then(|| (Arc::clone(frame), self.written))
    }

    /// Records that `n` more bytes of the front frame went out (and that it is under way).
    pub fn advance(&mut self, n: usize) {
        let Some(front) = self.frames.front() else {
            return;
        };
        self.written += n;
        self.bytes -= n;
        self.started = true;
        if self.written >= front.len() {
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

    #[test]
    fn frames_queue_within_the_limit_and_an_empty_queue_takes_any_one() {
        let mut q = Outbox::default();
        assert_eq!(q.push(&frame(100, 1), 50), Offer::Queued { first: true });
        assert_eq!(q.push(&frame(1, 2), 50), Offer::Full);
        let mut q = Outbox::default();
        assert_eq!(q.push(&frame(30, 1), 50), Offer::Queued { first: true });
        assert_eq!(q.push(&frame(20, 2), 50), Offer::Queued { first: false });
        assert_eq!(q.push(&frame(1, 3), 50), Offer::Full);
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
    fn partial_writes_resume_where_they_stopped() {
        let mut q = Outbox::default();
        q.push(&frame(10, 1), 100);
        q.push(&frame(5, 2), 100);
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
}
