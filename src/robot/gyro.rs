//! The optional yaw-rate gyro: an LSM6DSO-family IMU over embedded-hal 1.0 I²C.
//!
//! [`YawRateSensor`] is what the robot needs: a yaw rate in rad/s, counter-clockwise
//! positive seen from above, or none. [`NoGyro`] is the robot without one (odometry then
//! takes the heading from the wheels). [`Lsm6dso`] talks to the chip with the four
//! register accesses it needs, written here rather than pulling in the `lsm6dso` crate:
//! WHO_AM_I, two control registers and one 16-bit output register are less code than the
//! crate's configuration API, and keep the bus traffic exactly what the tests check.
//!
//! | register | address | use |
//! |---|---|---|
//! | `WHO_AM_I` | `0x0F` | must read `0x6C` |
//! | `CTRL2_G` | `0x11` | gyro output rate 208 Hz (`0101` in bits 7:4) and full scale (bits 3:1) |
//! | `CTRL3_C` | `0x12` | `BDU` (bit 6: both bytes of a sample from one conversion), `IF_INC` (bit 2) |
//! | `OUTZ_L_G`, `OUTZ_H_G` | `0x26`, `0x27` | yaw rate, two's complement, little-endian |
//!
//! A reading at either end of the 16-bit range is the sensor saturated (or a bus
//! returning all ones reads −1, a valid rate, and cannot be told apart): [`GyroError::Saturated`], not a rate.

use embedded_hal::i2c::{self, I2c};

/// What can go wrong reading the gyro.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GyroError {
    /// The I²C transfer failed (a NACK, arbitration loss, a bus error).
    Bus(i2c::ErrorKind),
    /// `WHO_AM_I` did not read [`Lsm6dso::WHO_AM_I_VALUE`]: another chip, or none.
    WrongDevice {
        /// The value read.
        who_am_i: u8,
    },
    /// The raw reading is at an end of its range: the rate is beyond the full scale.
    Saturated {
        /// The raw reading.
        raw: i16,
    },
}

impl core::fmt::Display for GyroError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Bus(k) => write!(f, "gyro I2C transfer failed: {k:?}"),
            Self::WrongDevice { who_am_i } => {
                write!(f, "gyro WHO_AM_I reads {who_am_i:#04x}, want 0x6c")
            }
            Self::Saturated { raw } => write!(f, "gyro reading {raw} is saturated"),
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for GyroError {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{}", defmt::Display2Format(self));
    }
}

/// A yaw-rate source.
pub trait YawRateSensor {
    /// The yaw rate (rad/s, counter-clockwise positive), or `None` without a gyro.
    fn yaw_rate(&mut self) -> Result<Option<f32>, GyroError>;
}

/// No gyro: the heading comes from the wheels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NoGyro;

impl YawRateSensor for NoGyro {
    fn yaw_rate(&mut self) -> Result<Option<f32>, GyroError> {
        Ok(None)
    }
}

/// Gyro full-scale range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GyroRange {
    /// ±125 °/s (4.375 m°/s per LSB).
    Dps125,
    /// ±250 °/s (8.75 m°/s per LSB).
    Dps250,
    /// ±500 °/s (17.5 m°/s per LSB).
    Dps500,
    /// ±1000 °/s (35 m°/s per LSB): a small robot spinning in place stays inside it.
    Dps1000,
    /// ±2000 °/s (70 m°/s per LSB).
    Dps2000,
}

impl GyroRange {
    /// `CTRL2_G` bits 3:1 (`FS_G`, `FS_125`).
    const fn fs_bits(self) -> u8 {
        match self {
            Self::Dps125 => 0b0010,
            Self::Dps250 => 0b0000,
            Self::Dps500 => 0b0100,
            Self::Dps1000 => 0b1000,
            Self::Dps2000 => 0b1100,
        }
    }

    /// Sensitivity (millidegrees per second per LSB), from the datasheet.
    const fn mdps_per_lsb(self) -> f32 {
        match self {
            Self::Dps125 => 4.375,
            Self::Dps250 => 8.75,
            Self::Dps500 => 17.5,
            Self::Dps1000 => 35.0,
            Self::Dps2000 => 70.0,
        }
    }

    /// Radians per second per LSB.
    pub fn rad_s_per_lsb(self) -> f32 {
        self.mdps_per_lsb() * 1e-3 * (core::f32::consts::PI / 180.0)
    }
}

/// An LSM6DSO on an I²C bus.
#[derive(Debug)]
pub struct Lsm6dso<I> {
    i2c: I,
    address: u8,
    range: GyroRange,
    sign: f32,
}

impl<I: I2c> Lsm6dso<I> {
    /// Address with `SA0` high (the Pololu 3pi+ 2040's).
    pub const ADDRESS_SA0_HIGH: u8 = 0x6B;
    /// Address with `SA0` low.
    pub const ADDRESS_SA0_LOW: u8 = 0x6A;
    /// What `WHO_AM_I` reads on an LSM6DSO.
    pub const WHO_AM_I_VALUE: u8 = 0x6C;
    const WHO_AM_I: u8 = 0x0F;
    const CTRL2_G: u8 = 0x11;
    const CTRL3_C: u8 = 0x12;
    const OUTZ_L_G: u8 = 0x26;
    /// `CTRL2_G` output data rate 208 Hz: fast enough for any control period here.
    const ODR_208HZ: u8 = 0b0101_0000;
    /// `CTRL3_C`: `BDU | IF_INC`.
    const BDU_IF_INC: u8 = 0b0100_0100;

    /// The chip at `address`; `upside_down` negates the rate for a chip mounted facing
    /// the floor. Nothing is sent until [`Self::init`].
    pub const fn new(i2c: I, address: u8, range: GyroRange, upside_down: bool) -> Self {
        Self {
            i2c,
            address,
            range,
            sign: if upside_down { -1.0 } else { 1.0 },
        }
    }

    /// Checks `WHO_AM_I`, then configures block data update and the gyro's rate and range.
    pub fn init(&mut self) -> Result<(), GyroError> {
        let mut who = [0u8; 1];
        self.i2c
            .write_read(self.address, &[Self::WHO_AM_I], &mut who)
            .map_err(bus)?;
        let [who_am_i] = who;
        if who_am_i != Self::WHO_AM_I_VALUE {
            return Err(GyroError::WrongDevice { who_am_i });
        }
        self.i2c
            .write(self.address, &[Self::CTRL3_C, Self::BDU_IF_INC])
            .map_err(bus)?;
        self.i2c
            .write(
                self.address,
                &[Self::CTRL2_G, Self::ODR_208HZ | self.range.fs_bits()],
            )
            .map_err(bus)
    }

    /// The bus back.
    pub fn release(self) -> I {
        self.i2c
    }
}

fn bus<E: i2c::Error>(e: E) -> GyroError {
    GyroError::Bus(e.kind())
}

impl<I: I2c> YawRateSensor for Lsm6dso<I> {
    fn yaw_rate(&mut self) -> Result<Option<f32>, GyroError> {
        let mut b = [0u8; 2];
        self.i2c
            .write_read(self.address, &[Self::OUTZ_L_G], &mut b)
            .map_err(bus)?;
        let raw = i16::from_le_bytes(b);
        // −32768 and 32767 are the clipped ends; an all-ones bus reads −1, which is a
        // valid (tiny) rate and cannot be told apart.
        if raw == i16::MIN || raw == i16::MAX {
            return Err(GyroError::Saturated { raw });
        }
        Ok(Some(
            self.sign * f32::from(raw) * self.range.rad_s_per_lsb(),
        ))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};
    use std::vec;

    const A: u8 = Lsm6dso::<Mock>::ADDRESS_SA0_HIGH;

    fn init_tx(fs: u8) -> [T; 3] {
        [
            T::write_read(A, vec![0x0F], vec![0x6C]),
            T::write(A, vec![0x12, 0x44]),
            T::write(A, vec![0x11, 0x50 | fs]),
        ]
    }

    #[test]
    fn init_checks_who_am_i_then_configures() {
        for (range, fs) in [
            (GyroRange::Dps125, 0x02),
            (GyroRange::Dps250, 0x00),
            (GyroRange::Dps500, 0x04),
            (GyroRange::Dps1000, 0x08),
            (GyroRange::Dps2000, 0x0C),
        ] {
            let mut bus = Mock::new(&init_tx(fs));
            let mut g = Lsm6dso::new(bus.clone(), A, range, false);
            g.init().unwrap();
            bus.done();
        }
    }

    /// OUTZ_G bytes (little-endian) → rad/s at the range's sensitivity.
    #[test]
    fn decodes_outz_g_into_a_yaw_rate() {
        let mut tx = vec![];
        tx.extend(init_tx(0x08));
        // 1000 LSB = 35 °/s; −2 LSB = −0.07 °/s.
        tx.push(T::write_read(A, vec![0x26], vec![0xE8, 0x03]));
        tx.push(T::write_read(A, vec![0x26], vec![0xFE, 0xFF]));
        let mut bus = Mock::new(&tx);
        let mut g = Lsm6dso::new(bus.clone(), A, GyroRange::Dps1000, false);
        g.init().unwrap();
        let w = g.yaw_rate().unwrap().unwrap();
        assert!((w - 35.0f32.to_radians()).abs() < 1e-6, "{w}");
        let w = g.yaw_rate().unwrap().unwrap();
        assert!((w + 0.07f32.to_radians()).abs() < 1e-7, "{w}");
        bus.done();

        let mut bus = Mock::new(&[T::write_read(A, vec![0x26], vec![0xE8, 0x03])]);
        let mut g = Lsm6dso::new(bus.clone(), A, GyroRange::Dps2000, true);
        let w = g.yaw_rate().unwrap().unwrap();
        assert!((w + 70.0f32.to_radians()).abs() < 1e-5, "upside down: {w}");
        bus.done();
    }

    #[test]
    fn nack_wrong_chip_and_saturation_are_typed_errors() {
        let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
        let mut bus = Mock::new(&[T::write_read(A, vec![0x0F], vec![0]).with_error(nack)]);
        let mut g = Lsm6dso::new(bus.clone(), A, GyroRange::Dps1000, false);
        assert_eq!(g.init(), Err(GyroError::Bus(nack)));
        bus.done();

        let mut bus = Mock::new(&[T::write_read(A, vec![0x0F], vec![0x6A])]);
        let mut g = Lsm6dso::new(bus.clone(), A, GyroRange::Dps1000, false);
        assert_eq!(g.init(), Err(GyroError::WrongDevice { who_am_i: 0x6A }));
        bus.done();

        let mut bus = Mock::new(&[
            T::write_read(A, vec![0x26], vec![0xFF, 0x7F]),
            T::write_read(A, vec![0x26], vec![0x00, 0x80]),
            T::write_read(A, vec![0x26], vec![0, 0]).with_error(nack),
        ]);
        let mut g = Lsm6dso::new(bus.clone(), A, GyroRange::Dps1000, false);
        assert_eq!(g.yaw_rate(), Err(GyroError::Saturated { raw: i16::MAX }));
        assert_eq!(g.yaw_rate(), Err(GyroError::Saturated { raw: i16::MIN }));
        assert_eq!(g.yaw_rate(), Err(GyroError::Bus(nack)));
        bus.done();
        assert_eq!(NoGyro.yaw_rate(), Ok(None));
    }
}
