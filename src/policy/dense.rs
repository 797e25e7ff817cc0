//! Dense-layer loops: every multiply-accumulate of a policy's forward and backward pass.
//!
//! These loops decide what adaptation costs on a microcontroller, so they are written for
//! it. Weights come as a slice of stored words `W` turned into scalars by `conv` (`f32`
//! slices, in RAM or cast from a word-aligned bundle in flash; little-endian words on a
//! big-endian target). All three products are walked in *column blocks*: a block of the
//! vector the rows share stays in registers while every row streams past it — `x` in the
//! forward pass ([`affine_map`]) and the weight gradient ([`add_outer`]), the sums of `y`
//! in the transposed product ([`transposed_map`]). Each weight then costs one load and
//! one `VMLA` (each gradient scalar a load, a `VMLA` and a store); the shared vector is
//! loaded once per block, and a row's partial sum once per block and row.
//!
//! Blocks are [`WIDE`] = 20 columns (five blocks of four: with the row partners below it
//! fits the M4F's 32 single-precision registers), then 4, 2 and 1 for the rest of a row;
//! `as_chunks`, destructured arrays and a width check hoisted out of the row loop leave no
//! bounds checks inside. Rows go through the wide blocks in pairs (in fours for the
//! weight gradient) to share the loop's pointer and counter work; an odd last row is done
//! on its own. Blocks are written out by hand: the firmware is optimised for size, which
//! unrolls no loops. The biases, an activation or its derivative, and the finiteness
//! checks the policy needs ride along the pass that produces each result ([`Finite`]).
//! LLVM allocates single-precision registers such that it never merges loads into
//! `VLDM`s, so one load per weight is the floor without assembly.
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

/// Whether the target has a floating-point unit: everywhere but soft-float ARM
/// (`target_abi = "eabi"`: the M0, M3).
pub(crate) const HARD_FLOAT: bool = !cfg!(all(target_arch = "arm", target_abi = "eabi"));

/// Whether the unrolled loops are compiled in: with a floating-point unit.
pub(crate) const UNROLLED: bool = HARD_FLOAT;

/// Blocks of four columns per wide block.
const QUADS: usize = 5;
/// Columns per wide block.
const WIDE: usize = 4 * QUADS;

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
    if UNROLLED {
        affine_map(w, b, x, out, conv, same);
    } else {
        affine_values(
            w.iter().map(|&v| conv(v)),
            b.iter().map(|&v| conv(v)),
            x,
            out,
        );
    }
}

/// [`affine`] with `f` applied to each output: `out[o] = f((Σ_i W[o][i]·x[i]) + b[o])`;
/// true when every value given to `f` was finite.
// Inline: a thin shell around the out-of-line kernels, and no frame of its own above them.
#[inline(always)]
pub(crate) fn affine_map<W: Copy, T: Real>(
    w: &[W],
    b: &[W],
    x: &[T],
    out: &mut [T],
    conv: impl Fn(W) -> T + Copy,
    f: impl Fn(T) -> T,
) -> bool {
    if !UNROLLED {
        return affine_map_values(
            w.iter().map(|&v| conv(v)),
            b.iter().map(|&v| conv(v)),
            x,
            out,
            f,
        );
    }
    let Some(out) = out.get_mut(..b.len().min(out.len())) else {
        return true;
    };
    let rows = mul(w, x, out, conv);
    let (Some(out), Some(b)) = (out.get_mut(..rows), b.get(..rows)) else {
        return true;
    };
    add_bias_map(out, b, conv, f)
}

/// `out[o] = f(out[o] + b[o])`; true when every `out[o] + b[o]` was finite.
// Out of line, after `mul` has returned: the registers `f` keeps (an activation's
// constants) are saved in a frame of its own, not on top of the kernel's.
#[inline(never)]
fn add_bias_map<W: Copy, T: Real>(
    out: &mut [T],
    b: &[W],
    conv: impl Fn(W) -> T,
    f: impl Fn(T) -> T,
) -> bool {
    let mut check = Finite::new();
    for (o, &bi) in out.iter_mut().zip(b) {
        let z = *o + conv(bi);
        check.see(z);
        *o = f(z);
    }
    check.ok()
}

/// `out[o] = Σ_i W[o][i]·x[i]` with `W` row-major in `w` (`out.len()` rows of `x.len()`),
/// each row summed from 0 for `i = 0, 1, …`; returns the number of rows computed (the
/// whole rows `w` and `out` both have: outputs beyond them are left as they were).
// Out of line: one copy serves every caller and every `f` of `affine_map`.
#[inline(never)]
fn mul<W: Copy, T: Real>(w: &[W], x: &[T], out: &mut [T], conv: impl Fn(W) -> T + Copy) -> usize {
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
    // the dot product to `out` (each row's sum still runs from column 0 up; the block at
    // column 0 starts it). Rows go in pairs through the widest blocks; an odd last row is
    // summed on its own.
    if n == 0 {
        out.fill(T::ZERO);
    }
    let even = rows & !1;
    let col = mul_wide(w, x, out, even, conv);
    mul_narrow(w, x, out, even, col, conv);
    // Recomputed here rather than kept live through the loops (stack).
    if rows > even
        && let (Some(row), Some(o)) = (
            w.get(even.saturating_mul(n)..).and_then(|r| r.get(..n)),
            out.get_mut(even),
        )
    {
        let mut acc = T::ZERO;
        for (&wi, &xi) in row.iter().zip(x) {
            acc += conv(wi) * xi;
        }
        *o = acc;
    }
    rows
}

/// `o` where a row's sum goes on, 0 where it starts (`FRESH`: the block at column 0).
#[inline(always)]
fn start<T: Real, const FRESH: bool>(o: T) -> T {
    if FRESH { T::ZERO } else { o }
}

/// The wide column blocks of [`mul`] over the first `even` rows (an even number); returns
/// the first column left.
#[inline(always)]
fn mul_wide<W: Copy, T: Real>(
    w: &[W],
    x: &[T],
    out: &mut [T],
    even: usize,
    conv: impl Fn(W) -> T + Copy,
) -> usize {
    let n = x.len();
    let (Some(w), Some(out)) = (w.get(..even.saturating_mul(n)), out.get_mut(..even)) else {
        return 0;
    };
    let mut col = 0;
    for q in x.as_chunks::<4>().0.as_chunks::<QUADS>().0 {
        if col == 0 {
            mul_wide_block::<W, T, true>(w, n, col, out, q, conv);
        } else {
            mul_wide_block::<W, T, false>(w, n, col, out, q, conv);
        }
        col += WIDE;
    }
    col
}

/// One wide column block of [`mul`], rows in pairs.
#[inline(always)]
fn mul_wide_block<W: Copy, T: Real, const FRESH: bool>(
    w: &[W],
    n: usize,
    col: usize,
    out: &mut [T],
    q: &[[T; 4]; QUADS],
    conv: impl Fn(W) -> T + Copy,
) {
    let [q0, q1, q2, q3, q4] = q;
    let outs = out.as_chunks_mut::<2>().0;
    at_column_pairs(
        w,
        n,
        col,
        outs,
        wide,
        |[u0, u1, u2, u3, u4], [v0, v1, v2, v3, v4], o| {
            let a = o.map(start::<T, FRESH>);
            let a = dot4x2(a, u0, v0, q0, conv);
            let a = dot4x2(a, u1, v1, q1, conv);
            let a = dot4x2(a, u2, v2, q2, conv);
            let a = dot4x2(a, u3, v3, q3, conv);
            *o = dot4x2(a, u4, v4, q4, conv);
        },
    );
}

/// The narrow column blocks of [`mul`] from column `col` on, over the first `even` rows.
#[inline(always)]
fn mul_narrow<W: Copy, T: Real>(
    w: &[W],
    x: &[T],
    out: &mut [T],
    even: usize,
    mut col: usize,
    conv: impl Fn(W) -> T + Copy,
) {
    let n = x.len();
    let (Some(w), Some(out), Some(x)) = (
        w.get(..even.saturating_mul(n)),
        out.get_mut(..even),
        x.get(col..),
    ) else {
        return;
    };
    let (x4, x1) = x.as_chunks::<4>();
    for x4 in x4 {
        if col == 0 {
            mul_block::<W, T, 4, true>(w, n, col, out, x4, conv);
        } else {
            mul_block::<W, T, 4, false>(w, n, col, out, x4, conv);
        }
        col += 4;
    }
    let (x2, x1) = x1.as_chunks::<2>();
    for x2 in x2 {
        if col == 0 {
            mul_block::<W, T, 2, true>(w, n, col, out, x2, conv);
        } else {
            mul_block::<W, T, 2, false>(w, n, col, out, x2, conv);
        }
        col += 2;
    }
    for x1 in x1.as_chunks::<1>().0 {
        if col == 0 {
            mul_block::<W, T, 1, true>(w, n, col, out, x1, conv);
        } else {
            mul_block::<W, T, 1, false>(w, n, col, out, x1, conv);
        }
        col += 1;
    }
}

/// One narrow column block of [`mul`] (`K` ≤ 4 columns), row by row.
#[inline(always)]
fn mul_block<W: Copy, T: Real, const K: usize, const FRESH: bool>(
    w: &[W],
    n: usize,
    col: usize,
    out: &mut [T],
    x: &[T; K],
    conv: impl Fn(W) -> T + Copy,
) {
    at_column(w, n, col, out.iter_mut(), first::<W, K>, |r, o| {
        *o = dot_short(start::<T, FRESH>(*o), r, x, conv);
    });
}

/// `acc + w[0]·x[0] + …` over `K` ≤ 4 columns, added left to right (written out: the
/// compiler does not unroll loops when optimising for size).
#[inline(always)]
fn dot_short<W: Copy, T: Real, const K: usize>(
    mut acc: T,
    w: &[W; K],
    x: &[T; K],
    conv: impl Fn(W) -> T,
) -> T {
    let (mut w, mut x) = (w.as_slice(), x.as_slice());
    if let ([w0, w1, w2, w3, ..], [x0, x1, x2, x3, ..]) = (w, x) {
        acc += conv(*w0) * *x0;
        acc += conv(*w1) * *x1;
        acc += conv(*w2) * *x2;
        acc += conv(*w3) * *x3;
        (w, x) = (&[], &[]);
    }
    if let ([w0, w1, ..], [x0, x1, ..]) = (w, x) {
        acc += conv(*w0) * *x0;
        acc += conv(*w1) * *x1;
        (w, x) = (&[], &[]);
    }
    if let ([w0, ..], [x0, ..]) = (w, x) {
        acc += conv(*w0) * *x0;
    }
    acc
}

/// `[a, b] + [Σ u[k]·x[k], Σ v[k]·x[k]]` over a block of four columns, each row added
/// left to right.
#[inline(always)]
fn dot4x2<W: Copy, T: Real>(
    acc: [T; 2],
    u: &[W; 4],
    v: &[W; 4],
    x: &[T; 4],
    conv: impl Fn(W) -> T,
) -> [T; 2] {
    let [mut a, mut b] = acc;
    let [u0, u1, u2, u3] = *u;
    let [v0, v1, v2, v3] = *v;
    let [x0, x1, x2, x3] = *x;
    a += conv(u0) * x0;
    b += conv(v0) * x0;
    a += conv(u1) * x1;
    b += conv(v1) * x1;
    a += conv(u2) * x2;
    b += conv(v2) * x2;
    a += conv(u3) * x3;
    b += conv(v3) * x3;
    [a, b]
}

/// `y += Wᵀ·d` with `W` row-major in `w` (`d.len()` rows of `y.len()`): for each row `o`
/// in turn, `y[i] += W[o][i]·d[o]`. Rows beyond the shortest operand are skipped. (Plain
/// loops: policies backpropagate through [`transposed_map`].)
pub(crate) fn add_transposed<W: Copy, T: Real>(
    w: &[W],
    d: &[T],
    y: &mut [T],
    conv: impl Fn(W) -> T + Copy,
) {
    // Whole rows only; soft-float cores spare themselves the division (there a last
    // partial row is added as far as it goes).
    let w = if UNROLLED {
        let rows = whole_rows(w.len(), y.len(), d.len());
        w.get(..rows.saturating_mul(y.len())).unwrap_or_default()
    } else {
        w
    };
    add_transposed_values(w.iter().map(|&v| conv(v)), d, y);
}

/// `y[i] = f(Σ_o W[o][i]·d[o], aux[i])` with `W` row-major in `w` (`d.len()` rows of
/// `y.len()`), each sum from 0 over the rows `o` in turn; true when every result is finite.
#[inline(always)]
pub(crate) fn transposed_map<W: Copy, T: Real>(
    w: &[W],
    d: &[T],
    aux: &[T],
    y: &mut [T],
    conv: impl Fn(W) -> T + Copy,
    f: impl Fn(T, T) -> T,
) -> bool {
    match aux.get(..y.len()) {
        Some(aux) if UNROLLED => transposed(w, d, aux, y, conv, f),
        _ => transposed_map_values(w.iter().map(|&v| conv(v)), d, aux, y, f),
    }
}

/// The unrolled loops of [`transposed_map`] (`aux` as long as `y`).
// Out of line: one copy serves every caller.
#[inline(never)]
fn transposed<W: Copy, T: Real>(
    w: &[W],
    d: &[T],
    aux: &[T],
    y: &mut [T],
    conv: impl Fn(W) -> T + Copy,
    f: impl Fn(T, T) -> T,
) -> bool {
    let n = y.len();
    // Column blocks: a block of `y` stays in registers while every row adds to it, then
    // `f` makes the block's results, so each weight costs one load and one multiply-add.
    // Rows go in pairs through the widest blocks; an odd last row comes after all others.
    let rows = whole_rows(w.len(), n, d.len());
    let (w, last_w) = even_and_last(w, n, rows);
    let Some((d, last_d)) = d.split_at_checked(rows & !1) else {
        return true;
    };
    let last = last_w.zip(last_d.first());
    let mut check = Finite::new();
    let mut finish = |y: &mut T, acc: T, a: T| {
        *y = f(acc, a);
        check.see(*y);
    };
    let (yq, y1) = y.as_chunks_mut::<4>();
    let (yw, y4) = yq.as_chunks_mut::<QUADS>();
    let (aq, a1) = aux.as_chunks::<4>();
    let (aw, a4) = aq.as_chunks::<QUADS>();
    let mut col = 0;
    for (yb, ab) in yw.iter_mut().zip(aw) {
        let mut acc = [[T::ZERO; 4]; QUADS];
        let ds = d.as_chunks::<2>().0;
        at_column_pairs(w, n, col, ds, wide, |r0, r1, &[d0, d1]| {
            axpy_wide(&mut acc, r0, d0, conv);
            axpy_wide(&mut acc, r1, d1, conv);
        });
        if let Some((row, &dk)) = last
            && let Some(r) = row.get(col..).and_then(wide)
        {
            axpy_wide(&mut acc, r, dk, conv);
        }
        let [y0, y1, y2, y3, y4] = yb;
        let [a0, a1, a2, a3, a4] = ab;
        let [c0, c1, c2, c3, c4] = acc;
        finish4(y0, a0, c0, &mut finish);
        finish4(y1, a1, c1, &mut finish);
        finish4(y2, a2, c2, &mut finish);
        finish4(y3, a3, c3, &mut finish);
        finish4(y4, a4, c4, &mut finish);
        col += WIDE;
    }
    for (yq, aq) in y4.iter_mut().zip(a4) {
        let [mut a0, mut a1, mut a2, mut a3] = [T::ZERO; 4];
        let mut add = |&[w0, w1, w2, w3]: &[W; 4], dk: T| {
            a0 += conv(w0) * dk;
            a1 += conv(w1) * dk;
            a2 += conv(w2) * dk;
            a3 += conv(w3) * dk;
        };
        at_column(w, n, col, d, first::<W, 4>, |r, &dk| add(r, dk));
        if let Some((row, &dk)) = last
            && let Some(r) = row.get(col..).and_then(first::<W, 4>)
        {
            add(r, dk);
        }
        finish4(yq, aq, [a0, a1, a2, a3], &mut finish);
        col += 4;
    }
    for (y, &a) in y1.iter_mut().zip(a1) {
        let mut acc = T::ZERO;
        let mut add = |&[w0]: &[W; 1], dk: T| acc += conv(w0) * dk;
        at_column(w, n, col, d, first::<W, 1>, |r, &dk| add(r, dk));
        if let Some((row, &dk)) = last
            && let Some(r) = row.get(col..).and_then(first::<W, 1>)
        {
            add(r, dk);
        }
        finish(y, acc, a);
        col += 1;
    }
    check.ok()
}

/// `finish(y[k], acc[k], a[k])` for a block of four columns.
#[inline(always)]
fn finish4<T: Copy>(
    y: &mut [T; 4],
    a: &[T; 4],
    acc: [T; 4],
    finish: &mut impl FnMut(&mut T, T, T),
) {
    let [y0, y1, y2, y3] = y;
    let [a0, a1, a2, a3] = *a;
    let [c0, c1, c2, c3] = acc;
    finish(y0, c0, a0);
    finish(y1, c1, a1);
    finish(y2, c2, a2);
    finish(y3, c3, a3);
}

/// `y[k] += w[k]·a` over a wide block.
#[inline(always)]
fn axpy_wide<W: Copy, T: Real>(
    y: &mut [[T; 4]; QUADS],
    w: &[[W; 4]; QUADS],
    a: T,
    conv: impl Fn(W) -> T + Copy,
) {
    let [y0, y1, y2, y3, y4] = y;
    let [w0, w1, w2, w3, w4] = w;
    axpy4(y0, w0, a, conv);
    axpy4(y1, w1, a, conv);
    axpy4(y2, w2, a, conv);
    axpy4(y3, w3, a, conv);
    axpy4(y4, w4, a, conv);
}

/// `y[k] += w[k]·a` for a block of four columns.
#[inline(always)]
fn axpy4<W: Copy, T: Real>(y: &mut [T; 4], w: &[W; 4], a: T, conv: impl Fn(W) -> T) {
    let [w0, w1, w2, w3] = *w;
    let [y0, y1, y2, y3] = y;
    *y0 += conv(w0) * a;
    *y1 += conv(w1) * a;
    *y2 += conv(w2) * a;
    *y3 += conv(w3) * a;
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
    // gradient scalar costs one load, one multiply-add and one store. Rows go four at a
    // time through the widest blocks, then a last pair; an odd last row on its own.
    let rows = whole_rows(g.len(), n, d.len());
    let (g, last_g) = even_and_last_mut(g, n, rows);
    let Some((d, last_d)) = d.split_at_checked(rows & !1) else {
        return;
    };
    let last = last_g.zip(last_d.first());
    let (xq, x1) = x.as_chunks::<4>();
    let (xw, x4) = xq.as_chunks::<QUADS>();
    let mut col = 0;
    let fours = (rows & !1) & !3;
    let (Some((g4, g2)), Some((d4, d2))) = (
        g.split_at_mut_checked(fours.saturating_mul(n)),
        d.split_at_checked(fours),
    ) else {
        return;
    };
    // By value: in registers for all rows.
    for q in xw {
        let d4s = d4.as_chunks::<4>().0;
        at_column_quads_mut(
            g4,
            n,
            col,
            d4s,
            wide_mut,
            |[g0, g1, g2, g3], &[d0, d1, d2, d3]| {
                axpy_wide(g0, q, d0, same);
                axpy_wide(g1, q, d1, same);
                axpy_wide(g2, q, d2, same);
                axpy_wide(g3, q, d3, same);
            },
        );
        let d2s = d2.as_chunks::<2>().0;
        at_column_pairs_mut(g2, n, col, d2s, wide_mut, |g0, g1, &[d0, d1]| {
            axpy_wide(g0, q, d0, same);
            axpy_wide(g1, q, d1, same);
        });
        col += WIDE;
    }
    for &[x0, x1, x2, x3] in x4 {
        at_column_mut(g, n, col, d, first_mut::<T, 4>, |[g0, g1, g2, g3], &dk| {
            *g0 += x0 * dk;
            *g1 += x1 * dk;
            *g2 += x2 * dk;
            *g3 += x3 * dk;
        });
        col += 4;
    }
    let (x2, x1) = x1.as_chunks::<2>();
    for &[x0, x1] in x2 {
        at_column_mut(g, n, col, d, first_mut::<T, 2>, |[g0, g1], &dk| {
            *g0 += x0 * dk;
            *g1 += x1 * dk;
        });
        col += 2;
    }
    for &x0 in x1 {
        at_column_mut(g, n, col, d, first_mut::<T, 1>, |[g0], &dk| {
            *g0 += x0 * dk;
        });
        col += 1;
    }
    if let Some((row, &dk)) = last {
        for (gi, &xi) in row.iter_mut().zip(x) {
            *gi += xi * dk;
        }
    }
}

/// Whether every value seen was finite. With an FPU as `Σ v·0`, which is NaN exactly when
/// some `v` is NaN or infinite (one multiply-add per value, no branch); on soft-float
/// cores with `is_finite` (bit tests instead of two float calls per value).
#[derive(Clone, Copy)]
pub(crate) struct Finite<T>(T);

impl<T: Real> Finite<T> {
    /// Nothing seen yet.
    pub(crate) fn new() -> Self {
        Self(T::ZERO)
    }

    /// Takes `v` into account.
    #[inline(always)]
    pub(crate) fn see(&mut self, v: T) {
        if HARD_FLOAT {
            self.0 += v * T::ZERO;
        } else if !v.is_finite() {
            self.0 = v;
        }
    }

    /// True when every value seen was finite.
    pub(crate) fn ok(self) -> bool {
        self.0.is_finite()
    }
}

/// The identity, as the scalar conversion of weights already held as scalars (one named
/// function, so that every caller shares one copy of each kernel).
#[inline(always)]
pub(crate) fn same<T>(v: T) -> T {
    v
}

/// Number of whole rows of `w` (`n` columns each; none when `n` is 0) with an item.
#[inline(always)]
fn whole_rows(w_len: usize, n: usize, items: usize) -> usize {
    items.min(w_len.checked_div(n).unwrap_or(0))
}

/// The first `rows` whole rows of `w` (`n` columns each, `rows ≤ w.len() / n`): an even
/// number of them, for [`at_column_pairs`], and the last one when `rows` is odd.
#[inline(always)]
fn even_and_last<W>(w: &[W], n: usize, rows: usize) -> (&[W], Option<&[W]>) {
    let even = rows & !1;
    let Some((pairs, rest)) = w.split_at_checked(even.saturating_mul(n)) else {
        return (&[], None);
    };
    (pairs, if rows > even { rest.get(..n) } else { None })
}

/// [`even_and_last`] of a mutable matrix.
#[inline(always)]
fn even_and_last_mut<W>(w: &mut [W], n: usize, rows: usize) -> (&mut [W], Option<&mut [W]>) {
    let even = rows & !1;
    let Some((pairs, rest)) = w.split_at_mut_checked(even.saturating_mul(n)) else {
        return (&mut [], None);
    };
    (pairs, if rows > even { rest.get_mut(..n) } else { None })
}

/// True when a block of `B` (scalars of `W`) starting at column `col` fits in a row of `n`.
#[inline(always)]
fn fits<W, B>(n: usize, col: usize) -> bool {
    let width = size_of::<B>() / size_of::<W>().max(1);
    n.checked_sub(col).is_some_and(|left| left >= width.max(1))
}

/// Calls `f(block, item)` for each whole row of `w` (`n` columns) in order, zipped with
/// `items`, where `block` is what `cut` makes of the row from column `col` on. Rows stop
/// at the shorter of the two; none at all when a block of `B` does not fit in a row.
#[inline(always)]
fn at_column<'w, W, B: 'w, I: IntoIterator>(
    w: &'w [W],
    n: usize,
    col: usize,
    items: I,
    cut: impl Fn(&'w [W]) -> Option<&'w B>,
    mut f: impl FnMut(&'w B, I::Item),
) {
    if !fits::<W, B>(n, col) {
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
    if !fits::<W, B>(n, col) {
        return;
    }
    for (row, item) in w.chunks_exact_mut(n).zip(items) {
        if let Some(block) = row.get_mut(col..).and_then(&cut) {
            f(block, item);
        }
    }
}

/// [`at_column`] over rows taken two at a time: `f(block of row 2k, block of row 2k + 1,
/// item k)`.
#[inline(always)]
fn at_column_pairs<'w, W, B: 'w, I: IntoIterator>(
    w: &'w [W],
    n: usize,
    col: usize,
    items: I,
    cut: impl Fn(&'w [W]) -> Option<&'w B>,
    mut f: impl FnMut(&'w B, &'w B, I::Item),
) {
    if !fits::<W, B>(n, col) {
        return;
    }
    for (rows, item) in w.chunks_exact(n.saturating_mul(2)).zip(items) {
        let Some((r0, r1)) = rows.split_at_checked(n) else {
            return;
        };
        if let (Some(b0), Some(b1)) = (r0.get(col..).and_then(&cut), r1.get(col..).and_then(&cut)) {
            f(b0, b1, item);
        }
    }
}

/// [`at_column_pairs`] over a mutable matrix.
#[inline(always)]
fn at_column_pairs_mut<'w, W, B: 'w, I: IntoIterator>(
    w: &'w mut [W],
    n: usize,
    col: usize,
    items: I,
    cut: impl Fn(&'w mut [W]) -> Option<&'w mut B>,
    mut f: impl FnMut(&'w mut B, &'w mut B, I::Item),
) {
    if !fits::<W, B>(n, col) {
        return;
    }
    for (rows, item) in w.chunks_exact_mut(n.saturating_mul(2)).zip(items) {
        let Some((r0, r1)) = rows.split_at_mut_checked(n) else {
            return;
        };
        if let (Some(b0), Some(b1)) = (
            r0.get_mut(col..).and_then(&cut),
            r1.get_mut(col..).and_then(&cut),
        ) {
            f(b0, b1, item);
        }
    }
}

/// [`at_column_pairs_mut`] over rows taken four at a time.
#[inline(always)]
fn at_column_quads_mut<'w, W, B: 'w, I: IntoIterator>(
    w: &'w mut [W],
    n: usize,
    col: usize,
    items: I,
    cut: impl Fn(&'w mut [W]) -> Option<&'w mut B>,
    mut f: impl FnMut([&'w mut B; 4], I::Item),
) {
    if !fits::<W, B>(n, col) {
        return;
    }
    for (rows, item) in w.chunks_exact_mut(n.saturating_mul(4)).zip(items) {
        let Some((r01, r23)) = rows.split_at_mut_checked(n.saturating_mul(2)) else {
            return;
        };
        let (Some((r0, r1)), Some((r2, r3))) =
            (r01.split_at_mut_checked(n), r23.split_at_mut_checked(n))
        else {
            return;
        };
        if let (Some(b0), Some(b1), Some(b2), Some(b3)) = (
            r0.get_mut(col..).and_then(&cut),
            r1.get_mut(col..).and_then(&cut),
            r2.get_mut(col..).and_then(&cut),
            r3.get_mut(col..).and_then(&cut),
        ) {
            f([b0, b1, b2, b3], item);
        }
    }
}

/// The first wide block of a row, as blocks of four.
#[inline(always)]
fn wide<W>(row: &[W]) -> Option<&[[W; 4]; QUADS]> {
    row.as_chunks::<4>().0.first_chunk::<QUADS>()
}

/// [`wide`], mutable.
#[inline(always)]
fn wide_mut<W>(row: &mut [W]) -> Option<&mut [[W; 4]; QUADS]> {
    row.as_chunks_mut::<4>().0.first_chunk_mut::<QUADS>()
}

/// The first `K` scalars of a row.
#[inline(always)]
fn first<W, const K: usize>(row: &[W]) -> Option<&[W; K]> {
    row.first_chunk::<K>()
}

/// [`first`], mutable.
#[inline(always)]
fn first_mut<W, const K: usize>(row: &mut [W]) -> Option<&mut [W; K]> {
    row.first_chunk_mut::<K>()
}

/// [`affine`] over weights and biases read one at a time (same arithmetic, same bits).
pub(crate) fn affine_values<T: Real>(
    w: impl Iterator<Item = T>,
    b: impl Iterator<Item = T>,
    x: &[T],
    out: &mut [T],
) {
    let mut w = w;
    for (o, bi) in out.iter_mut().zip(b) {
        *o = dot_values(&mut w, x) + bi;
    }
}

/// [`affine_map`] over weights and biases read one at a time (same arithmetic, same bits):
/// [`affine_values`], then `f` in a pass of its own (one copy of the loops whatever `f`).
pub(crate) fn affine_map_values<T: Real>(
    w: impl Iterator<Item = T>,
    b: impl Iterator<Item = T>,
    x: &[T],
    out: &mut [T],
    f: impl Fn(T) -> T,
) -> bool {
    affine_values_out_of_line(w, b, x, out);
    map_finite(out, f)
}

/// [`affine_values`], in a frame of its own.
#[inline(never)]
fn affine_values_out_of_line<T: Real>(
    w: impl Iterator<Item = T>,
    b: impl Iterator<Item = T>,
    x: &[T],
    out: &mut [T],
) {
    affine_values(w, b, x, out);
}

/// `v[k] = f(v[k])`; true when every `v[k]` was finite.
#[inline(never)]
fn map_finite<T: Real>(v: &mut [T], f: impl Fn(T) -> T) -> bool {
    let mut check = Finite::new();
    for o in v.iter_mut() {
        check.see(*o);
        *o = f(*o);
    }
    check.ok()
}

/// [`mul`] over weights read one at a time (same arithmetic, same bits).
fn mul_values<T: Real>(mut w: impl Iterator<Item = T>, x: &[T], out: &mut [T]) {
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

/// [`transposed_map`] over weights read one at a time (same arithmetic, same bits).
pub(crate) fn transposed_map_values<T: Real>(
    w: impl Iterator<Item = T>,
    d: &[T],
    aux: &[T],
    y: &mut [T],
    f: impl Fn(T, T) -> T,
) -> bool {
    y.fill(T::ZERO);
    add_transposed_values(w, d, y);
    let mut check = Finite::new();
    for (yi, &a) in y.iter_mut().zip(aux) {
        *yi = f(*yi, a);
        check.see(*yi);
    }
    check.ok()
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

    /// Sizes around the block widths and the row grouping: 1..9 rows (fours, a last pair,
    /// an odd last row), columns below, at and above the wide block (tails of 4, 2 and 1
    /// columns, several wide blocks).
    const SIZES: [(usize, usize); 20] = [
        (1, 1),
        (2, 1),
        (3, 2),
        (5, 3),
        (2, 4),
        (5, 7),
        (2, 8),
        (7, 9),
        (4, 16),
        (3, 17),
        (1, 20),
        (2, 20),
        (3, 21),
        (4, 22),
        (5, 23),
        (6, 27),
        (7, 40),
        (8, 43),
        (9, 61),
        (6, 100),
    ];

    /// The plain loop: `(Σ_i W[o][i]·x[i]) + b[o]`, summed from 0 for `i = 0, 1, …`.
    fn plain_affine(w: &[f32], b: &[f32], x: &[f32]) -> Vec<f32> {
        let cols = x.len();
        (0..b.len())
            .map(|o| {
                let mut acc = 0.0f32;
                for i in 0..cols {
                    acc += w[o * cols + i] * x[i];
                }
                acc + b[o]
            })
            .collect()
    }

    /// The plain loop: `Σ_o W[o][i]·d[o]` from `y0[i]`, rows in turn.
    fn plain_transposed(w: &[f32], d: &[f32], y0: &[f32]) -> Vec<f32> {
        let cols = y0.len();
        let mut y = y0.to_vec();
        for o in 0..d.len() {
            for i in 0..cols {
                y[i] += w[o * cols + i] * d[o];
            }
        }
        y
    }

    #[test]
    fn affine_matches_the_plain_loop_bit_for_bit() {
        let mut rng = Rng::new(1);
        for (rows, cols) in SIZES {
            let (w, b, x) = (
                normals(&mut rng, rows * cols),
                normals(&mut rng, rows),
                normals(&mut rng, cols),
            );
            let want = plain_affine(&w, &b, &x);
            let mut got = std::vec![f32::NAN; rows];
            affine(&w, &b, &x, &mut got, same);
            assert_eq!(bits(&got), bits(&want), "{rows}x{cols}");
            let mut by_values = std::vec![f32::NAN; rows];
            affine_values(w.iter().copied(), b.iter().copied(), &x, &mut by_values);
            assert_eq!(bits(&by_values), bits(&want), "{rows}x{cols} (values)");

            // With an activation: the same bits as applying it afterwards, and finite.
            let want: Vec<f32> = want.iter().map(|&v| crate::math::tanh_f32(v)).collect();
            let mut got = std::vec![f32::NAN; rows];
            assert!(affine_map(
                &w,
                &b,
                &x,
                &mut got,
                same,
                crate::math::tanh_f32
            ));
            assert_eq!(bits(&got), bits(&want), "{rows}x{cols} (map)");
            let mut by_values = std::vec![f32::NAN; rows];
            let finite = affine_map_values(
                w.iter().copied(),
                b.iter().copied(),
                &x,
                &mut by_values,
                crate::math::tanh_f32,
            );
            assert!(finite);
            assert_eq!(bits(&by_values), bits(&want), "{rows}x{cols} (map, values)");
        }
    }

    /// A non-finite weight, or a sum that overflows, is reported even where the activation
    /// hides it (`tanh(∞)` is finite).
    #[test]
    fn affine_map_reports_non_finite_sums() {
        let mut rng = Rng::new(5);
        for (rows, cols) in SIZES {
            let (w, b, x) = (
                normals(&mut rng, rows * cols),
                normals(&mut rng, rows),
                normals(&mut rng, cols),
            );
            // Weights and inputs positive, inputs at least 2: a weight of 3e38 overflows.
            let w: Vec<f32> = w.iter().map(|v| v.abs()).collect();
            let x: Vec<f32> = x.iter().map(|v| v.abs() + 2.0).collect();
            for (at, bad) in [
                (0, f32::INFINITY),
                (rows * cols - 1, f32::NAN),
                (rows * cols / 2, 3e38),
            ] {
                let mut w = w.clone();
                w[at] = bad;
                let mut out = std::vec![0.0f32; rows];
                let tanh = crate::math::tanh_f32;
                assert!(
                    !affine_map(&w, &b, &x, &mut out, same, tanh),
                    "{rows}x{cols} {bad}"
                );
                let values = (w.iter().copied(), b.iter().copied());
                let finite = affine_map_values(values.0, values.1, &x, &mut out, tanh);
                assert!(!finite, "{rows}x{cols} {bad} (values)");
            }
        }
    }

    #[test]
    fn transposed_and_outer_products_match_the_plain_loops_bit_for_bit() {
        let mut rng = Rng::new(2);
        for (rows, cols) in SIZES {
            let (w, d) = (normals(&mut rng, rows * cols), normals(&mut rng, rows));
            let y0 = normals(&mut rng, cols);
            let want = plain_transposed(&w, &d, &y0);
            let mut got = y0.clone();
            add_transposed(&w, &d, &mut got, same);
            assert_eq!(bits(&got), bits(&want), "{rows}x{cols}");
            let mut by_values = y0.clone();
            add_transposed_values(w.iter().copied(), &d, &mut by_values);
            assert_eq!(bits(&by_values), bits(&want), "{rows}x{cols} (values)");

            // From zero, with the tanh derivative: the same bits as applying it afterwards.
            let a = normals(&mut rng, cols);
            let dtanh = |s: f32, a: f32| s * (1.0 - a * a);
            let want: Vec<f32> = plain_transposed(&w, &d, &std::vec![0.0; cols])
                .iter()
                .zip(&a)
                .map(|(&s, &a)| dtanh(s, a))
                .collect();
            let mut got = std::vec![f32::NAN; cols];
            assert!(transposed_map(&w, &d, &a, &mut got, same, dtanh));
            assert_eq!(bits(&got), bits(&want), "{rows}x{cols} (map)");
            let mut by_values = std::vec![f32::NAN; cols];
            assert!(transposed_map_values(
                w.iter().copied(),
                &d,
                &a,
                &mut by_values,
                dtanh
            ));
            assert_eq!(bits(&by_values), bits(&want), "{rows}x{cols} (map, values)");
            if rows * cols > 0 {
                let mut bad = w.clone();
                bad[rows * cols - 1] = f32::INFINITY;
                let mut got = std::vec![0.0f32; cols];
                let f = |s: f32, _: f32| s;
                assert!(
                    !transposed_map(&bad, &d, &a, &mut got, same, f),
                    "{rows}x{cols}"
                );
            }

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
        affine(&w, &[0.5; 3], &[1.0, 1.0], &mut out, same);
        assert_eq!(out, [2.5, 2.5, 7.0]);
        let mut out = [7.0f32; 2];
        affine(&w, &[0.5; 2], &[], &mut out, same);
        assert_eq!(out, [0.5, 0.5]);
        let mut y = [1.0f32; 2];
        add_transposed(&w, &[1.0, 1.0, 1.0], &mut y, same);
        assert_eq!(y, [3.0, 3.0]);
        add_transposed(&w, &[1.0], &mut [], same);
        let mut g = [0.0f32; 5];
        add_outer(&mut g, &[1.0, 2.0, 3.0], &[1.0, 1.0]);
        assert_eq!(g, [1.0, 1.0, 2.0, 2.0, 0.0]);
    }
}
