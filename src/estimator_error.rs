//! Why an estimate (advantages or a policy gradient) could not be computed: one typed
//! error for everything that reads episodes, so that each names the episode and step.

use crate::policy::{LenMismatch, PolicyError};
use crate::recipe::RecipeError;

/// Which buffer of an episode had the wrong length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Field {
    /// The observations (`steps·obs_dim` expected).
    Observations,
    /// The actions (`steps·action_width` expected).
    Actions,
    /// A per-step output or weight buffer (`steps` expected).
    Weights,
}

/// Why an estimate could not be computed. Episode indices count from 0 in the order the
/// episodes were given (within the current pass for [`Advantages`](crate::advantage::Advantages)); functions that see a
/// single episode report episode 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EstimatorError {
    /// The recipe is invalid.
    Recipe(RecipeError),
    /// An observation or action width of 0.
    ZeroWidth,
    /// A buffer of an episode does not have one row per step.
    Shape {
        /// Episode index.
        episode: usize,
        /// The buffer.
        field: Field,
        /// Scalars required.
        expected: usize,
        /// Scalars given.
        got: usize,
    },
    /// An episode has more steps than the recipe's horizon.
    EpisodeTooLong {
        /// Episode index.
        episode: usize,
        /// Its steps.
        steps: usize,
        /// The horizon.
        horizon: usize,
    },
    /// A reward is NaN or infinite.
    NonFiniteReward {
        /// Episode index.
        episode: usize,
        /// Step index.
        step: usize,
    },
    /// An observation is NaN or infinite.
    NonFiniteObservation {
        /// Episode index.
        episode: usize,
        /// Step index.
        step: usize,
    },
    /// An advantage or weight overflowed (finite inputs of enormous size).
    NonFiniteAdvantage {
        /// Episode index.
        episode: usize,
        /// Step index.
        step: usize,
    },
    /// `TimeBaseline` was asked for without a baseline table.
    MissingBaseline,
    /// The baseline table does not hold `H` values.
    BaselineLength(LenMismatch),
    /// A baseline table value is NaN or infinite.
    NonFiniteBaseline {
        /// Index into the table.
        step: usize,
    },
    /// The scratch buffer is shorter than [`advantage_scratch_len`](crate::advantage::advantage_scratch_len) (or
    /// [`batch_gradient_scratch_len`](crate::estimator::batch_gradient_scratch_len)).
    ScratchLength(LenMismatch),
    /// The linear baseline's normal equations could not be solved with any ridge
    /// coefficient tried ([`RIDGE_ATTEMPTS`](crate::advantage::RIDGE_ATTEMPTS) of them).
    SingularBaselineFit,
    /// A batch rule or [`batch_gradient`](crate::estimator::batch_gradient) was given no episodes.
    EmptyBatch,
    /// [`Advantages`](crate::advantage::Advantages) was used out of order: `weights` before the passes were finished, or
    /// `observe`/`finish_pass` after.
    OutOfOrder,
    /// The gradient buffer is not `P` long.
    GradLength(LenMismatch),
    /// The policy rejected a step.
    Policy {
        /// Episode index.
        episode: usize,
        /// Step index.
        step: usize,
        /// The policy's error.
        error: PolicyError,
    },
}

impl EstimatorError {
    /// The same error, naming episode `index` (for errors that name one).
    #[must_use]
    pub fn in_episode(self, index: usize) -> Self {
        match self {
            Self::Shape {
                field,
                expected,
                got,
                ..
            } => Self::Shape {
                episode: index,
                field,
                expected,
                got,
            },
            Self::EpisodeTooLong { steps, horizon, .. } => Self::EpisodeTooLong {
                episode: index,
                steps,
                horizon,
            },
            Self::NonFiniteReward { step, .. } => Self::NonFiniteReward {
                episode: index,
                step,
            },
            Self::NonFiniteObservation { step, .. } => Self::NonFiniteObservation {
                episode: index,
                step,
            },
            Self::NonFiniteAdvantage { step, .. } => Self::NonFiniteAdvantage {
                episode: index,
                step,
            },
            Self::Policy { step, error, .. } => Self::Policy {
                episode: index,
                step,
                error,
            },
            other => other,
        }
    }
}

impl core::fmt::Display for EstimatorError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Recipe(e) => write!(f, "invalid recipe: {e}"),
            Self::ZeroWidth => f.write_str("observation and action widths must be >= 1"),
            Self::Shape {
                episode,
                field,
                expected,
                got,
            } => {
                let name = match field {
                    Field::Observations => "observations",
                    Field::Actions => "actions",
                    Field::Weights => "per-step weights",
                };
                write!(
                    f,
                    "episode {episode}: {name} must hold {expected} scalars, got {got}"
                )
            }
            Self::EpisodeTooLong {
                episode,
                steps,
                horizon,
            } => write!(
                f,
                "episode {episode} has {steps} steps, more than the horizon {horizon}"
            ),
            Self::NonFiniteReward { episode, step } => {
                write!(f, "episode {episode}, step {step}: non-finite reward")
            }
            Self::NonFiniteObservation { episode, step } => {
                write!(f, "episode {episode}, step {step}: non-finite observation")
            }
            Self::NonFiniteAdvantage { episode, step } => {
                write!(f, "episode {episode}, step {step}: advantage overflowed")
            }
            Self::MissingBaseline => f.write_str("time baseline rule needs a baseline table"),
            Self::BaselineLength(LenMismatch { expected, got }) => {
                write!(f, "baseline table must hold {expected} values, got {got}")
            }
            Self::NonFiniteBaseline { step } => {
                write!(f, "baseline table value {step} is not finite")
            }
            Self::ScratchLength(LenMismatch { expected, got }) => {
                write!(f, "scratch must hold {expected} scalars, got {got}")
            }
            Self::SingularBaselineFit => {
                f.write_str("linear baseline fit failed for every ridge coefficient tried")
            }
            Self::EmptyBatch => f.write_str("batch has no episodes"),
            Self::OutOfOrder => f.write_str("advantage passes used out of order"),
            Self::GradLength(LenMismatch { expected, got }) => {
                write!(f, "gradient buffer must hold {expected} scalars, got {got}")
            }
            Self::Policy {
                episode,
                step,
                error,
            } => write!(f, "episode {episode}, step {step}: {error}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EstimatorError {}
