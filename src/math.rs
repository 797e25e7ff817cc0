//! The scalar every piece of policy math is written over.
//!
//! The policies, the estimator and the adapter are generic over [`Real`] so that one
//! implementation serves three purposes: `f32` on the device, `f64` for finite-difference
//! and exact-enumeration tests on the host, and [`Dual`](crate::dual::Dual) numbers for
//! exact Hessian-vector products (forward-over-reverse). Every transcendental function
//! calls `libm` explicitly: std's inherent float methods may differ from `libm` in the last
//! bit, and the host must compute the same numbers as the device. The one exception is
//! `f32` tanh, [`tanh_f32`]: plain `f32` arithmetic (a rational function), so just as
//! reproducible, and four times cheaper than `libm::tanhf` on a Cortex-M4F.

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
    /// `xs` as a slice of `Self` when `Self` is `f32` (`None` for other scalars): lets
    /// `f32` parameters read from flash share the slice code of parameters in RAM.
    #[inline]
    fn slice_from_f32(xs: &[f32]) -> Option<&[Self]> {
        let _ = xs;
        None
    }
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
        tanh_f32(self)
    }
    #[inline]
    fn sqrt(self) -> Self {
        libm::sqrtf(self)
    }
    #[inline]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    #[inline]
    fn slice_from_f32(xs: &[f32]) -> Option<&[Self]> {
        Some(xs)
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

/// `|x|` beyond which [`tanh_f32`] saturates: `tanh(7.9) = 1 − 2.7·10⁻⁷`, within 5 ulp of 1.
const TANH_CLAMP: f32 = 7.9;

/// `tanh x` for `f32` as the rational function `x·P(x²)/Q(x²)` (degree 9 over degree 8) of
/// `x` clamped to `±7.9`, evaluated by Horner's rule in `f32`.
///
/// Why not `libm::tanhf`: the hidden layers call tanh twice per unit and environment step
/// during adaptation (acting, then the gradient's forward pass), and libm's version (an
/// `expm1f` plus branches) takes ~96 instructions on a Cortex-M4F against ~20 for this one,
/// which is branch-free apart from the clamp and inlines into the activation loop.
///
/// Accuracy (the tests check it over every 7th `f32` in `[0, 12]`): at most 7 ulp from the
/// correctly rounded tanh (4·10⁻⁷ absolute); `|tanh_f32(x)| ≤ 1` for every `x` (so
/// `1 − a²` stays non-negative in backprop); odd exactly (`tanh_f32(−x) = −tanh_f32(x)`);
/// exactly `x` for `|x| < 3·10⁻⁴` (where `x³/3` is below half an ulp of `x`); NaN in, NaN
/// out; `±∞` gives `±0.99999982` (the value at the clamp). The coefficients are a minimax fit
/// of the relative error on `[0, 7.9]`, rounded to `f32`.
#[inline]
pub fn tanh_f32(x: f32) -> f32 {
    // The clamp to ±TANH_CLAMP as one comparison and a rarely taken branch (the same
    // values as `clamp_to`: NaN and ±0 pass unchanged).
    let x = if x.abs() > TANH_CLAMP {
        tanh_saturated(x)
    } else {
        x
    };
    tanh_rational(x)
}

/// [`tanh_f32`] of every element of `xs`, in place and bit for bit, with the clamp as a
/// select instead of a branch so that the loop vectorises: the host's batched kernels run
/// it on whole activation rows (the device keeps the branch, cheaper on a scalar core).
/// Inlined into the caller so that a caller compiled for wider vectors gets them.
#[inline(always)]
pub fn tanh_f32_in_place(xs: &mut [f32]) {
    for x in xs {
        let v = *x;
        let clamped = if v.abs() > TANH_CLAMP {
            TANH_CLAMP.copysign(v)
        } else {
            v
        };
        *x = tanh_rational(clamped);
    }
}

/// The rational function of [`tanh_f32`] on an already clamped `x`.
#[inline(always)]
fn tanh_rational(x: f32) -> f32 {
    const P: [f32; 4] = [
        1.345_062_4e-1,
        3.578_994_7e-3,
        2.202_323_4e-5,
        1.542_783_5e-8,
    ];
    const Q: [f32; 4] = [4.678_395e-1, 2.619_225e-2, 3.423_652_4e-4, 8.598_750_6e-7];
    let [p1, p2, p3, p4] = P;
    let [q1, q2, q3, q4] = Q;
    let t = x * x;
    let p = (((p4 * t + p3) * t + p2) * t + p1) * t + 1.0;
    let q = (((q4 * t + q3) * t + q2) * t + q1) * t + 1.0;
    x * p / q
}

/// `±TANH_CLAMP` with the sign of `x`: out of line, so that the common case is a branch
/// around it rather than a select computed for every value.
#[cold]
#[inline(never)]
fn tanh_saturated(x: f32) -> f32 {
    TANH_CLAMP.copysign(x)
}

/// `ln √(2π)`, the Gaussian log-density's constant, in `f64`.
pub const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_functions_are_libm_except_tanh() {
        assert_eq!(Real::exp(1.5f32).to_bits(), libm::expf(1.5).to_bits());
        assert_eq!(Real::tanh(-0.3f32).to_bits(), tanh_f32(-0.3).to_bits());
        assert_eq!(Real::tanh(-0.3f64).to_bits(), libm::tanh(-0.3).to_bits());
        assert_eq!(Real::ln(7.0f64).to_bits(), libm::log(7.0).to_bits());
    }

    /// Distance in ulps of `got` from the exact `want` (ulps of `want` rounded to f32).
    fn ulps(got: f32, want: f64) -> f64 {
        let w = want as f32;
        let ulp = f64::from(f32::from_bits(w.abs().to_bits() + 1) - w.abs());
        (f64::from(got) - want).abs() / ulp
    }

    #[test]
    fn tanh_f32_is_within_7_ulp_and_bounded_by_1() {
        let (lo, hi) = (2f32.powi(-70).to_bits(), 12.0f32.to_bits());
        let mut worst = 0.0f64;
        for bits in (lo..=hi)
            .step_by(7)
            .chain([0.5f32.to_bits(), 7.9f32.to_bits()])
        {
            let x = f32::from_bits(bits);
            let y = tanh_f32(x);
            worst = worst.max(ulps(y, libm::tanh(f64::from(x))));
            assert!(y <= 1.0, "tanh_f32({x}) = {y} > 1");
            assert_eq!((-y).to_bits(), tanh_f32(-x).to_bits(), "not odd at {x}");
        }
        assert!(worst <= 7.0, "max error {worst} ulp");
        // Near the clamp the fit ends just below 1: no value above it anywhere.
        let near: u32 = 7.0f32.to_bits();
        assert!((near..=TANH_CLAMP.to_bits()).all(|b| tanh_f32(f32::from_bits(b)) <= 1.0));
    }

    #[test]
    fn tanh_f32_edge_values() {
        assert_eq!(tanh_f32(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        for x in [1e-30, 1e-10, 2.9e-4, -2.9e-4] {
            assert_eq!(tanh_f32(x), x);
        }
        assert!(tanh_f32(f32::NAN).is_nan());
        let top = tanh_f32(TANH_CLAMP);
        assert!(top > 0.999_999_7 && top <= 1.0);
        assert_eq!(tanh_f32(f32::INFINITY), top);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -top);
        assert_eq!(tanh_f32(1e30), top);
    }

    /// The slice form is the scalar one bit for bit, on both sides of the clamp and on
    /// every special value (the host's training and the device must compute the same tanh).
    #[test]
    fn tanh_f32_in_place_is_tanh_f32_bit_for_bit() {
        let specials = [
            0.0,
            -0.0,
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            TANH_CLAMP,
            -TANH_CLAMP,
            f32::from_bits(TANH_CLAMP.to_bits() + 1),
            f32::MIN_POSITIVE,
            f32::MAX,
        ];
        // Bit patterns spread over every exponent and sign, then the special values.
        let mut xs = [0.0f32; 8192];
        for (i, x) in xs.iter_mut().enumerate() {
            *x = f32::from_bits((i as u32).wrapping_mul(524_287));
        }
        xs[..specials.len()].copy_from_slice(&specials);
        let want = xs.map(|x| tanh_f32(x).to_bits());
        tanh_f32_in_place(&mut xs);
        for (i, (got, want)) in xs.iter().map(|x| x.to_bits()).zip(want).enumerate() {
            // NaN payloads are not compared, only that a NaN stays a NaN.
            let both_nan = f32::from_bits(got).is_nan() && f32::from_bits(want).is_nan();
            assert!(
                got == want || both_nan,
                "element {i}: {got:#x} vs {want:#x}"
            );
        }
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
