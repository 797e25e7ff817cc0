//! Diagonal Gaussian policy: the mean from a tanh MLP (or a linear map), and one learned,
//! state-independent log standard deviation per action dimension. The math is in
//! [`net`]; this type fixes the sizes at compile time and keeps scratch on the
//! stack.

use super::net::{self, delegate_to_net};
use super::{Distribution, Policy, PolicyShape};

/// Gaussian policy `u ~ N(μ(obs), diag(σ²))` with `μ` from a tanh MLP
/// `OBS → H1 → H2 → ACT` (`H2 = 0`: one hidden layer; `H1 = H2 = 0`: linear mean) and
/// `σ = exp(log_std)`, the last `ACT` parameters.
#[derive(Clone, Copy, Debug, Default)]
pub struct GaussianMlp<const OBS: usize, const H1: usize, const H2: usize, const ACT: usize>;

impl<const OBS: usize, const H1: usize, const H2: usize, const ACT: usize> Policy
    for GaussianMlp<OBS, H1, H2, ACT>
{
    const SHAPE: PolicyShape = net::const_shape(Distribution::Gaussian, OBS, [H1, H2], ACT);
    delegate_to_net!(H1, H2, ACT);
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::math::LN_SQRT_2PI;
    use crate::policy::PolicyError;
    use crate::policy::net::check;
    use crate::rng::Rng;

    type Lin = GaussianMlp<3, 0, 0, 2>;
    type Mlp1 = GaussianMlp<3, 5, 0, 2>;
    type Mlp2 = GaussianMlp<2, 4, 3, 3>;

    check::standard_policy_tests!(Lin, Mlp1, Mlp2);

    /// A one-dimensional linear Gaussian by hand: `W`, `b`, then `log_std`.
    #[test]
    fn layout_matches_hand_computation() {
        let params = [0.5, -1.0, 0.25, libm::log(2.0)];
        let obs = [2.0, 1.0];
        let p = GaussianMlp::<2, 0, 0, 1>;
        // μ = 0.5·2 − 1·1 + 0.25 = 0.25; σ = 2; u = 1.25 gives r = 0.5.
        let lp = p.log_prob(&params[..], &obs, &[1.25]).unwrap();
        let want = -0.125 - libm::log(2.0) - LN_SQRT_2PI;
        assert!((lp - want).abs() < 1e-12, "{lp} vs {want}");
        let mut mu = [0.0];
        p.mode(&params[..], &obs, &mut mu).unwrap();
        assert_eq!(mu, [0.25]);
    }

    /// Overflow of an increment `δ·x` (the log-probability is finite) and a σ that
    /// underflows to 0 are errors that leave `grad` untouched.
    #[test]
    fn overflow_is_an_error_and_grad_untouched() {
        let n = Lin::N_PARAMS;
        let err = PolicyError::NonFiniteOutput;
        let zeros = std::vec![0.0; n];
        let obs = [1e200, 0.0, 0.0];
        check::expect_error::<Lin>(&zeros, &obs, &[1.0, 1.0], 1e200, n, err);
        let mut tiny_sigma = zeros.clone();
        tiny_sigma[n - 1] = -800.0;
        check::expect_error::<Lin>(&tiny_sigma, &obs, &[1.0, 1.0], 1.0, n, err);
        let mut g = std::vec![0.0; n];
        let fine =
            Lin::default().accumulate_grad_log_prob(&zeros[..], &obs, &[1.0, 1.0], 1.0, &mut g);
        assert!(fine.is_ok());
    }

    /// The mode is the reference mean, where `log π = −Σ log σ − ACT·ln√(2π)`.
    #[test]
    fn mode_is_mean() {
        for seed in 0..5 {
            let pt = check::point::<Mlp2>(seed);
            let p = Mlp2::default();
            let mut mu = [0.0; 3];
            p.mode(&pt.params[..], &pt.obs, &mut mu).unwrap();
            let (want, off) = check::reference_head(&Mlp2::SHAPE, &pt.params, &pt.obs);
            for (m, w) in mu.iter().zip(&want) {
                assert!((m - w).abs() < 1e-12);
            }
            let lp = p.log_prob(&pt.params[..], &pt.obs, &mu).unwrap();
            let log_std_sum: f64 = pt.params[off..].iter().sum();
            assert!((lp - (-log_std_sum - 3.0 * LN_SQRT_2PI)).abs() < 1e-12);
        }
    }

    #[test]
    fn samples_have_the_right_mean_and_std() {
        let mut params = check::point::<Mlp1>(4).params;
        let n_p = params.len();
        params[n_p - 2] = -0.5;
        params[n_p - 1] = 0.7;
        let obs = [0.3, -0.2, 1.0];
        let p = Mlp1::default();
        let mut mu = [0.0; 2];
        p.mode(&params[..], &obs, &mut mu).unwrap();
        let n = 100_000;
        let mut rng = Rng::new(12);
        let mut u = [0.0; 2];
        let (mut s1, mut s2) = ([0.0f64; 2], [0.0f64; 2]);
        for _ in 0..n {
            p.sample(&params[..], &obs, &mut rng, &mut u).unwrap();
            for j in 0..2 {
                s1[j] += u[j];
                s2[j] += u[j] * u[j];
            }
        }
        let nf = f64::from(n);
        for j in 0..2 {
            let sigma = libm::exp(params[n_p - 2 + j]);
            let mean = s1[j] / nf;
            let std = libm::sqrt(s2[j] / nf - mean * mean);
            // Standard errors: σ/√n for the mean, about σ/√(2n) for the std.
            assert!(
                (mean - mu[j]).abs() < 5.0 * sigma / libm::sqrt(nf),
                "mean {mean} vs {}",
                mu[j]
            );
            assert!(
                (std - sigma).abs() < 5.0 * sigma / libm::sqrt(2.0 * nf),
                "std {std} vs {sigma}"
            );
        }
    }
}
