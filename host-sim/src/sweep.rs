//! A sweep of independent training runs (`sgmrl reproduce table1 | table2`): a grid of
//! [`Run`]s, spread over the cluster's ranks with [`distributed::spread`], each trained and
//! evaluated on held-out tasks where it runs; rank 0 gathers their [`Outcome`]s in run
//! order and folds them into one [`Cell`] per table cell (a setting over its seeds). The
//! tables differ only in their grid and their format, so the cells, and the files written
//! from them, are the same on one process and on any number of ranks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::config::{AlgorithmName, EnvName};
use crate::distributed;
use crate::eval::Stat;

/// One training run of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Task family (`None`: the configuration's).
    pub env: Option<EnvName>,
    /// Inner steps ζ (`None`: the configuration's).
    pub inner_steps: Option<u16>,
    /// Algorithm.
    pub algorithm: AlgorithmName,
    /// Training seed.
    pub seed: u64,
    /// Its run directory (resumed when it holds a checkpoint).
    pub dir: PathBuf,
    /// Index of the table cell it counts towards.
    pub cell: usize,
    /// Index of the learning-curve plot it appears on.
    pub plot: usize,
    /// Its curve's label on that plot.
    pub curve: String,
}

impl Run {
    /// The line printed before the run trains (`== halfcheetah-dir, ζ = 2, maml, seed 1:
    /// DIR`).
    pub fn title(&self) -> String {
        let mut t = String::from("== ");
        if let Some(env) = self.env {
            t.push_str(&format!("{env}, "));
        }
        if let Some(z) = self.inner_steps {
            t.push_str(&format!("ζ = {z}, "));
        }
        t.push_str(&format!(
            "{}, seed {}: {}",
            self.algorithm,
            self.seed,
            self.dir.display()
        ));
        t
    }
}

/// What one run reports to its table cell. The numbers travel as their bits
/// (`f64::to_bits`), so rank 0's table is the single-process table to the last bit, NaN
/// included.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Held-out return before adaptation.
    pub before: u64,
    /// Held-out return after the last adaptation step (`None` when every goal failed).
    pub after: Option<u64>,
    /// Best validation score during training (`None`: not validated).
    pub best_validation: Option<u64>,
    /// Held-out tasks left out of the evaluation (diverged or non-finite).
    pub failed_goals: u32,
}

impl Outcome {
    /// An outcome from its numbers.
    pub fn new(before: f64, after: Option<f64>, best_validation: Option<f64>, failed: u32) -> Self {
        Self {
            before: before.to_bits(),
            after: after.map(f64::to_bits),
            best_validation: best_validation.map(f64::to_bits),
            failed_goals: failed,
        }
    }
}

/// One table cell: a setting's runs over seeds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    /// Runs with a held-out return after adaptation.
    pub seeds: usize,
    /// Held-out return after adaptation: mean ± standard error over seeds of each run's
    /// mean.
    pub honest_after: Stat,
    /// The same before adaptation.
    pub honest_before: Stat,
    /// Best validation score during training (the paper's protocol), when validated.
    pub best_validation: Option<Stat>,
    /// Held-out tasks left out, summed over seeds.
    pub failed_goals: u32,
}

/// Runs every run of `runs` over `cluster` (run `j` on rank `j mod R`) with `train_one`,
/// and returns on rank 0 the `cells` table cells (`None` on the other ranks). Fails on
/// rank 0 with the first failed run's error, and with a typed error when a run names a
/// cell outside `0..cells`.
pub fn run(
    cluster: &dyn Cluster,
    runs: &[Run],
    cells: usize,
    mut train_one: impl FnMut(&Run) -> anyhow::Result<Outcome>,
) -> anyhow::Result<Option<Vec<Cell>>> {
    if let Some(r) = runs.iter().find(|r| r.cell >= cells) {
        anyhow::bail!("{}: cell {} of only {cells}", r.dir.display(), r.cell);
    }
    let outcomes = distributed::spread(cluster, runs.len(), |j| {
        let r = runs
            .get(j)
            .ok_or_else(|| anyhow::anyhow!("no run {j} in the sweep"))?;
        train_one(r)
    })?;
    Ok(outcomes.map(|o| cells_of(runs, &o, cells)))
}

/// Folds each run's outcome (in run order) into its cell.
fn cells_of(runs: &[Run], outcomes: &[Outcome], cells: usize) -> Vec<Cell> {
    (0..cells)
        .map(|c| {
            let (mut after, mut before, mut best, mut failed) = (vec![], vec![], vec![], 0);
            for (_, o) in runs.iter().zip(outcomes).filter(|(r, _)| r.cell == c) {
                before.push(f64::from_bits(o.before));
                after.extend(o.after.map(f64::from_bits));
                best.extend(o.best_validation.map(f64::from_bits));
                failed += o.failed_goals;
            }
            Cell {
                seeds: after.len(),
                honest_after: Stat::of(&after),
                honest_before: Stat::of(&before),
                best_validation: (!best.is_empty()).then(|| Stat::of(&best)),
                failed_goals: failed,
            }
        })
        .collect()
}

/// The `LABEL=DIR` curve specifications of plot `plot`'s runs, in run order.
pub fn curves(runs: &[Run], plot: usize) -> Vec<String> {
    runs.iter()
        .filter(|r| r.plot == plot)
        .map(|r| format!("{}={}", r.curve, r.dir.display()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Local;

    fn grid() -> Vec<Run> {
        [AlgorithmName::Sgmrl, AlgorithmName::Maml]
            .iter()
            .enumerate()
            .flat_map(|(cell, &algorithm)| {
                (1..=2).map(move |seed| Run {
                    env: None,
                    inner_steps: Some(2),
                    algorithm,
                    seed,
                    dir: PathBuf::from(format!("out/{algorithm}-seed{seed}")),
                    cell,
                    plot: 0,
                    curve: algorithm.to_string(),
                })
            })
            .collect()
    }

    #[test]
    fn each_cell_folds_its_own_runs_in_run_order() {
        let runs = grid();
        let mut seen = vec![];
        let cells = run(&Local, &runs, 2, |r| {
            seen.push(r.dir.clone());
            let x = r.seed as f64 + 10.0 * r.cell as f64;
            Ok(Outcome::new(
                -x,
                (r.seed == 1 || r.cell == 0).then_some(x),
                None,
                1,
            ))
        })
        .unwrap()
        .unwrap();
        assert_eq!(seen, runs.iter().map(|r| r.dir.clone()).collect::<Vec<_>>());
        assert_eq!(cells[0].seeds, 2);
        assert_eq!(cells[0].honest_after, Stat::of(&[1.0, 2.0]));
        assert_eq!(cells[0].honest_before, Stat::of(&[-1.0, -2.0]));
        assert_eq!(
            cells[1].seeds, 1,
            "a run with no return after counts no seed"
        );
        assert_eq!(cells[1].honest_after, Stat::of(&[11.0]));
        assert_eq!(cells[1].honest_before.n, 2);
        assert_eq!(cells[1].failed_goals, 2);
        assert!(cells[1].best_validation.is_none());
    }

    #[test]
    fn a_failed_run_or_a_bad_cell_is_an_error() {
        let runs = grid();
        let e = run(&Local, &runs, 2, |r| {
            if r.seed == 2 {
                anyhow::bail!("boom")
            }
            Ok(Outcome::new(0.0, None, None, 0))
        });
        assert!(e.unwrap_err().to_string().contains("boom"));
        let e = run(&Local, &runs, 1, |_| Ok(Outcome::new(0.0, None, None, 0)));
        assert!(e.unwrap_err().to_string().contains("cell 1 of only 1"));
    }

    #[test]
    fn titles_and_curves_name_the_runs() {
        let runs = grid();
        assert_eq!(runs[1].title(), "== ζ = 2, sgmrl, seed 2: out/sgmrl-seed2");
        assert_eq!(curves(&runs, 0)[2], "maml=out/maml-seed1", "in run order");
        assert!(curves(&runs, 1).is_empty());
    }
}
