//! Fault injection: an [`Env`] wrapper whose sensors glitch, fail and cut episodes short,
//! to test that adaptation survives what a real robot does (smoltcp's `FaultInjector`
//! device is the model).
//!
//! [`FaultyEnv`] forwards every call to the environment it wraps, then, with the
//! probabilities of its [`Faults`], damages what comes back:
//!
//! | fault | when | effect |
//! |---|---|---|
//! | sensor read error | each `reset` and `step` | returns [`FaultError::Sensor`] (the wrapped environment has already acted) |
//! | corrupt observation | each `reset` and `step` | one observation scalar becomes a [`Corruptions`] value |
//! | corrupt reward | each `step` | the reward becomes a [`Corruptions`] value |
//! | cut short | each `step` | `done = true`, as a watchdog or a bumper would end the episode |
//!
//! A corrupt value is NaN, +∞, −∞ or a finite spike `±spike`, drawn uniformly among the
//! kinds enabled. Faults fire only on the calls whose index (counting `reset` and `step`
//! calls from 0) lies in `from..until`, so a test can inject a transient burst, or one
//! fault at an exact call with probability 1.
//!
//! Faults are reproducible: the wrapper draws from its own seeded [`Rng`], the same number
//! of draws on every call whatever happens, so the same seed and the same calls give the
//! same faults. [`Env::stop`] is passed through untouched (the faults modelled are the
//! sensors'; the stop command must reach the actuators), and recorded, so a test can check
//! that the robot was told to stop. [`FaultyEnv::log`] counts what was injected.

use crate::adapt::MAX_IO;
use crate::env::{Env, Transition};
use crate::rng::Rng;

/// The kinds of bad value a corrupted observation or reward can take (a bit set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Corruptions(u8);

impl Corruptions {
    /// NaN.
    pub const NAN: Self = Self(1 << 0);
    /// +∞.
    pub const POS_INF: Self = Self(1 << 1);
    /// −∞.
    pub const NEG_INF: Self = Self(1 << 2);
    /// A finite value of magnitude [`Faults::spike`], either sign.
    pub const SPIKE: Self = Self(1 << 3);
    /// NaN and ±∞.
    pub const NON_FINITE: Self = Self(Self::NAN.0 | Self::POS_INF.0 | Self::NEG_INF.0);
    /// Every kind.
    pub const ALL: Self = Self(Self::NON_FINITE.0 | Self::SPIKE.0);
    /// No kind: corruption faults are then skipped even when drawn.
    pub const EMPTY: Self = Self(0);

    /// Both sets.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// True when every kind of `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The bad value for a uniform draw `u` in `[0, 1)`: kind and sign picked evenly.
    fn value(self, u: f32, spike: f32) -> Option<f32> {
        let kinds = [
            (Self::NAN, f32::NAN),
            (Self::POS_INF, f32::INFINITY),
            (Self::NEG_INF, f32::NEG_INFINITY),
            (Self::SPIKE, spike),
        ];
        let n = self.0.count_ones() as usize;
        // Two slots per kind: the second flips the sign (only a spike's sign matters).
        let k = ((u * (2 * n) as f32) as usize).min((2 * n).saturating_sub(1));
        kinds
            .iter()
            .filter(|(c, _)| self.contains(*c))
            .nth(k / 2)
            .map(|&(_, v)| if k % 2 == 1 { -v } else { v })
    }
}

/// What to inject, and when. Probabilities are per call, in `[0, 1]` (0 never, 1 always).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Faults {
    /// Probability that a `reset` or `step` fails with [`FaultError::Sensor`].
    pub sensor_error: f32,
    /// Probability that one scalar of the observation written by `reset` or `step` is
    /// corrupted.
    pub observation: f32,
    /// Probability that a `step`'s reward is corrupted.
    pub reward: f32,
    /// Probability that a `step` ends the episode (`done = true`).
    pub cut_short: f32,
    /// The bad values corruption draws from.
    pub corruptions: Corruptions,
    /// Magnitude of a [`Corruptions::SPIKE`] value (finite; e.g. `1e30` or `f32::MAX`).
    pub spike: f32,
    /// First call (0-based, `reset` and `step` counted together) on which faults may fire.
    pub from: u32,
    /// Faults fire only before this call.
    pub until: u32,
}

impl Faults {
    /// No faults: the wrapper is transparent.
    pub const NONE: Self = Self {
        sensor_error: 0.0,
        observation: 0.0,
        reward: 0.0,
        cut_short: 0.0,
        corruptions: Corruptions::ALL,
        spike: 1e30,
        from: 0,
        until: u32::MAX,
    };
}

/// What [`FaultyEnv`] injected and forwarded so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FaultLog {
    /// `reset` and `step` calls.
    pub calls: u32,
    /// Sensor read errors returned.
    pub sensor_errors: u32,
    /// Observations corrupted.
    pub observations: u32,
    /// Rewards corrupted.
    pub rewards: u32,
    /// Episodes cut short.
    pub cuts: u32,
    /// [`Env::stop`] commands forwarded.
    pub stops: u32,
}

/// A failure of a [`FaultyEnv`]: injected, or the wrapped environment's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FaultError<E> {
    /// An injected sensor read error.
    Sensor,
    /// The wrapped environment failed.
    Inner(E),
}

impl<E: core::fmt::Debug> core::fmt::Display for FaultError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Sensor => f.write_str("injected sensor read error"),
            Self::Inner(e) => write!(f, "environment: {e:?}"),
        }
    }
}

/// An [`Env`] whose readings fail and glitch as its [`Faults`] say (see the module docs).
#[derive(Clone, Debug)]
pub struct FaultyEnv<E> {
    inner: E,
    faults: Faults,
    rng: Rng,
    log: FaultLog,
    /// The last stop command forwarded (first `last_stop_len` scalars).
    last_stop: [f32; MAX_IO],
    last_stop_len: Option<usize>,
}

/// One call's draws, always all taken so the fault schedule does not depend on outcomes.
struct Draws {
    sensor: f32,
    observation: f32,
    obs_index: f32,
    obs_value: f32,
    reward: f32,
    reward_value: f32,
    cut: f32,
}

impl<E: Env> FaultyEnv<E> {
    /// Wraps `inner`, injecting `faults` from the random stream named by `seed`.
    pub fn new(inner: E, faults: Faults, seed: u64) -> Self {
        Self {
            inner,
            faults,
            rng: Rng::new(seed),
            log: FaultLog::default(),
            last_stop: [0.0; MAX_IO],
            last_stop_len: None,
        }
    }

    /// The wrapped environment.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// The wrapped environment, mutably.
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.inner
    }

    /// The wrapped environment, unwrapped.
    pub fn into_inner(self) -> E {
        self.inner
    }

    /// The faults being injected.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Changes the faults from the next call on (e.g. to end a burst); the random stream
    /// and the log continue.
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    /// What was injected and forwarded so far.
    pub fn log(&self) -> FaultLog {
        self.log
    }

    /// The last stop command forwarded to the wrapped environment, if any.
    pub fn last_stop(&self) -> Option<&[f32]> {
        self.last_stop_len.and_then(|n| self.last_stop.get(..n))
    }

    /// Draws this call's dice and reports whether faults may fire on it.
    fn roll(&mut self) -> (bool, Draws) {
        let call = self.log.calls;
        self.log.calls = self.log.calls.saturating_add(1);
        let draws = Draws {
            sensor: self.rng.uniform(),
            observation: self.rng.uniform(),
            obs_index: self.rng.uniform(),
            obs_value: self.rng.uniform(),
            reward: self.rng.uniform(),
            reward_value: self.rng.uniform(),
            cut: self.rng.uniform(),
        };
        let active = (self.faults.from..self.faults.until).contains(&call);
        (active, draws)
    }

    /// Applies the sensor-error and observation faults of a reading.
    fn damage_reading(&mut self, d: &Draws, obs: &mut [f32]) -> Result<(), FaultError<E::Error>> {
        if d.sensor < self.faults.sensor_error {
            self.log.sensor_errors += 1;
            return Err(FaultError::Sensor);
        }
        if d.observation < self.faults.observation {
            let f = &self.faults;
            let n = obs.len().min(self.inner.obs_dim());
            let obs = obs.get_mut(..n).unwrap_or_default();
            let i = ((d.obs_index * obs.len() as f32) as usize).min(obs.len().saturating_sub(1));
            if let (Some(x), Some(v)) = (obs.get_mut(i), f.corruptions.value(d.obs_value, f.spike))
            {
                *x = v;
                self.log.observations += 1;
            }
        }
        Ok(())
    }
}

impl<E: Env> Env for FaultyEnv<E> {
    type Error = FaultError<E::Error>;

    fn obs_dim(&self) -> usize {
        self.inner.obs_dim()
    }

    fn action_width(&self) -> usize {
        self.inner.action_width()
    }

    fn reset(&mut self, obs: &mut [f32]) -> Result<(), Self::Error> {
        let (active, d) = self.roll();
        self.inner.reset(obs).map_err(FaultError::Inner)?;
        if active {
            self.damage_reading(&d, obs)?;
        }
        Ok(())
    }

    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> Result<Transition, Self::Error> {
        let (active, d) = self.roll();
        let mut tr = self.inner.step(action, obs).map_err(FaultError::Inner)?;
        if !active {
            return Ok(tr);
        }
        self.damage_reading(&d, obs)?;
        let f = &self.faults;
        if d.reward < f.reward
            && let Some(v) = f.corruptions.value(d.reward_value, f.spike)
        {
            tr.reward = v;
            self.log.rewards += 1;
        }
        if d.cut < f.cut_short && !tr.done {
            tr.done = true;
            self.log.cuts += 1;
        }
        Ok(tr)
    }

    fn stop(&mut self, action: &[f32], obs: &mut [f32]) -> Result<(), Self::Error> {
        self.log.stops = self.log.stops.saturating_add(1);
        let n = action.len().min(MAX_IO);
        for (s, &a) in self.last_stop.iter_mut().zip(action) {
            *s = a;
        }
        self.last_stop_len = Some(n);
        self.inner.stop(action, obs).map_err(FaultError::Inner)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::sim::Nav2d;
    use std::vec::Vec;

    /// Plays `calls` calls (a reset every 10) and returns every observation and reward seen.
    fn trace(faults: Faults, seed: u64, calls: usize) -> (Vec<Result<[f32; 3], ()>>, FaultLog) {
        let mut env = FaultyEnv::new(Nav2d::new([0.3, 0.3]), faults, seed);
        let mut out = Vec::new();
        let mut obs = [0.0f32; 2];
        for i in 0..calls {
            let r = if i % 10 == 0 {
                env.reset(&mut obs).map(|()| [obs[0], obs[1], 0.0])
            } else {
                env.step(&[0.01, 0.02], &mut obs)
                    .map(|t| [obs[0], obs[1], t.reward])
            };
            out.push(r.map_err(|_| ()));
        }
        (out, env.log())
    }

    fn bits(v: &[Result<[f32; 3], ()>]) -> Vec<Option<[u32; 3]>> {
        v.iter()
            .map(|r| r.ok().map(|a| a.map(f32::to_bits)))
            .collect()
    }

    #[test]
    fn no_faults_is_transparent() {
        let mut plain = Nav2d::new([0.3, 0.3]);
        let (faulty, log) = trace(Faults::NONE, 1, 30);
        let mut obs = [0.0f32; 2];
        for (i, r) in faulty.iter().enumerate() {
            let want = if i % 10 == 0 {
                let Ok(()) = plain.reset(&mut obs);
                [obs[0], obs[1], 0.0]
            } else {
                let Ok(t) = plain.step(&[0.01, 0.02], &mut obs);
                [obs[0], obs[1], t.reward]
            };
            assert_eq!(*r, Ok(want));
        }
        assert_eq!(
            log,
            FaultLog {
                calls: 30,
                ..FaultLog::default()
            }
        );
    }

    #[test]
    fn each_fault_fires_at_its_rate_and_only_in_its_window() {
        let faults = Faults {
            sensor_error: 0.1,
            observation: 0.2,
            reward: 0.3,
            cut_short: 0.25,
            from: 100,
            until: 2100,
            ..Faults::NONE
        };
        let (out, log) = trace(faults, 7, 2200);
        assert_eq!(log.calls, 2200);
        // Outside the window every reading is clean.
        assert!(out[..100].iter().chain(&out[2100..]).all(|r| match r {
            Ok(v) => v.iter().all(|x| x.is_finite() && x.abs() <= 1.0),
            Err(()) => false,
        }));
        // 2000 calls in the window, 1800 of them steps: binomial counts within ±5 σ.
        let near = |count: u32, n: f32, p: f32| {
            let sd = (n * p * (1.0 - p)).sqrt();
            ((count as f32) - n * p).abs() < 5.0 * sd
        };
        assert!(near(log.sensor_errors, 2000.0, 0.1), "{log:?}");
        assert!(near(log.observations, 2000.0 * 0.9, 0.2), "{log:?}");
        assert!(near(log.rewards, 1800.0 * 0.9, 0.3), "{log:?}");
        assert!(near(log.cuts, 1800.0 * 0.9, 0.25), "{log:?}");
        let errors = out.iter().filter(|r| r.is_err()).count();
        assert_eq!(errors, log.sensor_errors as usize);
    }

    #[test]
    fn same_seed_same_faults_other_seed_other_faults() {
        let faults = Faults {
            sensor_error: 0.1,
            observation: 0.3,
            reward: 0.3,
            ..Faults::NONE
        };
        let (a, la) = trace(faults, 3, 500);
        let (b, lb) = trace(faults, 3, 500);
        let (c, _) = trace(faults, 4, 500);
        assert_eq!(bits(&a), bits(&b));
        assert_eq!(la, lb);
        assert_ne!(bits(&a), bits(&c));
    }

    #[test]
    fn corruptions_draw_only_the_enabled_kinds_and_both_spike_signs() {
        let mut seen = [0u32; 5]; // NaN, +inf, -inf, +spike, -spike
        let mut rng = Rng::new(9);
        for _ in 0..4000 {
            let v = Corruptions::ALL.value(rng.uniform(), 1e30).unwrap();
            let i = match v {
                v if v.is_nan() => 0,
                f32::INFINITY => 1,
                f32::NEG_INFINITY => 2,
                1e30 => 3,
                -1e30 => 4,
                other => panic!("unexpected {other}"),
            };
            seen[i] += 1;
        }
        // NaN and ±inf take two slots each (the sign flip of ±inf gives the other infinity).
        assert!(seen.iter().all(|&n| n > 300), "{seen:?}");
        for _ in 0..200 {
            let v = Corruptions::SPIKE.value(rng.uniform(), 5.0).unwrap();
            assert!(v == 5.0 || v == -5.0);
            assert!(Corruptions::NAN.value(rng.uniform(), 5.0).unwrap().is_nan());
        }
        assert_eq!(Corruptions::EMPTY.value(0.5, 1.0), None);
        assert!(Corruptions::ALL.contains(Corruptions::NON_FINITE.union(Corruptions::SPIKE)));
        assert!(!Corruptions::NON_FINITE.contains(Corruptions::SPIKE));
    }

    #[test]
    fn exact_schedule_and_stop_passes_through() {
        // One sensor error on call 3 and nothing else.
        let faults = Faults {
            sensor_error: 1.0,
            from: 3,
            until: 4,
            ..Faults::NONE
        };
        let mut env = FaultyEnv::new(Nav2d::new([0.3, 0.3]), faults, 0);
        let mut obs = [0.0f32; 2];
        assert!(env.reset(&mut obs).is_ok());
        assert!(env.step(&[0.1, 0.0], &mut obs).is_ok());
        assert!(env.step(&[0.1, 0.0], &mut obs).is_ok());
        assert_eq!(env.step(&[0.1, 0.0], &mut obs), Err(FaultError::Sensor));
        // The robot moved on the failed call: the actuators acted, the reading failed.
        assert!((env.inner().position()[0] - 0.3).abs() < 1e-6);
        assert!(env.step(&[0.1, 0.0], &mut obs).is_ok());
        assert_eq!(env.last_stop(), None);
        env.stop(&[0.0, 0.0], &mut obs).unwrap();
        assert_eq!(env.last_stop(), Some(&[0.0f32, 0.0][..]));
        assert!((env.inner().position()[0] - 0.4).abs() < 1e-6);
        assert_eq!(env.log().stops, 1);
        assert_eq!(env.log().calls, 5);
    }
}
