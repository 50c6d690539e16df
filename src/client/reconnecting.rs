//! The reconnect loop: connect, hook, session, decide, wait, again.
//!
//! ```text
//!            +---------------------------------------------------------------+
//!            v                                                               |
//!   [connect] --error--> retry_connect? --no--> run returns the error        |
//!       | ok                 | yes (backoff, or the server's Retry-After)    |
//!       v                    +----------------------> [wait] ----------------+
//!   [on_connect hook] --error--+                        ^  (stop() ends it:
//!       | ok                   |                        |   run returns Ok)
//!       v                      v                        |
//!   [session] --returns--> ending: reconnects? --yes----+
//!                                   | no
//!                                   v
//!                          run returns what the session returned
//! ```
//!
//! The decisions are the pure functions of `reconnect.rs`; this file does the I/O and the waiting.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::ClientBuilder;
use super::reconnect::{Backoff, Ending, Retry, retry_connect};
use crate::error::Result;
use crate::message::CloseCode;
use crate::websocket::{State, WebSocket};

/// A random number in `0.0..1.0` from the operating system, for jitter.
fn random_unit() -> f64 {
    let mut bytes = [0; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    // The top 53 bits make every f64 in 0..1 with that spacing equally likely.
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// Ends a [`Reconnecting`] loop from any thread: a wait in progress ends at once, and no new
/// connection is made. Cheap to clone.
///
/// A connection attempt in progress finishes first (it is bounded by the builder's connect
/// timeout and the handshake timeout); a connection it opens is closed with 1000 at once.
/// A session in progress is not touched: the session owns its connection and ends it (for
/// example through a [`Writer`](crate::Writer) clone of its split socket, as the `client`
/// example does on Ctrl-C); the loop then returns instead of reconnecting.
#[derive(Debug, Clone, Default)]
pub struct StopHandle {
    shared: Arc<(Mutex<bool>, Condvar)>,
}

impl StopHandle {
    /// Stops the loop; `run` returns `Ok(())` at its next wait or attempt.
    pub fn stop(&self) {
        let (stopped, changed) = &*self.shared;
        *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        changed.notify_all();
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        *self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps for `wait` unless stopped first; false if stopped.
    fn sleep(&self, wait: Duration) -> bool {
        let (stopped, changed) = &*self.shared;
        let deadline = Instant::now() + wait;
        let mut guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
        while !*guard {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            guard = match changed.wait_timeout(guard, left) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
        false
    }
}

type Hook<'a> = Box<dyn FnMut(&mut WebSocket) -> Result<()> + Send + 'a>;
type Rule<'a> = Box<dyn FnMut(&Ending<'_>) -> bool + Send + 'a>;

/// A client that connects, runs a session on each connection and reconnects when the
/// connection ends in a way worth reconnecting for. Made by
/// [`ClientBuilder::reconnecting`](crate::ClientBuilder::reconnecting); its lifetime is that of
/// what the hook and the rule borrow (`'static` when they borrow nothing). `Send`, so it can run
/// on a thread of its own.
///
/// ```no_run
/// use syncws::{Backoff, Client, Message};
/// use std::time::Duration;
///
/// Client::builder()
///     .reconnecting("wss://feed.example/prices")
///     .backoff(Backoff::default().max(Duration::from_secs(30)))
///     // After every (re)connect: log in, resubscribe.
///     .on_connect(|ws| ws.send(r#"{"subscribe": "EURUSD"}"#))
///     .run(|ws| {
///         while let Some(msg) = ws.recv()? {
///             println!("{}", msg.as_text().unwrap_or("<binary>"));
///         }
///         Ok(())
///     })?;
/// # Ok::<(), syncws::Error>(())
/// ```
///
/// # Why a session closure rather than an iterator of sockets
///
/// Whether to reconnect depends on how the last connection ended: the peer's close code, or the
/// error its `recv` returned. An iterator that hands out sockets no longer sees them, so every
/// `for` body would have to sort endings itself; the session closure hands the ending back (its
/// `Result`, and the socket it borrowed), so the rule lives here, in one place, and the common
/// session is the same loop as a [`Server`](crate::Server) handler. Within a session, `?`
/// on `recv` is all it takes to report an ending.
///
/// # Which endings reconnect
///
/// See [`Ending::reconnects`] for the table; [`reconnect_if`](Self::reconnect_if) replaces it.
/// The rule follows what `recv` says: `Ok(None)` (a normal end) stops the loop when it was
/// 1000 or a close without a code, or a close this side started; 1001 ("going away", a server
/// restarting) is also a normal end for `recv` but reconnects.
/// [`Error::PeerClosed`](crate::Error::PeerClosed) reconnects for 1011-1014 and not for the
/// peer's refusals (1008 and the like). A dropped connection ([`Error::Io`](crate::Error::Io),
/// 1006) reconnects.
///
/// Connection attempts that fail are retried when a retry can help: refused, reset, timed out,
/// HTTP 5xx (503 after its `Retry-After`, within [`Backoff::max`]) and 429; never for other 4xx
/// (401, 403, 404), a certificate for another name or not trusted, or a bad URL: those come back
/// from [`run`](Self::run) at once.
pub struct Reconnecting<'a> {
    builder: ClientBuilder,
    url: String,
    backoff: Backoff,
    max_attempts: Option<u32>,
    on_connect: Option<Hook<'a>>,
    rule: Option<Rule<'a>>,
    stop: StopHandle,
}

impl fmt::Debug for Reconnecting<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconnecting")
            .field("url", &self.url)
            .field("backoff", &self.backoff)
            .field("max_attempts", &self.max_attempts)
            .field("on_connect", &self.on_connect.is_some())
            .field("reconnect_if", &self.rule.is_some())
            .field("stopped", &self.stop.is_stopped())
            .finish_non_exhaustive()
    }
}

impl<'a> Reconnecting<'a> {
    pub(super) fn new(builder: ClientBuilder, url: &str) -> Self {
        Reconnecting {
            builder,
            url: url.to_owned(),
            backoff: Backoff::default(),
            max_attempts: None,
            on_connect: None,
            rule: None,
            stop: StopHandle::default(),
        }
    }

    /// How long to wait between attempts. Defaults to [`Backoff::default`]: 1 s doubling up to
    /// 60 s, full jitter, back to 1 s after a connection that stayed up 30 s.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Gives up after this many connection attempts in a row failed (the connect, or the
    /// `on_connect` hook), returning the last one's error; a connection that got through its
    /// hook starts the count again. Defaults to no limit: a long-running client waits out any
    /// outage, at most [`Backoff::max`] between attempts.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Runs `hook` on every new connection before the session: log in, resubscribe. An error
    /// from it is a failed attempt: the connection is dropped, the error is sorted like a
    /// session's ending (a 1008 from the server stops the loop, a dropped connection retries)
    /// and the backoff does not start again from its first step.
    pub fn on_connect<F>(mut self, hook: F) -> Self
    where
        F: FnMut(&mut WebSocket) -> Result<()> + Send + 'a,
    {
        self.on_connect = Some(Box::new(hook));
        self
    }

    /// Replaces the default reconnect rule ([`Ending::reconnects`]) for endings of connections
    /// (not for failed connects). For example, to also come back after the application's own
    /// "come back later" code:
    ///
    /// ```no_run
    /// use syncws::{Client, CloseCode, Ending};
    /// let reconnecting = Client::builder()
    ///     .reconnecting("ws://127.0.0.1:9001/")
    ///     .reconnect_if(|ended| match ended {
    ///         Ending::Peer(frame) if frame.code == CloseCode(4000) => true,
    ///         other => other.reconnects(),
    ///     });
    /// ```
    pub fn reconnect_if<F>(mut self, rule: F) -> Self
    where
        F: FnMut(&Ending<'_>) -> bool + Send + 'a,
    {
        self.rule = Some(Box::new(rule));
        self
    }

    /// A handle that stops the loop from another thread (a Ctrl-C handler, say).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Connects and runs `session` on each connection until an ending that does not call for a
    /// reconnect, an attempt not worth repeating, [`max_attempts`](Self::max_attempts) failures
    /// in a row, or [`StopHandle::stop`].
    ///
    /// Returns what the last session returned when its ending stops the loop (`Ok(())` for a
    /// normal end, [`Error::PeerClosed`](crate::Error::PeerClosed) for a 1008, say), the error
    /// of a connection attempt not worth repeating or of the last attempt allowed, and `Ok(())`
    /// when stopped. A session that returns with its connection open has it closed with 1000.
    /// No thread is started: the session runs on the caller's.
    pub fn run<F>(mut self, mut session: F) -> Result<()>
    where
        F: FnMut(&mut WebSocket) -> Result<()>,
    {
        let mut retry = 0; // reconnects since the last connection that stayed up
        let mut failures = 0; // failed attempts in a row
        loop {
            if self.stop.is_stopped() {
                return Ok(());
            }
            let (result, asked) = match self.builder.connect(&self.url) {
                Err(e) => {
                    failures += 1;
                    let asked = match retry_connect(&e) {
                        Retry::No => return Err(e),
                        Retry::Backoff => None,
                        Retry::After(after) => Some(after),
                    };
                    (Err(e), asked)
                }
                Ok(mut ws) => {
                    if self.stop.is_stopped() {
                        let _ = ws.close(CloseCode::NORMAL, "");
                        return Ok(());
                    }
                    let hooked = match &mut self.on_connect {
                        Some(hook) => hook(&mut ws),
                        None => Ok(()),
                    };
                    let up_since = Instant::now();
                    let result = match hooked {
                        Ok(()) => {
                            failures = 0;
                            session(&mut ws)
                        }
                        Err(e) => {
                            failures += 1;
                            Err(e)
                        }
                    };
                    let frame = ws.peer_started_close();
                    let ended = Ending::of(&result, frame.as_ref());
                    let again = match &mut self.rule {
                        Some(rule) => rule(&ended),
                        None => ended.reconnects(),
                    };
                    if ws.state() == State::Open && result.is_ok() {
                        let _ = ws.close(CloseCode::NORMAL, "");
                    }
                    // Dropping a socket still open after an error says 1001: we are coming back.
                    drop(ws);
                    if !again {
                        return result;
                    }
                    if failures == 0 && up_since.elapsed() >= self.backoff.reset_after {
                        retry = 0;
                    }
                    (result, None)
                }
            };
            if self.max_attempts.is_some_and(|max| failures >= max) {
                return result;
            }
            let wait = self.backoff.wait(retry, asked, random_unit());
            match &result {
                Err(e) => log::debug!("reconnecting to {} in {wait:?}: {e}", self.url),
                Ok(()) => log::debug!("reconnecting to {} in {wait:?}", self.url),
            }
            if !self.stop.sleep(wait) {
                return Ok(());
            }
            retry = retry.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_reconnecting_client_can_move_to_another_thread() {
        fn send<T: Send>(_: &T) {}
        let reconnecting = ClientBuilder::default()
            .reconnecting("ws://127.0.0.1:9/")
            .on_connect(|_| Ok(()));
        send(&reconnecting);
        send(&reconnecting.stop_handle());
    }

    #[test]
    fn random_units_stay_in_range() {
        for _ in 0..1000 {
            let r = random_unit();
            assert!((0.0..1.0).contains(&r), "{r}");
        }
    }

    #[test]
    fn a_stop_ends_a_sleep_at_once() {
        let stop = StopHandle::default();
        assert!(stop.sleep(MS(1)));
        let other = stop.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(MS(50));
            other.stop();
        });
        let started = Instant::now();
        assert!(!stop.sleep(Duration::from_secs(10)));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(stop.is_stopped());
        t.join().unwrap();
    }
}
