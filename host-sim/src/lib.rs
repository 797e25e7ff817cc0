//! host-sim (being written)

// The `sgmrl` command-line tool: configuration, run directories, checkpoints, evaluation,
// export and plots (the binary is src/main.rs).
pub mod atomic;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod eval;
pub mod export;
pub mod model;
pub mod plot;
pub mod rundir;
pub mod runlog;
pub mod shapes;
pub mod train;
pub mod wiring;
