//! SG-MRL: the unbiased estimate of `∇V_ζ(θ)` (estimator.md; NOT the paper's printed eq. 13).
//!
//! ```text
//! a ← v                                      v = ĝ(θ_ζ, D_o)
//! for k = ζ down to 1:
//!     a ← J_kᵀ a + (Ĵ − b)·s_k               J_kᵀ a = a + (α/n)·Σ_{τ∈D_k} Σ_h w_h ∇²log π(θ_{k-1})·a
//!                                            s_k = Σ_{τ∈D_k} s(τ; θ_{k-1})  (a SUM)
//! ```
//! `Ĵ` is the raw mean discounted return on `D_o` and `b` a multiplier independent of the
//! task's own batches (the leave-one-out control variate, or 0). The score terms account
//! for each batch's dependence on the parameters it was drawn from; each is chained through
//! the Jacobians of the later steps. [`Order::First`] sets every `J_k = I`:
//! `a = v + (Ĵ − b)·Σ_k s_k` (biased, cheap).
//!
//! Cost: with [`Order::Second`] each step is one fused pass of the batched kernels
//! ([`super::chain_step`]): the score's per-row deltas join the HVP's own last product per
//! layer, so full SG-MRL does the matrix products of second-order MAML and no more. With
//! [`Order::First`] there is no later pass over `D_k` to fold into: `s_k` is formed in the
//! inner step's gradient sweep ([`crate::kernels::Net::accumulate`], sharing its forward
//! and backward caches), at the price of one more weight-gradient product per layer over
//! `D_k` — the floor of first-order SG-MRL's cost over FO-MAML, which
//! `cargo bench -p sgmrl-host --bench meta_iteration` measures.

use super::{Order, StepOps, chain_step};
use crate::gemm::Scalar;

/// The task's SG-MRL estimate; `steps` are `D_1..D_ζ` in order, `multiplier = Ĵ − b`.
pub fn estimate<T: Scalar, S: StepOps<T>>(
    order: Order,
    alpha_per_sample: T,
    v: &[T],
    multiplier: T,
    steps: &mut [S],
) -> Vec<T> {
    let mut a = v.to_vec();
    for step in steps.iter_mut().rev() {
        chain_step(order, alpha_per_sample, step, multiplier, &mut a);
    }
    a
}
