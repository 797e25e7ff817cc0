//! Peak stack use by painting: fill the free stack with a pattern once, and later find the
//! deepest word that no longer holds it.
//!
//! The stack grows down from `_stack_start` (top of RAM) towards `_stack_end` (the end of
//! the statics), both from cortex-m-rt's `link.x`. [`paint`] fills the stack below the
//! caller's frame, down to [`WINDOW`] bytes from the top (all of it on the 16 KB
//! microbit; the cap keeps painting and scanning 4 MB of an386 RAM from costing millions of
//! instructions). [`peak_bytes`] then reports the most stack ever used, measured from the
//! top, including the frames that were live when painting (main's and the reset code's).
//! A value that happens to equal the pattern could hide one word: a 4-byte uncertainty.

const PATTERN: u32 = 0xC5AC_CE55;

/// Bytes kept clear below the stack pointer while painting, for `paint`'s own frame and an
/// exception frame (SysTick may fire meanwhile).
const GUARD: usize = 128;

unsafe extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

fn top() -> usize {
    &raw const _stack_start as usize
}

/// Deepest stack that painting covers, in bytes from the top of RAM.
pub const WINDOW: usize = 256 * 1024;

fn bottom() -> usize {
    // `_stack_end` is word-aligned by the linker script's assertion, and so is `top - WINDOW`.
    (&raw const _stack_end as usize).max(top().saturating_sub(WINDOW))
}

/// Size of the stack region in bytes: all RAM above the statics.
pub fn size_bytes() -> usize {
    top() - &raw const _stack_end as usize
}

/// Fills the unused stack (below the current stack pointer, less a guard) with the pattern.
/// Call early in `main`; calling it again resets the high-water mark to the current depth.
#[inline(never)]
pub fn paint() {
    let sp = cortex_m::register::msp::read() as usize;
    let end = sp.saturating_sub(GUARD) & !3;
    let mut p = bottom();
    while p < end {
        // SAFETY: [bottom, sp - GUARD) is RAM between the statics and the live stack: no
        // Rust object lives there, and `p` is word-aligned.
        unsafe { core::ptr::write_volatile(p as *mut u32, PATTERN) };
        p += 4;
    }
}

/// Stack in use right now, in bytes from the top of RAM (the caller's frame included).
#[inline(always)]
pub fn depth() -> usize {
    top().saturating_sub(cortex_m::register::msp::read() as usize)
}

/// Most stack used since [`paint`], in bytes (from the top of RAM); `None` when the stack
/// reached the bottom of the painted window (it may have gone deeper, or overflowed).
pub fn peak_bytes() -> Option<usize> {
    let mut p = bottom();
    let top = top();
    while p < top {
        // SAFETY: word-aligned address inside RAM; volatile because the compiler cannot
        // know the stack wrote there.
        let w = unsafe { core::ptr::read_volatile(p as *const u32) };
        if w != PATTERN {
            break;
        }
        p += 4;
    }
    if p == bottom() { None } else { Some(top - p) }
}
