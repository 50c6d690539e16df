//! The read timeout of the receive loop, and the read half under a total deadline while one
//! receive runs.
//!
//! The loop arms the socket's read timeout with the time left before its next wake-up, then
//! lets the receiver read a frame, or several. A socket timeout counts from the start of each
//! read, so a peer that sends a byte now and then would restart it with every read: under the
//! caller's deadline and the close timeout, [`Clocked`] arms every read after the first with
//! what is left, and fails it as timed out once nothing is.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use crate::io::Transport;

/// Sets `stream`'s read timeout to `want` (`None` waits forever), but only when the one in
/// force, `armed`, does not fit, so a steady stream of receives costs no extra system calls.
/// `precise` timeouts may not be overshot; others (the heartbeat's) may be late by a quarter.
pub(super) fn arm<R: Transport + ?Sized>(
    stream: &mut R,
    armed: &mut Option<Duration>,
    want: Option<Duration>,
    precise: bool,
) -> io::Result<()> {
    // A zero timeout means "forever" to the OS; the clocks fire before a millisecond passes.
    let want = want.map(|w| w.max(Duration::from_millis(1)));
    let fits = match (*armed, want) {
        (None, None) => true,
        (Some(cur), Some(w)) => cur >= w / 2 && (cur <= w || (!precise && cur <= w + w / 4)),
        _ => false,
    };
    if !fits {
        stream.set_read_timeout(want)?;
        *armed = want;
    }
    Ok(())
}

/// A read half whose reads end by `until`: the first runs under the timeout the loop armed,
/// each later one under what is left, and one that would start at or after `until` fails with
/// [`io::ErrorKind::TimedOut`] without reading. Bytes already read stay read; the receive
/// goes on from them next time. Without `until` it is the stream itself.
pub(super) struct Clocked<'a, R: Transport + ?Sized> {
    stream: &'a mut R,
    until: Option<Instant>,
    armed: &'a mut Option<Duration>,
    first: bool,
}

impl<'a, R: Transport + ?Sized> Clocked<'a, R> {
    /// `stream` under `until` (the caller's deadline or the close timeout, whichever comes
    /// first; `None` bounds nothing), its first read armed already; `armed` is the read
    /// timeout in force, as [`arm`] keeps it.
    pub fn new(stream: &'a mut R, until: Option<Instant>, armed: &'a mut Option<Duration>) -> Self {
        Clocked {
            stream,
            until,
            armed,
            first: true,
        }
    }

    fn before_read(&mut self) -> io::Result<()> {
        let Some(until) = self.until else {
            return Ok(());
        };
        if std::mem::take(&mut self.first) {
            return Ok(());
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        arm(self.stream, self.armed, Some(left), true)
    }
}

impl<R: Transport + ?Sized> Read for Clocked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.before_read()?;
        self.stream.read(buf)
    }
}

/// The receiver only reads; writes go to the stream underneath.
impl<R: Transport + ?Sized> Write for Clocked<'_, R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// The receiver sets no timeouts (the loop and `before_read` arm the stream underneath), so
/// only the read loop is its own.
impl<R: Transport + ?Sized> Transport for Clocked<'_, R> {
    /// Under a deadline, a loop of this type's own reads (the stream's would go on reading as
    /// long as bytes keep coming); without one, the stream's.
    fn read_to_vec(&mut self, buf: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
        if self.until.is_none() {
            return self.stream.read_to_vec(buf, limit);
        }
        Read::take(self, limit as u64).read_to_end(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Notes the read timeouts it is given.
    #[derive(Default)]
    struct Timeouts(Vec<Option<Duration>>);

    impl Read for Timeouts {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Ok(0)
        }
    }

    impl Write for Timeouts {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Transport for Timeouts {
        fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
            self.0.push(timeout);
            Ok(())
        }
    }

    #[test]
    fn a_timeout_in_force_that_fits_is_not_set_again() {
        let ms = Duration::from_millis;
        let mut stream = Timeouts::default();
        let mut armed = None;
        let mut arm_for = |want: Option<u64>, precise| {
            arm(&mut stream, &mut armed, want.map(ms), precise).unwrap();
        };
        arm_for(None, true); // forever, and forever is in force
        arm_for(Some(100), true);
        arm_for(Some(80), true); // 100 would overshoot
        arm_for(Some(150), true); // 80 is at least half of it: fits
        arm_for(Some(70), false); // 80 is late by less than a quarter: fits
        arm_for(Some(75), true); // but not for a precise wait
        arm_for(Some(200), true); // 75 is less than half
        arm_for(Some(150), false); // 200 would be late by more than a quarter
        arm_for(None, false);
        arm_for(None, true);
        let set: Vec<_> = [Some(100), Some(80), Some(75), Some(200), Some(150), None]
            .into_iter()
            .map(|t| t.map(ms))
            .collect();
        assert_eq!(stream.0, set);
        assert_eq!(armed, None);
    }
}
