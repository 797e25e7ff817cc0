//! Adaptation demo (scaffold; completed once the core's adapter and bundle parser land).
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use sgmrl_qemu::{code, exit, icount, println, ram, stack};

/// The bundle chosen at build time (`SGMRL_BUNDLE`, see build.rs).
static BUNDLE: &[u8] = include_bytes!(env!("SGMRL_BUNDLE_PATH"));

#[entry]
fn main() -> ! {
    stack::paint();
    let Some(p) = cortex_m::Peripherals::take() else {
        exit(code::FAIL)
    };
    icount::start(p.SYST);
    let r = ram::statics();
    println!(
        "adapt on {}: bundle {} bytes; static RAM {} B (data {}, bss {}), stack peak {:?} B",
        sgmrl_qemu::machine::THIS.name,
        BUNDLE.len(),
        r.total,
        r.data,
        r.bss,
        stack::peak_bytes()
    );
    println!("adapt: the core's adapter has not landed yet");
    exit(code::FAIL)
}
