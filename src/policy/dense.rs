//! Dense-layer loops: every multiply-accumulate of a policy's forward and backward pass.
//!
//! These loops decide what adaptation costs on a microcontroller, so they are written for
//! it. Weights come as a slice of stored words `W` turned into scalars by `conv` (`f32` in
//! RAM as they are; little-endian words read from a word-aligned bundle in flash through
//! `f32::from_bits`). Rows are walked in blocks of [`BLOCK`] columns with `as_chunks` and
//! destructured arrays: no bounds checks and no per-element iterator state. Four rows are
//! handled per pass, since they share an operand (`x` in the forward pass and the weight
//! gradient, `y` in the transposed product), which quarters the loads (and stores) of the
//! shared one. On a Cortex-M4F that leaves about one load per weight and one `VMLA` per
//! multiply-accumulate in the forward pass: LLVM allocates single-precision registers in
//! the order s0, s2, s4, …, so it never merges the loads into `VLDM`s.
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
    let Some(out) = out.get_mut(..b.len().min(out.len())) else {
        return;
    };
    let rows = mul(w, x, out, conv);
    for (o, &bi) in out.iter_mut().zip(b).take(rows) {
        *o += conv(bi);
    }
}

/// `out[o] = Σ_i W[o][i]·x[i]` with `W` row-major in `w` (`out.len()` rows of `x.len()`),
/// each row summed from 0 for `i = 0, 1, …`; returns the number of rows computed (the
/// whole rows `w` and `out` both have: outputs beyond them are left as they were).
pub(crate) fn mul<W: Copy, T: Real>(
    w: &[W],
    x: &[T],
    out: &mut [T],
    conv: impl Fn(W) -> T + Copy,
) -> usize {
    let n = x.len();
    let rows = out.len().min(w.len().checked_div(n).unwrap_or(usize::MAX));
    let Some(out) = out.get_mut(..rows) else {
        return 0;
    };
    if !UNROLLED {
        mul_values(w.iter().map(|&v| conv(v)), x, out);
        return rows;
    }
    // Column blocks: a block of `x` stays in registers while every row adds its part of
    // the dot product to `out` (each row's sum still runs from column 0 up).
    out.fill(T::ZERO);
    let (x8, x_tail) = x.as_chunks::<BLOCK>();
    let (x16, x8) = x8.as_chunks::<2>();
    let (x4, x1) = x_tail.as_chunks::<4>();
    let mut col = 0;
    for &[xa, xb] in x16 {
        at_column(w, n, col, out.iter_mut(), pair, |[wa, wb], o| {
            *o = dot8(dot8(*o, wa, &xa, conv), wb, &xb, conv);
        });
        col += 2 * BLOCK;
    }
    for &xa in x8 {
        at_column(w, n, col, out.iter_mut(), one, |[wa], o| {
            *o = dot8(*o, wa, &xa, conv);
        });
        col += BLOCK;
    }
    for &[x0, x1, x2, x3] in x4 {
        at_column(
            w,
            n,
            col,
            out.iter_mut(),
            <[W]>::first_chunk::<4>,
            |&[w0, w1, w2, w3], o| {
                let mut acc = *o;
                acc += conv(w0) * x0;
                acc += conv(w1) * x1;
                acc += conv(w2) * x2;
                acc += conv(w3) * x3;
                *o = acc;
            },
        );
        col += 4;
    }
    for &x0 in x1 {
        at_column(
            w,
            n,
            col,
            out.iter_mut(),
            <[W]>::first_chunk::<1>,
            |&[w0], o| {
                *o += conv(w0) * x0;
            },
        );
        col += 1;
    }
    rows
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
    // Column blocks: a block of `y` stays in registers while every row adds to it, so `y`
    // is loaded and stored once, and each weight costs one load and one multiply-add.
    let (y8, y_tail) = y.as_chunks_mut::<BLOCK>();
    let (y16, y8) = y8.as_chunks_mut::<2>();
    let (y4, y1) = y_tail.as_chunks_mut::<4>();
    let mut col = 0;
    for [ya, yb] in y16 {
        let (mut a, mut b) = (*ya, *yb);
        at_column(w, n, col, d, pair, |[wa, wb], &dk| {
            axpy8(&mut a, wa, dk, conv);
            axpy8(&mut b, wb, dk, conv);
        });
        (*ya, *yb) = (a, b);
        col += 2 * BLOCK;
    }
    for ya in y8 {
        let mut a = *ya;
        at_column(w, n, col, d, one, |[wa], &dk| axpy8(&mut a, wa, dk, conv));
        *ya = a;
        col += BLOCK;
    }
    for ya in y4 {
        let [mut a0, mut a1, mut a2, mut a3] = *ya;
        at_column(
            w,
            n,
            col,
            d,
            <[W]>::first_chunk::<4>,
            |&[w0, w1, w2, w3], &dk| {
                a0 += conv(w0) * dk;
                a1 += conv(w1) * dk;
                a2 += conv(w2) * dk;
                a3 += conv(w3) * dk;
            },
        );
        *ya = [a0, a1, a2, a3];
        col += 4;
    }
    for yi in y1 {
        let mut a = *yi;
        at_column(w, n, col, d, <[W]>::first_chunk::<1>, |&[w0], &dk| {
            a += conv(w0) * dk;
        });
        *yi = a;
        col += 1;
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
    if !UNROLLED {
        if n > 0 {
            for (row, &dk) in g.chunks_exact_mut(n).zip(d) {
                for (gi, &xi) in row.iter_mut().zip(x) {
                    *gi += xi * dk;
                }
            }
        }
        return;
    }
    // Column blocks: a block of `x` stays in registers while every row is updated, so each
    // gradient scalar costs one load, one multiply-add and one store.
    let (x8, x_tail) = x.as_chunks::<BLOCK>();
    let (x16, x8) = x8.as_chunks::<2>();
    let (x4, x1) = x_tail.as_chunks::<4>();
    let mut col = 0;
    // `x` by value: in registers for all rows.
    for &[xa, xb] in x16 {
        at_column_mut(g, n, col, d, pair_mut, |[ga, gb], &dk| {
            axpy8(ga, &xa, dk, |v| v);
            axpy8(gb, &xb, dk, |v| v);
        });
        col += 2 * BLOCK;
    }
    for &xa in x8 {
        at_column_mut(g, n, col, d, one_mut, |[ga], &dk| axpy8(ga, &xa, dk, |v| v));
        col += BLOCK;
    }
    for &[x0, x1, x2, x3] in x4 {
        at_column_mut(
            g,
            n,
            col,
            d,
            <[T]>::first_chunk_mut::<4>,
            |[g0, g1, g2, g3], &dk| {
                *g0 += x0 * dk;
                *g1 += x1 * dk;
                *g2 += x2 * dk;
                *g3 += x3 * dk;
            },
        );
        col += 4;
    }
    for &x0 in x1 {
        at_column_mut(g, n, col, d, <[T]>::first_chunk_mut::<1>, |[g0], &dk| {
            *g0 += x0 * dk;
        });
        col += 1;
    }
}

/// Calls `f(block, item)` for each whole row of `w` (`n` columns) in order, zipped with
/// `items`, where `block` is what `cut` makes of the row from column `col` on. Rows stop
/// at the shorter of the two; none at all when the block does not fit in a row (`cut`
/// must take at most `n − col` scalars).
#[inline(always)]
fn at_column<'w, W, B: 'w, I: IntoIterator>(
    w: &'w [W],
    n: usize,
    col: usize,
    items: I,
    cut: impl Fn(&'w [W]) -> Option<&'w B>,
    mut f: impl FnMut(&'w B, I::Item),
) {
    if n.checked_sub(col)
        .is_none_or(|left| left < size_of::<B>() / size_of::<W>().max(1))
    {
        return;
    }
    for (row, item) in w.chunks_exact(n).zip(items) {
        if let Some(block) = row.get(col..).and_then(&cut) {
            f(block, item);
        }
    }
}

/// [`at_column`] over a mutable matrix.
#[inline(always)]
fn at_column_mut<'w, W, B: 'w, I: IntoIterator>(
    w: &'w mut [W],
    n: usize,
    col: usize,
    items: I,
    cut: impl Fn(&'w mut [W]) -> Option<&'w mut B>,
    mut f: impl FnMut(&'w mut B, I::Item),
) {
    if n.checked_sub(col)
        .is_none_or(|left| left < size_of::<B>() / size_of::<W>().max(1))
    {
        return;
    }
    for (row, item) in w.chunks_exact_mut(n).zip(items) {
        if let Some(block) = row.get_mut(col..).and_then(&cut) {
            f(block, item);
        }
    }
}

/// The first two blocks of a row.
#[inline(always)]
fn pair<W>(row: &[W]) -> Option<&[[W; BLOCK]; 2]> {
    row.as_chunks::<BLOCK>().0.first_chunk::<2>()
}

/// The first block of a row.
#[inline(always)]
fn one<W>(row: &[W]) -> Option<&[[W; BLOCK]; 1]> {
    row.as_chunks::<BLOCK>().0.first_chunk::<1>()
}

/// [`pair`], mutable.
#[inline(always)]
fn pair_mut<W>(row: &mut [W]) -> Option<&mut [[W; BLOCK]; 2]> {
    row.as_chunks_mut::<BLOCK>().0.first_chunk_mut::<2>()
}

/// [`one`], mutable.
#[inline(always)]
fn one_mut<W>(row: &mut [W]) -> Option<&mut [[W; BLOCK]; 1]> {
    row.as_chunks_mut::<BLOCK>().0.first_chunk_mut::<1>()
}

/// [`affine`] over weights and biases read one at a time (same arithmetic, same bits).
pub(crate) fn affine_values<T: Real>(
    mut w: impl Iterator<Item = T>,
    b: impl Iterator<Item = T>,
    x: &[T],
    out: &mut [T],
) {
    for (o, bi) in out.iter_mut().zip(b) {
        *o = dot_values(&mut w, x) + bi;
    }
}

/// [`mul`] over weights read one at a time (same arithmetic, same bits).
pub(crate) fn mul_values<T: Real>(mut w: impl Iterator<Item = T>, x: &[T], out: &mut [T]) {
    for o in out.iter_mut() {
        *o = dot_values(&mut w, x);
    }
}

/// `Σ_i w_i·x[i]` over the next `x.len()` weights, summed from 0 for `i = 0, 1, …`.
fn dot_values<T: Real>(w: &mut impl Iterator<Item = T>, x: &[T]) -> T {
    let mut acc = T::ZERO;
    // `x` first: zip then stops without pulling the next row's first weight.
    for (&xi, wi) in x.iter().zip(w) {
        acc += wi * xi;
    }
    acc
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
