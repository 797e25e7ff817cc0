//! A differential-drive robot: two driven wheels, unicycle kinematics, first-order motors.
//!
//! This module holds everything the simulator and a real robot ([`crate::robot`]) share,
//! so that a policy sees the same quantities in both:
//!
//! - [`wheel_commands`]: the policy's action → a signed command in `[−1, 1]` per wheel
//!   (the duty cycle a motor driver writes). Softmax policies pick one of
//!   [`DISCRETE_COMMANDS`] (index 0 is stop, as the adapter's safe action requires);
//!   Gaussian policies give both commands directly ([`CommandSet::Continuous`]).
//! - [`count_delta`]: wrapping encoder counts → signed counts since the previous tick.
//! - [`Odometry`]: encoder counts (and optionally a gyro's yaw rate) → an estimated
//!   [`Pose`] and wheel speeds, with the *nominal* geometry of a [`DiffDriveSpec`].
//! - [`observe`], [`reward`]: odometry → observation, odometry pose and goal → reward.
//!
//! The simulator [`DiffDrive`] goes through simulated encoder counts → [`Odometry`] too,
//! so an encoder scale error or a wheel radius off its nominal value corrupts the
//! simulated robot's belief exactly as it corrupts a real one's.
//!
//! # The task
//! A task is one robot ([`RobotVariation`]: what real robots differ in) and one goal
//! ([`DiffDriveTask::goal`], metres, in the frame of the pose at `reset`). The goal is not
//! in the observation: as in [`crate::sim::Nav2d`], the policy learns where it is from the
//! reward, and that, plus motors that do not answer commands equally, is what adaptation
//! on the robot is for.
//!
//! | quantity | value |
//! |---|---|
//! | observation ([`OBS_DIM`] = 6) | odometry `x`, `y` (m), `cos θ`, `sin θ`, left and right wheel speed / [`DiffDriveSpec::max_speed_m_s`] |
//! | action | 1 index into [`DISCRETE_COMMANDS`], or 2 commands (left, right) in `[−1, 1]` |
//! | reward per step | progress: `‖goal − p‖₂ − ‖goal − p'‖₂` of the odometry positions before and after the step (m) |
//! | done | odometry position within [`GOAL_TOLERANCE_M`] of the goal |
//!
//! # Motor model
//! A command `c` becomes a wheel speed through the dead-band `d` (`|c| ≤ d` does not turn
//! the wheel, above it the speed grows with `|c| − d`), the battery's supply fraction
//! `1 − sag·(|c_l| + |c_r|)/2` (the supply sags under load), the motor's gain and
//! [`DiffDriveSpec::max_wheel_speed_rad_s`]; the wheel approaches that target speed with
//! time constant [`DiffDriveSpec::motor_time_constant_s`] (exactly, for a command held
//! over the control period).

use crate::env::{Env, Transition};
use crate::rng::Rng;
use core::convert::Infallible;
use core::f32::consts::PI;

/// Observation length (see the module table).
pub const OBS_DIM: usize = 6;

/// The episode ends when the odometry position is this close to the goal (m).
pub const GOAL_TOLERANCE_M: f32 = 0.03;

/// The wheel commands `[left, right]` of each discrete action index: stop, forward,
/// arc left, arc right, spin left, spin right. Index 0 is stop (the adapter's safe action).
pub const DISCRETE_COMMANDS: [[f32; 2]; 6] = [
    [0.0, 0.0],
    [0.8, 0.8],
    [0.4, 0.8],
    [0.8, 0.4],
    [-0.6, 0.6],
    [0.6, -0.6],
];

/// How the policy's action maps to wheel commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CommandSet {
    /// One scalar: an index into [`DISCRETE_COMMANDS`] (softmax policies).
    Discrete,
    /// Two scalars: the left and right commands, clamped to `[−1, 1]` (Gaussian policies).
    Continuous,
}

impl CommandSet {
    /// Scalars per action.
    pub const fn action_width(self) -> usize {
        match self {
            Self::Discrete => 1,
            Self::Continuous => 2,
        }
    }

    /// Number of actions a softmax head needs (`None` for continuous commands).
    pub const fn n_actions(self) -> Option<usize> {
        match self {
            Self::Discrete => Some(DISCRETE_COMMANDS.len()),
            Self::Continuous => None,
        }
    }
}

/// The wheel commands `[left, right]`, each in `[−1, 1]`, for `action`.
///
/// Malformed actions mean "stop": a discrete index that is not an integer in range, a NaN
/// continuous command (per wheel), a missing scalar. Infinite commands saturate.
pub fn wheel_commands(set: CommandSet, action: &[f32]) -> [f32; 2] {
    match set {
        CommandSet::Discrete => action
            .first()
            .and_then(|&x| {
                // Casting first and comparing back rejects NaN, fractions and out-of-range.
                let i = x as usize;
                (x >= 0.0 && i as f32 == x).then_some(i)
            })
            .and_then(|i| DISCRETE_COMMANDS.get(i).copied())
            .unwrap_or([0.0; 2]),
        CommandSet::Continuous => {
            let mut c = [0.0f32; 2];
            for (c, &a) in c.iter_mut().zip(action) {
                *c = if a.is_nan() { 0.0 } else { a.clamp(-1.0, 1.0) };
            }
            c
        }
    }
}

/// Signed counts from `prev` to `now` of a wrapping counter `bits` wide (1..=32; other
/// widths are treated as 32). A counter that moved more than half its range between two
/// reads is indistinguishable from one that moved backwards: callers bound the plausible
/// change per tick well below that (see [`DiffDriveSpec::max_counts_per_tick`]).
pub const fn count_delta(prev: u32, now: u32, bits: u32) -> i32 {
    let shift = if bits >= 1 && bits < 32 { 32 - bits } else { 0 };
    // Shifting the wrapped difference to the top and back sign-extends it from `bits`.
    ((now.wrapping_sub(prev) << shift) as i32) >> shift
}

/// The nominal robot: what the firmware's odometry assumes and the simulator's centre.
///
/// [`DiffDriveSpec::NOMINAL`] is a small robot of the Pololu 3pi+ 2040's size (32 mm
/// wheels, a track of about 86 mm, 12 counts per motor revolution through a 29.86:1
/// gearbox); measure your own robot and set these.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DiffDriveSpec {
    /// Wheel radius (m).
    pub wheel_radius_m: f32,
    /// Distance between the wheels' contact points (m).
    pub track_width_m: f32,
    /// Encoder counts per wheel revolution.
    pub counts_per_wheel_rev: f32,
    /// Wheel speed at command 1 with a full battery and nominal gain (rad/s).
    pub max_wheel_speed_rad_s: f32,
    /// First-order motor time constant (s).
    pub motor_time_constant_s: f32,
    /// The policy's control period (s): one `Env::step`.
    pub control_period_s: f32,
}

impl DiffDriveSpec {
    /// See the type's docs.
    pub const NOMINAL: Self = Self {
        wheel_radius_m: 0.016,
        track_width_m: 0.086,
        counts_per_wheel_rev: 358.32,
        max_wheel_speed_rad_s: 25.0,
        motor_time_constant_s: 0.1,
        control_period_s: 0.1,
    };

    /// Ground speed of a wheel at full nominal speed (m/s); scales the observed speeds.
    pub fn max_speed_m_s(&self) -> f32 {
        self.max_wheel_speed_rad_s * self.wheel_radius_m
    }

    /// Encoder counts per metre travelled by a wheel of nominal radius.
    pub fn counts_per_metre(&self) -> f32 {
        self.counts_per_wheel_rev / (2.0 * PI * self.wheel_radius_m)
    }

    /// The largest count change per control period a healthy encoder can report: twice
    /// the nominal full speed (a robot off the ground, a hot motor, a strong battery),
    /// plus 2 counts of quantisation. A larger change is a glitch, a missed read or an
    /// overflow, and the robot reports it rather than driving on a wrong pose.
    pub fn max_counts_per_tick(&self) -> u32 {
        let c =
            2.0 * self.max_wheel_speed_rad_s * self.control_period_s * self.counts_per_wheel_rev
                / (2.0 * PI);
        // `as` saturates (NaN → 0): a nonsensical spec gives a limit that rejects motion.
        (libm::ceilf(c) as u32).saturating_add(2)
    }
}

/// A planar pose: position (m) and heading (rad, counter-clockwise from `+x`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Pose {
    /// x (m).
    pub x: f32,
    /// y (m).
    pub y: f32,
    /// Heading (rad), wrapped to `(−π, π]`.
    pub heading: f32,
}

impl Pose {
    /// Moves by `ds` along the mean heading of a step that turns by `dtheta` (midpoint
    /// rule; exact for a straight line and a spin in place).
    fn advance(&mut self, ds: f32, dtheta: f32) {
        let mid = self.heading + 0.5 * dtheta;
        self.x += ds * libm::cosf(mid);
        self.y += ds * libm::sinf(mid);
        self.heading = wrap_angle(self.heading + dtheta);
    }
}

/// `a` wrapped to `(−π, π]`.
fn wrap_angle(a: f32) -> f32 {
    let w = libm::remainderf(a, 2.0 * PI);
    if w <= -PI { w + 2.0 * PI } else { w }
}

/// Dead reckoning from encoder counts, in the nominal geometry of a [`DiffDriveSpec`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Odometry {
    pose: Pose,
    wheel_speed_m_s: [f32; 2],
}

impl Odometry {
    /// At the origin, heading 0, at rest: the state at `reset`.
    pub const fn zero() -> Self {
        Self {
            pose: Pose {
                x: 0.0,
                y: 0.0,
                heading: 0.0,
            },
            wheel_speed_m_s: [0.0; 2],
        }
    }

    /// The estimated pose.
    pub const fn pose(&self) -> Pose {
        self.pose
    }

    /// The estimated wheel ground speeds `[left, right]` over the last period (m/s).
    pub const fn wheel_speed_m_s(&self) -> [f32; 2] {
        self.wheel_speed_m_s
    }

    /// Integrates one control period: `delta_counts` `[left, right]` since the previous
    /// update, and the gyro's yaw rate (rad/s) if there is one. With a gyro, the heading
    /// follows the gyro (wheels slip, a gyro does not); without one, the wheels'
    /// difference over the track width.
    pub fn update(&mut self, spec: &DiffDriveSpec, delta_counts: [i32; 2], yaw_rate: Option<f32>) {
        let per_m = spec.counts_per_metre();
        let [dl, dr] = delta_counts.map(|c| c as f32 / per_m);
        let dtheta = match yaw_rate {
            Some(w) => w * spec.control_period_s,
            None => (dr - dl) / spec.track_width_m,
        };
        self.pose.advance(0.5 * (dl + dr), dtheta);
        self.wheel_speed_m_s = [dl, dr].map(|d| d / spec.control_period_s);
    }
}

/// Writes the observation of `odometry` (the module table) into the first [`OBS_DIM`]
/// scalars of `obs` (a shorter `obs` gets a prefix).
pub fn observe(spec: &DiffDriveSpec, odometry: &Odometry, obs: &mut [f32]) {
    let p = odometry.pose();
    let [vl, vr] = odometry.wheel_speed_m_s();
    let v = spec.max_speed_m_s();
    let values = [
        p.x,
        p.y,
        libm::cosf(p.heading),
        libm::sinf(p.heading),
        vl / v,
        vr / v,
    ];
    for (o, x) in obs.iter_mut().zip(values) {
        *o = x;
    }
}

/// Distance (m) from `pose` to `goal`.
pub fn distance_to_goal(pose: &Pose, goal: [f32; 2]) -> f32 {
    let (dx, dy) = (goal[0] - pose.x, goal[1] - pose.y);
    libm::sqrtf(dx * dx + dy * dy)
}

/// The reward and termination of moving from `before` to `after` for `goal` (m, reset
/// frame): the progress `‖goal − before‖ − ‖goal − after‖` (m), so an episode's return
/// is how much closer it got. Standing still scores 0, moving away is negative: the
/// reward is centred without a baseline, which is what lets the streaming reward-to-go
/// rule (RAM for one episode) adapt with low variance.
pub fn reward(before: &Pose, after: &Pose, goal: [f32; 2]) -> Transition {
    let d = distance_to_goal(after, goal);
    Transition {
        reward: distance_to_goal(before, goal) - d,
        done: d < GOAL_TOLERANCE_M,
    }
}

/// What one physical robot differs in from [`DiffDriveSpec::NOMINAL`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RobotVariation {
    /// Motor gains `[left, right]` (speed per command, relative to nominal).
    pub motor_gain: [f32; 2],
    /// True wheel radius / nominal.
    pub wheel_radius_scale: f32,
    /// True track width / nominal.
    pub track_width_scale: f32,
    /// Counts reported / counts a nominal encoder would report (both wheels).
    pub encoder_scale: f32,
    /// Command magnitude below which a motor does not turn.
    pub dead_band: f32,
    /// Fractional supply drop at full load on both motors.
    pub battery_sag: f32,
}

impl RobotVariation {
    /// The nominal robot.
    pub const NOMINAL: Self = Self {
        motor_gain: [1.0, 1.0],
        wheel_radius_scale: 1.0,
        track_width_scale: 1.0,
        encoder_scale: 1.0,
        dead_band: 0.0,
        battery_sag: 0.0,
    };

    /// A robot drawn uniformly from: gains `U(0.4, 1.0)` each (strong asymmetry: one
    /// worn motor), radius and track `×U(0.9, 1.1)`, encoder scale `U(0.95, 1.05)`,
    /// dead-band `U(0, 0.35)`, battery sag `U(0, 0.3)`.
    pub fn sample(rng: &mut Rng) -> Self {
        let gl = rng.uniform_in(0.4, 1.0);
        let gr = rng.uniform_in(0.4, 1.0);
        Self {
            motor_gain: [gl, gr],
            wheel_radius_scale: rng.uniform_in(0.9, 1.1),
            track_width_scale: rng.uniform_in(0.9, 1.1),
            encoder_scale: rng.uniform_in(0.95, 1.05),
            dead_band: rng.uniform_in(0.0, 0.35),
            battery_sag: rng.uniform_in(0.0, 0.3),
        }
    }
}

/// One task: a robot and a goal.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DiffDriveTask {
    /// The goal (m), in the frame of the pose at `reset`.
    pub goal: [f32; 2],
    /// The robot.
    pub robot: RobotVariation,
}

impl DiffDriveTask {
    /// A goal at distance `U(0.2, 0.6)` m in a uniform direction, and a sampled robot.
    pub fn sample(rng: &mut Rng) -> Self {
        let angle = rng.uniform_in(-PI, PI);
        let dist = rng.uniform_in(0.2, 0.6);
        let goal = [dist * libm::cosf(angle), dist * libm::sinf(angle)];
        Self {
            goal,
            robot: RobotVariation::sample(rng),
        }
    }
}

/// The simulated robot, one task.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DiffDrive {
    spec: DiffDriveSpec,
    task: DiffDriveTask,
    commands: CommandSet,
    gyro: bool,
    /// Fraction of the gap to the target speed closed per period: `1 − exp(−dt/τ)`.
    response: f32,
    /// Where the robot really is (reset frame).
    truth: Pose,
    wheel_omega: [f32; 2],
    /// Encoder positions in counts (fractional), and the wrapping counters they drive.
    encoder_pos: [f32; 2],
    counts: [u32; 2],
    odometry: Odometry,
}

impl DiffDrive {
    /// Encoder counters start here at `reset`, two below a wrap, so every episode's first
    /// forward step exercises the wrapping arithmetic a real 32-bit counter needs.
    const COUNTER_START: u32 = u32::MAX - 1;

    /// The simulated robot of `task` around `spec`, taking `commands`; `gyro` makes the
    /// odometry's heading follow a perfect simulated gyro instead of the wheels.
    pub fn new(spec: DiffDriveSpec, task: DiffDriveTask, commands: CommandSet, gyro: bool) -> Self {
        let response = 1.0 - libm::expf(-spec.control_period_s / spec.motor_time_constant_s);
        Self {
            spec,
            task,
            commands,
            gyro,
            response,
            truth: Pose::default(),
            wheel_omega: [0.0; 2],
            encoder_pos: [0.0; 2],
            counts: [Self::COUNTER_START; 2],
            odometry: Odometry::zero(),
        }
    }

    /// The task.
    pub const fn task(&self) -> &DiffDriveTask {
        &self.task
    }

    /// Where the robot really is (the reward uses [`Self::odometry`]'s belief instead).
    pub const fn true_pose(&self) -> Pose {
        self.truth
    }

    /// The odometry estimate the observation and reward are computed from.
    pub const fn odometry(&self) -> &Odometry {
        &self.odometry
    }

    /// The raw wrapping encoder counters `[left, right]`.
    pub const fn counts(&self) -> [u32; 2] {
        self.counts
    }

    /// Target wheel speed (rad/s) of each wheel for `cmd`: dead-band, sag, gain.
    fn target_omega(&self, cmd: [f32; 2]) -> [f32; 2] {
        let r = &self.task.robot;
        let supply = 1.0 - r.battery_sag * 0.5 * (cmd[0].abs() + cmd[1].abs());
        let mut out = [0.0f32; 2];
        for ((o, c), g) in out.iter_mut().zip(cmd).zip(r.motor_gain) {
            let effective = (c.abs() - r.dead_band).max(0.0);
            *o = libm::copysignf(effective, c) * supply * g * self.spec.max_wheel_speed_rad_s;
        }
        out
    }
}

/// Observation [`OBS_DIM`] scalars (a shorter `obs` gets a prefix), action
/// [`CommandSet::action_width`] scalars (malformed actions mean stop, see
/// [`wheel_commands`]).
impl Env for DiffDrive {
    type Error = Infallible;

    fn obs_dim(&self) -> usize {
        OBS_DIM
    }

    fn action_width(&self) -> usize {
        self.commands.action_width()
    }

    /// The robot at rest at the origin of a new frame; its motors stopped (the robot's
    /// stop-and-settle phase, which a simulator completes at once).
    fn reset(&mut self, obs: &mut [f32]) -> Result<(), Infallible> {
        self.truth = Pose::default();
        self.wheel_omega = [0.0; 2];
        self.encoder_pos = [0.0; 2];
        self.counts = [Self::COUNTER_START; 2];
        self.odometry = Odometry::zero();
        observe(&self.spec, &self.odometry, obs);
        Ok(())
    }

    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> Result<Transition, Infallible> {
        let spec = self.spec;
        let robot = self.task.robot;
        let target = self.target_omega(wheel_commands(self.commands, action));
        // The speed reached at the period's end, and the exact angle turned over it.
        let tau = spec.motor_time_constant_s;
        let dt = spec.control_period_s;
        let mut angle = [0.0f32; 2];
        for ((w, a), t) in self.wheel_omega.iter_mut().zip(&mut angle).zip(target) {
            let w_end = *w + self.response * (t - *w);
            *a = t * dt + (*w - t) * tau * self.response;
            *w = w_end;
        }
        let radius = spec.wheel_radius_m * robot.wheel_radius_scale;
        let track = spec.track_width_m * robot.track_width_scale;
        let [dl, dr] = angle.map(|a| a * radius);
        let dtheta = (dr - dl) / track;
        self.truth.advance(0.5 * (dl + dr), dtheta);

        let counts_per_rad = spec.counts_per_wheel_rev / (2.0 * PI) * robot.encoder_scale;
        let mut delta = [0i32; 2];
        for ((pos, count), (d, a)) in self
            .encoder_pos
            .iter_mut()
            .zip(&mut self.counts)
            .zip(delta.iter_mut().zip(angle))
        {
            *pos += a * counts_per_rad;
            let new = (libm::floorf(*pos) as i32 as u32).wrapping_add(Self::COUNTER_START);
            *d = count_delta(*count, new, 32);
            *count = new;
        }
        let yaw_rate = self.gyro.then_some(dtheta / dt);
        let before = self.odometry.pose();
        self.odometry.update(&spec, delta, yaw_rate);
        observe(&spec, &self.odometry, obs);
        Ok(reward(&before, &self.odometry.pose(), self.task.goal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nominal(goal: [f32; 2], commands: CommandSet) -> DiffDrive {
        DiffDrive::new(
            DiffDriveSpec::NOMINAL,
            DiffDriveTask {
                goal,
                robot: RobotVariation::NOMINAL,
            },
            commands,
            false,
        )
    }

    fn run(env: &mut DiffDrive, action: &[f32], n: usize) -> ([f32; OBS_DIM], Transition) {
        let mut obs = [f32::NAN; OBS_DIM];
        let mut t = Transition {
            reward: 0.0,
            done: false,
        };
        for _ in 0..n {
            let Ok(tr) = env.step(action, &mut obs);
            t = tr;
        }
        (obs, t)
    }

    #[test]
    fn count_delta_wraps_at_the_counter_width() {
        assert_eq!(count_delta(u32::MAX - 1, 3, 32), 5);
        assert_eq!(count_delta(3, u32::MAX - 1, 32), -5);
        assert_eq!(count_delta(0xFFFE, 0x0003, 16), 5);
        assert_eq!(count_delta(0x0003, 0xFFFE, 16), -5);
        // Bits above the width are ignored, as a 16-bit timer read into a u32 has none.
        assert_eq!(count_delta(0x1_0000, 0x0001, 16), 1);
        assert_eq!(count_delta(0, 0x7FFF, 16), 0x7FFF);
        assert_eq!(count_delta(0, 0x8000, 16), -0x8000);
        assert_eq!(count_delta(7, 7, 0), 0);
    }

    #[test]
    fn discrete_commands_decode_and_malformed_actions_stop() {
        assert_eq!(wheel_commands(CommandSet::Discrete, &[0.0]), [0.0, 0.0]);
        for (i, c) in DISCRETE_COMMANDS.iter().enumerate() {
            assert_eq!(wheel_commands(CommandSet::Discrete, &[i as f32]), *c);
        }
        for bad in [6.0, 1.5, -1.0, f32::NAN, f32::INFINITY] {
            assert_eq!(wheel_commands(CommandSet::Discrete, &[bad]), [0.0, 0.0]);
        }
        assert_eq!(wheel_commands(CommandSet::Discrete, &[]), [0.0, 0.0]);
        let c = CommandSet::Continuous;
        assert_eq!(wheel_commands(c, &[0.3, -2.0]), [0.3, -1.0]);
        assert_eq!(wheel_commands(c, &[f32::NAN, f32::INFINITY]), [0.0, 1.0]);
        assert_eq!(wheel_commands(c, &[0.5]), [0.5, 0.0]);
    }

    #[test]
    fn nominal_robot_drives_straight_and_odometry_matches_truth() {
        let mut env = nominal([1.0, 0.0], CommandSet::Discrete);
        let mut obs = [f32::NAN; OBS_DIM];
        let Ok(()) = env.reset(&mut obs);
        assert_eq!(obs, [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        let (obs, t) = run(&mut env, &[1.0], 10);
        let truth = env.true_pose();
        // 1 s at 0.8 × 25 rad/s × 0.016 m = 0.32 m/s, minus the motor lag τ·(1 − e^−10).
        let want = 0.8 * 25.0 * 0.016 * (1.0 - 0.1 * (1.0 - libm::expf(-10.0)));
        assert!((truth.x - want).abs() < 1e-4, "{truth:?} want {want}");
        assert!(truth.y.abs() < 1e-6 && truth.heading.abs() < 1e-6);
        // Odometry is off by at most one count of quantisation per wheel.
        let per_count = 1.0 / DiffDriveSpec::NOMINAL.counts_per_metre();
        assert!((obs[0] - truth.x).abs() <= per_count, "{obs:?}");
        assert!(
            (obs[4] - 0.8).abs() < 0.02 && (obs[5] - 0.8).abs() < 0.02,
            "{obs:?}"
        );
        assert!(!t.done);
        // The last step's progress: this step's distance covered, straight at the goal.
        let mut prev = env;
        let Ok(()) = prev.reset(&mut [0.0; OBS_DIM]);
        let (before, _) = run(&mut prev, &[1.0], 9);
        assert!((t.reward - (obs[0] - before[0])).abs() < 1e-6, "{t:?}");
        assert!(t.reward > 0.0);
    }

    #[test]
    fn spinning_in_place_turns_and_gyro_heading_follows_truth() {
        for gyro in [false, true] {
            let mut env = DiffDrive::new(
                DiffDriveSpec::NOMINAL,
                DiffDriveTask {
                    goal: [0.5, 0.5],
                    robot: RobotVariation {
                        // Wheels spaced wider than nominal: the wheels over-estimate the
                        // turn, a gyro does not.
                        track_width_scale: 1.1,
                        ..RobotVariation::NOMINAL
                    },
                },
                CommandSet::Discrete,
                gyro,
            );
            let mut obs = [0.0; OBS_DIM];
            let Ok(()) = env.reset(&mut obs);
            run(&mut env, &[4.0], 3);
            let truth = env.true_pose();
            let odo = env.odometry().pose();
            assert!(truth.heading > 0.5, "spin left turns counter-clockwise");
            assert!(truth.x.abs() < 1e-5 && truth.y.abs() < 1e-5);
            if gyro {
                assert!((odo.heading - truth.heading).abs() < 1e-5);
            } else {
                let ratio = odo.heading / truth.heading;
                assert!((ratio - 1.1).abs() < 0.02, "{ratio}");
            }
        }
    }

    #[test]
    fn dead_band_gain_asymmetry_and_sag_change_the_motion() {
        let weak = RobotVariation {
            dead_band: 0.5,
            ..RobotVariation::NOMINAL
        };
        let mut env = DiffDrive::new(
            DiffDriveSpec::NOMINAL,
            DiffDriveTask {
                goal: [1.0, 0.0],
                robot: weak,
            },
            CommandSet::Continuous,
            false,
        );
        let mut obs = [0.0; OBS_DIM];
        let Ok(()) = env.reset(&mut obs);
        run(&mut env, &[0.45, 0.45], 5);
        assert_eq!(env.true_pose(), Pose::default(), "inside the dead-band");
        assert_eq!(env.counts(), [DiffDrive::COUNTER_START; 2]);

        let lopsided = RobotVariation {
            motor_gain: [0.5, 1.0],
            battery_sag: 0.2,
            ..RobotVariation::NOMINAL
        };
        let mut env = DiffDrive::new(
            DiffDriveSpec::NOMINAL,
            DiffDriveTask {
                goal: [1.0, 0.0],
                robot: lopsided,
            },
            CommandSet::Discrete,
            false,
        );
        let Ok(()) = env.reset(&mut obs);
        let (obs, _) = run(&mut env, &[1.0], 8);
        // "Forward" curves left on a robot with a weak left motor, and the right wheel
        // runs at 0.8 · (1 − 0.2·0.8) = 0.672 of full speed once settled (one count is
        // 0.007 of full speed here).
        let heading = env.true_pose().heading;
        assert!(heading > 0.8 && heading < 1.4, "{heading}");
        assert!((obs[5] - 0.672).abs() < 0.02, "{obs:?}");
        assert!((obs[4] - 0.336).abs() < 0.02, "{obs:?}");
    }

    #[test]
    fn reaching_the_goal_ends_the_episode() {
        let mut env = nominal([0.1, 0.0], CommandSet::Continuous);
        let mut obs = [0.0; OBS_DIM];
        let Ok(()) = env.reset(&mut obs);
        let mut done_at = None;
        for k in 0..20 {
            let Ok(t) = env.step(&[0.3, 0.3], &mut obs);
            if t.done {
                done_at = Some(k);
                let d = distance_to_goal(&env.odometry().pose(), [0.1, 0.0]);
                assert!(d < GOAL_TOLERANCE_M, "{d}");
                break;
            }
        }
        assert!(done_at.is_some(), "{obs:?}");
    }

    #[test]
    fn reward_is_progress_towards_the_goal() {
        let at = |x, y| Pose { x, y, heading: 0.0 };
        let g = [0.3, 0.4];
        let t = reward(&at(0.0, 0.0), &at(0.0, 0.4), g);
        assert!((t.reward - 0.2).abs() < 1e-6 && !t.done, "{t:?}");
        let t = reward(&at(0.0, 0.4), &at(0.0, 0.0), g);
        assert!((t.reward + 0.2).abs() < 1e-6, "moving away is negative");
        assert_eq!(reward(&at(0.1, 0.1), &at(0.1, 0.1), g).reward, 0.0);
        let t = reward(&at(0.0, 0.4), &at(0.29, 0.41), g);
        assert!(t.done && t.reward > 0.28);
    }

    #[test]
    fn plausibility_limit_is_twice_full_speed() {
        let s = DiffDriveSpec::NOMINAL;
        // 25 rad/s × 0.1 s × 358.32 / 2π = 142.6 counts at full speed.
        assert_eq!(s.max_counts_per_tick(), 288);
        let broken = DiffDriveSpec {
            counts_per_wheel_rev: f32::NAN,
            ..s
        };
        assert_eq!(broken.max_counts_per_tick(), 2);
    }

    #[test]
    fn sampled_tasks_stay_in_their_ranges() {
        let mut rng = Rng::new(3);
        for _ in 0..2000 {
            let t = DiffDriveTask::sample(&mut rng);
            let d = libm::sqrtf(t.goal[0] * t.goal[0] + t.goal[1] * t.goal[1]);
            assert!((0.2..=0.6).contains(&d), "{d}");
            let r = t.robot;
            assert!(r.motor_gain.iter().all(|g| (0.4..=1.0).contains(g)));
            assert!((0.0..=0.35).contains(&r.dead_band));
            assert!((0.0..=0.3).contains(&r.battery_sag));
        }
    }
}
