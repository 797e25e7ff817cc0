//! Seeded random streams and the samplers the policies and simulators use.
//!
//! One generator is xoshiro128++ (32-bit words: cheap on a Cortex-M0). Streams are named
//! by `(seed, stream)`: the host gives every task and episode its own stream, so results do
//! not depend on the number of threads, and the device reproduces the host's actions for the
//! same `(seed, stream)`. Uniform and Gaussian draws use only integer operations and
//! `libm`, so host and device produce bit-identical samples.

use rand_core::{Rng as _, SeedableRng};
use rand_xoshiro::Xoshiro128PlusPlus;

/// A seeded random stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    inner: Xoshiro128PlusPlus,
}

/// SplitMix64 finaliser: a bijective scrambler used to derive stream seeds.
const fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// The stream for `seed` alone (stream 0).
    pub fn new(seed: u64) -> Self {
        Self::stream(seed, 0)
    }

    /// Stream number `stream` of `seed`; distinct `(seed, stream)` pairs give independent-
    /// looking sequences.
    pub fn stream(seed: u64, stream: u64) -> Self {
        let key = splitmix64(seed) ^ splitmix64(stream ^ 0xD1B5_4A32_D192_ED03);
        Self {
            inner: Xoshiro128PlusPlus::seed_from_u64(splitmix64(key)),
        }
    }

    /// Derives the seed of sub-stream `index` from this stream's seed material, without
    /// advancing it (e.g. episode `index` of a task).
    pub fn derive(seed: u64, path: &[u64]) -> Self {
        let mut s = seed;
        for &p in path {
            s = splitmix64(s ^ splitmix64(p));
        }
        Self::stream(s, path.len() as u64)
    }

    /// 32 uniformly random bits.
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        self.inner.next_u32()
    }

    /// Uniform in `[0, 1)`, with 24 random bits (every value exactly representable).
    #[inline]
    pub fn uniform(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
    }

    /// Uniform in `[lo, hi)`.
    #[inline]
    pub fn uniform_in(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal draw (Marsaglia's polar method).
    ///
    /// Polar rather than Box–Muller because it needs no cosine: libm's `cosf` reduces its
    /// argument in `f64`, which drags several KB of double-precision soft-float code into
    /// Cortex-M firmware. One value per accepted pair (the second is discarded), so the
    /// stream position after `n` draws depends only on the stream, not on caching.
    pub fn normal(&mut self) -> f32 {
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            // Reject the origin (ln 0) and points outside the unit disc (~21 % of pairs).
            if s > 0.0 && s < 1.0 {
                return u * sqrt(-2.0 * ln(s) / s);
            }
        }
    }

    /// Index drawn from a categorical distribution given by non-negative `probs` that sum
    /// to about 1 (inverse CDF; rounding slack goes to the last index with positive mass).
    /// Returns `None` for an empty slice.
    pub fn categorical(&mut self, probs: impl IntoIterator<Item = f32>) -> Option<usize> {
        let u = self.uniform();
        let mut acc = 0.0f32;
        let mut last = None;
        for (i, p) in probs.into_iter().enumerate() {
            if p > 0.0 {
                last = Some(i);
            }
            acc += p;
            if u < acc && p > 0.0 {
                return Some(i);
            }
        }
        last
    }
}

#[cfg(not(feature = "micromath"))]
#[inline]
fn ln(x: f32) -> f32 {
    libm::logf(x)
}
#[cfg(not(feature = "micromath"))]
#[inline]
fn sqrt(x: f32) -> f32 {
    libm::sqrtf(x)
}
// micromath is approximate (a few % off) but far cheaper on FPU-less cores. Noise only:
// log-probabilities always use libm.
#[cfg(feature = "micromath")]
#[inline]
fn ln(x: f32) -> f32 {
    micromath::F32Ext::ln(x)
}
#[cfg(feature = "micromath")]
#[inline]
fn sqrt(x: f32) -> f32 {
    micromath::F32Ext::sqrt(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_stream_same_numbers_different_streams_differ() {
        let mut a = Rng::stream(7, 3);
        let mut b = Rng::stream(7, 3);
        let mut c = Rng::stream(7, 4);
        let xa: [u32; 4] = core::array::from_fn(|_| a.next_u32());
        let xb: [u32; 4] = core::array::from_fn(|_| b.next_u32());
        let xc: [u32; 4] = core::array::from_fn(|_| c.next_u32());
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
        assert_ne!(Rng::derive(1, &[2, 3]), Rng::derive(1, &[3, 2]));
    }

    /// Pins the streams so a change to seeding or sampling (which would break host↔device
    /// parity and reproducibility of logged runs) is noticed.
    #[test]
    fn streams_are_pinned() {
        let mut r = Rng::new(42);
        let words: [u32; 4] = core::array::from_fn(|_| r.next_u32());
        assert_eq!(words, [0x7b2c_febb, 0x49f6_6664, 0x0eed_8785, 0x085f_9941]);
        let mut r = Rng::derive(7, &[1, 2]);
        let normals: [u32; 3] = core::array::from_fn(|_| r.normal().to_bits());
        assert_eq!(normals, PINNED_NORMALS);
    }

    /// `Rng::derive(7, &[1, 2])`'s first three normal draws, as f32 bits.
    const PINNED_NORMALS: [u32; 3] = [0xbf5c_911a, 0x3d41_dde8, 0x3f47_6b22];

    #[test]
    fn uniform_in_range_and_normal_moments() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for _ in 0..n {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            let z = f64::from(r.normal());
            assert!(z.is_finite());
            s1 += z;
            s2 += z * z;
        }
        let mean = s1 / n as f64;
        let var = s2 / n as f64 - mean * mean;
        // Standard errors: 1/sqrt(n) ≈ 0.0022 for the mean, ≈ 0.0032 for the variance.
        assert!(mean.abs() < 0.012, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }

    #[test]
    fn categorical_frequencies() {
        let mut r = Rng::new(9);
        let p = [0.2f32, 0.0, 0.5, 0.3];
        let mut counts = [0u32; 4];
        let n = 100_000;
        for _ in 0..n {
            counts[r.categorical(p).unwrap()] += 1;
        }
        assert_eq!(counts[1], 0, "zero-probability action drawn");
        for (c, q) in counts.iter().zip(p) {
            let f = f64::from(*c) / f64::from(n);
            assert!((f - f64::from(q)).abs() < 0.01, "{f} vs {q}");
        }
        assert_eq!(r.categorical([]), None);
    }
}
