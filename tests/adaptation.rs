//! Adaptation works: from a fixed initial policy on Nav2d with a fixed goal, ζ = 1, 2, 3
//! steps of the core's adapter raise the expected return, measured on fresh episodes.

use sgmrl::adapt::Adapter;
use sgmrl::env::Env;
use sgmrl::policy::{GaussianMlp, Policy};
use sgmrl::recipe::{Advantage, LossScale, Recipe};
use sgmrl::rng::Rng;
use sgmrl::sim::Nav2d;

type Pol = GaussianMlp<2, 16, 0, 2>;
const GOAL: [f32; 2] = [0.35, -0.25];
const EVAL_EPISODES: usize = 200;

fn initial_params() -> Vec<f32> {
    let mut rng = Rng::new(2024);
    let mut p: Vec<f32> = (0..Pol::N_PARAMS).map(|_| 0.1 * rng.normal()).collect();
    // log-std = 0 (σ = 1), as the paper initialises it.
    let n = p.len();
    p[n - 2..].fill(0.0);
    p
}

fn recipe(steps: u16) -> Recipe {
    Recipe {
        alpha: 0.1,
        steps,
        episodes: 20,
        horizon: 100,
        gamma: 0.99,
        advantage: Advantage::BatchMeanBaseline,
        normalize: true,
        loss: LossScale::PerEpisode,
        action: Nav2d::PAPER_ACTION_MAP,
    }
}

/// Mean and standard error of the undiscounted return of `EVAL_EPISODES` fresh episodes of
/// the policy with parameters `params`.
fn evaluate(params: &[f32], r: &Recipe, seed: u64) -> (f64, f64) {
    let mut returns = Vec::with_capacity(EVAL_EPISODES);
    for e in 0..EVAL_EPISODES {
        let mut rng = Rng::derive(seed, &[e as u64]);
        let mut env = Nav2d::new(GOAL);
        let mut obs = [0.0f32; 2];
        env.reset(&mut obs).unwrap();
        let mut ret = 0.0f64;
        for _ in 0..r.horizon {
            let mut u = [0.0f32; 2];
            Pol::default()
                .sample(params, &obs, &mut rng, &mut u)
                .unwrap();
            let a = u.map(|x| r.action.apply(x));
            let tr = env.step(&a, &mut obs).unwrap();
            ret += f64::from(tr.reward);
            if tr.done {
                break;
            }
        }
        returns.push(ret);
    }
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let var = returns.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

#[test]
fn one_to_three_steps_raise_the_expected_return() {
    let meta = initial_params();
    let (before, se_before) = evaluate(&meta, &recipe(1), 1);
    println!("before adaptation: {before:.2} ± {se_before:.2}");
    for steps in 1..=3u16 {
        let r = recipe(steps);
        let mut mem = vec![0.0f32; r.memory(&Pol::SHAPE).total_floats()];
        let mut ad = Adapter::new(Pol::default(), &meta[..], None, r, &mut mem, 7).unwrap();
        let report = ad.run(&mut Nav2d::new(GOAL)).unwrap();
        let mut adapted = vec![0.0f32; Pol::N_PARAMS];
        assert!(ad.with_params(|p| p.copy_to(&mut adapted)));
        let (after, se_after) = evaluate(&adapted, &r, 2);
        println!(
            "ζ = {steps}: batch returns {:?}, after: {after:.2} ± {se_after:.2}",
            report.step_returns
        );
        // Improvement well outside noise: more than 5 combined standard errors.
        let margin = 5.0 * (se_before.powi(2) + se_after.powi(2)).sqrt();
        assert!(
            after - before > margin,
            "ζ = {steps}: {after:.2} not above {before:.2} by {margin:.2}"
        );
    }
}
