//! CRC-32/ISO-HDLC (the zlib / PNG / Ethernet CRC), the one checksum of the crate: the
//! bundle's trailing checksum and [`ParamsRef::checksum`](crate::adapt::ParamsRef::checksum).
//!
//! The `crc` crate in its table-free mode (`NoTable`): a checksum runs once per bundle parse
//! or report, so the flash of a 1 KB lookup table matters more than the few instructions
//! per bit it saves.

use crc::{CRC_32_ISO_HDLC, Crc, NoTable};

static CRC32: Crc<u32, NoTable> = Crc::<u32, NoTable>::new(&CRC_32_ISO_HDLC);

/// A CRC-32 being computed over bytes fed in pieces.
pub(crate) type Digest = crc::Digest<'static, u32, NoTable>;

/// A new [`Digest`].
pub(crate) fn digest() -> Digest {
    CRC32.digest()
}

/// The CRC-32 of `bytes`.
pub(crate) fn checksum(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_the_zlib_crc32() {
        // The catalogue's check value: CRC-32 of the ASCII digits 1..9.
        assert_eq!(checksum(b"123456789"), 0xCBF4_3926);
        assert_eq!(checksum(b""), 0);
    }

    #[test]
    fn pieces_equal_the_whole() {
        let data: [u8; 300] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        for cut in [0, 1, 7, 150, 299, 300] {
            let mut d = digest();
            d.update(&data[..cut]);
            d.update(&data[cut..]);
            assert_eq!(d.finalize(), checksum(&data), "cut at {cut}");
        }
    }
}
