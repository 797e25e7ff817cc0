//! Instruction counting with SysTick under `qemu -icount shift=N`.
//!
//! With `-icount shift=N` QEMU advances virtual time by `2^N` ns per guest instruction,
//! and SysTick (clocked from the core clock `f`) ticks in virtual time, so
//! `instructions = ticks · (10^9 / f) / 2^N`, the same on every run. `run.sh` uses N = 6
//! ([`ICOUNT_SHIFT`]): 64 ns per instruction, i.e. 1.6 ticks per instruction at 25 MHz
//! (an386), 1.28 at 20 MHz (an505) and 1.024 at 16 MHz (microbit), so a tick resolves one
//! instruction on every machine. `selftest` checks the formula against a loop of known
//! length (`icount_matches_a_loop_of_known_length`).
//!
//! The counts are *instructions*, not cycles: QEMU models no pipeline or wait states (and
//! not the DWT cycle counter either, which reads 0). On real hardware use DWT CYCCNT.
//! Without `-icount` the same code measures host wall time, which is meaningless.
//!
//! SysTick is 24 bits; its exception counts wraps (every 2^24 ticks), so regions of any
//! length can be measured as long as interrupts stay enabled while they run.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;

use crate::machine;

/// The `-icount shift` `run.sh` passes to QEMU (keep the two in step).
pub const ICOUNT_SHIFT: u32 = 6;

/// SysTick reload value: the full 24-bit range, so a period is 2^24 ticks.
const RELOAD: u32 = 0x00FF_FFFF;

/// Completed SysTick periods since [`start`]; written only by the SysTick exception.
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    // Single writer (this handler), so load+store is race-free on the M0 too, which has
    // no atomic read-modify-write.
    WRAPS.store(
        WRAPS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Starts SysTick free-running from the core clock with its wrap exception enabled.
/// Taking `SYST` by value means nothing else can reprogram it afterwards.
pub fn start(mut syst: SYST) {
    syst.disable_counter();
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    WRAPS.store(0, Ordering::Relaxed);
    syst.enable_interrupt();
    syst.enable_counter();
    // `syst` is dropped, not handed back: SysTick is ours for the rest of the run.
}

/// SysTick ticks since [`start`]. Call with interrupts enabled (a wrap that happens while
/// they are masked is counted late).
pub fn ticks() -> u64 {
    loop {
        let wraps = WRAPS.load(Ordering::Relaxed);
        let current = SYST::get_current();
        // A wrap between the two loads would pair the old count with the new value.
        if WRAPS.load(Ordering::Relaxed) == wraps {
            return (u64::from(wraps) << 24) + u64::from(RELOAD - current);
        }
    }
}

const fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// `ticks · 10^9 / (f · 2^N)` as a reduced fraction (e.g. 5/8 on the an386).
const NUM: u64 = 1_000_000_000
    / gcd(
        1_000_000_000,
        (machine::THIS.core_hz as u64) << ICOUNT_SHIFT,
    );
const DEN: u64 = ((machine::THIS.core_hz as u64) << ICOUNT_SHIFT)
    / gcd(
        1_000_000_000,
        (machine::THIS.core_hz as u64) << ICOUNT_SHIFT,
    );

// DEN is a power of two on all three machines (8, 32, 128), so the division below is a
// shift: no 64-bit division routine gets linked.
const _: () = assert!(DEN.is_power_of_two());

/// Guest instructions that take `ticks` SysTick ticks (rounded to nearest).
pub const fn ticks_to_instructions(ticks: u64) -> u64 {
    (ticks * NUM + DEN / 2) / DEN
}

/// Runs `f` and returns its result with the guest instructions it took (plus a constant
/// overhead of a few dozen instructions for reading the counter).
pub fn count<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let t0 = ticks();
    let r = f();
    let t1 = ticks();
    (r, ticks_to_instructions(t1.wrapping_sub(t0)))
}
