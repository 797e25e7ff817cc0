//! The core's 2D navigation simulators as task families: a task is a goal drawn uniformly
//! from the square, every episode starts at the origin (no environment randomness).

use sgmrl::rng::Rng;
use sgmrl::sim::{Nav2d, Nav2dDiscrete};

use super::TaskFamily;

/// Continuous 2D navigation (Table 1): Gaussian policy, 2-D action mapped by the recipe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Nav2dFamily;

impl TaskFamily for Nav2dFamily {
    type Task = [f32; 2];
    type Env = Nav2d;
    fn obs_dim(&self) -> usize {
        Nav2d::OBS_DIM
    }
    fn action_width(&self) -> usize {
        Nav2d::ACTION_DIM
    }
    fn sample_task(&self, rng: &mut Rng) -> [f32; 2] {
        Nav2d::sample_goal(rng)
    }
    fn make_env(&self, goal: &[f32; 2], _rng: Rng) -> Nav2d {
        Nav2d::new(*goal)
    }
}

/// 2D navigation with 9 discrete moves (softmax policy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Nav2dDiscreteFamily;

impl TaskFamily for Nav2dDiscreteFamily {
    type Task = [f32; 2];
    type Env = Nav2dDiscrete;
    fn obs_dim(&self) -> usize {
        Nav2d::OBS_DIM
    }
    fn action_width(&self) -> usize {
        1
    }
    fn sample_task(&self, rng: &mut Rng) -> [f32; 2] {
        Nav2dDiscrete::sample_goal(rng)
    }
    fn make_env(&self, goal: &[f32; 2], _rng: Rng) -> Nav2dDiscrete {
        Nav2dDiscrete::new(*goal)
    }
}
