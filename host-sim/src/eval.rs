//! Honest evaluation: adapt the meta-policy to each of a fixed set of held-out goals with
//! the core's [`Adapter`] — exactly what the device does, with the bundle's recipe — and
//! measure the mean undiscounted return before adaptation and after each of the ζ steps.
//!
//! Per goal: the adapter plays ζ batches of `N` episodes, stepping after each; the return
//! of batch `k` is the return of the policy after `k` steps (batch 0: the meta-policy).
//! After the last step, `episodes` fresh episodes of the adapted policy give the final
//! return. Goals are independent and run in parallel (rayon); every random draw comes
//! from a stream named by the goal set and the goal's index, and the statistics are
//! summed in goal order, so the report is identical for any number of threads.
//!
//! Goal sets: the held-out set is named by `(eval seed, [HELD_OUT, i])`, validation sets
//! by `(run seed, [VALIDATION, iteration, i])`. Training's streams are
//! `(run seed, [1, iteration, task, …])` (the engine's `streams::TRAIN`), so neither set
//! shares a stream with training whatever the seeds.

use std::convert::Infallible;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;
use sgmrl::adapt::{AdaptError, Adapter};
use sgmrl::env::{Env, Transition};
use sgmrl::policy::Policy;
use sgmrl::rng::Rng;
use sgmrl::sim::diffdrive::{CommandSet, DiffDriveTask};
use sgmrl::sim::{DiffDrive, Nav2d, Nav2dDiscrete};

use crate::config::EnvName;
use crate::envs::DiffDriveFamily;
use crate::model::Model;
use crate::shapes::{PolicyVisitor, UnsupportedShape, with_policy};

/// Stream-name prefixes of evaluation (first element of each stream path).
pub mod streams {
    /// The held-out goal set.
    pub const HELD_OUT: u64 = 0x4845_4C44_4F55_5400;
    /// Validation goal sets drawn during training.
    pub const VALIDATION: u64 = 0x5641_4C49_4441_5400;
    /// Marks a goal draw in a path.
    pub const GOAL: u64 = 0x474F_414C;
    /// Marks the seed of a goal's adapter in a path.
    pub const ADAPT: u64 = 0x0041_4441_5054;
    /// Marks a goal's environment stream (MuJoCo's reset noise) in a path.
    pub const ENV: u64 = 0x0045_4E56;
}

/// A named, reproducible set of goals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoalSet {
    seed: u64,
    path: Vec<u64>,
}

/// Mean return of a policy that never moves, over goals drawn like [`GoalSet`]'s, for
/// episodes of `horizon` steps: the reference a learned policy must beat (learning-curve
/// plots draw it). On both nav2d tasks the point stays at the origin and every step scores
/// −‖g‖, and E‖g‖ for g uniform on `[−0.5, 0.5]²` is (√2 + ln(1 + √2))/6 ≈ 0.3826. (Goals
/// within the 0.01 tolerance of the origin, which would end the episode, have probability
/// 4e-4 and change the mean by less than 1e-5 per step.) `None` for the robot families,
/// whose standing-still return depends on the drawn robot and has no closed form, and for
/// the locomotion families (not a navigation task).
pub fn standing_still_return(env: EnvName, horizon: u16) -> Option<f64> {
    match env {
        EnvName::Nav2d | EnvName::Nav2dDiscrete => {
            let sqrt2 = std::f64::consts::SQRT_2;
            Some(-f64::from(horizon) * (sqrt2 + libm::log(1.0 + sqrt2)) / 6.0)
        }
        EnvName::Diffdrive | EnvName::DiffdriveContinuous => None,
        EnvName::HalfCheetahDir | EnvName::HalfCheetahVel | EnvName::SwimmerVel => None,
    }
}

impl GoalSet {
    /// The held-out test goals named by `seed`.
    pub fn held_out(seed: u64) -> Self {
        Self {
            seed,
            path: vec![streams::HELD_OUT],
        }
    }

    /// Fresh validation goals of a run at `iteration`.
    pub fn validation(run_seed: u64, iteration: u64) -> Self {
        Self {
            seed: run_seed,
            path: vec![streams::VALIDATION, iteration],
        }
    }

    fn rng(&self, i: u64, role: u64) -> Rng {
        let mut p = self.path.clone();
        p.extend([i, role]);
        Rng::derive(self.seed, &p)
    }

    /// Goal `i` of the set.
    pub fn goal(&self, i: u64) -> [f32; 2] {
        Nav2d::sample_goal(&mut self.rng(i, streams::GOAL))
    }

    /// The stream of goal `i`'s environment (reset noise).
    pub fn env_rng(&self, i: u64) -> Rng {
        self.rng(i, streams::ENV)
    }

    /// Task `i` of the set from `source`: for the navigation and locomotion families the
    /// task of goal [`Self::goal`]; for the robot families a goal and a robot from the same
    /// stream.
    pub fn task_env(&self, source: &EnvSource, i: u64) -> TaskEnv {
        match source {
            EnvSource::DiffDrive(commands) => {
                let task = DiffDriveTask::sample(&mut self.rng(i, streams::GOAL));
                TaskEnv::DiffDrive(DiffDriveFamily::env(*commands, &task))
            }
            _ => source.make(self.goal(i), self.env_rng(i)),
        }
    }

    /// Seed of goal `i`'s adapter (names its sampling streams).
    pub fn adapter_seed(&self, i: u64) -> u64 {
        let mut r = self.rng(i, streams::ADAPT);
        (u64::from(r.next_u32()) << 32) | u64::from(r.next_u32())
    }
}

/// Where the goals' environments come from: the task family, built once per evaluation
/// (a MuJoCo family compiles its model and pools its simulator states).
#[derive(Clone, Debug)]
pub enum EnvSource {
    /// Continuous navigation.
    Nav2d,
    /// Discrete navigation.
    Discrete,
    /// The differential-drive robot with this command set.
    DiffDrive(CommandSet),
    /// A MuJoCo locomotion family (feature `mujoco`).
    #[cfg(feature = "mujoco")]
    Locomotion(crate::envs::LocomotionFamily),
}

impl EnvSource {
    /// The source for `env`; MuJoCo tasks fail without the `mujoco` feature.
    pub fn new(env: EnvName) -> Result<Self, EvalError> {
        match env {
            EnvName::Nav2d => Ok(Self::Nav2d),
            EnvName::Nav2dDiscrete => Ok(Self::Discrete),
            EnvName::Diffdrive => Ok(Self::DiffDrive(CommandSet::Discrete)),
            EnvName::DiffdriveContinuous => Ok(Self::DiffDrive(CommandSet::Continuous)),
            #[cfg(feature = "mujoco")]
            EnvName::HalfCheetahDir | EnvName::HalfCheetahVel | EnvName::SwimmerVel => {
                crate::wiring::locomotion_family(env)
                    .map(Self::Locomotion)
                    .map_err(|e| EvalError::Env(e.to_string()))
            }
            #[cfg(not(feature = "mujoco"))]
            EnvName::HalfCheetahDir | EnvName::HalfCheetahVel | EnvName::SwimmerVel => {
                Err(EvalError::Env(format!(
                    "env {env} needs MuJoCo: run `cargo xtask setup-mujoco`, then build with `--features mujoco`"
                )))
            }
        }
    }

    /// The environment of goal `goal`; `rng` drives its randomness (MuJoCo's reset noise).
    /// A robot family gets its nominal robot with that goal.
    /// A locomotion task is drawn from the goal's first coordinate, uniform on
    /// `[−0.5, 0.5)`, by the inverse of the task distribution's CDF.
    pub fn make(&self, goal: [f32; 2], #[allow(unused_variables)] rng: Rng) -> TaskEnv {
        match self {
            Self::Nav2d => TaskEnv::Nav2d(Nav2d::new(goal)),
            Self::Discrete => TaskEnv::Discrete(Nav2dDiscrete::new(goal)),
            Self::DiffDrive(commands) => {
                let task = DiffDriveTask {
                    goal,
                    robot: sgmrl::sim::diffdrive::RobotVariation::NOMINAL,
                };
                TaskEnv::DiffDrive(DiffDriveFamily::env(*commands, &task))
            }
            #[cfg(feature = "mujoco")]
            Self::Locomotion(f) => {
                use crate::envs::TaskFamily;
                let task = f.kind().task_from_uniform((goal[0] + 0.5).clamp(0.0, 1.0));
                TaskEnv::Locomotion(Box::new(f.make_env(&task, rng)))
            }
        }
    }
}

/// One goal's environment, for any task family.
#[derive(Debug)]
pub enum TaskEnv {
    /// Continuous navigation.
    Nav2d(Nav2d),
    /// Discrete navigation.
    Discrete(Nav2dDiscrete),
    /// A simulated differential-drive robot.
    DiffDrive(DiffDrive),
    /// A MuJoCo locomotion task.
    #[cfg(feature = "mujoco")]
    Locomotion(Box<crate::envs::locomotion::LocomotionEnv>),
}

impl TaskEnv {
    /// The task of `env` with goal `goal`; a robot family gets its nominal robot with that
    /// goal, a MuJoCo family the task [`EnvSource::make`] draws from it.
    pub fn new(env: EnvName, goal: [f32; 2]) -> Result<Self, EvalError> {
        Ok(EnvSource::new(env)?.make(goal, Rng::new(0)))
    }

    /// The task's goal position; `None` for a locomotion task, which has none.
    pub fn goal(&self) -> Option<[f32; 2]> {
        match self {
            Self::Nav2d(e) => Some(e.goal()),
            Self::Discrete(e) => Some(e.goal()),
            Self::DiffDrive(e) => Some(e.task().goal),
            #[cfg(feature = "mujoco")]
            Self::Locomotion(_) => None,
        }
    }
}

/// Why a goal's environment failed (only a MuJoCo simulation can).
#[derive(Clone, Debug, PartialEq)]
pub enum TaskEnvError {
    /// The MuJoCo simulation failed (e.g. diverged).
    #[cfg(feature = "mujoco")]
    Locomotion(crate::envs::locomotion::LocomotionError),
}

impl Env for TaskEnv {
    type Error = TaskEnvError;
    fn obs_dim(&self) -> usize {
        match self {
            Self::Nav2d(e) => e.obs_dim(),
            Self::Discrete(e) => e.obs_dim(),
            Self::DiffDrive(e) => e.obs_dim(),
            #[cfg(feature = "mujoco")]
            Self::Locomotion(e) => e.obs_dim(),
        }
    }
    fn action_width(&self) -> usize {
        match self {
            Self::Nav2d(e) => e.action_width(),
            Self::Discrete(e) => e.action_width(),
            Self::DiffDrive(e) => e.action_width(),
            #[cfg(feature = "mujoco")]
            Self::Locomotion(e) => e.action_width(),
        }
    }
    fn reset(&mut self, obs: &mut [f32]) -> Result<(), TaskEnvError> {
        match self {
            Self::Nav2d(e) => {
                infallible(e.reset(obs));
                Ok(())
            }
            Self::Discrete(e) => {
                infallible(e.reset(obs));
                Ok(())
            }
            Self::DiffDrive(e) => {
                infallible(e.reset(obs));
                Ok(())
            }
            #[cfg(feature = "mujoco")]
            Self::Locomotion(e) => e.reset(obs).map_err(TaskEnvError::Locomotion),
        }
    }
    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> Result<Transition, TaskEnvError> {
        match self {
            Self::Nav2d(e) => Ok(infallible(e.step(action, obs))),
            Self::Discrete(e) => Ok(infallible(e.step(action, obs))),
            Self::DiffDrive(e) => Ok(infallible(e.step(action, obs))),
            #[cfg(feature = "mujoco")]
            Self::Locomotion(e) => e.step(action, obs).map_err(TaskEnvError::Locomotion),
        }
    }
}

fn infallible<T>(r: Result<T, Infallible>) -> T {
    match r {
        Ok(t) => t,
        Err(never) => match never {},
    }
}

/// Wraps an environment and records the position (the first two observation scalars)
/// at the start of each episode and after each step.
#[derive(Clone, Debug)]
pub struct Recorder<E> {
    inner: E,
    /// Episodes so far, in order, each a list of positions.
    pub episodes: Vec<Vec<[f32; 2]>>,
}

impl<E: Env> Recorder<E> {
    /// Records `inner`.
    pub fn new(inner: E) -> Self {
        Self {
            inner,
            episodes: Vec::new(),
        }
    }

    fn push(&mut self, obs: &[f32]) {
        let p = [
            obs.first().copied().unwrap_or(0.0),
            obs.get(1).copied().unwrap_or(0.0),
        ];
        if let Some(e) = self.episodes.last_mut() {
            e.push(p);
        }
    }
}

impl<E: Env> Env for Recorder<E> {
    type Error = E::Error;
    fn obs_dim(&self) -> usize {
        self.inner.obs_dim()
    }
    fn action_width(&self) -> usize {
        self.inner.action_width()
    }
    fn reset(&mut self, obs: &mut [f32]) -> Result<(), E::Error> {
        self.inner.reset(obs)?;
        self.episodes.push(Vec::new());
        self.push(obs);
        Ok(())
    }
    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> Result<Transition, E::Error> {
        let t = self.inner.step(action, obs)?;
        self.push(obs);
        Ok(t)
    }
}

/// What adapting to one goal measured.
#[derive(Clone, Debug, PartialEq)]
pub struct GoalOutcome {
    /// The goal.
    pub goal: [f32; 2],
    /// Mean return before adaptation and after each step (`ζ + 1` values); `None` when an
    /// adaptation step was refused as non-finite (the device would keep the previous
    /// parameters).
    pub returns: Option<Vec<f32>>,
    /// Environment steps taken.
    pub env_steps: u64,
    /// Recorded positions of the first episode of each policy (before, after 1..ζ), when
    /// asked for.
    pub paths: Vec<Vec<[f32; 2]>>,
}

/// Evaluation failure.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// No compiled policy type for the model's shape.
    #[error(transparent)]
    Shape(#[from] UnsupportedShape),
    /// The adapter refused the model or recipe (not a per-goal numerical failure).
    #[error("goal {goal}: {error}")]
    Adapt {
        /// Goal index.
        goal: u64,
        /// The adapter's error.
        error: AdaptError<TaskEnvError>,
    },
    /// The environment could not be built.
    #[error("{0}")]
    Env(String),
    /// Every goal's adaptation failed.
    #[error("adaptation produced non-finite parameters on every goal (is alpha too large?)")]
    AllFailed,
}

/// Mean and standard error of a sample.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stat {
    /// Sample mean.
    pub mean: f64,
    /// Standard error of the mean (sample s.d. / √n; 0 for n = 1).
    pub stderr: f64,
    /// Sample size.
    pub n: u32,
}

impl Stat {
    /// Statistics of `xs`, summed in order.
    pub fn of(xs: &[f64]) -> Self {
        let n = xs.len();
        if n == 0 {
            return Self {
                mean: f64::NAN,
                stderr: f64::NAN,
                n: 0,
            };
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let stderr = if n > 1 {
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            (var / n as f64).sqrt()
        } else {
            0.0
        };
        Self {
            mean,
            stderr,
            n: n as u32,
        }
    }
}

/// The evaluation's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    /// CRC-32 of the evaluated meta-parameters' little-endian bytes (identifies the model;
    /// the same checksum as `sgmrl::adapt::ParamsRef::checksum`).
    pub params_crc32: String,
    /// Meta-iterations of the evaluated model.
    pub meta_iterations: u64,
    /// Goals evaluated.
    pub goals: u32,
    /// Seed of the goal set.
    pub seed: u64,
    /// Fresh episodes per goal for the final return.
    pub episodes: u16,
    /// Adaptation steps ζ.
    pub steps: u16,
    /// Return of the meta-policy (before adaptation), over goals.
    pub before: Stat,
    /// Return after each step `k = 1..ζ` (entry `k − 1`), over goals.
    pub after: Vec<Stat>,
    /// Goals whose adaptation was refused as non-finite (left out of the statistics).
    pub failed: u32,
    /// Environment steps taken.
    pub env_steps: u64,
    /// Wall time, seconds.
    pub wall_time_s: f64,
}

impl EvalReport {
    /// Mean return after all ζ steps.
    pub fn final_after(&self) -> Option<Stat> {
        self.after.last().copied()
    }
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} held-out goals (seed {}), mean return ± standard error:",
            self.goals, self.seed
        )?;
        writeln!(
            f,
            "  before adaptation   {:>9.3} ± {:.3}",
            self.before.mean, self.before.stderr
        )?;
        for (k, s) in self.after.iter().enumerate() {
            let label = format!("after {} step{}", k + 1, if k == 0 { "" } else { "s" });
            writeln!(f, "  {label:<19} {:>9.3} ± {:.3}", s.mean, s.stderr)?;
        }
        if self.failed > 0 {
            writeln!(
                f,
                "  {} goal(s) left out: an adaptation step was non-finite or the simulation diverged",
                self.failed
            )?;
        }
        write!(
            f,
            "  ({} env steps in {:.1} s; final return on {} fresh episodes per goal)",
            self.env_steps, self.wall_time_s, self.episodes
        )
    }
}

/// CRC-32 (ISO-HDLC) of parameters as little-endian bytes, formatted `0x…`.
pub fn params_crc32(params: &[f32]) -> String {
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let mut d = crc.digest();
    for x in params {
        d.update(&x.to_le_bytes());
    }
    format!("{:#010x}", d.finalize())
}

/// Adapts `model` to goals `0..goals` of `set` and measures each; `record` keeps the
/// first episode's positions of each policy.
pub fn run_goals(
    model: &Model,
    set: &GoalSet,
    goals: u32,
    episodes: u16,
    record: bool,
) -> Result<Vec<GoalOutcome>, EvalError> {
    let source = EnvSource::new(model.env)?;
    with_policy(
        &model.shape,
        Visitor {
            model,
            set,
            source: &source,
            goals,
            episodes,
            record,
        },
    )?
}

/// The honest evaluation of `model` on `goals` goals of `set`.
pub fn evaluate(
    model: &Model,
    set: &GoalSet,
    goals: u32,
    episodes: u16,
) -> Result<EvalReport, EvalError> {
    let start = Instant::now();
    let outcomes = run_goals(model, set, goals, episodes, false)?;
    let ok: Vec<&Vec<f32>> = outcomes.iter().filter_map(|o| o.returns.as_ref()).collect();
    if ok.is_empty() {
        return Err(EvalError::AllFailed);
    }
    let column = |k: usize| -> Stat {
        let xs: Vec<f64> = ok
            .iter()
            .map(|r| f64::from(r.get(k).copied().unwrap_or(f32::NAN)))
            .collect();
        Stat::of(&xs)
    };
    let steps = model.recipe.steps;
    Ok(EvalReport {
        params_crc32: params_crc32(&model.params),
        meta_iterations: model.iterations,
        goals,
        seed: set.seed,
        episodes,
        steps,
        before: column(0),
        after: (1..=usize::from(steps)).map(column).collect(),
        failed: (outcomes.len() - ok.len()) as u32,
        env_steps: outcomes.iter().map(|o| o.env_steps).sum(),
        wall_time_s: start.elapsed().as_secs_f64(),
    })
}

struct Visitor<'a> {
    model: &'a Model,
    set: &'a GoalSet,
    source: &'a EnvSource,
    goals: u32,
    episodes: u16,
    record: bool,
}

impl PolicyVisitor for Visitor<'_> {
    type Output = Result<Vec<GoalOutcome>, EvalError>;
    fn visit<P: Policy + Default + Copy + Send + Sync + 'static>(self) -> Self::Output {
        (0..u64::from(self.goals))
            .into_par_iter()
            .map(|i| {
                adapt_goal::<P>(
                    self.model,
                    self.set,
                    self.source,
                    i,
                    self.episodes,
                    self.record,
                )
                .map_err(|error| EvalError::Adapt { goal: i, error })
            })
            .collect()
    }
}

/// One goal: ζ adaptation steps with the core adapter, then `episodes` fresh episodes.
fn adapt_goal<P: Policy + Default>(
    model: &Model,
    set: &GoalSet,
    source: &EnvSource,
    i: u64,
    episodes: u16,
    record: bool,
) -> Result<GoalOutcome, AdaptError<TaskEnvError>> {
    let task = set.task_env(source, i);
    // A locomotion task has no goal position: its outcome records the goal draw it was
    // made from.
    let goal = task.goal().unwrap_or_else(|| set.goal(i));
    let recipe = model.recipe;
    let mut memory = vec![0.0f32; recipe.memory(&P::SHAPE).total_floats()];
    let mut adapter = Adapter::new(
        P::default(),
        &model.params[..],
        model.baseline.as_deref(),
        recipe,
        &mut memory,
        set.adapter_seed(i),
    )
    .map_err(AdaptError::with_env)?;
    let mut env = Recorder::new(task);
    let outcome = adapter.run(&mut env).and_then(|report| {
        let after = adapter.evaluate(&mut env, episodes)?;
        let mut r = report.step_returns.to_vec();
        r.push(after);
        Ok(r)
    });
    // A non-finite step or a diverged simulation leaves this goal out (counted).
    let returns = match outcome {
        Ok(r) => Some(r),
        Err(AdaptError::NonFiniteStep | AdaptError::Env(_)) => None,
        Err(e) => return Err(e),
    };
    let env_steps = env
        .episodes
        .iter()
        .map(|e| e.len().saturating_sub(1) as u64)
        .sum();
    let paths = if record {
        let n = usize::from(recipe.episodes);
        (0..=usize::from(recipe.steps))
            .filter_map(|k| env.episodes.get(k * n).cloned())
            .collect()
    } else {
        Vec::new()
    };
    Ok(GoalOutcome {
        goal,
        returns,
        env_steps,
        paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;

    /// A small model with random parameters (evaluation does not care how it was trained).
    fn model(hidden: Vec<u16>) -> Model {
        let mut c = Preset::Embedded.config();
        c.policy.hidden = hidden;
        let n = c.shape().n_params();
        let mut rng = Rng::new(5);
        let params = (0..n).map(|_| 0.3 * rng.normal()).collect();
        Model::from_config(&c, params, 0)
    }

    #[test]
    fn identical_with_one_and_two_threads() {
        let m = model(vec![16]);
        let set = GoalSet::held_out(11);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| evaluate(&m, &set, 24, 4).unwrap())
        };
        let (a, b) = (run(1), run(2));
        assert_eq!(a.before.mean.to_bits(), b.before.mean.to_bits());
        assert_eq!(a.after[0].mean.to_bits(), b.after[0].mean.to_bits());
        assert_eq!(a.env_steps, b.env_steps);
        assert!(a.before.stderr > 0.0 && a.before.mean < 0.0);
    }

    /// The evaluation is the core adapter's: one goal's outcome equals driving
    /// `Adapter::run` + `Adapter::evaluate` by hand with the same seed.
    #[test]
    fn matches_the_core_adapter_by_hand() {
        type P = sgmrl::policy::GaussianMlp<2, 16, 0, 2>;
        let m = model(vec![16]);
        let set = GoalSet::held_out(3);
        let out = run_goals(&m, &set, 3, 5, false).unwrap();
        let mut mem = vec![0.0; m.recipe.memory(&P::SHAPE).total_floats()];
        let mut ad = Adapter::new(
            P::default(),
            &m.params[..],
            None,
            m.recipe,
            &mut mem,
            set.adapter_seed(2),
        )
        .unwrap();
        let mut env = Nav2d::new(set.goal(2));
        let rep = ad.run(&mut env).unwrap();
        let after = ad.evaluate(&mut env, 5).unwrap();
        assert_eq!(out[2].goal, set.goal(2));
        assert_eq!(out[2].returns, Some(vec![rep.step_returns[0], after]));
        let steps = u64::from(rep.env_steps);
        assert!(out[2].env_steps > steps, "{} vs {steps}", out[2].env_steps);
    }

    /// Held-out robots differ from task to task, repeat for the same index, and the
    /// evaluation of a diffdrive model is the core adapter's on that simulated robot.
    #[test]
    fn diffdrive_tasks_are_stable_and_evaluated_by_the_core_adapter() {
        let task =
            |set: &GoalSet, i| match set.task_env(&EnvSource::DiffDrive(CommandSet::Discrete), i) {
                TaskEnv::DiffDrive(e) => *e.task(),
                other => panic!("{other:?}"),
            };
        let h = GoalSet::held_out(1);
        assert_eq!(task(&h, 3), task(&GoalSet::held_out(1), 3));
        assert_ne!(task(&h, 3).robot, task(&h, 4).robot);
        assert_ne!(task(&h, 3), task(&GoalSet::validation(1, 0), 3));

        type P = sgmrl::policy::SoftmaxMlp<6, 16, 0, 6>;
        let mut c = Preset::Diffdrive.config();
        c.recipe.episodes = 4;
        let n = c.shape().n_params();
        let mut rng = Rng::new(9);
        let m = Model::from_config(&c, (0..n).map(|_| 0.3 * rng.normal()).collect(), 0);
        let out = run_goals(&m, &h, 2, 3, false).unwrap();
        let mut mem = vec![0.0; m.recipe.memory(&P::SHAPE).total_floats()];
        let mut ad = Adapter::new(
            P::default(),
            &m.params[..],
            None,
            m.recipe,
            &mut mem,
            h.adapter_seed(1),
        )
        .unwrap();
        let mut env = h.task_env(&EnvSource::DiffDrive(CommandSet::Discrete), 1);
        let rep = ad.run(&mut env).unwrap();
        let after = ad.evaluate(&mut env, 3).unwrap();
        assert_eq!(out[1].goal, task(&h, 1).goal);
        assert_eq!(out[1].returns, Some(vec![rep.step_returns[0], after]));
    }

    #[test]
    fn goal_sets_are_disjoint_and_stable() {
        let h = GoalSet::held_out(1);
        let v = GoalSet::validation(1, 0);
        assert_ne!(h.goal(0), v.goal(0));
        assert_ne!(h.goal(0), h.goal(1));
        assert_eq!(h.goal(7), GoalSet::held_out(1).goal(7));
        for i in 0..100 {
            let g = h.goal(i);
            assert!(g.iter().all(|x| (-0.5..0.5).contains(x)));
        }
    }

    #[test]
    fn records_one_path_per_policy_starting_at_the_origin() {
        let mut m = model(vec![16]);
        m.recipe.steps = 2;
        let out = run_goals(&m, &GoalSet::held_out(2), 2, 3, true).unwrap();
        for o in &out {
            assert_eq!(o.paths.len(), 3);
            for p in &o.paths {
                assert_eq!(p[0], [0.0, 0.0]);
                assert!(p.len() >= 2 && p.len() <= 1 + usize::from(m.recipe.horizon));
            }
            assert_eq!(o.returns.as_ref().unwrap().len(), 3);
        }
    }

    #[test]
    fn discrete_and_paper_shapes_evaluate() {
        let mut c = Preset::PaperTable1.config();
        c.recipe.horizon = 10;
        c.recipe.episodes = 4;
        let mut rng = Rng::new(1);
        let p = (0..c.shape().n_params())
            .map(|_| 0.1 * rng.normal())
            .collect();
        let r = evaluate(&Model::from_config(&c, p, 0), &GoalSet::held_out(1), 3, 2).unwrap();
        assert_eq!(r.after.len(), 1);
        c.env = EnvName::Nav2dDiscrete;
        c.policy.hidden = vec![];
        let p = vec![0.0; c.shape().n_params()];
        let r = evaluate(&Model::from_config(&c, p, 0), &GoalSet::held_out(1), 3, 2).unwrap();
        assert!(r.before.mean.is_finite());
    }

    #[test]
    fn huge_alpha_counts_as_failed_goals() {
        let mut m = model(vec![16]);
        m.recipe.alpha = 3.0e38;
        assert!(matches!(
            evaluate(&m, &GoalSet::held_out(1), 3, 2),
            Err(EvalError::AllFailed)
        ));
    }

    #[test]
    fn report_names_the_model_by_the_core_checksum() {
        let m = model(vec![16]);
        let r = evaluate(&m, &GoalSet::held_out(1), 2, 1).unwrap();
        let core = sgmrl::adapt::ParamsRef::<&[f32]>::Meta(&m.params[..]).checksum();
        assert_eq!(r.params_crc32, format!("{core:#010x}"));
    }

    /// Return of one 20-step episode holding `action` (standing still).
    fn still<E: Env<Error = Infallible>>(mut e: E, action: &[f32]) -> f64 {
        let mut obs = [0.0f32; 2];
        let Ok(()) = e.reset(&mut obs);
        let mut ret = 0.0f64;
        for _ in 0..20 {
            let Ok(t) = e.step(action, &mut obs);
            ret += f64::from(t.reward);
            if t.done {
                break;
            }
        }
        ret
    }

    /// The closed form against the real simulators, standing still on held-out goals.
    #[test]
    fn standing_still_matches_the_simulators() {
        let goals = GoalSet::held_out(5);
        let n = 4000u64;
        for env in [EnvName::Nav2d, EnvName::Nav2dDiscrete] {
            let returns: Vec<f64> = (0..n)
                .map(|i| {
                    let g = goals.goal(i);
                    match env {
                        EnvName::Nav2d => still(Nav2d::new(g), &[0.0, 0.0]),
                        EnvName::Nav2dDiscrete => still(Nav2dDiscrete::new(g), &[0.0]),
                        _ => unreachable!("only the navigation families are iterated"),
                    }
                })
                .collect();
            let s = Stat::of(&returns);
            let want = standing_still_return(env, 20).unwrap();
            assert!((want - -7.652).abs() < 1e-3, "{want}");
            assert!(
                (s.mean - want).abs() < 4.0 * s.stderr,
                "{env:?}: simulated {} ± {}, closed form {want}",
                s.mean,
                s.stderr
            );
        }
    }

    #[test]
    fn stat_is_mean_and_standard_error() {
        let s = Stat::of(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.mean, 2.5);
        // s.d. = √(5/3); s.e. = s.d./2.
        assert!((s.stderr - (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-12);
        assert_eq!(Stat::of(&[7.0]).stderr, 0.0);
    }
}
