//! The board logic end to end on a simulated robot, identical on the host and the device.
//!
//! The core's control loop ([`sgmrl::control::Controller`]) drives a
//! [`sgmrl::robot::DiffDriveRobot`] whose motors, encoders, gyro and clock are the
//! simulated embedded-hal drivers of [`sgmrl::simhw`] around the `DiffDrive` simulator:
//! duty cycles → simulated robot → encoder counts and gyro register reads → observations →
//! tick-by-tick adaptation → guard → the persisted flash slot ([`sgmrl::store`] on a
//! simulated NOR flash) → a reboot that restores it, with the meta-trained diffdrive bundle
//! (`bundles/diffdrive.sgml`, what the real boards run). Depends only on `core` and `sgmrl`:
//! `pins/` includes this file with `#[path]` and prints the host's outcome, the `robot`
//! binary prints the device's, and `run-all.sh` requires them to be equal.

use core::cell::Cell;

use sgmrl::adapt::Adapter;
use sgmrl::bundle::Bundle;
use sgmrl::control::{Active, Boot, Command, Controller, Event};
use sgmrl::env::{Env, Transition};
use sgmrl::guard::Kept;
use sgmrl::policy::{Policy, SoftmaxMlp};
use sgmrl::recipe::{ActionMap, Advantage, LossScale, Recipe};
use sgmrl::robot::{ClockError, ControlClock, DiffDriveParts, DiffDriveRobot, RobotConfig, Settle};
use sgmrl::sim::diffdrive::{CommandSet, DiffDrive, DiffDriveSpec, DiffDriveTask, RobotVariation};
use sgmrl::simhw::SimBench;
use sgmrl::store::{SimFlash, Slots};

/// The policy of the diffdrive bundle (`sgmrl train --preset diffdrive`), the real boards'
/// `type Pol`: observation 6 (odometry), 16 hidden, a softmax over the 6 wheel commands.
pub type RobotPolicy = SoftmaxMlp<6, 16, 0, 6>;
/// Parameter count of [`RobotPolicy`].
pub const ROBOT_PARAMS: usize = <RobotPolicy as Policy>::N_PARAMS;
/// Simulated NOR flash for the slots: word writes, 256-byte pages, 1 KB sectors; two
/// 1 KB slots (2 KB of RAM: the microbit machine has 16 KB).
pub type RobotFlash = SimFlash<2048, 4, 256, 1024>;
/// Bytes per slot.
pub const SLOT_LEN: u32 = 1024;

/// The recipe of `--preset diffdrive` (host-sim's `Preset::Diffdrive`), which the committed
/// `bundles/diffdrive.sgml` carries: ζ = 1 step (α = 10) of N = 20 episodes of H = 40 ticks
/// (4 s at the nominal 10 Hz), the streaming reward-to-go rule, so the adapter holds one
/// episode. [`run_robot`] refuses a bundle with another recipe: the firmware's adapter
/// memory is sized from this one.
pub const ROBOT_RECIPE: Recipe = Recipe {
    alpha: 10.0,
    steps: 1,
    episodes: 20,
    horizon: 40,
    gamma: 0.99,
    advantage: Advantage::RewardToGo,
    normalize: false,
    loss: LossScale::PerEpisode,
    action: ActionMap {
        scale: 1.0,
        clip: Some(1.0),
    },
};

/// Adapter memory for [`ROBOT_RECIPE`], in `f32`s.
pub const ROBOT_MEMORY_FLOATS: usize = ROBOT_RECIPE
    .memory(&<RobotPolicy as Policy>::SHAPE)
    .total_floats();

/// The goal (m, relative to the pose at each reset) and the simulated robot's defects:
/// a weak left motor, inside the training distribution (gains U(0.4, 1.0)).
pub const ROBOT_TASK: DiffDriveTask = DiffDriveTask {
    goal: [0.25, 0.1],
    robot: RobotVariation {
        motor_gain: [0.6, 0.95],
        ..RobotVariation::NOMINAL
    },
};

/// Seed of the adapter's streams in the committed scenario.
pub const ROBOT_SEED: u64 = 2;

/// What one run produced, comparable between host and device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RobotOutcome {
    /// CRC-32 of the adapted parameters right after the step.
    pub adapted_crc: u32,
    /// True when the guard kept the adapted policy.
    pub kept_adapted: bool,
    /// `f32::to_bits` of the guard's meta-policy and adapted-policy mean returns.
    pub means: [u32; 2],
    /// CRC-32 of the parameters running after a reboot on the same flash (the adapted
    /// ones when kept, else the meta-parameters).
    pub restored_crc: u32,
    /// Sequence number of the record the guard wrote.
    pub saved_seq: u32,
    /// Simulated control periods (settle phases included).
    pub plant_ticks: u32,
    /// Controller ticks that played a step.
    pub steps: u32,
}

/// Instructions of one kind of controller tick: the whole tick, and the core's share of it
/// (the tick less the instructions spent inside the control clock's `wait_for_tick`, where
/// the simulated plant's physics runs in place of the hardware's wait for its timer), split
/// into the robot `Env`'s part (drivers, odometry, observation, reward, settle loop) and the
/// rest (the controller and the adapter: `act`, `reward`, `end_episode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spent {
    /// Largest whole tick.
    pub max: u64,
    /// Largest core share.
    pub core_max: u64,
    /// Sum of whole ticks.
    pub sum: u64,
    /// Sum of core shares.
    pub core_sum: u64,
    /// Sum of the robot `Env`'s part of the core shares.
    pub env_sum: u64,
    /// Ticks counted.
    pub n: u64,
}

impl Spent {
    /// Adds a tick of `whole` instructions, `env` of them inside the robot `Env`'s calls
    /// and `plant` of those inside the clock's wait.
    fn add(&mut self, whole: u64, env: u64, plant: u64) {
        let core = whole.saturating_sub(plant);
        self.max = self.max.max(whole);
        self.core_max = self.core_max.max(core);
        self.sum += whole;
        self.core_sum += core;
        self.env_sum += env.saturating_sub(plant);
        self.n += 1;
    }

    /// Mean of the robot `Env`'s part of the core share (0 when none was counted).
    pub fn env_mean(&self) -> u64 {
        self.env_sum / self.n.max(1)
    }

    /// Mean whole tick (0 when none was counted).
    pub fn mean(&self) -> u64 {
        self.sum / self.n.max(1)
    }

    /// Mean core share (0 when none was counted).
    pub fn core_mean(&self) -> u64 {
        self.core_sum / self.n.max(1)
    }
}

/// Instruction counts of the controller's ticks (all zero where nothing counts them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickCosts {
    /// Plain control ticks (act → motors → one control period → sensors → reward), no
    /// episode boundary; an episode's first tick includes its reset (stop and settle).
    pub tick: Spent,
    /// Ticks that ended an episode without a step or a verdict: during adaptation the
    /// streaming rule's gradient of that episode.
    pub episode_end: Spent,
    /// The tick that ended the last adaptation episode and applied the step.
    pub step: Spent,
    /// The tick that ended the last evaluation episode: verdict and flash write.
    pub guard: Spent,
    /// Every tick of the adaptation step, from the first episode's first tick to the tick
    /// that applied the step (the N·H control ticks and the N episode ends).
    pub adaptation: Spent,
    /// The ticks of [`TickCosts::adaptation`] that ended an episode (each runs the streaming
    /// rule's gradient of that episode; the last one also the update).
    pub adaptation_ends: Spent,
}

/// The bench's clock, adding the instructions spent in each wait (the simulated plant's
/// physics) to `plant`.
struct MeteredClock<'a, C> {
    inner: C,
    now: &'a dyn Fn() -> u64,
    plant: &'a Cell<u64>,
}

impl<C: ControlClock> ControlClock for MeteredClock<'_, C> {
    fn wait_for_tick(&mut self) -> Result<(), ClockError> {
        let t0 = (self.now)();
        let r = self.inner.wait_for_tick();
        self.plant
            .set(self.plant.get() + (self.now)().saturating_sub(t0));
        r
    }
}

/// The robot, adding the instructions spent in its `Env` calls to `spent`.
struct MeteredEnv<'a, E> {
    inner: E,
    now: &'a dyn Fn() -> u64,
    spent: &'a Cell<u64>,
}

impl<E> MeteredEnv<'_, E> {
    fn metered<R>(&mut self, f: impl FnOnce(&mut E) -> R) -> R {
        let t0 = (self.now)();
        let r = f(&mut self.inner);
        self.spent
            .set(self.spent.get() + (self.now)().saturating_sub(t0));
        r
    }
}

impl<E: Env> Env for MeteredEnv<'_, E> {
    type Error = E::Error;

    fn obs_dim(&self) -> usize {
        self.inner.obs_dim()
    }

    fn action_width(&self) -> usize {
        self.inner.action_width()
    }

    fn reset(&mut self, obs: &mut [f32]) -> Result<(), E::Error> {
        self.metered(|e| e.reset(obs))
    }

    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> Result<Transition, E::Error> {
        self.metered(|e| e.step(action, obs))
    }

    fn stop(&mut self, action: &[f32], obs: &mut [f32]) -> Result<(), E::Error> {
        self.metered(|e| e.stop(action, obs))
    }
}

/// Runs the scenario on the diffdrive bundle `bundle_bytes` with adapter `memory` (at least
/// [`ROBOT_MEMORY_FLOATS`]), `flash` (erased here first) and adapter seed `seed`
/// ([`ROBOT_SEED`] in the committed scenario); `now` reads an instruction counter (the host
/// passes one returning 0).
pub fn run_robot(
    bundle_bytes: &[u8],
    memory: &mut [f32],
    flash: &mut RobotFlash,
    seed: u64,
    now: &dyn Fn() -> u64,
) -> Result<(RobotOutcome, TickCosts), &'static str> {
    let bundle = Bundle::parse(bundle_bytes).map_err(|_| "bundle rejected")?;
    if bundle.recipe() != ROBOT_RECIPE {
        return Err("the bundle's recipe is not the diffdrive preset's");
    }
    let crc = bundle.checksum();
    let bench = SimBench::new(DiffDrive::new(
        DiffDriveSpec::NOMINAL,
        ROBOT_TASK,
        CommandSet::Continuous,
        true,
    ));
    let parts = bench.parts();
    let plant = Cell::new(0u64);
    let mut parts = DiffDriveParts {
        left_motor: parts.left_motor,
        right_motor: parts.right_motor,
        left_encoder: parts.left_encoder,
        right_encoder: parts.right_encoder,
        gyro: parts.gyro,
        clock: MeteredClock {
            inner: parts.clock,
            now,
            plant: &plant,
        },
    };
    parts.gyro.init().map_err(|_| "gyro init")?;
    let config = RobotConfig {
        spec: DiffDriveSpec::NOMINAL,
        commands: CommandSet::Discrete,
        goal: ROBOT_TASK.goal,
        settle: Settle::DEFAULT,
    };
    let env_spent = Cell::new(0u64);
    let mut robot = MeteredEnv {
        inner: DiffDriveRobot::new(parts, config),
        now,
        spent: &env_spent,
    };

    let mut costs = TickCosts::default();
    *flash = RobotFlash::new();
    let outcome = {
        let adapter = Adapter::from_bundle(RobotPolicy::default(), &bundle, memory, seed)
            .map_err(|_| "adapter")?;
        let slots = Slots::new(&mut *flash, 0, SLOT_LEN).map_err(|_| "slots")?;
        let (mut c, boot) = Controller::boot(adapter, bundle.params(), crc, Some(slots));
        if boot != Boot::Meta {
            return Err("an empty flash must boot the meta-policy");
        }
        let _ = c.tick(&mut robot, Some(Command::Adapt));
        let mut adapted_crc = None;
        let mut steps = 0u32;
        let mut verdict = None;
        for _ in 0..10_000 {
            plant.set(0);
            env_spent.set(0);
            let t0 = now();
            let event = c.tick(&mut robot, None);
            let whole = now().saturating_sub(t0);
            let (env, plant) = (env_spent.get(), plant.get());
            steps += 1;
            if adapted_crc.is_none() {
                costs.adaptation.add(whole, env, plant);
                if matches!(event, Event::Episode { .. } | Event::Stepped { .. }) {
                    costs.adaptation_ends.add(whole, env, plant);
                }
            }
            match event {
                Event::Tick => costs.tick.add(whole, env, plant),
                Event::Stepped { .. } => {
                    costs.step.add(whole, env, plant);
                    adapted_crc = Some(c.adapter().with_params(|p| p.checksum()));
                }
                Event::Guarded { verdict: v, saved } => {
                    costs.guard.add(whole, env, plant);
                    verdict = Some((v, saved));
                    break;
                }
                Event::Episode { .. } => costs.episode_end.add(whole, env, plant),
                Event::Fault(_) => return Err("fault on the simulated robot"),
                Event::Command(_) => return Err("unexpected event"),
            }
        }
        let (v, saved) = verdict.ok_or("no verdict in 10000 ticks")?;
        let saved = saved.ok_or("nothing saved")?;
        let adapted_crc = adapted_crc.ok_or("no step")?;
        let kept_adapted = v.kept == Kept::Adapted;
        if kept_adapted != matches!(c.active(), Active::Adapted { .. }) {
            return Err("the active policy is not the kept one");
        }
        RobotOutcome {
            adapted_crc,
            kept_adapted,
            means: [v.meta.mean().to_bits(), v.adapted.mean().to_bits()],
            restored_crc: 0,
            saved_seq: saved.seq,
            plant_ticks: 0,
            steps,
        }
    };
    // Power cycle: a fresh adapter on the same memory and the flash as it was left.
    let adapter = Adapter::from_bundle(RobotPolicy::default(), &bundle, memory, seed)
        .map_err(|_| "adapter")?;
    let slots = Slots::new(flash, 0, SLOT_LEN).map_err(|_| "slots")?;
    let (c, boot) = Controller::boot(adapter, bundle.params(), crc, Some(slots));
    let restored_crc = c.adapter().with_params(|p| p.checksum());
    match boot {
        Boot::Restored(r) if outcome.kept_adapted && r.params_crc == outcome.adapted_crc => {}
        Boot::Meta if !outcome.kept_adapted => {}
        _ => return Err("the reboot did not restore the kept policy"),
    }
    if outcome.kept_adapted && restored_crc != outcome.adapted_crc {
        return Err("restored parameters differ from the adapted ones");
    }
    Ok((
        RobotOutcome {
            restored_crc,
            plant_ticks: bench.with_plant(|p| p.ticks()),
            ..outcome
        },
        costs,
    ))
}
