//! The adaptation guard: a robot keeps its adapted policy only if, on its own task, it does
//! at least as well as the meta-policy it started from.
//!
//! The evidence is what the robot already has plus a few more episodes, so the guard costs
//! one short evaluation and no extra meta-policy episodes:
//! - the meta-policy: the returns of the first adaptation step's batch (those episodes were
//!   played by the meta-policy, `recipe.episodes` of them);
//! - the adapted policy: [`evaluation_episodes`] episodes played after the last step, with
//!   the same sampling, so both means estimate the same quantity for their policy.
//!
//! The verdict keeps the better mean ([`decide`]); ties keep the meta-policy, which was
//! known to work. Each mean carries its standard error so the log shows how close the call
//! was: with `N` episodes each, a robot can end up worse than it started only by a
//! difference within the noise of two `N`-episode means. The bundle format is unchanged:
//! the count comes from the recipe.

use crate::recipe::Recipe;

/// Evaluation episodes the adapted policy plays before the verdict: the recipe's episodes
/// per step (`N`), so that both sides of the comparison rest on `N` episodes.
pub const fn evaluation_episodes(recipe: &Recipe) -> u16 {
    recipe.episodes
}

/// Running mean and variance of episode returns (Welford's update: one pass, no buffer).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Returns {
    count: u16,
    mean: f32,
    /// Sum of squared deviations from the mean.
    m2: f32,
}

impl Returns {
    /// No episodes yet.
    pub const fn new() -> Self {
        Self {
            count: 0,
            mean: 0.0,
            m2: 0.0,
        }
    }

    /// Adds one episode's undiscounted return (a non-finite one is ignored: the adapter
    /// refuses such rewards before they get here).
    pub fn push(&mut self, episode_return: f32) {
        if !episode_return.is_finite() {
            return;
        }
        self.count = self.count.saturating_add(1);
        let delta = episode_return - self.mean;
        self.mean += delta / f32::from(self.count);
        self.m2 += delta * (episode_return - self.mean);
    }

    /// Episodes seen.
    pub const fn count(&self) -> u16 {
        self.count
    }

    /// Their mean return (0 with none).
    pub const fn mean(&self) -> f32 {
        self.mean
    }

    /// Standard error of the mean (0 with fewer than two episodes).
    pub fn std_error(&self) -> f32 {
        if self.count < 2 {
            return 0.0;
        }
        let n = f32::from(self.count);
        libm::sqrtf(self.m2 / (n - 1.0) / n)
    }
}

/// Which policy the guard kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Kept {
    /// The adapted policy did strictly better: it is kept and persisted.
    Adapted,
    /// The meta-policy did as well or better (or the adapted one has no evidence).
    Meta,
}

/// The guard's verdict with its evidence.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Verdict {
    /// The policy kept.
    pub kept: Kept,
    /// The meta-policy's returns (the first step's batch).
    pub meta: Returns,
    /// The adapted policy's evaluation returns.
    pub adapted: Returns,
}

/// Keeps the adapted policy when its mean return is strictly higher than the
/// meta-policy's; otherwise the meta-policy. Either side without episodes keeps the meta-policy.
pub fn decide(meta: Returns, adapted: Returns) -> Verdict {
    let kept = if meta.count() > 0 && adapted.count() > 0 && adapted.mean() > meta.mean() {
        Kept::Adapted
    } else {
        Kept::Meta
    };
    Verdict {
        kept,
        meta,
        adapted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn returns(xs: &[f32]) -> Returns {
        let mut r = Returns::new();
        xs.iter().for_each(|&x| r.push(x));
        r
    }

    #[test]
    fn mean_and_standard_error_match_the_two_pass_formulas() {
        let xs = [-3.0f32, -1.5, -2.25, 0.5, -4.0, -2.0];
        let r = returns(&xs);
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = xs
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        assert_eq!(r.count(), 6);
        assert!((f64::from(r.mean()) - mean).abs() < 1e-6);
        assert!((f64::from(r.std_error()) - (var / n).sqrt()).abs() < 1e-6);
        assert_eq!(returns(&[1.0]).std_error(), 0.0);
        assert_eq!(returns(&[1.0, f32::NAN]).count(), 1);
    }

    #[test]
    fn the_better_mean_is_kept_and_ties_keep_the_meta_policy() {
        let meta = returns(&[-5.0, -6.0, -7.0]);
        assert_eq!(decide(meta, returns(&[-4.0, -5.0])).kept, Kept::Adapted);
        assert_eq!(decide(meta, returns(&[-8.0, -7.0])).kept, Kept::Meta);
        assert_eq!(decide(meta, returns(&[-6.0])).kept, Kept::Meta, "a tie");
        assert_eq!(decide(meta, Returns::new()).kept, Kept::Meta);
        assert_eq!(decide(Returns::new(), returns(&[1.0])).kept, Kept::Meta);
        let v = decide(meta, returns(&[0.0]));
        assert_eq!((v.meta, v.adapted.count()), (meta, 1));
    }
}
