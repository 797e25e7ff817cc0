//! A firmware-shaped binary that exercises the core the way a robot does, so that its
//! linked symbols show which panic paths survive optimisation. It is never run.
//!
//! Every input goes through `black_box`, so the optimiser cannot evaluate the parser or
//! the adapter at compile time and must keep their real code, panic paths included.
#![no_std]
#![no_main]

use core::hint::black_box;

use sgmrl::adapt::Adapter;
use sgmrl::bundle::{Bundle, declared_len};
use sgmrl::env::Env;
use sgmrl::faults::{Faults, FaultyEnv};
use sgmrl::policy::{GaussianMlp, Policy, SoftmaxLinear};
use sgmrl::sim::{Nav2d, Nav2dDiscrete};

// Seed bundles from the committed corpus: a streaming rule, the time baseline, GAE with
// normalisation (the linear-baseline solver), and a batch-mean softmax.
static GAUSSIAN: &[u8] = include_bytes!("../../../tests/corpus/bundle/valid-gaussian-mlp.bin");
static TIME_BASELINE: &[u8] =
    include_bytes!("../../../tests/corpus/bundle/valid-gaussian-time-baseline.bin");
static GAE: &[u8] =
    include_bytes!("../../../tests/corpus/bundle/valid-gaussian-gae-normalized-per-step.bin");
static SOFTMAX: &[u8] = include_bytes!("../../../tests/corpus/bundle/valid-softmax-batch-mean.bin");

/// Scalars of adapter memory (more than any bundle above needs).
const MEMORY: usize = 2048;

/// Parses `bytes`, adapts `P` on `env` through its faults, evaluates; a checksum or an
/// error code.
fn adapt<P: Policy + Default, E: Env>(bytes: &[u8], env: &mut E, seed: u64) -> u32 {
    let Ok(n) = declared_len(bytes) else { return 1 };
    let Some(bytes) = bytes.get(..n) else {
        return 2;
    };
    let Ok(bundle) = Bundle::parse(bytes) else {
        return 3;
    };
    if bundle.check_policy::<P>().is_err() {
        return 4;
    }
    let mut memory = [0.0f32; MEMORY];
    let Ok(mut adapter) = Adapter::new(
        P::default(),
        bundle.params(),
        bundle.baseline(),
        bundle.recipe(),
        &mut memory,
        seed,
    ) else {
        return 5;
    };
    for _ in 0..black_box(100) {
        if adapter.run(env).is_ok() {
            break;
        }
    }
    let _ = black_box(adapter.evaluate(env, 2).ok());
    // The tick-by-tick API too.
    let obs = black_box([0.1f32; 2]);
    match adapter.act(&obs) {
        Ok(a) => {
            black_box(a);
            let _ = adapter.reward(black_box(-1.0));
            let _ = black_box(adapter.end_episode().ok());
        }
        Err(_) => {
            black_box(adapter.safe_action());
        }
    }
    adapter.with_params(|p| p.checksum())
}

#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    let seed = black_box(7u64);
    let faults = Faults {
        sensor_error: black_box(0.01),
        observation: black_box(0.01),
        reward: black_box(0.01),
        cut_short: black_box(0.01),
        ..Faults::NONE
    };
    let goal = black_box([0.3f32, -0.2]);
    let mut env = FaultyEnv::new(Nav2d::new(goal), faults, seed);
    let mut sum = adapt::<GaussianMlp<2, 4, 3, 2>, _>(black_box(GAUSSIAN), &mut env, seed);
    sum ^= adapt::<GaussianMlp<2, 4, 3, 2>, _>(black_box(TIME_BASELINE), &mut env, seed);
    sum ^= adapt::<GaussianMlp<2, 4, 3, 2>, _>(black_box(GAE), &mut env, seed);
    let mut discrete = FaultyEnv::new(Nav2dDiscrete::new(goal), faults, seed);
    sum ^= adapt::<SoftmaxLinear<2, 3>, _>(black_box(SOFTMAX), &mut discrete, seed);
    black_box(sum);
    #[cfg(feature = "negative-control")]
    {
        let table = black_box([1u8; 4]);
        black_box(table[black_box(9)]);
    }
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(not(feature = "link-time-no-panic"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // A firmware would reset or park the motors here; it never formats the message, so
    // the formatting code a panic message would need can be dropped by the linker.
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(feature = "link-time-no-panic")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    unsafe extern "C" {
        /// Defined nowhere: any call to the handler that survives optimisation fails the
        /// link with this name.
        fn sgmrl_panic_path_survived_optimisation() -> !;
    }
    // SAFETY: never linked unless no panic path remains, in which case it is never called.
    unsafe { sgmrl_panic_path_survived_optimisation() }
}
