//! Counts the matrix products the host runs, by shape, while a recording is on: the exact
//! floating-point work of a meta-iteration (`2·m·k·n` per product `m×k · k×n`), and the
//! shapes on which to time the GEMM alone for its peak ([`crate::bench`]).
//!
//! Off (the default) it costs one relaxed atomic load per product.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::gemm::Gemm;

static RECORDING: AtomicBool = AtomicBool::new(false);
static SHAPES: Mutex<Vec<(Gemm, u64)>> = Mutex::new(Vec::new());

/// Counts one product of shape `g` if a recording is on (called by [`crate::gemm::gemm`]).
pub fn record(g: &Gemm) {
    if !RECORDING.load(Ordering::Relaxed) {
        return;
    }
    let mut shapes = SHAPES.lock().unwrap_or_else(PoisonError::into_inner);
    match shapes.iter_mut().find(|(s, _)| s == g) {
        Some((_, n)) => *n += 1,
        None => shapes.push((*g, 1)),
    }
}

/// Every product run while `f` ran (on any thread), as `(shape, how many times)` in order
/// of first use. One recording at a time: products of anything else running meanwhile are
/// counted too.
pub fn recording<R>(f: impl FnOnce() -> R) -> (R, Vec<(Gemm, u64)>) {
    SHAPES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    RECORDING.store(true, Ordering::SeqCst);
    let r = f();
    RECORDING.store(false, Ordering::SeqCst);
    let shapes = core::mem::take(&mut *SHAPES.lock().unwrap_or_else(PoisonError::into_inner));
    (r, shapes)
}

/// Floating-point operations of one product (a multiply and an add per term).
pub fn of(g: &Gemm) -> u64 {
    2 * (g.m * g.k * g.n) as u64
}

/// Floating-point operations of all `shapes`.
pub fn total(shapes: &[(Gemm, u64)]) -> u64 {
    shapes.iter().map(|(g, n)| of(g) * n).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::{a_b, at_b};

    #[test]
    fn counts_every_product_by_shape() {
        // Other tests of this process may run products meanwhile: look at these shapes only.
        let (a, b) = (vec![1.0f32; 6 * 7], vec![1.0f32; 7 * 5]);
        let mut c = vec![0.0f32; 6 * 5];
        let ((), shapes) = recording(|| {
            a_b(6, 7, 5, &a, &b, 0.0, &mut c);
            a_b(6, 7, 5, &a, &b, 1.0, &mut c);
            at_b(5, 6, 5, &c, &c, 0.0, &mut [0.0; 25]);
        });
        let ours: Vec<(Gemm, u64)> = shapes
            .into_iter()
            .filter(|(g, _)| (g.m, g.k, g.n) == (6, 7, 5) || (g.m, g.k, g.n) == (5, 6, 5))
            .collect();
        assert_eq!(ours.len(), 2);
        assert_eq!(ours[0].1, 2);
        assert_eq!(total(&ours), 2 * 2 * 6 * 7 * 5 + 2 * 5 * 6 * 5);
        a_b(6, 7, 5, &a, &b, 0.0, &mut c);
        let ((), later) = recording(|| ());
        assert!(
            !later.iter().any(|(g, _)| (g.m, g.k, g.n) == (6, 7, 5)),
            "nothing counted outside a recording"
        );
    }
}
