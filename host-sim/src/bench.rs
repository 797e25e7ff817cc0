//! Side-by-side timing of one meta-iteration of several estimators on the same problem.
//!
//! Each variant gets its own trainer started from the same parameters and seed; the
//! variants are run in interleaved rounds (A B C D, A B C D, …) so that the slow drifts of
//! a shared machine hit all of them alike, and the median per variant is reported with
//! its ratio to a reference variant. Only ratios measured in one run should be compared.
//!
//! Besides whole iterations, the Table 1 run times the weight-gradient products of the
//! inner step alone ([`InnerProducts`]): FO-MAML's, and the one more that first-order
//! SG-MRL needs for its score. The extra product's time over an FO-MAML iteration is the
//! floor of the first-order ratio: no implementation that forms the score sum with this
//! matrix product can be cheaper.

use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::advantage;
use crate::config::Preset;
use crate::envs::{Nav2dFamily, TaskFamily};
use crate::gemm::at_b;
use crate::kernels::{Batch, Net};
use crate::meta::trainer::streams;
use crate::meta::{Algorithm, ControlVariate, MetaConfig, MetaTrainer, Order, TrainError};
use crate::sampler::{self, SampleSpec};
use crate::wiring;
use sgmrl::policy::PolicyShape;
use sgmrl::rng::Rng;

/// The paper's Table 1 setting for `algorithm` at `order`, derived from the one definition
/// of the paper's settings, the `paper-table1` preset ([`Preset::PaperTable1`], which
/// `sgmrl reproduce table1` trains), so the benchmark times what the CLI runs — including
/// its control variate `pre` (see the README's "default control variate").
pub fn table1_config(algorithm: Algorithm, order: Order, seed: u64) -> MetaConfig {
    MetaConfig {
        algorithm,
        order,
        seed,
        ..Preset::PaperTable1.config().meta_config()
    }
}

/// The paper's policy, from the same preset: 2 → 100 → 100 → 2 tanh MLP, Gaussian head
/// (10,604 parameters).
pub fn table1_shape() -> PolicyShape {
    Preset::PaperTable1.config().shape()
}

/// One timed variant.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Label, e.g. `sgmrl` ([`label`]).
    pub name: String,
    /// Wall time of every timed meta-iteration.
    pub samples: Vec<Duration>,
    /// CPU time (user + system, all threads of the process) of every timed iteration:
    /// the work done, less sensitive than wall time to other processes on the machine.
    pub cpu: Vec<Duration>,
}

fn median_of(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s.get(s.len() / 2).copied().unwrap_or_default()
}

impl Timing {
    /// Median wall time.
    pub fn median(&self) -> Duration {
        median_of(&self.samples)
    }
    /// Smallest wall time.
    pub fn min(&self) -> Duration {
        self.samples.iter().min().copied().unwrap_or_default()
    }
    /// Median CPU time.
    pub fn cpu_median(&self) -> Duration {
        median_of(&self.cpu)
    }
}

/// CPU time used so far by the whole process (user + system), where the OS reports it.
pub fn process_cpu_time() -> Duration {
    #[cfg(unix)]
    {
        // SAFETY: getrusage only writes the `rusage` we pass; a zeroed rusage is valid.
        let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        if rc == 0 {
            let tv = |t: libc::timeval| {
                Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000)
            };
            return tv(ru.ru_utime) + tv(ru.ru_stime);
        }
    }
    Duration::ZERO
}

/// CPU time used so far by the calling thread, where the OS reports it (unlike wall time
/// it does not count time the thread spent descheduled on a loaded machine).
pub fn thread_cpu_time() -> Duration {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime only writes the `timespec` we pass.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if rc == 0 {
            return Duration::new(
                ts.tv_sec.max(0) as u64,
                ts.tv_nsec.clamp(0, 999_999_999) as u32,
            );
        }
    }
    Duration::ZERO
}

/// Label of a variant: its `--algorithm` name (`sgmrl`, `sgmrl-fo`, `maml`, `fomaml`), and
/// `-pre` or `-none` after it for the pre-adaptation or no control variate
/// (`sgmrl-pre`); leave-one-out, the free one, gets no suffix.
pub fn label(c: &MetaConfig) -> String {
    let name = wiring::algorithm_name(c.algorithm, c.order).map_or_else(
        || format!("{}-{:?}", c.algorithm.name(), c.order),
        |a| a.name().to_string(),
    );
    let cv = match c.control_variate {
        ControlVariate::PreAdaptation => "-pre",
        ControlVariate::None => "-none",
        ControlVariate::LeaveOneOut => "",
    };
    format!("{name}{cv}")
}

/// One thing timed once per round: a meta-iteration of a trainer, or a set of products.
pub struct Job<'a> {
    /// Label of the row.
    pub name: String,
    /// Runs it once.
    pub run: Box<dyn FnMut() -> Result<(), TrainError> + 'a>,
}

/// Runs every job `warmup` times untimed, then `rounds` rounds of each job once in turn,
/// timing each run (wall and process CPU time).
pub fn time_rounds(
    jobs: &mut [Job<'_>],
    warmup: usize,
    rounds: usize,
) -> Result<Vec<Timing>, TrainError> {
    for j in jobs.iter_mut() {
        for _ in 0..warmup {
            (j.run)()?;
        }
    }
    let mut timings: Vec<Timing> = jobs
        .iter()
        .map(|j| Timing {
            name: j.name.clone(),
            samples: Vec::with_capacity(rounds),
            cpu: Vec::with_capacity(rounds),
        })
        .collect();
    for _ in 0..rounds {
        for (j, timing) in jobs.iter_mut().zip(&mut timings) {
            let (start, cpu) = (Instant::now(), process_cpu_time());
            (j.run)()?;
            timing.samples.push(start.elapsed());
            timing.cpu.push(process_cpu_time().saturating_sub(cpu));
        }
    }
    Ok(timings)
}

fn trainer_jobs<'a, F: TaskFamily + Clone + 'a>(
    family: &F,
    net: &Net,
    params: &[f32],
    configs: &[MetaConfig],
) -> Result<Vec<Job<'a>>, TrainError> {
    configs
        .iter()
        .map(|c| {
            let mut t = MetaTrainer::new(*c, family.clone(), net.clone(), params.to_vec())?;
            Ok(Job {
                name: label(c),
                run: Box::new(move || t.step().map(|_| ())),
            })
        })
        .collect()
}

/// Times `rounds` meta-iterations ([`MetaTrainer::step`]) of each variant on `family`,
/// after `warmup` untimed ones, interleaved round by round.
pub fn time_variants<F: TaskFamily + Clone>(
    family: &F,
    shape: PolicyShape,
    configs: &[MetaConfig],
    warmup: usize,
    rounds: usize,
) -> Result<Vec<Timing>, TrainError> {
    let net = Net::new(shape).map_err(|_| TrainError::Shape)?;
    let params = net.glorot_init(&mut Rng::new(0));
    let mut jobs = trainer_jobs(family, &net, &params, configs)?;
    time_rounds(&mut jobs, warmup, rounds)
}

/// Which weight-gradient products of the inner step [`InnerProducts::run`] does, on every
/// layer `l` with per-row deltas `δ_l` and layer inputs `A_{l-1}` (`N` rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Products {
    /// FO-MAML's inner gradient `Σ_rows (w ⊙ δ_l)ᵀ A_{l-1}`.
    Gradient,
    /// The gradient's product, then the bare extra product of first-order SG-MRL, the
    /// score's `Σ_rows δ_lᵀ A_{l-1}`, on the inputs the first has just read (as in
    /// [`Net::accumulate`]; timed alone, the 20 batches' rows would come from memory).
    GradientThenScore,
    /// Both as one product per layer with doubled output width (`[w ⊙ δ_l | δ_l]`).
    Stacked,
}

impl Products {
    /// Label of the timing row.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gradient => "inner grad products",
            Self::GradientThenScore => "inner grad+score products",
            Self::Stacked => "inner stacked products",
        }
    }
}

/// One task's inner batch `D_1` at `θ_0` with the rows its products read.
struct InnerRows {
    batch: Batch<f32>,
    /// The row weights `w` (the tests check the products against the inner step's).
    #[cfg(test)]
    weights: Vec<f32>,
    weighted: Vec<Vec<f32>>,
    deltas: Vec<Vec<f32>>,
    stacked: Vec<Vec<f32>>,
}

/// The inner batches of every task of one meta-iteration, with their deltas computed, so
/// that the weight-gradient products ([`Products`]) can be timed alone on real data.
pub struct InnerProducts {
    net: Net,
    tasks: Vec<InnerRows>,
}

impl InnerProducts {
    /// The inner batches `D_1` of the first meta-iteration of `config` at `params`: the
    /// tasks and batches [`MetaTrainer::step`] draws (same streams), with the recipe's
    /// advantages as row weights.
    pub fn first_iteration<F: TaskFamily>(
        family: &F,
        net: &Net,
        params: &[f32],
        config: &MetaConfig,
    ) -> Result<Self, TrainError> {
        let tasks = (0..config.tasks)
            .map(|i| {
                let i = i as u64;
                let mut rng = Rng::derive(config.seed, &[streams::TRAIN, 0, i, streams::TASK]);
                let task = family.sample_task(&mut rng);
                let path = [streams::TRAIN, 0, i, 0];
                let spec = SampleSpec {
                    episodes: usize::from(config.recipe.episodes),
                    horizon: usize::from(config.recipe.horizon),
                    action_map: config.recipe.action,
                    seed: config.seed,
                    path: &path,
                };
                let mut ro = sampler::sample(family, &task, net, params, &spec)?;
                let w = advantage::weights(&config.recipe, &ro)?;
                let deltas = net.deltas(params, ro.batch_mut());
                let weighted: Vec<Vec<f32>> = deltas
                    .iter()
                    .zip(net.layers())
                    .map(|(d, layer)| {
                        let mut x = d.clone();
                        for (row, &w) in x.chunks_exact_mut(layer.output).zip(&w) {
                            row.iter_mut().for_each(|v| *v *= w);
                        }
                        x
                    })
                    .collect();
                let stacked = weighted
                    .iter()
                    .zip(&deltas)
                    .zip(net.layers())
                    .map(|((wd, d), layer)| {
                        let out = layer.output;
                        wd.chunks_exact(out)
                            .zip(d.chunks_exact(out))
                            .flat_map(|(a, b)| a.iter().chain(b).copied())
                            .collect()
                    })
                    .collect();
                Ok(InnerRows {
                    batch: ro.batch().clone(),
                    #[cfg(test)]
                    weights: w,
                    weighted,
                    deltas,
                    stacked,
                })
            })
            .collect::<Result<_, TrainError>>()?;
        Ok(Self {
            net: net.clone(),
            tasks,
        })
    }

    /// Runs `which` for every task (in parallel, like the trainer), each into a fresh
    /// gradient and score vector.
    pub fn run(&self, which: Products) {
        self.tasks.par_iter().for_each(|t| {
            std::hint::black_box(self.products(t, which));
        });
    }

    /// The weight parts of the gradient and the score of task `t` that `which` computes
    /// (the score is all zeros for [`Products::Gradient`]).
    fn products(&self, t: &InnerRows, which: Products) -> (Vec<f32>, Vec<f32>) {
        let mut g = vec![0.0f32; self.net.n_params()];
        let mut s = vec![0.0f32; self.net.n_params()];
        let n = t.batch.rows();
        for (l, layer) in self.net.layers().iter().enumerate() {
            let (out, inp) = (layer.output, layer.input);
            let input = self.net.layer_input(&t.batch, l);
            let w = layer.weights..layer.weights + out * inp;
            match which {
                Products::Gradient | Products::GradientThenScore => {
                    at_b(out, n, inp, &t.weighted[l], input, 1.0, &mut g[w.clone()]);
                    if which == Products::GradientThenScore {
                        at_b(out, n, inp, &t.deltas[l], input, 1.0, &mut s[w]);
                    }
                }
                Products::Stacked => {
                    let mut both = vec![0.0f32; 2 * out * inp];
                    at_b(2 * out, n, inp, &t.stacked[l], input, 0.0, &mut both);
                    let (bg, bs) = both.split_at(out * inp);
                    g[w.clone()].copy_from_slice(bg);
                    s[w].copy_from_slice(bs);
                }
            }
        }
        (g, s)
    }
}

/// The Table 1 comparison: full SG-MRL, MAML, first-order SG-MRL and FO-MAML on equal
/// rollouts — with the leave-one-out control variate, which costs nothing, so that the
/// ratios compare the estimators alone — then full SG-MRL exactly as [`table1_config`]
/// (and `sgmrl train`) runs it, with the pre-adaptation batch.
pub fn table1_variants(seed: u64) -> Vec<MetaConfig> {
    let mut v: Vec<MetaConfig> = [
        (Algorithm::SgMrl, Order::Second),
        (Algorithm::Maml, Order::Second),
        (Algorithm::SgMrl, Order::First),
        (Algorithm::Maml, Order::First),
    ]
    .into_iter()
    .map(|(a, o)| MetaConfig {
        control_variate: ControlVariate::LeaveOneOut,
        ..table1_config(a, o, seed)
    })
    .collect();
    v.push(table1_config(Algorithm::SgMrl, Order::Second, seed));
    v
}

/// Times [`table1_variants`] on nav2d with the paper's policy, and the inner step's
/// weight-gradient products of the first iteration's batches ([`Products`], rows named by
/// [`Products::name`]), all interleaved.
pub fn table1(warmup: usize, rounds: usize) -> Result<Vec<Timing>, TrainError> {
    let net = Net::new(table1_shape()).map_err(|_| TrainError::Shape)?;
    let params = net.glorot_init(&mut Rng::new(0));
    let fo = table1_config(Algorithm::SgMrl, Order::First, 0);
    let inner = InnerProducts::first_iteration(&Nav2dFamily, &net, &params, &fo)?;
    let mut jobs = trainer_jobs(&Nav2dFamily, &net, &params, &table1_variants(0))?;
    for which in [
        Products::Gradient,
        Products::GradientThenScore,
        Products::Stacked,
    ] {
        let inner = &inner;
        jobs.push(Job {
            name: which.name().to_string(),
            run: Box::new(move || {
                inner.run(which);
                Ok(())
            }),
        });
    }
    time_rounds(&mut jobs, warmup, rounds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AlgorithmName, ControlVariateName};

    #[test]
    fn table1_is_the_paper_preset_and_variants_carry_the_cli_names() {
        let c = Preset::PaperTable1.config();
        let t = table1_config(Algorithm::SgMrl, Order::Second, c.seed);
        assert_eq!(t.recipe, c.recipe());
        assert_eq!(t.control_variate, ControlVariateName::Pre.engine());
        assert_eq!((t.tasks, t.outer_episodes), (20, 20));
        assert_eq!(table1_shape().n_params(), 10_604);
        let labels: Vec<String> = table1_variants(0).iter().map(label).collect();
        assert_eq!(labels, ["sgmrl", "maml", "sgmrl-fo", "fomaml", "sgmrl-pre"]);
        for a in AlgorithmName::ALL {
            let (algorithm, order) = wiring::algorithm_order(a);
            assert_eq!(wiring::algorithm_name(algorithm, order), Some(a));
        }
    }

    /// The timed product sets compute the weight parts of what the inner step's
    /// [`Net::accumulate`] computes, on the batches the trainer draws.
    #[test]
    fn the_timed_products_are_the_inner_steps() {
        let net = Net::new(PolicyShape {
            hidden: [8, 6],
            ..table1_shape()
        })
        .unwrap();
        let params = net.glorot_init(&mut Rng::new(2));
        let mut cfg = table1_config(Algorithm::SgMrl, Order::First, 5);
        cfg.tasks = 2;
        cfg.recipe.episodes = 3;
        cfg.recipe.horizon = 12;
        let inner = InnerProducts::first_iteration(&Nav2dFamily, &net, &params, &cfg).unwrap();
        assert_eq!(inner.tasks.len(), 2);
        for t in &inner.tasks {
            let p = net.n_params();
            let (mut g, mut s) = (vec![0.0f32; p], vec![0.0f32; p]);
            net.accumulate(
                &params,
                &mut t.batch.clone(),
                &t.weights,
                &mut g,
                Some(&mut s),
            );
            let close = |a: &[f32], b: &[f32], what: &str| {
                for layer in net.layers() {
                    let w = layer.weights..layer.weights + layer.input * layer.output;
                    for (x, y) in a[w.clone()].iter().zip(&b[w]) {
                        assert!(
                            (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                            "{what}: {x} vs {y}"
                        );
                    }
                }
            };
            let (g1, s1) = inner.products(t, Products::Gradient);
            close(&g1, &g, "gradient");
            assert!(s1.iter().all(|&x| x == 0.0));
            for which in [Products::GradientThenScore, Products::Stacked] {
                let (g2, s2) = inner.products(t, which);
                close(&g2, &g, which.name());
                close(&s2, &s, which.name());
            }
        }
    }
}
