//! The run configuration: what to meta-train, how the device will adapt, and how to
//! evaluate.
//!
//! A configuration is built in layers, each a TOML table merged key by key onto the one
//! below: a preset ([`Preset::Embedded`] unless a `--preset` flag or a `preset = "…"` key
//! in the file names another), then the user's TOML file, then command-line overrides
//! (`--alpha 0.05`, `--set recipe.alpha=0.05`). The merged table is deserialised once,
//! with unknown keys rejected, and [`Config::validate`]d, so every error names the field.
//! A run directory stores the fully resolved configuration as `config.toml` (no preset
//! key), which is what a resumed run reads back.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sgmrl::bundle::{TaskId, Trainer};
use sgmrl::name::UnknownName;
use sgmrl::policy::{Distribution, PolicyShape};
use sgmrl::recipe::{ActionMap, Advantage, LossScale, Recipe, RecipeError};

/// A configuration error: the dotted name of the offending field and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// Dotted field name (`recipe.alpha`), or the file name for syntax errors.
    pub field: String,
    /// What is wrong, one line.
    pub message: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: one_line(&message.into()),
        }
    }
}

/// Collapses a possibly multi-line message into one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Task family to meta-train on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EnvName {
    /// The paper's 2-D navigation, continuous actions (Gaussian policy).
    Nav2d,
    /// 2-D navigation with 9 discrete moves (softmax policy).
    Nav2dDiscrete,
    /// MuJoCo HalfCheetah, random direction (Table 2; needs the `mujoco` feature).
    HalfCheetahDir,
    /// MuJoCo HalfCheetah, random target velocity in [0, 3] (Table 2; `mujoco` feature).
    HalfCheetahVel,
    /// MuJoCo Swimmer, random target velocity in [0.1, 0.2] (Table 2; `mujoco` feature).
    SwimmerVel,
    /// The differential-drive robot (`sgmrl::sim::diffdrive`), 6 discrete wheel commands
    /// (softmax policy): the robot boards' task.
    Diffdrive,
    /// The differential-drive robot with continuous wheel commands (Gaussian policy).
    DiffdriveContinuous,
}

impl EnvName {
    /// The bundle's task id.
    pub const fn task_id(self) -> TaskId {
        match self {
            Self::Nav2d => TaskId::NAV2D,
            Self::Nav2dDiscrete => TaskId::NAV2D_DISCRETE,
            Self::HalfCheetahDir => TaskId::HALF_CHEETAH_DIR,
            Self::HalfCheetahVel => TaskId::HALF_CHEETAH_VEL,
            Self::SwimmerVel => TaskId::SWIMMER_VEL,
            Self::Diffdrive => TaskId::DIFFDRIVE,
            Self::DiffdriveContinuous => TaskId::DIFFDRIVE_CONTINUOUS,
        }
    }

    /// The environment a bundle's task id names, if this crate simulates it.
    pub const fn from_task_id(task: TaskId) -> Option<Self> {
        match task {
            TaskId::NAV2D => Some(Self::Nav2d),
            TaskId::NAV2D_DISCRETE => Some(Self::Nav2dDiscrete),
            TaskId::HALF_CHEETAH_DIR => Some(Self::HalfCheetahDir),
            TaskId::HALF_CHEETAH_VEL => Some(Self::HalfCheetahVel),
            TaskId::SWIMMER_VEL => Some(Self::SwimmerVel),
            TaskId::DIFFDRIVE => Some(Self::Diffdrive),
            TaskId::DIFFDRIVE_CONTINUOUS => Some(Self::DiffdriveContinuous),
            _ => None,
        }
    }

    /// The command-line / TOML name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Nav2d => "nav2d",
            Self::Nav2dDiscrete => "nav2d-discrete",
            Self::HalfCheetahDir => "half-cheetah-dir",
            Self::HalfCheetahVel => "half-cheetah-vel",
            Self::SwimmerVel => "swimmer-vel",
            Self::Diffdrive => "diffdrive",
            Self::DiffdriveContinuous => "diffdrive-continuous",
        }
    }

    /// True for the MuJoCo tasks (built only with the `mujoco` feature).
    pub const fn is_mujoco(self) -> bool {
        matches!(
            self,
            Self::HalfCheetahDir | Self::HalfCheetahVel | Self::SwimmerVel
        )
    }

    /// Observation length of the family.
    pub const fn obs_dim(self) -> u16 {
        match self {
            Self::Nav2d | Self::Nav2dDiscrete => 2,
            Self::HalfCheetahDir | Self::HalfCheetahVel => 17,
            Self::SwimmerVel => 8,
            Self::Diffdrive | Self::DiffdriveContinuous => sgmrl::sim::diffdrive::OBS_DIM as u16,
        }
    }

    /// The policy head this family needs: distribution and `act_dim`.
    pub const fn head(self) -> (Distribution, u16) {
        match self {
            Self::Nav2d => (Distribution::Gaussian, 2),
            Self::Nav2dDiscrete => (Distribution::Softmax, 9),
            Self::HalfCheetahDir | Self::HalfCheetahVel => (Distribution::Gaussian, 6),
            Self::SwimmerVel => (Distribution::Gaussian, 2),
            Self::Diffdrive => (
                Distribution::Softmax,
                sgmrl::sim::diffdrive::DISCRETE_COMMANDS.len() as u16,
            ),
            Self::DiffdriveContinuous => (Distribution::Gaussian, 2),
        }
    }
}

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The control variate `b_i` of the score terms `(Ĵ_i − b_i)·s_k` (all unbiased; see
/// `meta::ControlVariate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ControlVariateName {
    /// `b = 0`: the raw estimator.
    None,
    /// Leave-one-out mean of the other tasks' `Ĵ`.
    Loo,
    /// Pre-adaptation return of an extra independent batch, plus the others' mean gain.
    Pre,
}

impl ControlVariateName {
    /// The engine's control variate.
    pub const fn engine(self) -> crate::meta::ControlVariate {
        match self {
            Self::None => crate::meta::ControlVariate::None,
            Self::Loo => crate::meta::ControlVariate::LeaveOneOut,
            Self::Pre => crate::meta::ControlVariate::PreAdaptation,
        }
    }
}

/// Meta-training algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AlgorithmName {
    /// SG-MRL with the exact (second-order) meta-gradient.
    Sgmrl,
    /// SG-MRL with the Hessian terms dropped.
    SgmrlFo,
    /// MAML (second order).
    Maml,
    /// First-order MAML.
    Fomaml,
    /// E-MAML.
    Emaml,
    /// Plain multi-task policy gradient, no meta-learning ("pretrain, then fine-tune"):
    /// the baseline that shows what meta-training adds.
    Multitask,
}

impl AlgorithmName {
    /// The bundle's trainer code.
    pub const fn trainer(self) -> Trainer {
        match self {
            Self::Sgmrl => Trainer::SgMrl,
            Self::SgmrlFo => Trainer::SgMrlFirstOrder,
            Self::Maml => Trainer::Maml,
            Self::Fomaml => Trainer::FoMaml,
            Self::Emaml => Trainer::EMaml,
            Self::Multitask => Trainer::MultiTask,
        }
    }

    /// The engine's estimator and its order.
    pub const fn engine(self) -> (crate::meta::Algorithm, crate::meta::Order) {
        use crate::meta::{Algorithm, Order};
        match self {
            Self::Sgmrl => (Algorithm::SgMrl, Order::Second),
            Self::SgmrlFo => (Algorithm::SgMrl, Order::First),
            Self::Maml => (Algorithm::Maml, Order::Second),
            Self::Fomaml => (Algorithm::Maml, Order::First),
            Self::Emaml => (Algorithm::EMaml, Order::Second),
            // The order is moot: there is no inner step to differentiate through.
            Self::Multitask => (Algorithm::MultiTask, Order::First),
        }
    }

    /// The command-line / TOML name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sgmrl => "sgmrl",
            Self::SgmrlFo => "sgmrl-fo",
            Self::Maml => "maml",
            Self::Fomaml => "fomaml",
            Self::Emaml => "emaml",
            Self::Multitask => "multitask",
        }
    }

    /// Every algorithm, in the order of the paper's tables, then the multi-task baseline.
    pub const ALL: [Self; 6] = [
        Self::Sgmrl,
        Self::SgmrlFo,
        Self::Maml,
        Self::Fomaml,
        Self::Emaml,
        Self::Multitask,
    ];
}

impl fmt::Display for AlgorithmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Advantage rule of the recipe: the core's [`Advantage`] rules. Its names are the core's
/// ([`Advantage::name`]) in flags and files alike; the time-baseline's table is not part of
/// a configuration: training fits it (`meta::baseline`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum AdvantageName {
    /// `A_h = R^h` (streams: RAM for one episode).
    RewardToGo,
    /// Reward-to-go minus the bundle's per-step baseline table (streams), which training
    /// fits to the meta-policy's mean reward-to-go over tasks (`meta::baseline`).
    TimeBaseline,
    /// Reward-to-go minus the bundle's table scaled to the goal by a fit to the batch's
    /// earlier episodes (streams; the table is fitted as for `TimeBaseline`).
    ScaledTimeBaseline,
    /// Reward-to-go minus the batch mean at the same step (needs the batch in RAM).
    BatchMean,
    /// GAE(λ) on a refitted linear feature baseline (needs the batch in RAM).
    Gae,
}

impl AdvantageName {
    /// Every rule a configuration can name.
    pub const ALL: [Self; 5] = [
        Self::RewardToGo,
        Self::TimeBaseline,
        Self::ScaledTimeBaseline,
        Self::BatchMean,
        Self::Gae,
    ];
    const NAMES: [&'static str; 5] = [
        Self::ALL[0].name(),
        Self::ALL[1].name(),
        Self::ALL[2].name(),
        Self::ALL[3].name(),
        Self::ALL[4].name(),
    ];

    /// The core's rule, with GAE's λ `lambda` (ignored by the other rules).
    pub const fn rule(self, lambda: f32) -> Advantage {
        match self {
            Self::RewardToGo => Advantage::RewardToGo,
            Self::TimeBaseline => Advantage::TimeBaseline,
            Self::ScaledTimeBaseline => Advantage::ScaledTimeBaseline,
            Self::BatchMean => Advantage::BatchMeanBaseline,
            Self::Gae => Advantage::LinearFeatureGae { lambda },
        }
    }

    /// The configuration's name of a core rule.
    pub const fn of_rule(rule: Advantage) -> Option<Self> {
        match rule {
            Advantage::RewardToGo => Some(Self::RewardToGo),
            Advantage::BatchMeanBaseline => Some(Self::BatchMean),
            Advantage::LinearFeatureGae { .. } => Some(Self::Gae),
            Advantage::TimeBaseline => Some(Self::TimeBaseline),
            Advantage::ScaledTimeBaseline => Some(Self::ScaledTimeBaseline),
        }
    }

    /// The core's name of the rule.
    pub const fn name(self) -> &'static str {
        self.rule(0.0).name()
    }
}

impl TryFrom<String> for AdvantageName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                UnknownName {
                    what: "advantage rule",
                    expected: &Self::NAMES,
                }
                .to_string()
            })
    }
}

impl From<AdvantageName> for &'static str {
    fn from(a: AdvantageName) -> Self {
        a.name()
    }
}

impl clap::ValueEnum for AdvantageName {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

/// Inner-loss scaling: the core's [`LossScale`], named as the core names it
/// ([`LossScale::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub struct LossName(pub LossScale);

impl TryFrom<String> for LossName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map(Self).map_err(|e: UnknownName| e.to_string())
    }
}

impl From<LossName> for &'static str {
    fn from(l: LossName) -> Self {
        l.0.name()
    }
}

impl clap::ValueEnum for LossName {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            LossName(LossScale::PerEpisode),
            LossName(LossScale::PerStep),
        ]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.name()))
    }
}

/// Outer optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerName {
    /// Adam, β = (0.9, 0.999), ε = 1e-8.
    Adam,
    /// Plain gradient ascent.
    Sgd,
}

/// The adaptation recipe as written in a configuration file. Every field is always
/// present so that layers can override any of them; `gae_lambda` is used only when
/// `advantage = "gae"` and `action_clip = 0` means "no clipping" (the bundle's encoding).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeConfig {
    /// Inner step size α.
    pub alpha: f32,
    /// Adaptation steps ζ.
    pub steps: u16,
    /// Episodes per adaptation step `N`.
    pub episodes: u16,
    /// Horizon `H`.
    pub horizon: u16,
    /// Discount γ.
    pub gamma: f32,
    /// Advantage rule.
    pub advantage: AdvantageName,
    /// GAE λ (only for `advantage = "gae"`).
    pub gae_lambda: f32,
    /// Normalise advantages per batch.
    pub normalize: bool,
    /// Inner-loss scaling.
    pub loss: LossName,
    /// Gaussian action = clamp(scale·u, ±clip).
    pub action_scale: f32,
    /// 0 = no clipping.
    pub action_clip: f32,
}

impl RecipeConfig {
    /// The core recipe (not yet validated).
    pub fn to_recipe(&self) -> Recipe {
        Recipe {
            alpha: self.alpha,
            steps: self.steps,
            episodes: self.episodes,
            horizon: self.horizon,
            gamma: self.gamma,
            advantage: self.advantage.rule(self.gae_lambda),
            normalize: self.normalize,
            loss: self.loss.0,
            action: ActionMap {
                scale: self.action_scale,
                clip: (self.action_clip != 0.0).then_some(self.action_clip),
            },
        }
    }

    /// The configuration form of a core recipe (the time-baseline table itself is not
    /// part of a recipe).
    pub fn from_recipe(r: &Recipe) -> Option<Self> {
        let advantage = AdvantageName::of_rule(r.advantage)?;
        let gae_lambda = r.advantage.lambda().unwrap_or(0.0);
        Some(Self {
            alpha: r.alpha,
            steps: r.steps,
            episodes: r.episodes,
            horizon: r.horizon,
            gamma: r.gamma,
            advantage,
            gae_lambda,
            normalize: r.normalize,
            loss: LossName(r.loss),
            action_scale: r.action.scale,
            action_clip: r.action.clip.unwrap_or(0.0),
        })
    }
}

/// Policy architecture; the head (distribution, action count) follows from the env.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Hidden layer widths, 0 to 2 entries (`[]` is a linear policy), tanh activations.
    pub hidden: Vec<u16>,
}

/// The outer (meta) optimisation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OuterConfig {
    /// Optimiser.
    pub optimizer: OptimizerName,
    /// Learning rate.
    pub lr: f32,
    /// Episodes of the outer batch drawn with the adapted policy, per task.
    pub episodes: u16,
}

/// Evaluation and validation settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Held-out goals of the honest evaluation.
    pub goals: u32,
    /// Seed naming the held-out goal set (its streams are disjoint from training's).
    pub seed: u64,
    /// Fresh episodes played by the adapted policy per goal to measure the final return.
    pub episodes: u16,
    /// Validate every this many iterations during training (0: never); the
    /// paper-comparable protocol (fresh goals each time, best score reported).
    pub validate_every: u32,
    /// Fresh goals per validation (the paper: 80 meta-batches of 20 = 1600).
    pub validate_goals: u32,
}

/// A complete run configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Task family.
    pub env: EnvName,
    /// Meta-training algorithm.
    pub algorithm: AlgorithmName,
    /// Root seed of every training stream.
    pub seed: u64,
    /// Meta-iterations (outer steps) of the run.
    pub iterations: u32,
    /// Tasks per meta-iteration `B`.
    pub meta_batch: u32,
    /// The control variate subtracted from `Ĵ` in SG-MRL's and E-MAML's score terms.
    pub control_variate: ControlVariateName,
    /// Write a checkpoint every this many iterations (and after the last).
    pub checkpoint_every: u32,
    /// The adaptation recipe the device will follow.
    pub recipe: RecipeConfig,
    /// Policy architecture.
    pub policy: PolicyConfig,
    /// Outer optimisation.
    pub outer: OuterConfig,
    /// Evaluation.
    pub eval: EvalConfig,
}

/// Named starting points for a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// The default embedded task: nav2d with a 2→16→2 Gaussian policy, one adaptation step
    /// from 40 episodes of 20 steps with a streaming rule (reward-to-go): the adapter needs
    /// 864 bytes of RAM (the `P` + one-episode yardstick of 736 bytes plus 128 bytes of
    /// hidden-layer scratch), so it fits a 16 KB Cortex-M0 with room for the application.
    Embedded,
    /// The same task with batch-mean baselined, normalised advantages from 10 episodes:
    /// 4584 bytes of adapter RAM (the batch is buffered) for a clearly stronger adaptation.
    EmbeddedBatch,
    /// The same task with a per-goal baseline that streams (`scaled-baseline`: the fitted
    /// time table scaled to each goal by the batch's earlier episodes, the step normalised
    /// by the batch's RMS advantage) from 20 episodes: 880 bytes of adapter RAM, within
    /// 1.2× the `P` + one-episode yardstick (docs/results.md §5).
    EmbeddedStreaming,
    /// Exactly the paper's Table 1 settings (experiments.md).
    PaperTable1,
    /// The paper's Table 2 settings on HalfCheetah random direction (set `env` for the
    /// other two tasks, `recipe.steps` for ζ): 40 tasks × 20 episodes of 200 steps, 400
    /// meta-iterations, action `clip(u/10, −1, 1)`, otherwise as Table 1.
    PaperTable2,
    /// The differential-drive robot: a 6→16→6 softmax policy over wheel commands, one
    /// adaptation step from 20 episodes of 4 s (40 ticks of 0.1 s) with a streaming rule
    /// (reward-to-go), so the adapter's RAM is the `P` + one-episode minimum and fits the
    /// Cortex-M0+ boards.
    Diffdrive,
}

impl Preset {
    /// The command-line / TOML name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::EmbeddedBatch => "embedded-batch",
            Self::EmbeddedStreaming => "embedded-streaming",
            Self::PaperTable1 => "paper-table1",
            Self::PaperTable2 => "paper-table2",
            Self::Diffdrive => "diffdrive",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        [
            Self::Embedded,
            Self::EmbeddedBatch,
            Self::EmbeddedStreaming,
            Self::PaperTable1,
            Self::PaperTable2,
            Self::Diffdrive,
        ]
        .into_iter()
        .find(|p| p.name() == s)
    }

    /// The preset's configuration.
    pub fn config(self) -> Config {
        match self {
            Self::Diffdrive => Config {
                env: EnvName::Diffdrive,
                iterations: 300,
                meta_batch: 40,
                recipe: RecipeConfig {
                    alpha: 10.0,
                    steps: 1,
                    episodes: 20,
                    horizon: 40,
                    gamma: 0.99,
                    advantage: AdvantageName::RewardToGo,
                    gae_lambda: 0.0,
                    normalize: false,
                    loss: LossName(LossScale::PerEpisode),
                    action_scale: 1.0,
                    action_clip: 1.0,
                },
                policy: PolicyConfig { hidden: vec![16] },
                outer: OuterConfig {
                    optimizer: OptimizerName::Adam,
                    lr: 1e-2,
                    episodes: 20,
                },
                ..Self::Embedded.config()
            },
            Self::EmbeddedBatch => Config {
                recipe: RecipeConfig {
                    alpha: 0.1,
                    steps: 1,
                    episodes: 10,
                    horizon: 20,
                    gamma: 0.99,
                    advantage: AdvantageName::BatchMean,
                    gae_lambda: 0.0,
                    normalize: true,
                    loss: LossName(LossScale::PerEpisode),
                    action_scale: 0.1,
                    action_clip: 0.1,
                },
                ..Self::Embedded.config()
            },
            Self::EmbeddedStreaming => Config {
                recipe: RecipeConfig {
                    alpha: 0.05,
                    steps: 1,
                    episodes: 20,
                    horizon: 20,
                    gamma: 0.99,
                    advantage: AdvantageName::ScaledTimeBaseline,
                    gae_lambda: 0.0,
                    normalize: true,
                    loss: LossName(LossScale::PerEpisode),
                    action_scale: 0.1,
                    action_clip: 0.1,
                },
                ..Self::Embedded.config()
            },
            Self::Embedded => Config {
                env: EnvName::Nav2d,
                algorithm: AlgorithmName::Sgmrl,
                seed: 1,
                iterations: 2000,
                meta_batch: 40,
                control_variate: ControlVariateName::Pre,
                checkpoint_every: 100,
                recipe: RecipeConfig {
                    alpha: 0.03,
                    steps: 1,
                    episodes: 40,
                    horizon: 20,
                    gamma: 0.99,
                    advantage: AdvantageName::RewardToGo,
                    gae_lambda: 0.0,
                    normalize: false,
                    loss: LossName(LossScale::PerEpisode),
                    action_scale: 0.1,
                    action_clip: 0.1,
                },
                policy: PolicyConfig { hidden: vec![16] },
                outer: OuterConfig {
                    optimizer: OptimizerName::Adam,
                    lr: 3e-3,
                    episodes: 20,
                },
                eval: EvalConfig {
                    goals: 400,
                    seed: HELD_OUT_SEED,
                    episodes: 10,
                    validate_every: 0,
                    validate_goals: 400,
                },
            },
            Self::PaperTable2 => {
                let t1 = Self::PaperTable1.config();
                Config {
                    env: EnvName::HalfCheetahDir,
                    iterations: 400,
                    meta_batch: 40,
                    recipe: RecipeConfig {
                        horizon: 200,
                        action_scale: 0.1,
                        action_clip: 1.0,
                        ..t1.recipe
                    },
                    // Validation on 2 meta-batches of fresh tasks (80) every 50 iterations:
                    // the paper's 1600 would cost 50 training iterations each time here.
                    eval: EvalConfig {
                        goals: 100,
                        episodes: 20,
                        validate_every: 50,
                        validate_goals: 80,
                        ..t1.eval
                    },
                    ..t1
                }
            }
            Self::PaperTable1 => Config {
                env: EnvName::Nav2d,
                algorithm: AlgorithmName::Sgmrl,
                seed: 1,
                iterations: 500,
                meta_batch: 20,
                control_variate: ControlVariateName::Pre,
                checkpoint_every: 10,
                recipe: RecipeConfig {
                    alpha: 0.1,
                    steps: 1,
                    episodes: 20,
                    horizon: 100,
                    gamma: 0.99,
                    advantage: AdvantageName::Gae,
                    gae_lambda: 0.997,
                    normalize: true,
                    loss: LossName(LossScale::PerStep),
                    action_scale: 0.01,
                    action_clip: 0.1,
                },
                policy: PolicyConfig {
                    hidden: vec![100, 100],
                },
                outer: OuterConfig {
                    optimizer: OptimizerName::Adam,
                    lr: 1e-3,
                    episodes: 20,
                },
                eval: EvalConfig {
                    goals: 400,
                    seed: HELD_OUT_SEED,
                    episodes: 20,
                    validate_every: 100,
                    validate_goals: 1600,
                },
            },
        }
    }
}

/// Default seed of the held-out goal set (any fixed value; its streams are named apart
/// from training's, see [`crate::eval`]).
pub const HELD_OUT_SEED: u64 = 0x5EED_0E7A_1000_0001;

/// Largest hidden layer width a configuration may ask for (a sanity bound).
pub const MAX_HIDDEN: u16 = 4096;

impl Config {
    /// The policy architecture this configuration trains.
    pub fn shape(&self) -> PolicyShape {
        let (distribution, act_dim) = self.env.head();
        let h = &self.policy.hidden;
        PolicyShape {
            distribution,
            obs_dim: self.env.obs_dim(),
            hidden: [
                h.first().copied().unwrap_or(0),
                h.get(1).copied().unwrap_or(0),
            ],
            act_dim,
        }
    }

    /// The validated core recipe.
    pub fn recipe(&self) -> Recipe {
        self.recipe.to_recipe()
    }

    /// The meta-trainer's configuration of this run: the one conversion, used by `sgmrl
    /// train`, by the time-baseline fit at export and by the benchmark's Table 1 setting
    /// (`bench::table1_config`).
    pub fn meta_config(&self) -> crate::meta::MetaConfig {
        use crate::optim::OptimizerConfig;
        let (algorithm, order) = self.algorithm.engine();
        let recipe = self.recipe();
        crate::meta::MetaConfig {
            algorithm,
            order,
            recipe,
            // The time baseline is the inner rule's table; the outer gradient only needs an
            // unbiased advantage, and reward-to-go is that rule without the table.
            outer_advantage: match recipe.advantage {
                Advantage::TimeBaseline | Advantage::ScaledTimeBaseline => Advantage::RewardToGo,
                a => a,
            },
            outer_episodes: self.outer.episodes,
            tasks: self.meta_batch as usize,
            control_variate: self.control_variate.engine(),
            optimizer: match self.outer.optimizer {
                OptimizerName::Adam => OptimizerConfig::adam(self.outer.lr),
                OptimizerName::Sgd => OptimizerConfig::Sgd { lr: self.outer.lr },
            },
            seed: self.seed,
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.recipe;
        if !(r.action_clip.is_finite() && r.action_clip >= 0.0) {
            return Err(ConfigError::new(
                "recipe.action_clip",
                format!(
                    "must be finite and >= 0, 0 meaning no clipping (got {})",
                    r.action_clip
                ),
            ));
        }
        if let Err(e) = self.recipe().validate() {
            let (field, got) = match e {
                RecipeError::Alpha => ("recipe.alpha", r.alpha.to_string()),
                RecipeError::Steps => ("recipe.steps", r.steps.to_string()),
                RecipeError::Episodes => ("recipe.episodes", r.episodes.to_string()),
                RecipeError::Horizon => ("recipe.horizon", r.horizon.to_string()),
                RecipeError::Gamma => ("recipe.gamma", r.gamma.to_string()),
                RecipeError::Lambda => ("recipe.gae_lambda", r.gae_lambda.to_string()),
                RecipeError::ActionMap if !(r.action_scale.is_finite() && r.action_scale > 0.0) => {
                    ("recipe.action_scale", r.action_scale.to_string())
                }
                RecipeError::ActionMap => ("recipe.action_clip", r.action_clip.to_string()),
            };
            return Err(ConfigError::new(field, format!("{e} (got {got})")));
        }
        let hidden = &self.policy.hidden;
        if hidden.len() > 2 {
            return Err(ConfigError::new(
                "policy.hidden",
                format!("at most 2 hidden layers (got {})", hidden.len()),
            ));
        }
        if let Some(w) = hidden.iter().find(|&&w| w == 0 || w > MAX_HIDDEN) {
            return Err(ConfigError::new(
                "policy.hidden",
                format!(
                    "layer widths must be in 1..={MAX_HIDDEN}; use [] for a linear policy (got {w})"
                ),
            ));
        }
        if !self.shape().is_valid() {
            return Err(ConfigError::new(
                "policy.hidden",
                format!("invalid policy shape {}", shape_name(&self.shape())),
            ));
        }
        if self.iterations == 0 {
            return Err(ConfigError::new("iterations", "must be >= 1"));
        }
        if self.meta_batch == 0 {
            return Err(ConfigError::new("meta_batch", "must be >= 1"));
        }
        if self.checkpoint_every == 0 {
            return Err(ConfigError::new("checkpoint_every", "must be >= 1"));
        }
        let o = &self.outer;
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return Err(ConfigError::new(
                "outer.lr",
                format!("must be finite and > 0 (got {})", o.lr),
            ));
        }
        // The outer batch uses the recipe's rule without normalisation.
        let outer = Recipe {
            episodes: o.episodes,
            normalize: false,
            ..self.recipe()
        };
        if outer.validate().is_err() {
            let min = if outer.needs_batch() { 2 } else { 1 };
            return Err(ConfigError::new(
                "outer.episodes",
                format!(
                    "must be >= {min} for advantage rule {:?} (got {})",
                    r.advantage, o.episodes
                ),
            ));
        }
        let e = &self.eval;
        if e.goals == 0 {
            return Err(ConfigError::new("eval.goals", "must be >= 1"));
        }
        if e.episodes == 0 {
            return Err(ConfigError::new("eval.episodes", "must be >= 1"));
        }
        if e.validate_every > 0 && e.validate_goals == 0 {
            return Err(ConfigError::new(
                "eval.validate_goals",
                "must be >= 1 when eval.validate_every > 0",
            ));
        }
        Ok(())
    }

    /// The resolved configuration as TOML (what a run directory stores).
    pub fn to_toml(&self) -> String {
        // Serialising plain structs of numbers, strings and arrays cannot fail.
        toml::to_string(self).unwrap_or_default()
    }

    /// A stable 64-bit hash of everything that determines the trained parameters: it
    /// leaves out the iteration budget (a run may be extended), checkpoint cadence and
    /// evaluation settings.
    pub fn training_hash(&self) -> u64 {
        fnv1a(self.training_identity().as_bytes())
    }

    /// The canonical text [`Config::training_hash`] hashes.
    fn training_identity(&self) -> String {
        serde_json::to_string(&self.training_view()).unwrap_or_default()
    }

    /// Dotted names of the training-relevant fields in which `self` and `other` differ.
    pub fn training_differences(&self, other: &Config) -> Vec<String> {
        let a = flatten(&to_value(&self.training_view()));
        let b = flatten(&to_value(&other.training_view()));
        let mut out: Vec<String> = a
            .iter()
            .filter(|(k, v)| b.iter().find(|(k2, _)| k2 == k).map(|(_, v2)| v2) != Some(v))
            .map(|(k, _)| k.clone())
            .collect();
        out.sort();
        out
    }

    /// The configuration with the fields that do not affect the parameters reset.
    fn training_view(&self) -> Config {
        let mut c = self.clone();
        c.iterations = 0;
        c.checkpoint_every = 0;
        c.eval = Preset::Embedded.config().eval;
        c
    }
}

fn to_value(c: &Config) -> toml::Value {
    toml::Value::try_from(c).unwrap_or(toml::Value::Table(toml::Table::new()))
}

/// `(dotted key, value)` for every leaf of a table.
fn flatten(v: &toml::Value) -> Vec<(String, toml::Value)> {
    fn go(prefix: &str, v: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    go(&key, v, out);
                }
            }
            other => out.push((prefix.to_string(), other.clone())),
        }
    }
    let mut out = Vec::new();
    go("", v, &mut out);
    out
}

/// FNV-1a, 64-bit: a stable hash with no dependency (std's hasher may change).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// `2→16→2 (Gaussian)`: a shape in one short, readable token.
pub fn shape_name(s: &PolicyShape) -> String {
    let mut parts = vec![s.obs_dim.to_string()];
    parts.extend(s.hidden.iter().filter(|&&h| h > 0).map(|h| h.to_string()));
    parts.push(s.act_dim.to_string());
    let d = match s.distribution {
        Distribution::Gaussian => "Gaussian",
        Distribution::Softmax => "softmax",
    };
    format!("{} ({d})", parts.join("→"))
}

/// Builds a configuration from layers: a preset, a TOML file's text, and overrides.
#[derive(Clone, Debug, Default)]
pub struct ConfigBuilder {
    preset: Option<Preset>,
    file: Option<(String, toml::Table)>,
    overrides: Vec<(String, toml::Value)>,
}

impl ConfigBuilder {
    /// An empty builder (the embedded preset and no overrides).
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts from `preset` (wins over a `preset` key in the file).
    pub fn preset(mut self, preset: Preset) -> Self {
        self.preset = Some(preset);
        self
    }

    /// Layers a TOML file's text; `name` labels errors.
    pub fn file_text(mut self, name: &str, text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text.get(..s.start).unwrap_or("").lines().count().max(1));
            let at = line.map(|l| format!(" line {l}")).unwrap_or_default();
            ConfigError::new(
                format!("{name}{at}"),
                format!("invalid TOML: {}", e.message()),
            )
        })?;
        self.file = Some((name.to_string(), table));
        Ok(self)
    }

    /// Layers a TOML file read from disk.
    pub fn file(self, path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&name, format!("cannot read config file: {e}")))?;
        self.file_text(&name, &text)
    }

    /// Overrides one dotted key with a typed value.
    pub fn set(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.overrides.push((key.to_string(), value.into()));
        self
    }

    /// Overrides one dotted key from `key=value` text; the value is read as TOML
    /// (`0.05`, `true`, `[16, 16]`) or, failing that, as a string (`gae`).
    pub fn set_text(self, assignment: &str) -> Result<Self, ConfigError> {
        let (key, raw) = assignment.split_once('=').ok_or_else(|| {
            ConfigError::new("--set", format!("expected KEY=VALUE, got `{assignment}`"))
        })?;
        let (key, raw) = (key.trim(), raw.trim());
        if key.is_empty() {
            return Err(ConfigError::new(
                "--set",
                format!("empty key in `{assignment}`"),
            ));
        }
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        Ok(self.set(key, value))
    }

    /// Merges the layers, deserialises and validates.
    pub fn build(self) -> Result<Config, ConfigError> {
        let mut file = self.file;
        let file_preset = match &mut file {
            Some((name, table)) => match table.remove("preset") {
                None => None,
                Some(toml::Value::String(s)) => Some(Preset::from_name(&s).ok_or_else(|| {
                    ConfigError::new(
                        format!("{name}: preset"),
                        format!(
                            "unknown preset `{s}` (expected embedded, embedded-batch, embedded-streaming, paper-table1, paper-table2 or diffdrive)"
                        ),
                    )
                })?),
                Some(other) => {
                    return Err(ConfigError::new(
                        format!("{name}: preset"),
                        format!("expected a string, got {}", other.type_str()),
                    ));
                }
            },
            None => None,
        };
        let preset = self.preset.or(file_preset).unwrap_or(Preset::Embedded);
        let mut merged = to_value(&preset.config());
        let source = match &file {
            Some((name, table)) => {
                merge(&mut merged, toml::Value::Table(table.clone()));
                format!("{name}: ")
            }
            None => String::new(),
        };
        for (key, value) in self.overrides {
            set_dotted(&mut merged, &key, value)?;
        }
        let config: Config = serde_path_to_error::deserialize(merged).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::new(format!("{source}{path}"), e.inner().to_string())
        })?;
        config.validate()?;
        Ok(config)
    }
}

/// Recursively merges `top` onto `base` (tables key by key; anything else replaces).
fn merge(base: &mut toml::Value, top: toml::Value) {
    match (base, top) {
        (toml::Value::Table(b), toml::Value::Table(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn set_dotted(root: &mut toml::Value, key: &str, value: toml::Value) -> Result<(), ConfigError> {
    let mut cur = root;
    let parts: Vec<&str> = key.split('.').collect();
    let (last, path) = parts
        .split_last()
        .ok_or_else(|| ConfigError::new(key, "empty key"))?;
    for p in path {
        let toml::Value::Table(t) = cur else {
            return Err(ConfigError::new(key, "is not a table"));
        };
        cur = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    let toml::Value::Table(t) = cur else {
        return Err(ConfigError::new(key, "is not a table"));
    };
    t.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sgmrl::adapt::Memory;

    #[test]
    fn presets_are_valid_and_round_trip_through_toml() {
        for p in [
            Preset::Embedded,
            Preset::EmbeddedBatch,
            Preset::EmbeddedStreaming,
            Preset::PaperTable1,
            Preset::PaperTable2,
        ] {
            let c = p.config();
            c.validate().unwrap();
            let back = ConfigBuilder::new()
                .file_text("x.toml", &c.to_toml())
                .unwrap()
                .build()
                .unwrap();
            assert_eq!(back, c, "{}", p.name());
        }
    }

    #[test]
    fn paper_preset_is_table_1() {
        let c = Preset::PaperTable1.config();
        let s = c.shape();
        assert_eq!(s.n_params(), 10_604);
        assert_eq!(s.hidden, [100, 100]);
        assert_eq!(s.distribution, Distribution::Gaussian);
        let r = c.recipe();
        assert_eq!(r.alpha, 0.1);
        assert_eq!((r.steps, r.episodes, r.horizon), (1, 20, 100));
        assert_eq!(r.gamma, 0.99);
        assert_eq!(r.advantage, Advantage::LinearFeatureGae { lambda: 0.997 });
        assert!(r.normalize);
        assert_eq!(r.loss, LossScale::PerStep);
        assert_eq!(r.action, sgmrl::sim::Nav2d::PAPER_ACTION_MAP);
        assert_eq!((c.meta_batch, c.iterations), (20, 500));
        assert_eq!((c.outer.optimizer, c.outer.lr), (OptimizerName::Adam, 1e-3));
        assert_eq!(c.outer.episodes, 20);
        // Not the paper's (it specifies leave-one-out): with it SG-MRL did not learn on
        // nav2d (docs/results.md §2), so Table 1 runs with the CLI's default.
        assert_eq!(c.control_variate, ControlVariateName::Pre);
    }

    /// The embedded presets' adapter RAM (what `Recipe::memory` says the device needs)
    /// leaves most of a 16 KB Cortex-M0 for the stack and the application: the default's
    /// streaming rule costs only the `P` + one-episode minimum and the hidden layer's
    /// scratch (activations and deltas), the batch rule the batch buffer.
    #[test]
    fn embedded_presets_fit_a_16k_cortex_m0() {
        let c = Preset::EmbeddedBatch.config();
        let (shape, r) = (c.shape(), c.recipe());
        let m = r.memory(&shape);
        assert!(r.needs_batch());
        assert_eq!(m.params_floats, 0, "ζ = 1 adapts inside the accumulator");
        assert!(m.total_bytes() <= 6 * 1024, "{} bytes", m.total_bytes());
        let c = Preset::Embedded.config();
        let (shape, r) = (c.shape(), c.recipe());
        let m = r.memory(&shape);
        assert!(!r.needs_batch());
        assert_eq!(
            m.total_floats(),
            Memory::lower_bound_floats(&shape, r.horizon) + shape.hidden_scratch_len()
        );
        assert!(m.total_bytes() <= 1024, "{} bytes", m.total_bytes());
        // The streaming per-goal baseline: its four running sums stay within 1.2× the
        // `P` + one-episode yardstick.
        let c = Preset::EmbeddedStreaming.config();
        let (shape, r) = (c.shape(), c.recipe());
        let m = r.memory(&shape);
        assert!(!r.needs_batch() && r.normalize);
        let bound = Memory::lower_bound_floats(&shape, r.horizon);
        assert_eq!(m.total_bytes(), 880);
        assert!(m.total_floats() * 10 <= bound * 12, "{m:?} vs {bound}");
    }

    #[test]
    fn file_layers_on_its_preset_and_overrides_win() {
        let text = "preset = \"paper-table1\"\nseed = 7\n[recipe]\nalpha = 0.05\n";
        let c = ConfigBuilder::new()
            .file_text("run.toml", text)
            .unwrap()
            .set("recipe.steps", 2i64)
            .set_text("policy.hidden=[32]")
            .unwrap()
            .set_text("algorithm=maml")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.seed, 7);
        assert_eq!(c.recipe.alpha, 0.05);
        assert_eq!(c.recipe.steps, 2);
        assert_eq!(c.recipe.horizon, 100, "rest comes from the preset");
        assert_eq!(c.policy.hidden, vec![32]);
        assert_eq!(c.algorithm, AlgorithmName::Maml);
    }

    fn err(text: &str) -> ConfigError {
        ConfigBuilder::new()
            .file_text("c.toml", text)
            .and_then(|b| b.build())
            .unwrap_err()
    }

    #[test]
    fn errors_name_the_field_on_one_line() {
        let cases = [
            (
                "[recipe]\nalpa = 0.1\n",
                "c.toml: recipe.alpa",
                "unknown field `alpa`",
            ),
            ("bogus = 1\n", "c.toml: bogus", "unknown field `bogus`"),
            ("[recipe]\nsteps = 70000\n", "c.toml: recipe.steps", "u16"),
            (
                "env = \"mujoco\"\n",
                "c.toml: env",
                "unknown variant `mujoco`",
            ),
            (
                "[recipe]\nadvantage = \"gea\"\n",
                "c.toml: recipe.advantage",
                "unknown advantage rule (expected reward-to-go, time-baseline, scaled-baseline, batch-mean or gae)",
            ),
            (
                "[recipe]\nloss = \"per_step\"\n",
                "c.toml: recipe.loss",
                "unknown loss scaling (expected per-episode or per-step)",
            ),
            ("[recipe]\nalpha = -1.0\n", "recipe.alpha", "alpha"),
            ("[recipe]\ngamma = 2.0\n", "recipe.gamma", "gamma"),
            (
                "[recipe]\nadvantage = \"gae\"\ngae_lambda = 1.5\n",
                "recipe.gae_lambda",
                "lambda",
            ),
            (
                "[recipe]\naction_clip = -1.0\n",
                "recipe.action_clip",
                ">= 0",
            ),
            (
                "[policy]\nhidden = [1, 2, 3]\n",
                "policy.hidden",
                "at most 2",
            ),
            ("[policy]\nhidden = [0]\n", "policy.hidden", "1..="),
            ("[outer]\nlr = 0.0\n", "outer.lr", "> 0"),
            ("iterations = 0\n", "iterations", ">= 1"),
            ("x = [1,\n", "c.toml line", "invalid TOML"),
            ("preset = \"huge\"\n", "c.toml: preset", "unknown preset"),
        ];
        for (text, field, msg) in cases {
            let e = err(text);
            assert!(e.field.starts_with(field), "{text:?}: field {:?}", e.field);
            assert!(e.message.contains(msg), "{text:?}: {e}");
            assert!(!e.to_string().contains('\n'), "{text:?}: {e}");
        }
        let e = ConfigBuilder::new().set_text("nokey").unwrap_err();
        assert_eq!(e.field, "--set");
    }

    #[test]
    fn outer_episodes_must_suit_a_batch_rule() {
        let e = ConfigBuilder::new()
            .preset(Preset::PaperTable1)
            .set("outer.episodes", 1i64)
            .build()
            .unwrap_err();
        assert_eq!(e.field, "outer.episodes");
    }

    #[test]
    fn training_hash_ignores_budget_and_eval_but_not_recipe() {
        let a = Preset::Embedded.config();
        let mut b = a.clone();
        b.iterations += 100;
        b.checkpoint_every = 1;
        b.eval.goals = 3;
        assert_eq!(a.training_hash(), b.training_hash());
        assert!(a.training_differences(&b).is_empty());
        b.recipe.alpha *= 2.0;
        b.seed += 1;
        assert_ne!(a.training_hash(), b.training_hash());
        assert_eq!(
            a.training_differences(&b),
            vec!["recipe.alpha".to_string(), "seed".to_string()]
        );
    }

    #[test]
    fn shapes_follow_env_and_hidden() {
        let mut c = Preset::Embedded.config();
        c.env = EnvName::Nav2dDiscrete;
        c.policy.hidden = vec![];
        let s = c.shape();
        assert_eq!(s.distribution, Distribution::Softmax);
        assert_eq!((s.obs_dim, s.hidden, s.act_dim), (2, [0, 0], 9));
        assert_eq!(shape_name(&s), "2→9 (softmax)");
        assert_eq!(
            shape_name(&Preset::Embedded.config().shape()),
            "2→16→2 (Gaussian)"
        );
    }
}
