//! A child process's peak memory: `wait4` reports what `Child::wait` does not, the maximum
//! resident set of the reaped process. Shared by `benches/transfer.rs` and `tests/transfer.rs`
//! (`#[path]`-included, since each is its own crate).

use std::process::Child;
use std::time::{Duration, Instant};

/// Reaps `child` (killing it after `timeout`) with `wait4`. Returns whether it exited with
/// status 0, and its peak RSS in KiB.
pub fn wait_rss(mut child: Child, timeout: Duration) -> (bool, u64) {
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain data that wait4 fills in, status an int it writes; the pid
        // is our unreaped child, so it cannot name another process.
        let (reaped, usage) = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            let reaped = libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage);
            (reaped, usage)
        };
        assert!(reaped >= 0, "wait4: {}", std::io::Error::last_os_error());
        if reaped == pid {
            // Reaped here, so `child` must not be waited for again (its drop does not wait).
            std::mem::forget(child);
            let exited_ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
            return (exited_ok, usage.ru_maxrss as u64);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
