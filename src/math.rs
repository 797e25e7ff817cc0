//! The scalar every piece of policy math is written over.
//!
//! The policies, the estimator and the adapter are generic over [`Real`] so that one
//! implementation serves three purposes: `f32` on the device, `f64` for finite-difference
//! and exact-enumeration tests on the host, and [`Dual`](crate::dual::Dual) numbers for
//! exact Hessian-vector products (forward-over-reverse). Every transcendental function
//! calls `libm` explicitly: std's inherent float methods may differ from `libm` in the last
//! bit, and the host must compute the same numbers as the device.

use core::fmt::Debug;
use core::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// A real scalar: `f32`, `f64` or a dual number over one of them.
///
/// Comparisons (`PartialOrd`) compare values only; for dual numbers the tangent is ignored,
/// which is what max-subtraction and clipping need.
pub trait Real:
    Copy
    + Debug
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// A constant (no tangent) from an `f32`.
    fn from_f32(x: f32) -> Self;
    /// A constant (no tangent) from an `f64`; rounds when `Self` is `f32`.
    fn from_f64(x: f64) -> Self;
    /// The value as `f32` (the tangent of a dual is dropped).
    fn to_f32(self) -> f32;
    /// The value as `f64` (the tangent of a dual is dropped).
    fn to_f64(self) -> f64;
    /// `e^self`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// True when the value (and, for duals, the tangent) is neither NaN nor infinite.
    fn is_finite(self) -> bool;
    /// The larger of two values (by value); NaN-free inputs assumed.
    #[inline]
    fn max(self, other: Self) -> Self {
        if other > self { other } else { self }
    }
    /// The smaller of two values (by value).
    #[inline]
    fn min(self, other: Self) -> Self {
        if other < self { other } else { self }
    }
    /// `self` limited to `[lo, hi]`.
    #[inline]
    fn clamp_to(self, lo: Self, hi: Self) -> Self {
        self.max(lo).min(hi)
    }
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline]
    fn from_f32(x: f32) -> Self {
        x
    }
    #[inline]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline]
    fn exp(self) -> Self {
        libm::expf(self)
    }
    #[inline]
    fn ln(self) -> Self {
        libm::logf(self)
    }
    #[inline]
    fn tanh(self) -> Self {
        libm::tanhf(self)
    }
    #[inline]
    fn sqrt(self) -> Self {
        libm::sqrtf(self)
    }
    #[inline]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline]
    fn from_f32(x: f32) -> Self {
        f64::from(x)
    }
    #[inline]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn exp(self) -> Self {
        libm::exp(self)
    }
    #[inline]
    fn ln(self) -> Self {
        libm::log(self)
    }
    #[inline]
    fn tanh(self) -> Self {
        libm::tanh(self)
    }
    #[inline]
    fn sqrt(self) -> Self {
        libm::sqrt(self)
    }
    #[inline]
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
}

/// `ln √(2π)`, the Gaussian log-density's constant, in `f64`.
pub const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_functions_are_libm() {
        assert_eq!(Real::exp(1.5f32).to_bits(), libm::expf(1.5).to_bits());
        assert_eq!(Real::tanh(-0.3f32).to_bits(), libm::tanhf(-0.3).to_bits());
        assert_eq!(Real::ln(7.0f64).to_bits(), libm::log(7.0).to_bits());
    }

    #[test]
    fn clamp_limits_both_sides() {
        assert_eq!(3.0f32.clamp_to(-1.0, 1.0), 1.0);
        assert_eq!((-3.0f64).clamp_to(-1.0, 1.0), -1.0);
        assert_eq!(0.25f32.clamp_to(-1.0, 1.0), 0.25);
    }

    #[test]
    fn ln_sqrt_2pi_is_right() {
        let want = 0.5 * libm::log(2.0 * core::f64::consts::PI);
        assert!((LN_SQRT_2PI - want).abs() < 1e-15);
    }
}
