//! sgmrl: on-device adaptation of meta-trained policies (SG-MRL).
//!
//! (crate map: being written)
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
pub mod bundle;
pub mod dual;
pub mod env;
pub mod estimator;
pub mod math;
pub mod policy;
pub mod recipe;
pub mod rng;
pub mod sim;
