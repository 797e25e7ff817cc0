//! The adaptation demo: the firmware a robot would run, on a simulated task.
//!
//! Embeds the bundle named by `SGMRL_BUNDLE` at build time (default: the committed test
//! bundle `bundles/test.sgmrl`; `build.rs` picks the matching policy type and simulator),
//! validates it, runs the recipe's ζ adaptation steps on the core's simulator of the
//! bundle's task with goal [`parity::DEMO_GOAL`] and seed [`parity::DEMO_SEED`], and reports
//! the batch return before each step, the return after adaptation, the adapted parameters'
//! CRC-32, instructions per step, peak stack and static RAM. For the committed test bundle
//! it also checks the results bit for bit against the host's (`src/pins.rs`).
//!
//! Exit code 0 when the bundle is valid, every step applied, every return finite and (for
//! the test bundle) the host's results reproduced; 1 otherwise.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use sgmrl::bundle::Bundle;
use sgmrl::policy::{Distribution, Policy};
use sgmrl_qemu::num::{Bits, Milli};
use sgmrl_qemu::parity::{self, StepInfo};
use sgmrl_qemu::{code, exit, icount, machine, pins, println, ram, stack};

mod info {
    include!(concat!(env!("OUT_DIR"), "/bundle_info.rs"));
}
use info::{BundleEnv, BundlePolicy, MEMORY_FLOATS};

/// The bundle chosen at build time (`SGMRL_BUNDLE`, see build.rs).
static BUNDLE: &[u8] = include_bytes!(env!("SGMRL_BUNDLE_PATH"));

/// The adapter's working memory (adapted parameters, gradient, episode buffer), sized
/// for the embedded bundle's recipe by build.rs.
static mut MEMORY: [f32; MEMORY_FLOATS] = [0.0; MEMORY_FLOATS];

#[entry]
fn main() -> ! {
    stack::paint();
    let Some(p) = cortex_m::Peripherals::take() else {
        exit(code::FAIL)
    };
    icount::start(p.SYST);
    // SAFETY: `main` runs once and never returns, and nothing else names MEMORY, so this
    // is the only reference to it for the rest of the program.
    // (`as_mut` of the raw pointer: `&mut MEMORY` is the reference-to-`static mut` lint.)
    let Some(memory) = (unsafe { (&raw mut MEMORY).as_mut() }) else {
        exit(code::FAIL)
    };
    let ok = demo(memory);
    println!("adapt: {}", if ok { "PASS" } else { "FAIL" });
    exit(if ok { code::PASS } else { code::FAIL })
}

fn demo(memory: &mut [f32]) -> bool {
    let m = machine::THIS;
    let (parsed, parse_instr) = icount::count(|| Bundle::parse(BUNDLE));
    let parse_instr = sat32(parse_instr);
    let bundle = match parsed {
        Ok(b) => b,
        Err(e) => {
            println!("adapt: invalid bundle: {}", e);
            return false;
        }
    };
    if bundle.checksum() != info::CRC {
        println!("adapt: the embedded bytes are not the bundle build.rs read");
        return false;
    }
    if let Err(e) = bundle.check_policy::<BundlePolicy>() {
        println!("adapt: {}", e);
        return false;
    }
    let s = bundle.shape();
    let r = bundle.recipe();
    println!(
        "adapt: {} ({}), bundle {} bytes, crc {:#010x}, parsed and validated in {} instructions",
        m.name,
        m.cpu,
        bundle.len(),
        bundle.checksum(),
        parse_instr
    );
    println!(
        "adapt: policy {} {}-{}-{}-{} (P = {}), task {}, trainer {}",
        match s.distribution {
            Distribution::Softmax => "softmax",
            Distribution::Gaussian => "gaussian",
        },
        s.obs_dim,
        s.hidden[0],
        s.hidden[1],
        s.act_dim,
        BundlePolicy::N_PARAMS,
        bundle.task().0,
        bundle.trainer().name()
    );
    println!(
        "adapt: recipe zeta {}, N {}, H {}, alpha {} ({}), gamma {}, goal ({}, {}), seed {}",
        r.steps,
        r.episodes,
        r.horizon,
        Milli(r.alpha),
        Bits(r.alpha),
        Milli(r.gamma),
        Milli(parity::DEMO_GOAL[0]),
        Milli(parity::DEMO_GOAL[1]),
        parity::DEMO_SEED as u32
    );

    let mut env = BundleEnv::new(parity::DEMO_GOAL);
    let mut all_finite = true;
    // Instruction counts are printed as u32 (saturating; 4.29e9 instructions is over a
    // minute of a 50 MHz core): u64 formatting and division would cost ~1 KB of flash.
    let mut step_instr_total = 0u32;
    let mut last = icount::ticks();
    let result =
        parity::adapt_demo::<BundlePolicy, _>(&bundle, &mut env, memory, |i: &StepInfo| {
            let now = icount::ticks();
            let instr = sat32(icount::ticks_to_instructions(now - last));
            step_instr_total = step_instr_total.saturating_add(instr);
            all_finite &= i.mean_return.is_finite();
            println!(
                "adapt: step {}/{}: return before the step {} ({} episodes, {} env steps); \
             {} instructions, {} per env step",
                i.step,
                r.steps,
                Milli(i.mean_return),
                r.episodes,
                i.env_steps,
                instr,
                instr / i.env_steps.max(1)
            );
            // Printing is a semihosting trap: it costs the guest almost nothing, but restart
            // the clock after it anyway.
            last = icount::ticks();
        });
    let eval_instr = sat32(icount::ticks_to_instructions(icount::ticks() - last));
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            println!("adapt: adaptation failed: {}", e);
            return false;
        }
    };
    let final_return = f32::from_bits(outcome.final_return);
    all_finite &= final_return.is_finite();
    println!(
        "adapt: after {} steps: return {} (mean of {} episodes, {} instructions)",
        outcome.steps,
        Milli(final_return),
        r.episodes,
        eval_instr
    );
    println!(
        "adapt: adapted parameters crc {:#010x}; {} instructions per adaptation step on average",
        outcome.params_crc,
        step_instr_total / u32::from(outcome.steps.max(1))
    );

    let mem = r.memory(&s);
    let statics = ram::statics();
    let peak = stack::peak_bytes();
    println!(
        "adapt: RAM: adapter {} B (params {}, grad {}, episodes {}; lower bound {} B), \
         statics {} B (data {}, bss {}), peak stack {} B",
        mem.total_bytes(),
        4 * mem.params_floats,
        4 * mem.grad_floats,
        4 * mem.episode_floats,
        4 * sgmrl::recipe::Memory::lower_bound_floats(&s, r.horizon),
        statics.total,
        statics.data,
        statics.bss,
        peak.unwrap_or(stack::WINDOW)
    );

    let mut ok = all_finite && outcome.steps == r.steps && peak.is_some();
    if !all_finite {
        println!("adapt: a return is not finite");
    }
    if peak.is_none() {
        println!("adapt: the stack reached the bottom of the painted window");
    }
    if bundle.checksum() == pins::TEST_BUNDLE_CRC {
        let same = outcome == pins::TEST_BUNDLE_DEMO;
        println!(
            "adapt: host parity (test bundle): {}",
            if same {
                "identical to the host"
            } else {
                "DIFFERS from the host's src/pins.rs"
            }
        );
        ok &= same;
    } else {
        println!("adapt: host parity: no host reference for this bundle");
    }
    ok
}

fn sat32(x: u64) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}
