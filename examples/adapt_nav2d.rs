//! The device's side in one file: a bundle (here encoded in place, on a robot it is
//! `include_bytes!` in flash) is parsed once, then the adapter runs ζ policy-gradient steps
//! on a 2-D navigation task and reports the return before and after.
//!
//! Run: `cargo run --release --features std --example adapt_nav2d`

use sgmrl::adapt::Adapter;
use sgmrl::bundle::{Bundle, BundleSpec, TaskId, Trainer};
use sgmrl::policy::{GaussianMlp, Policy};
use sgmrl::recipe::{Advantage, LossScale, Recipe};
use sgmrl::rng::Rng;
use sgmrl::sim::Nav2d;

type Pol = GaussianMlp<2, 16, 0, 2>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Stand-in for meta-trained parameters: small random weights, σ = 1.
    let mut rng = Rng::new(1);
    let mut params = [0.0f32; Pol::N_PARAMS];
    for p in params.iter_mut().take(Pol::N_PARAMS - 2) {
        *p = 0.1 * rng.normal();
    }
    let recipe = Recipe {
        alpha: 0.1,
        steps: 2,
        episodes: 20,
        horizon: 100,
        gamma: 0.99,
        advantage: Advantage::BatchMeanBaseline,
        normalize: true,
        loss: LossScale::PerEpisode,
        action: Nav2d::PAPER_ACTION_MAP,
    };
    let spec = BundleSpec {
        shape: Pol::SHAPE,
        recipe,
        task: TaskId::NAV2D,
        trainer: Trainer::Unknown,
        seed: 0,
        meta_iterations: 0,
        baseline: None,
        params: &params,
    };
    let mut bytes = vec![0u8; spec.encoded_len()];
    spec.encode_into(&mut bytes)?;

    // On the device: parse once, then adapt with the bundle's own recipe.
    let bundle = Bundle::parse(&bytes)?;
    let need = bundle.recipe().memory(&Pol::SHAPE);
    println!(
        "RAM for adaptation: {} bytes (P = {} floats, episode buffer {} floats)",
        need.total_bytes(),
        Pol::N_PARAMS,
        need.episode_floats
    );
    let mut memory = vec![0.0f32; need.total_floats()];
    let mut adapter = Adapter::from_bundle(Pol::default(), &bundle, &mut memory, 7)?;
    let goal = [0.3, -0.2];
    let report = adapter.run(&mut Nav2d::new(goal))?;
    for (k, r) in report.step_returns.iter().enumerate() {
        println!("mean return of the batch before step {}: {r:.2}", k + 1);
    }
    let after = adapter.evaluate(&mut Nav2d::new(goal), 50)?;
    println!("mean return after {} steps: {after:.2}", recipe.steps);
    println!(
        "adapted parameters CRC-32: {:08x}",
        adapter.with_params(|p| p.checksum())
    );
    Ok(())
}
