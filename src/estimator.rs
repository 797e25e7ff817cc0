//! The estimator proper: the policy gradient `Σ_τ Σ_h w_h(τ) ∇log π(a_h | s_h; θ)` of one
//! batch of [`Episode`]s under a recipe's advantage rule.
//!
//! Episodes are data ([`crate::episode`]), filled by whoever sampled them — the device's
//! adapter, the host's sampler, or an exact-enumeration test that feeds every possible batch
//! with its probability. Nothing here samples.
//!
//! The estimate is unscaled (the caller multiplies by
//! [`Recipe::alpha_per_sample`](crate::recipe::Recipe::alpha_per_sample), α/n). The per-step weights `w_h`
//! come from [`Advantages`], which is a pure function of the
//! batch's rewards and observations — never of θ — so the host meta-trainer reuses it with
//! its own batched gradient kernels, and the SG-MRL estimator stays unbiased for the
//! objective that uses the same rule.
//!
//! The names this module used to hold (episodes, the advantage rules, the error) are
//! re-exported here so that `sgmrl::estimator::Episode` and the like keep working.

use crate::episode::check_len;
use crate::math::Real;
use crate::policy::{LenMismatch, ParamSource, Policy, PolicyError};
use crate::recipe::Recipe;

pub use crate::advantage::{
    Advantages, FEATURE_CLIP, NORMALIZE_STD_FLOOR, RIDGE, RIDGE_ATTEMPTS, RIDGE_GROWTH, TIME_SCALE,
    advantage_scratch_len, discounted_return, gae, linear_features, reward_to_go,
};
pub use crate::episode::Episode;
pub use crate::estimator_error::{EstimatorError, Field};

/// Scratch [`batch_gradient`] needs: [`advantage_scratch_len`] plus one per-step weight
/// buffer of `H` scalars.
pub const fn batch_gradient_scratch_len(recipe: &Recipe, obs_dim: usize) -> usize {
    let h = recipe.horizon as usize;
    advantage_scratch_len(recipe.advantage, h, obs_dim).saturating_add(h)
}

/// Adds `Σ_h weights[h] · ∇log π(a_h | s_h; θ)` for one episode to `grad` (`P` scalars) and
/// returns `Σ_h log π(a_h | s_h; θ)`. On error `grad` may hold part of the sum.
pub fn accumulate_episode_gradient<P: Policy, T: Real, S: ParamSource<T>>(
    policy: &P,
    params: S,
    episode: &Episode<'_, T>,
    weights: &[T],
    grad: &mut [T],
) -> Result<T, EstimatorError> {
    episode_gradient_by::<P, T>(episode, weights, |row, action, w| {
        policy.accumulate_grad_log_prob(params, row, action, w, grad)
    })
}

/// [`accumulate_episode_gradient`] with the policy's hidden-layer working memory in
/// `hidden` ([`Policy::accumulate_grad_log_prob_with`]: at least
/// [`PolicyShape::hidden_scratch_len`](crate::policy::PolicyShape::hidden_scratch_len)
/// scalars) instead of on the stack. Same result, same bits.
pub fn accumulate_episode_gradient_with<P: Policy, T: Real, S: ParamSource<T>>(
    policy: &P,
    params: S,
    episode: &Episode<'_, T>,
    weights: &[T],
    hidden: &mut [T],
    grad: &mut [T],
) -> Result<T, EstimatorError> {
    episode_gradient_by::<P, T>(episode, weights, |row, action, w| {
        policy.accumulate_grad_log_prob_with(params, row, action, w, hidden, grad)
    })
}

/// Checks the episode, then sums `step(s_h, a_h, weights[h])` (each step's log-probability)
/// over its steps in order.
fn episode_gradient_by<P: Policy, T: Real>(
    episode: &Episode<'_, T>,
    weights: &[T],
    mut step_fn: impl FnMut(&[T], &[T], T) -> Result<T, PolicyError>,
) -> Result<T, EstimatorError> {
    episode.check_shape(P::OBS_DIM, P::ACTION_WIDTH)?;
    check_len(Field::Weights, episode.steps(), 1, weights.len())?;
    let steps = episode
        .obs
        .chunks_exact(P::OBS_DIM)
        .zip(episode.actions.chunks_exact(P::ACTION_WIDTH))
        .zip(weights);
    let mut log_prob = T::ZERO;
    for (step, ((row, action), &w)) in steps.enumerate() {
        log_prob += step_fn(row, action, w).map_err(|error| EstimatorError::Policy {
            episode: 0,
            step,
            error,
        })?;
    }
    Ok(log_prob)
}

/// Summary of a batch, alongside its gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BatchStats<T> {
    /// Episodes in the batch (`N`).
    pub episodes: usize,
    /// Steps over all episodes.
    pub steps: usize,
    /// Mean undiscounted return `mean_τ Σ_t r_t` (what the paper reports).
    pub mean_return: T,
    /// Mean discounted return `Ĵ = mean_τ Σ_t γ^t r_t` (the SG-MRL estimator's `Jt`).
    pub mean_discounted_return: T,
}

/// The batch's summed policy gradient `Σ_τ Σ_h w_h ∇log π(a_h | s_h; θ)` under `recipe`'s
/// advantage rule, written into `grad` (overwritten; `P` scalars), times the rule's
/// [`Advantages::step_scale`] (1 but for a normalised `ScaledTimeBaseline`). The step is
/// `θ + recipe.alpha_per_sample() · grad`. `scratch` must hold
/// [`batch_gradient_scratch_len`] scalars. `baseline` is the `TimeBaseline` table (ignored by
/// other rules).
pub fn batch_gradient<P: Policy, T: Real, S: ParamSource<T>, B: ParamSource<T>>(
    policy: &P,
    params: S,
    recipe: &Recipe,
    baseline: Option<B>,
    episodes: &[Episode<'_, T>],
    grad: &mut [T],
    scratch: &mut [T],
) -> Result<BatchStats<T>, EstimatorError> {
    if grad.len() != P::N_PARAMS {
        return Err(EstimatorError::GradLength(LenMismatch {
            expected: P::N_PARAMS,
            got: grad.len(),
        }));
    }
    if episodes.is_empty() {
        return Err(EstimatorError::EmptyBatch);
    }
    recipe.validate().map_err(EstimatorError::Recipe)?;
    let h = usize::from(recipe.horizon);
    let adv_len = advantage_scratch_len(recipe.advantage, h, P::OBS_DIM);
    let short = EstimatorError::ScratchLength(LenMismatch {
        expected: batch_gradient_scratch_len(recipe, P::OBS_DIM),
        got: scratch.len(),
    });
    let (adv_scratch, rest) = scratch.split_at_mut_checked(adv_len).ok_or(short)?;
    let w_buf = rest.get_mut(..h).ok_or(short)?;
    for (j, ep) in episodes.iter().enumerate() {
        ep.check_shape(P::OBS_DIM, P::ACTION_WIDTH)
            .map_err(|e| e.in_episode(j))?;
    }
    let mut adv = Advantages::new(recipe, P::OBS_DIM, baseline, adv_scratch)?;
    adv.fit(episodes)?;
    grad.fill(T::ZERO);
    let gamma = T::from_f32(recipe.gamma);
    let (mut ret, mut disc, mut steps) = (T::ZERO, T::ZERO, 0);
    for (j, ep) in episodes.iter().enumerate() {
        let w = w_buf
            .get_mut(..ep.steps())
            .ok_or(EstimatorError::EpisodeTooLong {
                episode: j,
                steps: ep.steps(),
                horizon: h,
            })?;
        adv.weights(ep, w)?;
        accumulate_episode_gradient(policy, params, ep, w, grad).map_err(|e| e.in_episode(j))?;
        ret += ep.rewards.iter().fold(T::ZERO, |s, &r| s + r);
        disc += discounted_return(gamma, ep.rewards);
        steps += ep.steps();
    }
    // A streamed normalisation (`ScaledTimeBaseline`) scales the sum once the batch is in.
    let scale = adv.step_scale();
    if scale != T::ONE {
        for g in grad.iter_mut() {
            *g *= scale;
        }
    }
    let n = T::from_f64(episodes.len() as f64);
    Ok(BatchStats {
        episodes: episodes.len(),
        steps,
        mean_return: ret / n,
        mean_discounted_return: disc / n,
    })
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::policy::{Distribution, PolicyShape};
    use crate::recipe::{ActionMap, Advantage, LossScale};
    use crate::rng::Rng;

    /// A state-independent softmax over 3 actions with one logit per action:
    /// `log π(a) = θ_a − ln Σ_k e^{θ_k}`, `∇_θ log π(a) = e_a − softmax(θ)`. It takes
    /// (and ignores) 2-D observations.
    struct Bandit3;

    fn softmax3<T: Real, S: ParamSource<T>>(params: S) -> Result<[T; 3], PolicyError> {
        if params.len() != 3 {
            return Err(PolicyError::ParamLength(LenMismatch {
                expected: 3,
                got: params.len(),
            }));
        }
        let mut th = [T::ZERO; 3];
        for (t, v) in th.iter_mut().zip(params.values()) {
            *t = v;
        }
        let m = th[0].max(th[1]).max(th[2]);
        let e = th.map(|t| (t - m).exp());
        let z = e[0] + e[1] + e[2];
        Ok(e.map(|x| x / z))
    }

    fn check_io<T: Real>(obs: &[T], action: &[T]) -> Result<usize, PolicyError> {
        if obs.len() != 2 {
            return Err(PolicyError::ObsLength(LenMismatch {
                expected: 2,
                got: obs.len(),
            }));
        }
        if action.len() != 1 {
            return Err(PolicyError::ActionLength(LenMismatch {
                expected: 1,
                got: action.len(),
            }));
        }
        if !obs.iter().chain(action).all(|x| x.is_finite()) {
            return Err(PolicyError::NonFiniteInput);
        }
        let x = action[0].to_f64();
        match x as usize {
            i if i < 3 && i as f64 == x && x >= 0.0 => Ok(i),
            _ => Err(PolicyError::ActionOutOfRange),
        }
    }

    impl Policy for Bandit3 {
        const SHAPE: PolicyShape = PolicyShape {
            distribution: Distribution::Softmax,
            obs_dim: 2,
            hidden: [0, 0],
            act_dim: 3,
        };
        const N_PARAMS: usize = 3;

        fn sample<T: Real, S: ParamSource<T>>(
            &self,
            params: S,
            _obs: &[T],
            rng: &mut Rng,
            action: &mut [T],
        ) -> Result<(), PolicyError> {
            let p = softmax3(params)?;
            let i = rng.categorical(p.map(|x| x.to_f32())).unwrap_or(0);
            action[0] = T::from_f64(i as f64);
            Ok(())
        }

        fn mode<T: Real, S: ParamSource<T>>(
            &self,
            _params: S,
            _obs: &[T],
            _action: &mut [T],
        ) -> Result<(), PolicyError> {
            unimplemented!("not needed by the estimator")
        }

        fn log_prob<T: Real, S: ParamSource<T>>(
            &self,
            params: S,
            obs: &[T],
            action: &[T],
        ) -> Result<T, PolicyError> {
            let a = check_io(obs, action)?;
            Ok(softmax3(params)?[a].ln())
        }

        fn accumulate_grad_log_prob<T: Real, S: ParamSource<T>>(
            &self,
            params: S,
            obs: &[T],
            action: &[T],
            weight: T,
            grad: &mut [T],
        ) -> Result<T, PolicyError> {
            let a = check_io(obs, action)?;
            if grad.len() != 3 {
                return Err(PolicyError::GradLength(LenMismatch {
                    expected: 3,
                    got: grad.len(),
                }));
            }
            if !weight.is_finite() {
                return Err(PolicyError::NonFiniteInput);
            }
            let p = softmax3(params)?;
            for (k, (g, pk)) in grad.iter_mut().zip(p).enumerate() {
                let onehot = if k == a { T::ONE } else { T::ZERO };
                *g += weight * (onehot - pk);
            }
            Ok(p[a].ln())
        }
    }
    fn recipe(advantage: Advantage, normalize: bool, horizon: u16, gamma: f32) -> Recipe {
        Recipe {
            alpha: 0.1,
            steps: 1,
            episodes: 4,
            horizon,
            gamma,
            advantage,
            normalize,
            loss: LossScale::PerEpisode,
            action: ActionMap::IDENTITY,
        }
    }

    fn close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol, "{got:?} vs {want:?}");
        }
    }

    // Two episodes with 2-D observations: A = 3 steps, B = 1 step. γ = 0.5 keeps every
    // hand-computed number exact in binary.
    const OBS_A: [f64; 6] = [0.0, 0.0, 0.1, 0.0, 0.2, 0.1];
    const ACT_A: [f64; 3] = [0.0, 1.0, 2.0];
    const REW_A: [f64; 3] = [1.0, 2.0, 4.0];
    const OBS_B: [f64; 2] = [0.0, 0.0];
    const ACT_B: [f64; 1] = [0.0];
    const REW_B: [f64; 1] = [2.0];

    fn episodes() -> [Episode<'static, f64>; 2] {
        [
            Episode::new(&OBS_A, &ACT_A, &REW_A, 2, 1).unwrap(),
            Episode::new(&OBS_B, &ACT_B, &REW_B, 2, 1).unwrap(),
        ]
    }

    /// Weights of every episode under `r`, with the passes run.
    fn all_weights<B: ParamSource<f64>>(
        r: &Recipe,
        baseline: Option<B>,
        eps: &[Episode<'_, f64>],
    ) -> ([f64; 3], [f64; 1]) {
        let mut scratch = [0.0; 128];
        let mut adv = Advantages::new(r, 2, baseline, &mut scratch).unwrap();
        adv.fit(eps).unwrap();
        let (mut wa, mut wb) = ([0.0; 3], [0.0; 1]);
        adv.weights(&eps[0], &mut wa).unwrap();
        adv.weights(&eps[1], &mut wb).unwrap();
        (wa, wb)
    }

    #[test]
    fn batch_gradient_hand_numbers_at_the_uniform_policy() {
        // θ = 0: π = (⅓, ⅓, ⅓), ∇log π(a) = e_a − ⅓.
        // A: weights (3, 2, 1) on actions (0, 1, 2): (3, 2, 1) − 6·⅓ = (1, 0, −1).
        // B: weight 2 on action 0: 2·(⅔, −⅓, −⅓). Sum: (7/3, −2/3, −5/3).
        let r = recipe(Advantage::RewardToGo, false, 3, 0.5);
        let theta = [0.0f64; 3];
        let mut grad = [f64::NAN; 3];
        let mut scratch = [0.0; 3];
        let stats = batch_gradient(
            &Bandit3,
            &theta[..],
            &r,
            None::<&[f64]>,
            &episodes(),
            &mut grad,
            &mut scratch,
        )
        .unwrap();
        close(&grad, &[7.0 / 3.0, -2.0 / 3.0, -5.0 / 3.0], 1e-12);
        assert_eq!(
            stats,
            BatchStats {
                episodes: 2,
                steps: 4,
                // (1 + 2 + 4 + 2)/2 and (3 + 2)/2.
                mean_return: 4.5,
                mean_discounted_return: 2.5,
            }
        );
        assert_eq!(batch_gradient_scratch_len(&r, 2), 3);
    }

    #[test]
    fn batch_gradient_matches_the_formula_and_finite_differences() {
        let eps = episodes();
        let theta = [0.3f64, -0.2, 0.5];
        // (A linear-feature fit would interpolate these 4 steps: all weights ≈ 0.)
        let r = recipe(Advantage::BatchMeanBaseline, true, 3, 0.9);
        let mut scratch = [0.0f64; 128];
        let mut grad = [0.0; 3];
        batch_gradient(
            &Bandit3,
            &theta[..],
            &r,
            None::<&[f64]>,
            &eps,
            &mut grad,
            &mut scratch,
        )
        .unwrap();
        let (wa, wb) = all_weights(&r, None::<&[f64]>, &eps);
        let steps = [(&ACT_A[..], &wa[..]), (&ACT_B[..], &wb[..])];
        // Formula: Σ w (e_a − softmax(θ)).
        let p = softmax3::<f64, _>(&theta[..]).unwrap();
        let mut want = [0.0; 3];
        for (acts, ws) in steps {
            for (&a, &w) in acts.iter().zip(ws) {
                for k in 0..3 {
                    want[k] += w * (f64::from(u8::from(k == a as usize)) - p[k]);
                }
            }
        }
        close(&grad, &want, 1e-12);
        // Central differences of L(θ) = Σ w log π(a; θ) with the weights held fixed.
        let loss = |th: &[f64; 3]| -> f64 {
            let mut l = 0.0;
            for (acts, ws) in steps {
                for (&a, &w) in acts.iter().zip(ws) {
                    l += w * Bandit3.log_prob(&th[..], &[0.0, 0.0], &[a]).unwrap();
                }
            }
            l
        };
        let h = 1e-6;
        for k in 0..3 {
            let (mut tp, mut tm) = (theta, theta);
            tp[k] += h;
            tm[k] -= h;
            let fd = (loss(&tp) - loss(&tm)) / (2.0 * h);
            assert!((fd - grad[k]).abs() < 1e-7, "{k}: fd {fd} vs {}", grad[k]);
        }
        assert!(grad.iter().any(|g| g.abs() > 0.1), "{grad:?}");
    }

    #[test]
    fn batch_gradient_errors() {
        let r = recipe(Advantage::RewardToGo, false, 3, 0.5);
        let theta = [0.0f64; 3];
        let mut grad = [0.0; 3];
        let mut scratch = [0.0; 3];
        let none = None::<&[f64]>;
        let [a, b] = episodes();
        let bad_act = Episode {
            actions: &[5.0],
            ..b
        };
        assert_eq!(
            batch_gradient(
                &Bandit3,
                &theta[..],
                &r,
                none,
                &[a, bad_act],
                &mut grad,
                &mut scratch
            ),
            Err(EstimatorError::Policy {
                episode: 1,
                step: 0,
                error: PolicyError::ActionOutOfRange
            })
        );
        let bad_obs = Episode {
            obs: &[f64::NAN, 0.0],
            ..b
        };
        assert_eq!(
            batch_gradient(
                &Bandit3,
                &theta[..],
                &r,
                none,
                &[a, bad_obs],
                &mut grad,
                &mut scratch
            ),
            Err(EstimatorError::NonFiniteObservation {
                episode: 1,
                step: 0
            })
        );
        let bad_shape = Episode {
            actions: &[0.0, 1.0],
            ..b
        };
        assert!(matches!(
            batch_gradient(
                &Bandit3,
                &theta[..],
                &r,
                none,
                &[a, bad_shape],
                &mut grad,
                &mut scratch
            ),
            Err(EstimatorError::Shape {
                episode: 1,
                field: Field::Actions,
                ..
            })
        ));
        assert_eq!(
            batch_gradient(
                &Bandit3,
                &theta[..],
                &r,
                none,
                &[a, b],
                &mut grad[..2],
                &mut scratch
            ),
            Err(EstimatorError::GradLength(LenMismatch {
                expected: 3,
                got: 2
            }))
        );
        assert_eq!(
            batch_gradient(&Bandit3, &theta[..], &r, none, &[], &mut grad, &mut scratch),
            Err(EstimatorError::EmptyBatch)
        );
        assert_eq!(
            batch_gradient(
                &Bandit3,
                &theta[..],
                &r,
                none,
                &[a, b],
                &mut grad,
                &mut scratch[..2]
            ),
            Err(EstimatorError::ScratchLength(LenMismatch {
                expected: 3,
                got: 2
            }))
        );
        assert_eq!(
            batch_gradient(
                &Bandit3,
                &theta[..2],
                &r,
                none,
                &[a, b],
                &mut grad,
                &mut scratch
            ),
            Err(EstimatorError::Policy {
                episode: 0,
                step: 0,
                error: PolicyError::ParamLength(LenMismatch {
                    expected: 3,
                    got: 2
                })
            })
        );
    }

    #[test]
    fn episode_gradient_returns_the_log_likelihood() {
        let [a, _] = episodes();
        let theta = [0.0f64; 3];
        let mut grad = [0.0; 3];
        let lp =
            accumulate_episode_gradient(&Bandit3, &theta[..], &a, &[1.0; 3], &mut grad).unwrap();
        // Three actions at probability ⅓ each; unit weights give the score, which sums to
        // 0 over the three distinct actions.
        assert!((lp - 3.0 * (1.0f64 / 3.0).ln()).abs() < 1e-12);
        close(&grad, &[0.0; 3], 1e-12);
        assert!(matches!(
            accumulate_episode_gradient(&Bandit3, &theta[..], &a, &[1.0; 2], &mut grad),
            Err(EstimatorError::Shape {
                field: Field::Weights,
                ..
            })
        ));
    }

    /// With the hidden layers' scratch from the caller (whatever it held) the episode's
    /// gradient and log-likelihood are the same bits; a short scratch is the policy's error.
    #[test]
    fn episode_gradient_with_scratch_gives_the_same_bits() {
        use crate::policy::GaussianMlp;
        type Pol = GaussianMlp<2, 5, 3, 2>;
        let mut rng = Rng::new(4);
        let theta: std::vec::Vec<f32> = (0..Pol::N_PARAMS).map(|_| 0.3 * rng.normal()).collect();
        let obs: std::vec::Vec<f32> = (0..8).map(|_| rng.normal()).collect();
        let actions: std::vec::Vec<f32> = (0..8).map(|_| rng.normal()).collect();
        let weights = [0.5f32, -1.25, 2.0, 0.75];
        let ep = Episode {
            obs: &obs,
            actions: &actions,
            rewards: &weights,
        };
        let mut g = std::vec![0.0f32; Pol::N_PARAMS];
        let mut g_with = g.clone();
        let lp = accumulate_episode_gradient(&Pol::default(), &theta[..], &ep, &weights, &mut g)
            .unwrap();
        let mut hidden = std::vec![f32::NAN; Pol::SHAPE.hidden_scratch_len()];
        let lp_with = accumulate_episode_gradient_with(
            &Pol::default(),
            &theta[..],
            &ep,
            &weights,
            &mut hidden,
            &mut g_with,
        )
        .unwrap();
        assert_eq!(lp.to_bits(), lp_with.to_bits());
        assert!(
            g.iter()
                .zip(&g_with)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        assert!(g.iter().any(|&x| x != 0.0));
        let mut short = std::vec![0.0f32; Pol::SHAPE.hidden_scratch_len() - 1];
        assert!(matches!(
            accumulate_episode_gradient_with(
                &Pol::default(),
                &theta[..],
                &ep,
                &weights,
                &mut short,
                &mut g_with
            ),
            Err(EstimatorError::Policy {
                error: PolicyError::ScratchLength(_),
                ..
            })
        ));
    }
}
