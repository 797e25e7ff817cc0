//! Checkpoints: everything needed to continue a meta-training run bit for bit.
//!
//! # Format (version 1), little-endian
//! ```text
//! magic "SGMRLCKP" (8 bytes) | version u32 | header_len u32 | header (UTF-8 JSON)
//! | arrays: f32 values, in the order and lengths the header lists | CRC-32 u32
//! ```
//! The header is self-describing: iteration, the configuration (as TOML) and its
//! training hash, cumulative wall time and environment steps, the optimiser's kind and
//! step count, and `arrays: [{name, len}]` naming each array (`params`, then the
//! optimiser's buffers). The CRC-32 (ISO-HDLC, as zlib's) covers every byte before it.
//! Floats are stored as raw bits, so parameters and optimiser moments survive exactly.
//! Files are written with [`crate::atomic`], so a crash never leaves a truncated
//! checkpoint; a damaged one is a [`CheckpointError`], never a silent misread.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigBuilder};

/// File magic.
pub const MAGIC: [u8; 8] = *b"SGMRLCKP";
/// Format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Name of the parameter array.
const PARAMS: &str = "params";
/// Prefix of the optimiser's arrays.
const OPT_PREFIX: &str = "optimizer.";

/// The outer optimiser's state, opaque to the run plumbing: a kind, a step counter and
/// named `f32` buffers (Adam: `m`, `v`; SGD: none).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    /// Which optimiser (`adam`, `sgd`).
    pub kind: String,
    /// Steps taken (Adam's bias-correction counter).
    pub step: u64,
    /// Named buffers, each `P` long for Adam's moments.
    pub buffers: Vec<(String, Vec<f32>)>,
}

/// A saved run state.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Meta-iterations completed (the next one to run has this index).
    pub iteration: u64,
    /// The run's configuration.
    pub config: Config,
    /// Meta-parameters after `iteration` iterations.
    pub params: Vec<f32>,
    /// Outer optimiser state after `iteration` iterations.
    pub optimizer: OptimizerState,
    /// Wall time spent training so far, seconds (summed over resumed sessions).
    pub wall_time_s: f64,
    /// Environment steps taken so far.
    pub env_steps: u64,
}

/// What is wrong with a checkpoint file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointErrorKind {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(std::io::Error),
    /// Not a checkpoint.
    #[error("not an sgmrl checkpoint (bad magic)")]
    BadMagic,
    /// A format version this build does not read.
    #[error("checkpoint format version {found} unsupported (this build reads {VERSION})")]
    UnsupportedVersion {
        /// Version found.
        found: u32,
    },
    /// Shorter than its header says.
    #[error("checkpoint truncated: needs {needed} bytes, has {got}")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// Longer than its header says.
    #[error("checkpoint has {extra} trailing bytes")]
    TrailingBytes {
        /// Bytes beyond the declared end.
        extra: usize,
    },
    /// The CRC does not match: the file was damaged.
    #[error("checkpoint corrupt: checksum stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// CRC in the file.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// The header is not valid JSON of the expected form, or its configuration is invalid.
    #[error("checkpoint header invalid: {0}")]
    Header(String),
    /// The stored configuration hash does not match the stored configuration.
    #[error(
        "checkpoint config hash {stored:016x} does not match its configuration ({computed:016x})"
    )]
    HashMismatch {
        /// Hash in the header.
        stored: u64,
        /// Hash of the stored configuration.
        computed: u64,
    },
    /// The parameter array does not fit the configuration's policy.
    #[error("checkpoint holds {found} parameters, its policy needs {expected}")]
    ParamCount {
        /// Parameters the policy needs.
        expected: usize,
        /// Parameters stored.
        found: usize,
    },
    /// Some stored value is NaN or infinite.
    #[error("checkpoint array `{array}` holds a non-finite value at {index}")]
    NonFinite {
        /// Array name.
        array: String,
        /// Index of the first bad value.
        index: usize,
    },
}

/// A checkpoint error with the file it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct CheckpointError {
    /// The checkpoint file.
    pub path: PathBuf,
    /// What is wrong (in the message, not also `source()`).
    pub kind: CheckpointErrorKind,
}

impl From<std::io::Error> for CheckpointErrorKind {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    iteration: u64,
    config_hash: String,
    config: String,
    wall_time_s: f64,
    env_steps: u64,
    optimizer_kind: String,
    optimizer_step: u64,
    arrays: Vec<ArrayInfo>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArrayInfo {
    name: String,
    len: usize,
}

fn crc32(bytes: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(bytes)
}

impl Checkpoint {
    /// Encodes the checkpoint.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut arrays: Vec<(String, &[f32])> = vec![(PARAMS.to_string(), &self.params)];
        for (name, values) in &self.optimizer.buffers {
            arrays.push((format!("{OPT_PREFIX}{name}"), values));
        }
        let header = Header {
            iteration: self.iteration,
            config_hash: format!("{:016x}", self.config.training_hash()),
            config: self.config.to_toml(),
            wall_time_s: self.wall_time_s,
            env_steps: self.env_steps,
            optimizer_kind: self.optimizer.kind.clone(),
            optimizer_step: self.optimizer.step,
            arrays: arrays
                .iter()
                .map(|(name, v)| ArrayInfo {
                    name: name.clone(),
                    len: v.len(),
                })
                .collect(),
        };
        // A header of strings and numbers always serialises.
        let json = serde_json::to_vec(&header).unwrap_or_default();
        let mut out = Vec::with_capacity(
            20 + json.len() + 4 * arrays.iter().map(|(_, v)| v.len()).sum::<usize>(),
        );
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        for (_, v) in &arrays {
            for x in v.iter() {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks a checkpoint.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CheckpointErrorKind> {
        use CheckpointErrorKind as K;
        let got = bytes.len();
        let magic = bytes.get(..8).ok_or(K::BadMagic)?;
        if magic != MAGIC {
            return Err(K::BadMagic);
        }
        let u32_at = |at: usize| -> Result<u32, K> {
            bytes
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or(K::Truncated {
                    needed: at + 4,
                    got,
                })
        };
        let version = u32_at(8)?;
        if version != VERSION {
            return Err(K::UnsupportedVersion { found: version });
        }
        let header_len = u32_at(12)? as usize;
        let header_end = 16 + header_len;
        let header_bytes = bytes.get(16..header_end).ok_or(K::Truncated {
            needed: header_end + 4,
            got,
        })?;
        // The CRC cannot be located before the header is read, so a damaged header is
        // caught either here (as bad JSON) or by the length and CRC checks below.
        let header: Header = serde_json::from_slice(header_bytes)
            .map_err(|e| K::Header(crate::config::one_line(&e.to_string())))?;
        let floats: usize = header.arrays.iter().map(|a| a.len).sum();
        let body_end = header_end + 4 * floats;
        let needed = body_end + 4;
        if got < needed {
            return Err(K::Truncated { needed, got });
        }
        if got > needed {
            return Err(K::TrailingBytes {
                extra: got - needed,
            });
        }
        let stored = u32_at(body_end)?;
        let computed = crc32(bytes.get(..body_end).unwrap_or_default());
        if stored != computed {
            return Err(K::Checksum { stored, computed });
        }
        let config = ConfigBuilder::new()
            .file_text("stored config", &header.config)
            .and_then(|b| b.build())
            .map_err(|e| K::Header(e.to_string()))?;
        let stored_hash = u64::from_str_radix(&header.config_hash, 16)
            .map_err(|_| K::Header(format!("config_hash `{}` is not hex", header.config_hash)))?;
        let computed_hash = config.training_hash();
        if stored_hash != computed_hash {
            return Err(K::HashMismatch {
                stored: stored_hash,
                computed: computed_hash,
            });
        }
        let mut at = header_end;
        let mut params = None;
        let mut buffers = Vec::new();
        for info in &header.arrays {
            let raw = bytes.get(at..at + 4 * info.len).unwrap_or_default();
            at += 4 * info.len;
            let values: Vec<f32> = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if let Some(index) = values.iter().position(|x| !x.is_finite()) {
                return Err(K::NonFinite {
                    array: info.name.clone(),
                    index,
                });
            }
            if info.name == PARAMS && params.is_none() {
                params = Some(values);
            } else if let Some(name) = info.name.strip_prefix(OPT_PREFIX) {
                buffers.push((name.to_string(), values));
            } else {
                return Err(K::Header(format!("unexpected array `{}`", info.name)));
            }
        }
        let params = params.ok_or_else(|| K::Header("no `params` array".into()))?;
        let expected = config.shape().n_params();
        if params.len() != expected {
            return Err(K::ParamCount {
                expected,
                found: params.len(),
            });
        }
        Ok(Self {
            iteration: header.iteration,
            config,
            params,
            optimizer: OptimizerState {
                kind: header.optimizer_kind,
                step: header.optimizer_step,
                buffers,
            },
            wall_time_s: header.wall_time_s,
            env_steps: header.env_steps,
        })
    }

    /// Writes the checkpoint atomically.
    pub fn save(&self, path: &Path) -> Result<(), crate::atomic::WriteError> {
        crate::atomic::write(path, &self.to_bytes())
    }

    /// Reads and checks a checkpoint file.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let err = |kind| CheckpointError {
            path: path.to_path_buf(),
            kind,
        };
        let bytes = std::fs::read(path).map_err(|e| err(e.into()))?;
        Self::from_bytes(&bytes).map_err(err)
    }

    /// True when `bytes` start like a checkpoint (for commands taking either kind of file).
    pub fn sniff(bytes: &[u8]) -> bool {
        bytes.starts_with(&MAGIC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;

    fn sample() -> Checkpoint {
        let config = Preset::Embedded.config();
        let p = config.shape().n_params();
        Checkpoint {
            iteration: 17,
            params: (0..p).map(|i| (i as f32 * 0.37).sin() / 3.0).collect(),
            optimizer: OptimizerState {
                kind: "adam".into(),
                step: 17,
                buffers: vec![
                    ("m".into(), (0..p).map(|i| i as f32 * 1e-3).collect()),
                    ("v".into(), (0..p).map(|i| 1e-9 + i as f32 * 1e-7).collect()),
                ],
            },
            config,
            wall_time_s: 12.5,
            env_steps: 123_456,
        }
    }

    #[test]
    fn round_trips_exactly() {
        let c = sample();
        let bytes = c.to_bytes();
        let back = Checkpoint::from_bytes(&bytes).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        let bytes = sample().to_bytes();
        for n in 0..bytes.len() {
            assert!(
                Checkpoint::from_bytes(&bytes[..n]).is_err(),
                "truncated to {n}"
            );
        }
        // A flip anywhere is caught (payload and CRC by the CRC; header by JSON, lengths
        // or CRC); sample a stride of positions to keep the test fast.
        for i in (0..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(Checkpoint::from_bytes(&b).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn typed_errors_for_version_magic_and_trailing_bytes() {
        let mut b = sample().to_bytes();
        b[8] = 2;
        assert!(matches!(
            Checkpoint::from_bytes(&b),
            Err(CheckpointErrorKind::UnsupportedVersion { found: 2 })
        ));
        assert!(matches!(
            Checkpoint::from_bytes(b"SGML\x01\x00"),
            Err(CheckpointErrorKind::BadMagic)
        ));
        let mut b = sample().to_bytes();
        b.push(0);
        assert!(matches!(
            Checkpoint::from_bytes(&b),
            Err(CheckpointErrorKind::TrailingBytes { extra: 1 })
        ));
    }

    #[test]
    fn load_names_the_file() {
        let e = Checkpoint::load(Path::new("/nonexistent/ckpt.sgck")).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("/nonexistent/ckpt.sgck: cannot read"), "{s}");
    }
}
