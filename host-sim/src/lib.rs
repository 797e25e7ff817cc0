//! Host side of sgmrl: batched policy kernels, deterministic parallel rollouts and the
//! meta-training algorithms (SG-MRL, MAML, E-MAML, first- and second-order).
//!
//! Module map:
//! - [`gemm`]: the one matrix-product wrapper (backend swappable); [`flops`]: counts its
//!   products by shape while recording (the bench's exact FLOP counts).
//! - [`kernels`]: batched forward / log-prob / gradient + score / Hessian-vector product
//!   on the core's flat parameter layout.
//! - [`rollouts`]: a batch of episodes as data; [`advantage`]: its per-row weights.
//! - [`envs`]: task families; [`sampler`]: lockstep, deterministic rollouts.
//! - [`meta`]: the estimators (one module per algorithm, sharing one recursion step), the
//!   adaptation of a task and the [`meta::MetaTrainer`]; [`optim`]: Adam / SGD ascent.
//! - [`bench`](mod@bench): side-by-side timing of meta-iterations; [`memory`]: allocator
//!   setting that keeps freed buffers for the next iteration.
//!
//! The `sgmrl` command-line tool (binary in `src/main.rs`) sits on top: [`config`] (presets,
//! TOML, flags), [`rundir`], [`runlog`], [`checkpoint`] and [`atomic`] (crash-safe files),
//! [`train`] (the loop, resume), [`wiring`] (the engine behind `train`), [`eval`] (held-out
//! goals adapted by the core's own `Adapter`), [`export`] (bundle, safetensors, JSON),
//! [`plot`], [`outputs`] (output paths checked before the work), [`model`] and [`shapes`]
//! (runtime shape → compile-time policy type), [`comparison`] (what meta-training buys,
//! line by line), [`cli`]; [`cluster`] (one process or the ranks of an MPI job) and
//! [`distributed`] (training and sweeps spread over them); [`sweep`] (the grid of
//! training runs behind `reproduce`, folded into table cells).
//!
//! Driving it: build a [`kernels::Net`] from a `PolicyShape`, initial parameters
//! ([`kernels::Net::glorot_init`]), a [`meta::MetaConfig`] (e.g. [`bench::table1_config`])
//! and a task family, then call [`meta::MetaTrainer::step`] once per meta-iteration.

pub mod advantage;
pub mod bench;
pub mod envs;
pub mod flops;
pub mod gemm;
pub mod kernels;
pub mod memory;
pub mod meta;
pub mod optim;
pub mod rollouts;
pub mod sampler;

pub mod atomic;
pub mod checkpoint;
pub mod cli;
pub mod cluster;
pub mod comparison;
pub mod config;
pub mod distributed;
pub mod eval;
pub mod export;
pub mod model;
pub mod outputs;
pub mod plot;
pub mod rundir;
pub mod runlog;
pub mod shapes;
pub mod sweep;
pub mod train;
pub mod wiring;
