//! MuJoCo speed (feature `mujoco`): environment steps per second per core for each Table 2
//! task, the share of rollout time spent inside MuJoCo's `mj_step`, and one meta-iteration
//! of the paper's HalfCheetah setting (40 tasks × 20 episodes × 200 steps, ζ = 1,
//! 17→100→100→6 Gaussian) with the share of its CPU time inside MuJoCo.
//!
//! `cargo bench -p sgmrl-host --features mujoco --bench locomotion [-- ITERATIONS [THREADS]]`

use std::time::Instant;

use sgmrl::policy::{Distribution, PolicyShape};
use sgmrl::recipe::{ActionMap, Advantage, LossScale, Recipe};
use sgmrl::rng::Rng;
use sgmrl_host::bench::{process_cpu_time, thread_cpu_time};
use sgmrl_host::envs::{Locomotion, LocomotionFamily, TaskFamily};
use sgmrl_host::kernels::Net;
use sgmrl_host::meta::{Algorithm, ControlVariate, MetaConfig, MetaTrainer, Order};
use sgmrl_host::optim::OptimizerConfig;
use sgmrl_host::sampler::{self, SampleSpec};

const ACTION: ActionMap = ActionMap {
    scale: 0.1,
    clip: Some(1.0),
};

fn paper_net(kind: Locomotion) -> Net {
    Net::new(PolicyShape {
        distribution: Distribution::Gaussian,
        obs_dim: kind.obs_dim() as u16,
        hidden: [100, 100],
        act_dim: kind.action_dim() as u16,
    })
    .expect("shape")
}

fn table2_config(algorithm: Algorithm, control_variate: ControlVariate) -> MetaConfig {
    let recipe = Recipe {
        alpha: 0.1,
        steps: 1,
        episodes: 20,
        horizon: 200,
        gamma: 0.99,
        advantage: Advantage::LinearFeatureGae { lambda: 0.997 },
        normalize: true,
        loss: LossScale::PerStep,
        action: ACTION,
    };
    MetaConfig {
        algorithm,
        order: Order::Second,
        recipe,
        outer_advantage: recipe.advantage,
        outer_episodes: 20,
        tasks: 40,
        control_variate,
        optimizer: OptimizerConfig::adam(1e-3),
        seed: 1,
    }
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let iterations: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    if let Some(threads) = args.next().and_then(|a| a.parse::<usize>().ok()) {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .expect("rayon pool");
    }
    let threads = rayon::current_num_threads();

    println!(
        "Rollouts on one thread: 20 episodes × 200 steps in lockstep, paper policy (100×100):"
    );
    for kind in Locomotion::ALL {
        let family = LocomotionFamily::new(kind).expect("MuJoCo");
        let net = paper_net(kind);
        let params = net.glorot_init(&mut Rng::new(1));
        let (mut steps, mut wall, mut cpu) = (0usize, 0.0f64, 0.0f64);
        let physics0 = family.physics_seconds();
        for round in 0..5u64 {
            let task = family.sample_task(&mut Rng::new(round));
            let spec = SampleSpec {
                episodes: 20,
                horizon: 200,
                action_map: ACTION,
                seed: 7,
                path: &[round],
            };
            let (t, c) = (Instant::now(), thread_cpu_time());
            let ro = sampler::sample(&family, &task, &net, &params, &spec).expect("rollout");
            wall += t.elapsed().as_secs_f64();
            cpu += (thread_cpu_time() - c).as_secs_f64();
            steps += ro.steps();
        }
        let physics = family.physics_seconds() - physics0;
        println!(
            "  {kind:?}: {:>6.0} env steps per CPU-second ({:.0} physics steps; {:.0} per wall second), \
             MuJoCo {:.1} % of rollout CPU time",
            steps as f64 / cpu,
            (steps * kind.frame_skip()) as f64 / cpu,
            steps as f64 / wall,
            100.0 * physics / cpu
        );
    }

    println!(
        "\nMeta-iteration, HalfCheetah random direction, 40 tasks × 20 episodes × 200 steps, ζ = 1, \
         {threads} rayon threads, {iterations} iterations after 1 warm-up:"
    );
    for (name, algorithm, cv) in [
        ("maml", Algorithm::Maml, ControlVariate::None),
        ("sgmrl (cv none)", Algorithm::SgMrl, ControlVariate::None),
        (
            "sgmrl (cv pre)",
            Algorithm::SgMrl,
            ControlVariate::PreAdaptation,
        ),
    ] {
        let kind = Locomotion::HalfCheetahDirection;
        let family = LocomotionFamily::new(kind).expect("MuJoCo");
        let net = paper_net(kind);
        let params = net.glorot_init(&mut Rng::new(1));
        let mut t = MetaTrainer::new(table2_config(algorithm, cv), family.clone(), net, params)
            .expect("trainer");
        t.step().expect("warm-up");
        let physics0 = family.physics_seconds();
        let cpu0 = process_cpu_time();
        let start = Instant::now();
        let mut env_steps = 0u64;
        for _ in 0..iterations {
            env_steps += t.step().expect("iteration").env_steps;
        }
        let wall = start.elapsed().as_secs_f64() / f64::from(iterations);
        let cpu = (process_cpu_time() - cpu0).as_secs_f64() / f64::from(iterations);
        let physics = (family.physics_seconds() - physics0) / f64::from(iterations);
        println!(
            "  {name:>16}: {wall:6.2} s wall, {cpu:6.2} s CPU per iteration; {:.0} env steps per iteration \
             (without the control variate's batch); MuJoCo {:.1} % of CPU, policy + gradients + bookkeeping {:.1} %",
            env_steps as f64 / f64::from(iterations),
            100.0 * physics / cpu,
            100.0 * (1.0 - physics / cpu)
        );
    }
}
