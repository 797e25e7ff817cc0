//! The per-step baseline table `b_h` of the `TimeBaseline` inner rule, fitted to the
//! meta-policy.
//!
//! `b_h` is the mean, over the episodes still running at step `h`, of the core's
//! reward-to-go `R^h = Σ_{t≥h} γ^t r_t`, from one batch of `|D_o|` episodes per task of a
//! meta-batch, drawn at `θ` on streams of their own (`[TRAIN, iteration, task, BASELINE]`),
//! apart from every batch an estimate uses. Training fits the table at the start of each
//! iteration and holds it fixed through the iteration, as the device holds the bundle's
//! table fixed: every estimator then stays unbiased for the objective with that table (the
//! exact-enumeration test checks SG-MRL with a fixed table), and the meta-gradient does not
//! follow how the fit moves with `θ` (the table is fitted, not meta-learned). The exported
//! table is the fit at the final parameters (the fit the next iteration would use). Steps
//! no episode reached get `b_h = 0`.

use std::ops::Range;

use rayon::prelude::*;
use sgmrl::rng::Rng;

use super::trainer::{MetaConfig, TrainError, streams};
use crate::envs::TaskFamily;
use crate::kernels::Net;
use crate::sampler::{self, SampleSpec};

/// Marks the baseline-fitting batch in a training stream path (`[TRAIN, iteration, task,
/// BASELINE]`); adaptation batches use small step indices and task draws `streams::TASK`.
pub const BASELINE: u64 = 0x4241_5345_4C49_4E45;

/// One task's share of the fit: per step `h`, the sum of its episodes' reward-to-go `R^h`
/// and how many of its episodes reached `h` (`H` values each).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSums {
    /// `Σ R^h` over the task's episodes that reached step `h`.
    pub sums: Vec<f64>,
    /// Episodes that reached step `h`.
    pub counts: Vec<u64>,
}

/// The table (`H` values) fitted at `params` on the tasks of meta-iteration `iteration`.
pub fn fit_time_baseline<F: TaskFamily>(
    family: &F,
    net: &Net,
    params: &[f32],
    config: &MetaConfig,
    iteration: u64,
) -> Result<Vec<f32>, TrainError> {
    let per_task = task_sums(family, net, params, config, iteration, 0..config.tasks)?;
    Ok(table_of(usize::from(config.recipe.horizon), &per_task))
}

/// The fit's batches of the meta-batch's tasks `tasks` (indices into `0..config.tasks`), in
/// parallel, in index order. Each task's batch is drawn on its own stream, so the tasks can
/// be fitted on different processes and [`table_of`] the lot gives [`fit_time_baseline`].
pub fn task_sums<F: TaskFamily>(
    family: &F,
    net: &Net,
    params: &[f32],
    config: &MetaConfig,
    iteration: u64,
    tasks: Range<usize>,
) -> Result<Vec<TaskSums>, TrainError> {
    let horizon = usize::from(config.recipe.horizon);
    let gamma = f64::from(config.recipe.gamma);
    tasks
        .into_par_iter()
        .map(|i| {
            let i = i as u64;
            let task = family.sample_task(&mut Rng::derive(
                config.seed,
                &[streams::TRAIN, iteration, i, streams::TASK],
            ));
            let path = [streams::TRAIN, iteration, i, BASELINE];
            let spec = SampleSpec {
                episodes: usize::from(config.outer_episodes),
                horizon,
                action_map: config.recipe.action,
                seed: config.seed,
                path: &path,
            };
            let ro = sampler::sample(family, &task, net, params, &spec)?;
            let mut sums = vec![0.0f64; horizon];
            let mut counts = vec![0u64; horizon];
            for e in 0..ro.episodes() {
                let (_, _, rewards) = ro.episode(e);
                let mut to_go = 0.0f64;
                for (h, &r) in rewards.iter().enumerate().rev() {
                    to_go += gamma.powi(h as i32) * f64::from(r);
                    if let (Some(s), Some(c)) = (sums.get_mut(h), counts.get_mut(h)) {
                        *s += to_go;
                        *c += 1;
                    }
                }
            }
            Ok(TaskSums { sums, counts })
        })
        .collect()
}

/// The table (`horizon` values) from every task's sums, in task order. The sum runs in
/// that order in f64, so the table depends neither on the thread count nor on which
/// process fitted which task.
pub fn table_of(horizon: usize, per_task: &[TaskSums]) -> Vec<f32> {
    let mut sums = vec![0.0f64; horizon];
    let mut counts = vec![0u64; horizon];
    for t in per_task {
        for (a, x) in sums.iter_mut().zip(&t.sums) {
            *a += x;
        }
        for (a, x) in counts.iter_mut().zip(&t.counts) {
            *a += x;
        }
    }
    sums.iter()
        .zip(&counts)
        .map(|(&s, &c)| if c == 0 { 0.0 } else { (s / c as f64) as f32 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs::Nav2dFamily;
    use crate::meta::{Algorithm, ControlVariate, Order};
    use crate::optim::OptimizerConfig;
    use sgmrl::policy::{Distribution, PolicyShape};
    use sgmrl::recipe::{ActionMap, Advantage, LossScale, Recipe};

    /// `b_0` is the mean discounted return of the same batches (every episode runs at step
    /// 0), later steps have less reward to go, and the fit does not depend on the thread
    /// count.
    #[test]
    fn first_entry_is_the_mean_discounted_return_and_it_is_thread_count_free() {
        let net = Net::new(PolicyShape {
            distribution: Distribution::Gaussian,
            obs_dim: 2,
            hidden: [8, 0],
            act_dim: 2,
        })
        .unwrap();
        let params = net.glorot_init(&mut Rng::new(3));
        let config = MetaConfig {
            algorithm: Algorithm::SgMrl,
            order: Order::First,
            recipe: Recipe {
                alpha: 0.1,
                steps: 1,
                episodes: 5,
                horizon: 12,
                gamma: 0.9,
                advantage: Advantage::TimeBaseline,
                normalize: false,
                loss: LossScale::PerEpisode,
                action: ActionMap {
                    scale: 0.1,
                    clip: Some(0.1),
                },
            },
            outer_advantage: Advantage::RewardToGo,
            outer_episodes: 6,
            tasks: 4,
            control_variate: ControlVariate::None,
            optimizer: OptimizerConfig::adam(1e-3),
            seed: 11,
        };
        let b = fit_time_baseline(&Nav2dFamily, &net, &params, &config, 2).unwrap();
        assert_eq!(b.len(), 12);
        let mut want = 0.0f64;
        for i in 0..4u64 {
            let task = Nav2dFamily
                .sample_task(&mut Rng::derive(11, &[streams::TRAIN, 2, i, streams::TASK]));
            let path = [streams::TRAIN, 2, i, BASELINE];
            let spec = SampleSpec {
                episodes: 6,
                horizon: 12,
                action_map: config.recipe.action,
                seed: 11,
                path: &path,
            };
            let ro = sampler::sample(&Nav2dFamily, &task, &net, &params, &spec).unwrap();
            want += f64::from(ro.mean_discounted_return(0.9)) / 4.0;
        }
        assert!((f64::from(b[0]) - want).abs() < 1e-5, "{} vs {want}", b[0]);
        // Later steps collect less reward to go.
        assert!(b[11] > b[0] && b[0] < 0.0);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let one = pool.install(|| fit_time_baseline(&Nav2dFamily, &net, &params, &config, 2));
        assert_eq!(one.unwrap(), b);
        // Fitted in blocks (as MPI ranks do), the table is the same to the bit.
        let blocks: Vec<TaskSums> = [0..1, 1..4]
            .into_iter()
            .flat_map(|r| task_sums(&Nav2dFamily, &net, &params, &config, 2, r).unwrap())
            .collect();
        let split = table_of(12, &blocks);
        let bits = |t: &[f32]| t.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&split), bits(&b));
        assert_ne!(
            bits(&table_of(12, &blocks[1..])),
            bits(&b),
            "every task counts"
        );
    }
}
