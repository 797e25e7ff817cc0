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
//!
//! Every row also carries the exact floating-point work of its matrix products (counted by
//! shape in one recorded run, [`crate::flops`]) and the time the GEMM wrapper alone takes
//! for exactly those products ([`gemm_alone`]), so the achieved GFLOP/s stand next to the
//! wrapper's own on the same shapes.

use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::advantage;
use crate::config::Preset;
use crate::envs::{Nav2dFamily, TaskFamily};
use crate::flops;
use crate::gemm::{Gemm, at_b, gemm};
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
    /// Environment steps taken over all timed runs (0 for rows that do not sample).
    pub env_steps: u64,
    /// Every matrix product of one run (after the warm-up), by shape ([`flops::recording`]).
    pub products: Vec<(Gemm, u64)>,
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
    /// Floating-point operations of one run's matrix products.
    pub fn flops(&self) -> u64 {
        flops::total(&self.products)
    }
    /// Environment steps per second of wall time over the timed runs.
    pub fn env_steps_per_second(&self) -> f64 {
        let wall: f64 = self.samples.iter().map(Duration::as_secs_f64).sum();
        if wall > 0.0 {
            self.env_steps as f64 / wall
        } else {
            0.0
        }
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
    /// Runs it once, returning the environment steps it took.
    pub run: Box<dyn FnMut() -> Result<u64, TrainError> + 'a>,
}

/// Runs every job `warmup` times untimed, once more counting its matrix products, then
/// `rounds` rounds of each job once in turn, timing each run (wall and process CPU time).
pub fn time_rounds(
    jobs: &mut [Job<'_>],
    warmup: usize,
    rounds: usize,
) -> Result<Vec<Timing>, TrainError> {
    let mut timings = Vec::with_capacity(jobs.len());
    for j in jobs.iter_mut() {
        for _ in 0..warmup {
            (j.run)()?;
        }
        let (done, products) = flops::recording(|| (j.run)());
        done?;
        timings.push(Timing {
            name: j.name.clone(),
            samples: Vec::with_capacity(rounds),
            cpu: Vec::with_capacity(rounds),
            env_steps: 0,
            products,
        });
    }
    for _ in 0..rounds {
        for (j, timing) in jobs.iter_mut().zip(&mut timings) {
            let (start, cpu) = (Instant::now(), process_cpu_time());
            timing.env_steps += (j.run)()?;
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
                run: Box::new(move || t.step().map(|s| s.env_steps)),
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

/// Label of the row at pytorch-maml-rl's problem size ([`pytorch_maml_rl_config`]).
pub const PYTORCH_MAML_RL_ROW: &str = "maml 64x64 (pytorch-maml-rl size)";

/// pytorch-maml-rl's 2-D navigation policy: 2 → 64 → 64 → 2 tanh MLP, Gaussian head.
pub const PYTORCH_MAML_RL_SHAPE: PolicyShape = PolicyShape {
    distribution: sgmrl::policy::Distribution::Gaussian,
    obs_dim: 2,
    hidden: [64, 64],
    act_dim: 2,
};

/// Second-order MAML at pytorch-maml-rl's problem size (its 2-D navigation example: 20
/// tasks × 20 episodes × 100 steps, the policy [`PYTORCH_MAML_RL_SHAPE`]), otherwise the
/// Table 1 recipe; no pre-adaptation batch (MAML has no score terms to baseline).
pub fn pytorch_maml_rl_config(seed: u64) -> MetaConfig {
    MetaConfig {
        control_variate: ControlVariate::LeaveOneOut,
        ..table1_config(Algorithm::Maml, Order::Second, seed)
    }
}

/// Runs exactly `products` (each shape as many times as counted, [`Timing::products`])
/// through the GEMM wrapper alone on fixed operands, spread over the rayon threads as
/// evenly as their work allows (each product whole on one thread, like the trainer's tasks),
/// `reps` times: the wall and CPU time of each repetition. What the products of a run
/// would cost at the wrapper's own speed on the same shapes, with nothing else around
/// them. Operands are allocated before the timing.
pub fn gemm_alone(products: &[(Gemm, u64)], reps: usize) -> (Vec<Duration>, Vec<Duration>) {
    fn extent(rows: usize, cols: usize, (rs, cs): (usize, usize)) -> usize {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        }
    }
    let fill = |n: usize, phase: f32| -> Vec<f32> {
        (0..n)
            .map(|i| 0.01 * libm::sinf(i as f32 * 0.37 + phase))
            .collect()
    };
    let operands: Vec<(Vec<f32>, Vec<f32>)> = products
        .iter()
        .map(|(g, _)| {
            (
                fill(extent(g.m, g.k, g.a), 0.0),
                fill(extent(g.k, g.n, g.b), 1.0),
            )
        })
        .collect();
    // Each unit product to the least loaded thread, largest first.
    let threads = rayon::current_num_threads().max(1);
    let mut order: Vec<usize> = (0..products.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(flops::of(&products[i].0)));
    let mut lists: Vec<Vec<usize>> = vec![Vec::new(); threads];
    let mut load = vec![0u64; threads];
    for &i in &order {
        for _ in 0..products[i].1 {
            let t = (0..threads).min_by_key(|&t| load[t]).unwrap_or(0);
            load[t] += flops::of(&products[i].0);
            lists[t].push(i);
        }
    }
    let mut outputs: Vec<Vec<Vec<f32>>> = (0..threads)
        .map(|_| {
            products
                .iter()
                .map(|(g, _)| vec![0.0f32; extent(g.m, g.n, g.c)])
                .collect()
        })
        .collect();
    let (mut wall, mut cpu) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for _ in 0..reps {
        let (start, cpu0) = (Instant::now(), process_cpu_time());
        outputs
            .par_iter_mut()
            .zip(lists.par_iter())
            .for_each(|(outs, list)| {
                for &i in list {
                    let (a, b) = &operands[i];
                    gemm(&products[i].0, 1.0, a, b, 0.0, &mut outs[i]);
                }
            });
        wall.push(start.elapsed());
        cpu.push(process_cpu_time().saturating_sub(cpu0));
    }
    std::hint::black_box(&outputs);
    (wall, cpu)
}

/// Times [`table1_variants`] on nav2d with the paper's policy, second-order MAML at
/// pytorch-maml-rl's size ([`PYTORCH_MAML_RL_ROW`]), and the inner step's weight-gradient
/// products of the first iteration's batches ([`Products`], rows named by
/// [`Products::name`]), all interleaved.
pub fn table1(warmup: usize, rounds: usize) -> Result<Vec<Timing>, TrainError> {
    let net = Net::new(table1_shape()).map_err(|_| TrainError::Shape)?;
    let params = net.glorot_init(&mut Rng::new(0));
    let fo = table1_config(Algorithm::SgMrl, Order::First, 0);
    let inner = InnerProducts::first_iteration(&Nav2dFamily, &net, &params, &fo)?;
    let mut jobs = trainer_jobs(&Nav2dFamily, &net, &params, &table1_variants(0))?;
    let small = Net::new(PYTORCH_MAML_RL_SHAPE).map_err(|_| TrainError::Shape)?;
    let small_params = small.glorot_init(&mut Rng::new(0));
    let mut maml = trainer_jobs(
        &Nav2dFamily,
        &small,
        &small_params,
        &[pytorch_maml_rl_config(0)],
    )?;
    for j in &mut maml {
        j.name = PYTORCH_MAML_RL_ROW.to_string();
    }
    jobs.extend(maml);
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
                Ok(0)
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

    /// A forward pass over `R` rows is exactly `2·R·Σ_l in_l·out_l` FLOPs of products, and
    /// a timed row carries its products and environment steps, which the GEMM replays.
    #[test]
    fn products_are_counted_exactly_and_replayed() {
        let net = Net::new(PYTORCH_MAML_RL_SHAPE).unwrap();
        let params = net.glorot_init(&mut Rng::new(0));
        let rows = 37;
        let mut batch = Batch::new(&net, vec![0.1; rows * 2], vec![0.0; rows * 2]);
        let ((), shapes) = flops::recording(|| net.forward(&params, &mut batch));
        // Other tests may run products meanwhile: only this batch's row count.
        let ours: Vec<(Gemm, u64)> = shapes.into_iter().filter(|(g, _)| g.m == rows).collect();
        assert_eq!(flops::total(&ours), 2 * 37 * (2 * 64 + 64 * 64 + 64 * 2));

        let mut cfg = pytorch_maml_rl_config(0);
        cfg.tasks = 2;
        cfg.recipe.episodes = 3;
        cfg.outer_episodes = 3;
        cfg.recipe.horizon = 5;
        let t = time_variants(&Nav2dFamily, PYTORCH_MAML_RL_SHAPE, &[cfg], 1, 2).unwrap();
        assert_eq!(t[0].samples.len(), 2);
        // Two timed iterations × 2 tasks × 2 batches × 3 episodes × at most 5 steps.
        assert!(t[0].env_steps > 0 && t[0].env_steps <= 2 * 2 * 2 * 3 * 5);
        assert!(t[0].flops() > 0);
        let (wall, cpu) = gemm_alone(&t[0].products, 3);
        assert_eq!((wall.len(), cpu.len()), (3, 3));
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
