//! The environment interface shared by simulators and real robots.
//!
//! An [`Env`] is one task: a simulator instance with its goal, or a robot whose sensors
//! fill the observation and whose actuators take the action. Actions arrive already mapped
//! by the recipe (scaled and clipped for Gaussian policies, an index for softmax ones), so an
//! `Env` sees the physical command. Sensor and actuator failures are the `Error` type, never
//! a panic; a robot board implements this trait on top of its embedded-hal drivers.
//!
//! # The safe stop
//! When an episode is interrupted by an error, the adapter commands [`Env::stop`] with its
//! safe action ([`crate::adapt::Adapter::safe_action`]): all zeros, which is a zero command
//! for a Gaussian policy (the action map sends 0 to 0) and action index 0 for a softmax
//! policy. A robot's discrete action set must therefore put "stop" (or "stay") at index 0,
//! as [`crate::sim::Nav2dDiscrete`] does.

/// What one step of an environment returns.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Transition {
    /// Reward for the step just taken.
    pub reward: f32,
    /// True when the episode ended (goal reached, robot fell, …) before the horizon.
    pub done: bool,
}

/// One task's environment.
pub trait Env {
    /// A sensor or actuator failure.
    type Error: core::fmt::Debug;
    /// Observation length.
    fn obs_dim(&self) -> usize;
    /// Scalars per action: 1 for a discrete action index, the action dimension otherwise.
    fn action_width(&self) -> usize;
    /// Starts an episode and writes the first observation.
    fn reset(&mut self, obs: &mut [f32]) -> Result<(), Self::Error>;
    /// Applies `action` and writes the next observation.
    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> Result<Transition, Self::Error>;

    /// Commands the safe-stop `action` (see the module docs) because the episode in
    /// progress was interrupted; `obs` (`obs_dim` scalars) is scratch the implementation may
    /// overwrite. The default is one [`Env::step`] whose transition is ignored. A robot
    /// should override it to write the stop command to its actuators without depending on
    /// its sensors, which may be what failed.
    fn stop(&mut self, action: &[f32], obs: &mut [f32]) -> Result<(), Self::Error> {
        self.step(action, obs).map(|_| ())
    }
}
