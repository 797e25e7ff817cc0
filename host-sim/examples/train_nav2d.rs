//! Meta-trains on nav2d with the Table 1 setting and prints the returns every 10
//! iterations: `cargo run --release -p sgmrl-host --example train_nav2d -- [sgmrl|maml|emaml]
//! [1|2] [ITERATIONS] [SEED] [pre|loo|nocv]` (defaults: sgmrl, 2nd order, 60, seed 1, the
//! Table 1 control variate `pre`).

use sgmrl::rng::Rng;
use sgmrl_host::bench::{table1_config, table1_shape};
use sgmrl_host::envs::Nav2dFamily;
use sgmrl_host::kernels::Net;
use sgmrl_host::meta::{Algorithm, ControlVariate, MetaConfig, MetaTrainer, Order};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let algorithm = match arg(0) {
        Some("maml") => Algorithm::Maml,
        Some("emaml") => Algorithm::EMaml,
        _ => Algorithm::SgMrl,
    };
    let order = match arg(1) {
        Some("1") => Order::First,
        _ => Order::Second,
    };
    let iterations: u64 = arg(2).and_then(|s| s.parse().ok()).unwrap_or(60);
    let seed: u64 = arg(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let config = MetaConfig {
        control_variate: match arg(4) {
            Some("nocv") => ControlVariate::None,
            Some("loo") => ControlVariate::LeaveOneOut,
            _ => ControlVariate::PreAdaptation,
        },
        ..table1_config(algorithm, order, seed)
    };
    let net = Net::new(table1_shape()).expect("shape");
    let params = net.glorot_init(&mut Rng::new(seed));
    let mut trainer = MetaTrainer::new(config, Nav2dFamily, net, params).expect("config");
    println!("{config:?}");
    for i in 0..iterations {
        let s = trainer.step().expect("meta-iteration");
        if i % 10 == 0 || i + 1 == iterations {
            println!(
                "iteration {i:4}: return before {:8.3}  after {:8.3}  |meta-gradient| {:9.3}  {:5.0} ms",
                s.return_before,
                s.return_after,
                s.grad_norm,
                s.elapsed.as_secs_f64() * 1e3
            );
        }
    }
}
