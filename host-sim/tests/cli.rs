//! The `sgmrl` binary, run as a user would: the commands that need only the core (eval,
//! export, plot) end to end, and every kind of input error as a one-line message with a
//! non-zero exit code (no panic, no backtrace).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sgmrl::rng::Rng;
use sgmrl_host::checkpoint::{Checkpoint, OptimizerState};
use sgmrl_host::config::{Config, Preset};
use sgmrl_host::export::bundle_bytes;
use sgmrl_host::model::Model;
use sgmrl_host::runlog::{LogRow, RunLog};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sgmrl"));
    c.env("RUST_BACKTRACE", "1");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the sgmrl binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Runs `args`, expects failure with exactly one stderr line `error: …` containing every
/// `needle`.
fn fails(args: &[&str], needles: &[&str]) {
    let o = run(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded: {}", stdout(&o));
    assert_ne!(o.status.code(), Some(101), "{args:?} panicked: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line:\n{err}");
    assert!(lines[0].starts_with("error: "), "{args:?}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    for n in needles {
        assert!(err.contains(n), "{args:?}: `{n}` not in: {err}");
    }
}

/// Runs `args`, expects failure with stderr exactly `line` (and a newline): no cause
/// printed twice, no debug text.
fn fails_exactly(args: &[&str], line: &str) {
    let o = run(args);
    assert!(!o.status.success(), "{args:?} succeeded: {}", stdout(&o));
    assert_eq!(stderr(&o), format!("{line}\n"), "{args:?}");
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("sgmrl-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn s(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config() -> Config {
    let mut c = Preset::Embedded.config();
    c.eval.goals = 20;
    c.eval.episodes = 3;
    c
}

fn model(c: &Config) -> Model {
    let mut rng = Rng::new(7);
    let p = (0..c.shape().n_params())
        .map(|_| 0.2 * rng.normal())
        .collect();
    Model::from_config(c, p, 12)
}

fn write_bundle(dir: &Scratch, name: &str, c: &Config) -> String {
    let p = dir.path(name);
    std::fs::write(&p, bundle_bytes(&model(c)).unwrap()).unwrap();
    p.to_string_lossy().into_owned()
}

/// A run directory as training leaves it: config, checkpoint, a log of `n` rows.
fn write_run(dir: &Path, c: &Config, n: u64) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.toml"), c.to_toml()).unwrap();
    let m = model(c);
    Checkpoint {
        iteration: n,
        config: c.clone(),
        params: m.params.clone(),
        optimizer: OptimizerState {
            kind: "adam".into(),
            step: n,
            buffers: vec![
                ("m".into(), vec![0.0; m.params.len()]),
                ("v".into(), vec![0.0; m.params.len()]),
            ],
        },
        wall_time_s: 1.0,
        env_steps: 1000 * n,
    }
    .save(&dir.join("checkpoint.sgck"))
    .unwrap();
    let mut log = RunLog::open(&dir.join("log.csv"), &dir.join("log.jsonl"), 1, 0).unwrap();
    for i in 0..n {
        log.append(&LogRow {
            iteration: i,
            return_before: -38.0 + 0.01 * i as f64 * (c.seed as f64),
            returns_after: vec![-30.0 + 0.1 * i as f64],
            env_steps: 1000,
            env_steps_per_s: 1e5,
            wall_time_s: 0.1 * i as f64,
        })
        .unwrap();
    }
}

#[test]
fn eval_reports_before_and_after_and_is_thread_count_free() {
    let d = Scratch::new("eval");
    let b = write_bundle(&d, "b.sgml", &config());
    let out = ok(&[
        "eval",
        &b,
        "--goals",
        "16",
        "--out",
        &d.s("e1.json"),
        "--threads",
        "1",
    ]);
    assert!(
        out.contains("before adaptation") && out.contains("after 1 step"),
        "{out}"
    );
    assert!(out.contains("16 held-out goals"), "{out}");
    ok(&[
        "eval",
        &b,
        "--goals",
        "16",
        "--out",
        &d.s("e2.json"),
        "--threads",
        "2",
    ]);
    let read = |n: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.path(n)).unwrap()).unwrap()
    };
    let (a, b2) = (read("e1.json"), read("e2.json"));
    assert_eq!(a["before"], b2["before"]);
    assert_eq!(a["after"], b2["after"]);
    assert_eq!(a["goals"], 16);
}

#[test]
fn export_from_a_checkpoint_gives_the_core_bundle() {
    let d = Scratch::new("export");
    let c = config();
    write_run(&d.path("run"), &c, 5);
    // A stale evaluation of other parameters in the output directory is not attached.
    std::fs::create_dir_all(d.path("out")).unwrap();
    std::fs::write(d.path("out/eval.json"), r#"{"params_crc32": "0x00000000"}"#).unwrap();
    let out = ok(&["export", &d.s("run"), "-o", &d.s("out")]);
    assert!(out.contains("device RAM for adaptation"), "{out}");
    let bundle = std::fs::read(d.path("out/bundle.sgml")).unwrap();
    let parsed = sgmrl::bundle::Bundle::parse(&bundle).unwrap();
    assert_eq!(parsed.meta_iterations(), 5);
    let mut m = model(&c);
    m.iterations = 5;
    assert_eq!(bundle, bundle_bytes(&m).unwrap());
    assert!(d.path("out/policy.safetensors").is_file());
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path("out/summary.json")).unwrap()).unwrap();
    assert_eq!(s["trainer"], "SG-MRL");
    assert!(s["eval"].is_null());
    // Exporting the exported bundle again reproduces it byte for byte.
    ok(&["export", &d.s("out/bundle.sgml"), "-o", &d.s("again")]);
    assert_eq!(std::fs::read(d.path("again/bundle.sgml")).unwrap(), bundle);
}

#[test]
fn plots_curves_of_several_runs_and_trajectories() {
    let d = Scratch::new("plot");
    let mut c = config();
    for seed in 1..=2 {
        c.seed = seed;
        write_run(&d.path(&format!("s{seed}")), &c, 30);
    }
    let out = ok(&[
        "plot",
        "curves",
        &d.s("s1"),
        &d.s("s2"),
        &format!("other={}", d.s("s1")),
        "-o",
        &d.s("curves"),
    ]);
    assert!(
        out.contains("curves.png") && out.contains("curves.svg"),
        "{out}"
    );
    assert!(
        std::fs::read(d.path("curves.png"))
            .unwrap()
            .starts_with(b"\x89PNG")
    );
    ok(&[
        "plot",
        "trajectories",
        &d.s("s1"),
        "--goals",
        "2",
        "-o",
        &d.s("traj.svg"),
    ]);
    let svg = std::fs::read_to_string(d.path("traj.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("before adaptation"));
}

#[test]
fn bad_flags_and_configs_are_one_line_errors() {
    let d = Scratch::new("flags");
    let run_dir = d.s("r");
    let r = run_dir.as_str();
    fails(
        &["train", "-o", r, "--env", "mars"],
        &["invalid value 'mars'", "nav2d-discrete"],
    );
    fails(&["train", "-o", r, "--alpah", "1"], &["--alpah", "--alpha"]);
    fails(&["train", "-o", r, "--steps", "x"], &["--steps"]);
    fails(&["train"], &["--run-dir"]);
    fails(&["frobnicate"], &["frobnicate"]);
    fails(&["plot"], &["subcommand"]);
    fails(
        &["train", "-o", r, "--config", "/nonexistent/c.toml"],
        &["/nonexistent/c.toml", "cannot read config file"],
    );
    std::fs::write(d.path("garbled.toml"), "[recipe\nalpha = ").unwrap();
    fails(
        &["train", "-o", r, "--config", &d.s("garbled.toml")],
        &["garbled.toml line 1", "invalid TOML"],
    );
    std::fs::write(d.path("unknown.toml"), "[recipe]\nalfa = 0.1\n").unwrap();
    fails(
        &["train", "-o", r, "--config", &d.s("unknown.toml")],
        &["recipe.alfa", "unknown field"],
    );
    std::fs::write(d.path("bad.toml"), "[recipe]\nalpha = -1.0\n").unwrap();
    fails(
        &["train", "-o", r, "--config", &d.s("bad.toml")],
        &["recipe.alpha", "> 0"],
    );
    fails(
        &["train", "-o", r, "--set", "policy.hidden=[1,2,3]"],
        &["policy.hidden", "at most 2"],
    );
    fails(
        &["train", "-o", r, "--hidden", "16,abc"],
        &["--hidden", "`abc`"],
    );
    fails(&["eval", "x", "--threads", "0"], &["--threads"]);
    // Negative values parse as values (not as unknown flags) and get the range check.
    fails_exactly(
        &["train", "-o", r, "--alpha", "-1"],
        "error: recipe.alpha: step size alpha must be finite and > 0 (got -1)",
    );
    fails_exactly(
        &["train", "-o", r, "--gamma", "-0.5"],
        "error: recipe.gamma: discount gamma must be in [0, 1] (got -0.5)",
    );
    fails(
        &["eval", "x", "--goals", "-3"],
        &["invalid value '-3' for '--goals"],
    );
    fails(
        &["train", "-o", r, "--seed", "-1"],
        &["invalid value '-1' for '--seed"],
    );
    fails(&["config", "--set", "nonsense"], &["--set", "KEY=VALUE"]);
}

#[test]
fn bad_input_files_are_one_line_errors() {
    let d = Scratch::new("files");
    let c = config();
    let good = bundle_bytes(&model(&c)).unwrap();
    let b = write_bundle(&d, "b.sgml", &c);

    // Exact lines: each cause once (it was printed twice, once from the message and
    // once from `source()`).
    fails_exactly(
        &["eval", &d.s("missing.sgml")],
        &format!(
            "error: {}: cannot read: No such file or directory (os error 2)",
            d.s("missing.sgml")
        ),
    );
    std::fs::write(d.path("trunc.sgml"), &good[..200]).unwrap();
    fails_exactly(
        &["eval", &d.s("trunc.sgml")],
        &format!(
            "error: {}: bundle truncated: needs {} bytes, got 200",
            d.s("trunc.sgml"),
            good.len()
        ),
    );
    // A damaged checkpoint is named as one, not as "not a bundle"; a file that is
    // neither says so.
    std::fs::write(d.path("garbage.sgck"), b"hello, world, not a checkpoint").unwrap();
    fails_exactly(
        &["eval", &d.s("garbage.sgck")],
        &format!(
            "error: {}: not an sgmrl checkpoint (bad magic)",
            d.s("garbage.sgck")
        ),
    );
    std::fs::write(d.path("garbage.bin"), b"hello, world").unwrap();
    fails_exactly(
        &["export", &d.s("garbage.bin")],
        &format!(
            "error: {}: neither a bundle (.sgml) nor a checkpoint (.sgck): unknown file type",
            d.s("garbage.bin")
        ),
    );
    let mut v2 = good.clone();
    v2[4] = 2;
    std::fs::write(d.path("v2.sgml"), &v2).unwrap();
    fails(
        &["eval", &d.s("v2.sgml")],
        &["v2.sgml", "version 2 unsupported"],
    );
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n - 10] ^= 1;
    std::fs::write(d.path("flip.sgml"), &flipped).unwrap();
    fails(&["export", &d.s("flip.sgml")], &["flip.sgml", "checksum"]);
    std::fs::write(d.path("short.sgml"), &good[..good.len() - 3]).unwrap();
    fails(&["eval", &d.s("short.sgml")], &["short.sgml", "truncated"]);
    std::fs::write(d.path("text.sgml"), b"hello, world").unwrap();
    fails(&["eval", &d.s("text.sgml")], &["not a bundle"]);
    fails(
        &["eval", &b, "--env", "nav2d-discrete"],
        &["wrong task", "nav2d-discrete"],
    );
    let mut wide = c.clone();
    wide.policy.hidden = vec![50];
    let w = write_bundle(&d, "wide.sgml", &wide);
    fails(&["eval", &w], &["2→50→2", "no compiled evaluation path"]);
    std::fs::create_dir_all(d.path("empty")).unwrap();
    fails(
        &["eval", &d.s("empty")],
        &["no checkpoint.sgck or bundle.sgml"],
    );
    fails(
        &["plot", "curves", &d.s("empty"), "-o", &d.s("c")],
        &["no log.csv"],
    );

    // Checkpoints: corrupt, future version.
    write_run(&d.path("run"), &c, 3);
    let ck = d.path("run/checkpoint.sgck");
    let mut bytes = std::fs::read(&ck).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0x40;
    std::fs::write(d.path("bad.sgck"), &bytes).unwrap();
    fails(&["export", &d.s("bad.sgck")], &["bad.sgck", "checksum"]);
    let mut bytes = std::fs::read(&ck).unwrap();
    bytes[8] = 9;
    std::fs::write(d.path("v9.sgck"), &bytes).unwrap();
    fails(&["eval", &d.s("v9.sgck")], &["version 9 unsupported"]);
}

#[test]
fn unwritable_outputs_are_one_line_errors() {
    let d = Scratch::new("unwritable");
    let b = write_bundle(&d, "b.sgml", &config());
    fails_exactly(
        &["eval", &b, "--out", "/nonexistent-dir/e.json"],
        "error: cannot write /nonexistent-dir/e.json: directory /nonexistent-dir does not exist",
    );
    std::fs::write(d.path("file"), b"x").unwrap();
    let file = d.s("file");
    let not_dir = |out: &str| format!("error: cannot write {out}: {file} is not a directory");
    fails_exactly(
        &["export", &b, "-o", &d.s("file/sub")],
        &not_dir(&d.s("file/sub")),
    );
    fails_exactly(
        &["plot", "trajectories", &b, "-o", "/nonexistent-dir/t"],
        "error: cannot write /nonexistent-dir/t.png: directory /nonexistent-dir does not exist",
    );
    // Every command that writes checks its outputs before the work (a directory where
    // a file goes, a file where a directory goes), so nothing is computed and lost.
    std::fs::create_dir_all(d.path("dir.json")).unwrap();
    let is_dir = format!("error: cannot write {}: it is a directory", d.s("dir.json"));
    fails_exactly(&["eval", &b, "--out", &d.s("dir.json")], &is_dir);
    fails_exactly(&["bench", "--json", &d.s("dir.json")], &is_dir);
    fails_exactly(
        &["train", "-o", &d.s("file/run")],
        &not_dir(&d.s("file/run")),
    );
    fails_exactly(&["demo", "-o", &file], &not_dir(&file));
    fails_exactly(
        &["reproduce", "--tiny", "-o", &d.s("file/t")],
        &not_dir(&d.s("file/t")),
    );
    fails_exactly(
        &["plot", "curves", &d.s("r"), "-o", &d.s("file/c")],
        &not_dir(&d.s("file/c.png")),
    );
    // A run directory's eval.json that is a directory: refused before evaluating.
    write_run(&d.path("run"), &config(), 3);
    std::fs::create_dir_all(d.path("run/eval.json")).unwrap();
    fails_exactly(
        &["eval", &d.s("run")],
        &format!(
            "error: cannot write {}: it is a directory",
            d.s("run/eval.json")
        ),
    );
}

/// A run directory and its exported bundle are the same policy, but a bundle carries no
/// evaluation settings: the report says which episode count it used and where from.
#[test]
fn eval_says_where_its_episode_count_came_from() {
    let d = Scratch::new("evalsrc");
    let c = config();
    write_run(&d.path("run"), &c, 3);
    ok(&["export", &d.s("run")]);
    let from_run = ok(&["eval", &d.s("run"), "--goals", "4"]);
    assert!(
        from_run.contains("final return on 3 fresh episodes per goal")
            && from_run
                .contains("(episodes per goal for the final return: the run's eval.episodes)"),
        "{from_run}"
    );
    let bundle = d.s("run/bundle.sgml");
    let from_bundle = ok(&["eval", &bundle, "--goals", "4"]);
    let n = c.recipe.episodes;
    assert!(
        from_bundle.contains(&format!("final return on {n} fresh episodes per goal"))
            && from_bundle.contains(&format!(
                "a bundle has no eval settings: its recipe's {n} episodes per step; set --eval-episodes"
            )),
        "{from_bundle}"
    );
    // With the count given, both measure the same thing and print the same numbers.
    let a = ok(&["eval", &d.s("run"), "--goals", "4", "--eval-episodes", "3"]);
    let b = ok(&["eval", &bundle, "--goals", "4", "--eval-episodes", "3"]);
    let numbers = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.trim_start().starts_with("before") || l.trim_start().starts_with("after"))
            .map(str::to_owned)
            .collect()
    };
    assert!(!numbers(&a).is_empty());
    assert_eq!(numbers(&a), numbers(&b));
}

#[test]
fn a_run_resumes_only_with_its_own_configuration() {
    let d = Scratch::new("resume");
    let c = config();
    write_run(&d.path("run"), &c, 3);
    let r = d.s("run");
    fails(
        &["train", "-o", &r, "--preset", "paper-table1"],
        &["already holds a run"],
    );
    fails(
        &["train", "-o", &r, "--alpha", "0.5"],
        &["different configuration", "recipe.alpha"],
    );
}

/// The same seed and configuration give a bit-identical bundle with 1 and 2 threads, and a
/// run stopped and resumed (here: run to 20 iterations, then extended to 40) ends with the
/// same bundle as a run straight to 40.
#[test]
fn training_is_thread_count_free_and_resumes_exactly() {
    let d = Scratch::new("train");
    let train = |dir: &str, iterations: &str, threads: &str| {
        run(&[
            "train",
            "-q",
            "-o",
            &d.s(dir),
            "--iterations",
            iterations,
            "--threads",
            threads,
            "--set",
            "checkpoint_every=7",
        ])
    };
    let o = train("a", "40", "1");
    assert!(o.status.success(), "{}", stderr(&o));
    for (dir, its, threads) in [("b", "40", "2"), ("c", "20", "2"), ("c", "40", "1")] {
        let o = train(dir, its, threads);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let bundle = |dir: &str| std::fs::read(d.path(dir).join("bundle.sgml")).unwrap();
    assert_eq!(bundle("a"), bundle("b"), "1 vs 2 threads");
    assert_eq!(bundle("a"), bundle("c"), "straight vs resumed");
    let rows = std::fs::read_to_string(d.path("c").join("log.csv")).unwrap();
    assert_eq!(
        rows.lines().count(),
        41,
        "one row per iteration after the resume"
    );
}

/// The multi-task baseline trains, exports and evaluates like every algorithm: its bundle
/// records trainer code 6 and the device's adapter runs it with the same recipe.
#[test]
fn multitask_trains_exports_and_evaluates() {
    let d = Scratch::new("multitask");
    ok(&[
        "train",
        "-q",
        "-o",
        &d.s("mt"),
        "--algorithm",
        "multitask",
        "--iterations",
        "3",
        "--threads",
        "1",
        "--set",
        "meta_batch=4",
    ]);
    let bundle = std::fs::read(d.path("mt").join("bundle.sgml")).unwrap();
    let parsed = sgmrl::bundle::Bundle::parse(&bundle).unwrap();
    assert_eq!(parsed.trainer(), sgmrl::bundle::Trainer::MultiTask);
    let out = ok(&["eval", &d.s("mt"), "--goals", "8"]);
    assert!(out.contains("multi-task"), "{out}");
    assert!(out.contains("after"), "{out}");
}

/// The robot task end to end: `train --env diffdrive` with SG-MRL and MAML, a bundle
/// tagged with the diffdrive task id, and `eval` adapting it with the core's adapter.
#[test]
fn diffdrive_trains_exports_and_evaluates() {
    let d = Scratch::new("diffdrive");
    for algorithm in ["sgmrl", "maml"] {
        ok(&[
            "train",
            "-q",
            "-o",
            &d.s(algorithm),
            "--preset",
            "diffdrive",
            "--env",
            "diffdrive",
            "--algorithm",
            algorithm,
            "--iterations",
            "2",
            "--threads",
            "1",
            "--set",
            "meta_batch=4",
        ]);
        let bundle = std::fs::read(d.path(algorithm).join("bundle.sgml")).unwrap();
        let parsed = sgmrl::bundle::Bundle::parse(&bundle).unwrap();
        assert_eq!(parsed.task(), sgmrl::bundle::TaskId::DIFFDRIVE);
        let shape = parsed.shape();
        assert_eq!((shape.obs_dim, shape.act_dim), (6, 6));
        let out = ok(&[
            "eval",
            &d.s(algorithm),
            "--goals",
            "8",
            "--env",
            "diffdrive",
        ]);
        assert!(
            out.contains("diffdrive") && out.contains("after 1 step"),
            "{out}"
        );
    }
    fails(
        &["eval", &d.s("sgmrl"), "--goals", "8", "--env", "nav2d"],
        &["diffdrive"],
    );
}

/// `sgmrl train` killed with SIGKILL at pseudo-random moments, again and again, resumes from
/// its last checkpoint each time and finishes with the bundle of an uninterrupted run. After
/// every kill, whatever checkpoint is on disk loads (writes are atomic: a kill never leaves
/// a truncated file behind).
#[test]
fn sigkill_at_random_points_then_resume_gives_the_same_bundle() {
    let d = Scratch::new("kill");
    let args = |dir: &str| {
        vec![
            "train".to_string(),
            "-q".into(),
            "-o".into(),
            d.s(dir),
            "--iterations".into(),
            "300".into(),
            "--set".into(),
            "checkpoint_every=5".into(),
        ]
    };
    let o = bin().args(args("straight")).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let run = sgmrl_host::rundir::RunDir::new(d.path("killed"));
    let mut rng = Rng::new(2026);
    let mut kills = 0;
    // Kill delays are drawn below `window`. On a loaded machine a start can take longer
    // than the whole window to reach its first checkpoint, and then no run would ever make
    // progress: a kill that found no newer checkpoint widens the window by half, so the
    // test interrupts at random points whatever the machine's speed (the kill points, not
    // the outcome, depend on the load).
    let mut window_ms: u64 = 400;
    let mut last_iteration = 0u64;
    loop {
        let mut child = bin()
            .args(args("killed"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let delay = 40 + u64::from(rng.next_u32()) % window_ms;
        std::thread::sleep(std::time::Duration::from_millis(delay));
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "the resumed run failed");
            break;
        }
        child.kill().unwrap(); // SIGKILL on Unix: no chance to clean up.
        child.wait().unwrap();
        kills += 1;
        let iteration = if run.checkpoint().exists() {
            Checkpoint::load(&run.checkpoint())
                .expect("a checkpoint on disk always loads")
                .iteration
        } else {
            0
        };
        if iteration <= last_iteration {
            window_ms += window_ms / 2;
        }
        last_iteration = iteration;
        assert!(kills < 200, "the run never finished");
    }
    assert!(
        kills >= 3,
        "killed only {kills} times; the test must interrupt several times"
    );
    let bundle = |dir: &str| std::fs::read(d.path(dir).join("bundle.sgml")).unwrap();
    assert_eq!(bundle("straight"), bundle("killed"), "after {kills} kills");
    let rows = std::fs::read_to_string(run.log_csv()).unwrap();
    assert_eq!(rows.lines().count(), 301, "one log row per iteration");
    eprintln!("killed {kills} times, bundle identical");
}

/// A default (non-MPI) build started as one of several MPI ranks refuses on one line
/// instead of training the same run into the same directory from every rank.
#[cfg(not(feature = "mpi"))]
#[test]
fn a_build_without_mpi_under_mpirun_refuses() {
    let d = Scratch::new("nompi");
    let o = bin()
        .args(["train", "-q", "-o", &d.s("r"), "--iterations", "1"])
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("built without MPI") && err.contains("--features mpi"),
        "{err}"
    );
    assert!(!d.path("r").exists(), "nothing was written");
}
