//! Limits applied at accept time, before a connection gets a thread: per-IP counts and rates,
//! and the quick rejection of connections over a limit.
//!
//! The per-IP table is a hash map plus an expiry queue. An entry goes into the queue when it
//! becomes idle (no live connection left, or created by a refused attempt), stamped with that
//! moment; every admission then looks at no more than [`SWEEP`] items at the front of the queue
//! and forgets the peers whose rate window has passed since they went idle. An entry with live
//! connections never expires. So admission costs O(1) however many peers the table holds, and
//! the table holds the peers with live connections plus those seen within one rate window.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Most expiry-queue items one admission looks at. Each admission or release adds at most one
/// item, so sweeping more than one per admission keeps the queue from growing beyond the
/// entries that are still within their window.
const SWEEP: usize = 4;

/// Live connections and recent connection attempts of each peer address.
#[derive(Debug, Default)]
pub(crate) struct PerIp {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
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
    TooManyLive,
    TooFast,
}

impl Table {
    /// Queues `ip` as idle since `now`, superseding any earlier item of it.
    fn went_idle(&mut self, ip: IpAddr, now: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
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
            if now.duration_since(since) < window {
                return;
            }
            self.idle.pop_front();
            #[cfg(test)]
            {
                self.visited += 1;
            }
            // Idle since `since`, so its window (started no later) has passed too. A stale item
            // (the peer came back) or a peer with live connections stays.
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
            return Err(Refusal::TooFast);
        }
        state.opened += 1;
    }
    state.live += 1;
    Ok(())
}

/// Answers a connection with `response` without giving it a thread: the response is small and
/// the socket fresh, so the write does not block. The socket then lingers in one shared thread,
/// which reads and discards what the client sent for up to a second, so the answer is not lost
/// to a TCP reset caused by unread request bytes.
pub(crate) fn reject_fast(mut tcp: TcpStream, response: &[u8]) {
    let _ = tcp.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = tcp.write_all(response);
    let _ = tcp.shutdown(Shutdown::Write);
    static REAPER: OnceLock<Mutex<SyncSender<TcpStream>>> = OnceLock::new();
    let reaper = REAPER.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel::<TcpStream>(1024);
        let spawned = std::thread::Builder::new()
            .name("syncws-linger".into())
            .stack_size(64 << 10)
            .spawn(move || linger(rx));
        if let Err(e) = spawned {
            log::error!("cannot start the lingering-close thread: {e}");
        }
        Mutex::new(tx)
    });
    let tx = reaper.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(TrySendError::Full(_)) = tx.try_send(tcp) {
        log::debug!("lingering-close queue full; closing a rejected socket at once");
    }
}

fn linger(rx: mpsc::Receiver<TcpStream>) {
    let mut sockets: Vec<(TcpStream, Instant)> = Vec::new();
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
        if let Some(s) = next
            && s.set_nonblocking(true).is_ok()
        {
            sockets.push((s, Instant::now() + Duration::from_secs(1)));
        }
        sockets.retain_mut(|(s, until)| {
            loop {
                match s.read(&mut sink) {
                    Ok(0) => break false,
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break Instant::now() < *until,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break false,
                }
            }
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
        assert_eq!(per.admit(ip, None, rate), Err(Refusal::TooFast));
        assert_eq!(per.admit(other, None, rate), Ok(()));
        let short = Some((1, Duration::from_millis(1)));
        let per = PerIp::default();
        assert_eq!(per.admit(ip, None, short), Ok(()));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(per.admit(ip, None, short), Ok(()));
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
        let most = churn(&per, 0, 20_000, rate);
        assert!(
            most <= SWEEP as u64,
            "one admission looked at {most} entries"
        );
        assert!(per.visited() <= 20_000 * SWEEP as u64);
        assert_eq!(per.len(), 20_000, "peers within their window are kept");
        // ... and still counted: the first one has used one of its five.
        for _ in 0..4 {
            assert_eq!(per.admit(addr(0), None, rate), Ok(()));
        }
        assert_eq!(per.admit(addr(0), None, rate), Err(Refusal::TooFast));
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
        let window = Duration::from_millis(30);
        let rate = Some((1, window));
        churn(&per, 0, 1_000, rate);
        assert_eq!(
            per.admit(addr(5_000), None, Some((0, window))),
            Err(Refusal::TooFast)
        );
        assert_eq!(per.len(), 1_001);
        // Waiting for the window to pass is what is tested, not synchronisation.
        std::thread::sleep(window);
        churn(&per, 10_000, 1_000, rate);
        assert!(per.len() <= 1_000 + SWEEP, "{} peers kept", per.len());
    }
}
