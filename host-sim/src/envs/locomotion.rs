//! MuJoCo locomotion task families of the paper's Table 2 (feature `mujoco`):
//! HalfCheetah with a random direction, HalfCheetah with a random target velocity and
//! Swimmer with a random target velocity.
//!
//! Everything follows `experiments.md` (the MAML-RL definitions the paper used), on the
//! model files of the `gymnasium` 1.4.0 wheel (`cargo xtask setup-mujoco`, embedded in the
//! binary at build time):
//!
//! | task | observation | reward per step | frame skip (timestep 0.01) |
//! |---|---|---|---|
//! | HalfCheetah direction `d ∈ {−1, +1}` | `qpos[1:]`, `qvel` (17) | `d·Δx/dt − 0.05‖a‖²` | 5 (dt = 0.05) |
//! | HalfCheetah velocity `v* ~ U[0, 3]` | as above | `−|Δx/dt − v*| − 0.05‖a‖²` | 5 |
//! | Swimmer velocity `v* ~ U[0.1, 0.2]` | `qpos[2:]`, `qvel` (8) | `−|Δx/dt − v*| − 1e-4‖a‖²` | 4 (dt = 0.04) |
//!
//! `x` is `qpos[0]` (the root's slide joint along x) and `a` the action the simulator
//! applies: the environment takes actions in `[−1, 1]` (the actuators' control range; the
//! recipe's action map `clip(u/10, −1, 1)` produces them) and clamps anything outside.
//! Reset noise: HalfCheetah `qpos += U(−0.1, 0.1)`, `qvel += 0.1·N(0, 1)`; Swimmer `qpos`,
//! `qvel += U(−0.1, 0.1)`, drawn from the episode's own stream. Episodes never end early
//! (fixed horizon).
//!
//! The Swimmer reward is the corrected `−|v − v*|`: the paper's companion code rewards
//! `+|v − v*|` (a sign error that pays the swimmer for missing the target), so its
//! Swimmer numbers are not of the same objective.
//!
//! One simulator state ([`MjData`]) is made per concurrently running episode and reused
//! across episodes: a family keeps a pool, an environment takes one when it is made and
//! gives it back when dropped, and every reset starts from MuJoCo's full `mj_resetData`, so
//! which state object an episode gets never changes its numbers.
//!
//! A step whose physics goes unstable — MuJoCo's bad-`qpos`/`qvel`/`qacc` warnings (MuJoCo
//! silently resets the state when they fire) or any non-finite or huge (`> 1e6`) position or
//! velocity — fails with [`LocomotionError::Unstable`]; [`TaskFamily::is_unstable`] tells
//! the trainer to drop that task from the meta-batch rather than stop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mujoco_rs::mujoco_c::mjtWarning;
use mujoco_rs::wrappers::{MjData, MjModel};
use sgmrl::env::{Env, Transition};
use sgmrl::rng::Rng;

use super::TaskFamily;

/// The MuJoCo release `mujoco-rs` 7.0.0's bindings were generated for; a library of any
/// other version is refused (its structures differ).
pub const MUJOCO_VERSION: &str = "3.17.0";

/// A position or velocity beyond this magnitude counts as unstable physics. The robots'
/// states stay within a few hundred here (joint speeds, metres travelled in an episode).
pub const MAX_STATE: f64 = 1e6;

const HALF_CHEETAH_XML: &str =
    include_str!(concat!(env!("SGMRL_MUJOCO_MODELS"), "/half_cheetah.xml"));
const SWIMMER_XML: &str = include_str!(concat!(env!("SGMRL_MUJOCO_MODELS"), "/swimmer.xml"));

/// Which of the three Table 2 task families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Locomotion {
    /// HalfCheetah, run in direction `d ∈ {−1, +1}` (each with probability ½).
    HalfCheetahDirection,
    /// HalfCheetah, run at `v* ~ U[0, 3]` m/s.
    HalfCheetahVelocity,
    /// Swimmer, swim at `v* ~ U[0.1, 0.2]` m/s (corrected reward sign).
    SwimmerVelocity,
}

impl Locomotion {
    /// All three, in Table 2's order.
    pub const ALL: [Self; 3] = [
        Self::HalfCheetahDirection,
        Self::HalfCheetahVelocity,
        Self::SwimmerVelocity,
    ];

    const fn is_cheetah(self) -> bool {
        !matches!(self, Self::SwimmerVelocity)
    }

    /// Observation length: 17 (HalfCheetah) or 8 (Swimmer).
    pub const fn obs_dim(self) -> usize {
        if self.is_cheetah() { 17 } else { 8 }
    }

    /// Actuators: 6 (HalfCheetah) or 2 (Swimmer).
    pub const fn action_dim(self) -> usize {
        if self.is_cheetah() { 6 } else { 2 }
    }

    /// Physics steps per action.
    pub const fn frame_skip(self) -> usize {
        if self.is_cheetah() { 5 } else { 4 }
    }

    /// Weight of `‖a‖²` in the reward.
    pub const fn control_cost(self) -> f64 {
        if self.is_cheetah() { 0.05 } else { 1e-4 }
    }

    /// Leading `qpos` entries left out of the observation (the root's position).
    const fn hidden_qpos(self) -> usize {
        if self.is_cheetah() { 1 } else { 2 }
    }

    fn xml(self) -> &'static str {
        if self.is_cheetah() {
            HALF_CHEETAH_XML
        } else {
            SWIMMER_XML
        }
    }

    /// The task parameter (direction `d` or target velocity `v*`) for a uniform draw
    /// `u ∈ [0, 1)`: the inverse of the task distribution's CDF.
    pub fn task_from_uniform(self, u: f32) -> f32 {
        match self {
            Self::HalfCheetahDirection => {
                if u < 0.5 {
                    -1.0
                } else {
                    1.0
                }
            }
            Self::HalfCheetahVelocity => 3.0 * u,
            Self::SwimmerVelocity => 0.1 + 0.1 * u,
        }
    }

    /// Reward of one action from the root's displacement `dx` over `dt` and the applied
    /// action `a`, for task parameter `task` (`d` or `v*`).
    pub fn reward(self, task: f32, dx: f64, dt: f64, a: &[f64]) -> f64 {
        let v = dx / dt;
        let cost = self.control_cost() * a.iter().map(|x| x * x).sum::<f64>();
        match self {
            Self::HalfCheetahDirection => f64::from(task) * v - cost,
            Self::HalfCheetahVelocity | Self::SwimmerVelocity => {
                -(v - f64::from(task)).abs() - cost
            }
        }
    }
}

/// Why MuJoCo could not be used, or an episode failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LocomotionError {
    /// The loaded `libmujoco` is another version than the bindings expect.
    #[error(
        "libmujoco is version {found}, but mujoco-rs needs exactly {MUJOCO_VERSION}; run `cargo xtask setup-mujoco` and do not point LD_LIBRARY_PATH at another MuJoCo"
    )]
    Version {
        /// What `mj_versionString` reported.
        found: String,
    },
    /// MuJoCo rejected the model file.
    #[error("MuJoCo could not load the model: {0}")]
    Model(String),
    /// MuJoCo could not allocate a simulator state.
    #[error("MuJoCo could not allocate a simulator state")]
    Allocation,
    /// The action has the wrong length or a NaN.
    #[error("action must be {expected} finite numbers")]
    BadAction {
        /// Actuators of the robot.
        expected: usize,
    },
    /// The physics diverged during step `step` of the episode.
    #[error("simulator went unstable at step {step}: {what}")]
    Unstable {
        /// Actions taken in the episode before the failing one.
        step: u32,
        /// What was detected.
        what: &'static str,
    },
}

/// Checks that the linked library is MuJoCo [`MUJOCO_VERSION`] (a clear error rather than
/// `mujoco-rs`'s panic).
pub fn check_version(found: &str) -> Result<(), LocomotionError> {
    if found == MUJOCO_VERSION {
        Ok(())
    } else {
        Err(LocomotionError::Version {
            found: found.to_owned(),
        })
    }
}

type Data = MjData<Arc<MjModel>>;

/// A Table 2 task family: the compiled model and a pool of simulator states.
#[derive(Clone)]
pub struct LocomotionFamily {
    kind: Locomotion,
    model: Arc<MjModel>,
    pool: Arc<Mutex<Vec<Data>>>,
    dt: f64,
    physics_ns: Arc<AtomicU64>,
}

impl core::fmt::Debug for LocomotionFamily {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LocomotionFamily")
            .field("kind", &self.kind)
            .field("dt", &self.dt)
            .finish_non_exhaustive()
    }
}

impl LocomotionFamily {
    /// Loads the family's model after checking the MuJoCo version.
    pub fn new(kind: Locomotion) -> Result<Self, LocomotionError> {
        Self::build(kind, None)
    }

    /// The same family with another physics timestep (seconds; the models' own is 0.01).
    /// A far too large one makes the simulation diverge for real, which the tests use.
    pub fn with_timestep(kind: Locomotion, timestep: f64) -> Result<Self, LocomotionError> {
        Self::build(kind, Some(timestep))
    }

    fn build(kind: Locomotion, timestep: Option<f64>) -> Result<Self, LocomotionError> {
        check_version(mujoco_rs::mujoco_version())?;
        let mut model = MjModel::from_xml_string(kind.xml())
            .map_err(|e| LocomotionError::Model(crate::config::one_line(&format!("{e:?}"))))?;
        if let Some(t) = timestep {
            model.opt_mut().timestep = t;
        }
        let dt = model.ffi().opt.timestep * kind.frame_skip() as f64;
        Ok(Self {
            kind,
            model: Arc::new(model),
            pool: Arc::new(Mutex::new(Vec::new())),
            dt,
            physics_ns: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Which family.
    pub fn kind(&self) -> Locomotion {
        self.kind
    }

    /// Seconds of simulated time per action (`timestep × frame skip`).
    pub fn dt(&self) -> f64 {
        self.dt
    }

    /// CPU seconds (thread CPU time) spent inside MuJoCo's `mj_step` by all of this
    /// family's environments so far, summed over threads (for the speed benchmark).
    pub fn physics_seconds(&self) -> f64 {
        self.physics_ns.load(Ordering::Relaxed) as f64 * 1e-9
    }

    /// Simulator states waiting in the pool (made earlier, not in use now).
    pub fn pooled_states(&self) -> usize {
        self.pool.lock().map_or(0, |p| p.len())
    }

    fn take_data(&self) -> Option<Data> {
        let reused = self.pool.lock().ok().and_then(|mut p| p.pop());
        reused.or_else(|| MjData::try_new(Arc::clone(&self.model)).ok())
    }
}

impl TaskFamily for LocomotionFamily {
    /// The direction `d` or the target velocity `v*`.
    type Task = f32;
    type Env = LocomotionEnv;
    fn obs_dim(&self) -> usize {
        self.kind.obs_dim()
    }
    fn action_width(&self) -> usize {
        self.kind.action_dim()
    }
    fn sample_task(&self, rng: &mut Rng) -> f32 {
        self.kind.task_from_uniform(rng.uniform())
    }
    fn make_env(&self, task: &f32, rng: Rng) -> LocomotionEnv {
        LocomotionEnv {
            kind: self.kind,
            task: *task,
            dt: self.dt,
            data: self.take_data(),
            pool: Arc::clone(&self.pool),
            physics_ns: Arc::clone(&self.physics_ns),
            rng,
            steps: 0,
            action: vec![0.0; self.kind.action_dim()],
        }
    }
    fn is_unstable(&self, error: &LocomotionError) -> bool {
        matches!(error, LocomotionError::Unstable { .. })
    }
}

/// One episode of a locomotion task; its simulator state goes back to the family's pool
/// when dropped.
pub struct LocomotionEnv {
    kind: Locomotion,
    task: f32,
    dt: f64,
    data: Option<Data>,
    pool: Arc<Mutex<Vec<Data>>>,
    physics_ns: Arc<AtomicU64>,
    rng: Rng,
    steps: u32,
    action: Vec<f64>,
}

impl core::fmt::Debug for LocomotionEnv {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LocomotionEnv")
            .field("kind", &self.kind)
            .field("task", &self.task)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

impl Drop for LocomotionEnv {
    fn drop(&mut self) {
        if let (Some(d), Ok(mut pool)) = (self.data.take(), self.pool.lock()) {
            pool.push(d);
        }
    }
}

impl LocomotionEnv {
    /// The task parameter (`d` or `v*`).
    pub fn task(&self) -> f32 {
        self.task
    }

    /// Generalised positions and velocities (`qpos`, `qvel`), if the state exists.
    pub fn state(&self) -> Option<(&[f64], &[f64])> {
        self.data.as_ref().map(|d| (d.qpos(), d.qvel()))
    }

    /// Overwrites positions and velocities (lengths `nq`, `nv`; extra or missing entries
    /// are ignored), e.g. to replay a state; `obs` receives the new observation.
    pub fn set_state(
        &mut self,
        qpos: &[f64],
        qvel: &[f64],
        obs: &mut [f32],
    ) -> Result<(), LocomotionError> {
        let d = self.data.as_mut().ok_or(LocomotionError::Allocation)?;
        for (q, &x) in d.qpos_mut().iter_mut().zip(qpos) {
            *q = x;
        }
        for (q, &x) in d.qvel_mut().iter_mut().zip(qvel) {
            *q = x;
        }
        self.write_obs(obs);
        Ok(())
    }

    fn write_obs(&self, obs: &mut [f32]) {
        if let Some(d) = &self.data {
            let pos = d.qpos().iter().skip(self.kind.hidden_qpos());
            for (o, &x) in obs.iter_mut().zip(pos.chain(d.qvel())) {
                *o = x as f32;
            }
        }
    }
}

const BAD_STATE_WARNINGS: [(mjtWarning, &str); 3] = [
    (mjtWarning::mjWARN_BADQPOS, "MuJoCo reported a bad qpos"),
    (mjtWarning::mjWARN_BADQVEL, "MuJoCo reported a bad qvel"),
    (mjtWarning::mjWARN_BADQACC, "MuJoCo reported a bad qacc"),
];

fn instability(d: &Data) -> Option<&'static str> {
    let warnings = &d.ffi().warning;
    for (w, what) in BAD_STATE_WARNINGS {
        if warnings.get(w as usize).is_some_and(|s| s.number > 0) {
            return Some(what);
        }
    }
    let bad = |x: &f64| !x.is_finite() || x.abs() > MAX_STATE;
    if d.qpos().iter().any(bad) || d.qvel().iter().any(bad) {
        return Some("non-finite or huge position or velocity");
    }
    None
}

impl Env for LocomotionEnv {
    type Error = LocomotionError;
    fn obs_dim(&self) -> usize {
        self.kind.obs_dim()
    }
    fn action_width(&self) -> usize {
        self.kind.action_dim()
    }
    fn reset(&mut self, obs: &mut [f32]) -> Result<(), LocomotionError> {
        let d = self.data.as_mut().ok_or(LocomotionError::Allocation)?;
        d.reset();
        let cheetah = self.kind.is_cheetah();
        for q in d.qpos_mut() {
            *q += f64::from(self.rng.uniform_in(-0.1, 0.1));
        }
        for q in d.qvel_mut() {
            *q += if cheetah {
                0.1 * f64::from(self.rng.normal())
            } else {
                f64::from(self.rng.uniform_in(-0.1, 0.1))
            };
        }
        self.steps = 0;
        self.write_obs(obs);
        Ok(())
    }
    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> Result<Transition, LocomotionError> {
        let expected = self.kind.action_dim();
        if action.len() != expected || action.iter().any(|a| !a.is_finite()) {
            return Err(LocomotionError::BadAction { expected });
        }
        for (a, &u) in self.action.iter_mut().zip(action) {
            *a = f64::from(u).clamp(-1.0, 1.0);
        }
        let step = self.steps;
        let d = self.data.as_mut().ok_or(LocomotionError::Allocation)?;
        let x0 = d.qpos().first().copied().unwrap_or(0.0);
        d.ctrl_mut().copy_from_slice(&self.action);
        let start = crate::bench::thread_cpu_time();
        let mut diverged = None;
        for _ in 0..self.kind.frame_skip() {
            d.step();
            diverged = instability(d);
            if diverged.is_some() {
                break;
            }
        }
        let spent = crate::bench::thread_cpu_time().saturating_sub(start);
        let ns = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        self.physics_ns.fetch_add(ns, Ordering::Relaxed);
        if let Some(what) = diverged {
            return Err(LocomotionError::Unstable { step, what });
        }
        let x1 = d.qpos().first().copied().unwrap_or(0.0);
        let reward = self.kind.reward(self.task, x1 - x0, self.dt, &self.action);
        self.steps += 1;
        self.write_obs(obs);
        Ok(Transition {
            reward: reward as f32,
            done: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(kind: Locomotion) -> LocomotionFamily {
        LocomotionFamily::new(kind).unwrap()
    }

    #[test]
    fn the_linked_library_is_the_expected_version_and_others_are_refused() {
        assert_eq!(mujoco_rs::mujoco_version(), MUJOCO_VERSION);
        let e = check_version("3.3.7").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("3.3.7") && msg.contains("setup-mujoco"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn models_have_the_documented_sizes_and_timing() {
        for kind in Locomotion::ALL {
            let f = family(kind);
            let m = f.model.ffi();
            let (nq, nv, nu) = (m.nq as usize, m.nv as usize, m.nu as usize);
            assert_eq!(nq - kind.hidden_qpos() + nv, kind.obs_dim(), "{kind:?}");
            assert_eq!(nu, kind.action_dim(), "{kind:?}");
            assert!((m.opt.timestep - 0.01).abs() < 1e-12);
            let dt = if kind.is_cheetah() { 0.05 } else { 0.04 };
            assert!((f.dt() - dt).abs() < 1e-12);
        }
    }

    #[test]
    fn task_distributions_cover_their_ranges() {
        let mut rng = Rng::new(4);
        let f = Locomotion::HalfCheetahVelocity;
        let v: Vec<f32> = (0..2000)
            .map(|_| f.task_from_uniform(rng.uniform()))
            .collect();
        assert!(v.iter().all(|&x| (0.0..3.0).contains(&x)));
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        assert!((mean - 1.5).abs() < 0.1, "{mean}");
        let s = Locomotion::SwimmerVelocity;
        assert!((s.task_from_uniform(0.0) - 0.1).abs() < 1e-7);
        assert!((s.task_from_uniform(0.999_999) - 0.2).abs() < 1e-6);
        let d = Locomotion::HalfCheetahDirection;
        assert_eq!(
            (d.task_from_uniform(0.2), d.task_from_uniform(0.7)),
            (-1.0, 1.0)
        );
    }

    /// A step's observation and reward against the simulator's own state: the observation
    /// is `qpos[k:]` then `qvel`, the reward the displacement of `qpos[0]` over dt minus the
    /// control cost, computed here by hand.
    #[test]
    fn a_step_matches_a_hand_computation_from_the_state() {
        for (kind, task) in [
            (Locomotion::HalfCheetahDirection, -1.0f32),
            (Locomotion::HalfCheetahVelocity, 2.0),
            (Locomotion::SwimmerVelocity, 0.15),
        ] {
            let f = family(kind);
            let mut env = f.make_env(&task, Rng::new(9));
            let mut obs = vec![0.0f32; kind.obs_dim()];
            env.reset(&mut obs).unwrap();
            let (q0, v0) = env.state().map(|(q, v)| (q.to_vec(), v.to_vec())).unwrap();
            // Reset noise: within ±0.1 of the model's rest pose (qpos0 is 0 for both).
            assert!(q0.iter().all(|x| x.abs() <= 0.1));
            assert!(q0.iter().any(|&x| x != 0.0) && v0.iter().any(|&x| x != 0.0));
            let hidden = kind.hidden_qpos();
            let expect: Vec<f32> = q0[hidden..].iter().chain(&v0).map(|&x| x as f32).collect();
            assert_eq!(obs, expect);

            // 1.5 is clamped to the control range.
            let action: Vec<f32> = (0..kind.action_dim())
                .map(|i| [0.3, -0.7, 1.5][i % 3])
                .collect();
            let applied: Vec<f64> = action
                .iter()
                .map(|&a| f64::from(a).clamp(-1.0, 1.0))
                .collect();
            let tr = env.step(&action, &mut obs).unwrap();
            let (q1, v1) = env.state().map(|(q, v)| (q.to_vec(), v.to_vec())).unwrap();
            let dt = if kind.is_cheetah() { 0.05 } else { 0.04 };
            let speed = (q1[0] - q0[0]) / dt;
            let sq: f64 = applied.iter().map(|a| a * a).sum();
            let hand = match kind {
                Locomotion::HalfCheetahDirection => f64::from(task) * speed - 0.05 * sq,
                Locomotion::HalfCheetahVelocity => -(speed - f64::from(task)).abs() - 0.05 * sq,
                Locomotion::SwimmerVelocity => -(speed - f64::from(task)).abs() - 1e-4 * sq,
            };
            assert!(
                (f64::from(tr.reward) - hand).abs() <= 1e-5 * (1.0 + hand.abs()),
                "{kind:?}: {} vs {hand}",
                tr.reward
            );
            assert!(!tr.done);
            let expect: Vec<f32> = q1[hidden..].iter().chain(&v1).map(|&x| x as f32).collect();
            assert_eq!(obs, expect);
            assert_ne!(q1, q0, "the robot moved");
        }
    }

    #[test]
    fn episodes_are_reproducible_and_reusing_a_state_changes_nothing() {
        let f = family(Locomotion::HalfCheetahVelocity);
        let run = |f: &LocomotionFamily| {
            let mut env = f.make_env(&1.0, Rng::new(3));
            let mut obs = vec![0.0f32; 17];
            env.reset(&mut obs).unwrap();
            let mut rewards = Vec::new();
            for t in 0..30 {
                let a: Vec<f32> = (0..6).map(|i| ((t * 7 + i) as f32 * 0.37).sin()).collect();
                rewards.push(env.step(&a, &mut obs).unwrap().reward);
            }
            (rewards, obs)
        };
        let first = run(&f);
        assert_eq!(f.pooled_states(), 1, "the state went back to the pool");
        // The pooled state (left mid-episode by the first run) gives the same episode.
        assert_eq!(run(&f), first);
        assert_eq!(f.pooled_states(), 1);
        assert_eq!(run(&family(Locomotion::HalfCheetahVelocity)), first);
    }

    #[test]
    fn a_diverging_simulator_is_a_typed_error_and_the_state_recovers() {
        let f = family(Locomotion::HalfCheetahDirection);
        let mut env = f.make_env(&1.0, Rng::new(1));
        let mut obs = vec![0.0f32; 17];
        env.reset(&mut obs).unwrap();
        let nv = env.state().unwrap().1.len();
        let qpos = env.state().unwrap().0.to_vec();
        env.set_state(&qpos, &vec![1e30; nv], &mut obs).unwrap();
        let e = env.step(&[0.0; 6], &mut obs).unwrap_err();
        assert!(
            matches!(e, LocomotionError::Unstable { step: 0, .. }),
            "{e:?}"
        );
        assert!(f.is_unstable(&e));
        // NaN actions are refused before they reach MuJoCo.
        let e = env
            .step(&[f32::NAN, 0.0, 0.0, 0.0, 0.0, 0.0], &mut obs)
            .unwrap_err();
        assert_eq!(e, LocomotionError::BadAction { expected: 6 });
        assert!(!f.is_unstable(&e));
        // The next episode on the same state is normal again.
        env.reset(&mut obs).unwrap();
        assert!(env.step(&[0.1; 6], &mut obs).is_ok());
        assert!(obs.iter().all(|x| x.is_finite()));
    }
}
