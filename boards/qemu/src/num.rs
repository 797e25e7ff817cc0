//! Printing numbers without core's float formatting.
//!
//! `{}` on an `f32` pulls in the float-to-decimal machinery (~20 KB of flash, more than half
//! the firmware budget). These wrappers print with integer formatting only: [`Milli`] for
//! reading (three decimals, rounded), [`Bits`] where exactness matters (the IEEE bit
//! pattern, comparable with the host's `f32::to_bits`).

use core::fmt;

/// An `f32` printed as a decimal with three fractional digits (`-1.234`), rounded to the
/// nearest thousandth; `NaN`, `inf`, `-inf`, and `>9e15`-sized values as `big`/`-big`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Milli(pub f32);

impl fmt::Display for Milli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        if x.is_nan() {
            return f.write_str("NaN");
        }
        if x.is_infinite() {
            return f.write_str(if x > 0.0 { "inf" } else { "-inf" });
        }
        // i64 holds every thousandth up to ~9.2e15; beyond that precision is moot anyway.
        if !(-9.0e15..=9.0e15).contains(&x) {
            return f.write_str(if x > 0.0 { "big" } else { "-big" });
        }
        let scaled = x * 1000.0;
        // Round half away from zero; `as` truncates toward zero.
        let m = if scaled >= 0.0 {
            (scaled + 0.5) as i64
        } else {
            (scaled - 0.5) as i64
        };
        let sign = if m < 0 { "-" } else { "" };
        let a = m.unsigned_abs();
        write!(f, "{}{}.{:03}", sign, a / 1000, a % 1000)
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
