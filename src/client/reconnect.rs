//! A client that reconnects: exponential backoff with jitter, retrying only what a retry can fix.
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
//! The decisions ("is this error worth another attempt?", "does this ending call for a
//! reconnect?", "how long to wait?") are pure functions at the top of this file; the loop that
//! does the I/O and the waiting is [`Reconnecting::run`] below them.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::ClientBuilder;
use crate::error::{Error, HandshakeError, HttpResponse, Result};
use crate::message::{CloseCode, CloseFrame};
use crate::websocket::{State, WebSocket};
use crate::{ProtocolError, TlsErrorKind};

/// How long a [`Reconnecting`] client waits between attempts: exponential backoff with jitter.
///
/// The wait before reconnect number `n` (counting from 0) is `initial * factor^n`, capped at
/// `max`, of which a random share of up to `jitter` is taken off. The count starts again from 0
/// once a connection stayed up for `reset_after`.
///
/// ```
/// use std::time::Duration;
/// let backoff = syncws::Backoff::default()
///     .initial(Duration::from_millis(100))
///     .max(Duration::from_secs(5));
/// // With the random share at its largest (just below 1), full jitter waits almost nothing;
/// // at 0 it waits the whole step: 100 ms, 200 ms, 400 ms, ... up to 5 s.
/// assert_eq!(backoff.delay(0, 0.0), Duration::from_millis(100));
/// assert_eq!(backoff.delay(2, 0.0), Duration::from_millis(400));
/// assert_eq!(backoff.delay(30, 0.0), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// The first wait (before jitter). Defaults to 1 second: a server that restarts is usually
    /// back within a few, and a client that retries sooner mostly meets refused connections.
    pub initial: Duration,
    /// The longest wait (before jitter); a server's `Retry-After` is cut to it as well. Defaults to
    /// 60 seconds: an outage costs each client one attempt a minute, and a client notices a
    /// recovered server within a minute.
    pub max: Duration,
    /// How much each wait grows over the one before. Defaults to 2. Below 1 counts as 1.
    pub factor: f64,
    /// The largest share of each wait taken off at random, from 0 (none: every client waits
    /// exactly the same) to 1 ("full jitter": a uniform wait between 0 and the step). Defaults
    /// to 1: after a server restart drops all its clients at once, full jitter spreads their
    /// returns over the whole step rather than half of it (0.5, "equal jitter"), so the server
    /// meets half the peak of attempts. Values outside 0..=1 are clamped.
    pub jitter: f64,
    /// How long a connection must stay up (from the end of the `on_connect` hook) for the next
    /// reconnect to start again from `initial`. Defaults to 30 seconds: a server that accepts and
    /// then drops or refuses every connection at once keeps being backed off, while a client
    /// that was connected for a while comes back quickly after a single drop.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            factor: 2.0,
            jitter: 1.0,
            reset_after: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// Sets [`initial`](Self::initial).
    pub fn initial(mut self, initial: Duration) -> Self {
        self.initial = initial;
        self
    }

    /// Sets [`max`](Self::max).
    pub fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Sets [`factor`](Self::factor).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Sets [`jitter`](Self::jitter).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets [`reset_after`](Self::reset_after).
    pub fn reset_after(mut self, reset_after: Duration) -> Self {
        self.reset_after = reset_after;
        self
    }

    /// The wait before reconnect number `retry` (0 for the first), given `random`, a number in
    /// `0.0..1.0` (the loop draws it from the operating system): the step
    /// `min(max, initial * factor^retry)` less `random * jitter` of it.
    ///
    /// Settings out of range are read in their nearest sense here, the one place that looks at
    /// them: a factor below 1 (or NaN) as 1, a jitter outside `0..=1` clamped.
    pub fn delay(&self, retry: u32, random: f64) -> Duration {
        let factor = if self.factor >= 1.0 { self.factor } else { 1.0 };
        let jitter = if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, 1.0)
        };
        let max = self.max.as_secs_f64();
        // powi overflows to infinity long before retry does; min() then caps it.
        let exponent = i32::try_from(retry).unwrap_or(i32::MAX);
        let step = (self.initial.as_secs_f64() * factor.powi(exponent)).min(max);
        let share = 1.0 - jitter * random.clamp(0.0, 1.0);
        Duration::from_secs_f64((step * share).max(0.0))
    }

    /// The wait for `retry` when the server asked for `asked` (its `Retry-After`): at least
    /// what it asked, never more than `max`.
    fn wait(&self, retry: u32, asked: Option<Duration>, random: f64) -> Duration {
        let delay = self.delay(retry, random);
        match asked {
            Some(asked) => asked.max(delay).min(self.max),
            None => delay,
        }
    }
}

/// How one connection of a [`Reconnecting`] client ended, as the reconnect rule sees it.
///
/// It is read from what the session (or the `on_connect` hook) returned and from the socket:
/// an error it passed on, else the peer's close frame if the peer started the close.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Ending<'a> {
    /// The session returned `Ok(())` and the peer did not start a close: this side closed, or
    /// the session returned with the connection open (the loop then closes it with 1000).
    Ours,
    /// The peer closed with this frame: with a normal code (1000, 1001, none) `recv` returned
    /// `Ok(None)`, with any other code [`Error::PeerClosed`]; both land here.
    Peer(&'a CloseFrame),
    /// The session or the hook returned this error (other than [`Error::PeerClosed`]): e.g.
    /// [`Error::Io`] for a connection dropped without a close frame (1006) or reset.
    Failed(&'a Error),
}

impl Ending<'_> {
    /// The default rule: whether this ending calls for a reconnect.
    ///
    /// | ending | reconnect | why |
    /// |---|---|---|
    /// | ours (we closed, or the session returned `Ok`) | no | the program chose to end |
    /// | peer: 1000 normal, 1005 no code | no | the server ended it on purpose |
    /// | peer: 1001 going away | yes | a server restarting or a proxy moving on |
    /// | peer: 1011 internal error, 1012 restart, 1013 try again later, 1014 bad gateway | yes | the server's trouble, likely passing |
    /// | peer: 1002, 1003, 1007, 1008 policy, 1009, 1010 | no | the server refused what we sent; again would be refused again |
    /// | peer: 3000-4999 | no | the application's code; its meaning is the application's (override with [`Reconnecting::reconnect_if`]) |
    /// | [`Error::Io`]: dropped without a close frame (1006), reset, write timed out | yes | the network |
    /// | [`Error::HeartbeatTimeout`], [`Error::Timeout`] | yes | the link went silent |
    /// | [`Error::Protocol`] | no | a broken peer stays broken |
    /// | [`ProtocolError::OverMemoryBudget`] | yes | our own budget was spent for now (1013) |
    /// | any other error the session returns | no | the session's own |
    ///
    /// ```
    /// use syncws::{CloseCode, CloseFrame, Ending};
    /// let frame = |code| CloseFrame { code, reason: String::new() };
    /// assert!(Ending::Peer(&frame(CloseCode::GOING_AWAY)).reconnects());
    /// assert!(!Ending::Peer(&frame(CloseCode::NORMAL)).reconnects());
    /// assert!(!Ending::Peer(&frame(CloseCode::POLICY)).reconnects());
    /// ```
    pub fn reconnects(&self) -> bool {
        match self {
            Ending::Ours => false,
            Ending::Peer(frame) => code_reconnects(frame.code),
            Ending::Failed(e) => match e {
                Error::Io(_) | Error::HeartbeatTimeout | Error::Timeout => true,
                Error::PeerClosed(frame) => code_reconnects(frame.code),
                Error::Protocol(ProtocolError::OverMemoryBudget) => true,
                _ => false,
            },
        }
    }

    /// What the session returned (`result`) and the socket tell.
    fn of<'a>(result: &'a Result<()>, peer_started: Option<&'a CloseFrame>) -> Ending<'a> {
        match result {
            Err(Error::PeerClosed(frame)) => Ending::Peer(frame),
            Err(e) => Ending::Failed(e),
            Ok(()) => match peer_started {
                Some(frame) => Ending::Peer(frame),
                None => Ending::Ours,
            },
        }
    }
}

/// The close codes that call for a reconnect (see [`Ending::reconnects`]).
fn code_reconnects(code: CloseCode) -> bool {
    matches!(
        code,
        CloseCode::GOING_AWAY
            | CloseCode::INTERNAL_ERROR
            | CloseCode::SERVICE_RESTART
            | CloseCode::TRY_AGAIN_LATER
            | CloseCode::BAD_GATEWAY
    )
}

/// Whether a failed connection attempt is worth another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// No: the same attempt would fail the same way.
    No,
    /// Yes, after the backoff.
    Backoff,
    /// Yes, after at least this long: the server said so (`Retry-After`).
    After(Duration),
}

/// The default rule for a connection attempt that failed (before the hook ran).
///
/// Retried: I/O errors (refused, reset, timed out, no route, a name that does not resolve: a
/// resolver outage looks the same as a typo), a handshake that timed out or was cut off, a
/// TLS handshake that failed, HTTP 5xx but 501 and 505 (those say the server never will), 429,
/// and a proxy's 429 or 5xx. Not retried: any other HTTP status (401, 403, 404: asking again
/// changes nothing), a TLS certificate for another name or not trusted, a bad URL, bad
/// settings, a server that answers without speaking WebSocket properly.
fn retry_connect(err: &Error) -> Retry {
    use std::io::ErrorKind;
    match err {
        Error::Io(e) => match e.kind() {
            ErrorKind::PermissionDenied
            | ErrorKind::InvalidInput
            | ErrorKind::InvalidData
            | ErrorKind::Unsupported => Retry::No,
            _ => Retry::Backoff,
        },
        Error::Handshake(HandshakeError::Timeout | HandshakeError::Eof) => Retry::Backoff,
        Error::Handshake(HandshakeError::ProxyRefused(status)) if status_retries(*status) => {
            Retry::Backoff
        }
        Error::Http(response) if status_retries(response.status) => match retry_after(response) {
            Some(after) => Retry::After(after),
            None => Retry::Backoff,
        },
        Error::Tls(e) if e.kind() == TlsErrorKind::Handshake => Retry::Backoff,
        _ => Retry::No,
    }
}

/// The statuses worth another attempt: too many requests, and the server's own trouble except
/// "not implemented" and "HTTP version not supported", which do not pass.
fn status_retries(status: u16) -> bool {
    status == 429 || ((500..600).contains(&status) && status != 501 && status != 505)
}

/// The `Retry-After` of a response in its delay-seconds form (RFC 9110 10.2.3). The HTTP-date
/// form is not read: without a clock agreed with the server it is no better than the backoff.
fn retry_after(response: &HttpResponse) -> Option<Duration> {
    let (_, value) = response
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))?;
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Anything past u64 seconds is "a long time"; max caps it anyway.
    Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)))
}

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
/// restarting) is also a normal end for `recv` but reconnects. [`Error::PeerClosed`] reconnects
/// for 1011-1014 and not for the peer's refusals (1008 and the like). A dropped connection
/// ([`Error::Io`], 1006) reconnects.
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
    /// normal end, [`Error::PeerClosed`] for a 1008, say), the error of a connection attempt not
    /// worth repeating or of the last attempt allowed, and `Ok(())` when stopped. A session that
    /// returns with its connection open has it closed with 1000. No thread is started: the
    /// session runs on the caller's.
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
    use std::io;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn frame(code: u16) -> CloseFrame {
        CloseFrame {
            code: CloseCode(code),
            reason: String::new(),
        }
    }

    fn http(status: u16, headers: &[(&str, &str)]) -> Error {
        Error::Http(Box::new(HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: Vec::new(),
        }))
    }

    fn io_error(kind: io::ErrorKind) -> Error {
        Error::Io(io::Error::new(kind, "test"))
    }

    #[test]
    fn close_codes_that_reconnect() {
        // (code, reconnects) for every code a peer may send, by the table in Ending::reconnects.
        let rows = [
            (1000, false),
            (1001, true),
            (1002, false),
            (1003, false),
            (1005, false),
            (1007, false),
            (1008, false),
            (1009, false),
            (1010, false),
            (1011, true),
            (1012, true),
            (1013, true),
            (1014, true),
            (3000, false),
            (4000, false),
            (4999, false),
        ];
        for (code, want) in rows {
            let f = frame(code);
            assert_eq!(
                Ending::Peer(&f).reconnects(),
                want,
                "peer closed with {code}"
            );
            // recv's error for a code that is not normal lands on the same answer.
            let e = Error::PeerClosed(Box::new(f.clone()));
            assert_eq!(Ending::Failed(&e).reconnects(), want, "PeerClosed({code})");
        }
    }

    #[test]
    fn errors_that_reconnect() {
        let rows = [
            (io_error(io::ErrorKind::UnexpectedEof), true),
            (io_error(io::ErrorKind::ConnectionReset), true),
            (io_error(io::ErrorKind::TimedOut), true),
            (Error::HeartbeatTimeout, true),
            (Error::Timeout, true),
            (Error::Protocol(ProtocolError::MaskedFrame), false),
            (Error::Protocol(ProtocolError::OverMemoryBudget), true),
            (Error::Closed, false),
            (Error::InvalidInput(crate::InputError::CloseCode), false),
        ];
        for (e, want) in rows {
            assert_eq!(Ending::Failed(&e).reconnects(), want, "{e:?}");
        }
        assert!(!Ending::Ours.reconnects());
    }

    #[test]
    fn an_ending_is_read_from_the_result_then_the_peers_close() {
        let going = frame(1001);
        let policy = Error::PeerClosed(Box::new(frame(1008)));
        let ok: Result<()> = Ok(());
        assert!(matches!(Ending::of(&ok, None), Ending::Ours));
        assert!(matches!(Ending::of(&ok, Some(&going)), Ending::Peer(f) if f.code.0 == 1001));
        let err: Result<()> = Err(policy);
        assert!(matches!(Ending::of(&err, None), Ending::Peer(f) if f.code.0 == 1008));
        let err: Result<()> = Err(Error::HeartbeatTimeout);
        assert!(matches!(
            Ending::of(&err, Some(&going)),
            Ending::Failed(Error::HeartbeatTimeout)
        ));
    }

    #[test]
    fn connect_errors_worth_retrying() {
        use crate::error::TlsError;
        let tls = |kind| Error::Tls(Box::new(TlsError::new(kind, String::new())));
        let rows = [
            (io_error(io::ErrorKind::ConnectionRefused), Retry::Backoff),
            (io_error(io::ErrorKind::ConnectionReset), Retry::Backoff),
            (io_error(io::ErrorKind::TimedOut), Retry::Backoff),
            (io_error(io::ErrorKind::NotFound), Retry::Backoff),
            (io_error(io::ErrorKind::PermissionDenied), Retry::No),
            (Error::Handshake(HandshakeError::Timeout), Retry::Backoff),
            (Error::Handshake(HandshakeError::Eof), Retry::Backoff),
            (Error::Handshake(HandshakeError::BadAccept), Retry::No),
            (
                Error::Handshake(HandshakeError::TooManyRedirects),
                Retry::No,
            ),
            (
                Error::Handshake(HandshakeError::ProxyRefused(502)),
                Retry::Backoff,
            ),
            (
                Error::Handshake(HandshakeError::ProxyRefused(407)),
                Retry::No,
            ),
            (http(500, &[]), Retry::Backoff),
            (http(502, &[]), Retry::Backoff),
            (http(503, &[]), Retry::Backoff),
            (http(503, &[("Retry-After", "1")]), Retry::After(MS(1000))),
            (
                http(503, &[("retry-after", " 120 ")]),
                Retry::After(MS(120_000)),
            ),
            (http(429, &[]), Retry::Backoff),
            (http(429, &[("Retry-After", "3")]), Retry::After(MS(3000))),
            (http(501, &[]), Retry::No),
            (http(505, &[]), Retry::No),
            (http(400, &[]), Retry::No),
            (http(401, &[("Retry-After", "1")]), Retry::No),
            (http(403, &[]), Retry::No),
            (http(404, &[]), Retry::No),
            (http(302, &[]), Retry::No),
            (http(200, &[]), Retry::No),
            (tls(TlsErrorKind::Handshake), Retry::Backoff),
            (tls(TlsErrorKind::NameMismatch), Retry::No),
            (tls(TlsErrorKind::UntrustedCertificate), Retry::No),
            (tls(TlsErrorKind::NotEnabled), Retry::No),
            (Error::Url(crate::UrlError::UnsupportedScheme), Retry::No),
            (
                Error::InvalidInput(crate::InputError::HeaderValue),
                Retry::No,
            ),
        ];
        for (e, want) in rows {
            assert_eq!(retry_connect(&e), want, "{e:?}");
        }
    }

    #[test]
    fn retry_after_reads_delay_seconds_only() {
        // (header value, what it asks for)
        let rows = [
            ("0", Some(MS(0))),
            ("1", Some(MS(1000))),
            ("  7\t", Some(MS(7000))),
            (
                "99999999999999999999999",
                Some(Duration::from_secs(u64::MAX)),
            ),
            ("", None),
            ("-1", None),
            ("1.5", None),
            ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ];
        for (value, want) in rows {
            let Error::Http(r) = http(503, &[("Retry-After", value)]) else {
                unreachable!()
            };
            assert_eq!(retry_after(&r), want, "{value:?}");
        }
        let Error::Http(r) = http(503, &[("Other", "1")]) else {
            unreachable!()
        };
        assert_eq!(retry_after(&r), None);
    }

    #[test]
    fn delays_grow_cap_and_jitter() {
        let b = Backoff::default()
            .initial(MS(100))
            .max(MS(1000))
            .factor(2.0)
            .jitter(1.0);
        // (retry, random, delay)
        let rows = [
            (0, 0.0, MS(100)),
            (1, 0.0, MS(200)),
            (2, 0.0, MS(400)),
            (3, 0.0, MS(800)),
            (4, 0.0, MS(1000)),
            (u32::MAX, 0.0, MS(1000)),
            (0, 0.5, MS(50)),
            (3, 0.75, MS(200)),
            (4, 0.999, MS(1)),
        ];
        for (retry, random, want) in rows {
            let got = b.delay(retry, random);
            let off = got.abs_diff(want);
            assert!(off < Duration::from_micros(10), "{retry} {random}: {got:?}");
        }
        let equal = b.clone().jitter(0.5);
        assert_eq!(equal.delay(1, 0.999_999_9).as_millis(), 100);
        let none = b.clone().jitter(0.0);
        assert_eq!(none.delay(1, 0.9), MS(200));
        // Out-of-range settings in their nearest sense.
        assert_eq!(b.clone().factor(0.5).delay(5, 0.0), MS(100));
        assert_eq!(b.clone().factor(f64::NAN).delay(5, 0.0), MS(100));
        assert_eq!(b.clone().jitter(7.0).delay(0, 0.5), MS(50));
        assert_eq!(b.clone().jitter(-1.0).delay(0, 0.5), MS(100));
    }

    #[test]
    fn a_servers_retry_after_is_a_floor_within_max() {
        let b = Backoff::default().initial(MS(100)).max(MS(2000));
        // (retry, asked, random, wait)
        let rows = [
            (0, None, 0.0, MS(100)),
            (0, Some(MS(1000)), 0.0, MS(1000)),
            (0, Some(MS(0)), 0.0, MS(100)),
            (5, Some(MS(500)), 0.0, MS(2000)),
            (0, Some(Duration::from_secs(3600)), 0.0, MS(2000)),
            (0, Some(Duration::from_secs(u64::MAX)), 0.5, MS(2000)),
        ];
        for (retry, asked, random, want) in rows {
            assert_eq!(b.wait(retry, asked, random), want, "{retry} {asked:?}");
        }
    }

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
