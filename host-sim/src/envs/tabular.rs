//! Small tabular MDPs with stochastic transitions, for exact-enumeration tests.
//!
//! Observations are one-hot states (so a linear softmax policy is a tabular policy), the
//! action on the wire is the action index, the reward `r(s, a)` is deterministic and every
//! episode lasts exactly the horizon (no terminal states). Tasks of a [`TabularFamily`]
//! differ in rewards and transitions and are drawn uniformly.

use std::sync::Arc;

use sgmrl::env::{Env, Transition};
use sgmrl::rng::Rng;

use super::TaskFamily;

/// One MDP: `S` states, `A` actions.
#[derive(Clone, Debug, PartialEq)]
pub struct TabularMdp {
    /// Number of states `S`.
    pub states: usize,
    /// Number of actions `A`.
    pub actions: usize,
    /// Start distribution `μ(s)`, `S` values summing to 1.
    pub start: Vec<f64>,
    /// `P(s' | s, a)` at `[(s·A + a)·S + s']`.
    pub transition: Vec<f64>,
    /// `r(s, a)` at `[s·A + a]`.
    pub reward: Vec<f64>,
}

impl TabularMdp {
    /// The MDP after checking sizes and that every distribution sums to 1.
    pub fn new(
        states: usize,
        actions: usize,
        start: Vec<f64>,
        transition: Vec<f64>,
        reward: Vec<f64>,
    ) -> Self {
        assert_eq!(start.len(), states);
        assert_eq!(transition.len(), states * actions * states);
        assert_eq!(reward.len(), states * actions);
        let sums_to_one =
            |p: &[f64]| p.iter().all(|&x| x >= 0.0) && (p.iter().sum::<f64>() - 1.0).abs() < 1e-12;
        assert!(sums_to_one(&start), "start distribution");
        assert!(
            transition.chunks(states).all(sums_to_one),
            "transition rows"
        );
        Self {
            states,
            actions,
            start,
            transition,
            reward,
        }
    }

    /// `P(· | s, a)`.
    pub fn next_state_probs(&self, s: usize, a: usize) -> &[f64] {
        let row = s * self.actions + a;
        &self.transition[row * self.states..(row + 1) * self.states]
    }

    /// `r(s, a)`.
    pub fn reward(&self, s: usize, a: usize) -> f64 {
        self.reward[s * self.actions + a]
    }

    /// Every state-action sequence of `horizon` steps with its probability under the MDP
    /// alone (`μ(s₀)·Π P(s_{h+1}|s_h, a_h)`, the policy's factors left out), in a fixed
    /// order. Sequences of probability 0 are skipped.
    pub fn paths(&self, horizon: usize) -> Vec<Path> {
        let mut out = Vec::new();
        for s0 in 0..self.states {
            if self.start[s0] > 0.0 {
                self.extend(
                    Path {
                        states: vec![s0],
                        actions: Vec::new(),
                        env_prob: self.start[s0],
                    },
                    horizon,
                    &mut out,
                );
            }
        }
        out
    }

    fn extend(&self, path: Path, horizon: usize, out: &mut Vec<Path>) {
        let h = path.actions.len();
        let s = path.states[h];
        for a in 0..self.actions {
            if h + 1 == horizon {
                let mut p = path.clone();
                p.actions.push(a);
                out.push(p);
                continue;
            }
            for (s2, &q) in self.next_state_probs(s, a).iter().enumerate() {
                if q > 0.0 {
                    let mut p = path.clone();
                    p.actions.push(a);
                    p.states.push(s2);
                    p.env_prob *= q;
                    self.extend(p, horizon, out);
                }
            }
        }
    }
}

/// A state-action sequence `s₀, a₀, …, s_{H−1}, a_{H−1}` and its probability under the
/// MDP's start and transition kernels.
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    /// Visited states, one per step.
    pub states: Vec<usize>,
    /// Actions taken, one per step.
    pub actions: Vec<usize>,
    /// `μ(s₀)·Π_h P(s_{h+1}|s_h, a_h)`.
    pub env_prob: f64,
}

impl Path {
    /// Rewards `r(s_h, a_h)` in `mdp`.
    pub fn rewards(&self, mdp: &TabularMdp) -> Vec<f64> {
        self.states
            .iter()
            .zip(&self.actions)
            .map(|(&s, &a)| mdp.reward(s, a))
            .collect()
    }
    /// One-hot observations, `[steps][S]` row-major.
    pub fn one_hot_obs(&self, states: usize) -> Vec<f64> {
        let mut obs = vec![0.0; self.states.len() * states];
        for (h, &s) in self.states.iter().enumerate() {
            obs[h * states + s] = 1.0;
        }
        obs
    }
}

/// One episode of a tabular MDP.
#[derive(Clone, Debug)]
pub struct TabularEnv {
    mdp: Arc<TabularMdp>,
    state: usize,
    rng: Rng,
}

/// An action the MDP does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAction;

impl TabularEnv {
    fn write_obs(&self, obs: &mut [f32]) {
        obs.fill(0.0);
        obs[self.state] = 1.0;
    }
    fn draw(&mut self, probs: &[f64]) -> usize {
        self.rng
            .categorical(probs.iter().map(|&p| p as f32))
            .unwrap_or(0)
    }
}

impl Env for TabularEnv {
    type Error = BadAction;
    fn obs_dim(&self) -> usize {
        self.mdp.states
    }
    fn action_width(&self) -> usize {
        1
    }
    fn reset(&mut self, obs: &mut [f32]) -> Result<(), BadAction> {
        let mdp = Arc::clone(&self.mdp);
        self.state = self.draw(&mdp.start);
        self.write_obs(obs);
        Ok(())
    }
    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> Result<Transition, BadAction> {
        let a = action.first().copied().ok_or(BadAction)?;
        if !(a >= 0.0 && (a as usize) < self.mdp.actions && a.fract() == 0.0) {
            return Err(BadAction);
        }
        let a = a as usize;
        let mdp = Arc::clone(&self.mdp);
        let reward = mdp.reward(self.state, a) as f32;
        self.state = self.draw(mdp.next_state_probs(self.state, a));
        self.write_obs(obs);
        Ok(Transition {
            reward,
            done: false,
        })
    }
}

/// Tasks drawn uniformly from a list of MDPs over the same state and action sets.
#[derive(Clone, Debug)]
pub struct TabularFamily {
    /// The tasks.
    pub tasks: Vec<Arc<TabularMdp>>,
}

impl TabularFamily {
    /// Two 2-state, 2-action tasks that differ in rewards and transitions (the family of
    /// the exact-enumeration test). Rewards are mostly positive so returns are far from 0,
    /// as on nav2d, where the control variate matters.
    pub fn two_tasks() -> Self {
        let a = TabularMdp::new(
            2,
            2,
            vec![0.7, 0.3],
            vec![
                0.9, 0.1, // s0 a0
                0.2, 0.8, // s0 a1
                0.6, 0.4, // s1 a0
                0.1, 0.9, // s1 a1
            ],
            vec![1.0, -0.5, 0.25, 2.0],
        );
        let b = TabularMdp::new(
            2,
            2,
            vec![0.7, 0.3],
            vec![
                0.3, 0.7, // s0 a0
                0.8, 0.2, // s0 a1
                0.5, 0.5, // s1 a0
                0.75, 0.25, // s1 a1
            ],
            vec![0.5, 2.5, 1.5, 0.25],
        );
        Self {
            tasks: vec![Arc::new(a), Arc::new(b)],
        }
    }
}

impl TaskFamily for TabularFamily {
    type Task = Arc<TabularMdp>;
    type Env = TabularEnv;
    fn obs_dim(&self) -> usize {
        self.tasks[0].states
    }
    fn action_width(&self) -> usize {
        1
    }
    fn sample_task(&self, rng: &mut Rng) -> Self::Task {
        let n = self.tasks.len();
        let i = rng.categorical((0..n).map(|_| 1.0 / n as f32)).unwrap_or(0);
        Arc::clone(&self.tasks[i])
    }
    fn make_env(&self, task: &Self::Task, rng: Rng) -> TabularEnv {
        TabularEnv {
            mdp: Arc::clone(task),
            state: 0,
            rng,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_probabilities_sum_to_one() {
        for mdp in TabularFamily::two_tasks().tasks {
            for h in 1..=3 {
                let paths = mdp.paths(h);
                // S = A = 2, all transitions possible: (S·A)^H paths.
                assert_eq!(paths.len(), 4usize.pow(h as u32));
                // With a uniform policy every path's probability is env_prob / A^H.
                let total: f64 =
                    paths.iter().map(|p| p.env_prob).sum::<f64>() / 2f64.powi(h as i32);
                assert!((total - 1.0).abs() < 1e-12, "{total}");
            }
        }
    }

    #[test]
    fn env_follows_the_kernel() {
        let fam = TabularFamily::two_tasks();
        let task = &fam.tasks[0];
        let mut counts = [0u32; 2];
        let n = 20_000;
        for i in 0..n {
            let mut env = fam.make_env(task, Rng::new(i));
            let mut obs = [0.0f32; 2];
            env.reset(&mut obs).unwrap();
            if obs[0] == 1.0 {
                let tr = env.step(&[1.0], &mut obs).unwrap();
                assert_eq!(tr.reward, -0.5);
                counts[usize::from(obs[1] == 1.0)] += 1;
            }
        }
        let p1 = f64::from(counts[1]) / f64::from(counts[0] + counts[1]);
        assert!((p1 - 0.8).abs() < 0.02, "{p1}");
        let mut env = fam.make_env(task, Rng::new(0));
        let mut obs = [0.0f32; 2];
        env.reset(&mut obs).unwrap();
        assert_eq!(env.step(&[2.0], &mut obs), Err(BadAction));
    }
}
