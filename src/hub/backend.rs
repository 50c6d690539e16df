//! The seam between a hub and other instances of the same service: a [`Backend`] carries what
//! this instance publishes to the others, and feeds what they publish into this instance's
//! rooms through an [`Inbound`].
//!
//! ```text
//!   Hub::publish(room, msg)                      Backend (e.g. Redis pub/sub)
//!     1. queue for local members                   forward(): queue it for the wire, return
//!     2. backend.forward(room, msg) ------------>  (never waits on the network)
//!                                                  ...
//!   local members  <-- Inbound::deliver(room, msg) <-- a message from another instance
//!                      (local only, not forwarded again)
//! ```
//!
//! The hub delivers its own publishes locally at once and forwards them; a backend must not
//! hand an instance's own messages back to it (tag them with an instance id and skip those),
//! or local members would get them twice.

use std::sync::Weak;

use super::{Delivery, Inner};
use crate::message::{MessageRef, ToMessage};

/// Why a backend did not take a message (see [`Backend::forward`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotForwarded {
    /// Its queue to the other instances is full (they, or the link to them, are slower than
    /// this instance publishes).
    Full,
    /// It cannot reach the other instances now; the string says why, for the log.
    Down(String),
}

impl std::fmt::Display for NotForwarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotForwarded::Full => f.write_str("the queue to other instances is full"),
            NotForwarded::Down(why) => write!(f, "other instances are unreachable: {why}"),
        }
    }
}

/// Carries a hub's publishes to other instances and theirs to it: what spans a room across
/// processes or machines. Implementations own their threads and connections.
///
/// Rules an implementation keeps, so the hub keeps its promises:
///
/// - [`forward`](Backend::forward) returns at once: it queues the message (bounded) for a
///   thread of its own and never waits on the network. A publisher must not stall because
///   another instance, or the link to it, is slow or down.
/// - Messages from one instance to one room arrive in the order it forwarded them.
/// - Messages that came back to the instance that forwarded them are dropped, not delivered:
///   the hub has delivered them locally already.
/// - What arrives from other instances goes to [`Inbound::deliver`], from the backend's own
///   thread; that call never blocks on a member's socket either.
pub trait Backend: Send + Sync + 'static {
    /// Starts delivering messages from other instances to `inbound`. Called once, by
    /// [`HubBuilder::build`](super::HubBuilder::build); an error fails the build.
    fn attach(&self, inbound: Inbound) -> crate::Result<()>;

    /// Queues a message published on this instance for the others, without waiting; `Err` if
    /// it was not taken. [`Delivery::forwarded`] reports the outcome to the publisher.
    fn forward(&self, room: &str, msg: MessageRef<'_>) -> Result<(), NotForwarded>;
}

/// What became of a publish's copy for other instances ([`Delivery::forwarded`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Forwarded {
    /// The hub has no backend (the default): it spans this process only.
    #[default]
    NoBackend,
    /// The backend queued it. Queued is not delivered: the backend's own guarantees (at most
    /// once, for Redis pub/sub) apply from here.
    Queued,
    /// The backend refused it (logged with the reason); other instances will not see it.
    Refused,
    /// It came from another instance ([`Inbound::deliver`]) and is not forwarded again.
    Inbound,
}

/// The way into a hub for messages published on other instances: delivered to this instance's
/// members only. Cheap to clone; holds the hub weakly, so a backend does not keep a dropped
/// hub alive (calls then do nothing).
#[derive(Clone)]
pub struct Inbound {
    pub(super) hub: Weak<Inner>,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("hub_alive", &(self.hub.strong_count() > 0))
            .finish()
    }
}

impl Inbound {
    /// Queues `msg` for every local member of `room`, as a local publish does, without
    /// forwarding it; `None` once the hub is gone.
    pub fn deliver<M: ToMessage>(&self, room: &str, msg: M) -> Option<Delivery> {
        let hub = super::Hub {
            inner: self.hub.upgrade()?,
        };
        let mut delivery = hub.deliver_local(room, msg.to_message(), None);
        delivery.forwarded = Forwarded::Inbound;
        Some(delivery)
    }

    /// The rooms that have local members now (for a backend that subscribes per room); empty
    /// once the hub is gone.
    pub fn rooms(&self) -> Vec<String> {
        self.hub
            .upgrade()
            .map_or_else(Vec::new, |inner| super::Hub { inner }.rooms())
    }

    /// Whether the hub is still there (a backend's thread can stop when it is not).
    pub fn is_alive(&self) -> bool {
        self.hub.strong_count() > 0
    }
}
