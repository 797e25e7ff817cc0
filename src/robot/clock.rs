//! The time source for the control period.
//!
//! [`ControlClock::wait_for_tick`] blocks until the next period boundary of a fixed-rate
//! clock, so that every `Env::step` covers the spec's
//! [`control_period_s`](crate::sim::diffdrive::DiffDriveSpec::control_period_s), as in
//! the simulator the policy was trained in. A board implements it over a hardware timer
//! (deadline = previous deadline + period, so compute time does not stretch the period)
//! and reports an overrun when a deadline had already passed. [`DelayClock`] is the
//! fallback over any [`DelayNs`]: it waits one whole period after the work, so the real
//! period is longer by the work's duration; use it only when that is small.

use embedded_hal::delay::DelayNs;

/// What can go wrong waiting for a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ClockError {
    /// The deadline had passed by this many microseconds: the loop overran its period.
    Overrun {
        /// How late (µs).
        late_us: u32,
    },
    /// The timer failed or is not running.
    Timer,
}

impl core::fmt::Display for ClockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Overrun { late_us } => write!(f, "control period overrun by {late_us} µs"),
            Self::Timer => f.write_str("control timer failed"),
        }
    }
}

/// A fixed-rate control clock.
pub trait ControlClock {
    /// Blocks until the next period boundary.
    fn wait_for_tick(&mut self) -> Result<(), ClockError>;
}

/// A [`ControlClock`] that delays one period per tick (see the module docs).
#[derive(Debug)]
pub struct DelayClock<D> {
    delay: D,
    period_us: u32,
}

impl<D: DelayNs> DelayClock<D> {
    /// Ticks every `period_us` microseconds plus the caller's work.
    pub const fn new(delay: D, period_us: u32) -> Self {
        Self { delay, period_us }
    }
}

impl<D: DelayNs> ControlClock for DelayClock<D> {
    fn wait_for_tick(&mut self) -> Result<(), ClockError> {
        self.delay.delay_us(self.period_us);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::delay::{CheckedDelay, Transaction};

    #[test]
    fn delay_clock_waits_one_period_per_tick() {
        let mut d = CheckedDelay::new(&[
            Transaction::delay_us(100_000),
            Transaction::delay_us(100_000),
        ]);
        let mut c = DelayClock::new(d.clone(), 100_000);
        c.wait_for_tick().unwrap();
        c.wait_for_tick().unwrap();
        d.done();
    }
}
