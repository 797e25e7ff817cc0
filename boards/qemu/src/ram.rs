//! Static RAM, from the section boundaries cortex-m-rt's `link.x` defines.
//!
//! The host can read the same figures from the ELF (`llvm-size -A`); having them on the
//! device lets one log line hold every cost figure.

unsafe extern "C" {
    static _ram_start: u32;
    static __sdata: u32;
    static __edata: u32;
    static __sbss: u32;
    static __ebss: u32;
    static __suninit: u32;
    static __euninit: u32;
    static _stack_end: u32;
}

/// Static RAM by section, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticRam {
    /// Initialised statics (`.data`).
    pub data: usize,
    /// Zeroed statics (`.bss`).
    pub bss: usize,
    /// Uninitialised statics (`.uninit`).
    pub uninit: usize,
    /// Everything from the start of RAM to the bottom of the stack, alignment included.
    pub total: usize,
}

/// The static RAM of this firmware.
pub fn statics() -> StaticRam {
    StaticRam {
        data: &raw const __edata as usize - &raw const __sdata as usize,
        bss: &raw const __ebss as usize - &raw const __sbss as usize,
        uninit: &raw const __euninit as usize - &raw const __suninit as usize,
        total: &raw const _stack_end as usize - &raw const _ram_start as usize,
    }
}
