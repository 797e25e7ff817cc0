//! Adapted parameters that survive power cycles: two flash slots, the newest valid one wins.
//!
//! A record is written into the slot that does *not* hold the newest valid record for the
//! running bundle, and its CRC-32 is written last, in a write of its own. A power cut at any
//! moment (during the erase, the body or the CRC) leaves that slot failing its check while
//! the other slot still holds the previous record untouched, so [`Slots::newest`] finds
//! either the old record or the new one, never a corrupt one.
//!
//! # Record layout (little-endian, at the start of a slot)
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 4 | magic `SGPS` |
//! | 4 | 4 | sequence number (1, 2, …; compared with wrap-around) |
//! | 8 | 4 | CRC-32 of the bundle the parameters were adapted from ([`Bundle::checksum`](crate::bundle::Bundle::checksum)) |
//! | 12 | 4 | parameter count `P`; 0 means "run the meta-policy" (a revert) |
//! | 16 | 4·P | the parameters, `f32` little-endian, in the layout of [`crate::policy`] |
//! | 16 + 4·P, rounded up to the flash's write size | 4 | CRC-32 of bytes 0..16 + 4·P |
//!
//! Padding up to the write size is left erased (0xFF). A slot is [`Slots::slot_len`] bytes,
//! a multiple of the flash's erase size; the two slots are consecutive.

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};

/// First four bytes of a record.
pub const RECORD_MAGIC: [u8; 4] = *b"SGPS";
/// Bytes before the parameters.
pub const RECORD_HEADER_LEN: usize = 16;
/// Bytes moved per flash read or write: every write and read size in use (1, 4, 256) divides it.
pub const CHUNK: usize = 256;

/// Why the slots could not be used. Nothing stored is lost when one is returned, except
/// that a failed [`Slots::save`] may have erased the slot it was writing (never the other).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StoreError {
    /// The flash driver failed (its generic error kind).
    Flash(FlashFault),
    /// The slots do not fit the flash: misaligned to its erase size, past its end, or its
    /// read/write size does not divide [`CHUNK`].
    Layout,
    /// The record does not fit in a slot: `needed` bytes, slot of `slot_len`.
    TooLarge {
        /// Bytes of the record.
        needed: usize,
        /// Bytes of a slot.
        slot_len: usize,
    },
    /// The output buffer's length differs from the record's parameter count.
    Shape,
    /// A parameter is NaN or ±∞: nothing was written.
    NonFinite,
    /// The record changed between finding and loading it (its CRC no longer matches).
    Changed,
}

/// The generic kind of a flash driver error, kept `Copy` and driver-independent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FlashFault {
    /// Arguments not aligned to the flash's read or write size.
    NotAligned,
    /// Past the end of the flash.
    OutOfBounds,
    /// Anything else the driver reported.
    Other,
}

impl<E: NorFlashError> From<E> for FlashFault {
    fn from(e: E) -> Self {
        match e.kind() {
            NorFlashErrorKind::NotAligned => Self::NotAligned,
            NorFlashErrorKind::OutOfBounds => Self::OutOfBounds,
            _ => Self::Other,
        }
    }
}

fn flash_err<E: NorFlashError>(e: E) -> StoreError {
    StoreError::Flash(e.into())
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Flash(k) => write!(f, "flash driver error: {k:?}"),
            Self::Layout => f.write_str("parameter slots do not fit the flash's geometry"),
            Self::TooLarge { needed, slot_len } => {
                write!(
                    f,
                    "record of {needed} bytes does not fit a slot of {slot_len}"
                )
            }
            Self::Shape => f.write_str("buffer length differs from the stored parameter count"),
            Self::NonFinite => f.write_str("non-finite parameter; nothing written"),
            Self::Changed => f.write_str("stored record changed while loading it"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for StoreError {}

/// What a valid record says to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Policy {
    /// The bundle's meta-policy (the user reverted, or the guard kept it).
    Meta,
    /// Adapted parameters: `count` scalars, loaded with [`Slots::load`].
    Adapted {
        /// Parameter count.
        count: u32,
    },
}

/// A valid record found by [`Slots::newest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Record {
    /// Slot index (0 or 1).
    pub slot: u8,
    /// Its sequence number.
    pub seq: u32,
    /// CRC-32 of the bundle it belongs to.
    pub bundle: u32,
    /// What it says to run.
    pub policy: Policy,
    /// Its parameters' CRC-32 (of their little-endian bytes, as
    /// [`ParamsRef::checksum`](crate::adapt::ParamsRef::checksum) computes it); 0 for `Meta`.
    pub params_crc: u32,
}

/// True when sequence number `a` is newer than `b` (wrap-around: within 2³¹ of each other).
const fn newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

const fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// Two consecutive slots of `slot_len` bytes at `base` of a NOR flash `F`.
pub struct Slots<F> {
    flash: F,
    base: u32,
    slot_len: u32,
}

impl<F: NorFlash> Slots<F> {
    /// Bytes a record of `params` scalars takes on a flash with write size `F::WRITE_SIZE`.
    pub const fn record_len(params: usize) -> usize {
        round_up(RECORD_HEADER_LEN + 4 * params, F::WRITE_SIZE) + round_up(4, F::WRITE_SIZE)
    }

    /// Smallest slot (a multiple of the erase size) holding `params` scalars.
    pub const fn slot_len_for(params: usize) -> usize {
        round_up(Self::record_len(params), F::ERASE_SIZE)
    }

    /// The slots at `base..base + 2·slot_len` of `flash`. Both must be multiples of the
    /// erase size and inside the flash.
    pub fn new(flash: F, base: u32, slot_len: u32) -> Result<Self, StoreError> {
        let erase = F::ERASE_SIZE;
        let fits = usize::try_from(base)
            .ok()
            .zip(usize::try_from(slot_len).ok())
            .and_then(|(b, l)| b.checked_add(l.checked_mul(2)?))
            .is_some_and(|end| end <= flash.capacity());
        let aligned = erase > 0
            && (base as usize).is_multiple_of(erase)
            && slot_len > 0
            && (slot_len as usize).is_multiple_of(erase);
        let chunks = F::WRITE_SIZE > 0
            && F::READ_SIZE > 0
            && CHUNK.is_multiple_of(F::WRITE_SIZE)
            && CHUNK.is_multiple_of(F::READ_SIZE)
            && F::WRITE_SIZE >= 1;
        if fits && aligned && chunks {
            Ok(Self {
                flash,
                base,
                slot_len,
            })
        } else {
            Err(StoreError::Layout)
        }
    }

    /// Bytes per slot.
    pub fn slot_len(&self) -> usize {
        self.slot_len as usize
    }

    /// The flash back (e.g. to inspect it in a test).
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// The flash, borrowed.
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    fn slot_base(&self, slot: u8) -> u32 {
        self.base + u32::from(slot) * self.slot_len
    }

    /// Reads `buf.len()` bytes (a multiple of the read size, ≤ CHUNK) at `offset` of `slot`.
    fn read(&mut self, slot: u8, offset: usize, buf: &mut [u8]) -> Result<(), StoreError> {
        let at = u32::try_from(offset).map_err(|_| StoreError::Layout)?;
        self.flash
            .read(self.slot_base(slot) + at, buf)
            .map_err(flash_err)
    }

    /// Checks the record in `slot`; on success returns it. Feeds each parameter to `sink`
    /// (index, value) as it is read, so loading needs no second pass; `sink` is told the
    /// values before the CRC is known, so the caller must discard them on `Ok(None)`.
    fn scan(
        &mut self,
        slot: u8,
        mut sink: impl FnMut(usize, f32),
    ) -> Result<Option<Record>, StoreError> {
        let mut buf = [0u8; CHUNK];
        let read_len = round_up(RECORD_HEADER_LEN, F::READ_SIZE);
        let head = buf.get_mut(..read_len).ok_or(StoreError::Layout)?;
        self.read(slot, 0, head)?;
        let word = |b: &[u8], i: usize| -> u32 {
            let mut w = [0u8; 4];
            if let Some(s) = b.get(i..i + 4) {
                w.copy_from_slice(s);
            }
            u32::from_le_bytes(w)
        };
        if head.get(..4) != Some(&RECORD_MAGIC[..]) {
            return Ok(None);
        }
        let seq = word(head, 4);
        let bundle = word(head, 8);
        let count = word(head, 12);
        let count_usize = count as usize;
        let body_len = match count_usize
            .checked_mul(4)
            .and_then(|n| n.checked_add(RECORD_HEADER_LEN))
        {
            Some(n) if n <= self.slot_len() => n,
            _ => return Ok(None),
        };
        let crc_at = round_up(body_len, F::WRITE_SIZE);
        if crc_at + 4 > self.slot_len() {
            return Ok(None);
        }
        let mut crc = crate::crc32::digest();
        let mut params = crate::crc32::digest();
        // Whole CHUNKs from 0, covering the body; CHUNK is a multiple of READ_SIZE.
        let mut offset = 0;
        let mut carry = [0u8; 4];
        let mut carried = 0usize;
        let mut index = 0usize;
        while offset < body_len {
            let n = CHUNK.min(round_up(body_len - offset, F::READ_SIZE));
            let n = n.min(self.slot_len() - offset);
            let chunk = buf.get_mut(..n).ok_or(StoreError::Layout)?;
            self.read(slot, offset, chunk)?;
            let used = n.min(body_len - offset);
            let body = chunk.get(..used).ok_or(StoreError::Layout)?;
            crc.update(body);
            // Parameter bytes are those at ≥ RECORD_HEADER_LEN, in 4-byte groups.
            let skip = RECORD_HEADER_LEN.saturating_sub(offset).min(used);
            let p = body.get(skip..).unwrap_or(&[]);
            params.update(p);
            for &b in p {
                if let Some(c) = carry.get_mut(carried) {
                    *c = b;
                }
                carried += 1;
                if carried == 4 {
                    sink(index, f32::from_le_bytes(carry));
                    index += 1;
                    carried = 0;
                }
            }
            offset += n;
        }
        let read_len = round_up(4, F::READ_SIZE).min(self.slot_len() - crc_at);
        let tail = buf.get_mut(..read_len).ok_or(StoreError::Layout)?;
        self.read(slot, crc_at, tail)?;
        if word(tail, 0) != crc.finalize() {
            return Ok(None);
        }
        let policy = if count == 0 {
            Policy::Meta
        } else {
            Policy::Adapted { count }
        };
        Ok(Some(Record {
            slot,
            seq,
            bundle,
            policy,
            params_crc: if count == 0 { 0 } else { params.finalize() },
        }))
    }

    /// Both slots' valid records (`None` where a slot fails its checks).
    pub fn records(&mut self) -> Result<[Option<Record>; 2], StoreError> {
        Ok([self.scan(0, |_, _| {})?, self.scan(1, |_, _| {})?])
    }

    /// The newest valid record written for the bundle with CRC `bundle` (records of other
    /// bundles are ignored: their parameters belong to other weights). `None`: nothing
    /// stored for it, run the meta-policy.
    pub fn newest(&mut self, bundle: u32) -> Result<Option<Record>, StoreError> {
        let [a, b] = self.records()?;
        let mine = |r: Option<Record>| r.filter(|r| r.bundle == bundle);
        Ok(match (mine(a), mine(b)) {
            (Some(a), Some(b)) => Some(if newer(b.seq, a.seq) { b } else { a }),
            (a, b) => a.or(b),
        })
    }

    /// Reads `record`'s parameters into `out` (exactly its count), checking its CRC again
    /// as it reads; on any error `out` holds garbage and must not be used.
    pub fn load(&mut self, record: &Record, out: &mut [f32]) -> Result<(), StoreError> {
        let count = match record.policy {
            Policy::Adapted { count } => count as usize,
            Policy::Meta => 0,
        };
        if out.len() != count {
            return Err(StoreError::Shape);
        }
        let again = self.scan(record.slot, |i, v| {
            if let Some(o) = out.get_mut(i) {
                *o = v;
            }
        })?;
        if again == Some(*record) {
            Ok(())
        } else {
            Err(StoreError::Changed)
        }
    }

    /// Writes adapted `params` for the bundle with CRC `bundle` as the newest record, and
    /// returns it. The previous newest record of this bundle stays intact until this one
    /// is complete.
    pub fn save(&mut self, bundle: u32, params: &[f32]) -> Result<Record, StoreError> {
        if params.iter().any(|p| !p.is_finite()) {
            return Err(StoreError::NonFinite);
        }
        let count = u32::try_from(params.len()).map_err(|_| StoreError::TooLarge {
            needed: usize::MAX,
            slot_len: self.slot_len(),
        })?;
        self.write_record(bundle, count, params.iter().copied())
    }

    /// Writes a revert: the bundle's meta-policy is what boots next.
    pub fn save_meta(&mut self, bundle: u32) -> Result<Record, StoreError> {
        self.write_record(bundle, 0, core::iter::empty())
    }

    fn write_record(
        &mut self,
        bundle: u32,
        count: u32,
        params: impl Iterator<Item = f32>,
    ) -> Result<Record, StoreError> {
        let needed = Self::record_len(count as usize);
        if needed > self.slot_len() {
            return Err(StoreError::TooLarge {
                needed,
                slot_len: self.slot_len(),
            });
        }
        let [a, b] = self.records()?;
        let newest_of = |x: Option<Record>, y: Option<Record>| match (x, y) {
            (Some(x), Some(y)) => Some(if newer(y.seq, x.seq) { y } else { x }),
            (x, y) => x.or(y),
        };
        let mine = |r: Option<Record>| r.filter(|r| r.bundle == bundle);
        // Keep the newest record of this bundle; failing that, the newest of any.
        let keep = newest_of(mine(a), mine(b)).or(newest_of(a, b));
        let target = match keep {
            Some(r) if r.slot == 0 => 1,
            _ => 0,
        };
        let seq = newest_of(a, b).map_or(1, |r| r.seq.wrapping_add(1).max(1));

        let start = self.slot_base(target);
        self.flash
            .erase(start, start + self.slot_len)
            .map_err(flash_err)?;

        let mut crc = crate::crc32::digest();
        let mut pcrc = crate::crc32::digest();
        let mut buf = [0xFFu8; CHUNK];
        let mut fill = 0usize;
        let mut offset = 0u32;
        let header = [
            RECORD_MAGIC,
            seq.to_le_bytes(),
            bundle.to_le_bytes(),
            count.to_le_bytes(),
        ];
        let push = |bytes: [u8; 4],
                    flash: &mut F,
                    buf: &mut [u8; CHUNK],
                    fill: &mut usize,
                    offset: &mut u32|
         -> Result<(), StoreError> {
            for byte in bytes {
                if let Some(b) = buf.get_mut(*fill) {
                    *b = byte;
                }
                *fill += 1;
                if *fill == CHUNK {
                    flash.write(start + *offset, buf).map_err(flash_err)?;
                    *offset += CHUNK as u32;
                    *fill = 0;
                    *buf = [0xFF; CHUNK];
                }
            }
            Ok(())
        };
        for w in header {
            crc.update(&w);
            push(w, &mut self.flash, &mut buf, &mut fill, &mut offset)?;
        }
        for p in params {
            let w = p.to_le_bytes();
            crc.update(&w);
            pcrc.update(&w);
            push(w, &mut self.flash, &mut buf, &mut fill, &mut offset)?;
        }
        if fill > 0 {
            let n = round_up(fill, F::WRITE_SIZE);
            let part = buf.get(..n).ok_or(StoreError::Layout)?;
            self.flash.write(start + offset, part).map_err(flash_err)?;
            offset += n as u32;
        }
        // The CRC last, in its own write: until it lands the slot fails its check.
        let mut tail = [0xFFu8; CHUNK];
        let crc_value = crc.finalize();
        if let Some(t) = tail.get_mut(..4) {
            t.copy_from_slice(&crc_value.to_le_bytes());
        }
        let n = round_up(4, F::WRITE_SIZE);
        let part = tail.get(..n).ok_or(StoreError::Layout)?;
        self.flash.write(start + offset, part).map_err(flash_err)?;
        Ok(Record {
            slot: target,
            seq,
            bundle,
            policy: if count == 0 {
                Policy::Meta
            } else {
                Policy::Adapted { count }
            },
            params_crc: if count == 0 { 0 } else { pcrc.finalize() },
        })
    }
}

/// A NOR flash in RAM that behaves like the real part: erased bytes read 0xFF, a write
/// can only clear bits (writing a 1 over a 0 is refused with
/// [`SimFlashError::NotErased`]), writes and erases obey the write and erase sizes, and a
/// power cut can be scheduled after a number of programmed bytes or erased pages.
///
/// `CAP` bytes in all, `WRITE`-byte write units, `PAGE`-byte pages (an erase clears one
/// page after another), `ERASE`-byte erase sectors. Host tests cut every write of a save
/// at every byte and every erase at every page; the QEMU firmware keeps its slots in one.
#[derive(Clone)]
pub struct SimFlash<const CAP: usize, const WRITE: usize, const PAGE: usize, const ERASE: usize> {
    bytes: [u8; CAP],
    /// Byte programs and page erases left before the power cut (`None`: no cut).
    budget: Option<usize>,
    /// What the byte being programmed when the power failed becomes: `old & (new | mask)`.
    torn_mask: u8,
}

/// Errors of [`SimFlash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimFlashError {
    /// Offset or length not aligned to the write or erase size.
    NotAligned,
    /// Past the end.
    OutOfBounds,
    /// A write would set a bit that is 0 (the area was not erased).
    NotErased,
    /// The power failed during this operation.
    PowerCut,
}

impl NorFlashError for SimFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::NotAligned => NorFlashErrorKind::NotAligned,
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::NotErased | Self::PowerCut => NorFlashErrorKind::Other,
        }
    }
}

impl<const CAP: usize, const WRITE: usize, const PAGE: usize, const ERASE: usize> Default
    for SimFlash<CAP, WRITE, PAGE, ERASE>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<const CAP: usize, const WRITE: usize, const PAGE: usize, const ERASE: usize>
    SimFlash<CAP, WRITE, PAGE, ERASE>
{
    /// An erased flash with no power cut scheduled.
    pub const fn new() -> Self {
        Self {
            bytes: [0xFF; CAP],
            budget: None,
            torn_mask: 0xFF,
        }
    }

    /// The power fails after `ops` more byte programs or page erases; the byte being
    /// programmed at that moment gets only the bits cleared that `torn_mask` has 0 in
    /// common with the data (0xFF: it keeps its old value). `None` cancels the cut.
    pub fn cut_after(&mut self, ops: Option<usize>, torn_mask: u8) {
        self.budget = ops;
        self.torn_mask = torn_mask;
    }

    /// Byte programs and page erases left before the cut.
    pub fn budget(&self) -> Option<usize> {
        self.budget
    }

    /// The raw contents.
    pub fn bytes(&self) -> &[u8; CAP] {
        &self.bytes
    }

    /// Takes one operation from the budget; false when the power is gone.
    fn spend(&mut self) -> bool {
        match &mut self.budget {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }

    fn range(&self, offset: u32, len: usize) -> Result<core::ops::Range<usize>, SimFlashError> {
        let start = offset as usize;
        let end = start.checked_add(len).ok_or(SimFlashError::OutOfBounds)?;
        if end > CAP {
            return Err(SimFlashError::OutOfBounds);
        }
        Ok(start..end)
    }
}

impl<const CAP: usize, const WRITE: usize, const PAGE: usize, const ERASE: usize>
    embedded_storage::nor_flash::ErrorType for SimFlash<CAP, WRITE, PAGE, ERASE>
{
    type Error = SimFlashError;
}

impl<const CAP: usize, const WRITE: usize, const PAGE: usize, const ERASE: usize> ReadNorFlash
    for SimFlash<CAP, WRITE, PAGE, ERASE>
{
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimFlashError> {
        let r = self.range(offset, bytes.len())?;
        bytes.copy_from_slice(self.bytes.get(r).ok_or(SimFlashError::OutOfBounds)?);
        Ok(())
    }

    fn capacity(&self) -> usize {
        CAP
    }
}

impl<const CAP: usize, const WRITE: usize, const PAGE: usize, const ERASE: usize> NorFlash
    for SimFlash<CAP, WRITE, PAGE, ERASE>
{
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimFlashError> {
        if to < from {
            return Err(SimFlashError::OutOfBounds);
        }
        let r = self.range(from, (to - from) as usize)?;
        if PAGE == 0
            || !r.start.is_multiple_of(ERASE)
            || !r.end.is_multiple_of(ERASE)
            || !ERASE.is_multiple_of(PAGE)
        {
            return Err(SimFlashError::NotAligned);
        }
        let mut page = r.start;
        while page < r.end {
            if !self.spend() {
                return Err(SimFlashError::PowerCut);
            }
            if let Some(p) = self.bytes.get_mut(page..page + PAGE) {
                p.fill(0xFF);
            }
            page += PAGE;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), SimFlashError> {
        let r = self.range(offset, data.len())?;
        if WRITE == 0 || !r.start.is_multiple_of(WRITE) || !data.len().is_multiple_of(WRITE) {
            return Err(SimFlashError::NotAligned);
        }
        let old = self
            .bytes
            .get(r.clone())
            .ok_or(SimFlashError::OutOfBounds)?;
        if old.iter().zip(data).any(|(o, d)| d & !o != 0) {
            return Err(SimFlashError::NotErased);
        }
        for (i, &d) in r.zip(data) {
            let live = self.spend();
            let mask = self.torn_mask;
            if let Some(b) = self.bytes.get_mut(i) {
                *b &= if live { d } else { d | mask };
            }
            if !live {
                return Err(SimFlashError::PowerCut);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RP2040-like: 256-byte writes and pages, 4 KB sectors.
    type Qspi = SimFlash<{ 4 * 4096 }, 256, 256, 4096>;
    /// nRF52-like: word writes, 4 KB pages that are also the erase unit.
    type Nvmc = SimFlash<{ 4 * 4096 }, 4, 4096, 4096>;
    /// Byte writes, 64-byte pages, 512-byte sectors: many cut points, small sectors.
    type Small = SimFlash<2048, 1, 64, 512>;

    const BUNDLE: u32 = 0xB0DE_1234;

    fn params(n: usize, k: f32) -> [f32; 82] {
        core::array::from_fn(|i| if i < n { k + i as f32 * 0.25 } else { 0.0 })
    }

    fn crc_of(p: &[f32]) -> u32 {
        let mut d = crate::crc32::digest();
        p.iter().for_each(|x| d.update(&x.to_le_bytes()));
        d.finalize()
    }

    #[test]
    fn empty_flash_holds_nothing() {
        let mut s = Slots::new(Small::new(), 0, 512).unwrap();
        assert_eq!(s.newest(BUNDLE).unwrap(), None);
    }

    #[test]
    fn save_then_load_round_trips_and_the_newest_wins() {
        let mut s = Slots::new(Qspi::new(), 4096, 4096).unwrap();
        let a = params(82, 1.0);
        let b = params(82, -3.0);
        let r1 = s.save(BUNDLE, &a).unwrap();
        let r2 = s.save(BUNDLE, &b).unwrap();
        assert_ne!(r1.slot, r2.slot);
        assert_eq!(r2.seq, r1.seq + 1);
        let found = s.newest(BUNDLE).unwrap().unwrap();
        assert_eq!(found, r2);
        assert_eq!(found.params_crc, crc_of(&b));
        let mut out = [0.0f32; 82];
        s.load(&found, &mut out).unwrap();
        assert_eq!(out, b);
        // A revert record is newer still and says "meta".
        let r3 = s.save_meta(BUNDLE).unwrap();
        assert_eq!(s.newest(BUNDLE).unwrap(), Some(r3));
        assert_eq!(r3.policy, Policy::Meta);
        // Another bundle sees nothing.
        assert_eq!(s.newest(BUNDLE ^ 1).unwrap(), None);
        let mut short = [0.0f32; 81];
        assert_eq!(s.load(&r2, &mut short), Err(StoreError::Shape));
    }

    #[test]
    fn a_record_of_another_bundle_never_evicts_this_bundles_newest() {
        let mut s = Slots::new(Small::new(), 0, 512).unwrap();
        let mine = s.save(BUNDLE, &params(20, 1.0)[..20]).unwrap();
        let theirs = s.save(BUNDLE + 1, &params(20, 2.0)[..20]).unwrap();
        assert_ne!(mine.slot, theirs.slot);
        // Saving for BUNDLE again must overwrite the other bundle's slot, not its own.
        let again = s.save(BUNDLE, &params(20, 3.0)[..20]).unwrap();
        assert_eq!(again.slot, theirs.slot);
        assert_eq!(s.newest(BUNDLE).unwrap(), Some(again));
    }

    #[test]
    fn bad_layouts_and_records_are_typed_errors() {
        assert_eq!(
            Slots::new(Small::new(), 100, 512).err(),
            Some(StoreError::Layout)
        );
        assert_eq!(
            Slots::new(Small::new(), 0, 100).err(),
            Some(StoreError::Layout)
        );
        assert_eq!(
            Slots::new(Small::new(), 1024, 1024).err(),
            Some(StoreError::Layout)
        );
        let mut s = Slots::new(Small::new(), 0, 512).unwrap();
        let big = [0.0f32; 200];
        assert!(matches!(
            s.save(BUNDLE, &big),
            Err(StoreError::TooLarge { .. })
        ));
        let mut nan = params(20, 1.0);
        nan[3] = f32::NAN;
        assert_eq!(s.save(BUNDLE, &nan[..20]), Err(StoreError::NonFinite));
        assert_eq!(s.newest(BUNDLE).unwrap(), None, "nothing was written");
    }

    #[test]
    fn a_flipped_bit_anywhere_in_a_record_invalidates_it() {
        let mut s = Slots::new(Small::new(), 0, 512).unwrap();
        let p = params(10, 0.5);
        s.save(BUNDLE, &p[..10]).unwrap();
        let len = Slots::<Small>::record_len(10);
        let image = *s.flash_mut().bytes();
        for byte in 0..len {
            let mut f = Small::new();
            f.bytes = image;
            f.bytes[byte] ^= 0x10;
            let mut s = Slots::new(f, 0, 512).unwrap();
            assert_eq!(
                s.newest(BUNDLE).unwrap(),
                None,
                "bit flipped at byte {byte}"
            );
        }
    }

    /// Saves `new` over a store whose newest record is `old` (or nothing), with the power
    /// cut after every possible number of operations, and checks that boot then finds
    /// exactly the old or the new record with its exact parameters.
    fn cut_everywhere<const CAP: usize, const W: usize, const PG: usize, const E: usize>(
        slot_len: u32,
        history: &[&[f32]],
        new: &[f32],
        torn_masks: &[u8],
    ) -> (usize, usize) {
        let mut base = Slots::new(SimFlash::<CAP, W, PG, E>::new(), 0, slot_len).unwrap();
        for h in history {
            base.save(BUNDLE, h).unwrap();
        }
        let old = base.newest(BUNDLE).unwrap();
        let image = *base.flash_mut().bytes();
        let mut saw = (0, 0);
        for &mask in torn_masks {
            let mut ops = 0;
            loop {
                let mut f = SimFlash::<CAP, W, PG, E>::new();
                f.bytes = image;
                f.cut_after(Some(ops), mask);
                let mut s = Slots::new(f, 0, slot_len).unwrap();
                let result = s.save(BUNDLE, new);
                let finished = result.is_ok();
                if !finished {
                    assert!(
                        matches!(result, Err(StoreError::Flash(FlashFault::Other))),
                        "{result:?}"
                    );
                }
                s.flash_mut().cut_after(None, 0xFF);
                let found = s.newest(BUNDLE).unwrap();
                let mut out = [0.0f32; 128];
                match found {
                    Some(r) if r.seq == old.map_or(0, |o| o.seq) + 1 => {
                        s.load(&r, &mut out[..new.len()]).unwrap();
                        assert_eq!(&out[..new.len()], new, "cut after {ops} ops");
                        saw.1 += 1;
                    }
                    r => {
                        assert!(!finished, "a finished save must be found (ops {ops})");
                        assert_eq!(r, old, "cut after {ops} ops: neither old nor new");
                        if let Some(r) = r {
                            let want = history.last().unwrap();
                            s.load(&r, &mut out[..want.len()]).unwrap();
                            assert_eq!(&out[..want.len()], *want);
                        }
                        saw.0 += 1;
                    }
                }
                if finished {
                    break;
                }
                ops += 1;
            }
        }
        saw
    }

    #[test]
    fn a_power_cut_at_every_byte_and_page_leaves_the_old_or_the_new_policy() {
        let a = params(82, 1.0);
        let b = params(82, 7.0);
        // Byte-writable flash: one cut per programmed byte and per erased page, with the
        // torn byte keeping its old value, taking all of the new one, or half of it.
        let (old, new) =
            cut_everywhere::<2048, 1, 64, 512>(512, &[&a[..82]], &b[..82], &[0xFF, 0x00, 0x0F]);
        let record = Slots::<Small>::record_len(82);
        // Every erase page and programmed byte is a cut point, plus the uncut save; only
        // the last byte of the CRC can complete the record before the cut is reported.
        assert_eq!(old + new, 3 * (512 / 64 + record + 1));
        assert!((3..=5).contains(&new), "{new}");
        // From empty, and over a record of another size.
        cut_everywhere::<2048, 1, 64, 512>(512, &[], &b[..82], &[0xFF]);
        cut_everywhere::<2048, 1, 64, 512>(512, &[&a[..5], &a[..30]], &b[..82], &[0xAA]);
        // Page-writable (RP2040-like) and word-writable (nRF52-like) flash.
        cut_everywhere::<{ 4 * 4096 }, 256, 256, 4096>(4096, &[&a[..82]], &b[..82], &[0xFF]);
        cut_everywhere::<{ 4 * 4096 }, 4, 4096, 4096>(4096, &[&a[..82]], &b[..82], &[0x00]);
    }

    #[test]
    fn a_cut_revert_leaves_the_adapted_policy_or_the_revert() {
        let a = params(40, 2.0);
        let mut base = Slots::new(Nvmc::new(), 0, 4096).unwrap();
        base.save(BUNDLE, &a[..40]).unwrap();
        let image = *base.flash_mut().bytes();
        for ops in 0.. {
            let mut f = Nvmc::new();
            f.bytes = image;
            f.cut_after(Some(ops), 0xFF);
            let mut s = Slots::new(f, 0, 4096).unwrap();
            let done = s.save_meta(BUNDLE).is_ok();
            let found = s.newest(BUNDLE).unwrap().unwrap();
            if done {
                assert_eq!(found.policy, Policy::Meta);
                break;
            }
            assert!(
                found.policy == Policy::Meta || found.params_crc == crc_of(&a[..40]),
                "ops {ops}: {found:?}"
            );
        }
    }

    #[test]
    fn the_sim_flash_refuses_what_real_nor_flash_cannot_do() {
        let mut f = Small::new();
        assert_eq!(f.write(0, &[0x0F]), Ok(()));
        assert_eq!(f.write(0, &[0xF0]), Err(SimFlashError::NotErased));
        assert_eq!(f.write(0, &[0x07]), Ok(()), "clearing more bits is fine");
        assert_eq!(f.erase(0, 100), Err(SimFlashError::NotAligned));
        assert_eq!(f.erase(0, 4096), Err(SimFlashError::OutOfBounds));
        let mut q = Qspi::new();
        assert_eq!(q.write(4, &[0; 256]), Err(SimFlashError::NotAligned));
        assert_eq!(q.write(0, &[0; 4]), Err(SimFlashError::NotAligned));
        f.erase(0, 512).unwrap();
        assert_eq!(f.bytes()[0], 0xFF);
    }
}
