//! The robot's control loop, written once over traits: every board crate (through
//! [`crate::firmware`], which brings it up from the bundle region) and the QEMU and host
//! end-to-end tests run this code and only supply their pins.
//!
//! One [`Controller::tick`] per control period (paced by a hardware timer: the robot's
//! control clock inside `Env::step`, or [`Ticker`] when idle, see [`Controller::step`]):
//! it takes the button [`Command`] pressed since the last tick, plays one step of the
//! episode in progress with [`Adapter::play_tick`] (`act` → [`Env::step`] → `reward`,
//! `end_episode` when the episode ends: the episode's bookkeeping is the adapter's), and
//! reports an [`Event`].
//! The [`Status`] it is left in is what the LEDs show ([`Status::led`]).
//!
//! # Modes
//! - **Idle** (after boot and after every run): motors stopped, waiting for a button.
//! - **Adapt** (button A): back to the meta-policy, then the recipe's ζ steps of episodes,
//!   then the guard's evaluation episodes ([`crate::guard`]). The guard keeps the better
//!   policy; a kept adapted policy is written to the flash slots ([`crate::store`]), a kept
//!   meta-policy writes a revert record. Then Idle.
//! - **Revert** (buttons A + C, or a long press, as the board maps it): the meta-policy
//!   runs from now on and after reboots (a revert record is written). Idle.
//! - **Run** (button C): episodes with the current policy, without learning, until another
//!   command arrives. `Stop` ends any mode and stops the motors.
//!
//! # Faults
//! Any error (a sensor, the bus, the adapter refusing a value, the flash) sends the safe
//! stop ([`Env::stop`] with the adapter's zero action), which writes zero duty without
//! reading any sensor, and leaves the controller in [`Status::Fault`] until the next
//! command. Steps already applied are kept by the adapter; a new Adapt starts over.
//!
//! # Boot
//! [`Controller::boot`] restores the newest valid adapted policy stored for *this*
//! bundle (CRC-checked, see [`crate::store`]); otherwise the meta-policy runs.

use crate::adapt::{AdaptError, Adapter, EpisodeEnd, MAX_IO, MetaSource, ParamsRef, Progress};
use crate::env::Env;
use crate::guard::{self, Kept, Returns, Verdict};
use crate::policy::Policy;
use crate::store::{self, Record, Slots, StoreError};
use embedded_storage::nor_flash::NorFlash;

/// Waits for the next control period (a hardware timer tick on a board).
pub trait Ticker {
    /// Returns at the start of the next period.
    fn wait(&mut self);
}

/// What a button press asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Command {
    /// Adapt from the meta-policy, guard, persist the kept policy.
    Adapt,
    /// Back to the meta-policy, persistently.
    Revert,
    /// Run episodes with the current policy, without learning.
    Run,
    /// Stop the motors and wait.
    Stop,
}

/// Which policy acts when running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Active {
    /// The bundle's meta-policy.
    Meta,
    /// Adapted parameters (restored or just adapted) with their CRC-32.
    Adapted {
        /// CRC-32 of the parameters' little-endian bytes.
        params_crc: u32,
    },
}

/// What the controller is doing; the LEDs show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status {
    /// Motors stopped, waiting for a command.
    Idle,
    /// Playing adaptation episodes (before the last step).
    Adapting,
    /// Playing the guard's evaluation episodes.
    Evaluating,
    /// Running the active policy.
    Running,
    /// Stopped after an error, until the next command.
    Fault,
}

impl Status {
    /// The status LED at `ms` milliseconds since boot: Idle blinks slowly (1 s period),
    /// Adapting fast (200 ms), Evaluating double-blinks, Running is on, Fault blinks three
    /// times then pauses.
    pub const fn led(self, ms: u32) -> bool {
        match self {
            Self::Idle => ms % 1000 < 100,
            Self::Adapting => ms % 200 < 100,
            Self::Evaluating => {
                let t = ms % 1000;
                t < 100 || (t >= 200 && t < 300)
            }
            Self::Running => true,
            Self::Fault => blink_code(3, ms),
        }
    }
}

/// `code` short blinks (200 ms apart) then a pause, repeating every `code + 3` × 200 ms:
/// how a board shows a number (which bundle check failed, [`Fault::code`]) on one LED.
pub const fn blink_code(code: u8, ms: u32) -> bool {
    let slot = (ms / 200) % (code as u32 + 3);
    slot < code as u32 && ms % 200 < 100
}

/// The blink code a board shows (with [`blink_code`]) when the bundle region holds no
/// valid bundle, by the check that failed: 1 too short or truncated, 2 no bundle (wrong
/// magic: erased flash reads 0xFF), 3 unsupported version or header, 4 checksum mismatch
/// (a corrupted or partly written bundle), 5 made for another policy shape than the
/// firmware's, 6 any other content error (recipe, shape, counts, non-finite values).
pub const fn bundle_blink_code(e: &crate::bundle::BundleError) -> u8 {
    use crate::bundle::BundleError as B;
    match e {
        B::Truncated { .. } => 1,
        B::BadMagic { .. } => 2,
        B::UnsupportedVersion { .. } | B::HeaderLength { .. } => 3,
        B::Checksum { .. } => 4,
        B::PolicyMismatch { .. } => 5,
        _ => 6,
    }
}

/// Why the controller stopped the motors.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Fault<E> {
    /// The environment (sensor, bus, actuator) failed.
    Env(E),
    /// The adapter refused a value or a step.
    Adapt(AdaptError),
    /// The parameter slots failed.
    Store(StoreError),
}

impl<E> From<AdaptError<E>> for Fault<E> {
    fn from(e: AdaptError<E>) -> Self {
        match e.split_env() {
            Ok(env) => Self::Env(env),
            Err(adapt) => Self::Adapt(adapt),
        }
    }
}

impl<E> Fault<E> {
    /// A small number for an LED blink code: 1 env, 2 adapter, 3 flash.
    pub const fn code(&self) -> u8 {
        match self {
            Self::Env(_) => 1,
            Self::Adapt(_) => 2,
            Self::Store(_) => 3,
        }
    }
}

/// What one tick did, for the log.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event<E> {
    /// Nothing worth logging (idle, or a step inside an episode).
    Tick,
    /// A command was taken.
    Command(Command),
    /// An episode ended with this undiscounted return, in this status.
    Episode {
        /// The mode it was played in.
        status: Status,
        /// Its return.
        episode_return: f32,
    },
    /// Adaptation step `step` was applied; `mean_return` is its batch's (policy before it).
    Stepped {
        /// Steps applied so far.
        step: u16,
        /// Mean return of its batch.
        mean_return: f32,
    },
    /// The guard decided; `saved` is the record written for the kept policy.
    Guarded {
        /// The verdict and its evidence.
        verdict: Verdict,
        /// The record now newest in flash (`None` without flash slots).
        saved: Option<Record>,
    },
    /// The motors were stopped because of this.
    Fault(Fault<E>),
}

/// What [`Controller::boot`] restored.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Boot {
    /// No flash slots, nothing stored for this bundle, or a revert record: meta-policy.
    Meta,
    /// The adapted policy of this record.
    Restored(Record),
    /// A record was found but could not be loaded; the meta-policy runs.
    Unreadable(StoreError),
}

/// The control loop's state: the adapter, the optional flash slots and the episode in
/// progress.
pub struct Controller<'m, P: Policy, M: MetaSource, F> {
    adapter: Adapter<'m, P, M>,
    meta: M,
    slots: Option<Slots<F>>,
    bundle: u32,
    status: Status,
    active: Active,
    /// The observation carried from one tick of an episode to the next.
    obs: [f32; MAX_IO],
    guard_pending: bool,
    meta_returns: Returns,
    adapted_returns: Returns,
}

impl<'m, P: Policy, M: MetaSource, F: NorFlash> Controller<'m, P, M, F> {
    /// A controller around `adapter` (built from the bundle whose CRC is `bundle` and
    /// whose meta-parameters are `meta`), restoring the newest valid adapted policy from
    /// `slots` if there is one for this bundle.
    pub fn boot(
        adapter: Adapter<'m, P, M>,
        meta: M,
        bundle: u32,
        slots: Option<Slots<F>>,
    ) -> (Self, Boot) {
        let mut c = Self {
            adapter,
            meta,
            slots,
            bundle,
            status: Status::Idle,
            active: Active::Meta,
            obs: [0.0; MAX_IO],
            guard_pending: false,
            meta_returns: Returns::new(),
            adapted_returns: Returns::new(),
        };
        let boot = c.restore();
        (c, boot)
    }

    fn restore(&mut self) -> Boot {
        let found = match self.slots.as_mut().map(|s| s.newest(self.bundle)) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(r))) => Some(r),
            Some(Err(e)) => {
                self.use_meta();
                return Boot::Unreadable(e);
            }
        };
        let Some(record) = found.filter(|r| r.policy != store::Policy::Meta) else {
            self.use_meta();
            return Boot::Meta;
        };
        let mut failure = None;
        let restored = match self.slots.as_mut() {
            Some(slots) => self.adapter.restore(|buf| match slots.load(&record, buf) {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }),
            None => Err(AdaptError::Shape),
        };
        match restored {
            Ok(()) => {
                self.active = Active::Adapted {
                    params_crc: record.params_crc,
                };
                Boot::Restored(record)
            }
            Err(_) => {
                self.use_meta();
                Boot::Unreadable(failure.unwrap_or(StoreError::Shape))
            }
        }
    }

    /// The meta-policy as the acting policy, without learning: its parameters are loaded
    /// as "already adapted", so `act` does not record a batch.
    fn use_meta(&mut self) {
        let meta = self.meta;
        // The bundle's parameters were checked finite by the parser and have P scalars,
        // so this only fails on a programming error; the adapter is then at the meta-policy.
        let _ = self.adapter.restore(|buf| {
            if meta.len() != buf.len() {
                return false;
            }
            buf.iter_mut().zip(meta.values()).for_each(|(b, v)| *b = v);
            true
        });
        self.active = Active::Meta;
    }

    /// The current status (what the LEDs show).
    pub fn status(&self) -> Status {
        self.status
    }

    /// The CRC-32 of the bundle it was booted with.
    pub fn bundle_crc(&self) -> u32 {
        self.bundle
    }

    /// The policy that runs.
    pub fn active(&self) -> Active {
        self.active
    }

    /// The adapter, e.g. to read its parameters' checksum.
    pub fn adapter(&self) -> &Adapter<'m, P, M> {
        &self.adapter
    }

    /// The flash slots, if any.
    pub fn slots_mut(&mut self) -> Option<&mut Slots<F>> {
        self.slots.as_mut()
    }

    /// One period of the loop: reads `panel`'s command, ticks, shows the status. The
    /// period's timing: while an episode runs, the robot's own
    /// [`ControlClock`](crate::robot::ControlClock) waits for the tick inside
    /// [`Env::step`] (and its settle phase inside [`Env::reset`]); when idle, `ticker`
    /// waits instead, so buttons are polled and the LEDs blink at the same rate. A board
    /// drives both from one hardware timer and one shared deadline.
    pub fn step<E: Env, T: Ticker, B: Panel>(
        &mut self,
        env: &mut E,
        ticker: &mut T,
        panel: &mut B,
    ) -> Event<E::Error> {
        let command = panel.command();
        let steps_env = command.is_none()
            && matches!(
                self.status,
                Status::Adapting | Status::Evaluating | Status::Running
            );
        let event = self.tick(env, command);
        if !steps_env {
            ticker.wait();
        }
        panel.show(self.status);
        event
    }

    /// One control period: takes `command`, then plays one step of the episode in progress.
    pub fn tick<E: Env>(&mut self, env: &mut E, command: Option<Command>) -> Event<E::Error> {
        if let Some(cmd) = command {
            return match self.command(env, cmd) {
                Ok(()) => Event::Command(cmd),
                Err(f) => self.fault(env, f),
            };
        }
        match self.status {
            Status::Idle | Status::Fault => Event::Tick,
            Status::Adapting | Status::Evaluating | Status::Running => match self.play(env) {
                Ok(e) => e,
                Err(f) => self.fault(env, f),
            },
        }
    }

    fn command<E: Env>(&mut self, env: &mut E, cmd: Command) -> Result<(), Fault<E::Error>> {
        self.halt(env)?;
        if self.guard_pending && cmd != Command::Adapt {
            // An Adapt was interrupted before the guard's verdict: back to what was kept.
            self.guard_pending = false;
            self.restore();
        }
        match cmd {
            Command::Adapt => {
                self.adapter.reset();
                self.meta_returns = Returns::new();
                self.adapted_returns = Returns::new();
                self.guard_pending = true;
                self.status = Status::Adapting;
            }
            Command::Revert => {
                self.use_meta();
                if let Some(s) = self.slots.as_mut() {
                    s.save_meta(self.bundle).map_err(Fault::Store)?;
                }
                self.status = Status::Idle;
            }
            Command::Run => self.status = Status::Running,
            Command::Stop => self.status = Status::Idle,
        }
        Ok(())
    }

    /// Drops the episode in progress (unfinished episodes are evidence of nothing) and
    /// stops the motors.
    fn halt<E: Env>(&mut self, env: &mut E) -> Result<(), Fault<E::Error>> {
        self.adapter.abandon_episode();
        let obs = self.obs.get_mut(..P::OBS_DIM).unwrap_or(&mut []);
        env.stop(self.adapter.safe_action(), obs)
            .map_err(Fault::Env)
    }

    fn fault<E: Env>(&mut self, env: &mut E, f: Fault<E::Error>) -> Event<E::Error> {
        // Best effort: the stop may fail too (a dead bus); the first error is reported.
        let _ = self.halt(env);
        self.status = Status::Fault;
        Event::Fault(f)
    }

    fn play<E: Env>(&mut self, env: &mut E) -> Result<Event<E::Error>, Fault<E::Error>> {
        let obs = self
            .obs
            .get_mut(..P::OBS_DIM)
            .ok_or(Fault::Adapt(AdaptError::TooWide))?;
        let before = self.adapter.steps_done();
        let Some(EpisodeEnd {
            progress,
            episode_return,
        }) = self.adapter.play_tick(env, obs).map_err(Fault::from)?
        else {
            return Ok(Event::Tick);
        };
        let status = self.status;
        match progress {
            Progress::Recorded { .. } => {
                if before == 0 {
                    self.meta_returns.push(episode_return);
                }
                Ok(Event::Episode {
                    status,
                    episode_return,
                })
            }
            Progress::Stepped { step, mean_return } => {
                if before == 0 {
                    self.meta_returns.push(episode_return);
                }
                if self.adapter.is_adapted() {
                    self.status = Status::Evaluating;
                }
                Ok(Event::Stepped { step, mean_return })
            }
            Progress::Adapted { episode_return } => {
                if status == Status::Evaluating {
                    self.adapted_returns.push(episode_return);
                    if self.adapted_returns.count()
                        >= guard::evaluation_episodes(self.adapter.recipe())
                    {
                        return self.conclude(env);
                    }
                }
                Ok(Event::Episode {
                    status,
                    episode_return,
                })
            }
        }
    }

    /// The guard's verdict: keep the better policy, persist it, stop, go idle.
    fn conclude<E: Env>(&mut self, env: &mut E) -> Result<Event<E::Error>, Fault<E::Error>> {
        self.guard_pending = false;
        self.status = Status::Idle;
        self.halt(env)?;
        let verdict = guard::decide(self.meta_returns, self.adapted_returns);
        let bundle = self.bundle;
        let saved = match verdict.kept {
            Kept::Adapted => {
                let params_crc = self.adapter.with_params(|p| p.checksum());
                self.active = Active::Adapted { params_crc };
                let slots = self.slots.as_mut();
                match slots {
                    Some(slots) => Some(self.adapter.with_params(|p| match p {
                        ParamsRef::Ram(r) => slots.save(bundle, r),
                        // After ζ ≥ 1 steps the parameters are in RAM.
                        ParamsRef::Meta(_) => Err(StoreError::Shape),
                    })),
                    None => None,
                }
            }
            Kept::Meta => {
                self.use_meta();
                self.slots.as_mut().map(|s| s.save_meta(bundle))
            }
        };
        let saved = saved.transpose().map_err(Fault::Store)?;
        Ok(Event::Guarded { verdict, saved })
    }
}

/// The robot's buttons and status LEDs, as the board wires them.
pub trait Panel {
    /// The command pressed since the last call, if any (debounced by the board).
    fn command(&mut self) -> Option<Command>;
    /// Shows `status` (LEDs, buzzer).
    fn show(&mut self, status: Status);
    /// Shows blink code `code` ([`blink_code`] at the board's time) in place of a status:
    /// the firmware cannot run ([`crate::firmware::BringUpError::blink_code`]).
    fn show_code(&mut self, code: u8);
}

/// Two buttons, sampled once per tick, as commands; the same on every board. A command is
/// taken when all buttons are released again, so that a chord can be told from a press:
/// - A alone: [`Command::Adapt`];
/// - C alone: [`Command::Run`] when idle or stopped after a fault, [`Command::Stop`]
///   otherwise;
/// - A and C held together (at any moment of the press): [`Command::Revert`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TwoButtons {
    /// Each button seen pressed during the current press.
    seen: [bool; 2],
    /// Both pressed at once at some moment of it.
    chord: bool,
}

impl TwoButtons {
    /// No press in progress.
    pub const fn new() -> Self {
        Self {
            seen: [false; 2],
            chord: false,
        }
    }

    /// The levels of A and C now (true = pressed) and the controller's status; returns
    /// the command completed by this sample, if any.
    pub fn sample(&mut self, a: bool, c: bool, status: Status) -> Option<Command> {
        if a || c {
            self.seen[0] |= a;
            self.seen[1] |= c;
            self.chord |= a && c;
            return None;
        }
        let seen = core::mem::take(&mut self.seen);
        let chord = core::mem::take(&mut self.chord);
        match (chord, seen) {
            (true, _) => Some(Command::Revert),
            (false, [true, false]) => Some(Command::Adapt),
            (false, [false, true]) => Some(match status {
                Status::Idle | Status::Fault => Command::Run,
                _ => Command::Stop,
            }),
            // A then C without overlap: ambiguous, ignored.
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::env::Transition;
    use crate::policy::GaussianMlp;
    use crate::recipe::{ActionMap, Advantage, LossScale, Recipe};
    use crate::rng::Rng;
    use crate::sim::Nav2d;
    use crate::store::SimFlash;
    use std::vec;
    use std::vec::Vec;

    type Pol = GaussianMlp<2, 8, 0, 2>;
    type Flash = SimFlash<{ 2 * 4096 }, 4, 4096, 4096>;

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

    fn meta() -> Vec<f32> {
        let mut rng = Rng::new(3);
        (0..Pol::N_PARAMS).map(|_| 0.3 * rng.normal()).collect()
    }

    /// Nav2d that logs every command and every safe stop, and can fail or change its
    /// rewards after a number of steps.
    struct Probe {
        inner: Nav2d,
        steps: usize,
        fail_at: Option<usize>,
        /// `(n, before, after)`: rewards of the first `n` steps are shifted by `before`, later
        /// ones by `after` (the task got harder or easier).
        shift: Option<(usize, f32, f32)>,
        stops: usize,
        last_action: [f32; 2],
    }

    impl Probe {
        fn new() -> Self {
            Self {
                inner: Nav2d::new([0.3, -0.2]),
                steps: 0,
                fail_at: None,
                shift: None,
                stops: 0,
                last_action: [f32::NAN; 2],
            }
        }
    }

    impl Env for Probe {
        type Error = &'static str;
        fn obs_dim(&self) -> usize {
            2
        }
        fn action_width(&self) -> usize {
            2
        }
        fn reset(&mut self, obs: &mut [f32]) -> Result<(), &'static str> {
            self.inner = Nav2d::new([0.3, -0.2]);
            self.inner.reset(obs).map_err(|_| "reset")
        }
        fn step(&mut self, a: &[f32], obs: &mut [f32]) -> Result<Transition, &'static str> {
            self.steps += 1;
            if self.fail_at == Some(self.steps) {
                return Err("encoder");
            }
            self.last_action = [a[0], a[1]];
            let mut tr = self.inner.step(a, obs).map_err(|_| "step")?;
            if let Some((n, before, after)) = self.shift {
                tr.reward += if self.steps <= n { before } else { after };
            }
            Ok(tr)
        }
        fn stop(&mut self, a: &[f32], _obs: &mut [f32]) -> Result<(), &'static str> {
            self.stops += 1;
            self.last_action = [a[0], a[1]];
            Ok(())
        }
    }

    fn controller<'m>(
        mem: &'m mut [f32],
        meta: &'m [f32],
        flash: Option<Flash>,
    ) -> (Controller<'m, Pol, &'m [f32], Flash>, Boot) {
        let adapter = Adapter::new(Pol::default(), meta, None, recipe(), mem, 11).unwrap();
        let slots = flash.map(|f| Slots::new(f, 0, 4096).unwrap());
        Controller::boot(adapter, meta, 0xABCD, slots)
    }

    /// Ticks until the guard decides (or `limit` ticks), returning every event.
    fn until_guarded<E: Env>(
        c: &mut Controller<'_, Pol, &[f32], Flash>,
        env: &mut E,
        limit: usize,
    ) -> Vec<Event<E::Error>> {
        let mut events = vec![c.tick(env, Some(Command::Adapt))];
        for _ in 0..limit {
            let e = c.tick(env, None);
            let done = matches!(e, Event::Guarded { .. } | Event::Fault(_));
            events.push(e);
            if done {
                break;
            }
        }
        events
    }

    #[test]
    fn adapt_guard_persist_and_restore_after_a_reboot() {
        let meta = meta();
        let r = recipe();
        let mut mem = vec![0.0; r.memory(&Pol::SHAPE).total_floats()];
        let (mut c, boot) = controller(&mut mem, &meta, Some(Flash::new()));
        assert_eq!(boot, Boot::Meta);
        assert_eq!(c.active(), Active::Meta);
        let mut env = Probe::new();
        // The adaptation episodes (at most N·H steps) lose 10 per step: the adapted policy
        // is evaluated on easier terms, so the guard keeps it and the restore path runs.
        let n = usize::from(r.episodes) * usize::from(r.horizon);
        env.shift = Some((n, -10.0, 0.0));
        let events = until_guarded(&mut c, &mut env, 10_000);
        let episodes = events
            .iter()
            .filter(|e| matches!(e, Event::Episode { .. } | Event::Stepped { .. }))
            .count();
        // N adaptation episodes (the last one reported as the step) + N evaluation ones,
        // the last of which is reported as the verdict.
        assert_eq!(episodes + 1, 2 * usize::from(r.episodes));
        let Some(Event::Guarded { verdict, saved }) = events.last().copied() else {
            panic!("no verdict: {:?}", events.last());
        };
        assert_eq!(verdict.meta.count(), r.episodes);
        assert_eq!(verdict.adapted.count(), r.episodes);
        assert_eq!(verdict, guard::decide(verdict.meta, verdict.adapted));
        assert_eq!(c.status(), Status::Idle);
        assert!(
            env.stops >= 1 && env.last_action == [0.0, 0.0],
            "stopped after the guard"
        );
        let saved = saved.unwrap();
        let crc = c.adapter().with_params(|p| p.checksum());
        assert_eq!(verdict.kept, Kept::Adapted, "{verdict:?}");
        assert_eq!(c.active(), Active::Adapted { params_crc: crc });
        assert_eq!(saved.params_crc, crc);
        // Reboot on the same flash: the same policy comes back.
        let flash = c.slots_mut().unwrap().flash_mut().clone();
        let mut mem2 = vec![0.0; r.memory(&Pol::SHAPE).total_floats()];
        let (c2, boot) = controller(&mut mem2, &meta, Some(flash));
        assert_eq!(c2.active(), c.active());
        assert_eq!(c2.adapter().with_params(|p| p.checksum()), crc);
        assert_eq!(boot, Boot::Restored(saved));
        assert!(c2.adapter().is_adapted());
    }

    #[test]
    fn a_task_that_got_worse_keeps_the_meta_policy_and_persists_a_revert() {
        let meta = meta();
        let r = recipe();
        let mut mem = vec![0.0; r.memory(&Pol::SHAPE).total_floats()];
        let (mut c, _) = controller(&mut mem, &meta, Some(Flash::new()));
        let mut env = Probe::new();
        // Every evaluation step (after the N·H adaptation steps at most) loses 10.
        env.shift = Some((usize::from(r.episodes) * usize::from(r.horizon), 0.0, -10.0));
        let events = until_guarded(&mut c, &mut env, 10_000);
        let Some(Event::Guarded { verdict, saved }) = events.last().copied() else {
            panic!("no verdict");
        };
        assert_eq!(verdict.kept, Kept::Meta, "{verdict:?}");
        assert_eq!(saved.unwrap().policy, store::Policy::Meta);
        assert_eq!(c.active(), Active::Meta);
        let meta_crc = {
            let mut d = crate::crc32::digest();
            meta.iter().for_each(|x| d.update(&x.to_le_bytes()));
            d.finalize()
        };
        assert_eq!(c.adapter().with_params(|p| p.checksum()), meta_crc);
    }

    #[test]
    fn an_env_failure_stops_the_motors_and_the_next_command_recovers() {
        let meta = meta();
        let r = recipe();
        let mut mem = vec![0.0; r.memory(&Pol::SHAPE).total_floats()];
        let (mut c, _) = controller(&mut mem, &meta, None);
        let mut env = Probe::new();
        env.fail_at = Some(7);
        let events = until_guarded(&mut c, &mut env, 10_000);
        assert_eq!(events.last(), Some(&Event::Fault(Fault::Env("encoder"))));
        assert_eq!(c.status(), Status::Fault);
        assert_eq!(env.last_action, [0.0, 0.0], "safe stop sent");
        assert_eq!(c.tick(&mut env, None), Event::Tick, "stays stopped");
        // Adapting again from scratch works, and without flash the verdict saves nothing.
        let events = until_guarded(&mut c, &mut env, 10_000);
        assert!(matches!(
            events.last(),
            Some(Event::Guarded { saved: None, .. })
        ));
    }

    #[test]
    fn run_plays_the_active_policy_without_learning_and_stop_halts_it() {
        let meta = meta();
        let r = recipe();
        let mut mem = vec![0.0; r.memory(&Pol::SHAPE).total_floats()];
        let (mut c, _) = controller(&mut mem, &meta, None);
        let mut env = Probe::new();
        assert_eq!(
            c.tick(&mut env, Some(Command::Run)),
            Event::Command(Command::Run)
        );
        let mut episodes = 0;
        for _ in 0..(5 * usize::from(r.horizon)) {
            if let Event::Episode { status, .. } = c.tick(&mut env, None) {
                assert_eq!(status, Status::Running);
                episodes += 1;
            }
        }
        assert!(episodes >= 5);
        assert_eq!(
            c.adapter().steps_done(),
            r.steps,
            "no learning while running"
        );
        assert_eq!(c.active(), Active::Meta);
        let stops = env.stops;
        c.tick(&mut env, Some(Command::Stop));
        assert_eq!((env.stops, c.status()), (stops + 1, Status::Idle));
        // An Adapt interrupted by Stop goes back to what was kept (the meta-policy).
        c.tick(&mut env, Some(Command::Adapt));
        for _ in 0..30 {
            c.tick(&mut env, None);
        }
        c.tick(&mut env, Some(Command::Run));
        assert_eq!(c.active(), Active::Meta);
        assert!(c.adapter().is_adapted());
    }

    #[test]
    fn buttons_act_on_release_and_a_chord_reverts() {
        let mut b = TwoButtons::new();
        let idle = Status::Idle;
        assert_eq!(b.sample(true, false, idle), None);
        assert_eq!(b.sample(false, false, idle), Some(Command::Adapt));
        assert_eq!(b.sample(false, false, idle), None, "one command per press");
        assert_eq!(b.sample(false, true, idle), None);
        assert_eq!(b.sample(false, false, idle), Some(Command::Run));
        b.sample(false, true, Status::Running);
        assert_eq!(b.sample(false, false, Status::Running), Some(Command::Stop));
        b.sample(true, false, idle);
        b.sample(true, true, idle);
        b.sample(false, true, idle);
        assert_eq!(b.sample(false, false, idle), Some(Command::Revert));
    }

    #[test]
    fn blink_codes_count_their_blinks() {
        for code in 1..6u8 {
            let period = (u32::from(code) + 3) * 200;
            let ons = (0..period)
                .step_by(50)
                .filter(|&ms| blink_code(code, ms))
                .count();
            assert_eq!(ons, 2 * usize::from(code), "code {code}");
        }
        assert!(Status::Running.led(123));
    }
}
