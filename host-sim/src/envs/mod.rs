//! Task families the host meta-trains on.
//!
//! A [`TaskFamily`] is a distribution over tasks (`p` in the paper) plus a way to build
//! one environment per episode for a drawn task. Environments are the core's
//! [`sgmrl::env::Env`] — the same trait a robot board implements — so what the host
//! simulates is what the device runs. Nothing here assumes a particular observation or
//! action size; the MuJoCo tasks (module `locomotion`, feature `mujoco`) plug in the same
//! way (with their reset noise drawn from the per-episode stream handed to
//! [`TaskFamily::make_env`]).

use sgmrl::env::Env;
use sgmrl::rng::Rng;

pub mod diffdrive;
#[cfg(feature = "mujoco")]
pub mod locomotion;
pub mod nav2d;
pub mod tabular;

pub use diffdrive::DiffDriveFamily;
#[cfg(feature = "mujoco")]
pub use locomotion::{Locomotion, LocomotionFamily};
pub use nav2d::{Nav2dDiscreteFamily, Nav2dFamily};
pub use tabular::TabularFamily;

/// A distribution over tasks and an environment factory.
pub trait TaskFamily: Sync {
    /// What identifies one task (a goal, an MDP, a target velocity, …).
    type Task: Clone + Send + Sync + core::fmt::Debug;
    /// One episode's environment for a task.
    type Env: Env + Send;
    /// Observation length.
    fn obs_dim(&self) -> usize;
    /// Scalars per action the environment takes (1 for a discrete index).
    fn action_width(&self) -> usize;
    /// Draws a task.
    fn sample_task(&self, rng: &mut Rng) -> Self::Task;
    /// A fresh environment for one episode of `task`; `rng` is that episode's own stream for
    /// any randomness of the environment (start state, transition noise).
    fn make_env(&self, task: &Self::Task, rng: Rng) -> Self::Env;
    /// True when `error` means only that this episode's simulation diverged (a physics
    /// engine gone unstable): the trainer then drops the task from the meta-batch and
    /// carries on, instead of failing the iteration.
    fn is_unstable(&self, _error: &<Self::Env as Env>::Error) -> bool {
        false
    }
}
