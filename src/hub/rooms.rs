//! Who is in which room: the membership tables of a hub, without threads or sockets.

use std::collections::HashMap;
use std::sync::Weak;
use std::sync::atomic::AtomicU64;

use super::Overflow;
use crate::websocket::Outlet;

/// One member of one room.
pub(super) struct Member {
    pub id: u64,
    pub outlet: Weak<dyn Outlet>,
    /// Messages dropped for this member because its queue was full (under
    /// [`Overflow::DropMessages`]).
    pub dropped: AtomicU64,
}

/// A room: its members in the order they joined, and what to do when one's queue is full.
pub(super) struct Room {
    pub members: Vec<Member>,
    pub overflow: Overflow,
}

/// Every room, and the rooms of every connection (so one that ends leaves them all at once).
#[derive(Default)]
pub(super) struct Rooms {
    pub by_name: HashMap<String, Room>,
    rooms_of: HashMap<u64, Vec<String>>,
}

impl Rooms {
    /// Adds a member to `room` (created with `overflow` if new); false if it was in it already.
    pub fn join(
        &mut self,
        room: &str,
        id: u64,
        outlet: Weak<dyn Outlet>,
        overflow: Overflow,
    ) -> bool {
        let r = self.by_name.entry(room.to_owned()).or_insert_with(|| Room {
            members: Vec::new(),
            overflow,
        });
        if r.members.iter().any(|m| m.id == id) {
            return false;
        }
        r.members.push(Member {
            id,
            outlet,
            dropped: AtomicU64::new(0),
        });
        self.rooms_of.entry(id).or_default().push(room.to_owned());
        true
    }

    /// Whether `id` is a member of any room.
    pub fn knows(&self, id: u64) -> bool {
        self.rooms_of.contains_key(&id)
    }

    /// Removes a member from `room`; an empty room is forgotten. False if it was not in it.
    pub fn leave(&mut self, room: &str, id: u64) -> bool {
        let Some(r) = self.by_name.get_mut(room) else {
            return false;
        };
        let before = r.members.len();
        r.members.retain(|m| m.id != id);
        let left = r.members.len() != before;
        if r.members.is_empty() {
            self.by_name.remove(room);
        }
        if let Some(rooms) = self.rooms_of.get_mut(&id) {
            rooms.retain(|r| r != room);
            if rooms.is_empty() {
                self.rooms_of.remove(&id);
            }
        }
        left
    }

    /// Removes a member from every room it is in; returns how many.
    pub fn leave_all(&mut self, id: u64) -> usize {
        let rooms = self.rooms_of.remove(&id).unwrap_or_default();
        for room in &rooms {
            if let Some(r) = self.by_name.get_mut(room) {
                r.members.retain(|m| m.id != id);
                if r.members.is_empty() {
                    self.by_name.remove(room);
                }
            }
        }
        rooms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nobody() -> Weak<dyn Outlet> {
        Weak::<Dead>::new()
    }

    /// An outlet type for tables that never touch one.
    struct Dead;

    impl Outlet for Dead {
        fn id(&self) -> u64 {
            0
        }
        fn is_server(&self) -> bool {
            true
        }
        fn encoding(&self) -> crate::websocket::Encoding {
            crate::websocket::Encoding::Plain
        }
        fn offer(
            &self,
            _: &crate::websocket::Prepared,
            _: bool,
            _: usize,
        ) -> crate::websocket::Offer {
            crate::websocket::Offer::Closed
        }
        fn flush(&self) -> crate::websocket::Flushed {
            crate::websocket::Flushed::Closed
        }
        fn abort(&self) {}
        fn when_closed(&self, _: Box<dyn FnOnce() + Send>) {}
        fn queued(&self) -> usize {
            0
        }
    }

    #[test]
    fn members_join_once_leave_one_room_or_all() {
        let mut rooms = Rooms::default();
        assert!(rooms.join("a", 1, nobody(), Overflow::Disconnect));
        assert!(!rooms.join("a", 1, nobody(), Overflow::Disconnect), "twice");
        assert!(rooms.join("a", 2, nobody(), Overflow::Disconnect));
        assert!(rooms.join("b", 1, nobody(), Overflow::DropMessages));
        assert_eq!(rooms.by_name["a"].members.len(), 2);
        assert!(rooms.leave("a", 2));
        assert!(!rooms.leave("a", 2));
        assert!(rooms.knows(1) && !rooms.knows(2));
        assert_eq!(rooms.leave_all(1), 2);
        assert!(rooms.by_name.is_empty(), "empty rooms are forgotten");
        assert!(!rooms.knows(1));
    }
}
