//! Limits applied at accept time, before a connection gets a thread: per-IP counts and rates,
//! and the quick rejection of connections over a limit.
//!
//! The per-IP table is a hash map plus an expiry queue. An entry goes into the queue when it
//! becomes idle (no live connection left, or created by a refused attempt), stamped with that
//! moment; every admission then looks at no more than [`SWEEP`] items at the front of the queue
//! and forgets the peers whose rate window has passed since they went idle. An entry with live
//! connections never expires. So admission costs O(1) however many peers the table holds, and
//! the table holds the peers with live connections plus those seen within one rate window, and
//! at most [`MAX_IDLE_PEERS`] idle ones: beyond that the longest idle are forgotten before their
//! window ends (their rate count starts again), so a scan from millions of addresses cannot
//! grow it without bound.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::http::Response;
use super::listen::{Bound, Listener};
use crate::io::Socket;

/// Most expiry-queue items one admission looks at. Each admission or release adds at most one
/// item, so sweeping more than one per admission keeps the queue from growing beyond the
/// entries that are still within their window.
const SWEEP: usize = 4;

/// Most idle peers (and expiry-queue items) kept for their rate window: about 64 bytes each.
const MAX_IDLE_PEERS: usize = 1 << 18;

/// Live connections and recent connection attempts of each peer address.
#[derive(Debug)]
pub(crate) struct PerIp {
    table: Mutex<Table>,
}

impl Default for PerIp {
    fn default() -> Self {
        PerIp::with_cap(MAX_IDLE_PEERS)
    }
}

impl PerIp {
    fn with_cap(max_idle: usize) -> Self {
        PerIp {
            table: Mutex::new(Table {
                max_idle,
                ..Table::default()
            }),
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    /// Beyond this many expiry-queue items, the oldest go before their window has passed.
    max_idle: usize,
    map: HashMap<IpAddr, IpState>,
    /// Peers that went idle, oldest first: (peer, when, the entry's `idle_seq` then).
    idle: VecDeque<(IpAddr, Instant, u64)>,
    next_seq: u64,
    /// Expiry-queue items looked at, ever (what the tests count).
    #[cfg(test)]
    visited: u64,
}

#[derive(Debug)]
struct IpState {
    live: usize,
    window_start: Instant,
    opened: u32,
    /// Which expiry-queue item is this entry's current one; older items for it are stale.
    idle_seq: u64,
}

/// Why a peer was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// At its cap of live connections: when one ends is not knowable.
    TooManyLive,
    /// Out of new connections for this rate window, which ends in `free_in`.
    TooFast { free_in: Duration },
}

impl Refusal {
    /// The `429` for this refusal. Its `Retry-After` is the time until the rate window frees a
    /// slot, in whole seconds rounded up (a client that comes back a moment early would be
    /// refused again) and at least 1; for a peer at its live cap, `unknowable_end` seconds.
    pub(crate) fn response(self, unknowable_end: u32) -> Response {
        match self {
            Refusal::TooManyLive => Response::busy(
                429,
                "too many connections from your address",
                unknowable_end,
            ),
            Refusal::TooFast { free_in } => {
                let secs = free_in.as_secs() + u64::from(free_in.subsec_nanos() > 0);
                Response::busy(
                    429,
                    "too many connections from your address in too short a time",
                    secs.clamp(1, u64::from(u32::MAX)) as u32,
                )
            }
        }
    }
}

impl Table {
    /// Queues `ip` as idle since `now`, superseding any earlier item of it.
    fn went_idle(&mut self, ip: IpAddr, now: Instant) {
        // From 1: a new entry's `idle_seq` of 0 matches no item.
        self.next_seq += 1;
        let seq = self.next_seq;
        if let Some(state) = self.map.get_mut(&ip) {
            state.idle_seq = seq;
            self.idle.push_back((ip, now, seq));
        }
    }

    /// Forgets up to [`SWEEP`] peers that have been idle for a whole `window`.
    fn sweep(&mut self, now: Instant, window: Duration) {
        for _ in 0..SWEEP {
            let Some(&(ip, since, seq)) = self.idle.front() else {
                return;
            };
            // The queue is in time order: if this one is within its window, so is the rest.
            if now.duration_since(since) < window && self.idle.len() <= self.max_idle {
                return;
            }
            self.idle.pop_front();
            #[cfg(test)]
            {
                self.visited += 1;
            }
            // Idle since `since`, so its window (started no later) has passed too, or the table
            // is full. A stale item (the peer came back) or a peer with live connections stays.
            if let Some(state) = self.map.get(&ip)
                && state.idle_seq == seq
                && state.live == 0
            {
                self.map.remove(&ip);
            }
        }
    }
}

impl PerIp {
    /// Counts a new connection from `ip` if it is within `max_live` and `rate` (connections per
    /// window); the caller must `release` it when it ends.
    pub fn admit(
        &self,
        ip: IpAddr,
        max_live: Option<usize>,
        rate: Option<(u32, Duration)>,
    ) -> Result<(), Refusal> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        // Taken under the lock, so the expiry queue stays in time order.
        let now = Instant::now();
        let window = rate.map_or(Duration::ZERO, |(_, w)| w);
        table.sweep(now, window);
        let created = !table.map.contains_key(&ip);
        let state = table.map.entry(ip).or_insert(IpState {
            live: 0,
            window_start: now,
            opened: 0,
            idle_seq: 0,
        });
        let verdict = check(state, now, max_live, rate);
        if verdict.is_err() && created {
            // Remembered for the rate window like any idle peer, and forgotten after it.
            table.went_idle(ip, now);
        }
        verdict
    }

    /// A connection from `ip` ended.
    pub fn release(&self, ip: IpAddr) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = table.map.get_mut(&ip) else {
            return;
        };
        state.live = state.live.saturating_sub(1);
        if state.live == 0 {
            table.went_idle(ip, Instant::now());
        }
    }
}

/// Counts a connection on `state` if the limits allow it.
fn check(
    state: &mut IpState,
    now: Instant,
    max_live: Option<usize>,
    rate: Option<(u32, Duration)>,
) -> Result<(), Refusal> {
    if max_live.is_some_and(|max| state.live >= max) {
        return Err(Refusal::TooManyLive);
    }
    if let Some((limit, window)) = rate {
        if now.duration_since(state.window_start) >= window {
            state.window_start = now;
            state.opened = 0;
        }
        if state.opened >= limit {
            let free_in = window.saturating_sub(now.duration_since(state.window_start));
            return Err(Refusal::TooFast { free_in });
        }
        state.opened += 1;
    }
    state.live += 1;
    Ok(())
}

/// Answers a connection with `response` without giving it a thread: the response is small and
/// the socket fresh, so the write does not block. The socket then lingers in one shared thread,
/// which reads and discards what the client sent for up to a second, so the answer is not lost
/// to a TCP reset caused by unread request bytes. At most [`linger_capacity`] sockets linger at
/// once (each holds a file descriptor); beyond that a socket is closed at once.
pub(crate) fn reject_fast(tcp: Socket, response: &[u8]) {
    let _ = tcp.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = (&tcp).write_all(response);
    let _ = tcp.shutdown(Shutdown::Write);
    static REAPER: OnceLock<Mutex<SyncSender<Socket>>> = OnceLock::new();
    let reaper = REAPER.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel::<Socket>(1024);
        let spawned = std::thread::Builder::new()
            .name("syncws-linger".into())
            .stack_size(64 << 10)
            .spawn(move || linger(rx));
        if let Err(e) = spawned {
            log::error!("cannot start the lingering-close thread: {e}");
        }
        Mutex::new(tx)
    });
    if LINGERING.fetch_add(1, Ordering::SeqCst) >= linger_capacity() {
        LINGERING.fetch_sub(1, Ordering::SeqCst);
        log::debug!("lingering-close queue full; closing a rejected socket at once");
        return;
    }
    let tx = reaper.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(tcp) {
        LINGERING.fetch_sub(1, Ordering::SeqCst);
        log::debug!("lingering-close queue full; closing a rejected socket at once");
    }
}

/// Like [`reject_fast`], for a server that speaks TLS: a plain-text answer would reach a `wss://`
/// client as a failed TLS handshake, so the answer goes out after one.
///
/// That handshake needs the client's cooperation and could take the whole handshake timeout,
/// so it never runs on the accept thread: the socket goes to one of [`TLS_REFUSERS`] small
/// shared threads, which give each client [`TLS_REFUSAL_TIME`] for handshake, answer and
/// lingering close. A client that does not finish in time is dropped; so are connections that
/// find the queue full (a flood of them is not worth more threads), and those count against
/// the same descriptor budget as lingering sockets.
#[cfg(any(feature = "tls", feature = "rustls"))]
pub(crate) fn reject_tls(
    tcp: std::sync::Arc<std::net::TcpStream>,
    tls: &crate::tls::ServerTls,
    response: &[u8],
) {
    type Job = (
        std::sync::Arc<std::net::TcpStream>,
        crate::tls::ServerTls,
        Vec<u8>,
    );
    static QUEUE: OnceLock<Option<Mutex<SyncSender<Job>>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel::<Job>(64);
        let rx = std::sync::Arc::new(Mutex::new(rx));
        let mut started = 0;
        for n in 0..TLS_REFUSERS {
            let rx = std::sync::Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("syncws-tls-refuse-{n}"))
                .stack_size(256 << 10)
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((tcp, tls, response)) = job else {
                            return;
                        };
                        refuse_over_tls(tcp, &tls, &response);
                        LINGERING.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => log::error!("cannot start a TLS refusal thread: {e}"),
            }
        }
        (started > 0).then(|| Mutex::new(tx))
    });
    let Some(queue) = queue else { return };
    if LINGERING.fetch_add(1, Ordering::SeqCst) >= linger_capacity() {
        LINGERING.fetch_sub(1, Ordering::SeqCst);
        log::debug!("refusal budget spent; closing a rejected TLS connection at once");
        return;
    }
    let tx = queue.lock().unwrap_or_else(|e| e.into_inner());
    if tx.try_send((tcp, tls.clone(), response.to_vec())).is_err() {
        LINGERING.fetch_sub(1, Ordering::SeqCst);
        log::debug!("TLS refusal queue full; closing a rejected TLS connection at once");
    }
}

/// Threads answering refused TLS connections.
#[cfg(any(feature = "tls", feature = "rustls"))]
const TLS_REFUSERS: usize = 2;

/// How long a refused TLS client gets for its handshake, reading the answer and closing.
#[cfg(any(feature = "tls", feature = "rustls"))]
const TLS_REFUSAL_TIME: Duration = Duration::from_secs(2);

#[cfg(any(feature = "tls", feature = "rustls"))]
fn refuse_over_tls(
    tcp: std::sync::Arc<std::net::TcpStream>,
    tls: &crate::tls::ServerTls,
    response: &[u8],
) {
    use crate::io::Transport;
    let deadline = Instant::now() + TLS_REFUSAL_TIME;
    // The stream keeps the deadline: the answer and the drain are bounded by it too.
    let mut stream = match tls.accept(tcp, deadline) {
        Ok(stream) => stream,
        Err(e) => {
            log::debug!("refused TLS client: handshake failed: {e}");
            return;
        }
    };
    if crate::io::write_all_by(&mut stream, response, deadline).is_ok() {
        let _ = stream.shutdown_write();
        crate::io::drain_until(&mut stream, deadline);
    }
}

/// Sockets handed to the lingering-close thread and not yet closed by it.
static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// How many rejected sockets may linger at once: an eighth of the file descriptor limit,
/// between 8 and 1,024.
fn linger_capacity() -> usize {
    static CAPACITY: OnceLock<usize> = OnceLock::new();
    *CAPACITY.get_or_init(|| linger_capacity_for(fd_soft_limit().unwrap_or(u64::MAX)))
}

fn linger_capacity_for(fd_limit: u64) -> usize {
    (fd_limit / 8).clamp(8, 1024) as usize
}

/// File descriptors kept free besides the connections and the lingering sockets: the
/// listener, standard streams, log files and whatever else the program opens.
const FD_MARGIN: u64 = 32;

/// The default for `max_connections`: what fits in the process's soft limit on open files
/// (`soft - linger_capacity - soft / 8 - 32`, at least 1 and at most 10,000), or 10,000 where
/// the limit cannot be read.
pub(crate) fn default_max_connections() -> usize {
    fd_soft_limit().map_or(10_000, max_connections_for)
}

fn max_connections_for(fd_limit: u64) -> usize {
    let reserve = linger_capacity_for(fd_limit) as u64 + fd_limit / 8 + FD_MARGIN;
    fd_limit.saturating_sub(reserve).clamp(1, 10_000) as usize
}

/// The soft limit on open files ("Max open files" in `/proc/self/limits`); `None` where that
/// file does not exist or says "unlimited".
fn fd_soft_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_fd_soft_limit(&limits)
}

fn parse_fd_soft_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether `accept` failed for want of file descriptors (EMFILE or ENFILE, the same numbers on
/// Linux, macOS and the BSDs).
pub(crate) fn out_of_fds(e: &std::io::Error) -> bool {
    cfg!(unix) && matches!(e.raw_os_error(), Some(23 | 24))
}

/// What the accept loop does when `accept` fails: back off instead of spinning, and warn once
/// per run of failures (running out of file descriptors fails every accept until a connection
/// ends, and a warning per failure would flood the log).
///
/// Out of descriptors, the clients already in the listen backlog would wait there unanswered;
/// so one descriptor is held in reserve (`/dev/null`), given up to accept one of them and answer
/// it `503` (or, over TLS, where there is no room for a handshake, close it), and taken again
/// once a descriptor is free.
#[derive(Debug)]
pub(crate) struct AcceptFailures {
    /// Failures since the last accepted connection.
    run: u64,
    last_warning: Option<Instant>,
    spare: Option<std::fs::File>,
}

impl Default for AcceptFailures {
    fn default() -> Self {
        AcceptFailures {
            run: 0,
            last_warning: None,
            spare: spare_fd(),
        }
    }
}

fn spare_fd() -> Option<std::fs::File> {
    if cfg!(unix) {
        std::fs::File::open("/dev/null").ok()
    } else {
        None
    }
}

impl AcceptFailures {
    /// At most one warning per this long, however often the failures stop and start again.
    const WARN_EVERY: Duration = Duration::from_secs(60);

    pub(crate) fn accepted(&mut self) {
        if self.run > 0 {
            log::info!("accepting again after {} failed accepts", self.run);
            self.run = 0;
        }
        if self.spare.is_none() {
            self.spare = spare_fd();
        }
    }

    pub(crate) fn failed(
        &mut self,
        e: &std::io::Error,
        listener: &Listener,
        addr: &Bound,
        busy: Option<&[u8]>,
    ) {
        if e.kind() == ErrorKind::ConnectionAborted {
            // The client gave up while in the backlog: its business, and the next one is fine.
            log::debug!("{addr}: accept failed: {e}");
            return;
        }
        self.run += 1;
        let due = self
            .last_warning
            .is_none_or(|at| at.elapsed() >= Self::WARN_EVERY);
        if self.run == 1 && due {
            self.last_warning = Some(Instant::now());
            if out_of_fds(e) {
                log::warn!(
                    "{addr}: cannot accept, out of file descriptors ({e}); answering 503 until \
                     connections end: raise `ulimit -n` or lower max_connections"
                );
            } else {
                log::warn!("{addr}: accept failed: {e}");
            }
        } else {
            log::debug!("{addr}: accept failed: {e}");
        }
        if out_of_fds(e) && self.spare.take().is_some() {
            if let Ok((tcp, _)) = listener.accept() {
                match busy {
                    Some(busy) => refuse_now(tcp, busy),
                    None => drop(tcp),
                }
            }
            self.spare = spare_fd();
            if self.spare.is_some() {
                return;
            }
        }
        // The next accept would fail the same way until a connection ends.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Answers `tcp` and closes it at once (there is no descriptor to spare for lingering): the
/// request bytes that have already arrived are read first, so that closing does not reset the
/// connection and destroy the answer.
fn refuse_now(tcp: Socket, response: &[u8]) {
    let mut sink = [0u8; 4096];
    if tcp.set_nonblocking(true).is_ok() {
        while matches!((&tcp).read(&mut sink), Ok(n) if n > 0) {}
    }
    let _ = tcp.set_nonblocking(false);
    let _ = tcp.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = (&tcp).write_all(response);
    let _ = tcp.shutdown(Shutdown::Write);
}

fn linger(rx: mpsc::Receiver<Socket>) {
    let mut sockets: Vec<(Socket, Instant)> = Vec::new();
    let mut sink = [0u8; 4096];
    loop {
        let next = if sockets.is_empty() {
            rx.recv().ok()
        } else {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(s) => Some(s),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        if let Some(s) = next {
            if s.set_nonblocking(true).is_ok() {
                sockets.push((s, Instant::now() + Duration::from_secs(1)));
            } else {
                LINGERING.fetch_sub(1, Ordering::SeqCst);
            }
        }
        sockets.retain_mut(|(s, until)| {
            let keep = loop {
                match (&*s).read(&mut sink) {
                    Ok(0) => break false,
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break Instant::now() < *until,
                    // A non-blocking read never waits, so no signal interrupts it: any other
                    // error ends the socket's lingering.
                    Err(_) => break false,
                }
            };
            if !keep {
                LINGERING.fetch_sub(1, Ordering::SeqCst);
            }
            keep
        });
    }
}

#[cfg(test)]
impl PerIp {
    fn visited(&self) -> u64 {
        self.table.lock().unwrap().visited
    }

    fn len(&self) -> usize {
        self.table.lock().unwrap().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn too_fast(verdict: Result<(), Refusal>) -> bool {
        matches!(verdict, Err(Refusal::TooFast { .. }))
    }

    #[test]
    fn live_cap_and_rate() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let per = PerIp::default();
        assert_eq!(per.admit(ip, Some(2), None), Ok(()));
        assert_eq!(per.admit(ip, Some(2), None), Ok(()));
        assert_eq!(per.admit(ip, Some(2), None), Err(Refusal::TooManyLive));
        assert_eq!(per.admit(other, Some(2), None), Ok(()));
        per.release(ip);
        assert_eq!(per.admit(ip, Some(2), None), Ok(()));

        let per = PerIp::default();
        let rate = Some((3, Duration::from_secs(60)));
        for _ in 0..3 {
            assert_eq!(per.admit(ip, None, rate), Ok(()));
            per.release(ip);
        }
        assert!(too_fast(per.admit(ip, None, rate)));
        assert_eq!(per.admit(other, None, rate), Ok(()));
        let short = Some((1, Duration::from_millis(1)));
        let per = PerIp::default();
        assert_eq!(per.admit(ip, None, short), Ok(()));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(per.admit(ip, None, short), Ok(()));
    }

    #[test]
    fn rate_refusal_says_when_the_window_frees_a_slot() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let per = PerIp::default();
        let rate = Some((1, Duration::from_secs(60)));
        assert_eq!(per.admit(ip, None, rate), Ok(()));
        let Err(Refusal::TooFast { free_in }) = per.admit(ip, None, rate) else {
            panic!("the second connection in the window is refused");
        };
        assert!(free_in <= Duration::from_secs(60) && free_in > Duration::from_secs(59));
        let retry_after = |free_in: Duration| {
            let r = Refusal::TooFast { free_in }.response(5);
            let (_, v) = r
                .headers
                .iter()
                .find(|(n, _)| n == "Retry-After")
                .cloned()
                .unwrap();
            v
        };
        let rows = [
            (0, "1"),
            (1, "1"),
            (999, "1"),
            (1_000, "1"),
            (1_001, "2"),
            (59_999, "60"),
        ];
        for (ms, want) in rows {
            assert_eq!(retry_after(Duration::from_millis(ms)), want, "{ms} ms");
        }
        let live = Refusal::TooManyLive.response(7);
        assert!(
            live.headers
                .iter()
                .any(|(n, v)| n == "Retry-After" && v == "7")
        );
    }

    /// The n-th of many distinct addresses.
    fn addr(n: u32) -> IpAddr {
        IpAddr::from((0x0a00_0000 + n).to_be_bytes())
    }

    /// Admits and releases `n` distinct addresses; returns the most expiry-queue items any one
    /// admission looked at.
    fn churn(per: &PerIp, from: u32, n: u32, rate: Option<(u32, Duration)>) -> u64 {
        let mut most = 0;
        for i in from..from + n {
            let before = per.visited();
            assert_eq!(per.admit(addr(i), Some(4), rate), Ok(()));
            most = most.max(per.visited() - before);
            per.release(addr(i));
        }
        most
    }

    #[test]
    fn admission_looks_at_a_bounded_number_of_entries() {
        // Every peer stays within its rate window, so none may be forgotten; the old table
        // scanned all of them on every admission above 4,096 peers.
        let per = PerIp::default();
        let rate = Some((5, Duration::from_secs(600)));
        let most = churn(&per, 0, 60_000, rate);
        assert!(
            most <= SWEEP as u64,
            "one admission looked at {most} entries"
        );
        assert!(per.visited() <= 60_000 * SWEEP as u64);
        assert_eq!(per.len(), 60_000, "peers within their window are kept");
        // ... and still counted: the first one has used one of its five.
        for _ in 0..4 {
            assert_eq!(per.admit(addr(0), None, rate), Ok(()));
        }
        assert!(too_fast(per.admit(addr(0), None, rate)));
    }

    #[test]
    fn idle_peers_expire_and_live_ones_never_do() {
        let per = PerIp::default();
        let held = addr(1 << 20);
        assert_eq!(per.admit(held, Some(1), None), Ok(()));
        // Without a rate window, a peer is forgotten as soon as its last connection ends.
        let most = churn(&per, 0, 50_000, None);
        assert!(
            most <= SWEEP as u64,
            "one admission looked at {most} entries"
        );
        assert!(per.len() <= SWEEP, "{} peers kept", per.len());
        assert_eq!(per.admit(held, Some(1), None), Err(Refusal::TooManyLive));
        per.release(held);
        assert_eq!(per.admit(held, Some(1), None), Ok(()));

        // With one, a peer is forgotten once the window has passed since it went idle; a peer
        // refused on its first attempt is remembered (and forgotten) like any other.
        let per = PerIp::default();
        // Long enough that none of the first 1,000 expires while they are admitted, even on a
        // busy machine (30 ms was not: 16 of them did under a parallel CI run).
        let window = Duration::from_millis(500);
        let rate = Some((1, window));
        churn(&per, 0, 1_000, rate);
        assert!(too_fast(per.admit(addr(5_000), None, Some((0, window)))));
        assert_eq!(per.len(), 1_001);
        // Waiting for the window to pass is what is tested, not synchronisation.
        std::thread::sleep(window);
        churn(&per, 10_000, 1_000, rate);
        assert!(per.len() <= 1_000 + SWEEP, "{} peers kept", per.len());
    }

    #[test]
    fn connections_fit_in_the_fd_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63492                63492                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_fd_soft_limit(limits), Some(1024));
        assert_eq!(
            parse_fd_soft_limit("Max open files            unlimited            unlimited   files"),
            None
        );
        assert_eq!(parse_fd_soft_limit(""), None);
        let rows = [
            (256, 160),
            (1024, 736),
            (4096, 3040),
            (1 << 20, 10_000),
            (16, 1),
            (0, 1),
        ];
        for (fds, want) in rows {
            assert_eq!(max_connections_for(fds), want, "{fds} fds");
            let used = want as u64 + linger_capacity_for(fds) as u64 + FD_MARGIN;
            assert!(fds < 64 || used <= fds, "{fds} fds: {used} used");
        }
    }

    #[test]
    fn idle_peers_beyond_the_cap_are_forgotten_early() {
        let per = PerIp::with_cap(1_000);
        let held = addr(1 << 20);
        assert_eq!(per.admit(held, Some(1), None), Ok(()));
        let rate = Some((1, Duration::from_secs(600)));
        let most = churn(&per, 0, 10_000, rate);
        assert!(
            most <= SWEEP as u64,
            "one admission looked at {most} entries"
        );
        // Idle peers within their window, capped; the live one is never forgotten.
        assert!(per.len() <= 1_000 + 2, "{} peers kept", per.len());
        assert_eq!(per.admit(held, Some(1), None), Err(Refusal::TooManyLive));
        // The most recent peers are still counted; the oldest were forgotten.
        assert!(too_fast(per.admit(addr(9_999), None, rate)));
        assert_eq!(per.admit(addr(0), None, rate), Ok(()));
    }
}
