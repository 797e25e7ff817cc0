//! Dense-layer loops: every multiply-accumulate of a policy's forward and backward pass.
//!
//! These loops decide what adaptation costs on a microcontroller, so they are written for
//! it. Weights come as a slice of stored words `W` turned into scalars by `conv` (`f32` in
//! RAM as they are; little-endian words read from a word-aligned bundle in flash through
//! `f32::from_bits`). Rows are walked in blocks of [`BLOCK`] columns with `as_chunks` and
//! destructured arrays: no bounds checks and no per-element iterator state, and on a
//! Cortex-M4F/M33 LLVM turns each block's loads into one `VLDM`. Two rows are handled per
//! pass wherever they share an operand (`x` in the forward pass and the weight gradient,
//! `y` in the transposed product), which halves the loads of the shared one.
//!
//! The order of floating-point operations is fixed and stated per function: it is the
//! plain loop's order (each row summed left to right from 0; accumulations row after
//! row), so the `*_values` fallbacks for sources without a slice give the same bits, and
//! every target gives the same bits as the host.
//!
//! On soft-float Cortex-M (`target_abi = "eabi"`: the M0, M3) a multiply-accumulate is two
//! library calls of ~50–100 instructions, so unrolling saves nothing there and costs
//! flash: those targets run the plain loops ([`UNROLLED`] is false), with the same bits.

use crate::math::Real;

/// Columns per unrolled block.
pub(crate) const BLOCK: usize = 8;

/// Whether the unrolled loops are compiled in: everywhere but soft-float ARM.
pub(crate) const UNROLLED: bool = !cfg!(all(target_arch = "arm", target_abi = "eabi"));

/// `out[o] = (Σ_i W[o][i]·x[i]) + b[o]` with `W` row-major in `w` (`out.len()` rows of
/// `x.len()`), each row summed from 0 for `i = 0, 1, …`, then the bias added. With sizes
/// that do not match, outputs beyond the shortest operand are left as they were.
pub(crate) fn affine<W: Copy, T: Real>(
    w: &[W],
    b: &[W],
    x: &[T],
    out: &mut [T],
    conv: impl Fn(W) -> T + Copy,
) {
    if !UNROLLED {
        return affine_values(
            w.iter().map(|&v| conv(v)),
            b.iter().map(|&v| conv(v)),
            x,
            out,
        );
    }
    let n = x.len();
    if n == 0 {
        for (o, &bi) in out.iter_mut().zip(b) {
            *o = T::ZERO + conv(bi);
        }
        return;
    }
    let mut rows = w.chunks_exact(n.saturating_mul(2));
    let (out2, out_last) = out.as_chunks_mut::<2>();
    let (b2, b_last) = b.as_chunks::<2>();
    for ((o, &[b0, b1]), pair) in out2.iter_mut().zip(b2).zip(rows.by_ref()) {
        let Some((r0, r1)) = pair.split_at_checked(n) else {
            return;
        };
        let (s0, s1) = dot2(r0, r1, x, conv);
        *o = [s0 + conv(b0), s1 + conv(b1)];
    }
    if let ([o], [bl], r) = (out_last, b_last, rows.remainder())
        && r.len() == n
    {
        *o = dot1(r, x, conv) + conv(*bl);
    }
}

/// `(Σ_i r0[i]·x[i], Σ_i r1[i]·x[i])`, each summed from 0 for `i = 0, 1, …` (`r0`, `r1`
/// and `x` of one length).
#[inline(always)]
fn dot2<W: Copy, T: Real>(r0: &[W], r1: &[W], x: &[T], conv: impl Fn(W) -> T + Copy) -> (T, T) {
    let (mut a0, mut a1) = (T::ZERO, T::ZERO);
    let (x8, x_tail) = x.as_chunks::<BLOCK>();
    let (r08, r0_tail) = r0.as_chunks::<BLOCK>();
    let (r18, r1_tail) = r1.as_chunks::<BLOCK>();
    for ((xb, w0), w1) in x8.iter().zip(r08).zip(r18) {
        a0 = dot8(a0, w0, xb, conv);
        a1 = dot8(a1, w1, xb, conv);
    }
    for ((&xi, &w0), &w1) in x_tail.iter().zip(r0_tail).zip(r1_tail) {
        a0 += conv(w0) * xi;
        a1 += conv(w1) * xi;
    }
    (a0, a1)
}

/// `Σ_i r[i]·x[i]`, summed from 0 for `i = 0, 1, …` (`r` and `x` of one length).
#[inline(always)]
fn dot1<W: Copy, T: Real>(r: &[W], x: &[T], conv: impl Fn(W) -> T + Copy) -> T {
    let mut acc = T::ZERO;
    let (x8, x_tail) = x.as_chunks::<BLOCK>();
    let (r8, r_tail) = r.as_chunks::<BLOCK>();
    for (xb, wb) in x8.iter().zip(r8) {
        acc = dot8(acc, wb, xb, conv);
    }
    for (&xi, &wi) in x_tail.iter().zip(r_tail) {
        acc += conv(wi) * xi;
    }
    acc
}

/// `acc + w[0]·x[0] + … + w[7]·x[7]`, added left to right.
#[inline(always)]
fn dot8<W: Copy, T: Real>(mut acc: T, w: &[W; BLOCK], x: &[T; BLOCK], conv: impl Fn(W) -> T) -> T {
    let [w0, w1, w2, w3, w4, w5, w6, w7] = *w;
    let [x0, x1, x2, x3, x4, x5, x6, x7] = *x;
    acc += conv(w0) * x0;
    acc += conv(w1) * x1;
    acc += conv(w2) * x2;
    acc += conv(w3) * x3;
    acc += conv(w4) * x4;
    acc += conv(w5) * x5;
    acc += conv(w6) * x6;
    acc += conv(w7) * x7;
    acc
}

/// `y += Wᵀ·d` with `W` row-major in `w` (`d.len()` rows of `y.len()`): for each row `o`
/// in turn, `y[i] += W[o][i]·d[o]`. Rows beyond the shortest operand are skipped.
pub(crate) fn add_transposed<W: Copy, T: Real>(
    w: &[W],
    d: &[T],
    y: &mut [T],
    conv: impl Fn(W) -> T + Copy,
) {
    if !UNROLLED {
        return add_transposed_values(w.iter().map(|&v| conv(v)), d, y);
    }
    let n = y.len();
    if n == 0 {
        return;
    }
    let mut rows = w.chunks_exact(n.saturating_mul(2));
    let (d2, d_last) = d.as_chunks::<2>();
    for (pair, &[d0, d1]) in rows.by_ref().zip(d2) {
        let Some((r0, r1)) = pair.split_at_checked(n) else {
            return;
        };
        axpy2(y, r0, d0, r1, d1, conv);
    }
    if let ([dl], r) = (d_last, rows.remainder())
        && r.len() == n
    {
        axpy2(y, r, *dl, &[], T::ZERO, conv);
    }
}

/// `y[i] = (y[i] + r0[i]·a0) + r1[i]·a1` for every `i` (`r1` empty: only the first term).
#[inline(always)]
fn axpy2<W: Copy, T: Real>(
    y: &mut [T],
    r0: &[W],
    a0: T,
    r1: &[W],
    a1: T,
    conv: impl Fn(W) -> T + Copy,
) {
    let (y8, y_tail) = y.as_chunks_mut::<BLOCK>();
    let (r08, r0_tail) = r0.as_chunks::<BLOCK>();
    if r1.is_empty() {
        for (yb, w0) in y8.iter_mut().zip(r08) {
            axpy8(yb, w0, a0, conv);
        }
        for (yi, &w0) in y_tail.iter_mut().zip(r0_tail) {
            *yi += conv(w0) * a0;
        }
        return;
    }
    let (r18, r1_tail) = r1.as_chunks::<BLOCK>();
    for ((yb, w0), w1) in y8.iter_mut().zip(r08).zip(r18) {
        axpy8(yb, w0, a0, conv);
        axpy8(yb, w1, a1, conv);
    }
    for ((yi, &w0), &w1) in y_tail.iter_mut().zip(r0_tail).zip(r1_tail) {
        *yi += conv(w0) * a0;
        *yi += conv(w1) * a1;
    }
}

/// `y[k] += w[k]·a` for the 8 entries of a block.
#[inline(always)]
fn axpy8<W: Copy, T: Real>(y: &mut [T; BLOCK], w: &[W; BLOCK], a: T, conv: impl Fn(W) -> T) {
    let [w0, w1, w2, w3, w4, w5, w6, w7] = *w;
    let [y0, y1, y2, y3, y4, y5, y6, y7] = y;
    *y0 += conv(w0) * a;
    *y1 += conv(w1) * a;
    *y2 += conv(w2) * a;
    *y3 += conv(w3) * a;
    *y4 += conv(w4) * a;
    *y5 += conv(w5) * a;
    *y6 += conv(w6) * a;
    *y7 += conv(w7) * a;
}

/// `g += d·xᵀ` with `g` row-major (`d.len()` rows of `x.len()`): `g[o][i] += x[i]·d[o]`.
/// The weight gradient of a dense layer; rows beyond the shortest operand are skipped.
pub(crate) fn add_outer<T: Real>(g: &mut [T], d: &[T], x: &[T]) {
    let n = x.len();
    if n == 0 {
        return;
    }
    if !UNROLLED {
        for (row, &dk) in g.chunks_exact_mut(n).zip(d) {
            for (gi, &xi) in row.iter_mut().zip(x) {
                *gi += xi * dk;
            }
        }
        return;
    }
    let mut rows = g.chunks_exact_mut(n.saturating_mul(2));
    let (d2, d_last) = d.as_chunks::<2>();
    for (pair, &[d0, d1]) in rows.by_ref().zip(d2) {
        let Some((g0, g1)) = pair.split_at_mut_checked(n) else {
            return;
        };
        outer2(g0, d0, g1, d1, x);
    }
    if let ([dl], r) = (d_last, rows.into_remainder())
        && r.len() == n
    {
        outer2(r, *dl, &mut [], T::ZERO, x);
    }
}

/// `g0[i] += x[i]·a0` and `g1[i] += x[i]·a1` for every `i` (`g1` may be empty).
#[inline(always)]
fn outer2<T: Real>(g0: &mut [T], a0: T, g1: &mut [T], a1: T, x: &[T]) {
    let (x8, x_tail) = x.as_chunks::<BLOCK>();
    let (g08, g0_tail) = g0.as_chunks_mut::<BLOCK>();
    if g1.is_empty() {
        for (gb, xb) in g08.iter_mut().zip(x8) {
            axpy8(gb, xb, a0, |v| v);
        }
        for (gi, &xi) in g0_tail.iter_mut().zip(x_tail) {
            *gi += xi * a0;
        }
        return;
    }
    let (g18, g1_tail) = g1.as_chunks_mut::<BLOCK>();
    for ((gb0, gb1), xb) in g08.iter_mut().zip(g18.iter_mut()).zip(x8) {
        axpy8(gb0, xb, a0, |v| v);
        axpy8(gb1, xb, a1, |v| v);
    }
    for ((gi0, gi1), &xi) in g0_tail.iter_mut().zip(g1_tail.iter_mut()).zip(x_tail) {
        *gi0 += xi * a0;
        *gi1 += xi * a1;
    }
}

/// [`affine`] over weights and biases read one at a time (same arithmetic, same bits).
pub(crate) fn affine_values<T: Real>(
    mut w: impl Iterator<Item = T>,
    b: impl Iterator<Item = T>,
    x: &[T],
    out: &mut [T],
) {
    for (o, bi) in out.iter_mut().zip(b) {
        let mut acc = T::ZERO;
        // `x` first: zip then stops without pulling the next row's first weight.
        for (&xi, wi) in x.iter().zip(w.by_ref()) {
            acc += wi * xi;
        }
        *o = acc + bi;
    }
}

/// [`add_transposed`] over weights read one at a time (same arithmetic, same bits).
pub(crate) fn add_transposed_values<T: Real>(mut w: impl Iterator<Item = T>, d: &[T], y: &mut [T]) {
    for &dk in d {
        for (yi, wi) in y.iter_mut().zip(w.by_ref()) {
            *yi += wi * dk;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::rng::Rng;
    use std::vec::Vec;

    fn normals(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.normal()).collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Sizes around the block length and the row pairing (odd and even row counts, tails
    /// of 0..7 columns, a single column).
    const SIZES: [(usize, usize); 9] = [
        (1, 1),
        (2, 1),
        (3, 2),
        (5, 7),
        (2, 8),
        (7, 9),
        (4, 16),
        (3, 17),
        (6, 100),
    ];

    #[test]
    fn affine_matches_the_plain_loop_bit_for_bit() {
        let mut rng = Rng::new(1);
        for (rows, cols) in SIZES {
            let (w, b, x) = (
                normals(&mut rng, rows * cols),
                normals(&mut rng, rows),
                normals(&mut rng, cols),
            );
            let mut want = std::vec![0.0f32; rows];
            for o in 0..rows {
                let mut acc = 0.0f32;
                for i in 0..cols {
                    acc += w[o * cols + i] * x[i];
                }
                want[o] = acc + b[o];
            }
            let mut got = std::vec![f32::NAN; rows];
            affine(&w, &b, &x, &mut got, |v| v);
            assert_eq!(bits(&got), bits(&want), "{rows}x{cols}");
            let mut by_values = std::vec![f32::NAN; rows];
            affine_values(w.iter().copied(), b.iter().copied(), &x, &mut by_values);
            assert_eq!(bits(&by_values), bits(&want), "{rows}x{cols} (values)");
        }
    }

    #[test]
    fn transposed_and_outer_products_match_the_plain_loops_bit_for_bit() {
        let mut rng = Rng::new(2);
        for (rows, cols) in SIZES {
            let (w, d) = (normals(&mut rng, rows * cols), normals(&mut rng, rows));
            let y0 = normals(&mut rng, cols);
            let mut want = y0.clone();
            for o in 0..rows {
                for i in 0..cols {
                    want[i] += w[o * cols + i] * d[o];
                }
            }
            let mut got = y0.clone();
            add_transposed(&w, &d, &mut got, |v| v);
            assert_eq!(bits(&got), bits(&want), "{rows}x{cols}");
            let mut by_values = y0;
            add_transposed_values(w.iter().copied(), &d, &mut by_values);
            assert_eq!(bits(&by_values), bits(&want), "{rows}x{cols} (values)");

            let x = normals(&mut rng, cols);
            let g0 = normals(&mut rng, rows * cols);
            let mut want = g0.clone();
            for o in 0..rows {
                for i in 0..cols {
                    want[o * cols + i] += d[o] * x[i];
                }
            }
            let mut got = g0;
            add_outer(&mut got, &d, &x);
            assert_eq!(bits(&got), bits(&want), "{rows}x{cols} (outer)");
        }
    }

    /// Mismatched sizes never panic; outputs the operands do not cover keep their values.
    #[test]
    fn short_operands_leave_the_rest_untouched() {
        let w = [1.0f32; 5];
        let mut out = [7.0f32; 3];
        affine(&w, &[0.5; 3], &[1.0, 1.0], &mut out, |v| v);
        assert_eq!(out, [2.5, 2.5, 7.0]);
        let mut out = [7.0f32; 2];
        affine(&w, &[0.5; 2], &[], &mut out, |v| v);
        assert_eq!(out, [0.5, 0.5]);
        let mut y = [1.0f32; 2];
        add_transposed(&w, &[1.0, 1.0, 1.0], &mut y, |v| v);
        assert_eq!(y, [3.0, 3.0]);
        add_transposed(&w, &[1.0], &mut [], |v| v);
        let mut g = [0.0f32; 5];
        add_outer(&mut g, &[1.0, 2.0, 3.0], &[1.0, 1.0]);
        assert_eq!(g, [1.0, 1.0, 2.0, 2.0, 0.0]);
    }
}
