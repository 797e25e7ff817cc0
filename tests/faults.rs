//! Faults during adaptation: every fault class `sgmrl::faults::FaultyEnv` injects, during
//! adaptation on `Nav2d` (Gaussian) and `Nav2dDiscrete` (softmax), with a streaming and a
//! batch advantage rule. The invariants checked after every error:
//! - the adapted parameters are finite;
//! - the meta-parameters, read in place from a bundle's bytes, are byte-identical;
//! - the error names the fault (exact variants);
//! - the robot was sent the safe-stop action (all zeros) once per interrupted episode;
//! - once the faults stop, calling `run` again finishes the adaptation.
//!
//! Needs the `std` feature (the bundle writer): `cargo test --features std --test faults`.

use core::convert::Infallible;
use sgmrl::adapt::{AdaptError, Adapter};
use sgmrl::bundle::{Bundle, BundleSpec, TaskId, Trainer};
use sgmrl::env::Env;
use sgmrl::estimator::EstimatorError;
use sgmrl::faults::{Corruptions, FaultError, FaultLog, Faults, FaultyEnv};
use sgmrl::policy::{GaussianMlp, LeF32s, Policy, PolicyError, SoftmaxLinear};
use sgmrl::recipe::{ActionMap, Advantage, LossScale, Recipe};
use sgmrl::rng::Rng;
use sgmrl::sim::{Nav2d, Nav2dDiscrete};

type Gauss = GaussianMlp<2, 8, 0, 2>;
type Soft = SoftmaxLinear<2, 9>;
type Error = AdaptError<FaultError<Infallible>>;

/// A goal outside the square: unreachable, so every episode runs to the horizon and call
/// indices are predictable (episode `e` of the run: reset at `e·(H+1)`, steps after it).
const GOAL: [f32; 2] = [0.7, -0.7];
const H: u16 = 20;
const N: u16 = 4;
/// `reset` + `H` steps.
const CALLS_PER_EPISODE: u32 = H as u32 + 1;

fn streaming() -> Recipe {
    Recipe {
        alpha: 0.05,
        steps: 2,
        episodes: N,
        horizon: H,
        gamma: 0.99,
        advantage: Advantage::RewardToGo,
        normalize: false,
        loss: LossScale::PerEpisode,
        action: ActionMap {
            scale: 0.1,
            clip: Some(0.1),
        },
    }
}

fn batch() -> Recipe {
    Recipe {
        alpha: 0.5,
        advantage: Advantage::BatchMeanBaseline,
        normalize: true,
        ..streaming()
    }
}

/// The bundle bytes for policy `P` with random meta-parameters.
fn bundle_for<P: Policy>(recipe: Recipe, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let params: Vec<f32> = (0..P::N_PARAMS).map(|_| 0.3 * rng.normal()).collect();
    BundleSpec {
        shape: P::SHAPE,
        recipe,
        task: TaskId::NAV2D,
        trainer: Trainer::SgMrl,
        seed,
        meta_iterations: 1,
        baseline: None,
        params: &params,
    }
    .to_bytes()
    .unwrap()
}

/// An adapter for `P` on the bundle's meta-parameters, read in place from `bytes`.
fn adapter<'m, P: Policy + Default>(
    bytes: &'m [u8],
    memory: &'m mut Vec<f32>,
    seed: u64,
) -> Adapter<'m, P, LeF32s<'m>> {
    let b = Bundle::parse(bytes).unwrap();
    b.check_policy::<P>().unwrap();
    memory.resize(b.recipe().memory(&P::SHAPE).total_floats(), 0.0);
    Adapter::new(
        P::default(),
        b.params(),
        b.baseline(),
        b.recipe(),
        memory,
        seed,
    )
    .unwrap()
}

fn params<P: Policy, M: sgmrl::policy::ParamSource<f32>>(ad: &Adapter<'_, P, M>) -> Vec<f32> {
    let mut p = vec![0.0; P::N_PARAMS];
    assert!(ad.with_params(|x| x.copy_to(&mut p)));
    p
}

fn meta_of(bytes: &[u8]) -> Vec<f32> {
    Bundle::parse(bytes).unwrap().params().iter().collect()
}

/// A fault of probability 1 on call `call` only.
fn at(call: u32, faults: Faults) -> Faults {
    Faults {
        from: call,
        until: call + 1,
        ..faults
    }
}

fn obs_fault(kind: Corruptions) -> Faults {
    Faults {
        observation: 1.0,
        corruptions: kind,
        ..Faults::NONE
    }
}

fn reward_fault(kind: Corruptions) -> Faults {
    Faults {
        reward: 1.0,
        corruptions: kind,
        ..Faults::NONE
    }
}

const SENSOR: Faults = Faults {
    sensor_error: 1.0,
    ..Faults::NONE
};

/// Every single-fault case: the fault, and the error `run` must return.
/// A reward fault on a `reset` call has nothing to corrupt, so `reset` skips those.
fn single_fault_cases(call: u32, reset: bool) -> Vec<(&'static str, Faults, Error)> {
    let kinds = [
        ("NaN", Corruptions::NAN),
        ("+inf", Corruptions::POS_INF),
        ("-inf", Corruptions::NEG_INF),
    ];
    let mut cases = Vec::new();
    for (name, kind) in kinds {
        cases.push((name, at(call, obs_fault(kind)), Error::NonFiniteObservation));
        if !reset {
            cases.push((name, at(call, reward_fault(kind)), Error::NonFiniteReward));
        }
    }
    cases.push(("sensor", at(call, SENSOR), Error::Env(FaultError::Sensor)));
    cases
}

/// One fault at call `call` of a run of policy `P` on `env`: `run` fails with exactly the
/// expected error, the robot is stopped, the parameters are `before` (finite), the meta
/// bytes are untouched; then a second `run` finishes the adaptation without another stop.
fn check_single_faults<P: Policy + Default, E: Env<Error = Infallible> + Clone>(
    env: E,
    recipe: Recipe,
    call: u32,
    before: Option<&[f32]>,
) {
    let bytes = bundle_for::<P>(recipe, 5);
    let pristine = bytes.clone();
    let meta = meta_of(&bytes);
    let before = before.unwrap_or(&meta);
    let reset = call.is_multiple_of(CALLS_PER_EPISODE);
    for (name, faults, want) in single_fault_cases(call, reset) {
        let mut mem = Vec::new();
        let mut ad = adapter::<P>(&bytes, &mut mem, 9);
        let mut env = FaultyEnv::new(env.clone(), faults, 1);
        let got = ad.run(&mut env).err();
        let ctx = format!("{name} {faults:?} {recipe:?}");
        assert_eq!(got, Some(want), "{ctx}");
        assert_eq!(env.log().stops, 1, "{ctx}");
        assert_eq!(env.last_stop(), Some(ad.safe_action()), "{ctx}");
        assert!(ad.safe_action().iter().all(|&a| a == 0.0));
        assert_eq!(ad.safe_action().len(), P::ACTION_WIDTH);
        let p = params(&ad);
        assert_eq!(p, before, "{ctx}: parameters changed by a refused episode");
        assert_eq!(bytes, pristine);

        // The fault was transient: the same adapter finishes.
        let report = ad.run(&mut env).unwrap();
        assert!(ad.is_adapted(), "{ctx}");
        assert_eq!(env.log().stops, 1, "{ctx}: a fault-free run sent a stop");
        let p = params(&ad);
        assert!(p.iter().all(|x| x.is_finite()), "{ctx}");
        assert_ne!(p, meta, "{ctx}: adaptation did not move the parameters");
        assert!(report.step_returns.iter().all(|r| r.is_finite()));
        assert_eq!(bytes, pristine);
    }
}

#[test]
fn each_fault_in_the_first_episode_is_refused_by_name_and_stops_the_robot() {
    for recipe in [streaming(), batch()] {
        // Call 5 is a step of the first episode; call 0 is its reset.
        for call in [0, 5] {
            check_single_faults::<Gauss, _>(Nav2d::new(GOAL), recipe, call, None);
            check_single_faults::<Soft, _>(Nav2dDiscrete::new(GOAL), recipe, call, None);
        }
    }
}

/// The parameters after the first of ζ steps, from a fault-free adapter with ζ = 1 (same
/// seed, so the same episodes).
fn after_one_step<P: Policy + Default, E: Env<Error = Infallible>>(
    mut env: E,
    recipe: Recipe,
) -> Vec<f32> {
    let one = Recipe { steps: 1, ..recipe };
    let bytes = bundle_for::<P>(recipe, 5);
    let mut mem = Vec::new();
    let b = Bundle::parse(&bytes).unwrap();
    mem.resize(one.memory(&P::SHAPE).total_floats(), 0.0);
    let mut ad = Adapter::new(P::default(), b.params(), None, one, &mut mem, 9).unwrap();
    ad.run(&mut env).unwrap();
    params(&ad)
}

#[test]
fn a_fault_after_the_first_step_keeps_the_adapted_parameters() {
    // Second step, second episode, fourth step: well inside step 2's batch.
    let call = u32::from(N) * CALLS_PER_EPISODE + CALLS_PER_EPISODE + 4;
    for recipe in [streaming(), batch()] {
        let theta1 = after_one_step::<Gauss, _>(Nav2d::new(GOAL), recipe);
        check_single_faults::<Gauss, _>(Nav2d::new(GOAL), recipe, call, Some(&theta1));
        let theta1 = after_one_step::<Soft, _>(Nav2dDiscrete::new(GOAL), recipe);
        check_single_faults::<Soft, _>(Nav2dDiscrete::new(GOAL), recipe, call, Some(&theta1));
    }
}

/// Whether `e` is an error a fault may legitimately cause.
fn is_explained(e: &Error) -> bool {
    matches!(
        e,
        Error::NonFiniteObservation
            | Error::NonFiniteReward
            | Error::Env(FaultError::Sensor)
            | Error::NonFiniteStep
            | Error::Policy(PolicyError::NonFiniteOutput)
            | Error::Estimator(EstimatorError::NonFiniteAdvantage { .. })
            // A huge (finite) observation spike recorded in the batch overflows the
            // gradient: the batch is discarded, the parameters stay.
            | Error::Estimator(EstimatorError::Policy {
                error: PolicyError::NonFiniteOutput,
                ..
            })
    )
}

/// Runs until adapted under random faults of every class, checking the invariants after
/// every error; returns the errors seen and the fault log.
fn adapt_through_faults<P: Policy + Default, E: Env<Error = Infallible>>(
    env: E,
    recipe: Recipe,
    faults: Faults,
    seed: u64,
) -> (Vec<Error>, FaultLog) {
    let bytes = bundle_for::<P>(recipe, seed);
    let pristine = bytes.clone();
    let mut mem = Vec::new();
    let mut ad = adapter::<P>(&bytes, &mut mem, seed);
    let mut env = FaultyEnv::new(env, faults, seed);
    let mut errors = Vec::new();
    for _ in 0..1000 {
        match ad.run(&mut env) {
            Ok(_) => break,
            Err(e) => {
                assert!(is_explained(&e), "unexpected error {e:?}");
                errors.push(e);
                assert!(params(&ad).iter().all(|x| x.is_finite()), "after {e:?}");
                assert_eq!(env.log().stops as usize, errors.len());
                assert_eq!(env.last_stop(), Some(ad.safe_action()));
                assert_eq!(bytes, pristine);
            }
        }
    }
    assert!(ad.is_adapted(), "did not finish: {:?}", env.log());
    assert!(params(&ad).iter().all(|x| x.is_finite()));
    // Deployed episodes under the same faults keep the invariants too.
    for _ in 0..20 {
        if let Err(e) = ad.evaluate(&mut env, 1) {
            assert!(is_explained(&e), "unexpected error {e:?}");
            errors.push(e);
            assert_eq!(env.log().stops as usize, errors.len());
        }
    }
    assert_eq!(bytes, pristine);
    (errors, env.log())
}

#[test]
fn random_faults_of_every_class_never_corrupt_the_policy() {
    let faults = Faults {
        sensor_error: 0.03,
        observation: 0.03,
        reward: 0.03,
        cut_short: 0.03,
        corruptions: Corruptions::ALL,
        spike: 1e30,
        ..Faults::NONE
    };
    for recipe in [streaming(), batch()] {
        for seed in 0..4 {
            let (errors, log) =
                adapt_through_faults::<Gauss, _>(Nav2d::new(GOAL), recipe, faults, seed);
            assert!(log.sensor_errors > 0 && log.observations > 0 && log.rewards > 0);
            assert!(log.cuts > 0 && !errors.is_empty(), "{log:?}");
            let (errors, log) =
                adapt_through_faults::<Soft, _>(Nav2dDiscrete::new(GOAL), recipe, faults, seed);
            assert!(log.sensor_errors > 0 && log.observations > 0 && log.rewards > 0);
            assert!(log.cuts > 0 && !errors.is_empty(), "{log:?}");
        }
    }
}

#[test]
fn episodes_cut_short_still_adapt_without_errors() {
    let faults = Faults {
        cut_short: 0.3,
        ..Faults::NONE
    };
    for recipe in [streaming(), batch()] {
        let bytes = bundle_for::<Gauss>(recipe, 3);
        let meta = meta_of(&bytes);
        let mut mem = Vec::new();
        let mut ad = adapter::<Gauss>(&bytes, &mut mem, 3);
        let mut env = FaultyEnv::new(Nav2d::new(GOAL), faults, 3);
        let report = ad.run(&mut env).unwrap();
        let log = env.log();
        assert!(log.cuts > 0 && log.stops == 0);
        // Every episode was cut well before the horizon.
        let full = u32::from(recipe.steps) * u32::from(N) * u32::from(H);
        let episodes = u32::from(recipe.steps) * u32::from(N);
        assert_eq!(report.env_steps + episodes, log.calls);
        assert!(report.env_steps < full / 2, "{report:?} {log:?}");
        let p = params(&ad);
        assert!(p.iter().all(|x| x.is_finite()) && p != meta);
    }
}

#[test]
fn too_large_alpha_is_refused_with_parameters_unchanged() {
    for (alpha, steps) in [(1e30, 1), (1e30, 3), (1e3, 2), (3e38, 1)] {
        for base in [streaming(), batch()] {
            let recipe = Recipe {
                alpha,
                steps,
                ..base
            };
            let bytes = bundle_for::<Gauss>(recipe, 4);
            let pristine = bytes.clone();
            let meta = meta_of(&bytes);
            let mut mem = Vec::new();
            let mut ad = adapter::<Gauss>(&bytes, &mut mem, 4);
            let mut env = FaultyEnv::new(Nav2d::new(GOAL), Faults::NONE, 0);
            for attempt in 1..=3 {
                let e = ad.run(&mut env).err();
                assert_eq!(e, Some(Error::NonFiniteStep), "α = {alpha:e}");
                assert_eq!(ad.steps_done(), 0);
                assert_eq!(params(&ad), meta);
                // The failed step ended an episode: the robot was still told to stop.
                assert_eq!(env.log().stops, attempt);
                assert_eq!(env.last_stop(), Some(&[0.0f32, 0.0][..]));
            }
            assert_eq!(bytes, pristine);
        }
    }
    // A softmax policy stays usable at α = 1e30 (its logits only get sharper); at 3e38 the
    // step itself overflows and is refused.
    let recipe = Recipe {
        alpha: 3e38,
        ..streaming()
    };
    let bytes = bundle_for::<Soft>(recipe, 4);
    let mut mem = Vec::new();
    let mut ad = adapter::<Soft>(&bytes, &mut mem, 4);
    let mut env = FaultyEnv::new(Nav2dDiscrete::new(GOAL), Faults::NONE, 0);
    assert_eq!(ad.run(&mut env).err(), Some(Error::NonFiniteStep));
    assert_eq!(params(&ad), meta_of(&bytes));
    assert_eq!(env.last_stop(), Some(&[0.0f32][..]));
}

/// Every reward replaced by a finite spike: the parameters stay finite whatever happens,
/// and whatever error there is names the overflow.
#[test]
fn huge_finite_rewards_never_make_parameters_non_finite() {
    for spike in [1e30, f32::MAX] {
        let faults = Faults {
            reward: 1.0,
            corruptions: Corruptions::SPIKE,
            spike,
            ..Faults::NONE
        };
        for recipe in [streaming(), batch()] {
            let outcome = |errs: Vec<Error>| -> Vec<Error> {
                for e in &errs {
                    assert!(
                        matches!(
                            e,
                            Error::NonFiniteStep
                                | Error::Estimator(EstimatorError::NonFiniteAdvantage { .. })
                        ),
                        "{e:?}"
                    );
                }
                errs
            };
            let bytes = bundle_for::<Gauss>(recipe, 6);
            let mut mem = Vec::new();
            let mut ad = adapter::<Gauss>(&bytes, &mut mem, 6);
            let mut env = FaultyEnv::new(Nav2d::new(GOAL), faults, 6);
            let mut errs = Vec::new();
            for _ in 0..5 {
                match ad.run(&mut env) {
                    Ok(_) => break,
                    Err(e) => errs.push(e),
                }
                assert!(params(&ad).iter().all(|x| x.is_finite()));
            }
            let errs = outcome(errs);
            assert!(params(&ad).iter().all(|x| x.is_finite()));
            assert_eq!(env.log().stops as usize, errs.len());
            // Normalised advantages absorb any finite scale, short of overflow.
            if recipe.normalize && spike == 1e30 {
                assert!(ad.is_adapted() && errs.is_empty(), "{errs:?}");
            }
        }
    }
}

/// Every observation carrying a huge finite spike: the policy either copes (tanh saturates)
/// or refuses with `Policy(NonFiniteOutput)`; the parameters stay finite.
/// Runs adaptation five times through `faults`: every error is a rolled-back step or a
/// refused non-finite output, the robot is told to stop, and parameters stay finite.
fn spikes_never_make_parameters_non_finite<P: Policy + Default, E: Env<Error = Infallible>>(
    env: E,
    recipe: Recipe,
    faults: Faults,
) {
    let bytes = bundle_for::<P>(recipe, 7);
    let mut mem = Vec::new();
    let mut ad = adapter::<P>(&bytes, &mut mem, 7);
    let mut env = FaultyEnv::new(env, faults, 7);
    for _ in 0..5 {
        if let Err(e) = ad.run(&mut env) {
            assert!(
                matches!(
                    e,
                    Error::NonFiniteStep | Error::Policy(PolicyError::NonFiniteOutput)
                ),
                "{e:?}"
            );
            assert_eq!(env.last_stop(), Some(ad.safe_action()));
        }
        assert!(params(&ad).iter().all(|x| x.is_finite()));
    }
}

#[test]
fn huge_finite_observations_never_make_parameters_non_finite() {
    for spike in [1e30, f32::MAX] {
        let faults = Faults {
            observation: 1.0,
            corruptions: Corruptions::SPIKE,
            spike,
            ..Faults::NONE
        };
        for recipe in [streaming(), batch()] {
            spikes_never_make_parameters_non_finite::<Gauss, _>(Nav2d::new(GOAL), recipe, faults);
            spikes_never_make_parameters_non_finite::<Soft, _>(
                Nav2dDiscrete::new(GOAL),
                recipe,
                faults,
            );
        }
    }
}

/// Driving the adapter tick by tick, a caller commands `safe_action` after an error; the
/// adapter never hands out a non-finite action, even when the action map overflows.
#[test]
fn tick_by_tick_actions_are_always_finite() {
    // scale·u overflows f32 for any |u| > 1e-8·f32::MAX... i.e. for typical samples.
    let recipe = Recipe {
        action: ActionMap {
            scale: f32::MAX,
            clip: None,
        },
        ..streaming()
    };
    let bytes = bundle_for::<Gauss>(recipe, 8);
    let mut mem = Vec::new();
    let mut ad = adapter::<Gauss>(&bytes, &mut mem, 8);
    let mut refused = 0;
    for _ in 0..50 {
        match ad.act(&[0.1, 0.2]) {
            Ok(a) => {
                assert!(a.iter().all(|x| x.is_finite()));
                ad.reward(-1.0).unwrap();
                ad.end_episode().unwrap();
            }
            Err(e) => {
                assert_eq!(e, AdaptError::Policy(PolicyError::NonFiniteOutput));
                refused += 1;
            }
        }
    }
    assert!(refused > 40, "{refused}");
}
