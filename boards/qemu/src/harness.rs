//! A table-driven on-target test runner (the `harness = false` pattern).
//!
//! Each test is a plain function returning `Err(reason)` on failure. The runner prints one
//! line per test in libtest's style (`test name ... ok (N instr)`), then the summary line
//! `selftest: N passed, M failed` that CI parses, and the caller exits with
//! [`Summary::exit_code`]. A panicking test ends the whole run (exit code 101) right
//! after its `test name ...` line, which names it.

use crate::{icount, println};

/// A test's verdict: `Err` carries the reason it failed.
pub type Outcome = Result<(), &'static str>;

/// One on-target test.
#[derive(Clone, Copy)]
pub struct Test {
    /// Name printed in the report.
    pub name: &'static str,
    /// The test body.
    pub run: fn() -> Outcome,
}

/// How many tests passed and failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Tests that returned `Ok`.
    pub passed: usize,
    /// Tests that returned `Err`.
    pub failed: usize,
}

impl Summary {
    /// `code::PASS` when nothing failed, `code::FAIL` otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.failed == 0 {
            crate::code::PASS
        } else {
            crate::code::FAIL
        }
    }
}

/// Runs every test in order and prints the report. Needs [`icount::start`] first for the
/// instruction counts.
pub fn run(suite: &str, tests: &[Test]) -> Summary {
    println!(
        "running {} tests on {}",
        tests.len(),
        crate::machine::THIS.name
    );
    let mut s = Summary {
        passed: 0,
        failed: 0,
    };
    for t in tests {
        semihosting::print!("test {} ... ", t.name);
        let (outcome, instr) = icount::count(t.run);
        match outcome {
            Ok(()) => {
                s.passed += 1;
                println!("ok ({} instr)", u32::try_from(instr).unwrap_or(u32::MAX));
            }
            Err(why) => {
                s.failed += 1;
                println!("FAILED: {}", why);
            }
        }
    }
    println!("{}: {} passed, {} failed", suite, s.passed, s.failed);
    s
}

/// `Err(msg)` unless `cond` holds: the assertion of these tests.
pub fn check(cond: bool, msg: &'static str) -> Outcome {
    if cond { Ok(()) } else { Err(msg) }
}
