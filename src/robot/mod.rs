//! The robot edge: embedded-hal 1.0 drivers under a differential-drive [`Env`].
//!
//! - [`motor`]: the [`Motor`] trait (a signed command in `[−1, 1]`) over two H-bridge
//!   wirings: PWM + direction pin ([`PwmDirMotor`]) and two PWM inputs ([`TwoPwmMotor`]).
//! - [`encoder`]: the [`WheelEncoder`] trait a board implements over its quadrature counter.
//! - [`gyro`]: the optional yaw rate, [`YawRateSensor`]: [`Lsm6dso`] over I²C, or [`NoGyro`].
//! - [`clock`]: the control period, [`ControlClock`].
//! - [`diffdrive`]: [`DiffDriveRobot`], the [`Env`] over all of them; observation, reward
//!   and odometry are [`crate::sim::diffdrive`]'s, the same functions the simulator uses.
//!
//! Every failure is a [`RobotError`] value; before returning one the robot has written zero
//! duty to both motors, and [`Env::stop`] (the adapter's safe stop) writes zero duty to both
//! motors without reading any sensor.
//!
//! # Episodes on a physical robot
//! A robot cannot be teleported back to a start state, so an episode starts wherever the
//! previous one left it:
//!
//! 1. **Stop and settle** (`reset`): zero duty on both motors, then wait, one control tick
//!    at a time, until both encoders have changed by at most [`Settle::still_counts`] for
//!    [`Settle::still_ticks`] consecutive ticks (the robot coasted to rest). If that takes
//!    longer than [`Settle::max_ticks`] ticks, `reset` fails with
//!    [`RobotError::NotSettled`] (someone is holding or pushing it) and the motors stay
//!    stopped; calling `reset` again retries.
//! 2. **Zero the odometry** at the pose reached: it becomes the origin, heading 0 along
//!    the robot's forward axis. The goal ([`RobotConfig::goal`]) is in this frame, so every
//!    episode asks for the same displacement relative to where the robot stands. The first
//!    observation is that of the zero odometry at rest, as in the simulator.
//! 3. **Run** the episode: each `step` writes the wheel commands, waits for the next tick
//!    of the [`ControlClock`] (the spec's `control_period_s`, as in training), reads both
//!    encoders (and the gyro), updates odometry, and returns the observation and reward.
//!    The episode ends at the recipe's horizon or when odometry is within
//!    [`crate::sim::diffdrive::GOAL_TOLERANCE_M`] of the goal.
//!
//! The robot drifts over a batch of episodes (each ends up to a goal's distance from its
//! start), so give it a floor a metre or two across; a board that wants the robot back at
//! a mark can wait for a button press before calling `reset`. The simulator implements
//! the same protocol with a settle phase that completes at once.

pub mod clock;
pub mod diffdrive;
pub mod encoder;
pub mod gyro;
pub mod motor;

#[cfg(doc)]
use crate::env::Env;

pub use clock::{ClockError, ControlClock, DelayClock};
pub use diffdrive::{DiffDriveParts, DiffDriveRobot, RobotConfig, RobotError, Settle, Side};
pub use encoder::{EncoderError, WheelEncoder};
pub use gyro::{GyroError, GyroRange, Lsm6dso, NoGyro, YawRateSensor};
pub use motor::{Motor, MotorError, PwmDirMotor, TwoPwmMotor};
