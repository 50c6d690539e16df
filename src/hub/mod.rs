//! Fan-out: rooms of connections that receive the same messages, where no member can stall a
//! publisher or the other members.
//!
//! ```text
//!   publish(room, msg)                       each member (a split socket's writer)
//!   +--------------------------+            +----------------------------------+
//!   | encode the frame once    |  offer     | queue of prepared frames,        |
//!   | for each member: queue   |----------->| bounded in bytes (`backlog`)     |
//!   | it, or apply the room's  |            +----------------------------------+
//!   | overflow policy          |                 |  first frame: hand over   ^ own send: queue
//!   +--------------------------+                 v                           | first, then its
//!                                           flusher threads: write without   | message
//!                                           blocking; a full socket is tried |
//!                                           again after 2..50 ms             |
//! ```
//!
//! Files: `rooms` keeps the membership tables, `flusher` the threads that write the queues,
//! `backend` the seam to other instances (a [`Backend`] forwards publishes, an [`Inbound`]
//! brings theirs in), and `redis` (feature `redis`) the backend on Redis pub/sub. The queue itself belongs to the connection (`websocket::outbox`), since
//! the member's own sends must go behind it.

mod backend;
mod flusher;
#[cfg(feature = "redis")]
mod redis;
mod rooms;

pub use backend::{Backend, Forwarded, Inbound, NotForwarded};
#[cfg(feature = "redis")]
pub use redis::{RedisBackend, RedisBuilder, RedisStats, RedisStatus};

use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::Duration;

use crate::error::{Error, InputError, Result};
use crate::io::Split;
use crate::message::MessageRef;
use crate::message::ToMessage;
use crate::websocket::{Encoding, Offer, Prepared, Writer, prepare};
use flusher::Flushers;
use rooms::Rooms;

/// What a room does with a member whose queue is full (its peer reads slower than the room
/// publishes, or not at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Overflow {
    /// Drops the member: its TCP connection is shut down at once (a close frame could not pass
    /// a full buffer), its reader ends, and it leaves every room. The default: a member that
    /// cannot keep up would otherwise miss messages without knowing.
    Disconnect,
    /// Keeps the member and drops the messages that do not fit, counting them (see
    /// [`Overflowed::dropped`]): for feeds where the latest value matters more than every
    /// value, such as prices or positions.
    DropMessages,
}

/// One overflow, as [`HubBuilder::on_overflow`] hears of it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Overflowed {
    /// The room that published.
    pub room: String,
    /// The member's connection id ([`Writer::id`]).
    pub member: u64,
    /// What was done.
    pub action: Overflow,
    /// Messages dropped for this member in this room so far (under
    /// [`Overflow::DropMessages`]; 0 for a disconnect).
    pub dropped: u64,
}

/// What one publish did, on this process's members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// Members the message was queued for. Queued is not yet delivered: it reaches the kernel
    /// as fast as the member's socket takes it.
    pub queued: usize,
    /// Members whose queue was full and who kept their place ([`Overflow::DropMessages`]).
    pub dropped: usize,
    /// Members whose queue was full and who were disconnected ([`Overflow::Disconnect`]).
    pub disconnected: usize,
    /// What became of the copy for other instances (see [`HubBuilder::backend`]).
    pub forwarded: Forwarded,
    /// How many times this publish compressed the message: once per distinct compression
    /// setting among members that compress every message on its own (with the default
    /// `DeflateConfig`, all of a server's), 0 when none does. Members
    /// that keep their context between messages compress it themselves, each, when their
    /// queue is written, and are not counted here.
    pub compressions: usize,
}

type OverflowHook = Box<dyn Fn(&Overflowed) + Send + Sync>;

/// Settings of a [`Hub`]; see [`Hub::builder`].
pub struct HubBuilder {
    backlog: usize,
    overflow: Overflow,
    flushers: usize,
    on_overflow: Option<OverflowHook>,
    backend: Option<Arc<dyn Backend>>,
}

impl std::fmt::Debug for HubBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubBuilder")
            .field("backlog", &self.backlog)
            .field("overflow", &self.overflow)
            .field("flushers", &self.flushers)
            .field("backend", &self.backend.is_some())
            .finish_non_exhaustive()
    }
}

/// The default [`HubBuilder::backlog`]: 1 MiB per member.
pub const DEFAULT_BACKLOG: usize = 1 << 20;

impl HubBuilder {
    /// The most bytes queued for one member and not yet taken by its socket (beyond what the
    /// kernel's socket buffer holds). Defaults to [`DEFAULT_BACKLOG`], 1 MiB. One message is
    /// always accepted into an empty queue, whatever its size.
    pub fn backlog(mut self, bytes: usize) -> Self {
        self.backlog = bytes;
        self
    }

    /// What rooms do by default with a member whose queue is full; defaults to
    /// [`Overflow::Disconnect`]. [`Hub::set_overflow`] chooses per room.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// How many threads write the members' queues; defaults to 2. Their writes never block,
    /// so a few serve thousands of members.
    pub fn flushers(mut self, n: usize) -> Self {
        self.flushers = n.max(1);
        self
    }

    /// Called for every overflow, in the publishing thread after its work is done: keep it
    /// short. Overflows are also logged (a disconnect at `info`, dropped messages at `debug`).
    pub fn on_overflow<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Overflowed) + Send + Sync + 'static,
    {
        self.on_overflow = Some(Box::new(hook));
        self
    }

    /// Spans rooms across instances: every publish is also handed to `backend` for the other
    /// instances, and what they publish reaches this hub's members (see [`Backend`]). Without
    /// one, a hub spans its own process.
    pub fn backend<B: Backend>(mut self, backend: B) -> Self {
        self.backend = Some(Arc::new(backend));
        self
    }

    /// Starts the hub's flusher threads (they stop when the last clone of the hub is dropped)
    /// and attaches the backend, if any; fails if either fails.
    pub fn build(self) -> Result<Hub> {
        let flushers = Flushers::start(self.flushers)?;
        let inner = Arc::new(Inner {
            rooms: RwLock::new(Rooms::default()),
            departed: Mutex::new(Vec::new()),
            flushers,
            backlog: self.backlog,
            overflow: self.overflow,
            on_overflow: self.on_overflow,
            backend: self.backend,
        });
        if let Some(backend) = &inner.backend {
            backend.attach(Inbound {
                hub: Arc::downgrade(&inner),
            })?;
        }
        Ok(Hub { inner })
    }
}

struct Inner {
    rooms: RwLock<Rooms>,
    /// Connections that ended, to be removed from their rooms by the next operation (they are
    /// recorded from inside the connection, which may hold its own locks).
    departed: Mutex<Vec<u64>>,
    flushers: Flushers,
    backlog: usize,
    overflow: Overflow,
    on_overflow: Option<OverflowHook>,
    backend: Option<Arc<dyn Backend>>,
}

/// Named rooms of connections, where publishing never waits for a member's socket.
///
/// A publish encodes the message once and queues it for each member, within a byte limit per
/// member ([`HubBuilder::backlog`]); flusher threads write the queues without blocking. So a
/// member whose peer stopped reading costs the others nothing: its queue fills, and the room's
/// [`Overflow`] policy drops it (or the messages it cannot take). Messages reach each member in
/// the order they were published to it; a member's own [`Writer::send`] goes behind what the
/// hub queued for it (waiting up to the write timeout for it to drain), so frames never mix.
///
/// Members are the writers of split server sockets. A connection leaves every room when it
/// ends.
///
/// On connections that negotiated permessage-deflate, a message is compressed once per publish
/// for every member whose side compresses each message on its own (the default
/// `DeflateConfig`; one compression per distinct window size), and
/// every such member is sent the same bytes. A member whose side keeps its context between
/// messages (`no_context_takeover(false)`) is queued the plain message and compresses it in
/// its own context when its queue is written, in order with its own sends: once per member,
/// on a flusher's or the member's own thread, never the publisher's. [`Delivery::compressions`]
/// tells which happened. Messages under the threshold go out plain either way.
///
/// ```no_run
/// use syncws::{Hub, Server};
/// let hub = Hub::new()?;
/// let rooms = hub.clone();
/// Server::bind("127.0.0.1:8000")?.serve(move |ws| {
///     let room = ws.path().unwrap_or("/").to_owned();
///     let (mut reader, writer) = ws.split()?;
///     rooms.join(&room, &writer)?;
///     while let Some(msg) = reader.recv()? {
///         rooms.publish_except(&room, &msg, writer.id());
///     }
///     Ok(())
/// })?;
/// # Ok::<(), syncws::Error>(())
/// ```
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("rooms", &self.read().by_name.len())
            .field("backlog", &self.inner.backlog)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub with the default settings (see [`HubBuilder`]); starts its flusher threads.
    pub fn new() -> Result<Hub> {
        Hub::builder().build()
    }

    /// Settings for a hub.
    pub fn builder() -> HubBuilder {
        HubBuilder {
            backlog: DEFAULT_BACKLOG,
            overflow: Overflow::Disconnect,
            flushers: 2,
            on_overflow: None,
            backend: None,
        }
    }

    /// Adds the connection of `writer` to `room` (created if new); true if it was not a member
    /// yet. Fails with [`InputError::ClientSocket`] for a client's socket (its frames must be
    /// masked one by one, which a shared encoding cannot be) and [`Error::Closed`] for a
    /// closed one.
    pub fn join<S: Split + 'static>(&self, room: &str, writer: &Writer<S>) -> Result<bool> {
        let outlet = writer.outlet();
        let Some(live) = outlet.upgrade() else {
            return Err(Error::Closed);
        };
        if !live.is_server() {
            return Err(Error::InvalidInput(InputError::ClientSocket));
        }
        let id = writer.id();
        let first_room = {
            let mut rooms = self.write();
            let first = !rooms.knows(id);
            let overflow = self.inner.overflow;
            if !rooms.join(room, id, outlet, overflow) {
                return Ok(false);
            }
            first
        };
        if first_room {
            let hub: Weak<Inner> = Arc::downgrade(&self.inner);
            live.when_closed(Box::new(move || {
                if let Some(hub) = hub.upgrade() {
                    hub.departed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(id);
                }
            }));
        }
        Ok(true)
    }

    /// Removes connection `id` from `room`; true if it was a member.
    pub fn leave(&self, room: &str, id: u64) -> bool {
        self.write().leave(room, id)
    }

    /// Removes connection `id` from every room; returns how many it was in. Connections leave
    /// by themselves when they end; this is for one that stays open.
    pub fn leave_all(&self, id: u64) -> usize {
        self.write().leave_all(id)
    }

    /// Chooses what `room` does with a member whose queue is full (see [`Overflow`]); applies
    /// to the room as long as it has members.
    pub fn set_overflow(&self, room: &str, overflow: Overflow) {
        if let Some(r) = self.write().by_name.get_mut(room) {
            r.overflow = overflow;
        }
    }

    /// The connection ids in `room`, in the order they joined.
    pub fn members(&self, room: &str) -> Vec<u64> {
        let rooms = self.read();
        let Some(r) = rooms.by_name.get(room) else {
            return Vec::new();
        };
        r.members.iter().map(|m| m.id).collect()
    }

    /// How many members `room` has.
    pub fn count(&self, room: &str) -> usize {
        self.read().by_name.get(room).map_or(0, |r| r.members.len())
    }

    /// The names of the rooms that have members.
    pub fn rooms(&self) -> Vec<String> {
        self.read().by_name.keys().cloned().collect()
    }

    /// Queues `msg` for every member of `room`, and hands it to the backend for other
    /// instances if there is one; never waits for a member's socket or the network.
    pub fn publish<M: ToMessage>(&self, room: &str, msg: M) -> Delivery {
        self.deliver(room, msg.to_message(), None)
    }

    /// Like [`publish`](Self::publish), leaving out connection `except` (e.g. the sender) on
    /// this instance.
    pub fn publish_except<M: ToMessage>(&self, room: &str, msg: M, except: u64) -> Delivery {
        self.deliver(room, msg.to_message(), Some(except))
    }

    fn deliver(&self, room: &str, msg: MessageRef<'_>, except: Option<u64>) -> Delivery {
        let mut delivery = self.deliver_local(room, msg, except);
        if let Some(backend) = &self.inner.backend {
            delivery.forwarded = match backend.forward(room, msg) {
                Ok(()) => Forwarded::Queued,
                Err(why) => {
                    // Per message, so at debug: the backend logs when it goes down and up.
                    log::debug!("hub: room {room:?}: not forwarded to other instances: {why}");
                    Forwarded::Refused
                }
            };
        }
        delivery
    }

    /// Queues `msg` for this instance's members of `room`.
    fn deliver_local(&self, room: &str, msg: MessageRef<'_>, except: Option<u64>) -> Delivery {
        let mut frames = Frames::new(msg);
        let mut delivery = Delivery::default();
        let mut overflowed = Vec::new();
        let mut to_flush = Vec::new();
        {
            let rooms = self.read();
            let Some(r) = rooms.by_name.get(room) else {
                return delivery;
            };
            // Every member's state is a cache (and TLB) miss in a room of thousands. For each
            // run of members, plain loads first, which the CPU overlaps, then the loop below,
            // whose atomic read-modify-writes it runs one at a time: taken there, one after
            // another, the misses were most of a publish's time.
            for run in r.members.chunks(32) {
                let live = run.iter().filter(|m| m.outlet.strong_count() > 0);
                to_flush.reserve(live.count());
                for m in run.iter().filter(|m| Some(m.id) != except) {
                    // A member that ended leaves its rooms through its close hook (`join`), which
                    // every way of ending runs: skipped here, it is removed at the next operation.
                    let Some(outlet) = m.outlet.upgrade() else {
                        continue;
                    };
                    let encoding = outlet.encoding();
                    let Some(frame) = frames.get(encoding) else {
                        // The compressor failed (it does not, short of memory): the member is
                        // dropped rather than sent a frame it could not inflate.
                        outlet.abort();
                        continue;
                    };
                    match outlet.offer(frame, encoding == Encoding::Own, self.inner.backlog) {
                        Offer::Queued { first } => {
                            delivery.queued += 1;
                            if first {
                                to_flush.push(m.outlet.clone());
                            }
                        }
                        Offer::Closed => {}
                        Offer::Full => {
                            let action = r.overflow;
                            let dropped = match action {
                                Overflow::Disconnect => {
                                    delivery.disconnected += 1;
                                    0
                                }
                                Overflow::DropMessages => {
                                    delivery.dropped += 1;
                                    1 + m.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                                }
                            };
                            overflowed.push((outlet, action, dropped));
                        }
                    }
                }
            }
        }
        delivery.compressions = frames.compressions;
        self.inner.flushers.schedule(to_flush);
        // Outside the lock: shutting a connection down runs its hooks, which record it as
        // departed, and the callback may call back into the hub.
        for (outlet, action, dropped) in overflowed {
            let event = Overflowed {
                room: room.to_owned(),
                member: outlet.id(),
                action,
                dropped,
            };
            match action {
                Overflow::Disconnect => {
                    log::info!(
                        "hub: room {room:?} dropped ws#{}: {} bytes queued, over the backlog",
                        event.member,
                        outlet.queued()
                    );
                    outlet.abort();
                }
                Overflow::DropMessages => log::debug!(
                    "hub: room {room:?} dropped a message for ws#{} ({dropped} so far)",
                    event.member
                ),
            }
            if let Some(hook) = &self.inner.on_overflow {
                hook(&event);
            }
        }
        delivery
    }

    fn read(&self) -> RwLockReadGuard<'_, Rooms> {
        self.forget_departed();
        self.inner.rooms.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Rooms> {
        let mut rooms = self.inner.rooms.write().unwrap_or_else(|e| e.into_inner());
        let departed = std::mem::take(&mut *self.departed());
        for id in departed {
            rooms.leave_all(id);
        }
        rooms
    }

    /// Removes the connections that ended since the last operation from their rooms.
    fn forget_departed(&self) {
        if !self.departed().is_empty() {
            drop(self.write());
        }
    }

    fn departed(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.inner
            .departed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// The encodings of one published message, each made when the first member that takes it
/// comes up: the plain frame (also for members that compress it themselves, with their own
/// context), and one compressed frame per compression setting shared by members that compress
/// every message on its own.
struct Frames<'a> {
    msg: MessageRef<'a>,
    plain: Option<Prepared>,
    #[cfg(feature = "deflate")]
    shared: Vec<(Encoding, Option<Prepared>)>,
    compressions: usize,
}

impl<'a> Frames<'a> {
    fn new(msg: MessageRef<'a>) -> Self {
        Frames {
            msg,
            plain: None,
            #[cfg(feature = "deflate")]
            shared: Vec::new(),
            compressions: 0,
        }
    }

    /// The frame for a member with `encoding`; `None` if compressing it failed.
    fn get(&mut self, encoding: Encoding) -> Option<&Prepared> {
        let msg = self.msg;
        match encoding {
            Encoding::Plain | Encoding::Own => Some(self.plain.get_or_insert_with(|| prepare(msg))),
            #[cfg(feature = "deflate")]
            Encoding::Shared(c) => {
                let at = match self.shared.iter().position(|(e, _)| *e == encoding) {
                    Some(at) => at,
                    None => {
                        let frame = match crate::websocket::compress_shared(msg, c) {
                            Ok(Some(frame)) => {
                                self.compressions += 1;
                                Some(frame)
                            }
                            Ok(None) => {
                                Some(self.plain.get_or_insert_with(|| prepare(msg)).clone())
                            }
                            Err(e) => {
                                log::warn!("hub: compressing a message failed: {e}");
                                None
                            }
                        };
                        self.shared.push((encoding, frame));
                        self.shared.len() - 1
                    }
                };
                self.shared[at].1.as_ref()
            }
            #[cfg(not(feature = "deflate"))]
            Encoding::Shared(_) => Some(self.plain.get_or_insert_with(|| prepare(msg))),
        }
    }
}

/// How long a flusher waits at most before trying a full member's socket again.
pub const RETRY_BOUND: Duration = flusher::LAST_RETRY;
