//! Property tests of the bundle parser and writer: no input makes the parser panic, every
//! input it accepts re-encodes to the same bytes, and every valid spec round-trips.
//!
//! Needs the `std` feature (the writer's `to_bytes`): `cargo test --features std`.

use proptest::prelude::*;
use sgmrl::bundle::{Bundle, BundleSpec, TaskId, Trainer, declared_len};
use sgmrl::policy::{Distribution, PolicyShape};
use sgmrl::recipe::{ActionMap, Advantage, LossScale, Recipe};

/// An owned [`BundleSpec`].
#[derive(Clone, Debug)]
struct Owned {
    shape: PolicyShape,
    recipe: Recipe,
    task: TaskId,
    trainer: Trainer,
    seed: u64,
    meta_iterations: u32,
    baseline: Option<Vec<f32>>,
    params: Vec<f32>,
}

impl Owned {
    fn spec(&self) -> BundleSpec<'_> {
        BundleSpec {
            shape: self.shape,
            recipe: self.recipe,
            task: self.task,
            trainer: self.trainer,
            seed: self.seed,
            meta_iterations: self.meta_iterations,
            baseline: self.baseline.as_deref(),
            params: &self.params,
        }
    }

    /// Everything a parsed bundle says, copied out.
    fn from_bundle(b: &Bundle<'_>) -> Self {
        Self {
            shape: b.shape(),
            recipe: b.recipe(),
            task: b.task(),
            trainer: b.trainer(),
            seed: b.seed(),
            meta_iterations: b.meta_iterations(),
            baseline: b.baseline().map(|v| v.iter().collect()),
            params: b.params().iter().collect(),
        }
    }
}

fn finite_f32() -> impl Strategy<Value = f32> {
    use proptest::num::f32::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

fn shape() -> impl Strategy<Value = PolicyShape> {
    (any::<bool>(), 1u16..6, 0u16..6, 0u16..6, 0u16..4).prop_map(
        |(gaussian, obs_dim, h1, h2, act)| {
            let (distribution, act_dim) = if gaussian {
                (Distribution::Gaussian, 1 + act)
            } else {
                (Distribution::Softmax, 2 + act)
            };
            PolicyShape {
                distribution,
                obs_dim,
                // A second hidden layer only after a first.
                hidden: [h1, if h1 == 0 { 0 } else { h2 }],
                act_dim,
            }
        },
    )
}

fn recipe() -> impl Strategy<Value = Recipe> {
    (
        (1e-4f32..1.0, 1u16..=64, 2u16..50, 1u16..40, 0.0f32..=1.0),
        (0u8..5, 0.0f32..=1.0, any::<bool>(), any::<bool>()),
        (1e-3f32..10.0, proptest::option::of(1e-2f32..5.0)),
    )
        .prop_map(
            |(
                (alpha, steps, episodes, horizon, gamma),
                (code, lambda, normalize, per_step),
                (scale, clip),
            )| Recipe {
                alpha,
                steps,
                episodes,
                horizon,
                gamma,
                advantage: match code {
                    0 => Advantage::RewardToGo,
                    1 => Advantage::TimeBaseline,
                    2 => Advantage::BatchMeanBaseline,
                    3 => Advantage::LinearFeatureGae { lambda },
                    _ => Advantage::ScaledTimeBaseline,
                },
                normalize,
                loss: if per_step {
                    LossScale::PerStep
                } else {
                    LossScale::PerEpisode
                },
                action: ActionMap { scale, clip },
            },
        )
}

fn valid_spec() -> impl Strategy<Value = Owned> {
    (
        shape(),
        recipe(),
        any::<u16>(),
        0u8..=5,
        any::<u64>(),
        any::<u32>(),
    )
        .prop_flat_map(|(shape, recipe, task, trainer, seed, meta_iterations)| {
            let b = if recipe.advantage.uses_table() {
                usize::from(recipe.horizon)
            } else {
                0
            };
            (
                proptest::collection::vec(finite_f32(), b),
                proptest::collection::vec(finite_f32(), shape.n_params()),
            )
                .prop_map(move |(baseline, params)| Owned {
                    shape,
                    recipe,
                    task: TaskId(task),
                    trainer: Trainer::from_code(trainer).unwrap(),
                    seed,
                    meta_iterations,
                    baseline: (!baseline.is_empty()).then_some(baseline),
                    params,
                })
        })
}

/// A damage done to valid bytes.
#[derive(Clone, Debug)]
enum Mutation {
    /// XOR `mask` into the byte at `at` (modulo the length).
    Flip { at: usize, mask: u8 },
    /// Keep only the first `keep` bytes (modulo the length).
    Truncate { keep: usize },
    /// Append bytes.
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(|keep| Mutation::Truncate { keep }),
        proptest::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Extend),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Flip { at, mask } => {
            let n = bytes.len();
            bytes[at % n] ^= mask;
        }
        Mutation::Truncate { keep } => {
            let n = bytes.len();
            bytes.truncate(keep % n);
        }
        Mutation::Extend(tail) => bytes.extend_from_slice(tail),
    }
}

/// Recomputes the trailing CRC so that the checks behind it are exercised.
fn reseal(bytes: &mut [u8]) {
    if let Some(n) = bytes.len().checked_sub(4) {
        let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Whatever the parser accepts must re-encode to exactly the same bytes.
fn accepted_means_canonical(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(b) = Bundle::parse(bytes) {
        prop_assert_eq!(b.len(), bytes.len());
        let again = Owned::from_bundle(&b).spec().to_bytes();
        prop_assert_eq!(again.as_deref(), Ok(bytes));
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = declared_len(&bytes);
        accepted_means_canonical(&bytes)?;
    }

    #[test]
    fn arbitrary_header_behind_valid_magic_and_crc_never_panics(
        valid in valid_spec(),
        header in proptest::collection::vec(any::<u8>(), 68),
        edits in proptest::collection::vec((8usize..76, any::<u8>()), 1..4),
    ) {
        // Everything after the magic, version and header length is random, or a few header
        // bytes are; the CRC is recomputed so the field checks, not the CRC, decide.
        let mut bytes = valid.spec().to_bytes().unwrap();
        let mut whole = bytes.clone();
        whole[8..76].copy_from_slice(&header);
        reseal(&mut whole);
        accepted_means_canonical(&whole)?;
        for (at, value) in edits {
            bytes[at] = value;
        }
        reseal(&mut bytes);
        accepted_means_canonical(&bytes)?;
    }

    #[test]
    fn damaged_valid_bundle_parses_canonically_or_errs(
        valid in valid_spec(),
        damage in proptest::collection::vec(mutation(), 1..4),
        resealed in any::<bool>(),
    ) {
        let mut bytes = valid.spec().to_bytes().unwrap();
        for m in &damage {
            if bytes.is_empty() {
                break;
            }
            apply(&mut bytes, m);
        }
        if resealed {
            reseal(&mut bytes);
        }
        accepted_means_canonical(&bytes)?;
        // Without resealing, one damaged byte anywhere is caught (CRC-32 detects every
        // error burst of up to 32 bits).
        if !resealed && matches!(damage.as_slice(), [Mutation::Flip { .. }]) {
            let original = valid.spec().to_bytes().unwrap();
            prop_assert_eq!(Bundle::parse(&bytes).is_ok(), bytes == original);
        }
    }

    #[test]
    fn valid_spec_round_trips(valid in valid_spec()) {
        let bytes = valid.spec().to_bytes().unwrap();
        let b = Bundle::parse(&bytes).unwrap();
        let back = Owned::from_bundle(&b);
        prop_assert_eq!(back.shape, valid.shape);
        prop_assert_eq!(back.recipe, valid.recipe);
        prop_assert_eq!(back.task, valid.task);
        prop_assert_eq!(back.trainer, valid.trainer);
        prop_assert_eq!(back.seed, valid.seed);
        prop_assert_eq!(back.meta_iterations, valid.meta_iterations);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&back.params), bits(&valid.params));
        prop_assert_eq!(
            back.baseline.as_deref().map(bits),
            valid.baseline.as_deref().map(bits)
        );
        // And at an odd address.
        let mut shifted = vec![0u8; bytes.len() + 1];
        shifted[1..].copy_from_slice(&bytes);
        prop_assert_eq!(Bundle::parse(&shifted[1..]), Ok(b));
    }
}
