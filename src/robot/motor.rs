//! Motor drivers over embedded-hal 1.0: a signed command in `[−1, 1]` becomes PWM duty.
//!
//! Two bridge wirings, behind one trait ([`Motor`]):
//! - [`PwmDirMotor`]: one [`SetDutyCycle`] channel for the speed and one direction
//!   [`OutputPin`] (the Pololu 3pi+ 2040, DRV8838-style drivers). Direction low = forward
//!   unless the motor is built `reversed` (a motor mounted mirror-image).
//! - [`TwoPwmMotor`]: two PWM inputs per motor, as on a DRV8833 (`IN1`/`IN2`): forward
//!   drives `IN1` and holds `IN2` at 0, reverse the other way round, stop both at 0
//!   (coast).
//!
//! The duty written is `round(|command| · max_duty)`, with `max_duty` read once at
//! construction (a driver's PWM period does not change under it). A NaN command is 0,
//! commands beyond ±1 saturate. [`Motor::stop`] writes zero duty and touches nothing
//! else: it is the safe stop and must not depend on anything that may have failed.

use embedded_hal::digital::{self, OutputPin, PinState};
use embedded_hal::pwm::{self, SetDutyCycle};

/// A motor driver failure: the embedded-hal error kind of the part that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MotorError {
    /// Writing a PWM duty cycle failed.
    Pwm(pwm::ErrorKind),
    /// Setting the direction pin failed.
    Direction(digital::ErrorKind),
}

impl core::fmt::Display for MotorError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Pwm(k) => write!(f, "motor PWM write failed: {k:?}"),
            Self::Direction(k) => write!(f, "motor direction pin write failed: {k:?}"),
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for MotorError {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{}", defmt::Display2Format(self));
    }
}

/// One motor taking a signed command.
pub trait Motor {
    /// Drives at `command` ∈ `[−1, 1]` (positive = forward; NaN is 0, beyond ±1 saturates).
    fn set(&mut self, command: f32) -> Result<(), MotorError>;
    /// Writes zero duty, nothing else (the safe stop).
    fn stop(&mut self) -> Result<(), MotorError>;
}

/// `round(|command| · max)`, 0 for NaN, `max` beyond ±1.
fn duty(command: f32, max: u16) -> u16 {
    let m = if command.is_nan() {
        0.0
    } else {
        command.abs().min(1.0)
    };
    // In [0, max] by construction; `as` saturates anyway.
    libm::roundf(m * f32::from(max)) as u16
}

fn pwm_err<E: pwm::Error>(e: E) -> MotorError {
    MotorError::Pwm(e.kind())
}

/// An H-bridge driven by one PWM channel and one direction pin.
#[derive(Debug)]
pub struct PwmDirMotor<P, D> {
    pwm: P,
    direction: D,
    max_duty: u16,
    reversed: bool,
}

impl<P: SetDutyCycle, D: OutputPin> PwmDirMotor<P, D> {
    /// The motor on `pwm` and `direction`; `reversed` swaps which direction level is
    /// forward (low is forward when false).
    pub fn new(pwm: P, direction: D, reversed: bool) -> Self {
        let max_duty = pwm.max_duty_cycle();
        Self {
            pwm,
            direction,
            max_duty,
            reversed,
        }
    }

    /// The pins back.
    pub fn release(self) -> (P, D) {
        (self.pwm, self.direction)
    }
}

impl<P: SetDutyCycle, D: OutputPin> Motor for PwmDirMotor<P, D> {
    fn set(&mut self, command: f32) -> Result<(), MotorError> {
        // NaN counts as forward at zero duty; `!(c < 0)` puts it there.
        let backward = command < 0.0;
        let level = PinState::from(backward != self.reversed);
        self.direction
            .set_state(level)
            .map_err(|e| MotorError::Direction(digital::Error::kind(&e)))?;
        self.pwm
            .set_duty_cycle(duty(command, self.max_duty))
            .map_err(pwm_err)
    }

    fn stop(&mut self) -> Result<(), MotorError> {
        self.pwm.set_duty_cycle(0).map_err(pwm_err)
    }
}

/// A bridge with two PWM inputs (DRV8833 `IN1`, `IN2`).
#[derive(Debug)]
pub struct TwoPwmMotor<A, B> {
    in1: A,
    in2: B,
    max_duty: [u16; 2],
}

impl<A: SetDutyCycle, B: SetDutyCycle> TwoPwmMotor<A, B> {
    /// The motor on `in1` (driven going forward) and `in2` (driven in reverse); swap them
    /// for a mirror-mounted motor.
    pub fn new(in1: A, in2: B) -> Self {
        let max_duty = [in1.max_duty_cycle(), in2.max_duty_cycle()];
        Self { in1, in2, max_duty }
    }

    /// The channels back.
    pub fn release(self) -> (A, B) {
        (self.in1, self.in2)
    }
}

impl<A: SetDutyCycle, B: SetDutyCycle> Motor for TwoPwmMotor<A, B> {
    fn set(&mut self, command: f32) -> Result<(), MotorError> {
        let [m1, m2] = self.max_duty;
        // The idle input goes to 0 first, so the bridge never sees both inputs driven.
        if command < 0.0 {
            self.in1.set_duty_cycle(0).map_err(pwm_err)?;
            self.in2.set_duty_cycle(duty(command, m2)).map_err(pwm_err)
        } else {
            self.in2.set_duty_cycle(0).map_err(pwm_err)?;
            self.in1.set_duty_cycle(duty(command, m1)).map_err(pwm_err)
        }
    }

    fn stop(&mut self) -> Result<(), MotorError> {
        // Try both even if the first fails: one stopped wheel is better than none.
        let a = self.in1.set_duty_cycle(0).map_err(pwm_err);
        let b = self.in2.set_duty_cycle(0).map_err(pwm_err);
        a.and(b)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use embedded_hal_mock::eh1::MockError;
    use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as Pin};
    use embedded_hal_mock::eh1::pwm::{Mock as PwmMock, Transaction as Pwm};
    use std::io::ErrorKind;
    use std::vec::Vec;

    fn broken() -> MockError {
        MockError::Io(ErrorKind::NotConnected)
    }

    /// Each command's direction level and duty, forward low, on a 6000-step PWM (the
    /// Pololu 3pi+ 2040's TOP + 1).
    #[test]
    fn pwm_dir_writes_direction_then_duty() {
        let cases: [(f32, State, u16); 7] = [
            (0.5, State::Low, 3000),
            (-0.25, State::High, 1500),
            (1.0, State::Low, 6000),
            (-3.0, State::High, 6000),
            (0.0, State::Low, 0),
            (f32::NAN, State::Low, 0),
            (1e-5, State::Low, 0),
        ];
        let mut pwm_tx = std::vec![Pwm::max_duty_cycle(6000)];
        let mut pin_tx = Vec::new();
        for (_, level, duty) in cases {
            pin_tx.push(Pin::set(level));
            pwm_tx.push(Pwm::set_duty_cycle(duty));
        }
        pwm_tx.push(Pwm::set_duty_cycle(0));
        let (mut pwm, mut pin) = (PwmMock::new(&pwm_tx), PinMock::new(&pin_tx));
        let mut m = PwmDirMotor::new(pwm.clone(), pin.clone(), false);
        for (c, _, _) in cases {
            m.set(c).unwrap();
        }
        // The stop writes zero duty and leaves the direction pin alone.
        m.stop().unwrap();
        pwm.done();
        pin.done();
    }

    #[test]
    fn reversed_pwm_dir_swaps_the_forward_level() {
        let mut pwm = PwmMock::new(&[
            Pwm::max_duty_cycle(100),
            Pwm::set_duty_cycle(40),
            Pwm::set_duty_cycle(40),
        ]);
        let mut pin = PinMock::new(&[Pin::set(State::High), Pin::set(State::Low)]);
        let mut m = PwmDirMotor::new(pwm.clone(), pin.clone(), true);
        m.set(0.4).unwrap();
        m.set(-0.4).unwrap();
        pwm.done();
        pin.done();
    }

    #[test]
    fn pwm_dir_errors_name_the_part() {
        let mut pwm = PwmMock::new(&[
            Pwm::max_duty_cycle(100),
            Pwm::set_duty_cycle(0).with_error(broken()),
        ]);
        let mut pin = PinMock::new(&[Pin::set(State::Low).with_error(broken())]);
        let mut m = PwmDirMotor::new(pwm.clone(), pin.clone(), false);
        assert_eq!(
            m.set(0.5),
            Err(MotorError::Direction(digital::ErrorKind::Other))
        );
        assert_eq!(m.stop(), Err(MotorError::Pwm(pwm::ErrorKind::Other)));
        pwm.done();
        pin.done();
    }

    /// DRV8833: the idle input is zeroed before the driven one, stop zeroes both.
    #[test]
    fn two_pwm_drives_one_input_and_zeroes_the_other() {
        let mut in1 = PwmMock::new(&[
            Pwm::max_duty_cycle(1000),
            Pwm::set_duty_cycle(750),
            Pwm::set_duty_cycle(0),
            Pwm::set_duty_cycle(0),
        ]);
        let mut in2 = PwmMock::new(&[
            Pwm::max_duty_cycle(500),
            Pwm::set_duty_cycle(0),
            Pwm::set_duty_cycle(250),
            Pwm::set_duty_cycle(0),
        ]);
        let mut m = TwoPwmMotor::new(in1.clone(), in2.clone());
        m.set(0.75).unwrap();
        m.set(-0.5).unwrap();
        m.stop().unwrap();
        in1.done();
        in2.done();
    }

    #[test]
    fn two_pwm_stop_still_zeroes_in2_when_in1_fails() {
        let mut in1 = PwmMock::new(&[
            Pwm::max_duty_cycle(100),
            Pwm::set_duty_cycle(0).with_error(broken()),
        ]);
        let mut in2 = PwmMock::new(&[Pwm::max_duty_cycle(100), Pwm::set_duty_cycle(0)]);
        let mut m = TwoPwmMotor::new(in1.clone(), in2.clone());
        assert_eq!(m.stop(), Err(MotorError::Pwm(pwm::ErrorKind::Other)));
        in1.done();
        in2.done();
    }
}
