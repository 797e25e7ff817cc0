//! Simulated robot hardware: embedded-hal drivers over the [`DiffDrive`] simulator, so that
//! the board logic ([`crate::control`] over [`crate::robot::DiffDriveRobot`]) runs end to
//! end on the host and under QEMU with no robot attached.
//!
//! The chain is the real one: the robot's motor drivers write duty cycles and direction
//! levels to a [`SimWheel`] (one wheel's PWM channel, direction pin and encoder, written
//! once for both sides); each tick of [`SimClock`] turns them into wheel commands and
//! advances the simulator one control period; the [`SimWheel`]s read its wrapping encoder
//! counters; [`SimI2c`] answers the LSM6DSO register reads the robot's
//! gyro driver makes with the simulated yaw rate. Everything shares one [`Plant`] through
//! a `RefCell` (single-threaded, no `unsafe`).

use crate::robot::{
    ClockError, ControlClock, DiffDriveParts, EncoderError, GyroRange, Lsm6dso, PwmDirMotor, Side,
    WheelEncoder,
};
use crate::sim::diffdrive::{DiffDrive, OBS_DIM};
use core::cell::RefCell;
use core::convert::Infallible;
use embedded_hal::digital::{ErrorType as PinErrorType, OutputPin};
use embedded_hal::i2c::{self, I2c, Operation};
use embedded_hal::pwm::{ErrorType as PwmErrorType, SetDutyCycle};

/// PWM resolution of the simulated channels: the Pololu 3pi+ 2040's TOP + 1.
pub const MAX_DUTY: u16 = 6000;
/// The simulated gyro's range (the robot's driver must be built with the same).
pub const GYRO_RANGE: GyroRange = GyroRange::Dps1000;

/// What one motor's driver last wrote.
#[derive(Clone, Copy, Debug, Default)]
struct MotorWires {
    duty: u16,
    /// The direction pin's level (high = backward, as [`PwmDirMotor`] drives it).
    backward: bool,
}

impl MotorWires {
    /// The wheel command in `[−1, 1]` that the duty cycle and direction level mean.
    fn command(self) -> f32 {
        let m = f32::from(self.duty.min(MAX_DUTY)) / f32::from(MAX_DUTY);
        if self.backward { -m } else { m }
    }
}

/// The simulated robot and what its drivers last wrote.
#[derive(Debug)]
pub struct Plant {
    sim: DiffDrive,
    /// `[left, right]`.
    motors: [MotorWires; 2],
    /// Yaw rate over the last period (rad/s), what the gyro reports.
    yaw_rate: f32,
    /// Control periods simulated.
    ticks: u32,
    /// LSM6DSO register pointer (the last register address written).
    register: u8,
}

impl Plant {
    /// The simulator, its counters and pose.
    pub const fn sim(&self) -> &DiffDrive {
        &self.sim
    }

    /// Control periods simulated so far.
    pub const fn ticks(&self) -> u32 {
        self.ticks
    }

    /// The duty cycles last written `[left, right]`.
    pub fn duty(&self) -> [u16; 2] {
        self.motors.map(|m| m.duty)
    }

    /// The wheel commands in `[−1, 1]` that the duty cycles and direction levels mean.
    pub fn commands(&self) -> [f32; 2] {
        self.motors.map(MotorWires::command)
    }

    fn motor(&mut self, side: Side) -> &mut MotorWires {
        let [left, right] = &mut self.motors;
        match side {
            Side::Left => left,
            Side::Right => right,
        }
    }

    fn advance(&mut self) {
        let before = self.sim.true_pose().heading;
        let mut obs = [0.0f32; OBS_DIM];
        let commands = self.commands();
        // Infallible: the simulator has no failure.
        let _ = crate::env::Env::step(&mut self.sim, &commands, &mut obs);
        let mut turned = self.sim.true_pose().heading - before;
        let pi = core::f32::consts::PI;
        if turned > pi {
            turned -= 2.0 * pi;
        } else if turned < -pi {
            turned += 2.0 * pi;
        }
        self.yaw_rate = turned / self.spec_period();
        self.ticks = self.ticks.wrapping_add(1);
    }

    fn spec_period(&self) -> f32 {
        crate::sim::diffdrive::DiffDriveSpec::NOMINAL.control_period_s
    }

    /// The LSM6DSO's `OUTZ_G` register pair for the current yaw rate.
    fn gyro_raw(&self) -> i16 {
        let lsb = libm::roundf(self.yaw_rate / GYRO_RANGE.rad_s_per_lsb());
        // Inside the driver's saturation markers (±32767/−32768 mean clipped).
        lsb.clamp(-32766.0, 32766.0) as i16
    }
}

/// The bench: one [`Plant`] shared by the simulated drivers.
#[derive(Debug)]
pub struct SimBench {
    plant: RefCell<Plant>,
}

/// The robot's parts over the bench, as [`crate::robot::DiffDriveRobot::new`] takes them.
pub type SimParts<'a> = DiffDriveParts<
    PwmDirMotor<SimWheel<'a>, SimWheel<'a>>,
    PwmDirMotor<SimWheel<'a>, SimWheel<'a>>,
    SimWheel<'a>,
    SimWheel<'a>,
    Lsm6dso<SimI2c<'a>>,
    SimClock<'a>,
>;

impl SimBench {
    /// A bench around `sim` (build it with [`crate::sim::diffdrive::CommandSet::Continuous`]:
    /// the plant feeds it wheel commands, whatever the policy's head).
    pub const fn new(sim: DiffDrive) -> Self {
        Self {
            plant: RefCell::new(Plant {
                sim,
                motors: [MotorWires {
                    duty: 0,
                    backward: false,
                }; 2],
                yaw_rate: 0.0,
                ticks: 0,
                register: 0,
            }),
        }
    }

    /// Reads the plant.
    pub fn with_plant<R>(&self, f: impl FnOnce(&Plant) -> R) -> R {
        f(&self.plant.borrow())
    }

    /// Motors (PWM + direction, low = forward), encoders, the LSM6DSO gyro (not yet
    /// initialised: call its `init`) and the clock, all on this bench.
    pub fn parts(&self) -> SimParts<'_> {
        let plant = &self.plant;
        let wheel = |side| SimWheel { plant, side };
        let motor = |side| PwmDirMotor::new(wheel(side), wheel(side), false);
        DiffDriveParts {
            left_motor: motor(Side::Left),
            right_motor: motor(Side::Right),
            left_encoder: wheel(Side::Left),
            right_encoder: wheel(Side::Right),
            gyro: Lsm6dso::new(SimI2c { plant }, 0x6B, GYRO_RANGE, false),
            clock: SimClock { plant },
        }
    }
}

/// One wheel's wiring on the bench: its motor's PWM channel ([`SetDutyCycle`]) and
/// direction pin ([`OutputPin`]), and its quadrature counter ([`WheelEncoder`], 32 bits,
/// wrapping). One type for the three, told apart by trait, so that each driver is
/// written once for both wheels.
#[derive(Clone, Copy, Debug)]
pub struct SimWheel<'a> {
    plant: &'a RefCell<Plant>,
    side: Side,
}

impl PwmErrorType for SimWheel<'_> {
    type Error = Infallible;
}

impl SetDutyCycle for SimWheel<'_> {
    fn max_duty_cycle(&self) -> u16 {
        MAX_DUTY
    }

    fn set_duty_cycle(&mut self, duty: u16) -> Result<(), Infallible> {
        self.plant.borrow_mut().motor(self.side).duty = duty;
        Ok(())
    }
}

impl PinErrorType for SimWheel<'_> {
    type Error = Infallible;
}

impl OutputPin for SimWheel<'_> {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.plant.borrow_mut().motor(self.side).backward = false;
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        self.plant.borrow_mut().motor(self.side).backward = true;
        Ok(())
    }
}

impl WheelEncoder for SimWheel<'_> {
    fn count(&mut self) -> Result<u32, EncoderError> {
        let [left, right] = self.plant.borrow().sim.counts();
        Ok(match self.side {
            Side::Left => left,
            Side::Right => right,
        })
    }
}

/// The control clock: each tick simulates one control period with the commands written.
#[derive(Debug)]
pub struct SimClock<'a> {
    plant: &'a RefCell<Plant>,
}

impl ControlClock for SimClock<'_> {
    fn wait_for_tick(&mut self) -> Result<(), ClockError> {
        self.plant.borrow_mut().advance();
        Ok(())
    }
}

/// An I²C bus with one simulated LSM6DSO on it (any address answers).
#[derive(Debug)]
pub struct SimI2c<'a> {
    plant: &'a RefCell<Plant>,
}

impl i2c::ErrorType for SimI2c<'_> {
    type Error = i2c::ErrorKind;
}

impl I2c for SimI2c<'_> {
    fn transaction(
        &mut self,
        _address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), i2c::ErrorKind> {
        let mut plant = self.plant.borrow_mut();
        for op in operations {
            match op {
                // The first byte written is the register address; configuration writes
                // (CTRL2_G, CTRL3_C) are accepted and change nothing here.
                Operation::Write(bytes) => {
                    if let Some(&r) = bytes.first() {
                        plant.register = r;
                    }
                }
                Operation::Read(buf) => {
                    let raw = plant.gyro_raw().to_le_bytes();
                    for (i, b) in buf.iter_mut().enumerate() {
                        let reg = plant.register.wrapping_add(i as u8);
                        *b = match reg {
                            0x0F => 0x6C,
                            0x26 => raw[0],
                            0x27 => raw[1],
                            _ => 0,
                        };
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Env;
    use crate::robot::{DiffDriveRobot, RobotConfig, Settle, YawRateSensor};
    use crate::sim::diffdrive::{CommandSet, DiffDriveSpec, DiffDriveTask, RobotVariation};

    fn bench() -> SimBench {
        let task = DiffDriveTask {
            goal: [0.3, 0.1],
            robot: RobotVariation::NOMINAL,
        };
        SimBench::new(DiffDrive::new(
            DiffDriveSpec::NOMINAL,
            task,
            CommandSet::Continuous,
            false,
        ))
    }

    #[test]
    fn duty_cycles_drive_the_simulator_and_its_counts_reach_the_robot() {
        let b = bench();
        let mut parts = b.parts();
        parts.gyro.init().unwrap();
        let config = RobotConfig {
            spec: DiffDriveSpec::NOMINAL,
            commands: CommandSet::Continuous,
            goal: [0.3, 0.1],
            settle: Settle::DEFAULT,
        };
        let mut robot = DiffDriveRobot::new(parts, config);
        let mut obs = [0.0f32; OBS_DIM];
        robot.reset(&mut obs).unwrap();
        let settle_ticks = b.with_plant(Plant::ticks);
        assert!(settle_ticks >= u32::from(Settle::DEFAULT.still_ticks));
        // Turn left: right wheel faster.
        for _ in 0..5 {
            robot.step(&[0.3, 0.6], &mut obs).unwrap();
        }
        b.with_plant(|p| {
            assert_eq!(p.duty(), [1800, 3600]);
            assert_eq!(p.ticks(), settle_ticks + 5);
            assert!(p.sim().true_pose().heading > 0.0);
            assert!(p.gyro_raw() > 0);
        });
        // The robot's own odometry moved forward like the simulated truth.
        let est = robot.odometry().pose();
        let truth = b.with_plant(|p| p.sim().true_pose());
        assert!(
            est.x > 0.0 && (est.x - truth.x).abs() < 0.01,
            "{est:?} vs {truth:?}"
        );
        robot.step(&[-0.5, -0.5], &mut obs).unwrap();
        assert_eq!(b.with_plant(|p| p.commands()), [-0.5, -0.5]);
        robot.stop(&[0.0, 0.0], &mut obs).unwrap();
        assert_eq!(b.with_plant(Plant::duty), [0, 0]);
    }

    #[test]
    fn the_gyro_reads_the_simulated_yaw_rate() {
        let b = bench();
        let parts = b.parts();
        let mut gyro = parts.gyro;
        gyro.init().unwrap();
        b.plant.borrow_mut().motor(Side::Right).duty = 3000;
        for _ in 0..3 {
            b.plant.borrow_mut().advance();
        }
        let want = b.with_plant(|p| p.yaw_rate);
        let got = gyro.yaw_rate().unwrap().unwrap();
        assert!(
            want > 0.1 && (got - want).abs() <= GYRO_RANGE.rad_s_per_lsb(),
            "{got} vs {want}"
        );
    }

    /// The board logic end to end on the host: the control loop over the robot over the
    /// simulated drivers, then a power cut in the middle of the slot write, then a reboot.
    #[test]
    fn the_control_loop_adapts_the_simulated_robot_and_a_cut_write_keeps_the_old_slot() {
        use crate::adapt::Adapter;
        use crate::control::{Boot, Command, Controller, Event};
        use crate::policy::{GaussianMlp, Policy};
        use crate::recipe::{ActionMap, Advantage, LossScale, Recipe};
        use crate::store::{SimFlash, Slots};
        extern crate std;
        type Pol = GaussianMlp<6, 8, 0, 2>;
        type Flash = SimFlash<2048, 4, 256, 1024>;
        let recipe = Recipe {
            alpha: 0.002,
            steps: 1,
            episodes: 4,
            horizon: 10,
            gamma: 0.99,
            advantage: Advantage::BatchMeanBaseline,
            normalize: true,
            loss: LossScale::PerEpisode,
            action: ActionMap {
                scale: 1.0,
                clip: Some(1.0),
            },
        };
        let mut rng = crate::rng::Rng::new(9);
        let meta: std::vec::Vec<f32> = (0..Pol::N_PARAMS).map(|_| 0.3 * rng.normal()).collect();
        let b = bench();
        let mut parts = b.parts();
        parts.gyro.init().unwrap();
        let config = RobotConfig {
            spec: DiffDriveSpec::NOMINAL,
            commands: CommandSet::Continuous,
            goal: [0.3, 0.1],
            settle: Settle::DEFAULT,
        };
        let mut robot = DiffDriveRobot::new(parts, config);
        let mut mem = std::vec![0.0; recipe.memory(&Pol::SHAPE).total_floats()];
        let mut flash = Flash::new();
        let mut saved = std::vec::Vec::new();
        // Two adaptations; the second one's slot write is cut half-way.
        for round in 0..2 {
            let adapter =
                Adapter::new(Pol::default(), &meta[..], None, recipe, &mut mem, round).unwrap();
            let slots = Slots::new(&mut flash, 0, 1024).unwrap();
            let (mut c, _) = Controller::boot(adapter, &meta[..], 7, Some(slots));
            if round == 1 {
                // The record takes 16 + 4·P + 4 bytes plus a 4-sector erase: cut inside it.
                let ops = 4 + (16 + 4 * Pol::N_PARAMS) / 2;
                c.slots_mut()
                    .unwrap()
                    .flash_mut()
                    .cut_after(Some(ops), 0x0F);
            }
            c.tick(&mut robot, Some(Command::Adapt));
            let mut last = Event::Tick;
            for _ in 0..2000 {
                last = c.tick(&mut robot, None);
                if matches!(last, Event::Guarded { .. } | Event::Fault(_)) {
                    break;
                }
            }
            match (round, last) {
                (0, Event::Guarded { saved: Some(r), .. }) => saved.push(r),
                (1, Event::Fault(crate::control::Fault::Store(_))) => {}
                other => panic!("round {round}: {other:?}"),
            }
            assert_eq!(
                b.with_plant(Plant::duty),
                [0, 0],
                "motors stopped after round {round}"
            );
        }
        flash.cut_after(None, 0xFF);
        let adapter = Adapter::new(Pol::default(), &meta[..], None, recipe, &mut mem, 0).unwrap();
        let slots = Slots::new(&mut flash, 0, 1024).unwrap();
        let (_, boot) = Controller::boot(adapter, &meta[..], 7, Some(slots));
        let first = saved[0];
        match first.policy {
            crate::store::Policy::Meta => assert_eq!(boot, Boot::Meta),
            crate::store::Policy::Adapted { .. } => assert_eq!(boot, Boot::Restored(first)),
        }
    }
}
