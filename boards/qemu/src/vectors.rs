//! The device-interrupt part of the vector table: one entry.
//!
//! Without its `device` feature cortex-m-rt fills the table with as many device interrupts
//! as the architecture allows, all pointing at `DefaultHandler`: 32 words on ARMv6-M, 240 on
//! ARMv7-M and 480 on ARMv8-M Mainline, i.e. 1,920 bytes of flash on the mps2-an505. This
//! firmware enables no device interrupt (the NVIC's enable bits reset to 0, and only the
//! SysTick and fault *exceptions* are used, which sit in the first 16 words), so, as for any
//! board with no interrupt in use, the table ends after the one entry cortex-m-rt's
//! `link.x` requires (it checks that the table is longer than the 16 exception words).
//!
//! Enabling a device interrupt `n` means growing [`__INTERRUPTS`] to at least `n + 1`
//! entries first: the core would otherwise fetch the handler's address from `.text`.

unsafe extern "C" {
    /// cortex-m-rt's fallback handler (ours is in [`crate::fault`]): it reports the
    /// interrupt and ends the run with `UNEXPECTED_EXCEPTION`.
    fn DefaultHandler();
}

/// Device interrupt 0, the only entry: the fallback handler.
#[doc(hidden)]
// SAFETY: cortex-m-rt's `link.x` places this section right after the 16 exception words
// (`EXTERN(__INTERRUPTS)`), which is where the core looks up device interrupt 0.
#[unsafe(link_section = ".vector_table.interrupts")]
#[unsafe(no_mangle)]
pub static __INTERRUPTS: [unsafe extern "C" fn(); 1] = [DefaultHandler];
