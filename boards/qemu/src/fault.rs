//! Panics and faults end the QEMU run with a non-zero exit code and a message; nothing
//! hangs (`panic-halt`/`panic-probe` would spin until the host's timeout).

use cortex_m_rt::{ExceptionFrame, exception};

use crate::{code, exit, println};

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("{}", info);
    exit(code::PANIC)
}

// SAFETY (attribute contract): cortex-m-rt calls this with the stacked frame of the
// faulting context; it only reads it.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    println!(
        "HardFault at pc={:#010x} lr={:#010x}",
        frame.pc(),
        frame.lr()
    );
    exit(code::HARD_FAULT)
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    println!("unexpected exception or interrupt {}", irqn);
    exit(code::UNEXPECTED_EXCEPTION)
}
