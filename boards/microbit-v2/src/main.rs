//! sgmrl on a BBC micro:bit v2 plugged into a Kitronik Motor Driver Board (5620): a pin
//! map under the core's firmware.
//!
//! The decisions (reading and checking the bundle, the blink code when it is missing,
//! episodes, adaptation, guard, flash slots, safe stop, buttons, LED patterns, what is
//! logged) are the core's [`sgmrl::firmware::Firmware`] around
//! [`sgmrl::control::Controller`] over [`sgmrl::robot::DiffDriveRobot`]. This kit has **no
//! wheel encoders**, so (see README):
//! - the robot's "encoders" are [`ModelEncoder`]s: the commanded wheel speed through the
//!   nominal first-order motor model, integrated into counts (dead reckoning from the
//!   command, blind to the motors' real gains);
//! - its "gyro" is the on-board LSM303AGR magnetometer: the heading change per period is
//!   the yaw rate ([`MagnetometerYaw`]), which *does* see a left/right motor mismatch, so
//!   adaptation can correct steering asymmetry but not a common speed error.
//!
//! Not run on hardware: CI builds it for `thumbv7em-none-eabihf`; the logic it wires is
//! tested on the host and under QEMU (`boards/qemu`, binary `robot`).
#![no_std]
#![no_main]

use core::cell::Cell;
use defmt::{error, info, warn};
use defmt_rtt as _;
use embedded_hal::digital::{InputPin, OutputPin};
use lsm303agr::{Lsm303agr, MagMode, MagOutputDataRate};
use nrf52833_hal::Delay;
use nrf52833_hal::gpio::{Level, p0, p1};
use nrf52833_hal::nvmc::Nvmc;
use nrf52833_hal::pac;
use nrf52833_hal::pwm::{Channel, Pwm, PwmChannel};
use nrf52833_hal::time::Hertz;
use nrf52833_hal::timer::{Periodic, Timer};
use nrf52833_hal::twim::{self, Twim};
use panic_probe as _;
use sgmrl::control::{self, Panel, Status, Ticker, TwoButtons};
use sgmrl::firmware::{self, Firmware, Line, Log};
use sgmrl::policy::SoftmaxMlp;
use sgmrl::robot::{
    ClockError, ControlClock, DiffDriveParts, DiffDriveRobot, EncoderError, GyroError, Motor,
    MotorError, RobotConfig, Settle, TwoPwmMotor, WheelEncoder, YawRateSensor,
};
use sgmrl::sim::diffdrive::{CommandSet, DiffDriveSpec};
use sgmrl::store::Slots;

/// The policy this firmware runs: the default diffdrive bundle's (`sgmrl train --preset
/// diffdrive`): 6 odometry observations → 16 → softmax over the 6 discrete wheel commands
/// of `sim::diffdrive::DISCRETE_COMMANDS` (index 0 = stop). A bundle of another shape is
/// refused (blink code 5); for a Gaussian head (`--env diffdrive-continuous`) use
/// `GaussianMlp<6, 16, 0, 2>` and `CommandSet::Continuous`.
type Pol = SoftmaxMlp<6, 16, 0, 6>;

/// Adapter memory, in `f32`s (64 KB of the 128 KB of RAM).
const MEMORY_FLOATS: usize = 16 * 1024;
/// The regions of memory.x.
const BUNDLE_ADDR: usize = 0x0004_0000;
const BUNDLE_LEN: usize = 192 * 1024;
const SLOTS_ADDR: usize = 0x0007_0000;
const SLOT_LEN: u32 = 16 * 1024;

/// A small two-motor micro:bit chassis; every figure is a placeholder to measure on yours
/// ("counts" are the model encoder's: any resolution works).
const SPEC: DiffDriveSpec = DiffDriveSpec {
    wheel_radius_m: 0.03,
    track_width_m: 0.12,
    counts_per_wheel_rev: 360.0,
    max_wheel_speed_rad_s: 10.0,
    motor_time_constant_s: 0.15,
    control_period_s: 0.1,
};
/// The goal of every episode (m, relative to the pose at reset).
const GOAL: [f32; 2] = [0.4, 0.1];
/// The timer counts microseconds (TIMER0 at 1 MHz) and wraps every 2³² µs.
const TIMER_HZ: f32 = 1.0e6;

#[cortex_m_rt::entry]
fn main() -> ! {
    let (Some(p), Some(cp)) = (pac::Peripherals::take(), pac::CorePeripherals::take()) else {
        loop {
            cortex_m::asm::wfi();
        }
    };
    info!("sgmrl on the micro:bit v2 + Kitronik motor driver board");
    nfc_pads_as_gpio(&p.UICR, &p.NVMC);
    let port0 = p0::Parts::new(p.P0);
    let port1 = p1::Parts::new(p.P1);

    let mut timer = Timer::periodic(p.TIMER0);
    timer.start(u32::MAX);
    let timer = &timer;
    let period_us = (SPEC.control_period_s * TIMER_HZ) as u32;
    let deadline = Cell::new(timer.read());
    let metronome = || Metronome {
        timer,
        deadline: &deadline,
        period_us,
    };

    // Status LED: matrix row 1 (P0.21) and column 1 (P0.28, active low): the top-left LED.
    let _row1 = port0.p0_21.into_push_pull_output(Level::High);
    let mut panel = Buttons {
        a: port0.p0_14.into_floating_input(),
        b: port0.p0_23.into_floating_input(),
        led: port0.p0_28.into_push_pull_output(Level::High),
        buttons: TwoButtons::new(),
        status: Status::Idle,
        timer,
    };

    // Motors on the Kitronik Motor Driver Board 5620, two inputs per motor (README: from
    // Kitronik's MakeCode extension and data sheet, edge pins to nRF52833 pins from the
    // micro:bit's CODAL runtime): motor 1 = P8 (forward) and P12 (reverse), motor 2 = P0
    // (forward) and P16 (reverse). P8 is P0.10, a GPIO since `nfc_pads_as_gpio`.
    let pwm = Pwm::new(p.PWM0);
    pwm.set_output_pin(
        Channel::C0,
        port0.p0_10.into_push_pull_output(Level::Low).degrade(),
    )
    .set_output_pin(
        Channel::C1,
        port0.p0_12.into_push_pull_output(Level::Low).degrade(),
    )
    .set_output_pin(
        Channel::C2,
        port0.p0_02.into_push_pull_output(Level::Low).degrade(),
    )
    .set_output_pin(
        Channel::C3,
        port1.p1_02.into_push_pull_output(Level::Low).degrade(),
    )
    .set_period(Hertz(20_000));
    // Zero duty from here on until the loop drives them.
    pwm.set_duty_on_common(0);
    let commanded = [Cell::new(0.0f32), Cell::new(0.0f32)];
    let [left_cmd, right_cmd] = &commanded;
    let motor = |in1, in2, command| Recording {
        motor: TwoPwmMotor::new(PwmChannel::new(&pwm, in1), PwmChannel::new(&pwm, in2)),
        command,
    };

    // LSM303AGR on the internal I²C bus: SCL P0.08, SDA P0.16.
    let i2c = Twim::new(
        p.TWIM0,
        twim::Pins {
            scl: port0.p0_08.into_floating_input().degrade(),
            sda: port0.p0_16.into_floating_input().degrade(),
        },
        twim::Frequency::K400,
    );
    let mut delay = Delay::new(cp.SYST);
    let mut sensor = Lsm303agr::new_with_i2c(i2c);
    let mag = sensor
        .init()
        .and_then(|()| {
            sensor.set_mag_mode_and_odr(
                &mut delay,
                MagMode::HighResolution,
                MagOutputDataRate::Hz50,
            )
        })
        .ok()
        .and_then(|()| sensor.into_mag_continuous().ok());
    if mag.is_none() {
        warn!("magnetometer did not start: heading from the wheel model only");
    }

    let mut robot = DiffDriveRobot::new(
        DiffDriveParts {
            left_motor: motor(Channel::C0, Channel::C1, left_cmd),
            right_motor: motor(Channel::C2, Channel::C3, right_cmd),
            left_encoder: ModelEncoder::new(left_cmd, timer),
            right_encoder: ModelEncoder::new(right_cmd, timer),
            gyro: MagnetometerYaw {
                mag,
                timer,
                last: None,
            },
            clock: metronome(),
        },
        RobotConfig {
            spec: SPEC,
            commands: CommandSet::Discrete,
            goal: GOAL,
            settle: Settle::DEFAULT,
        },
    );

    // SAFETY: BUNDLE is a flash region of memory.x that nothing in this firmware writes;
    // flash stays mapped at this address for the program's life.
    let region: &'static [u8] =
        unsafe { core::slice::from_raw_parts(BUNDLE_ADDR as *const u8, BUNDLE_LEN) };
    let mut idle = metronome();
    let Some(memory) = cortex_m::singleton!(: [f32; MEMORY_FLOATS] = [0.0; MEMORY_FLOATS]) else {
        firmware::halt(7, &mut idle, &mut panel)
    };
    // SAFETY: SLOTS is a flash region of memory.x used by nothing else; Nvmc is its only
    // accessor from here on.
    let slots_region: &'static mut [u8] =
        unsafe { core::slice::from_raw_parts_mut(SLOTS_ADDR as *mut u8, 2 * SLOT_LEN as usize) };
    let slots = Slots::new(Nvmc::new(p.NVMC, slots_region), 0, SLOT_LEN);
    let entropy = u64::from(timer.read());
    Firmware::start(Pol::default(), region, memory, entropy, slots)
        .run(&mut robot, &mut idle, &mut panel, &mut Defmt)
}

/// Makes P8 (P0.10, motor 1's forward input) and P0.09 GPIOs: they are the NFC antenna
/// pads while `UICR.NFCPINS` says so, its value after a chip erase. Nordic's MDK startup
/// clears it when built with `CONFIG_NFCT_PINS_AS_GPIOS`, as the micro:bit's CODAL runtime
/// is (so a board that ran MakeCode has it cleared); this firmware has no MDK startup and
/// does the same: program the bit once, then reset for it to take effect.
fn nfc_pads_as_gpio(uicr: &pac::UICR, nvmc: &pac::NVMC) {
    if !uicr.nfcpins.read().protect().is_nfc() {
        return;
    }
    let wait = || while nvmc.ready.read().ready().is_busy() {};
    nvmc.config.write(|w| w.wen().wen());
    wait();
    uicr.nfcpins.write(|w| w.protect().disabled());
    wait();
    nvmc.config.write(|w| w.wen().ren());
    wait();
    if uicr.nfcpins.read().protect().is_disabled() {
        cortex_m::peripheral::SCB::sys_reset();
    }
    // The write did not take: no reset loop; motor 1 will not drive forward.
    warn!("UICR.NFCPINS could not be cleared: P8 stays an NFC pad");
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

/// A motor that remembers its last command, for the [`ModelEncoder`].
struct Recording<'a, M> {
    motor: M,
    command: &'a Cell<f32>,
}

impl<M: Motor> Motor for Recording<'_, M> {
    fn set(&mut self, command: f32) -> Result<(), MotorError> {
        let r = self.motor.set(command);
        self.command.set(if r.is_ok() && command.is_finite() {
            command.clamp(-1.0, 1.0)
        } else {
            0.0
        });
        r
    }

    fn stop(&mut self) -> Result<(), MotorError> {
        self.command.set(0.0);
        self.motor.stop()
    }
}

/// Dead reckoning from the command: the nominal first-order motor driven by the last
/// command, integrated into counts at each read. It cannot see the real motor's gain or
/// dead-band; it is what the loop has on a kit without encoders.
struct ModelEncoder<'a> {
    command: &'a Cell<f32>,
    timer: &'a Timer<pac::TIMER0, Periodic>,
    last_us: u32,
    omega: f32,
    counts: f32,
}

impl<'a> ModelEncoder<'a> {
    fn new(command: &'a Cell<f32>, timer: &'a Timer<pac::TIMER0, Periodic>) -> Self {
        Self {
            command,
            timer,
            last_us: timer.read(),
            omega: 0.0,
            counts: 0.0,
        }
    }
}

impl WheelEncoder for ModelEncoder<'_> {
    fn count(&mut self) -> Result<u32, EncoderError> {
        let now = self.timer.read();
        let dt = now.wrapping_sub(self.last_us) as f32 / TIMER_HZ;
        self.last_us = now;
        let target = self.command.get() * SPEC.max_wheel_speed_rad_s;
        let k = 1.0 - libm::expf(-dt / SPEC.motor_time_constant_s);
        let start = self.omega;
        self.omega += k * (target - self.omega);
        let mean = 0.5 * (start + self.omega);
        self.counts += mean * dt * SPEC.counts_per_wheel_rev / core::f32::consts::TAU;
        // Wrapping, as a hardware counter would.
        Ok(libm::floorf(self.counts) as i64 as u32)
    }
}

/// The yaw rate from the magnetometer's heading change between reads (flat mounting, no
/// hard-iron calibration: keep the board away from the motors' magnets, and check).
struct MagnetometerYaw<'a, M> {
    mag: Option<M>,
    timer: &'a Timer<pac::TIMER0, Periodic>,
    last: Option<(f32, u32)>,
}

impl<I, E> YawRateSensor
    for MagnetometerYaw<
        '_,
        Lsm303agr<lsm303agr::interface::I2cInterface<I>, lsm303agr::mode::MagContinuous>,
    >
where
    I: embedded_hal::i2c::I2c<Error = E>,
    E: core::fmt::Debug,
{
    fn yaw_rate(&mut self) -> Result<Option<f32>, GyroError> {
        let Some(mag) = self.mag.as_mut() else {
            return Ok(None);
        };
        let field = mag
            .magnetic_field()
            .map_err(|_| GyroError::Bus(embedded_hal::i2c::ErrorKind::Other))?;
        let heading = libm::atan2f(field.y_nt() as f32, field.x_nt() as f32);
        let now = self.timer.read();
        let rate = match self.last {
            Some((h, t)) => {
                let dt = now.wrapping_sub(t) as f32 / TIMER_HZ;
                let mut d = heading - h;
                let pi = core::f32::consts::PI;
                if d > pi {
                    d -= 2.0 * pi;
                } else if d < -pi {
                    d += 2.0 * pi;
                }
                if dt > 0.0 { d / dt } else { 0.0 }
            }
            None => 0.0,
        };
        self.last = Some((heading, now));
        Ok(Some(rate))
    }
}

/// The control period on TIMER0, one deadline shared by the robot's clock and the idle
/// ticker.
struct Metronome<'a> {
    timer: &'a Timer<pac::TIMER0, Periodic>,
    deadline: &'a Cell<u32>,
    period_us: u32,
}

impl Metronome<'_> {
    /// Waits for the next deadline; true when it had already passed (the schedule then
    /// restarts from now: the adaptation step between episodes may take longer than a
    /// period while the robot stands still).
    fn wait(&mut self) -> bool {
        let next = self.deadline.get().wrapping_add(self.period_us);
        let now = self.timer.read();
        let late = (now.wrapping_sub(next) as i32) > 0;
        let next = if late { now } else { next };
        self.deadline.set(next);
        while (self.timer.read().wrapping_sub(next) as i32) < 0 {}
        late
    }
}

impl ControlClock for Metronome<'_> {
    fn wait_for_tick(&mut self) -> Result<(), ClockError> {
        if Metronome::wait(self) {
            warn!("control period overrun");
        }
        Ok(())
    }
}

impl Ticker for Metronome<'_> {
    fn wait(&mut self) {
        let _ = Metronome::wait(self);
    }
}

/// Buttons A (P0.14) and B (P0.23, in the role of the 3pi's C), active low, and the LED.
struct Buttons<'a, A, B, L> {
    a: A,
    b: B,
    led: L,
    buttons: TwoButtons,
    status: Status,
    timer: &'a Timer<pac::TIMER0, Periodic>,
}

impl<A: InputPin, B: InputPin, L: OutputPin> Panel for Buttons<'_, A, B, L> {
    fn command(&mut self) -> Option<control::Command> {
        let a = self.a.is_low().unwrap_or(false);
        let b = self.b.is_low().unwrap_or(false);
        self.buttons.sample(a, b, self.status)
    }

    fn show(&mut self, status: Status) {
        self.status = status;
        self.light(status.led(self.timer.read() / 1000));
    }

    fn show_code(&mut self, code: u8) {
        self.light(control::blink_code(code, self.timer.read() / 1000));
    }
}

impl<A, B, L: OutputPin> Buttons<'_, A, B, L> {
    fn light(&mut self, on: bool) {
        // Column pins are active low.
        let _ = self.led.set_state((!on).into());
    }
}
