//! One meta-iteration of full SG-MRL, MAML (2nd order), first-order SG-MRL and FO-MAML on
//! the paper's Table 1 configuration (nav2d, 20 tasks × 20 episodes × 100 steps,
//! 2→100→100→2 Gaussian MLP, ζ = 1), timed side by side in one run.
//!
//! `cargo bench -p sgmrl-host --bench meta_iteration [-- ROUNDS [THREADS]]`

use sgmrl_host::bench;

fn main() {
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
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    for t in &timings {
        println!(
            "{:>10}: wall median {:7.1} ms  min {:7.1} ms   CPU median {:7.1} ms",
            t.name,
            ms(t.median()),
            ms(t.min()),
            ms(t.cpu_median())
        );
    }
    let get = |name: &str, f: fn(&bench::Timing) -> std::time::Duration| {
        timings
            .iter()
            .find(|t| t.name == name)
            .map(|t| f(t).as_secs_f64())
            .expect("variant")
    };
    for (what, f) in [
        (
            "wall medians",
            bench::Timing::median as fn(&bench::Timing) -> _,
        ),
        ("wall minima ", bench::Timing::min),
        ("CPU medians ", bench::Timing::cpu_median),
    ] {
        println!(
            "ratios of {what}: sgmrl-2nd / maml-2nd = {:.3}   sgmrl-1st / maml-1st = {:.3}   \
             maml-2nd / maml-1st = {:.3}   sgmrl-2nd-pre / maml-2nd = {:.3}",
            get("sgmrl-2nd", f) / get("maml-2nd", f),
            get("sgmrl-1st", f) / get("maml-1st", f),
            get("maml-2nd", f) / get("maml-1st", f),
            get("sgmrl-2nd-pre", f) / get("maml-2nd", f),
        );
    }
}
