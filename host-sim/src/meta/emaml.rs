//! E-MAML: MAML plus an exploration term on the first inner batch.
//!
//! ```text
//! a = MAML(v) + (Ĵ − b) · mean_{τ∈D_1} s(τ; θ_0)
//! ```
//! Choice (estimator.md): the paper's comparison code multiplied the pre-update score by
//! the post-update return and took a MEAN over the pre-update batch; we use the mean over
//! the episodes of `D_1` of the trajectory scores (`s_1 / |D_1|`), the raw return `Ĵ` (minus
//! the same control variate `b` as SG-MRL, if enabled), and only the first step's batch —
//! later batches get no term. It is therefore biased for `∇V_ζ` like MAML (SG-MRL uses the
//! SUM over every batch, chained through the later Jacobians).

use super::{Order, StepOps, chain_step, maml};
use crate::gemm::Scalar;

/// The task's E-MAML estimate; `steps` are `D_1..D_ζ` in order, `multiplier = Ĵ − b`.
pub fn estimate<T: Scalar, S: StepOps<T>>(
    order: Order,
    alpha_per_sample: T,
    v: &[T],
    multiplier: T,
    steps: &mut [S],
) -> Vec<T> {
    let Some((first, later)) = steps.split_first_mut() else {
        return v.to_vec();
    };
    let mut a = maml::estimate(order, alpha_per_sample, v, later);
    let n = T::from_f64(first.episodes().max(1) as f64);
    chain_step(order, alpha_per_sample, first, multiplier / n, &mut a);
    a
}
