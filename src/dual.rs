//! Forward-mode dual numbers, so every policy gets exact Hessian-vector products.
//!
//! A [`Dual`] carries a value and a directional derivative. Running a policy's gradient
//! code with parameters `θ + ε·v` (each parameter a `Dual { re: θ_i, eps: v_i }`) yields
//! gradients whose `eps` parts are exactly `∇²(·) v` — the Hessian-vector product the
//! SG-MRL estimator needs — without forming a matrix and without a second hand-derived
//! pass. The host's fast batched kernels are tested against this reference.

use crate::math::Real;
use core::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// `re + eps·ε` with `ε² = 0`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Dual<T> {
    /// The value.
    pub re: T,
    /// The derivative along the seeded direction.
    pub eps: T,
}

impl<T: Real> Dual<T> {
    /// A dual with value `re` and tangent `eps`.
    #[inline]
    pub const fn new(re: T, eps: T) -> Self {
        Self { re, eps }
    }
    /// A constant: tangent zero.
    #[inline]
    pub const fn constant(re: T) -> Self {
        Self { re, eps: T::ZERO }
    }
}

impl<T: Real> PartialOrd for Dual<T> {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        self.re.partial_cmp(&other.re)
    }
}

impl<T: Real> Add for Dual<T> {
    type Output = Self;
    #[inline]
    fn add(self, o: Self) -> Self {
        Self::new(self.re + o.re, self.eps + o.eps)
    }
}
impl<T: Real> Sub for Dual<T> {
    type Output = Self;
    #[inline]
    fn sub(self, o: Self) -> Self {
        Self::new(self.re - o.re, self.eps - o.eps)
    }
}
impl<T: Real> Mul for Dual<T> {
    type Output = Self;
    #[inline]
    fn mul(self, o: Self) -> Self {
        Self::new(self.re * o.re, self.re * o.eps + self.eps * o.re)
    }
}
impl<T: Real> Div for Dual<T> {
    type Output = Self;
    #[inline]
    fn div(self, o: Self) -> Self {
        let q = self.re / o.re;
        Self::new(q, (self.eps - q * o.eps) / o.re)
    }
}
impl<T: Real> Neg for Dual<T> {
    type Output = Self;
    #[inline]
    fn neg(self) -> Self {
        Self::new(-self.re, -self.eps)
    }
}
impl<T: Real> AddAssign for Dual<T> {
    #[inline]
    fn add_assign(&mut self, o: Self) {
        *self = *self + o;
    }
}
impl<T: Real> SubAssign for Dual<T> {
    #[inline]
    fn sub_assign(&mut self, o: Self) {
        *self = *self - o;
    }
}
impl<T: Real> MulAssign for Dual<T> {
    #[inline]
    fn mul_assign(&mut self, o: Self) {
        *self = *self * o;
    }
}

impl<T: Real> Real for Dual<T> {
    const ZERO: Self = Self {
        re: T::ZERO,
        eps: T::ZERO,
    };
    const ONE: Self = Self {
        re: T::ONE,
        eps: T::ZERO,
    };
    #[inline]
    fn from_f32(x: f32) -> Self {
        Self::constant(T::from_f32(x))
    }
    #[inline]
    fn from_f64(x: f64) -> Self {
        Self::constant(T::from_f64(x))
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self.re.to_f32()
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self.re.to_f64()
    }
    #[inline]
    fn exp(self) -> Self {
        let e = self.re.exp();
        Self::new(e, e * self.eps)
    }
    #[inline]
    fn ln(self) -> Self {
        Self::new(self.re.ln(), self.eps / self.re)
    }
    #[inline]
    fn tanh(self) -> Self {
        let t = self.re.tanh();
        Self::new(t, (T::ONE - t * t) * self.eps)
    }
    #[inline]
    fn sqrt(self) -> Self {
        let s = self.re.sqrt();
        Self::new(s, self.eps / (s + s))
    }
    #[inline]
    fn is_finite(self) -> bool {
        self.re.is_finite() && self.eps.is_finite()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: f64) -> Dual<f64> {
        Dual::new(x, 1.0)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-7 * (1.0 + b.abs())
    }

    /// Each elementary function's tangent against a central finite difference.
    type Pair = (fn(Dual<f64>) -> Dual<f64>, fn(f64) -> f64);

    #[test]
    fn tangents_match_finite_differences() {
        let fs: [Pair; 6] = [
            (|x| x.exp(), libm::exp),
            (|x| x.ln(), libm::log),
            (|x| x.tanh(), libm::tanh),
            (|x| x.sqrt(), libm::sqrt),
            (|x| x * x / (x + Dual::constant(2.0)), |x| x * x / (x + 2.0)),
            (|x| -(x - Dual::constant(0.5)) * x, |x| -(x - 0.5) * x),
        ];
        for (fd, f) in fs {
            for x in [0.3, 1.1, 2.7] {
                let h = 1e-6;
                let want = (f(x + h) - f(x - h)) / (2.0 * h);
                let got = fd(d(x));
                assert!(close(got.re, f(x)));
                assert!(close(got.eps, want), "{} vs {}", got.eps, want);
            }
        }
    }

    #[test]
    fn comparisons_ignore_tangent() {
        assert!(Dual::new(1.0, -5.0) > Dual::new(0.5, 9.0));
        assert!(!Dual::new(1.0, f64::NAN).is_finite());
    }
}
