//! The core's differential-drive robot simulator as task families: a task is a robot
//! (motor gains, dead-band, battery sag, geometry, encoder scale) and a goal, drawn by
//! [`DiffDriveTask::sample`]; every episode starts at rest at the origin of the pose at
//! `reset` (no environment randomness), with the nominal spec and no gyro.

use sgmrl::rng::Rng;
use sgmrl::sim::DiffDrive;
use sgmrl::sim::diffdrive::{CommandSet, DiffDriveSpec, DiffDriveTask, OBS_DIM};

use super::TaskFamily;

/// A differential-drive task family taking wheel commands of `commands`' kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiffDriveFamily {
    /// Discrete (softmax) or continuous (Gaussian) wheel commands.
    pub commands: CommandSet,
}

impl DiffDriveFamily {
    /// One task's simulated robot.
    pub fn env(commands: CommandSet, task: &DiffDriveTask) -> DiffDrive {
        DiffDrive::new(DiffDriveSpec::NOMINAL, *task, commands, false)
    }
}

impl TaskFamily for DiffDriveFamily {
    type Task = DiffDriveTask;
    type Env = DiffDrive;
    fn obs_dim(&self) -> usize {
        OBS_DIM
    }
    fn action_width(&self) -> usize {
        self.commands.action_width()
    }
    fn sample_task(&self, rng: &mut Rng) -> DiffDriveTask {
        DiffDriveTask::sample(rng)
    }
    fn make_env(&self, task: &DiffDriveTask, _rng: Rng) -> DiffDrive {
        Self::env(self.commands, task)
    }
}
