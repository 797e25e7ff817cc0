//! Printing numbers without core's float formatting.
//!
//! `{}` on an `f32` pulls in the float-to-decimal machinery (~20 KB of flash, more than half
//! the firmware budget). These wrappers print with integer formatting only: [`Milli`] for
//! reading (three decimals, rounded), [`Bits`] where exactness matters (the IEEE bit
//! pattern, comparable with the host's `f32::to_bits`).

use core::fmt;

/// An `f32` printed as a decimal with three fractional digits (`-1.234`), rounded to the
/// nearest thousandth; `NaN`, `inf` and `-inf` as such, and magnitudes of 10⁹ and more as
/// their bit pattern ([`Bits`]). The arithmetic stays in 32 bits (no 64-bit division
/// routine in the firmware).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Milli(pub f32);

impl fmt::Display for Milli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut r = Ok(());
        crate::out::milli(self.0, &mut |b| {
            r = r.and_then(|()| f.write_str(core::str::from_utf8(b).unwrap_or("?")));
        });
        r
    }
}

/// An `f32`'s IEEE-754 bit pattern in hex (`0x3f800000`): exact, for host comparisons.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bits(pub f32);

impl fmt::Display for Bits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0.to_bits())
    }
}

pub use crate::parity::fnv1a_f32;
