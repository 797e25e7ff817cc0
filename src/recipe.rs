//! The adaptation recipe: exactly how the device turns episodes into ζ gradient steps.
//!
//! Meta-training optimises `V_ζ(θ) = E[J(θ_ζ)]` for one particular inner update rule; the
//! recipe *is* that rule (step size, number of steps, batch size, horizon, discount,
//! advantage rule, loss scaling, action mapping). It travels inside the bundle so that the
//! objective trained on the laptop is the one realised on the robot.

use crate::name::{self, UnknownName};
use crate::policy::Distribution;

/// How the per-step weight of `∇ log π(a_h|s_h)` is formed from rewards.
///
/// `R^h = Σ_{t≥h} γ^t r_t` is the reward-to-go of the paper's eq. 4 (note `γ^t`, not
/// `γ^{t-h}`). Every rule is a function of the batch's rewards and states only (never of
/// θ), which keeps the SG-MRL estimator unbiased for the objective that uses it.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Advantage {
    /// `A_h = R^h`. Streams episode by episode: RAM for one episode.
    RewardToGo,
    /// `A_h = R^h − b_h` with a per-time-step table `b` (H values, in the units of `R^h`)
    /// carried in the bundle. Streams: RAM for one episode.
    TimeBaseline,
    /// `A_h = R^h − κ_n b_h` for the batch's `n`-th episode: the bundle's table `b` (as for
    /// `TimeBaseline`) scaled to this goal by `κ_n`, the least-squares fit
    /// `Σ R^h_j b_h / Σ b_h²` over the earlier episodes `j < n` of the same batch (`κ_1 =
    /// 1`). A per-goal baseline that streams: four scalars of RAM beyond one episode. With
    /// `normalize` the step is divided by the batch's root-mean-square advantage, applied
    /// once the batch is complete, so it streams too (no mean is subtracted).
    ScaledTimeBaseline,
    /// `A_h = R^h − mean_j R^h_j`, the mean over the batch's episodes at the same step
    /// (episodes that ended earlier count as 0). Needs the whole batch in RAM.
    BatchMeanBaseline,
    /// GAE(λ) (discounted with γ) on a linear feature baseline refitted to the batch's
    /// discounted returns (features `obs, obs², t/H', (t/H')², (t/H')³, 1` with `H' = 100`
    /// and `obs` clipped to ±10, as in the paper's code; ridge with retries). Discounts
    /// relative to each step (`γ^{t'−t}`), unlike the other rules: see
    /// [`crate::advantage`]. Needs the whole batch in RAM.
    LinearFeatureGae {
        /// GAE's λ in `[0, 1]`.
        lambda: f32,
    },
}

impl Advantage {
    /// One value of each rule, in declaration order (GAE with λ = 0).
    pub const RULES: [Self; 5] = [
        Self::RewardToGo,
        Self::TimeBaseline,
        Self::ScaledTimeBaseline,
        Self::BatchMeanBaseline,
        Self::LinearFeatureGae { lambda: 0.0 },
    ];
    /// [`Advantage::name`] of each of [`Advantage::RULES`].
    pub const NAMES: [&'static str; 5] = [
        Self::RULES[0].name(),
        Self::RULES[1].name(),
        Self::RULES[2].name(),
        Self::RULES[3].name(),
        Self::RULES[4].name(),
    ];

    /// The rule's name as users see it in flags, configuration files and JSON.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::RewardToGo => "reward-to-go",
            Self::TimeBaseline => "time-baseline",
            Self::ScaledTimeBaseline => "scaled-baseline",
            Self::BatchMeanBaseline => "batch-mean",
            Self::LinearFeatureGae { .. } => "gae",
        }
    }

    /// The rule named `name`; `lambda` is GAE's λ (ignored by the other rules). Not
    /// validated: [`Recipe::validate`] checks λ.
    pub fn from_name(name: &str, lambda: f32) -> Result<Self, UnknownName> {
        let rule = name::find(
            &Self::RULES,
            Self::name,
            name,
            "advantage rule",
            &Self::NAMES,
        )?;
        Ok(match rule {
            Self::LinearFeatureGae { .. } => Self::LinearFeatureGae { lambda },
            other => other,
        })
    }

    /// GAE's λ, for `LinearFeatureGae`.
    pub const fn lambda(&self) -> Option<f32> {
        match self {
            Self::LinearFeatureGae { lambda } => Some(*lambda),
            _ => None,
        }
    }

    /// Whether the rule reads the per-time-step table `b_h` carried in the bundle.
    pub const fn uses_table(&self) -> bool {
        matches!(self, Self::TimeBaseline | Self::ScaledTimeBaseline)
    }
}

/// What a batch's summed score terms are divided by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LossScale {
    /// Divide by the number of episodes `N` (the paper's eq. 5).
    PerEpisode,
    /// Divide by `N·H`, the mean over all time steps as in the paper's released code.
    PerStep,
}

impl LossScale {
    /// Every loss scaling, in declaration order.
    pub const ALL: [Self; 2] = [Self::PerEpisode, Self::PerStep];
    /// [`LossScale::name`] of each of [`LossScale::ALL`].
    pub const NAMES: [&'static str; 2] = [Self::ALL[0].name(), Self::ALL[1].name()];

    /// The name users see (`per-episode`, `per-step`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::PerEpisode => "per-episode",
            Self::PerStep => "per-step",
        }
    }
}

impl core::str::FromStr for LossScale {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        name::find(&Self::ALL, |l| l.name(), s, "loss scaling", &Self::NAMES)
    }
}

/// Maps a Gaussian policy's raw sample `u` to the action the environment receives:
/// `clamp(scale · u, −clip, clip)` per component. Ignored for softmax policies.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ActionMap {
    /// Multiplier applied to `u` (nav2d in the paper: 0.01).
    pub scale: f32,
    /// Symmetric limit after scaling; `None` leaves the action unclipped.
    pub clip: Option<f32>,
}

impl ActionMap {
    /// `scale = 1`, no clipping.
    pub const IDENTITY: Self = Self {
        scale: 1.0,
        clip: None,
    };

    /// The environment action for raw component `u`.
    #[inline]
    pub fn apply(&self, u: f32) -> f32 {
        let a = self.scale * u;
        match self.clip {
            // Not `f32::clamp`: its `min > max` assertion cannot be optimised away here, and
            // its panic message formats floats, which links ~20 KB of float formatting into
            // every firmware (a validated clip is finite and > 0, so NaN `a` stays NaN).
            Some(c) => {
                if a < -c {
                    -c
                } else if a > c {
                    c
                } else {
                    a
                }
            }
            None => a,
        }
    }
}

/// The adaptation recipe. Construct it, then call [`Recipe::validate`]; a parsed bundle's
/// recipe is always valid.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Recipe {
    /// Inner step size α (ascent: `θ ← θ + α ĝ`).
    pub alpha: f32,
    /// Number of adaptation steps ζ.
    pub steps: u16,
    /// Episodes per step `N` (the inner batch size).
    pub episodes: u16,
    /// Horizon `H`: the most actions in one episode.
    pub horizon: u16,
    /// Discount γ.
    pub gamma: f32,
    /// Advantage rule.
    pub advantage: Advantage,
    /// Normalise the batch's advantages to zero mean and unit standard deviation.
    pub normalize: bool,
    /// Loss scaling.
    pub loss: LossScale,
    /// Raw Gaussian sample → environment action.
    pub action: ActionMap,
}

/// Largest ζ a recipe may ask for.
pub const MAX_STEPS: u16 = 64;

/// Why a recipe is rejected. Each variant names the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RecipeError {
    /// α is not finite and positive.
    Alpha,
    /// ζ is 0 or above [`MAX_STEPS`].
    Steps,
    /// No episodes per step, or fewer than 2 for a rule that compares episodes.
    Episodes,
    /// Horizon 0.
    Horizon,
    /// γ outside `[0, 1]` or not finite.
    Gamma,
    /// GAE λ outside `[0, 1]` or not finite.
    Lambda,
    /// Action scale not finite and positive, or clip not finite and positive.
    ActionMap,
}

impl core::fmt::Display for RecipeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Alpha => "step size alpha must be finite and > 0",
            Self::Steps => "number of adaptation steps must be in 1..=64",
            Self::Episodes => {
                "episodes per step must be >= 1 (>= 2 for batch baselines or normalisation)"
            }
            Self::Horizon => "horizon must be >= 1",
            Self::Gamma => "discount gamma must be in [0, 1]",
            Self::Lambda => "GAE lambda must be in [0, 1]",
            Self::ActionMap => "action scale and clip must be finite and > 0",
        })
    }
}

const fn finite_pos(x: f32) -> bool {
    x.is_finite() && x > 0.0
}

const fn unit(x: f32) -> bool {
    x.is_finite() && x >= 0.0 && x <= 1.0
}

impl Recipe {
    /// Checks every field's range.
    pub const fn validate(&self) -> Result<(), RecipeError> {
        if !finite_pos(self.alpha) {
            return Err(RecipeError::Alpha);
        }
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err(RecipeError::Steps);
        }
        let min_episodes = if self.needs_batch() { 2 } else { 1 };
        if self.episodes < min_episodes {
            return Err(RecipeError::Episodes);
        }
        if self.horizon == 0 {
            return Err(RecipeError::Horizon);
        }
        if !unit(self.gamma) {
            return Err(RecipeError::Gamma);
        }
        if let Advantage::LinearFeatureGae { lambda } = self.advantage
            && !unit(lambda)
        {
            return Err(RecipeError::Lambda);
        }
        if !finite_pos(self.action.scale) {
            return Err(RecipeError::ActionMap);
        }
        if let Some(c) = self.action.clip
            && !finite_pos(c)
        {
            return Err(RecipeError::ActionMap);
        }
        Ok(())
    }

    /// True when the advantage rule needs every episode of a step before any gradient can
    /// be accumulated (so the device must buffer the whole batch).
    pub const fn needs_batch(&self) -> bool {
        // The scaled baseline normalises by a scale applied after the batch: it streams.
        (self.normalize && !matches!(self.advantage, Advantage::ScaledTimeBaseline))
            || matches!(
                self.advantage,
                Advantage::BatchMeanBaseline | Advantage::LinearFeatureGae { .. }
            )
    }

    /// `alpha_per_sample = α/n`: the factor a summed batch gradient is multiplied by before
    /// the step, α divided by the loss scaling's count of samples `n` (`N` episodes for
    /// [`LossScale::PerEpisode`], `N·H` steps for [`LossScale::PerStep`]).
    pub fn alpha_per_sample(&self) -> f32 {
        let n = f32::from(self.episodes);
        match self.loss {
            LossScale::PerEpisode => self.alpha / n,
            LossScale::PerStep => self.alpha / (n * f32::from(self.horizon)),
        }
    }
}

impl Distribution {
    /// Whether a recipe's [`ActionMap`] applies to this distribution.
    pub const fn uses_action_map(&self) -> bool {
        matches!(self, Distribution::Gaussian)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn valid_recipe_passes_and_each_field_is_checked() {
        assert_eq!(base().validate(), Ok(()));
        let cases: [(Recipe, RecipeError); 9] = [
            (
                Recipe {
                    alpha: f32::NAN,
                    ..base()
                },
                RecipeError::Alpha,
            ),
            (
                Recipe {
                    alpha: 0.0,
                    ..base()
                },
                RecipeError::Alpha,
            ),
            (Recipe { steps: 0, ..base() }, RecipeError::Steps),
            (
                Recipe {
                    episodes: 0,
                    ..base()
                },
                RecipeError::Episodes,
            ),
            (
                Recipe {
                    episodes: 1,
                    advantage: Advantage::BatchMeanBaseline,
                    ..base()
                },
                RecipeError::Episodes,
            ),
            (
                Recipe {
                    horizon: 0,
                    ..base()
                },
                RecipeError::Horizon,
            ),
            (
                Recipe {
                    gamma: 1.5,
                    ..base()
                },
                RecipeError::Gamma,
            ),
            (
                Recipe {
                    advantage: Advantage::LinearFeatureGae { lambda: -0.1 },
                    ..base()
                },
                RecipeError::Lambda,
            ),
            (
                Recipe {
                    action: ActionMap {
                        scale: 1.0,
                        clip: Some(f32::INFINITY),
                    },
                    ..base()
                },
                RecipeError::ActionMap,
            ),
        ];
        for (r, e) in cases {
            assert_eq!(r.validate(), Err(e), "{r:?}");
        }
    }

    #[test]
    fn names_parse_back_to_their_variant_and_unknown_names_are_typed_errors() {
        for rule in Advantage::RULES {
            let lambda = rule.lambda().map_or(0.0, |_| 0.5);
            let back = Advantage::from_name(rule.name(), lambda).unwrap();
            assert_eq!(back.name(), rule.name());
            assert_eq!(back.lambda(), rule.lambda().map(|_| 0.5));
        }
        assert_eq!(
            Advantage::NAMES,
            [
                "reward-to-go",
                "time-baseline",
                "scaled-baseline",
                "batch-mean",
                "gae"
            ]
        );
        let e = Advantage::from_name("gea", 0.9).unwrap_err();
        assert_eq!(e.what, "advantage rule");
        assert_eq!(e.expected, &Advantage::NAMES[..]);
        for loss in LossScale::ALL {
            assert_eq!(loss.name().parse::<LossScale>(), Ok(loss));
        }
        assert_eq!(LossScale::NAMES, ["per-episode", "per-step"]);
        assert!("per_step".parse::<LossScale>().is_err());
        for d in Distribution::ALL {
            assert_eq!(d.name().parse::<Distribution>(), Ok(d));
        }
        assert_eq!(Distribution::NAMES, ["softmax", "gaussian"]);
        assert!("Gaussian".parse::<Distribution>().is_err());
    }

    #[test]
    fn action_map_scales_then_clips() {
        let m = base().action;
        assert_eq!(m.apply(5.0), 0.01f32 * 5.0);
        assert_eq!(m.apply(-50.0), -0.1);
        assert_eq!(ActionMap::IDENTITY.apply(123.0), 123.0);
    }

    #[test]
    fn action_map_clips_exactly_as_clamp() {
        let xs = [
            -1e30,
            -0.5,
            -0.1,
            -0.0,
            0.0,
            0.05,
            0.1,
            7.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        for scale in [0.01, 1.0, 3.0] {
            let m = ActionMap {
                scale,
                clip: Some(0.1),
            };
            for u in xs {
                let want = (scale * u).clamp(-0.1, 0.1);
                assert_eq!(m.apply(u).to_bits(), want.to_bits(), "{scale} {u}");
            }
            assert!(m.apply(f32::NAN).is_nan());
        }
    }

    #[test]
    fn alpha_per_sample_per_step_divides_by_horizon() {
        let r = Recipe {
            loss: LossScale::PerStep,
            ..base()
        };
        assert!((r.alpha_per_sample() - 0.1 / 2000.0).abs() < 1e-12);
        assert!((base().alpha_per_sample() - 0.1 / 20.0).abs() < 1e-9);
    }
}
