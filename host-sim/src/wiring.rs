//! Where the meta-training engine is linked into the command-line tool: the
//! [`crate::train::Engine`] implementation over [`MetaTrainer`].

use anyhow::{anyhow, bail};
use sgmrl::rng::Rng;

use crate::checkpoint::OptimizerState;
use crate::config::{AlgorithmName, Config, EnvName};
use crate::envs::{DiffDriveFamily, Nav2dDiscreteFamily, Nav2dFamily, TaskFamily};
use crate::kernels::Net;
use crate::meta::{Algorithm, MetaTrainer, Order};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::train::{Engine, EngineFactory, EngineInit, IterationStats};
use sgmrl::sim::diffdrive::CommandSet;

/// Stream naming θ₀: `(seed, [INIT])`, apart from training's `[TRAIN = 1, …]`.
const INIT: u64 = 0x494E_4954;

/// The engine factory the CLI uses.
pub fn engine_factory() -> Option<EngineFactory> {
    Some(build)
}

fn build(c: &Config) -> anyhow::Result<EngineInit> {
    with_trainer(c, Plain)
}

/// Receives the meta-trainer a configuration describes, whatever its task family.
pub trait TrainerVisitor {
    /// What the visit produces.
    type Output;
    /// Called with the trainer (at θ₀) and θ₀.
    fn visit<F: TaskFamily + 'static>(
        self,
        trainer: MetaTrainer<F>,
        params: Vec<f32>,
    ) -> anyhow::Result<Self::Output>;
}

/// Builds the meta-trainer and θ₀ of a validated configuration and hands them to `visitor`
/// (the single-process engine, and `distributed`'s leader and workers, all start here).
pub fn with_trainer<V: TrainerVisitor>(c: &Config, visitor: V) -> anyhow::Result<V::Output> {
    match c.env {
        EnvName::Nav2d => trainer_for(c, Nav2dFamily, visitor),
        EnvName::Nav2dDiscrete => trainer_for(c, Nav2dDiscreteFamily, visitor),
        EnvName::HalfCheetahDir | EnvName::HalfCheetahVel | EnvName::SwimmerVel => {
            trainer_for(c, locomotion_family(c.env)?, visitor)
        }
        EnvName::Diffdrive => trainer_for(
            c,
            DiffDriveFamily {
                commands: CommandSet::Discrete,
            },
            visitor,
        ),
        EnvName::DiffdriveContinuous => trainer_for(
            c,
            DiffDriveFamily {
                commands: CommandSet::Continuous,
            },
            visitor,
        ),
    }
}

struct Plain;
impl TrainerVisitor for Plain {
    type Output = EngineInit;
    fn visit<F: TaskFamily + 'static>(
        self,
        trainer: MetaTrainer<F>,
        params: Vec<f32>,
    ) -> anyhow::Result<EngineInit> {
        Ok(EngineInit {
            engine: Box::new(MetaEngine(trainer)),
            params,
        })
    }
}

/// Environment variable that replaces the MuJoCo models' physics timestep (seconds; their
/// own is 0.01) in every MuJoCo family this process builds: a stress knob, not a setting
/// (it is not part of a run's configuration). A far too large one makes simulations
/// diverge for real, which the multi-rank test of dropped tasks uses.
pub const TIMESTEP_VARIABLE: &str = "SGMRL_MUJOCO_TIMESTEP";

/// The MuJoCo family of a Table 2 env name (with [`TIMESTEP_VARIABLE`]'s timestep when set).
#[cfg(feature = "mujoco")]
pub fn locomotion_family(env: EnvName) -> anyhow::Result<crate::envs::LocomotionFamily> {
    use crate::envs::{Locomotion, LocomotionFamily};
    let kind = match env {
        EnvName::HalfCheetahDir => Locomotion::HalfCheetahDirection,
        EnvName::HalfCheetahVel => Locomotion::HalfCheetahVelocity,
        EnvName::SwimmerVel => Locomotion::SwimmerVelocity,
        EnvName::Nav2d
        | EnvName::Nav2dDiscrete
        | EnvName::Diffdrive
        | EnvName::DiffdriveContinuous => bail!("{env} is not a MuJoCo task"),
    };
    let Some(v) = std::env::var_os(TIMESTEP_VARIABLE) else {
        return Ok(LocomotionFamily::new(kind)?);
    };
    let v = v.to_string_lossy();
    let timestep = v
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && *t > 0.0)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{TIMESTEP_VARIABLE}={v}: expected a physics timestep in seconds, above 0"
            )
        })?;
    Ok(LocomotionFamily::with_timestep(kind, timestep)?)
}

/// Without the `mujoco` feature the MuJoCo tasks are named but cannot run.
#[cfg(not(feature = "mujoco"))]
pub fn locomotion_family(env: EnvName) -> anyhow::Result<Nav2dFamily> {
    bail!(
        "env {env} needs MuJoCo: run `cargo xtask setup-mujoco`, then build with `--features mujoco`"
    )
}

/// The engine's estimator and its order for a configured algorithm.
pub const fn algorithm_order(a: AlgorithmName) -> (Algorithm, Order) {
    a.engine()
}

/// The configured algorithm that runs `algorithm` at `order` (the inverse of
/// [`algorithm_order`]; `None` for E-MAML at first order, which has no name).
pub fn algorithm_name(algorithm: Algorithm, order: Order) -> Option<AlgorithmName> {
    AlgorithmName::ALL
        .into_iter()
        .find(|&a| algorithm_order(a) == (algorithm, order))
}

fn trainer_for<F: TaskFamily + 'static, V: TrainerVisitor>(
    c: &Config,
    family: F,
    visitor: V,
) -> anyhow::Result<V::Output> {
    let meta = c.meta_config();
    let net = Net::new(c.shape()).map_err(|e| anyhow!("invalid policy shape {:?}", e.0))?;
    let params = net.glorot_init(&mut Rng::derive(c.seed, &[INIT]));
    let trainer =
        MetaTrainer::new(meta, family, net, params.clone()).map_err(|e| anyhow!("{e}"))?;
    visitor.visit(trainer, params)
}

/// Says on stderr which of the iteration's `tasks` were left out because their simulation
/// diverged (nothing when none was), on one process and on rank 0 of an MPI job alike.
pub fn warn_unstable(iteration: u64, s: &crate::meta::IterationStats, tasks: usize) {
    if let Some((task, e)) = s.unstable.first() {
        eprintln!(
            "warning: iteration {iteration}: {} of {tasks} tasks left out, their simulation diverged (task {task}: {e})",
            s.unstable.len(),
        );
    }
}

/// The single-process [`Engine`] over a [`MetaTrainer`] (its optimiser state is what
/// checkpoints store, on one process or on rank 0 of an MPI job).
pub struct MetaEngine<F: TaskFamily>(pub MetaTrainer<F>);

impl<F: TaskFamily> Engine for MetaEngine<F> {
    fn iteration(&mut self, params: &mut [f32], iteration: u64) -> anyhow::Result<IterationStats> {
        self.0
            .set_state(params, iteration)
            .map_err(|e| anyhow!("{e}"))?;
        let s = self.0.step().map_err(|e| anyhow!("{e}"))?;
        warn_unstable(iteration, &s, self.0.config().tasks);
        params.copy_from_slice(self.0.params());
        Ok(IterationStats {
            return_before: s.return_before,
            returns_after: vec![s.return_after],
            env_steps: s.env_steps,
        })
    }

    fn optimizer_state(&self) -> OptimizerState {
        let (config, m, v, t) = self.0.optimizer().state();
        let kind = match config {
            OptimizerConfig::Adam { .. } => "adam",
            OptimizerConfig::Sgd { .. } => "sgd",
        };
        OptimizerState {
            kind: kind.into(),
            step: u64::try_from(t).unwrap_or(0),
            buffers: vec![("m".into(), m.to_vec()), ("v".into(), v.to_vec())],
        }
    }

    fn restore_optimizer_state(&mut self, s: &OptimizerState) -> anyhow::Result<()> {
        let (Some((_, m)), Some((_, v))) = (
            s.buffers.iter().find(|(n, _)| n == "m"),
            s.buffers.iter().find(|(n, _)| n == "v"),
        ) else {
            bail!("optimiser state lacks the `m` and `v` buffers");
        };
        let config = self.0.optimizer().config();
        let restored = i32::try_from(s.step)
            .ok()
            .and_then(|t| Optimizer::from_state(config, m.clone(), v.clone(), t))
            .ok_or_else(|| anyhow!("optimiser state does not fit this policy"))?;
        self.0
            .set_optimizer(restored)
            .map_err(|_| anyhow!("optimiser state does not fit this policy"))
    }
}
