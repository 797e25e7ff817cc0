//! CRC-32/ISO-HDLC (the zlib / PNG / Ethernet CRC), the one checksum of the crate: the
//! bundle's trailing checksum and [`ParamsRef::checksum`](crate::adapt::ParamsRef::checksum)
//! share its 1 KB lookup table in flash.

/// The CRC-32 used everywhere in the crate: `CRC32.checksum(b"123456789")` is
/// `0xCBF4_3926`.
// A `static`, not a `const`: a const is copied at every use, which puts its 1 KB table on
// the stack (measured: +2 KB peak stack for the firmware), and each use site got its own
// table in flash.
pub(crate) static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_the_zlib_crc32() {
        assert_eq!(CRC32.checksum(b"123456789"), 0xCBF4_3926);
        let mut d = CRC32.digest();
        d.update(b"1234");
        d.update(b"56789");
        assert_eq!(d.finalize(), 0xCBF4_3926);
    }
}
