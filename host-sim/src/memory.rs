//! Keeps freed heap memory in the process instead of handing it back to the OS.
//!
//! A meta-iteration allocates and frees the same large buffers every time (a batch of
//! 2000 rows × 100 units is 0.8 MB per cached layer). glibc's malloc serves requests above
//! its mmap threshold with fresh mappings and trims the top of its heaps back to the
//! system, so each iteration paid again for the page faults of zero-filling those pages
//! (3.5 % of the CLI's Table 1 time in the profile in docs/results.md). Raising both
//! thresholds keeps the pages for reuse; the peak resident size is what it was.

/// Tells the allocator to keep freed memory (glibc on Linux; elsewhere nothing). Call once
/// at start-up, before any thread starts: the CLI and the benchmark do.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's largest accepted mmap threshold on 64-bit targets (32 MiB): everything
        // smaller comes from the heaps, which are never trimmed below 1 GiB of free top.
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        const TRIM_THRESHOLD: libc::c_int = 1 << 30;
        // SAFETY: mallopt only sets allocator parameters; it is called before any other
        // thread exists, and a refused value (return 0) leaves the default in place.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}
