//! The subscriber thread: one connection with one `PSUBSCRIBE <prefix>*`, read with a short
//! timeout so that it notices a stop; each message is decoded, checked against its sender's
//! sequence and handed to the hub. A lost connection is made again with backoff.
//!
//! ```text
//!   subscribe ──> read (100 ms at a time; PING after 5 s of silence) ──(error)──> backoff
//!       ^                  │ stop, or the hub is gone                                │
//!       │                  v                                                         │
//!       │                 end <──────────── stop ─────────────────────────────────────┤
//!       └────────────────────────────── connect + PING succeed ───────────────────────┘
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::thread;
use std::time::{Duration, Instant};

use super::Counters;
use super::envelope::{self, Origin};
use super::link::{self, Backoff, Every, Shared};
use crate::error::{BackendError, Result};
use crate::hub::backend::Inbound;

/// How long one read waits before the thread looks for a stop.
const POLL: Duration = Duration::from_millis(100);

/// How long the connection may be silent before a `PING` checks it.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// How long the unsubscribe of a connection given up may wait for its answer.
const GIVE_UP: Duration = Duration::from_millis(1);

/// The most (instance, room) pairs whose sequence is followed; past it the table starts over
/// (the next message of each pair is then taken as it comes).
const MAX_TRACKED: usize = 1 << 16;

/// Starts the thread on `con`, made by `build`; it tells `subscribed` whether the first
/// subscription worked.
pub(super) fn start(
    shared: Arc<Shared>,
    client: redis::Client,
    con: redis::Connection,
    inbound: Inbound,
    subscribed: Sender<std::result::Result<(), BackendError>>,
) -> Result<()> {
    thread::Builder::new()
        .name("redis-subscribe".into())
        .spawn(move || Subscriber::new(&shared, inbound).run(&client, con, subscribed))?;
    Ok(())
}

/// Why a subscription ended.
enum End {
    /// The backend was dropped or the hub is gone.
    Stop,
    /// The connection failed.
    Lost(redis::RedisError),
}

struct Subscriber<'a> {
    shared: &'a Shared,
    inbound: Inbound,
    /// The last (epoch, number) seen per instance and room.
    seen: HashMap<u64, HashMap<String, (u32, u64)>>,
    tracked: usize,
    malformed: Every,
    gaps: Every,
    duplicates: Every,
}

impl<'a> Subscriber<'a> {
    fn new(shared: &'a Shared, inbound: Inbound) -> Subscriber<'a> {
        Subscriber {
            shared,
            inbound,
            seen: HashMap::new(),
            tracked: 0,
            malformed: Every::new(Duration::from_secs(10)),
            gaps: Every::new(Duration::from_secs(10)),
            duplicates: Every::new(Duration::from_secs(10)),
        }
    }

    fn stopping(&self) -> bool {
        self.shared.is_stopped() || !self.inbound.is_alive()
    }

    fn run(
        &mut self,
        client: &redis::Client,
        mut con: redis::Connection,
        subscribed: Sender<std::result::Result<(), BackendError>>,
    ) {
        let mut first = Some(subscribed);
        loop {
            let end = self.subscription(&mut con, &mut first);
            self.shared.subscriber_up(false);
            match end {
                End::Stop => return,
                End::Lost(e) => {
                    if let Some(tell) = first.take() {
                        // Not subscribed even once: `attach` fails with this.
                        let _ = tell.send(Err(self.shared.start_error(&e)));
                        return;
                    }
                    log::warn!(
                        "redis: subscriber lost its connection to {}: {e}; messages from \
                         other instances are missed until it is back",
                        self.shared.addr
                    );
                }
            }
            match self.reconnect(client) {
                Some(c) => con = c,
                None => return,
            }
        }
    }

    /// Subscribes on `con` and delivers until the connection fails or the thread must stop.
    fn subscription(
        &mut self,
        con: &mut redis::Connection,
        first: &mut Option<Sender<std::result::Result<(), BackendError>>>,
    ) -> End {
        let mut pubsub = con.as_pubsub();
        let end = self.listen(&mut pubsub, first);
        if let End::Lost(_) = end {
            // Dropping `pubsub` asks Redis to unsubscribe and reads the answer: on a Redis
            // that went silent that read would wait a whole timeout more (delaying the start's
            // error or the reconnect), for a connection already given up.
            let _ = pubsub.set_read_timeout(Some(GIVE_UP));
        }
        end
    }

    /// `PSUBSCRIBE`s on `pubsub`, then reads and delivers.
    fn listen(
        &mut self,
        pubsub: &mut redis::PubSub<'_>,
        first: &mut Option<Sender<std::result::Result<(), BackendError>>>,
    ) -> End {
        let pattern = format!("{}*", glob_escape(&self.shared.prefix));
        if let Err(e) = pubsub.psubscribe(&pattern) {
            return End::Lost(e);
        }
        if let Err(e) = pubsub.set_read_timeout(Some(POLL)) {
            return End::Lost(e);
        }
        self.shared.subscriber_up(true);
        if let Some(tell) = first.take() {
            let _ = tell.send(Ok(()));
        }
        let mut heard = Instant::now();
        loop {
            if self.stopping() {
                return End::Stop;
            }
            match pubsub.get_message() {
                Ok(msg) => {
                    heard = Instant::now();
                    if !self.handle(&msg) {
                        return End::Stop;
                    }
                }
                Err(e) if e.is_timeout() => {
                    if heard.elapsed() < KEEPALIVE {
                        continue;
                    }
                    // A PING answered in subscribed mode is a ["pong", ""] reply.
                    let checked = pubsub
                        .set_read_timeout(Some(self.shared.timeout))
                        .and_then(|()| pubsub.ping::<redis::Value>())
                        .and_then(|_| pubsub.set_read_timeout(Some(POLL)));
                    if let Err(e) = checked {
                        return End::Lost(e);
                    }
                    heard = Instant::now();
                }
                Err(e) => return End::Lost(e),
            }
        }
    }

    /// Hands one channel message to the hub, unless it is ours, a duplicate or not an
    /// envelope; false once the hub is gone.
    fn handle(&mut self, msg: &redis::Msg) -> bool {
        let channel = msg.get_channel::<Vec<u8>>().unwrap_or_default();
        let room = std::str::from_utf8(&channel)
            .ok()
            .and_then(|c| c.strip_prefix(self.shared.prefix.as_str()));
        let decoded = envelope::decode(msg.get_payload_bytes());
        let (room, (origin, message)) = match (room, decoded) {
            (Some(room), Ok(decoded)) => (room, decoded),
            (room, decoded) => {
                Counters::add(&self.shared.counters.malformed, 1);
                if let Some(quiet) = self.malformed.check() {
                    let why = match (room, decoded) {
                        (None, _) => "a channel name that is not the prefix and UTF-8".to_owned(),
                        (_, Err(why)) => why.to_string(),
                        (Some(_), Ok(_)) => unreachable!("matched above"),
                    };
                    log::warn!(
                        "redis: ignored a message on {:?} ({} bytes): {why}{}",
                        String::from_utf8_lossy(&channel),
                        msg.get_payload_bytes().len(),
                        also(quiet)
                    );
                }
                return true;
            }
        };
        if origin.instance == self.shared.instance {
            Counters::add(&self.shared.counters.own_skipped, 1);
            return true;
        }
        if !self.in_sequence(room, origin) {
            return true;
        }
        Counters::add(&self.shared.counters.received, 1);
        self.inbound.deliver(room, message).is_some()
    }

    /// Records `origin`'s number in `room`; false for a duplicate (dropped). Logs gaps.
    fn in_sequence(&mut self, room: &str, origin: Origin) -> bool {
        if self.tracked >= MAX_TRACKED && !self.is_tracked(room, origin.instance) {
            self.seen.clear();
            self.tracked = 0;
        }
        let rooms = self.seen.entry(origin.instance).or_default();
        let Some(last) = rooms.get_mut(room) else {
            rooms.insert(room.to_owned(), (origin.publisher, origin.seq));
            self.tracked += 1;
            return true;
        };
        let (epoch, seq) = *last;
        if epoch != origin.publisher || origin.seq > seq {
            *last = (origin.publisher, origin.seq);
            let missed = if epoch == origin.publisher {
                origin.seq - seq - 1
            } else {
                0
            };
            if missed > 0 {
                Counters::add(&self.shared.counters.gaps, missed);
                if let Some(quiet) = self.gaps.check() {
                    log::info!(
                        "redis: room {room:?}: {missed} messages of instance {:016x} never \
                         arrived (at most once){}",
                        origin.instance,
                        also(quiet)
                    );
                }
            }
            return true;
        }
        Counters::add(&self.shared.counters.duplicates, 1);
        if let Some(quiet) = self.duplicates.check() {
            log::warn!(
                "redis: room {room:?}: dropped message {} of instance {:016x}, after {seq}: \
                 a duplicate (is the prefix subscribed twice?){}",
                origin.seq,
                origin.instance,
                also(quiet)
            );
        }
        false
    }

    fn is_tracked(&self, room: &str, instance: u64) -> bool {
        self.seen
            .get(&instance)
            .is_some_and(|rooms| rooms.contains_key(room))
    }

    /// Connects and PINGs again with backoff; `None` when the thread must stop.
    fn reconnect(&mut self, client: &redis::Client) -> Option<redis::Connection> {
        let mut backoff = Backoff::new(self.shared.backoff);
        let since = Instant::now();
        loop {
            if self.shared.sleep(backoff.next()) || !self.inbound.is_alive() {
                return None;
            }
            match link::connect(client, self.shared.timeout) {
                Ok(con) => {
                    Counters::add(&self.shared.counters.reconnects, 1);
                    log::info!(
                        "redis: subscriber reconnected to {} after {} attempts in {:.1?}",
                        self.shared.addr,
                        backoff.attempts(),
                        since.elapsed()
                    );
                    return Some(con);
                }
                Err(e) => log::debug!(
                    "redis: subscriber: {} still unreachable (attempt {}): {e}",
                    self.shared.addr,
                    backoff.attempts()
                ),
            }
        }
    }
}

/// " (and n more)" for a rate-limited line that left `n` out.
fn also(quiet: u64) -> String {
    if quiet == 0 {
        String::new()
    } else {
        format!(" (and {quiet} more since the last such line)")
    }
}

/// `prefix` with Redis's glob characters escaped, so the pattern matches it literally.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of the numbers last seen holds at most [`MAX_TRACKED`] (instance, room)
    /// pairs, so senders that come and go (each backend has a new instance id) cannot grow it
    /// without bound; a new pair beyond that starts it over, forgetting the others.
    #[test]
    fn the_table_of_numbers_seen_is_bounded() {
        let shared = Shared::unconnected(None);
        let mut sub = Subscriber::new(
            &shared,
            Inbound {
                hub: Default::default(),
            },
        );
        let first = |instance| Origin {
            instance,
            publisher: 0,
            seq: 1,
        };
        for instance in 0..MAX_TRACKED as u64 {
            assert!(sub.in_sequence("r", first(instance)), "{instance}");
        }
        assert_eq!(sub.tracked, MAX_TRACKED);
        assert!(!sub.in_sequence("r", first(0)), "a replay while tracked");
        assert!(sub.in_sequence("r", first(u64::MAX)));
        assert_eq!((sub.tracked, sub.seen.len()), (1, 1));
        assert!(sub.in_sequence("r", first(0)), "forgotten, so new again");
    }

    #[test]
    fn a_rate_limited_line_says_how_many_it_stands_for() {
        assert_eq!(also(0), "");
        assert_eq!(also(3), " (and 3 more since the last such line)");
    }

    #[test]
    fn glob_characters_of_the_prefix_match_literally() {
        let cases = [
            ("syncws:", "syncws:"),
            ("a*b?", "a\\*b\\?"),
            ("[x]\\", "\\[x\\]\\\\"),
        ];
        for (prefix, escaped) in cases {
            assert_eq!(glob_escape(prefix), escaped);
        }
    }
}
