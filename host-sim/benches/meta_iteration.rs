//! One meta-iteration of full SG-MRL, MAML (2nd order), first-order SG-MRL and FO-MAML on
//! the paper's Table 1 configuration (nav2d, 20 tasks × 20 episodes × 100 steps,
//! 2→100→100→2 Gaussian MLP, ζ = 1), and of MAML at pytorch-maml-rl's size (64×64 policy),
//! timed side by side in one run, with the inner step's weight-gradient products timed
//! alone for the floor of the first-order ratio; then each row's matrix products (counted
//! exactly by shape) against the GEMM wrapper alone on the same products. The last block
//! is what the README's Host speed table reports.
//!
//! `cargo bench -p sgmrl-host --bench meta_iteration [-- ROUNDS [THREADS]]`

use std::time::Duration;

use sgmrl_host::bench::{self, PYTORCH_MAML_RL_ROW, Products, Timing};

fn main() {
    sgmrl_host::memory::keep_freed_memory();
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
    if let Some(threads) = args.next().and_then(|a| a.parse::<usize>().ok()) {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .expect("rayon pool");
    }
    println!(
        "Table 1 meta-iteration (20 tasks × 20 episodes × 100 steps, 2→100→100→2 Gaussian, ζ = 1), \
         {} rayon threads, {rounds} interleaved rounds after 2 warm-up iterations",
        rayon::current_num_threads()
    );
    let timings = bench::table1(2, rounds).expect("meta-iteration");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for t in &timings {
        println!(
            "{:>25}: wall median {:7.2} ms  min {:7.2} ms   CPU median {:7.2} ms",
            t.name,
            ms(t.median()),
            ms(t.min()),
            ms(t.cpu_median())
        );
    }
    let get = |name: &str, f: fn(&Timing) -> Duration| {
        timings
            .iter()
            .find(|t| t.name == name)
            .map(|t| f(t).as_secs_f64())
            .expect("variant")
    };
    for (what, f) in [
        ("wall medians", Timing::median as fn(&Timing) -> _),
        ("wall minima ", Timing::min),
        ("CPU medians ", Timing::cpu_median),
    ] {
        println!(
            "ratios of {what}: sgmrl / maml = {:.3}   sgmrl-fo / fomaml = {:.3}   \
             maml / fomaml = {:.3}   sgmrl-pre / maml = {:.3}",
            get("sgmrl", f) / get("maml", f),
            get("sgmrl-fo", f) / get("fomaml", f),
            get("maml", f) / get("fomaml", f),
            get("sgmrl-pre", f) / get("maml", f),
        );
    }
    println!(
        "floor of sgmrl-fo / fomaml (target ≤ 1.02): 1 + (extra time of the score's weight-gradient \
         product over the 20 inner batches D0) / (FO-MAML iteration), the extra product run after the \
         gradient's (grad+score − grad) or stacked with it (stacked − grad):"
    );
    for (what, f) in [
        ("wall medians", Timing::median as fn(&Timing) -> _),
        ("CPU medians ", Timing::cpu_median),
    ] {
        let fo = get("fomaml", f);
        let grad = get(Products::Gradient.name(), f);
        let after = 1.0 + (get(Products::GradientThenScore.name(), f) - grad) / fo;
        let stacked = 1.0 + (get(Products::Stacked.name(), f) - grad) / fo;
        println!(
            "  {what}: after {after:.3}   stacked {stacked:.3}   → floor {:.3}   \
             measured sgmrl-fo / fomaml {:.3}",
            after.min(stacked),
            get("sgmrl-fo", f) / fo,
        );
    }
    const REPS: usize = 7;
    println!(
        "matrix products of one run (FLOPs counted exactly from every product's shape) and the \
         GEMM wrapper alone on exactly those products ({REPS} repetitions, same threads):"
    );
    let mut alone = Vec::new();
    for t in &timings {
        let (wall, cpu) = bench::gemm_alone(&t.products, REPS);
        let median = |v: &[Duration]| {
            let mut v = v.to_vec();
            v.sort();
            v[v.len() / 2]
        };
        let (gw, gc) = (median(&wall).as_secs_f64(), median(&cpu).as_secs_f64());
        let gflop = t.flops() as f64 / 1e9;
        println!(
            "{:>34}: {gflop:6.3} GFLOP; achieved {:6.1} GFLOP/s wall, {:6.1} per CPU-second | \
             GEMM alone {:7.2} ms wall = {:6.1} GFLOP/s, {:6.1} per CPU-second | products at the \
             wrapper's speed: {:4.1} % of the run's wall median, {:4.1} % of its CPU median",
            t.name,
            gflop / t.median().as_secs_f64(),
            gflop / t.cpu_median().as_secs_f64(),
            gw * 1e3,
            gflop / gw,
            gflop / gc,
            100.0 * gw / t.median().as_secs_f64(),
            100.0 * gc / t.cpu_median().as_secs_f64(),
        );
        alone.push((t.name.clone(), gflop / gw, gflop / gc));
    }
    println!("for the README's Host speed table (this run):");
    for name in ["sgmrl-pre", "maml"] {
        println!(
            "  {name:>9} at Table 1: per-iteration wall median {:.1} ms (CPU median {:.1} ms)",
            ms(Duration::from_secs_f64(get(name, Timing::median))),
            ms(Duration::from_secs_f64(get(name, Timing::cpu_median))),
        );
    }
    let small = timings
        .iter()
        .find(|t| t.name == PYTORCH_MAML_RL_ROW)
        .expect("pytorch-maml-rl row");
    println!(
        "  {PYTORCH_MAML_RL_ROW}: {:.2} M environment steps per second of wall time \
         (wall median {:.1} ms per iteration)",
        small.env_steps_per_second() / 1e6,
        ms(small.median()),
    );
    for (name, peak, peak_cpu) in alone
        .iter()
        .take(5)
        .chain(alone.iter().filter(|(n, _, _)| n == PYTORCH_MAML_RL_ROW))
    {
        let t = timings.iter().find(|t| &t.name == name).expect("row");
        let gflop = t.flops() as f64 / 1e9;
        println!(
            "  {name:>9}: {gflop:.2} GFLOP of products per iteration: {:.1} GFLOP/s achieved \
             (wall; {:.1} per CPU-second) vs {peak:.1} GFLOP/s ({peak_cpu:.1} per CPU-second) for \
             the GEMM alone on the same products",
            gflop / t.median().as_secs_f64(),
            gflop / t.cpu_median().as_secs_f64(),
        );
    }
}
