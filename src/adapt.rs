//! The adapter: ζ stochastic policy-gradient steps on the device, exactly as the recipe says.
//!
//! [`Adapter`] starts from the meta-parameters (read in place, e.g. from a bundle in flash;
//! never written) and turns the episodes it experiences into ζ gradient-ascent steps
//! `θ_k = θ_{k−1} + (α/n)·Σ_τ Σ_h A_h ∇log π(a_h|s_h; θ_{k−1})`, with `α/n = recipe.alpha_per_sample()`
//! and the recipe's advantage rule. After the last step it keeps acting with the adapted
//! policy. It can be driven two ways:
//! - **tick by tick**, from a robot's control loop or an async task: [`Adapter::act`] with an
//!   observation, [`Adapter::reward`] with what the step earned, [`Adapter::end_episode`]
//!   when the episode ends (goal reached, fell over, or the horizon was hit);
//! - **blocking**, [`Adapter::run`] on an [`Env`], which does exactly those calls.
//!
//! # Memory
//! Everything lives in one caller-provided `&mut [f32]` of
//! [`Memory::for_recipe`]`(&recipe, &P::SHAPE).total_floats()` scalars: the gradient accumulator (`P`), the adapted parameters (`P`,
//! only when ζ > 1: with ζ = 1 they are formed inside the accumulator), the episode
//! buffer (one episode for streaming advantage rules, the whole batch otherwise), and the
//! policy's hidden-layer activations and deltas (so that the stack the adapter takes does
//! not grow with the network's width). The policy code reads the meta-parameters and the
//! adapted ones through one type ([`MetaSource`]), so it is compiled once.
//!
//! # Failures never corrupt the policy
//! Bad observations or rewards (NaN, ±∞) are refused with an error and the episode in
//! progress is dropped; a step whose result would be non-finite is not applied (the
//! parameters stay where they were, the step's batch is discarded and collected again);
//! the meta-parameters are never written. [`Adapter::reset`] returns to the meta-policy.
//!
//! # Stopping the robot
//! Whenever an error interrupts an episode the robot must not keep executing its last
//! command. [`Adapter::safe_action`] is the command that stops it (all zeros: no motion for
//! a Gaussian policy, action index 0 for a softmax one; see [`crate::env`]).
//! [`Adapter::run`] and [`Adapter::evaluate`] send it themselves through [`Env::stop`]
//! before returning an error; a caller driving [`Adapter::act`] tick by tick sends it when
//! any call returns an error. `crate::faults` injects the failures these paths handle.

use crate::advantage::Advantages;
use crate::bundle::{Bundle, BundleError};
use crate::env::Env;
use crate::episode::Episode;
use crate::estimator::{self, EstimatorError};
use crate::policy::{LeF32s, ParamSource, Policy, PolicyError, dense};
use crate::recipe::{Recipe, RecipeError};
use crate::rng::Rng;

mod memory;
pub use memory::Memory;

/// Largest observation or action length the adapter handles (stack buffers).
pub const MAX_IO: usize = 32;

/// Why the adapter refused a call or a step. Parameters are unchanged whenever this is
/// returned.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AdaptError<E = core::convert::Infallible> {
    /// The recipe is out of range.
    Recipe(RecipeError),
    /// The memory buffer is too small: `needed` scalars.
    Memory {
        /// Scalars required (`Memory::total_floats`).
        needed: usize,
        /// Scalars given.
        got: usize,
    },
    /// The meta-parameters or baseline table do not fit the policy and recipe.
    Shape,
    /// The bundle was written for another policy architecture.
    Bundle(BundleError),
    /// Observation or action longer than [`MAX_IO`].
    TooWide,
    /// An observation holds NaN or ±∞; the episode in progress was dropped.
    NonFiniteObservation,
    /// A reward is NaN or ±∞; the episode in progress was dropped.
    NonFiniteReward,
    /// `act` was called `H` times without `end_episode`.
    HorizonReached,
    /// `reward` was called without a preceding `act`, or twice.
    RewardWithoutAction,
    /// `act` was called again before the previous action's `reward`.
    MissingReward,
    /// `end_episode` on an episode with no steps.
    EmptyEpisode,
    /// The step's result would be non-finite, or would leave a policy that cannot act
    /// (its action or log-probability overflows), e.g. α too large for this batch: the step
    /// was not applied and its batch was discarded.
    NonFiniteStep,
    /// The policy rejected an input or produced a non-finite value (or an action that the
    /// action map overflowed). From [`Adapter::act`] the episode in progress was dropped
    /// (except for an observation of the wrong length, which changes nothing); from
    /// [`Adapter::end_episode`] the step's batch was discarded.
    Policy(PolicyError),
    /// The estimator rejected the batch; the step's batch was discarded.
    Estimator(EstimatorError),
    /// The environment failed (sensor or actuator error); the episode was dropped.
    Env(E),
}

impl<E: core::fmt::Debug> core::fmt::Display for AdaptError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Recipe(e) => write!(f, "invalid recipe: {e}"),
            Self::Memory { needed, got } => {
                write!(f, "adapter memory must hold {needed} f32, got {got}")
            }
            Self::Shape => f.write_str("parameters or baseline do not fit the policy and recipe"),
            Self::Bundle(e) => write!(f, "bundle: {e}"),
            Self::TooWide => f.write_str("observation or action longer than adapt::MAX_IO"),
            Self::NonFiniteObservation => f.write_str("non-finite observation; episode dropped"),
            Self::NonFiniteReward => f.write_str("non-finite reward; episode dropped"),
            Self::HorizonReached => f.write_str("horizon reached; call end_episode"),
            Self::RewardWithoutAction => f.write_str("reward without a preceding act"),
            Self::MissingReward => f.write_str("act called before the previous reward"),
            Self::EmptyEpisode => f.write_str("episode has no steps"),
            Self::NonFiniteStep => {
                f.write_str("adaptation step would be non-finite; not applied, batch discarded")
            }
            Self::Policy(e) => write!(f, "policy: {e}; episode or batch discarded"),
            Self::Estimator(e) => write!(f, "estimator: {e}; batch discarded"),
            Self::Env(e) => write!(f, "environment: {e:?}; episode dropped"),
        }
    }
}

#[cfg(feature = "std")]
impl<E: core::fmt::Debug> std::error::Error for AdaptError<E> {}

impl<E> AdaptError<E> {
    /// The same error with its environment error, if it is one, turned into `env(e)`;
    /// every other kind is kept as it is (the one place that lists the kinds).
    fn map_env<F>(self, env: impl FnOnce(E) -> AdaptError<F>) -> AdaptError<F> {
        match self {
            Self::Env(e) => env(e),
            Self::Recipe(e) => AdaptError::Recipe(e),
            Self::Memory { needed, got } => AdaptError::Memory { needed, got },
            Self::Shape => AdaptError::Shape,
            Self::Bundle(e) => AdaptError::Bundle(e),
            Self::TooWide => AdaptError::TooWide,
            Self::NonFiniteObservation => AdaptError::NonFiniteObservation,
            Self::NonFiniteReward => AdaptError::NonFiniteReward,
            Self::HorizonReached => AdaptError::HorizonReached,
            Self::RewardWithoutAction => AdaptError::RewardWithoutAction,
            Self::MissingReward => AdaptError::MissingReward,
            Self::EmptyEpisode => AdaptError::EmptyEpisode,
            Self::NonFiniteStep => AdaptError::NonFiniteStep,
            Self::Policy(e) => AdaptError::Policy(e),
            Self::Estimator(e) => AdaptError::Estimator(e),
        }
    }

    /// The environment's error, or the adapter's own (the inverse of
    /// [`AdaptError::with_env`]): a control loop reports the two apart.
    pub fn split_env(self) -> Result<E, AdaptError> {
        match self {
            Self::Env(e) => Ok(e),
            // Not an environment error, so the closure never runs.
            other => Err(other.map_env(|_| AdaptError::Shape)),
        }
    }
}

impl<E> From<PolicyError> for AdaptError<E> {
    fn from(e: PolicyError) -> Self {
        Self::Policy(e)
    }
}

impl<E> From<EstimatorError> for AdaptError<E> {
    fn from(e: EstimatorError) -> Self {
        Self::Estimator(e)
    }
}

impl AdaptError {
    /// The same error, for an adapter driven by an environment with error type `E`.
    pub fn with_env<E>(self) -> AdaptError<E> {
        self.map_env(|never| match never {})
    }
}

/// What [`Adapter::end_episode`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Progress {
    /// The episode was recorded for step `step` (0-based); more episodes are needed.
    Recorded {
        /// Adaptation step the episode belongs to.
        step: u16,
        /// Episodes of that step recorded so far.
        episodes: u16,
    },
    /// Step `step` (1-based) was applied. `mean_return` is the mean undiscounted return of
    /// its batch, i.e. of the policy *before* the step.
    Stepped {
        /// Number of steps applied so far.
        step: u16,
        /// Mean undiscounted return of the batch the step used.
        mean_return: f32,
    },
    /// All ζ steps are done; the episode was played by the adapted policy and not recorded.
    Adapted {
        /// Its undiscounted return.
        episode_return: f32,
    },
}

/// How an episode played tick by tick ([`Adapter::play_tick`]) ended.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EpisodeEnd {
    /// What [`Adapter::end_episode`] did with it.
    pub progress: Progress,
    /// Its undiscounted return (whatever `progress` says).
    pub episode_return: f32,
}

/// Where the current policy's parameters are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Current {
    /// The meta-parameters (before the first step).
    Meta,
    /// The accumulator holds them (ζ = 1 after the step).
    InGrad,
    /// The adapted-parameter buffer holds them (ζ > 1 after a step).
    InParams,
}

/// Per-call tick state of the episode in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tick {
    /// Expecting `act`.
    Act,
    /// Expecting `reward` for the action at time `t`.
    Reward,
}

/// Summary of a blocking [`Adapter::run`].
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Mean undiscounted return of each step's batch (entry k: policy after k steps).
    pub step_returns: heapless::Vec<f32, { crate::recipe::MAX_STEPS as usize }>,
    /// Environment steps taken.
    pub env_steps: u32,
}

/// Adapts a policy `P` whose meta-parameters are read from `M` (flash bytes or RAM).
pub struct Adapter<'m, P: Policy, M: ParamSource<f32>> {
    policy: P,
    meta: M,
    baseline: Option<M>,
    recipe: Recipe,
    seed: u64,
    /// Adapted parameters (`P`, or empty when ζ = 1).
    params: &'m mut [f32],
    /// Gradient accumulator (`P`); holds θ₁ when ζ = 1 after the step.
    grad: &'m mut [f32],
    /// Episode storage: `episodes_held` slots of `H·(obs + action + 1)`, then lengths.
    episodes: &'m mut [f32],
    /// The policy's hidden-layer activations and deltas (`Memory::scratch_floats`).
    hidden: &'m mut [f32],
    current: Current,
    /// Steps applied.
    step: u16,
    /// Episodes recorded in the current step.
    episode: u16,
    /// Time index within the episode in progress.
    t: u16,
    tick: Tick,
    episode_return: f32,
    batch_return: f32,
    rng: Rng,
    /// Episodes played after adaptation (names their random streams).
    deployed_episodes: u64,
    /// The last action as the environment receives it.
    action_out: [f32; MAX_IO],
}

impl<'m, P: Policy, M: ParamSource<f32>> Adapter<'m, P, M> {
    /// The recipe being followed.
    pub fn recipe(&self) -> &Recipe {
        &self.recipe
    }

    /// Steps applied so far (0..=ζ).
    pub fn steps_done(&self) -> u16 {
        self.step
    }

    /// True once all ζ steps are applied.
    pub fn is_adapted(&self) -> bool {
        self.step >= self.recipe.steps
    }

    /// The action that stops the robot, `action_width` zeros: for a Gaussian policy the
    /// zero command (the recipe's action map sends 0 to 0), for a softmax policy action
    /// index 0, which by convention means "stop" or "stay" (see [`crate::env`]). Command it
    /// whenever an adapter call fails mid-episode.
    pub fn safe_action(&self) -> &'static [f32] {
        static ZEROS: [f32; MAX_IO] = [0.0; MAX_IO];
        // `new` checked ACTION_WIDTH <= MAX_IO, so the fallback is never taken.
        ZEROS.get(..P::ACTION_WIDTH).unwrap_or(&[])
    }

    /// Memory this adapter uses, by purpose.
    pub fn memory(&self) -> Memory {
        Memory::for_recipe(&self.recipe, &P::SHAPE)
    }

    /// Calls `f` with the current parameters, wherever they live.
    pub fn with_params<R>(&self, f: impl FnOnce(ParamsRef<'_, M>) -> R) -> R {
        f(self.params_ref())
    }

    fn params_ref(&self) -> ParamsRef<'_, M> {
        match self.current {
            Current::Meta => ParamsRef::Meta(self.meta),
            Current::InGrad => ParamsRef::Ram(self.grad),
            Current::InParams => ParamsRef::Ram(self.params),
        }
    }
}

impl<'m, P: Policy, M: MetaSource> Adapter<'m, P, M> {
    /// An adapter for `policy` starting at `meta`, following `recipe`, using `memory` (at
    /// least `Memory::for_recipe(&recipe, &P::SHAPE).total_floats()` scalars). `baseline` is the
    /// per-time-step table, required exactly when the recipe's rule is
    /// [`TimeBaseline`](crate::recipe::Advantage::TimeBaseline) or its scaled variant. `seed` names the random streams.
    pub fn new(
        policy: P,
        meta: M,
        baseline: Option<M>,
        recipe: Recipe,
        memory: &'m mut [f32],
        seed: u64,
    ) -> Result<Self, AdaptError> {
        recipe.validate().map_err(AdaptError::Recipe)?;
        let shape = P::SHAPE;
        if meta.len() != P::N_PARAMS {
            return Err(AdaptError::Shape);
        }
        let wants_table = recipe.advantage.uses_table();
        match baseline {
            Some(b) if wants_table && b.len() == usize::from(recipe.horizon) => {}
            None if !wants_table => {}
            _ => return Err(AdaptError::Shape),
        }
        if P::OBS_DIM > MAX_IO || P::ACTION_WIDTH > MAX_IO {
            return Err(AdaptError::TooWide);
        }
        let need = Memory::for_recipe(&recipe, &shape);
        let got = memory.len();
        let err = AdaptError::Memory {
            needed: need.total_floats(),
            got,
        };
        let (params, rest) = memory.split_at_mut_checked(need.params_floats).ok_or(err)?;
        let (grad, rest) = rest.split_at_mut_checked(need.grad_floats).ok_or(err)?;
        let (episodes, rest) = rest.split_at_mut_checked(need.episode_floats).ok_or(err)?;
        let hidden = rest.get_mut(..need.scratch_floats).ok_or(err)?;
        let mut adapter = Self {
            policy,
            meta,
            baseline,
            recipe,
            seed,
            params,
            grad,
            episodes,
            hidden,
            current: Current::Meta,
            step: 0,
            episode: 0,
            t: 0,
            tick: Tick::Act,
            episode_return: 0.0,
            batch_return: 0.0,
            rng: Rng::derive(seed, &[0, 0]),
            deployed_episodes: 0,
            action_out: [0.0; MAX_IO],
        };
        adapter.reset();
        Ok(adapter)
    }

    /// Back to the meta-policy: forgets every step and episode.
    pub fn reset(&mut self) {
        self.current = Current::Meta;
        self.step = 0;
        self.deployed_episodes = 0;
        self.discard_batch();
    }

    /// Makes parameters adapted earlier (e.g. restored from flash by [`crate::store`]) the
    /// current policy, as if all ζ steps had just been applied: `fill` writes the `P`
    /// scalars into the adapter's own buffer and returns false if it could not. If it
    /// fails or writes a non-finite scalar, the adapter is back at the meta-policy and
    /// [`AdaptError::Shape`] or [`AdaptError::NonFiniteStep`] is returned.
    pub fn restore(&mut self, fill: impl FnOnce(&mut [f32]) -> bool) -> Result<(), AdaptError> {
        self.reset();
        let (buf, current) = if self.params.is_empty() {
            (&mut *self.grad, Current::InGrad)
        } else {
            (&mut *self.params, Current::InParams)
        };
        if !fill(buf) {
            self.reset();
            return Err(AdaptError::Shape);
        }
        if !buf.iter().all(|x| x.is_finite()) {
            self.reset();
            return Err(AdaptError::NonFiniteStep);
        }
        self.current = current;
        self.step = self.recipe.steps;
        self.discard_batch();
        Ok(())
    }

    /// Forgets the episode in progress (steps applied and episodes already recorded are
    /// kept), e.g. when the environment failed between [`Adapter::act`] and
    /// [`Adapter::reward`] or a control loop interrupts an episode.
    pub fn abandon_episode(&mut self) {
        self.drop_episode();
    }

    /// Length of one episode slot in the buffer.
    fn slot_len(&self) -> usize {
        usize::from(self.recipe.horizon) * (P::OBS_DIM + P::ACTION_WIDTH + 1)
    }

    /// The slot episode `i` of the current batch is stored in.
    fn slot_index(&self) -> usize {
        if self.recipe.needs_batch() {
            usize::from(self.episode)
        } else {
            0
        }
    }

    /// Splits a slot into its observation, action and reward planes.
    fn planes(slot: &mut [f32], h: usize) -> Option<(&mut [f32], &mut [f32], &mut [f32])> {
        let (obs, rest) = slot.split_at_mut_checked(h * P::OBS_DIM)?;
        let (act, rew) = rest.split_at_mut_checked(h * P::ACTION_WIDTH)?;
        Some((obs, act, rew))
    }

    /// The current parameters through `M`'s [`MetaSource::View`], from the fields that
    /// hold them (so that the caller can borrow the adapter's other fields mutably at the
    /// same time). Every policy call of the adapter reads its parameters through this one
    /// type: the policy code is compiled once, not once for parameters in flash and once
    /// for parameters in RAM.
    fn current_view<'a>(
        current: Current,
        meta: M,
        params: &'a [f32],
        grad: &'a [f32],
    ) -> Result<M::View<'a>, AdaptError>
    where
        M: 'a,
    {
        match current {
            Current::Meta => Some(meta.meta_view()),
            Current::InGrad => M::ram_view(grad),
            Current::InParams => M::ram_view(params),
        }
        .ok_or(AdaptError::Shape)
    }

    fn start_episode_stream(&mut self) {
        let path = if self.is_adapted() {
            [u64::from(self.recipe.steps) + 1, self.deployed_episodes]
        } else {
            [u64::from(self.step), u64::from(self.episode)]
        };
        self.rng = Rng::derive(self.seed, &path);
    }

    /// The action for `obs`, as the environment should receive it (scaled and clipped by
    /// the recipe for a Gaussian policy; a discrete index as one scalar for softmax).
    /// While adapting, the step is recorded; call [`Adapter::reward`] next.
    ///
    /// The action is always finite. A non-finite observation, or a policy that cannot
    /// produce a finite action for it (overflow), drops the episode in progress; command
    /// [`Adapter::safe_action`] after any error.
    pub fn act(&mut self, obs: &[f32]) -> Result<&[f32], AdaptError> {
        if self.tick == Tick::Reward {
            return Err(AdaptError::MissingReward);
        }
        if obs.len() != P::OBS_DIM {
            return Err(PolicyError::ObsLength(crate::policy::LenMismatch {
                expected: P::OBS_DIM,
                got: obs.len(),
            })
            .into());
        }
        if obs.iter().any(|x| !x.is_finite()) {
            self.drop_episode();
            return Err(AdaptError::NonFiniteObservation);
        }
        if self.t >= self.recipe.horizon {
            return Err(AdaptError::HorizonReached);
        }
        if self.t == 0 {
            self.start_episode_stream();
        }
        // The raw sample goes straight into the output buffer (no second buffer on the
        // stack), is recorded from there, and is then mapped in place.
        let out = self
            .action_out
            .get_mut(..P::ACTION_WIDTH)
            .ok_or(AdaptError::TooWide)?;
        let params = Self::current_view(self.current, self.meta, self.params, self.grad)?;
        if let Err(e) = self
            .policy
            .sample_with(params, obs, &mut self.rng, self.hidden, out)
        {
            // The episode cannot continue from this observation: like a non-finite one.
            self.drop_episode();
            return Err(e.into());
        }
        if !self.is_adapted() {
            // Written at time `t`, which only counts once `reward` arrives: if the episode
            // is dropped below, the record is overwritten by the next one.
            if let Err(e) = self.record(obs) {
                self.drop_episode();
                return Err(e);
            }
        }
        let map = self.recipe.action;
        let gaussian = P::SHAPE.distribution.uses_action_map();
        let out = self
            .action_out
            .get_mut(..P::ACTION_WIDTH)
            .ok_or(AdaptError::TooWide)?;
        if gaussian {
            out.iter_mut().for_each(|o| *o = map.apply(*o));
        }
        // A finite sample can still overflow `scale·u` when the map does not clip: never
        // send ±∞ to an actuator.
        if !out.iter().all(|x| x.is_finite()) {
            self.drop_episode();
            return Err(PolicyError::NonFiniteOutput.into());
        }
        self.tick = Tick::Reward;
        self.action_out
            .get(..P::ACTION_WIDTH)
            .ok_or(AdaptError::TooWide)
    }

    /// Stores the observation and the raw action (in `action_out`, not yet mapped) at time
    /// `t` of the episode in progress.
    fn record(&mut self, obs: &[f32]) -> Result<(), AdaptError> {
        let h = usize::from(self.recipe.horizon);
        let t = usize::from(self.t);
        let len = self.slot_len();
        let start = self.slot_index() * len;
        let slot = self
            .episodes
            .get_mut(start..start + len)
            .ok_or(AdaptError::Shape)?;
        let (o, a, _) = Self::planes(slot, h).ok_or(AdaptError::Shape)?;
        let o = o
            .get_mut(t * P::OBS_DIM..(t + 1) * P::OBS_DIM)
            .ok_or(AdaptError::Shape)?;
        o.copy_from_slice(obs);
        let a = a
            .get_mut(t * P::ACTION_WIDTH..(t + 1) * P::ACTION_WIDTH)
            .ok_or(AdaptError::Shape)?;
        let raw = self
            .action_out
            .get(..P::ACTION_WIDTH)
            .ok_or(AdaptError::TooWide)?;
        a.copy_from_slice(raw);
        Ok(())
    }

    /// The reward earned by the last action.
    pub fn reward(&mut self, r: f32) -> Result<(), AdaptError> {
        if self.tick != Tick::Reward {
            return Err(AdaptError::RewardWithoutAction);
        }
        if !r.is_finite() {
            self.drop_episode();
            return Err(AdaptError::NonFiniteReward);
        }
        if !self.is_adapted() {
            let h = usize::from(self.recipe.horizon);
            let len = self.slot_len();
            let start = self.slot_index() * len;
            let slot = self
                .episodes
                .get_mut(start..start + len)
                .ok_or(AdaptError::Shape)?;
            let (_, _, rew) = Self::planes(slot, h).ok_or(AdaptError::Shape)?;
            *rew.get_mut(usize::from(self.t)).ok_or(AdaptError::Shape)? = r;
        }
        self.episode_return += r;
        self.t += 1;
        self.tick = Tick::Act;
        Ok(())
    }

    /// Ends the episode in progress (the environment said done, or the horizon was hit).
    /// Applies the adaptation step when the batch is complete.
    pub fn end_episode(&mut self) -> Result<Progress, AdaptError> {
        if self.tick == Tick::Reward {
            return Err(AdaptError::MissingReward);
        }
        if self.t == 0 {
            return Err(AdaptError::EmptyEpisode);
        }
        let steps = self.t;
        let ret = self.episode_return;
        self.t = 0;
        self.episode_return = 0.0;
        if self.is_adapted() {
            self.deployed_episodes += 1;
            return Ok(Progress::Adapted {
                episode_return: ret,
            });
        }
        self.batch_return += ret;
        let result = self.finish_episode(usize::from(steps));
        if let Err(e) = result {
            self.discard_batch();
            return Err(e);
        }
        self.episode += 1;
        if self.episode < self.recipe.episodes {
            return Ok(Progress::Recorded {
                step: self.step,
                episodes: self.episode,
            });
        }
        let mean_return = self.batch_return / f32::from(self.recipe.episodes);
        let applied = self.finish_batch().and_then(|()| self.apply_step());
        self.discard_batch();
        applied?;
        self.step += 1;
        Ok(Progress::Stepped {
            step: self.step,
            mean_return,
        })
    }

    /// After an episode: streaming rules fold it into the accumulator now; batch rules
    /// record its length for later.
    fn finish_episode(&mut self, steps: usize) -> Result<(), AdaptError> {
        let len = self.slot_len();
        if self.recipe.needs_batch() {
            let lens_at = usize::from(self.recipe.episodes) * len + usize::from(self.episode);
            *self.episodes.get_mut(lens_at).ok_or(AdaptError::Shape)? = steps as f32;
            return Ok(());
        }
        self.stream_weights(steps)?;
        self.episode_gradient(0, steps)
    }

    /// Streaming rules: the episode's rewards become its weights, in place. Out of line,
    /// so that the advantage state is off the stack before the gradient runs.
    #[inline(never)]
    fn stream_weights(&mut self, steps: usize) -> Result<(), AdaptError> {
        let (slot, stats) = self
            .episodes
            .split_at_mut_checked(self.slot_len())
            .ok_or(AdaptError::Shape)?;
        // `ScaledTimeBaseline` carries its sums in `stats` from episode to episode of the
        // batch: zeroed by the first episode, continued by the others.
        let mut advantages = if self.episode == 0 {
            Advantages::new(&self.recipe, P::OBS_DIM, self.baseline, stats)?
        } else {
            Advantages::resume(&self.recipe, P::OBS_DIM, self.baseline, stats)?
        };
        Self::episode_weights(
            &mut advantages,
            slot,
            usize::from(self.recipe.horizon),
            steps,
        )
    }

    /// Batch rules: the advantage passes over every stored episode and each episode's
    /// weights, then each episode's weighted score into the accumulator.
    #[inline(never)]
    fn finish_batch(&mut self) -> Result<(), AdaptError> {
        if !self.recipe.needs_batch() {
            return Ok(());
        }
        self.batch_weights()?;
        let n = usize::from(self.recipe.episodes);
        let lens_at = n * self.slot_len();
        for i in 0..n {
            let steps = self.episodes.get(lens_at + i).ok_or(AdaptError::Shape)?;
            self.episode_gradient(i, *steps as usize)?;
        }
        Ok(())
    }

    /// The advantage passes over every stored episode of the batch, then every episode's
    /// rewards turned into its weights in place. Out of line, so that the advantage state
    /// is off the stack before the gradients run.
    #[inline(never)]
    fn batch_weights(&mut self) -> Result<(), AdaptError> {
        let h = usize::from(self.recipe.horizon);
        let n = usize::from(self.recipe.episodes);
        let len = self.slot_len();
        let (slots, rest) = self
            .episodes
            .split_at_mut_checked(n * len)
            .ok_or(AdaptError::Shape)?;
        let (lens, scratch) = rest.split_at_mut_checked(n).ok_or(AdaptError::Shape)?;
        let mut advantages = Advantages::new(&self.recipe, P::OBS_DIM, self.baseline, scratch)?;
        while !advantages.is_ready() {
            for (slot, &steps) in slots_mut(slots, len).zip(lens.iter()) {
                let (obs, act, rew) = Self::planes(slot, h).ok_or(AdaptError::Shape)?;
                advantages.observe(&Self::view(obs, act, rew, steps as usize)?)?;
            }
            advantages.finish_pass()?;
        }
        for (slot, &steps) in slots_mut(slots, len).zip(lens.iter()) {
            Self::episode_weights(&mut advantages, slot, h, steps as usize)?;
        }
        Ok(())
    }

    /// The first `steps` records of an episode slot's planes, as estimator data.
    fn view<'e>(
        obs: &'e [f32],
        act: &'e [f32],
        rew: &'e [f32],
        steps: usize,
    ) -> Result<Episode<'e, f32>, AdaptError> {
        Ok(Episode {
            obs: obs.get(..steps * P::OBS_DIM).ok_or(AdaptError::Shape)?,
            actions: act
                .get(..steps * P::ACTION_WIDTH)
                .ok_or(AdaptError::Shape)?,
            rewards: rew.get(..steps).ok_or(AdaptError::Shape)?,
        })
    }

    /// Turns one stored episode's rewards into its weights, in place.
    fn episode_weights(
        advantages: &mut Advantages<'_, f32, M>,
        slot: &mut [f32],
        h: usize,
        steps: usize,
    ) -> Result<(), AdaptError> {
        let (obs, _, rew) = Self::planes(slot, h).ok_or(AdaptError::Shape)?;
        let obs = obs.get(..steps * P::OBS_DIM).ok_or(AdaptError::Shape)?;
        let rew = rew.get_mut(..steps).ok_or(AdaptError::Shape)?;
        advantages.weights_in_place(obs, rew)?;
        Ok(())
    }

    /// Adds `Σ_h w_h ∇log π(a_h|s_h; θ)` of the episode in slot `slot` (`steps` long, its
    /// rewards already turned into weights) at the current parameters to the accumulator.
    fn episode_gradient(&mut self, slot: usize, steps: usize) -> Result<(), AdaptError> {
        // With ζ = 1 the accumulator holds θ₁ and no step is left to take.
        if self.current == Current::InGrad {
            return Err(AdaptError::NonFiniteStep);
        }
        let h = usize::from(self.recipe.horizon);
        let len = self.slot_len();
        let slot = self
            .episodes
            .get(slot * len..(slot + 1) * len)
            .ok_or(AdaptError::Shape)?;
        let (obs, rest) = slot
            .split_at_checked(h * P::OBS_DIM)
            .ok_or(AdaptError::Shape)?;
        let (act, rew) = rest
            .split_at_checked(h * P::ACTION_WIDTH)
            .ok_or(AdaptError::Shape)?;
        let episode = Self::view(obs, act, rew, steps)?;
        let at = Self::current_view(self.current, self.meta, self.params, &[])?;
        estimator::accumulate_episode_gradient_with(
            &self.policy,
            at,
            &episode,
            episode.rewards,
            self.hidden,
            self.grad,
        )?;
        Ok(())
    }

    /// `θ ← θ + (α/n)·g`, only if the result is usable (see [`Adapter::step_is_usable`]).
    ///
    /// The stepped parameters are formed in the accumulator (its gradient is not needed
    /// afterwards), tried there, and only then made current: with ζ = 1 the accumulator
    /// stays where θ₁ lives; with ζ > 1 the accumulator and the parameter buffer trade
    /// places. A step that is not usable leaves the current parameters untouched (the
    /// caller then discards the batch, which clears the accumulator). Out of line: its
    /// frame (the trial's) is not on the stack while the gradient is computed.
    #[inline(never)]
    fn apply_step(&mut self) -> Result<(), AdaptError> {
        let alpha_per_sample = self.recipe.alpha_per_sample() * self.step_scale()?;
        match self.current {
            Current::Meta => {
                for (g, p) in self.grad.iter_mut().zip(self.meta.values()) {
                    *g = p + alpha_per_sample * *g;
                }
            }
            Current::InParams => {
                for (g, &p) in self.grad.iter_mut().zip(self.params.iter()) {
                    *g = p + alpha_per_sample * *g;
                }
            }
            Current::InGrad => return Err(AdaptError::NonFiniteStep),
        }
        if !self.step_is_usable() {
            return Err(AdaptError::NonFiniteStep);
        }
        if self.params.is_empty() {
            self.current = Current::InGrad;
        } else {
            core::mem::swap(&mut self.params, &mut self.grad);
            self.current = Current::InParams;
        }
        Ok(())
    }

    /// The advantage rule's factor on the summed gradient ([`Advantages::step_scale`]),
    /// from the statistics a streaming rule kept after the episode slot.
    fn step_scale(&mut self) -> Result<f32, AdaptError> {
        if self.recipe.needs_batch() {
            return Ok(1.0);
        }
        let stats = self
            .episodes
            .get_mut(self.slot_len()..)
            .ok_or(AdaptError::Shape)?;
        let advantages = Advantages::resume(&self.recipe, P::OBS_DIM, self.baseline, stats)?;
        Ok(advantages.step_scale())
    }

    /// Whether the stepped parameters `stepped` may replace the current ones: every scalar
    /// is finite, and the stepped policy can still act, i.e. on the batch's first
    /// observation it samples an action that is finite after the action map and has a
    /// finite log-probability. The second test catches a step that is finite but diverged
    /// (a too-large α turning a Gaussian's log-std into 10³⁰, whose σ overflows): without
    /// it every later `act` would fail and adaptation could never finish. The probe draws
    /// from its own stream, so the adapter's action streams are unchanged.
    fn step_is_usable(&mut self) -> bool {
        if !self.grad.iter().all(|x| x.is_finite()) {
            return false;
        }
        let Some(stepped) = M::ram_view(self.grad) else {
            return false;
        };
        // Slot 0 starts with the observation plane, and a step has at least one episode.
        let Some(obs) = self.episodes.get(..P::OBS_DIM) else {
            return false;
        };
        let mut raw = [0.0f32; MAX_IO];
        let Some(raw) = raw.get_mut(..P::ACTION_WIDTH) else {
            return false;
        };
        let mut rng = Rng::derive(self.seed, &[u64::MAX]);
        if self
            .policy
            .sample_with(stepped, obs, &mut rng, self.hidden, raw)
            .is_err()
        {
            return false;
        }
        let map = self.recipe.action;
        if P::SHAPE.distribution.uses_action_map() && !raw.iter().all(|&u| map.apply(u).is_finite())
        {
            return false;
        }
        self.policy
            .log_prob_with(stepped, obs, raw, self.hidden)
            .is_ok_and(f32::is_finite)
    }

    /// Forgets the batch of the current step (keeps the parameters).
    fn discard_batch(&mut self) {
        self.episode = 0;
        self.batch_return = 0.0;
        if self.current != Current::InGrad {
            self.grad.fill(0.0);
        }
        self.drop_episode();
    }

    /// Forgets the episode in progress.
    fn drop_episode(&mut self) {
        self.t = 0;
        self.tick = Tick::Act;
        self.episode_return = 0.0;
    }

    /// Runs episodes on `env` until all ζ steps are applied, and returns the mean return of
    /// each step's batch.
    ///
    /// On an error the episode in progress is dropped, `env` is sent the safe stop
    /// ([`Env::stop`] with [`Adapter::safe_action`]; its own result is ignored so that the
    /// original error is the one returned), and the error is returned; only an `env` whose
    /// dimensions do not fit the policy (`Shape`) is refused before anything is sent to
    /// it. Steps already
    /// applied, and the current batch's episodes unless the error says the batch was
    /// discarded, are kept: calling `run` again resumes, which is how a caller rides out
    /// transient faults (the [`Report`] then covers the last call only).
    pub fn run<E: Env>(&mut self, env: &mut E) -> Result<Report, AdaptError<E::Error>> {
        let mut report = Report {
            step_returns: heapless::Vec::new(),
            env_steps: 0,
        };
        while !self.is_adapted() {
            let (ret, n) = self.play_episode(env)?;
            report.env_steps += n;
            if let Progress::Stepped { mean_return, .. } = ret {
                // Capacity is MAX_STEPS ≥ ζ, checked by the recipe.
                let _ = report.step_returns.push(mean_return);
            }
        }
        Ok(report)
    }

    /// Plays `episodes` episodes with the current (adapted) policy without learning and
    /// returns their mean undiscounted return. Call after adaptation. Errors stop the robot
    /// as in [`Adapter::run`].
    pub fn evaluate<E: Env>(
        &mut self,
        env: &mut E,
        episodes: u16,
    ) -> Result<f32, AdaptError<E::Error>> {
        let mut sum = 0.0;
        for _ in 0..episodes {
            match self.play_episode(env)?.0 {
                Progress::Adapted { episode_return } => sum += episode_return,
                _ => return Err(AdaptError::Shape),
            }
        }
        Ok(sum / f32::from(episodes.max(1)))
    }

    /// One episode on `env`; on an error, drops it and sends the safe stop.
    fn play_episode<E: Env>(
        &mut self,
        env: &mut E,
    ) -> Result<(Progress, u32), AdaptError<E::Error>> {
        let mut obs = [0.0f32; MAX_IO];
        let obs = obs.get_mut(..P::OBS_DIM).ok_or(AdaptError::TooWide)?;
        if env.obs_dim() != P::OBS_DIM || env.action_width() != P::ACTION_WIDTH {
            return Err(AdaptError::Shape);
        }
        let result = self.play_episode_unguarded(env, obs);
        if result.is_err() {
            self.drop_episode();
            // Best effort: the stop may fail too (a dead bus), and the caller needs the
            // error that interrupted the episode more than that one.
            let _ = env.stop(self.safe_action(), obs);
        }
        result
    }

    fn play_episode_unguarded<E: Env>(
        &mut self,
        env: &mut E,
        obs: &mut [f32],
    ) -> Result<(Progress, u32), AdaptError<E::Error>> {
        // The first tick resets `env`; the horizon ends the loop.
        let mut n = 0;
        loop {
            n += 1;
            if let Some(end) = self.play_tick_unguarded(env, obs)? {
                return Ok((end.progress, n));
            }
        }
    }

    /// One control tick of an episode on `env`, for a loop that does other things between
    /// ticks (a board's buttons): when no episode is in progress it first resets `env`
    /// into `obs`; then [`Adapter::act`] on `obs` → [`Env::step`] (writing the next
    /// observation into `obs`, `P::OBS_DIM` scalars kept by the caller between ticks) →
    /// [`Adapter::reward`], and [`Adapter::end_episode`] once `env` says done or the
    /// horizon is reached, whose result it returns.
    ///
    /// On an error the episode in progress is dropped (the next call starts a new one with
    /// a reset) and nothing is sent to `env`: the caller sends the safe stop
    /// ([`Env::stop`] with [`Adapter::safe_action`]). An `env` whose dimensions do not fit
    /// the policy is refused (`Shape`) before anything is sent to it.
    pub fn play_tick<E: Env>(
        &mut self,
        env: &mut E,
        obs: &mut [f32],
    ) -> Result<Option<EpisodeEnd>, AdaptError<E::Error>> {
        let result = self.play_tick_unguarded(env, obs);
        if result.is_err() {
            self.drop_episode();
        }
        result
    }

    fn play_tick_unguarded<E: Env>(
        &mut self,
        env: &mut E,
        obs: &mut [f32],
    ) -> Result<Option<EpisodeEnd>, AdaptError<E::Error>> {
        if env.obs_dim() != P::OBS_DIM || env.action_width() != P::ACTION_WIDTH {
            return Err(AdaptError::Shape);
        }
        if self.t == 0 && self.tick == Tick::Act {
            env.reset(obs).map_err(AdaptError::Env)?;
        }
        let action = self.act(obs).map_err(AdaptError::with_env)?;
        let mut a = [0.0f32; MAX_IO];
        let a = a.get_mut(..action.len()).ok_or(AdaptError::TooWide)?;
        a.copy_from_slice(action);
        let tr = env.step(a, obs).map_err(AdaptError::Env)?;
        self.reward(tr.reward).map_err(AdaptError::with_env)?;
        if !tr.done && self.t < self.recipe.horizon {
            return Ok(None);
        }
        let episode_return = self.episode_return;
        let progress = self.end_episode().map_err(AdaptError::with_env)?;
        Ok(Some(EpisodeEnd {
            progress,
            episode_return,
        }))
    }
}

impl<'m, 'b, P: Policy> Adapter<'m, P, LeF32s<'b>> {
    /// An adapter for the policy, recipe, baseline table and meta-parameters of a parsed
    /// bundle (read in place: nothing is copied out of the bundle's bytes).
    pub fn from_bundle(
        policy: P,
        bundle: &Bundle<'b>,
        memory: &'m mut [f32],
        seed: u64,
    ) -> Result<Self, AdaptError> {
        bundle.check_policy::<P>().map_err(AdaptError::Bundle)?;
        Self::new(
            policy,
            bundle.params(),
            bundle.baseline(),
            bundle.recipe(),
            memory,
            seed,
        )
    }
}

/// A type of meta-parameter source the adapter can start from ([`LeF32s`]: a bundle in
/// flash; `&[f32]`: RAM).
///
/// It names the one [`ParamSource`] type, [`View`](MetaSource::View), through which the
/// adapter reads its parameters wherever they are — the meta-parameters, or adapted ones
/// in its memory buffer — so that the policy code (forward pass, sampling, gradient) is
/// compiled once, not once per place: on a microcontroller each copy costs several KB of
/// flash. A view must read the same values as the source it stands for.
pub trait MetaSource: ParamSource<f32> {
    /// The common view of meta-parameters and adapted parameters.
    type View<'a>: ParamSource<f32>
    where
        Self: 'a;
    /// These meta-parameters, as a view.
    fn meta_view<'a>(self) -> Self::View<'a>
    where
        Self: 'a;
    /// Adapted parameters in RAM, as a view (`None` if they cannot be; the adapter then
    /// refuses the call with [`AdaptError::Shape`]).
    fn ram_view<'a>(ram: &'a [f32]) -> Option<Self::View<'a>>
    where
        Self: 'a;
}

impl MetaSource for &[f32] {
    type View<'a>
        = &'a [f32]
    where
        Self: 'a;
    fn meta_view<'a>(self) -> &'a [f32]
    where
        Self: 'a,
    {
        self
    }
    fn ram_view<'a>(ram: &'a [f32]) -> Option<&'a [f32]>
    where
        Self: 'a,
    {
        Some(ram)
    }
}

/// On little-endian targets (every Cortex-M, x86-64) an `f32` in RAM *is* its little-endian
/// bytes, so adapted parameters are read as [`LeF32s`] too: through the same code, and,
/// being 4-aligned, with the word loads of [`LeF32s::is_word_aligned`] bytes.
#[cfg(target_endian = "little")]
impl MetaSource for LeF32s<'_> {
    type View<'a>
        = LeF32s<'a>
    where
        Self: 'a;
    fn meta_view<'a>(self) -> LeF32s<'a>
    where
        Self: 'a,
    {
        self
    }
    fn ram_view<'a>(ram: &'a [f32]) -> Option<LeF32s<'a>>
    where
        Self: 'a,
    {
        LeF32s::new(bytemuck::cast_slice(ram))
    }
}

/// On big-endian targets RAM is not little-endian bytes: the view tells the two places
/// apart ([`ParamsRef`], one match per dense product).
#[cfg(target_endian = "big")]
impl<'b> MetaSource for LeF32s<'b> {
    type View<'a>
        = ParamsRef<'a, LeF32s<'a>>
    where
        Self: 'a;
    fn meta_view<'a>(self) -> ParamsRef<'a, LeF32s<'a>>
    where
        Self: 'a,
    {
        ParamsRef::Meta(self)
    }
    fn ram_view<'a>(ram: &'a [f32]) -> Option<ParamsRef<'a, LeF32s<'a>>>
    where
        Self: 'a,
    {
        Some(ParamsRef::Ram(ram))
    }
}

/// Consecutive `len`-scalar slots of `buf` (a trailing partial slot is skipped).
///
/// `chunks_exact_mut` with a run-time length keeps a zero-length panic (and a division in
/// `zip`) that the optimiser cannot always remove; this has no panic path at all.
fn slots_mut(mut buf: &mut [f32], len: usize) -> impl Iterator<Item = &mut [f32]> {
    core::iter::from_fn(move || {
        let (slot, rest) = core::mem::take(&mut buf).split_at_mut_checked(len)?;
        buf = rest;
        Some(slot)
    })
}

/// The current parameters: still the meta-parameters, or adapted ones in RAM.
#[derive(Clone, Copy, Debug)]
pub enum ParamsRef<'a, M> {
    /// The meta-parameters (no step applied).
    Meta(M),
    /// Adapted parameters in the adapter's memory.
    Ram(&'a [f32]),
}

/// The adapter reads its parameters through this type wherever they are: one
/// monomorphisation of the policy code instead of one per place. A layer's weights and bias
/// come from one `split_at` and so from the same place; each dense product dispatches once
/// to that place's own loops.
impl<M: ParamSource<f32>> ParamSource<f32> for ParamsRef<'_, M> {
    fn len(self) -> usize {
        match self {
            Self::Meta(m) => m.len(),
            Self::Ram(r) => r.len(),
        }
    }

    fn split_at(self, mid: usize) -> Option<(Self, Self)> {
        match self {
            Self::Meta(m) => m.split_at(mid).map(|(a, b)| (Self::Meta(a), Self::Meta(b))),
            Self::Ram(r) => r
                .split_at_checked(mid)
                .map(|(a, b)| (Self::Ram(a), Self::Ram(b))),
        }
    }

    fn values(self) -> impl Iterator<Item = f32> {
        let (meta, ram) = match self {
            Self::Meta(m) => (Some(m), None),
            Self::Ram(r) => (None, Some(r)),
        };
        meta.into_iter()
            .flat_map(ParamSource::values)
            .chain(ram.into_iter().flatten().copied())
    }

    fn affine(self, bias: Self, x: &[f32], out: &mut [f32]) {
        match (self, bias) {
            (Self::Meta(w), Self::Meta(b)) => w.affine(b, x, out),
            (Self::Ram(w), Self::Ram(b)) => w.affine(b, x, out),
            // Weights and bias from different places (never from `split_at`): the
            // value-at-a-time loop, in the order `affine` specifies.
            (w, b) => dense::affine_values(w.values(), b.values(), x, out),
        }
    }

    fn affine_map(self, bias: Self, x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32) -> bool {
        match (self, bias) {
            (Self::Meta(w), Self::Meta(b)) => w.affine_map(b, x, out, f),
            (Self::Ram(w), Self::Ram(b)) => w.affine_map(b, x, out, f),
            (w, b) => dense::affine_map_values(w.values(), b.values(), x, out, f),
        }
    }

    fn add_transposed(self, d: &[f32], y: &mut [f32]) {
        match self {
            Self::Meta(w) => w.add_transposed(d, y),
            Self::Ram(w) => w.add_transposed(d, y),
        }
    }

    fn transposed_map(
        self,
        d: &[f32],
        aux: &[f32],
        y: &mut [f32],
        f: impl Fn(f32, f32) -> f32,
    ) -> bool {
        match self {
            Self::Meta(w) => w.transposed_map(d, aux, y, f),
            Self::Ram(w) => w.transposed_map(d, aux, y, f),
        }
    }
}

impl<M: ParamSource<f32>> ParamsRef<'_, M> {
    /// CRC-32 of the parameters' little-endian bytes: compares host and device results.
    pub fn checksum(&self) -> u32 {
        let mut d = crate::crc32::digest();
        match self {
            Self::Meta(m) => m.values().for_each(|x: f32| d.update(&x.to_le_bytes())),
            Self::Ram(r) => r.iter().for_each(|x| d.update(&x.to_le_bytes())),
        }
        d.finalize()
    }

    /// Copies the parameters into `out` (`P` scalars); returns false on a length mismatch.
    pub fn copy_to(&self, out: &mut [f32]) -> bool {
        match self {
            Self::Meta(m) => {
                if m.len() != out.len() {
                    return false;
                }
                out.iter_mut().zip(m.values()).for_each(|(o, v)| *o = v);
            }
            Self::Ram(r) => {
                if r.len() != out.len() {
                    return false;
                }
                out.copy_from_slice(r);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::estimator::{batch_gradient, batch_gradient_scratch_len};
    use crate::policy::{GaussianMlp, LeF32s, SoftmaxLinear};
    use crate::recipe::{ActionMap, Advantage, LossScale};
    use crate::sim::{Nav2d, Nav2dDiscrete};
    use std::vec;
    use std::vec::Vec;

    type Pol = GaussianMlp<2, 8, 0, 2>;

    fn recipe() -> Recipe {
        Recipe {
            alpha: 0.05,
            steps: 1,
            episodes: 4,
            horizon: 20,
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

    fn meta_params<P: Policy>(seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..P::N_PARAMS).map(|_| 0.3 * rng.normal()).collect()
    }

    fn memory_for<P: Policy>(r: &Recipe) -> Vec<f32> {
        vec![0.0; Memory::for_recipe(r, &P::SHAPE).total_floats()]
    }

    /// One recorded step: observation, raw action, reward.
    type Record = (Vec<f32>, Vec<f32>, f32);

    /// Plays one episode tick by tick on `env`, returning what the adapter saw (with the
    /// raw actions recovered from the stored episode buffer is not possible from outside,
    /// so the test inverts the action map, which is exact for unclipped values).
    fn play<P: Policy, M: MetaSource, E: Env<Error = core::convert::Infallible>>(
        ad: &mut Adapter<'_, P, M>,
        env: &mut E,
    ) -> (Progress, Vec<Record>) {
        let mut obs = vec![0.0; P::OBS_DIM];
        env.reset(&mut obs).unwrap();
        let mut recs = Vec::new();
        for _ in 0..ad.recipe().horizon {
            let a = ad.act(&obs).unwrap().to_vec();
            let o = obs.clone();
            let tr = env.step(&a, &mut obs).unwrap();
            ad.reward(tr.reward).unwrap();
            recs.push((o, a, tr.reward));
            if tr.done {
                break;
            }
        }
        (ad.end_episode().unwrap(), recs)
    }

    #[test]
    fn memory_is_split_exactly_and_short_memory_is_refused() {
        let meta = meta_params::<Pol>(1);
        let r = recipe();
        let need = Memory::for_recipe(&r, &Pol::SHAPE).total_floats();
        // ζ = 1, streaming: P + one episode (the lower bound), and the hidden layer's
        // activations and deltas (8 + 8).
        assert_eq!(
            need,
            Memory::lower_bound_floats(&Pol::SHAPE, r.horizon) + 2 * 8
        );
        let mut short = vec![0.0; need - 1];
        let err = Adapter::new(Pol::default(), &meta[..], None, r, &mut short, 0).err();
        assert_eq!(
            err,
            Some(AdaptError::Memory {
                needed: need,
                got: need - 1
            })
        );
        let mut mem = memory_for::<Pol>(&r);
        assert!(Adapter::new(Pol::default(), &meta[..], None, r, &mut mem, 0).is_ok());
        // Wrong parameter count, missing or unexpected baseline table.
        let err = Adapter::new(Pol::default(), &meta[1..], None, r, &mut mem, 0).err();
        assert_eq!(err, Some(AdaptError::Shape));
        let table = [0.0; 20];
        let err = Adapter::new(Pol::default(), &meta[..], Some(&table[..]), r, &mut mem, 0).err();
        assert_eq!(err, Some(AdaptError::Shape));
        let tb = Recipe {
            advantage: Advantage::TimeBaseline,
            ..r
        };
        let err = Adapter::new(Pol::default(), &meta[..], None, tb, &mut mem, 0).err();
        assert_eq!(err, Some(AdaptError::Shape));
        let bad = Recipe { alpha: -1.0, ..r };
        let err = Adapter::new(Pol::default(), &meta[..], None, bad, &mut mem, 0).err();
        assert_eq!(err, Some(AdaptError::Recipe(RecipeError::Alpha)));
    }

    #[test]
    fn tick_protocol_errors() {
        let meta = meta_params::<Pol>(2);
        let r = Recipe {
            horizon: 2,
            ..recipe()
        };
        let mut mem = memory_for::<Pol>(&r);
        let mut ad = Adapter::new(Pol::default(), &meta[..], None, r, &mut mem, 0).unwrap();
        assert_eq!(ad.reward(1.0), Err(AdaptError::RewardWithoutAction));
        assert_eq!(ad.end_episode(), Err(AdaptError::EmptyEpisode));
        ad.act(&[0.0, 0.0]).unwrap();
        assert_eq!(ad.act(&[0.0, 0.0]).err(), Some(AdaptError::MissingReward));
        assert_eq!(ad.end_episode(), Err(AdaptError::MissingReward));
        ad.reward(-1.0).unwrap();
        ad.act(&[0.0, 0.0]).unwrap();
        ad.reward(-1.0).unwrap();
        assert_eq!(ad.act(&[0.0, 0.0]).err(), Some(AdaptError::HorizonReached));
        assert!(matches!(
            ad.act(&[0.0]).err(),
            Some(AdaptError::Policy(PolicyError::ObsLength(_)))
        ));
        assert_eq!(
            ad.end_episode(),
            Ok(Progress::Recorded {
                step: 0,
                episodes: 1
            })
        );
    }

    #[test]
    fn bad_observation_or_reward_drops_only_the_episode() {
        let meta = meta_params::<Pol>(3);
        let r = recipe();
        let mut mem = memory_for::<Pol>(&r);
        let mut ad = Adapter::new(Pol::default(), &meta[..], None, r, &mut mem, 0).unwrap();
        let mut env = Nav2d::new([0.3, -0.2]);
        let (p, _) = play(&mut ad, &mut env);
        assert_eq!(
            p,
            Progress::Recorded {
                step: 0,
                episodes: 1
            }
        );
        ad.act(&[0.0, 0.0]).unwrap();
        assert_eq!(ad.reward(f32::NAN), Err(AdaptError::NonFiniteReward));
        assert_eq!(
            ad.act(&[f32::INFINITY, 0.0]).err(),
            Some(AdaptError::NonFiniteObservation)
        );
        // The recorded episode survived; the dropped ones did not count.
        let (p, _) = play(&mut ad, &mut env);
        assert_eq!(
            p,
            Progress::Recorded {
                step: 0,
                episodes: 2
            }
        );
        assert!(ad.with_params(|p| matches!(p, ParamsRef::Meta(_))));
    }

    /// The adapter's step equals `θ₀ + (α/n)·batch_gradient(θ₀, episodes)` computed independently
    /// by the estimator on the same episodes, for a streaming and for batch rules.
    #[test]
    fn step_equals_estimator_on_recorded_episodes() {
        let rules = [
            (Advantage::RewardToGo, false),
            (Advantage::BatchMeanBaseline, false),
            (Advantage::RewardToGo, true),
            (Advantage::LinearFeatureGae { lambda: 0.97 }, true),
            (Advantage::ScaledTimeBaseline, false),
            (Advantage::ScaledTimeBaseline, true),
        ];
        for (advantage, normalize) in rules {
            // Unclipped action map: the raw action is recoverable as a / scale.
            let r = Recipe {
                advantage,
                normalize,
                action: ActionMap {
                    scale: 0.1,
                    clip: None,
                },
                ..recipe()
            };
            let meta = meta_params::<Pol>(4);
            let mut mem = memory_for::<Pol>(&r);
            // A table shaped like nav2d's reward-to-go (the rule scales it per goal).
            let table: Vec<f32> = (0..r.horizon)
                .map(|h| -0.05 * f32::from(r.horizon - h))
                .collect();
            let table = advantage.uses_table().then_some(&table[..]);
            let mut ad = Adapter::new(Pol::default(), &meta[..], table, r, &mut mem, 11).unwrap();
            let mut env = Nav2d::new([0.2, 0.1]);
            let mut batch = Vec::new();
            loop {
                let (p, recs) = play(&mut ad, &mut env);
                batch.push(recs);
                if let Progress::Stepped { step, .. } = p {
                    assert_eq!(step, 1);
                    break;
                }
            }
            assert!(ad.is_adapted());
            let mut adapted = vec![0.0; Pol::N_PARAMS];
            assert!(ad.with_params(|p| p.copy_to(&mut adapted)));

            let flat: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = batch
                .iter()
                .map(|recs| {
                    let obs = recs.iter().flat_map(|(o, _, _)| o.clone()).collect();
                    let act = recs
                        .iter()
                        .flat_map(|(_, a, _)| a.iter().map(|x| x / 0.1).collect::<Vec<_>>())
                        .collect();
                    let rew = recs.iter().map(|(_, _, r)| *r).collect();
                    (obs, act, rew)
                })
                .collect();
            let episodes: Vec<Episode<'_, f32>> = flat
                .iter()
                .map(|(o, a, rw)| Episode {
                    obs: o,
                    actions: a,
                    rewards: rw,
                })
                .collect();
            let mut g = vec![0.0f32; Pol::N_PARAMS];
            let mut scratch = vec![0.0f32; batch_gradient_scratch_len(&r, 2)];
            batch_gradient(
                &Pol::default(),
                &meta[..],
                &r,
                table,
                &episodes,
                &mut g,
                &mut scratch,
            )
            .unwrap();
            let alpha_per_sample = r.alpha_per_sample();
            for ((&m, &gi), &a) in meta.iter().zip(&g).zip(&adapted) {
                let want = m + alpha_per_sample * gi;
                // Raw actions were recovered through a/0.1, which rounds: allow float noise.
                assert!(
                    (want - a).abs() <= 1e-4 * (1.0 + want.abs()),
                    "{advantage:?} {normalize}: {want} vs {a}"
                );
            }
            assert!(adapted.iter().zip(&meta).any(|(a, m)| a != m));
        }
    }

    #[test]
    fn too_large_alpha_is_rolled_back_and_meta_untouched() {
        let meta = meta_params::<Pol>(5);
        let bytes: Vec<u8> = meta.iter().flat_map(|x| x.to_le_bytes()).collect();
        let before = bytes.clone();
        let src = LeF32s::new(&bytes).unwrap();
        let r = Recipe {
            alpha: 3.0e38,
            ..recipe()
        };
        let mut mem = memory_for::<Pol>(&r);
        let mut ad = Adapter::new(Pol::default(), src, None, r, &mut mem, 0).unwrap();
        let meta_sum = ad.with_params(|p| p.checksum());
        let mut env = Nav2d::new([0.4, 0.4]);
        let mut obs = [0.0f32; 2];
        let mut result = Ok(Progress::Adapted {
            episode_return: 0.0,
        });
        for _ in 0..r.episodes {
            env.reset(&mut obs).unwrap();
            for _ in 0..r.horizon {
                let a: [f32; 2] = ad.act(&obs).unwrap().try_into().unwrap();
                let tr = env.step(&a, &mut obs).unwrap();
                ad.reward(tr.reward).unwrap();
            }
            result = ad.end_episode();
        }
        assert_eq!(result, Err(AdaptError::NonFiniteStep));
        assert_eq!(ad.steps_done(), 0);
        assert_eq!(ad.with_params(|p| p.checksum()), meta_sum);
        assert!(ad.with_params(|p| matches!(p, ParamsRef::Meta(_))));
        assert_eq!(bytes, before);
    }

    #[test]
    fn run_equals_tick_by_tick_and_reset_returns_to_meta() {
        let meta = meta_params::<Pol>(6);
        let r = Recipe {
            steps: 3,
            ..recipe()
        };
        let mut mem1 = memory_for::<Pol>(&r);
        let mut mem2 = memory_for::<Pol>(&r);
        let mut a1 = Adapter::new(Pol::default(), &meta[..], None, r, &mut mem1, 42).unwrap();
        let mut a2 = Adapter::new(Pol::default(), &meta[..], None, r, &mut mem2, 42).unwrap();
        let report = a1.run(&mut Nav2d::new([-0.3, 0.2])).unwrap();
        assert_eq!(report.step_returns.len(), 3);
        let mut env = Nav2d::new([-0.3, 0.2]);
        let mut steps = 0;
        while !a2.is_adapted() {
            if let (Progress::Stepped { step, mean_return }, _) = play(&mut a2, &mut env) {
                assert_eq!(mean_return, report.step_returns[usize::from(step) - 1]);
                steps += 1;
            }
        }
        assert_eq!(steps, 3);
        let (s1, s2) = (
            a1.with_params(|p| p.checksum()),
            a2.with_params(|p| p.checksum()),
        );
        assert_eq!(s1, s2);
        let meta_sum = ParamsRef::<&[f32]>::Meta(&meta[..]).checksum();
        assert_ne!(s1, meta_sum);
        a1.reset();
        assert_eq!(a1.with_params(|p| p.checksum()), meta_sum);
        // After reset the same seed replays the same adaptation.
        a1.run(&mut Nav2d::new([-0.3, 0.2])).unwrap();
        assert_eq!(a1.with_params(|p| p.checksum()), s2);
    }

    #[test]
    fn play_tick_plays_what_act_step_reward_play_tick_by_tick() {
        let meta = meta_params::<Pol>(6);
        let r = Recipe {
            steps: 2,
            ..recipe()
        };
        let mut mem1 = memory_for::<Pol>(&r);
        let mut mem2 = memory_for::<Pol>(&r);
        let mut a1 = Adapter::new(Pol::default(), &meta[..], None, r, &mut mem1, 42).unwrap();
        let mut a2 = Adapter::new(Pol::default(), &meta[..], None, r, &mut mem2, 42).unwrap();
        let (mut env1, mut env2) = (Nav2d::new([-0.3, 0.2]), Nav2d::new([-0.3, 0.2]));
        let mut obs = vec![0.0; Pol::OBS_DIM];
        // Adaptation episodes, then two played by the adapted policy.
        for _ in 0..(r.steps * r.episodes + 2) {
            let (progress, recs) = play(&mut a1, &mut env1);
            let mut ticks = 1;
            let end = loop {
                if let Some(end) = a2.play_tick(&mut env2, &mut obs).unwrap() {
                    break end;
                }
                ticks += 1;
            };
            assert_eq!(end.progress, progress);
            assert_eq!(ticks, recs.len());
            assert_eq!(end.episode_return, recs.iter().fold(0.0, |s, r| s + r.2));
        }
        assert!(a2.is_adapted());
        assert_eq!(
            a1.with_params(|p| p.checksum()),
            a2.with_params(|p| p.checksum())
        );
        // An environment of another shape is refused before anything is sent to it.
        let mut wide = Nav2dDiscrete::new([0.1, 0.1]);
        assert_eq!(
            a2.play_tick(&mut wide, &mut obs).err(),
            Some(AdaptError::Shape)
        );
    }

    #[test]
    fn slots_split_exactly_and_skip_a_partial_tail() {
        let mut buf: Vec<f32> = (0..11).map(|i| i as f32).collect();
        let slots: Vec<Vec<f32>> = slots_mut(&mut buf, 3).map(|s| s.to_vec()).collect();
        assert_eq!(slots.len(), 3);
        assert_eq!(slots[2], [6.0, 7.0, 8.0]);
        // Writes land in place.
        for s in slots_mut(&mut buf, 5) {
            s[0] = -1.0;
        }
        assert_eq!((buf[0], buf[5], buf[10]), (-1.0, -1.0, 10.0));
    }

    #[test]
    fn params_ref_reads_like_the_source_it_wraps() {
        let vals: Vec<f32> = (0..12).map(|i| 0.3 * i as f32 - 1.1).collect();
        let bytes: Vec<u8> = vals.iter().flat_map(|x| x.to_le_bytes()).collect();
        let meta = ParamsRef::Meta(LeF32s::new(&bytes).unwrap());
        let ram = ParamsRef::<LeF32s<'_>>::Ram(&vals);
        for p in [meta, ram] {
            assert_eq!(p.len(), 12);
            assert_eq!(p.values().collect::<Vec<_>>(), vals);
            let (a, b) = p.split_at(5).unwrap();
            assert_eq!((a.len(), b.len()), (5, 7));
            assert_eq!(b.values().next(), Some(vals[5]));
            assert!(p.split_at(13).is_none());
        }
        // W (3×3, row-major), then b (3): the same bits from each place, and from weights
        // and bias that come from different places (the plain loop).
        let x = [0.7f32, -1.3, 2.1];
        let mut want = [0.0f32; 3];
        for (o, w) in want.iter_mut().zip(vals.chunks(3)) {
            *o = w.iter().zip(&x).fold(0.0, |s, (w, x)| s + w * x);
        }
        for (o, b) in want.iter_mut().zip(&vals[9..]) {
            *o += b;
        }
        fn cut<'a>(p: ParamsRef<'a, LeF32s<'a>>) -> [ParamsRef<'a, LeF32s<'a>>; 2] {
            let (w, rest) = p.split_at(9).unwrap();
            [w, rest.split_at(3).unwrap().0]
        }
        let [mw, mb] = cut(meta);
        let [rw, rb] = cut(ram);
        for (w, b) in [(mw, mb), (rw, rb), (mw, rb), (rw, mb)] {
            let mut out = [0.0f32; 3];
            w.affine(b, &x, &mut out);
            assert_eq!(out.map(f32::to_bits), want.map(f32::to_bits));
            // The fused form (the hard-float layers' call): the same sums, then `f`.
            let mut mapped = [0.0f32; 3];
            assert!(w.affine_map(b, &x, &mut mapped, |v| 2.0 * v));
            assert_eq!(mapped.map(f32::to_bits), want.map(|v| (2.0 * v).to_bits()));
        }
        let d = [0.5f32, -0.25, 2.0];
        let (mut y1, mut y2) = ([1.0f32; 3], [1.0f32; 3]);
        mw.add_transposed(&d, &mut y1);
        rw.add_transposed(&d, &mut y2);
        assert_eq!(y1.map(f32::to_bits), y2.map(f32::to_bits));
        // Into zeros, with `f` applied to each sum and its `aux`: the same bits from each place.
        let aux = [0.1f32, 0.2, 0.3];
        let (mut z1, mut z2) = ([9.0f32; 3], [9.0f32; 3]);
        assert!(mw.transposed_map(&d, &aux, &mut z1, |s, a| s * (1.0 - a * a)));
        assert!(rw.transposed_map(&d, &aux, &mut z2, |s, a| s * (1.0 - a * a)));
        let mut want_t = [0.0f32; 3];
        mw.add_transposed(&d, &mut want_t);
        for (t, a) in want_t.iter_mut().zip(aux) {
            *t *= 1.0 - a * a;
        }
        assert_eq!(z1.map(f32::to_bits), want_t.map(f32::to_bits));
        assert_eq!(z2.map(f32::to_bits), want_t.map(f32::to_bits));
    }

    /// A step that fails after earlier ones were applied (ζ > 1: the parameter buffer
    /// and the accumulator trade places on success) leaves the last good parameters.
    #[test]
    fn failed_later_step_keeps_the_previous_parameters() {
        let meta = meta_params::<Pol>(8);
        let r = Recipe {
            steps: 3,
            ..recipe()
        };
        let mut mem = memory_for::<Pol>(&r);
        let mut ad = Adapter::new(Pol::default(), &meta[..], None, r, &mut mem, 3).unwrap();
        let mut env = Nav2d::new([0.2, -0.3]);
        // Step 1 as usual.
        while ad.steps_done() < 1 {
            play(&mut ad, &mut env);
        }
        let after_one = ad.with_params(|p| p.checksum());
        let mut copy = vec![0.0; Pol::N_PARAMS];
        assert!(ad.with_params(|p| p.copy_to(&mut copy)));
        // Step 2 with rewards so large that the step overflows: refused, θ₁ kept.
        let mut obs = [0.0f32; 2];
        let mut result = Ok(Progress::Adapted {
            episode_return: 0.0,
        });
        for _ in 0..r.episodes {
            env.reset(&mut obs).unwrap();
            for _ in 0..r.horizon {
                let a: [f32; 2] = ad.act(&obs).unwrap().try_into().unwrap();
                env.step(&a, &mut obs).unwrap();
                ad.reward(1.0e36).unwrap();
            }
            result = ad.end_episode();
        }
        assert_eq!(result, Err(AdaptError::NonFiniteStep));
        assert_eq!(ad.steps_done(), 1);
        assert_eq!(ad.with_params(|p| p.checksum()), after_one);
        let mut again = vec![0.0; Pol::N_PARAMS];
        assert!(ad.with_params(|p| p.copy_to(&mut again)));
        assert_eq!(copy, again);
        // And the adaptation still finishes from there.
        while !ad.is_adapted() {
            play(&mut ad, &mut env);
        }
        assert_ne!(ad.with_params(|p| p.checksum()), after_one);
    }

    #[test]
    fn safe_action_is_zero_of_the_action_width() {
        let meta = meta_params::<Pol>(7);
        let r = recipe();
        let mut mem = memory_for::<Pol>(&r);
        let ad = Adapter::new(Pol::default(), &meta[..], None, r, &mut mem, 0).unwrap();
        assert_eq!(ad.safe_action(), [0.0, 0.0]);
        // The action map sends it to the zero command.
        assert!(ad.safe_action().iter().all(|&u| r.action.apply(u) == 0.0));
        type Sm = SoftmaxLinear<2, 9>;
        let meta = [0.0f32; Sm::N_PARAMS];
        let mut mem = memory_for::<Sm>(&r);
        let ad = Adapter::new(Sm::default(), &meta[..], None, r, &mut mem, 0).unwrap();
        // Action index 0: "stay" in Nav2dDiscrete.
        assert_eq!(ad.safe_action(), [0.0]);
        assert_eq!(Nav2dDiscrete::MOVES[0], [0.0, 0.0]);
    }

    #[test]
    fn softmax_policy_adapts_on_discrete_nav2d_with_a_batch_rule() {
        type Sm = SoftmaxLinear<2, 9>;
        let meta = [0.0f32; Sm::N_PARAMS];
        let r = Recipe {
            alpha: 0.5,
            advantage: Advantage::BatchMeanBaseline,
            normalize: true,
            ..recipe()
        };
        let mut mem = memory_for::<Sm>(&r);
        let mut ad = Adapter::new(Sm::default(), &meta[..], None, r, &mut mem, 3).unwrap();
        let report = ad.run(&mut Nav2dDiscrete::new([0.4, 0.0])).unwrap();
        assert_eq!(report.step_returns.len(), 1);
        assert!(ad.is_adapted());
        let mut p = vec![0.0; Sm::N_PARAMS];
        ad.with_params(|x| x.copy_to(&mut p));
        assert!(p.iter().all(|x| x.is_finite()) && p.iter().any(|&x| x != 0.0));
        // Deployed episodes are played, not recorded.
        let ret = ad.evaluate(&mut Nav2dDiscrete::new([0.4, 0.0]), 3).unwrap();
        assert!(ret.is_finite() && ret < 0.0);
    }
}
