//! The one type for a total time budget: every blocking call under it asks what is left, and
//! nothing turns it back into a fresh full timeout.

use std::io;
use std::time::{Duration, Instant};

use crate::io::Transport;

/// A point in time by which an operation must finish, or none (wait forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// The deadline `timeout` from now; `None` never passes.
    pub fn after(timeout: Option<Duration>) -> Self {
        Deadline(timeout.map(|t| Instant::now() + t))
    }

    /// The deadline at `instant`.
    pub fn at(instant: Instant) -> Self {
        Deadline(Some(instant))
    }

    /// Sets `stream`'s read timeout to the time left; an error once nothing is left.
    pub fn arm_read<S: Transport + ?Sized>(&self, stream: &mut S) -> io::Result<()> {
        stream.set_read_timeout(self.remaining()?)
    }

    /// Sets `stream`'s write timeout to the time left; an error once nothing is left.
    pub fn arm_write<S: Transport + ?Sized>(&self, stream: &mut S) -> io::Result<()> {
        stream.set_write_timeout(self.remaining()?)
    }

    /// The time left, as a socket timeout: `Ok(None)` waits forever, an error once nothing is
    /// left. Never zero, which the OS takes as "forever": under a millisecond left rounds up to
    /// one.
    pub fn remaining(&self) -> io::Result<Option<Duration>> {
        let Some(at) = self.0 else {
            return Ok(None);
        };
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "timed out (the deadline is a total, not per system call)",
            ));
        }
        Ok(Some(left.max(Duration::from_millis(1))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_waits_forever_and_a_passed_deadline_is_an_error() {
        assert_eq!(Deadline::after(None).remaining().unwrap(), None);
        let left = Deadline::after(Some(Duration::from_secs(60)))
            .remaining()
            .unwrap()
            .unwrap();
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(59));
        let passed = Deadline::after(Some(Duration::ZERO))
            .remaining()
            .unwrap_err();
        assert_eq!(passed.kind(), io::ErrorKind::TimedOut);
    }
}
