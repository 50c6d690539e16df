//! The publisher thread: takes what `forward` queued, numbers it per room, and PUBLISHes it
//! in pipelines on its own connection; pings Redis when idle, so that `forward` learns of a
//! lost connection without a message being lost to find out.
//!
//! ```text
//!   connected ──(send or ping fails)──> down: queue dropped, forward refuses
//!       ^                                 │
//!       └──(connect + PING succeed)─── backoff, try again ──(backend dropped)──> end
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::Counters;
use super::envelope;
use super::link::{self, Backoff, Shared, Work};
use crate::error::Result;

/// How long the connection may stay idle before a `PING` checks it.
const KEEPALIVE: Duration = Duration::from_secs(1);

/// How many rooms get their own sequence before the numbering starts over under a new epoch
/// (so that the table stays bounded whatever room names callers make up).
const MAX_ROOMS: usize = 1 << 16;

/// Starts the thread on `con`, made by `build`.
pub(super) fn start(
    shared: Arc<Shared>,
    client: redis::Client,
    con: redis::Connection,
) -> Result<()> {
    thread::Builder::new()
        .name("redis-publish".into())
        .spawn(move || run(&shared, &client, con))?;
    Ok(())
}

/// The sequence numbers of one instance: per room, from 1, under an epoch.
struct Sequences {
    epoch: u32,
    next: HashMap<String, u64>,
}

impl Sequences {
    /// The epoch and number of the next message to `room`.
    fn next(&mut self, room: &str) -> (u32, u64) {
        if let Some(n) = self.next.get_mut(room) {
            *n += 1;
            return (self.epoch, *n);
        }
        if self.next.len() >= MAX_ROOMS {
            self.next.clear();
            self.epoch = self.epoch.wrapping_add(1);
        }
        self.next.insert(room.to_owned(), 1);
        (self.epoch, 1)
    }
}

fn run(shared: &Shared, client: &redis::Client, con: redis::Connection) {
    let mut con = Some(con);
    let mut seqs = Sequences {
        epoch: 0,
        next: HashMap::new(),
    };
    loop {
        let Some(c) = con.as_mut() else {
            match reconnect(shared, client) {
                Some(c) => con = Some(c),
                None => return,
            }
            continue;
        };
        let failed = match shared.work(KEEPALIVE) {
            Work::Stop => return,
            Work::Idle => redis::cmd("PING").query::<String>(c).err().map(|e| (e, 0)),
            Work::Send(mut batch) => {
                let mut pipe = redis::pipe();
                for out in &mut batch {
                    let (epoch, seq) = seqs.next(&out.channel[shared.prefix.len()..]);
                    envelope::stamp(&mut out.envelope, epoch, seq);
                    pipe.cmd("PUBLISH")
                        .arg(&out.channel)
                        .arg(&out.envelope)
                        .ignore();
                }
                match pipe.query::<()>(c) {
                    Ok(()) => {
                        Counters::add(&shared.counters.published, batch.len() as u64);
                        None
                    }
                    Err(e) if !e.is_unrecoverable_error() && !e.is_io_error() => {
                        // Redis answered, with an error (e.g. an ACL that forbids PUBLISH):
                        // the connection is fine, these messages are not.
                        Counters::add(&shared.counters.lost, batch.len() as u64);
                        log::error!(
                            "redis: {} refused {} messages: {e}",
                            shared.addr,
                            batch.len()
                        );
                        None
                    }
                    Err(e) => Some((e, batch.len())),
                }
            }
        };
        if let Some((e, in_flight)) = failed {
            let dropped = shared.publisher_down(e.to_string()) + in_flight;
            Counters::add(&shared.counters.lost, dropped as u64);
            log::warn!(
                "redis: publisher lost its connection to {}: {e}; {dropped} messages \
                 dropped, publishes refused until it is back",
                shared.addr
            );
            con = None;
        }
    }
}

/// Connects again with backoff until it works (`Some`) or the backend is dropped (`None`).
fn reconnect(shared: &Shared, client: &redis::Client) -> Option<redis::Connection> {
    let mut backoff = Backoff::new(shared.backoff);
    let since = Instant::now();
    loop {
        if shared.sleep(backoff.next()) {
            return None;
        }
        match link::connect(client, shared.timeout) {
            Ok(con) => {
                shared.publisher_up();
                Counters::add(&shared.counters.reconnects, 1);
                log::info!(
                    "redis: publisher reconnected to {} after {} attempts in {:.1?}",
                    shared.addr,
                    backoff.attempts(),
                    since.elapsed()
                );
                return Some(con);
            }
            Err(e) => log::debug!(
                "redis: publisher: {} still unreachable (attempt {}): {e}",
                shared.addr,
                backoff.attempts()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_room_counts_from_one_and_a_full_table_starts_a_new_epoch() {
        let mut seqs = Sequences {
            epoch: 0,
            next: HashMap::new(),
        };
        assert_eq!(seqs.next("a"), (0, 1));
        assert_eq!(seqs.next("b"), (0, 1));
        assert_eq!(seqs.next("a"), (0, 2));
        for n in 2..MAX_ROOMS {
            seqs.next(&n.to_string());
        }
        assert_eq!(seqs.next.len(), MAX_ROOMS);
        // a known room goes on in the epoch; a new one starts the next
        assert_eq!(seqs.next("a"), (0, 3));
        assert_eq!(seqs.next("new"), (1, 1));
        assert_eq!(seqs.next("a"), (1, 1));
        assert_eq!(seqs.next.len(), 2);
    }
}
