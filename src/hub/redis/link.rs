//! What the two threads and `forward` share (the queue, the stop flag, the link's state and
//! counters), and the pieces of a connection's life: connect and check, sort a failure, back
//! off, and say things in the log without flooding it.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::envelope::{self, Origin};
use super::{Counters, RedisBuilder};
use crate::error::{BackendError, BackendErrorKind};
use crate::hub::backend::NotForwarded;
use crate::message::MessageRef;

/// The most messages, and about the most bytes, the publisher sends in one pipeline.
const BATCH_MESSAGES: usize = 512;
const BATCH_BYTES: usize = 1 << 20;

/// One message for the publisher: its channel and its envelope (numbered when sent).
pub(super) struct Outgoing {
    pub channel: String,
    pub envelope: Vec<u8>,
}

/// What the publisher gets when it asks for work.
pub(super) enum Work {
    /// Messages to send, in the order they were queued.
    Send(Vec<Outgoing>),
    /// Nothing arrived within the wait.
    Idle,
    /// The backend was dropped.
    Stop,
}

struct State {
    queue: VecDeque<Outgoing>,
    queued_bytes: usize,
    stopped: bool,
    /// Why the publisher has no connection, while it has none.
    publisher_down: Option<String>,
    subscriber_up: bool,
}

/// The state of one backend, shared by `forward` and its threads.
pub(super) struct Shared {
    /// Where Redis is, for the log (no password).
    pub addr: String,
    pub prefix: String,
    pub instance: u64,
    pub timeout: Duration,
    pub backoff: (Duration, Duration),
    queue_limit: usize,
    pub counters: Counters,
    state: Mutex<State>,
    /// Wakes the publisher for new messages, and either thread for a stop.
    wake: Condvar,
}

impl Shared {
    pub fn new(settings: &RedisBuilder, client: &redis::Client) -> Shared {
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).expect("the operating system's random source failed");
        Shared {
            addr: client.get_connection_info().addr().to_string(),
            prefix: settings.prefix.clone(),
            instance: u64::from_be_bytes(id),
            timeout: settings.timeout,
            backoff: settings.backoff,
            queue_limit: settings.queue,
            counters: Counters::default(),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued_bytes: 0,
                stopped: false,
                publisher_down: None,
                subscriber_up: false,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `msg` for `room`, or says at once why not.
    pub fn forward(&self, room: &str, msg: MessageRef<'_>) -> Result<(), NotForwarded> {
        let origin = Origin {
            instance: self.instance,
            publisher: 0,
            seq: 0,
        };
        let out = Outgoing {
            channel: format!("{}{room}", self.prefix),
            envelope: envelope::encode(origin, msg),
        };
        let mut state = self.lock();
        if state.stopped {
            return Err(NotForwarded::Down("the backend is stopping".into()));
        }
        if let Some(why) = &state.publisher_down {
            Counters::add(&self.counters.refused_down, 1);
            return Err(NotForwarded::Down(why.clone()));
        }
        let size = out.envelope.len();
        if !state.queue.is_empty() && state.queued_bytes + size > self.queue_limit {
            Counters::add(&self.counters.refused_full, 1);
            return Err(NotForwarded::Full);
        }
        state.queued_bytes += size;
        state.queue.push_back(out);
        drop(state);
        self.wake.notify_all();
        Ok(())
    }

    /// Waits up to `wait` for queued messages and takes a batch of them.
    pub fn work(&self, wait: Duration) -> Work {
        let state = self.lock();
        let (mut state, _) = self
            .wake
            .wait_timeout_while(state, wait, |s| s.queue.is_empty() && !s.stopped)
            .unwrap_or_else(|e| e.into_inner());
        if state.stopped {
            // Accepted but never sent: the backend went away with its hub.
            Counters::add(&self.counters.lost, state.queue.len() as u64);
            state.queue.clear();
            return Work::Stop;
        }
        if state.queue.is_empty() {
            return Work::Idle;
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        while !batch_full(batch.len(), bytes) {
            let Some(out) = state.queue.pop_front() else {
                break;
            };
            bytes += out.envelope.len();
            batch.push(out);
        }
        state.queued_bytes -= bytes;
        Work::Send(batch)
    }

    /// The publisher lost its connection: refuse publishes from now on and drop what is
    /// queued; returns how many messages that was.
    pub fn publisher_down(&self, why: String) -> usize {
        let mut state = self.lock();
        state.publisher_down = Some(why);
        state.queued_bytes = 0;
        let dropped = state.queue.len();
        state.queue.clear();
        dropped
    }

    pub fn publisher_up(&self) {
        self.lock().publisher_down = None;
    }

    pub fn subscriber_up(&self, up: bool) {
        self.lock().subscriber_up = up;
    }

    pub fn is_up(&self) -> bool {
        let state = self.lock();
        !state.stopped && state.publisher_down.is_none() && state.subscriber_up
    }

    /// Tells both threads to end.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.wake.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    /// Sleeps for `wait` or until a stop; true if stopped.
    pub fn sleep(&self, wait: Duration) -> bool {
        let state = self.lock();
        let (state, _) = self
            .wake
            .wait_timeout_while(state, wait, |s| !s.stopped)
            .unwrap_or_else(|e| e.into_inner());
        state.stopped
    }

    /// The error `build` or `attach` returns for a failure to connect at start-up.
    pub fn start_error(&self, e: &redis::RedisError) -> BackendError {
        BackendError::new(classify(e), format!("redis at {}: {e}", self.addr))
    }
}

#[cfg(test)]
impl Shared {
    /// For unit tests: the state of a backend that never connects (port 1 on loopback), with a
    /// publish queue of `queue` bytes (`None`: the default).
    pub(super) fn unconnected(queue: Option<usize>) -> Shared {
        let mut settings = super::RedisBackend::builder("redis://127.0.0.1:1");
        if let Some(bytes) = queue {
            settings = settings.queue(bytes);
        }
        let client = settings.client().expect("a redis:// URL");
        Shared::new(&settings, &client)
    }
}

/// Whether a batch of `count` messages, `bytes` in all, is as large as one pipeline should be.
fn batch_full(count: usize, bytes: usize) -> bool {
    count >= BATCH_MESSAGES || bytes >= BATCH_BYTES
}

/// A connection to Redis with `timeout` on every read and write, checked with a `PING` (which
/// also shows whether the server wants a password we did not give).
pub(super) fn connect(
    client: &redis::Client,
    timeout: Duration,
) -> redis::RedisResult<redis::Connection> {
    let mut con = client.get_connection_with_timeout(timeout)?;
    con.set_read_timeout(Some(timeout))?;
    con.set_write_timeout(Some(timeout))?;
    redis::cmd("PING").query::<String>(&mut con)?;
    Ok(con)
}

/// Sorts a failure to connect into what a caller can act on.
pub(super) fn classify(e: &redis::RedisError) -> BackendErrorKind {
    use redis::ErrorKind;
    match e.kind() {
        ErrorKind::AuthenticationFailed => BackendErrorKind::Refused,
        ErrorKind::InvalidClientConfig => BackendErrorKind::Config,
        _ if matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM")) => {
            BackendErrorKind::Refused
        }
        // The redis crate passes TLS failures on as text only; an untrusted or mismatched
        // certificate is a setting to fix (the root certificate), not an outage.
        _ if e.to_string().contains("certificate") => BackendErrorKind::Config,
        _ => BackendErrorKind::Unreachable,
    }
}

/// `url` with its password replaced by `***`, for messages.
pub(super) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            ),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Waits between reconnect attempts: doubling from `min` to `max`, up to half taken off at
/// random.
pub(super) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new((min, max): (Duration, Duration)) -> Backoff {
        Backoff {
            min,
            max,
            attempt: 0,
        }
    }

    /// How many waits this run of failures has had.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The next wait.
    pub fn next(&mut self) -> Duration {
        let step = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let mut r = [0u8; 2];
        getrandom::fill(&mut r).expect("the operating system's random source failed");
        let random = f64::from(u16::from_be_bytes(r)) / f64::from(u16::MAX);
        step.mul_f64(1.0 - 0.5 * random)
    }
}

/// At most one log line per period for one kind of event, with a count of those not logged.
pub(super) struct Every {
    period: Duration,
    last: Option<Instant>,
    quiet: u64,
}

impl Every {
    pub fn new(period: Duration) -> Every {
        Every {
            period,
            last: None,
            quiet: 0,
        }
    }

    /// `Some(n)` when this event should be logged, `n` being how many were not since the
    /// last line; `None` when it should only be counted.
    pub fn check(&mut self) -> Option<u64> {
        self.check_at(Instant::now())
    }

    /// [`check`](Self::check) for an event at `now`: a line again once a whole period has
    /// passed since the last one.
    fn check_at(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now - last < self.period) {
            self.quiet += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.quiet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_left_out_of_urls() {
        let cases = [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            (
                "redis://:secret@127.0.0.1:1/0",
                "redis://:***@127.0.0.1:1/0",
            ),
            ("redis://user:p@ss@host", "redis://user:***@host"),
            ("redis://user@host", "redis://user@host"),
            ("redis+unix:///run/r.sock", "redis+unix:///run/r.sock"),
            ("not a url", "not a url"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact(url), shown, "{url}");
        }
    }

    /// The publish queue takes one message whatever its size (or a message over the limit
    /// could never go), and past that holds to its limit in bytes.
    #[test]
    fn the_publish_queue_holds_to_its_limit() {
        const LIMIT: usize = 1000;
        let shared = Shared::unconnected(Some(LIMIT));
        let big = [7u8; 2 * LIMIT];
        assert!(shared.forward("r", MessageRef::Binary(&big)).is_ok());
        let second = shared.forward("r", MessageRef::Binary(&big));
        assert!(matches!(second, Err(NotForwarded::Full)), "{second:?}");
        match shared.work(Duration::ZERO) {
            Work::Send(batch) => assert_eq!(batch.len(), 1),
            _ => panic!("the queued message was not handed out"),
        }
        assert_eq!(
            shared.lock().queued_bytes,
            0,
            "handed out, no longer queued"
        );
        let small = [7u8; 100];
        let mut taken = 0;
        while shared.forward("r", MessageRef::Binary(&small)).is_ok() {
            taken += 1;
            assert!(
                taken <= LIMIT / small.len(),
                "{taken} messages of 100 bytes taken"
            );
        }
        let queued = shared.lock().queued_bytes;
        assert!(
            taken >= 2 && queued <= LIMIT,
            "{taken} taken, {queued} bytes queued"
        );
        assert!(
            queued + queued / taken > LIMIT,
            "room for one more: {queued} bytes queued"
        );
        assert_eq!(
            shared
                .counters
                .refused_full
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );

        // A message that fills the queue exactly to its limit is taken.
        let origin = Origin {
            instance: 0,
            publisher: 0,
            seq: 0,
        };
        let each = envelope::encode(origin, MessageRef::Binary(&small)).len();
        let shared = Shared::unconnected(Some(2 * each));
        let taken = (0..3)
            .take_while(|_| shared.forward("r", MessageRef::Binary(&small)).is_ok())
            .count();
        assert_eq!(
            taken,
            2,
            "envelopes of {each} bytes under a limit of {}",
            2 * each
        );
    }

    /// Up means both connections up and the backend not stopped: any one of the three
    /// failing is down.
    #[test]
    fn up_takes_both_connections_and_no_stop() {
        let shared = Shared::unconnected(None);
        assert!(!shared.is_up(), "the subscriber has not subscribed yet");
        shared.subscriber_up(true);
        assert!(shared.is_up());
        shared.publisher_down("gone".into());
        assert!(!shared.is_up(), "the publisher is down");
        shared.publisher_up();
        assert!(shared.is_up());
        shared.stop();
        assert!(!shared.is_up(), "stopped");
    }

    #[test]
    fn connect_failures_are_sorted_into_what_a_caller_can_act_on() {
        use redis::ErrorKind;
        let io = |kind| redis::RedisError::from(std::io::Error::from(kind));
        let cases = [
            (
                redis::RedisError::from((ErrorKind::InvalidClientConfig, "bad")),
                BackendErrorKind::Config,
            ),
            (
                redis::RedisError::from((ErrorKind::AuthenticationFailed, "no")),
                BackendErrorKind::Refused,
            ),
            (
                redis::RedisError::from((
                    ErrorKind::Server(redis::ServerErrorKind::NoPerm),
                    "no permission",
                )),
                BackendErrorKind::Refused,
            ),
            (
                io(std::io::ErrorKind::ConnectionRefused),
                BackendErrorKind::Unreachable,
            ),
            (
                io(std::io::ErrorKind::TimedOut),
                BackendErrorKind::Unreachable,
            ),
        ];
        for (e, kind) in cases {
            assert_eq!(classify(&e), kind, "{e}");
        }
    }

    #[test]
    fn backoff_doubles_to_its_bound_and_jitters_by_at_most_half() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(1000));
        let mut backoff = Backoff::new((min, max));
        let steps = [100, 200, 400, 800, 1000, 1000];
        for (n, step) in steps.into_iter().enumerate() {
            let wait = backoff.next();
            let step = Duration::from_millis(step);
            assert!(wait <= step && wait >= step / 2, "wait {n}: {wait:?}");
        }
        assert_eq!(backoff.attempts(), 6);
        for _ in 0..100 {
            assert!(backoff.next() <= max);
        }
    }

    #[test]
    fn a_rate_limited_line_counts_what_it_left_out() {
        let mut every = Every::new(Duration::from_secs(3600));
        assert_eq!(every.check(), Some(0));
        assert_eq!(every.check(), None);
        assert_eq!(every.check(), None);
        every.last = Some(Instant::now() - Duration::from_secs(3601));
        assert_eq!(every.check(), Some(2));
    }

    #[test]
    fn a_line_comes_again_once_a_whole_period_has_passed() {
        let mut every = Every::new(Duration::from_secs(10));
        let first = Instant::now();
        assert_eq!(every.check_at(first), Some(0));
        assert_eq!(every.check_at(first + Duration::from_millis(9_999)), None);
        assert_eq!(every.check_at(first + Duration::from_secs(10)), Some(1));
        assert_eq!(every.check_at(first + Duration::from_secs(15)), None);
    }
}
