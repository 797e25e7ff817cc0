//! The adapter's RAM, in `f32` scalars, split by purpose: what a recipe and a policy shape
//! ask of the one buffer an [`Adapter`](super::Adapter) is handed.

use crate::advantage::advantage_scratch_len;
use crate::policy::PolicyShape;
use crate::recipe::Recipe;

/// RAM requirement of an adapter, in `f32` scalars.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Memory {
    /// Adapted parameters (0 when ζ = 1: they are formed in the accumulator).
    pub params_floats: usize,
    /// Gradient accumulator (`P`).
    pub grad_floats: usize,
    /// Episode or batch buffer, with whatever the advantage rule needs.
    pub episode_floats: usize,
    /// The policy's hidden-layer activations and deltas while it acts or takes a gradient
    /// ([`PolicyShape::hidden_scratch_len`]: `2·(hidden[0] + hidden[1])`), here rather
    /// than on the stack, so that the adapter's stack does not grow with the network's
    /// width.
    pub scratch_floats: usize,
}

impl Memory {
    /// RAM the adapter needs for `shape` under `recipe`, split by purpose.
    ///
    /// The arithmetic saturates at `usize::MAX`: on a 32-bit target a recipe can ask for
    /// more scalars than `usize` counts (e.g. `N = H = 65535` with normalisation), and an
    /// adapter must then refuse it rather than size its buffers from a wrapped number.
    pub const fn for_recipe(recipe: &Recipe, shape: &PolicyShape) -> Self {
        let p = shape.n_params();
        let h = recipe.horizon as usize;
        let obs = shape.obs_dim as usize;
        // One step record: observation, action on the wire, reward (later its weight).
        let per_step = obs.saturating_add(shape.action_width()).saturating_add(1);
        let episodes_held = if recipe.needs_batch() {
            recipe.episodes as usize
        } else {
            1
        };
        // Batch rules also keep each episode's length.
        let mut episode_floats = episodes_held.saturating_mul(h).saturating_mul(per_step);
        if recipe.needs_batch() {
            episode_floats = episode_floats.saturating_add(recipe.episodes as usize);
        }
        // The rule's own statistics (per-step sums, or the baseline's normal equations);
        // weights overwrite the rewards in place, so no per-step weight buffer.
        episode_floats =
            episode_floats.saturating_add(advantage_scratch_len(recipe.advantage, h, obs));
        Self {
            // ζ = 1 forms θ₁ = θ₀ + (α/n)·g inside the accumulator (θ₀ is read from flash).
            params_floats: if recipe.steps > 1 { p } else { 0 },
            grad_floats: p,
            episode_floats,
            scratch_floats: shape.hidden_scratch_len(),
        }
    }

    /// Total scalars: the length of the buffer to hand to the adapter (saturating).
    pub const fn total_floats(&self) -> usize {
        self.params_floats
            .saturating_add(self.grad_floats)
            .saturating_add(self.episode_floats)
            .saturating_add(self.scratch_floats)
    }
    /// Total bytes (saturating).
    pub const fn total_bytes(&self) -> usize {
        self.total_floats().saturating_mul(4)
    }
    /// The yardstick of DESIGN.md: `P` floats plus one episode buffer (saturating).
    pub const fn lower_bound_floats(shape: &PolicyShape, horizon: u16) -> usize {
        let per_step = (shape.obs_dim as usize)
            .saturating_add(shape.action_width())
            .saturating_add(1);
        shape
            .n_params()
            .saturating_add((horizon as usize).saturating_mul(per_step))
    }
}

impl Recipe {
    /// [`Memory::for_recipe`]`(self, shape)`. Kept so that callers written before the RAM
    /// arithmetic moved out of `recipe` still build; new code names [`Memory`] directly.
    pub const fn memory(&self, shape: &PolicyShape) -> Memory {
        Memory::for_recipe(self, shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advantage::linear_feature_count;
    use crate::policy::Distribution;
    use crate::recipe::{ActionMap, Advantage, LossScale};

    fn base() -> Recipe {
        Recipe {
            alpha: 0.1,
            steps: 1,
            episodes: 20,
            horizon: 100,
            gamma: 0.99,
            advantage: Advantage::RewardToGo,
            normalize: false,
            loss: LossScale::PerEpisode,
            action: ActionMap {
                scale: 0.01,
                clip: Some(0.1),
            },
        }
    }

    #[test]
    fn memory_streams_for_one_step_and_buffers_batches() {
        let shape = PolicyShape {
            distribution: Distribution::Gaussian,
            obs_dim: 2,
            hidden: [16, 0],
            act_dim: 2,
        };
        let m = Memory::for_recipe(&base(), &shape);
        let p = shape.n_params();
        assert_eq!(m.params_floats, 0);
        assert_eq!(m.grad_floats, p);
        assert_eq!(m.episode_floats, 100 * (2 + 2 + 1));
        assert_eq!(m.scratch_floats, 2 * 16);
        // The streaming rule needs the lower bound and the hidden layers' scratch.
        assert_eq!(
            m.total_floats(),
            Memory::lower_bound_floats(&shape, 100) + 2 * 16
        );
        let two = Memory::for_recipe(&Recipe { steps: 2, ..base() }, &shape);
        assert_eq!(two.total_floats(), m.total_floats() + p);
        let batch = Memory::for_recipe(
            &Recipe {
                advantage: Advantage::BatchMeanBaseline,
                ..base()
            },
            &shape,
        );
        // Batch, episode lengths, and one running sum per step for the batch mean.
        assert_eq!(batch.episode_floats, 20 * 100 * 5 + 20 + 100);
        let gae = Memory::for_recipe(
            &Recipe {
                advantage: Advantage::LinearFeatureGae { lambda: 0.97 },
                ..base()
            },
            &shape,
        );
        // f = 2·2 + 4 = 8 features: f×f factor/Gram block + diagonal + rhs + coefficients.
        assert_eq!(gae.episode_floats, 20 * 100 * 5 + 20 + 8 * 8 + 3 * 8);
    }

    /// The per-goal scaled baseline streams, normalised or not: one episode and four
    /// running sums, within 1.2× the `P` + one-episode yardstick on the embedded task.
    #[test]
    fn scaled_baseline_streams_within_the_yardstick() {
        let shape = PolicyShape {
            distribution: Distribution::Gaussian,
            obs_dim: 2,
            hidden: [16, 0],
            act_dim: 2,
        };
        let r = Recipe {
            episodes: 20,
            horizon: 20,
            advantage: Advantage::ScaledTimeBaseline,
            normalize: true,
            ..base()
        };
        let m = Memory::for_recipe(&r, &shape);
        assert_eq!(m.episode_floats, 20 * 5 + 4);
        let bound = Memory::lower_bound_floats(&shape, 20);
        assert_eq!(m.total_floats(), bound + 4 + 2 * 16);
        // 880 bytes against 1.2 × 736.
        assert_eq!(m.total_bytes(), 880);
        assert!(m.total_floats() * 10 <= bound * 12);
    }

    #[test]
    fn episode_floats_hold_the_batch_and_the_advantage_scratch() {
        // A softmax policy over 3 actions on 2-D observations: one action scalar per step.
        let shape = PolicyShape {
            distribution: Distribution::Softmax,
            obs_dim: 2,
            hidden: [0, 0],
            act_dim: 3,
        };
        for rule in [
            Advantage::RewardToGo,
            Advantage::BatchMeanBaseline,
            Advantage::LinearFeatureGae { lambda: 0.9 },
        ] {
            let r = Recipe {
                episodes: 4,
                horizon: 7,
                advantage: rule,
                ..base()
            };
            let need = advantage_scratch_len(rule, 7, 2);
            // 4 episodes × 7 steps × (2 + 1 + 1), their lengths, and the rule's scratch.
            let m = Memory::for_recipe(&r, &shape);
            let batch = if r.needs_batch() {
                4 * 7 * 4 + 4
            } else {
                7 * 4
            };
            assert_eq!(m.episode_floats, batch + need, "{rule:?}");
        }
        assert_eq!(linear_feature_count(2), 8);
    }
}
