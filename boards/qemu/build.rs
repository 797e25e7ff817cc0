//! Picks the linker memory map from the target triple and prepares the bundle `adapt`
//! embeds.
//!
//! * `memory-<machine>.x` is copied to `$OUT_DIR/memory.x`, where cortex-m-rt's `link.x`
//!   finds it: one triple, one QEMU machine (see `run.sh`). The `machine` cfg names it.
//! * `SGMRL_BUNDLE` (a path, relative to this crate or absolute) names the bundle `adapt`
//!   embeds with `include_bytes!`; unset or empty, the committed test bundle is used. The
//!   resolved path reaches the code as `env!("SGMRL_BUNDLE_PATH")`.
//! * The bundle is parsed here, on the host, so that a bad bundle fails the build with the
//!   parser's message, and `$OUT_DIR/bundle_info.rs` gets the policy type matching the
//!   bundle's shape, the simulator of its task, and the adapter's memory in `f32`s (the
//!   firmware still validates the bytes at run time).

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

use sgmrl::bundle::{Bundle, TaskId};
use sgmrl::policy::Distribution;

/// The bundle `adapt` embeds when `SGMRL_BUNDLE` is not set.
const DEFAULT_BUNDLE: &str = "bundles/test.sgml";

fn main() {
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let machine = match target.as_str() {
        "thumbv6m-none-eabi" => "microbit",
        "thumbv7em-none-eabihf" => "mps2-an386",
        "thumbv8m.main-none-eabihf" => "mps2-an505",
        other => panic!(
            "no QEMU machine for target {other}; use thumbv6m-none-eabi, \
             thumbv7em-none-eabihf or thumbv8m.main-none-eabihf"
        ),
    };
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    let memory = manifest.join(format!("memory-{machine}.x"));
    fs::copy(&memory, out.join("memory.x")).expect("copy memory map");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={}", memory.display());
    // cortex-m-rt's `device` feature makes its `link.x` include `device.x`, where a device
    // crate would give each interrupt a weak alias to `DefaultHandler`. `src/vectors.rs`
    // names `DefaultHandler` directly, so there is nothing to alias.
    fs::write(
        out.join("device.x"),
        "/* Interrupt vectors: src/vectors.rs (one entry, DefaultHandler). */\n",
    )
    .expect("write device.x");
    println!(
        "cargo::rustc-check-cfg=cfg(machine, values(\"microbit\", \"mps2-an386\", \"mps2-an505\"))"
    );
    println!("cargo::rustc-cfg=machine=\"{machine}\"");

    println!("cargo:rerun-if-env-changed=SGMRL_BUNDLE");
    // Unset or empty: the committed test bundle.
    let chosen = env::var_os("SGMRL_BUNDLE").filter(|p| !p.is_empty());
    let bundle_path = manifest.join(chosen.unwrap_or(DEFAULT_BUNDLE.into()));
    println!("cargo:rerun-if-changed={}", bundle_path.display());
    println!(
        "cargo:rustc-env=SGMRL_BUNDLE_PATH={}",
        bundle_path.display()
    );
    let bytes = fs::read(&bundle_path)
        .unwrap_or_else(|e| panic!("cannot read bundle {}: {e}", bundle_path.display()));
    let bundle = Bundle::parse(&bytes)
        .unwrap_or_else(|e| panic!("{} is not a valid bundle: {e}", bundle_path.display()));
    fs::write(out.join("bundle_info.rs"), bundle_info(&bundle)).expect("write bundle_info.rs");

    // `SGMRL_CORRUPT=<offset>`: embed the bundle with that byte inverted, as if the flash
    // had gone bad after programming (the types above still come from the good bundle).
    // The firmware must reject it with its typed error and exit code 2; run-all.sh checks.
    println!("cargo:rerun-if-env-changed=SGMRL_CORRUPT");
    if let Some(offset) = env::var("SGMRL_CORRUPT").ok().filter(|s| !s.is_empty()) {
        let offset: usize = offset.parse().expect("SGMRL_CORRUPT is a byte offset");
        let mut bad = bytes.clone();
        let byte = bad
            .get_mut(offset)
            .unwrap_or_else(|| panic!("SGMRL_CORRUPT={offset} is past the bundle's end"));
        *byte ^= 0xFF;
        let path = out.join("corrupted.sgml");
        fs::write(&path, bad).expect("write corrupted bundle");
        println!("cargo:rustc-env=SGMRL_BUNDLE_PATH={}", path.display());
    }
}

/// Rust items describing `bundle` for `adapt`.
fn bundle_info(bundle: &Bundle<'_>) -> String {
    let s = bundle.shape();
    let (o, [h1, h2], a) = (s.obs_dim, s.hidden, s.act_dim);
    let policy = match (s.distribution, h1) {
        (Distribution::Softmax, 0) => format!("sgmrl::policy::SoftmaxLinear<{o}, {a}>"),
        (Distribution::Softmax, _) => format!("sgmrl::policy::SoftmaxMlp<{o}, {h1}, {h2}, {a}>"),
        (Distribution::Gaussian, _) => format!("sgmrl::policy::GaussianMlp<{o}, {h1}, {h2}, {a}>"),
    };
    let task = bundle.task();
    let sim = match task {
        TaskId::NAV2D => "sgmrl::sim::Nav2d",
        TaskId::NAV2D_DISCRETE => "sgmrl::sim::Nav2dDiscrete",
        other => panic!(
            "the bundle's task {} has no simulator in sgmrl::sim; adapt can only run \
             NAV2D (1) and NAV2D_DISCRETE (2) bundles",
            other.0
        ),
    };
    let floats = bundle.recipe().memory(&s).total_floats();
    let mut r = String::new();
    writeln!(r, "/// The policy type of the embedded bundle's shape.").ok();
    writeln!(r, "pub type BundlePolicy = {policy};").ok();
    writeln!(r, "/// The simulator of the embedded bundle's task.").ok();
    writeln!(r, "pub type BundleEnv = {sim};").ok();
    writeln!(
        r,
        "/// Adapter memory for the embedded bundle's recipe, in `f32`s."
    )
    .ok();
    writeln!(r, "pub const MEMORY_FLOATS: usize = {floats};").ok();
    writeln!(r, "/// CRC-32 of the embedded bundle, as read on the host.").ok();
    writeln!(r, "pub const CRC: u32 = {:#010x};", bundle.checksum()).ok();
    r
}
