//! The board logic end to end on a simulated robot, identical on the host and the device.
//!
//! The core's control loop ([`sgmrl::control::Controller`]) drives a
//! [`sgmrl::robot::DiffDriveRobot`] whose motors, encoders, gyro and clock are the
//! simulated embedded-hal drivers of [`sgmrl::simhw`] around the `DiffDrive` simulator:
//! duty cycles → simulated robot → encoder counts and gyro register reads → observations →
//! tick-by-tick adaptation → guard → the persisted flash slot ([`sgmrl::store`] on a
//! simulated NOR flash) → a reboot that restores it. Depends only on `core` and `sgmrl`:
//! `pins/` includes this file with `#[path]` and prints the host's outcome, the `robot`
//! binary prints the device's, and `run-all.sh` requires them to be equal.

use sgmrl::adapt::Adapter;
use sgmrl::bundle::{Bundle, BundleSpec, TaskId, Trainer};
use sgmrl::control::{Active, Boot, Command, Controller, Event};
use sgmrl::guard::Kept;
use sgmrl::policy::{GaussianMlp, Policy};
use sgmrl::recipe::{ActionMap, Advantage, LossScale, Recipe};
use sgmrl::rng::Rng;
use sgmrl::robot::{DiffDriveRobot, RobotConfig, Settle};
use sgmrl::sim::diffdrive::{CommandSet, DiffDrive, DiffDriveSpec, DiffDriveTask, RobotVariation};
use sgmrl::simhw::SimBench;
use sgmrl::store::{SimFlash, Slots};

/// The policy of the robot test bundle: observation 6 (odometry), 16 hidden, 2 wheel
/// commands.
pub type RobotPolicy = GaussianMlp<6, 16, 0, 2>;
/// Parameter count of [`RobotPolicy`].
pub const ROBOT_PARAMS: usize = <RobotPolicy as Policy>::N_PARAMS;
/// Simulated NOR flash for the slots: word writes, 256-byte pages, 1 KB sectors; two
/// 1 KB slots (2 KB of RAM: the microbit machine has 16 KB).
pub type RobotFlash = SimFlash<2048, 4, 256, 1024>;
/// Bytes per slot.
pub const SLOT_LEN: u32 = 1024;

/// The robot test bundle's recipe: ζ = 1 step of N = 10 episodes of H = 20 ticks (2 s at
/// the nominal 10 Hz), batch-mean baseline with normalisation, α = 0.002, wheel commands
/// clipped to ±1. (Without the baseline, every step of this untrained policy made it
/// worse and the guard kept the meta-policy on every seed tried.)
pub const ROBOT_RECIPE: Recipe = Recipe {
    alpha: 0.002,
    steps: 1,
    episodes: 10,
    horizon: 20,
    gamma: 0.99,
    advantage: Advantage::BatchMeanBaseline,
    normalize: true,
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

/// Encoded length of the robot test bundle.
pub const ROBOT_BUNDLE_LEN: usize = sgmrl::bundle::encoded_len(&<RobotPolicy as Policy>::SHAPE, 0);

/// The goal (m, relative to the pose at each reset) and the simulated robot's defects.
pub const ROBOT_TASK: DiffDriveTask = DiffDriveTask {
    goal: [0.25, 0.1],
    robot: RobotVariation {
        motor_gain: [0.8, 1.05],
        ..RobotVariation::NOMINAL
    },
};

/// Seed of the adapter's streams.
pub const ROBOT_SEED: u64 = 2;

/// Encodes the robot test bundle (`bundles/robot-test.sgml`): weights
/// `WEIGHT_SCALE·N(0,1)` from `Rng::new(77)`, log standard deviations ln 0.3. Not meta-trained: it exercises the
/// board logic, it is not expected to drive well.
pub fn encode_robot_bundle(
    out: &mut [u8; ROBOT_BUNDLE_LEN],
) -> Result<(), sgmrl::bundle::BundleError> {
    let mut params = [0.0f32; ROBOT_PARAMS];
    let act = <RobotPolicy as Policy>::SHAPE.act_dim as usize;
    let mut rng = Rng::new(77);
    let (weights, log_std) = params.split_at_mut(ROBOT_PARAMS - act);
    for w in weights.iter_mut() {
        *w = WEIGHT_SCALE * rng.normal();
    }
    log_std.fill(libm_ln_0_3());
    BundleSpec {
        shape: <RobotPolicy as Policy>::SHAPE,
        recipe: ROBOT_RECIPE,
        task: TaskId::DIFFDRIVE,
        trainer: Trainer::Unknown,
        seed: 77,
        meta_iterations: 0,
        baseline: None,
        params: &params,
    }
    .encode_into(out)
    .map(|_| ())
}

/// Standard deviation of the test bundle's weights.
const WEIGHT_SCALE: f32 = 0.3;

/// ln 0.3 as an `f32` literal (the same bits everywhere).
const fn libm_ln_0_3() -> f32 {
    -1.203_972_8
}

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

/// Instruction counts of the controller's ticks (all zero where nothing counts them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickCosts {
    /// Largest plain control tick (act → motors → one simulated period → sensors →
    /// reward), no episode boundary.
    pub tick_max: u64,
    /// Sum and count of plain ticks (for the mean).
    pub tick_sum: u64,
    /// Plain ticks counted.
    pub ticks: u64,
    /// The tick that ended the last adaptation episode and applied the step.
    pub step: u64,
    /// The tick that ended the last evaluation episode: verdict and flash write.
    pub guard: u64,
}

/// Runs the scenario with adapter `memory` (at least [`ROBOT_MEMORY_FLOATS`]) and `flash`
/// (erased here first); `count` runs a closure and returns the instructions it took (the
/// host passes one returning 0).
pub fn run_robot(
    bundle_bytes: &[u8],
    memory: &mut [f32],
    flash: &mut RobotFlash,
    count: &mut dyn FnMut(&mut dyn FnMut()) -> u64,
) -> Result<(RobotOutcome, TickCosts), &'static str> {
    let bundle = Bundle::parse(bundle_bytes).map_err(|_| "bundle rejected")?;
    let crc = bundle.checksum();
    let bench = SimBench::new(DiffDrive::new(
        DiffDriveSpec::NOMINAL,
        ROBOT_TASK,
        CommandSet::Continuous,
        true,
    ));
    let mut parts = bench.parts();
    parts.gyro.init().map_err(|_| "gyro init")?;
    let config = RobotConfig {
        spec: DiffDriveSpec::NOMINAL,
        commands: CommandSet::Continuous,
        goal: ROBOT_TASK.goal,
        settle: Settle::DEFAULT,
    };
    let mut robot = DiffDriveRobot::new(parts, config);

    let mut costs = TickCosts::default();
    *flash = RobotFlash::new();
    let outcome = {
        let adapter = Adapter::from_bundle(RobotPolicy::default(), &bundle, memory, ROBOT_SEED)
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
            let mut event = None;
            let instr = count(&mut || event = Some(c.tick(&mut robot, None)));
            steps += 1;
            match event {
                Some(Event::Tick) => {
                    costs.tick_max = costs.tick_max.max(instr);
                    costs.tick_sum += instr;
                    costs.ticks += 1;
                }
                Some(Event::Stepped { .. }) => {
                    costs.step = instr;
                    adapted_crc = Some(c.adapter().with_params(|p| p.checksum()));
                }
                Some(Event::Guarded { verdict: v, saved }) => {
                    costs.guard = instr;
                    verdict = Some((v, saved));
                    break;
                }
                Some(Event::Episode { .. }) => {}
                Some(Event::Fault(_)) => return Err("fault on the simulated robot"),
                Some(Event::Command(_)) | None => return Err("unexpected event"),
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
    let adapter = Adapter::from_bundle(RobotPolicy::default(), &bundle, memory, ROBOT_SEED)
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
