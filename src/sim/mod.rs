//! Simulated task families, `no_std`, usable for meta-training on the host and for
//! self-tests on the device.
//!
//! A task family is a distribution over tasks; one task is one [`Env`](crate::env::Env)
//! value. Meta-training samples tasks, the device adapts to one. Each simulator here is
//! infallible (`Error = Infallible`): malformed actions have a documented physical meaning
//! (no motion) instead of an error path, and the policy's log-probability, which the
//! estimator evaluates on every action, rejects them anyway.
//!
//! | family | task | observation | action | reward per step |
//! |---|---|---|---|---|
//! | [`Nav2d`] (the paper's 2D navigation) | goal `g ~ U([−0.5, 0.5]²)` | position (2) | displacement (2), clamped to ±0.1 | `−‖g − s'‖₂` |
//! | [`Nav2dDiscrete`] | same goals | position (2) | index of 9 moves (1 scalar) | `−‖g − s'‖₂` |
//! | [`DiffDrive`] (a wheeled robot, [`diffdrive`]) | goal at 0.2–0.6 m and a robot (motor gains, dead-band, sag, geometry, encoder scale) | odometry pose and wheel speeds (6) | index of 6 wheel commands, or 2 commands | progress towards `g` of the odometry position |
//!
//! The two Nav2d families start at the origin, stay inside `[−0.5, 0.5]²`, and end an episode early when the
//! position is within 0.01 of the goal in both coordinates. The horizon (100 in the paper)
//! and the action scaling are the recipe's, not the simulator's.

pub mod diffdrive;
pub mod nav2d;
pub mod nav2d_discrete;

pub use diffdrive::DiffDrive;
pub use nav2d::Nav2d;
pub use nav2d_discrete::Nav2dDiscrete;
