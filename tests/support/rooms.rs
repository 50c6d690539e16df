//! A server whose every connection joins a hub's room, for the fan-out tests.

use std::net::SocketAddr;
use std::sync::{Mutex, mpsc};
use std::thread;

use syncws::{Hub, Message, Server};

use super::TIMEOUT;

/// The room the tests' members join.
pub const ROOM: &str = "room";

/// Serves `server` (configured by the caller) on a thread: every connection splits, joins
/// [`ROOM`] of `hub`, tells the returned channel its connection id, then answers each message
/// from its client with what `answer` makes of it, through its own writer, until it ends.
pub fn room_server_on<F>(hub: &Hub, server: Server, answer: F) -> (SocketAddr, mpsc::Receiver<u64>)
where
    F: Fn(&Message) -> Option<String> + Send + Sync + 'static,
{
    let (joined_tx, joined) = mpsc::channel();
    let joined_tx = Mutex::new(joined_tx);
    let members = hub.clone();
    let addr = server.local_addr();
    thread::spawn(move || {
        server.serve(move |ws| {
            let (mut reader, writer) = ws.split()?;
            members.join(ROOM, &writer)?;
            joined_tx.lock().unwrap().send(writer.id())?;
            while let Some(msg) = reader.recv()? {
                if let Some(reply) = answer(&msg) {
                    writer.send(reply)?;
                }
            }
            Ok(())
        })
    });
    (addr, joined)
}

/// Waits until `n` more connections joined; returns their ids.
pub fn joined(joins: &mpsc::Receiver<u64>, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| joins.recv_timeout(TIMEOUT).expect("a member joined"))
        .collect()
}
