//! What a reconnecting client decides, as pure functions: whether a failed connection attempt is
//! worth another ([`retry_connect`]), whether an ending calls for a reconnect
//! ([`Ending::reconnects`]), and how long to wait ([`Backoff`]). The loop that acts on them is in
//! `reconnecting.rs`.

use std::time::Duration;

use crate::error::{Error, HandshakeError, HttpResponse, Result};
use crate::message::{CloseCode, CloseFrame};
use crate::{ProtocolError, TlsErrorKind};

/// How long a [`Reconnecting`](crate::Reconnecting) client waits between attempts: exponential
/// backoff with jitter.
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
    pub(super) fn wait(&self, retry: u32, asked: Option<Duration>, random: f64) -> Duration {
        let delay = self.delay(retry, random);
        match asked {
            Some(asked) => asked.max(delay).min(self.max),
            None => delay,
        }
    }
}

/// How one connection of a [`Reconnecting`](crate::Reconnecting) client ended, as the reconnect
/// rule sees it.
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
    /// | peer: 3000-4999 | no | the application's code; its meaning is the application's (override with [`Reconnecting::reconnect_if`](crate::Reconnecting::reconnect_if)) |
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
    pub(super) fn of<'a>(
        result: &'a Result<()>,
        peer_started: Option<&'a CloseFrame>,
    ) -> Ending<'a> {
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
pub(super) enum Retry {
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
/// a proxy's 429 or 5xx, and a SOCKS5 proxy that cannot reach the server. Not retried: any other HTTP status (401, 403, 404: asking again
/// changes nothing), a TLS certificate for another name or not trusted, a bad URL, bad
/// settings, a server that answers without speaking WebSocket properly.
pub(super) fn retry_connect(err: &Error) -> Retry {
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
        // RFC 1928 6: general failure, network or host unreachable, connection refused, TTL
        // expired: the server behind the proxy is down or unreachable, as a direct attempt
        // would find. Not: refused by the proxy's rules, a command or address type it lacks.
        Error::Handshake(HandshakeError::SocksRefused(1 | 3..=6)) => Retry::Backoff,
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
            (
                Error::Handshake(HandshakeError::SocksRefused(5)),
                Retry::Backoff,
            ),
            (
                Error::Handshake(HandshakeError::SocksRefused(4)),
                Retry::Backoff,
            ),
            (Error::Handshake(HandshakeError::SocksRefused(2)), Retry::No),
            (Error::Handshake(HandshakeError::SocksAuthFailed), Retry::No),
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
            (
                Error::Url(crate::Url::parse("http://x/").unwrap_err()),
                Retry::No,
            ),
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
}
