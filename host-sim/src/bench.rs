//! Side-by-side timing of one meta-iteration of several estimators on the same problem.
//!
//! Each variant gets its own trainer started from the same parameters and seed; the
//! variants are run in interleaved rounds (A B C D, A B C D, …) so that the slow drifts of
//! a shared machine hit all of them alike, and the median per variant is reported with
//! its ratio to a reference variant. Only ratios measured in one run should be compared.

use std::time::{Duration, Instant};

use crate::envs::{Nav2dFamily, TaskFamily};
use crate::kernels::Net;
use crate::meta::{Algorithm, ControlVariate, MetaConfig, MetaTrainer, Order, TrainError};
use sgmrl::policy::{Distribution, PolicyShape};
use sgmrl::rng::Rng;

/// The paper's Table 1 setting ([`MetaConfig::table1`]).
pub fn table1_config(algorithm: Algorithm, order: Order, seed: u64) -> MetaConfig {
    MetaConfig::table1(algorithm, order, seed)
}

/// The paper's policy: 2 → 100 → 100 → 2 tanh MLP, Gaussian head (10,604 parameters).
pub fn table1_shape() -> PolicyShape {
    PolicyShape {
        distribution: Distribution::Gaussian,
        obs_dim: 2,
        hidden: [100, 100],
        act_dim: 2,
    }
}

/// One timed variant.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Label, e.g. `sgmrl-2nd`.
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

/// Label of a variant, e.g. `sgmrl-2nd`; SG-MRL with the pre-adaptation control variate
/// is `sgmrl-2nd-pre` (the other variants use the leave-one-out default of
/// [`MetaConfig::table1`]).
pub fn label(c: &MetaConfig) -> String {
    let o = match c.order {
        Order::First => "1st",
        Order::Second => "2nd",
    };
    let cv = match c.control_variate {
        ControlVariate::PreAdaptation => "-pre",
        _ => "",
    };
    format!("{}-{o}{cv}", c.algorithm.name())
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
    let mut trainers: Vec<MetaTrainer<F>> = configs
        .iter()
        .map(|c| MetaTrainer::new(*c, family.clone(), net.clone(), params.clone()))
        .collect::<Result<_, _>>()?;
    for t in &mut trainers {
        for _ in 0..warmup {
            t.step()?;
        }
    }
    let mut timings: Vec<Timing> = configs
        .iter()
        .map(|c| Timing {
            name: label(c),
            samples: Vec::with_capacity(rounds),
            cpu: Vec::with_capacity(rounds),
        })
        .collect();
    for _ in 0..rounds {
        for (t, timing) in trainers.iter_mut().zip(&mut timings) {
            let (start, cpu) = (Instant::now(), process_cpu_time());
            t.step()?;
            timing.samples.push(start.elapsed());
            timing.cpu.push(process_cpu_time().saturating_sub(cpu));
        }
    }
    Ok(timings)
}

/// The Table 1 comparison: full SG-MRL, MAML, first-order SG-MRL and FO-MAML.
pub fn table1_variants(seed: u64) -> Vec<MetaConfig> {
    let mut v: Vec<MetaConfig> = [
        (Algorithm::SgMrl, Order::Second),
        (Algorithm::Maml, Order::Second),
        (Algorithm::SgMrl, Order::First),
        (Algorithm::Maml, Order::First),
    ]
    .into_iter()
    .map(|(a, o)| table1_config(a, o, seed))
    .collect();
    // What `sgmrl train` runs by default: one more batch of rollouts per task.
    v.push(MetaConfig {
        control_variate: ControlVariate::PreAdaptation,
        ..table1_config(Algorithm::SgMrl, Order::Second, seed)
    });
    v
}

/// Times [`table1_variants`] on nav2d with the paper's policy.
pub fn table1(warmup: usize, rounds: usize) -> Result<Vec<Timing>, TrainError> {
    time_variants(
        &Nav2dFamily,
        table1_shape(),
        &table1_variants(0),
        warmup,
        rounds,
    )
}
