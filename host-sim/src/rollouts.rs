//! A batch of episodes as data: the kernels' [`Batch`] rows in episode-major order, with
//! the rewards and where each episode starts.
//!
//! Row `off_e + h` is step `h` of episode `e` (`off_e = Σ_{j<e} len_j`), so episode `e` is a
//! contiguous block of observations, actions and rewards — exactly the episode view the
//! core's estimator takes.

use crate::gemm::Scalar;
use crate::kernels::{Batch, Net};
use sgmrl::estimator::discounted_return;

/// `N` episodes (each at most `H` steps) as one batch of rows.
#[derive(Clone, Debug)]
pub struct Rollouts<T> {
    batch: Batch<T>,
    rewards: Vec<T>,
    /// `N + 1` row offsets; episode `e` is rows `starts[e]..starts[e + 1]`.
    starts: Vec<usize>,
}

impl<T: Scalar> Rollouts<T> {
    /// Episodes from a batch in episode-major order, its per-row rewards and the episode
    /// lengths. Panics if the lengths do not add up to the batch's rows.
    pub fn new(batch: Batch<T>, rewards: Vec<T>, lengths: &[usize]) -> Self {
        assert_eq!(rewards.len(), batch.rows(), "one reward per row");
        let mut starts = Vec::with_capacity(lengths.len() + 1);
        starts.push(0);
        for &l in lengths {
            starts.push(starts[starts.len() - 1] + l);
        }
        assert_eq!(
            starts[lengths.len()],
            batch.rows(),
            "episode lengths vs rows"
        );
        Self {
            batch,
            rewards,
            starts,
        }
    }

    /// Builds the batch from per-episode `(observations, actions, rewards)` (row-major).
    pub fn from_episodes(net: &Net, episodes: &[(Vec<T>, Vec<T>, Vec<T>)]) -> Self {
        let obs = episodes.iter().flat_map(|e| e.0.iter().copied()).collect();
        let actions = episodes.iter().flat_map(|e| e.1.iter().copied()).collect();
        let rewards = episodes.iter().flat_map(|e| e.2.iter().copied()).collect();
        let lengths: Vec<usize> = episodes.iter().map(|e| e.2.len()).collect();
        Self::new(Batch::new(net, obs, actions), rewards, &lengths)
    }

    /// Number of episodes `N`.
    pub fn episodes(&self) -> usize {
        self.starts.len() - 1
    }
    /// Number of steps over all episodes (rows).
    pub fn steps(&self) -> usize {
        self.batch.rows()
    }
    /// The rows.
    pub fn batch(&self) -> &Batch<T> {
        &self.batch
    }
    /// The rows, for the kernels to fill their caches.
    pub fn batch_mut(&mut self) -> &mut Batch<T> {
        &mut self.batch
    }
    /// Per-row rewards.
    pub fn rewards(&self) -> &[T] {
        &self.rewards
    }
    /// Row range of episode `e`.
    pub fn rows_of(&self, e: usize) -> core::ops::Range<usize> {
        self.starts[e]..self.starts[e + 1]
    }
    /// Observation length.
    pub fn obs_dim(&self) -> usize {
        self.batch.obs_dim()
    }
    /// Scalars per action on the wire.
    pub fn action_width(&self) -> usize {
        self.batch.action_width()
    }
    /// Episode `e` as `(observations, actions, rewards)` slices.
    pub fn episode(&self, e: usize) -> (&[T], &[T], &[T]) {
        let r = self.rows_of(e);
        let (od, aw) = (self.obs_dim(), self.action_width());
        (
            &self.batch.obs()[r.start * od..r.end * od],
            &self.batch.actions()[r.start * aw..r.end * aw],
            &self.rewards[r],
        )
    }

    /// Mean undiscounted return `mean_τ Σ_t r_t` (what the paper reports).
    pub fn mean_return(&self) -> T {
        let total = self.rewards.iter().fold(T::ZERO, |s, &r| s + r);
        total / T::from_f64(self.episodes().max(1) as f64)
    }

    /// Mean discounted return `Ĵ = mean_τ Σ_t γ^t r_t` (the estimator's raw `Jt`).
    pub fn mean_discounted_return(&self, gamma: T) -> T {
        let total = (0..self.episodes()).fold(T::ZERO, |s, e| {
            s + discounted_return(gamma, &self.rewards[self.rows_of(e)])
        });
        total / T::from_f64(self.episodes().max(1) as f64)
    }
}
