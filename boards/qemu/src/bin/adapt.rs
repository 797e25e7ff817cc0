//! The adaptation demo: the firmware a robot would run, on a simulated task.
//!
//! Embeds the bundle named by `SGMRL_BUNDLE` at build time (default: the committed test
//! bundle `bundles/test.sgml`; `build.rs` picks the matching policy type and simulator),
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
use sgmrl::bundle::{Bundle, BundleError};
use sgmrl::policy::{Policy, PolicyShape};
use sgmrl_qemu::out::Line;
use sgmrl_qemu::parity::{self, StepInfo};
use sgmrl_qemu::{code, exit, icount, machine, pins, ram, stack};

mod info {
    include!(concat!(env!("OUT_DIR"), "/bundle_info.rs"));
}
use info::{BundleEnv, BundlePolicy, MEMORY_FLOATS};

/// Word-aligned storage, as a bundle in a flash partition would be: the dense layers then
/// read the parameters with word loads (`LeF32s::is_word_aligned`).
#[repr(C, align(4))]
struct Aligned<T: ?Sized>(T);

/// The bundle chosen at build time (`SGMRL_BUNDLE`, see build.rs), at a 4-aligned address.
static BUNDLE_WORDS: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("SGMRL_BUNDLE_PATH")));
static BUNDLE: &[u8] = &BUNDLE_WORDS.0;

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
    let (parsed, parse_instr) = icount::count(|| Bundle::parse(BUNDLE));
    let bundle = match parsed {
        Ok(b) => b,
        Err(e) => {
            // Corrupted flash, or a bundle that does not belong here: say which check
            // failed, adapt nothing, and tell the host.
            let mut line = Line::new("adapt: bundle rejected: ");
            line.s(bundle_error_name(&e));
            if let BundleError::Checksum { expected, computed } = e {
                line.s(" (stored ")
                    .hex(expected)
                    .s(", computed ")
                    .hex(computed)
                    .s(")");
            }
            line.print();
            exit(code::BAD_BUNDLE)
        }
    };
    let ok = demo(memory, bundle, sat32(parse_instr));
    Line::new("adapt: ")
        .s(if ok { "PASS" } else { "FAIL" })
        .print();
    exit(if ok { code::PASS } else { code::FAIL })
}

/// Multiply-accumulates one environment step of streaming adaptation needs, as (acting,
/// gradient): the forward pass that picks the action (`F`, one per weight); for the
/// gradient of its log-probability, a forward pass (`F`), the weight gradient `δ xᵀ` (`F`)
/// and the propagation of the deltas through every layer but the first (`F` less the first
/// layer's weights). Biases and activations are not multiply-accumulates.
fn macs_per_env_step(s: &PolicyShape) -> (u32, u32) {
    let f = s.forward_macs() as u32;
    let first = u32::from(s.obs_dim)
        * u32::from(if s.hidden[0] > 0 {
            s.hidden[0]
        } else {
            s.act_dim
        });
    (f, 2 * f + (f - first))
}

/// The name of a bundle error's variant (printed without `core::fmt`, which would cost
/// several KB of flash).
fn bundle_error_name(e: &BundleError) -> &'static str {
    match e {
        BundleError::Truncated { .. } => "Truncated",
        BundleError::BadMagic { .. } => "BadMagic",
        BundleError::UnsupportedVersion { .. } => "UnsupportedVersion",
        BundleError::HeaderLength { .. } => "HeaderLength",
        BundleError::TrailingBytes { .. } => "TrailingBytes",
        BundleError::Checksum { .. } => "Checksum",
        BundleError::Reserved { .. } => "Reserved",
        BundleError::UnknownDistribution(_) => "UnknownDistribution",
        BundleError::UnknownAdvantage(_) => "UnknownAdvantage",
        BundleError::UnknownTrainer(_) => "UnknownTrainer",
        BundleError::BadShape(_) => "BadShape",
        BundleError::UnexpectedLambda { .. } => "UnexpectedLambda",
        BundleError::Recipe(_) => "Recipe",
        BundleError::ParamCount { .. } => "ParamCount",
        BundleError::BaselineLength { .. } => "BaselineLength",
        BundleError::NonFinite { .. } => "NonFinite",
        BundleError::PolicyMismatch { .. } => "PolicyMismatch",
        BundleError::OutputTooSmall { .. } => "OutputTooSmall",
    }
}

fn demo(memory: &mut [f32], bundle: Bundle<'static>, parse_instr: u32) -> bool {
    let m = machine::THIS;
    if bundle.checksum() != info::CRC {
        Line::new("adapt: the embedded bytes are not the bundle build.rs read").print();
        return false;
    }
    if bundle.check_policy::<BundlePolicy>().is_err() {
        Line::new("adapt: the bundle does not fit the policy type build.rs chose").print();
        return false;
    }
    let s = bundle.shape();
    let r = bundle.recipe();
    Line::new("adapt: ")
        .s(m.name)
        .s(" (")
        .s(m.cpu)
        .s("), bundle ")
        .u(bundle.len() as u32)
        .s(" bytes, crc ")
        .hex(bundle.checksum())
        .s(", parsed and validated in ")
        .u(parse_instr)
        .s(" instructions; parameters word-aligned: ")
        .s(if bundle.params().is_word_aligned() {
            "yes"
        } else {
            "no"
        })
        .print();
    Line::new("adapt: policy ")
        .s(s.distribution.name())
        .s(" ")
        .u(u32::from(s.obs_dim))
        .s("-")
        .u(u32::from(s.hidden[0]))
        .s("-")
        .u(u32::from(s.hidden[1]))
        .s("-")
        .u(u32::from(s.act_dim))
        .s(" (P = ")
        .u(BundlePolicy::N_PARAMS as u32)
        .s("), task ")
        .u(u32::from(bundle.task().0))
        .s(", trainer ")
        .s(bundle.trainer().name())
        .print();
    Line::new("adapt: recipe zeta ")
        .u(u32::from(r.steps))
        .s(", N ")
        .u(u32::from(r.episodes))
        .s(", H ")
        .u(u32::from(r.horizon))
        .s(", alpha ")
        .milli(r.alpha)
        .s(" (")
        .bits(r.alpha)
        .s("), gamma ")
        .milli(r.gamma)
        .s(", goal (")
        .milli(parity::DEMO_GOAL[0])
        .s(", ")
        .milli(parity::DEMO_GOAL[1])
        .s("), seed ")
        .u(parity::DEMO_SEED as u32)
        .print();

    let mut env = BundleEnv::new(parity::DEMO_GOAL);
    let mut all_finite = true;
    // The stack the adaptation takes, apart from the firmware's own: the high-water mark
    // so far is kept, the stack repainted, and the depth here is the baseline.
    let harness_peak = stack::peak_bytes();
    stack::paint();
    let depth0 = stack::depth();
    // Instruction counts are printed as u32 (saturating; 4.29e9 instructions is over a
    // minute of a 50 MHz core): u64 formatting and division would cost ~1 KB of flash.
    let mut step_instr_total = 0u32;
    let mut env_steps_total = 0u32;
    let mut last = icount::ticks();
    let result = run_demo(&bundle, &mut env, memory, |i: &StepInfo| {
        let now = icount::ticks();
        let instr = sat32(icount::ticks_to_instructions(now - last));
        step_instr_total = step_instr_total.saturating_add(instr);
        env_steps_total = env_steps_total.saturating_add(i.env_steps);
        all_finite &= i.mean_return.is_finite();
        print_step(i, r.steps, r.episodes, instr);
        // Printing is a semihosting trap: it costs the guest almost nothing, but restart
        // the clock after it anyway.
        last = icount::ticks();
    });
    let adapt_peak = stack::peak_bytes();
    let eval_instr = sat32(icount::ticks_to_instructions(icount::ticks() - last));
    let outcome = match result {
        Ok(o) => o,
        Err(_) => {
            Line::new("adapt: adaptation failed").print();
            return false;
        }
    };
    let final_return = f32::from_bits(outcome.final_return);
    all_finite &= final_return.is_finite();
    Line::new("adapt: after ")
        .u(u32::from(outcome.steps))
        .s(" steps: return ")
        .milli(final_return)
        .s(" (mean of ")
        .u(u32::from(r.episodes))
        .s(" episodes, ")
        .u(eval_instr)
        .s(" instructions)")
        .print();
    let steps = u32::from(outcome.steps.max(1));
    Line::new("adapt: adapted parameters crc ")
        .hex(outcome.params_crc)
        .s("; ")
        .u(step_instr_total / steps)
        .s(" instructions per adaptation step on average")
        .print();
    let (act_macs, grad_macs) = macs_per_env_step(&s);
    let per_env = step_instr_total / env_steps_total.max(1);
    Line::new("adapt: MACs per env step: ")
        .u(act_macs + grad_macs)
        .s(" (act forward ")
        .u(act_macs)
        .s(", gradient forward+backward ")
        .u(grad_macs)
        .s("); instructions per env step ")
        .u(per_env)
        .s(" = ")
        .milli(per_env as f32 / (act_macs + grad_macs).max(1) as f32)
        .s(" x MACs")
        .print();

    let mem = r.memory(&s);
    let statics = ram::statics();
    let peak = match (harness_peak, adapt_peak) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    };
    let adapt_stack = adapt_peak.map_or(0, |p| p.saturating_sub(depth0));
    Line::new("adapt: RAM: adapter ")
        .u(mem.total_bytes() as u32)
        .s(" B (params ")
        .u(4 * mem.params_floats as u32)
        .s(", grad ")
        .u(4 * mem.grad_floats as u32)
        .s(", episodes ")
        .u(4 * mem.episode_floats as u32)
        .s(", scratch ")
        .u(4 * mem.scratch_floats as u32)
        .s("; lower bound ")
        .u(4 * sgmrl::adapt::Memory::lower_bound_floats(&s, r.horizon) as u32)
        .s(" B), statics ")
        .u(statics.total as u32)
        .s(" B (data ")
        .u(statics.data as u32)
        .s(", bss ")
        .u(statics.bss as u32)
        .s("), peak stack ")
        .u(peak.unwrap_or(stack::WINDOW) as u32)
        .s(" B, of it adaptation ")
        .u(adapt_stack as u32)
        .s(" B")
        .print();

    let mut ok = all_finite && outcome.steps == r.steps && peak.is_some();
    if !all_finite {
        Line::new("adapt: a return is not finite").print();
    }
    if peak.is_none() {
        Line::new("adapt: the stack reached the bottom of the painted window").print();
    }
    if bundle.checksum() == pins::TEST_BUNDLE_CRC {
        let same = outcome == pins::TEST_BUNDLE_DEMO;
        Line::new("adapt: host parity (test bundle): ")
            .s(if same {
                "identical to the host"
            } else {
                "DIFFERS from the host's src/pins.rs"
            })
            .print();
        ok &= same;
    } else {
        Line::new("adapt: host parity: no host reference for this bundle").print();
    }
    ok
}

/// One step's log line; out of line, so that it takes no room in the frames that are live
/// while the adapter runs.
#[inline(never)]
fn print_step(i: &StepInfo, steps: u16, episodes: u16, instr: u32) {
    Line::new("adapt: step ")
        .u(u32::from(i.step))
        .s("/")
        .u(u32::from(steps))
        .s(": return before the step ")
        .milli(i.mean_return)
        .s(" (")
        .u(u32::from(episodes))
        .s(" episodes, ")
        .u(i.env_steps)
        .s(" env steps); ")
        .u(instr)
        .s(" instructions, ")
        .u(instr / i.env_steps.max(1))
        .s(" per env step")
        .print();
}

/// `parity::adapt_demo` in a frame of its own, below the baseline depth the stack figure
/// of the adaptation starts from: the `Adapter` value (in that frame) counts as the
/// adaptation's stack, the firmware's locals in `demo` do not.
#[inline(never)]
fn run_demo(
    bundle: &Bundle<'_>,
    env: &mut BundleEnv,
    memory: &mut [f32],
    on_step: impl FnMut(&StepInfo),
) -> Result<parity::DemoOutcome, sgmrl::adapt::AdaptError> {
    parity::adapt_demo::<BundlePolicy, _>(bundle, env, memory, on_step)
}

fn sat32(x: u64) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}
