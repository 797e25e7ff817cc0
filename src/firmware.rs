//! A board's whole program, written once: bring-up from the bundle's flash region, then the
//! control loop ([`Controller`]) forever. A board crate is its pins: it builds the robot
//! (a [`crate::robot::DiffDriveRobot`] over its drivers), a [`Ticker`], a [`Panel`] and a
//! [`Log`], and calls
//!
//! ```text
//! Firmware::start(Pol::default(), region, memory, entropy, Slots::new(flash, at, len))
//!     .run(&mut robot, &mut ticker, &mut panel, &mut log)
//! ```
//!
//! Bring-up ([`Firmware::start`]): the bundle's length from its header
//! ([`bundle::declared_len`]), [`Bundle::parse`], [`Bundle::check_policy`] for the
//! firmware's policy type, the adapter memory the recipe needs taken from the board's, the
//! [`Adapter`] (its seed: the bundle's CRC-32 xor the board's `entropy`), the flash slots,
//! [`Controller::boot`]. When any of it fails the firmware is *halted*: every period shows
//! [`BringUpError::blink_code`] on the panel ([`Panel::show_code`]) and the robot is never
//! touched, so motors whose duty the board set to zero at init stay stopped.
//!
//! The core logs nothing itself: every line goes to the board's [`Log`] as a [`Line`] with
//! its [`Level`]. A board implements it with `defmt` in one `match`; the core keeps no
//! `defmt` macro and no global logger (it runs on the host and under QEMU semihosting too,
//! where there is no defmt transport), only the optional `defmt::Format` derives of the
//! `defmt` feature.

use crate::adapt::{AdaptError, Adapter};
use crate::bundle::{self, Bundle, BundleError};
use crate::control::{Boot, Controller, Event, Panel, Ticker, bundle_blink_code};
use crate::env::Env;
use crate::policy::{LeF32s, Policy};
use crate::recipe::Recipe;
use crate::store::{Slots, StoreError};
use embedded_storage::nor_flash::NorFlash;

/// Why a board cannot run; it shows [`BringUpError::blink_code`] with the motors stopped.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BringUpError {
    /// The bundle region holds no valid bundle for the firmware's policy type.
    Bundle(BundleError),
    /// The adapter refused the bundle: its recipe needs more adapter memory than the board
    /// set aside ([`AdaptError::Memory`], in `f32`s), or its recipe or parameters do not fit.
    Adapter(AdaptError),
}

impl BringUpError {
    /// The number of blinks a board shows for it: [`bundle_blink_code`] for a bundle
    /// error (1–6), 6 for an adapter error (a recipe this firmware cannot follow).
    pub const fn blink_code(&self) -> u8 {
        match self {
            Self::Bundle(e) => bundle_blink_code(e),
            Self::Adapter(_) => 6,
        }
    }
}

impl core::fmt::Display for BringUpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Bundle(e) => write!(f, "no valid bundle: {e}"),
            Self::Adapter(e) => write!(f, "adapter: {e}"),
        }
    }
}

/// How much a [`Line`] matters (a board maps it to its logger's levels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Level {
    /// What the firmware is doing.
    Info,
    /// Something is missing but the robot works (no flash slots, an unreadable record).
    Warn,
    /// The motors were stopped, or never started.
    Error,
}

/// One log line of the firmware; `E` is the robot's error type.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Line<E> {
    /// The bundle found at boot.
    Bundle {
        /// Its CRC-32 (what the flash slots' records are tied to).
        crc: u32,
        /// The policy's parameter count.
        params: usize,
        /// Its adaptation recipe.
        recipe: Recipe,
    },
    /// The flash slots are unusable: adaptations will not persist across power cycles.
    SlotsUnusable(StoreError),
    /// What boot restored.
    Boot(Boot),
    /// Bring-up failed: the board blinks `code` forever, motors stopped.
    Halted {
        /// What failed.
        error: BringUpError,
        /// Its blink code.
        code: u8,
    },
    /// What a control period did (never [`Event::Tick`]).
    Event(Event<E>),
}

impl<E> Line<E> {
    /// Its level: faults and a failed bring-up are errors, a missing persistence a warning.
    pub const fn level(&self) -> Level {
        match self {
            Self::Halted { .. } | Self::Event(Event::Fault(_)) => Level::Error,
            Self::SlotsUnusable(_) | Self::Boot(Boot::Unreadable(_)) => Level::Warn,
            _ => Level::Info,
        }
    }
}

/// Where the firmware's log lines go (defmt on a board).
pub trait Log<E> {
    /// Writes `line` (at [`Line::level`]).
    fn log(&mut self, line: Line<E>);
}

/// What bring-up left to run.
struct Running<'m, 'b, P: Policy, F> {
    controller: Controller<'m, P, LeF32s<'b>, F>,
    boot: Boot,
    slots_error: Option<StoreError>,
}

/// A brought-up board: the control loop ready to run, or halted with a blink code.
pub struct Firmware<'m, 'b, P: Policy, F> {
    state: Result<Running<'m, 'b, P, F>, BringUpError>,
    /// The bring-up lines were logged (by the first period).
    announced: bool,
}

impl<'m, 'b, P: Policy, F: NorFlash> Firmware<'m, 'b, P, F> {
    /// Brings the board up from `region` (the bundle's flash region, read in place for the
    /// program's life), `memory` (the adapter's, at least the recipe's
    /// `Memory::total_floats`; the rest is left unused), `entropy` (mixed into the
    /// adapter's seed; a timer reading) and `slots` (as `Slots::new` opened them; without
    /// usable slots adaptations do not persist). Logs nothing yet: the first
    /// [`Firmware::period`] does.
    pub fn start(
        policy: P,
        region: &'b [u8],
        memory: &'m mut [f32],
        entropy: u64,
        slots: Result<Slots<F>, StoreError>,
    ) -> Self {
        Self {
            state: Self::bring_up(policy, region, memory, entropy, slots),
            announced: false,
        }
    }

    fn bring_up(
        policy: P,
        region: &'b [u8],
        memory: &'m mut [f32],
        entropy: u64,
        slots: Result<Slots<F>, StoreError>,
    ) -> Result<Running<'m, 'b, P, F>, BringUpError> {
        let bundle = bundle::declared_len(region)
            // A declared length past the region's end: parsing the region says "truncated".
            .and_then(|n| Bundle::parse(region.get(..n).unwrap_or(region)))
            .and_then(|b| b.check_policy::<P>().map(|()| b))
            .map_err(BringUpError::Bundle)?;
        let needed = bundle.recipe().memory(&P::SHAPE).total_floats();
        let got = memory.len();
        let memory = memory
            .get_mut(..needed)
            .ok_or(BringUpError::Adapter(AdaptError::Memory { needed, got }))?;
        let seed = u64::from(bundle.checksum()) ^ entropy;
        let adapter =
            Adapter::from_bundle(policy, &bundle, memory, seed).map_err(BringUpError::Adapter)?;
        let (slots, slots_error) = match slots {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        let (controller, boot) =
            Controller::boot(adapter, bundle.params(), bundle.checksum(), slots);
        Ok(Running {
            controller,
            boot,
            slots_error,
        })
    }

    /// Why bring-up failed, if it did.
    pub fn halted(&self) -> Option<BringUpError> {
        self.state.as_ref().err().copied()
    }

    /// What boot restored (`None` when halted).
    pub fn boot(&self) -> Option<Boot> {
        self.state.as_ref().ok().map(|r| r.boot)
    }

    /// The control loop (`None` when halted).
    pub fn controller(&self) -> Option<&Controller<'m, P, LeF32s<'b>, F>> {
        self.state.as_ref().ok().map(|r| &r.controller)
    }

    /// One control period: the first one logs the bring-up lines. Running, it is
    /// [`Controller::step`] (whose events other than [`Event::Tick`] are logged); halted,
    /// it shows the blink code and waits for `ticker`, never touching `robot`.
    pub fn period<E: Env, T: Ticker, B: Panel, L: Log<E::Error>>(
        &mut self,
        robot: &mut E,
        ticker: &mut T,
        panel: &mut B,
        log: &mut L,
    ) {
        if !self.announced {
            self.announced = true;
            self.announce(log);
        }
        match &mut self.state {
            Ok(run) => match run.controller.step(robot, ticker, panel) {
                Event::Tick => {}
                event => log.log(Line::Event(event)),
            },
            Err(e) => {
                panel.show_code(e.blink_code());
                ticker.wait();
            }
        }
    }

    fn announce<E, L: Log<E>>(&self, log: &mut L) {
        match &self.state {
            Ok(run) => {
                let adapter = run.controller.adapter();
                log.log(Line::Bundle {
                    crc: run.controller.bundle_crc(),
                    params: P::N_PARAMS,
                    recipe: *adapter.recipe(),
                });
                if let Some(e) = run.slots_error {
                    log.log(Line::SlotsUnusable(e));
                }
                log.log(Line::Boot(run.boot));
            }
            Err(error) => log.log(Line::Halted {
                error: *error,
                code: error.blink_code(),
            }),
        }
    }

    /// [`Firmware::period`] forever: a board's `main` ends here.
    pub fn run<E: Env, T: Ticker, B: Panel, L: Log<E::Error>>(
        mut self,
        robot: &mut E,
        ticker: &mut T,
        panel: &mut B,
        log: &mut L,
    ) -> ! {
        loop {
            self.period(robot, ticker, panel, log);
        }
    }
}

/// Shows blink `code` on `panel` forever, one [`Ticker`] period at a time: for a board
/// whose peripherals failed before [`Firmware::start`] (by convention code 7).
pub fn halt<T: Ticker, B: Panel>(code: u8, ticker: &mut T, panel: &mut B) -> ! {
    loop {
        panel.show_code(code);
        ticker.wait();
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::bundle::{BundleSpec, TaskId, Trainer};
    use crate::control::{Command, Status, TwoButtons};
    use crate::policy::GaussianMlp;
    use crate::recipe::{ActionMap, Advantage, LossScale};
    use crate::robot::{DiffDriveRobot, RobotConfig, RobotError, Settle};
    use crate::sim::diffdrive::{
        CommandSet, DiffDrive, DiffDriveSpec, DiffDriveTask, RobotVariation,
    };
    use crate::simhw::{Plant, SimBench};
    use crate::store::SimFlash;
    use std::vec::Vec;

    type Pol = GaussianMlp<6, 8, 0, 2>;
    type Flash = SimFlash<2048, 4, 256, 1024>;

    const RECIPE: Recipe = Recipe {
        alpha: 0.002,
        steps: 1,
        episodes: 4,
        horizon: 10,
        gamma: 0.99,
        advantage: Advantage::BatchMeanBaseline,
        normalize: true,
        loss: LossScale::PerEpisode,
        action: ActionMap {
            scale: 1.0,
            clip: Some(1.0),
        },
    };

    fn bundle_for<Q: Policy>() -> Vec<u8> {
        let mut rng = crate::rng::Rng::new(9);
        let params: Vec<f32> = (0..Q::N_PARAMS).map(|_| 0.3 * rng.normal()).collect();
        let spec = BundleSpec {
            shape: Q::SHAPE,
            recipe: RECIPE,
            task: TaskId::DIFFDRIVE_CONTINUOUS,
            trainer: Trainer::Unknown,
            seed: 9,
            meta_iterations: 0,
            baseline: None,
            params: &params,
        };
        let mut out = std::vec![0u8; spec.encoded_len()];
        spec.encode_into(&mut out).unwrap();
        out
    }

    fn bench() -> SimBench {
        let task = DiffDriveTask {
            goal: [0.3, 0.1],
            robot: RobotVariation::NOMINAL,
        };
        SimBench::new(DiffDrive::new(
            DiffDriveSpec::NOMINAL,
            task,
            CommandSet::Continuous,
            false,
        ))
    }

    /// The board's buttons as levels per period (A, C), through the real sampler.
    struct Buttons {
        script: Vec<(bool, bool)>,
        buttons: TwoButtons,
        status: Status,
        shown: Vec<Status>,
        codes: Vec<u8>,
    }

    impl Buttons {
        /// Presses A for one period, then nothing.
        fn adapt() -> Self {
            Self {
                script: std::vec![(true, false)],
                buttons: TwoButtons::new(),
                status: Status::Idle,
                shown: Vec::new(),
                codes: Vec::new(),
            }
        }
    }

    impl Panel for Buttons {
        fn command(&mut self) -> Option<Command> {
            let (a, c) = if self.script.is_empty() {
                (false, false)
            } else {
                self.script.remove(0)
            };
            self.buttons.sample(a, c, self.status)
        }
        fn show(&mut self, status: Status) {
            self.status = status;
            self.shown.push(status);
        }
        fn show_code(&mut self, code: u8) {
            self.codes.push(code);
        }
    }

    struct Waits(usize);
    impl Ticker for Waits {
        fn wait(&mut self) {
            self.0 += 1;
        }
    }

    impl<E> Log<E> for Vec<Line<E>> {
        fn log(&mut self, line: Line<E>) {
            self.push(line);
        }
    }

    /// Runs `periods` periods of a firmware brought up from `region` and `memory` on the
    /// simulated robot, with button A pressed at the start.
    fn play(
        region: &[u8],
        memory: &mut [f32],
        slots: Result<Slots<Flash>, StoreError>,
        periods: usize,
    ) -> (Vec<Line<RobotError>>, Buttons, Waits, [u16; 2], u32) {
        let b = bench();
        let mut parts = b.parts();
        parts.gyro.init().unwrap();
        let config = RobotConfig {
            spec: DiffDriveSpec::NOMINAL,
            commands: CommandSet::Continuous,
            goal: [0.3, 0.1],
            settle: Settle::DEFAULT,
        };
        let mut robot = DiffDriveRobot::new(parts, config);
        let mut fw = Firmware::start(Pol::default(), region, memory, 5, slots);
        let (mut log, mut panel, mut ticker) = (Vec::new(), Buttons::adapt(), Waits(0));
        let mut max_duty = [0u16; 2];
        for _ in 0..periods {
            fw.period(&mut robot, &mut ticker, &mut panel, &mut log);
            let duty = b.with_plant(Plant::duty);
            max_duty = [max_duty[0].max(duty[0]), max_duty[1].max(duty[1])];
        }
        let ticks = b.with_plant(Plant::ticks);
        (log, panel, ticker, max_duty, ticks)
    }

    #[test]
    fn a_bad_bundle_blinks_its_code_and_never_drives_the_motors() {
        let good = bundle_for::<Pol>();
        let mut corrupt = good.clone();
        *corrupt.last_mut().unwrap() ^= 0x40;
        let needed = RECIPE.memory(&Pol::SHAPE).total_floats();
        let cases: [(&str, Vec<u8>, usize, u8); 5] = [
            ("erased flash", std::vec![0xFF; 4096], needed, 2),
            ("half a bundle", good[..good.len() / 2].to_vec(), needed, 1),
            ("a flipped bit", corrupt, needed, 4),
            (
                "another policy shape",
                bundle_for::<GaussianMlp<6, 4, 0, 2>>(),
                needed,
                5,
            ),
            ("too little adapter memory", good.clone(), needed - 1, 6),
        ];
        for (what, region, floats, code) in cases {
            let mut memory = std::vec![0.0f32; floats];
            let slots = Slots::new(Flash::new(), 0, 1024);
            let (log, panel, ticker, max_duty, ticks) = play(&region, &mut memory, slots, 60);
            let [
                Line::Halted {
                    error,
                    code: logged,
                },
            ] = log[..]
            else {
                panic!("{what}: {log:?}");
            };
            assert_eq!(
                (error.blink_code(), logged),
                (code, code),
                "{what}: {error:?}"
            );
            assert_eq!(log[0].level(), Level::Error);
            assert_eq!(panel.codes, std::vec![code; 60], "{what}");
            assert!(panel.shown.is_empty(), "{what}: no status shown");
            assert_eq!(ticker.0, 60, "{what}: paced by the ticker");
            assert_eq!((max_duty, ticks), ([0, 0], 0), "{what}: robot untouched");
        }
    }

    #[test]
    fn a_good_bundle_boots_the_meta_policy_and_button_a_adapts() {
        let region = bundle_for::<Pol>();
        let crc = Bundle::parse(&region).unwrap().checksum();
        // More memory than needed is fine; the rest stays unused.
        let mut memory = std::vec![0.0f32; RECIPE.memory(&Pol::SHAPE).total_floats() + 7];
        let slots = Slots::new(Flash::new(), 0, 1024);
        let (log, panel, _, max_duty, ticks) = play(&region, &mut memory, slots, 200);
        assert_eq!(
            log[..3],
            [
                Line::Bundle {
                    crc,
                    params: Pol::N_PARAMS,
                    recipe: RECIPE
                },
                Line::Boot(Boot::Meta),
                Line::Event(Event::Command(Command::Adapt)),
            ]
        );
        assert!(log.iter().all(|l| l.level() == Level::Info), "{log:?}");
        assert!(
            log.iter()
                .any(|l| matches!(l, Line::Event(Event::Stepped { step: 1, .. }))),
            "{log:?}"
        );
        assert!(panel.codes.is_empty());
        assert!(panel.shown.contains(&Status::Adapting));
        assert!(ticks > 40 && max_duty != [0, 0], "the robot drove");
    }

    #[test]
    fn unusable_slots_are_a_warning_and_the_robot_still_runs() {
        let region = bundle_for::<Pol>();
        let mut memory = std::vec![0.0f32; RECIPE.memory(&Pol::SHAPE).total_floats()];
        // Two 4 KB slots do not fit a 2 KB flash.
        let slots = Slots::new(Flash::new(), 0, 4096);
        let Err(e) = slots else { panic!("slots fit") };
        let (log, _, _, _, ticks) = play(&region, &mut memory, Err(e), 100);
        assert_eq!(log[1], Line::SlotsUnusable(e));
        assert_eq!(log[1].level(), Level::Warn);
        assert_eq!(log[2], Line::Boot(Boot::Meta));
        assert!(ticks > 0);
    }
}
