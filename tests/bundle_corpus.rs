//! Replays the committed bundle corpus (`tests/corpus/bundle/`), the seeds and the inputs
//! the fuzzer (`fuzz/`, target `bundle_parse`) found interesting: every file either parses
//! into a bundle that re-encodes to exactly its bytes, or returns a typed error.
//!
//! File names say what to expect: `valid-*` must parse; `err-<Variant>-*` must fail with
//! that `BundleError` variant; `fuzz-*` may do either. Like the fuzz target, every file is
//! also replayed with its trailing CRC recomputed, which must never be a checksum error.
//!
//! The seeds are written by `write_seed_corpus` (ignored):
//! `SGMRL_WRITE_CORPUS=1 cargo test --features std --test bundle_corpus -- --ignored`.
//!
//! Needs the `std` feature (the bundle writer).

use std::path::{Path, PathBuf};

use sgmrl::bundle::{
    Bundle, BundleError, BundleSpec, HEADER_LEN, TaskId, Trainer, declared_len, encoded_len,
};
use sgmrl::policy::{Distribution, PolicyShape};
use sgmrl::recipe::{ActionMap, Advantage, LossScale, Recipe};

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bundle")
}

/// Re-encodes a parsed bundle with the writer.
fn reencode(b: &Bundle<'_>) -> Vec<u8> {
    let baseline: Option<Vec<f32>> = b.baseline().map(|v| v.iter().collect());
    let params: Vec<f32> = b.params().iter().collect();
    BundleSpec {
        shape: b.shape(),
        recipe: b.recipe(),
        task: b.task(),
        trainer: b.trainer(),
        seed: b.seed(),
        meta_iterations: b.meta_iterations(),
        baseline: baseline.as_deref(),
        params: &params,
    }
    .to_bytes()
    .unwrap()
}

/// Parses `data`: a bundle must round-trip; an error must agree with `declared_len`.
fn replay(data: &[u8]) -> Result<(), BundleError> {
    let declared = declared_len(data);
    match Bundle::parse(data) {
        Ok(b) => {
            assert_eq!(declared, Ok(data.len()));
            assert_eq!(reencode(&b), data, "round trip changed the bytes");
            Ok(())
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            if let Err(d) = declared {
                assert_eq!(d, e);
            }
            Err(e)
        }
    }
}

fn variant(e: &BundleError) -> String {
    let s = format!("{e:?}");
    s.split([' ', '(', '{'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn every_corpus_file_round_trips_or_is_a_typed_error() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus/bundle exists")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let (mut valid, mut errors, mut fuzz, mut fixed_ok) = (0, 0, 0, 0);
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(path).unwrap();
        let got = replay(&data);
        // As the fuzz target does: the same bytes with the CRC recomputed reach the checks
        // behind the checksum, and then never fail it.
        if data.len() >= 4 {
            let fixed = replay(&fix_crc(data.clone()));
            assert!(
                !matches!(fixed, Err(BundleError::Checksum { .. })),
                "{name}: {fixed:?}"
            );
            fixed_ok += usize::from(fixed.is_ok());
        }
        if name.starts_with("valid-") {
            assert_eq!(got, Ok(()), "{name}");
            valid += 1;
        } else if let Some(rest) = name.strip_prefix("err-") {
            let want = rest.split('-').next().unwrap();
            let e = got.expect_err(&name);
            assert_eq!(variant(&e), want, "{name}: {e:?}");
            errors += 1;
        } else {
            assert!(name.starts_with("fuzz-"), "unexpected corpus file {name}");
            fuzz += 1;
        }
    }
    // The seeds: every kind of bundle, every error variant the parser has.
    assert!(valid >= 10, "{valid} valid files");
    assert!(errors >= 30, "{errors} malformed files");
    println!(
        "{valid} valid, {errors} malformed, {fuzz} fuzzer-found files replayed; \
         {fixed_ok} parse with their CRC recomputed"
    );
}

#[test]
fn the_corpus_names_every_parser_error_variant() {
    let names: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // `PolicyMismatch` and `OutputTooSmall` are not parser errors.
    for v in [
        "Truncated",
        "BadMagic",
        "UnsupportedVersion",
        "HeaderLength",
        "TrailingBytes",
        "Checksum",
        "Reserved",
        "UnknownDistribution",
        "UnknownAdvantage",
        "UnknownTrainer",
        "BadShape",
        "UnexpectedLambda",
        "Recipe",
        "ParamCount",
        "BaselineLength",
        "NonFinite",
    ] {
        let prefix = format!("err-{v}-");
        assert!(names.iter().any(|n| n.starts_with(&prefix)), "no {prefix}*");
    }
}

// ---------------------------------------------------------------------------------------
// The seed corpus.

fn recipe() -> Recipe {
    Recipe {
        alpha: 0.1,
        steps: 2,
        episodes: 4,
        horizon: 5,
        gamma: 0.99,
        advantage: Advantage::RewardToGo,
        normalize: false,
        loss: LossScale::PerEpisode,
        action: ActionMap {
            scale: 0.01,
            clip: Some(0.1),
        },
    }
}

const SOFTMAX: PolicyShape = PolicyShape {
    distribution: Distribution::Softmax,
    obs_dim: 2,
    hidden: [0, 0],
    act_dim: 3,
};

const GAUSSIAN: PolicyShape = PolicyShape {
    distribution: Distribution::Gaussian,
    obs_dim: 2,
    hidden: [4, 3],
    act_dim: 2,
};

fn encode(shape: PolicyShape, recipe: Recipe, baseline: bool) -> Vec<u8> {
    let params: Vec<f32> = (0..shape.n_params())
        .map(|i| (i as f32 - 3.5) * 0.25)
        .collect();
    let table: Vec<f32> = (0..recipe.horizon).map(|h| -f32::from(h)).collect();
    BundleSpec {
        shape,
        recipe,
        task: TaskId::NAV2D,
        trainer: Trainer::SgMrl,
        seed: 42,
        meta_iterations: 1000,
        baseline: baseline.then_some(&table[..]),
        params: &params,
    }
    .to_bytes()
    .unwrap()
}

/// Recomputes the trailing CRC.
fn fix_crc(mut b: Vec<u8>) -> Vec<u8> {
    let n = b.len() - 4;
    let crc = CRC32.checksum(&b[..n]);
    b[n..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// `b` with `bytes` written at `offset`, CRC recomputed.
fn patch(b: &[u8], offset: usize, bytes: &[u8]) -> Vec<u8> {
    let mut b = b.to_vec();
    b[offset..offset + bytes.len()].copy_from_slice(bytes);
    fix_crc(b)
}

/// Every seed file: name and bytes.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let softmax = encode(SOFTMAX, recipe(), false);
    let gaussian = encode(GAUSSIAN, recipe(), false);
    let time_baseline = Recipe {
        advantage: Advantage::TimeBaseline,
        ..recipe()
    };
    let gae = Recipe {
        advantage: Advantage::LinearFeatureGae { lambda: 0.97 },
        normalize: true,
        loss: LossScale::PerStep,
        ..recipe()
    };
    let batch_mean = Recipe {
        advantage: Advantage::BatchMeanBaseline,
        normalize: true,
        action: ActionMap::IDENTITY,
        ..recipe()
    };
    let scaled_baseline = Recipe {
        advantage: Advantage::ScaledTimeBaseline,
        normalize: true,
        ..recipe()
    };
    let with_baseline = encode(GAUSSIAN, time_baseline, true);
    let mut out: Vec<(&str, Vec<u8>)> = vec![
        ("valid-softmax-linear", softmax.clone()),
        ("valid-gaussian-mlp", gaussian.clone()),
        ("valid-gaussian-time-baseline", with_baseline.clone()),
        (
            "valid-gaussian-scaled-baseline-normalized",
            encode(GAUSSIAN, scaled_baseline, true),
        ),
        (
            "valid-gaussian-gae-normalized-per-step",
            encode(GAUSSIAN, gae, false),
        ),
        (
            "valid-softmax-batch-mean",
            encode(SOFTMAX, batch_mean, false),
        ),
        (
            "valid-softmax-mlp-one-layer",
            encode(
                PolicyShape {
                    hidden: [5, 0],
                    ..SOFTMAX
                },
                recipe(),
                false,
            ),
        ),
    ];
    // Every trainer code and a user task id (the provenance fields take any such value).
    for (name, trainer, task) in [
        (
            "valid-trainer-unknown",
            Trainer::Unknown,
            TaskId::UNSPECIFIED,
        ),
        (
            "valid-trainer-first-order",
            Trainer::SgMrlFirstOrder,
            TaskId(3),
        ),
        ("valid-trainer-maml", Trainer::Maml, TaskId::NAV2D_DISCRETE),
        ("valid-trainer-fo-maml", Trainer::FoMaml, TaskId::FIRST_USER),
        (
            "valid-trainer-e-maml-user-task",
            Trainer::EMaml,
            TaskId(0xFFFF),
        ),
        ("valid-trainer-multitask", Trainer::MultiTask, TaskId::NAV2D),
    ] {
        let mut b = softmax.clone();
        b[52..54].copy_from_slice(&task.0.to_le_bytes());
        b[54] = trainer.code();
        out.push((name, fix_crc(b)));
    }
    // Lengths and framing.
    let g = &gaussian;
    out.push(("err-Truncated-empty", vec![]));
    out.push(("err-Truncated-magic-only", g[..4].to_vec()));
    out.push(("err-Truncated-half-header", g[..HEADER_LEN / 2].to_vec()));
    out.push(("err-Truncated-no-crc", g[..g.len() - 4].to_vec()));
    out.push(("err-Truncated-one-byte-short", g[..g.len() - 1].to_vec()));
    let mut trailing = g.clone();
    trailing.push(0);
    out.push(("err-TrailingBytes-one-extra", trailing));
    let mut two = g.clone();
    two.extend_from_slice(g);
    out.push(("err-TrailingBytes-two-bundles", two));
    out.push(("err-BadMagic-lowercase", patch(g, 0, b"sgml")));
    out.push(("err-Truncated-three-bytes", b"SGM".to_vec()));
    out.push(("err-BadMagic-elf-file", b"\x7fELF\x01\x01\x01\x00".to_vec()));
    out.push(("err-UnsupportedVersion-2", patch(g, 4, &2u16.to_le_bytes())));
    out.push(("err-UnsupportedVersion-0", patch(g, 4, &0u16.to_le_bytes())));
    out.push(("err-HeaderLength-80", patch(g, 6, &80u16.to_le_bytes())));
    // Counts that locate the CRC elsewhere.
    out.push((
        "err-Truncated-param-count-max",
        patch(g, 72, &u32::MAX.to_le_bytes()),
    ));
    out.push((
        "err-TrailingBytes-param-count-zero",
        patch(g, 72, &0u32.to_le_bytes()),
    ));
    // Corruption.
    let mut flipped = g.clone();
    flipped[HEADER_LEN + 5] ^= 0x10;
    out.push(("err-Checksum-flipped-param-bit", flipped));
    let mut crc = g.clone();
    let n = crc.len();
    crc[n - 1] ^= 0xFF;
    out.push(("err-Checksum-bad-crc", crc));
    // Reserved bits, every reserved byte.
    for (name, offset, value) in [
        ("err-Reserved-policy-byte-9", 9, 1u8),
        ("err-Reserved-pad-byte-18", 18, 0x80),
        ("err-Reserved-pad-byte-19", 19, 1),
        ("err-Reserved-pad-byte-30", 30, 1),
        ("err-Reserved-pad-byte-31", 31, 0x40),
        ("err-Reserved-flags-bit-2", 37, 0x04),
        ("err-Reserved-flags-bit-7", 37, 0x80),
        ("err-Reserved-pad-byte-38", 38, 1),
        ("err-Reserved-pad-byte-39", 39, 1),
        ("err-Reserved-provenance-byte-55", 55, 0xFF),
    ] {
        let mut b = g.clone();
        b[offset] |= value;
        out.push((name, fix_crc(b)));
    }
    // Codes.
    out.push(("err-UnknownDistribution-2", patch(g, 8, &[2])));
    out.push(("err-UnknownAdvantage-5", patch(g, 36, &[5])));
    out.push(("err-UnknownTrainer-7", patch(g, 54, &[7])));
    // Shapes (param_count is checked later, so the shape error wins).
    out.push(("err-BadShape-obs-0", patch(g, 10, &0u16.to_le_bytes())));
    out.push(("err-BadShape-act-0", patch(g, 16, &0u16.to_le_bytes())));
    out.push((
        "err-BadShape-second-layer-without-first",
        patch(g, 12, &0u16.to_le_bytes()),
    ));
    let s = &softmax;
    out.push((
        "err-BadShape-softmax-one-action",
        patch(s, 16, &1u16.to_le_bytes()),
    ));
    // Recipe fields.
    out.push((
        "err-UnexpectedLambda-nonzero",
        patch(g, 40, &0.5f32.to_le_bytes()),
    ));
    out.push((
        "err-UnexpectedLambda-negative-zero",
        patch(g, 40, &(-0.0f32).to_le_bytes()),
    ));
    for (name, offset, bytes) in [
        ("err-Recipe-alpha-zero", 20, 0.0f32.to_le_bytes().to_vec()),
        ("err-Recipe-alpha-nan", 20, f32::NAN.to_le_bytes().to_vec()),
        (
            "err-Recipe-alpha-inf",
            20,
            f32::INFINITY.to_le_bytes().to_vec(),
        ),
        ("err-Recipe-steps-0", 24, 0u16.to_le_bytes().to_vec()),
        ("err-Recipe-steps-65", 24, 65u16.to_le_bytes().to_vec()),
        ("err-Recipe-episodes-0", 26, 0u16.to_le_bytes().to_vec()),
        ("err-Recipe-horizon-0", 28, 0u16.to_le_bytes().to_vec()),
        (
            "err-Recipe-gamma-above-1",
            32,
            1.5f32.to_le_bytes().to_vec(),
        ),
        (
            "err-Recipe-gamma-negative",
            32,
            (-0.1f32).to_le_bytes().to_vec(),
        ),
        ("err-Recipe-scale-zero", 44, 0.0f32.to_le_bytes().to_vec()),
        (
            "err-Recipe-scale-inf",
            44,
            f32::INFINITY.to_le_bytes().to_vec(),
        ),
        (
            "err-Recipe-clip-negative-zero",
            48,
            (-0.0f32).to_le_bytes().to_vec(),
        ),
        ("err-Recipe-clip-nan", 48, f32::NAN.to_le_bytes().to_vec()),
    ] {
        out.push((name, patch(g, offset, &bytes)));
    }
    // Normalisation with one episode.
    let mut one = patch(g, 26, &1u16.to_le_bytes());
    one[37] = 1;
    out.push(("err-Recipe-normalize-one-episode", fix_crc(one)));
    // GAE with λ out of range.
    let mut lam = patch(g, 36, &[3]);
    lam[40..44].copy_from_slice(&2.0f32.to_le_bytes());
    out.push(("err-Recipe-lambda-2", fix_crc(lam)));
    // Counts: a param_count that is not the shape's P, with the length to match.
    let p = u32::from_le_bytes(g[72..76].try_into().unwrap());
    let mut more = g[..g.len() - 4].to_vec();
    more[72..76].copy_from_slice(&(p + 1).to_le_bytes());
    more.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    out.push(("err-ParamCount-one-more", fix_crc(more)));
    // A time baseline missing, and a baseline where none belongs.
    let mut no_table = with_baseline[..HEADER_LEN].to_vec();
    no_table[68..72].copy_from_slice(&0u32.to_le_bytes());
    no_table.extend_from_slice(&with_baseline[HEADER_LEN + 4 * 5..]);
    out.push(("err-BaselineLength-missing", fix_crc(no_table)));
    let mut extra = g[..HEADER_LEN].to_vec();
    extra[68..72].copy_from_slice(&1u32.to_le_bytes());
    extra.extend_from_slice(&0.0f32.to_le_bytes());
    extra.extend_from_slice(&g[HEADER_LEN..]);
    out.push(("err-BaselineLength-unexpected", fix_crc(extra)));
    // Non-finite payload floats.
    out.push((
        "err-NonFinite-param-nan",
        patch(g, HEADER_LEN + 4 * 3, &f32::NAN.to_le_bytes()),
    ));
    let last = g.len() - 8;
    out.push((
        "err-NonFinite-last-param-inf",
        patch(g, last, &f32::NEG_INFINITY.to_le_bytes()),
    ));
    out.push((
        "err-NonFinite-baseline-inf",
        patch(&with_baseline, HEADER_LEN + 8, &f32::INFINITY.to_le_bytes()),
    ));
    assert_eq!(gaussian.len(), encoded_len(&GAUSSIAN, 0));
    out.into_iter()
        .map(|(n, b)| (format!("{n}.bin"), b))
        .collect()
}

/// The seeds in memory equal the committed files, so the corpus cannot drift from the
/// generator (and every seed behaves as its name says, via the replay test).
#[test]
fn committed_seeds_match_the_generator() {
    for (name, bytes) in seeds() {
        let on_disk = std::fs::read(corpus_dir().join(&name))
            .unwrap_or_else(|e| panic!("{name}: {e}; regenerate the seed corpus"));
        assert_eq!(on_disk, bytes, "{name} differs from the generator");
    }
}

#[test]
#[ignore = "writes tests/corpus/bundle; run with SGMRL_WRITE_CORPUS=1"]
fn write_seed_corpus() {
    if std::env::var_os("SGMRL_WRITE_CORPUS").is_none() {
        return;
    }
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(corpus_dir().join(name), bytes).unwrap();
    }
}
