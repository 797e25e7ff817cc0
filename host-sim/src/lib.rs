//! Host side of sgmrl: batched policy kernels, deterministic parallel rollouts and the
//! meta-training algorithms (SG-MRL, MAML, E-MAML, first- and second-order).
//!
//! Module map:
//! - [`gemm`]: the one matrix-product wrapper (backend swappable).
//! - [`kernels`]: batched forward / log-prob / gradient + score / Hessian-vector product
//!   on the core's flat parameter layout.

pub mod gemm;
pub mod kernels;
