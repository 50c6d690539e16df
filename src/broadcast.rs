//! Sending one message to many connections, e.g. a chat room.

use std::sync::Mutex;

use crate::error::Result;
use crate::io::{Split, Stream};
use crate::message::ToMessage;
use crate::websocket::Writer;

/// A group of connections (their [`Writer`]s) that receive the same messages.
///
/// Sending goes to each member in turn. A member that is gone, or whose peer stopped reading so
/// that a write makes no progress for its [`Config::write_timeout`](crate::Config::write_timeout),
/// is dropped from the group and logged; the others still get the message. The kernel's socket
/// buffers absorb a slow reader for a while, so a stalled member costs the others at most one
/// write timeout, once. Servers that broadcast should therefore use a short write timeout
/// (the `chat` example did, with one second, before it moved to a [`Hub`](crate::Hub)).
///
/// For rooms on a server, prefer [`Hub`](crate::Hub): it never waits for a member's socket,
/// bounds what each member may fall behind, compresses a message once for all members, and
/// can span instances. `Broadcast` stays for what a hub does not do: groups of client sockets
/// (whose frames are masked one by one), and small groups where the sender may wait for every
/// member and wants to know who got the message when `send` returns.
///
/// ```no_run
/// use std::sync::Arc;
/// let room = Arc::new(syncws::Broadcast::new());
/// let members = Arc::clone(&room);
/// syncws::Server::bind("127.0.0.1:8000")?.serve(move |ws| {
///     let (mut reader, writer) = ws.split()?;
///     members.add(writer);
///     while let Some(msg) = reader.recv()? {
///         members.send(&msg);
///     }
///     Ok(())
/// })?;
/// # Ok::<(), syncws::Error>(())
/// ```
#[derive(Debug)]
pub struct Broadcast<S: Split = Stream> {
    members: Mutex<Vec<Writer<S>>>,
}

impl<S: Split> Default for Broadcast<S> {
    fn default() -> Self {
        Broadcast {
            members: Mutex::new(Vec::new()),
        }
    }
}

impl<S: Split> Broadcast<S> {
    /// An empty group.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a connection to the group.
    pub fn add(&self, writer: Writer<S>) {
        self.lock().push(writer);
    }

    /// Removes the connection with this id (see [`Writer::id`]); true if it was a member.
    pub fn remove(&self, id: u64) -> bool {
        let mut members = self.lock();
        let before = members.len();
        members.retain(|w| w.id() != id);
        members.len() != before
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True if the group has no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends `msg` to every member and returns how many got it. Members that failed are removed.
    pub fn send<M: ToMessage>(&self, msg: M) -> usize {
        self.send_except(msg, None)
    }

    /// Like [`Broadcast::send`], skipping the member with id `except` (e.g. the sender).
    pub fn send_except<M: ToMessage>(&self, msg: M, except: Option<u64>) -> usize {
        let msg = msg.to_message();
        // Send outside the lock, so members can join and leave meanwhile.
        let members: Vec<Writer<S>> = self.lock().clone();
        let mut failed = Vec::new();
        let mut delivered = 0;
        for w in members.iter().filter(|w| Some(w.id()) != except) {
            match w.send(msg) {
                Ok(()) => delivered += 1,
                Err(e) => {
                    log::debug!("broadcast: dropping ws#{}: {e}", w.id());
                    failed.push(w.id());
                }
            }
        }
        if !failed.is_empty() {
            self.lock().retain(|w| !failed.contains(&w.id()));
        }
        delivered
    }

    /// Closes every member with `code` and empties the group.
    pub fn close_all(&self, code: crate::CloseCode, reason: &str) -> Result<()> {
        let members = std::mem::take(&mut *self.lock());
        for w in members {
            let _ = w.close(code, reason);
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Writer<S>>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }
}
