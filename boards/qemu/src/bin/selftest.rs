//! On-target self-tests of the `sgmrl` core and of this crate's utilities.
//!
//! `cargo run --release --bin selftest [--target …]` prints one line per test and
//! `selftest: N passed, M failed`, and exits 0 only if every test passed. Pinned values
//! (`*_matches_host`) were computed on x86-64 with the same core functions; equality of the
//! bit patterns is the host↔device parity that `DESIGN.md` promises.
//!
//! Command-line flags (after `--`) exercise the failure paths, for `run-all.sh`:
//! `--deliberate-fail` (exit 1), `--deliberate-panic` (exit 101), `--deliberate-fault`
//! (exit 102), `--deliberate-irq` (device interrupt 0 enabled and pended: its entry in the
//! one-entry table of `src/vectors.rs` must reach `DefaultHandler`, exit 103),
//! `--deliberate-hang` (spins: run.sh's timeout must end it with 124).
#![no_std]
#![no_main]

use core::fmt::Write as _;
use core::hint::black_box;

use cortex_m_rt::entry;
use sgmrl::adapt::Memory;
use sgmrl::bundle::{self, Bundle, BundleError, Section, TaskId};
use sgmrl::dual::Dual;
use sgmrl::math::Real;
use sgmrl::policy::{Distribution, LeF32s, ParamSource, Policy, PolicyShape};
use sgmrl::recipe::{ActionMap, Advantage, LossScale, Recipe, RecipeError};
use sgmrl::rng::Rng;
use sgmrl::sim::Nav2d;
use sgmrl_qemu::harness::{self, Outcome, Test, check};
use sgmrl_qemu::num::{Bits, Milli, fnv1a_f32};
use sgmrl_qemu::parity::{
    self, PolicyCase, TEST_BUNDLE_LEN, TEST_BUNDLE_PARAMS, policies, policy_case,
};
use sgmrl_qemu::pins;
use sgmrl_qemu::{args, code, exit, icount, stack};

const TESTS: &[Test] = &[
    Test {
        name: "icount_matches_a_loop_of_known_length",
        run: icount_matches_a_loop_of_known_length,
    },
    Test {
        name: "recipe_validate_names_each_bad_field",
        run: recipe_validate_names_each_bad_field,
    },
    Test {
        name: "recipe_memory_streams_or_buffers",
        run: recipe_memory_streams_or_buffers,
    },
    Test {
        name: "rng_streams_match_host",
        run: rng_streams_match_host,
    },
    Test {
        name: "rng_normal_matches_host",
        run: rng_normal_matches_host,
    },
    Test {
        name: "rng_categorical_matches_host",
        run: rng_categorical_matches_host,
    },
    Test {
        name: "libm_functions_match_host",
        run: libm_functions_match_host,
    },
    Test {
        name: "dual_derivatives_match_host",
        run: dual_derivatives_match_host,
    },
    Test {
        name: "policy_shape_counts_params",
        run: policy_shape_counts_params,
    },
    Test {
        name: "softmax_linear_matches_host",
        run: softmax_linear_matches_host,
    },
    Test {
        name: "softmax_mlp_matches_host",
        run: softmax_mlp_matches_host,
    },
    Test {
        name: "gaussian_mlp_1_matches_host",
        run: gaussian_mlp_1_matches_host,
    },
    Test {
        name: "gaussian_mlp_2_matches_host",
        run: gaussian_mlp_2_matches_host,
    },
    Test {
        name: "test_bundle_parses_and_matches_host",
        run: test_bundle_parses_and_matches_host,
    },
    Test {
        name: "bundle_rejects_every_malformation",
        run: bundle_rejects_every_malformation,
    },
    Test {
        name: "adaptation_matches_host",
        run: adaptation_matches_host,
    },
    Test {
        name: "faults_never_corrupt_the_policy",
        run: faults_never_corrupt_the_policy,
    },
    Test {
        name: "le_f32s_reads_unaligned_bytes",
        run: le_f32s_reads_unaligned_bytes,
    },
    Test {
        name: "milli_prints_three_decimals",
        run: milli_prints_three_decimals,
    },
    Test {
        name: "fnv1a_matches_reference",
        run: fnv1a_matches_reference,
    },
    Test {
        name: "stack_peak_sees_a_deep_frame",
        run: stack_peak_sees_a_deep_frame,
    },
    Test {
        name: "deliberate_failure_on_request",
        run: deliberate_failure_on_request,
    },
];

#[entry]
fn main() -> ! {
    stack::paint();
    let Some(p) = cortex_m::Peripherals::take() else {
        exit(code::FAIL)
    };
    icount::start(p.SYST);
    if args::has("--deliberate-panic") {
        panic!("deliberate panic requested");
    }
    if args::has("--deliberate-fault") {
        // UDF is an undefined instruction: a HardFault on every core (UsageFault is
        // disabled at reset, so it escalates on the M4/M33 too).
        cortex_m::asm::udf();
    }
    if args::has("--deliberate-irq") {
        // SAFETY: enabling and pending interrupt 0 has no effect on memory; its handler
        // ends the run.
        unsafe {
            p.NVIC.iser[0].write(1);
            p.NVIC.ispr[0].write(1);
        }
        cortex_m::asm::dsb();
        cortex_m::asm::isb();
        // Reached only if the interrupt was not taken.
        exit(code::FAIL);
    }
    if args::has("--deliberate-hang") {
        #[allow(clippy::empty_loop)]
        loop {}
    }
    let summary = harness::run("selftest", TESTS);
    exit(summary.exit_code())
}

/// `n` iterations of `subs; bne`: exactly `2n` instructions.
#[inline(never)]
fn spin(n: u32) {
    // SAFETY: only touches r0 (declared clobbered) and the flags.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs r0, #1",
            "bne 2b",
            inout("r0") n => _,
            options(nomem, nostack),
        );
    }
}

fn icount_matches_a_loop_of_known_length() -> Outcome {
    // The difference of two runs cancels the call and counter-reading overhead.
    let (_, short) = icount::count(|| spin(black_box(100_000)));
    let (_, long) = icount::count(|| spin(black_box(300_000)));
    let diff = long.saturating_sub(short);
    sgmrl_qemu::println!(
        "\n  [icount] 200000 extra loop iterations (400000 instructions) measured as {} \
         instructions; {} instructions for the 100000-iteration loop",
        diff,
        short
    );
    // Tick rounding allows a few instructions either way.
    check(
        diff.abs_diff(400_000) <= 4,
        "SysTick count disagrees with ticks*(1e9/f)/2^N (is run.sh's -icount shift 6?)",
    )
}

fn base_recipe() -> Recipe {
    Recipe {
        alpha: 0.1,
        steps: 1,
        episodes: 20,
        horizon: 100,
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

fn recipe_validate_names_each_bad_field() -> Outcome {
    let b = base_recipe();
    check(b.validate() == Ok(()), "valid recipe rejected")?;
    let cases = [
        (
            Recipe {
                alpha: f32::NAN,
                ..b
            },
            RecipeError::Alpha,
        ),
        (Recipe { steps: 0, ..b }, RecipeError::Steps),
        (Recipe { steps: 65, ..b }, RecipeError::Steps),
        (Recipe { episodes: 0, ..b }, RecipeError::Episodes),
        (
            Recipe {
                episodes: 1,
                normalize: true,
                ..b
            },
            RecipeError::Episodes,
        ),
        (Recipe { horizon: 0, ..b }, RecipeError::Horizon),
        (Recipe { gamma: -0.01, ..b }, RecipeError::Gamma),
        (
            Recipe {
                advantage: Advantage::LinearFeatureGae { lambda: 1.5 },
                ..b
            },
            RecipeError::Lambda,
        ),
        (
            Recipe {
                action: ActionMap {
                    scale: 0.0,
                    clip: None,
                },
                ..b
            },
            RecipeError::ActionMap,
        ),
    ];
    for (r, e) in cases {
        check(
            r.validate() == Err(e),
            "a bad field was not reported as such",
        )?;
    }
    Ok(())
}

fn recipe_memory_streams_or_buffers() -> Outcome {
    let shape = PolicyShape {
        distribution: Distribution::Gaussian,
        obs_dim: 2,
        hidden: [16, 0],
        act_dim: 2,
    };
    let m = base_recipe().memory(&shape);
    check(m.params_floats == 0, "zeta = 1 should need no params copy")?;
    check(
        m.total_floats() == Memory::lower_bound_floats(&shape, 100) + 2 * 16,
        "streaming recipe other than the lower bound and the hidden layer's scratch",
    )?;
    let batch = Recipe {
        advantage: Advantage::BatchMeanBaseline,
        ..base_recipe()
    }
    .memory(&shape);
    // The whole batch, each episode's length, and one running sum per step for the mean.
    check(
        batch.episode_floats == 20 * 100 * 5 + 20 + 100,
        "batch buffer size",
    )
}

fn rng_streams_match_host() -> Outcome {
    let mut r = Rng::new(42);
    let got = [r.next_u32(), r.next_u32(), r.next_u32(), r.next_u32()];
    check(
        got == [0x7b2c_febb, 0x49f6_6664, 0x0eed_8785, 0x085f_9941],
        "Rng::new(42) differs from the host",
    )?;
    let mut r = Rng::stream(7, 3);
    let got = [r.uniform(), r.uniform(), r.uniform()].map(f32::to_bits);
    check(
        got == [0x3e60_a31c, 0x3de5_ff38, 0x3f65_bc15],
        "Rng::stream(7, 3).uniform() differs from the host",
    )?;
    check(
        Rng::derive(5, &[1, 2]).next_u32() == 0x8baa_3e0e,
        "Rng::derive(5, [1, 2]) differs from the host",
    )
}

fn rng_normal_matches_host() -> Outcome {
    let mut r = Rng::new(1);
    let got = [r.normal(), r.normal(), r.normal(), r.normal()].map(f32::to_bits);
    check(
        got == [0x3ec9_fddc, 0xbf82_5892, 0xbf92_d57b, 0xbd5b_71c0],
        "Rng::new(1).normal() differs from the host",
    )
}

fn rng_categorical_matches_host() -> Outcome {
    let mut r = Rng::new(9);
    let want = [0, 2, 2, 2, 3, 2, 2, 2, 2, 3, 3, 2, 2, 3, 3, 2];
    for w in want {
        check(
            r.categorical([0.2f32, 0.0, 0.5, 0.3]) == Some(w),
            "Rng::new(9).categorical differs from the host",
        )?;
    }
    Ok(())
}

fn libm_functions_match_host() -> Outcome {
    let cases: [(f32, u32); 7] = [
        (Real::exp(black_box(0.5f32)), 0x3fd3_094c),
        (Real::exp(black_box(-10.3f32)), 0x380d_1141),
        (Real::ln(black_box(3.0f32)), 0x3f8c_9f54),
        (Real::ln(black_box(0.01f32)), 0xc093_5d8e),
        (Real::tanh(black_box(0.7f32)), 0x3f1a_b7d9),
        (Real::tanh(black_box(-2.5f32)), 0xbf7c_92c2),
        (Real::sqrt(black_box(2.0f32)), 0x3fb5_04f3),
    ];
    for (got, want) in cases {
        if got.to_bits() != want {
            sgmrl_qemu::println!("  got {} want {:#010x}", Bits(got), want);
            return Err("a libm result differs from the host");
        }
    }
    Ok(())
}

fn dual_derivatives_match_host() -> Outcome {
    let t = Real::tanh(Dual::new(black_box(0.7f32), 1.0));
    check(
        (t.re.to_bits(), t.eps.to_bits()) == (0x3f1a_b7d9, 0x3f22_7e4b),
        "tanh on duals differs from the host",
    )?;
    let e = Real::exp(Dual::new(black_box(0.5f32), 2.0)) * Dual::new(3.0, 0.0);
    check(
        (e.re.to_bits(), e.eps.to_bits()) == (0x409e_46f9, 0x411e_46f9),
        "exp on duals differs from the host",
    )
}

fn policy_shape_counts_params() -> Outcome {
    let paper = PolicyShape {
        distribution: Distribution::Gaussian,
        obs_dim: 2,
        hidden: [100, 100],
        act_dim: 2,
    };
    check(paper.n_params() == 10_604, "paper's Gaussian MLP is 10,604")?;
    let lin = PolicyShape {
        distribution: Distribution::Softmax,
        obs_dim: 2,
        hidden: [0, 0],
        act_dim: 3,
    };
    check(lin.n_params() == 9, "softmax-linear 2x3 is 9")?;
    check(
        !PolicyShape {
            hidden: [0, 4],
            ..lin
        }
        .is_valid(),
        "second hidden layer without a first accepted",
    )
}

/// Samples, log-probabilities and the summed gradient of `P` equal the host's bits, with the
/// parameters read from RAM and from unaligned little-endian bytes.
fn policy_matches<P: Policy + Default>(seed: u64, pinned: &PolicyCase) -> Outcome {
    for from_bytes in [false, true] {
        let got = policy_case(&P::default(), seed, from_bytes).map_err(|_| "policy error")?;
        if got != *pinned {
            sgmrl_qemu::println!(
                "\n  from_bytes={} actions[0]={:#010x} log_probs[0]={:#010x} grad_fnv={:#010x}",
                from_bytes,
                got.actions[0],
                got.log_probs[0],
                got.grad_fnv
            );
            return Err("policy results differ from the host's (src/pins.rs)");
        }
    }
    Ok(())
}

fn softmax_linear_matches_host() -> Outcome {
    policy_matches::<policies::SoftLin>(11, &pins::SOFT_LIN)
}

fn softmax_mlp_matches_host() -> Outcome {
    policy_matches::<policies::SoftMlp>(12, &pins::SOFT_MLP)
}

fn gaussian_mlp_1_matches_host() -> Outcome {
    policy_matches::<policies::Gauss1>(13, &pins::GAUSS1)
}

fn gaussian_mlp_2_matches_host() -> Outcome {
    policy_matches::<policies::Gauss2>(14, &pins::GAUSS2)
}

/// The committed test bundle, whatever `SGMRL_BUNDLE` says.
static TEST_BUNDLE: &[u8; TEST_BUNDLE_LEN] = include_bytes!("../../bundles/test.sgml");

fn test_bundle_parses_and_matches_host() -> Outcome {
    let b = Bundle::parse(TEST_BUNDLE).map_err(|_| "the committed test bundle does not parse")?;
    check(
        b.checksum() == pins::TEST_BUNDLE_CRC,
        "test bundle CRC differs from the host's",
    )?;
    check(
        b.check_policy::<policies::Gauss1>().is_ok(),
        "test bundle is not for GaussianMlp<2, 16, 0, 2>",
    )?;
    check(
        matches!(
            b.check_policy::<policies::Gauss2>(),
            Err(BundleError::PolicyMismatch { .. })
        ),
        "a policy of another shape was accepted",
    )?;
    check(b.task() == TaskId::NAV2D, "task")?;
    check(b.baseline().is_none(), "baseline present")?;
    let mut params = [0.0f32; TEST_BUNDLE_PARAMS];
    parity::test_bundle_params(&mut params);
    check(
        b.recipe() == parity::test_bundle_spec(&params).recipe,
        "recipe differs from the spec",
    )?;
    check(
        b.params().iter().eq(params.iter().copied()),
        "parameters differ from the spec",
    )?;
    // The writer on the device produces the host's bytes.
    let mut again = [0u8; TEST_BUNDLE_LEN];
    parity::encode_test_bundle(&mut again).map_err(|_| "encoding on the device failed")?;
    check(
        again == *TEST_BUNDLE,
        "device encoding differs from the file",
    )
}

static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Rewrites the trailing CRC so that a mutation reaches the checks after the checksum.
fn reseal(b: &mut [u8; TEST_BUNDLE_LEN]) {
    let (body, crc) = b.split_at_mut(TEST_BUNDLE_LEN - 4);
    crc.copy_from_slice(&CRC32.checksum(body).to_le_bytes());
}

fn put(b: &mut [u8; TEST_BUNDLE_LEN], at: usize, bytes: &[u8]) {
    b[at..at + bytes.len()].copy_from_slice(bytes);
    reseal(b);
}

fn bundle_rejects_every_malformation() -> Outcome {
    const L: usize = TEST_BUNDLE_LEN;
    let good = *TEST_BUNDLE;
    let shape = <policies::Gauss1 as Policy>::SHAPE;
    let p = shape.n_params();
    let mut longer = [0u8; L + 1];
    longer[..L].copy_from_slice(&good);
    check(
        Bundle::parse(&good[..L - 1])
            == Err(BundleError::Truncated {
                needed: L,
                got: L - 1,
            }),
        "Truncated (payload)",
    )?;
    check(
        Bundle::parse(&good[..10])
            == Err(BundleError::Truncated {
                needed: bundle::MIN_LEN,
                got: 10,
            }),
        "Truncated (header)",
    )?;
    check(
        Bundle::parse(&longer)
            == Err(BundleError::TrailingBytes {
                expected: L,
                found: L + 1,
            }),
        "TrailingBytes",
    )?;
    check(bundle::declared_len(&good) == Ok(L), "declared_len")?;

    let mut corrupt = good;
    corrupt[100] ^= 0x01;
    check(
        matches!(Bundle::parse(&corrupt), Err(BundleError::Checksum { expected, computed })
            if expected == pins::TEST_BUNDLE_CRC && computed != expected),
        "Checksum",
    )?;

    let mut nan_params = [0u8; 4];
    nan_params.copy_from_slice(&f32::NAN.to_le_bytes());
    let mut small_hidden = shape;
    small_hidden.hidden = [15, 0];
    let no_outputs = PolicyShape {
        act_dim: 0,
        ..shape
    };
    // (offset, new bytes, expected error); every case but the first three is resealed.
    let cases: [(usize, &[u8], BundleError); 15] = [
        (0, b"X", BundleError::BadMagic { found: *b"XGML" }),
        (4, &[2], BundleError::UnsupportedVersion { found: 2 }),
        (
            6,
            &[77],
            BundleError::HeaderLength {
                expected: 76,
                found: 77,
            },
        ),
        (
            9,
            &[0x80],
            BundleError::Reserved {
                offset: 9,
                bits: 0x80,
            },
        ),
        (
            37,
            &[0x04],
            BundleError::Reserved {
                offset: 37,
                bits: 0x04,
            },
        ),
        (8, &[2], BundleError::UnknownDistribution(2)),
        (36, &[5], BundleError::UnknownAdvantage(5)),
        (54, &[7], BundleError::UnknownTrainer(7)),
        (16, &[0, 0], BundleError::BadShape(no_outputs)),
        (
            40,
            &[0x00, 0x00, 0x80, 0x3f],
            BundleError::UnexpectedLambda { bits: 0x3f80_0000 },
        ),
        (
            20,
            &[0x00, 0x00, 0x80, 0xbf],
            BundleError::Recipe(RecipeError::Alpha),
        ),
        (24, &[0, 0], BundleError::Recipe(RecipeError::Steps)),
        (
            12,
            &[15, 0],
            BundleError::ParamCount {
                expected: small_hidden.n_params() as u64,
                found: p as u32,
            },
        ),
        (
            36,
            &[1],
            BundleError::BaselineLength {
                expected: 100,
                found: 0,
            },
        ),
        (
            bundle::HEADER_LEN + 4 * 5,
            &nan_params,
            BundleError::NonFinite {
                section: Section::Params,
                index: 5,
            },
        ),
    ];
    for (i, (at, bytes, want)) in cases.into_iter().enumerate() {
        let mut b = good;
        put(&mut b, at, bytes);
        if Bundle::parse(&b) != Err(want) {
            sgmrl_qemu::println!(
                "\n  malformation case {} (offset {}) not reported as expected",
                i,
                at
            );
            return Err("a malformed bundle was accepted or misreported");
        }
    }
    Ok(())
}

/// The whole demo (ζ = 2 steps of 10 nav2d episodes, then 10 evaluation episodes) on the
/// test bundle gives the host's step returns, final return and adapted parameters, bit for
/// bit.
fn adaptation_matches_host() -> Outcome {
    let bundle = Bundle::parse(TEST_BUNDLE).map_err(|_| "test bundle does not parse")?;
    let mut memory = [0.0f32; parity::TEST_BUNDLE_MEMORY_FLOATS];
    let mut env = Nav2d::new(parity::DEMO_GOAL);
    let mut steps = 0;
    let got =
        parity::adapt_demo::<parity::TestBundlePolicy, _>(&bundle, &mut env, &mut memory, |_| {
            steps += 1
        })
        .map_err(|_| "adaptation failed")?;
    check(steps == 2, "on_step not called once per step")?;
    if got != pins::TEST_BUNDLE_DEMO {
        sgmrl_qemu::println!(
            "\n  returns_fnv={:#010x} final={:#010x} params_crc={:#010x} env_steps={}",
            got.returns_fnv,
            got.final_return,
            got.params_crc,
            got.env_steps
        );
        return Err("adaptation differs from the host's (src/pins.rs)");
    }
    Ok(())
}

/// Adaptation of the test bundle through faults of every class (NaN, ±∞ and 1e30 spikes in
/// observations and rewards, sensor errors, episodes cut short; 3 % each per call), run
/// until it completes: after every error the parameters are finite, the robot was sent
/// exactly one stop command (the adapter's safe action), and the bundle in flash is the
/// bundle that was built (its CRC is unchanged).
fn faults_never_corrupt_the_policy() -> Outcome {
    use sgmrl::adapt::Adapter;
    use sgmrl::faults::{Corruptions, Faults, FaultyEnv};
    let bundle = Bundle::parse(TEST_BUNDLE).map_err(|_| "test bundle does not parse")?;
    let crc = bundle.checksum();
    let mut memory = [0.0f32; parity::TEST_BUNDLE_MEMORY_FLOATS];
    let mut ad = Adapter::from_bundle(
        parity::TestBundlePolicy::default(),
        &bundle,
        &mut memory,
        parity::DEMO_SEED,
    )
    .map_err(|_| "adapter")?;
    let faults = Faults {
        sensor_error: 0.03,
        observation: 0.03,
        reward: 0.03,
        cut_short: 0.03,
        corruptions: Corruptions::ALL,
        spike: 1e30,
        ..Faults::NONE
    };
    let mut env = FaultyEnv::new(Nav2d::new(parity::DEMO_GOAL), faults, 3);
    let mut errors = 0u32;
    while !ad.is_adapted() {
        if ad.run(&mut env).is_ok() {
            break;
        }
        errors += 1;
        check(errors < 500, "adaptation never completed under faults")?;
        let finite = ad.with_params(|p| match p {
            sgmrl::adapt::ParamsRef::Meta(m) => ParamSource::<f32>::values(m).all(f32::is_finite),
            sgmrl::adapt::ParamsRef::Ram(r) => r.iter().all(|x| x.is_finite()),
        });
        check(finite, "non-finite parameters after a fault")?;
        check(env.log().stops == errors, "no stop command after a fault")?;
        check(
            env.last_stop() == Some(ad.safe_action()),
            "the stop command is not the safe action",
        )?;
    }
    check(errors > 0, "no fault fired: the test proves nothing")?;
    check(
        Bundle::parse(TEST_BUNDLE).map(|b| b.checksum()) == Ok(crc),
        "the bundle changed",
    )?;
    Ok(())
}

fn le_f32s_reads_unaligned_bytes() -> Outcome {
    // Force an odd address: the view must not assume alignment (an unaligned word load
    // would HardFault on the M0).
    let mut bytes = [0u8; 13];
    for (chunk, v) in bytes[1..].chunks_exact_mut(4).zip([1.5f32, -2.0, 0.25]) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    let bytes = black_box(bytes);
    let Some(v) = LeF32s::new(&bytes[1..]) else {
        return Err("12 bytes rejected");
    };
    let mut got = [0.0f32; 3];
    for (g, x) in got.iter_mut().zip(ParamSource::<f32>::values(v)) {
        *g = x;
    }
    check(got == [1.5, -2.0, 0.25], "wrong values")?;
    check(v.get(2) == Some(0.25) && v.get(3).is_none(), "get")?;
    check(LeF32s::new(&bytes[..3]).is_none(), "3 bytes accepted")
}

/// A `fmt::Write` into a fixed buffer, for checking formatted text.
struct Buf {
    bytes: [u8; 32],
    len: usize,
}

impl core::fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        let dst = self.bytes.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn formats_as(x: f32, want: &str) -> bool {
    let mut b = Buf {
        bytes: [0; 32],
        len: 0,
    };
    write!(b, "{}", Milli(x)).is_ok() && b.bytes.get(..b.len) == Some(want.as_bytes())
}

fn milli_prints_three_decimals() -> Outcome {
    check(formats_as(black_box(1.5), "1.500"), "1.5")?;
    check(
        formats_as(black_box(-0.0004), "0.000"),
        "-0.0004 rounds to 0",
    )?;
    check(formats_as(black_box(-2.0625), "-2.063"), "-2.0625")?;
    check(formats_as(black_box(12345.678), "12345.678"), "12345.678")?;
    check(formats_as(black_box(f32::NAN), "NaN"), "NaN")?;
    check(formats_as(black_box(f32::NEG_INFINITY), "-inf"), "-inf")?;
    check(
        formats_as(black_box(-1999999.9), "-1999999.875"),
        "-1999999.9",
    )?;
    check(formats_as(black_box(3.0e6), "3000000.000"), "3e6")?;
    check(formats_as(black_box(2.0e9), "0x4eee6b28"), "2e9 as bits")
}

fn fnv1a_matches_reference() -> Outcome {
    check(fnv1a_f32([]) == 0x811c_9dc5, "empty input")?;
    // Python: FNV-1a over struct.pack('<ff', 1.0, -2.5).
    check(fnv1a_f32([1.0, -2.5]) == 0x787d_66f8, "[1.0, -2.5]")
}

#[inline(never)]
fn deep_frame() -> u32 {
    let buf = black_box([7u32; 512]);
    buf.iter().fold(0, |a, &x| a.wrapping_add(x))
}

fn stack_peak_sees_a_deep_frame() -> Outcome {
    // Earlier tests went deeper than 2 KB: re-paint below this frame to reset the mark.
    stack::paint();
    let before = stack::peak_bytes().ok_or("stack window exhausted before the test")?;
    check(black_box(deep_frame()) == 7 * 512, "deep_frame")?;
    let after = stack::peak_bytes().ok_or("stack window exhausted")?;
    check(
        after >= before + 2048 && after < stack::size_bytes(),
        "a 2 KB frame did not raise the painted peak by 2 KB",
    )
}

fn deliberate_failure_on_request() -> Outcome {
    check(
        !args::has("--deliberate-fail"),
        "failing on purpose (--deliberate-fail)",
    )
}
