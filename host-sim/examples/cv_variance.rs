//! Total variance of the SG-MRL meta-gradient estimate on nav2d (Table 1 setting, at the
//! Glorot initialisation) under each control variate, from independent meta-batches.
//!
//! `cargo run --release -p sgmrl-host --example cv_variance -- [REPEATS]` (default 24).
//! Prints, per control variate, `Σ_j Var[g_j]` over the repeats and its ratio to the raw
//! estimator's. All three estimate the same expectation (the exact-enumeration test checks
//! that); only the noise differs.

use sgmrl::rng::Rng;
use sgmrl_host::bench::table1_config;
use sgmrl_host::envs::Nav2dFamily;
use sgmrl_host::kernels::Net;
use sgmrl_host::meta::{Algorithm, ControlVariate, MetaConfig, MetaTrainer, Order};

fn main() {
    let repeats: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let shape = sgmrl::policy::PolicyShape {
        distribution: sgmrl::policy::Distribution::Gaussian,
        obs_dim: 2,
        hidden: [100, 100],
        act_dim: 2,
    };
    let net = Net::new(shape).expect("valid shape");
    let theta = net.glorot_init(&mut Rng::new(1));
    let mut raw_total = None;
    for cv in [
        ControlVariate::None,
        ControlVariate::LeaveOneOut,
        ControlVariate::PreAdaptation,
    ] {
        let mut grads = Vec::new();
        for seed in 0..repeats {
            let config = MetaConfig {
                control_variate: cv,
                ..table1_config(Algorithm::SgMrl, Order::Second, 1000 + seed)
            };
            let trainer = MetaTrainer::new(config, Nav2dFamily, net.clone(), theta.clone())
                .expect("valid trainer");
            grads.push(trainer.meta_gradient().expect("meta-gradient").0);
        }
        let n = grads.len() as f64;
        let p = theta.len();
        let mut total = 0.0;
        for j in 0..p {
            let mean = grads.iter().map(|g| f64::from(g[j])).sum::<f64>() / n;
            total += grads
                .iter()
                .map(|g| (f64::from(g[j]) - mean).powi(2))
                .sum::<f64>()
                / (n - 1.0);
        }
        let raw = *raw_total.get_or_insert(total);
        println!(
            "control variate {:>4}: total variance {total:12.1}  ({:.3}× the raw estimator's)",
            cv.name(),
            total / raw
        );
    }
}
