//! The meta-training loop: one [`MetaTrainer::step`] is one meta-iteration.
//!
//! Per iteration, for each of `B` tasks in parallel (rayon): draw the task, adapt ζ times
//! (fresh batch after every step), draw the outer batch; then, once every task's `Ĵ` is
//! known, form the control variate `b_i`, run each task's backward recursion (in parallel),
//! average the estimates in task order and take one ascent step. Every random draw comes
//! from a stream named by `(seed, [TRAIN, iteration, task, …])`, and the reduction order is
//! fixed, so a run is bit-identical whatever the number of threads.

use std::ops::Range;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use sgmrl::recipe::{Advantage, LossScale, Recipe, RecipeError};
use sgmrl::rng::Rng;

use super::{Adaptation, Algorithm, Order, Outer, leave_one_out};
use crate::advantage;
use crate::envs::TaskFamily;
use crate::gemm::Scalar;
use crate::kernels::Net;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::sampler::{self, SampleError, SampleSpec};
use sgmrl::estimator::EstimatorError;

/// The control variate `b_i` subtracted from task `i`'s `Ĵ_i` in the score terms
/// `(Ĵ_i − b_i)·s_k`. Since `E[s_k] = 0`, any `b_i` independent of task `i`'s own inner and
/// outer batches keeps the estimate unbiased (estimator.md); they differ in variance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlVariate {
    /// `b_i = 0`: the raw estimator.
    None,
    /// `b_i = mean_{j≠i} Ĵ_j`, the leave-one-out mean over the meta-batch (free).
    LeaveOneOut,
    /// `b_i = Ĵ⁰_i + mean_{j≠i} (Ĵ_j − Ĵ⁰_j)`, where `Ĵ⁰_j` is the mean discounted return of
    /// an extra batch drawn at `θ` (before adaptation) on task `j`, independent of that
    /// task's inner and outer batches. It removes the task-to-task spread of `Ĵ` (how far
    /// the goal is), which dominates the leave-one-out residual on nav2d, at the cost of one
    /// more batch of `|D_o|` episodes per task.
    PreAdaptation,
}

impl ControlVariate {
    /// Short lowercase name (`none`, `loo`, `pre`).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::LeaveOneOut => "loo",
            Self::PreAdaptation => "pre",
        }
    }

    /// The baselines `b_i` from each task's `Ĵ_i` and, for [`ControlVariate::PreAdaptation`],
    /// its pre-adaptation return `Ĵ⁰_i`.
    pub fn baselines<T: Scalar>(self, jt: &[T], pre: &[Option<T>]) -> Vec<T> {
        match self {
            Self::None => vec![T::ZERO; jt.len()],
            Self::LeaveOneOut => leave_one_out(jt),
            Self::PreAdaptation => {
                let j0: Vec<T> = pre.iter().map(|p| p.unwrap_or(T::ZERO)).collect();
                let gains: Vec<T> = jt.iter().zip(&j0).map(|(&j, &b)| j - b).collect();
                leave_one_out(&gains)
                    .iter()
                    .zip(&j0)
                    .map(|(&g, &b)| b + g)
                    .collect()
            }
        }
    }
}

impl ControlVariate {
    /// The baselines `b_i` of a whole meta-batch from its tasks' summaries, in task order.
    pub fn baselines_of(self, summaries: &[TaskSummary]) -> Vec<f32> {
        let jt: Vec<f32> = summaries.iter().map(|s| s.jt).collect();
        let pre: Vec<Option<f32>> = summaries.iter().map(|s| s.pre_adaptation_return).collect();
        self.baselines(&jt, &pre)
    }
}

/// Stream-name prefixes (first element of every training stream path).
pub mod streams {
    /// Meta-training batches and tasks.
    pub const TRAIN: u64 = 1;
    /// Marks a task draw (instead of an inner step index) in a path.
    pub const TASK: u64 = u64::MAX;
}

/// Everything that defines a meta-training run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetaConfig {
    /// The estimator.
    pub algorithm: Algorithm,
    /// First or second order.
    pub order: Order,
    /// The inner rule: what the device will do (α, ζ, N, H, γ, advantages, scaling,
    /// action map).
    pub recipe: Recipe,
    /// Advantage rule for the outer gradient `v` (never normalised, mean over episodes, so
    /// that `v` estimates `∇J(θ_ζ)` in the units of `Ĵ`).
    pub outer_advantage: Advantage,
    /// Episodes in the outer batch `|D_o|`.
    pub outer_episodes: u16,
    /// Tasks per meta-iteration `B`.
    pub tasks: usize,
    /// What is subtracted from each task's `Ĵ` in the score terms (unbiased in every mode).
    pub control_variate: ControlVariate,
    /// Outer optimiser.
    pub optimizer: OptimizerConfig,
    /// Root seed of every random stream.
    pub seed: u64,
}

impl MetaConfig {
    /// The recipe the outer batch is sampled and weighted with.
    pub fn outer_recipe(&self) -> Recipe {
        Recipe {
            advantage: self.outer_advantage,
            normalize: false,
            loss: LossScale::PerEpisode,
            episodes: self.outer_episodes,
            ..self.recipe
        }
    }

    /// Checks the recipe (inner and outer) and the counts.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.recipe.validate().map_err(TrainError::Recipe)?;
        self.outer_recipe().validate().map_err(TrainError::Recipe)?;
        if self.tasks == 0 {
            return Err(TrainError::NoTasks);
        }
        Ok(())
    }
}

/// Why a meta-iteration failed (parameters are left unchanged).
#[derive(Clone, Debug, PartialEq)]
pub enum TrainError {
    /// The recipe or the derived outer recipe is invalid.
    Recipe(RecipeError),
    /// `tasks = 0`.
    NoTasks,
    /// The policy does not fit the task family.
    Shape,
    /// Sampling failed.
    Sample(SampleError),
    /// The advantage rule failed.
    Advantage(EstimatorError),
    /// The meta-gradient has a NaN or infinite entry.
    NonFiniteGradient,
    /// Every task's simulation diverged (the first error).
    AllUnstable(String),
}

impl core::fmt::Display for TrainError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Recipe(e) => write!(f, "recipe: {e}"),
            Self::NoTasks => f.write_str("a meta-batch needs at least one task"),
            Self::Shape => f.write_str("policy shape does not fit the task family"),
            Self::Sample(e) => write!(f, "sampling: {e}"),
            Self::Advantage(e) => write!(f, "advantages: {e}"),
            Self::NonFiniteGradient => f.write_str("non-finite meta-gradient"),
            Self::AllUnstable(e) => write!(f, "every task's simulation diverged, e.g. {e}"),
        }
    }
}

impl std::error::Error for TrainError {}

impl From<SampleError> for TrainError {
    fn from(e: SampleError) -> Self {
        Self::Sample(e)
    }
}
impl From<EstimatorError> for TrainError {
    fn from(e: EstimatorError) -> Self {
        Self::Advantage(e)
    }
}

/// What one meta-iteration measured. Returns are means over the meta-batch's tasks of
/// per-episode means.
#[derive(Clone, Debug, PartialEq)]
pub struct IterationStats {
    /// Index of the iteration (0-based).
    pub iteration: u64,
    /// Mean undiscounted return before adaptation (on `D_1`, at `θ`).
    pub return_before: f64,
    /// Mean undiscounted return after ζ steps (on `D_o`, at `θ_ζ`).
    pub return_after: f64,
    /// Mean raw discounted return `Ĵ` after adaptation.
    pub discounted_after: f64,
    /// Environment steps taken in this iteration.
    pub env_steps: u64,
    /// Euclidean norm of the meta-gradient estimate.
    pub grad_norm: f64,
    /// Wall time of the iteration.
    pub elapsed: Duration,
    /// Tasks left out because their simulation diverged: `(task index, error)`.
    pub unstable: Vec<(usize, String)>,
}

/// Meta-trains a policy on a task family.
#[derive(Clone, Debug)]
pub struct MetaTrainer<F: TaskFamily> {
    config: MetaConfig,
    family: F,
    net: Net,
    params: Vec<f32>,
    optimizer: Optimizer,
    iteration: u64,
}

/// One task after adaptation: the inner steps (with what the recursion needs) and the
/// outer batch's contribution.
#[derive(Clone, Debug)]
pub struct TaskRun {
    /// `θ_0 → θ_ζ` and the inner batches.
    pub adaptation: Adaptation<f32>,
    /// `v`, `Ĵ` and the post-adaptation return.
    pub outer: Outer<f32>,
    /// Mean discounted return of an extra batch at `θ` (before adaptation), drawn only for
    /// [`ControlVariate::PreAdaptation`].
    pub pre_adaptation_return: Option<f32>,
    /// Environment steps of that extra batch (0 when it is not drawn).
    pub pre_adaptation_env_steps: usize,
}

impl TaskRun {
    /// Mean undiscounted return of the first inner batch (before adaptation); with no
    /// inner step ([`Algorithm::MultiTask`]), of the outer batch, which is then at `θ`.
    pub fn return_before(&self) -> f32 {
        self.adaptation
            .steps()
            .first()
            .map_or(self.outer.mean_return, |s| s.mean_return())
    }
    /// Mean undiscounted return of the outer batch (after ζ steps).
    pub fn return_after(&self) -> f32 {
        self.outer.mean_return
    }
    /// Every environment step this task took: inner batches, the outer batch and the
    /// pre-adaptation batch if drawn.
    pub fn env_steps(&self) -> usize {
        let inner: usize = self.adaptation.steps().iter().map(|s| s.env_steps()).sum();
        inner + self.outer.env_steps + self.pre_adaptation_env_steps
    }
}

/// What every process needs of one task to form the control variates and the statistics
/// (a few numbers; the task's [`TaskRun`] stays where it was computed).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TaskSummary {
    /// Raw mean discounted return `Ĵ` after adaptation.
    pub jt: f32,
    /// The pre-adaptation return `Ĵ⁰` ([`ControlVariate::PreAdaptation`] only).
    pub pre_adaptation_return: Option<f32>,
    /// Mean undiscounted return before adaptation.
    pub return_before: f32,
    /// Mean undiscounted return after ζ steps.
    pub return_after: f32,
    /// Environment steps the task took (inner and outer batches).
    pub env_steps: u64,
}

impl TaskSummary {
    /// The summary of a task's run.
    pub fn of(run: &TaskRun) -> Self {
        Self {
            jt: run.outer.jt,
            pre_adaptation_return: run.pre_adaptation_return,
            return_before: run.return_before(),
            return_after: run.return_after(),
            env_steps: run.env_steps() as u64,
        }
    }
}

impl<F: TaskFamily> MetaTrainer<F> {
    /// A trainer starting from `params` (the flat vector for `net`).
    pub fn new(
        config: MetaConfig,
        family: F,
        net: Net,
        params: Vec<f32>,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        let width_ok = match net.shape().distribution {
            sgmrl::policy::Distribution::Softmax => family.action_width() == 1,
            sgmrl::policy::Distribution::Gaussian => family.action_width() == net.act_dim(),
        };
        if params.len() != net.n_params() || family.obs_dim() != net.obs_dim() || !width_ok {
            return Err(TrainError::Shape);
        }
        let optimizer = Optimizer::new(config.optimizer, net.n_params());
        Ok(Self {
            config,
            family,
            net,
            params,
            optimizer,
            iteration: 0,
        })
    }

    /// Continues a run from a checkpoint: parameters, optimiser state and the number of
    /// iterations already done (the next iteration draws the streams of that index, so a
    /// resumed run is the same as an uninterrupted one).
    pub fn resume(
        config: MetaConfig,
        family: F,
        net: Net,
        params: Vec<f32>,
        optimizer: Optimizer,
        iteration: u64,
    ) -> Result<Self, TrainError> {
        let mut t = Self::new(config, family, net, params)?;
        if optimizer.state().1.len() != t.net.n_params() {
            return Err(TrainError::Shape);
        }
        t.optimizer = optimizer;
        t.iteration = iteration;
        Ok(t)
    }

    /// Sets the meta-parameters and the number of iterations done (driving the trainer from
    /// parameters held elsewhere, e.g. the command-line tool's checkpoints).
    pub fn set_state(&mut self, params: &[f32], iteration: u64) -> Result<(), TrainError> {
        if params.len() != self.params.len() {
            return Err(TrainError::Shape);
        }
        self.params.copy_from_slice(params);
        self.iteration = iteration;
        Ok(())
    }

    /// Replaces the optimiser (restoring a checkpoint); it must fit the policy.
    pub fn set_optimizer(&mut self, optimizer: Optimizer) -> Result<(), TrainError> {
        if optimizer.state().1.len() != self.net.n_params() {
            return Err(TrainError::Shape);
        }
        self.optimizer = optimizer;
        Ok(())
    }

    /// The current meta-parameters.
    pub fn params(&self) -> &[f32] {
        &self.params
    }
    /// The optimiser (for checkpoints).
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }
    /// The network layout.
    pub fn net(&self) -> &Net {
        &self.net
    }
    /// The configuration.
    pub fn config(&self) -> &MetaConfig {
        &self.config
    }
    /// The task family.
    pub fn family(&self) -> &F {
        &self.family
    }
    /// Iterations done.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// The meta-gradient estimate of the next iteration and its statistics, without
    /// stepping (what [`MetaTrainer::step`] ascends along). The same three pieces, run on
    /// one machine: [`MetaTrainer::run_tasks`], [`MetaTrainer::estimates`] and
    /// [`MetaTrainer::combine`]; `distributed` runs them across MPI ranks.
    pub fn meta_gradient(&self) -> Result<(Vec<f32>, IterationStats), TrainError> {
        let start = Instant::now();
        let baseline = self.time_baseline()?;
        let (runs, unstable) = self.run_stable_tasks(0..self.config.tasks, baseline.as_deref())?;
        if runs.is_empty() {
            return Err(all_unstable(&unstable));
        }
        let summaries: Vec<TaskSummary> = runs.iter().map(TaskSummary::of).collect();
        let baselines = self.config.control_variate.baselines_of(&summaries);
        let estimates = self.estimates(runs, &baselines);
        let (grad, mut stats) = self.combine_stable(&summaries, &estimates, unstable.len())?;
        stats.unstable = unstable;
        stats.elapsed = start.elapsed();
        Ok((grad, stats))
    }

    /// [`Self::run_tasks`] with the `TimeBaseline` table `baseline` given (fitted by
    /// [`Self::time_baseline`], or across processes), leaving out the tasks whose
    /// simulation diverged (returned with their errors, in index order): the others' mean
    /// is still an unbiased estimate. Any other failure fails the call; all of `tasks`
    /// diverging does not (on one process [`Self::meta_gradient`] then fails with
    /// [`TrainError::AllUnstable`], across processes it does when every rank's tasks did).
    #[allow(clippy::type_complexity)]
    pub fn run_stable_tasks(
        &self,
        tasks: Range<usize>,
        baseline: Option<&[f32]>,
    ) -> Result<(Vec<TaskRun>, Vec<(usize, String)>), TrainError> {
        let results: Vec<Result<TaskRun, TrainError>> = tasks
            .clone()
            .into_par_iter()
            .map(|i| self.run_task(i, baseline))
            .collect();
        let mut runs = Vec::with_capacity(results.len());
        let mut unstable = Vec::new();
        for (i, r) in tasks.zip(results) {
            match r {
                Ok(run) => runs.push(run),
                Err(TrainError::Sample(SampleError::Unstable(e))) => unstable.push((i, e)),
                Err(e) => return Err(e),
            }
        }
        Ok((runs, unstable))
    }

    /// Adapts and draws the outer batch for the meta-batch's tasks `tasks` (indices into
    /// `0..config.tasks`) of the next iteration, in parallel, in index order. Each task's
    /// streams are keyed by (iteration, task index), so which process runs it is free.
    pub fn run_tasks(&self, tasks: Range<usize>) -> Result<Vec<TaskRun>, TrainError> {
        // The whole meta-batch's table, fitted here (see `run_stable_tasks` for one fitted
        // elsewhere).
        let baseline = self.time_baseline()?;
        tasks
            .into_par_iter()
            .map(|i| self.run_task(i, baseline.as_deref()))
            .collect::<Result<_, _>>()
    }

    /// Each task's meta-gradient estimate (`n_params` values), from its run and its control
    /// variate `b_i` (`baselines[j]` for `runs[j]`), in parallel, in order.
    pub fn estimates(&self, runs: Vec<TaskRun>, baselines: &[f32]) -> Vec<Vec<f32>> {
        let alpha_per_sample = self.config.recipe.alpha_per_sample();
        let (algorithm, order) = (self.config.algorithm, self.config.order);
        runs.into_par_iter()
            .zip(baselines.par_iter())
            .map(|(mut run, &b)| {
                let m = run.outer.jt - b;
                algorithm.estimate(
                    order,
                    alpha_per_sample,
                    &run.outer.v,
                    m,
                    run.adaptation.steps_mut(),
                )
            })
            .collect()
    }

    /// The meta-gradient (mean of the whole meta-batch's `estimates`, in task order) and the
    /// iteration's statistics (from every task's `summaries`); `elapsed` is left at zero.
    /// The sum runs in task order in f64, so the result does not depend on how the tasks
    /// were spread over threads or processes.
    pub fn combine(
        &self,
        summaries: &[TaskSummary],
        estimates: &[Vec<f32>],
    ) -> Result<(Vec<f32>, IterationStats), TrainError> {
        self.combine_over(self.config.tasks, summaries, estimates)
    }

    /// [`Self::combine`] with `left_out` tasks left out because their simulation diverged
    /// ([`Self::run_stable_tasks`]): `summaries` and `estimates` are the other tasks', in
    /// task order, and the mean is over them. Any other missing task is refused.
    pub fn combine_stable(
        &self,
        summaries: &[TaskSummary],
        estimates: &[Vec<f32>],
        left_out: usize,
    ) -> Result<(Vec<f32>, IterationStats), TrainError> {
        if summaries.len() + left_out != self.config.tasks {
            return Err(TrainError::Shape);
        }
        self.combine_over(summaries.len(), summaries, estimates)
    }

    /// [`Self::combine`] over exactly `b` tasks: the whole meta-batch, or the tasks whose
    /// simulation did not diverge (the mean is over those).
    fn combine_over(
        &self,
        b: usize,
        summaries: &[TaskSummary],
        estimates: &[Vec<f32>],
    ) -> Result<(Vec<f32>, IterationStats), TrainError> {
        let p = self.net.n_params();
        if b == 0
            || summaries.len() != b
            || estimates.len() != b
            || estimates.iter().any(|e| e.len() != p)
        {
            return Err(TrainError::Shape);
        }
        let mut acc = vec![0.0f64; p];
        for e in estimates {
            for (a, &x) in acc.iter_mut().zip(e) {
                *a += f64::from(x);
            }
        }
        let grad: Vec<f32> = acc.iter().map(|&a| (a / b as f64) as f32).collect();
        if grad.iter().any(|g| !g.is_finite()) {
            return Err(TrainError::NonFiniteGradient);
        }
        let stats = IterationStats {
            iteration: self.iteration,
            return_before: mean(summaries.iter().map(|s| f64::from(s.return_before))),
            return_after: mean(summaries.iter().map(|s| f64::from(s.return_after))),
            discounted_after: mean(summaries.iter().map(|s| f64::from(s.jt))),
            env_steps: summaries.iter().map(|s| s.env_steps).sum(),
            grad_norm: grad
                .iter()
                .map(|&g| f64::from(g) * f64::from(g))
                .sum::<f64>()
                .sqrt(),
            elapsed: Duration::ZERO,
            unstable: Vec::new(),
        };
        Ok((grad, stats))
    }

    /// Takes one ascent step along `grad` (from [`MetaTrainer::combine`]) and counts the
    /// iteration.
    pub fn ascend(&mut self, grad: &[f32]) -> Result<(), TrainError> {
        if grad.len() != self.params.len() {
            return Err(TrainError::Shape);
        }
        self.optimizer.ascend(&mut self.params, grad);
        self.iteration += 1;
        Ok(())
    }

    /// One meta-iteration: estimate the meta-gradient and take one ascent step.
    pub fn step(&mut self) -> Result<IterationStats, TrainError> {
        let start = Instant::now();
        let (grad, mut stats) = self.meta_gradient()?;
        self.ascend(&grad)?;
        stats.elapsed = start.elapsed();
        Ok(stats)
    }

    /// The `TimeBaseline` table this iteration adapts with, fitted at the current
    /// parameters ([`super::baseline`]); `None` for every other inner rule (and when
    /// training takes no inner step).
    pub fn time_baseline(&self) -> Result<Option<Vec<f32>>, TrainError> {
        if !self.fits_time_baseline() {
            return Ok(None);
        }
        super::baseline::fit_time_baseline(
            &self.family,
            &self.net,
            &self.params,
            &self.config,
            self.iteration,
        )
        .map(Some)
    }

    /// Whether this configuration adapts with a fitted time table (`TimeBaseline`, or
    /// `ScaledBaseline`, which scales the same table per goal).
    pub fn fits_time_baseline(&self) -> bool {
        let cfg = &self.config;
        cfg.recipe.advantage.uses_table() && cfg.algorithm.inner_steps(cfg.recipe.steps) > 0
    }

    /// The share of [`Self::time_baseline`]'s fit that the tasks `tasks` contribute
    /// ([`super::baseline::task_sums`]): fitted in blocks on several processes and joined
    /// by [`super::baseline::table_of`] in task order, it is the same table to the bit.
    pub fn time_baseline_sums(
        &self,
        tasks: Range<usize>,
    ) -> Result<Vec<super::baseline::TaskSums>, TrainError> {
        super::baseline::task_sums(
            &self.family,
            &self.net,
            &self.params,
            &self.config,
            self.iteration,
            tasks,
        )
    }

    fn run_task(&self, i: usize, baseline: Option<&[f32]>) -> Result<TaskRun, TrainError> {
        let cfg = &self.config;
        let path = [streams::TRAIN, self.iteration, i as u64];
        let mut task_rng = Rng::derive(
            cfg.seed,
            &[streams::TRAIN, self.iteration, i as u64, streams::TASK],
        );
        let task = self.family.sample_task(&mut task_rng);
        adapt_task(
            &self.family,
            &task,
            &self.net,
            &self.params,
            cfg,
            baseline,
            &path,
        )
    }
}

/// The error of an iteration whose every task diverged: the first task's error.
pub fn all_unstable(unstable: &[(usize, String)]) -> TrainError {
    TrainError::AllUnstable(unstable.first().map(|(_, e)| e.clone()).unwrap_or_default())
}

/// Adapts `params` to `task` as the configuration says and draws the outer batch: inner
/// batch `k` (0-based) is sampled on the streams `path ++ [k]`, the outer batch on
/// `path ++ [ζ]`, all under `config.seed`. What each inner step keeps is what
/// `config.algorithm` needs at `config.order`. `baseline` is the `TimeBaseline` table
/// (held fixed: the estimate is for the objective with this table).
pub fn adapt_task<F: TaskFamily>(
    family: &F,
    task: &F::Task,
    net: &Net,
    params: &[f32],
    config: &MetaConfig,
    baseline: Option<&[f32]>,
    path: &[u64],
) -> Result<TaskRun, TrainError> {
    let recipe = &config.recipe;
    let mut full_path = path.to_vec();
    full_path.push(0);
    let last = full_path.len() - 1;
    fn spec<'p>(config: &MetaConfig, path: &'p [u64], episodes: u16) -> SampleSpec<'p> {
        SampleSpec {
            episodes: usize::from(episodes),
            horizon: usize::from(config.recipe.horizon),
            action_map: config.recipe.action,
            seed: config.seed,
            path,
        }
    }
    let inner_steps = config.algorithm.inner_steps(recipe.steps);
    let mut adaptation = Adaptation::new(net, params, recipe.alpha_per_sample());
    for k in 0..usize::from(inner_steps) {
        full_path[last] = k as u64;
        let ro = sampler::sample(
            family,
            task,
            net,
            adaptation.theta(),
            &spec(config, &full_path, recipe.episodes),
        )?;
        let w = advantage::weights_with_baseline(recipe, baseline, &ro)?;
        adaptation.step(ro, w, config.algorithm.needs(config.order, k));
    }
    full_path[last] = u64::from(inner_steps);
    let mut ro = sampler::sample(
        family,
        task,
        net,
        adaptation.theta(),
        &spec(config, &full_path, config.outer_episodes),
    )?;
    let w = advantage::weights_with_baseline(&config.outer_recipe(), baseline, &ro)?;
    let outer = Outer::new(net, adaptation.theta(), &mut ro, &w, recipe.gamma);
    let (pre_adaptation_return, pre_adaptation_env_steps) = if config.control_variate
        == ControlVariate::PreAdaptation
        && config.algorithm != Algorithm::MultiTask
    {
        // Its own streams (`path ++ [ζ + 1]`): independent of every batch the estimate uses.
        full_path[last] = u64::from(inner_steps) + 1;
        let ro = sampler::sample(
            family,
            task,
            net,
            params,
            &spec(config, &full_path, config.outer_episodes),
        )?;
        (Some(ro.mean_discounted_return(recipe.gamma)), ro.steps())
    } else {
        (None, 0)
    };
    Ok(TaskRun {
        adaptation,
        outer,
        pre_adaptation_return,
        pre_adaptation_env_steps,
    })
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { s / n as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs::Nav2dFamily;
    use sgmrl::policy::{Distribution, PolicyShape};
    use sgmrl::sim::Nav2d;

    fn small_config(algorithm: Algorithm, order: Order) -> MetaConfig {
        MetaConfig {
            algorithm,
            order,
            recipe: Recipe {
                alpha: 0.1,
                steps: 1,
                episodes: 4,
                horizon: 15,
                gamma: 0.99,
                advantage: Advantage::LinearFeatureGae { lambda: 0.97 },
                normalize: true,
                loss: LossScale::PerStep,
                action: Nav2d::PAPER_ACTION_MAP,
            },
            outer_advantage: Advantage::LinearFeatureGae { lambda: 0.97 },
            outer_episodes: 4,
            tasks: 3,
            control_variate: ControlVariate::LeaveOneOut,
            optimizer: OptimizerConfig::adam(1e-2),
            seed: 7,
        }
    }

    fn trainer(config: MetaConfig) -> MetaTrainer<Nav2dFamily> {
        let net = Net::new(PolicyShape {
            distribution: Distribution::Gaussian,
            obs_dim: 2,
            hidden: [8, 8],
            act_dim: 2,
        })
        .unwrap();
        let params = net.glorot_init(&mut Rng::new(1));
        MetaTrainer::new(config, Nav2dFamily, net, params).unwrap()
    }

    fn run_in_pool(threads: usize, config: MetaConfig) -> (Vec<f32>, Vec<IterationStats>) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut t = trainer(config);
            let stats = (0..3).map(|_| t.step().unwrap()).collect();
            (t.params().to_vec(), stats)
        })
    }

    #[test]
    fn bit_identical_whatever_the_thread_count() {
        let cfg = small_config(Algorithm::SgMrl, Order::Second);
        let (p1, s1) = run_in_pool(1, cfg);
        let (p2, s2) = run_in_pool(2, cfg);
        let (p3, _) = run_in_pool(3, cfg);
        assert_eq!(p1, p2);
        assert_eq!(p1, p3);
        for (a, b) in s1.iter().zip(&s2) {
            assert_eq!(a.return_after.to_bits(), b.return_after.to_bits());
            assert_eq!(a.grad_norm.to_bits(), b.grad_norm.to_bits());
        }
        let other = MetaConfig { seed: 8, ..cfg };
        assert_ne!(run_in_pool(2, other).0, p1, "the seed matters");
    }

    #[test]
    fn tasks_computed_in_blocks_combine_to_the_same_gradient() {
        // What `distributed` does across processes: blocks of tasks, then one reduction.
        let cfg = MetaConfig {
            tasks: 5,
            control_variate: ControlVariate::PreAdaptation,
            ..small_config(Algorithm::SgMrl, Order::Second)
        };
        let t = trainer(cfg);
        let (whole, stats) = t.meta_gradient().unwrap();
        let runs: Vec<TaskRun> = [0..2, 2..3, 3..5]
            .into_iter()
            .flat_map(|r| t.run_tasks(r).unwrap())
            .collect();
        let summaries: Vec<TaskSummary> = runs.iter().map(TaskSummary::of).collect();
        let baselines = cfg.control_variate.baselines_of(&summaries);
        let mut estimates = Vec::new();
        let mut runs = runs.into_iter();
        for (lo, hi) in [(0, 3), (3, 5)] {
            let block: Vec<TaskRun> = runs.by_ref().take(hi - lo).collect();
            estimates.extend(t.estimates(block, &baselines[lo..hi]));
        }
        let (split, split_stats) = t.combine(&summaries, &estimates).unwrap();
        assert_eq!(whole, split);
        assert_eq!(stats.grad_norm.to_bits(), split_stats.grad_norm.to_bits());
        assert_eq!(stats.env_steps, split_stats.env_steps);
        assert_eq!(
            t.combine(&summaries[1..], &estimates[1..]).unwrap_err(),
            TrainError::Shape,
            "a missing task is refused"
        );
        // Unless it is declared left out (diverged): then the mean is over the others.
        let (rest, rest_stats) = t
            .combine_stable(&summaries[1..], &estimates[1..], 1)
            .unwrap();
        assert_ne!(rest, whole);
        assert_eq!(
            rest_stats.env_steps,
            summaries[1..].iter().map(|s| s.env_steps).sum::<u64>()
        );
        assert_eq!(
            t.combine_stable(&summaries[1..], &estimates[1..], 0)
                .unwrap_err(),
            TrainError::Shape
        );
    }

    #[test]
    fn a_resumed_run_is_the_uninterrupted_run() {
        let cfg = small_config(Algorithm::SgMrl, Order::First);
        let mut whole = trainer(cfg);
        for _ in 0..3 {
            whole.step().unwrap();
        }
        let mut first = trainer(cfg);
        first.step().unwrap();
        let (c, m, v, t) = first.optimizer().state();
        let opt = Optimizer::from_state(c, m.to_vec(), v.to_vec(), t).unwrap();
        let mut rest = MetaTrainer::resume(
            cfg,
            Nav2dFamily,
            first.net().clone(),
            first.params().to_vec(),
            opt,
            first.iteration(),
        )
        .unwrap();
        rest.step().unwrap();
        rest.step().unwrap();
        assert_eq!(rest.params(), whole.params());
        assert_eq!(rest.iteration(), 3);
    }

    #[test]
    fn every_algorithm_steps_and_reports() {
        for algorithm in [Algorithm::SgMrl, Algorithm::Maml, Algorithm::EMaml] {
            for order in [Order::First, Order::Second] {
                let mut t = trainer(small_config(algorithm, order));
                let before = t.params().to_vec();
                let s = t.step().unwrap();
                assert_ne!(t.params(), &before[..]);
                assert_eq!(s.iteration, 0);
                assert_eq!(t.iteration(), 1);
                // No goal is reached in 15 steps of at most 0.1 from the origin unless it
                // is close; every episode has at most 15 steps and 3 tasks × 2 batches × 4.
                assert!(s.env_steps > 0 && s.env_steps <= 3 * 2 * 4 * 15);
                assert!(s.return_before < 0.0 && s.return_after < 0.0);
                assert!(s.grad_norm > 0.0 && s.grad_norm.is_finite());
            }
        }
    }

    /// `env_steps` counts the pre-adaptation batch too (it used to be left out, so
    /// `log.csv` and `sgmrl bench` under-counted SG-MRL's sampling by a third).
    #[test]
    fn env_steps_count_the_pre_adaptation_batch() {
        let loo = small_config(Algorithm::SgMrl, Order::Second);
        let pre = MetaConfig {
            control_variate: ControlVariate::PreAdaptation,
            ..loo
        };
        let without = trainer(loo).meta_gradient().unwrap().1.env_steps;
        let t = trainer(pre);
        let with = t.meta_gradient().unwrap().1.env_steps;
        // The pre-adaptation batches, drawn again on their own streams (`path ++ [ζ + 1]`).
        let extra: usize = (0..pre.tasks as u64)
            .map(|i| {
                let mut rng = Rng::derive(pre.seed, &[streams::TRAIN, 0, i, streams::TASK]);
                let task = Nav2dFamily.sample_task(&mut rng);
                let path = [streams::TRAIN, 0, i, u64::from(pre.recipe.steps) + 1];
                let spec = SampleSpec {
                    episodes: usize::from(pre.outer_episodes),
                    horizon: usize::from(pre.recipe.horizon),
                    action_map: pre.recipe.action,
                    seed: pre.seed,
                    path: &path,
                };
                sampler::sample(&Nav2dFamily, &task, t.net(), t.params(), &spec)
                    .unwrap()
                    .steps()
            })
            .sum();
        assert!(extra > 0);
        assert_eq!(with, without + extra as u64);
    }

    #[test]
    fn first_and_second_order_share_the_batches() {
        // Same seed → same tasks and inner batches; D_o is drawn from θ_1, which both
        // orders compute identically, so the returns agree and only the gradient differs.
        let a = trainer(small_config(Algorithm::SgMrl, Order::First))
            .meta_gradient()
            .unwrap();
        let b = trainer(small_config(Algorithm::SgMrl, Order::Second))
            .meta_gradient()
            .unwrap();
        assert_eq!(a.1.return_before, b.1.return_before);
        assert_eq!(a.1.return_after, b.1.return_after);
        assert_ne!(a.0, b.0);
        let m = trainer(small_config(Algorithm::Maml, Order::First))
            .meta_gradient()
            .unwrap();
        assert_eq!(m.1.return_after, a.1.return_after);
    }

    /// The multi-task estimate of a one-task meta-batch is the core's plain batch policy
    /// gradient (the device's rule) of the outer batch drawn at `θ` itself, averaged over its
    /// episodes: no inner step, whatever the recipe's ζ and the control variate.
    #[test]
    fn multitask_estimate_is_the_plain_batch_policy_gradient() {
        use sgmrl::estimator::{Episode, batch_gradient, batch_gradient_scratch_len};
        type P = sgmrl::policy::GaussianMlp<2, 8, 8, 2>;
        for control_variate in [ControlVariate::None, ControlVariate::PreAdaptation] {
            let mut cfg = small_config(Algorithm::MultiTask, Order::Second);
            cfg.tasks = 1;
            cfg.control_variate = control_variate;
            cfg.recipe.steps = 2;
            let t = trainer(cfg);
            let (grad, stats) = t.meta_gradient().unwrap();
            assert_eq!(stats.return_before, stats.return_after, "one batch, at θ");
            assert_eq!(stats.env_steps, 4 * 15, "only the outer batch is drawn");

            let task = Nav2dFamily.sample_task(&mut Rng::derive(
                cfg.seed,
                &[streams::TRAIN, 0, 0, streams::TASK],
            ));
            let path = [streams::TRAIN, 0, 0, 0];
            let spec = SampleSpec {
                episodes: usize::from(cfg.outer_episodes),
                horizon: usize::from(cfg.recipe.horizon),
                action_map: cfg.recipe.action,
                seed: cfg.seed,
                path: &path,
            };
            let ro = sampler::sample(&Nav2dFamily, &task, t.net(), t.params(), &spec).unwrap();
            let episodes: Vec<Episode<'_, f32>> = (0..ro.episodes())
                .map(|e| {
                    let (o, a, r) = ro.episode(e);
                    Episode::new(o, a, r, 2, 2).unwrap()
                })
                .collect();
            let outer = cfg.outer_recipe();
            let mut want = vec![0.0f32; t.net().n_params()];
            let mut scratch = vec![0.0f32; batch_gradient_scratch_len(&outer, 2)];
            batch_gradient(
                &P::default(),
                t.params(),
                &outer,
                None::<&[f32]>,
                &episodes,
                &mut want,
                &mut scratch,
            )
            .unwrap();
            let n = f32::from(cfg.outer_episodes);
            let num: f32 = grad
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w / n) * (g - w / n))
                .sum();
            let den: f32 = want.iter().map(|w| (w / n) * (w / n)).sum();
            assert!(den > 0.0);
            assert!(
                (num / den).sqrt() < 1e-4,
                "rel. error {}",
                (num / den).sqrt()
            );
        }
    }

    /// A few multi-task iterations raise the unadapted return, measured on the same tasks
    /// and streams (iteration 0's) before and after.
    #[test]
    fn multitask_improves_the_unadapted_return() {
        let mut cfg = small_config(Algorithm::MultiTask, Order::First);
        cfg.tasks = 20;
        cfg.outer_episodes = 20;
        // The embedded task's actions and horizon, where moving matters.
        cfg.recipe.action = sgmrl::recipe::ActionMap {
            scale: 0.1,
            clip: Some(0.1),
        };
        cfg.recipe.horizon = 20;
        let mut t = trainer(cfg);
        let before = t.meta_gradient().unwrap().1.return_before;
        for _ in 0..30 {
            t.step().unwrap();
        }
        let params = t.params().to_vec();
        t.set_state(&params, 0).unwrap();
        let after = t.meta_gradient().unwrap().1.return_before;
        assert!(after > before + 0.5, "before {before}, after {after}");
    }

    #[test]
    fn rejects_a_policy_that_does_not_fit() {
        let net = Net::new(PolicyShape {
            distribution: Distribution::Gaussian,
            obs_dim: 3,
            hidden: [4, 0],
            act_dim: 2,
        })
        .unwrap();
        let p = vec![0.0; net.n_params()];
        let cfg = small_config(Algorithm::SgMrl, Order::First);
        assert_eq!(
            MetaTrainer::new(cfg, Nav2dFamily, net, p).unwrap_err(),
            TrainError::Shape
        );
        let bad = MetaConfig { tasks: 0, ..cfg };
        let net = trainer(cfg).net().clone();
        let p = vec![0.0; net.n_params()];
        assert_eq!(
            MetaTrainer::new(bad, Nav2dFamily, net, p).unwrap_err(),
            TrainError::NoTasks
        );
    }
}
