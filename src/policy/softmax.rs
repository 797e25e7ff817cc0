//! Categorical policies over `ACT` discrete actions: linear logits, or logits from a tanh
//! MLP. The math is in [`net`]; these types fix the sizes at compile time and
//! keep scratch on the stack.

use super::net::{self, delegate_to_net};
use super::{Distribution, Policy, PolicyShape};

/// Categorical policy with logits `W·obs + b` (`W` is `[ACT][OBS]`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SoftmaxLinear<const OBS: usize, const ACT: usize>;

/// Categorical policy whose logits come from a tanh MLP `OBS → H1 → H2 → ACT`; `H2 = 0`
/// means one hidden layer. `H1 = 0` does not compile (use [`SoftmaxLinear`]):
///
/// ```compile_fail
/// use sgmrl::policy::{Policy, SoftmaxMlp};
/// let _ = <SoftmaxMlp<2, 0, 0, 3> as Policy>::SHAPE;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SoftmaxMlp<const OBS: usize, const H1: usize, const H2: usize, const ACT: usize>;

impl<const OBS: usize, const ACT: usize> Policy for SoftmaxLinear<OBS, ACT> {
    const SHAPE: PolicyShape = net::const_shape(Distribution::Softmax, OBS, [0, 0], ACT);
    delegate_to_net!(0, 0, ACT);
}

impl<const OBS: usize, const H1: usize, const H2: usize, const ACT: usize> Policy
    for SoftmaxMlp<OBS, H1, H2, ACT>
{
    const SHAPE: PolicyShape = {
        assert!(H1 > 0, "SoftmaxMlp needs H1 > 0; use SoftmaxLinear");
        net::const_shape(Distribution::Softmax, OBS, [H1, H2], ACT)
    };
    delegate_to_net!(H1, H2, ACT);
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::math::Real;
    use crate::policy::PolicyError;
    use crate::policy::net::check;
    use crate::rng::Rng;
    use std::vec::Vec;

    type Lin = SoftmaxLinear<3, 4>;
    type Mlp1 = SoftmaxMlp<3, 5, 0, 4>;
    type Mlp2 = SoftmaxMlp<2, 4, 3, 3>;

    check::standard_policy_tests!(Lin, Mlp1, Mlp2);

    /// The module docs' `SoftmaxLinear<2, 3>` example, by hand: `W` row-major, then `b`.
    #[test]
    fn layout_matches_the_documented_example() {
        let params = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.1, 0.2, 0.3];
        let obs = [1.0, -1.0];
        let logits = [1.0 - 2.0 + 0.1, 3.0 - 4.0 + 0.2, 5.0 - 6.0 + 0.3];
        let sum: f64 = logits.iter().map(|&z| libm::exp(z)).sum();
        for (k, z) in logits.iter().enumerate() {
            let lp = SoftmaxLinear::<2, 3>
                .log_prob(&params[..], &obs, &[k as f64])
                .unwrap();
            assert!((lp - (z - libm::log(sum))).abs() < 1e-12);
        }
    }

    #[test]
    fn bad_index_is_out_of_range_and_grad_untouched() {
        let pt = check::point::<Mlp1>(1);
        for a in [-1.0, 4.0, 0.5, 3.000_001, 1e30] {
            let err = PolicyError::ActionOutOfRange;
            check::expect_error::<Mlp1>(&pt.params, &pt.obs, &[a], 1.0, pt.params.len(), err);
            assert_eq!(
                Mlp1::default().log_prob(&pt.params[..], &pt.obs, &[a]),
                Err(err)
            );
        }
    }

    /// Overflow in the forward pass, and in an increment `δ·x` only (the forward pass is
    /// finite), are both errors that leave `grad` untouched.
    #[test]
    fn overflow_is_an_error_and_grad_untouched() {
        let n = Lin::N_PARAMS;
        let huge_logits: Vec<f64> = (0..n).map(|i| if i < 12 { 1e10 } else { 0.0 }).collect();
        let err = PolicyError::NonFiniteOutput;
        check::expect_error::<Lin>(&huge_logits, &[1e300, 0.0, 0.0], &[0.0], 1.0, n, err);
        let zeros = std::vec![0.0; n];
        check::expect_error::<Lin>(&zeros, &[1e200, 0.0, 0.0], &[0.0], 1e200, n, err);
        let mut g = std::vec![0.0; n];
        let fine = Lin::default().accumulate_grad_log_prob(
            &zeros[..],
            &[1e200, 0.0, 0.0],
            &[0.0],
            1.0,
            &mut g,
        );
        assert!(fine.is_ok());
    }

    fn extreme_logits<T: Real>() {
        // Logits W·obs: [1e4, -1e4, -1e4] for obs [1, -1], [0, 0, 1e4] for obs [0, 1].
        let params: [T; 9] = [1e4, 0.0, -1e4, 0.0, 0.0, 1e4, 0.0, 0.0, 0.0].map(T::from_f64);
        let p = SoftmaxLinear::<2, 3>;
        for (obs, best) in [([1.0, -1.0], 0), ([0.0, 1.0], 2)] {
            let obs = obs.map(T::from_f64);
            let mut sum = 0.0;
            for k in 0..3 {
                let a = [T::from_f64(k as f64)];
                let lp = p.log_prob(&params[..], &obs, &a).unwrap().to_f64();
                assert!(lp.is_finite() && lp <= 0.0);
                if k == best {
                    assert!(lp > -1e-6, "{lp}");
                } else {
                    assert!(lp < -9e3, "{lp}");
                }
                sum += libm::exp(lp);
                let mut g = [T::ZERO; 9];
                p.accumulate_grad_log_prob(&params[..], &obs, &a, T::ONE, &mut g)
                    .unwrap();
                assert!(g.iter().all(|x| x.is_finite()));
            }
            assert!((sum - 1.0).abs() < 1e-6, "{sum}");
            let mut a = [T::ZERO];
            p.mode(&params[..], &obs, &mut a).unwrap();
            assert_eq!(a[0].to_f64(), best as f64);
        }
    }

    #[test]
    fn stable_at_extreme_logits() {
        extreme_logits::<f32>();
        extreme_logits::<f64>();
    }

    #[test]
    fn sample_frequencies_match_probabilities() {
        let pt = check::point::<Mlp1>(2);
        let params: Vec<f64> = pt.params.iter().map(|x| 2.0 * x).collect();
        let probs: Vec<f64> = (0..4)
            .map(|k| {
                libm::exp(
                    Mlp1::default()
                        .log_prob(&params[..], &pt.obs, &[k as f64])
                        .unwrap(),
                )
            })
            .collect();
        // Far from uniform, so a sampler ignoring the probabilities would fail.
        let spread = probs.iter().fold(0.0f64, |m, &p| m.max(p))
            - probs.iter().fold(1.0f64, |m, &p| m.min(p));
        assert!(spread > 0.2, "{probs:?}");
        let n = 100_000;
        let mut counts = [0u32; 4];
        let mut rng = Rng::new(6);
        let mut a = [0.0];
        for _ in 0..n {
            Mlp1::default()
                .sample(&params[..], &pt.obs, &mut rng, &mut a)
                .unwrap();
            counts[a[0] as usize] += 1;
        }
        for (c, p) in counts.iter().zip(&probs) {
            let f = f64::from(*c) / f64::from(n);
            let se = libm::sqrt(p * (1.0 - p) / f64::from(n));
            assert!((f - p).abs() < 5.0 * se, "frequency {f} vs probability {p}");
        }
    }

    #[test]
    fn mode_is_argmax() {
        for seed in 0..10 {
            let pt = check::point::<Mlp2>(seed);
            let p = Mlp2::default();
            let lps: Vec<f64> = (0..3)
                .map(|k| p.log_prob(&pt.params[..], &pt.obs, &[k as f64]).unwrap())
                .collect();
            let mut a = [0.0];
            p.mode(&pt.params[..], &pt.obs, &mut a).unwrap();
            assert!(
                lps.iter().all(|&lp| lp <= lps[a[0] as usize]),
                "{lps:?} {a:?}"
            );
        }
    }
}
