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
}

impl State {
    fn work(&self) -> MutexGuard<'_, Work> {
        self.work.lock().unwrap_or_else(|e| e.into_inner())
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
    while let Some(task) = next(state) {
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
            at: Instant::now() + pause,
            seq,
            task: Task {
                member: task.member,
                pause,
            },
        }));
    }
}

/// The next task: a ready one, or a later one once due; `None` when the hub is gone.
fn next(state: &State) -> Option<Task> {
    let mut work = state.work();
    loop {
        if work.stop {
            return None;
        }
        let now = Instant::now();
        if work.later.peek().is_some_and(|l| l.0.at <= now) {
            let Reverse(due) = work.later.pop().expect("peeked");
            return Some(due.task);
        }
        if let Some(task) = work.ready.pop_front() {
            return Some(task);
        }
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
