//! Panics and faults end the QEMU run with a non-zero exit code and a message; nothing
//! hangs (`panic-halt`/`panic-probe` would spin until the host's timeout).

use cortex_m_rt::{ExceptionFrame, exception};

use crate::out::Line;
use crate::{code, exit};

// Printed without `core::fmt` (see `out`): the message when it is a plain string, and the
// location.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut l = Line::new("panicked");
    if let Some(loc) = info.location() {
        l.s(" at ").s(loc.file()).s(":").u(loc.line());
    }
    if let Some(msg) = info.message().as_str() {
        l.s(": ").s(msg);
    }
    l.print();
    exit(code::PANIC)
}

// SAFETY (attribute contract): cortex-m-rt calls this with the stacked frame of the
// faulting context; it only reads it.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    Line::new("HardFault at pc=")
        .hex(frame.pc())
        .s(" lr=")
        .hex(frame.lr())
        .print();
    exit(code::HARD_FAULT)
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    let mut l = Line::new("unexpected exception or interrupt ");
    if irqn < 0 {
        l.s("-");
    }
    l.u(u32::from(irqn.unsigned_abs())).print();
    exit(code::UNEXPECTED_EXCEPTION)
}
