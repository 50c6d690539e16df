//! The flusher threads: they write the members' queues without blocking, and come back later to
//! a member whose socket was full.
//!
//! A member is handed over when its queue goes from empty to not empty (a publish), and taken
//! back when the kernel would not take more (retried after a pause that doubles from
//! [`FIRST_RETRY`] to [`LAST_RETRY`], so a stalled member costs a system call now and then, not a
//! spinning thread) or when its own thread holds the write lock (that thread writes the queue
//! before its own message; what was queued meanwhile is retried after [`BUSY_RETRY`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::websocket::{Flushed, Outlet};

/// The first pause before a member whose socket was full is tried again.
pub(super) const FIRST_RETRY: Duration = Duration::from_millis(2);
/// The longest pause: a member's queue is tried at least this often while it holds bytes.
pub(super) const LAST_RETRY: Duration = Duration::from_millis(50);
/// The pause before a member whose write lock was held is tried again.
const BUSY_RETRY: Duration = Duration::from_millis(1);

/// A member to try, and the pause it was last given.
struct Task {
    member: Weak<dyn Outlet>,
    pause: Duration,
}

/// A task due at a time; the heap's order is the time, then the order of arrival.
struct Later {
    at: Instant,
    seq: u64,
    task: Task,
}

impl PartialEq for Later {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Later {}

impl PartialOrd for Later {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Later {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct Work {
    ready: VecDeque<Task>,
    later: BinaryHeap<Reverse<Later>>,
    seq: u64,
    stop: bool,
}

struct State {
    work: Mutex<Work>,
    wake: Condvar,
    /// The origin of the retry grid (see [`State::retry_at`]).
    epoch: Instant,
}

impl State {
    fn work(&self) -> MutexGuard<'_, Work> {
        self.work.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When a member paused for `pause` is due: `pause` from now, rounded up to a multiple of
    /// half of it from the epoch, so members given the same pause come due together and cost
    /// one wake-up between them instead of one each (40 stalled members at [`LAST_RETRY`] wake
    /// a flusher a few times per pause, not 40 times).
    fn retry_at(&self, now: Instant, pause: Duration) -> Instant {
        let grid = (pause.as_nanos() / 2).max(1);
        let due = (now + pause).duration_since(self.epoch).as_nanos();
        let slots = due.div_ceil(grid);
        let rounded = u64::try_from(slots.saturating_mul(grid)).unwrap_or(u64::MAX);
        self.epoch + Duration::from_nanos(rounded)
    }
}

/// The flusher threads of one hub; they stop when it is dropped.
pub(super) struct Flushers {
    state: Arc<State>,
    threads: Vec<JoinHandle<()>>,
}

impl Flushers {
    /// Starts `n` threads (at least one).
    pub fn start(n: usize) -> std::io::Result<Flushers> {
        let state = Arc::new(State {
            work: Mutex::new(Work::default()),
            wake: Condvar::new(),
            epoch: Instant::now(),
        });
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let state = Arc::clone(&state);
            let spawned = std::thread::Builder::new()
                .name(format!("syncws-flush-{i}"))
                .spawn(move || run(&state));
            match spawned {
                Ok(t) => threads.push(t),
                // The threads started so far stop with `drop`.
                Err(e) => return Err(e),
            }
        }
        Ok(Flushers { state, threads })
    }

    /// Hands over the members whose queues just got their first frame: one lock and one
    /// wake-up per publish, not per member.
    pub fn schedule(&self, members: Vec<Weak<dyn Outlet>>) {
        if members.is_empty() {
            return;
        }
        let many = members.len() > 1;
        let mut work = self.state.work();
        work.ready.extend(members.into_iter().map(|member| Task {
            member,
            pause: Duration::ZERO,
        }));
        drop(work);
        if many {
            self.state.wake.notify_all();
        } else {
            self.state.wake.notify_one();
        }
    }
}

impl Drop for Flushers {
    fn drop(&mut self) {
        self.state.work().stop = true;
        self.state.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn run(state: &State) {
    while let Some((task, woke)) = next(state) {
        if woke {
            // The thread that woke us (a publisher, mostly) goes first: on a busy core the
            // wake-up would otherwise switch to this thread at once, and the publish would not
            // return until the scheduler came back to it, a slice later (about 1.5 ms here).
            // Flushing starts a few microseconds later instead.
            std::thread::yield_now();
        }
        let Some(member) = task.member.upgrade() else {
            continue;
        };
        let pause = match member.flush() {
            Flushed::Empty | Flushed::Closed => continue,
            Flushed::Busy => BUSY_RETRY,
            Flushed::WouldBlock => (task.pause * 2).clamp(FIRST_RETRY, LAST_RETRY),
        };
        drop(member);
        let mut work = state.work();
        work.seq += 1;
        let seq = work.seq;
        work.later.push(Reverse(Later {
            at: state.retry_at(Instant::now(), pause),
            seq,
            task: Task {
                member: task.member,
                pause,
            },
        }));
    }
}

/// The next task: a ready one, or a later one once due; `None` when the hub is gone.
fn next(state: &State) -> Option<(Task, bool)> {
    let mut work = state.work();
    let mut woke = false;
    loop {
        if work.stop {
            return None;
        }
        let now = Instant::now();
        if work.later.peek().is_some_and(|l| l.0.at <= now) {
            let Reverse(due) = work.later.pop().expect("peeked");
            return Some((due.task, woke));
        }
        if let Some(task) = work.ready.pop_front() {
            return Some((task, woke));
        }
        woke = true;
        work = match work.later.peek().map(|l| l.0.at) {
            Some(at) => {
                let wait = at.saturating_duration_since(now);
                state
                    .wake
                    .wait_timeout(work, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => state.wake.wait(work).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            work: Mutex::new(Work::default()),
            wake: Condvar::new(),
            epoch: Instant::now(),
        }
    }

    #[test]
    fn a_retry_waits_at_least_its_pause_and_at_most_half_again() {
        let s = state();
        for pause in [FIRST_RETRY, Duration::from_millis(7), LAST_RETRY] {
            for offset_us in [0, 1, 333, 999, 12_345, 49_999] {
                let now = s.epoch + Duration::from_micros(offset_us);
                let at = s.retry_at(now, pause);
                assert!(at >= now + pause, "{pause:?} at +{offset_us} µs");
                assert!(
                    at <= now + pause + pause / 2,
                    "{pause:?} at +{offset_us} µs"
                );
            }
        }
    }

    #[test]
    fn members_paused_alike_come_due_together() {
        let s = state();
        // Forty members taken back within the same few milliseconds, each paused the longest:
        // they fall due at no more than two instants, so a flusher wakes twice, not forty times.
        let due: std::collections::BTreeSet<Instant> = (0..40)
            .map(|i| s.retry_at(s.epoch + Duration::from_micros(100 * i), LAST_RETRY))
            .collect();
        assert!(due.len() <= 2, "{} instants", due.len());
    }
}
