//! The layout of a run directory: one meta-training run and everything derived from it.
//!
//! ```text
//! <run>/config.toml          resolved configuration (what a resume reads back)
//! <run>/checkpoint.sgck      latest checkpoint (crate::checkpoint)
//! <run>/log.csv, log.jsonl   one row per meta-iteration (crate::runlog)
//! <run>/validation.csv       periodic validation on fresh goals, if enabled
//! <run>/bundle.sgml          the core's bundle, what the device flashes
//! <run>/policy.safetensors   the parameters as named tensors, for Python
//! <run>/summary.json         shape, recipe, provenance, evaluation
//! <run>/eval.json            honest held-out evaluation
//! <run>/curves.{png,svg}, trajectories.{png,svg}
//! ```

use std::path::{Path, PathBuf};

/// A run directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory at `root` (not created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// Its path.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// `checkpoint.sgck`.
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.sgck")
    }
    /// `log.csv`.
    pub fn log_csv(&self) -> PathBuf {
        self.root.join("log.csv")
    }
    /// `log.jsonl`.
    pub fn log_jsonl(&self) -> PathBuf {
        self.root.join("log.jsonl")
    }
    /// `validation.csv`.
    pub fn validation_csv(&self) -> PathBuf {
        self.root.join("validation.csv")
    }
    /// `bundle.sgml`.
    pub fn bundle(&self) -> PathBuf {
        self.root.join("bundle.sgml")
    }
    /// `policy.safetensors`.
    pub fn safetensors(&self) -> PathBuf {
        self.root.join("policy.safetensors")
    }
    /// `summary.json`.
    pub fn summary(&self) -> PathBuf {
        self.root.join("summary.json")
    }
    /// `eval.json`.
    pub fn eval(&self) -> PathBuf {
        self.root.join("eval.json")
    }
    /// Prefix of the learning-curve plot (`.png` and `.svg` are added).
    pub fn curves(&self) -> PathBuf {
        self.root.join("curves")
    }
    /// Prefix of the trajectory plot.
    pub fn trajectories(&self) -> PathBuf {
        self.root.join("trajectories")
    }
}
