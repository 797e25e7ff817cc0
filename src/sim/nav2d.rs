//! 2D point navigation, as in the paper's experiments (Table 1).
//!
//! A point starts at the origin of the square `[−0.5, 0.5]²` and moves by the commanded
//! displacement each step; the task is a goal `g` in the square. The reward is the negative
//! Euclidean distance to the goal after the move (`−‖g − s'‖₂`, not squared), and the
//! episode ends when both coordinates are within [`Nav2d::GOAL_TOLERANCE`] of the goal.
//!
//! The action the simulator receives is already mapped by the recipe's
//! [`ActionMap`]: the paper's `a = clip(0.01·u, −0.1, 0.1)` of the Gaussian sample `u` is
//! [`Nav2d::PAPER_ACTION_MAP`], applied by the adapter, and log-probabilities are of `u`.
//! The horizon (100 in the paper) is the recipe's too.

use crate::env::{Env, Transition};
use crate::recipe::ActionMap;
use crate::rng::Rng;
use core::convert::Infallible;

/// One 2D navigation task: a goal and the point's current position.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Nav2d {
    goal: [f32; 2],
    pos: [f32; 2],
}

impl Nav2d {
    /// Observation length: the position `(x, y)`.
    pub const OBS_DIM: usize = 2;
    /// Action length: the displacement `(dx, dy)`.
    pub const ACTION_DIM: usize = 2;
    /// The square is `[−HALF_SIZE, HALF_SIZE]²`.
    pub const HALF_SIZE: f32 = 0.5;
    /// Largest displacement per step and coordinate, enforced by the simulator itself.
    pub const MAX_STEP: f32 = 0.1;
    /// The episode ends when `|x − g_x|` and `|y − g_y|` are both below this.
    pub const GOAL_TOLERANCE: f32 = 0.01;
    /// The paper's mapping of the Gaussian sample `u` to the action: `clip(0.01·u, ±0.1)`.
    pub const PAPER_ACTION_MAP: ActionMap = ActionMap {
        scale: 0.01,
        clip: Some(0.1),
    };
    /// The paper's horizon, for building recipes (the simulator does not count steps).
    pub const PAPER_HORIZON: u16 = 100;

    /// The task with goal `goal` (`[g_x, g_y]`), positioned at the origin. A goal outside
    /// the square is kept as given (it is then unreachable).
    pub const fn new(goal: [f32; 2]) -> Self {
        Self {
            goal,
            pos: [0.0; 2],
        }
    }

    /// A goal drawn uniformly from the square (x first, then y).
    pub fn sample_goal(rng: &mut Rng) -> [f32; 2] {
        let h = Self::HALF_SIZE;
        let x = rng.uniform_in(-h, h);
        let y = rng.uniform_in(-h, h);
        [x, y]
    }

    /// The goal.
    pub const fn goal(&self) -> [f32; 2] {
        self.goal
    }

    /// The current position.
    pub const fn position(&self) -> [f32; 2] {
        self.pos
    }

    /// Moves by `delta` (each component clamped to ±[`Self::MAX_STEP`], NaN treated as 0),
    /// then clamps the position to the square; shared with the discrete variant.
    pub(crate) fn advance(&mut self, delta: [f32; 2]) -> Transition {
        let h = Self::HALF_SIZE;
        for (p, d) in self.pos.iter_mut().zip(delta) {
            // A real robot limits its speed whatever the recipe's clip says (a recipe with
            // `clip: None` must not teleport it), and a NaN command means "do not move".
            let d = if d.is_nan() {
                0.0
            } else {
                d.clamp(-Self::MAX_STEP, Self::MAX_STEP)
            };
            *p = (*p + d).clamp(-h, h);
        }
        let ([x, y], [gx, gy]) = (self.pos, self.goal);
        let (dx, dy) = (x - gx, y - gy);
        let tol = Self::GOAL_TOLERANCE;
        Transition {
            reward: -libm::sqrtf(dx * dx + dy * dy),
            done: dx.abs() < tol && dy.abs() < tol,
        }
    }

    fn write_obs(&self, obs: &mut [f32]) {
        for (o, p) in obs.iter_mut().zip(self.pos) {
            *o = p;
        }
    }
}

/// Observations and actions are 2 scalars; a shorter action slice leaves the missing
/// components at 0 (no motion), extra scalars are ignored, and only the first 2 scalars of
/// `obs` are written.
impl Env for Nav2d {
    type Error = Infallible;

    fn obs_dim(&self) -> usize {
        Self::OBS_DIM
    }

    fn action_width(&self) -> usize {
        Self::ACTION_DIM
    }

    fn reset(&mut self, obs: &mut [f32]) -> Result<(), Infallible> {
        self.pos = [0.0; 2];
        self.write_obs(obs);
        Ok(())
    }

    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> Result<Transition, Infallible> {
        let mut delta = [0.0f32; 2];
        for (d, &a) in delta.iter_mut().zip(action) {
            *d = a;
        }
        let t = self.advance(delta);
        self.write_obs(obs);
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    fn step(env: &mut Nav2d, a: [f32; 2]) -> ([f32; 2], Transition) {
        let mut obs = [f32::NAN; 2];
        let Ok(t) = env.step(&a, &mut obs);
        (obs, t)
    }

    #[test]
    fn reset_starts_at_origin() {
        let mut env = Nav2d::new([0.3, -0.2]);
        step(&mut env, [0.1, 0.1]);
        let mut obs = [f32::NAN; 2];
        let Ok(()) = env.reset(&mut obs);
        assert_eq!(obs, [0.0, 0.0]);
        assert_eq!(env.position(), [0.0, 0.0]);
        assert_eq!(env.goal(), [0.3, -0.2]);
    }

    #[test]
    fn steps_move_exactly_and_reward_is_euclidean_distance() {
        let mut env = Nav2d::new([0.2, 0.1]);
        let (obs, t) = step(&mut env, [0.05, -0.03]);
        assert_eq!(obs, [0.05, -0.03]);
        // d = (0.05 − 0.2, −0.03 − 0.1) = (−0.15, −0.13); ‖d‖ = √0.0394 = 0.198494…
        assert!((t.reward - (-0.198_494_33)).abs() < 1e-6, "{}", t.reward);
        assert!(!t.done);
        let (obs, t) = step(&mut env, [0.05, 0.06]);
        assert_eq!(obs, [0.05f32 + 0.05, -0.03f32 + 0.06]);
        // d ≈ (−0.1, −0.07); ‖d‖ = √0.0149 = 0.122066, not the squared 0.0149.
        assert!((t.reward - (-0.122_065_9)).abs() < 1e-6, "{}", t.reward);
    }

    #[test]
    fn paper_action_map_then_physical_clamp() {
        let map = Nav2d::PAPER_ACTION_MAP;
        let mut env = Nav2d::new([0.4, 0.4]);
        // u = (3, −20): a = (0.03, clip(−0.2) = −0.1).
        let (obs, _) = step(&mut env, [map.apply(3.0), map.apply(-20.0)]);
        assert_eq!(obs, [0.03, -0.1]);
        // An unclipped recipe still cannot move the robot more than 0.1 per step.
        let mut env = Nav2d::new([0.4, 0.4]);
        let (obs, _) = step(&mut env, [0.5, -7.0]);
        assert_eq!(obs, [0.1, -0.1]);
    }

    #[test]
    fn walls_clip_the_position() {
        let mut env = Nav2d::new([0.0, 0.4]);
        let mut obs = [0.0; 2];
        for _ in 0..7 {
            (obs, _) = step(&mut env, [0.1, -0.1]);
        }
        assert_eq!(obs, [0.5, -0.5]);
        // Reward is measured from the clipped position: d = (0.5, −0.9).
        let (_, t) = step(&mut env, [0.1, -0.1]);
        let want = -libm::sqrtf(0.5 * 0.5 + 0.9 * 0.9);
        assert!((t.reward - want).abs() < 1e-6);
        let (obs, _) = step(&mut env, [-0.1, 0.0]);
        assert!((obs[0] - 0.4).abs() < 1e-7 && obs[1] == -0.5);
    }

    #[test]
    fn reaching_the_goal_ends_the_episode() {
        let mut env = Nav2d::new([0.1, 0.0]);
        let (_, t) = step(&mut env, [0.1, 0.0]);
        assert!(t.done);
        assert_eq!(t.reward, 0.0);
        // Within 0.01 in both coordinates (0.005 off): done, reward −0.005.
        let mut env = Nav2d::new([0.105, -0.005]);
        let (_, t) = step(&mut env, [0.1, 0.0]);
        assert!(t.done);
        assert!((t.reward + 0.005 * core::f32::consts::SQRT_2).abs() < 1e-6);
        // 0.02 off in y only: not done.
        let mut env = Nav2d::new([0.1, 0.02]);
        let (_, t) = step(&mut env, [0.1, 0.0]);
        assert!(!t.done);
        assert!((t.reward + 0.02).abs() < 1e-6);
    }

    #[test]
    fn malformed_actions_do_not_move_the_point() {
        let mut env = Nav2d::new([0.3, 0.3]);
        let (obs, t) = step(&mut env, [f32::NAN, 0.05]);
        assert_eq!(obs, [0.0, 0.05]);
        assert!(t.reward.is_finite());
        let mut obs = [0.0; 2];
        let Ok(_) = env.step(&[0.02], &mut obs);
        assert_eq!(obs, [0.02, 0.05]);
        let (obs, _) = step(&mut env, [f32::INFINITY, f32::NEG_INFINITY]);
        assert!(
            (obs[0] - 0.12).abs() < 1e-7 && (obs[1] + 0.05).abs() < 1e-7,
            "{obs:?}"
        );
    }

    #[test]
    fn sampled_goals_cover_the_square() {
        let mut rng = Rng::new(5);
        let n = 20_000;
        let (mut sx, mut sy) = (0.0f64, 0.0f64);
        let mut quadrants = [0u32; 4];
        for _ in 0..n {
            let [x, y] = Nav2d::sample_goal(&mut rng);
            assert!((-0.5..0.5).contains(&x) && (-0.5..0.5).contains(&y));
            sx += f64::from(x);
            sy += f64::from(y);
            quadrants[usize::from(x >= 0.0) + 2 * usize::from(y >= 0.0)] += 1;
        }
        // Std of U(−0.5, 0.5) is 0.2887; standard error of the mean 0.002.
        assert!((sx / f64::from(n)).abs() < 0.01 && (sy / f64::from(n)).abs() < 0.01);
        for q in quadrants {
            assert!(
                (q as f64 / f64::from(n) - 0.25).abs() < 0.015,
                "{quadrants:?}"
            );
        }
    }

    /// experiments.md: a policy that does not move scores about −38.3 over 100 steps.
    /// Exactly: E‖g‖ for g ~ U([−0.5, 0.5]²) is (√2 + ln(1 + √2))/6 = 0.382598.
    #[test]
    fn standing_still_scores_minus_38_3() {
        let mut rng = Rng::new(11);
        let n = 10_000;
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for _ in 0..n {
            let mut env = Nav2d::new(Nav2d::sample_goal(&mut rng));
            let mut obs = [0.0; 2];
            let Ok(()) = env.reset(&mut obs);
            let mut ret = 0.0f64;
            for _ in 0..Nav2d::PAPER_HORIZON {
                let (_, t) = step(&mut env, [0.0, 0.0]);
                ret += f64::from(t.reward);
                if t.done {
                    break;
                }
            }
            s1 += ret;
            s2 += ret * ret;
        }
        let nf = f64::from(n);
        let mean = s1 / nf;
        let se = ((s2 / nf - mean * mean) / nf).sqrt();
        let sqrt2 = core::f64::consts::SQRT_2;
        let want = -100.0 * (sqrt2 + libm::log(1.0 + sqrt2)) / 6.0;
        std::eprintln!("standing still: mean return {mean:.3} ± {se:.3} (exact {want:.4})");
        assert!((want + 38.26).abs() < 0.01);
        // Per-episode std ≈ 14.2, so se ≈ 0.14 here.
        assert!(se > 0.1 && se < 0.2, "se {se}");
        assert!(
            (mean - want).abs() < 4.0 * se,
            "mean {mean} want {want} se {se}"
        );
    }
}
