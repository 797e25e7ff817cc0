//! The properties the fuzz targets check, shared by the targets.
//!
//! - [`check_bundle`]: any bytes either parse into a bundle that re-encodes to exactly the
//!   same bytes, or give a typed error consistent with `declared_len`.
//! - [`check_recipe`]: `Recipe::validate` agrees with the rules of `docs/bundle.md` written
//!   out independently, `Recipe::memory` matches a 128-bit reference, and a valid recipe
//!   survives a trip through a bundle bit for bit.

use arbitrary::Arbitrary;
use sgmrl::bundle::{Bundle, BundleError, BundleSpec, declared_len};
use sgmrl::policy::{Distribution, PolicyShape};
use sgmrl::recipe::{ActionMap, Advantage, LossScale, MAX_STEPS, Recipe, RecipeError};

/// CRC-32/ISO-HDLC, as the bundle uses.
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Checks one input as given, its prefix of the declared length, and (so that mutations
/// of the header get past the checksum) a copy whose trailing CRC is recomputed.
pub fn check_bundle(data: &[u8]) {
    let _ = check_bytes(data);
    if let Ok(n) = declared_len(data)
        && n < data.len()
        && let Some(prefix) = data.get(..n)
    {
        let _ = check_bytes(prefix);
    }
    if data.len() >= 4 {
        let mut fixed = data.to_vec();
        let body = fixed.len() - 4;
        let crc = CRC32.checksum(&fixed[..body]);
        fixed[body..].copy_from_slice(&crc.to_le_bytes());
        let r = check_bytes(&fixed);
        assert!(
            !matches!(r, Err(BundleError::Checksum { .. })),
            "checksum error on bytes with a correct CRC"
        );
    }
}

/// One parse: a bundle re-encodes to the same bytes; an error agrees with `declared_len`
/// and formats without panicking.
pub fn check_bytes(data: &[u8]) -> Result<(), BundleError> {
    let declared = declared_len(data);
    match Bundle::parse(data) {
        Ok(b) => {
            assert_eq!(declared, Ok(data.len()));
            assert_eq!(b.as_bytes(), data);
            assert_eq!(b.recipe().validate(), Ok(()));
            assert!(b.shape().is_valid());
            let crc = u32::from_le_bytes(data[data.len() - 4..].try_into().unwrap());
            assert_eq!(b.checksum(), crc);
            assert_eq!(reencode(&b), data, "re-encoding changed the bytes");
            Ok(())
        }
        Err(e) => {
            let _ = e.to_string();
            match declared {
                // The header-level checks are declared_len's, in the same order.
                Err(d) => assert_eq!(d, e),
                Ok(n) if n > data.len() => {
                    assert_eq!(
                        e,
                        BundleError::Truncated {
                            needed: n,
                            got: data.len()
                        }
                    )
                }
                Ok(n) if n < data.len() => assert_eq!(
                    e,
                    BundleError::TrailingBytes {
                        expected: n,
                        found: data.len()
                    }
                ),
                Ok(_) => assert!(!matches!(
                    e,
                    BundleError::Truncated { .. } | BundleError::TrailingBytes { .. }
                )),
            }
            Err(e)
        }
    }
}

/// The bundle's fields written back by the writer.
pub fn reencode(b: &Bundle<'_>) -> Vec<u8> {
    let baseline: Option<Vec<f32>> = b.baseline().map(|v| v.iter().collect());
    let params: Vec<f32> = b.params().iter().collect();
    let spec = BundleSpec {
        shape: b.shape(),
        recipe: b.recipe(),
        task: b.task(),
        trainer: b.trainer(),
        seed: b.seed(),
        meta_iterations: b.meta_iterations(),
        baseline: baseline.as_deref(),
        params: &params,
    };
    let bytes = spec.to_bytes().expect("a parsed bundle re-encodes");
    let mut buf = vec![0u8; bytes.len() + 3];
    assert_eq!(spec.encode_into(&mut buf), Ok(bytes.len()));
    assert_eq!(&buf[..bytes.len()], &bytes[..]);
    bytes
}

/// Every recipe and shape field, floats as raw bits so NaNs, infinities and −0 occur.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct RecipeInput {
    alpha: u32,
    steps: u16,
    episodes: u16,
    horizon: u16,
    gamma: u32,
    advantage: u8,
    lambda: u32,
    normalize: bool,
    per_step: bool,
    scale: u32,
    clip: Option<u32>,
    gaussian: bool,
    obs_dim: u16,
    hidden: [u16; 2],
    act_dim: u16,
}

impl RecipeInput {
    /// The recipe these fields describe.
    pub fn recipe(&self) -> Recipe {
        Recipe {
            alpha: f32::from_bits(self.alpha),
            steps: self.steps,
            episodes: self.episodes,
            horizon: self.horizon,
            gamma: f32::from_bits(self.gamma),
            advantage: match self.advantage % 5 {
                0 => Advantage::RewardToGo,
                1 => Advantage::TimeBaseline,
                2 => Advantage::BatchMeanBaseline,
                4 => Advantage::ScaledTimeBaseline,
                _ => Advantage::LinearFeatureGae {
                    lambda: f32::from_bits(self.lambda),
                },
            },
            normalize: self.normalize,
            loss: if self.per_step {
                LossScale::PerStep
            } else {
                LossScale::PerEpisode
            },
            action: ActionMap {
                scale: f32::from_bits(self.scale),
                clip: self.clip.map(f32::from_bits),
            },
        }
    }

    /// The shape these fields describe (possibly invalid).
    pub fn shape(&self) -> PolicyShape {
        PolicyShape {
            distribution: if self.gaussian {
                Distribution::Gaussian
            } else {
                Distribution::Softmax
            },
            obs_dim: self.obs_dim,
            hidden: self.hidden,
            act_dim: self.act_dim,
        }
    }
}

/// The recipe rules of `docs/bundle.md` (check order 13), written out independently.
pub fn reference_validate(r: &Recipe) -> Result<(), RecipeError> {
    let pos = |x: f32| x.is_finite() && x > 0.0;
    let unit = |x: f32| x.is_finite() && (0.0..=1.0).contains(&x);
    // The scaled baseline's normalisation is a scale after the batch: it streams.
    let batch = (r.normalize && !matches!(r.advantage, Advantage::ScaledTimeBaseline))
        || matches!(
            r.advantage,
            Advantage::BatchMeanBaseline | Advantage::LinearFeatureGae { .. }
        );
    if !pos(r.alpha) {
        return Err(RecipeError::Alpha);
    }
    if !(1..=MAX_STEPS).contains(&r.steps) {
        return Err(RecipeError::Steps);
    }
    if r.episodes < if batch { 2 } else { 1 } {
        return Err(RecipeError::Episodes);
    }
    if r.horizon == 0 {
        return Err(RecipeError::Horizon);
    }
    if !unit(r.gamma) {
        return Err(RecipeError::Gamma);
    }
    if let Advantage::LinearFeatureGae { lambda } = r.advantage
        && !unit(lambda)
    {
        return Err(RecipeError::Lambda);
    }
    if !pos(r.action.scale) || r.action.clip.is_some_and(|c| !pos(c)) {
        return Err(RecipeError::ActionMap);
    }
    Ok(())
}

/// `P` of a shape, in 128 bits.
fn params_u128(s: &PolicyShape) -> u128 {
    let (o, [h1, h2], a) = (
        u128::from(s.obs_dim),
        s.hidden.map(u128::from),
        u128::from(s.act_dim),
    );
    let mut n = 0;
    if h1 > 0 {
        n += h1 * o + h1;
    }
    if h2 > 0 {
        n += h2 * h1 + h2;
    }
    let i = if h2 > 0 {
        h2
    } else if h1 > 0 {
        h1
    } else {
        o
    };
    n += a * i + a;
    if s.distribution == Distribution::Gaussian {
        n += a;
    }
    n
}

/// Checks one recipe and shape.
pub fn check_recipe(input: &RecipeInput) {
    let r = input.recipe();
    let shape = input.shape();
    let valid = r.validate();
    assert_eq!(valid, reference_validate(&r), "{r:?}");
    let _ = r.needs_batch();
    let _ = r.alpha_per_sample();

    // Memory, against a 128-bit reference written from the adapter's docs.
    let m = r.memory(&shape);
    let p = params_u128(&shape);
    let h = u128::from(r.horizon);
    let aw = if shape.distribution == Distribution::Gaussian {
        u128::from(shape.act_dim)
    } else {
        1
    };
    let per_step = u128::from(shape.obs_dim) + aw + 1;
    let batch = r.needs_batch();
    let held = if batch { u128::from(r.episodes) } else { 1 };
    let f = 2 * u128::from(shape.obs_dim) + 4;
    let scratch = match r.advantage {
        Advantage::RewardToGo | Advantage::TimeBaseline => 0,
        // Its running sums: Σ R b, Σ b², Σ A², steps.
        Advantage::ScaledTimeBaseline => 4,
        Advantage::BatchMeanBaseline => h,
        Advantage::LinearFeatureGae { .. } => f * f + 3 * f,
    };
    let episode = held * h * per_step + if batch { u128::from(r.episodes) } else { 0 } + scratch;
    let params = if r.steps > 1 { p } else { 0 };
    // The policy's hidden-layer activations and deltas.
    let hidden = 2 * (u128::from(shape.hidden[0]) + u128::from(shape.hidden[1]));
    let sat = |x: u128| usize::try_from(x).unwrap_or(usize::MAX);
    assert_eq!(m.grad_floats, sat(p), "{r:?} {shape:?}");
    assert_eq!(m.params_floats, sat(params));
    assert_eq!(m.episode_floats, sat(episode));
    assert_eq!(m.scratch_floats, sat(hidden));
    assert_eq!(m.total_floats(), sat(params + p + episode + hidden));
    assert_eq!(m.total_bytes(), sat(4 * (params + p + episode + hidden)));
    let lower = sgmrl::adapt::Memory::lower_bound_floats(&shape, r.horizon);
    assert_eq!(lower, sat(p + h * per_step));
    if valid.is_ok() {
        // A valid recipe needs at least the yardstick, exactly it, the hidden layers'
        // scratch and the rule's running sums when it streams one step.
        assert!(m.total_floats() >= lower);
        if !batch && r.steps == 1 {
            assert_eq!(m.total_floats(), sat(p + h * per_step + hidden + scratch));
        }
    }

    // Through a bundle: the writer refuses exactly the invalid recipes, and a valid one
    // comes back bit for bit. A small valid shape keeps the bundle small; so does skipping
    // time-baseline recipes with long horizons (their table is H floats), which otherwise
    // slow the target a hundredfold.
    if r.advantage.uses_table() && r.horizon > 256 {
        return;
    }
    let small = PolicyShape {
        distribution: shape.distribution,
        obs_dim: 1 + shape.obs_dim % 3,
        hidden: [shape.hidden[0] % 3, 0],
        act_dim: 2 + shape.act_dim % 2,
    };
    let params = vec![0.25f32; small.n_params()];
    let baseline = vec![-1.0f32; usize::from(r.horizon)];
    let spec = BundleSpec {
        shape: small,
        recipe: r,
        task: sgmrl::bundle::TaskId::UNSPECIFIED,
        trainer: sgmrl::bundle::Trainer::Unknown,
        seed: 0,
        meta_iterations: 0,
        baseline: r.advantage.uses_table().then_some(&baseline[..]),
        params: &params,
    };
    match (valid, spec.to_bytes()) {
        (Err(e), out) => assert_eq!(out, Err(BundleError::Recipe(e))),
        (Ok(()), Ok(bytes)) => {
            let back = Bundle::parse(&bytes).unwrap().recipe();
            assert_eq!(bits(&back), bits(&r), "{r:?} came back as {back:?}");
        }
        (Ok(()), Err(e)) => panic!("valid recipe {r:?} not encodable: {e:?}"),
    }
}

/// A recipe's fields with floats as bits, for exact comparison (−0 ≠ +0, NaN = NaN);
/// "no clip" is `1 << 32`, which no bit pattern of an `f32` equals.
fn bits(r: &Recipe) -> [u64; 11] {
    let (adv, lambda) = match r.advantage {
        Advantage::RewardToGo => (0, 0),
        Advantage::TimeBaseline => (1, 0),
        Advantage::BatchMeanBaseline => (2, 0),
        Advantage::LinearFeatureGae { lambda } => (3, lambda.to_bits()),
        Advantage::ScaledTimeBaseline => (4, 0),
    };
    [
        r.alpha.to_bits().into(),
        r.steps.into(),
        r.episodes.into(),
        r.horizon.into(),
        r.gamma.to_bits().into(),
        adv,
        lambda.into(),
        r.normalize.into(),
        u64::from(r.loss == LossScale::PerStep),
        r.action.scale.to_bits().into(),
        r.action.clip.map_or(1 << 32, |c| c.to_bits().into()),
    ]
}
