//! `cargo xtask`: the project's task runner.
//!
//! - `cargo xtask test` — everything CI checks, on a fresh machine: installs the rustup
//!   targets, llvm-tools, Debian's `qemu-system-arm`, Open MPI + libclang (feature `mpi`)
//!   and Python's `safetensors` + `numpy` when missing, then formatting, clippy, the docs
//!   (rustdoc warnings denied), the workspace tests, the multi-rank MPI tests, the core's
//!   no_std builds for three Cortex-M targets (with and without `defmt`), the panic-symbol
//!   check, the QEMU firmware and its on-target tests, a tiny end-to-end training run, and
//!   the MuJoCo tasks (`setup-mujoco`, then clippy, their tests and a few meta-iterations of
//!   each Table 2 task with host-sim's `mujoco` feature, and the multi-rank tests that need
//!   both `mpi` and `mujoco`).
//! - `cargo xtask setup` — only the installs.
//! - `cargo xtask setup-mujoco` — MuJoCo 3.17.0 and the HalfCheetah / Swimmer model files
//!   from PyPI into `target/mujoco/` (for host-sim's `mujoco` feature).
//! - `cargo xtask apt-install [--dry-run] PKG…` — installs Debian packages the safe way
//!   ([`apt::apt_install`]: never removes or downgrades; one line per package).
//! - `cargo xtask bench-device` — device budgets under QEMU, written to `docs/device.md`.
//!
//! Kept dependency-free so it compiles in seconds.

mod apt;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Cortex-M targets the core must build for (M0, M4F, M33).
const THUMB_TARGETS: [&str; 3] = [
    "thumbv6m-none-eabi",
    "thumbv7em-none-eabihf",
    "thumbv8m.main-none-eabihf",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&root, &args[1..]),
        Some("setup") => setup(&root),
        Some("bench-device") => bench_device(&root),
        Some("apt-install") => {
            let dry_run = args.iter().any(|a| a == "--dry-run");
            let packages: Vec<&str> = args[1..]
                .iter()
                .map(String::as_str)
                .filter(|a| *a != "--dry-run")
                .collect();
            apt::apt_install(&packages, &apt_log(&root), dry_run)
        }
        Some("setup-mujoco") => setup_mujoco(&root),
        _ => {
            eprintln!(
                "usage: cargo xtask <test [--skip-qemu] [--skip-train] [--skip-mujoco] | setup | setup-mujoco | bench-device | apt-install [--dry-run] PKG...>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// Runs a command, echoing it; an error names the command.
fn run(dir: &Path, program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(dir)
        .status()
        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn installed_targets() -> String {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Where [`apt::apt_install`] keeps apt's output (shown only when apt fails).
fn apt_log(root: &Path) -> PathBuf {
    root.join("target/xtask-apt.log")
}

/// Installs what the tests need on a fresh machine; quick no-ops when already present.
fn setup(root: &Path) -> Result<(), String> {
    let installed = installed_targets();
    let missing: Vec<&str> = THUMB_TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if !missing.is_empty() {
        let mut args = vec!["target", "add"];
        args.extend(&missing);
        run(Path::new("."), "rustup", &args, &[])?;
    }
    if !llvm_tools_bin().join("llvm-size").exists() {
        run(
            Path::new("."),
            "rustup",
            &["component", "add", "llvm-tools"],
            &[],
        )?;
    }
    // Python reads the safetensors export in a host-sim test; PyPI is reachable here.
    if have("python3") && !python_has("safetensors.numpy") {
        run(
            Path::new("."),
            "python3",
            &[
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "safetensors",
                "numpy",
            ],
            &[],
        )?;
    }
    if !have("qemu-system-arm") {
        apt::apt_install(&["qemu-system-arm"], &apt_log(root), false)?;
    }
    install_mpi(root)?;
    Ok(())
}

/// Debian's Open MPI (`mpirun`, headers, `libmpi`) and libclang (rsmpi's bindgen), for the
/// `mpi` feature of sgmrl-host and its multi-rank tests; only the missing ones.
const MPI_PACKAGES: [&str; 3] = ["openmpi-bin", "libopenmpi-dev", "libclang-dev"];

fn install_mpi(root: &Path) -> Result<(), String> {
    let missing: Vec<&str> = MPI_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() || !have("dpkg-query") {
        return Ok(());
    }
    apt::apt_install(&missing, &apt_log(root), false)
}

fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Directory holding `llvm-size`, `llvm-nm` (rustup's llvm-tools component).
fn llvm_tools_bin() -> PathBuf {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let host = Command::new("rustc")
        .arg("-vV")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
                .unwrap_or_default()
        })
        .unwrap_or_default();
    PathBuf::from(sysroot)
        .join("lib/rustlib")
        .join(host)
        .join("bin")
}

/// One named check of the test command.
struct Step {
    name: String,
    ok: bool,
    secs: f64,
}

fn test(root: &Path, flags: &[String]) -> Result<(), String> {
    let skip_qemu = flags.iter().any(|f| f == "--skip-qemu");
    let skip_train = flags.iter().any(|f| f == "--skip-train");
    if let Some(f) = flags
        .iter()
        .find(|f| !["--skip-qemu", "--skip-train", "--skip-mujoco"].contains(&f.as_str()))
    {
        return Err(format!("unknown flag {f}"));
    }
    setup(root)?;
    let mut steps: Vec<Step> = Vec::new();
    let mut check = |name: &str, f: &mut dyn FnMut() -> Result<(), String>| {
        let t = Instant::now();
        let r = f();
        if let Err(e) = &r {
            eprintln!("xtask: FAILED {name}: {e}");
        }
        steps.push(Step {
            name: name.to_owned(),
            ok: r.is_ok(),
            secs: t.elapsed().as_secs_f64(),
        });
    };
    check("fmt", &mut || {
        run(root, "cargo", &["fmt", "--all", "--", "--check"], &[])?;
        let board = root.join("boards/qemu");
        if board.join("Cargo.toml").exists() {
            run(&board, "cargo", &["fmt", "--all", "--", "--check"], &[])?;
        }
        Ok(())
    });
    check("clippy", &mut || {
        run(
            root,
            "cargo",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
            &[],
        )?;
        run(
            root,
            "cargo",
            &[
                "clippy",
                "-p",
                "sgmrl",
                "--all-targets",
                "--features",
                "std",
                "--",
                "-D",
                "warnings",
            ],
            &[],
        )
    });
    check("docs (no rustdoc warnings)", &mut || {
        let deny = [("RUSTDOCFLAGS", "-D warnings")];
        run(root, "cargo", &["doc", "--workspace", "--no-deps"], &deny)?;
        // The core alone, without `std`: links to std-only items break only here.
        run(root, "cargo", &["doc", "-p", "sgmrl", "--no-deps"], &deny)
    });
    check("workspace tests", &mut || {
        run(root, "cargo", &["test", "--workspace", "--release"], &[])?;
        run(
            root,
            "cargo",
            &["test", "-p", "sgmrl", "--release", "--features", "std"],
            &[],
        )
    });
    check(
        "core builds for Cortex-M (with and without defmt)",
        &mut || {
            for target in THUMB_TARGETS {
                run(
                    root,
                    "cargo",
                    &["build", "-p", "sgmrl", "--release", "--target", target],
                    &[],
                )?;
                run(
                    root,
                    "cargo",
                    &[
                        "build",
                        "-p",
                        "sgmrl",
                        "--release",
                        "--target",
                        target,
                        "--features",
                        "defmt",
                    ],
                    &[],
                )?;
            }
            Ok(())
        },
    );
    check("core links no panic machinery (symbol check)", &mut || {
        run(root, "bash", &["scripts/check-panic-symbols.sh"], &[])
    });
    check(
        "core has no import cycle (and the checker fails on one)",
        &mut || {
            run(
                root,
                "python3",
                &["scripts/check-import-cycles.py", "--self-test"],
                &[],
            )?;
            run(
                root,
                "python3",
                &["scripts/check-import-cycles.py", "src"],
                &[],
            )
        },
    );
    check("example: adapt_nav2d", &mut || {
        run(
            root,
            "cargo",
            &[
                "run",
                "--release",
                "--features",
                "std",
                "--example",
                "adapt_nav2d",
            ],
            &[],
        )
    });
    check(
        "MPI: training and sweeps across 1-3 ranks (feature mpi)",
        &mut || {
            run(
                root,
                "cargo",
                &[
                    "clippy",
                    "-p",
                    "sgmrl-host",
                    "--all-targets",
                    "--features",
                    "mpi",
                    "--",
                    "-D",
                    "warnings",
                ],
                &[],
            )?;
            // `mpirun --oversubscribe` runs more ranks than this machine has cores; as root,
            // Open MPI wants both variables.
            run(
                root,
                "cargo",
                &[
                    "test",
                    "-p",
                    "sgmrl-host",
                    "--release",
                    "--features",
                    "mpi",
                    "--test",
                    "mpi",
                ],
                &[
                    ("OMPI_ALLOW_RUN_AS_ROOT", "1"),
                    ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
                ],
            )
        },
    );
    let qemu_script = root.join("boards/qemu/run-all.sh");
    if !skip_qemu && qemu_script.exists() {
        check("firmware under QEMU (M0, M4F, M33)", &mut || {
            run(&root.join("boards/qemu"), "bash", &["run-all.sh"], &[])
        });
    }
    check(
        "robot board firmware builds (RP2040, nRF52833)",
        &mut || build_boards(root),
    );
    if !skip_train && root.join("host-sim/src/main.rs").exists() {
        check("tiny end-to-end training run", &mut || {
            // A fresh directory each time, so the runs train rather than resume.
            let out = root.join("target/xtask-table1-tiny");
            let _ = std::fs::remove_dir_all(&out);
            run(
                root,
                "cargo",
                &[
                    "run",
                    "--release",
                    "-p",
                    "sgmrl-host",
                    "--",
                    "reproduce",
                    "table1",
                    "--tiny",
                    "-q",
                    "-o",
                    &out.to_string_lossy(),
                ],
                &[],
            )
        });
    }
    if !skip_train && root.join("boards/qemu/bundles/diffdrive.sgml").exists() {
        check(
            "diffdrive bundle reproduces (train --preset diffdrive)",
            &mut || diffdrive_bundle_reproduces(root),
        );
    }
    if !flags.iter().any(|f| f == "--skip-mujoco") {
        check(
            "MuJoCo tasks (setup, clippy, tests, Table 2 smoke, on MPI ranks)",
            &mut || mujoco_checks(root),
        );
    }
    eprintln!();
    for s in &steps {
        eprintln!(
            "  {} {:<52} {:>7.1} s",
            if s.ok { "ok  " } else { "FAIL" },
            s.name,
            s.secs
        );
    }
    let passed = steps.iter().filter(|s| s.ok).count();
    let failed = steps.len() - passed;
    println!("xtask: {passed} passed, {failed} failed");
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} check(s) failed"))
    }
}

/// The QEMU robot scenario and the budgets in docs/device.md run on the committed
/// `boards/qemu/bundles/diffdrive.sgml`; it must be what `sgmrl train --preset diffdrive`
/// writes, bit for bit (training is deterministic whatever the thread count).
fn diffdrive_bundle_reproduces(root: &Path) -> Result<(), String> {
    let out = root.join("target/xtask-diffdrive");
    let _ = std::fs::remove_dir_all(&out);
    let out_s = out.to_string_lossy();
    run(
        root,
        "cargo",
        &[
            "run",
            "--release",
            "-p",
            "sgmrl-host",
            "--",
            "-q",
            "train",
            "--preset",
            "diffdrive",
            "-o",
            &out_s,
        ],
        &[],
    )?;
    let committed = root.join("boards/qemu/bundles/diffdrive.sgml");
    let fresh =
        std::fs::read(out.join("bundle.sgml")).map_err(|e| format!("{out_s}/bundle.sgml: {e}"))?;
    let want = std::fs::read(&committed).map_err(|e| format!("{}: {e}", committed.display()))?;
    if fresh == want {
        Ok(())
    } else {
        Err(format!(
            "{out_s}/bundle.sgml differs from boards/qemu/bundles/diffdrive.sgml: the diffdrive preset or training changed; if intended, copy it there and rerun `cargo xtask bench-device`"
        ))
    }
}

/// The real-robot firmware crates (each its own workspace, its target set in its
/// `.cargo/config.toml`): formatted, clippy-clean and built in release with their committed
/// Cargo.lock. They cannot run here (no robot); their logic runs in the QEMU step.
const BOARD_CRATES: [&str; 2] = ["boards/pololu-3pi-2040", "boards/microbit-v2"];

fn build_boards(root: &Path) -> Result<(), String> {
    for board in BOARD_CRATES {
        let dir = root.join(board);
        run(&dir, "cargo", &["fmt", "--", "--check"], &[])?;
        run(
            &dir,
            "cargo",
            &["clippy", "--release", "--locked", "--", "-D", "warnings"],
            &[],
        )?;
        run(&dir, "cargo", &["build", "--release", "--locked"], &[])?;
    }
    Ok(())
}

fn bench_device(root: &Path) -> Result<(), String> {
    setup(root)?;
    let script = root.join("boards/qemu/bench.sh");
    if !script.exists() {
        return Err("boards/qemu/bench.sh is missing".into());
    }
    let doc = root.join("docs/device.md");
    let doc = doc.to_str().ok_or("non-UTF-8 path to docs/device.md")?;
    run(
        &root.join("boards/qemu"),
        "bash",
        &["bench.sh", "--doc", doc],
        &[],
    )
}

/// The MuJoCo release the `mujoco-rs` crate's bindings were generated for (exactly).
const MUJOCO_VERSION: &str = "3.17.0";
/// The gymnasium release whose wheel ships the locomotion model files.
const GYMNASIUM_VERSION: &str = "1.4.0";
/// Model files taken from the gymnasium wheel.
const MUJOCO_MODELS: [&str; 2] = ["half_cheetah.xml", "swimmer.xml"];

/// Fetches MuJoCo's shared library (from PyPI's `mujoco` wheel) and the locomotion model
/// files (from the `gymnasium` wheel) into `target/mujoco/{lib,models}`, with the
/// `libmujoco.so` link the build needs. `.cargo/config.toml` points
/// `SGMRL_MUJOCO_LIB` there (and `PKG_CONFIG_PATH` at `host-sim/pkgconfig/mujoco.pc`, which
/// the mujoco-rs build script reads) and host-sim's build script adds the rpath, so nothing
/// else is needed to build or run with `--features mujoco`. A no-op when already done.
fn setup_mujoco(root: &Path) -> Result<(), String> {
    // The mujoco-rs build script finds the library through pkg-config.
    if !have("pkg-config") && have("apt-get") {
        apt::apt_install(&["pkg-config"], &apt_log(root), false)?;
    }
    let dir = root.join("target/mujoco");
    let lib = dir.join("lib");
    let models = dir.join("models");
    let stamp = dir.join("VERSION");
    let want = format!("mujoco {MUJOCO_VERSION}, gymnasium {GYMNASIUM_VERSION}\n");
    let complete = std::fs::read_to_string(&stamp).is_ok_and(|s| s == want)
        && lib.join("libmujoco.so").is_file()
        && MUJOCO_MODELS.iter().all(|m| models.join(m).is_file());
    if complete {
        eprintln!(
            "xtask: MuJoCo {MUJOCO_VERSION} already in {}",
            dir.display()
        );
        return Ok(());
    }
    if !have("python3") {
        return Err("setup-mujoco needs python3 (for pip download)".into());
    }
    let wheels = dir.join("wheels");
    for d in [&lib, &models, &wheels] {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let wheels_s = wheels.to_str().ok_or("non-UTF-8 path to target/mujoco")?;
    // The library is the same in every CPython wheel; ask for cp311 manylinux explicitly so
    // the host's own Python version does not matter.
    let mujoco_spec = format!("mujoco=={MUJOCO_VERSION}");
    let gym_spec = format!("gymnasium=={GYMNASIUM_VERSION}");
    for (spec, platform_args) in [
        (
            mujoco_spec.as_str(),
            &[
                "--only-binary=:all:",
                "--platform",
                "manylinux_2_28_x86_64",
                "--python-version",
                "3.11",
            ][..],
        ),
        (gym_spec.as_str(), &["--only-binary=:all:"][..]),
    ] {
        let mut args = vec![
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "-d",
            wheels_s,
        ];
        args.extend_from_slice(platform_args);
        args.push(spec);
        run(root, "python3", &args, &[])?;
    }
    // Extract just the files needed (zipfile is in Python's standard library).
    let script = format!(
        r#"
import glob, os, shutil, sys, zipfile
wheels, lib, models = sys.argv[1:4]
def wheel(prefix):
    found = sorted(glob.glob(os.path.join(wheels, prefix + "-*.whl")))
    if not found:
        sys.exit("no " + prefix + " wheel in " + wheels)
    return zipfile.ZipFile(found[-1])
def take(z, member, dest):
    with z.open(member) as src, open(dest + ".part", "wb") as out:
        shutil.copyfileobj(src, out)
    os.replace(dest + ".part", dest)
so = "libmujoco.so.{MUJOCO_VERSION}"
take(wheel("mujoco-{MUJOCO_VERSION}"), "mujoco/" + so, os.path.join(lib, so))
link = os.path.join(lib, "libmujoco.so")
if os.path.lexists(link):
    os.remove(link)
os.symlink(so, link)
g = wheel("gymnasium-{GYMNASIUM_VERSION}")
for m in {models:?}:
    take(g, "gymnasium/envs/mujoco/assets/" + m, os.path.join(models, m))
"#,
        models = MUJOCO_MODELS
    );
    let lib_s = lib.to_str().ok_or("non-UTF-8 path")?;
    let models_s = models.to_str().ok_or("non-UTF-8 path")?;
    run(
        root,
        "python3",
        &["-c", &script, wheels_s, lib_s, models_s],
        &[],
    )?;
    std::fs::write(&stamp, want).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    eprintln!("xtask: MuJoCo {MUJOCO_VERSION} set up in {}", dir.display());
    Ok(())
}

/// Checks that a `--features mujoco` build without the library stops with the message that
/// names `cargo xtask setup-mujoco` (host-sim's build script, not the mujoco-rs build
/// script's panic): the build is pointed at an empty library folder.
fn missing_mujoco_names_the_setup(root: &Path) -> Result<(), String> {
    let empty = root.join("target/xtask-no-mujoco");
    std::fs::create_dir_all(&empty)
        .map_err(|e| format!("cannot create {}: {e}", empty.display()))?;
    let empty_s = empty.to_str().ok_or("non-UTF-8 path")?;
    let args = [
        "check",
        "-p",
        "sgmrl-host",
        "--release",
        "--features",
        "mujoco",
    ];
    eprintln!(
        "$ SGMRL_MUJOCO_LIB={empty_s} cargo {} (must fail)",
        args.join(" ")
    );
    let out = Command::new("cargo")
        .args(args)
        .env("SGMRL_MUJOCO_LIB", empty_s)
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot start cargo: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = "MuJoCo 3.17.0 is missing from";
    let first_error = stderr.lines().find(|l| l.starts_with("error"));
    match first_error {
        Some(l)
            if !out.status.success()
                && l.contains(want)
                && l.contains("cargo xtask setup-mujoco") =>
        {
            eprintln!("xtask: without the library the build says: {l}");
            Ok(())
        }
        _ => Err(format!(
            "a mujoco build without the library should fail first with \"{want} …; run `cargo xtask setup-mujoco`\", got: {}",
            first_error.unwrap_or("no error")
        )),
    }
}

/// The MuJoCo part of `test`: fetch the library, then lint and test host-sim with the
/// `mujoco` feature and run a few meta-iterations of each Table 2 task; then the MPI tests
/// that need MuJoCo too (features `mpi,mujoco`).
fn mujoco_checks(root: &Path) -> Result<(), String> {
    setup_mujoco(root)?;
    let feature = ["-p", "sgmrl-host", "--release", "--features", "mujoco"];
    let with = |cmd: &str, extra: &[&str]| -> Vec<String> {
        let mut v = vec![cmd.to_owned()];
        v.extend(feature.iter().map(|s| s.to_string()));
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    missing_mujoco_names_the_setup(root)?;
    let out = root.join("target/xtask-table2-tiny");
    let _ = std::fs::remove_dir_all(&out);
    let out = out.to_string_lossy().into_owned();
    for args in [
        with("clippy", &["--all-targets", "--", "-D", "warnings"]),
        with("test", &["--lib", "envs::locomotion"]),
        with("test", &["--test", "locomotion"]),
        with(
            "run",
            &["--", "reproduce", "table2", "--tiny", "-q", "-o", &out],
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(root, "cargo", &args, &[])?;
    }
    // The multi-rank tests that need MuJoCo (Table 2's sweep over ranks, a diverging task
    // left out alike on every rank count); the MPI step has run the others.
    let both = ["-p", "sgmrl-host", "--release", "--features", "mpi,mujoco"];
    run(
        root,
        "cargo",
        &[
            &["clippy"][..],
            &both,
            &["--all-targets", "--", "-D", "warnings"],
        ]
        .concat(),
        &[],
    )?;
    run(
        root,
        "cargo",
        &[
            &["test"][..],
            &both,
            &[
                "--test",
                "mpi",
                "--",
                "reproduce_table2_spread_over_ranks",
                "a_diverging_task_is_left_out",
            ],
        ]
        .concat(),
        &[
            ("OMPI_ALLOW_RUN_AS_ROOT", "1"),
            ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
        ],
    )
}
