//! The meta-training run: run directory, configuration, progress, logs, periodic
//! checkpoints, resume, validation and the final export — around an [`Engine`] that does
//! the meta-iterations.
//!
//! The plumbing owns the meta-parameters; the engine owns everything else (task sampling,
//! rollouts, the meta-gradient, the outer optimiser). A resumed run restores the
//! parameters and the optimiser state from the checkpoint and continues at its
//! iteration; an engine that names its random streams by iteration (as required below)
//! then produces exactly the parameters of an uninterrupted run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint::{Checkpoint, OptimizerState};
use crate::config::Config;
use crate::eval::{EvalReport, GoalSet, evaluate};
use crate::export::{Exported, export_all};
use crate::model::Model;
use crate::rundir::RunDir;
use crate::runlog::{LogRow, RunLog, truncate_csv};

/// What one meta-iteration measured. Returns are means over the meta-batch's tasks of
/// per-episode undiscounted returns.
#[derive(Clone, Debug, PartialEq)]
pub struct IterationStats {
    /// Return of the meta-policy (before adaptation).
    pub return_before: f64,
    /// Return after each adaptation step `k = 1..ζ` (entry `k − 1`); NaN for a step the
    /// engine does not measure. Fewer than ζ entries are padded with NaN at the front, so
    /// an engine that only measures the final return may pass just that one.
    pub returns_after: Vec<f64>,
    /// Environment steps taken by this iteration.
    pub env_steps: u64,
}

/// A meta-training engine: the narrow interface the run plumbing drives.
///
/// Requirements, which make runs reproducible and resumable:
/// - `iteration(params, t)` performs meta-iteration `t` (0-based): it estimates the
///   meta-gradient at `params` and updates `params` in place with one outer-optimiser
///   step. All its randomness must be a function of (configuration seed, `t`), and its
///   result must not depend on the number of threads.
/// - `optimizer_state` / `restore_optimizer_state` capture and restore the outer
///   optimiser exactly (Adam's step count and both moment vectors), so that iteration
///   `t` after a restore equals iteration `t` of an uninterrupted run.
pub trait Engine {
    /// Runs meta-iteration `iteration` on `params` (updated in place).
    fn iteration(&mut self, params: &mut [f32], iteration: u64) -> anyhow::Result<IterationStats>;
    /// The outer optimiser's state after the iterations run so far.
    fn optimizer_state(&self) -> OptimizerState;
    /// Restores a state captured by [`Engine::optimizer_state`].
    fn restore_optimizer_state(&mut self, state: &OptimizerState) -> anyhow::Result<()>;
}

/// A fresh engine for a configuration, with the initial meta-parameters θ₀.
pub struct EngineInit {
    /// The engine.
    pub engine: Box<dyn Engine>,
    /// θ₀ (e.g. Glorot-uniform weights, zero biases, log-std 0), seeded by the config.
    pub params: Vec<f32>,
}

/// Builds the engine for a validated configuration.
pub type EngineFactory = fn(&Config) -> anyhow::Result<EngineInit>;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// A progress bar on a terminal; plain periodic lines otherwise.
    Auto,
    /// Nothing.
    Quiet,
}

/// Options of a training run.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Progress display.
    pub progress: ProgressMode,
    /// Stop (without a final checkpoint or export) after this many iterations in total,
    /// as an interruption would; for tests of resumption.
    pub stop_after: Option<u64>,
}

/// What a training run did.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// The final (or, when stopped early, current) meta-policy.
    pub model: Model,
    /// The checkpoint iteration the run resumed from, if it did.
    pub resumed_from: Option<u64>,
    /// Iterations completed.
    pub iterations: u64,
    /// The exported files (None when stopped early).
    pub exported: Option<Exported>,
    /// Best validation score (final return after adaptation) and its iteration.
    pub best_validation: Option<(u64, f64)>,
    /// The last logged row.
    pub last: Option<LogRow>,
}

/// Loads the run directory's checkpoint if there is one, checking it belongs to `config`.
pub fn existing_checkpoint(run: &RunDir, config: &Config) -> anyhow::Result<Option<Checkpoint>> {
    if !run.checkpoint().exists() {
        return Ok(None);
    }
    let c = Checkpoint::load(&run.checkpoint())?;
    if c.config.training_hash() != config.training_hash() {
        let diff = c.config.training_differences(config);
        bail!(
            "{}: checkpoint was trained with a different configuration (differs in: {}); use a new --run-dir",
            run.checkpoint().display(),
            if diff.is_empty() {
                "unknown".to_string()
            } else {
                diff.join(", ")
            }
        );
    }
    Ok(Some(c))
}

/// Validation rows' header for ζ steps.
fn validation_header(steps: u16) -> Vec<String> {
    let mut h = vec![
        "iteration".to_string(),
        "goals".to_string(),
        "before_mean".to_string(),
        "before_stderr".to_string(),
    ];
    for k in 1..=steps {
        h.push(format!("after_{k}_mean"));
        h.push(format!("after_{k}_stderr"));
    }
    h
}

fn append_validation(path: &std::path::Path, iteration: u64, r: &EvalReport) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut fields = vec![
        iteration.to_string(),
        r.goals.to_string(),
        r.before.mean.to_string(),
        r.before.stderr.to_string(),
    ];
    for s in &r.after {
        fields.push(s.mean.to_string());
        fields.push(s.stderr.to_string());
    }
    writeln!(f, "{}", fields.join(","))
        .and_then(|()| f.flush())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Best (highest final-return) validation row of a `validation.csv`.
fn best_validation(path: &std::path::Path) -> Option<(u64, f64)> {
    let mut r = csv::Reader::from_path(path).ok()?;
    let headers = r.headers().ok()?.clone();
    let last = headers.len().checked_sub(2)?;
    r.records()
        .filter_map(Result::ok)
        .filter_map(|rec| {
            let it = rec.get(0)?.parse().ok()?;
            let v: f64 = rec.get(last)?.parse().ok()?;
            Some((it, v))
        })
        .filter(|(_, v)| v.is_finite())
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Pads or trims `after` to ζ entries (NaN in front for unmeasured steps).
fn pad_after(after: &[f64], steps: u16) -> Vec<f64> {
    let z = usize::from(steps);
    let mut v = vec![f64::NAN; z.saturating_sub(after.len())];
    v.extend(after.iter().skip(after.len().saturating_sub(z)));
    v
}

fn fmt_rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Runs (or resumes) meta-training of `config` in `opts.run_dir`.
pub fn train(
    config: &Config,
    opts: &TrainOptions,
    factory: impl FnOnce(&Config) -> anyhow::Result<EngineInit>,
) -> anyhow::Result<TrainOutcome> {
    config.validate()?;
    let run = RunDir::new(&opts.run_dir);
    std::fs::create_dir_all(run.root())
        .with_context(|| format!("cannot create run directory {}", run.root().display()))?;
    if config.eval.validate_every > 0 {
        // Fail now rather than at the first validation.
        crate::shapes::with_policy(&config.shape(), NoOp)?;
    }
    let checkpoint = existing_checkpoint(&run, config)?;
    crate::atomic::write(&run.config(), config.to_toml().as_bytes())?;

    let EngineInit {
        mut engine,
        mut params,
    } = factory(config)?;
    let n = config.shape().n_params();
    if params.len() != n {
        bail!(
            "engine returned {} initial parameters, policy needs {n}",
            params.len()
        );
    }
    let (start, mut wall, mut env_total) = match &checkpoint {
        Some(c) => {
            params.clone_from(&c.params);
            engine
                .restore_optimizer_state(&c.optimizer)
                .context("cannot restore the optimiser state from the checkpoint")?;
            (c.iteration, c.wall_time_s, c.env_steps)
        }
        None => (0, 0.0, 0),
    };
    let steps = config.recipe.steps;
    let mut log = RunLog::open(&run.log_csv(), &run.log_jsonl(), steps, start)?;
    if config.eval.validate_every > 0 || run.validation_csv().exists() {
        truncate_csv(&run.validation_csv(), &validation_header(steps), |it| {
            it <= start
        })?;
    }

    let total = u64::from(config.iterations);
    let end = opts.stop_after.map_or(total, |s| s.min(total));
    let progress = Progress::new(opts.progress, start, total);
    if let Some(c) = &checkpoint {
        progress.println(&format!(
            "resuming {} from its checkpoint at iteration {}",
            run.root().display(),
            c.iteration
        ));
    }
    let save = |iteration: u64, params: &[f32], engine: &dyn Engine, wall: f64, env: u64| {
        Checkpoint {
            iteration,
            config: config.clone(),
            params: params.to_vec(),
            optimizer: engine.optimizer_state(),
            wall_time_s: wall,
            env_steps: env,
        }
        .save(&run.checkpoint())
    };
    let mut last = None;
    let mut last_saved = start;
    for t in start..end {
        let t0 = Instant::now();
        let stats = engine.iteration(&mut params, t).with_context(|| {
            format!("iteration {t} failed; the checkpoint at iteration {last_saved} is intact")
        })?;
        if let Some(i) = params.iter().position(|x| !x.is_finite()) {
            bail!(
                "iteration {t} made parameter {i} non-finite; the checkpoint at iteration {last_saved} is intact"
            );
        }
        let dt = t0.elapsed().as_secs_f64();
        wall += dt;
        env_total += stats.env_steps;
        let row = LogRow {
            iteration: t,
            return_before: stats.return_before,
            returns_after: pad_after(&stats.returns_after, steps),
            env_steps: stats.env_steps,
            env_steps_per_s: stats.env_steps as f64 / dt.max(1e-9),
            wall_time_s: wall,
        };
        log.append(&row)?;
        progress.update(&row);
        let done = t + 1;
        if opts.stop_after == Some(done) && done < total {
            // Simulated interruption: no checkpoint for this iteration.
            last = Some(row);
            break;
        }
        let every = u64::from(config.eval.validate_every);
        if every > 0 && done.is_multiple_of(every) {
            let model = Model::from_config(config, params.clone(), done);
            let set = GoalSet::validation(config.seed, done);
            let r = evaluate(
                &model,
                &set,
                config.eval.validate_goals,
                config.eval.episodes,
            )?;
            append_validation(&run.validation_csv(), done, &r)?;
            if let Some(a) = r.final_after() {
                progress.println(&format!(
                    "validation at iteration {done}: before {:.3}, after {:.3} ± {:.3} ({} goals)",
                    r.before.mean, a.mean, a.stderr, r.goals
                ));
            }
        }
        if done.is_multiple_of(u64::from(config.checkpoint_every)) || done == total {
            save(done, &params, engine.as_ref(), wall, env_total)?;
            last_saved = done;
        }
        last = Some(row);
    }
    progress.finish();
    let completed = last.as_ref().map_or(start, |r| r.iteration + 1);
    let model = Model::from_config(config, params, completed);
    let exported = if completed >= total {
        if checkpoint.as_ref().is_some_and(|c| c.iteration >= total) {
            // Nothing ran (already complete); re-save in case the budget shrank.
            save(completed, &model.params, engine.as_ref(), wall, env_total)?;
        }
        Some(export_all(&model, run.root(), None)?)
    } else {
        None
    };
    Ok(TrainOutcome {
        model,
        resumed_from: checkpoint.map(|c| c.iteration),
        iterations: completed,
        exported,
        best_validation: best_validation(&run.validation_csv()),
        last,
    })
}

struct NoOp;
impl crate::shapes::PolicyVisitor for NoOp {
    type Output = ();
    fn visit<P: sgmrl::policy::Policy + Default + Copy + Send + Sync + 'static>(self) {}
}

/// Progress display: an indicatif bar on a terminal, a plain line every ~5 % otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    plain_every: Option<u64>,
}

impl Progress {
    fn new(mode: ProgressMode, start: u64, total: u64) -> Self {
        match mode {
            ProgressMode::Quiet => Self {
                bar: None,
                plain_every: None,
            },
            ProgressMode::Auto if std::io::stderr().is_terminal() => {
                let bar = ProgressBar::new(total).with_position(start);
                let style = ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:25}] {pos}/{len} it | {msg} | eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                Self {
                    bar: Some(bar),
                    plain_every: None,
                }
            }
            ProgressMode::Auto => Self {
                bar: None,
                plain_every: Some((total / 20).max(1)),
            },
        }
    }

    fn message(row: &LogRow) -> String {
        let after = row.returns_after.last().copied().unwrap_or(f64::NAN);
        format!(
            "return before {:.2} after {:.2} | {} env steps/s",
            row.return_before,
            after,
            fmt_rate(row.env_steps_per_s)
        )
    }

    fn update(&self, row: &LogRow) {
        if let Some(bar) = &self.bar {
            bar.set_position(row.iteration + 1);
            bar.set_message(Self::message(row));
        } else if let Some(every) = self.plain_every
            && (row.iteration + 1).is_multiple_of(every)
        {
            eprintln!("iteration {}: {}", row.iteration + 1, Self::message(row));
        }
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None if self.plain_every.is_some() => eprintln!("{line}"),
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Preset;
    use sgmrl::rng::Rng;

    /// A deterministic stand-in engine: "gradient" noise named by (seed, iteration), a
    /// momentum buffer as optimiser state, returns that depend on the parameters.
    pub(crate) struct MockEngine {
        seed: u64,
        momentum: Vec<f32>,
        step: u64,
        fail_at: Option<u64>,
    }

    impl Engine for MockEngine {
        fn iteration(&mut self, params: &mut [f32], t: u64) -> anyhow::Result<IterationStats> {
            if self.fail_at == Some(t) {
                bail!("non-finite meta-gradient");
            }
            let mut rng = Rng::derive(self.seed, &[1, t]);
            for (p, m) in params.iter_mut().zip(&mut self.momentum) {
                *m = 0.9 * *m + 0.01 * (rng.normal() - *p);
                *p += *m;
            }
            self.step += 1;
            let s: f64 = params.iter().map(|&p| f64::from(p)).sum();
            Ok(IterationStats {
                return_before: -30.0 + s * 1e-3,
                returns_after: vec![-20.0 + s * 1e-3],
                env_steps: 2000,
            })
        }
        fn optimizer_state(&self) -> OptimizerState {
            OptimizerState {
                kind: "momentum".into(),
                step: self.step,
                buffers: vec![("m".into(), self.momentum.clone())],
            }
        }
        fn restore_optimizer_state(&mut self, s: &OptimizerState) -> anyhow::Result<()> {
            let [(_, m)] = s.buffers.as_slice() else {
                bail!("expected one buffer");
            };
            self.momentum.clone_from(m);
            self.step = s.step;
            Ok(())
        }
    }

    pub(crate) fn mock_factory(c: &Config) -> anyhow::Result<EngineInit> {
        let n = c.shape().n_params();
        let mut rng = Rng::new(c.seed);
        Ok(EngineInit {
            engine: Box::new(MockEngine {
                seed: c.seed,
                momentum: vec![0.0; n],
                step: 0,
                fail_at: None,
            }),
            params: (0..n).map(|_| 0.1 * rng.normal()).collect(),
        })
    }

    fn failing_factory(c: &Config) -> anyhow::Result<EngineInit> {
        let mut init = mock_factory(c)?;
        let n = c.shape().n_params();
        init.engine = Box::new(MockEngine {
            seed: c.seed,
            momentum: vec![0.0; n],
            step: 0,
            fail_at: Some(7),
        });
        Ok(init)
    }

    pub(crate) fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sgmrl-train-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn config() -> Config {
        let mut c = Preset::Embedded.config();
        c.iterations = 10;
        c.checkpoint_every = 5;
        c
    }

    fn opts(dir: &std::path::Path, stop_after: Option<u64>) -> TrainOptions {
        TrainOptions {
            run_dir: dir.to_path_buf(),
            progress: ProgressMode::Quiet,
            stop_after,
        }
    }

    fn log_rows(dir: &std::path::Path) -> Vec<Vec<String>> {
        std::fs::read_to_string(dir.join("log.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                // Everything but the timing columns.
                let f: Vec<String> = l.split(',').map(String::from).collect();
                f[..f.len() - 2].to_vec()
            })
            .collect()
    }

    /// An interrupted run (killed after iteration 7, checkpoint at 5, a partial log line)
    /// resumes to exactly the parameters, checkpoint and log of an uninterrupted run.
    #[test]
    fn interrupted_run_resumes_to_the_uninterrupted_result() {
        let c = config();
        let straight = scratch("straight");
        let a = train(&c, &opts(&straight, None), mock_factory).unwrap();
        assert_eq!(a.iterations, 10);
        assert!(a.exported.is_some());

        let broken = scratch("broken");
        let b = train(&c, &opts(&broken, Some(7)), mock_factory).unwrap();
        assert_eq!(b.iterations, 7);
        assert!(b.exported.is_none());
        assert_eq!(
            Checkpoint::load(&broken.join("checkpoint.sgck"))
                .unwrap()
                .iteration,
            5
        );
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(broken.join("log.csv"))
            .unwrap();
        write!(f, "7,-29.9").unwrap();
        drop(f);

        let r = train(&c, &opts(&broken, None), mock_factory).unwrap();
        assert_eq!(r.resumed_from, Some(5));
        assert_eq!(r.model.params, a.model.params);
        let (ca, cb) = (
            Checkpoint::load(&straight.join("checkpoint.sgck")).unwrap(),
            Checkpoint::load(&broken.join("checkpoint.sgck")).unwrap(),
        );
        assert_eq!((ca.params, ca.optimizer), (cb.params, cb.optimizer));
        assert_eq!(log_rows(&straight), log_rows(&broken));
        assert_eq!(log_rows(&broken).len(), 10);
        assert_eq!(
            std::fs::read(straight.join("bundle.sgml")).unwrap(),
            std::fs::read(broken.join("bundle.sgml")).unwrap()
        );
        for d in [straight, broken] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    #[test]
    fn extending_the_budget_continues_and_a_changed_recipe_is_refused() {
        let d = scratch("extend");
        let mut c = config();
        train(&c, &opts(&d, None), mock_factory).unwrap();
        c.iterations = 12;
        let r = train(&c, &opts(&d, None), mock_factory).unwrap();
        assert_eq!((r.resumed_from, r.iterations), (Some(10), 12));
        assert_eq!(log_rows(&d).len(), 12);
        c.recipe.alpha = 0.5;
        let e = train(&c, &opts(&d, None), mock_factory).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("differs in: recipe.alpha"), "{msg}");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn engine_failure_names_the_iteration_and_keeps_the_checkpoint() {
        let d = scratch("fail");
        let e = train(&config(), &opts(&d, None), failing_factory).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("iteration 7 failed"), "{msg}");
        assert!(msg.contains("checkpoint at iteration 5 is intact"), "{msg}");
        assert_eq!(
            Checkpoint::load(&d.join("checkpoint.sgck"))
                .unwrap()
                .iteration,
            5
        );
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn validation_rows_are_written_and_the_best_is_reported() {
        let d = scratch("valid");
        let mut c = config();
        c.eval.validate_every = 5;
        c.eval.validate_goals = 4;
        c.eval.episodes = 2;
        let r = train(&c, &opts(&d, None), mock_factory).unwrap();
        let text = std::fs::read_to_string(d.join("validation.csv")).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.starts_with("iteration,goals,before_mean,before_stderr,after_1_mean"));
        let (it, _) = r.best_validation.unwrap();
        assert!(it == 5 || it == 10);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn pad_after_fills_unmeasured_steps() {
        let v = pad_after(&[-1.0], 3);
        assert!(v[0].is_nan() && v[1].is_nan() && v[2] == -1.0);
        assert_eq!(pad_after(&[1.0, 2.0, 3.0], 2), vec![2.0, 3.0]);
    }
}
