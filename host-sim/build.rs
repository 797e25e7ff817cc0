//! With the `mujoco` feature: checks that `cargo xtask setup-mujoco` has put MuJoCo 3.17.0
//! and the model files where `.cargo/config.toml` says, and links the library by rpath so
//! the binaries, tests and benches run without `LD_LIBRARY_PATH`. Without the feature it
//! does nothing.

use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=SGMRL_MUJOCO_LIB");
    println!("cargo::rerun-if-env-changed=SGMRL_MUJOCO_MODELS");
    if std::env::var_os("CARGO_FEATURE_MUJOCO").is_none() {
        return;
    }
    let setup =
        "run `cargo xtask setup-mujoco` (fetches MuJoCo 3.17.0 and the model files from PyPI)";
    let dir = |var: &str| -> PathBuf {
        match std::env::var_os(var) {
            Some(d) => PathBuf::from(d),
            None => fail(&format!(
                "{var} is not set (it comes from .cargo/config.toml); {setup}"
            )),
        }
    };
    let lib = dir("SGMRL_MUJOCO_LIB");
    let so = lib.join("libmujoco.so.3.17.0");
    if !so.is_file() || !lib.join("libmujoco.so").is_file() {
        fail(&format!(
            "MuJoCo 3.17.0 is missing from {}; {setup}",
            lib.display()
        ));
    }
    let models = dir("SGMRL_MUJOCO_MODELS");
    for m in ["half_cheetah.xml", "swimmer.xml"] {
        let f = models.join(m);
        if !f.is_file() {
            fail(&format!("model file {} is missing; {setup}", f.display()));
        }
        println!("cargo::rerun-if-changed={}", f.display());
    }
    println!("cargo::rerun-if-changed={}", so.display());
    println!("cargo::rustc-link-arg=-Wl,-rpath,{}", lib.display());
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    println!("cargo::error={message}");
    std::process::exit(1)
}
