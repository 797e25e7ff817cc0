//! sgmrl on the Pololu 3pi+ 2040 robot: a pin map under the core's firmware.
//!
//! Everything that decides anything (reading and checking the bundle, the blink code
//! when it is missing, episodes, adaptation, the guard, the flash slots, the safe stop, the
//! buttons' meaning, the LED patterns, what is logged) is the core's
//! [`sgmrl::firmware::Firmware`] around [`sgmrl::control::Controller`] over
//! [`sgmrl::robot::DiffDriveRobot`]; this file only says which pin is what (see
//! `README.md` for the pin map and its source) and implements the encoder, clock, panel and
//! log traits on the RP2040's PIO, timer, pads and defmt-rtt.
//!
//! Not run on hardware: it builds for `thumbv6m-none-eabi` in CI; the logic it wires is
//! tested on the host (`sgmrl::firmware`'s tests) and under QEMU (`boards/qemu`, binary
//! `robot`).
#![no_std]
#![no_main]

use core::cell::Cell;
use critical_section::Mutex;
use defmt::{error, info, warn};
use defmt_rtt as _;
use embassy_rp::bind_interrupts;
use embassy_rp::flash::{Blocking, Flash};
use embassy_rp::gpio::{Flex, Level, Output, Pull};
use embassy_rp::i2c::{self, I2c};
use embassy_rp::peripherals::PIO0;
use embassy_rp::pio::{
    self, Common, Config as PioConfig, FifoJoin, Pio, ShiftDirection, StateMachine,
};
use embassy_rp::pwm::{self, Pwm};
use embassy_time::{Duration, Instant};
use panic_probe as _;
use sgmrl::control::{self, Panel, Status, Ticker, TwoButtons};
use sgmrl::firmware::{self, Firmware, Line, Log};
use sgmrl::policy::SoftmaxMlp;
use sgmrl::robot::{
    ClockError, ControlClock, DiffDriveParts, DiffDriveRobot, EncoderError, GyroRange, Lsm6dso,
    PwmDirMotor, RobotConfig, Settle, WheelEncoder,
};
use sgmrl::sim::diffdrive::{CommandSet, DiffDriveSpec};
use sgmrl::store::Slots;

bind_interrupts!(struct Irqs {
    PIO0_IRQ_0 => pio::InterruptHandler<PIO0>;
});

/// The policy this firmware runs: the default diffdrive bundle's (`sgmrl train --preset
/// diffdrive`): 6 odometry observations → 16 → softmax over the 6 discrete wheel commands
/// of `sim::diffdrive::DISCRETE_COMMANDS` (index 0 = stop). A bundle of another shape is
/// refused (blink code 5); for a Gaussian head (`--env diffdrive-continuous`) use
/// `GaussianMlp<6, 16, 0, 2>` and `CommandSet::Continuous`.
type Pol = SoftmaxMlp<6, 16, 0, 6>;

/// Adapter memory, in `f32`s (up to 128 KB of the 264 KB of SRAM).
const MEMORY_FLOATS: usize = 32 * 1024;
/// Total QSPI flash (W25Q128).
const FLASH_SIZE: usize = 16 * 1024 * 1024;
/// Offsets in flash of the regions of memory.x.
const BUNDLE_OFFSET: u32 = 0x0010_0000;
const BUNDLE_LEN: usize = 1024 * 1024;
const SLOTS_OFFSET: u32 = 0x0020_0000;
const SLOT_LEN: u32 = 64 * 1024;
/// Where the RP2040 maps the flash (XIP).
const XIP_BASE: usize = 0x1000_0000;

/// The robot's geometry: the core's nominal spec is this robot (32 mm wheels, 12 CPR
/// encoders through the 29.86:1 Standard Edition gearbox; measure yours and set it).
const SPEC: DiffDriveSpec = DiffDriveSpec::NOMINAL;
/// The goal of every episode (m, relative to the pose at reset): 30 cm ahead, 10 cm left.
const GOAL: [f32; 2] = [0.3, 0.1];

#[cortex_m_rt::entry]
fn main() -> ! {
    let p = embassy_rp::init(Default::default());
    info!("sgmrl on the Pololu 3pi+ 2040");
    let period = Duration::from_micros((SPEC.control_period_s * 1e6) as u64);
    let mut idle = Metronome { period };

    // Buttons and LED: A shares GP25 with the yellow LED (active low); C is GP0.
    let mut panel = Buttons {
        a_led: Flex::new(p.PIN_25),
        c: Flex::new(p.PIN_0),
        buttons: TwoButtons::new(),
        status: Status::Idle,
    };
    panel.a_led.set_as_output();
    panel.a_led.set_high();

    // Motors: PWM slice 7 (GP14 = channel A = right, GP15 = channel B = left), TOP 5999
    // (6000 steps, ~20.8 kHz at 125 MHz), compare 0 from here on until the loop drives
    // them; direction GP10 right, GP11 left, low = forward.
    let mut pwm_config = pwm::Config::default();
    pwm_config.top = 5999;
    let motors = Pwm::new_output_ab(p.PWM_SLICE7, p.PIN_14, p.PIN_15, pwm_config);
    let (Some(right_pwm), Some(left_pwm)) = motors.split() else {
        firmware::halt(7, &mut idle, &mut panel)
    };
    let right_dir = Output::new(p.PIN_10, Level::Low);
    let left_dir = Output::new(p.PIN_11, Level::Low);

    // Encoders: PIO0 quadrature counters, left on GP12/GP13, right on GP8/GP9.
    let Pio {
        mut common,
        sm0,
        sm1,
        ..
    } = Pio::new(p.PIO0, Irqs);
    let program = quadrature_program(&mut common);
    let left_encoder = PioQuadrature::new(&mut common, sm0, p.PIN_12, p.PIN_13, &program);
    let right_encoder = PioQuadrature::new(&mut common, sm1, p.PIN_8, p.PIN_9, &program);

    // IMU: LSM6DSO on I²C0, SCL GP5, SDA GP4, 400 kHz, address 0x6B (SA0 high on this
    // board: `Lsm6dso::ADDRESS_SA0_HIGH`).
    let mut i2c_config = i2c::Config::default();
    i2c_config.frequency = 400_000;
    let i2c = I2c::new_blocking(p.I2C0, p.PIN_5, p.PIN_4, i2c_config);
    let mut gyro = Lsm6dso::new(i2c, 0x6B, GyroRange::Dps1000, false);
    if let Err(e) = gyro.init() {
        // The odometry still works from the encoders; the robot reports the error.
        warn!("gyro: {}", e);
    }

    let mut robot = DiffDriveRobot::new(
        DiffDriveParts {
            left_motor: PwmDirMotor::new(left_pwm, left_dir, false),
            right_motor: PwmDirMotor::new(right_pwm, right_dir, false),
            left_encoder,
            right_encoder,
            gyro,
            clock: Metronome { period },
        },
        RobotConfig {
            spec: SPEC,
            commands: CommandSet::Discrete,
            goal: GOAL,
            settle: Settle::DEFAULT,
        },
    );

    // SAFETY: BUNDLE is a region of memory.x that this firmware never writes (only the
    // SLOTS region is erased and programmed); XIP keeps it mapped for the program's life.
    let region: &'static [u8] = unsafe {
        core::slice::from_raw_parts((XIP_BASE + BUNDLE_OFFSET as usize) as *const u8, BUNDLE_LEN)
    };
    let Some(memory) = cortex_m::singleton!(: [f32; MEMORY_FLOATS] = [0.0; MEMORY_FLOATS]) else {
        firmware::halt(7, &mut idle, &mut panel)
    };
    let flash = Flash::<_, Blocking, FLASH_SIZE>::new_blocking(p.FLASH);
    let slots = Slots::new(flash, SLOTS_OFFSET, SLOT_LEN);
    let entropy = Instant::now().as_ticks();
    Firmware::start(Pol::default(), region, memory, entropy, slots)
        .run(&mut robot, &mut idle, &mut panel, &mut Defmt)
}

/// The firmware's log over defmt-rtt.
struct Defmt;

impl<E: defmt::Format> Log<E> for Defmt {
    fn log(&mut self, line: Line<E>) {
        match line.level() {
            firmware::Level::Info => info!("{}", line),
            firmware::Level::Warn => warn!("{}", line),
            firmware::Level::Error => error!("{}", line),
        }
    }
}

/// The control period on the RP2040 timer: one deadline shared by the robot's clock and
/// the idle ticker, so switching between them keeps the rate.
struct Metronome {
    period: Duration,
}

/// The next deadline, in timer ticks (µs).
static DEADLINE: Mutex<Cell<u64>> = Mutex::new(Cell::new(0));

impl Metronome {
    fn wait(&mut self) -> Option<u64> {
        let now = Instant::now().as_ticks();
        let next = critical_section::with(|cs| {
            let d = DEADLINE.borrow(cs);
            let next = d.get().saturating_add(self.period.as_ticks());
            // Late (the adaptation step between episodes takes longer than a period, the
            // robot standing still): start the schedule again from now.
            let next = if next < now { now } else { next };
            d.set(next);
            next
        });
        while Instant::now().as_ticks() < next {}
        (next == now).then_some(now)
    }
}

impl ControlClock for Metronome {
    fn wait_for_tick(&mut self) -> Result<(), ClockError> {
        // A late tick is logged, not an error: see `wait`.
        if self.wait().is_some() {
            warn!("control period overrun");
        }
        Ok(())
    }
}

impl Ticker for Metronome {
    fn wait(&mut self) {
        let _ = Metronome::wait(self);
    }
}

/// Buttons A (GP25, shared with the yellow LED) and C (GP0), and the LED.
struct Buttons<'d> {
    a_led: Flex<'d>,
    c: Flex<'d>,
    buttons: TwoButtons,
    status: Status,
}

impl Buttons<'_> {
    /// The yellow LED, active low.
    fn light(&mut self, on: bool) {
        self.a_led.set_level(Level::from(!on));
    }

    /// A pad that is normally an output, read as a pulled-up input for a moment
    /// (Pololu's library does the same for button A under the LED).
    fn pressed(pin: &mut Flex<'_>) -> bool {
        let level = pin.get_output_level();
        pin.set_as_input();
        pin.set_pull(Pull::Up);
        cortex_m::asm::delay(1_250); // 10 µs for the pad to settle
        let pressed = pin.is_low();
        pin.set_level(level);
        pin.set_as_output();
        pressed
    }
}

impl Panel for Buttons<'_> {
    fn command(&mut self) -> Option<control::Command> {
        let a = Self::pressed(&mut self.a_led);
        let c = Self::pressed(&mut self.c);
        self.buttons.sample(a, c, self.status)
    }

    fn show(&mut self, status: Status) {
        self.status = status;
        self.light(status.led(Instant::now().as_millis() as u32));
    }

    fn show_code(&mut self, code: u8) {
        self.light(control::blink_code(code, Instant::now().as_millis() as u32));
    }
}

/// The PIO quadrature decoder of pico-examples (`quadrature_encoder.pio`, 2020 version,
/// BSD-3-Clause): a 16-entry jump table indexed by the previous and current A/B levels
/// keeps a signed count in Y and pushes it continuously (never blocking).
fn quadrature_program<'d>(common: &mut Common<'d, PIO0>) -> pio::LoadedProgram<'d, PIO0> {
    let prg = pio::program::pio_asm!(
        ".origin 0",
        "    jmp update",    // 00 → 00
        "    jmp decrement", // 00 → 01
        "    jmp increment", // 00 → 10
        "    jmp update",    // 00 → 11
        "    jmp increment", // 01 → 00
        "    jmp update",    // 01 → 01
        "    jmp update",    // 01 → 10
        "    jmp decrement", // 01 → 11
        "    jmp decrement", // 10 → 00
        "    jmp update",    // 10 → 01
        "    jmp update",    // 10 → 10
        "    jmp increment", // 10 → 11
        "    jmp update",    // 11 → 00
        "    jmp increment", // 11 → 01
        "decrement:",
        "    jmp y--, update", // 11 → 10 (a pure decrement: the target is the next address)
        ".wrap_target",
        "update:",
        "    mov isr, y", // 11 → 11
        "    push noblock",
        "    out isr, 2",
        "    in pins, 2",
        "    mov osr, isr",
        "    mov pc, isr",
        "increment:",
        "    mov y, ~y",
        "    jmp y--, increment_cont",
        "increment_cont:",
        "    mov y, ~y",
        ".wrap",
    );
    common.load_program(&prg.program)
}

/// One wheel's PIO quadrature counter.
struct PioQuadrature<'d, const SM: usize> {
    sm: StateMachine<'d, PIO0, SM>,
}

impl<'d, const SM: usize> PioQuadrature<'d, SM> {
    fn new(
        common: &mut Common<'d, PIO0>,
        mut sm: StateMachine<'d, PIO0, SM>,
        pin_a: embassy_rp::Peri<'d, impl pio::PioPin>,
        pin_b: embassy_rp::Peri<'d, impl pio::PioPin>,
        program: &pio::LoadedProgram<'d, PIO0>,
    ) -> Self {
        let mut a = common.make_pio_pin(pin_a);
        let mut b = common.make_pio_pin(pin_b);
        a.set_pull(Pull::Up);
        b.set_pull(Pull::Up);
        sm.set_pin_dirs(pio::Direction::In, &[&a, &b]);
        let mut cfg = PioConfig::default();
        cfg.set_in_pins(&[&a, &b]);
        cfg.fifo_join = FifoJoin::RxOnly;
        cfg.shift_in.direction = ShiftDirection::Left;
        cfg.shift_out.direction = ShiftDirection::Right;
        cfg.use_program(program, &[]);
        sm.set_config(&cfg);
        sm.set_enable(true);
        Self { sm }
    }
}

impl<const SM: usize> WheelEncoder for PioQuadrature<'_, SM> {
    fn count(&mut self) -> Result<u32, EncoderError> {
        let rx = self.sm.rx();
        // The FIFO holds older counts: drain it, then take the next, fresh one (the
        // program pushes every few cycles).
        while rx.try_pull().is_some() {}
        for _ in 0..1000 {
            if let Some(raw) = rx.try_pull() {
                // Pololu: the PIO count runs backwards relative to forward motion.
                return Ok(0u32.wrapping_sub(raw));
            }
        }
        Err(EncoderError::Read)
    }
}
