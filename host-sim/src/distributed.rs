//! Meta-training and sweeps spread over the processes of a [`Cluster`] (an MPI job).
//!
//! **Training.** Rank 0 (the leader) runs [`crate::train::train`] as on one machine and owns
//! everything a restart needs: optimiser state, logs, checkpoints. Each meta-iteration it
//! broadcasts `(iteration, θ)`; every rank adapts its contiguous block of the meta-batch's
//! tasks ([`cluster::block`]) with [`MetaTrainer::run_tasks`], all ranks exchange the
//! tasks' few summary numbers (every control variate needs every task's `Ĵ`), each rank
//! forms its tasks' estimates, and they are gathered on rank 0 in task order and reduced by
//! [`MetaTrainer::combine`], the single-process reduction. Streams are keyed by (iteration,
//! task), so the bundle is bit-identical for any number of ranks. The other ranks
//! (workers) keep nothing between iterations but the configuration.
//!
//! **Sweeps.** [`spread`] runs independent jobs (whole training runs) round-robin over the
//! ranks and gathers their results on rank 0 in job order.
//!
//! A process that fails sends its failure as data at the next collective, so no rank waits
//! forever; a process that dies is the launcher's to notice (Open MPI's `mpirun` then ends
//! the job).

use std::rc::Rc;

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::checkpoint::OptimizerState;
use crate::cluster::{self, Cluster};
use crate::config::{Config, ConfigBuilder};
use crate::envs::TaskFamily;
use crate::meta::baseline::{self, TaskSums};
use crate::meta::trainer::{TaskSummary, all_unstable};
use crate::meta::{IterationStats as MetaStats, MetaTrainer};
use crate::train::{Engine, EngineInit, IterationStats};
use crate::wiring::{MetaEngine, TrainerVisitor, with_trainer};

/// What the leader broadcasts before each step of the protocol.
#[derive(Clone, Debug, PartialEq)]
enum Command {
    /// The job is over (or failed on rank 0, which reports why).
    Stop,
    /// The resolved configuration, as TOML.
    Setup(String),
    /// Run meta-iteration `iteration` at `params`.
    Run { iteration: u64, params: Vec<f32> },
}

impl Command {
    fn encode(&self) -> Vec<u8> {
        match self {
            Self::Stop => vec![0],
            Self::Setup(toml) => [&[1u8][..], toml.as_bytes()].concat(),
            Self::Run { iteration, params } => {
                let mut m = Vec::with_capacity(9 + 4 * params.len());
                m.push(2);
                m.extend_from_slice(&iteration.to_le_bytes());
                m.extend(params.iter().flat_map(|x| x.to_le_bytes()));
                m
            }
        }
    }

    fn decode(m: &[u8]) -> anyhow::Result<Self> {
        match m.split_first() {
            Some((0, [])) => Ok(Self::Stop),
            Some((1, toml)) => Ok(Self::Setup(
                String::from_utf8(toml.to_vec()).context("configuration is not UTF-8")?,
            )),
            Some((2, rest)) if rest.len() >= 8 && (rest.len() - 8) % 4 == 0 => {
                let (it, params) = rest.split_at(8);
                let mut b = [0u8; 8];
                b.copy_from_slice(it);
                Ok(Self::Run {
                    iteration: u64::from_le_bytes(b),
                    params: f32s(params),
                })
            }
            _ => bail!("malformed command from rank 0 ({} bytes)", m.len()),
        }
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

const SUMMARY_BYTES: usize = 4 + 1 + 4 + 4 + 4 + 8;

/// What a rank reports of one of its tasks.
#[derive(Clone, Debug, PartialEq)]
enum Slot {
    /// The task ran: its summary.
    Ran(TaskSummary),
    /// Its simulation diverged (the error): the task is left out, as on one process.
    Diverged(String),
}

/// A rank's tasks' slots (`[0, …]`: per task `0` and a summary or `1`, a length and a
/// message), or its failure (`[1, message]`).
fn encode_slots(r: &Result<Vec<Slot>, String>) -> Vec<u8> {
    match r {
        Err(msg) => [&[1u8][..], msg.as_bytes()].concat(),
        Ok(slots) => {
            let mut m = Vec::with_capacity(1 + (1 + SUMMARY_BYTES) * slots.len());
            m.push(0);
            for slot in slots {
                match slot {
                    Slot::Ran(t) => {
                        m.push(0);
                        m.extend_from_slice(&t.jt.to_le_bytes());
                        m.push(u8::from(t.pre_adaptation_return.is_some()));
                        m.extend_from_slice(&t.pre_adaptation_return.unwrap_or(0.0).to_le_bytes());
                        m.extend_from_slice(&t.return_before.to_le_bytes());
                        m.extend_from_slice(&t.return_after.to_le_bytes());
                        m.extend_from_slice(&t.env_steps.to_le_bytes());
                    }
                    Slot::Diverged(e) => {
                        m.push(1);
                        m.extend_from_slice(&(e.len() as u64).to_le_bytes());
                        m.extend_from_slice(e.as_bytes());
                    }
                }
            }
            m
        }
    }
}

fn decode_slots(m: &[u8]) -> Result<Vec<Slot>, String> {
    let malformed = || format!("malformed task summaries ({} bytes)", m.len());
    let mut rest = match m.split_first() {
        Some((1, msg)) => return Err(String::from_utf8_lossy(msg).into_owned()),
        Some((0, rest)) => rest,
        _ => return Err(malformed()),
    };
    let mut slots = Vec::new();
    while let Some((&tag, body)) = rest.split_first() {
        match tag {
            0 => {
                let (c, tail) = body.split_at_checked(SUMMARY_BYTES).ok_or_else(malformed)?;
                let f = |at: usize| f32::from_le_bytes([c[at], c[at + 1], c[at + 2], c[at + 3]]);
                let mut steps = [0u8; 8];
                steps.copy_from_slice(&c[17..25]);
                slots.push(Slot::Ran(TaskSummary {
                    jt: f(0),
                    pre_adaptation_return: (c[4] == 1).then(|| f(5)),
                    return_before: f(9),
                    return_after: f(13),
                    env_steps: u64::from_le_bytes(steps),
                }));
                rest = tail;
            }
            1 => {
                let (len, tail) = body.split_at_checked(8).ok_or_else(malformed)?;
                let mut b = [0u8; 8];
                b.copy_from_slice(len);
                let len = usize::try_from(u64::from_le_bytes(b)).map_err(|_| malformed())?;
                let (e, tail) = tail.split_at_checked(len).ok_or_else(malformed)?;
                slots.push(Slot::Diverged(String::from_utf8_lossy(e).into_owned()));
                rest = tail;
            }
            _ => return Err(malformed()),
        }
    }
    Ok(slots)
}

/// A rank's tasks' shares of the time-baseline fit (`[0, …]`: per task `H` sums, then
/// `H` counts) or its failure (`[1, message]`).
fn encode_sums(r: &Result<Vec<TaskSums>, String>) -> Vec<u8> {
    match r {
        Err(msg) => [&[1u8][..], msg.as_bytes()].concat(),
        Ok(tasks) => {
            let mut m = vec![0u8];
            for t in tasks {
                m.extend(t.sums.iter().flat_map(|x| x.to_le_bytes()));
                m.extend(t.counts.iter().flat_map(|x| x.to_le_bytes()));
            }
            m
        }
    }
}

fn decode_sums(m: &[u8], horizon: usize) -> Result<Vec<TaskSums>, String> {
    let per_task = 16 * horizon;
    match m.split_first() {
        Some((1, msg)) => Err(String::from_utf8_lossy(msg).into_owned()),
        Some((0, rest)) if per_task > 0 && rest.len() % per_task == 0 => Ok(rest
            .chunks_exact(per_task)
            .map(|c| {
                let (sums, counts) = c.split_at(8 * horizon);
                let word = |b: &[u8]| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(b);
                    w
                };
                TaskSums {
                    sums: sums
                        .chunks_exact(8)
                        .map(|b| f64::from_le_bytes(word(b)))
                        .collect(),
                    counts: counts
                        .chunks_exact(8)
                        .map(|b| u64::from_le_bytes(word(b)))
                        .collect(),
                }
            })
            .collect()),
        _ => Err(format!("malformed time-baseline sums ({} bytes)", m.len())),
    }
}

/// The `TimeBaseline` table of the trainer's next iteration, fitted over the cluster:
/// each rank fits its block of tasks and every rank joins all the tasks' sums in task
/// order, so every rank holds the single-process table, bit for bit, for `1/R` of the
/// fit's sampling. `None` when the configuration fits no table. A failure on any rank
/// fails the call on every rank.
fn collective_baseline<F: TaskFamily>(
    cluster: &dyn Cluster,
    trainer: &MetaTrainer<F>,
) -> anyhow::Result<Option<Vec<f32>>> {
    if !trainer.fits_time_baseline() {
        return Ok(None);
    }
    let tasks = trainer.config().tasks;
    let horizon = usize::from(trainer.config().recipe.horizon);
    let ranks = cluster.ranks();
    let mine = trainer
        .time_baseline_sums(cluster::block(cluster.rank(), ranks, tasks))
        .map_err(|e| e.to_string());
    let gathered = cluster.all_gather(&encode_sums(&mine));
    let mut all = Vec::with_capacity(tasks);
    for (r, m) in gathered.iter().enumerate() {
        let s = decode_sums(m, horizon).map_err(|e| anyhow!("rank {r}: {e}"))?;
        let want = cluster::block(r, ranks, tasks).len();
        if s.len() != want {
            bail!(
                "rank {r} sent {} tasks' time-baseline sums, expected {want}",
                s.len()
            );
        }
        all.extend(s);
    }
    Ok(Some(baseline::table_of(horizon, &all)))
}

/// One meta-gradient over the cluster: every rank calls it with the same trainer state;
/// rank 0 gets the gradient and the statistics, the others `None`. A task whose
/// simulation diverged is left out on every rank, as on one process (the same tasks, the
/// same mean over the others, the same bits); any other failure of a task on any rank
/// fails the call on every rank (with that rank's message), as does every task diverging.
fn collective_gradient<F: TaskFamily>(
    cluster: &dyn Cluster,
    trainer: &MetaTrainer<F>,
) -> anyhow::Result<Option<(Vec<f32>, MetaStats)>> {
    let start = std::time::Instant::now();
    let tasks = trainer.config().tasks;
    let (rank, ranks) = (cluster.rank(), cluster.ranks());
    let mine = cluster::block(rank, ranks, tasks);
    let baseline = collective_baseline(cluster, trainer)?;
    let local = trainer
        .run_stable_tasks(mine.clone(), baseline.as_deref())
        .map_err(|e| e.to_string());
    let slots = local
        .as_ref()
        .map(|(runs, unstable)| {
            let mut runs = runs.iter();
            let mut unstable = unstable.iter().peekable();
            mine.clone()
                .filter_map(|i| match unstable.next_if(|(j, _)| *j == i) {
                    Some((_, e)) => Some(Slot::Diverged(e.clone())),
                    None => runs.next().map(|r| Slot::Ran(TaskSummary::of(r))),
                })
                .collect::<Vec<_>>()
        })
        .map_err(Clone::clone);
    let gathered = cluster.all_gather(&encode_slots(&slots));
    let (mut all, mut unstable, mut offset) = (Vec::with_capacity(tasks), Vec::new(), 0);
    for (r, m) in gathered.iter().enumerate() {
        let s = decode_slots(m).map_err(|e| anyhow!("rank {r}: {e}"))?;
        let block = cluster::block(r, ranks, tasks);
        if s.len() != block.len() {
            bail!(
                "rank {r} sent {} task summaries, expected {}",
                s.len(),
                block.len()
            );
        }
        if r == rank {
            offset = all.len();
        }
        for (i, slot) in block.zip(s) {
            match slot {
                Slot::Ran(t) => all.push(t),
                Slot::Diverged(e) => unstable.push((i, e)),
            }
        }
    }
    let (runs, _) = local.map_err(|e| anyhow!("rank {rank}: {e}"))?;
    if all.is_empty() {
        bail!("{}", all_unstable(&unstable));
    }
    let baselines = trainer.config().control_variate.baselines_of(&all);
    let n = runs.len();
    let estimates = trainer.estimates(runs, baselines.get(offset..offset + n).unwrap_or_default());
    let bytes: Vec<u8> = estimates
        .iter()
        .flat_map(|e| e.iter().flat_map(|x| x.to_le_bytes()))
        .collect();
    let Some(parts) = cluster.gather(&bytes) else {
        return Ok(None);
    };
    let p = trainer.net().n_params();
    let estimates: Vec<Vec<f32>> = parts
        .iter()
        .flat_map(|m| m.chunks(4 * p.max(1)).map(f32s))
        .collect();
    let (grad, mut stats) = trainer
        .combine_stable(&all, &estimates, unstable.len())
        .map_err(|e| anyhow!("{e}"))?;
    stats.unstable = unstable;
    stats.elapsed = start.elapsed();
    Ok(Some((grad, stats)))
}

/// Rank 0's [`Engine`]: the single-process engine (its optimiser and checkpoint state),
/// with the meta-gradient computed by every rank.
struct Leader<F: TaskFamily> {
    local: MetaEngine<F>,
    cluster: Rc<dyn Cluster>,
}

impl<F: TaskFamily> Engine for Leader<F> {
    fn iteration(&mut self, params: &mut [f32], iteration: u64) -> anyhow::Result<IterationStats> {
        let trainer = &mut self.local.0;
        // Before the broadcast: a failure here must leave the workers waiting for a command.
        trainer
            .set_state(params, iteration)
            .map_err(|e| anyhow!("{e}"))?;
        let mut m = Command::Run {
            iteration,
            params: params.to_vec(),
        }
        .encode();
        self.cluster.broadcast(&mut m);
        let (grad, s) = collective_gradient(self.cluster.as_ref(), trainer)?
            .ok_or_else(|| anyhow!("rank 0 received no meta-gradient"))?;
        crate::wiring::warn_unstable(iteration, &s, trainer.config().tasks);
        trainer.ascend(&grad).map_err(|e| anyhow!("{e}"))?;
        params.copy_from_slice(trainer.params());
        Ok(IterationStats {
            return_before: s.return_before,
            returns_after: vec![s.return_after],
            env_steps: s.env_steps,
        })
    }
    fn optimizer_state(&self) -> OptimizerState {
        self.local.optimizer_state()
    }
    fn restore_optimizer_state(&mut self, state: &OptimizerState) -> anyhow::Result<()> {
        self.local.restore_optimizer_state(state)
    }
}

struct LeaderVisitor(Rc<dyn Cluster>);
impl TrainerVisitor for LeaderVisitor {
    type Output = EngineInit;
    fn visit<F: TaskFamily + 'static>(
        self,
        trainer: MetaTrainer<F>,
        params: Vec<f32>,
    ) -> anyhow::Result<EngineInit> {
        Ok(EngineInit {
            engine: Box::new(Leader {
                local: MetaEngine(trainer),
                cluster: self.0,
            }),
            params,
        })
    }
}

/// Tells the workers to stop when rank 0's `train` command ends, however it ends.
pub struct StopOnDrop(pub Rc<dyn Cluster>);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.broadcast(&mut Command::Stop.encode());
    }
}

/// Checks that `config` can be spread over the cluster's ranks.
pub fn check_ranks(cluster: &dyn Cluster, config: &Config) -> anyhow::Result<()> {
    let (ranks, tasks) = (cluster.ranks(), config.meta_batch);
    if ranks > tasks as usize {
        bail!(
            "{ranks} MPI ranks but only {tasks} tasks per meta-batch (meta_batch): each rank needs at least one task; run with at most {tasks} ranks"
        );
    }
    Ok(())
}

/// Rank 0's engine factory: builds the engine, then sends the configuration to the
/// workers (only once rank 0 knows it is valid, so a worker never fails to build it).
pub fn leader_engine(cluster: Rc<dyn Cluster>, config: &Config) -> anyhow::Result<EngineInit> {
    check_ranks(cluster.as_ref(), config)?;
    let init = with_trainer(config, LeaderVisitor(cluster.clone()))?;
    cluster.broadcast(&mut Command::Setup(config.to_toml()).encode());
    Ok(init)
}

struct WorkerVisitor<'c>(&'c dyn Cluster);
impl TrainerVisitor for WorkerVisitor<'_> {
    /// Iterations served.
    type Output = u64;
    fn visit<F: TaskFamily + 'static>(
        self,
        mut trainer: MetaTrainer<F>,
        _params: Vec<f32>,
    ) -> anyhow::Result<u64> {
        let mut served = 0;
        loop {
            let mut m = Vec::new();
            self.0.broadcast(&mut m);
            match Command::decode(&m)? {
                Command::Stop => return Ok(served),
                Command::Setup(_) => bail!("rank 0 sent a second configuration"),
                Command::Run { iteration, params } => {
                    trainer
                        .set_state(&params, iteration)
                        .map_err(|e| anyhow!("{e}"))?;
                    // A failure is already known to every rank (rank 0 reports it and stops).
                    let _ = collective_gradient(self.0, &trainer);
                    served += 1;
                }
            }
        }
    }
}

/// A worker's side of `sgmrl train`: waits for rank 0's configuration, then computes its
/// block of tasks each iteration until rank 0 says stop. A worker that cannot follow the
/// protocol ends the whole job (after saying why) rather than leave rank 0 waiting. With
/// `report`, it says on stderr at the end how many bytes it sent.
pub fn serve(cluster: &dyn Cluster, report: bool) -> anyhow::Result<()> {
    let mut m = Vec::new();
    cluster.broadcast(&mut m);
    let result = match Command::decode(&m) {
        Ok(Command::Stop) => return Ok(()),
        Ok(Command::Setup(toml)) => ConfigBuilder::new()
            .file_text("configuration from rank 0", &toml)
            .and_then(|b| b.build())
            .map_err(|e| anyhow!("{e}"))
            .and_then(|config| with_trainer(&config, WorkerVisitor(cluster))),
        Ok(Command::Run { .. }) => {
            Err(anyhow!("rank 0 sent an iteration before the configuration"))
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(served) => {
            if report {
                eprintln!("{}", traffic(cluster, served));
            }
            Ok(())
        }
        Err(e) => {
            eprintln!(
                "error: rank {}: {}; ending the job",
                cluster.rank(),
                crate::config::one_line(&format!("{e:#}"))
            );
            cluster.abort(1)
        }
    }
}

/// One line on what this rank sent (for the scaling figures in the README).
pub fn traffic(cluster: &dyn Cluster, iterations: u64) -> String {
    let bytes = cluster.bytes_sent();
    format!(
        "MPI rank {} of {}: {iterations} iterations, {bytes} bytes sent ({:.0} per iteration, setup included)",
        cluster.rank(),
        cluster.ranks(),
        bytes as f64 / iterations.max(1) as f64
    )
}

/// Runs jobs `0..jobs` over the cluster, job `j` on rank `j % ranks` (so long and short
/// jobs of a sweep interleave), and returns every result in job order on rank 0 (`None`
/// on the others). A rank stops running its jobs at its first failure; rank 0 then fails
/// with the failure of the lowest-numbered job. On one process this is a plain loop.
pub fn spread<R: Serialize + DeserializeOwned>(
    cluster: &dyn Cluster,
    jobs: usize,
    mut run: impl FnMut(usize) -> anyhow::Result<R>,
) -> anyhow::Result<Option<Vec<R>>> {
    let (rank, ranks) = (cluster.rank(), cluster.ranks());
    if ranks == 1 {
        return (0..jobs).map(&mut run).collect::<Result<_, _>>().map(Some);
    }
    let mut mine: Vec<(usize, Result<R, String>)> = Vec::new();
    for j in (rank..jobs).step_by(ranks) {
        let r = run(j).map_err(|e| format!("{e:#}"));
        let failed = r.is_err();
        mine.push((j, r));
        if failed {
            break;
        }
    }
    let message = serde_json::to_vec(&mine).context("cannot encode this rank's results")?;
    let Some(parts) = cluster.gather(&message) else {
        return Ok(None);
    };
    let mut all: Vec<(usize, Result<R, String>)> = Vec::with_capacity(jobs);
    for (r, m) in parts.iter().enumerate() {
        let part: Vec<(usize, Result<R, String>)> = serde_json::from_slice(m)
            .with_context(|| format!("rank {r} sent malformed results"))?;
        all.extend(part);
    }
    all.sort_by_key(|(j, _)| *j);
    if let Some((j, Err(e))) = all.iter().find(|(_, r)| r.is_err()) {
        bail!("job {j} (on rank {}): {e}", j % ranks);
    }
    if all.len() != jobs {
        bail!("{} of {jobs} sweep results arrived", all.len());
    }
    Ok(Some(all.into_iter().filter_map(|(_, r)| r.ok()).collect()))
}

/// The processes this command runs on: the MPI job when started by a launcher (MPI
/// build), otherwise this process alone. A default build started as one of several MPI
/// ranks refuses, since every rank would train the same run into the same directory; so
/// does an MPI build whose launcher started more processes than MPI sees (`srun` with a
/// PMI the MPI library was not built for starts every process as rank 0 of 1).
pub fn cluster_from_environment() -> anyhow::Result<Rc<dyn Cluster>> {
    #[cfg(feature = "mpi")]
    if cluster::launched_by_mpi() {
        let world = cluster::MpiWorld::initialize()
            .ok_or_else(|| anyhow!("MPI was already initialised in this process"))?;
        let started = launcher_size(&["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"]);
        if let Some(n) = started
            && n > world.ranks() as u64
        {
            bail!(
                "started as one of {n} tasks, but MPI sees {} process(es): the launcher and this MPI library do not talk to each other (under srun, give the PMI the library was built for: `srun --mpi=list`, e.g. `srun --mpi=pmix`)",
                world.ranks()
            );
        }
        return Ok(Rc::new(world));
    }
    #[cfg(not(feature = "mpi"))]
    if let Some(n) = launcher_size(&["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"])
        && n > 1
    {
        bail!(
            "started as one of {n} MPI ranks, but this sgmrl was built without MPI; rebuild with `cargo build --release -p sgmrl-host --features mpi`"
        );
    }
    Ok(Rc::new(cluster::Local))
}

/// The most processes any of the launcher's `variables` says it started.
fn launcher_size(variables: &[&str]) -> Option<u64> {
    variables
        .iter()
        .filter_map(|v| std::env::var(v).ok()?.trim().parse().ok())
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_garbage_is_an_error() {
        for c in [
            Command::Stop,
            Command::Setup("seed = 3".into()),
            Command::Run {
                iteration: 7,
                params: vec![1.5, -0.0, f32::MIN_POSITIVE],
            },
        ] {
            assert_eq!(Command::decode(&c.encode()).unwrap(), c);
        }
        assert!(Command::decode(&[]).is_err());
        assert!(Command::decode(&[2, 1, 2, 3]).is_err());
        assert!(Command::decode(&[9]).is_err());
    }

    #[test]
    fn slots_round_trip_bit_for_bit() {
        let s = vec![
            Slot::Ran(TaskSummary {
                jt: -3.25,
                pre_adaptation_return: Some(f32::from_bits(0x7fc0_0001)),
                return_before: -1.0,
                return_after: 0.5,
                env_steps: u64::MAX,
            }),
            Slot::Diverged("simulator went unstable at step 3: qacc".into()),
            Slot::Ran(TaskSummary {
                jt: 1e-30,
                pre_adaptation_return: None,
                return_before: 2.0,
                return_after: 3.0,
                env_steps: 0,
            }),
            Slot::Diverged(String::new()),
        ];
        let back = decode_slots(&encode_slots(&Ok(s.clone()))).unwrap();
        assert_eq!(back.len(), 4);
        let Slot::Ran(first) = &back[0] else {
            panic!("{back:?}")
        };
        assert_eq!(first.pre_adaptation_return.unwrap().to_bits(), 0x7fc0_0001);
        assert_eq!(back[1..], s[1..]);
        assert_eq!(decode_slots(&encode_slots(&Ok(vec![]))), Ok(vec![]));
        assert_eq!(
            decode_slots(&encode_slots(&Err("boom".into()))),
            Err("boom".into())
        );
        assert!(decode_slots(&[0, 0, 1, 2]).is_err());
        assert!(decode_slots(&[0, 1, 9, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode_slots(&[0, 7]).is_err());
    }

    #[test]
    fn baseline_sums_round_trip_bit_for_bit() {
        let s = vec![
            TaskSums {
                sums: vec![-1.5, f64::from_bits(0x7ff8_0000_0000_0001)],
                counts: vec![3, u64::MAX],
            },
            TaskSums {
                sums: vec![0.0, 1e-300],
                counts: vec![0, 1],
            },
        ];
        let back = decode_sums(&encode_sums(&Ok(s.clone())), 2).unwrap();
        assert_eq!(back[0].sums[1].to_bits(), 0x7ff8_0000_0000_0001);
        assert_eq!(back[1], s[1]);
        assert_eq!(back[0].counts, s[0].counts);
        assert_eq!(
            decode_sums(&encode_sums(&Err("x".into())), 2),
            Err("x".into())
        );
        assert!(
            decode_sums(&encode_sums(&Ok(s)), 3).is_err(),
            "another horizon"
        );
    }

    #[test]
    fn spread_on_one_process_is_the_plain_loop() {
        let r = spread(&cluster::Local, 4, |j| Ok(j * 10)).unwrap();
        assert_eq!(r, Some(vec![0, 10, 20, 30]));
        let mut ran = vec![];
        let e = spread(&cluster::Local, 4, |j| {
            ran.push(j);
            if j == 1 { bail!("no") } else { Ok(j) }
        });
        assert!(e.is_err());
        assert_eq!(ran, vec![0, 1], "stops at the first failure, as before");
    }
}
