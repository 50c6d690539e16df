//! Compressors kept between messages for the connections that compress every message on its
//! own (no context takeover, the default). Setting one up costs about as much as compressing a
//! 1 KiB message with it (zlib-rs allocates some 370 KiB and clears a 128 KiB hash table), so
//! a finished message hands its compressor back here and the next message, on any connection,
//! takes it again after a reset. The pool is small and process-wide: it holds at most
//! [`POOL_MAX`] idle compressors, whatever the number of connections, so memory per idle
//! connection stays at none.

use std::sync::Mutex;

use flate2::{Compress, Compression};

/// The most idle compressors kept (about 370 KiB each at 15 window bits).
pub const POOL_MAX: usize = 8;

struct Idle {
    level: u32,
    bits: u8,
    z: Compress,
}

static IDLE: Mutex<Vec<Idle>> = Mutex::new(Vec::new());

fn idle() -> std::sync::MutexGuard<'static, Vec<Idle>> {
    IDLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A compressor at `level` with a window of 2^`bits` bytes (9..=15), in its initial state:
/// an idle one reset, or a new one.
pub(super) fn take(level: u32, bits: u8) -> Compress {
    let found = {
        let mut idle = idle();
        let at = idle
            .iter()
            .rposition(|i| i.level == level && i.bits == bits);
        at.map(|at| idle.swap_remove(at).z)
    };
    match found {
        Some(mut z) => {
            z.reset();
            z
        }
        None => Compress::new_with_window_bits(Compression::new(level), false, bits),
    }
}

/// Hands a compressor back after a message; dropped if the pool is full.
pub(super) fn give(level: u32, bits: u8, z: Compress) {
    let mut idle = idle();
    if idle.len() < POOL_MAX {
        idle.push(Idle { level, bits, z });
    }
}

/// How many idle compressors the pool holds now.
pub fn pooled() -> usize {
    idle().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(level: u32, bits: u8) -> Compress {
        Compress::new_with_window_bits(Compression::new(level), false, bits)
    }

    /// The pool is process-wide and other tests compress meanwhile, so the counts are checked
    /// in a child run of this test binary that runs only this test.
    #[test]
    fn the_pool_gives_back_by_settings_and_keeps_at_most_its_maximum() {
        const CHILD: &str = "SYNCWS_POOL_TEST_CHILD";
        if std::env::var_os(CHILD).is_none() {
            let name = "proto::deflate::pool::tests::\
                        the_pool_gives_back_by_settings_and_keeps_at_most_its_maximum";
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", name, "--test-threads=1"])
                .env(CHILD, "1")
                .status()
                .unwrap();
            assert!(status.success(), "the child run failed: {status}");
            return;
        }
        assert_eq!(pooled(), 0);
        let mut z = fresh(6, 15);
        let mut out = Vec::with_capacity(64);
        z.compress_vec(b"state", &mut out, flate2::FlushCompress::Sync)
            .unwrap();
        give(6, 15, z);
        assert_eq!(pooled(), 1);
        // Another level or window: a new compressor; the given one stays.
        for (level, bits) in [(1, 15), (6, 12), (1, 12)] {
            drop(take(level, bits));
            assert_eq!(pooled(), 1, "level {level}, {bits} bits");
        }
        let again = take(6, 15);
        assert_eq!(again.total_in(), 0, "taken back in its initial state");
        assert_eq!(pooled(), 0);
        for n in 1..=POOL_MAX + 2 {
            give(6, 15, fresh(6, 15));
            assert_eq!(pooled(), n.min(POOL_MAX));
        }
    }
}
