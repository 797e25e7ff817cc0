//! sgmrl: a microcontroller adapts its own control policy with a few steps of stochastic
//! policy gradient, starting from a meta-policy trained with SG-MRL on a laptop.
//!
//! `#![no_std]`, no heap, no `unsafe`, no panics on bad input. The same code runs on a
//! Cortex-M0 and on the host, and computes the same numbers on both (every transcendental
//! function goes through `libm`, except `f32` tanh: a rational function in plain `f32`
//! arithmetic, [`math::tanh_f32`], just as reproducible and four times cheaper).
//!
//! # The layers
//! ```text
//!  bundle bytes (flash) ──parse once──► Bundle ──► policy shape, recipe, meta-params (LeF32s)
//!                                                         │
//!  Env (sim/ or a robot) ── obs ──► Adapter ── action ──► Env        (its RAM: adapt::Memory)
//!                          ◄─ reward ─┘  │ episodes, as data (episode)
//!                                        ▼
//!                  advantage: the recipe's rule, rewards → per-step weights w_h (never θ)
//!                                        ▼
//!                  estimator: g = Σ w·∇log π   ──► θ ← θ + alpha_per_sample·g  (ζ times)
//!                                        │
//!                              policy: log π, ∇log π over a flat [f32]  (math: Real, libm)
//! ```
//! Bottom up — each module imports only modules listed before it (no import cycle;
//! `scripts/check-import-cycles.py`, run by `cargo xtask test`, fails on one):
//! - [`math`], [`dual`]: the scalar trait every computation is generic over (`f32` on the
//!   device; `f64` and dual numbers for exact tests and Hessian-vector products on the host).
//! - [`rng`]: seeded xoshiro streams; uniform, Gaussian and categorical draws.
//! - [`name`]: the typed error of an unknown name; each enum (`Distribution`, `Advantage`,
//!   `LossScale`) defines its names once, in its `name()`, and parses them back.
//! - [`policy`]: the flat parameter layout and the policies (`SoftmaxLinear`, `SoftmaxMlp`,
//!   `GaussianMlp`), reading parameters from RAM or straight from flash bytes.
//! - [`recipe`]: the adaptation rule meta-training optimised for (α, ζ, batch, horizon, γ,
//!   advantage rule, loss scaling, action mapping), as plain data with its validation and
//!   `alpha_per_sample = α/n` (`n` = `N` or `N·H`, the loss scaling's count).
//! - [`env`](mod@env), [`sim`]: the environment interface, and the no_std task families
//!   (`Nav2d`, which uses the recipe's action map; `DiffDrive`, a wheeled robot).
//! - [`robot`]: the robot edge over embedded-hal 1.0 (motors, encoders, gyro, control
//!   clock) and `DiffDriveRobot`, an [`env::Env`] computing what `sim::diffdrive` computes.
//! - [`estimator_error`]: the one typed error of everything that reads episodes;
//!   [`episode`]: one episode as data (observations, actions on the wire, rewards).
//! - [`advantage`]: the advantage rules that turn a batch's rewards into per-step weights
//!   `w_h`, with their scratch sizes and the linear baseline's features.
//! - [`estimator`]: the estimator proper, `Σ w·∇log π` over a batch of episodes.
//! - [`bundle`]: the checked binary format that carries shape, recipe and parameters (its
//!   CRC-32 lives in a private module shared with the adapter's parameter checksum).
//! - [`adapt`]: the [`adapt::Adapter`] state machine that turns episodes into ζ steps, and
//!   the RAM it needs ([`adapt::Memory`]).
//! - [`guard`]: keeps the adapted policy only if it beats the meta-policy on the robot's task.
//! - [`control`]: the robot's control loop over traits (timer tick, buttons, LEDs, flash).
//! - [`simhw`]: embedded-hal drivers over the `DiffDrive` simulator (board logic in CI).
//! - [`store`]: adapted parameters persisted in two NOR-flash slots (CRC, sequence number).
//! - [`faults`]: an [`env::Env`] wrapper injecting sensor faults, for robustness tests.
//! - [`firmware`]: a board's whole program over [`control`]: bring-up from the bundle's
//!   flash region (or a blink code with the motors stopped), then the loop, logging
//!   through a trait the board implements with defmt.
//!
//! # Features
//! - `std`: the bundle writer and `std::error::Error` impls (used by the host crate).
//! - `defmt`: `defmt::Format` on public types.
//! - `micromath`: approximate transcendental functions for *sampling noise only*, faster on
//!   FPU-less cores; it breaks bit-parity of sampled actions with a host built without it.
//!
//! MSRV: Rust 1.88 (`as_chunks`, `split_at_checked`).
#![no_std]
#![forbid(unsafe_code)]
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]
#![cfg_attr(
    test,
    allow(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        missing_docs
    )
)]

#[cfg(feature = "std")]
extern crate std;

pub mod adapt;
pub mod advantage;
pub mod bundle;
pub mod control;
mod crc32;
pub mod dual;
pub mod env;
pub mod episode;
pub mod estimator;
pub mod estimator_error;
pub mod faults;
pub mod firmware;
pub mod guard;
pub mod math;
pub mod name;
pub mod policy;
pub mod recipe;
pub mod rng;
pub mod robot;
pub mod sim;
pub mod simhw;
pub mod store;
