//! The semihosting command line: `run.sh <elf> flag…` passes `flag…` with QEMU `-append`.

/// Bytes of command line read; longer lines are cut (the ELF path comes first).
const BUF: usize = 512;

/// True when `flag` is one of the command-line words.
pub fn has(flag: &str) -> bool {
    match semihosting::experimental::env::args::<BUF>() {
        Ok(args) => (&args).any(|a| a == Ok(flag)),
        Err(_) => false,
    }
}
