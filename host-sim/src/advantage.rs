//! Per-row weights `w_h` of a batch under a recipe's advantage rule.
//!
//! TEMPORARY: only `RewardToGo` (with optional normalisation) is implemented here, until the
//! core's `estimator::Advantages` is merged; then this module becomes a thin adapter that
//! feeds the core's rule with [`Rollouts::episode`] views, so host and device weigh
//! episodes identically.

use crate::gemm::Scalar;
use crate::rollouts::Rollouts;
use sgmrl::recipe::{Advantage, Recipe};

/// Why weights could not be formed.
#[derive(Clone, Debug, PartialEq)]
pub enum AdvantageError {
    /// The rule is not available on the host yet.
    Unsupported(Advantage),
    /// A weight came out NaN or infinite.
    NonFinite,
}

impl core::fmt::Display for AdvantageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unsupported(a) => write!(f, "advantage rule {a:?} is not supported yet"),
            Self::NonFinite => f.write_str("non-finite advantage"),
        }
    }
}

impl std::error::Error for AdvantageError {}

/// One weight per row of `rollouts` (episode-major, like the rows).
pub fn weights<T: Scalar>(
    recipe: &Recipe,
    rollouts: &Rollouts<T>,
) -> Result<Vec<T>, AdvantageError> {
    let gamma = T::from_f32(recipe.gamma);
    let mut w = vec![T::ZERO; rollouts.steps()];
    match recipe.advantage {
        Advantage::RewardToGo => {
            for e in 0..rollouts.episodes() {
                let rows = rollouts.rows_of(e);
                let rewards = &rollouts.rewards()[rows.clone()];
                // R^h = Σ_{t≥h} γ^t r_t, built backwards.
                let mut disc = T::ONE;
                let mut discs = Vec::with_capacity(rewards.len());
                for _ in rewards {
                    discs.push(disc);
                    disc *= gamma;
                }
                let mut acc = T::ZERO;
                for (h, out) in w[rows].iter_mut().enumerate().rev() {
                    acc += discs[h] * rewards[h];
                    *out = acc;
                }
            }
        }
        other => return Err(AdvantageError::Unsupported(other)),
    }
    if recipe.normalize {
        let n = T::from_f64(w.len().max(1) as f64);
        let mean = w.iter().fold(T::ZERO, |s, &x| s + x) / n;
        let var = w.iter().fold(T::ZERO, |s, &x| s + (x - mean) * (x - mean)) / n;
        let std = var.sqrt().max(T::from_f64(1e-8));
        for x in &mut w {
            *x = (*x - mean) / std;
        }
    }
    if w.iter().any(|x| !x.is_finite()) {
        return Err(AdvantageError::NonFinite);
    }
    Ok(w)
}
