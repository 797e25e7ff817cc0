//! Host side of sgmrl: batched policy kernels, deterministic parallel rollouts and the
//! meta-training algorithms (SG-MRL, MAML, E-MAML, first- and second-order).
//!
//! Module map:
//! - [`gemm`]: the one matrix-product wrapper (backend swappable).
//! - [`kernels`]: batched forward / log-prob / gradient + score / Hessian-vector product
//!   on the core's flat parameter layout.
//! - [`rollouts`]: a batch of episodes as data; [`advantage`]: its per-row weights.
//! - [`envs`]: task families; [`sampler`]: lockstep, deterministic rollouts.

pub mod advantage;
pub mod bench;
pub mod envs;
pub mod gemm;
pub mod kernels;
pub mod meta;
pub mod optim;
pub mod rollouts;
pub mod sampler;
