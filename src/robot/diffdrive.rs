//! [`DiffDriveRobot`]: a physical differential-drive robot as an [`Env`].
//!
//! The observation, reward and odometry are [`crate::sim::diffdrive`]'s, computed from
//! the encoders (and the gyro, if any) exactly as the simulator computes them from its
//! simulated encoders. The episode protocol is in the [`crate::robot`] module docs.

use super::clock::{ClockError, ControlClock};
use super::encoder::{self, EncoderError, WheelEncoder};
use super::gyro::{GyroError, YawRateSensor};
use super::motor::{Motor, MotorError};
use crate::env::{Env, Transition};
use crate::sim::diffdrive::{
    self, CommandSet, DiffDriveSpec, OBS_DIM, Odometry, observe, wheel_commands,
};

/// Which wheel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Side {
    /// The left wheel.
    Left,
    /// The right wheel.
    Right,
}

/// A robot failure. Whatever it is, the robot has already written zero duty to both
/// motors (as far as they still accept writes) before returning it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RobotError {
    /// A motor write failed.
    Motor {
        /// Which motor.
        side: Side,
        /// What failed.
        error: MotorError,
    },
    /// An encoder failed or reported an implausible count.
    Encoder {
        /// Which encoder.
        side: Side,
        /// What failed.
        error: EncoderError,
    },
    /// The gyro failed.
    Gyro(GyroError),
    /// The control clock failed or the loop overran its period.
    Clock(ClockError),
    /// The robot did not come to rest within [`Settle::max_ticks`] after `reset`
    /// stopped the motors (pushed, rolling down a slope, or an encoder counting noise).
    NotSettled {
        /// Ticks waited.
        ticks: u16,
    },
    /// The observation buffer is shorter than [`OBS_DIM`].
    ObsTooShort {
        /// Its length.
        len: usize,
    },
}

impl core::fmt::Display for RobotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Motor { side, error } => write!(f, "{side:?} motor: {error}"),
            Self::Encoder { side, error } => write!(f, "{side:?} encoder: {error}"),
            Self::Gyro(e) => write!(f, "{e}"),
            Self::Clock(e) => write!(f, "{e}"),
            Self::NotSettled { ticks } => {
                write!(f, "robot still moving {ticks} ticks after stopping")
            }
            Self::ObsTooShort { len } => {
                write!(f, "observation buffer holds {len} scalars, need {OBS_DIM}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RobotError {}

/// The stop-and-settle phase at every `reset` (see the [`crate::robot`] module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Settle {
    /// Consecutive ticks with both encoders within `still_counts` that count as rest.
    pub still_ticks: u16,
    /// Largest count change per tick that still counts as standing still.
    pub still_counts: u32,
    /// Ticks to wait for rest before giving up with [`RobotError::NotSettled`].
    pub max_ticks: u16,
}

impl Settle {
    /// Half a second still (5 ticks of 0.1 s) within 5 s.
    pub const DEFAULT: Self = Self {
        still_ticks: 5,
        still_counts: 0,
        max_ticks: 50,
    };
}

/// What a [`DiffDriveRobot`] is configured with.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RobotConfig {
    /// The robot's nominal geometry and control period (the odometry uses it; the clock
    /// must tick at its `control_period_s`).
    pub spec: DiffDriveSpec,
    /// How actions map to wheel commands (the bundle's policy head decides).
    pub commands: CommandSet,
    /// The goal (m), relative to the pose at each `reset`.
    pub goal: [f32; 2],
    /// The stop-and-settle phase.
    pub settle: Settle,
}

/// The two motors, two encoders, the gyro (or [`super::NoGyro`]) and the control clock.
#[derive(Debug)]
pub struct DiffDriveParts<ML, MR, EL, ER, G, C> {
    /// Left motor.
    pub left_motor: ML,
    /// Right motor.
    pub right_motor: MR,
    /// Left encoder.
    pub left_encoder: EL,
    /// Right encoder.
    pub right_encoder: ER,
    /// The yaw-rate gyro, or [`super::NoGyro`].
    pub gyro: G,
    /// The control clock.
    pub clock: C,
}

/// A differential-drive robot: [`Env`] over its parts.
#[derive(Debug)]
pub struct DiffDriveRobot<ML, MR, EL, ER, G, C> {
    parts: DiffDriveParts<ML, MR, EL, ER, G, C>,
    config: RobotConfig,
    odometry: Odometry,
    counts: [u32; 2],
}

impl<ML, MR, EL, ER, G, C> DiffDriveRobot<ML, MR, EL, ER, G, C>
where
    ML: Motor,
    MR: Motor,
    EL: WheelEncoder,
    ER: WheelEncoder,
    G: YawRateSensor,
    C: ControlClock,
{
    /// The robot; nothing is read or written until the first `reset` (or `stop`).
    pub const fn new(parts: DiffDriveParts<ML, MR, EL, ER, G, C>, config: RobotConfig) -> Self {
        Self {
            parts,
            config,
            odometry: Odometry::zero(),
            counts: [0; 2],
        }
    }

    /// The configuration.
    pub const fn config(&self) -> &RobotConfig {
        &self.config
    }

    /// Sets the goal for the following episodes (m, relative to the pose at `reset`).
    pub fn set_goal(&mut self, goal: [f32; 2]) {
        self.config.goal = goal;
    }

    /// The odometry since the last `reset`.
    pub const fn odometry(&self) -> &Odometry {
        &self.odometry
    }

    /// The parts back (the motors are left as they are: call [`Self::stop_motors`] first).
    pub fn release(self) -> DiffDriveParts<ML, MR, EL, ER, G, C> {
        self.parts
    }

    /// Writes zero duty to both motors, reading nothing; tries the right motor even when
    /// the left fails and returns the first failure.
    pub fn stop_motors(&mut self) -> Result<(), RobotError> {
        let l = self
            .parts
            .left_motor
            .stop()
            .map_err(|error| RobotError::Motor {
                side: Side::Left,
                error,
            });
        let r = self
            .parts
            .right_motor
            .stop()
            .map_err(|error| RobotError::Motor {
                side: Side::Right,
                error,
            });
        l.and(r)
    }

    /// Runs `f`; on an error, stops the motors before returning it.
    fn stopping_on_error<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, RobotError>,
    ) -> Result<T, RobotError> {
        f(self).inspect_err(|_| {
            // The first failure is the one to report; the stop is best effort.
            let _ = self.stop_motors();
        })
    }

    fn read_counts(&mut self) -> Result<[u32; 2], RobotError> {
        let l = encoder::read_checked(&mut self.parts.left_encoder).map_err(|error| {
            RobotError::Encoder {
                side: Side::Left,
                error,
            }
        })?;
        let r = encoder::read_checked(&mut self.parts.right_encoder).map_err(|error| {
            RobotError::Encoder {
                side: Side::Right,
                error,
            }
        })?;
        Ok([l, r])
    }

    /// Reads the encoders and returns the checked change since the last read.
    fn read_deltas(&mut self) -> Result<[i32; 2], RobotError> {
        let [l, r] = self.read_counts()?;
        let limit = self.config.spec.max_counts_per_tick();
        let [pl, pr] = self.counts;
        let dl =
            encoder::checked_delta::<EL>(pl, l, limit).map_err(|error| RobotError::Encoder {
                side: Side::Left,
                error,
            })?;
        let dr =
            encoder::checked_delta::<ER>(pr, r, limit).map_err(|error| RobotError::Encoder {
                side: Side::Right,
                error,
            })?;
        self.counts = [l, r];
        Ok([dl, dr])
    }

    fn tick(&mut self) -> Result<(), RobotError> {
        self.parts.clock.wait_for_tick().map_err(RobotError::Clock)
    }

    /// Stop, then wait for rest (the protocol's settle phase).
    fn settle(&mut self) -> Result<(), RobotError> {
        self.stop_motors()?;
        self.counts = self.read_counts()?;
        let s = self.config.settle;
        let mut still = 0u16;
        for _ in 0..s.max_ticks {
            self.tick()?;
            let [dl, dr] = self.read_deltas()?;
            let at_rest =
                dl.unsigned_abs() <= s.still_counts && dr.unsigned_abs() <= s.still_counts;
            still = if at_rest { still.saturating_add(1) } else { 0 };
            if still >= s.still_ticks {
                return Ok(());
            }
        }
        Err(RobotError::NotSettled { ticks: s.max_ticks })
    }

    fn check_obs(obs: &[f32]) -> Result<(), RobotError> {
        if obs.len() < OBS_DIM {
            return Err(RobotError::ObsTooShort { len: obs.len() });
        }
        Ok(())
    }
}

/// Observation [`OBS_DIM`] scalars; action [`CommandSet::action_width`] scalars.
impl<ML, MR, EL, ER, G, C> Env for DiffDriveRobot<ML, MR, EL, ER, G, C>
where
    ML: Motor,
    MR: Motor,
    EL: WheelEncoder,
    ER: WheelEncoder,
    G: YawRateSensor,
    C: ControlClock,
{
    type Error = RobotError;

    fn obs_dim(&self) -> usize {
        OBS_DIM
    }

    fn action_width(&self) -> usize {
        self.config.commands.action_width()
    }

    /// Stop and settle, then zero the odometry at the pose reached: the goal is relative
    /// to it.
    fn reset(&mut self, obs: &mut [f32]) -> Result<(), RobotError> {
        self.stopping_on_error(|r| {
            Self::check_obs(obs)?;
            if r.config.settle.still_ticks == 0 {
                r.stop_motors()?;
                r.counts = r.read_counts()?;
            } else {
                r.settle()?;
            }
            r.odometry = Odometry::zero();
            observe(&r.config.spec, &r.odometry, obs);
            Ok(())
        })
    }

    /// Commands the wheels, waits for the next tick, then reads encoders and gyro.
    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> Result<Transition, RobotError> {
        self.stopping_on_error(|r| {
            Self::check_obs(obs)?;
            let [cl, cr] = wheel_commands(r.config.commands, action);
            r.parts
                .left_motor
                .set(cl)
                .map_err(|error| RobotError::Motor {
                    side: Side::Left,
                    error,
                })?;
            r.parts
                .right_motor
                .set(cr)
                .map_err(|error| RobotError::Motor {
                    side: Side::Right,
                    error,
                })?;
            r.tick()?;
            let delta = r.read_deltas()?;
            let yaw_rate = r.parts.gyro.yaw_rate().map_err(RobotError::Gyro)?;
            r.odometry.update(&r.config.spec, delta, yaw_rate);
            observe(&r.config.spec, &r.odometry, obs);
            Ok(diffdrive::reward(&r.odometry.pose(), r.config.goal))
        })
    }

    /// Zero duty on both motors; no sensor is read and `action` is not looked at (every
    /// safe action of this robot is stop).
    fn stop(&mut self, _action: &[f32], _obs: &mut [f32]) -> Result<(), RobotError> {
        self.stop_motors()
    }
}
