//! The per-iteration training log, as CSV (`log.csv`) and JSON lines (`log.jsonl`).
//!
//! One row per meta-iteration: `iteration` (0-based), `return_before` (mean undiscounted
//! return of the meta-policy over the meta-batch), `return_after_1 … return_after_ζ`
//! (after each adaptation step; empty in CSV and `null` in JSON when the engine does not
//! measure it), `env_steps` (this iteration), `env_steps_per_s`, `wall_time_s`
//! (cumulative over resumed sessions). Rows are appended and flushed as they come; a
//! resumed run first rewrites each log (atomically) to the rows its checkpoint covers.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// One iteration's row.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRow {
    /// Iteration index (0-based).
    pub iteration: u64,
    /// Mean return before adaptation.
    pub return_before: f64,
    /// Mean return after each adaptation step (ζ values; NaN = not measured).
    pub returns_after: Vec<f64>,
    /// Environment steps in this iteration.
    pub env_steps: u64,
    /// Environment steps per second of this iteration.
    pub env_steps_per_s: f64,
    /// Cumulative training wall time, seconds.
    pub wall_time_s: f64,
}

/// The CSV header for ζ adaptation steps.
pub fn csv_header(steps: u16) -> Vec<String> {
    let mut h = vec!["iteration".to_string(), "return_before".to_string()];
    h.extend((1..=steps).map(|k| format!("return_after_{k}")));
    h.extend(["env_steps", "env_steps_per_s", "wall_time_s"].map(String::from));
    h
}

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        String::new()
    }
}

fn json_num(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

impl LogRow {
    fn csv_fields(&self) -> Vec<String> {
        let mut f = vec![self.iteration.to_string(), num(self.return_before)];
        f.extend(self.returns_after.iter().map(|&x| num(x)));
        f.extend([
            self.env_steps.to_string(),
            num(self.env_steps_per_s),
            num(self.wall_time_s),
        ]);
        f
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "iteration": self.iteration,
            "return_before": json_num(self.return_before),
            "returns_after": self.returns_after.iter().map(|&x| json_num(x)).collect::<Vec<_>>(),
            "env_steps": self.env_steps,
            "env_steps_per_s": json_num(self.env_steps_per_s),
            "wall_time_s": json_num(self.wall_time_s),
        })
    }
}

/// An open log of a run directory.
#[derive(Debug)]
pub struct RunLog {
    csv: File,
    jsonl: File,
    csv_path: PathBuf,
}

impl RunLog {
    /// Opens (creating if needed) `csv` and `jsonl` for ζ = `steps`, keeping only the rows
    /// of iterations below `keep_below` (the checkpoint's iteration).
    pub fn open(csv: &Path, jsonl: &Path, steps: u16, keep_below: u64) -> anyhow::Result<Self> {
        let header = csv_header(steps);
        truncate_csv(csv, &header, |it| it < keep_below)?;
        truncate_jsonl(jsonl, keep_below)?;
        let open = |p: &Path| {
            OpenOptions::new()
                .append(true)
                .create(true)
                .open(p)
                .with_context(|| format!("cannot open {}", p.display()))
        };
        Ok(Self {
            csv: open(csv)?,
            jsonl: open(jsonl)?,
            csv_path: csv.to_path_buf(),
        })
    }

    /// Appends one row to both logs and flushes.
    pub fn append(&mut self, row: &LogRow) -> anyhow::Result<()> {
        let line = row.csv_fields().join(",");
        writeln!(self.csv, "{line}")
            .and_then(|()| self.csv.flush())
            .with_context(|| format!("cannot write {}", self.csv_path.display()))?;
        writeln!(self.jsonl, "{}", row.json())
            .and_then(|()| self.jsonl.flush())
            .context("cannot write log.jsonl")?;
        Ok(())
    }
}

/// Rewrites a CSV file (atomically) to its header and the complete rows whose first field
/// (an iteration count) satisfies `keep`; creates it with `header` when absent. A file
/// with a different header is an error (it belongs to another configuration).
pub fn truncate_csv(
    path: &Path,
    header: &[String],
    keep: impl Fn(u64) -> bool,
) -> anyhow::Result<()> {
    let head_line = header.join(",");
    let mut out = format!("{head_line}\n");
    if path.exists() {
        let f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut lines = BufReader::new(f).lines();
        match lines.next() {
            Some(Ok(h)) if h == head_line => {}
            None => {}
            Some(Ok(h)) => anyhow::bail!(
                "{}: header `{h}` does not match this run's `{head_line}`",
                path.display()
            ),
            Some(Err(e)) => anyhow::bail!("cannot read {}: {e}", path.display()),
        }
        for line in lines {
            let Ok(line) = line else { break };
            let fields: Vec<&str> = line.split(',').collect();
            if fields.len() != header.len() {
                // A partial line from an interrupted write.
                continue;
            }
            if let Some(Ok(it)) = fields.first().map(|f| f.parse::<u64>())
                && keep(it)
            {
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    crate::atomic::write(path, out.as_bytes())?;
    Ok(())
}

fn truncate_jsonl(path: &Path, keep_below: u64) -> anyhow::Result<()> {
    let mut out = String::new();
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for line in text.lines() {
            let it = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("iteration").and_then(|i| i.as_u64()));
            if let Some(it) = it
                && it < keep_below
            {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    crate::atomic::write(path, out.as_bytes())?;
    Ok(())
}

/// A learning curve read back from `log.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    /// Iteration of each point.
    pub iteration: Vec<u64>,
    /// Return before adaptation.
    pub before: Vec<f64>,
    /// Return after all ζ steps (NaN where not measured).
    pub after: Vec<f64>,
    /// Cumulative environment steps.
    pub env_steps: Vec<u64>,
}

/// Reads a run's `log.csv`; a partial last line is ignored.
pub fn read_curve(path: &Path) -> anyhow::Result<Curve> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let headers = r
        .headers()
        .with_context(|| format!("{}: no header", path.display()))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(it), Some(before), Some(steps)) =
        (col("iteration"), col("return_before"), col("env_steps"))
    else {
        anyhow::bail!(
            "{}: not an sgmrl training log (missing columns)",
            path.display()
        );
    };
    let after = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| h.starts_with("return_after_"))
        .map(|(i, _)| i)
        .last();
    let mut c = Curve {
        iteration: vec![],
        before: vec![],
        after: vec![],
        env_steps: vec![],
    };
    let mut total = 0u64;
    for rec in r.records() {
        let Ok(rec) = rec else { break };
        if rec.len() != headers.len() {
            break;
        }
        let f = |i: usize| -> f64 {
            rec.get(i)
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        let Some(Ok(i)) = rec.get(it).map(|s| s.parse::<u64>()) else {
            break;
        };
        total += rec.get(steps).and_then(|s| s.parse().ok()).unwrap_or(0);
        c.iteration.push(i);
        c.before.push(f(before));
        c.after.push(after.map_or(f64::NAN, f));
        c.env_steps.push(total);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: u64) -> LogRow {
        LogRow {
            iteration: i,
            return_before: -30.0 + i as f64,
            returns_after: vec![f64::NAN, -20.0 + i as f64],
            env_steps: 1000,
            env_steps_per_s: 5e4,
            wall_time_s: 0.5 * i as f64,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sgmrl-runlog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn appends_truncates_on_reopen_and_reads_back() {
        let d = scratch("trunc");
        let (csv, jsonl) = (d.join("log.csv"), d.join("log.jsonl"));
        let mut log = RunLog::open(&csv, &jsonl, 2, 0).unwrap();
        for i in 0..6 {
            log.append(&row(i)).unwrap();
        }
        drop(log);
        // An interrupted write leaves a partial line.
        let mut f = OpenOptions::new().append(true).open(&csv).unwrap();
        write!(f, "6,-24.0,").unwrap();
        drop(f);
        let text = std::fs::read_to_string(&csv).unwrap();
        assert!(text.starts_with("iteration,return_before,return_after_1,return_after_2,"));
        assert!(text.contains("\n2,-28,,-18,1000,50000,1\n"), "{text}");

        let mut log = RunLog::open(&csv, &jsonl, 2, 4).unwrap();
        log.append(&row(4)).unwrap();
        let c = read_curve(&csv).unwrap();
        assert_eq!(c.iteration, vec![0, 1, 2, 3, 4]);
        assert_eq!(c.after[4], -16.0);
        assert_eq!(c.env_steps[4], 5000);
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[4]["returns_after"][0].is_null());
        assert_eq!(lines[4]["returns_after"][1], -16.0);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_log_of_another_shape_is_refused() {
        let d = scratch("hdr");
        let (csv, jsonl) = (d.join("log.csv"), d.join("log.jsonl"));
        RunLog::open(&csv, &jsonl, 1, 0).unwrap();
        let e = RunLog::open(&csv, &jsonl, 3, 0).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
