//! Firmware support for running `sgmrl` on QEMU's Cortex-M machines.
//!
//! Three machines, one crate: `microbit` (Cortex-M0, no FPU, 16 KB RAM), `mps2-an386`
//! (Cortex-M4F) and `mps2-an505` (Cortex-M33 with FPU). `build.rs` picks the memory map
//! from the target triple and `run.sh` picks the machine from the ELF's path.
//!
//! Everything reaches the host over semihosting: text output ([`println!`]), the exit code
//! ([`exit`], any `i32` via `SYS_EXIT_EXTENDED`) and the command line ([`args`]). A panic or
//! a fault ends QEMU with a non-zero code instead of hanging ([`fault`]).
//!
//! Measurement utilities, one per module: [`icount`] (instructions, from SysTick under
//! `qemu -icount`), [`stack`] (peak stack by painting), [`ram`] (static RAM from linker
//! symbols). [`out`] prints log lines without `core::fmt` (~5 KB of flash). [`parity`] holds the host↔device parity cases whose host results are pinned in
//! [`pins`]. [`num`] prints numbers without core's float formatting (which costs ~20 KB of
//! flash), and [`harness`] runs a table of on-target tests.
#![no_std]
#![deny(missing_docs)]

pub mod args;
pub mod fault;
pub mod harness;
pub mod icount;
pub mod machine;
pub mod num;
pub mod out;
pub mod parity;
pub mod pins;
pub mod ram;
pub mod robot_e2e;
pub mod stack;
pub mod vectors;

pub use semihosting::println;

/// Exit codes the firmware reports to the host (`run.sh` returns them unchanged).
pub mod code {
    /// Every test passed / the demo met its checks.
    pub const PASS: i32 = 0;
    /// At least one test or check failed.
    pub const FAIL: i32 = 1;
    /// The embedded bundle failed validation on the device (e.g. corrupted flash); the
    /// typed error was printed and nothing was adapted.
    pub const BAD_BUNDLE: i32 = 2;
    /// A Rust panic (a bug: the core never panics on bad input).
    pub const PANIC: i32 = 101;
    /// A HardFault (bad memory access, stack overflow into flash, …).
    pub const HARD_FAULT: i32 = 102;
    /// An exception or interrupt nobody installed a handler for.
    pub const UNEXPECTED_EXCEPTION: i32 = 103;
}

/// Ends the QEMU run with `code` as the host process's exit code.
pub fn exit(code: i32) -> ! {
    semihosting::process::exit(code)
}
