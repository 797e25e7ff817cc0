//! The processes a command runs on: one ([`Local`]) or the ranks of an MPI job
//! (`MpiWorld`, with the `mpi` feature), behind the three collectives that
//! [`crate::distributed`] needs. Messages are byte strings; rank 0 is the root of every
//! collective.
//!
//! An MPI build started without a launcher (`mpirun`, `mpiexec`, `srun`) does not
//! initialise MPI at all and runs as one process, exactly as the default build does.

use std::cell::Cell;

/// A group of processes running the same command, each with its own rank.
///
/// Every process must call the same collectives in the same order (as MPI requires); a
/// process that fails between collectives sends its failure as data instead of skipping
/// one, so the others never wait for a message that will not come.
pub trait Cluster {
    /// This process's rank, `0..ranks()`.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn ranks(&self) -> usize;
    /// Rank 0's `message` replaces every other rank's (their input is ignored).
    fn broadcast(&self, message: &mut Vec<u8>);
    /// Every rank's message, in rank order, on every rank.
    fn all_gather(&self, message: &[u8]) -> Vec<Vec<u8>>;
    /// Every rank's message, in rank order, on rank 0 (`None` elsewhere).
    fn gather(&self, message: &[u8]) -> Option<Vec<Vec<u8>>>;
    /// Payload bytes this process has sent so far (collectives count what this rank
    /// contributes; a broadcast counts once per receiving rank on the root).
    fn bytes_sent(&self) -> u64;
    /// Ends every process of the job now with `code`, after this process printed why
    /// (for a failure that leaves the ranks out of step).
    fn abort(&self, code: i32) -> !;
}

/// One process: every collective is the identity.
#[derive(Debug, Default)]
pub struct Local;

impl Cluster for Local {
    fn rank(&self) -> usize {
        0
    }
    fn ranks(&self) -> usize {
        1
    }
    fn broadcast(&self, _message: &mut Vec<u8>) {}
    fn all_gather(&self, message: &[u8]) -> Vec<Vec<u8>> {
        vec![message.to_vec()]
    }
    fn gather(&self, message: &[u8]) -> Option<Vec<Vec<u8>>> {
        Some(vec![message.to_vec()])
    }
    fn bytes_sent(&self) -> u64 {
        0
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// Environment variables one of which every MPI launcher we know sets in each process it
/// starts (Open MPI's `mpirun`, MPICH's Hydra, Slurm's `srun` with PMI-2 or PMIx).
pub const LAUNCHER_VARIABLES: [&str; 4] =
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"];

/// Whether this process was started by an MPI launcher (see [`LAUNCHER_VARIABLES`]).
pub fn launched_by_mpi() -> bool {
    LAUNCHER_VARIABLES
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// Splits `0..items` into `ranks` contiguous blocks whose sizes differ by at most one
/// (the first `items % ranks` blocks are one longer) and returns block `rank`.
pub fn block(rank: usize, ranks: usize, items: usize) -> std::ops::Range<usize> {
    let ranks = ranks.max(1);
    let (base, extra) = (items / ranks, items % ranks);
    let start = rank * base + rank.min(extra);
    let len = base + usize::from(rank < extra);
    start.min(items)..(start + len).min(items)
}

/// Counts the payload bytes a process sends.
#[derive(Debug, Default)]
pub struct ByteCounter(Cell<u64>);

impl ByteCounter {
    /// Adds `n` bytes.
    pub fn add(&self, n: usize) {
        self.0.set(self.0.get() + n as u64);
    }
    /// Bytes counted so far.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

#[cfg(feature = "mpi")]
pub use world::MpiWorld;

#[cfg(feature = "mpi")]
mod world {
    use mpi::datatype::PartitionMut;
    use mpi::environment::Universe;
    use mpi::topology::{Communicator, SimpleCommunicator};
    use mpi::traits::*;

    use super::{ByteCounter, Cluster};

    /// The ranks of the MPI job this process belongs to (`MPI_COMM_WORLD`). Dropping the
    /// last handle finalises MPI.
    pub struct MpiWorld {
        world: SimpleCommunicator,
        sent: ByteCounter,
        // Finalises MPI when dropped, after `world`.
        _universe: Universe,
    }

    impl std::fmt::Debug for MpiWorld {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "MpiWorld(rank {} of {})", self.rank(), self.ranks())
        }
    }

    impl MpiWorld {
        /// Initialises MPI (funnelled: only the main thread calls it; rayon's workers
        /// never do). `None` when MPI was initialised already.
        pub fn initialize() -> Option<Self> {
            let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)?;
            Some(Self {
                world: universe.world(),
                sent: ByteCounter::default(),
                _universe: universe,
            })
        }

        fn counts(&self, len: usize) -> Vec<i32> {
            let mine = i32::try_from(len).unwrap_or(i32::MAX);
            let mut all = vec![0i32; self.ranks()];
            self.world.all_gather_into(&mine, &mut all[..]);
            all
        }
    }

    fn displacements(counts: &[i32]) -> Vec<i32> {
        counts
            .iter()
            .scan(0i32, |at, &c| {
                let d = *at;
                *at = at.saturating_add(c);
                Some(d)
            })
            .collect()
    }

    fn split(buf: &[u8], counts: &[i32]) -> Vec<Vec<u8>> {
        let mut at = 0usize;
        counts
            .iter()
            .map(|&c| {
                let c = usize::try_from(c).unwrap_or(0);
                let part = buf.get(at..at + c).unwrap_or_default().to_vec();
                at += c;
                part
            })
            .collect()
    }

    impl Cluster for MpiWorld {
        fn rank(&self) -> usize {
            usize::try_from(self.world.rank()).unwrap_or(0)
        }
        fn ranks(&self) -> usize {
            usize::try_from(self.world.size()).unwrap_or(1)
        }
        fn broadcast(&self, message: &mut Vec<u8>) {
            let root = self.world.process_at_rank(0);
            let mut len = message.len() as u64;
            root.broadcast_into(&mut len);
            message.resize(usize::try_from(len).unwrap_or(0), 0);
            root.broadcast_into(&mut message[..]);
            if self.rank() == 0 {
                self.sent.add((8 + message.len()) * (self.ranks() - 1));
            }
        }
        fn all_gather(&self, message: &[u8]) -> Vec<Vec<u8>> {
            let counts = self.counts(message.len());
            let displs = displacements(&counts);
            let total: i32 = counts.iter().sum();
            let mut buf = vec![0u8; usize::try_from(total).unwrap_or(0)];
            {
                let mut part = PartitionMut::new(&mut buf[..], &counts[..], &displs[..]);
                self.world.all_gather_varcount_into(message, &mut part);
            }
            self.sent.add(4 + message.len());
            split(&buf, &counts)
        }
        fn gather(&self, message: &[u8]) -> Option<Vec<Vec<u8>>> {
            let counts = self.counts(message.len());
            let root = self.world.process_at_rank(0);
            if self.rank() != 0 {
                self.sent.add(4 + message.len());
                root.gather_varcount_into(message);
                return None;
            }
            let displs = displacements(&counts);
            let total: i32 = counts.iter().sum();
            let mut buf = vec![0u8; usize::try_from(total).unwrap_or(0)];
            {
                let mut part = PartitionMut::new(&mut buf[..], &counts[..], &displs[..]);
                root.gather_varcount_into_root(message, &mut part);
            }
            self.sent.add(4);
            Some(split(&buf, &counts))
        }
        fn bytes_sent(&self) -> u64 {
            self.sent.get()
        }
        fn abort(&self, code: i32) -> ! {
            self.world.abort(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_every_item_once_in_order() {
        for items in 0..12 {
            for ranks in 1..6 {
                let blocks: Vec<_> = (0..ranks).map(|r| block(r, ranks, items)).collect();
                let flat: Vec<usize> = blocks.iter().flat_map(|b| b.clone()).collect();
                assert_eq!(flat, (0..items).collect::<Vec<_>>(), "{items} over {ranks}");
                let lens: Vec<usize> = blocks.iter().map(|b| b.len()).collect();
                let (lo, hi) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
                assert!(hi - lo <= 1, "{lens:?}");
            }
        }
        assert_eq!(block(0, 3, 20), 0..7);
        assert_eq!(block(2, 3, 20), 14..20);
    }

    #[test]
    fn local_collectives_are_the_identity() {
        let l = Local;
        let mut m = b"x".to_vec();
        l.broadcast(&mut m);
        assert_eq!(m, b"x");
        assert_eq!(l.all_gather(b"ab"), vec![b"ab".to_vec()]);
        assert_eq!(l.gather(b"c"), Some(vec![b"c".to_vec()]));
    }
}
