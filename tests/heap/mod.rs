//! A global allocator that tracks this process's live heap bytes and their high-water mark, for
//! the tests that bound how far memory grows. Not part of `support`: a test binary that declares
//! `mod heap;` installs it itself, so only those binaries pay for the counting:
//!
//! ```ignore
//! mod heap;
//! #[global_allocator]
//! static GLOBAL: heap::Peak = heap::Peak;
//!
//! let base = heap::mark();
//! // ... the work to measure ...
//! let grew = heap::growth_since(base);
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Tracks live heap bytes and their high-water mark.
pub struct Peak;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grew(by: isize) {
    let now = LIVE.fetch_add(by, Ordering::SeqCst) + by;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size() as isize);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        grew(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Starts a measurement: the high-water mark is reset to what is live now, which is returned.
pub fn mark() -> isize {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    base
}

/// How far the heap grew above `base` (from [`mark`]) at its peak since then; 0 if it only
/// shrank.
pub fn growth_since(base: isize) -> usize {
    (PEAK.load(Ordering::SeqCst) - base).max(0) as usize
}
