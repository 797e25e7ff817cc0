//! 2D navigation with 9 discrete moves, for softmax policies.
//!
//! Same square, start, goals, reward and termination as [`Nav2d`]; the action is one
//! scalar holding an index: 0 = stay, `1..=8` = a step of length 0.1 along heading
//! `(index − 1)·45°`, counter-clockwise from `+x`. Diagonal moves have components
//! `0.1/√2`, so most goals cannot be hit within the 0.01 tolerance and episodes usually
//! run to the horizon; the reward still measures how close the point gets.
//!
//! An index that is not an integer in `0..9` (or NaN) means "stay". The simulator is
//! infallible by design: a softmax policy only samples valid indices, and an invalid one
//! is rejected where it matters — the policy's log-probability returns
//! `PolicyError::ActionOutOfRange` when the estimator evaluates it — while "do not move"
//! is the safe physical response and keeps samplers free of an error path.

use super::Nav2d;
use crate::env::{Env, Transition};
use crate::rng::Rng;
use core::convert::Infallible;

const DIAG: f32 = Nav2dDiscrete::STEP * core::f32::consts::FRAC_1_SQRT_2;

/// One discrete 2D navigation task.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Nav2dDiscrete {
    inner: Nav2d,
}

impl Nav2dDiscrete {
    /// Number of actions.
    pub const N_ACTIONS: usize = 9;
    /// Length of every move but "stay".
    pub const STEP: f32 = 0.1;
    /// Displacement `(dx, dy)` of each action index.
    pub const MOVES: [[f32; 2]; 9] = [
        [0.0, 0.0],
        [Self::STEP, 0.0],
        [DIAG, DIAG],
        [0.0, Self::STEP],
        [-DIAG, DIAG],
        [-Self::STEP, 0.0],
        [-DIAG, -DIAG],
        [0.0, -Self::STEP],
        [DIAG, -DIAG],
    ];

    /// The task with goal `goal`, positioned at the origin.
    pub const fn new(goal: [f32; 2]) -> Self {
        Self {
            inner: Nav2d::new(goal),
        }
    }

    /// A goal drawn uniformly from the square (the same distribution as [`Nav2d`]).
    pub fn sample_goal(rng: &mut Rng) -> [f32; 2] {
        Nav2d::sample_goal(rng)
    }

    /// The goal.
    pub const fn goal(&self) -> [f32; 2] {
        self.inner.goal()
    }

    /// The current position.
    pub const fn position(&self) -> [f32; 2] {
        self.inner.position()
    }

    /// The action index held in `x`, if it is an integer in `0..N_ACTIONS`.
    pub fn decode_action(x: f32) -> Option<usize> {
        // Casting first and comparing back rejects NaN, fractions and out-of-range values.
        let i = x as usize;
        (x >= 0.0 && i < Self::N_ACTIONS && i as f32 == x).then_some(i)
    }
}

/// The observation is the position (2 scalars, only the first 2 of `obs` are written); the
/// action is `action[0]` (an empty or invalid action means "stay").
impl Env for Nav2dDiscrete {
    type Error = Infallible;

    fn obs_dim(&self) -> usize {
        Nav2d::OBS_DIM
    }

    fn action_width(&self) -> usize {
        1
    }

    fn reset(&mut self, obs: &mut [f32]) -> Result<(), Infallible> {
        self.inner.reset(obs)
    }

    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> Result<Transition, Infallible> {
        let delta = action
            .first()
            .and_then(|&x| Self::decode_action(x))
            .and_then(|i| Self::MOVES.get(i).copied())
            .unwrap_or([0.0; 2]);
        self.inner.step(&delta, obs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(env: &mut Nav2dDiscrete, a: f32) -> ([f32; 2], Transition) {
        let mut obs = [f32::NAN; 2];
        let Ok(t) = env.step(&[a], &mut obs);
        (obs, t)
    }

    #[test]
    fn each_index_moves_along_its_heading() {
        for i in 0..9 {
            let mut env = Nav2dDiscrete::new([0.3, 0.3]);
            let mut obs = [f32::NAN; 2];
            let Ok(()) = env.reset(&mut obs);
            assert_eq!(obs, [0.0, 0.0]);
            let (obs, _) = step(&mut env, i as f32);
            let want = if i == 0 {
                [0.0, 0.0]
            } else {
                let th = (i - 1) as f64 * core::f64::consts::FRAC_PI_4;
                [0.1 * libm::cos(th), 0.1 * libm::sin(th)]
            };
            for (o, w) in obs.iter().zip(want) {
                assert!(
                    (f64::from(*o) - w).abs() < 1e-7,
                    "index {i}: {obs:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn invalid_indices_stay() {
        for bad in [9.0, -1.0, 1.5, f32::NAN, f32::INFINITY, 1e10] {
            assert_eq!(Nav2dDiscrete::decode_action(bad), None, "{bad}");
            let mut env = Nav2dDiscrete::new([0.3, 0.3]);
            let (obs, t) = step(&mut env, bad);
            assert_eq!(obs, [0.0, 0.0]);
            assert!((t.reward + 0.3 * core::f32::consts::SQRT_2).abs() < 1e-6);
        }
        let mut env = Nav2dDiscrete::new([0.3, 0.3]);
        let mut obs = [f32::NAN; 2];
        let Ok(_) = env.step(&[], &mut obs);
        assert_eq!(obs, [0.0, 0.0]);
        assert_eq!(Nav2dDiscrete::decode_action(8.0), Some(8));
        assert_eq!(Nav2dDiscrete::decode_action(0.0), Some(0));
        assert_eq!(Nav2dDiscrete::decode_action(-0.0), Some(0));
    }

    #[test]
    fn walls_and_termination_match_nav2d() {
        let mut env = Nav2dDiscrete::new([0.1, 0.0]);
        let (obs, t) = step(&mut env, 1.0);
        assert_eq!(obs, [0.1, 0.0]);
        assert!(t.done);
        assert_eq!(t.reward, 0.0);
        let mut env = Nav2dDiscrete::new([0.0, 0.0]);
        let mut obs = [0.0; 2];
        for _ in 0..8 {
            (obs, _) = step(&mut env, 6.0);
        }
        assert_eq!(obs, [-0.5, -0.5]);
        let (_, t) = step(&mut env, 6.0);
        assert!((t.reward + 0.5 * core::f32::consts::SQRT_2).abs() < 1e-6);
        assert!(!t.done);
    }
}
