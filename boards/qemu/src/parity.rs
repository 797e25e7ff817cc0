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
    let mut h: u32 = 0x811c_9dc5;
    for v in values {
        for b in v.to_le_bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
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

/// The policy of the committed test bundle `bundles/test.sgmrl`.
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

/// Everything `bundles/test.sgmrl` holds besides its parameters: the paper's nav2d task
/// and action map, ζ = 2 steps of N = 10 episodes of H = 100 steps, reward-to-go.
pub fn test_bundle_spec(params: &[f32]) -> sgmrl::bundle::BundleSpec<'_> {
    use sgmrl::recipe::{Advantage, LossScale, Recipe};
    use sgmrl::sim::nav2d::Nav2d;
    sgmrl::bundle::BundleSpec {
        shape: <TestBundlePolicy as Policy>::SHAPE,
        recipe: Recipe {
            alpha: 0.1,
            steps: 2,
            episodes: 10,
            horizon: Nav2d::PAPER_HORIZON,
            gamma: 0.99,
            advantage: Advantage::RewardToGo,
            normalize: false,
            loss: LossScale::PerEpisode,
            action: Nav2d::PAPER_ACTION_MAP,
        },
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
