//! CPU pinning shared by the benchmarks that put servers and clients on their own cores.

/// Pins the calling thread (and the threads it spawns later) to one CPU.
pub fn pin_to(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; the pointer and size describe it exactly.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("warning: could not pin to CPU {cpu}");
        }
    }
}
