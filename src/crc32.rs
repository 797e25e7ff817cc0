//! CRC-32/ISO-HDLC (the zlib / PNG / Ethernet CRC), the one checksum of the crate: the
//! bundle's trailing checksum and [`ParamsRef::checksum`](crate::adapt::ParamsRef::checksum).
//!
//! Half a byte per step with a 16-entry table (64 bytes of flash) rather than the usual
//! 256-entry one (1 KB): a checksum runs once per bundle parse or log line, so flash
//! matters more than the ~10 instructions per byte it costs.

/// `CRC[i]`: the reflected polynomial `0xEDB8_8320` applied to the nibble `i` (four shifts).
const TABLE: [u32; 16] = [
    0x0000_0000,
    0x1DB7_1064,
    0x3B6E_20C8,
    0x26D9_30AC,
    0x76DC_4190,
    0x6B6B_51F4,
    0x4DB2_6158,
    0x5005_713C,
    0xEDB8_8320,
    0xF00F_9344,
    0xD6D6_A3E8,
    0xCB61_B38C,
    0x9B64_C2B0,
    0x86D3_D2D4,
    0xA00A_E278,
    0xBDBD_F21C,
];

/// A CRC-32 being computed over bytes fed in pieces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Digest(u32);

/// A new [`Digest`].
pub(crate) fn digest() -> Digest {
    Digest(!0)
}

impl Digest {
    /// Feeds `bytes`.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        let step = |c: u32| (c >> 4) ^ TABLE.get((c & 0xF) as usize).copied().unwrap_or(0);
        for &b in bytes {
            self.0 = step(step(self.0 ^ u32::from(b)));
        }
    }

    /// The CRC of everything fed.
    pub(crate) fn finalize(self) -> u32 {
        !self.0
    }
}

/// CRC-32 of `bytes`: `checksum(b"123456789")` is `0xCBF4_3926`.
pub(crate) fn checksum(bytes: &[u8]) -> u32 {
    let mut d = digest();
    d.update(bytes);
    d.finalize()
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn crc_is_the_zlib_crc32() {
        assert_eq!(checksum(b"123456789"), 0xCBF4_3926);
        assert_eq!(checksum(b""), 0);
        let mut d = digest();
        d.update(b"1234");
        d.update(b"56789");
        assert_eq!(d.finalize(), 0xCBF4_3926);
    }

    #[test]
    fn table_is_the_polynomial_on_each_nibble() {
        for (i, &t) in TABLE.iter().enumerate() {
            let mut c = i as u32;
            for _ in 0..4 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
            assert_eq!(t, c, "entry {i}");
        }
    }

    #[test]
    fn matches_the_crc_crate_on_every_length() {
        let crc = ::crc::Crc::<u32>::new(&::crc::CRC_32_ISO_HDLC);
        let bytes: std::vec::Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for n in 0..bytes.len() {
            assert_eq!(
                checksum(&bytes[..n]),
                crc.checksum(&bytes[..n]),
                "length {n}"
            );
        }
    }
}
