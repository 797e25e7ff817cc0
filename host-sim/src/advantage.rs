//! Per-row weights `w_h` of a batch under a recipe's advantage rule — the core's rule.
//!
//! A thin adapter: the episodes of a [`Rollouts`] are handed to the core's
//! [`sgmrl::estimator::Advantages`] as [`Episode`] views (every pass the rule needs, then
//! the weights), so the host weighs a batch exactly as the device's adapter does. The
//! weights come out in row order (episode-major), ready for the kernels.

use crate::gemm::Scalar;
use crate::rollouts::Rollouts;
use sgmrl::estimator::{Advantages, Episode, EstimatorError, advantage_scratch_len};
use sgmrl::recipe::Recipe;

/// One weight per row of `rollouts` under `recipe`'s advantage rule (and normalisation).
/// `TimeBaseline` needs [`weights_with_baseline`].
pub fn weights<T: Scalar>(
    recipe: &Recipe,
    rollouts: &Rollouts<T>,
) -> Result<Vec<T>, EstimatorError> {
    weights_with_baseline(recipe, None, rollouts)
}

/// [`weights`] with the per-time-step baseline table of `TimeBaseline` (`H` values).
pub fn weights_with_baseline<T: Scalar>(
    recipe: &Recipe,
    baseline: Option<&[T]>,
    rollouts: &Rollouts<T>,
) -> Result<Vec<T>, EstimatorError> {
    let obs_dim = rollouts.obs_dim();
    let width = rollouts.action_width();
    let mut scratch =
        vec![
            T::ZERO;
            advantage_scratch_len(recipe.advantage, usize::from(recipe.horizon), obs_dim)
        ];
    let episodes: Vec<Episode<'_, T>> = (0..rollouts.episodes())
        .map(|e| {
            let (obs, actions, rewards) = rollouts.episode(e);
            Episode::new(obs, actions, rewards, obs_dim, width).map_err(|err| err.in_episode(e))
        })
        .collect::<Result<_, _>>()?;
    let mut rule = Advantages::new(recipe, obs_dim, baseline, &mut scratch)?;
    rule.fit(&episodes)?;
    let mut w = vec![T::ZERO; rollouts.steps()];
    for (e, ep) in episodes.iter().enumerate() {
        rule.weights(ep, &mut w[rollouts.rows_of(e)])?;
    }
    // A streamed normalisation (`ScaledTimeBaseline`) scales the summed gradient once the
    // batch is in: the same as scaling every weight.
    let scale = rule.step_scale();
    if scale != T::ONE {
        for x in &mut w {
            *x *= scale;
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Net;
    use sgmrl::policy::{Distribution, PolicyShape};
    use sgmrl::recipe::{ActionMap, Advantage, LossScale};

    fn recipe(advantage: Advantage, normalize: bool) -> Recipe {
        Recipe {
            alpha: 0.1,
            steps: 1,
            episodes: 2,
            horizon: 3,
            gamma: 0.5,
            advantage,
            normalize,
            loss: LossScale::PerEpisode,
            action: ActionMap::IDENTITY,
        }
    }

    fn two_episodes() -> Rollouts<f64> {
        let net = Net::new(PolicyShape {
            distribution: Distribution::Softmax,
            obs_dim: 1,
            hidden: [0, 0],
            act_dim: 2,
        })
        .unwrap();
        Rollouts::from_episodes(
            &net,
            &[
                (
                    vec![0.1, 0.2, 0.3],
                    vec![0.0, 1.0, 0.0],
                    vec![1.0, 2.0, 4.0],
                ),
                (vec![0.5, 0.6], vec![1.0, 1.0], vec![-1.0, 3.0]),
            ],
        )
    }

    #[test]
    fn reward_to_go_uses_gamma_to_the_t() {
        let w = weights(&recipe(Advantage::RewardToGo, false), &two_episodes()).unwrap();
        // R^h = Σ_{t≥h} γ^t r_t with γ = 1/2.
        assert_eq!(w, vec![1.0 + 1.0 + 1.0, 1.0 + 1.0, 1.0, -1.0 + 1.5, 1.5]);
    }

    #[test]
    fn batch_rules_and_normalisation_see_every_episode() {
        let ro = two_episodes();
        let w = weights(&recipe(Advantage::BatchMeanBaseline, true), &ro).unwrap();
        let n = w.len() as f64;
        let mean = w.iter().sum::<f64>() / n;
        let var = w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        assert!(
            mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-6,
            "{mean} {var}"
        );
        let gae = weights(
            &recipe(Advantage::LinearFeatureGae { lambda: 0.97 }, false),
            &ro,
        );
        assert!(gae.unwrap().iter().all(|x| x.is_finite()));
    }
}
