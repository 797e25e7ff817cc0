//! Side-by-side timing of one meta-iteration of several estimators on the same problem.
//!
//! Each variant gets its own trainer started from the same parameters and seed; the
//! variants are run in interleaved rounds (A B C D, A B C D, …) so that the slow drifts of
//! a shared machine hit all of them alike, and the median per variant is reported with
//! its ratio to a reference variant. Only ratios measured in one run should be compared.

use std::time::{Duration, Instant};

use crate::envs::{Nav2dFamily, TaskFamily};
use crate::kernels::Net;
use crate::meta::{Algorithm, MetaConfig, MetaTrainer, Order, TrainError};
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
}

impl Timing {
    /// Median wall time.
    pub fn median(&self) -> Duration {
        let mut s = self.samples.clone();
        s.sort();
        s.get(s.len() / 2).copied().unwrap_or_default()
    }
    /// Smallest wall time.
    pub fn min(&self) -> Duration {
        self.samples.iter().min().copied().unwrap_or_default()
    }
}

/// Label of a variant.
pub fn label(algorithm: Algorithm, order: Order) -> String {
    let o = match order {
        Order::First => "1st",
        Order::Second => "2nd",
    };
    format!("{}-{o}", algorithm.name())
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
            name: label(c.algorithm, c.order),
            samples: Vec::with_capacity(rounds),
        })
        .collect();
    for _ in 0..rounds {
        for (t, timing) in trainers.iter_mut().zip(&mut timings) {
            let start = Instant::now();
            t.step()?;
            timing.samples.push(start.elapsed());
        }
    }
    Ok(timings)
}

/// The Table 1 comparison: full SG-MRL, MAML, first-order SG-MRL and FO-MAML.
pub fn table1_variants(seed: u64) -> Vec<MetaConfig> {
    [
        (Algorithm::SgMrl, Order::Second),
        (Algorithm::Maml, Order::Second),
        (Algorithm::SgMrl, Order::First),
        (Algorithm::Maml, Order::First),
    ]
    .into_iter()
    .map(|(a, o)| table1_config(a, o, seed))
    .collect()
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
