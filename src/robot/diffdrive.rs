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
    /// Consecutive ticks with both encoders within `still_counts` that count as rest;
    /// 0 skips the wait (`reset` then only stops the motors and reads the encoders).
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
            let before = r.odometry.pose();
            r.odometry.update(&r.config.spec, delta, yaw_rate);
            observe(&r.config.spec, &r.odometry, obs);
            Ok(diffdrive::reward(
                &before,
                &r.odometry.pose(),
                r.config.goal,
            ))
        })
    }

    /// Zero duty on both motors; no sensor is read and `action` is not looked at (every
    /// safe action of this robot is stop).
    fn stop(&mut self, _action: &[f32], _obs: &mut [f32]) -> Result<(), RobotError> {
        self.stop_motors()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::robot::gyro::{GyroRange, Lsm6dso, NoGyro};
    use crate::robot::motor::{PwmDirMotor, TwoPwmMotor};
    use crate::sim::DiffDrive;
    use crate::sim::diffdrive::{DISCRETE_COMMANDS, DiffDriveTask, RobotVariation};
    use core::cell::Cell;
    use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
    use embedded_hal_mock::eh1::MockError;
    use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as Pin};
    use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2c};
    use embedded_hal_mock::eh1::pwm::{Mock as PwmMock, Transaction as Pwm};
    use std::rc::Rc;
    use std::vec::Vec;

    /// An encoder that replays a script of counts and counts its reads (the board's
    /// counter hardware, which cannot run here).
    struct Scripted {
        script: std::vec::IntoIter<Result<u32, EncoderError>>,
        reads: Rc<Cell<usize>>,
    }

    impl Scripted {
        fn new(script: Vec<Result<u32, EncoderError>>) -> (Self, Rc<Cell<usize>>) {
            let reads = Rc::new(Cell::new(0));
            let e = Self {
                script: script.into_iter(),
                reads: reads.clone(),
            };
            (e, reads)
        }
    }

    impl WheelEncoder for Scripted {
        fn count(&mut self) -> Result<u32, EncoderError> {
            self.reads.set(self.reads.get() + 1);
            self.script.next().unwrap_or(Err(EncoderError::Read))
        }
    }

    /// A 16-bit counter, as a timer in encoder mode gives.
    struct Scripted16(Scripted);

    impl WheelEncoder for Scripted16 {
        const COUNTER_BITS: u32 = 16;
        fn count(&mut self) -> Result<u32, EncoderError> {
            self.0.count()
        }
    }

    /// A clock that counts ticks and fails on the one numbered `fail_at`.
    struct Ticks {
        n: Rc<Cell<u32>>,
        fail_at: Option<u32>,
    }

    impl ControlClock for Ticks {
        fn wait_for_tick(&mut self) -> Result<(), ClockError> {
            let k = self.n.get();
            self.n.set(k + 1);
            if Some(k) == self.fail_at {
                return Err(ClockError::Overrun { late_us: 1234 });
            }
            Ok(())
        }
    }

    fn ticks(fail_at: Option<u32>) -> (Ticks, Rc<Cell<u32>>) {
        let n = Rc::new(Cell::new(0));
        (
            Ticks {
                n: n.clone(),
                fail_at,
            },
            n,
        )
    }

    fn config(commands: CommandSet, still_ticks: u16) -> RobotConfig {
        RobotConfig {
            spec: DiffDriveSpec::NOMINAL,
            commands,
            goal: [0.3, 0.0],
            settle: Settle {
                still_ticks,
                still_counts: 0,
                max_ticks: 4,
            },
        }
    }

    type Pd = PwmDirMotor<PwmMock, PinMock>;
    type TestRobot<G> = DiffDriveRobot<Pd, Pd, Scripted, Scripted, G, Ticks>;

    /// Mocks for one PWM + direction motor: `max_duty` 100, then the writes given.
    struct MotorMocks {
        pwm: PwmMock,
        pin: PinMock,
    }

    impl MotorMocks {
        fn new(duties: &[u16], levels: &[State]) -> Self {
            let mut p = std::vec![Pwm::max_duty_cycle(100)];
            p.extend(duties.iter().map(|&d| Pwm::set_duty_cycle(d)));
            let l: Vec<Pin> = levels.iter().map(|&s| Pin::set(s)).collect();
            Self {
                pwm: PwmMock::new(&p),
                pin: PinMock::new(&l),
            }
        }
        fn with_failing_duty(duties: &[u16], levels: &[State], fail: usize) -> Self {
            let mut p = std::vec![Pwm::max_duty_cycle(100)];
            p.extend(duties.iter().enumerate().map(|(i, &d)| {
                let t = Pwm::set_duty_cycle(d);
                if i == fail {
                    t.with_error(MockError::Io(std::io::ErrorKind::NotConnected))
                } else {
                    t
                }
            }));
            let l: Vec<Pin> = levels.iter().map(|&s| Pin::set(s)).collect();
            Self {
                pwm: PwmMock::new(&p),
                pin: PinMock::new(&l),
            }
        }
        fn motor(&self) -> Pd {
            PwmDirMotor::new(self.pwm.clone(), self.pin.clone(), false)
        }
        fn done(mut self) {
            self.pwm.done();
            self.pin.done();
        }
    }

    fn make<G: YawRateSensor>(
        left: &MotorMocks,
        right: &MotorMocks,
        enc: [Vec<Result<u32, EncoderError>>; 2],
        gyro: G,
        clock: Ticks,
        config: RobotConfig,
    ) -> (TestRobot<G>, [Rc<Cell<usize>>; 2]) {
        let [el, er] = enc;
        let (left_encoder, rl) = Scripted::new(el);
        let (right_encoder, rr) = Scripted::new(er);
        let parts = DiffDriveParts {
            left_motor: left.motor(),
            right_motor: right.motor(),
            left_encoder,
            right_encoder,
            gyro,
            clock,
        };
        (DiffDriveRobot::new(parts, config), [rl, rr])
    }

    fn level(c: f32) -> State {
        if c < 0.0 { State::High } else { State::Low }
    }

    fn duty(c: f32) -> u16 {
        libm::roundf(c.abs() * 100.0) as u16
    }

    /// Every discrete action writes its wheel commands as direction level + duty, after a
    /// reset whose settle phase wrote zero duty and waited for rest.
    #[test]
    fn each_discrete_action_writes_its_duty_and_direction() {
        let n = DISCRETE_COMMANDS.len();
        let mut ld = std::vec![0u16];
        let mut rd = std::vec![0u16];
        let (mut ll, mut rl) = (Vec::new(), Vec::new());
        for [l, r] in DISCRETE_COMMANDS {
            ld.push(duty(l));
            rd.push(duty(r));
            ll.push(level(l));
            rl.push(level(r));
        }
        let left = MotorMocks::new(&ld, &ll);
        let right = MotorMocks::new(&rd, &rl);
        // Settle: one read, then 1 still tick; then one read per step (standing still).
        let counts = std::vec![Ok(500u32); 2 + n];
        let (clock, n_ticks) = ticks(None);
        let (mut robot, reads) = make(
            &left,
            &right,
            [counts.clone(), counts],
            NoGyro,
            clock,
            config(CommandSet::Discrete, 1),
        );
        let mut obs = [f32::NAN; OBS_DIM];
        robot.reset(&mut obs).unwrap();
        assert_eq!(obs, [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        for i in 0..n {
            let t = robot.step(&[i as f32], &mut obs).unwrap();
            assert_eq!(t.reward, 0.0);
        }
        assert_eq!(n_ticks.get(), 1 + n as u32);
        assert_eq!(reads.map(|r| r.get()), [2 + n; 2]);
        left.done();
        right.done();
    }

    /// Continuous commands on DRV8833-style motors: duty on the driven input, 0 on the
    /// other; NaN stops that wheel, beyond ±1 saturates.
    #[test]
    fn continuous_commands_on_two_pwm_motors() {
        let tx = |a: &[u16]| {
            let mut v = std::vec![Pwm::max_duty_cycle(200)];
            v.extend(a.iter().map(|&d| Pwm::set_duty_cycle(d)));
            PwmMock::new(&v)
        };
        // Left: stop (settle), then 0.25 fwd (in2 0, in1 50), then NaN (in2 0, in1 0).
        let (mut l1, mut l2) = (tx(&[0, 50, 0]), tx(&[0, 0, 0]));
        // Right: stop, then −2 → full reverse (in1 0, in2 200), then 0.5 (in2 0, in1 100).
        let (mut r1, mut r2) = (tx(&[0, 0, 100]), tx(&[0, 200, 0]));
        let (left_encoder, _) = Scripted::new(std::vec![Ok(0); 3]);
        let (right_encoder, _) = Scripted::new(std::vec![Ok(0); 3]);
        let parts = DiffDriveParts {
            left_motor: TwoPwmMotor::new(l1.clone(), l2.clone()),
            right_motor: TwoPwmMotor::new(r1.clone(), r2.clone()),
            left_encoder,
            right_encoder,
            gyro: NoGyro,
            clock: ticks(None).0,
        };
        let mut robot = DiffDriveRobot::new(parts, config(CommandSet::Continuous, 0));
        assert_eq!(robot.action_width(), 2);
        let mut obs = [0.0; OBS_DIM];
        robot.reset(&mut obs).unwrap();
        robot.step(&[0.25, -2.0], &mut obs).unwrap();
        robot.step(&[f32::NAN, 0.5], &mut obs).unwrap();
        for m in [&mut l1, &mut l2, &mut r1, &mut r2] {
            m.done();
        }
    }

    /// Encoder counts → odometry → observation and reward, by the simulator's functions,
    /// across a 32-bit wrap on the left and a 16-bit wrap on the right.
    #[test]
    fn encoder_counts_become_the_simulators_observation() {
        let left = MotorMocks::new(&[0, 80, 80], &[State::Low, State::Low]);
        let right = MotorMocks::new(&[0, 80, 80], &[State::Low, State::Low]);
        let l0 = u32::MAX - 10;
        let r0 = 0xFFF0u32;
        let el = std::vec![Ok(l0), Ok(l0.wrapping_add(30)), Ok(l0.wrapping_add(60))];
        let er = std::vec![Ok(r0), Ok((r0 + 36) & 0xFFFF), Ok((r0 + 72) & 0xFFFF)];
        let (left_encoder, _) = Scripted::new(el);
        let (s, _) = Scripted::new(er);
        let parts = DiffDriveParts {
            left_motor: left.motor(),
            right_motor: right.motor(),
            left_encoder,
            right_encoder: Scripted16(s),
            gyro: NoGyro,
            clock: ticks(None).0,
        };
        let mut robot = DiffDriveRobot::new(parts, config(CommandSet::Discrete, 0));
        let mut obs = [0.0; OBS_DIM];
        robot.reset(&mut obs).unwrap();
        let mut odo = Odometry::zero();
        let spec = DiffDriveSpec::NOMINAL;
        for _ in 0..2 {
            let t = robot.step(&[1.0], &mut obs).unwrap();
            let before = odo.pose();
            odo.update(&spec, [30, 36], None);
            let mut want = [0.0; OBS_DIM];
            observe(&spec, &odo, &mut want);
            assert_eq!(obs, want);
            assert_eq!(t, diffdrive::reward(&before, &odo.pose(), [0.3, 0.0]));
        }
        // By hand: 30 and 36 counts are 8.42 mm and 10.1 mm per tick; the right wheel
        // is faster, so the robot turned left by (10.1 − 8.42)/86 rad per tick.
        let per_m = spec.counts_per_metre();
        let (dl, dr) = (30.0 / per_m, 36.0 / per_m);
        assert!((obs[4] - dl / 0.1 / spec.max_speed_m_s()).abs() < 1e-6);
        assert!((obs[5] - dr / 0.1 / spec.max_speed_m_s()).abs() < 1e-6);
        let heading = 2.0 * (dr - dl) / spec.track_width_m;
        assert!((libm::atan2f(obs[3], obs[2]) - heading).abs() < 1e-5);
        assert!(obs[0] > 0.017 && obs[1] > 0.0, "{obs:?}");
        left.done();
        right.done();
    }

    /// Fed the simulator's own counts, the robot computes the simulator's observations
    /// and rewards, bit for bit: the policy sees one world.
    #[test]
    fn robot_and_simulator_agree_on_the_same_counts() {
        let task = DiffDriveTask {
            goal: [0.2, 0.25],
            robot: RobotVariation {
                motor_gain: [0.7, 0.95],
                dead_band: 0.1,
                battery_sag: 0.2,
                encoder_scale: 1.03,
                ..RobotVariation::NOMINAL
            },
        };
        let mut sim = DiffDrive::new(DiffDriveSpec::NOMINAL, task, CommandSet::Discrete, false);
        let actions = [1.0f32, 2.0, 2.0, 4.0, 1.0, 3.0, 5.0, 1.0, 0.0, 1.0];
        let mut sim_obs = [0.0; OBS_DIM];
        let Ok(()) = sim.reset(&mut sim_obs);
        let mut counts = std::vec![Ok(sim.counts())];
        let mut sim_out = Vec::new();
        for &a in &actions {
            let Ok(t) = sim.step(&[a], &mut sim_obs);
            counts.push(Ok(sim.counts()));
            sim_out.push((sim_obs, t));
        }
        let (ld, rd): (Vec<u16>, Vec<u16>) = core::iter::once((0, 0))
            .chain(actions.iter().map(|&a| {
                let [l, r] = wheel_commands(CommandSet::Discrete, &[a]);
                (duty(l), duty(r))
            }))
            .unzip();
        let lv: Vec<State> = actions
            .iter()
            .map(|&a| level(wheel_commands(CommandSet::Discrete, &[a])[0]))
            .collect();
        let rv: Vec<State> = actions
            .iter()
            .map(|&a| level(wheel_commands(CommandSet::Discrete, &[a])[1]))
            .collect();
        let left = MotorMocks::new(&ld, &lv);
        let right = MotorMocks::new(&rd, &rv);
        let el = counts.iter().map(|c| c.map(|[l, _]| l)).collect();
        let er = counts.iter().map(|c| c.map(|[_, r]| r)).collect();
        let mut cfg = config(CommandSet::Discrete, 0);
        cfg.goal = task.goal;
        let (mut robot, _) = make(&left, &right, [el, er], NoGyro, ticks(None).0, cfg);
        let mut obs = [0.0; OBS_DIM];
        robot.reset(&mut obs).unwrap();
        for (&a, (want_obs, want_t)) in actions.iter().zip(sim_out) {
            let t = robot.step(&[a], &mut obs).unwrap();
            assert_eq!((obs, t), (want_obs, want_t));
        }
        left.done();
        right.done();
    }

    /// The I²C gyro's rate drives the odometry's heading.
    #[test]
    fn gyro_rate_sets_the_heading() {
        const A: u8 = 0x6B;
        let mut bus = I2cMock::new(&[I2c::write_read(A, std::vec![0x26], std::vec![0xE8, 0x03])]);
        let gyro = Lsm6dso::new(bus.clone(), A, GyroRange::Dps1000, false);
        let left = MotorMocks::new(&[0, 60], &[State::High]);
        let right = MotorMocks::new(&[0, 60], &[State::Low]);
        let (mut robot, _) = make(
            &left,
            &right,
            [std::vec![Ok(0), Ok(0)], std::vec![Ok(0), Ok(0)]],
            gyro,
            ticks(None).0,
            config(CommandSet::Discrete, 0),
        );
        let mut obs = [0.0; OBS_DIM];
        robot.reset(&mut obs).unwrap();
        robot.step(&[4.0], &mut obs).unwrap();
        // 35 °/s for 0.1 s, although the wheels report no turn.
        let want = 3.5f32.to_radians();
        assert!(
            (libm::atan2f(obs[3], obs[2]) - want).abs() < 1e-6,
            "{obs:?}"
        );
        bus.done();
        left.done();
        right.done();
    }

    /// `Env::stop` writes zero duty to both motors and reads no sensor.
    #[test]
    fn stop_writes_zero_duty_and_reads_nothing() {
        let left = MotorMocks::new(&[0, 0], &[]);
        let right = MotorMocks::new(&[0, 0], &[]);
        let mut bus = I2cMock::new(&[]);
        let gyro = Lsm6dso::new(bus.clone(), 0x6B, GyroRange::Dps1000, false);
        let (clock, n) = ticks(None);
        let (mut robot, reads) = make(
            &left,
            &right,
            [Vec::new(), Vec::new()],
            gyro,
            clock,
            config(CommandSet::Discrete, 1),
        );
        let mut obs = [0.0; OBS_DIM];
        robot.stop(&[0.0], &mut obs).unwrap();
        robot.stop(&[3.0], &mut obs).unwrap();
        assert_eq!(reads.map(|r| r.get()), [0, 0]);
        assert_eq!(n.get(), 0);
        bus.done();
        left.done();
        right.done();
    }

    /// Runs one step that fails with `want`; the motors must have received the step's
    /// commands (forward, duty 80) and then zero duty.
    fn assert_step_fails_and_stops<G: YawRateSensor>(
        enc: [Vec<Result<u32, EncoderError>>; 2],
        gyro: G,
        fail_tick: Option<u32>,
        want: RobotError,
    ) {
        let left = MotorMocks::new(&[0, 80, 0], &[State::Low]);
        let right = MotorMocks::new(&[0, 80, 0], &[State::Low]);
        let (mut robot, _) = make(
            &left,
            &right,
            enc,
            gyro,
            ticks(fail_tick).0,
            config(CommandSet::Discrete, 0),
        );
        let mut obs = [0.0; OBS_DIM];
        robot.reset(&mut obs).unwrap();
        assert_eq!(robot.step(&[1.0], &mut obs), Err(want));
        left.done();
        right.done();
    }

    #[test]
    fn encoder_failures_are_typed_and_stop_the_motors() {
        let side = Side::Left;
        assert_step_fails_and_stops(
            [
                std::vec![Ok(0), Err(EncoderError::Overflow)],
                std::vec![Ok(0), Ok(5)],
            ],
            NoGyro,
            None,
            RobotError::Encoder {
                side,
                error: EncoderError::Overflow,
            },
        );
        // A jump of more than two full-speed periods (288 counts) is implausible: a
        // counter that wrapped past half its range or a missed read.
        assert_step_fails_and_stops(
            [
                std::vec![Ok(0), Ok(10)],
                std::vec![Ok(7), Ok(7u32.wrapping_sub(289))],
            ],
            NoGyro,
            None,
            RobotError::Encoder {
                side: Side::Right,
                error: EncoderError::Implausible {
                    delta: -289,
                    limit: 288,
                },
            },
        );
        assert_step_fails_and_stops(
            [std::vec![Ok(0), Ok(0x8000_0000)], std::vec![Ok(0), Ok(0)]],
            NoGyro,
            None,
            RobotError::Encoder {
                side,
                error: EncoderError::Implausible {
                    delta: i32::MIN,
                    limit: 288,
                },
            },
        );
    }

    #[test]
    fn a_16_bit_encoder_reporting_wider_counts_is_out_of_range() {
        let mut e = Scripted16(Scripted::new(std::vec![Ok(0x1_0000)]).0);
        assert_eq!(
            encoder::read_checked(&mut e),
            Err(EncoderError::OutOfRange { count: 0x1_0000 })
        );
    }

    #[test]
    fn gyro_nack_and_saturation_are_typed_and_stop_the_motors() {
        let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
        let enc = || [std::vec![Ok(0), Ok(20)], std::vec![Ok(0), Ok(20)]];
        for (reply, want) in [
            (
                I2c::write_read(0x6B, std::vec![0x26], std::vec![0, 0]).with_error(nack),
                GyroError::Bus(nack),
            ),
            (
                I2c::write_read(0x6B, std::vec![0x26], std::vec![0xFF, 0x7F]),
                GyroError::Saturated { raw: i16::MAX },
            ),
        ] {
            let mut bus = I2cMock::new(&[reply]);
            let gyro = Lsm6dso::new(bus.clone(), 0x6B, GyroRange::Dps1000, false);
            assert_step_fails_and_stops(enc(), gyro, None, RobotError::Gyro(want));
            bus.done();
        }
    }

    #[test]
    fn clock_overrun_is_typed_and_stops_the_motors() {
        assert_step_fails_and_stops(
            [std::vec![Ok(0)], std::vec![Ok(0)]],
            NoGyro,
            Some(0),
            RobotError::Clock(ClockError::Overrun { late_us: 1234 }),
        );
    }

    /// A motor write failing mid-step: the error names the motor, both get zero duty.
    #[test]
    fn motor_failure_is_typed_and_both_motors_get_zero_duty() {
        let left = MotorMocks::new(&[0, 80, 0], &[State::Low]);
        let right = MotorMocks::with_failing_duty(&[0, 80, 0], &[State::Low], 1);
        let (mut robot, _) = make(
            &left,
            &right,
            [std::vec![Ok(0)], std::vec![Ok(0)]],
            NoGyro,
            ticks(None).0,
            config(CommandSet::Discrete, 0),
        );
        let mut obs = [0.0; OBS_DIM];
        robot.reset(&mut obs).unwrap();
        assert_eq!(
            robot.step(&[1.0], &mut obs),
            Err(RobotError::Motor {
                side: Side::Right,
                error: MotorError::Pwm(embedded_hal::pwm::ErrorKind::Other),
            })
        );
        left.done();
        right.done();
    }

    /// A robot that keeps rolling after the stop does not start an episode.
    #[test]
    fn reset_waits_for_rest_and_gives_up_when_still_moving() {
        // Moves for two ticks, then still for 2: settled at tick 4 (still_ticks 2).
        let counts = std::vec![Ok(0), Ok(5), Ok(9), Ok(9), Ok(9)];
        let left = MotorMocks::new(&[0], &[]);
        let right = MotorMocks::new(&[0], &[]);
        let (clock, n) = ticks(None);
        let (mut robot, _) = make(
            &left,
            &right,
            [counts.clone(), std::vec![Ok(3); 5]],
            NoGyro,
            clock,
            config(CommandSet::Discrete, 2),
        );
        let mut obs = [f32::NAN; OBS_DIM];
        robot.reset(&mut obs).unwrap();
        assert_eq!(n.get(), 4);
        assert_eq!(obs[..4], [0.0, 0.0, 1.0, 0.0]);
        left.done();
        right.done();

        // Never still within max_ticks = 4: NotSettled, and the motors get zero duty
        // again on the way out.
        let moving = (0..6).map(|k| Ok(k * 3)).collect();
        let left = MotorMocks::new(&[0, 0], &[]);
        let right = MotorMocks::new(&[0, 0], &[]);
        let (mut robot, _) = make(
            &left,
            &right,
            [moving, std::vec![Ok(0); 6]],
            NoGyro,
            ticks(None).0,
            config(CommandSet::Discrete, 2),
        );
        assert_eq!(
            robot.reset(&mut obs),
            Err(RobotError::NotSettled { ticks: 4 })
        );
        left.done();
        right.done();
    }

    #[test]
    fn short_observation_buffer_is_an_error_not_a_panic() {
        let left = MotorMocks::new(&[0], &[]);
        let right = MotorMocks::new(&[0], &[]);
        let (mut robot, reads) = make(
            &left,
            &right,
            [Vec::new(), Vec::new()],
            NoGyro,
            ticks(None).0,
            config(CommandSet::Discrete, 0),
        );
        let mut obs = [0.0; 3];
        assert_eq!(
            robot.reset(&mut obs),
            Err(RobotError::ObsTooShort { len: 3 })
        );
        assert_eq!(reads.map(|r| r.get()), [0, 0]);
        left.done();
        right.done();
    }
}
