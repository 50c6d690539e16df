//! A log line that a flood of clients cannot turn into a flood of lines: at most one per
//! period, the next one saying how many were left out.
//!
//! Lock-free: a connection thread asks with one atomic load, plus a compare-and-swap when a
//! line is due or an increment when it is not, so a burst of refused clients never queues on a
//! lock to find out that it will not be logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Lets through one event per `every`, counting the others.
#[derive(Debug)]
pub(crate) struct Throttle {
    /// Times are kept as milliseconds since this moment, to fit in an atomic.
    start: Instant,
    every_ms: u64,
    /// The earliest moment (in ms since `start`) when the next line may go out.
    next_ms: AtomicU64,
    /// Events left out since the last line that went out.
    suppressed: AtomicU64,
}

impl Throttle {
    /// One line per `every` (at least a millisecond).
    pub(crate) fn new(every: Duration) -> Self {
        Throttle {
            start: Instant::now(),
            every_ms: (every.as_millis() as u64).max(1),
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` if a line may go out now, `n` the events left out since the last one; `None`
    /// if this event is to be left out (and is counted).
    pub(crate) fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        let at = now.saturating_duration_since(self.start).as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        // Of the threads that find a line due, only the one whose swap succeeds logs it.
        if at >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    at + self.every_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_then_the_count_of_those_left_out() {
        let t = Throttle::new(Duration::from_secs(10));
        let t0 = t.start;
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(t.allow_at(at(0)), Some(0));
        for ms in [1, 500, 9_999] {
            assert_eq!(t.allow_at(at(ms)), None, "{ms} ms");
        }
        assert_eq!(t.allow_at(at(10_000)), Some(3));
        assert_eq!(t.allow_at(at(10_001)), None);
        // A quiet spell does not bank lines: the next is due a period after the last.
        assert_eq!(t.allow_at(at(60_000)), Some(1));
        assert_eq!(t.allow_at(at(60_001)), None);
        assert_eq!(t.allow_at(at(69_999)), None);
        assert_eq!(t.allow_at(at(70_000)), Some(2));
    }

    /// One line among 8,000 events at once, and every other event counted once: in the
    /// count the line carries (an event left out by another thread just before the winner
    /// reset the count) or in the count still to report.
    #[test]
    fn many_threads_at_once_get_one_line() {
        let t = Throttle::new(Duration::from_secs(3600));
        let lines: Vec<u64> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..8)
                .map(|_| s.spawn(|| (0..1_000).filter_map(|_| t.allow()).collect::<Vec<_>>()))
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0] + t.suppressed.load(Ordering::Relaxed), 7_999);
    }
}
