//! Deterministic rollouts: all episodes of a task stepped in lockstep, the policy run as
//! matrix products.
//!
//! At each step the observations of the episodes still running form one [`Batch`]; one
//! forward pass gives every head output, and each episode draws its action from its own
//! stream. Episode `e` of a batch named by `path` (e.g. `[iteration, task, step k]`) uses
//! `Rng::derive(seed, path ++ [e, 0])` for its actions and `Rng::derive(seed, path ++ [e, 1])`
//! for its environment, so a batch is bit-identical whatever thread samples it or in which
//! order batches are sampled. The forward activations are kept: the gradient and
//! Hessian-vector products at the same parameters reuse them.

use sgmrl::env::Env;
use sgmrl::policy::Distribution;
use sgmrl::recipe::ActionMap;
use sgmrl::rng::Rng;

use crate::envs::TaskFamily;
use crate::kernels::{Batch, Net};
use crate::rollouts::Rollouts;

/// Why a batch could not be sampled.
#[derive(Clone, Debug, PartialEq)]
pub enum SampleError {
    /// The environment reported a failure (its error, formatted).
    Env(String),
    /// The simulation diverged ([`TaskFamily::is_unstable`]; its error, formatted): the
    /// trainer drops the task and carries on.
    Unstable(String),
    /// The environment returned a NaN or infinite reward.
    NonFiniteReward,
    /// The policy produced a NaN or infinite action.
    NonFiniteAction,
    /// The family's widths do not match the policy's.
    Shape,
}

impl core::fmt::Display for SampleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Env(e) => write!(f, "environment error: {e}"),
            Self::Unstable(e) => write!(f, "{e}"),
            Self::NonFiniteReward => f.write_str("environment returned a non-finite reward"),
            Self::NonFiniteAction => f.write_str("policy produced a non-finite action"),
            Self::Shape => f.write_str("task family and policy disagree on widths"),
        }
    }
}

impl std::error::Error for SampleError {}

/// What to sample: how many episodes, how long, and the random streams.
#[derive(Clone, Copy, Debug)]
pub struct SampleSpec<'a> {
    /// Episodes `N`.
    pub episodes: usize,
    /// Horizon `H` (most steps per episode).
    pub horizon: usize,
    /// Raw Gaussian sample → environment action (ignored for softmax policies).
    pub action_map: ActionMap,
    /// Root seed.
    pub seed: u64,
    /// Name of this batch's streams under `seed`.
    pub path: &'a [u64],
}

/// The stream episode `episode` of batch `path` uses for its actions (`role = 0`) or its
/// environment (`role = 1`).
pub fn episode_rng(seed: u64, path: &[u64], episode: usize, role: u64) -> Rng {
    let mut p = Vec::with_capacity(path.len() + 2);
    p.extend_from_slice(path);
    p.push(episode as u64);
    p.push(role);
    Rng::derive(seed, &p)
}

/// Samples `spec.episodes` episodes of `task` with the policy `(net, params)`.
pub fn sample<F: TaskFamily>(
    family: &F,
    task: &F::Task,
    net: &Net,
    params: &[f32],
    spec: &SampleSpec<'_>,
) -> Result<Rollouts<f32>, SampleError> {
    let od = net.obs_dim();
    let k = net.act_dim();
    let gaussian = net.shape().distribution == Distribution::Gaussian;
    let env_width = family.action_width();
    if family.obs_dim() != od || (gaussian && env_width != k) || (!gaussian && env_width != 1) {
        return Err(SampleError::Shape);
    }
    let n = spec.episodes;
    let mut envs: Vec<F::Env> = (0..n)
        .map(|e| family.make_env(task, episode_rng(spec.seed, spec.path, e, 1)))
        .collect();
    let mut rngs: Vec<Rng> = (0..n)
        .map(|e| episode_rng(spec.seed, spec.path, e, 0))
        .collect();
    let mut obs = vec![0.0f32; n * od];
    for (env, o) in envs.iter_mut().zip(obs.chunks_exact_mut(od)) {
        env.reset(o)
            .map_err(|e| SampleError::Env(format!("{e:?}")))?;
    }
    // Rows are episode-major with room for H steps each (row e·H + t), so every step's
    // forward pass writes straight into the final batch; unused rows of episodes that
    // ended early are dropped at the end.
    let h = spec.horizon;
    let mut batch = Batch::zeroed(net, n * h);
    let mut rewards = vec![0.0f32; n * h];
    let mut lengths = vec![0usize; n];
    let mut alive = vec![true; n];
    if h > 0 {
        for (e, o) in obs.chunks_exact(od).enumerate() {
            batch.obs_row_mut(e * h).copy_from_slice(o);
        }
    }
    let plan = net.plan(params);
    let mut head_row = vec![0.0f32; k];
    let mut env_action = vec![0.0f32; env_width];
    for t in 0..h {
        if !alive.iter().any(|&a| a) {
            break;
        }
        // Finished episodes' rows are computed too (on their last observation) and dropped.
        net.forward_rows(params, &plan, &mut batch, t, h, n);
        for e in 0..n {
            if !alive[e] {
                continue;
            }
            let r = e * h + t;
            head_row.copy_from_slice(batch.head_row(r));
            let action = batch.action_row_mut(r);
            net.sample_action(params, &head_row, &mut rngs[e], action);
            if action.iter().any(|a| !a.is_finite()) {
                return Err(SampleError::NonFiniteAction);
            }
            if gaussian {
                for (ea, &u) in env_action.iter_mut().zip(action.iter()) {
                    *ea = spec.action_map.apply(u);
                }
            } else {
                env_action.copy_from_slice(action);
            }
            let o = &mut obs[e * od..(e + 1) * od];
            let tr = envs[e].step(&env_action, o).map_err(|err| {
                if family.is_unstable(&err) {
                    SampleError::Unstable(format!("{err:?}"))
                } else {
                    SampleError::Env(format!("{err:?}"))
                }
            })?;
            if !tr.reward.is_finite() {
                return Err(SampleError::NonFiniteReward);
            }
            rewards[r] = tr.reward;
            lengths[e] += 1;
            if tr.done {
                alive[e] = false;
            } else if t + 1 < h {
                batch.obs_row_mut(r + 1).copy_from_slice(o);
            }
        }
    }
    let keep = |r: usize| r % h.max(1) < lengths[r / h.max(1)];
    batch.finish_rows(keep);
    let rewards = rewards
        .into_iter()
        .enumerate()
        .filter(|&(r, _)| keep(r))
        .map(|(_, x)| x)
        .collect();
    Ok(Rollouts::new(batch, rewards, &lengths))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs::tabular::TabularFamily;
    use crate::kernels::Stage;
    use sgmrl::policy::PolicyShape;

    /// The sampler's forward pass uses other products than `Net::forward`: equal up to
    /// rounding.
    fn assert_close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    fn setup() -> (TabularFamily, Net, Vec<f32>) {
        let net = Net::new(PolicyShape {
            distribution: Distribution::Softmax,
            obs_dim: 2,
            hidden: [0, 0],
            act_dim: 2,
        })
        .unwrap();
        let params = vec![0.3, -0.2, 0.1, 0.4, 0.0, -0.1];
        (TabularFamily::two_tasks(), net, params)
    }

    #[test]
    fn same_streams_same_batch_and_forward_cache_is_valid() {
        let (fam, net, params) = setup();
        let task = fam.tasks[1].clone();
        let spec = SampleSpec {
            episodes: 5,
            horizon: 4,
            action_map: ActionMap::IDENTITY,
            seed: 11,
            path: &[3, 1, 0],
        };
        let a = sample(&fam, &task, &net, &params, &spec).unwrap();
        let b = sample(&fam, &task, &net, &params, &spec).unwrap();
        assert_eq!(a.batch().actions(), b.batch().actions());
        assert_eq!(a.rewards(), b.rewards());
        assert_eq!(a.episodes(), 5);
        assert_eq!(a.steps(), 20);
        // Episode-major rows: each episode's rewards follow its own states and actions.
        for e in 0..5 {
            let (obs, act, rew) = a.episode(e);
            for h in 0..4 {
                let s = usize::from(obs[2 * h + 1] == 1.0);
                let r = task.reward(s, act[h] as usize) as f32;
                assert_eq!(rew[h], r);
            }
        }
        // The cached head outputs are those of a fresh forward pass.
        assert_eq!(a.batch().stage(), Stage::Forward);
        let mut fresh = a.batch().clone();
        fresh.invalidate();
        net.forward(&params, &mut fresh);
        assert_close(fresh.head(), a.batch().head());
        let other = SampleSpec {
            path: &[3, 1, 1],
            ..spec
        };
        let c = sample(&fam, &task, &net, &params, &other).unwrap();
        assert_ne!(a.batch().actions(), c.batch().actions());
    }

    #[test]
    fn episodes_that_end_early_are_cut_and_the_cache_stays_valid() {
        use crate::envs::Nav2dDiscreteFamily;
        let net = Net::new(PolicyShape {
            distribution: Distribution::Softmax,
            obs_dim: 2,
            hidden: [6, 0],
            act_dim: 9,
        })
        .unwrap();
        let params = net.glorot_init(&mut Rng::new(3));
        let spec = SampleSpec {
            episodes: 40,
            horizon: 12,
            action_map: ActionMap::IDENTITY,
            seed: 2,
            path: &[9],
        };
        // One of the 9 moves from the origin lands on the goal.
        let goal = [0.1, 0.0];
        let ro = sample(&Nav2dDiscreteFamily, &goal, &net, &params, &spec).unwrap();
        let lengths: Vec<usize> = (0..40).map(|e| ro.rows_of(e).len()).collect();
        assert!(
            lengths.iter().any(|&l| l < 12),
            "some episode reaches the goal"
        );
        assert!(lengths.contains(&12));
        assert_eq!(ro.steps(), lengths.iter().sum::<usize>());
        for e in 0..40 {
            let (_, _, rew) = ro.episode(e);
            if rew.len() < 12 {
                assert_eq!(*rew.last().unwrap(), 0.0, "ends on the goal");
            }
        }
        let mut fresh = ro.batch().clone();
        fresh.invalidate();
        net.forward(&params, &mut fresh);
        assert_close(fresh.head(), ro.batch().head());
    }

    #[test]
    fn action_frequencies_follow_the_policy() {
        let (fam, net, params) = setup();
        let task = fam.tasks[0].clone();
        let spec = SampleSpec {
            episodes: 4000,
            horizon: 1,
            action_map: ActionMap::IDENTITY,
            seed: 5,
            path: &[],
        };
        let ro = sample(&fam, &task, &net, &params, &spec).unwrap();
        // π(a=1 | s=0) = softmax(W[:,0] + b)[1] with W = [[0.3,-0.2],[0.1,0.4]], b = [0,-0.1].
        let (l0, l1): (f64, f64) = (0.3, 0.1 - 0.1);
        let p1 = l1.exp() / (l0.exp() + l1.exp());
        let (mut n0, mut n1) = (0, 0);
        for e in 0..ro.episodes() {
            let (obs, act, _) = ro.episode(e);
            if obs[0] == 1.0 {
                n0 += 1;
                n1 += usize::from(act[0] == 1.0);
            }
        }
        let f = n1 as f64 / n0 as f64;
        assert!((f - p1).abs() < 0.03, "{f} vs {p1}");
    }
}
