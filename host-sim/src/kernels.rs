//! Batched policy math on the core's flat parameter layout, as matrix products.
//!
//! The network is the one documented in `sgmrl::policy`: dense layers
//! `obs → h₁ → h₂ → head` with `tanh` hidden units and a linear head, weights `[out][in]`
//! row-major then bias, and for a Gaussian head the state-independent log-stds `ℓ`
//! appended. A [`Batch`] holds `N` rows (one per time step of some episodes): observations
//! `X (N×obs)`, actions, and the caches the passes below fill. With `A₀ = X`:
//!
//! ```text
//! forward      Z_l = A_{l-1} W_lᵀ + b_l,  A_l = tanh(Z_l),   head Y = A_L W_Hᵀ + b_H
//! head delta   g = ∂ log π/∂Y:  softmax e_a − p;   Gaussian (u − μ)·e^{−2ℓ}
//!              ∂ log π/∂ℓ = (u − μ)²·e^{−2ℓ} − 1
//! backprop     G_{l} = δ_{l+1} W_{l+1},  δ_l = G_l ⊙ (1 − A_l²)          (δ_H = g)
//! gradient     Σ_rows w·∇_{W_l} log π = (w ⊙ δ_l)ᵀ A_{l-1},  ∇_{b_l} = Σ_rows w ⊙ δ_l
//! ```
//! Every delta is linear in the head delta, so the `w`-weighted deltas are `w ⊙ δ` row by
//! row: [`Net::accumulate`] produces the weighted gradient `Σ w ∇log π` and, if asked, the
//! score sum `Σ ∇log π` (weight 1) in one sweep: the score's product runs on the unweighted
//! `δ_l`, which are then weighted in place for the gradient's, so the score costs one product
//! per layer and no memory beyond the gradient's.
//!
//! The Hessian-vector product `Σ_rows w ∇²log π · v` is Pearlmutter's R-operator
//! (forward-over-reverse, hand-derived) with `R{·}` the directional derivative along `v`
//! (`V_l`, `c_l`, `v_ℓ` the parts of `v` for `W_l`, `b_l`, `ℓ`):
//! ```text
//! R-forward    R{Z_l} = A_{l-1} V_lᵀ + R{A_{l-1}} W_lᵀ + c_l,  R{A_l} = (1 − A_l²) ⊙ R{Z_l}
//! R-head       softmax   R{g} = −p ⊙ (R{Y} − ⟨p, R{Y}⟩)
//!              Gaussian  R{g} = −e^{−2ℓ}(R{Y} + 2(u − μ) v_ℓ)
//!                        R{∂/∂ℓ} = −2 (u − μ) e^{−2ℓ}(R{Y} + (u − μ) v_ℓ)
//! R-backprop   R{δ_l} = (R{δ_{l+1}} W_{l+1} + δ_{l+1} V_{l+1}) ⊙ (1 − A_l²) − 2 G_l ⊙ A_l ⊙ R{A_l}
//! HVP          R{∇_{W_l}} = R{δ_l}ᵀ A_{l-1} + δ_lᵀ R{A_{l-1}},  R{∇_{b_l}} = Σ_rows R{δ_l}
//! ```
//! (all deltas weighted by `w` row-wise). No matrix of size `P×P` is ever formed.
//! [`Net::hvp_with_score`] also adds `m · Σ_rows ∇log π` by putting
//! `alpha_per_sample·R{δ_l} + m·δ_l` into the first HVP product of each layer — one SG-MRL
//! recursion step for the price of MAML's.
//!
//! While sampling, [`Net::forward_rows`] runs one time step of every episode at a time
//! straight into an episode-major batch, with the weights pre-transposed ([`ForwardPlan`]).
//!
//! The kernels are generic over [`Scalar`] (f32 for training, f64 for the exact tests) and
//! are tested against the core's per-sample `Policy` code and central finite differences.

use crate::gemm::{Gemm, NARROW, Scalar, a_b, a_bt, at_b, gemm, widest};
use sgmrl::math::LN_SQRT_2PI;
use sgmrl::policy::{Distribution, PolicyShape};
use sgmrl::rng::Rng;

/// Where one dense layer lives in the flat parameter vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Input width.
    pub input: usize,
    /// Output width.
    pub output: usize,
    /// Offset of the weight matrix `[output][input]`.
    pub weights: usize,
    /// Offset of the bias `[output]`.
    pub bias: usize,
}

impl Layer {
    fn w<'a, T>(&self, p: &'a [T]) -> &'a [T] {
        &p[self.weights..self.weights + self.input * self.output]
    }
    fn b<'a, T>(&self, p: &'a [T]) -> &'a [T] {
        &p[self.bias..self.bias + self.output]
    }
    fn w_mut<'a, T>(&self, p: &'a mut [T]) -> &'a mut [T] {
        &mut p[self.weights..self.weights + self.input * self.output]
    }
    fn b_mut<'a, T>(&self, p: &'a mut [T]) -> &'a mut [T] {
        &mut p[self.bias..self.bias + self.output]
    }
}

/// A shape the kernels cannot run ([`PolicyShape::is_valid`] is false).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidShape(pub PolicyShape);

impl core::fmt::Display for InvalidShape {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "invalid policy shape {:?}", self.0)
    }
}

impl std::error::Error for InvalidShape {}

/// A policy network of runtime shape: the layer map of the flat parameter vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Net {
    shape: PolicyShape,
    /// Hidden layers, then the head (always last).
    layers: Vec<Layer>,
    log_std: Option<usize>,
    n_params: usize,
}

impl Net {
    /// The layer map for `shape`, in the core's layout.
    pub fn new(shape: PolicyShape) -> Result<Self, InvalidShape> {
        if !shape.is_valid() {
            return Err(InvalidShape(shape));
        }
        let mut layers = Vec::new();
        let mut input = usize::from(shape.obs_dim);
        let mut at = 0;
        let widths = shape
            .hidden
            .iter()
            .map(|&h| usize::from(h))
            .filter(|&h| h > 0)
            .chain(core::iter::once(usize::from(shape.act_dim)));
        for output in widths {
            layers.push(Layer {
                input,
                output,
                weights: at,
                bias: at + input * output,
            });
            at += input * output + output;
            input = output;
        }
        let log_std = match shape.distribution {
            Distribution::Gaussian => {
                let o = at;
                at += usize::from(shape.act_dim);
                Some(o)
            }
            Distribution::Softmax => None,
        };
        debug_assert_eq!(at, shape.n_params());
        Ok(Self {
            shape,
            layers,
            log_std,
            n_params: at,
        })
    }

    /// The architecture.
    pub fn shape(&self) -> PolicyShape {
        self.shape
    }
    /// Number of parameters `P`.
    pub fn n_params(&self) -> usize {
        self.n_params
    }
    /// Observation length.
    pub fn obs_dim(&self) -> usize {
        usize::from(self.shape.obs_dim)
    }
    /// Head width: number of discrete actions or action dimensions.
    pub fn act_dim(&self) -> usize {
        usize::from(self.shape.act_dim)
    }
    /// Scalars per action on the wire (1 for softmax, `act_dim` for Gaussian).
    pub fn action_width(&self) -> usize {
        self.shape.action_width()
    }
    /// The dense layers, hidden first, head last.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }
    fn n_hidden(&self) -> usize {
        self.layers.len() - 1
    }
    /// The log-stds `ℓ` inside `params` (Gaussian only).
    pub fn log_std<'a, T>(&self, params: &'a [T]) -> Option<&'a [T]> {
        self.log_std.map(|o| &params[o..o + self.act_dim()])
    }

    fn check_params<T>(&self, params: &[T]) {
        assert_eq!(params.len(), self.n_params, "parameter vector length");
    }

    /// The transposed weight matrices of `params`, for [`Net::forward_rows`].
    pub fn plan<T: Scalar>(&self, params: &[T]) -> ForwardPlan<T> {
        self.check_params(params);
        let wt = self
            .layers
            .iter()
            .map(|l| {
                let w = l.w(params);
                let mut t = vec![T::ZERO; w.len()];
                for (o, row) in w.chunks_exact(l.input).enumerate() {
                    for (i, &x) in row.iter().enumerate() {
                        t[i * l.output + o] = x;
                    }
                }
                t
            })
            .collect();
        ForwardPlan { wt }
    }

    /// Forward pass of the `count` rows `first, first + stride, …` of a batch made by
    /// [`Batch::zeroed`], written in place (the other rows are untouched). Small row sets
    /// (one time step of every episode while sampling) are what this is for: the products
    /// use the transposed weights of `plan`, which a matrix product packs faster.
    pub fn forward_rows<T: Scalar>(
        &self,
        params: &[T],
        plan: &ForwardPlan<T>,
        batch: &mut Batch<T>,
        first: usize,
        stride: usize,
        count: usize,
    ) {
        widest!(self.forward_rows_inlined(params, plan, batch, first, stride, count))
    }

    /// [`Net::forward_rows`], inlined into each of `widest!`'s instruction-set variants.
    #[inline(always)]
    fn forward_rows_inlined<T: Scalar>(
        &self,
        params: &[T],
        plan: &ForwardPlan<T>,
        batch: &mut Batch<T>,
        first: usize,
        stride: usize,
        count: usize,
    ) {
        self.check_params(params);
        batch.check(self);
        assert!(
            count == 0 || first + (count - 1) * stride < batch.rows,
            "rows out of range"
        );
        assert_eq!(
            batch.hidden.len(),
            self.n_hidden(),
            "batch not made by Batch::zeroed"
        );
        let nh = self.n_hidden();
        for (l, (layer, wt)) in self.layers.iter().zip(&plan.wt).enumerate() {
            let (below, rest) = batch.hidden.split_at_mut(l.min(nh));
            let out: &mut [T] = if l < nh {
                &mut rest[0]
            } else {
                &mut batch.head
            };
            let input: &[T] = if l == 0 { &batch.obs } else { &below[l - 1] };
            for j in 0..count {
                let r = first + j * stride;
                out[r * layer.output..(r + 1) * layer.output].copy_from_slice(layer.b(params));
            }
            // A narrow head is a few dot products per row: read W itself (unit stride).
            let (bmat, bstride) = if layer.output <= NARROW {
                (layer.w(params), (1, layer.input))
            } else {
                (&wt[..], (layer.output, 1))
            };
            let g = Gemm {
                m: count,
                k: layer.input,
                n: layer.output,
                a: (stride * layer.input, 1),
                b: bstride,
                c: (stride * layer.output, 1),
            };
            gemm(
                &g,
                T::ONE,
                &input[first * layer.input..],
                bmat,
                T::ONE,
                &mut out[first * layer.output..],
            );
            if l < nh {
                for j in 0..count {
                    let r = first + j * stride;
                    T::tanh_in_place(&mut out[r * layer.output..(r + 1) * layer.output]);
                }
            }
        }
    }

    /// Runs the forward pass on every row of `batch`, caching the activations (and
    /// dropping any backprop cache).
    pub fn forward<T: Scalar>(&self, params: &[T], batch: &mut Batch<T>) {
        widest!(self.forward_inlined(params, batch))
    }

    /// [`Net::forward`], inlined into each of `widest!`'s instruction-set variants.
    #[inline(always)]
    fn forward_inlined<T: Scalar>(&self, params: &[T], batch: &mut Batch<T>) {
        self.check_params(params);
        batch.check(self);
        let n = batch.rows;
        batch.hidden.resize_with(self.n_hidden(), Vec::new);
        for (i, layer) in self.layers.iter().enumerate() {
            let out = if i < self.n_hidden() {
                let mut buf = core::mem::take(&mut batch.hidden[i]);
                buf.resize(n * layer.output, T::ZERO);
                buf
            } else {
                let mut buf = core::mem::take(&mut batch.head);
                buf.resize(n * layer.output, T::ZERO);
                buf
            };
            let mut out = out;
            let input: &[T] = if i == 0 {
                &batch.obs
            } else {
                &batch.hidden[i - 1]
            };
            for row in out.chunks_exact_mut(layer.output) {
                row.copy_from_slice(layer.b(params));
            }
            a_bt(
                n,
                layer.input,
                layer.output,
                input,
                layer.w(params),
                T::ONE,
                &mut out,
            );
            if i < self.n_hidden() {
                T::tanh_in_place(&mut out);
                batch.hidden[i] = out;
            } else {
                batch.head = out;
            }
        }
        batch.stage = Stage::Forward;
    }

    /// `log π(action_r | obs_r; θ)` for every row into `out` (`N` scalars). Needs
    /// [`Net::forward`] at the same `params`.
    pub fn log_probs<T: Scalar>(&self, params: &[T], batch: &Batch<T>, out: &mut [T]) {
        assert!(batch.stage >= Stage::Forward, "log_probs before forward");
        assert_eq!(out.len(), batch.rows);
        let k = self.act_dim();
        match self.shape.distribution {
            Distribution::Softmax => {
                for ((lp, y), a) in out
                    .iter_mut()
                    .zip(batch.head.chunks_exact(k))
                    .zip(&batch.actions)
                {
                    *lp = y[action_index(*a, k)] - log_sum_exp(y);
                }
            }
            Distribution::Gaussian => {
                let ls = self.log_std(params).expect("Gaussian has log-stds");
                let c = T::from_f64(LN_SQRT_2PI);
                for ((lp, mu), u) in out
                    .iter_mut()
                    .zip(batch.head.chunks_exact(k))
                    .zip(batch.actions.chunks_exact(k))
                {
                    let mut s = T::ZERO;
                    for ((&m, &u), &l) in mu.iter().zip(u).zip(ls) {
                        let z = (u - m) * (-l).exp();
                        s += T::from_f64(-0.5) * z * z - l - c;
                    }
                    *lp = s;
                }
            }
        }
    }

    /// Fills the backprop caches of `batch` (unweighted head delta and `G_l` for each
    /// hidden layer), running the forward pass first if needed. Idempotent.
    pub fn backprop<T: Scalar>(&self, params: &[T], batch: &mut Batch<T>) {
        widest!(self.backprop_inlined(params, batch))
    }

    /// [`Net::backprop`], inlined into each of `widest!`'s instruction-set variants.
    #[inline(always)]
    fn backprop_inlined<T: Scalar>(&self, params: &[T], batch: &mut Batch<T>) {
        if batch.stage < Stage::Forward {
            self.forward(params, batch);
        }
        if batch.stage >= Stage::Backprop {
            return;
        }
        self.check_params(params);
        let n = batch.rows;
        let k = self.act_dim();
        batch.head_grad.resize(n * k, T::ZERO);
        batch.aux.resize(n * k, T::ZERO);
        match self.shape.distribution {
            Distribution::Softmax => {
                for (((g, p), y), a) in batch
                    .head_grad
                    .chunks_exact_mut(k)
                    .zip(batch.aux.chunks_exact_mut(k))
                    .zip(batch.head.chunks_exact(k))
                    .zip(&batch.actions)
                {
                    softmax(y, p);
                    for (gj, &pj) in g.iter_mut().zip(p.iter()) {
                        *gj = -pj;
                    }
                    g[action_index(*a, k)] += T::ONE;
                }
            }
            Distribution::Gaussian => {
                let iv = self.inv_var(params);
                for (((g, d), mu), u) in batch
                    .head_grad
                    .chunks_exact_mut(k)
                    .zip(batch.aux.chunks_exact_mut(k))
                    .zip(batch.head.chunks_exact(k))
                    .zip(batch.actions.chunks_exact(k))
                {
                    for j in 0..k {
                        d[j] = u[j] - mu[j];
                        g[j] = d[j] * iv[j];
                    }
                }
            }
        }
        // G_{l} = δ_{l+1} W_{l+1}, top down; δ_l = G_l ⊙ (1 − A_l²).
        batch.back.resize_with(self.n_hidden(), Vec::new);
        let mut delta = batch.head_grad.clone();
        for l in (0..self.n_hidden()).rev() {
            let above = &self.layers[l + 1];
            let mut g = core::mem::take(&mut batch.back[l]);
            g.resize(n * above.input, T::ZERO);
            a_b(
                n,
                above.output,
                above.input,
                &delta,
                above.w(params),
                T::ZERO,
                &mut g,
            );
            if l > 0 {
                delta.resize(n * above.input, T::ZERO);
                tanh_backward(&g, &batch.hidden[l], &mut delta);
            }
            batch.back[l] = g;
        }
        batch.stage = Stage::Backprop;
    }

    fn inv_var<T: Scalar>(&self, params: &[T]) -> Vec<T> {
        self.log_std(params)
            .expect("Gaussian has log-stds")
            .iter()
            .map(|&l| (T::from_f64(-2.0) * l).exp())
            .collect()
    }

    /// Adds `Σ_rows w_r ∇_θ log π(a_r|s_r; θ)` to `grad` and, if given, the score sum
    /// `Σ_rows ∇_θ log π(a_r|s_r; θ)` to `score` (both `P` long), in one sweep. Runs the
    /// forward pass and backprop first if they are not cached.
    pub fn accumulate<T: Scalar>(
        &self,
        params: &[T],
        batch: &mut Batch<T>,
        weights: &[T],
        grad: &mut [T],
        score: Option<&mut [T]>,
    ) {
        widest!(self.accumulate_inlined(params, batch, weights, grad, score))
    }

    /// [`Net::accumulate`], inlined into each of `widest!`'s instruction-set variants.
    #[inline(always)]
    fn accumulate_inlined<T: Scalar>(
        &self,
        params: &[T],
        batch: &mut Batch<T>,
        weights: &[T],
        grad: &mut [T],
        mut score: Option<&mut [T]>,
    ) {
        self.backprop(params, batch);
        assert_eq!(weights.len(), batch.rows, "one weight per row");
        assert_eq!(grad.len(), self.n_params);
        if let Some(s) = score.as_deref() {
            assert_eq!(s.len(), self.n_params);
        }
        let n = batch.rows;
        let nh = self.n_hidden();
        let mut scratch = core::mem::take(&mut batch.scratch);
        let [rows, ..] = scratch_bufs(&mut scratch);
        for (l, layer) in self.layers.iter().enumerate().rev() {
            let out = layer.output;
            let input: &[T] = if l == 0 {
                &batch.obs
            } else {
                &batch.hidden[l - 1]
            };
            // The cached `G_l` and `A_l` of a hidden layer, whose δ_l = G_l ⊙ (1 − A_l²).
            let tanh = (l < nh).then(|| (&batch.back[l][..], &batch.hidden[l][..]));
            rows.resize(n * out, T::ZERO);
            let from = if let Some(score) = score.as_deref_mut() {
                // The score's product runs on the unweighted δ_l, which are then weighted in
                // place for the gradient's: one more product than FO-MAML, no more memory.
                let sb = layer.b_mut(score);
                let d: &[T] = match tanh {
                    Some((g, a)) => {
                        for ((row, g), a) in rows
                            .chunks_exact_mut(out)
                            .zip(g.chunks_exact(out))
                            .zip(a.chunks_exact(out))
                        {
                            tanh_backward(g, a, row);
                            add_to(sb, row);
                        }
                        rows
                    }
                    None => {
                        for r in batch.head_grad.chunks_exact(out) {
                            add_to(sb, r);
                        }
                        &batch.head_grad
                    }
                };
                at_b(out, n, layer.input, d, input, T::ONE, layer.w_mut(score));
                match tanh {
                    Some(_) => Rows::InPlace,
                    None => Rows::Scale(&batch.head_grad),
                }
            } else {
                match tanh {
                    Some((g, a)) => Rows::Tanh(g, a),
                    None => Rows::Scale(&batch.head_grad),
                }
            };
            weigh_rows(from, weights, out, rows, layer.b_mut(grad));
            at_b(out, n, layer.input, rows, input, T::ONE, layer.w_mut(grad));
        }
        if let Some(o) = self.log_std {
            let k = self.act_dim();
            let iv = self.inv_var(params);
            let mut gw = vec![T::ZERO; k];
            let mut g1 = vec![T::ZERO; k];
            for (d, &w) in batch.aux.chunks_exact(k).zip(weights) {
                for j in 0..k {
                    // ∂ log π/∂ℓ_j = (u − μ)² e^{−2ℓ} − 1
                    let s = d[j] * d[j] * iv[j] - T::ONE;
                    gw[j] += w * s;
                    g1[j] += s;
                }
            }
            add_to(&mut grad[o..o + k], &gw);
            if let Some(score) = score {
                add_to(&mut score[o..o + k], &g1);
            }
        }
        batch.scratch = scratch;
    }

    /// The unweighted per-row deltas `δ_l = ∂log π/∂Z_l` of every layer (hidden layers
    /// first, head last; `N × output` row-major each), from the backprop caches (filled
    /// first if needed). `Σ_rows δ_lᵀ A_{l-1}` with [`Net::layer_input`] is the score's
    /// weight part; [`Net::accumulate`] forms the same rows internally.
    pub fn deltas<T: Scalar>(&self, params: &[T], batch: &mut Batch<T>) -> Vec<Vec<T>> {
        self.backprop(params, batch);
        let nh = self.n_hidden();
        self.layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                if l == nh {
                    batch.head_grad.clone()
                } else {
                    let mut d = vec![T::ZERO; batch.rows * layer.output];
                    tanh_backward(&batch.back[l], &batch.hidden[l], &mut d);
                    d
                }
            })
            .collect()
    }

    /// The input `A_{l-1}` of layer `l` for every row (`N × input` row-major): the
    /// observations for the first layer, else the activations below. Needs the forward pass.
    pub fn layer_input<'b, T: Scalar>(&self, batch: &'b Batch<T>, l: usize) -> &'b [T] {
        assert!(batch.stage >= Stage::Forward, "layer_input before forward");
        assert!(l < self.layers.len(), "no layer {l}");
        if l == 0 {
            &batch.obs
        } else {
            &batch.hidden[l - 1]
        }
    }

    /// Adds `Σ_rows w_r ∇²_θ log π(a_r|s_r; θ) · dir` to `out` (R-operator; see the module
    /// doc). Runs the forward pass and backprop first if they are not cached.
    pub fn hvp<T: Scalar>(
        &self,
        params: &[T],
        batch: &mut Batch<T>,
        weights: &[T],
        dir: &[T],
        out: &mut [T],
    ) {
        self.hvp_with_score(params, batch, weights, dir, T::ONE, T::ZERO, out);
    }

    /// Adds `alpha_per_sample · Σ_rows w_r ∇²log π · dir + m · Σ_rows ∇log π` to `out` in
    /// one pass: the score's rows enter the HVP's last product of each layer
    /// (`(alpha_per_sample·R{δ_l} + m·δ_l)ᵀ A_{l-1}`),
    /// so the score costs no extra matrix product. This is one SG-MRL step
    /// `a ← a + (α/n)·H a + (Ĵ − b)·s` with `alpha_per_sample = α/n`, `m = Ĵ − b`.
    #[allow(clippy::too_many_arguments)]
    pub fn hvp_with_score<T: Scalar>(
        &self,
        params: &[T],
        batch: &mut Batch<T>,
        weights: &[T],
        dir: &[T],
        alpha_per_sample: T,
        m: T,
        out: &mut [T],
    ) {
        widest!(self.hvp_with_score_inlined(params, batch, weights, dir, alpha_per_sample, m, out))
    }

    /// [`Net::hvp_with_score`], inlined into each of `widest!`'s instruction-set variants.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn hvp_with_score_inlined<T: Scalar>(
        &self,
        params: &[T],
        batch: &mut Batch<T>,
        weights: &[T],
        dir: &[T],
        alpha_per_sample: T,
        m: T,
        out: &mut [T],
    ) {
        self.backprop(params, batch);
        assert_eq!(weights.len(), batch.rows, "one weight per row");
        assert_eq!(dir.len(), self.n_params);
        assert_eq!(out.len(), self.n_params);
        let n = batch.rows;
        let k = self.act_dim();
        let nh = self.n_hidden();
        let mut scratch = core::mem::take(&mut batch.scratch);
        let [ry, rd, d, rg, tmp, ..] = scratch_bufs(&mut scratch);
        let mut ra: Vec<Vec<T>> = core::mem::take(&mut batch.r_hidden);
        ra.resize_with(nh, Vec::new);

        // R-forward.
        for (l, layer) in self.layers.iter().enumerate() {
            let buf: &mut Vec<T> = if l < nh { &mut ra[l] } else { ry };
            buf.resize(n * layer.output, T::ZERO);
            for row in buf.chunks_exact_mut(layer.output) {
                row.copy_from_slice(layer.b(dir));
            }
        }
        for l in 0..self.layers.len() {
            let layer = &self.layers[l];
            let (below, rest) = ra.split_at_mut(l.min(nh));
            let buf: &mut Vec<T> = if l < nh { &mut rest[0] } else { &mut *ry };
            let input: &[T] = if l == 0 {
                &batch.obs
            } else {
                &batch.hidden[l - 1]
            };
            a_bt(
                n,
                layer.input,
                layer.output,
                input,
                layer.w(dir),
                T::ONE,
                buf,
            );
            if l > 0 {
                a_bt(
                    n,
                    layer.input,
                    layer.output,
                    &below[l - 1],
                    layer.w(params),
                    T::ONE,
                    buf,
                );
            }
            if l < nh {
                for (r, &a) in buf.iter_mut().zip(&batch.hidden[l]) {
                    *r *= T::ONE - a * a;
                }
            }
        }

        // R-head: weighted δ_H and R{δ_H}.
        d.resize(n * k, T::ZERO);
        rd.resize(n * k, T::ZERO);
        for (((dr, rdr), (g, ryr)), (&w, aux)) in d
            .chunks_exact_mut(k)
            .zip(rd.chunks_exact_mut(k))
            .zip(batch.head_grad.chunks_exact(k).zip(ry.chunks_exact(k)))
            .zip(weights.iter().zip(batch.aux.chunks_exact(k)))
        {
            for (x, &y) in dr.iter_mut().zip(g) {
                *x = w * y;
            }
            match self.shape.distribution {
                Distribution::Softmax => {
                    let pr: T = aux.iter().zip(ryr).fold(T::ZERO, |s, (&p, &r)| s + p * r);
                    for ((x, &p), &r) in rdr.iter_mut().zip(aux).zip(ryr) {
                        *x = -(w * p * (r - pr));
                    }
                }
                Distribution::Gaussian => {}
            }
        }
        if let Some(o) = self.log_std {
            let iv = self.inv_var(params);
            let vl = &dir[o..o + k];
            let two = T::from_f64(2.0);
            let mut gl = vec![T::ZERO; k];
            for ((rdr, ryr), (&w, diff)) in rd
                .chunks_exact_mut(k)
                .zip(ry.chunks_exact(k))
                .zip(weights.iter().zip(batch.aux.chunks_exact(k)))
            {
                for j in 0..k {
                    let t = ryr[j] + diff[j] * vl[j];
                    rdr[j] = -(w * iv[j] * (ryr[j] + two * diff[j] * vl[j]));
                    // alpha_per_sample·R{∂/∂ℓ} + m·∂/∂ℓ, per row.
                    gl[j] += alpha_per_sample * (-(w * two * diff[j] * iv[j] * t))
                        + m * (diff[j] * diff[j] * iv[j] - T::ONE);
                }
            }
            add_to(&mut out[o..o + k], &gl);
        }

        // R-backprop, top down; `d` and `rd` hold w ⊙ δ_l and w ⊙ R{δ_l}. At each layer the
        // propagation to the layer below uses them first; then `rd` is overwritten by
        // u = alpha_per_sample·(w ⊙ R{δ_l}) + m·δ_l for this layer's products.
        let with_score = m != T::ZERO;
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            if l > 0 {
                rg.resize(n * layer.input, T::ZERO);
                a_b(
                    n,
                    layer.output,
                    layer.input,
                    rd,
                    layer.w(params),
                    T::ZERO,
                    rg,
                );
                a_b(n, layer.output, layer.input, d, layer.w(dir), T::ONE, rg);
            }
            if with_score {
                // Unweighted δ_l: the head delta, or G_l ⊙ (1 − A_l²).
                let hd;
                let delta: &[T] = if l == nh {
                    &batch.head_grad
                } else {
                    tmp.resize(n * layer.output, T::ZERO);
                    tanh_backward(&batch.back[l], &batch.hidden[l], tmp);
                    hd = &*tmp;
                    hd
                };
                for (u, &dl) in rd.iter_mut().zip(delta) {
                    *u = alpha_per_sample * *u + m * dl;
                }
            } else if alpha_per_sample != T::ONE {
                for u in rd.iter_mut() {
                    *u *= alpha_per_sample;
                }
            }
            let input: &[T] = if l == 0 {
                &batch.obs
            } else {
                &batch.hidden[l - 1]
            };
            let g = Gemm {
                m: layer.output,
                k: n,
                n: layer.input,
                a: (1, layer.output),
                b: (layer.input, 1),
                c: (layer.input, 1),
            };
            gemm(&g, T::ONE, rd, input, T::ONE, layer.w_mut(out));
            if l > 0 {
                gemm(
                    &g,
                    alpha_per_sample,
                    d,
                    &ra[l - 1],
                    T::ONE,
                    layer.w_mut(out),
                );
            }
            let ob = layer.b_mut(out);
            for r in rd.chunks_exact(layer.output) {
                add_to(ob, r);
            }
            if l == 0 {
                break;
            }
            // R{G} = R{δ_l} W_l + δ_l V_l (weighted, in `rg` above), then the tanh' chain rule:
            // R{δ_{l-1}} = R{G} ⊙ (1 − A²) − 2 (w ⊙ G) ⊙ A ⊙ R{A},  δ_{l-1} = (w ⊙ G) ⊙ (1 − A²).
            let width = layer.input;
            let two = T::from_f64(2.0);
            d.resize(n * width, T::ZERO);
            for (((rg_row, d_row), &w), ((g_row, a_row), ra_row)) in rg
                .chunks_exact_mut(width)
                .zip(d.chunks_exact_mut(width))
                .zip(weights)
                .zip(
                    batch.back[l - 1]
                        .chunks_exact(width)
                        .zip(batch.hidden[l - 1].chunks_exact(width))
                        .zip(ra[l - 1].chunks_exact(width)),
                )
            {
                for j in 0..width {
                    let a = a_row[j];
                    let dt = T::ONE - a * a;
                    let gw = w * g_row[j];
                    rg_row[j] = rg_row[j] * dt - two * gw * a * ra_row[j];
                    d_row[j] = gw * dt;
                }
            }
            core::mem::swap(rd, rg);
        }
        batch.r_hidden = ra;
        batch.scratch = scratch;
    }

    /// Initial parameters: Glorot-uniform weights (`U(±√(6/(in+out)))`), zero biases and
    /// zero log-stds (σ = 1), drawn in layout order from `rng`.
    pub fn glorot_init(&self, rng: &mut Rng) -> Vec<f32> {
        let mut p = vec![0.0f32; self.n_params];
        for l in &self.layers {
            let limit = libm_sqrt(6.0 / (l.input + l.output) as f32);
            for w in l.w_mut(&mut p) {
                *w = rng.uniform_in(-limit, limit);
            }
        }
        p
    }

    /// Draws an action for one row from its head output (`head_row`: logits or means) and
    /// writes it in wire format (`action_width` scalars): a categorical index, or the raw
    /// Gaussian sample `u_j = μ_j + e^{ℓ_j}·z_j` with `z_j` drawn in order `j = 0, 1, …`.
    pub fn sample_action(&self, params: &[f32], head_row: &[f32], rng: &mut Rng, out: &mut [f32]) {
        match self.shape.distribution {
            Distribution::Softmax => {
                let mut p = vec![0.0f32; head_row.len()];
                softmax(head_row, &mut p);
                let i = rng.categorical(p.iter().copied()).unwrap_or(0);
                out[0] = i as f32;
            }
            Distribution::Gaussian => {
                let ls = self.log_std(params).expect("Gaussian has log-stds");
                for ((u, &m), &l) in out.iter_mut().zip(head_row).zip(ls) {
                    *u = m + sgmrl::math::Real::exp(l) * rng.normal();
                }
            }
        }
    }
}

/// The transposed weight matrices `W_lᵀ` (`[in][out]` row-major) of one parameter vector.
#[derive(Clone, Debug)]
pub struct ForwardPlan<T> {
    wt: Vec<Vec<T>>,
}

/// How far the caches of a [`Batch`] have been computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Only observations and actions.
    Data,
    /// Activations and head outputs.
    Forward,
    /// Also the unweighted head delta and the back-propagated `G_l`.
    Backprop,
}

/// `N` rows of (observation, action) with the caches the passes of [`Net`] fill. The caches
/// belong to the parameters they were computed at: after changing `θ`, call
/// [`Batch::invalidate`] (or build a new batch).
#[derive(Clone, Debug)]
pub struct Batch<T> {
    rows: usize,
    obs_dim: usize,
    width: usize,
    obs: Vec<T>,
    actions: Vec<T>,
    hidden: Vec<Vec<T>>,
    head: Vec<T>,
    head_grad: Vec<T>,
    aux: Vec<T>,
    back: Vec<Vec<T>>,
    r_hidden: Vec<Vec<T>>,
    scratch: Vec<Vec<T>>,
    stage: Stage,
}

impl<T: Scalar> Batch<T> {
    /// A batch of `obs.len() / obs_dim` rows. Panics if the lengths do not agree with
    /// `net`'s observation and action widths.
    pub fn new(net: &Net, obs: Vec<T>, actions: Vec<T>) -> Self {
        let (od, w) = (net.obs_dim(), net.action_width());
        assert_eq!(obs.len() % od, 0, "observation matrix length");
        let rows = obs.len() / od;
        assert_eq!(actions.len(), rows * w, "action matrix length");
        Self {
            rows,
            obs_dim: od,
            width: w,
            obs,
            actions,
            hidden: Vec::new(),
            head: Vec::new(),
            head_grad: Vec::new(),
            aux: Vec::new(),
            back: Vec::new(),
            r_hidden: Vec::new(),
            scratch: Vec::new(),
            stage: Stage::Data,
        }
    }

    /// `rows` rows of zeros with the forward buffers allocated, to be filled row by row
    /// (observations, actions, and [`Net::forward_rows`]) and finished with
    /// [`Batch::finish_rows`].
    pub fn zeroed(net: &Net, rows: usize) -> Self {
        let mut b = Self::new(
            net,
            vec![T::ZERO; rows * net.obs_dim()],
            vec![T::ZERO; rows * net.action_width()],
        );
        b.hidden = net.layers[..net.n_hidden()]
            .iter()
            .map(|l| vec![T::ZERO; rows * l.output])
            .collect();
        b.head = vec![T::ZERO; rows * net.act_dim()];
        b
    }

    /// Observation row `r`, for writing.
    pub fn obs_row_mut(&mut self, r: usize) -> &mut [T] {
        self.stage = Stage::Data;
        &mut self.obs[r * self.obs_dim..(r + 1) * self.obs_dim]
    }

    /// Head output (logits or means) of row `r`.
    pub fn head_row(&self, r: usize) -> &[T] {
        let k = self.head.len() / self.rows.max(1);
        &self.head[r * k..(r + 1) * k]
    }

    /// Keeps the rows `r` with `keep(r)` (in order) and declares the forward cache valid:
    /// the caller has run [`Net::forward_rows`] on every kept row at the same parameters.
    pub fn finish_rows(&mut self, keep: impl Fn(usize) -> bool) {
        let kept: Vec<usize> = (0..self.rows).filter(|&r| keep(r)).collect();
        if kept.len() < self.rows {
            fn compact<T: Copy>(v: &mut Vec<T>, width: usize, kept: &[usize]) {
                for (dst, &src) in kept.iter().enumerate() {
                    if dst != src {
                        v.copy_within(src * width..(src + 1) * width, dst * width);
                    }
                }
                v.truncate(kept.len() * width);
            }
            let rows = self.rows;
            let (od, w) = (self.obs_dim, self.width);
            compact(&mut self.obs, od, &kept);
            compact(&mut self.actions, w, &kept);
            for h in &mut self.hidden {
                let hw = h.len() / rows.max(1);
                compact(h, hw, &kept);
            }
            let k = self.head.len() / rows.max(1);
            compact(&mut self.head, k, &kept);
            self.rows = kept.len();
        }
        self.stage = Stage::Forward;
    }

    /// An empty batch for `net`.
    pub fn empty(net: &Net) -> Self {
        Self::new(net, Vec::new(), Vec::new())
    }

    fn check(&self, net: &Net) {
        assert_eq!(self.obs_dim, net.obs_dim(), "batch built for another net");
        assert_eq!(
            self.width,
            net.action_width(),
            "batch built for another net"
        );
    }

    /// Number of rows `N`.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Observation length.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }
    /// Scalars per action on the wire.
    pub fn action_width(&self) -> usize {
        self.width
    }
    /// Observations, `N × obs_dim` row-major.
    pub fn obs(&self) -> &[T] {
        &self.obs
    }
    /// Actions on the wire, `N × action_width` row-major.
    pub fn actions(&self) -> &[T] {
        &self.actions
    }
    /// Head outputs (logits or means), `N × act_dim`; empty before [`Net::forward`].
    pub fn head(&self) -> &[T] {
        &self.head
    }
    /// What is cached.
    pub fn stage(&self) -> Stage {
        self.stage
    }
    /// Row `r` of the actions, for writing a freshly drawn action. Keeps the forward
    /// cache (it does not depend on actions) and drops the backprop cache.
    pub fn action_row_mut(&mut self, r: usize) -> &mut [T] {
        self.stage = self.stage.min(Stage::Forward);
        &mut self.actions[r * self.width..(r + 1) * self.width]
    }
    /// Drops the caches (the parameters changed).
    pub fn invalidate(&mut self) {
        self.stage = Stage::Data;
    }

    /// Appends the rows of `src` (with their forward caches when both batches have them).
    /// The result is at stage [`Stage::Forward`] only if both inputs were.
    pub fn extend_from(&mut self, src: &Batch<T>) {
        assert_eq!((self.obs_dim, self.width), (src.obs_dim, src.width));
        let fwd = src.stage >= Stage::Forward && (self.rows == 0 || self.stage >= Stage::Forward);
        self.rows += src.rows;
        self.obs.extend_from_slice(&src.obs);
        self.actions.extend_from_slice(&src.actions);
        if fwd {
            self.hidden.resize_with(src.hidden.len(), Vec::new);
            for (d, s) in self.hidden.iter_mut().zip(&src.hidden) {
                d.extend_from_slice(s);
            }
            self.head.extend_from_slice(&src.head);
            self.stage = Stage::Forward;
        } else {
            self.stage = Stage::Data;
        }
    }

    /// Reorders rows: row `i` of the result is row `order[i]` of `self` (rows not listed
    /// are dropped). Forward caches follow; backprop caches are dropped.
    pub fn permute(&mut self, order: &[usize]) {
        fn gather<T: Copy>(v: &mut Vec<T>, width: usize, order: &[usize]) {
            if width == 0 || v.is_empty() {
                return;
            }
            let mut out = Vec::with_capacity(order.len() * width);
            for &r in order {
                out.extend_from_slice(&v[r * width..(r + 1) * width]);
            }
            *v = out;
        }
        let w_obs = self.obs_dim;
        gather(&mut self.obs, w_obs, order);
        gather(&mut self.actions, self.width, order);
        let fwd = self.stage >= Stage::Forward;
        if fwd {
            let rows = self.rows;
            for h in &mut self.hidden {
                let w = h.len() / rows.max(1);
                gather(h, w, order);
            }
            let w = self.head.len() / rows.max(1);
            gather(&mut self.head, w, order);
        }
        self.rows = order.len();
        self.stage = if fwd { Stage::Forward } else { Stage::Data };
    }
}

fn libm_sqrt(x: f32) -> f32 {
    sgmrl::math::Real::sqrt(x)
}

#[inline(always)]
fn scratch_bufs<T>(s: &mut Vec<Vec<T>>) -> &mut [Vec<T>; 6] {
    s.resize_with(6, Vec::new);
    <&mut [Vec<T>; 6]>::try_from(s.as_mut_slice()).expect("six buffers")
}

/// `δ = G ⊙ (1 − A²)` (the tanh derivative written with the cached output `A`).
#[inline(always)]
fn tanh_backward<T: Scalar>(g: &[T], a: &[T], delta: &mut [T]) {
    for ((d, &g), &a) in delta.iter_mut().zip(g).zip(a) {
        *d = g * (T::ONE - a * a);
    }
}

/// Where the weighted rows `w_r δ_r` of a layer come from.
#[derive(Clone, Copy)]
enum Rows<'a, T> {
    /// The buffer already holds the unweighted `δ_r`.
    InPlace,
    /// `δ_r` is this matrix's row (the head delta).
    Scale(&'a [T]),
    /// `δ_r = G_r ⊙ (1 − A_r²)` from these `G` and `A`.
    Tanh(&'a [T], &'a [T]),
}

/// Row `r` of `rows` (`N × out`) becomes `w_r δ_r`, and is added to `bias` while it is hot
/// (the bias gradient `Σ_r w_r δ_r`, summed in row order).
#[inline(always)]
fn weigh_rows<T: Scalar>(
    from: Rows<'_, T>,
    weights: &[T],
    out: usize,
    rows: &mut [T],
    bias: &mut [T],
) {
    for (r, (row, &w)) in rows.chunks_exact_mut(out).zip(weights).enumerate() {
        let span = r * out..(r + 1) * out;
        match from {
            Rows::InPlace => row.iter_mut().for_each(|x| *x *= w),
            Rows::Scale(d) => {
                for (x, &y) in row.iter_mut().zip(&d[span]) {
                    *x = w * y;
                }
            }
            Rows::Tanh(g, a) => {
                tanh_backward(&g[span.clone()], &a[span], row);
                row.iter_mut().for_each(|x| *x *= w);
            }
        }
        add_to(bias, row);
    }
}

#[inline(always)]
fn add_to<T: Scalar>(dst: &mut [T], src: &[T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

fn action_index<T: Scalar>(a: T, k: usize) -> usize {
    let i = a.to_f64();
    assert!(
        i >= 0.0 && i < k as f64 && i.fract() == 0.0,
        "discrete action {i} out of range"
    );
    i as usize
}

#[inline(always)]
fn log_sum_exp<T: Scalar>(y: &[T]) -> T {
    let m = y.iter().copied().fold(y[0], T::max);
    let s = y.iter().fold(T::ZERO, |s, &v| s + (v - m).exp());
    m + s.ln()
}

#[inline(always)]
fn softmax<T: Scalar>(y: &[T], p: &mut [T]) {
    let m = y.iter().copied().fold(y[0], T::max);
    let mut s = T::ZERO;
    for (pj, &v) in p.iter_mut().zip(y) {
        *pj = (v - m).exp();
        s += *pj;
    }
    for pj in p.iter_mut() {
        *pj = *pj / s;
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // row-indexed loops read like the formulas
pub(crate) mod tests {
    use super::*;

    pub(crate) fn shapes() -> Vec<PolicyShape> {
        let mut v = Vec::new();
        for distribution in [Distribution::Softmax, Distribution::Gaussian] {
            for hidden in [[0, 0], [5, 0], [4, 3]] {
                v.push(PolicyShape {
                    distribution,
                    obs_dim: 3,
                    hidden,
                    act_dim: 3,
                });
            }
        }
        v
    }

    /// A random batch and parameters for `net` (f64), from a seeded stream.
    pub(crate) fn random_case(
        net: &Net,
        rows: usize,
        seed: u64,
    ) -> (Vec<f64>, Batch<f64>, Vec<f64>) {
        let mut rng = Rng::new(seed);
        let mut g = || f64::from(rng.normal());
        let params: Vec<f64> = (0..net.n_params()).map(|_| 0.7 * g()).collect();
        let obs: Vec<f64> = (0..rows * net.obs_dim()).map(|_| g()).collect();
        let k = net.act_dim();
        let actions: Vec<f64> = match net.shape().distribution {
            Distribution::Softmax => (0..rows)
                .map(|r| ((r * 7 + seed as usize) % k) as f64)
                .collect(),
            Distribution::Gaussian => (0..rows * k).map(|_| g()).collect(),
        };
        let weights: Vec<f64> = (0..rows).map(|_| g()).collect();
        (params, Batch::new(net, obs, actions), weights)
    }

    fn weighted_log_prob(net: &Net, params: &[f64], batch: &Batch<f64>, w: &[f64]) -> f64 {
        let mut b = batch.clone();
        b.invalidate();
        net.forward(params, &mut b);
        let mut lp = vec![0.0; b.rows()];
        net.log_probs(params, &b, &mut lp);
        lp.iter().zip(w).map(|(l, w)| l * w).sum()
    }

    fn grad_at(net: &Net, params: &[f64], batch: &Batch<f64>, w: &[f64]) -> Vec<f64> {
        let mut b = batch.clone();
        b.invalidate();
        let mut g = vec![0.0; net.n_params()];
        net.accumulate(params, &mut b, w, &mut g, None);
        g
    }

    fn rel_err(a: &[f64], b: &[f64]) -> f64 {
        let num: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            .sqrt();
        let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
        num / den.max(1e-300)
    }

    #[test]
    fn gradient_and_score_match_finite_differences() {
        for (i, shape) in shapes().into_iter().enumerate() {
            let net = Net::new(shape).unwrap();
            let (params, mut batch, w) = random_case(&net, 9, 10 + i as u64);
            let mut g = vec![0.0; net.n_params()];
            let mut s = vec![0.0; net.n_params()];
            net.accumulate(&params, &mut batch, &w, &mut g, Some(&mut s));
            let ones = vec![1.0; batch.rows()];
            let h = 1e-6;
            let fd = |w: &[f64]| -> Vec<f64> {
                (0..params.len())
                    .map(|j| {
                        let mut p = params.clone();
                        p[j] += h;
                        let up = weighted_log_prob(&net, &p, &batch, w);
                        p[j] -= 2.0 * h;
                        let dn = weighted_log_prob(&net, &p, &batch, w);
                        (up - dn) / (2.0 * h)
                    })
                    .collect()
            };
            let e = rel_err(&g, &fd(&w));
            assert!(e < 1e-7, "{shape:?}: gradient rel. error {e}");
            let e = rel_err(&s, &fd(&ones));
            assert!(e < 1e-7, "{shape:?}: score rel. error {e}");
        }
    }

    /// Asking for the score leaves the gradient bit for bit as it is, both sums add to what
    /// `grad` and `score` hold, and [`Net::deltas`] with [`Net::layer_input`] rebuild the
    /// score's layer part.
    #[test]
    fn the_score_keeps_the_gradient_and_deltas_rebuild_it() {
        for (i, shape) in shapes().into_iter().enumerate() {
            let net = Net::new(shape).unwrap();
            let (params, mut batch, w) = random_case(&net, 9, 80 + i as u64);
            let n = net.n_params();
            let mut alone = vec![0.0; n];
            net.accumulate(&params, &mut batch, &w, &mut alone, None);
            let (mut g, mut s) = (vec![0.0; n], vec![0.0; n]);
            net.accumulate(&params, &mut batch, &w, &mut g, Some(&mut s));
            assert_eq!(g, alone, "{shape:?}");
            let (mut g2, mut s2) = (g.clone(), s.clone());
            net.accumulate(&params, &mut batch, &w, &mut g2, Some(&mut s2));
            let double = |x: &[f64]| -> Vec<f64> { x.iter().map(|v| 2.0 * v).collect() };
            assert!(
                rel_err(&g2, &double(&g)) < 1e-14,
                "{shape:?}: gradient adds"
            );
            assert!(rel_err(&s2, &double(&s)) < 1e-14, "{shape:?}: score adds");

            let d = net.deltas(&params, &mut batch);
            let mut rebuilt = vec![0.0; n];
            for (l, layer) in net.layers().iter().enumerate() {
                let wts = layer.weights..layer.weights + layer.input * layer.output;
                let input = net.layer_input(&batch, l);
                at_b(
                    layer.output,
                    batch.rows(),
                    layer.input,
                    &d[l],
                    input,
                    1.0,
                    &mut rebuilt[wts],
                );
                for r in d[l].chunks_exact(layer.output) {
                    add_to(&mut rebuilt[layer.bias..layer.bias + layer.output], r);
                }
            }
            let end = net.layers().last().map_or(0, |h| h.bias + h.output);
            let e = rel_err(&rebuilt[..end], &s[..end]);
            assert!(
                e < 1e-14,
                "{shape:?}: deltas rebuild the score, rel. error {e}"
            );
        }
    }

    #[test]
    fn hvp_matches_finite_differences_of_the_gradient() {
        for (i, shape) in shapes().into_iter().enumerate() {
            let net = Net::new(shape).unwrap();
            let (params, mut batch, w) = random_case(&net, 7, 20 + i as u64);
            let mut rng = Rng::new(99 + i as u64);
            let v: Vec<f64> = (0..params.len()).map(|_| f64::from(rng.normal())).collect();
            let mut hv = vec![0.0; params.len()];
            net.hvp(&params, &mut batch, &w, &v, &mut hv);
            let h = 1e-5;
            let shifted = |sign: f64| -> Vec<f64> {
                let p: Vec<f64> = params
                    .iter()
                    .zip(&v)
                    .map(|(p, v)| p + sign * h * v)
                    .collect();
                grad_at(&net, &p, &batch, &w)
            };
            let (up, dn) = (shifted(1.0), shifted(-1.0));
            let fd: Vec<f64> = up
                .iter()
                .zip(&dn)
                .map(|(u, d)| (u - d) / (2.0 * h))
                .collect();
            let e = rel_err(&hv, &fd);
            assert!(e < 1e-7, "{shape:?}: HVP rel. error {e}");
            // Accumulates rather than overwrites, and reuses its caches.
            net.hvp(&params, &mut batch, &w, &v, &mut hv);
            let twice: Vec<f64> = fd.iter().map(|x| 2.0 * x).collect();
            assert!(rel_err(&hv, &twice) < 1e-7);
        }
    }

    #[test]
    fn fused_hvp_and_score_is_the_sum_of_both() {
        for (i, shape) in shapes().into_iter().enumerate() {
            let net = Net::new(shape).unwrap();
            let (params, mut batch, w) = random_case(&net, 7, 70 + i as u64);
            let v: Vec<f64> = params.iter().map(|p| (p * 0.7).cos()).collect();
            let n = net.n_params();
            let (mut g, mut s, mut hv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            net.accumulate(&params, &mut batch, &w, &mut g, Some(&mut s));
            net.hvp(&params, &mut batch, &w, &v, &mut hv);
            let (alpha_per_sample, m) = (0.3, -2.5);
            let mut fused = vec![1.0; n];
            net.hvp_with_score(&params, &mut batch, &w, &v, alpha_per_sample, m, &mut fused);
            let want: Vec<f64> = hv
                .iter()
                .zip(&s)
                .map(|(a, b)| 1.0 + alpha_per_sample * a + m * b)
                .collect();
            let e = rel_err(&fused, &want);
            assert!(e < 1e-13, "{shape:?}: fused rel. error {e}");
            let mut scaled = vec![0.0; n];
            net.hvp_with_score(
                &params,
                &mut batch,
                &w,
                &v,
                alpha_per_sample,
                0.0,
                &mut scaled,
            );
            let want: Vec<f64> = hv.iter().map(|a| alpha_per_sample * a).collect();
            assert!(rel_err(&scaled, &want) < 1e-13);
        }
    }

    #[test]
    fn f32_kernels_agree_with_f64() {
        for (i, shape) in shapes().into_iter().enumerate() {
            let net = Net::new(shape).unwrap();
            let (params, batch, w) = random_case(&net, 11, 30 + i as u64);
            let v: Vec<f64> = params.iter().map(|p| (p * 3.1).sin()).collect();
            let f = |x: &[f64]| -> Vec<f32> { x.iter().map(|&y| y as f32).collect() };
            let mut b32 = Batch::new(&net, f(batch.obs()), f(batch.actions()));
            let mut b64 = batch.clone();
            let n = net.n_params();
            let (mut g32, mut s32, mut h32) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
            let (mut g64, mut s64, mut h64) = (vec![0f64; n], vec![0f64; n], vec![0f64; n]);
            net.accumulate(&f(&params), &mut b32, &f(&w), &mut g32, Some(&mut s32));
            net.hvp(&f(&params), &mut b32, &f(&w), &f(&v), &mut h32);
            net.accumulate(&params, &mut b64, &w, &mut g64, Some(&mut s64));
            net.hvp(&params, &mut b64, &w, &v, &mut h64);
            let up = |x: &[f32]| -> Vec<f64> { x.iter().map(|&y| f64::from(y)).collect() };
            for (a, b) in [(g32, g64), (s32, s64), (h32, h64)] {
                let e = rel_err(&up(&a), &b);
                assert!(e < 1e-5, "{shape:?}: f32 vs f64 rel. error {e}");
            }
        }
    }

    /// Per-row gradient, score and HVP from the core's runtime-shaped `net::` code (the
    /// device's arithmetic), the HVP by running that code on dual numbers.
    fn core_sums(
        net: &Net,
        params: &[f64],
        batch: &Batch<f64>,
        w: &[f64],
        v: &[f64],
    ) -> [Vec<f64>; 3] {
        use sgmrl::dual::Dual;
        use sgmrl::policy::{DualParams, net as core_net};
        let shape = net.shape();
        let n = net.n_params();
        let (od, aw) = (net.obs_dim(), net.action_width());
        let (mut g, mut s, mut h) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let mut buf = vec![0.0f64; shape.scratch_len()];
        let mut dbuf = vec![<Dual<f64> as sgmrl::math::Real>::ZERO; shape.scratch_len()];
        let mut dg = vec![<Dual<f64> as sgmrl::math::Real>::ZERO; n];
        for r in 0..batch.rows() {
            let obs = &batch.obs()[r * od..(r + 1) * od];
            let act = &batch.actions()[r * aw..(r + 1) * aw];
            let mut sc = core_net::Scratch::from_slice(&shape, &mut buf).unwrap();
            core_net::accumulate_grad_log_prob(&shape, params, obs, act, w[r], &mut sc, &mut g)
                .unwrap();
            let mut sc = core_net::Scratch::from_slice(&shape, &mut buf).unwrap();
            core_net::accumulate_grad_log_prob(&shape, params, obs, act, 1.0, &mut sc, &mut s)
                .unwrap();
            let dobs: Vec<Dual<f64>> = obs.iter().map(|&x| Dual::constant(x)).collect();
            let dact: Vec<Dual<f64>> = act.iter().map(|&x| Dual::constant(x)).collect();
            let mut sc = core_net::Scratch::from_slice(&shape, &mut dbuf).unwrap();
            let dp = DualParams {
                params,
                direction: v,
            };
            core_net::accumulate_grad_log_prob(
                &shape,
                dp,
                &dobs,
                &dact,
                Dual::constant(w[r]),
                &mut sc,
                &mut dg,
            )
            .unwrap();
        }
        for (o, d) in h.iter_mut().zip(&dg) {
            *o = d.eps;
        }
        [g, s, h]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Any runtime shape and batch: gradient, score and the fused HVP + score agree
        /// with the core's per-sample code (HVP on dual numbers).
        #[test]
        fn any_shape_matches_the_core(
            gaussian in proptest::bool::ANY,
            obs_dim in 1u16..5,
            h1 in 0u16..7,
            h2 in 0u16..6,
            act in 1u16..5,
            rows in 1usize..7,
            seed in 0u64..1000,
        ) {
            let shape = PolicyShape {
                distribution: if gaussian { Distribution::Gaussian } else { Distribution::Softmax },
                obs_dim,
                hidden: [h1, if h1 == 0 { 0 } else { h2 }],
                act_dim: if gaussian { act } else { act + 1 },
            };
            let net = Net::new(shape).unwrap();
            let (params, mut batch, w) = random_case(&net, rows, seed);
            let v: Vec<f64> = params.iter().map(|p| (p * 1.3 + 0.2).sin()).collect();
            let n = net.n_params();
            let (mut g, mut s, mut fused) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            net.accumulate(&params, &mut batch, &w, &mut g, Some(&mut s));
            net.hvp_with_score(&params, &mut batch, &w, &v, 0.5, -1.5, &mut fused);
            let [cg, cs, ch] = core_sums(&net, &params, &batch, &w, &v);
            let want: Vec<f64> = ch.iter().zip(&cs).map(|(h, s)| 0.5 * h - 1.5 * s).collect();
            proptest::prop_assert!(rel_err(&g, &cg) < 1e-11);
            proptest::prop_assert!(rel_err(&s, &cs) < 1e-11);
            proptest::prop_assert!(rel_err(&fused, &want) < 1e-11);
        }
    }

    #[test]
    fn matches_the_core_per_sample_code() {
        for (i, shape) in shapes().into_iter().enumerate() {
            let net = Net::new(shape).unwrap();
            let (params, mut batch, w) = random_case(&net, 8, 40 + i as u64);
            let v: Vec<f64> = params.iter().map(|p| (p * 1.7).cos()).collect();
            let n = net.n_params();
            let (mut g, mut s, mut h) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            net.accumulate(&params, &mut batch, &w, &mut g, Some(&mut s));
            net.hvp(&params, &mut batch, &w, &v, &mut h);
            let [cg, cs, ch] = core_sums(&net, &params, &batch, &w, &v);
            for (name, a, b) in [("gradient", &g, &cg), ("score", &s, &cs), ("HVP", &h, &ch)] {
                let e = rel_err(a, b);
                assert!(e < 1e-12, "{shape:?}: {name} vs core rel. error {e}");
            }
            let mut lp = vec![0.0; batch.rows()];
            net.log_probs(&params, &batch, &mut lp);
            let (od, aw) = (net.obs_dim(), net.action_width());
            let mut buf = vec![0.0f64; sgmrl::policy::net::Layers::<f64>::len_for(&shape)];
            for r in 0..batch.rows() {
                let (mut layers, _) =
                    sgmrl::policy::net::Layers::from_slice(&shape, &mut buf).unwrap();
                let want = sgmrl::policy::net::log_prob(
                    &shape,
                    &params[..],
                    &batch.obs()[r * od..(r + 1) * od],
                    &batch.actions()[r * aw..(r + 1) * aw],
                    &mut layers,
                )
                .unwrap();
                assert!((lp[r] - want).abs() < 1e-12, "{shape:?}: log-prob row {r}");
            }
        }
    }

    /// The const-generic policies' own Dual-based HVP (`Policy::accumulate_hvp_log_prob`).
    #[test]
    fn hvp_matches_the_const_generic_policies() {
        use sgmrl::dual::Dual;
        use sgmrl::policy::{GaussianMlp, Policy, SoftmaxLinear, SoftmaxMlp};
        fn check<P: Policy + Default>(seed: u64) {
            let net = Net::new(P::SHAPE).unwrap();
            let (params, mut batch, w) = random_case(&net, 5, seed);
            let v: Vec<f64> = params.iter().map(|p| (p * 2.3).sin()).collect();
            let mut h = vec![0.0; net.n_params()];
            net.hvp(&params, &mut batch, &w, &v, &mut h);
            let mut want = vec![0.0; net.n_params()];
            let mut scratch = vec![<Dual<f64> as sgmrl::math::Real>::ZERO; net.n_params()];
            let (od, aw) = (net.obs_dim(), net.action_width());
            for r in 0..batch.rows() {
                P::default()
                    .accumulate_hvp_log_prob(
                        &params,
                        &v,
                        &batch.obs()[r * od..(r + 1) * od],
                        &batch.actions()[r * aw..(r + 1) * aw],
                        w[r],
                        &mut scratch,
                        &mut want,
                    )
                    .unwrap();
            }
            let e = rel_err(&h, &want);
            assert!(e < 1e-12, "{:?}: HVP vs Policy rel. error {e}", P::SHAPE);
        }
        check::<SoftmaxLinear<3, 3>>(1);
        check::<SoftmaxMlp<3, 5, 0, 3>>(2);
        check::<SoftmaxMlp<3, 4, 3, 3>>(3);
        check::<GaussianMlp<3, 0, 0, 3>>(4);
        check::<GaussianMlp<3, 4, 3, 3>>(5);
        check::<GaussianMlp<2, 100, 100, 2>>(6);
    }

    /// Same stream, same head output → the same action as the core's `net::sample`.
    #[test]
    fn sampling_matches_the_core() {
        for shape in shapes() {
            let net = Net::new(shape).unwrap();
            let (p64, batch, _) = random_case(&net, 6, 50);
            let params: Vec<f32> = p64.iter().map(|&x| x as f32).collect();
            let obs: Vec<f32> = batch.obs().iter().map(|&x| x as f32).collect();
            let mut b = Batch::new(&net, obs.clone(), vec![0.0; batch.actions().len()]);
            net.forward(&params, &mut b);
            let (od, k, aw) = (net.obs_dim(), net.act_dim(), net.action_width());
            let mut buf = vec![0.0f32; sgmrl::policy::net::Layers::<f32>::len_for(&shape)];
            for r in 0..6 {
                let mut rng_host = Rng::stream(9, r as u64);
                let mut rng_core = rng_host.clone();
                let mut got = vec![0.0f32; aw];
                net.sample_action(
                    &params,
                    &b.head()[r * k..(r + 1) * k],
                    &mut rng_host,
                    &mut got,
                );
                let (mut layers, _) =
                    sgmrl::policy::net::Layers::from_slice(&shape, &mut buf).unwrap();
                let mut want = vec![0.0f32; aw];
                sgmrl::policy::net::sample(
                    &shape,
                    &params[..],
                    &obs[r * od..(r + 1) * od],
                    &mut rng_core,
                    &mut layers,
                    &mut want,
                )
                .unwrap();
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{shape:?}: {got:?} vs {want:?}"
                    );
                }
                assert_eq!(rng_host, rng_core, "same number of draws");
            }
        }
    }

    #[test]
    fn permute_and_extend_keep_rows_consistent() {
        let net = Net::new(shapes()[5]).unwrap();
        let (params, batch, w) = random_case(&net, 6, 3);
        let mut whole = batch.clone();
        net.forward(&params, &mut whole);
        let mut lp = vec![0.0; 6];
        net.log_probs(&params, &whole, &mut lp);
        let order = [4, 0, 5];
        let mut sub = whole.clone();
        sub.permute(&order);
        assert_eq!(sub.stage(), Stage::Forward);
        let mut lp_sub = vec![0.0; 3];
        net.log_probs(&params, &sub, &mut lp_sub);
        for (i, &r) in order.iter().enumerate() {
            assert!((lp_sub[i] - lp[r]).abs() < 1e-12);
        }
        let mut joined = Batch::empty(&net);
        joined.extend_from(&sub);
        joined.extend_from(&sub);
        assert_eq!(joined.rows(), 6);
        let mut g1 = vec![0.0; net.n_params()];
        let ww: Vec<f64> = order.iter().chain(&order).map(|&r| w[r]).collect();
        net.accumulate(&params, &mut joined, &ww, &mut g1, None);
        let mut g2 = vec![0.0; net.n_params()];
        let w_sub: Vec<f64> = order.iter().map(|&r| 2.0 * w[r]).collect();
        net.accumulate(&params, &mut sub, &w_sub, &mut g2, None);
        assert!(rel_err(&g1, &g2) < 1e-12);
    }

    #[test]
    fn forward_rows_then_finish_equals_a_full_forward() {
        for (i, shape) in shapes().into_iter().enumerate() {
            let net = Net::new(shape).unwrap();
            let (params, batch, _) = random_case(&net, 12, 60 + i as u64);
            let (h, n) = (4, 3); // 3 episodes × horizon 4, episode-major
            let mut z = Batch::zeroed(&net, h * n);
            z.obs.copy_from_slice(batch.obs());
            z.actions.copy_from_slice(batch.actions());
            let plan = net.plan(&params);
            for t in 0..h {
                net.forward_rows(&params, &plan, &mut z, t, h, n);
            }
            // Episode 1 ended after 2 steps.
            z.finish_rows(|r| r / h != 1 || r % h < 2);
            let kept: Vec<usize> = (0..12).filter(|r| r / h != 1 || r % h < 2).collect();
            let mut full = batch.clone();
            net.forward(&params, &mut full);
            full.permute(&kept);
            assert_eq!(z.rows(), 10);
            assert_eq!(z.obs(), full.obs());
            assert!(rel_err(z.head(), full.head()) < 1e-14);
            for (a, b) in z.hidden.iter().zip(&full.hidden) {
                assert!(rel_err(a, b) < 1e-14);
            }
            assert_eq!(z.stage(), Stage::Forward);
        }
    }

    #[test]
    fn layer_map_follows_the_core_layout() {
        let shape = PolicyShape {
            distribution: Distribution::Gaussian,
            obs_dim: 2,
            hidden: [100, 100],
            act_dim: 2,
        };
        let net = Net::new(shape).unwrap();
        assert_eq!(net.n_params(), 10_604);
        let l = net.layers();
        assert_eq!(
            l[0],
            Layer {
                input: 2,
                output: 100,
                weights: 0,
                bias: 200
            }
        );
        assert_eq!(l[1].weights, 300);
        assert_eq!(
            l[2],
            Layer {
                input: 100,
                output: 2,
                weights: 10_400,
                bias: 10_600
            }
        );
        assert_eq!(net.log_std(&vec![0.0; 10_604]).unwrap().len(), 2);
        assert!(
            Net::new(PolicyShape {
                hidden: [0, 4],
                ..shape
            })
            .is_err()
        );
    }
}
