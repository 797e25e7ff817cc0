//! Where the meta-training engine is linked into the command-line tool: the
//! [`crate::train::Engine`] implementation over [`MetaTrainer`].

use anyhow::{anyhow, bail};
use sgmrl::rng::Rng;

use crate::checkpoint::OptimizerState;
use crate::config::{AlgorithmName, Config, EnvName, OptimizerName};
use crate::envs::{DiffDriveFamily, Nav2dDiscreteFamily, Nav2dFamily, TaskFamily};
use crate::kernels::Net;
use crate::meta::{Algorithm, MetaConfig, MetaTrainer, Order};
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
    match c.env {
        EnvName::Nav2d => build_for(c, Nav2dFamily),
        EnvName::Nav2dDiscrete => build_for(c, Nav2dDiscreteFamily),
        EnvName::HalfCheetahDir | EnvName::HalfCheetahVel | EnvName::SwimmerVel => {
            build_for(c, locomotion_family(c.env)?)
        }
        EnvName::Diffdrive => build_for(
            c,
            DiffDriveFamily {
                commands: CommandSet::Discrete,
            },
        ),
        EnvName::DiffdriveContinuous => build_for(
            c,
            DiffDriveFamily {
                commands: CommandSet::Continuous,
            },
        ),
    }
}

/// The MuJoCo family of a Table 2 env name.
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
    Ok(LocomotionFamily::new(kind)?)
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
    match a {
        AlgorithmName::Sgmrl => (Algorithm::SgMrl, Order::Second),
        AlgorithmName::SgmrlFo => (Algorithm::SgMrl, Order::First),
        AlgorithmName::Maml => (Algorithm::Maml, Order::Second),
        AlgorithmName::Fomaml => (Algorithm::Maml, Order::First),
        AlgorithmName::Emaml => (Algorithm::EMaml, Order::Second),
        // The order is moot: there is no inner step to differentiate through.
        AlgorithmName::Multitask => (Algorithm::MultiTask, Order::First),
    }
}

/// The configured algorithm that runs `algorithm` at `order` (the inverse of
/// [`algorithm_order`]; `None` for E-MAML at first order, which has no name).
pub fn algorithm_name(algorithm: Algorithm, order: Order) -> Option<AlgorithmName> {
    AlgorithmName::ALL
        .into_iter()
        .find(|&a| algorithm_order(a) == (algorithm, order))
}

/// The meta-trainer's configuration for a run configuration: the one conversion, used by
/// `sgmrl train` and by the benchmark's Table 1 setting ([`crate::bench::table1_config`]).
pub fn meta_config(c: &Config) -> MetaConfig {
    let (algorithm, order) = algorithm_order(c.algorithm);
    let recipe = c.recipe();
    MetaConfig {
        algorithm,
        order,
        recipe,
        outer_advantage: recipe.advantage,
        outer_episodes: c.outer.episodes,
        tasks: c.meta_batch as usize,
        control_variate: c.control_variate.engine(),
        optimizer: match c.outer.optimizer {
            OptimizerName::Adam => OptimizerConfig::adam(c.outer.lr),
            OptimizerName::Sgd => OptimizerConfig::Sgd { lr: c.outer.lr },
        },
        seed: c.seed,
    }
}

fn build_for<F: TaskFamily + 'static>(c: &Config, family: F) -> anyhow::Result<EngineInit> {
    let meta = meta_config(c);
    let net = Net::new(c.shape()).map_err(|e| anyhow!("invalid policy shape {:?}", e.0))?;
    let params = net.glorot_init(&mut Rng::derive(c.seed, &[INIT]));
    let trainer =
        MetaTrainer::new(meta, family, net, params.clone()).map_err(|e| anyhow!("{e}"))?;
    Ok(EngineInit {
        engine: Box::new(MetaEngine(trainer)),
        params,
    })
}

struct MetaEngine<F: TaskFamily>(MetaTrainer<F>);

impl<F: TaskFamily> Engine for MetaEngine<F> {
    fn iteration(&mut self, params: &mut [f32], iteration: u64) -> anyhow::Result<IterationStats> {
        self.0
            .set_state(params, iteration)
            .map_err(|e| anyhow!("{e}"))?;
        let s = self.0.step().map_err(|e| anyhow!("{e}"))?;
        if let Some((task, e)) = s.unstable.first() {
            eprintln!(
                "warning: iteration {iteration}: {} of {} tasks left out, their simulation diverged (task {task}: {e})",
                s.unstable.len(),
                self.0.config().tasks
            );
        }
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
