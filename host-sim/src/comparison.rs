//! What meta-training buys, measured: the lines `sgmrl demo` compares on the same held-out
//! goals — the meta-policy before and after adaptation, a random initialisation after the
//! same adaptation, a multi-task policy (trained without meta-learning) before and after it,
//! standing still, and a greedy controller that knows the goal (the upper reference).
//!
//! The two reference controllers are deterministic and play one episode of the recipe's
//! horizon per goal on the task's own simulator; they exist for continuous navigation only.

use serde::Serialize;
use sgmrl::env::Env;
use sgmrl::sim::Nav2d;

use crate::config::EnvName;
use crate::eval::{GoalSet, Stat};

/// One bar: a policy's mean return over the goals.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Line {
    /// Short name (the bar's label).
    pub label: String,
    /// Mean return ± standard error over goals.
    pub stat: Stat,
}

/// How far the meta-policy after adaptation is above another line, in combined standard
/// errors `(m − x) / √(se_m² + se_x²)`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Margin {
    /// The other line.
    pub against: String,
    /// Difference of means.
    pub difference: f64,
    /// The difference in combined standard errors.
    pub combined_stderrs: f64,
}

/// Every line and the meta-policy's margins over the others.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// Goals of the held-out set every line was measured on.
    pub goals: u32,
    /// Seed naming that set.
    pub seed: u64,
    /// The lines, in the order of the chart.
    pub lines: Vec<Line>,
    /// The meta-policy after adaptation against every line but itself and the
    /// goal-knowing reference.
    pub margins: Vec<Margin>,
}

/// Label of the line the margins are taken from.
pub const META_AFTER: &str = "meta-policy, adapted";
/// Label of the goal-knowing reference (no margin is taken against it).
pub const GREEDY: &str = "greedy, knows the goal";

impl Comparison {
    /// The comparison of `lines`, with margins from the [`META_AFTER`] line.
    pub fn new(goals: u32, seed: u64, lines: Vec<Line>) -> Self {
        let meta = lines.iter().find(|l| l.label == META_AFTER).map(|l| l.stat);
        let margins = match meta {
            Some(m) => lines
                .iter()
                .filter(|l| l.label != META_AFTER && l.label != GREEDY)
                .map(|l| {
                    let difference = m.mean - l.stat.mean;
                    let se = (m.stderr.powi(2) + l.stat.stderr.powi(2)).sqrt();
                    Margin {
                        against: l.label.clone(),
                        difference,
                        combined_stderrs: if se > 0.0 {
                            difference / se
                        } else {
                            f64::INFINITY
                        },
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        Self {
            goals,
            seed,
            lines,
            margins,
        }
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "on the same {} held-out goals, mean return ± standard error:",
            self.goals
        )?;
        for l in &self.lines {
            writeln!(
                f,
                "  {:<34} {:>8.3} ± {:.3}",
                l.label, l.stat.mean, l.stat.stderr
            )?;
        }
        for (i, m) in self.margins.iter().enumerate() {
            let sep = if i + 1 == self.margins.len() {
                ""
            } else {
                "\n"
            };
            write!(
                f,
                "  {META_AFTER} − {}: {:+.3} ({:.1} combined s.e.){sep}",
                m.against, m.difference, m.combined_stderrs
            )?;
        }
        Ok(())
    }
}

/// A reference controller: the displacement it commands at `pos` for `goal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference {
    /// Never moves.
    StandStill,
    /// Steps straight at the goal, as far as the simulator allows per coordinate
    /// ([`Nav2d::MAX_STEP`]), stopping on it.
    Greedy,
}

impl Reference {
    fn action(self, pos: [f32; 2], goal: [f32; 2]) -> [f32; 2] {
        match self {
            Self::StandStill => [0.0; 2],
            Self::Greedy => core::array::from_fn(|k| {
                (goal[k] - pos[k]).clamp(-Nav2d::MAX_STEP, Nav2d::MAX_STEP)
            }),
        }
    }

    /// Mean return over goals `0..goals` of `set`, one episode of `horizon` steps each;
    /// `None` for a task family without continuous navigation.
    pub fn evaluate(self, env: EnvName, set: &GoalSet, goals: u32, horizon: u16) -> Option<Stat> {
        if env != EnvName::Nav2d {
            return None;
        }
        let returns: Vec<f64> = (0..u64::from(goals))
            .map(|i| {
                let goal = set.goal(i);
                let mut sim = Nav2d::new(goal);
                let mut obs = [0.0f32; 2];
                let Ok(()) = sim.reset(&mut obs);
                let mut total = 0.0f64;
                for _ in 0..horizon {
                    let Ok(t) = sim.step(&self.action(sim.position(), goal), &mut obs);
                    total += f64::from(t.reward);
                    if t.done {
                        break;
                    }
                }
                total
            })
            .collect();
        Some(Stat::of(&returns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_on_known_goals() {
        let set = GoalSet::held_out(5);
        // Standing still: every step costs the goal's distance from the origin.
        let still = Reference::StandStill
            .evaluate(EnvName::Nav2d, &set, 1, 20)
            .unwrap();
        let g = set.goal(0);
        let d = f64::from(g[0].hypot(g[1]));
        assert!(
            (still.mean + 20.0 * d).abs() < 1e-4,
            "{} vs {}",
            still.mean,
            -20.0 * d
        );
        // Greedy reaches every goal within 5 steps (|g| ≤ 0.5 per coordinate) and beats
        // standing still on each; about −0.5 on average at H = 20.
        let greedy = Reference::Greedy
            .evaluate(EnvName::Nav2d, &set, 400, 20)
            .unwrap();
        let still = Reference::StandStill
            .evaluate(EnvName::Nav2d, &set, 400, 20)
            .unwrap();
        assert!(greedy.mean > -0.8 && greedy.mean < -0.3, "{}", greedy.mean);
        assert!(still.mean < -6.0, "{}", still.mean);
        assert!(
            Reference::Greedy
                .evaluate(EnvName::Nav2dDiscrete, &set, 4, 20)
                .is_none()
        );
    }

    #[test]
    fn margins_leave_out_the_meta_line_and_the_reference() {
        let s = |mean, stderr| Stat {
            mean,
            stderr,
            n: 100,
        };
        let c = Comparison::new(
            100,
            1,
            vec![
                Line {
                    label: META_AFTER.into(),
                    stat: s(-3.0, 0.3),
                },
                Line {
                    label: "standing still".into(),
                    stat: s(-7.0, 0.4),
                },
                Line {
                    label: GREEDY.into(),
                    stat: s(-0.5, 0.01),
                },
            ],
        );
        assert_eq!(c.margins.len(), 1);
        assert_eq!(c.margins[0].against, "standing still");
        assert!((c.margins[0].combined_stderrs - 8.0).abs() < 1e-12);
    }
}
