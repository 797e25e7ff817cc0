//! Wheel encoders: a small trait of ours, since embedded-hal 1.0 has none.
//!
//! A board crate implements [`WheelEncoder`] over whatever counts its quadrature pulses
//! (an RP2040 PIO state machine, the nRF52's QDEC, a timer in encoder mode). The count is
//! a wrapping integer [`WheelEncoder::COUNTER_BITS`] wide, increasing when the wheel turns
//! forward (the implementation flips the sign if its hardware counts the other way). The
//! robot turns two successive reads into a signed change with
//! [`crate::sim::diffdrive::count_delta`] and rejects a change larger than the spec's
//! [`max_counts_per_tick`](crate::sim::diffdrive::DiffDriveSpec::max_counts_per_tick): a
//! counter that overflowed past half its range, a missed read or a glitch all look like
//! that, and driving on a wrong pose is worse than stopping.

/// What can go wrong reading an encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EncoderError {
    /// The counter hardware reported that it overflowed or lost pulses (an accumulator
    /// overflow flag, a PIO FIFO that filled up).
    Overflow,
    /// The counter could not be read (no value ready, a bus error).
    Read,
    /// The count read has bits set above [`WheelEncoder::COUNTER_BITS`].
    OutOfRange {
        /// The raw value read.
        count: u32,
    },
    /// The count changed by more than a wheel can turn in one control period.
    Implausible {
        /// The signed change read.
        delta: i32,
        /// The largest change allowed.
        limit: u32,
    },
}

impl core::fmt::Display for EncoderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Overflow => f.write_str("encoder counter overflowed or lost pulses"),
            Self::Read => f.write_str("encoder counter could not be read"),
            Self::OutOfRange { count } => {
                write!(f, "encoder count {count:#x} wider than the counter")
            }
            Self::Implausible { delta, limit } => {
                write!(
                    f,
                    "encoder jumped {delta} counts in one period (limit {limit})"
                )
            }
        }
    }
}

/// A wheel's quadrature counter.
pub trait WheelEncoder {
    /// Width of the wrapping counter (1..=32).
    const COUNTER_BITS: u32 = 32;
    /// The current count (wrapping; forward is increasing).
    fn count(&mut self) -> Result<u32, EncoderError>;
}

/// Reads `encoder` and checks its width.
pub(crate) fn read_checked<E: WheelEncoder>(encoder: &mut E) -> Result<u32, EncoderError> {
    let c = encoder.count()?;
    let bits = E::COUNTER_BITS;
    if bits < 32 && c >> bits != 0 {
        return Err(EncoderError::OutOfRange { count: c });
    }
    Ok(c)
}

/// The signed change from `prev` to `now` if at most `limit` counts.
pub(crate) fn checked_delta<E: WheelEncoder>(
    prev: u32,
    now: u32,
    limit: u32,
) -> Result<i32, EncoderError> {
    let delta = crate::sim::diffdrive::count_delta(prev, now, E::COUNTER_BITS);
    if delta.unsigned_abs() > limit {
        return Err(EncoderError::Implausible { delta, limit });
    }
    Ok(delta)
}
