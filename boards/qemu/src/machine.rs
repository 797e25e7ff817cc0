//! Which QEMU machine this build runs on: fixed by the target triple (`build.rs` sets the
//! `machine` cfg from it).

/// A QEMU machine this crate supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// QEMU's `-machine` name.
    pub name: &'static str,
    /// The CPU it models.
    pub cpu: &'static str,
    /// Core clock that drives SysTick in QEMU's model, in Hz.
    pub core_hz: u32,
}

/// The machine of this build.
#[cfg(machine = "microbit")]
pub const THIS: Machine = Machine {
    name: "microbit",
    cpu: "cortex-m0",
    core_hz: 16_000_000,
};

/// The machine of this build.
#[cfg(machine = "mps2-an386")]
pub const THIS: Machine = Machine {
    name: "mps2-an386",
    cpu: "cortex-m4",
    core_hz: 25_000_000,
};

/// The machine of this build.
#[cfg(machine = "mps2-an505")]
pub const THIS: Machine = Machine {
    name: "mps2-an505",
    cpu: "cortex-m33",
    core_hz: 20_000_000,
};
