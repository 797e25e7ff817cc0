//! Picks the linker memory map from the target triple and the bundle that `adapt` embeds.
//!
//! * `memory-<machine>.x` is copied to `$OUT_DIR/memory.x`, where cortex-m-rt's `link.x`
//!   finds it: one triple, one QEMU machine (see `run.sh`).
//! * `SGMRL_BUNDLE` (a path, relative to this crate or absolute) names the bundle `adapt`
//!   embeds with `include_bytes!`; without it the committed test bundle is used. The
//!   resolved absolute path reaches the code as `env!("SGMRL_BUNDLE_PATH")`.

use std::env;
use std::fs;
use std::path::PathBuf;

/// The bundle `adapt` embeds when `SGMRL_BUNDLE` is not set.
const DEFAULT_BUNDLE: &str = "bundles/test.sgmrl";

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
    println!(
        "cargo::rustc-check-cfg=cfg(machine, values(\"microbit\", \"mps2-an386\", \"mps2-an505\"))"
    );
    println!("cargo::rustc-cfg=machine=\"{machine}\"");

    println!("cargo:rerun-if-env-changed=SGMRL_BUNDLE");
    let bundle = match env::var_os("SGMRL_BUNDLE") {
        Some(p) => manifest.join(p),
        None => manifest.join(DEFAULT_BUNDLE),
    };
    let bundle = if bundle.exists() {
        bundle
    } else if env::var_os("SGMRL_BUNDLE").is_some() {
        panic!("SGMRL_BUNDLE={} does not exist", bundle.display());
    } else {
        // No committed bundle yet: embed nothing, and `adapt` reports it.
        let empty = out.join("no-bundle.sgmrl");
        fs::write(&empty, []).expect("write empty bundle");
        empty
    };
    println!("cargo:rerun-if-changed={}", bundle.display());
    println!("cargo:rustc-env=SGMRL_BUNDLE_PATH={}", bundle.display());
}
