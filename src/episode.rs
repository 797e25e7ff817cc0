//! One episode as data: three slices (observations, actions on the wire, rewards), filled
//! by whoever sampled them. Every consumer ([`crate::advantage`], [`crate::estimator`], the
//! adapter) checks their shapes with the same rule.

use crate::estimator_error::{EstimatorError, Field};

/// One episode as data. Row `h` of `obs` and `actions` is step `h`; `rewards[h]` is the
/// reward received after action `h`. The fields are public so callers can build it from any
/// buffers; [`Episode::new`] checks the shapes, and every consumer checks them again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Episode<'a, T> {
    /// Observations, `[steps][obs_dim]` row-major.
    pub obs: &'a [T],
    /// Actions on the wire (see [`crate::policy`]), `[steps][action_width]` row-major.
    pub actions: &'a [T],
    /// Rewards, `[steps]`.
    pub rewards: &'a [T],
}

impl<'a, T> Episode<'a, T> {
    /// The episode, after checking that `obs` and `actions` have one row of the given width
    /// per reward.
    pub fn new(
        obs: &'a [T],
        actions: &'a [T],
        rewards: &'a [T],
        obs_dim: usize,
        action_width: usize,
    ) -> Result<Self, EstimatorError> {
        let ep = Self {
            obs,
            actions,
            rewards,
        };
        ep.check_shape(obs_dim, action_width)?;
        Ok(ep)
    }

    /// Number of steps (actions taken).
    pub const fn steps(&self) -> usize {
        self.rewards.len()
    }

    /// Checks that `obs` holds `steps·obs_dim` and `actions` `steps·action_width` scalars.
    /// Errors name episode 0.
    pub fn check_shape(&self, obs_dim: usize, action_width: usize) -> Result<(), EstimatorError> {
        if obs_dim == 0 || action_width == 0 {
            return Err(EstimatorError::ZeroWidth);
        }
        check_len(Field::Observations, self.steps(), obs_dim, self.obs.len())?;
        check_len(
            Field::Actions,
            self.steps(),
            action_width,
            self.actions.len(),
        )
    }
}

/// `Ok` when `got == steps·width`; otherwise a shape error naming `field` and episode 0.
pub(crate) fn check_len(
    field: Field,
    steps: usize,
    width: usize,
    got: usize,
) -> Result<(), EstimatorError> {
    match steps.checked_mul(width) {
        Some(expected) if expected == got => Ok(()),
        expected => Err(EstimatorError::Shape {
            episode: 0,
            field,
            expected: expected.unwrap_or(usize::MAX),
            got,
        }),
    }
}
