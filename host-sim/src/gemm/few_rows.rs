//! Few-row f32 products (one time step of every episode while sampling: `N × 100 · 100 ×
//! 100` at Table 1) computed without packing, bit for bit as `matrixmultiply` computes them.
//!
//! `matrixmultiply` allocates its packing buffer on every call, so the sampler's per-step
//! forward pass cost one heap allocation per layer, step and batch. On a CPU with fused
//! multiply-adds its kernels (AVX-512F, or FMA with AVX2) sum each element of `A·B` over
//! `l = 0, 1, …, k−1` in order by fused multiply-adds starting from `+0`, and store
//! `fma(α, sum, β·C)` (full tiles) or `α·sum + β·C` (edge tiles); with `α = 1` both are
//! `sum + β·C` rounded once after `β·C`, and `β = 0` stores `α·sum` without reading `C`.
//! For `k` up to its depth block (256) there is one such sum. This module does exactly
//! that, so it only takes products with `α = 1`, `k ≤ 256`, unit-stride rows of `B` and
//! `C` on such a CPU, and leaves every other product to the backend. The test
//! `few_row_products_are_the_backends_bits` holds it to `matrixmultiply::sgemm`.

use super::Gemm;

/// Products with at most this many rows take this path (`matrixmultiply`'s row block is 64).
pub const MAX_ROWS: usize = 64;

/// `matrixmultiply`'s f32 depth block (`S_KC`, its default: the crate's `MATMUL_SGEMM_KC`
/// build variable would change it, and the bit test would then fail): up to it, each
/// element is one in-order sum.
const MAX_DEPTH: usize = 256;

/// Which fused multiply-add code the CPU runs (the backend's choice of kernel, made the
/// same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// AVX-512F: 16-lane register tiles.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// FMA with AVX2: the same sums by scalar fused multiply-adds the compiler vectorises.
    #[cfg(target_arch = "x86_64")]
    Fma,
}

fn path() -> Option<Path> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return Some(Path::Avx512);
        }
        if std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("avx2") {
            return Some(Path::Fma);
        }
    }
    None
}

/// Whether `g` with `alpha` takes this path on this CPU.
pub fn applies(g: &Gemm, alpha: f32) -> bool {
    g.m <= MAX_ROWS
        && g.k <= MAX_DEPTH
        && g.b.1 == 1
        && g.c.1 == 1
        && alpha == 1.0
        && path().is_some()
}

/// `C ← A·B + β·C` (`α` must be 1) if [`applies`], returning whether it ran. The views
/// were checked by [`super::gemm`] (every addressed element inside its slice).
pub fn gemm(g: &Gemm, alpha: f32, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) -> bool {
    if !applies(g, alpha) || g.k == 0 {
        return false;
    }
    match path() {
        #[cfg(target_arch = "x86_64")]
        Some(Path::Avx512) => {
            // SAFETY: the CPU has AVX-512F (`path`), and `super::gemm` checked that every
            // element of the views lies inside `a`, `b` and `c`.
            unsafe { avx512::gemm(g, a, b, beta, c) };
            true
        }
        #[cfg(target_arch = "x86_64")]
        Some(Path::Fma) => {
            // SAFETY: the CPU has FMA and AVX2 (`path`).
            unsafe { with_fma(g, a, b, beta, c) };
            true
        }
        None => false,
    }
}

/// [`scalar`] compiled with FMA, so `f32::mul_add` is one instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn with_fma(g: &Gemm, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    scalar(g, a, b, beta, c);
}

/// Portable form of the same sums (bounds-checked indexing), in blocks of 16 columns.
#[inline(always)]
fn scalar(g: &Gemm, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    const W: usize = 16;
    let (rsa, csa, rsb, rsc) = (g.a.0, g.a.1, g.b.0, g.c.0);
    for i in 0..g.m {
        for j0 in (0..g.n).step_by(W) {
            let cols = W.min(g.n - j0);
            let mut acc = [0.0f32; W];
            for l in 0..g.k {
                let x = a[i * rsa + l * csa];
                let brow = &b[l * rsb + j0..l * rsb + j0 + cols];
                for (s, &y) in acc.iter_mut().zip(brow) {
                    *s = x.mul_add(y, *s);
                }
            }
            let row = &mut c[i * rsc + j0..i * rsc + j0 + cols];
            for (x, &s) in row.iter_mut().zip(&acc) {
                *x = if beta == 0.0 { s } else { s + beta * *x };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Gemm;
    use core::arch::x86_64::{
        __m512, __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_mask_storeu_ps,
        _mm512_maskz_loadu_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_setzero_ps,
    };

    /// 16-lane vectors per tile row: a tile is `R × 32` elements of `C`.
    const V: usize = 2;

    /// The lanes of vector `v` of a tile that are inside its `cols` columns.
    fn mask(cols: usize, v: usize) -> __mmask16 {
        let w = cols.saturating_sub(16 * v).min(16);
        ((1u32 << w) - 1) as __mmask16
    }

    /// # Safety
    /// The CPU has AVX-512F; every element of `g`'s views lies inside `a`, `b` and `c`;
    /// `g.b.1 == g.c.1 == 1`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gemm(g: &Gemm, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
        let mut i0 = 0;
        while i0 < g.m {
            // Tiles of 8 rows (16 accumulators), then 4, 2, 1 for the rest.
            let left = g.m - i0;
            // SAFETY: as for this function; the tile's rows `i0..i0 + R` are inside `g.m`.
            unsafe {
                if left >= 8 {
                    rows::<8>(g, i0, a, b, beta, c);
                    i0 += 8;
                } else if left >= 4 {
                    rows::<4>(g, i0, a, b, beta, c);
                    i0 += 4;
                } else if left >= 2 {
                    rows::<2>(g, i0, a, b, beta, c);
                    i0 += 2;
                } else {
                    rows::<1>(g, i0, a, b, beta, c);
                    i0 += 1;
                }
            }
        }
    }

    /// Rows `i0..i0 + R` of `C`, 32 columns at a time.
    ///
    /// # Safety
    /// As for [`gemm`], and `i0 + R <= g.m`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn rows<const R: usize>(
        g: &Gemm,
        i0: usize,
        a: &[f32],
        b: &[f32],
        beta: f32,
        c: &mut [f32],
    ) {
        let (rsa, csa, rsb, rsc) = (g.a.0, g.a.1, g.b.0, g.c.0);
        let mut j0 = 0;
        while j0 < g.n {
            let cols = (16 * V).min(g.n - j0);
            let masks: [__mmask16; V] = core::array::from_fn(|v| mask(cols, v));
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            for l in 0..g.k {
                // Lanes outside `cols` are masked: not read, so never outside `b`.
                let brow = b.as_ptr().wrapping_add(l * rsb + j0);
                // SAFETY: the unmasked lanes are elements (l, j0..j0 + cols) of B's view.
                let bv: [__m512; V] = core::array::from_fn(|v| unsafe {
                    _mm512_maskz_loadu_ps(masks[v], brow.wrapping_add(16 * v))
                });
                for (r, accr) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(a[(i0 + r) * rsa + l * csa]);
                    for (s, &y) in accr.iter_mut().zip(&bv) {
                        *s = _mm512_fmadd_ps(x, y, *s);
                    }
                }
            }
            let betav = _mm512_set1_ps(beta);
            for (r, accr) in acc.iter().enumerate() {
                let crow = c.as_mut_ptr().wrapping_add((i0 + r) * rsc + j0);
                for (v, &s) in accr.iter().enumerate() {
                    let p = crow.wrapping_add(16 * v);
                    // SAFETY: the unmasked lanes are elements (i0 + r, j0..j0 + cols) of
                    // C's view, inside `c`.
                    unsafe {
                        let out = if beta == 0.0 {
                            s
                        } else {
                            _mm512_add_ps(
                                s,
                                _mm512_mul_ps(_mm512_maskz_loadu_ps(masks[v], p), betav),
                            )
                        };
                        _mm512_mask_storeu_ps(p, masks[v], out);
                    }
                }
            }
            j0 += 16 * V;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every product this path takes gives `matrixmultiply::sgemm`'s bits: tile edges in
    /// both directions, strided rows of `A` (the sampler's), `β` zero, one and other.
    #[test]
    fn few_row_products_are_the_backends_bits() {
        if path().is_none() {
            eprintln!("no fused multiply-add on this CPU: the path is never taken");
            return;
        }
        let mut seed = 0.5f32;
        let mut fill = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed += 1.0;
                    (seed * 0.731).sin() * 3.0
                })
                .collect()
        };
        for (m, k, n) in [
            (20, 100, 100),
            (20, 64, 64),
            (1, 5, 1),
            (7, 256, 33),
            (64, 17, 100),
            (13, 100, 31),
            (40, 3, 48),
        ] {
            for row_gap in [1, 3] {
                let g = Gemm {
                    m,
                    k,
                    n,
                    a: (row_gap * k, 1),
                    b: (n + 2, 1),
                    c: (n + 1, 1),
                };
                let a = fill(row_gap * k * m);
                let b = fill((n + 2) * k);
                let c0 = fill((n + 1) * m);
                for beta in [0.0f32, 1.0, -0.7] {
                    assert!(applies(&g, 1.0));
                    let mut want = c0.clone();
                    // SAFETY: the views fit the slices (sizes above), C does not alias.
                    unsafe {
                        matrixmultiply::sgemm(
                            m,
                            k,
                            n,
                            1.0,
                            a.as_ptr(),
                            g.a.0 as isize,
                            1,
                            b.as_ptr(),
                            g.b.0 as isize,
                            1,
                            beta,
                            want.as_mut_ptr(),
                            g.c.0 as isize,
                            1,
                        );
                    }
                    let mut got = c0.clone();
                    assert!(gemm(&g, 1.0, &a, &b, beta, &mut got));
                    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "{m}×{k}×{n}, β {beta}");
                    // The portable form too (on this CPU it is the FMA path's).
                    let mut portable = c0.clone();
                    // SAFETY: `path()` found FMA (AVX-512F implies it on every x86 CPU).
                    #[cfg(target_arch = "x86_64")]
                    if std::is_x86_feature_detected!("fma") {
                        unsafe { with_fma(&g, &a, &b, beta, &mut portable) };
                        assert_eq!(bits(&portable), bits(&want), "portable {m}×{k}×{n}");
                    }
                }
            }
        }
    }

    #[test]
    fn other_products_are_left_to_the_backend() {
        let g = Gemm {
            m: 20,
            k: 100,
            n: 100,
            a: (100, 1),
            b: (100, 1),
            c: (100, 1),
        };
        assert!(!applies(&g, 0.5), "α ≠ 1");
        assert!(!applies(&Gemm { m: 65, ..g }, 1.0), "many rows");
        assert!(!applies(&Gemm { k: 257, ..g }, 1.0), "deep");
        assert!(!applies(&Gemm { b: (1, 100), ..g }, 1.0), "column-major B");
    }
}
