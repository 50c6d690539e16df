//! Limits applied at accept time, before a connection gets a thread: per-IP counts and rates,
//! and the quick rejection of connections over a limit.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Live connections and recent connection attempts of each peer address.
#[derive(Debug, Default)]
pub(crate) struct PerIp {
    map: Mutex<HashMap<IpAddr, IpState>>,
}

#[derive(Debug)]
struct IpState {
    live: usize,
    window_start: Instant,
    opened: u32,
}

/// Why a peer was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    TooManyLive,
    TooFast,
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
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 4096 {
            // Forget idle peers so the table stays bounded under a scan from many addresses.
            let window = rate.map_or(Duration::ZERO, |(_, w)| w);
            map.retain(|_, s| s.live > 0 || now.duration_since(s.window_start) < window);
        }
        let state = map.entry(ip).or_insert(IpState {
            live: 0,
            window_start: now,
            opened: 0,
        });
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

    /// A connection from `ip` ended.
    pub fn release(&self, ip: IpAddr) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = map.get_mut(&ip) {
            state.live = state.live.saturating_sub(1);
        }
    }
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
}
