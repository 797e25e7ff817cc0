//! MAML (the paper's eq. 16): the chain of inner-step Jacobians applied to the outer
//! gradient, without the score terms — biased for `∇V_ζ`, since it ignores that the inner
//! batches were drawn from the parameters being differentiated.
//!
//! ```text
//! a ← v;   for k = ζ down to 1:  a ← J_kᵀ a      (J_k = I for FO-MAML)
//! ```

use super::{Order, StepOps, chain_step};
use crate::gemm::Scalar;

/// The task's MAML estimate; `steps` are `D_1..D_ζ` in order.
pub fn estimate<T: Scalar, S: StepOps<T>>(
    order: Order,
    alpha_per_sample: T,
    v: &[T],
    steps: &mut [S],
) -> Vec<T> {
    let mut a = v.to_vec();
    for step in steps.iter_mut().rev() {
        chain_step(order, alpha_per_sample, step, T::ZERO, &mut a);
    }
    a
}
