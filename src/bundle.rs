//! The weights bundle: the one binary contract between meta-training (host) and the device.
//!
//! A bundle carries a policy's architecture, its meta-trained parameters, the adaptation
//! [`Recipe`] they were meta-trained for, and where they came from. The byte format is
//! specified field by field in `docs/bundle.md`: little-endian, no alignment assumptions
//! (the bytes may sit in flash at any address), CRC-32 of everything before it at the end.
//!
//! As in smoltcp's wire layer, bytes are validated once, by [`Bundle::parse`]: a [`Bundle`]
//! is proof that every field is in range and consistent with the others, so code downstream
//! never re-checks. Parsing is zero-copy: the parameters and the baseline stay where the
//! bytes are and are read through [`LeF32s`]. The writer, [`BundleSpec`], encodes and then
//! runs the parser on its own output, so it can never produce bytes the parser rejects.

use crate::crc32;
use crate::policy::{Distribution, LeF32s, Policy, PolicyShape};
use crate::recipe::{ActionMap, Advantage, LossScale, Recipe, RecipeError};

/// The four bytes every bundle starts with.
pub const MAGIC: [u8; 4] = *b"SGML";
/// The format version this crate reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes before the payload (the baseline, then the parameters) in version 1.
pub const HEADER_LEN: usize = 76;
/// Bytes of the trailing CRC-32.
pub const CHECKSUM_LEN: usize = 4;
/// A header plus a checksum: the fewest bytes that can be checked as far as the CRC (every
/// valid shape has parameters, so a real bundle is longer).
pub const MIN_LEN: usize = HEADER_LEN + CHECKSUM_LEN;

/// Byte offsets of the version-1 header fields (see `docs/bundle.md`).
mod field {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 4;
    pub const HEADER_LEN: usize = 6;
    pub const DISTRIBUTION: usize = 8;
    pub const RESERVED_POLICY: usize = 9;
    pub const OBS_DIM: usize = 10;
    pub const HIDDEN_0: usize = 12;
    pub const HIDDEN_1: usize = 14;
    pub const ACT_DIM: usize = 16;
    pub const RESERVED_PAD_0: usize = 18;
    pub const ALPHA: usize = 20;
    pub const STEPS: usize = 24;
    pub const EPISODES: usize = 26;
    pub const HORIZON: usize = 28;
    pub const RESERVED_PAD_1: usize = 30;
    pub const GAMMA: usize = 32;
    pub const ADVANTAGE: usize = 36;
    pub const FLAGS: usize = 37;
    pub const RESERVED_PAD_2: usize = 38;
    pub const GAE_LAMBDA: usize = 40;
    pub const ACTION_SCALE: usize = 44;
    pub const ACTION_CLIP: usize = 48;
    pub const TASK: usize = 52;
    pub const TRAINER: usize = 54;
    pub const RESERVED_PROVENANCE: usize = 55;
    pub const SEED: usize = 56;
    pub const META_ITERATIONS: usize = 64;
    pub const BASELINE_LEN: usize = 68;
    pub const PARAM_COUNT: usize = 72;
}

/// Every header field as `(offset, size)`, in order: the table of `docs/bundle.md`.
const LAYOUT: [(usize, usize); 29] = {
    use field::*;
    [
        (MAGIC, 4),
        (VERSION, 2),
        (HEADER_LEN, 2),
        (DISTRIBUTION, 1),
        (RESERVED_POLICY, 1),
        (OBS_DIM, 2),
        (HIDDEN_0, 2),
        (HIDDEN_1, 2),
        (ACT_DIM, 2),
        (RESERVED_PAD_0, 2),
        (ALPHA, 4),
        (STEPS, 2),
        (EPISODES, 2),
        (HORIZON, 2),
        (RESERVED_PAD_1, 2),
        (GAMMA, 4),
        (ADVANTAGE, 1),
        (FLAGS, 1),
        (RESERVED_PAD_2, 2),
        (GAE_LAMBDA, 4),
        (ACTION_SCALE, 4),
        (ACTION_CLIP, 4),
        (TASK, 2),
        (TRAINER, 1),
        (RESERVED_PROVENANCE, 1),
        (SEED, 8),
        (META_ITERATIONS, 4),
        (BASELINE_LEN, 4),
        (PARAM_COUNT, 4),
    ]
};

/// The fields tile the header exactly: no gap, no overlap, every offset in bounds (which is
/// why the header reads below cannot run past the end).
const fn layout_is_contiguous() -> bool {
    let mut rest: &[(usize, usize)] = &LAYOUT;
    let mut end = 0;
    while let [(offset, size), tail @ ..] = rest {
        if *offset != end {
            return false;
        }
        end = *offset + *size;
        rest = tail;
    }
    end == HEADER_LEN
}
const _: () = assert!(layout_is_contiguous());

/// Recipe flag: normalise the batch's advantages.
const FLAG_NORMALIZE: u8 = 1 << 0;
/// Recipe flag: divide the loss by `N·H` instead of `N`.
const FLAG_LOSS_PER_STEP: u8 = 1 << 1;

/// Bits of each header byte that version 1 reserves; they must be 0.
const RESERVED_MASK: [u8; HEADER_LEN] = {
    let mut m = [0u8; HEADER_LEN];
    m[field::RESERVED_POLICY] = 0xFF;
    m[field::RESERVED_PAD_0] = 0xFF;
    m[field::RESERVED_PAD_0 + 1] = 0xFF;
    m[field::RESERVED_PAD_1] = 0xFF;
    m[field::RESERVED_PAD_1 + 1] = 0xFF;
    m[field::FLAGS] = !(FLAG_NORMALIZE | FLAG_LOSS_PER_STEP);
    m[field::RESERVED_PAD_2] = 0xFF;
    m[field::RESERVED_PAD_2 + 1] = 0xFF;
    m[field::RESERVED_PROVENANCE] = 0xFF;
    m
};

/// What a bundle's parameters were meta-trained for. A plain number so that an older
/// firmware still loads bundles for tasks it does not know by name.
///
/// Values `0..0x100` are reserved for this crate's task families; values from
/// [`TaskId::FIRST_USER`] up are free for users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TaskId(pub u16);

impl TaskId {
    /// No task recorded.
    pub const UNSPECIFIED: Self = Self(0);
    /// The paper's 2-D point navigation with continuous (Gaussian) actions.
    pub const NAV2D: Self = Self(1);
    /// 2-D point navigation with a discrete (softmax) action set.
    pub const NAV2D_DISCRETE: Self = Self(2);
    /// The differential-drive robot (`sim::diffdrive`) with discrete wheel commands
    /// (softmax policies): the default robot task.
    pub const DIFFDRIVE: Self = Self(3);
    /// The differential-drive robot with continuous wheel commands (Gaussian policies).
    pub const DIFFDRIVE_CONTINUOUS: Self = Self(4);
    /// MuJoCo HalfCheetah, random direction `d ∈ {−1, +1}` (the paper's Table 2).
    pub const HALF_CHEETAH_DIR: Self = Self(5);
    /// MuJoCo HalfCheetah, random target velocity `v* ~ U[0, 3]` (Table 2).
    pub const HALF_CHEETAH_VEL: Self = Self(6);
    /// MuJoCo Swimmer, random target velocity `v* ~ U[0.1, 0.2]` (Table 2).
    pub const SWIMMER_VEL: Self = Self(7);
    /// The first id free for users.
    pub const FIRST_USER: Self = Self(0x100);

    /// True for ids in the range left to users.
    pub const fn is_user(self) -> bool {
        self.0 >= Self::FIRST_USER.0
    }
}

/// The meta-training algorithm that produced the parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Trainer {
    /// Not recorded.
    Unknown,
    /// SG-MRL with the exact (second-order) meta-gradient.
    SgMrl,
    /// SG-MRL with the Hessian term dropped.
    SgMrlFirstOrder,
    /// MAML.
    Maml,
    /// First-order MAML.
    FoMaml,
    /// E-MAML.
    EMaml,
    /// Plain multi-task policy gradient, no meta-learning (a baseline to adapt from).
    MultiTask,
}

impl Trainer {
    /// The trainer with wire code `code`, if any.
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Unknown,
            1 => Self::SgMrl,
            2 => Self::SgMrlFirstOrder,
            3 => Self::Maml,
            4 => Self::FoMaml,
            5 => Self::EMaml,
            6 => Self::MultiTask,
            _ => return None,
        })
    }

    /// The wire code.
    pub const fn code(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::SgMrl => 1,
            Self::SgMrlFirstOrder => 2,
            Self::Maml => 3,
            Self::FoMaml => 4,
            Self::EMaml => 5,
            Self::MultiTask => 6,
        }
    }

    /// A short human-readable name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::SgMrl => "SG-MRL",
            Self::SgMrlFirstOrder => "SG-MRL (first-order)",
            Self::Maml => "MAML",
            Self::FoMaml => "FO-MAML",
            Self::EMaml => "E-MAML",
            Self::MultiTask => "multi-task PG",
        }
    }
}

/// Which float array of the payload a [`BundleError::NonFinite`] refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Section {
    /// The time-baseline table.
    Baseline,
    /// The policy parameters.
    Params,
}

/// Why bytes are not a bundle (or a [`BundleSpec`] cannot be encoded). Each malformation has
/// its own variant; `docs/bundle.md` lists which field produces which and the check order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BundleError {
    /// Fewer bytes than needed. `needed` is the length the header declares once the header
    /// is complete, else [`MIN_LEN`]; it saturates at `usize::MAX` on targets where the
    /// declared length does not fit.
    Truncated {
        /// Bytes required.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The first four bytes are not [`MAGIC`].
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
    },
    /// A format version this crate does not read.
    UnsupportedVersion {
        /// The version found.
        found: u16,
    },
    /// The header-length field is not [`HEADER_LEN`].
    HeaderLength {
        /// The header length of this format version.
        expected: u16,
        /// The value found.
        found: u16,
    },
    /// More bytes than the header declares.
    TrailingBytes {
        /// The declared length.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// The stored CRC-32 does not match the bytes before it.
    Checksum {
        /// The CRC stored in the bundle.
        expected: u32,
        /// The CRC computed over the bytes.
        computed: u32,
    },
    /// Reserved bits are set.
    Reserved {
        /// Byte offset from the start of the bundle.
        offset: usize,
        /// The offending (reserved) bits of that byte.
        bits: u8,
    },
    /// The distribution code is neither 0 (softmax) nor 1 (Gaussian).
    UnknownDistribution(u8),
    /// The advantage code is not in `0..=3`.
    UnknownAdvantage(u8),
    /// The trainer code is not in `0..=6`.
    UnknownTrainer(u8),
    /// The policy shape fails [`PolicyShape::is_valid`].
    BadShape(PolicyShape),
    /// A GAE λ is stored although the advantage rule is not linear-feature GAE.
    UnexpectedLambda {
        /// The raw bits of the λ field (must be all zero).
        bits: u32,
    },
    /// The recipe fails [`Recipe::validate`].
    Recipe(RecipeError),
    /// The parameter count is not the shape's `P`.
    ParamCount {
        /// `P` of the shape (may exceed `u32::MAX` for absurd shapes).
        expected: u64,
        /// The count given (saturating at `u32::MAX` for a writer's slice).
        found: u32,
    },
    /// The baseline length is not `H` for the time-baseline rule, or not 0 for the others.
    BaselineLength {
        /// `H` or 0.
        expected: u32,
        /// The length given (saturating at `u32::MAX` for a writer's slice).
        found: u32,
    },
    /// A payload float is NaN or infinite.
    NonFinite {
        /// Baseline or parameters.
        section: Section,
        /// Index of the first such float within its section.
        index: usize,
    },
    /// The bundle is for a different policy than the one the firmware was built with.
    PolicyMismatch {
        /// The firmware's policy shape.
        expected: PolicyShape,
        /// The bundle's.
        found: PolicyShape,
    },
    /// The writer's output buffer is too short.
    OutputTooSmall {
        /// Bytes required.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
}

impl core::fmt::Display for BundleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated { needed, got } => {
                write!(f, "bundle truncated: needs {needed} bytes, got {got}")
            }
            Self::BadMagic { found } => write!(f, "not a bundle: magic {found:02x?}"),
            Self::UnsupportedVersion { found } => write!(
                f,
                "bundle format version {found} unsupported (this build reads {FORMAT_VERSION})"
            ),
            Self::HeaderLength { expected, found } => {
                write!(f, "bundle header length {found}, expected {expected}")
            }
            Self::TrailingBytes { expected, found } => write!(
                f,
                "bundle declares {expected} bytes but {found} were given (trailing bytes)"
            ),
            Self::Checksum { expected, computed } => write!(
                f,
                "bundle checksum mismatch: stored {expected:#010x}, computed {computed:#010x}"
            ),
            Self::Reserved { offset, bits } => {
                write!(f, "reserved bits {bits:#04x} set at byte {offset}")
            }
            Self::UnknownDistribution(c) => write!(f, "unknown distribution code {c}"),
            Self::UnknownAdvantage(c) => write!(f, "unknown advantage code {c}"),
            Self::UnknownTrainer(c) => write!(f, "unknown trainer code {c}"),
            Self::BadShape(s) => write!(f, "invalid policy shape {s:?}"),
            Self::UnexpectedLambda { bits } => write!(
                f,
                "GAE lambda field is {bits:#010x} but must be 0 unless the advantage is GAE"
            ),
            Self::Recipe(e) => write!(f, "invalid recipe: {e}"),
            Self::ParamCount { expected, found } => {
                write!(f, "shape needs {expected} parameters, bundle has {found}")
            }
            Self::BaselineLength { expected, found } => {
                write!(f, "baseline must hold {expected} values, has {found}")
            }
            Self::NonFinite { section, index } => {
                let s = match section {
                    Section::Baseline => "baseline",
                    Section::Params => "parameter",
                };
                write!(f, "{s} {index} is NaN or infinite")
            }
            Self::PolicyMismatch { expected, found } => write!(
                f,
                "bundle is for policy {found:?}, firmware runs {expected:?}"
            ),
            Self::OutputTooSmall { needed, got } => {
                write!(f, "output buffer of {got} bytes, bundle needs {needed}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BundleError {}

/// `P` of `shape` in 64 bits: [`PolicyShape::n_params`] can overflow a 32-bit `usize` for
/// shapes no real bundle has, and a parser must not trust the shape before comparing.
const fn param_count(shape: &PolicyShape) -> u64 {
    let obs = shape.obs_dim as u64;
    let [h1, h2] = shape.hidden;
    let (h1, h2) = (h1 as u64, h2 as u64);
    let act = shape.act_dim as u64;
    let mut n = 0;
    if h1 > 0 {
        n += h1 * obs + h1;
    }
    if h2 > 0 {
        n += h2 * h1 + h2;
    }
    let head_in = if h2 > 0 {
        h2
    } else if h1 > 0 {
        h1
    } else {
        obs
    };
    n += act * head_in + act;
    if let Distribution::Gaussian = shape.distribution {
        n += act;
    }
    n
}

/// Total bytes for `baseline_floats` baseline values and `param_count` parameters.
const fn total_len_u64(baseline_floats: u64, param_count: u64) -> u64 {
    (MIN_LEN as u64).saturating_add(
        baseline_floats
            .saturating_add(param_count)
            .saturating_mul(4),
    )
}

const fn saturate_usize(n: u64) -> usize {
    if n > usize::MAX as u64 {
        usize::MAX
    } else {
        n as usize
    }
}

/// Length in bytes of the bundle for `shape` with `baseline_len` baseline values (0, or `H`
/// for the time-baseline rule). Usable in `const` context to size a flash region or a
/// buffer; saturates at `usize::MAX`.
pub const fn encoded_len(shape: &PolicyShape, baseline_len: usize) -> usize {
    saturate_usize(total_len_u64(baseline_len as u64, param_count(shape)))
}

/// `N` bytes of `h` from `at`. The offsets are the constants of [`field`], in bounds by
/// [`layout_is_contiguous`], so the zero fill never happens.
fn read<const N: usize>(h: &[u8; HEADER_LEN], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(h.iter().skip(at)) {
        *o = *b;
    }
    out
}

fn read_u16(h: &[u8; HEADER_LEN], at: usize) -> u16 {
    u16::from_le_bytes(read(h, at))
}

fn read_u32(h: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_le_bytes(read(h, at))
}

fn read_f32(h: &[u8; HEADER_LEN], at: usize) -> f32 {
    f32::from_le_bytes(read(h, at))
}

/// Copies `src` into `h` from `at` (offsets from [`field`], in bounds).
fn write(h: &mut [u8; HEADER_LEN], at: usize, src: &[u8]) {
    for (o, b) in h.iter_mut().skip(at).zip(src) {
        *o = *b;
    }
}

/// The length of the bundle at the start of `bytes`, read from its header alone (magic,
/// version and header length are checked; nothing is checksummed yet).
///
/// Lets firmware slice a bundle out of a larger flash region before [`Bundle::parse`].
pub fn declared_len(bytes: &[u8]) -> Result<usize, BundleError> {
    let got = bytes.len();
    let short = BundleError::Truncated {
        needed: MIN_LEN,
        got,
    };
    let magic = bytes.first_chunk::<4>().ok_or(short)?;
    if *magic != MAGIC {
        return Err(BundleError::BadMagic { found: *magic });
    }
    let fixed = bytes.first_chunk::<8>().ok_or(short)?;
    let [_, _, _, _, v0, v1, l0, l1] = *fixed;
    let version = u16::from_le_bytes([v0, v1]);
    if version != FORMAT_VERSION {
        return Err(BundleError::UnsupportedVersion { found: version });
    }
    let header_len = u16::from_le_bytes([l0, l1]);
    if usize::from(header_len) != HEADER_LEN {
        return Err(BundleError::HeaderLength {
            expected: HEADER_LEN as u16,
            found: header_len,
        });
    }
    let h = bytes.first_chunk::<HEADER_LEN>().ok_or(short)?;
    let b = read_u32(h, field::BASELINE_LEN);
    let p = read_u32(h, field::PARAM_COUNT);
    Ok(saturate_usize(total_len_u64(u64::from(b), u64::from(p))))
}

/// A validated, zero-copy view of bundle bytes. Its existence proves the bytes are a
/// well-formed version-1 bundle: the shape is valid, the recipe passes
/// [`Recipe::validate`], the parameter count is the shape's `P`, the baseline is present
/// exactly for the time-baseline rule with `H` values, and every float is finite.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bundle<'a> {
    bytes: &'a [u8],
    shape: PolicyShape,
    recipe: Recipe,
    task: TaskId,
    trainer: Trainer,
    seed: u64,
    meta_iterations: u32,
    baseline: Option<LeF32s<'a>>,
    params: LeF32s<'a>,
    checksum: u32,
}

/// Everything the header says, validated.
struct Header {
    shape: PolicyShape,
    recipe: Recipe,
    task: TaskId,
    trainer: Trainer,
    seed: u64,
    meta_iterations: u32,
    baseline_len: u32,
}

impl Header {
    /// Checks in the order `docs/bundle.md` specifies: reserved bits, codes, shape, λ,
    /// recipe, counts.
    fn decode(h: &[u8; HEADER_LEN]) -> Result<Self, BundleError> {
        if let Some((offset, bits)) = h
            .iter()
            .zip(RESERVED_MASK.iter())
            .map(|(b, m)| b & m)
            .enumerate()
            .find(|&(_, bits)| bits != 0)
        {
            return Err(BundleError::Reserved { offset, bits });
        }

        let [distribution_code] = read::<1>(h, field::DISTRIBUTION);
        let distribution = match distribution_code {
            0 => Distribution::Softmax,
            1 => Distribution::Gaussian,
            c => return Err(BundleError::UnknownDistribution(c)),
        };
        let [advantage_code] = read::<1>(h, field::ADVANTAGE);
        if advantage_code > 4 {
            return Err(BundleError::UnknownAdvantage(advantage_code));
        }
        let [trainer_code] = read::<1>(h, field::TRAINER);
        let trainer =
            Trainer::from_code(trainer_code).ok_or(BundleError::UnknownTrainer(trainer_code))?;

        let shape = PolicyShape {
            distribution,
            obs_dim: read_u16(h, field::OBS_DIM),
            hidden: [read_u16(h, field::HIDDEN_0), read_u16(h, field::HIDDEN_1)],
            act_dim: read_u16(h, field::ACT_DIM),
        };
        if !shape.is_valid() {
            return Err(BundleError::BadShape(shape));
        }

        let lambda_bits = read_u32(h, field::GAE_LAMBDA);
        let advantage = match advantage_code {
            0 => Advantage::RewardToGo,
            1 => Advantage::TimeBaseline,
            2 => Advantage::BatchMeanBaseline,
            4 => Advantage::ScaledTimeBaseline,
            _ => Advantage::LinearFeatureGae {
                lambda: f32::from_bits(lambda_bits),
            },
        };
        // Bit-exact zero (not -0.0) keeps decoding one-to-one, so re-encoding reproduces
        // the bytes.
        if !matches!(advantage, Advantage::LinearFeatureGae { .. }) && lambda_bits != 0 {
            return Err(BundleError::UnexpectedLambda { bits: lambda_bits });
        }
        let [flags] = read::<1>(h, field::FLAGS);
        let clip_bits = read_u32(h, field::ACTION_CLIP);
        let recipe = Recipe {
            alpha: read_f32(h, field::ALPHA),
            steps: read_u16(h, field::STEPS),
            episodes: read_u16(h, field::EPISODES),
            horizon: read_u16(h, field::HORIZON),
            gamma: read_f32(h, field::GAMMA),
            advantage,
            normalize: flags & FLAG_NORMALIZE != 0,
            loss: if flags & FLAG_LOSS_PER_STEP != 0 {
                LossScale::PerStep
            } else {
                LossScale::PerEpisode
            },
            action: ActionMap {
                scale: read_f32(h, field::ACTION_SCALE),
                // Only +0.0 means "no clip"; -0.0 becomes Some(-0.0), which validate rejects.
                clip: if clip_bits == 0 {
                    None
                } else {
                    Some(f32::from_bits(clip_bits))
                },
            },
        };
        recipe.validate().map_err(BundleError::Recipe)?;

        let param_count = read_u32(h, field::PARAM_COUNT);
        let expected = self::param_count(&shape);
        if u64::from(param_count) != expected {
            return Err(BundleError::ParamCount {
                expected,
                found: param_count,
            });
        }
        let baseline_len = read_u32(h, field::BASELINE_LEN);
        let expected = required_baseline_len(&recipe);
        if baseline_len != expected {
            return Err(BundleError::BaselineLength {
                expected,
                found: baseline_len,
            });
        }

        Ok(Self {
            shape,
            recipe,
            task: TaskId(read_u16(h, field::TASK)),
            trainer,
            seed: u64::from_le_bytes(read(h, field::SEED)),
            meta_iterations: read_u32(h, field::META_ITERATIONS),
            baseline_len,
        })
    }
}

/// `H` for the rules that read the table (time-baseline, scaled-baseline), 0 for the others.
const fn required_baseline_len(recipe: &Recipe) -> u32 {
    if recipe.advantage.uses_table() {
        recipe.horizon as u32
    } else {
        0
    }
}

fn first_non_finite(v: LeF32s<'_>) -> Option<usize> {
    v.iter().position(|x| !x.is_finite())
}

impl<'a> Bundle<'a> {
    /// Validates `bytes` (exactly one bundle, any alignment) and returns the view.
    ///
    /// The checks run in the order `docs/bundle.md` specifies; the first failure is
    /// returned. The checksum is verified before any field other than the magic, version
    /// and lengths is interpreted, so corruption reads as [`BundleError::Checksum`] rather
    /// than as whatever a flipped bit happens to make a field say.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BundleError> {
        let total = declared_len(bytes)?;
        let got = bytes.len();
        let truncated = BundleError::Truncated { needed: total, got };
        if got < total {
            return Err(truncated);
        }
        if got > total {
            return Err(BundleError::TrailingBytes {
                expected: total,
                found: got,
            });
        }

        let (body, stored) = bytes.split_last_chunk::<CHECKSUM_LEN>().ok_or(truncated)?;
        let stored = u32::from_le_bytes(*stored);
        let computed = crc32::checksum(body);
        if computed != stored {
            return Err(BundleError::Checksum {
                expected: stored,
                computed,
            });
        }

        let (h, payload) = body.split_first_chunk::<HEADER_LEN>().ok_or(truncated)?;
        let header = Header::decode(h)?;

        // `declared_len` matched the length, so these splits cannot fail; the fallbacks
        // only keep the code panic-free.
        let baseline_bytes = usize::try_from(header.baseline_len)
            .ok()
            .and_then(|n| n.checked_mul(4))
            .ok_or(truncated)?;
        let (baseline, params) = payload.split_at_checked(baseline_bytes).ok_or(truncated)?;
        let baseline = LeF32s::new(baseline).ok_or(truncated)?;
        let params = LeF32s::new(params).ok_or(truncated)?;
        if let Some(index) = first_non_finite(baseline) {
            return Err(BundleError::NonFinite {
                section: Section::Baseline,
                index,
            });
        }
        if let Some(index) = first_non_finite(params) {
            return Err(BundleError::NonFinite {
                section: Section::Params,
                index,
            });
        }

        Ok(Self {
            bytes,
            shape: header.shape,
            recipe: header.recipe,
            task: header.task,
            trainer: header.trainer,
            seed: header.seed,
            meta_iterations: header.meta_iterations,
            baseline: if header.baseline_len == 0 {
                None
            } else {
                Some(baseline)
            },
            params,
            checksum: stored,
        })
    }

    /// The policy architecture.
    pub const fn shape(&self) -> PolicyShape {
        self.shape
    }

    /// The adaptation recipe (valid).
    pub const fn recipe(&self) -> Recipe {
        self.recipe
    }

    /// The task family the parameters were meta-trained on.
    pub const fn task(&self) -> TaskId {
        self.task
    }

    /// The meta-training algorithm.
    pub const fn trainer(&self) -> Trainer {
        self.trainer
    }

    /// The seed of the meta-training run.
    pub const fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of meta-iterations (outer steps) of the run.
    pub const fn meta_iterations(&self) -> u32 {
        self.meta_iterations
    }

    /// The meta-trained parameters θ: `P` finite scalars in the layout of
    /// [`crate::policy`].
    pub const fn params(&self) -> LeF32s<'a> {
        self.params
    }

    /// The time-baseline table `b_h` for `h = 0..H` (units of the reward-to-go), present
    /// exactly when the recipe's advantage reads it ([`Advantage::uses_table`]).
    pub const fn baseline(&self) -> Option<LeF32s<'a>> {
        self.baseline
    }

    /// The encoded bundle, CRC included.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Length of the encoded bundle in bytes.
    #[allow(clippy::len_without_is_empty)] // A bundle is never empty (at least MIN_LEN).
    pub const fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The stored CRC-32 (verified), handy as a short identifier of the weights in logs.
    pub const fn checksum(&self) -> u32 {
        self.checksum
    }

    /// `Ok` when the bundle was made for policy `P`, so `P` may run its parameters.
    pub fn check_policy<P: Policy>(&self) -> Result<(), BundleError> {
        if P::SHAPE == self.shape {
            Ok(())
        } else {
            Err(BundleError::PolicyMismatch {
                expected: P::SHAPE,
                found: self.shape,
            })
        }
    }
}

/// Everything a bundle holds, for the writer. [`BundleSpec::encode_into`] (and
/// `BundleSpec::to_bytes` under the `std` feature) validates by the parser's rules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BundleSpec<'s> {
    /// Policy architecture.
    pub shape: PolicyShape,
    /// Adaptation recipe.
    pub recipe: Recipe,
    /// Task family.
    pub task: TaskId,
    /// Meta-training algorithm.
    pub trainer: Trainer,
    /// Seed of the meta-training run.
    pub seed: u64,
    /// Number of meta-iterations.
    pub meta_iterations: u32,
    /// The time-baseline table (`H` values), required exactly when the rule reads it
    /// ([`Advantage::uses_table`]); an empty slice is the same as `None`.
    pub baseline: Option<&'s [f32]>,
    /// The parameters (`P` values).
    pub params: &'s [f32],
}

impl BundleSpec<'_> {
    /// The baseline and parameter counts as stored, or the error the parser would give if
    /// a slice is too long to be counted in a `u32`.
    fn counts(&self) -> Result<(u32, u32), BundleError> {
        let baseline = self.baseline.unwrap_or(&[]);
        let b = u32::try_from(baseline.len()).map_err(|_| BundleError::BaselineLength {
            expected: required_baseline_len(&self.recipe),
            found: u32::MAX,
        })?;
        let p = u32::try_from(self.params.len()).map_err(|_| BundleError::ParamCount {
            expected: param_count(&self.shape),
            found: u32::MAX,
        })?;
        Ok((b, p))
    }

    /// Length of the encoding in bytes (saturating at `usize::MAX`).
    pub fn encoded_len(&self) -> usize {
        let b = self.baseline.map_or(0, <[f32]>::len);
        saturate_usize(total_len_u64(b as u64, self.params.len() as u64))
    }

    /// The header bytes.
    fn header(&self, baseline_len: u32, param_count: u32) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        let r = &self.recipe;
        let s = &self.shape;
        write(&mut h, field::MAGIC, &MAGIC);
        write(&mut h, field::VERSION, &FORMAT_VERSION.to_le_bytes());
        write(
            &mut h,
            field::HEADER_LEN,
            &(HEADER_LEN as u16).to_le_bytes(),
        );
        let distribution: u8 = match s.distribution {
            Distribution::Softmax => 0,
            Distribution::Gaussian => 1,
        };
        write(&mut h, field::DISTRIBUTION, &[distribution]);
        write(&mut h, field::OBS_DIM, &s.obs_dim.to_le_bytes());
        write(&mut h, field::HIDDEN_0, &s.hidden[0].to_le_bytes());
        write(&mut h, field::HIDDEN_1, &s.hidden[1].to_le_bytes());
        write(&mut h, field::ACT_DIM, &s.act_dim.to_le_bytes());
        write(&mut h, field::ALPHA, &r.alpha.to_le_bytes());
        write(&mut h, field::STEPS, &r.steps.to_le_bytes());
        write(&mut h, field::EPISODES, &r.episodes.to_le_bytes());
        write(&mut h, field::HORIZON, &r.horizon.to_le_bytes());
        write(&mut h, field::GAMMA, &r.gamma.to_le_bytes());
        let (advantage, lambda): (u8, f32) = match r.advantage {
            Advantage::RewardToGo => (0, 0.0),
            Advantage::TimeBaseline => (1, 0.0),
            Advantage::BatchMeanBaseline => (2, 0.0),
            Advantage::LinearFeatureGae { lambda } => (3, lambda),
            Advantage::ScaledTimeBaseline => (4, 0.0),
        };
        write(&mut h, field::ADVANTAGE, &[advantage]);
        let mut flags = 0;
        if r.normalize {
            flags |= FLAG_NORMALIZE;
        }
        if let LossScale::PerStep = r.loss {
            flags |= FLAG_LOSS_PER_STEP;
        }
        write(&mut h, field::FLAGS, &[flags]);
        write(&mut h, field::GAE_LAMBDA, &lambda.to_le_bytes());
        write(&mut h, field::ACTION_SCALE, &r.action.scale.to_le_bytes());
        let clip = r.action.clip.unwrap_or(0.0);
        write(&mut h, field::ACTION_CLIP, &clip.to_le_bytes());
        write(&mut h, field::TASK, &self.task.0.to_le_bytes());
        write(&mut h, field::TRAINER, &[self.trainer.code()]);
        write(&mut h, field::SEED, &self.seed.to_le_bytes());
        write(
            &mut h,
            field::META_ITERATIONS,
            &self.meta_iterations.to_le_bytes(),
        );
        write(&mut h, field::BASELINE_LEN, &baseline_len.to_le_bytes());
        write(&mut h, field::PARAM_COUNT, &param_count.to_le_bytes());
        h
    }

    /// Encodes the bundle into the start of `out` and returns its length in bytes.
    ///
    /// Errors are the parser's (the output is parsed before returning, so the writer never
    /// produces bytes [`Bundle::parse`] rejects), plus [`BundleError::OutputTooSmall`]. On
    /// error `out` may hold a partial encoding.
    pub fn encode_into(&self, out: &mut [u8]) -> Result<usize, BundleError> {
        // A clip of Some(0.0) would encode as "no clip": reject it here, as validate does,
        // rather than let the round trip change the recipe.
        self.recipe.validate().map_err(BundleError::Recipe)?;
        let (b, p) = self.counts()?;
        let needed = saturate_usize(total_len_u64(u64::from(b), u64::from(p)));
        let got = out.len();
        let out = out
            .get_mut(..needed)
            .ok_or(BundleError::OutputTooSmall { needed, got })?;
        let (header, rest) = out
            .split_first_chunk_mut::<HEADER_LEN>()
            .ok_or(BundleError::OutputTooSmall { needed, got })?;
        *header = self.header(b, p);
        let floats = self.baseline.unwrap_or(&[]).iter().chain(self.params);
        for (dst, x) in rest.as_chunks_mut::<4>().0.iter_mut().zip(floats) {
            *dst = x.to_le_bytes();
        }
        let (body, crc) = out
            .split_last_chunk_mut::<CHECKSUM_LEN>()
            .ok_or(BundleError::OutputTooSmall { needed, got })?;
        *crc = crc32::checksum(body).to_le_bytes();
        Bundle::parse(out)?;
        Ok(needed)
    }

    /// The encoded bundle. Same rules as [`BundleSpec::encode_into`].
    #[cfg(feature = "std")]
    pub fn to_bytes(&self) -> Result<std::vec::Vec<u8>, BundleError> {
        self.recipe.validate().map_err(BundleError::Recipe)?;
        self.counts()?;
        let mut out = std::vec![0u8; self.encoded_len()];
        let n = self.encode_into(&mut out)?;
        out.truncate(n);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::Real;
    use crate::policy::PolicyError;
    use crate::rng::Rng;
    extern crate std;

    const SOFTMAX: PolicyShape = PolicyShape {
        distribution: Distribution::Softmax,
        obs_dim: 2,
        hidden: [0, 0],
        act_dim: 3,
    };
    const GAUSSIAN: PolicyShape = PolicyShape {
        distribution: Distribution::Gaussian,
        obs_dim: 2,
        hidden: [8, 4],
        act_dim: 2,
    };

    fn recipe() -> Recipe {
        Recipe {
            alpha: 0.1,
            steps: 2,
            episodes: 20,
            horizon: 5,
            gamma: 0.99,
            advantage: Advantage::RewardToGo,
            normalize: false,
            loss: LossScale::PerEpisode,
            action: ActionMap {
                scale: 0.01,
                clip: Some(0.1),
            },
        }
    }

    fn params(shape: &PolicyShape) -> std::vec::Vec<f32> {
        (0..shape.n_params())
            .map(|i| (i as f32 - 3.5) * 0.37)
            .collect()
    }

    fn spec<'s>(shape: PolicyShape, params: &'s [f32]) -> BundleSpec<'s> {
        BundleSpec {
            shape,
            recipe: recipe(),
            task: TaskId::NAV2D,
            trainer: Trainer::SgMrl,
            seed: 0x0123_4567_89AB_CDEF,
            meta_iterations: 500,
            baseline: None,
            params,
        }
    }

    /// The writer into a `Vec`, without needing the `std` feature.
    fn encode(s: &BundleSpec<'_>) -> Result<std::vec::Vec<u8>, BundleError> {
        let mut out = std::vec![0u8; s.encoded_len()];
        let n = s.encode_into(&mut out)?;
        out.truncate(n);
        Ok(out)
    }

    fn valid(shape: PolicyShape) -> std::vec::Vec<u8> {
        encode(&spec(shape, &params(&shape))).unwrap()
    }

    fn reseal(bytes: &mut [u8]) {
        let n = bytes.len() - CHECKSUM_LEN;
        let crc = crc32::checksum(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
    }

    /// `bytes` with `edit` applied and the CRC recomputed, so the edit is what the parser
    /// sees.
    fn edited(shape: PolicyShape, edit: impl FnOnce(&mut std::vec::Vec<u8>)) -> std::vec::Vec<u8> {
        let mut b = valid(shape);
        edit(&mut b);
        reseal(&mut b);
        b
    }

    fn parse_err(bytes: &[u8]) -> BundleError {
        Bundle::parse(bytes).unwrap_err()
    }

    fn put(b: &mut [u8], at: usize, src: &[u8]) {
        b[at..at + src.len()].copy_from_slice(src);
    }

    fn assert_round_trip(s: &BundleSpec<'_>) {
        let bytes = encode(s).unwrap();
        assert_eq!(bytes.len(), s.encoded_len());
        assert_eq!(
            bytes.len(),
            encoded_len(&s.shape, s.baseline.map_or(0, <[f32]>::len))
        );
        let b = Bundle::parse(&bytes).unwrap();
        assert_eq!(b.shape(), s.shape);
        assert_eq!(b.recipe(), s.recipe);
        assert_eq!(b.task(), s.task);
        assert_eq!(b.trainer(), s.trainer);
        assert_eq!(b.seed(), s.seed);
        assert_eq!(b.meta_iterations(), s.meta_iterations);
        assert_eq!(b.len(), bytes.len());
        assert_eq!(b.as_bytes(), &bytes[..]);
        let got: std::vec::Vec<u32> = b.params().iter().map(f32::to_bits).collect();
        let want: std::vec::Vec<u32> = s.params.iter().map(|x| x.to_bits()).collect();
        assert_eq!(got, want);
        match (b.baseline(), s.baseline) {
            (None, None) => {}
            (Some(got), Some(want)) => {
                let got: std::vec::Vec<u32> = got.iter().map(f32::to_bits).collect();
                let want: std::vec::Vec<u32> = want.iter().map(|x| x.to_bits()).collect();
                assert_eq!(got, want);
            }
            other => panic!("baseline mismatch: {other:?}"),
        }
        let crc = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap());
        assert_eq!(b.checksum(), crc);
    }

    #[test]
    fn bundle_crc_is_the_zlib_crc32() {
        assert_eq!(crc32::checksum(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn param_count_matches_policy_layout() {
        for distribution in [Distribution::Softmax, Distribution::Gaussian] {
            for obs_dim in [1u16, 2, 7] {
                for hidden in [[0u16, 0], [5, 0], [5, 3], [100, 100]] {
                    for act_dim in [1u16, 2, 4] {
                        let s = PolicyShape {
                            distribution,
                            obs_dim,
                            hidden,
                            act_dim,
                        };
                        assert_eq!(param_count(&s), s.n_params() as u64, "{s:?}");
                    }
                }
            }
        }
        let huge = PolicyShape {
            distribution: Distribution::Gaussian,
            obs_dim: u16::MAX,
            hidden: [u16::MAX, u16::MAX],
            act_dim: u16::MAX,
        };
        // Exceeds u32: such a bundle can only fail its count check, never overflow.
        assert!(param_count(&huge) > u64::from(u32::MAX));
    }

    #[test]
    fn round_trip_softmax_without_baseline() {
        let p = params(&SOFTMAX);
        assert_round_trip(&spec(SOFTMAX, &p));
    }

    #[test]
    fn round_trip_gaussian_with_time_baseline() {
        let p = params(&GAUSSIAN);
        let baseline = [1.0f32, -2.5, 0.125, 3.0e-7, -0.0];
        let s = BundleSpec {
            recipe: Recipe {
                advantage: Advantage::TimeBaseline,
                loss: LossScale::PerStep,
                ..recipe()
            },
            trainer: Trainer::EMaml,
            task: TaskId(0x1234),
            baseline: Some(&baseline),
            ..spec(GAUSSIAN, &p)
        };
        assert_round_trip(&s);
    }

    /// Code 4, the per-goal scaled table: carries the table, normalised or not, and is
    /// refused without it.
    #[test]
    fn round_trip_scaled_time_baseline() {
        let p = params(&GAUSSIAN);
        let baseline = [-1.0f32, -0.75, -0.5, -0.25, 0.0];
        for normalize in [false, true] {
            let s = BundleSpec {
                recipe: Recipe {
                    advantage: Advantage::ScaledTimeBaseline,
                    normalize,
                    ..recipe()
                },
                baseline: Some(&baseline),
                ..spec(GAUSSIAN, &p)
            };
            assert_round_trip(&s);
            let bytes = encode(&s).unwrap();
            assert_eq!(bytes[field::ADVANTAGE], 4);
            assert_eq!(
                Bundle::parse(&bytes)
                    .unwrap()
                    .baseline()
                    .unwrap()
                    .iter()
                    .count(),
                5
            );
        }
        let missing = BundleSpec {
            recipe: Recipe {
                advantage: Advantage::ScaledTimeBaseline,
                ..recipe()
            },
            ..spec(GAUSSIAN, &p)
        };
        assert!(matches!(
            encode(&missing),
            Err(BundleError::BaselineLength {
                expected: 5,
                found: 0
            })
        ));
    }

    #[test]
    fn round_trip_softmax_with_baseline_and_gaussian_gae() {
        let p = params(&SOFTMAX);
        let baseline = [0.5f32; 5];
        assert_round_trip(&BundleSpec {
            recipe: Recipe {
                advantage: Advantage::TimeBaseline,
                ..recipe()
            },
            baseline: Some(&baseline),
            ..spec(SOFTMAX, &p)
        });
        let p = params(&GAUSSIAN);
        assert_round_trip(&BundleSpec {
            recipe: Recipe {
                advantage: Advantage::LinearFeatureGae { lambda: 0.97 },
                normalize: true,
                action: ActionMap {
                    scale: 0.5,
                    clip: None,
                },
                ..recipe()
            },
            trainer: Trainer::FoMaml,
            ..spec(GAUSSIAN, &p)
        });
    }

    #[test]
    fn parses_at_an_odd_address() {
        let bytes = valid(GAUSSIAN);
        let mut buf = std::vec![0u8; bytes.len() + 3];
        for shift in 1..4 {
            buf[shift..shift + bytes.len()].copy_from_slice(&bytes);
            let b = Bundle::parse(&buf[shift..shift + bytes.len()]).unwrap();
            assert_eq!(b.params().get(5), Some(params(&GAUSSIAN)[5]));
            assert_eq!(b.shape(), GAUSSIAN);
        }
    }

    #[test]
    fn golden_bytes_match_the_spec_example() {
        // The example of docs/bundle.md: softmax 2→3 linear policy, reward-to-go recipe.
        let p: std::vec::Vec<f32> = (0..9).map(|i| i as f32 * 0.5 - 2.0).collect();
        let s = BundleSpec {
            shape: SOFTMAX,
            recipe: Recipe {
                alpha: 0.5,
                steps: 1,
                episodes: 10,
                horizon: 50,
                gamma: 1.0,
                advantage: Advantage::RewardToGo,
                normalize: false,
                loss: LossScale::PerEpisode,
                action: ActionMap::IDENTITY,
            },
            task: TaskId::NAV2D_DISCRETE,
            trainer: Trainer::SgMrl,
            seed: 42,
            meta_iterations: 1000,
            baseline: None,
            params: &p,
        };
        let bytes = encode(&s).unwrap();
        let hex: std::string::String = bytes.iter().map(|b| std::format!("{b:02x}")).collect();
        // One line per row group of the offset table, one word per field.
        let want = [
            "53474d4c 0100 4c00",                   // magic, version 1, header length 76
            "00 00 0200 0000 0000 0300 0000",       // softmax, 2 → [0, 0] → 3, pad
            "0000003f 0100 0a00 3200 0000",         // α 0.5, ζ 1, N 10, H 50, pad
            "0000803f 00 00 0000 00000000",         // γ 1, reward-to-go, flags, pad, λ
            "0000803f 00000000",                    // action scale 1, no clip
            "0200 01 00 2a00000000000000 e8030000", // task, trainer, pad, seed, iters
            "00000000 09000000",                    // baseline_len 0, param_count 9
            "000000c0 0000c0bf 000080bf 000000bf 00000000", // params -2 … 0
            "0000003f 0000803f 0000c03f 00000040",  // params 0.5 … 2
            "0e516a86",                             // CRC-32 0x866A510E
        ]
        .concat()
        .replace(' ', "");
        assert_eq!(bytes.len(), 116);
        assert_eq!(hex, want);
        assert_eq!(Bundle::parse(&bytes).unwrap().checksum(), 0x866A_510E);
    }

    #[test]
    fn fields_sit_at_the_documented_offsets() {
        // Literal offsets from the table of docs/bundle.md, for the fields the example
        // leaves at zero.
        let p = params(&GAUSSIAN);
        let baseline = [7.0f32; 5];
        let s = BundleSpec {
            recipe: Recipe {
                advantage: Advantage::LinearFeatureGae { lambda: 0.97 },
                normalize: true,
                loss: LossScale::PerStep,
                ..recipe()
            },
            trainer: Trainer::EMaml,
            ..spec(GAUSSIAN, &p)
        };
        let b = encode(&s).unwrap();
        assert_eq!(b[8], 1);
        assert_eq!(&b[12..16], &[8, 0, 4, 0]);
        assert_eq!(b[36], 3);
        assert_eq!(b[37], 0b11);
        assert_eq!(&b[40..44], &0.97f32.to_le_bytes());
        assert_eq!(&b[44..48], &0.01f32.to_le_bytes());
        assert_eq!(&b[48..52], &0.1f32.to_le_bytes());
        assert_eq!(b[54], 5);
        assert_eq!(&b[56..64], &0x0123_4567_89AB_CDEFu64.to_le_bytes());
        assert_eq!(&b[64..68], &500u32.to_le_bytes());
        assert_eq!(&b[72..76], &(p.len() as u32).to_le_bytes());
        assert_eq!(b.len(), 80 + 4 * p.len());
        let s = BundleSpec {
            recipe: Recipe {
                advantage: Advantage::TimeBaseline,
                ..recipe()
            },
            baseline: Some(&baseline),
            ..spec(GAUSSIAN, &p)
        };
        let b = encode(&s).unwrap();
        assert_eq!(b[36], 1);
        assert_eq!(&b[68..72], &5u32.to_le_bytes());
        assert_eq!(&b[76..80], &7.0f32.to_le_bytes());
        assert_eq!(&b[96..100], &p[0].to_le_bytes());
        assert_eq!(b.len(), 80 + 4 * (5 + p.len()));
    }

    #[test]
    fn declared_len_reads_the_header_alone() {
        let mut bytes = valid(SOFTMAX);
        let n = bytes.len();
        bytes.extend_from_slice(&[0xFF; 16]);
        assert_eq!(declared_len(&bytes), Ok(n));
        assert!(Bundle::parse(&bytes[..declared_len(&bytes).unwrap()]).is_ok());
    }

    #[test]
    fn truncated_input_reports_the_needed_length() {
        let bytes = valid(SOFTMAX);
        let n = bytes.len();
        assert_eq!(
            parse_err(&bytes[..n - 1]),
            BundleError::Truncated {
                needed: n,
                got: n - 1
            }
        );
        assert_eq!(
            parse_err(&bytes[..HEADER_LEN]),
            BundleError::Truncated {
                needed: n,
                got: HEADER_LEN
            }
        );
        assert_eq!(
            parse_err(&bytes[..10]),
            BundleError::Truncated {
                needed: MIN_LEN,
                got: 10
            }
        );
        assert_eq!(
            parse_err(&[]),
            BundleError::Truncated {
                needed: MIN_LEN,
                got: 0
            }
        );
    }

    #[test]
    fn bad_magic() {
        let b = edited(SOFTMAX, |b| b[0] = b'X');
        assert_eq!(parse_err(&b), BundleError::BadMagic { found: *b"XGML" });
    }

    #[test]
    fn unsupported_version() {
        let b = edited(SOFTMAX, |b| put(b, field::VERSION, &2u16.to_le_bytes()));
        assert_eq!(parse_err(&b), BundleError::UnsupportedVersion { found: 2 });
    }

    #[test]
    fn wrong_header_length() {
        let b = edited(SOFTMAX, |b| put(b, field::HEADER_LEN, &80u16.to_le_bytes()));
        assert_eq!(
            parse_err(&b),
            BundleError::HeaderLength {
                expected: 76,
                found: 80
            }
        );
    }

    #[test]
    fn trailing_bytes() {
        let mut b = valid(SOFTMAX);
        let n = b.len();
        b.extend_from_slice(&[0, 0, 0, 0]);
        reseal(&mut b);
        assert_eq!(
            parse_err(&b),
            BundleError::TrailingBytes {
                expected: n,
                found: n + 4
            }
        );
    }

    #[test]
    fn corrupted_byte_is_a_checksum_error() {
        let mut b = valid(GAUSSIAN);
        let stored = u32::from_le_bytes(b[b.len() - 4..].try_into().unwrap());
        b[HEADER_LEN + 3] ^= 0x10;
        let computed = crc32::checksum(&b[..b.len() - 4]);
        assert_eq!(
            parse_err(&b),
            BundleError::Checksum {
                expected: stored,
                computed
            }
        );
        // A flipped bit in a code field is caught by the CRC before the code is read.
        let mut b = valid(GAUSSIAN);
        b[field::DISTRIBUTION] = 7;
        assert!(matches!(parse_err(&b), BundleError::Checksum { .. }));
    }

    #[test]
    fn reserved_bits_name_their_byte() {
        let b = edited(SOFTMAX, |b| b[field::RESERVED_POLICY] = 1);
        assert_eq!(parse_err(&b), BundleError::Reserved { offset: 9, bits: 1 });
        let b = edited(SOFTMAX, |b| b[field::FLAGS] = 0x83);
        assert_eq!(
            parse_err(&b),
            BundleError::Reserved {
                offset: 37,
                bits: 0x80
            }
        );
        for at in [18, 19, 30, 31, 38, 39, 55] {
            let b = edited(SOFTMAX, |b| b[at] = 0x40);
            assert_eq!(
                parse_err(&b),
                BundleError::Reserved {
                    offset: at,
                    bits: 0x40
                }
            );
        }
    }

    #[test]
    fn unknown_codes() {
        let b = edited(SOFTMAX, |b| b[field::DISTRIBUTION] = 2);
        assert_eq!(parse_err(&b), BundleError::UnknownDistribution(2));
        let b = edited(SOFTMAX, |b| b[field::ADVANTAGE] = 5);
        assert_eq!(parse_err(&b), BundleError::UnknownAdvantage(5));
        let b = edited(SOFTMAX, |b| b[field::TRAINER] = 7);
        assert_eq!(parse_err(&b), BundleError::UnknownTrainer(7));
    }

    #[test]
    fn bad_shape() {
        let b = edited(SOFTMAX, |b| put(b, field::HIDDEN_1, &4u16.to_le_bytes()));
        assert_eq!(
            parse_err(&b),
            BundleError::BadShape(PolicyShape {
                hidden: [0, 4],
                ..SOFTMAX
            })
        );
        let b = edited(SOFTMAX, |b| put(b, field::ACT_DIM, &1u16.to_le_bytes()));
        assert!(matches!(parse_err(&b), BundleError::BadShape(_)));
    }

    #[test]
    fn lambda_only_with_gae() {
        let b = edited(SOFTMAX, |b| {
            put(b, field::GAE_LAMBDA, &(-0.0f32).to_le_bytes())
        });
        assert_eq!(
            parse_err(&b),
            BundleError::UnexpectedLambda { bits: 0x8000_0000 }
        );
        // With code 3 the same field is λ, range-checked by the recipe.
        let b = edited(SOFTMAX, |b| {
            b[field::ADVANTAGE] = 3;
            put(b, field::GAE_LAMBDA, &1.5f32.to_le_bytes());
        });
        assert_eq!(parse_err(&b), BundleError::Recipe(RecipeError::Lambda));
    }

    #[test]
    fn recipe_out_of_range() {
        let b = edited(SOFTMAX, |b| put(b, field::ALPHA, &(-1.0f32).to_le_bytes()));
        assert_eq!(parse_err(&b), BundleError::Recipe(RecipeError::Alpha));
        let b = edited(SOFTMAX, |b| put(b, field::STEPS, &0u16.to_le_bytes()));
        assert_eq!(parse_err(&b), BundleError::Recipe(RecipeError::Steps));
        let b = edited(SOFTMAX, |b| put(b, field::GAMMA, &f32::NAN.to_le_bytes()));
        assert_eq!(parse_err(&b), BundleError::Recipe(RecipeError::Gamma));
        // -0.0 is not "no clip": it is a clip, and not a positive one.
        let b = edited(SOFTMAX, |b| {
            put(b, field::ACTION_CLIP, &(-0.0f32).to_le_bytes())
        });
        assert_eq!(parse_err(&b), BundleError::Recipe(RecipeError::ActionMap));
    }

    #[test]
    fn param_count_inconsistent_with_shape() {
        let n = SOFTMAX.n_params() as u32;
        let b = edited(SOFTMAX, |b| {
            put(b, field::PARAM_COUNT, &(n - 1).to_le_bytes());
            b.truncate(b.len() - 4);
        });
        assert_eq!(
            parse_err(&b),
            BundleError::ParamCount {
                expected: u64::from(n),
                found: n - 1
            }
        );
    }

    #[test]
    fn baseline_length_inconsistent_with_recipe() {
        // A baseline without the time-baseline rule.
        let b = edited(SOFTMAX, |b| {
            put(b, field::BASELINE_LEN, &1u32.to_le_bytes());
            b.extend_from_slice(&[0; 4]);
        });
        assert_eq!(
            parse_err(&b),
            BundleError::BaselineLength {
                expected: 0,
                found: 1
            }
        );
        // The time-baseline rule with no table.
        let b = edited(SOFTMAX, |b| b[field::ADVANTAGE] = 1);
        assert_eq!(
            parse_err(&b),
            BundleError::BaselineLength {
                expected: 5,
                found: 0
            }
        );
    }

    #[test]
    fn non_finite_floats_name_section_and_index() {
        let b = edited(SOFTMAX, |b| {
            put(b, HEADER_LEN + 4 * 7, &f32::NAN.to_le_bytes())
        });
        assert_eq!(
            parse_err(&b),
            BundleError::NonFinite {
                section: Section::Params,
                index: 7
            }
        );
        let p = params(&SOFTMAX);
        let baseline = [0.0f32; 5];
        let mut b = encode(&BundleSpec {
            recipe: Recipe {
                advantage: Advantage::TimeBaseline,
                ..recipe()
            },
            baseline: Some(&baseline),
            ..spec(SOFTMAX, &p)
        })
        .unwrap();
        put(&mut b, HEADER_LEN + 4 * 2, &f32::NEG_INFINITY.to_le_bytes());
        reseal(&mut b);
        assert_eq!(
            parse_err(&b),
            BundleError::NonFinite {
                section: Section::Baseline,
                index: 2
            }
        );
    }

    struct Fixed<const D: u8>;

    impl<const D: u8> Policy for Fixed<D> {
        const SHAPE: PolicyShape = if D == 0 { SOFTMAX } else { GAUSSIAN };
        fn sample<T: Real, S: crate::policy::ParamSource<T>>(
            &self,
            _: S,
            _: &[T],
            _: &mut Rng,
            _: &mut [T],
        ) -> Result<(), PolicyError> {
            Err(PolicyError::NonFiniteInput)
        }
        fn mode<T: Real, S: crate::policy::ParamSource<T>>(
            &self,
            _: S,
            _: &[T],
            _: &mut [T],
        ) -> Result<(), PolicyError> {
            Err(PolicyError::NonFiniteInput)
        }
        fn log_prob<T: Real, S: crate::policy::ParamSource<T>>(
            &self,
            _: S,
            _: &[T],
            _: &[T],
        ) -> Result<T, PolicyError> {
            Err(PolicyError::NonFiniteInput)
        }
        fn accumulate_grad_log_prob<T: Real, S: crate::policy::ParamSource<T>>(
            &self,
            _: S,
            _: &[T],
            _: &[T],
            _: T,
            _: &mut [T],
        ) -> Result<T, PolicyError> {
            Err(PolicyError::NonFiniteInput)
        }
    }

    #[test]
    fn check_policy_compares_shapes() {
        let bytes = valid(SOFTMAX);
        let b = Bundle::parse(&bytes).unwrap();
        assert_eq!(b.check_policy::<Fixed<0>>(), Ok(()));
        assert_eq!(
            b.check_policy::<Fixed<1>>(),
            Err(BundleError::PolicyMismatch {
                expected: GAUSSIAN,
                found: SOFTMAX
            })
        );
    }

    #[test]
    fn writer_rejects_what_the_parser_would() {
        let p = params(&SOFTMAX);
        let short = &p[..p.len() - 1];
        assert_eq!(
            encode(&spec(SOFTMAX, short)),
            Err(BundleError::ParamCount {
                expected: p.len() as u64,
                found: short.len() as u32
            })
        );
        let mut nan = p.clone();
        nan[3] = f32::NAN;
        assert_eq!(
            encode(&spec(SOFTMAX, &nan)),
            Err(BundleError::NonFinite {
                section: Section::Params,
                index: 3
            })
        );
        let s = BundleSpec {
            recipe: Recipe {
                advantage: Advantage::TimeBaseline,
                ..recipe()
            },
            ..spec(SOFTMAX, &p)
        };
        assert_eq!(
            encode(&s),
            Err(BundleError::BaselineLength {
                expected: 5,
                found: 0
            })
        );
        let zero_clip = BundleSpec {
            recipe: Recipe {
                action: ActionMap {
                    scale: 1.0,
                    clip: Some(0.0),
                },
                ..recipe()
            },
            ..spec(SOFTMAX, &p)
        };
        assert_eq!(
            encode(&zero_clip),
            Err(BundleError::Recipe(RecipeError::ActionMap))
        );
        let bad = BundleSpec {
            shape: PolicyShape {
                obs_dim: 0,
                ..SOFTMAX
            },
            ..spec(SOFTMAX, &p)
        };
        assert!(matches!(encode(&bad), Err(BundleError::BadShape(_))));
    }

    #[test]
    fn encode_into_a_fixed_buffer() {
        let p = params(&SOFTMAX);
        let s = spec(SOFTMAX, &p);
        const N: usize = encoded_len(&SOFTMAX, 0);
        let mut buf = [0u8; N + 8];
        assert_eq!(s.encode_into(&mut buf), Ok(N));
        assert_eq!(&buf[..N], &encode(&s).unwrap()[..]);
        assert_eq!(
            s.encode_into(&mut buf[..N - 1]),
            Err(BundleError::OutputTooSmall {
                needed: N,
                got: N - 1
            })
        );
    }

    #[test]
    fn errors_display_their_numbers() {
        let e = BundleError::Truncated {
            needed: 120,
            got: 7,
        };
        assert_eq!(
            std::format!("{e}"),
            "bundle truncated: needs 120 bytes, got 7"
        );
        let e = BundleError::Recipe(RecipeError::Steps);
        assert!(std::format!("{e}").contains("1..=64"));
    }

    #[cfg(feature = "std")]
    #[test]
    fn to_bytes_equals_encode_into() {
        let p = params(&GAUSSIAN);
        let s = spec(GAUSSIAN, &p);
        assert_eq!(s.to_bytes(), encode(&s));
        let short = spec(GAUSSIAN, &p[1..]);
        assert!(matches!(
            short.to_bytes(),
            Err(BundleError::ParamCount { .. })
        ));
    }
}
