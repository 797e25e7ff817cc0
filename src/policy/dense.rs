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
    // Four rows per pass: each block of `x` is loaded once for four rows.
    let mut rows = w.chunks_exact(n.saturating_mul(4));
    let (out4, out_rest) = out.as_chunks_mut::<4>();
    let (b4, b_rest) = b.as_chunks::<4>();
    for ((o, &[b0, b1, b2, b3]), quad) in out4.iter_mut().zip(b4).zip(rows.by_ref()) {
        let Some((r01, r23)) = quad.split_at_checked(n.saturating_mul(2)) else {
            return;
        };
        let (Some((r0, r1)), Some((r2, r3))) = (r01.split_at_checked(n), r23.split_at_checked(n))
        else {
            return;
        };
        let (s0, s1, s2, s3) = dot4(r0, r1, r2, r3, x, conv);
        *o = [s0 + conv(b0), s1 + conv(b1), s2 + conv(b2), s3 + conv(b3)];
    }
    for ((o, &bi), r) in out_rest
        .iter_mut()
        .zip(b_rest)
        .zip(rows.remainder().chunks_exact(n))
    {
        *o = dot1(r, x, conv) + conv(bi);
    }
}

/// `Σ_i r_k[i]·x[i]` for the four rows `r_k`, each summed from 0 for `i = 0, 1, …` (rows
/// and `x` of one length).
#[inline(always)]
fn dot4<W: Copy, T: Real>(
    r0: &[W],
    r1: &[W],
    r2: &[W],
    r3: &[W],
    x: &[T],
    conv: impl Fn(W) -> T + Copy,
) -> (T, T, T, T) {
    let (mut a0, mut a1, mut a2, mut a3) = (T::ZERO, T::ZERO, T::ZERO, T::ZERO);
    let (x8, x_tail) = x.as_chunks::<BLOCK>();
    let (r08, r0t) = r0.as_chunks::<BLOCK>();
    let (r18, r1t) = r1.as_chunks::<BLOCK>();
    let (r28, r2t) = r2.as_chunks::<BLOCK>();
    let (r38, r3t) = r3.as_chunks::<BLOCK>();
    for ((((xb, w0), w1), w2), w3) in x8.iter().zip(r08).zip(r18).zip(r28).zip(r38) {
        a0 = dot8(a0, w0, xb, conv);
        a1 = dot8(a1, w1, xb, conv);
        a2 = dot8(a2, w2, xb, conv);
        a3 = dot8(a3, w3, xb, conv);
    }
    for ((((&xi, &w0), &w1), &w2), &w3) in x_tail.iter().zip(r0t).zip(r1t).zip(r2t).zip(r3t) {
        a0 += conv(w0) * xi;
        a1 += conv(w1) * xi;
        a2 += conv(w2) * xi;
        a3 += conv(w3) * xi;
    }
    (a0, a1, a2, a3)
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
    // Four rows per pass: each block of `y` is loaded and stored once for four rows.
    let mut rows = w.chunks_exact(n.saturating_mul(4));
    let (d4, d_rest) = d.as_chunks::<4>();
    for (quad, &[d0, d1, d2, d3]) in rows.by_ref().zip(d4) {
        let Some((r01, r23)) = quad.split_at_checked(n.saturating_mul(2)) else {
            return;
        };
        let (Some((r0, r1)), Some((r2, r3))) = (r01.split_at_checked(n), r23.split_at_checked(n))
        else {
            return;
        };
        let (y8, y_tail) = y.as_chunks_mut::<BLOCK>();
        let (r08, r0t) = r0.as_chunks::<BLOCK>();
        let (r18, r1t) = r1.as_chunks::<BLOCK>();
        let (r28, r2t) = r2.as_chunks::<BLOCK>();
        let (r38, r3t) = r3.as_chunks::<BLOCK>();
        for ((((yb, w0), w1), w2), w3) in y8.iter_mut().zip(r08).zip(r18).zip(r28).zip(r38) {
            axpy8(yb, w0, d0, conv);
            axpy8(yb, w1, d1, conv);
            axpy8(yb, w2, d2, conv);
            axpy8(yb, w3, d3, conv);
        }
        let tails = y_tail.iter_mut().zip(r0t).zip(r1t).zip(r2t).zip(r3t);
        for ((((yi, &w0), &w1), &w2), &w3) in tails {
            *yi += conv(w0) * d0;
            *yi += conv(w1) * d1;
            *yi += conv(w2) * d2;
            *yi += conv(w3) * d3;
        }
    }
    for (r, &dk) in rows.remainder().chunks_exact(n).zip(d_rest) {
        let (y8, y_tail) = y.as_chunks_mut::<BLOCK>();
        let (r8, rt) = r.as_chunks::<BLOCK>();
        for (yb, wb) in y8.iter_mut().zip(r8) {
            axpy8(yb, wb, dk, conv);
        }
        for (yi, &wi) in y_tail.iter_mut().zip(rt) {
            *yi += conv(wi) * dk;
        }
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
    // Four rows per pass: each block of `x` is loaded once for four rows.
    let mut rows = g.chunks_exact_mut(n.saturating_mul(4));
    let (d4, d_rest) = d.as_chunks::<4>();
    let (x8, x_tail) = x.as_chunks::<BLOCK>();
    for (quad, &[d0, d1, d2, d3]) in rows.by_ref().zip(d4) {
        let Some((g01, g23)) = quad.split_at_mut_checked(n.saturating_mul(2)) else {
            return;
        };
        let (Some((g0, g1)), Some((g2, g3))) =
            (g01.split_at_mut_checked(n), g23.split_at_mut_checked(n))
        else {
            return;
        };
        let (g08, g0t) = g0.as_chunks_mut::<BLOCK>();
        let (g18, g1t) = g1.as_chunks_mut::<BLOCK>();
        let (g28, g2t) = g2.as_chunks_mut::<BLOCK>();
        let (g38, g3t) = g3.as_chunks_mut::<BLOCK>();
        let blocks = g08
            .iter_mut()
            .zip(g18.iter_mut())
            .zip(g28.iter_mut())
            .zip(g38.iter_mut());
        for ((((b0, b1), b2), b3), xb) in blocks.zip(x8) {
            axpy8(b0, xb, d0, |v| v);
            axpy8(b1, xb, d1, |v| v);
            axpy8(b2, xb, d2, |v| v);
            axpy8(b3, xb, d3, |v| v);
        }
        let tails = g0t
            .iter_mut()
            .zip(g1t.iter_mut())
            .zip(g2t.iter_mut())
            .zip(g3t.iter_mut());
        for ((((e0, e1), e2), e3), &xi) in tails.zip(x_tail) {
            *e0 += xi * d0;
            *e1 += xi * d1;
            *e2 += xi * d2;
            *e3 += xi * d3;
        }
    }
    for (row, &dk) in rows.into_remainder().chunks_exact_mut(n).zip(d_rest) {
        let (r8, rt) = row.as_chunks_mut::<BLOCK>();
        for (b, xb) in r8.iter_mut().zip(x8) {
            axpy8(b, xb, dk, |v| v);
        }
        for (e, &xi) in rt.iter_mut().zip(x_tail) {
            *e += xi * dk;
        }
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
