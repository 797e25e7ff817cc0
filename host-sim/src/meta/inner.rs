//! The adaptation a task goes through, with what the recursion needs kept per step.

use super::{StepOps, axpy};
use crate::gemm::Scalar;
use crate::kernels::Net;
use crate::rollouts::Rollouts;

/// What an inner step must keep for the backward recursion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs {
    /// Keep the batch (with its caches) for Hessian-vector products.
    pub hvp: bool,
    /// Compute and keep the score sum `s_k`.
    pub score: bool,
}

/// Inner step `k`: the batch `D_k`, drawn from `θ_{k-1}`, and its sums.
#[derive(Clone, Debug)]
pub struct InnerStep<T> {
    net: Net,
    params: Vec<T>,
    rollouts: Option<Rollouts<T>>,
    weights: Vec<T>,
    grad: Vec<T>,
    score: Vec<T>,
    episodes: usize,
    mean_return: T,
    env_steps: usize,
}

impl<T: Scalar> InnerStep<T> {
    /// `θ_{k-1}`.
    pub fn params(&self) -> &[T] {
        &self.params
    }
    /// `ĝ_k = Σ_τ Σ_h w_h ∇log π(θ_{k-1})` (unscaled).
    pub fn grad(&self) -> &[T] {
        &self.grad
    }
    /// Mean undiscounted return of `D_k`.
    pub fn mean_return(&self) -> T {
        self.mean_return
    }
    /// Steps taken in `D_k`.
    pub fn env_steps(&self) -> usize {
        self.env_steps
    }
}

impl<T: Scalar> StepOps<T> for InnerStep<T> {
    fn hvp(&mut self, dir: &[T], out: &mut [T]) {
        let ro = self
            .rollouts
            .as_mut()
            .expect("inner batch not kept: adapt with Needs { hvp: true, .. }");
        self.net
            .hvp(&self.params, ro.batch_mut(), &self.weights, dir, out);
    }
    fn score_sum(&self) -> &[T] {
        assert!(
            !self.score.is_empty(),
            "score not computed: adapt with Needs {{ score: true, .. }}"
        );
        &self.score
    }
    fn episodes(&self) -> usize {
        self.episodes
    }
    fn hvp_plus_score(&mut self, dir: &[T], alpha_per_sample: T, m: T, out: &mut [T]) {
        let ro = self
            .rollouts
            .as_mut()
            .expect("inner batch not kept: adapt with Needs { hvp: true, .. }");
        self.net.hvp_with_score(
            &self.params,
            ro.batch_mut(),
            &self.weights,
            dir,
            alpha_per_sample,
            m,
            out,
        );
    }
}

/// A task's adaptation `θ_0 → θ_1 → … → θ_ζ`, one [`Adaptation::step`] per inner batch.
#[derive(Clone, Debug)]
pub struct Adaptation<T> {
    net: Net,
    alpha_per_sample: T,
    theta: Vec<T>,
    steps: Vec<InnerStep<T>>,
}

impl<T: Scalar> Adaptation<T> {
    /// Starts at `θ_0`; every step moves by `alpha_per_sample · ĝ`
    /// (`recipe.alpha_per_sample()`, α/n).
    pub fn new(net: &Net, theta0: &[T], alpha_per_sample: T) -> Self {
        assert_eq!(theta0.len(), net.n_params());
        Self {
            net: net.clone(),
            alpha_per_sample,
            theta: theta0.to_vec(),
            steps: Vec::new(),
        }
    }

    /// The current parameters `θ_k` (after the steps taken so far).
    pub fn theta(&self) -> &[T] {
        &self.theta
    }

    /// The factor `α/n` of every inner step (`recipe.alpha_per_sample()`).
    pub fn alpha_per_sample(&self) -> T {
        self.alpha_per_sample
    }

    /// The steps taken, `D_1..D_k`.
    pub fn steps(&self) -> &[InnerStep<T>] {
        &self.steps
    }

    /// The steps, for the recursion's Hessian-vector products.
    pub fn steps_mut(&mut self) -> &mut [InnerStep<T>] {
        &mut self.steps
    }

    /// One inner step on `rollouts` (drawn from the current `θ_k`) with per-row `weights`
    /// from the recipe's advantage rule: `ĝ = Σ w ∇log π(θ_k)` and, if `needs.score`,
    /// `s = Σ ∇log π(θ_k)` in the same sweep; then `θ_{k+1} = θ_k + (α/n)·ĝ`.
    pub fn step(&mut self, mut rollouts: Rollouts<T>, weights: Vec<T>, needs: Needs) {
        let p = self.net.n_params();
        let mut grad = vec![T::ZERO; p];
        let mut score = if needs.score {
            vec![T::ZERO; p]
        } else {
            Vec::new()
        };
        self.net.accumulate(
            &self.theta,
            rollouts.batch_mut(),
            &weights,
            &mut grad,
            needs.score.then_some(score.as_mut_slice()),
        );
        let mut next = self.theta.clone();
        axpy(self.alpha_per_sample, &grad, &mut next);
        let params = core::mem::replace(&mut self.theta, next);
        let (episodes, mean_return, env_steps) = (
            rollouts.episodes(),
            rollouts.mean_return(),
            rollouts.steps(),
        );
        self.steps.push(InnerStep {
            net: self.net.clone(),
            params,
            rollouts: needs.hvp.then_some(rollouts),
            weights: if needs.hvp { weights } else { Vec::new() },
            grad,
            score,
            episodes,
            mean_return,
            env_steps,
        });
    }
}

/// What the outer batch `D_o ~ θ_ζ` contributes.
#[derive(Clone, Debug, PartialEq)]
pub struct Outer<T> {
    /// `v = ĝ(θ_ζ, D_o) = mean_τ Σ_h w_h ∇log π(θ_ζ)`.
    pub v: Vec<T>,
    /// `Ĵ = mean_τ Σ_t γ^t r_t`, raw (never baselined or normalised).
    pub jt: T,
    /// Mean undiscounted return of `D_o`.
    pub mean_return: T,
    /// Steps taken in `D_o`.
    pub env_steps: usize,
}

impl<T: Scalar> Outer<T> {
    /// `v` and `Ĵ` of `rollouts` at `theta` with per-row `weights` (an unbiased advantage
    /// in the units of the return, so that `v` and `Ĵ·s` add up; not normalised).
    pub fn new(
        net: &Net,
        theta: &[T],
        rollouts: &mut Rollouts<T>,
        weights: &[T],
        gamma: T,
    ) -> Self {
        let mut v = vec![T::ZERO; net.n_params()];
        net.accumulate(theta, rollouts.batch_mut(), weights, &mut v, None);
        let inv_n = T::ONE / T::from_f64(rollouts.episodes().max(1) as f64);
        for x in &mut v {
            *x *= inv_n;
        }
        Self {
            v,
            jt: rollouts.mean_discounted_return(gamma),
            mean_return: rollouts.mean_return(),
            env_steps: rollouts.steps(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advantage;
    use crate::envs::Nav2dFamily;
    use crate::sampler::{SampleSpec, sample};
    use sgmrl::estimator::{Episode, batch_gradient, batch_gradient_scratch_len};
    use sgmrl::policy::{GaussianMlp, Policy};
    use sgmrl::recipe::{Advantage, LossScale, Recipe};
    use sgmrl::rng::Rng;
    use sgmrl::sim::Nav2d;

    /// The host's inner step (batched f32 kernels, core advantages) is the device's: the
    /// core's per-sample `batch_gradient` on the same episodes under the same recipe, for
    /// a batch rule and for the streaming per-goal scaled table with its step scale.
    #[test]
    fn inner_step_is_the_cores_batch_gradient() {
        let gae = Recipe {
            alpha: 0.1,
            steps: 1,
            episodes: 6,
            horizon: 30,
            gamma: 0.99,
            advantage: Advantage::LinearFeatureGae { lambda: 0.97 },
            normalize: true,
            loss: LossScale::PerStep,
            action: Nav2d::PAPER_ACTION_MAP,
        };
        let scaled = Recipe {
            advantage: Advantage::ScaledTimeBaseline,
            loss: LossScale::PerEpisode,
            ..gae
        };
        let table: Vec<f32> = (0..30).map(|h| -0.02 * (30 - h) as f32).collect();
        inner_step_matches(&gae, None);
        inner_step_matches(&scaled, Some(&table));
    }

    fn inner_step_matches(recipe: &Recipe, table: Option<&[f32]>) {
        type P = GaussianMlp<2, 8, 8, 2>;
        let recipe = *recipe;
        let net = Net::new(P::SHAPE).unwrap();
        let theta = net.glorot_init(&mut Rng::new(4));
        let spec = SampleSpec {
            episodes: 6,
            horizon: 30,
            action_map: recipe.action,
            seed: 3,
            path: &[1],
        };
        let ro = sample(&Nav2dFamily, &[0.3, -0.2], &net, &theta, &spec).unwrap();
        let episodes: Vec<Episode<'_, f32>> = (0..ro.episodes())
            .map(|e| {
                let (o, a, r) = ro.episode(e);
                Episode::new(o, a, r, 2, 2).unwrap()
            })
            .collect();
        let mut want = vec![0.0f32; net.n_params()];
        let mut scratch = vec![0.0f32; batch_gradient_scratch_len(&recipe, 2)];
        batch_gradient(
            &P::default(),
            &theta[..],
            &recipe,
            table,
            &episodes,
            &mut want,
            &mut scratch,
        )
        .unwrap();
        let w = advantage::weights_with_baseline(&recipe, table, &ro).unwrap();
        let mut ad = Adaptation::new(&net, &theta, recipe.alpha_per_sample());
        ad.step(
            ro.clone(),
            w,
            Needs {
                hvp: false,
                score: false,
            },
        );
        let got = ad.steps()[0].grad();
        let num: f32 = got.iter().zip(&want).map(|(a, b)| (a - b) * (a - b)).sum();
        let den: f32 = want.iter().map(|b| b * b).sum();
        assert!(
            (num / den).sqrt() < 1e-4,
            "{:?}: rel. error {}",
            recipe.advantage,
            (num / den).sqrt()
        );
        for ((t1, t0), g) in ad.theta().iter().zip(&theta).zip(got) {
            assert_eq!(*t1, t0 + recipe.alpha_per_sample() * g);
        }
    }
}
