//! The board logic end to end on the simulated robot ([`sgmrl_qemu::robot_e2e`]): the
//! core's control loop over a `DiffDriveRobot` on simulated embedded-hal drivers, the
//! guard, the flash slot and a reboot that restores it, on the meta-trained diffdrive
//! bundle. Prints the outcome line that `pins/ robot` prints on the host (`run-all.sh`
//! requires them equal) and the instructions per control tick, per episode end, per
//! adaptation step and per guard verdict: whole, and the core's share (the simulated
//! plant's physics excluded).
//!
//! Exit 0 when the scenario completed; 1 on any failure (printed).
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use sgmrl::adapt::Memory;
use sgmrl::bundle::Bundle;
use sgmrl::policy::Policy;
use sgmrl_qemu::out::Line;
use sgmrl_qemu::robot_e2e::{
    ROBOT_MEMORY_FLOATS, ROBOT_PARAMS, ROBOT_RECIPE, ROBOT_SEED, RobotFlash, RobotOutcome,
    RobotPolicy, Spent, run_robot,
};
use sgmrl_qemu::{code, exit, icount, machine, ram, stack};

/// Word-aligned storage for the bundle, as in a flash partition.
#[repr(C, align(4))]
struct Aligned<T: ?Sized>(T);

/// The diffdrive bundle: `sgmrl train --preset diffdrive` (parameters' CRC-32 0xa377a87f).
static BUNDLE_WORDS: &Aligned<[u8]> = &Aligned(*include_bytes!("../../bundles/diffdrive.sgml"));

static mut MEMORY: [f32; ROBOT_MEMORY_FLOATS] = [0.0; ROBOT_MEMORY_FLOATS];

/// The simulated NOR flash holding the parameter slots (in RAM: QEMU's flash is ROM).
static mut FLASH: RobotFlash = RobotFlash::new();

#[entry]
fn main() -> ! {
    stack::paint();
    let Some(p) = cortex_m::Peripherals::take() else {
        exit(code::FAIL)
    };
    icount::start(p.SYST);
    // SAFETY: `main` runs once and never returns, and nothing else names MEMORY.
    let Some(memory) = (unsafe { (&raw mut MEMORY).as_mut() }) else {
        exit(code::FAIL)
    };
    // SAFETY: as for MEMORY.
    let Some(flash) = (unsafe { (&raw mut FLASH).as_mut() }) else {
        exit(code::FAIL)
    };
    let now = || icount::ticks_to_instructions(icount::ticks());
    let result = run_robot(&BUNDLE_WORDS.0, memory, flash, ROBOT_SEED, &now);
    let (o, c) = match result {
        Ok(r) => r,
        Err(e) => {
            Line::new("robot: FAILED: ").s(e).print();
            exit(code::FAIL)
        }
    };
    print_outcome(&o);
    if let Ok(b) = Bundle::parse(&BUNDLE_WORDS.0) {
        let r = b.recipe();
        Line::new("robot: bundle crc ")
            .hex(b.checksum())
            .s(", recipe: steps ")
            .u(u32::from(r.steps))
            .s(", alpha ")
            .milli(r.alpha)
            .s(", episodes ")
            .u(u32::from(r.episodes))
            .s(", horizon ")
            .u(u32::from(r.horizon))
            .print();
    }
    let sat = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
    Line::new("robot: [icount] ")
        .s(machine::THIS.name)
        .s(" control tick max ")
        .u(sat(c.tick.max))
        .s(" mean ")
        .u(sat(c.tick.mean()))
        .s(" over ")
        .u(sat(c.tick.n))
        .s(" ticks; episode-end tick max ")
        .u(sat(c.episode_end.max))
        .s("; adaptation step tick ")
        .u(sat(c.step.max))
        .s("; guard verdict + flash write tick ")
        .u(sat(c.guard.max))
        .s(" instructions")
        .print();
    // The same ticks less the instructions inside the clock's wait (the plant's physics).
    let core = |s: &Spent| sat(s.core_max);
    Line::new("robot: [icount] ")
        .s(machine::THIS.name)
        .s(" core share: control tick max ")
        .u(core(&c.tick))
        .s(" mean ")
        .u(sat(c.tick.core_mean()))
        .s("; episode-end tick max ")
        .u(core(&c.episode_end))
        .s("; adaptation step tick ")
        .u(core(&c.step))
        .s("; guard verdict + flash write tick ")
        .u(core(&c.guard))
        .s(" instructions")
        .print();
    // Where a plain tick's core share goes, and the whole adaptation step's compute.
    Line::new("robot: [icount] ")
        .s(machine::THIS.name)
        .s(" control tick core share mean: robot Env ")
        .u(sat(c.tick.env_mean()))
        .s(", controller + adapter ")
        .u(sat(c.tick.core_mean().saturating_sub(c.tick.env_mean())))
        .s("; adaptation step in all (")
        .u(sat(c.adaptation.n))
        .s(" ticks) core share ")
        .u(sat(c.adaptation.core_sum))
        .s(", of it robot Env ")
        .u(sat(c.adaptation.env_sum))
        .s(", of it its ")
        .u(sat(c.adaptation_ends.n))
        .s(" episode-end ticks ")
        .u(sat(c.adaptation_ends.core_sum))
        .s(" instructions")
        .print();
    let statics = ram::statics();
    let shape = <RobotPolicy as Policy>::SHAPE;
    let bound = Memory::lower_bound_floats(&shape, ROBOT_RECIPE.horizon) * 4;
    Line::new("robot: P ")
        .u(ROBOT_PARAMS as u32)
        .s(", adapter RAM ")
        .u((ROBOT_MEMORY_FLOATS * 4) as u32)
        .s(" B, lower bound ")
        .u(bound as u32)
        .s(" B, static RAM ")
        .u(statics.total as u32)
        .s(" B, peak stack ")
        .u(stack::peak_bytes().unwrap_or(0) as u32)
        .s(" B")
        .print();
    exit(code::PASS)
}

fn print_outcome(o: &RobotOutcome) {
    Line::new("robot: outcome adapted_crc=")
        .hex(o.adapted_crc)
        .s(" kept=")
        .s(if o.kept_adapted { "adapted" } else { "meta" })
        .s(" meta_mean=")
        .hex(o.means[0])
        .s(" adapted_mean=")
        .hex(o.means[1])
        .s(" restored_crc=")
        .hex(o.restored_crc)
        .s(" seq=")
        .u(o.saved_seq)
        .s(" plant_ticks=")
        .u(o.plant_ticks)
        .s(" ticks=")
        .u(o.steps)
        .print();
}
