//! Meta-gradient estimators and the meta-trainer.
//!
//! Every algorithm adapts each task the same way — the recipe's inner rule
//! `θ_k = θ_{k-1} + (α/n)·ĝ_k`, `ĝ_k = Σ_{τ∈D_k} Σ_h w_h ∇log π(a_h|s_h; θ_{k-1})`, with
//! `α/n = recipe.alpha_per_sample()` and fresh trajectories `D_k ~ θ_{k-1}` after every
//! step — and draws an outer batch `D_o ~ θ_ζ` giving `v = ĝ(θ_ζ, D_o)` (mean over
//! episodes) and the raw mean discounted return `Ĵ`. They differ only in the backward
//! recursion that turns `v` into the task's estimate (see [`sgmrl`], [`maml`], [`emaml`]).
//! The recursion sees an inner step only through [`StepOps`] — "Hessian-vector product and
//! score sum of the batch `D_k` at `θ_{k-1}`" — so the same code runs on the batched f32
//! kernels in training and on f64 in the exact-enumeration test.

pub mod baseline;
pub mod emaml;
pub mod inner;
pub mod maml;
pub mod sgmrl;
pub mod trainer;

pub use inner::{Adaptation, InnerStep, Needs, Outer};
pub use trainer::{
    ControlVariate, IterationStats, MetaConfig, MetaTrainer, TaskRun, TaskSummary, TrainError,
};

use crate::gemm::Scalar;

/// Whether the recursion uses the inner steps' Jacobians.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Order {
    /// Every `J_k = I` (FO-MAML; the paper's experiments ran SG-MRL this way).
    First,
    /// `J_kᵀ a = a + (α/n)·Σ_τ Σ_h w_h ∇²log π(θ_{k-1})·a`, as Hessian-vector products.
    Second,
}

/// The meta-gradient estimator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// SG-MRL: MAML's chain plus every inner batch's score sum times `Ĵ − b` (unbiased for
    /// `∇V_ζ` with [`Order::Second`]).
    SgMrl,
    /// MAML: the chain of Jacobians applied to `v`, no score terms (biased for `∇V_ζ`).
    Maml,
    /// E-MAML: MAML plus `(Ĵ − b)` times the first inner batch's score averaged over its
    /// episodes.
    EMaml,
    /// Plain multi-task policy gradient ("pretrain, then fine-tune"): no inner adaptation
    /// during training; the estimate is `v = ĝ(θ, D_o)`, the outer batch drawn at `θ`
    /// itself, which is unbiased for `∇ mean_i J_i(θ)`. The baseline that tells what
    /// meta-learning adds; the device adapts the result with the same recipe.
    MultiTask,
}

impl Algorithm {
    /// What inner step `step` (0-based) must keep for this estimator's recursion. With
    /// [`Order::Second`] the score terms are fused into the Hessian-vector products
    /// ([`StepOps::hvp_plus_score`]), so no score vector is formed.
    pub fn needs(self, order: Order, step: usize) -> Needs {
        let score_term = match self {
            Self::SgMrl => true,
            Self::Maml => false,
            Self::EMaml => step == 0,
            Self::MultiTask => false,
        };
        Needs {
            hvp: order == Order::Second,
            score: score_term && order == Order::First,
        }
    }

    /// Inner steps taken per task during training: none for [`Algorithm::MultiTask`] (its
    /// outer batch is drawn at `θ`), else the recipe's ζ.
    pub fn inner_steps(self, recipe_steps: u16) -> u16 {
        match self {
            Self::MultiTask => 0,
            Self::SgMrl | Self::Maml | Self::EMaml => recipe_steps,
        }
    }

    /// The estimate for one task: `steps` are `D_1..D_ζ` in order, `v` the outer gradient,
    /// `multiplier` the factor of the score terms (`Ĵ − b`; ignored by MAML).
    pub fn estimate<T: Scalar, S: StepOps<T>>(
        self,
        order: Order,
        alpha_per_sample: T,
        v: &[T],
        multiplier: T,
        steps: &mut [S],
    ) -> Vec<T> {
        match self {
            Self::SgMrl => sgmrl::estimate(order, alpha_per_sample, v, multiplier, steps),
            Self::Maml => maml::estimate(order, alpha_per_sample, v, steps),
            Self::EMaml => emaml::estimate(order, alpha_per_sample, v, multiplier, steps),
            // No inner steps were taken (`inner_steps`): `v` is the task's gradient.
            Self::MultiTask => maml::estimate(order, alpha_per_sample, v, steps),
        }
    }

    /// Short lowercase name (`sgmrl`, `maml`, `emaml`, `multitask`).
    pub fn name(self) -> &'static str {
        match self {
            Self::SgMrl => "sgmrl",
            Self::Maml => "maml",
            Self::EMaml => "emaml",
            Self::MultiTask => "multitask",
        }
    }
}

/// One inner step's batch `D_k`, held at the parameters `θ_{k-1}` it was drawn from, as
/// the backward recursion sees it.
pub trait StepOps<T> {
    /// Adds `Σ_{τ∈D_k} Σ_h w_h ∇²log π(a_h|s_h; θ_{k-1}) · dir` to `out`.
    fn hvp(&mut self, dir: &[T], out: &mut [T]);
    /// `s_k = Σ_{τ∈D_k} s(τ; θ_{k-1})`, the SUM over episodes of trajectory scores.
    fn score_sum(&self) -> &[T];
    /// `|D_k|`.
    fn episodes(&self) -> usize;
    /// Adds `alpha_per_sample·Σ w ∇²log π·dir + m·s_k` to `out`. The batched kernels fuse
    /// the two into one pass; this default composes [`StepOps::hvp`] and
    /// [`StepOps::score_sum`].
    fn hvp_plus_score(&mut self, dir: &[T], alpha_per_sample: T, m: T, out: &mut [T])
    where
        T: Scalar,
    {
        let mut hv = vec![T::ZERO; dir.len()];
        self.hvp(dir, &mut hv);
        axpy(alpha_per_sample, &hv, out);
        if m != T::ZERO {
            axpy(m, self.score_sum(), out);
        }
    }
}

/// One step of every recursion, `a ← J_kᵀ a + m·s_k`:
/// - [`Order::Second`]: `a + (α/n)·H_k a + m·s_k` (`J_k` is symmetric: `I` plus a weighted sum
///   of Hessians), in one fused pass;
/// - [`Order::First`]: `a + m·s_k` (`J_k = I`).
///
/// With `m = 0` it is MAML's `a ← J_kᵀ a` and the score is not touched.
pub fn chain_step<T: Scalar, S: StepOps<T>>(
    order: Order,
    alpha_per_sample: T,
    step: &mut S,
    m: T,
    a: &mut [T],
) {
    match order {
        Order::Second => {
            let mut out = a.to_vec();
            step.hvp_plus_score(a, alpha_per_sample, m, &mut out);
            a.copy_from_slice(&out);
        }
        Order::First => {
            if m != T::ZERO {
                axpy(m, step.score_sum(), a);
            }
        }
    }
}

/// `y ← y + α·x`.
pub fn axpy<T: Scalar>(alpha: T, x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), y.len());
    for (y, &x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// The control variate `b_i = mean_{j≠i} Ĵ_j` (leave-one-out over the meta-batch): it is
/// independent of task `i`'s own batches, so subtracting it from `Ĵ_i` keeps the estimate
/// unbiased. All zeros for a meta-batch of one task.
pub fn leave_one_out<T: Scalar>(returns: &[T]) -> Vec<T> {
    let n = returns.len();
    if n < 2 {
        return vec![T::ZERO; n];
    }
    let total = returns.iter().fold(T::ZERO, |s, &x| s + x);
    let others = T::from_f64((n - 1) as f64);
    returns.iter().map(|&x| (total - x) / others).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_one_out_excludes_self() {
        let b = leave_one_out(&[1.0f64, 2.0, 6.0]);
        assert_eq!(b, vec![4.0, 3.5, 1.5]);
        assert_eq!(leave_one_out(&[5.0f64]), vec![0.0]);
    }
}
