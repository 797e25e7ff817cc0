//! The one place the host multiplies matrices: `C ← α·A·B + β·C` on strided views.
//!
//! Everything in [`crate::kernels`] goes through [`gemm`], so swapping the backend (e.g. for
//! `faer` or a BLAS) is a change to this file only. The backend is `matrixmultiply`
//! (single-threaded: the host parallelises across tasks, not inside a product), except for
//! the few-row products of sampling ([`few_rows`]), which compute the backend's bits
//! without its per-call packing buffer (one heap allocation per product and time step).

use sgmrl::math::Real;

/// A scalar the host's batched kernels run on: `f32` for training, `f64` for the exact
/// tests. Both use the same code; only the matrix product differs.
pub trait Scalar: Real + Default + Send + Sync + 'static {
    /// `C ← α·A·B + β·C` with `A: m×k`, `B: k×n`, `C: m×n` given by their first element
    /// and row/column strides (in elements). The caller ([`gemm`]) has checked that every
    /// addressed element lies inside its slice and that `C`'s elements do not alias.
    #[doc(hidden)]
    fn gemm_checked(g: &Gemm, alpha: Self, a: &[Self], b: &[Self], beta: Self, c: &mut [Self]);

    /// [`few_rows::gemm`] where it applies to this type and product (returns whether it
    /// ran); the caller ([`gemm`]) has checked the views as for [`Scalar::gemm_checked`].
    #[doc(hidden)]
    fn few_rows_checked(
        g: &Gemm,
        alpha: Self,
        a: &[Self],
        b: &[Self],
        beta: Self,
        c: &mut [Self],
    ) -> bool;

    /// `x ← tanh(x)` element-wise, as the core's policies compute it: `libm` for f64 (the
    /// exact tests), the core's rational [`sgmrl::math::tanh_f32`] for f32 — the same bits
    /// the device computes.
    fn tanh_in_place(xs: &mut [Self]);
}

/// Shape and strides of one product `C (m×n) = A (m×k) · B (k×n)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gemm {
    /// Rows of `A` and `C`.
    pub m: usize,
    /// Columns of `A`, rows of `B`.
    pub k: usize,
    /// Columns of `B` and `C`.
    pub n: usize,
    /// Row and column stride of `A`.
    pub a: (usize, usize),
    /// Row and column stride of `B`.
    pub b: (usize, usize),
    /// Row and column stride of `C`.
    pub c: (usize, usize),
}

/// Evaluates `$e` compiled for the widest vectors the CPU has (AVX-512F, else AVX2, else
/// the target's baseline), chosen at run time.
///
/// `$e` must call `#[inline(always)]` code, so that the loops are compiled inside the
/// chosen path with its features: each path wraps `$e` in its own closure, called once,
/// which the compiler therefore inlines into the `#[target_feature]` function. The same
/// bits come out on every path: Rust never fuses a multiply and an add on its own, and a
/// vectorised loop only does element-wise what the scalar loop does (reductions stay in
/// source order).
macro_rules! widest {
    ($e:expr) => {{
        #[cfg(target_arch = "x86_64")]
        let r = if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            unsafe { $crate::gemm::with_avx512(|| $e) }
        } else if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            unsafe { $crate::gemm::with_avx2(|| $e) }
        } else {
            $e
        };
        #[cfg(not(target_arch = "x86_64"))]
        let r = $e;
        r
    }};
}
pub(crate) use widest;

/// Calls `f` in a function compiled with AVX-512F ([`widest`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Calls `f` in a function compiled with AVX2 ([`widest`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Smallest slice length holding a `rows × cols` view with `strides`.
fn extent(rows: usize, cols: usize, (rs, cs): (usize, usize)) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// `C ← α·A·B + β·C`. Panics if a view does not fit its slice or `C`'s strides alias
/// (programming errors: every caller derives the shapes from one [`crate::kernels::Net`]).
/// With `β = 0`, `C` is not read.
pub fn gemm<T: Scalar>(g: &Gemm, alpha: T, a: &[T], b: &[T], beta: T, c: &mut [T]) {
    assert!(
        extent(g.m, g.k, g.a) <= a.len(),
        "gemm: A out of bounds {g:?}"
    );
    assert!(
        extent(g.k, g.n, g.b) <= b.len(),
        "gemm: B out of bounds {g:?}"
    );
    assert!(
        extent(g.m, g.n, g.c) <= c.len(),
        "gemm: C out of bounds {g:?}"
    );
    let (rsc, csc) = g.c;
    let distinct = g.m <= 1 && (g.n <= 1 || csc > 0)
        || g.n <= 1 && rsc > 0
        || csc > 0 && rsc >= g.n * csc
        || rsc > 0 && csc >= g.m * rsc;
    assert!(distinct, "gemm: C strides alias {g:?}");
    for s in [g.a.0, g.a.1, g.b.0, g.b.1, rsc, csc] {
        assert!(isize::try_from(s).is_ok(), "gemm: stride too large");
    }
    if g.m == 0 || g.n == 0 {
        return;
    }
    crate::flops::record(g);
    if g.m.min(g.n).min(g.k) <= NARROW {
        widest!(narrow_gemm(g, alpha, a, b, beta, c));
    } else if !T::few_rows_checked(g, alpha, a, b, beta, c) {
        T::gemm_checked(g, alpha, a, b, beta, c);
    }
}

/// Products with a dimension this small (a 2-D observation, a 2-D action head) skip the
/// blocked backend: its register tiles are 16–32 wide, so it would compute mostly padding.
pub const NARROW: usize = 4;

/// `C ← α·A·B + β·C` by plain loops, ordered so that the innermost loop runs along a
/// unit-stride dimension (so it vectorises): dot products, column updates through a small
/// accumulator, or row updates. Bounds were checked by [`gemm`].
#[inline(always)]
fn narrow_gemm<T: Scalar>(g: &Gemm, alpha: T, a: &[T], b: &[T], beta: T, c: &mut [T]) {
    let (m, k, n) = (g.m, g.k, g.n);
    let (rsa, csa) = g.a;
    let (rsb, csb) = g.b;
    let (rsc, csc) = g.c;
    for i in 0..m {
        if csc == 1 {
            let row = &mut c[i * rsc..i * rsc + n];
            if beta == T::ZERO {
                row.fill(T::ZERO);
            } else if beta != T::ONE {
                row.iter_mut().for_each(|x| *x *= beta);
            }
        } else {
            for j in 0..n {
                let x = &mut c[i * rsc + j * csc];
                *x = if beta == T::ZERO { T::ZERO } else { beta * *x };
            }
        }
    }
    if n <= NARROW && n < m.min(k) {
        if csa == 1 && rsb == 1 {
            // C[i, j] = A[i, :] · B[:, j], both contiguous.
            for i in 0..m {
                let ai = &a[i * rsa..i * rsa + k];
                for j in 0..n {
                    c[i * rsc + j * csc] += alpha * dot(ai, &b[j * csb..j * csb + k]);
                }
            }
        } else if rsa == 1 {
            // Columns of A are contiguous: acc[j] += B[l, j]·A[:, l] over l.
            let mut acc = vec![T::ZERO; n * m];
            for l in 0..k {
                let col = &a[l * csa..l * csa + m];
                for (j, accj) in acc.chunks_exact_mut(m).enumerate() {
                    let s = b[l * rsb + j * csb];
                    for (x, &y) in accj.iter_mut().zip(col) {
                        *x += s * y;
                    }
                }
            }
            for (j, accj) in acc.chunks_exact(m).enumerate() {
                for (i, &x) in accj.iter().enumerate() {
                    c[i * rsc + j * csc] += alpha * x;
                }
            }
        } else {
            for i in 0..m {
                for j in 0..n {
                    let d = (0..k).fold(T::ZERO, |s, l| {
                        s + a[i * rsa + l * csa] * b[l * rsb + j * csb]
                    });
                    c[i * rsc + j * csc] += alpha * d;
                }
            }
        }
        return;
    }
    // Row updates C[i, :] += α·A[i, l]·B[l, :] (m or k is the narrow one); B's rows are made
    // contiguous first if they are not (then B is small: k or n is narrow... or it is read
    // once anyway).
    let owned: Vec<T>;
    let (b, rsb) = if csb == 1 {
        (b, rsb)
    } else {
        owned = (0..k)
            .flat_map(|l| (0..n).map(move |j| (l, j)))
            .map(|(l, j)| b[l * rsb + j * csb])
            .collect();
        (&owned[..], n)
    };
    for i in 0..m {
        for l in 0..k {
            let s = alpha * a[i * rsa + l * csa];
            let brow = &b[l * rsb..l * rsb + n];
            if csc == 1 {
                for (x, &y) in c[i * rsc..i * rsc + n].iter_mut().zip(brow) {
                    *x += s * y;
                }
            } else {
                for (j, &y) in brow.iter().enumerate() {
                    c[i * rsc + j * csc] += s * y;
                }
            }
        }
    }
}

/// `Σ x_i y_i` with 8 independent partial sums (vectorisable without reassociation).
#[inline(always)]
fn dot<T: Scalar>(x: &[T], y: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let (xc, xr) = x.split_at(x.len() - x.len() % 8);
    let (yc, yr) = y.split_at(xc.len());
    for (xs, ys) in xc.chunks_exact(8).zip(yc.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += xs[l] * ys[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (&a, &b) in xr.iter().zip(yr) {
        s += a * b;
    }
    s
}

// Strides were checked to fit in isize by `gemm`.
#[allow(clippy::cast_possible_wrap)]
fn strides(g: &Gemm) -> [isize; 6] {
    [g.a.0, g.a.1, g.b.0, g.b.1, g.c.0, g.c.1].map(|s| s as isize)
}

impl Scalar for f32 {
    fn gemm_checked(g: &Gemm, alpha: f32, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
        let [rsa, csa, rsb, csb, rsc, csc] = strides(g);
        // SAFETY: `gemm` checked that every element addressed through (pointer, strides,
        // dims) lies inside `a`, `b` and `c` respectively, that the strides of `C` do not
        // alias, and `c` is a unique borrow so it overlaps neither `a` nor `b`.
        unsafe {
            matrixmultiply::sgemm(
                g.m,
                g.k,
                g.n,
                alpha,
                a.as_ptr(),
                rsa,
                csa,
                b.as_ptr(),
                rsb,
                csb,
                beta,
                c.as_mut_ptr(),
                rsc,
                csc,
            );
        }
    }
    fn few_rows_checked(
        g: &Gemm,
        alpha: f32,
        a: &[f32],
        b: &[f32],
        beta: f32,
        c: &mut [f32],
    ) -> bool {
        few_rows::gemm(g, alpha, a, b, beta, c)
    }
    fn tanh_in_place(xs: &mut [f32]) {
        widest!(sgmrl::math::tanh_f32_in_place(xs));
    }
}

impl Scalar for f64 {
    fn gemm_checked(g: &Gemm, alpha: f64, a: &[f64], b: &[f64], beta: f64, c: &mut [f64]) {
        let [rsa, csa, rsb, csb, rsc, csc] = strides(g);
        // SAFETY: as for f32 above.
        unsafe {
            matrixmultiply::dgemm(
                g.m,
                g.k,
                g.n,
                alpha,
                a.as_ptr(),
                rsa,
                csa,
                b.as_ptr(),
                rsb,
                csb,
                beta,
                c.as_mut_ptr(),
                rsc,
                csc,
            );
        }
    }
    fn few_rows_checked(_: &Gemm, _: f64, _: &[f64], _: &[f64], _: f64, _: &mut [f64]) -> bool {
        // Only the exact tests run f64; the backend's packing buffer costs them nothing.
        false
    }
    fn tanh_in_place(xs: &mut [f64]) {
        for x in xs {
            *x = libm::tanh(*x);
        }
    }
}

pub mod few_rows;

/// `C (m×n) ← A (m×k) · Bᵀ + β·C` with row-major `A`, `B (n×k)`, `C`: a dense layer's
/// forward product (`B` is the weight matrix `[out][in]`).
pub fn a_bt<T: Scalar>(m: usize, k: usize, n: usize, a: &[T], b: &[T], beta: T, c: &mut [T]) {
    let g = Gemm {
        m,
        k,
        n,
        a: (k, 1),
        b: (1, k),
        c: (n, 1),
    };
    gemm(&g, T::ONE, a, b, beta, c);
}

/// `C (m×n) ← A (m×k) · B + β·C` with row-major `A`, `B (k×n)`, `C`: back-propagation
/// of a delta through a weight matrix.
pub fn a_b<T: Scalar>(m: usize, k: usize, n: usize, a: &[T], b: &[T], beta: T, c: &mut [T]) {
    let g = Gemm {
        m,
        k,
        n,
        a: (k, 1),
        b: (n, 1),
        c: (n, 1),
    };
    gemm(&g, T::ONE, a, b, beta, c);
}

/// `C (m×n) ← Aᵀ · B + β·C` with row-major `A (k×m)`, `B (k×n)`, `C`: a weight gradient
/// `Σ_rows δ_rowᵀ · activation_row` (`k` = number of rows of the batch).
pub fn at_b<T: Scalar>(m: usize, k: usize, n: usize, a: &[T], b: &[T], beta: T, c: &mut [T]) {
    let g = Gemm {
        m,
        k,
        n,
        a: (1, m),
        b: (n, 1),
        c: (n, 1),
    };
    gemm(&g, T::ONE, a, b, beta, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f64], b: &[f64]) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for l in 0..k {
                    c[i * n + j] += a[i * k + l] * b[l * n + j];
                }
            }
        }
        c
    }

    fn transpose(r: usize, c: usize, x: &[f64]) -> Vec<f64> {
        let mut t = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                t[j * r + i] = x[i * c + j];
            }
        }
        t
    }

    #[test]
    fn the_three_products_match_a_naive_loop() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.91).cos()).collect();
        let want = naive(m, k, n, &a, &b);
        let close = |x: &[f64]| x.iter().zip(&want).all(|(p, q)| (p - q).abs() < 1e-12);

        let mut c = vec![f64::NAN; m * n];
        a_b(m, k, n, &a, &b, 0.0, &mut c);
        assert!(close(&c));

        let bt = transpose(k, n, &b);
        let mut c = vec![f64::NAN; m * n];
        a_bt(m, k, n, &a, &bt, 0.0, &mut c);
        assert!(close(&c));

        let at = transpose(m, k, &a);
        let mut c = vec![1.0; m * n];
        at_b(m, k, n, &at, &b, 1.0, &mut c);
        assert!(
            c.iter()
                .zip(&want)
                .all(|(p, q)| (p - 1.0 - q).abs() < 1e-12)
        );

        let (a32, b32): (Vec<f32>, Vec<f32>) = (
            a.iter().map(|&x| x as f32).collect(),
            b.iter().map(|&x| x as f32).collect(),
        );
        let mut c32 = vec![0.0f32; m * n];
        a_b(m, k, n, &a32, &b32, 0.0, &mut c32);
        assert!(
            c32.iter()
                .zip(&want)
                .all(|(p, q)| (f64::from(*p) - q).abs() < 1e-5)
        );
    }

    /// Every route through `gemm` (narrow loops in each order, the blocked backend), with
    /// row-major, transposed and padded strides, against a naive triple loop.
    #[test]
    fn all_shapes_and_strides_match_a_naive_loop() {
        let dims = [1usize, 2, 3, 5, 9, 17];
        let mut seed = 1.0f64;
        let mut fill = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|_| {
                    seed += 1.0;
                    (seed * 0.731).sin()
                })
                .collect()
        };
        for &m in &dims {
            for &k in &dims {
                for &n in &dims {
                    for layout in 0..3 {
                        let (ga, gb, gc, la, lb, lc) = match layout {
                            0 => ((k, 1), (n, 1), (n, 1), m * k, k * n, m * n),
                            1 => ((1, m), (1, k), (1, m), m * k, k * n, m * n),
                            _ => (
                                (k + 3, 1),
                                (1, k + 1),
                                (2 * n + 1, 2),
                                m * (k + 3),
                                n * (k + 1),
                                m * (2 * n + 1),
                            ),
                        };
                        let g = Gemm {
                            m,
                            k,
                            n,
                            a: ga,
                            b: gb,
                            c: gc,
                        };
                        let (a, b) = (fill(la), fill(lb));
                        let c0 = fill(lc);
                        let mut c = c0.clone();
                        gemm(&g, 0.5, &a, &b, -1.5, &mut c);
                        for i in 0..m {
                            for j in 0..n {
                                let want: f64 = (0..k)
                                    .map(|l| a[i * ga.0 + l * ga.1] * b[l * gb.0 + j * gb.1])
                                    .sum::<f64>()
                                    * 0.5
                                    - 1.5 * c0[i * gc.0 + j * gc.1];
                                let got = c[i * gc.0 + j * gc.1];
                                assert!((got - want).abs() < 1e-12, "{g:?}: {got} vs {want}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// The dispatched (widest-vector) tanh is the core's scalar `tanh_f32` bit for bit.
    #[test]
    fn f32_tanh_is_the_cores_bit_for_bit() {
        let mut xs: Vec<f32> = (0..100_003u32)
            .map(|i| f32::from_bits(i.wrapping_mul(42_949)))
            .chain([7.9, -7.9, 8.0, f32::INFINITY, -0.0, 3e-4])
            .collect();
        let want: Vec<f32> = xs.iter().map(|&x| sgmrl::math::tanh_f32(x)).collect();
        f32::tanh_in_place(&mut xs);
        for (got, want) in xs.iter().zip(&want) {
            assert!(
                got.to_bits() == want.to_bits() || got.is_nan() && want.is_nan(),
                "{got} vs {want}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn short_slices_are_refused() {
        let a = [1.0f32; 5];
        let b = [1.0f32; 6];
        let mut c = [0.0f32; 4];
        a_b(2, 3, 2, &a, &b, 0.0, &mut c);
    }
}
