//! Host↔device parity cases: deterministic computations whose results must be bit-identical
//! on the host (x86-64) and on every QEMU machine.
//!
//! This file depends only on `core` and `sgmrl`, so the host generator (`pins/`, which
//! includes it with `#[path]`) and the firmware run the very same code. `pins/` prints the
//! host's results as `src/pins.rs`; `selftest` compares its own results against them and
//! `run-all.sh` checks that `src/pins.rs` is what the current core computes on the host.

use sgmrl::policy::{Policy, PolicyError};
use sgmrl::rng::Rng;

/// FNV-1a (32-bit) over the little-endian bytes of `values`: a cheap, table-free checksum
/// of a parameter vector that a host script reproduces in one line.
pub fn fnv1a_f32(values: impl IntoIterator<Item = f32>) -> u32 {
    values.into_iter().fold(FNV1A_INIT, fnv1a_f32_step)
}

/// FNV-1a's initial state.
const FNV1A_INIT: u32 = 0x811c_9dc5;

/// The FNV-1a state `h` after `v`'s four little-endian bytes.
fn fnv1a_f32_step(mut h: u32, v: f32) -> u32 {
    for b in v.to_le_bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Largest parameter count a policy case handles (stack buffers).
pub const MAX_CASE_PARAMS: usize = 400;

/// Actions sampled per policy case.
pub const CASE_DRAWS: usize = 5;

/// What a policy case computes, as bit patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyCase {
    /// `f32::to_bits` of each sampled action's first scalar.
    pub actions: [u32; CASE_DRAWS],
    /// `f32::to_bits` of `log π(action | obs)` for each draw.
    pub log_probs: [u32; CASE_DRAWS],
    /// [`fnv1a_f32`] of `Σ_draws ∇ log π` (accumulated in draw order, weight 1).
    pub grad_fnv: u32,
    /// `f32::to_bits` of the gradient's first scalar.
    pub grad_first: u32,
}

/// Runs `policy` on parameters `0.3·N(0,1)` from `Rng::new(seed)`, observation
/// `[0.5, -0.25, 0.125, …]`, and [`CASE_DRAWS`] actions sampled with `Rng::new(seed + 1)`.
/// Parameters are read from little-endian bytes when `from_bytes` (as from flash), else from
/// a `&[f32]`; both must give the same bits.
pub fn policy_case<P: Policy>(
    policy: &P,
    seed: u64,
    from_bytes: bool,
) -> Result<PolicyCase, PolicyError> {
    let n = P::N_PARAMS;
    let mut params = [0.0f32; MAX_CASE_PARAMS];
    let mut grad = [0.0f32; MAX_CASE_PARAMS];
    let mut bytes = [0u8; 4 * MAX_CASE_PARAMS + 1];
    let too_big = PolicyError::ParamLength(sgmrl::policy::LenMismatch {
        expected: n,
        got: MAX_CASE_PARAMS,
    });
    let params = params.get_mut(..n).ok_or(too_big)?;
    let grad = grad.get_mut(..n).ok_or(too_big)?;
    let mut rng = Rng::new(seed);
    for p in params.iter_mut() {
        *p = 0.3 * rng.normal();
    }
    // Offset by one byte: the flash view must not rely on alignment.
    let raw = bytes.get_mut(1..1 + 4 * n).ok_or(too_big)?;
    for (chunk, p) in raw.chunks_exact_mut(4).zip(params.iter()) {
        chunk.copy_from_slice(&p.to_le_bytes());
    }
    let flash = sgmrl::policy::LeF32s::new(raw).ok_or(too_big)?;

    let mut obs = [0.0f32; 32];
    let obs = obs.get_mut(..P::OBS_DIM).ok_or(too_big)?;
    let mut x = 0.5f32;
    for o in obs.iter_mut() {
        *o = x;
        x *= -0.5;
    }

    let mut out = PolicyCase {
        actions: [0; CASE_DRAWS],
        log_probs: [0; CASE_DRAWS],
        grad_fnv: 0,
        grad_first: 0,
    };
    let mut rng = Rng::new(seed + 1);
    let mut action = [0.0f32; 32];
    let action = action.get_mut(..P::ACTION_WIDTH).ok_or(too_big)?;
    for (a_bits, lp_bits) in out.actions.iter_mut().zip(out.log_probs.iter_mut()) {
        let lp = if from_bytes {
            policy.sample(flash, obs, &mut rng, action)?;
            policy.accumulate_grad_log_prob(flash, obs, action, 1.0, grad)?
        } else {
            policy.sample(&*params, obs, &mut rng, action)?;
            policy.accumulate_grad_log_prob(&*params, obs, action, 1.0, grad)?
        };
        let lp_alone = if from_bytes {
            policy.log_prob(flash, obs, action)?
        } else {
            policy.log_prob(&*params, obs, action)?
        };
        if lp_alone.to_bits() != lp.to_bits() {
            return Err(PolicyError::NonFiniteOutput);
        }
        *a_bits = action.first().copied().unwrap_or(f32::NAN).to_bits();
        *lp_bits = lp.to_bits();
    }
    out.grad_fnv = fnv1a_f32(grad.iter().copied());
    out.grad_first = grad.first().copied().unwrap_or(f32::NAN).to_bits();
    Ok(out)
}

/// The policies the parity cases cover, with their seeds: a linear and an MLP softmax, a
/// one- and a two-hidden-layer Gaussian.
pub mod policies {
    use sgmrl::policy::{GaussianMlp, SoftmaxLinear, SoftmaxMlp};
    /// Linear softmax, 2 observations, 4 actions.
    pub type SoftLin = SoftmaxLinear<2, 4>;
    /// Softmax MLP 3 → 8 → 4.
    pub type SoftMlp = SoftmaxMlp<3, 8, 0, 4>;
    /// Gaussian MLP 2 → 16 → 2 (the demo's size).
    pub type Gauss1 = GaussianMlp<2, 16, 0, 2>;
    /// Gaussian MLP 2 → 16 → 16 → 2.
    pub type Gauss2 = GaussianMlp<2, 16, 16, 2>;
}

/// The policy of the committed test bundle `bundles/test.sgml`.
pub type TestBundlePolicy = policies::Gauss1;

/// Parameter count of [`TestBundlePolicy`].
pub const TEST_BUNDLE_PARAMS: usize = <TestBundlePolicy as Policy>::N_PARAMS;

/// Fills the parameters of the test bundle: weights and biases `0.3·N(0,1)` from
/// `Rng::new(2024)`, log standard deviations `ln 4` (σ = 4 raw units, 0.04 after the
/// paper's 0.01 action scaling). Not meta-trained: a fixed, reproducible starting point.
pub fn test_bundle_params(out: &mut [f32; TEST_BUNDLE_PARAMS]) {
    let act = <TestBundlePolicy as Policy>::SHAPE.act_dim as usize;
    let mut rng = Rng::new(2024);
    let (weights, log_std) = out.split_at_mut(TEST_BUNDLE_PARAMS - act);
    for w in weights.iter_mut() {
        *w = 0.3 * rng.normal();
    }
    log_std.fill(core::f32::consts::LN_2 * 2.0);
}

/// The test bundle's recipe: the paper's nav2d horizon and action map, ζ = 2 steps of
/// N = 10 episodes, reward-to-go, α = 0.001.
pub const TEST_BUNDLE_RECIPE: sgmrl::recipe::Recipe = sgmrl::recipe::Recipe {
    alpha: 0.001,
    steps: 2,
    episodes: 10,
    horizon: sgmrl::sim::Nav2d::PAPER_HORIZON,
    gamma: 0.99,
    advantage: sgmrl::recipe::Advantage::RewardToGo,
    normalize: false,
    loss: sgmrl::recipe::LossScale::PerEpisode,
    action: sgmrl::sim::Nav2d::PAPER_ACTION_MAP,
};

/// Adapter memory the test bundle's recipe needs, in `f32`s.
pub const TEST_BUNDLE_MEMORY_FLOATS: usize = TEST_BUNDLE_RECIPE
    .memory(&<TestBundlePolicy as Policy>::SHAPE)
    .total_floats();

/// Everything `bundles/test.sgml` holds besides its parameters: task nav2d and
/// [`TEST_BUNDLE_RECIPE`].
pub fn test_bundle_spec(params: &[f32]) -> sgmrl::bundle::BundleSpec<'_> {
    sgmrl::bundle::BundleSpec {
        shape: <TestBundlePolicy as Policy>::SHAPE,
        recipe: TEST_BUNDLE_RECIPE,
        task: sgmrl::bundle::TaskId::NAV2D,
        trainer: sgmrl::bundle::Trainer::Unknown,
        seed: 2024,
        meta_iterations: 0,
        baseline: None,
        params,
    }
}

/// Encoded length of the test bundle in bytes.
pub const TEST_BUNDLE_LEN: usize =
    sgmrl::bundle::encoded_len(&<TestBundlePolicy as Policy>::SHAPE, 0);

/// Encodes the test bundle into `out`.
pub fn encode_test_bundle(
    out: &mut [u8; TEST_BUNDLE_LEN],
) -> Result<(), sgmrl::bundle::BundleError> {
    let mut params = [0.0f32; TEST_BUNDLE_PARAMS];
    test_bundle_params(&mut params);
    test_bundle_spec(&params).encode_into(out).map(|_| ())
}

/// Goal of the demo task (inside nav2d's square).
pub const DEMO_GOAL: [f32; 2] = [0.3, -0.2];
/// Seed of the demo's random streams.
pub const DEMO_SEED: u64 = 7;

/// Progress of the demo after each adaptation step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepInfo {
    /// Steps applied so far (1-based).
    pub step: u16,
    /// Mean undiscounted return of the step's batch: the policy *before* this step.
    pub mean_return: f32,
    /// Environment steps taken during this adaptation step.
    pub env_steps: u32,
}

/// Result of the demo, comparable between host and device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemoOutcome {
    /// Steps applied (ζ).
    pub steps: u16,
    /// [`fnv1a_f32`] of every step's batch mean return, in order.
    pub returns_fnv: u32,
    /// `f32::to_bits` of the mean return of `N` evaluation episodes after adaptation.
    pub final_return: u32,
    /// CRC-32 of the adapted parameters ([`sgmrl::adapt::ParamsRef::checksum`]).
    pub params_crc: u32,
    /// Environment steps taken while adapting (evaluation excluded).
    pub env_steps: u32,
}

/// One episode on `env`, tick by tick as a robot's control loop drives the adapter
/// (`act` → actuate → `reward`, then `end_episode`); returns what the adapter did and the
/// number of environment steps.
fn episode<P: Policy, E: sgmrl::env::Env>(
    ad: &mut sgmrl::adapt::Adapter<'_, P, sgmrl::policy::LeF32s<'_>>,
    env: &mut E,
) -> Result<(sgmrl::adapt::Progress, u32), sgmrl::adapt::AdaptError<E::Error>> {
    use sgmrl::adapt::AdaptError;
    let mut obs = [0.0f32; DEMO_IO];
    let obs = obs.get_mut(..P::OBS_DIM).ok_or(AdaptError::TooWide)?;
    let mut action = [0.0f32; DEMO_IO];
    let action = action
        .get_mut(..P::ACTION_WIDTH)
        .ok_or(AdaptError::TooWide)?;
    env.reset(obs).map_err(AdaptError::Env)?;
    let mut n = 0;
    for _ in 0..ad.recipe().horizon {
        act(ad, obs, action).map_err(AdaptError::with_env)?;
        let tr = env.step(action, obs).map_err(AdaptError::Env)?;
        n += 1;
        reward(ad, tr.reward).map_err(AdaptError::with_env)?;
        if tr.done {
            break;
        }
    }
    let progress = end_episode(ad).map_err(AdaptError::with_env)?;
    Ok((progress, n))
}

/// Observation and action buffers of the demo loop: enough for the simulators in
/// `sgmrl::sim` (nav2d: 2 and 2), and small, since they are on the stack while the
/// adapter computes the step's gradient.
const DEMO_IO: usize = 8;

// `act`, `reward` and `end_episode` out of line: each keeps its locals in its own frame, which
// is popped before the other runs, instead of all in `episode`'s frame at once (the peak
// stack is a budget).
#[inline(never)]
fn act<P: Policy>(
    ad: &mut sgmrl::adapt::Adapter<'_, P, sgmrl::policy::LeF32s<'_>>,
    obs: &[f32],
    action: &mut [f32],
) -> Result<(), sgmrl::adapt::AdaptError> {
    action.copy_from_slice(ad.act(obs)?);
    Ok(())
}

#[inline(never)]
fn reward<P: Policy>(
    ad: &mut sgmrl::adapt::Adapter<'_, P, sgmrl::policy::LeF32s<'_>>,
    r: f32,
) -> Result<(), sgmrl::adapt::AdaptError> {
    ad.reward(r)
}

#[inline(never)]
fn end_episode<P: Policy>(
    ad: &mut sgmrl::adapt::Adapter<'_, P, sgmrl::policy::LeF32s<'_>>,
) -> Result<sgmrl::adapt::Progress, sgmrl::adapt::AdaptError> {
    ad.end_episode()
}

/// The adapter of the demo. Out of line, so that the value `Adapter::new` builds before
/// returning it lives in this frame, which is gone before the adaptation runs.
#[inline(never)]
fn new_adapter<'m, 'b, P: Policy + Default>(
    bundle: &sgmrl::bundle::Bundle<'b>,
    memory: &'m mut [f32],
) -> Result<sgmrl::adapt::Adapter<'m, P, sgmrl::policy::LeF32s<'b>>, sgmrl::adapt::AdaptError> {
    sgmrl::adapt::Adapter::new(
        P::default(),
        bundle.params(),
        bundle.baseline(),
        bundle.recipe(),
        memory,
        DEMO_SEED,
    )
}

/// The adaptation demo: ζ steps on `env` with the bundle's recipe and [`DEMO_SEED`], then
/// `N` evaluation episodes of the adapted policy (N = the recipe's episodes per step).
/// `on_step` runs after each applied step (the firmware measures and prints there).
pub fn adapt_demo<P: Policy + Default, E: sgmrl::env::Env>(
    bundle: &sgmrl::bundle::Bundle<'_>,
    env: &mut E,
    memory: &mut [f32],
    mut on_step: impl FnMut(&StepInfo),
) -> Result<DemoOutcome, sgmrl::adapt::AdaptError<E::Error>> {
    use sgmrl::adapt::{AdaptError, Progress};
    let recipe = bundle.recipe();
    // Used in place inside the `Result`: moving the adapter out of it would give it a
    // second stack slot for the whole adaptation.
    let mut made = new_adapter::<P>(bundle, memory);
    let ad = match &mut made {
        Ok(ad) => ad,
        Err(e) => return Err(e.with_env()),
    };
    // The returns' hash, folded in as they come: an array of MAX_STEPS returns would
    // sit on the stack all through the adaptation.
    let mut returns_fnv = FNV1A_INIT;
    let mut env_steps = 0u32;
    let mut step_env_steps = 0u32;
    while !ad.is_adapted() {
        let (progress, n) = episode(ad, env)?;
        step_env_steps += n;
        if let Progress::Stepped { step, mean_return } = progress {
            returns_fnv = fnv1a_f32_step(returns_fnv, mean_return);
            on_step(&StepInfo {
                step,
                mean_return,
                env_steps: step_env_steps,
            });
            env_steps += step_env_steps;
            step_env_steps = 0;
        }
    }
    let mut sum = 0.0f32;
    for _ in 0..recipe.episodes {
        match episode(ad, env)?.0 {
            Progress::Adapted { episode_return } => sum += episode_return,
            // Unreachable once adapted; reported rather than panicking.
            _ => return Err(AdaptError::Shape),
        }
    }
    let steps = ad.steps_done();
    Ok(DemoOutcome {
        steps,
        returns_fnv,
        final_return: (sum / f32::from(recipe.episodes)).to_bits(),
        params_crc: ad.with_params(|p| p.checksum()),
        env_steps,
    })
}
