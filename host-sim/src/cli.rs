//! The `sgmrl` command line: argument definitions (clap) and the commands.
//!
//! Every input error — a bad flag or value, a missing or garbled config, an unreadable,
//! corrupt or incompatible file, a bundle for another task, an unwritable output — is
//! returned as an error whose text is one line naming the problem; `main` prints it and
//! exits non-zero.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::cluster::{Cluster, Local};
use crate::comparison::{Comparison, GREEDY, Line, META_AFTER, Reference};
use crate::config::{
    AdvantageName, AlgorithmName, Config, ConfigBuilder, ControlVariateName, EnvName,
    HELD_OUT_SEED, LossName, OptimizerName, Preset, shape_name,
};
use crate::eval::{EvalReport, GoalSet, Stat, evaluate, run_goals, standing_still_return};
use crate::export::{MemoryJson, export_all};
use crate::model::Model;
use crate::outputs::{check_dir, check_file};
use crate::plot::{Bar, GoalPaths, LabelledCurve, plot_comparison, plot_curves, plot_trajectories};
use crate::rundir::RunDir;
use crate::runlog::read_curve;
use crate::sweep::{Cell, Outcome, Run};
use crate::train::{EngineFactory, ProgressMode, TrainOptions, TrainOutcome, train};

/// `sgmrl`: meta-train a policy with SG-MRL (or MAML, FO-MAML, E-MAML), evaluate its
/// adaptation on held-out tasks, export the bundle a microcontroller adapts from, plot.
#[derive(Debug, Parser)]
#[command(
    name = "sgmrl",
    version,
    about = "Meta-train a policy with SG-MRL (or MAML, FO-MAML, E-MAML), evaluate its adaptation on held-out tasks, export the bundle a microcontroller adapts from, and plot.",
    max_term_width = 100
)]
pub struct Cli {
    /// Worker threads for rollouts and evaluation (default: all cores). Results do not
    /// depend on it.
    #[arg(long, global = true, value_name = "N", allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// No progress output.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Meta-train a policy in a run directory; resumes it if it has a checkpoint.
    Train(TrainArgs),
    /// Adapt a bundle or checkpoint to held-out goals: return before and after each step.
    Eval(EvalArgs),
    /// Write the core's bundle, a .safetensors file and a JSON summary.
    Export(ExportArgs),
    /// Plot learning curves or trajectories (PNG and SVG).
    Plot(PlotArgs),
    /// The main job: meta-train the embedded task, export, evaluate, plot.
    Demo(DemoArgs),
    /// Reproduce the paper's Table 1 (several algorithms and seeds).
    Reproduce(ReproduceArgs),
    /// Time meta-iterations and evaluation.
    Bench(BenchArgs),
    /// Print a resolved configuration as TOML (a template for --config).
    Config(ConfigCmdArgs),
}

/// Configuration flags shared by the commands that train.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// TOML configuration file (layered on its `preset`, default embedded).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Starting preset.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Task family.
    #[arg(long, value_enum)]
    pub env: Option<EnvName>,
    /// Meta-training algorithm.
    #[arg(long, value_enum)]
    pub algorithm: Option<AlgorithmName>,
    /// Root seed.
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Meta-iterations.
    #[arg(long, allow_negative_numbers = true)]
    pub iterations: Option<u32>,
    /// Tasks per meta-iteration.
    #[arg(long, allow_negative_numbers = true)]
    pub meta_batch: Option<u32>,
    /// Inner step size α.
    #[arg(long, allow_negative_numbers = true)]
    pub alpha: Option<f32>,
    /// Adaptation steps ζ.
    #[arg(long, allow_negative_numbers = true)]
    pub steps: Option<u16>,
    /// Episodes per adaptation step.
    #[arg(long, allow_negative_numbers = true)]
    pub episodes: Option<u16>,
    /// Horizon H.
    #[arg(long, allow_negative_numbers = true)]
    pub horizon: Option<u16>,
    /// Discount γ.
    #[arg(long, allow_negative_numbers = true)]
    pub gamma: Option<f32>,
    /// Advantage rule.
    #[arg(long, value_enum)]
    pub advantage: Option<AdvantageName>,
    /// GAE λ (advantage gae).
    #[arg(long, allow_negative_numbers = true)]
    pub gae_lambda: Option<f32>,
    /// Normalise advantages (true/false).
    #[arg(long)]
    pub normalize: Option<bool>,
    /// Inner-loss scaling.
    #[arg(long, value_enum)]
    pub loss: Option<LossName>,
    /// Hidden layer widths, e.g. `16` or `100,100`; `none` for a linear policy.
    #[arg(long, value_name = "WIDTHS")]
    pub hidden: Option<String>,
    /// Outer optimiser.
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerName>,
    /// Outer learning rate.
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f32>,
    /// Control variate of the score terms: none, loo (leave-one-out) or pre
    /// (pre-adaptation batch).
    #[arg(long, value_enum)]
    pub control_variate: Option<ControlVariateName>,
    /// Any field as a dotted key, e.g. `--set recipe.action_scale=0.01` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

fn int(x: impl Into<i64>) -> toml::Value {
    toml::Value::Integer(x.into())
}

fn float(x: f32) -> toml::Value {
    toml::Value::Float(f64::from(x))
}

fn name<T: clap::ValueEnum>(v: &T) -> toml::Value {
    toml::Value::String(
        v.to_possible_value()
            .map(|p| p.get_name().to_string())
            .unwrap_or_default(),
    )
}

impl ConfigArgs {
    /// True when a flag chooses the base layers (`--config`, `--preset`).
    fn chooses_base(&self) -> bool {
        self.config.is_some() || self.preset.is_some()
    }

    /// Applies the base layers (preset, file) to `b`.
    fn base(&self, mut b: ConfigBuilder) -> anyhow::Result<ConfigBuilder> {
        if let Some(p) = self.preset {
            b = b.preset(p);
        }
        if let Some(f) = &self.config {
            b = b.file(f)?;
        }
        Ok(b)
    }

    /// Applies the override flags to `b`.
    fn overrides(&self, mut b: ConfigBuilder) -> anyhow::Result<ConfigBuilder> {
        if let Some(v) = &self.env {
            b = b.set("env", name(v));
        }
        if let Some(v) = &self.algorithm {
            b = b.set("algorithm", name(v));
        }
        if let Some(v) = self.seed {
            let v = i64::try_from(v).context("--seed: must be at most 9223372036854775807")?;
            b = b.set("seed", v);
        }
        if let Some(v) = self.iterations {
            b = b.set("iterations", int(v));
        }
        if let Some(v) = self.meta_batch {
            b = b.set("meta_batch", int(v));
        }
        if let Some(v) = self.alpha {
            b = b.set("recipe.alpha", float(v));
        }
        if let Some(v) = self.steps {
            b = b.set("recipe.steps", int(v));
        }
        if let Some(v) = self.episodes {
            b = b.set("recipe.episodes", int(v));
        }
        if let Some(v) = self.horizon {
            b = b.set("recipe.horizon", int(v));
        }
        if let Some(v) = self.gamma {
            b = b.set("recipe.gamma", float(v));
        }
        if let Some(v) = &self.advantage {
            b = b.set("recipe.advantage", name(v));
        }
        if let Some(v) = self.gae_lambda {
            b = b.set("recipe.gae_lambda", float(v));
        }
        if let Some(v) = self.normalize {
            b = b.set("recipe.normalize", v);
        }
        if let Some(v) = &self.loss {
            b = b.set("recipe.loss", name(v));
        }
        if let Some(v) = &self.hidden {
            b = b.set("policy.hidden", parse_hidden(v)?);
        }
        if let Some(v) = &self.optimizer {
            b = b.set("outer.optimizer", name(v));
        }
        if let Some(v) = self.lr {
            b = b.set("outer.lr", float(v));
        }
        if let Some(v) = &self.control_variate {
            b = b.set("control_variate", name(v));
        }
        for s in &self.set {
            b = b.set_text(s)?;
        }
        Ok(b)
    }

    /// The configuration from the flags alone (no run directory).
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let b = self.overrides(self.base(ConfigBuilder::new())?)?;
        Ok(b.build()?)
    }

    /// The configuration of a run directory: its stored `config.toml` with the override
    /// flags on top when it has one (a resumed run keeps its configuration), else the flags.
    pub fn resolve_for_run(&self, run: &RunDir) -> anyhow::Result<Config> {
        if !run.config().exists() {
            return self.resolve();
        }
        if self.chooses_base() {
            bail!(
                "{} already holds a run; it resumes with its own config.toml, so drop --config/--preset (or use a new --run-dir)",
                run.root().display()
            );
        }
        let b = ConfigBuilder::new().file(&run.config())?;
        Ok(self.overrides(b)?.build()?)
    }
}

fn parse_hidden(s: &str) -> anyhow::Result<toml::Value> {
    let s = s.trim();
    if s.is_empty() || s == "none" {
        return Ok(toml::Value::Array(vec![]));
    }
    let widths = s
        .split(',')
        .map(|w| {
            w.trim().parse::<u16>().map(int).map_err(|_| {
                anyhow::anyhow!(
                    "--hidden: `{w}` is not a layer width (use e.g. 16 or 100,100 or none)"
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(toml::Value::Array(widths))
}

/// `train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Run directory (created; resumed when it holds a checkpoint).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub run_dir: PathBuf,
    /// Configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Evaluation flags.
#[derive(Debug, Clone, Args)]
pub struct EvalFlags {
    /// Held-out goals (default: the run's eval.goals, else 400).
    #[arg(long, allow_negative_numbers = true)]
    pub goals: Option<u32>,
    /// Seed naming the held-out goal set (default: the run's eval.seed, else the fixed
    /// default set).
    #[arg(long = "eval-seed", value_name = "SEED", allow_negative_numbers = true)]
    pub eval_seed: Option<u64>,
    /// Fresh episodes per goal for the final return (default: the run's eval.episodes,
    /// else the recipe's episodes per step).
    #[arg(
        long = "eval-episodes",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub eval_episodes: Option<u16>,
}

/// `eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A bundle (.sgml), a checkpoint (.sgck), or a run directory.
    pub input: PathBuf,
    /// The task (checked against the one recorded in the input).
    #[arg(long, value_enum)]
    pub env: Option<EnvName>,
    /// Evaluation settings.
    #[command(flatten)]
    pub eval: EvalFlags,
    /// Write the report as JSON here (default for a run directory: its eval.json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A checkpoint (.sgck), a bundle (.sgml), or a run directory.
    pub input: PathBuf,
    /// The task (checked against the one recorded in the input).
    #[arg(long, value_enum)]
    pub env: Option<EnvName>,
    /// Output directory (default: the run directory, or the input file's directory).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// What to plot.
    #[command(subcommand)]
    pub what: PlotCommand,
}

/// `plot` subcommands.
#[derive(Debug, Subcommand)]
pub enum PlotCommand {
    /// Learning curves of several runs on one chart (runs sharing a label are averaged,
    /// with a ± s.d. band).
    Curves {
        /// Run directories, each optionally as LABEL=DIR (default label: its algorithm).
        #[arg(required = true, value_name = "[LABEL=]DIR")]
        runs: Vec<String>,
        /// Output: PREFIX writes PREFIX.png and PREFIX.svg; a .png or .svg name writes one.
        #[arg(long, short = 'o', value_name = "PREFIX")]
        out: PathBuf,
        /// Chart title.
        #[arg(long)]
        title: Option<String>,
    },
    /// Trajectories before and after adaptation for a few held-out goals (Figure 1).
    Trajectories {
        /// A bundle, a checkpoint, or a run directory.
        input: PathBuf,
        /// Output: PREFIX writes PREFIX.png and PREFIX.svg; a .png or .svg name writes one.
        #[arg(long, short = 'o', value_name = "PREFIX")]
        out: PathBuf,
        /// Goals (panels).
        #[arg(long, default_value_t = 4, allow_negative_numbers = true)]
        goals: u32,
        /// Seed naming the goal set.
        #[arg(long = "eval-seed", value_name = "SEED", allow_negative_numbers = true)]
        eval_seed: Option<u64>,
        /// The task (checked against the one recorded in the input).
        #[arg(long, value_enum)]
        env: Option<EnvName>,
    },
}

/// `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run directory.
    #[arg(long, short = 'o', value_name = "DIR", default_value = "runs/demo")]
    pub run_dir: PathBuf,
    /// Configuration (default preset: embedded).
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// An experiment of the paper that `reproduce` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Experiment {
    /// Table 1: 2-D navigation, return after one adaptation step.
    Table1,
    /// Table 2: MuJoCo locomotion (HalfCheetah direction and velocity, Swimmer velocity),
    /// SG-MRL and MAML with 1, 2 and 3 inner steps (needs the `mujoco` feature).
    Table2,
}

/// `reproduce`.
#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// The experiment.
    #[arg(value_enum, default_value = "table1")]
    pub experiment: Experiment,
    /// A tiny version that checks the whole pipeline in seconds (CI): 2 seeds, 3
    /// iterations, a one-hidden-layer policy of 16, short episodes, few goals (Table 2: one
    /// seed, ζ = 1 and 2). Its numbers mean nothing.
    #[arg(long)]
    pub tiny: bool,
    /// Table 2 only: the reduced comparison that fits this 2-core machine (under an hour per
    /// task): 20 tasks × 10 episodes of 100 steps, a 64×64 policy, 100 iterations, 2 seeds.
    #[arg(long, conflicts_with = "tiny")]
    pub reduced: bool,
    /// Output directory (one run directory per algorithm and seed) [default: runs/table1,
    /// runs/table2, with -tiny or -reduced appended for those modes].
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seeds per algorithm (1..=N) [default: 5 for Table 1, 4 for Table 2].
    #[arg(long, allow_negative_numbers = true)]
    pub seeds: Option<u32>,
    /// Algorithms, comma-separated [default: sgmrl,sgmrl-fo,maml,emaml for Table 1;
    /// sgmrl,maml for Table 2].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub algorithms: Option<Vec<AlgorithmName>>,
    /// Table 2 only: the tasks, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "half-cheetah-dir,half-cheetah-vel,swimmer-vel"
    )]
    pub envs: Vec<EnvName>,
    /// Table 2 only: inner step counts ζ, comma-separated.
    #[arg(long = "inner-steps", value_delimiter = ',', default_value = "1,2,3")]
    pub inner_steps: Vec<u16>,
    /// Configuration (default preset: paper-table1).
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Meta-iterations to time.
    #[arg(
        long = "bench-iterations",
        default_value_t = 3,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub bench_iterations: u32,
    /// Held-out goals to time evaluation on.
    #[arg(
        long = "bench-goals",
        default_value_t = 40,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub bench_goals: u32,
    /// Also write the measurements as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Configuration (default preset: embedded).
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `config`.
#[derive(Debug, Args)]
pub struct ConfigCmdArgs {
    /// Configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Runs a parsed command line with the engine from [`crate::wiring`], on the processes
/// of the MPI job this process belongs to (MPI build under a launcher), else on this one.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let cluster = crate::distributed::cluster_from_environment()?;
    run_on(cli, crate::wiring::engine_factory(), cluster)
}

/// Runs a parsed command line with `engine` (None: no engine linked) on this process.
pub fn run_with(cli: Cli, engine: Option<EngineFactory>) -> anyhow::Result<()> {
    run_on(cli, engine, Rc::new(Local))
}

/// Runs a parsed command line with `engine` on `cluster`'s processes: `train` spreads each
/// meta-batch's tasks over them, `reproduce` its runs; other commands run on one process.
/// Only rank 0 reports errors that every rank hits alike.
pub fn run_on(
    cli: Cli,
    engine: Option<EngineFactory>,
    cluster: Rc<dyn Cluster>,
) -> anyhow::Result<()> {
    if cluster.ranks() > 1 {
        let leader = cluster.rank() == 0;
        match &cli.command {
            Command::Train(_) | Command::Reproduce(_) => {}
            _ if leader => bail!(
                "only `train` and `reproduce` run on several MPI ranks; start this command without mpirun"
            ),
            _ => return Ok(()),
        }
    }
    if let Some(n) = cli.threads {
        if n == 0 {
            bail!("--threads: must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("cannot start the thread pool")?;
    }
    let progress = if cli.quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::Auto
    };
    let need_engine = || {
        engine.ok_or_else(|| {
            anyhow::anyhow!(
                "the meta-training engine is not linked into this build (see host-sim/src/wiring.rs); eval, export and plot work without it"
            )
        })
    };
    match cli.command {
        Command::Train(a) if cluster.ranks() > 1 => cmd_train_ranks(a, progress, cluster),
        Command::Train(a) => {
            let run = RunDir::new(&a.run_dir);
            let config = a.config.resolve_for_run(&run)?;
            check_dir(run.root())?;
            // Refuse a mismatched checkpoint before anything else.
            crate::train::existing_checkpoint(&run, &config)?;
            let out = train(
                &config,
                &train_options(&a.run_dir, progress),
                need_engine()?,
            )?;
            report_training(&out, &run);
            Ok(())
        }
        Command::Eval(a) => cmd_eval(a),
        Command::Export(a) => cmd_export(a),
        Command::Plot(a) => cmd_plot(a),
        Command::Demo(a) => cmd_demo(a, progress, need_engine()?),
        Command::Reproduce(a) => cmd_reproduce(a, progress, need_engine()?, cluster.as_ref()),
        Command::Bench(a) => cmd_bench(a, need_engine()?),
        Command::Config(a) => {
            print!("{}", a.config.resolve()?.to_toml());
            Ok(())
        }
    }
}

/// `train` on several ranks: rank 0 trains as on one process (run directory, logs,
/// checkpoints) with the meta-gradient computed by all ranks; the others serve it.
fn cmd_train_ranks(
    a: TrainArgs,
    progress: ProgressMode,
    cluster: Rc<dyn Cluster>,
) -> anyhow::Result<()> {
    let report = progress != ProgressMode::Quiet;
    if cluster.rank() != 0 {
        return crate::distributed::serve(cluster.as_ref(), report);
    }
    // Whatever happens below, the workers are told to stop.
    let _stop = crate::distributed::StopOnDrop(cluster.clone());
    let run = RunDir::new(&a.run_dir);
    let config = a.config.resolve_for_run(&run)?;
    crate::distributed::check_ranks(cluster.as_ref(), &config)?;
    let start = crate::train::existing_checkpoint(&run, &config)?.map_or(0, |c| c.iteration);
    let out = train(&config, &train_options(&a.run_dir, progress), |c| {
        crate::distributed::leader_engine(cluster.clone(), c)
    })?;
    report_training(&out, &run);
    if report {
        let served = out.iterations.saturating_sub(start);
        eprintln!("{}", crate::distributed::traffic(cluster.as_ref(), served));
    }
    Ok(())
}

fn train_options(dir: &Path, progress: ProgressMode) -> TrainOptions {
    TrainOptions {
        run_dir: dir.to_path_buf(),
        progress,
        stop_after: None,
    }
}

fn report_training(out: &TrainOutcome, run: &RunDir) {
    if let Some(last) = &out.last {
        println!(
            "{}: {} iterations; last: return before {:.3}, after {:.3}",
            run.root().display(),
            out.iterations,
            last.return_before,
            last.returns_after.last().copied().unwrap_or(f64::NAN)
        );
    } else {
        println!(
            "{}: already complete at {} iterations",
            run.root().display(),
            out.iterations
        );
    }
    if let Some((it, v)) = out.best_validation {
        println!("best validation (paper protocol): {v:.3} at iteration {it}");
    }
    if let Some(e) = &out.exported {
        println!(
            "exported {}, {}, {}",
            e.bundle.display(),
            e.safetensors.display(),
            e.summary.display()
        );
    }
}

/// Evaluation settings for `model`: flags, else the run's configuration, else defaults.
fn eval_settings(model: &Model, f: &EvalFlags) -> (u32, u64, u16) {
    let cfg = model.config.as_ref().map(|c| c.eval);
    let goals = f.goals.or(cfg.map(|c| c.goals)).unwrap_or(400);
    let seed = f.eval_seed.or(cfg.map(|c| c.seed)).unwrap_or(HELD_OUT_SEED);
    let episodes = f
        .eval_episodes
        .or(cfg.map(|c| c.episodes))
        .unwrap_or(model.recipe.episodes);
    (goals, seed, episodes)
}

/// Where the final-return episode count of [`eval_settings`] came from, for the report:
/// a run directory or checkpoint has its run's `eval.episodes`, a bundle has no
/// evaluation settings and falls back to its recipe's episodes per step, so the same
/// policy is measured differently unless `--eval-episodes` is given.
fn eval_episodes_source(model: &Model, f: &EvalFlags) -> String {
    match (f.eval_episodes, &model.config) {
        (Some(_), _) => "--eval-episodes".into(),
        (None, Some(_)) => "the run's eval.episodes".into(),
        (None, None) => format!(
            "a bundle has no eval settings: its recipe's {} episodes per step; set --eval-episodes to compare with a run's eval",
            model.recipe.episodes
        ),
    }
}

fn check_eval_flags(f: &EvalFlags) -> anyhow::Result<()> {
    if f.goals == Some(0) {
        bail!("--goals: must be at least 1");
    }
    if f.eval_episodes == Some(0) {
        bail!("--eval-episodes: must be at least 1");
    }
    Ok(())
}

fn run_eval(model: &Model, f: &EvalFlags) -> anyhow::Result<EvalReport> {
    check_eval_flags(f)?;
    let (goals, seed, episodes) = eval_settings(model, f);
    Ok(evaluate(model, &GoalSet::held_out(seed), goals, episodes)?)
}

fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("cannot encode JSON")?;
    text.push('\n');
    crate::atomic::write(path, text.as_bytes())?;
    Ok(())
}

fn describe(model: &Model) -> String {
    let r = &model.recipe;
    format!(
        "{} on {}, trained by {} ({} iterations, seed {}); recipe: α={} ζ={} N={} H={}",
        shape_name(&model.shape),
        model.env,
        model.trainer.name(),
        model.iterations,
        model.seed,
        r.alpha,
        r.steps,
        r.episodes,
        r.horizon
    )
}

fn cmd_eval(a: EvalArgs) -> anyhow::Result<()> {
    let out = a
        .out
        .clone()
        .or_else(|| a.input.is_dir().then(|| RunDir::new(&a.input).eval()));
    if let Some(o) = &out {
        check_file(o)?;
    }
    let model = Model::load(&a.input, a.env)?;
    let report = run_eval(&model, &a.eval)?;
    println!("{}", describe(&model));
    println!("{report}");
    println!(
        "  (episodes per goal for the final return: {})",
        eval_episodes_source(&model, &a.eval)
    );
    if let Some(o) = out {
        write_json(&o, &report)?;
        println!("wrote {}", o.display());
    }
    Ok(())
}

/// Checks every file a plot to `out` writes (see [`crate::plot::outputs`]).
fn check_plot(out: &Path) -> anyhow::Result<()> {
    for f in crate::plot::outputs(out) {
        check_file(&f)?;
    }
    Ok(())
}

fn cmd_export(a: ExportArgs) -> anyhow::Result<()> {
    let dir = match &a.out {
        Some(d) => d.clone(),
        None if a.input.is_dir() => a.input.clone(),
        None => a
            .input
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
    };
    check_dir(&dir)?;
    let run = RunDir::new(&dir);
    for f in [run.bundle(), run.safetensors(), run.summary()] {
        check_file(&f)?;
    }
    let model = Model::load(&a.input, a.env)?;
    // An evaluation in the output directory goes into the summary only if it is of
    // these very parameters.
    let crc = crate::eval::params_crc32(&model.params);
    let eval = std::fs::read(dir.join("eval.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter(|v| v["params_crc32"] == crc.as_str());
    let e = export_all(&model, &dir, eval)?;
    println!("{}", describe(&model));
    let mem = MemoryJson::new(&model.shape, &model.recipe);
    println!("{}", ram_line(&mem));
    println!(
        "wrote {}, {}, {}",
        e.bundle.display(),
        e.safetensors.display(),
        e.summary.display()
    );
    Ok(())
}

/// The adapter's RAM by purpose, and the budget yardstick beside it (not a part of it).
fn ram_line(mem: &MemoryJson) -> String {
    format!(
        "device RAM for adaptation: {} bytes = gradient {} + parameter copy {} + episode buffer {} + hidden-layer scratch {} (yardstick: P floats plus one episode = {} bytes)",
        mem.total_bytes,
        4 * mem.grad_floats,
        4 * mem.params_floats,
        4 * mem.episode_floats,
        4 * mem.scratch_floats,
        mem.lower_bound_bytes
    )
}

/// Reads the label of a run directory: its configured algorithm, else its name.
fn run_label(dir: &Path) -> String {
    ConfigBuilder::new()
        .file(&RunDir::new(dir).config())
        .and_then(|b| b.build())
        .map(|c| c.algorithm.name().to_string())
        .unwrap_or_else(|_| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| dir.display().to_string())
        })
}

/// The standing-still return of a run directory's task and horizon, if it has a config.
fn run_standing_still(dir: &Path) -> Option<f64> {
    let c = ConfigBuilder::new()
        .file(&RunDir::new(dir).config())
        .and_then(|b| b.build())
        .ok()?;
    standing_still_return(c.env, c.recipe.horizon)
}

/// The curves of `runs` (`[LABEL=]DIR` each), and the standing-still return when every run
/// has the same one (same task and horizon).
fn curves_of(runs: &[String]) -> anyhow::Result<(Vec<LabelledCurve>, Option<f64>)> {
    let mut still: Vec<Option<f64>> = Vec::new();
    let curves = runs
        .iter()
        .map(|spec| {
            let (label, dir) = match spec.split_once('=') {
                Some((l, d)) if !l.is_empty() => (l.to_string(), PathBuf::from(d)),
                _ => (run_label(Path::new(spec)), PathBuf::from(spec)),
            };
            let log = RunDir::new(&dir).log_csv();
            if !log.exists() {
                bail!("{}: no log.csv (is it a run directory?)", dir.display());
            }
            still.push(run_standing_still(&dir));
            Ok(LabelledCurve {
                label,
                curve: read_curve(&log)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let first = still.first().copied().flatten();
    let common = first.filter(|v| still.iter().all(|s| *s == Some(*v)));
    Ok((curves, common))
}

fn trajectories(model: &Model, goals: u32, seed: u64) -> anyhow::Result<Vec<GoalPaths>> {
    let outcomes = run_goals(model, &GoalSet::held_out(seed), goals, 1, true)?;
    Ok(outcomes
        .into_iter()
        .map(|o| GoalPaths {
            goal: o.goal,
            paths: o.paths,
            returns: o.returns.unwrap_or_default(),
        })
        .collect())
}

fn trajectory_title(model: &Model) -> String {
    format!(
        "{} ({}): one episode before and after adaptation, held-out goals",
        model.env,
        model.trainer.name()
    )
}

fn cmd_plot(a: PlotArgs) -> anyhow::Result<()> {
    let files = match a.what {
        PlotCommand::Curves { runs, out, title } => {
            check_plot(&out)?;
            let (curves, still) = curves_of(&runs)?;
            let title = title.unwrap_or_else(|| "Return before and after adaptation".into());
            plot_curves(&curves, &title, still, &out)?
        }
        PlotCommand::Trajectories {
            input,
            out,
            goals,
            eval_seed,
            env,
        } => {
            if goals == 0 || goals > 16 {
                bail!("--goals: must be in 1..=16 (one panel each)");
            }
            check_plot(&out)?;
            let model = Model::load(&input, env)?;
            let seed = eval_seed
                .or(model.config.as_ref().map(|c| c.eval.seed))
                .unwrap_or(HELD_OUT_SEED);
            plot_trajectories(
                &trajectories(&model, goals, seed)?,
                &trajectory_title(&model),
                &out,
            )?
        }
    };
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

fn with_default_preset(mut c: ConfigArgs, preset: Preset) -> ConfigArgs {
    if c.config.is_none() && c.preset.is_none() {
        c.preset = Some(preset);
    }
    c
}

fn cmd_demo(a: DemoArgs, progress: ProgressMode, engine: EngineFactory) -> anyhow::Result<()> {
    let run = RunDir::new(&a.run_dir);
    let args = if run.config().exists() {
        a.config
    } else {
        with_default_preset(a.config, Preset::Embedded)
    };
    let config = args.resolve_for_run(&run)?;
    check_dir(run.root())?;
    for f in [run.eval(), run.bundle(), run.safetensors(), run.summary()] {
        check_file(&f)?;
    }
    check_plot(&run.curves())?;
    check_plot(&run.trajectories())?;
    let shape = config.shape();
    let mem = MemoryJson::new(&shape, &config.recipe());
    println!(
        "meta-training {} on {} with {}: {} iterations × {} tasks; device RAM for adaptation {} bytes",
        shape_name(&shape),
        config.env,
        config.algorithm,
        config.iterations,
        config.meta_batch,
        mem.total_bytes
    );
    let out = train(&config, &train_options(&a.run_dir, progress), engine)?;
    report_training(&out, &run);
    let report = run_eval(
        &out.model,
        &EvalFlags {
            goals: None,
            eval_seed: None,
            eval_episodes: None,
        },
    )?;
    println!("{report}");
    let json = serde_json::to_value(&report).context("cannot encode the evaluation")?;
    write_json(&run.eval(), &json)?;
    let comparison = demo_comparison(&config, &out.model, &report, &run, progress, engine)?;
    println!("{comparison}");
    let mut summary_eval = json;
    summary_eval["comparison"] =
        serde_json::to_value(&comparison).context("cannot encode the comparison")?;
    let e = export_all(&out.model, run.root(), Some(summary_eval))?;
    let (curves, still) = curves_of(&[run.root().display().to_string()])?;
    let mut files = plot_curves(
        &curves,
        &format!("{} on {}: meta-training", config.algorithm, config.env),
        still,
        &run.curves(),
    )?;
    let bars: Vec<Bar> = comparison
        .lines
        .iter()
        .map(|l| Bar {
            label: l.label.clone(),
            mean: l.stat.mean,
            stderr: l.stat.stderr,
        })
        .collect();
    files.extend(plot_comparison(
        &bars,
        &format!(
            "{} held-out goals: what meta-training buys (α={}, N={}, H={})",
            comparison.goals, config.recipe.alpha, config.recipe.episodes, config.recipe.horizon
        ),
        &run.root().join("comparison"),
    )?);
    files.extend(plot_trajectories(
        &trajectories(&out.model, 4, config.eval.seed)?,
        &trajectory_title(&out.model),
        &run.trajectories(),
    )?);
    println!(
        "bundle for the device: {} ({} bytes); summary {}",
        e.bundle.display(),
        std::fs::metadata(&e.bundle).map(|m| m.len()).unwrap_or(0),
        e.summary.display()
    );
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

/// The lines of [`crate::comparison`] on the demo's held-out goals: the meta-policy (its
/// `report`), the run's own random initialisation and a multi-task policy trained with the
/// same configuration in `multitask/` under the run directory, each adapted by the bundle's
/// recipe with the core's adapter, and the two reference controllers.
fn demo_comparison(
    config: &Config,
    meta: &Model,
    report: &EvalReport,
    run: &RunDir,
    progress: ProgressMode,
    engine: EngineFactory,
) -> anyhow::Result<Comparison> {
    let flags = EvalFlags {
        goals: None,
        eval_seed: None,
        eval_episodes: None,
    };
    let (goals, seed, episodes) = eval_settings(meta, &flags);
    let set = GoalSet::held_out(seed);
    let after = |r: &EvalReport| {
        r.final_after()
            .ok_or_else(|| anyhow::anyhow!("the recipe takes no adaptation step"))
    };
    let init = Model {
        trainer: sgmrl::bundle::Trainer::Unknown,
        ..Model::from_config(config, engine(config)?.params, 0)
    };
    let init_report = evaluate(&init, &set, goals, episodes)?;
    let mt_config = Config {
        algorithm: AlgorithmName::Multitask,
        ..config.clone()
    };
    let mt_dir = run.root().join("multitask");
    println!(
        "training the multi-task baseline (no meta-learning) in {}",
        mt_dir.display()
    );
    let mt = train(&mt_config, &train_options(&mt_dir, progress), engine)?;
    let mt_report = evaluate(&mt.model, &set, goals, episodes)?;
    let line = |label: &str, stat: Stat| Line {
        label: label.into(),
        stat,
    };
    let mut lines = vec![
        line("meta-policy, unadapted", report.before),
        line(META_AFTER, after(report)?),
        line("random init, adapted", after(&init_report)?),
        line("multi-task, unadapted", mt_report.before),
        line("multi-task, adapted", after(&mt_report)?),
    ];
    let horizon = config.recipe.horizon;
    if let Some(s) = Reference::StandStill.evaluate(config.env, &set, goals, horizon) {
        lines.push(line("standing still", s));
    }
    if let Some(s) = Reference::Greedy.evaluate(config.env, &set, goals, horizon) {
        lines.push(line(GREEDY, s));
    }
    Ok(Comparison::new(goals, seed, lines))
}

/// One Table 1 row: honest and paper-comparable numbers over seeds.
#[derive(Debug, Serialize)]
struct TableRow {
    algorithm: String,
    seeds: usize,
    /// Final meta-policy, fixed held-out goals: mean ± standard error over seeds of the
    /// per-run mean.
    honest_after: Stat,
    /// The same before adaptation.
    honest_before: Stat,
    /// Best validation score during training (the paper's protocol): mean ± standard
    /// error over seeds.
    best_validation: Option<Stat>,
}

/// The overrides of `reproduce --tiny`.
const TINY: [&str; 10] = [
    "iterations=3",
    "meta_batch=4",
    "policy.hidden=[16]",
    "recipe.horizon=10",
    "recipe.episodes=4",
    "outer.episodes=4",
    "eval.goals=8",
    "eval.episodes=2",
    "eval.validate_every=1",
    "eval.validate_goals=4",
];

fn cmd_reproduce(
    mut a: ReproduceArgs,
    progress: ProgressMode,
    engine: EngineFactory,
    cluster: &dyn Cluster,
) -> anyhow::Result<()> {
    if a.config.algorithm.is_some() || a.config.seed.is_some() {
        bail!("reproduce sets --algorithm and --seed itself; use --algorithms and --seeds");
    }
    if a.experiment == Experiment::Table2 {
        return cmd_reproduce_table2(a, progress, engine, cluster);
    }
    if a.reduced {
        bail!("--reduced is a Table 2 setting");
    }
    let mut seeds = a.seeds.unwrap_or(5);
    let mut out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs/table1"));
    if a.tiny {
        seeds = seeds.min(2);
        if a.out.is_none() {
            out = PathBuf::from("runs/table1-tiny");
        }
        a.config
            .set
            .splice(0..0, TINY.iter().map(|s| s.to_string()));
    }
    if seeds == 0 {
        bail!("--seeds: must be at least 1");
    }
    let algorithms = a.algorithms.clone().unwrap_or_else(|| {
        vec![
            AlgorithmName::Sgmrl,
            AlgorithmName::SgmrlFo,
            AlgorithmName::Maml,
            AlgorithmName::Emaml,
        ]
    });
    let args = with_default_preset(a.config.clone(), Preset::PaperTable1);
    check_dir(&out)?;
    for f in [out.join("table1.md"), out.join("table1.json")] {
        check_file(&f)?;
    }
    check_plot(&out.join("curves"))?;
    // One run per (algorithm, seed), one cell per algorithm, one plot.
    let runs: Vec<Run> = algorithms
        .iter()
        .enumerate()
        .flat_map(|(cell, &algorithm)| {
            let out = &out;
            (1..=u64::from(seeds)).map(move |seed| Run {
                env: None,
                inner_steps: None,
                algorithm,
                seed,
                dir: out.join(format!("{algorithm}-seed{seed}")),
                cell,
                plot: 0,
                curve: algorithm.to_string(),
            })
        })
        .collect();
    let plots = [(
        "nav2d: return before and after adaptation".to_string(),
        out.join("curves"),
    )];
    let Some(cells) = run_sweep(
        &runs,
        algorithms.len(),
        &plots,
        &args,
        progress,
        engine,
        cluster,
    )?
    else {
        return Ok(()); // not rank 0: rank 0 writes the tables.
    };
    let rows: Vec<TableRow> = algorithms
        .iter()
        .zip(cells)
        .map(|(alg, c)| TableRow {
            algorithm: alg.to_string(),
            seeds: c.seeds,
            honest_after: c.honest_after,
            honest_before: c.honest_before,
            best_validation: c.best_validation,
        })
        .collect();
    let md = table1_markdown(&rows);
    crate::atomic::write(&out.join("table1.md"), md.as_bytes())?;
    write_json(&out.join("table1.json"), &rows)?;
    print!("{md}");
    Ok(())
}

fn table1_markdown(rows: &[TableRow]) -> String {
    let mut md = String::from(
        "| algorithm | seeds | held-out, before | held-out, after adaptation (honest) | best validation (paper protocol) |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        let best = r.best_validation.map_or("–".to_string(), |s| {
            format!("{:.3} ± {:.3}", s.mean, s.stderr)
        });
        md.push_str(&format!(
            "| {} | {} | {:.3} ± {:.3} | {:.3} ± {:.3} | {best} |\n",
            r.algorithm,
            r.seeds,
            r.honest_before.mean,
            r.honest_before.stderr,
            r.honest_after.mean,
            r.honest_after.stderr
        ));
    }
    md.push_str("\n± is the standard error across seeds of each run's mean return.\n");
    md
}

/// Trains and evaluates every run of a sweep over the cluster's ranks ([`crate::sweep`]),
/// each from `base` with the run's task, ζ, algorithm and seed, and on rank 0 draws plot
/// `i`'s learning curves (`plots[i]`: title, output path) and returns the `cells` table
/// cells; `None` on the other ranks.
fn run_sweep(
    runs: &[Run],
    cells: usize,
    plots: &[(String, PathBuf)],
    base: &ConfigArgs,
    progress: ProgressMode,
    engine: EngineFactory,
    cluster: &dyn Cluster,
) -> anyhow::Result<Option<Vec<Cell>>> {
    let cells = crate::sweep::run(cluster, runs, cells, |r| {
        let run = RunDir::new(&r.dir);
        // A run directory that has its configuration resumes it, with the flags on top.
        let mut args = if run.config().exists() {
            ConfigArgs {
                config: None,
                preset: None,
                ..base.clone()
            }
        } else {
            base.clone()
        };
        args.env = r.env.or(args.env);
        args.steps = r.inner_steps.or(args.steps);
        args.algorithm = Some(r.algorithm);
        args.seed = Some(r.seed);
        let config = args.resolve_for_run(&run)?;
        println!("{}", r.title());
        let o = train(&config, &train_options(&r.dir, progress), engine)?;
        let report = run_eval(
            &o.model,
            &EvalFlags {
                goals: None,
                eval_seed: None,
                eval_episodes: None,
            },
        )?;
        println!("{report}");
        write_json(&run.eval(), &report)?;
        Ok(Outcome::new(
            report.before.mean,
            report.final_after().map(|s| s.mean),
            o.best_validation.map(|(_, v)| v),
            report.failed,
        ))
    })?;
    let Some(cells) = cells else {
        return Ok(None);
    };
    for (i, (title, path)) in plots.iter().enumerate() {
        let (curves, still) = curves_of(&crate::sweep::curves(runs, i))?;
        for f in plot_curves(&curves, title, still, path)? {
            println!("wrote {}", f.display());
        }
    }
    Ok(Some(cells))
}

/// The overrides of `reproduce table2 --tiny` (a few meta-iterations of each task).
const TABLE2_TINY: [&str; 9] = [
    "iterations=2",
    "meta_batch=3",
    "policy.hidden=[16]",
    "recipe.horizon=20",
    "recipe.episodes=3",
    "outer.episodes=3",
    "eval.goals=3",
    "eval.episodes=2",
    "eval.validate_every=0",
];

/// The overrides of `reproduce table2 --reduced`.
const TABLE2_REDUCED: [&str; 9] = [
    "iterations=60",
    "meta_batch=10",
    "policy.hidden=[64, 64]",
    "recipe.horizon=100",
    "recipe.episodes=10",
    "outer.episodes=10",
    "eval.goals=40",
    "eval.episodes=10",
    "eval.validate_every=0",
];

/// `(env, ζ, SG-MRL mean ± s.d., MAML mean ± s.d.)`.
type PaperCell = (EnvName, u16, (f64, f64), (f64, f64));

/// The paper's Table 2 (`experiments.md`): `(env, ζ, SG-MRL, MAML)`, mean ± s.d. over 4
/// seeds. The Swimmer numbers come from the companion code's `+|v − v*|` reward.
const PAPER_TABLE2: [PaperCell; 9] = [
    (
        EnvName::HalfCheetahDir,
        1,
        (580.143, 38.22),
        (465.624, 54.07),
    ),
    (
        EnvName::HalfCheetahDir,
        2,
        (580.203, 33.63),
        (441.247, 58.34),
    ),
    (
        EnvName::HalfCheetahDir,
        3,
        (504.747, 45.07),
        (477.086, 64.71),
    ),
    (EnvName::HalfCheetahVel, 1, (-91.73, 0.34), (-92.92, 0.70)),
    (EnvName::HalfCheetahVel, 2, (-52.64, 6.86), (-56.71, 6.73)),
    (EnvName::HalfCheetahVel, 3, (-33.39, 0.67), (-32.48, 0.50)),
    (EnvName::SwimmerVel, 1, (118.77, 9.99), (104.53, 24.18)),
    (EnvName::SwimmerVel, 2, (134.57, 1.67), (108.47, 23.36)),
    (EnvName::SwimmerVel, 3, (110.91, 12.56), (90.60, 14.99)),
];

/// One cell group of Table 2: a task, ζ and algorithm over seeds.
#[derive(Debug, Serialize)]
struct Table2Row {
    env: String,
    inner_steps: u16,
    algorithm: String,
    seeds: usize,
    /// Held-out tasks, final meta-policy after ζ steps: mean ± standard error over seeds.
    honest_after: Stat,
    honest_before: Stat,
    /// Best validation score during training (the paper's protocol), when validated.
    best_validation: Option<Stat>,
    /// Tasks left out of the held-out evaluation (diverged or non-finite), over seeds.
    failed_goals: u32,
}

fn cmd_reproduce_table2(
    mut a: ReproduceArgs,
    progress: ProgressMode,
    engine: EngineFactory,
    cluster: &dyn Cluster,
) -> anyhow::Result<()> {
    let mode = if a.tiny {
        "-tiny"
    } else if a.reduced {
        "-reduced"
    } else {
        ""
    };
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/table2{mode}")));
    let mut seeds = a.seeds.unwrap_or(if a.reduced { 2 } else { 4 });
    let mut inner_steps = a.inner_steps.clone();
    if a.tiny {
        seeds = seeds.min(1);
        inner_steps.retain(|&z| z <= 2);
        a.config
            .set
            .splice(0..0, TABLE2_TINY.iter().map(|s| s.to_string()));
    } else if a.reduced {
        a.config
            .set
            .splice(0..0, TABLE2_REDUCED.iter().map(|s| s.to_string()));
    }
    if seeds == 0 {
        bail!("--seeds: must be at least 1");
    }
    if inner_steps.is_empty() || inner_steps.contains(&0) {
        bail!("--inner-steps: give step counts of at least 1");
    }
    if let Some(e) = a.envs.iter().find(|e| !e.is_mujoco()) {
        bail!("--envs: {e} is not a Table 2 task");
    }
    if a.config.env.is_some() || a.config.steps.is_some() {
        bail!("reproduce table2 sets --env and --steps itself; use --envs and --inner-steps");
    }
    let algorithms = a
        .algorithms
        .clone()
        .unwrap_or_else(|| vec![AlgorithmName::Sgmrl, AlgorithmName::Maml]);
    let base = with_default_preset(a.config.clone(), Preset::PaperTable2);
    check_dir(&out)?;
    for f in [out.join("table2.md"), out.join("table2.json")] {
        check_file(&f)?;
    }
    for env in &a.envs {
        check_plot(&out.join(format!("curves-{}", env.name())))?;
    }
    // One run per (task, ζ, algorithm, seed), one cell per (task, ζ, algorithm), one
    // plot per task.
    let mut runs = Vec::new();
    let mut settings = Vec::new();
    for (plot, &env) in a.envs.iter().enumerate() {
        for &zeta in &inner_steps {
            for &algorithm in &algorithms {
                let cell = settings.len();
                settings.push((env, zeta, algorithm));
                runs.extend((1..=u64::from(seeds)).map(|seed| {
                    Run {
                        env: Some(env),
                        inner_steps: Some(zeta),
                        algorithm,
                        seed,
                        dir: out
                            .join(env.name())
                            .join(format!("{algorithm}-z{zeta}-seed{seed}")),
                        cell,
                        plot,
                        curve: format!("{algorithm} z{zeta}"),
                    }
                }));
            }
        }
    }
    let plots: Vec<(String, PathBuf)> = a
        .envs
        .iter()
        .map(|env| {
            (
                format!("{env}: return before and after adaptation"),
                out.join(format!("curves-{}", env.name())),
            )
        })
        .collect();
    let Some(cells) = run_sweep(
        &runs,
        settings.len(),
        &plots,
        &base,
        progress,
        engine,
        cluster,
    )?
    else {
        return Ok(()); // not rank 0: rank 0 writes the tables.
    };
    let rows: Vec<Table2Row> = settings
        .iter()
        .zip(cells)
        .map(|(&(env, zeta, alg), c)| Table2Row {
            env: env.name().into(),
            inner_steps: zeta,
            algorithm: alg.to_string(),
            seeds: c.seeds,
            honest_after: c.honest_after,
            honest_before: c.honest_before,
            best_validation: c.best_validation,
            failed_goals: c.failed_goals,
        })
        .collect();
    let md = table2_markdown(&rows);
    crate::atomic::write(&out.join("table2.md"), md.as_bytes())?;
    write_json(&out.join("table2.json"), &rows)?;
    print!("{md}");
    Ok(())
}

fn table2_markdown(rows: &[Table2Row]) -> String {
    let mut md = String::from(
        "| task | ζ | algorithm | seeds | held-out, before | held-out, after ζ steps (honest) | best validation (paper protocol) | paper |\n|---|---|---|---|---|---|---|---|\n",
    );
    let pm = |s: &Stat| format!("{:.2} ± {:.2}", s.mean, s.stderr);
    for r in rows {
        let paper = PAPER_TABLE2
            .iter()
            .find(|p| p.0.name() == r.env && p.1 == r.inner_steps)
            .and_then(|p| match r.algorithm.as_str() {
                "sgmrl" => Some(p.2),
                "maml" => Some(p.3),
                _ => None,
            })
            .map_or("–".to_string(), |(m, sd)| {
                format!("{m:.2} ± {sd:.2} (s.d.)")
            });
        let failed = if r.failed_goals > 0 {
            format!(" ({} tasks left out)", r.failed_goals)
        } else {
            String::new()
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {}{failed} | {} | {paper} |\n",
            r.env,
            r.inner_steps,
            r.algorithm,
            r.seeds,
            pm(&r.honest_before),
            pm(&r.honest_after),
            r.best_validation.as_ref().map_or("–".to_string(), pm),
        ));
    }
    md.push_str(
        "\n± is the standard error across seeds of each run's mean return (the paper's ± is a \
         standard deviation over 4 seeds). The paper's Swimmer numbers use the companion \
         code's `+|v − v*|` reward; ours use the corrected `−|v − v*|`, so they are not \
         comparable.\n",
    );
    md
}

/// Timing results of `bench`.
#[derive(Debug, Serialize)]
struct BenchReport {
    config: Config,
    threads: usize,
    iterations: u32,
    seconds_per_iteration: f64,
    env_steps_per_s: f64,
    eval_goals: u32,
    eval_seconds: f64,
    eval_goals_per_s: f64,
    eval_env_steps_per_s: f64,
}

fn cmd_bench(a: BenchArgs, engine: EngineFactory) -> anyhow::Result<()> {
    if a.bench_iterations == 0 || a.bench_goals == 0 {
        bail!("--bench-iterations and --bench-goals must be at least 1");
    }
    if let Some(j) = &a.json {
        check_file(j)?;
    }
    let config = with_default_preset(a.config, Preset::Embedded).resolve()?;
    let crate::train::EngineInit {
        mut engine,
        mut params,
    } = engine(&config)?;
    // One untimed warm-up iteration, then the timed ones.
    engine.iteration(&mut params, 0)?;
    let start = std::time::Instant::now();
    let mut steps = 0u64;
    for t in 1..=u64::from(a.bench_iterations) {
        steps += engine.iteration(&mut params, t)?.env_steps;
    }
    let secs = start.elapsed().as_secs_f64();
    let model = Model::from_config(&config, params, u64::from(a.bench_iterations) + 1);
    let r = evaluate(
        &model,
        &GoalSet::held_out(config.eval.seed),
        a.bench_goals,
        config.eval.episodes,
    )?;
    let report = BenchReport {
        threads: rayon::current_num_threads(),
        iterations: a.bench_iterations,
        seconds_per_iteration: secs / f64::from(a.bench_iterations),
        env_steps_per_s: steps as f64 / secs,
        eval_goals: a.bench_goals,
        eval_seconds: r.wall_time_s,
        eval_goals_per_s: f64::from(a.bench_goals) / r.wall_time_s,
        eval_env_steps_per_s: r.env_steps as f64 / r.wall_time_s,
        config,
    };
    println!(
        "{} on {} with {}, {} threads:",
        shape_name(&report.config.shape()),
        report.config.env,
        report.config.algorithm,
        report.threads
    );
    println!(
        "  meta-iteration: {:.3} s ({:.0} env steps/s)",
        report.seconds_per_iteration, report.env_steps_per_s
    );
    println!(
        "  evaluation with the core adapter: {:.1} goals/s ({:.0} env steps/s)",
        report.eval_goals_per_s, report.eval_env_steps_per_s
    );
    if let Some(j) = &a.json {
        write_json(j, &report)?;
        println!("wrote {}", j.display());
    }
    Ok(())
}

/// Formats a clap error as one line: the message, then its details (missing arguments,
/// possible values, tips) up to the usage text.
pub fn clap_one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let mut parts = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty());
    let mut out = parts
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_string();
    for (i, p) in parts.enumerate() {
        out.push_str(if i == 0 && out.ends_with(':') {
            " "
        } else {
            "; "
        });
        out.push_str(p);
    }
    out.push_str(" (see --help)");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::tests::{mock_factory, scratch};

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("sgmrl").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn flags_override_the_preset_and_hidden_parses() {
        let Command::Config(c) = parse(&[
            "config",
            "--preset",
            "paper-table1",
            "--alpha",
            "0.05",
            "--hidden",
            "32",
            "--set",
            "recipe.horizon=50",
            "--algorithm",
            "sgmrl-fo",
            "--normalize",
            "false",
        ])
        .command
        else {
            panic!()
        };
        let c = c.config.resolve().unwrap();
        assert_eq!(c.recipe.alpha, 0.05);
        assert_eq!(c.policy.hidden, vec![32]);
        assert_eq!(c.recipe.horizon, 50);
        assert_eq!(c.algorithm, AlgorithmName::SgmrlFo);
        assert!(!c.recipe.normalize);
        assert_eq!(c.recipe.gae_lambda, 0.997);
        assert_eq!(parse_hidden("none").unwrap(), toml::Value::Array(vec![]));
        assert!(
            parse_hidden("16,x")
                .unwrap_err()
                .to_string()
                .contains("`x`")
        );
    }

    #[test]
    fn clap_errors_become_one_line() {
        let e = Cli::try_parse_from(["sgmrl", "train", "-o", "x", "--env", "mars"]).unwrap_err();
        let s = clap_one_line(&e);
        assert!(s.contains("invalid value 'mars'"), "{s}");
        assert!(s.contains("nav2d-discrete"), "{s}");
        assert!(!s.contains('\n'));
    }

    /// `demo` with the stand-in engine: trains, evaluates, exports, plots; a second call
    /// resumes the finished run and redoes only the evaluation, export and plots.
    #[test]
    fn demo_end_to_end_with_a_stand_in_engine() {
        let d = scratch("demo");
        let args = |extra: &[&str]| {
            let mut v = vec!["demo", "-q", "-o", d.to_str().unwrap(), "--iterations", "4"];
            v.extend(extra);
            parse(&v)
        };
        run_with(args(&["--set", "eval.goals=6"]), Some(mock_factory)).unwrap();
        let run = RunDir::new(&d);
        for p in [
            run.bundle(),
            run.safetensors(),
            run.summary(),
            run.eval(),
            run.checkpoint(),
            d.join("curves.png"),
            d.join("curves.svg"),
            d.join("trajectories.png"),
            d.join("trajectories.svg"),
        ] {
            assert!(p.is_file(), "{}", p.display());
        }
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.summary()).unwrap()).unwrap();
        assert_eq!(s["eval"]["goals"], 6);
        let bundle = std::fs::read(run.bundle()).unwrap();
        run_with(args(&["--set", "eval.goals=6"]), Some(mock_factory)).unwrap();
        assert_eq!(std::fs::read(run.bundle()).unwrap(), bundle);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn reproduce_writes_the_table() {
        let d = scratch("repro");
        let cli = parse(&[
            "reproduce",
            "-q",
            "-o",
            d.to_str().unwrap(),
            "--seeds",
            "2",
            "--algorithms",
            "sgmrl,maml",
            "--iterations",
            "2",
            "--hidden",
            "16",
            "--set",
            "eval.goals=3",
            "--set",
            "eval.validate_every=1",
            "--set",
            "eval.validate_goals=2",
            "--horizon",
            "10",
        ]);
        run_with(cli, Some(mock_factory)).unwrap();
        let md = std::fs::read_to_string(d.join("table1.md")).unwrap();
        assert!(
            md.contains("| sgmrl | 2 |") && md.contains("| maml | 2 |"),
            "{md}"
        );
        assert!(d.join("sgmrl-seed2").join("eval.json").is_file());
        assert!(d.join("curves.png").is_file());
        let _ = std::fs::remove_dir_all(&d);
    }

    /// The presets' help (shown by `demo --help`, `train --help`) states the adapter RAM
    /// the code computes; it once said 736 bytes (the yardstick) for 864.
    #[test]
    fn preset_help_states_the_adapter_ram() {
        use clap::ValueEnum;
        for p in [
            Preset::Embedded,
            Preset::EmbeddedBatch,
            Preset::EmbeddedStreaming,
        ] {
            let c = p.config();
            let bytes = MemoryJson::new(&c.shape(), &c.recipe()).total_bytes;
            let help = p
                .to_possible_value()
                .and_then(|v| v.get_help().map(ToString::to_string))
                .unwrap_or_default();
            assert!(
                help.contains(&format!("{bytes} bytes")),
                "{}: help does not say {bytes} bytes: {help}",
                p.name()
            );
        }
    }

    #[test]
    fn commands_needing_the_engine_say_so() {
        let e = run_with(parse(&["bench"]), None).unwrap_err();
        assert!(e.to_string().contains("engine is not linked"), "{e}");
    }
}
