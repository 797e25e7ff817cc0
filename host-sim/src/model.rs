//! A meta-trained policy as the evaluation, export and plotting commands see it: shape,
//! recipe, parameters, task and provenance, loaded from a checkpoint, a bundle or a run
//! directory, and checked against the task it will run on.

use std::path::{Path, PathBuf};

use sgmrl::bundle::{Bundle, Trainer};
use sgmrl::policy::{ParamSource, PolicyShape};
use sgmrl::recipe::Recipe;

use crate::checkpoint::Checkpoint;
use crate::config::{Config, EnvName, shape_name};
use crate::envs::{DiffDriveFamily, Nav2dDiscreteFamily, Nav2dFamily};
use crate::kernels::Net;
use crate::meta::baseline::fit_time_baseline;
use crate::rundir::RunDir;
use sgmrl::sim::diffdrive::CommandSet;

/// A meta-policy ready to adapt.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The task family it was trained on (and is evaluated on).
    pub env: EnvName,
    /// Policy architecture.
    pub shape: PolicyShape,
    /// The adaptation recipe.
    pub recipe: Recipe,
    /// Meta-parameters θ (flat layout of `sgmrl::policy`).
    pub params: Vec<f32>,
    /// Time-baseline table (`H` values) when the recipe's rule needs one.
    pub baseline: Option<Vec<f32>>,
    /// The algorithm that trained it.
    pub trainer: Trainer,
    /// Seed of the training run.
    pub seed: u64,
    /// Meta-iterations done.
    pub iterations: u64,
    /// The run's configuration, when loaded from a checkpoint or run directory.
    pub config: Option<Config>,
}

/// Why an input could not be loaded as a model.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Unreadable file.
    #[error("{}: cannot read: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why (in the message, not also `source()`).
        cause: std::io::Error,
    },
    /// Not a valid bundle.
    #[error("{}: {cause}", path.display())]
    Bundle {
        /// The file.
        path: PathBuf,
        /// The parser's error (in the message, not also `source()`).
        cause: sgmrl::bundle::BundleError,
    },
    /// Not a valid checkpoint.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// A file with neither a bundle's nor a checkpoint's magic, and a name that says
    /// neither.
    #[error("{}: neither a bundle (.sgml) nor a checkpoint (.sgck): unknown file type", path.display())]
    Unrecognized {
        /// The file.
        path: PathBuf,
    },
    /// A directory with neither a checkpoint nor a bundle.
    #[error("{}: no checkpoint.sgck or bundle.sgml in this directory", path.display())]
    EmptyRunDir {
        /// The directory.
        path: PathBuf,
    },
    /// The requested task is not the one the policy was trained for.
    #[error("{}: wrong task: the policy was trained for {trained}, not {requested}", path.display())]
    WrongTask {
        /// The file.
        path: PathBuf,
        /// Task recorded in the input.
        trained: EnvName,
        /// Task asked for.
        requested: EnvName,
    },
    /// The bundle records a task this tool does not simulate and none was given.
    #[error("{}: bundle task id {task} is not a task this tool simulates; pass --env nav2d or nav2d-discrete", path.display())]
    UnknownTask {
        /// The file.
        path: PathBuf,
        /// The task id.
        task: u16,
    },
    /// The policy does not fit the task's observations and actions.
    #[error("{}: policy {} does not fit task {env} (it needs {needs})", path.display(), shape_name(shape))]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The policy.
        shape: PolicyShape,
        /// The task.
        env: EnvName,
        /// What the task needs.
        needs: String,
    },
}

/// The `TimeBaseline` table of `config`'s task family at `params`, as iteration
/// `iteration` of training would fit it.
fn fit_baseline(config: &Config, params: &[f32], iteration: u64) -> Option<Vec<f32>> {
    let net = Net::new(config.shape()).ok()?;
    let meta = config.meta_config();
    let fitted = match config.env {
        EnvName::Nav2d => fit_time_baseline(&Nav2dFamily, &net, params, &meta, iteration),
        EnvName::Nav2dDiscrete => {
            fit_time_baseline(&Nav2dDiscreteFamily, &net, params, &meta, iteration)
        }
        EnvName::Diffdrive | EnvName::DiffdriveContinuous => {
            let commands = if config.env == EnvName::Diffdrive {
                CommandSet::Discrete
            } else {
                CommandSet::Continuous
            };
            let family = DiffDriveFamily { commands };
            fit_time_baseline(&family, &net, params, &meta, iteration)
        }
        EnvName::HalfCheetahDir | EnvName::HalfCheetahVel | EnvName::SwimmerVel => {
            let family = crate::wiring::locomotion_family(config.env).ok()?;
            fit_time_baseline(&family, &net, params, &meta, iteration)
        }
    };
    fitted.ok()
}

impl Model {
    /// The model of a run configuration with parameters `params` after `iterations`. A
    /// `TimeBaseline` recipe gets its table fitted at `params` (`meta::baseline`; `None` if
    /// that fails, which the bundle writer then reports).
    pub fn from_config(config: &Config, params: Vec<f32>, iterations: u64) -> Self {
        let baseline = config
            .recipe()
            .advantage
            .uses_table()
            .then(|| fit_baseline(config, &params, iterations))
            .flatten();
        Self {
            env: config.env,
            shape: config.shape(),
            recipe: config.recipe(),
            params,
            baseline,
            trainer: config.algorithm.trainer(),
            seed: config.seed,
            iterations,
            config: Some(config.clone()),
        }
    }

    /// The model in a checkpoint.
    pub fn from_checkpoint(c: &Checkpoint) -> Self {
        Self::from_config(&c.config, c.params.clone(), c.iteration)
    }

    /// Parses a bundle; `env` overrides (or, for a bundle with no recorded task,
    /// supplies) the task.
    pub fn from_bundle(bytes: &[u8], path: &Path, env: Option<EnvName>) -> Result<Self, LoadError> {
        let b = Bundle::parse(bytes).map_err(|cause| LoadError::Bundle {
            path: path.to_path_buf(),
            cause,
        })?;
        let recorded = EnvName::from_task_id(b.task());
        let env = match (recorded, env) {
            (Some(t), Some(r)) if t != r => {
                return Err(LoadError::WrongTask {
                    path: path.to_path_buf(),
                    trained: t,
                    requested: r,
                });
            }
            (Some(t), _) => t,
            (None, Some(r)) if b.task() == sgmrl::bundle::TaskId::UNSPECIFIED => r,
            (None, _) => {
                return Err(LoadError::UnknownTask {
                    path: path.to_path_buf(),
                    task: b.task().0,
                });
            }
        };
        let model = Self {
            env,
            shape: b.shape(),
            recipe: b.recipe(),
            params: ParamSource::<f32>::values(b.params()).collect(),
            baseline: b
                .baseline()
                .map(|t| ParamSource::<f32>::values(t).collect()),
            trainer: b.trainer(),
            seed: b.seed(),
            iterations: u64::from(b.meta_iterations()),
            config: None,
        };
        model.check_fits(path)?;
        Ok(model)
    }

    /// Checks that the policy's input and head fit the task.
    pub fn check_fits(&self, path: &Path) -> Result<(), LoadError> {
        let (dist, act) = self.env.head();
        let s = &self.shape;
        if s.obs_dim != self.env.obs_dim() || s.distribution != dist || s.act_dim != act {
            return Err(LoadError::ShapeMismatch {
                path: path.to_path_buf(),
                shape: *s,
                env: self.env,
                needs: format!(
                    "{} inputs and a {dist:?} head over {act} actions",
                    self.env.obs_dim()
                ),
            });
        }
        Ok(())
    }

    /// Loads a checkpoint file, a bundle file, or a run directory (its checkpoint, else its
    /// bundle). `env` is checked against (or supplies) the task.
    pub fn load(path: &Path, env: Option<EnvName>) -> Result<Self, LoadError> {
        let file = if path.is_dir() {
            let run = RunDir::new(path);
            if run.checkpoint().is_file() {
                run.checkpoint()
            } else if run.bundle().is_file() {
                run.bundle()
            } else {
                return Err(LoadError::EmptyRunDir {
                    path: path.to_path_buf(),
                });
            }
        } else {
            path.to_path_buf()
        };
        let bytes = std::fs::read(&file).map_err(|cause| LoadError::Io {
            path: file.clone(),
            cause,
        })?;
        // The expected kind comes from the content, else from the name, so a damaged
        // `.sgck` is reported as a bad checkpoint, not as "not a bundle".
        let named = |ext: &str| file.extension().is_some_and(|e| e == ext);
        let is_bundle = bytes.starts_with(&sgmrl::bundle::MAGIC);
        if !Checkpoint::sniff(&bytes) && !is_bundle && !named("sgck") && !named("sgml") {
            return Err(LoadError::Unrecognized { path: file });
        }
        if Checkpoint::sniff(&bytes) || (!is_bundle && named("sgck")) {
            let c = Checkpoint::from_bytes(&bytes).map_err(|kind| {
                LoadError::Checkpoint(crate::checkpoint::CheckpointError {
                    path: file.clone(),
                    kind,
                })
            })?;
            let m = Self::from_checkpoint(&c);
            if let Some(r) = env
                && r != m.env
            {
                return Err(LoadError::WrongTask {
                    path: file,
                    trained: m.env,
                    requested: r,
                });
            }
            Ok(m)
        } else {
            Self::from_bundle(&bytes, &file, env)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;
    use sgmrl::bundle::{BundleSpec, TaskId};

    fn bundle(task: TaskId, config: &Config) -> Vec<u8> {
        let params = vec![0.01; config.shape().n_params()];
        BundleSpec {
            shape: config.shape(),
            recipe: config.recipe(),
            task,
            trainer: Trainer::SgMrl,
            seed: 3,
            meta_iterations: 9,
            baseline: None,
            params: &params,
        }
        .to_bytes()
        .unwrap()
    }

    #[test]
    fn bundle_task_is_checked_against_the_request() {
        let c = Preset::Embedded.config();
        let p = Path::new("b.sgml");
        let b = bundle(TaskId::NAV2D, &c);
        let m = Model::from_bundle(&b, p, None).unwrap();
        assert_eq!((m.env, m.seed, m.iterations), (EnvName::Nav2d, 3, 9));
        assert_eq!(m.params.len(), c.shape().n_params());
        let e = Model::from_bundle(&b, p, Some(EnvName::Nav2dDiscrete)).unwrap_err();
        assert!(e.to_string().contains("wrong task"), "{e}");
        // No recorded task: --env supplies it; a user task id is refused.
        let b0 = bundle(TaskId::UNSPECIFIED, &c);
        assert!(Model::from_bundle(&b0, p, None).is_err());
        assert!(Model::from_bundle(&b0, p, Some(EnvName::Nav2d)).is_ok());
        let bu = bundle(TaskId(0x123), &c);
        let e = Model::from_bundle(&bu, p, Some(EnvName::Nav2d)).unwrap_err();
        assert!(e.to_string().contains("task id 291"), "{e}");
    }

    #[test]
    fn a_gaussian_policy_does_not_fit_the_discrete_task() {
        let c = Preset::Embedded.config();
        let b = bundle(TaskId::UNSPECIFIED, &c);
        let e = Model::from_bundle(&b, Path::new("b"), Some(EnvName::Nav2dDiscrete)).unwrap_err();
        assert!(matches!(e, LoadError::ShapeMismatch { .. }), "{e}");
    }
}
