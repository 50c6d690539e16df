//! What the calling thread has cost: CPU time (a loop that spins instead of sleeping shows
//! here) and write system calls (a writer that makes one call per record instead of one for
//! all shows here).

use std::time::Duration;

/// The CPU time the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) },
        0
    );
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// How many times the calling thread has gone to sleep in the kernel (voluntary context
/// switches): a wait that wakes up again and again to find nothing to do shows here even when
/// each wake-up costs little CPU.
pub fn thread_sleeps() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) },
        0
    );
    usage.ru_nvcsw as u64
}

/// How many `write`-family system calls (`write`, `writev`; not `send`) the calling thread
/// has made, from Linux's `/proc/thread-self/io`.
pub fn thread_write_calls() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").expect("/proc/thread-self/io");
    io.lines()
        .find_map(|line| line.strip_prefix("syscw: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a syscw line")
}

/// Checks that a split reader with nothing to read sleeps in the kernel until bytes arrive
/// instead of polling in a loop: a receive of 500 ms ends in a timeout and costs its thread
/// less than 100 ms of CPU.
pub fn check_an_idle_reader_sleeps(mut reader: syncws::Reader) {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let before = thread_cpu_time();
        let got = reader.recv_timeout(Duration::from_millis(500));
        let _ = done.send((got, thread_cpu_time() - before));
    });
    let (got, used) = result
        .recv_timeout(Duration::from_secs(3))
        .expect("the receive came back by its deadline");
    assert!(matches!(got, Err(syncws::Error::Timeout)), "{got:?}");
    assert!(
        used < Duration::from_millis(100),
        "{used:?} of CPU in 500 ms of waiting"
    );
}
