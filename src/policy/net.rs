//! The policy math, written once for any [`PolicyShape`]: forward pass, sampling, mode,
//! log-probability, and backpropagation of `weight · ∇_θ log π`.
//!
//! The const-generic policies ([`SoftmaxLinear`](super::SoftmaxLinear),
//! [`SoftmaxMlp`](super::SoftmaxMlp), [`GaussianMlp`](super::GaussianMlp)) call these
//! functions with scratch arrays on the stack; the host calls them directly, with `Vec`
//! scratch, for shapes chosen at run time. Both therefore compute the same numbers.
//!
//! # Formulas
//! With `x` the observation, each hidden layer is `a_l = tanh(W_l a_{l−1} + b_l)` and the
//! head is `z = W a_last + b` (each row summed left to right, then the bias added).
//! - Softmax: `log π(k) = (z_k − max z) − ln Σ_j exp(z_j − max z)`, so
//!   `∂ log π / ∂z = 1[k] − p`.
//! - Gaussian (`z = μ`, `σ = exp(log_std)`, `r = (u − μ)/σ`):
//!   `log π(u) = Σ_j [−r_j²/2 − log_std_j − ln√(2π)]`, so `∂/∂μ_j = r_j/σ_j` and
//!   `∂/∂log_std_j = r_j² − 1`.
//! - Backprop: `δ_head = weight · ∂ log π/∂z`, `δ_l = (W_{l+1}ᵀ δ_{l+1}) ⊙ (1 − a_l²)`,
//!   `∂/∂W_l = δ_l a_{l−1}ᵀ`, `∂/∂b_l = δ_l`.
//!
//! # Scratch contract
//! Working memory is the caller's. Forward-only calls ([`forward`], [`sample`], [`mode`],
//! [`log_prob`]) take one [`Layers`]: a vector per layer (hidden 1, hidden 2, head), of
//! `hidden[0]`, `hidden[1]` and `act_dim` scalars. [`accumulate_grad_log_prob`] takes a
//! [`Scratch`]: activations and deltas, [`PolicyShape::scratch_len`] scalars in all. Longer
//! buffers are fine (only the front is used); shorter ones are
//! [`PolicyError::ScratchLength`]. Each function says what the head vector holds on return;
//! everything else in scratch is unspecified.

use super::{Distribution, LenMismatch, ParamSource, PolicyError, PolicyShape};
use crate::math::{LN_SQRT_2PI, Real};
use crate::rng::Rng;

/// One vector per layer, borrowed from the caller: activations, or deltas in backprop.
#[derive(Debug)]
pub struct Layers<'a, T> {
    /// First hidden layer: `hidden[0]` scalars (none when absent).
    pub h1: &'a mut [T],
    /// Second hidden layer: `hidden[1]` scalars (none when absent).
    pub h2: &'a mut [T],
    /// Head: `act_dim` scalars (logits, probabilities, mean or residuals).
    pub head: &'a mut [T],
}

impl<'a, T> Layers<'a, T> {
    /// Scalars one `Layers` needs for `shape`: `hidden[0] + hidden[1] + act_dim`.
    pub const fn len_for(shape: &PolicyShape) -> usize {
        let [h1, h2] = shape.hidden;
        h1 as usize + h2 as usize + shape.act_dim as usize
    }

    /// Cuts the three vectors for `shape` from the front of `buf`; returns them and the
    /// unused rest.
    pub fn from_slice(
        shape: &PolicyShape,
        buf: &'a mut [T],
    ) -> Result<(Self, &'a mut [T]), PolicyError> {
        let err = PolicyError::ScratchLength(LenMismatch {
            expected: Self::len_for(shape),
            got: buf.len(),
        });
        let [h1, h2] = shape.hidden;
        let (h1, rest) = buf.split_at_mut_checked(usize::from(h1)).ok_or(err)?;
        let (h2, rest) = rest.split_at_mut_checked(usize::from(h2)).ok_or(err)?;
        let (head, rest) = rest
            .split_at_mut_checked(usize::from(shape.act_dim))
            .ok_or(err)?;
        Ok((Self { h1, h2, head }, rest))
    }

    /// The hidden vectors for `shape` cut from the front of `hidden`, with `head` (at least
    /// `act_dim` scalars) as the head vector; returns them and the unused rest of `hidden`.
    pub fn with_head(
        shape: &PolicyShape,
        hidden: &'a mut [T],
        head: &'a mut [T],
    ) -> Result<(Self, &'a mut [T]), PolicyError> {
        let [h1, h2] = shape.hidden;
        let err = PolicyError::ScratchLength(LenMismatch {
            expected: usize::from(h1) + usize::from(h2),
            got: hidden.len(),
        });
        let (h1, rest) = hidden.split_at_mut_checked(usize::from(h1)).ok_or(err)?;
        let (h2, rest) = rest.split_at_mut_checked(usize::from(h2)).ok_or(err)?;
        Ok((Self { h1, h2, head }, rest))
    }

    /// The vectors cut to the exact sizes of `shape`.
    fn fit(&mut self, shape: &PolicyShape) -> Result<[&mut [T]; 3], PolicyError> {
        let [h1, h2] = shape.hidden;
        Ok([
            front(self.h1, usize::from(h1))?,
            front(self.h2, usize::from(h2))?,
            front(self.head, usize::from(shape.act_dim))?,
        ])
    }
}

fn front<T>(buf: &mut [T], n: usize) -> Result<&mut [T], PolicyError> {
    let got = buf.len();
    buf.get_mut(..n)
        .ok_or(PolicyError::ScratchLength(LenMismatch { expected: n, got }))
}

/// Working memory of [`accumulate_grad_log_prob`]: every layer's activations and deltas.
#[derive(Debug)]
pub struct Scratch<'a, T> {
    /// Forward activations.
    pub act: Layers<'a, T>,
    /// Backward deltas `δ_l = ∂(weight · log π)/∂(pre-activation of layer l)`.
    pub delta: Layers<'a, T>,
}

impl<'a, T> Scratch<'a, T> {
    /// Both [`Layers`], their hidden vectors cut from `hidden` (at least
    /// [`PolicyShape::hidden_scratch_len`] scalars) and their head vectors `head_act`,
    /// `head_delta` (at least `act_dim` scalars each).
    pub fn with_heads(
        shape: &PolicyShape,
        hidden: &'a mut [T],
        head_act: &'a mut [T],
        head_delta: &'a mut [T],
    ) -> Result<Self, PolicyError> {
        let err = PolicyError::ScratchLength(LenMismatch {
            expected: shape.hidden_scratch_len(),
            got: hidden.len(),
        });
        let (act, rest) = Layers::with_head(shape, hidden, head_act).map_err(|_| err)?;
        let (delta, _) = Layers::with_head(shape, rest, head_delta).map_err(|_| err)?;
        Ok(Self { act, delta })
    }

    /// Cuts both [`Layers`] from `buf`, which must hold [`PolicyShape::scratch_len`] scalars.
    pub fn from_slice(shape: &PolicyShape, buf: &'a mut [T]) -> Result<Self, PolicyError> {
        let err = PolicyError::ScratchLength(LenMismatch {
            expected: shape.scratch_len(),
            got: buf.len(),
        });
        let (act, rest) = Layers::from_slice(shape, buf).map_err(|_| err)?;
        let (delta, _) = Layers::from_slice(shape, rest).map_err(|_| err)?;
        Ok(Self { act, delta })
    }
}

/// [`Layers`] storage on the stack, for sizes known at compile time.
#[derive(Clone, Copy, Debug)]
pub struct LayerArrays<T, const H1: usize, const H2: usize, const ACT: usize> {
    h1: [T; H1],
    h2: [T; H2],
    head: [T; ACT],
}

impl<T: Real, const H1: usize, const H2: usize, const ACT: usize> LayerArrays<T, H1, H2, ACT> {
    /// Zeroed storage.
    pub fn new() -> Self {
        Self {
            h1: [T::ZERO; H1],
            h2: [T::ZERO; H2],
            head: [T::ZERO; ACT],
        }
    }

    /// The arrays as [`Layers`].
    pub fn layers(&mut self) -> Layers<'_, T> {
        Layers {
            h1: &mut self.h1,
            h2: &mut self.h2,
            head: &mut self.head,
        }
    }
}

impl<T: Real, const H1: usize, const H2: usize, const ACT: usize> Default
    for LayerArrays<T, H1, H2, ACT>
{
    fn default() -> Self {
        Self::new()
    }
}

/// The body of a const-generic policy's [`Policy`](super::Policy) impl: every method
/// delegates to this module with [`LayerArrays`] of sizes `H1, H2, ACT` on the stack.
macro_rules! delegate_to_net {
    ($h1:expr, $h2:expr, $act:expr) => {
        fn sample<T: $crate::math::Real, S: $crate::policy::ParamSource<T>>(
            &self,
            params: S,
            obs: &[T],
            rng: &mut $crate::rng::Rng,
            action: &mut [T],
        ) -> Result<(), $crate::policy::PolicyError> {
            let mut a = $crate::policy::net::LayerArrays::<T, { $h1 }, { $h2 }, { $act }>::new();
            $crate::policy::net::sample(&Self::SHAPE, params, obs, rng, &mut a.layers(), action)
        }

        fn mode<T: $crate::math::Real, S: $crate::policy::ParamSource<T>>(
            &self,
            params: S,
            obs: &[T],
            action: &mut [T],
        ) -> Result<(), $crate::policy::PolicyError> {
            let mut a = $crate::policy::net::LayerArrays::<T, { $h1 }, { $h2 }, { $act }>::new();
            $crate::policy::net::mode(&Self::SHAPE, params, obs, &mut a.layers(), action)
        }

        fn log_prob<T: $crate::math::Real, S: $crate::policy::ParamSource<T>>(
            &self,
            params: S,
            obs: &[T],
            action: &[T],
        ) -> Result<T, $crate::policy::PolicyError> {
            let mut a = $crate::policy::net::LayerArrays::<T, { $h1 }, { $h2 }, { $act }>::new();
            $crate::policy::net::log_prob(&Self::SHAPE, params, obs, action, &mut a.layers())
        }

        fn accumulate_grad_log_prob<T: $crate::math::Real, S: $crate::policy::ParamSource<T>>(
            &self,
            params: S,
            obs: &[T],
            action: &[T],
            weight: T,
            grad: &mut [T],
        ) -> Result<T, $crate::policy::PolicyError> {
            let mut a = $crate::policy::net::LayerArrays::<T, { $h1 }, { $h2 }, { $act }>::new();
            let mut d = $crate::policy::net::LayerArrays::<T, { $h1 }, { $h2 }, { $act }>::new();
            let mut scratch = $crate::policy::net::Scratch {
                act: a.layers(),
                delta: d.layers(),
            };
            $crate::policy::net::accumulate_grad_log_prob(
                &Self::SHAPE,
                params,
                obs,
                action,
                weight,
                &mut scratch,
                grad,
            )
        }

        fn sample_with<T: $crate::math::Real, S: $crate::policy::ParamSource<T>>(
            &self,
            params: S,
            obs: &[T],
            rng: &mut $crate::rng::Rng,
            hidden: &mut [T],
            action: &mut [T],
        ) -> Result<(), $crate::policy::PolicyError> {
            let mut head = [T::ZERO; { $act }];
            let (mut layers, _) =
                $crate::policy::net::Layers::with_head(&Self::SHAPE, hidden, &mut head)?;
            $crate::policy::net::sample(&Self::SHAPE, params, obs, rng, &mut layers, action)
        }

        fn log_prob_with<T: $crate::math::Real, S: $crate::policy::ParamSource<T>>(
            &self,
            params: S,
            obs: &[T],
            action: &[T],
            hidden: &mut [T],
        ) -> Result<T, $crate::policy::PolicyError> {
            let mut head = [T::ZERO; { $act }];
            let (mut layers, _) =
                $crate::policy::net::Layers::with_head(&Self::SHAPE, hidden, &mut head)?;
            $crate::policy::net::log_prob(&Self::SHAPE, params, obs, action, &mut layers)
        }

        fn accumulate_grad_log_prob_with<
            T: $crate::math::Real,
            S: $crate::policy::ParamSource<T>,
        >(
            &self,
            params: S,
            obs: &[T],
            action: &[T],
            weight: T,
            hidden: &mut [T],
            grad: &mut [T],
        ) -> Result<T, $crate::policy::PolicyError> {
            let (mut head_act, mut head_delta) = ([T::ZERO; { $act }], [T::ZERO; { $act }]);
            let mut scratch = $crate::policy::net::Scratch::with_heads(
                &Self::SHAPE,
                hidden,
                &mut head_act,
                &mut head_delta,
            )?;
            $crate::policy::net::accumulate_grad_log_prob(
                &Self::SHAPE,
                params,
                obs,
                action,
                weight,
                &mut scratch,
                grad,
            )
        }
    };
}
pub(super) use delegate_to_net;

/// The shape of a const-generic policy. Evaluated in a policy's `SHAPE`, so sizes that do
/// not fit `u16` or an invalid shape ([`PolicyShape::is_valid`]) fail the build.
pub(crate) const fn const_shape(
    distribution: Distribution,
    obs: usize,
    hidden: [usize; 2],
    act: usize,
) -> PolicyShape {
    let max = u16::MAX as usize;
    assert!(
        obs <= max && hidden[0] <= max && hidden[1] <= max && act <= max,
        "policy sizes must fit in u16"
    );
    let shape = PolicyShape {
        distribution,
        obs_dim: obs as u16,
        hidden: [hidden[0] as u16, hidden[1] as u16],
        act_dim: act as u16,
    };
    assert!(shape.is_valid(), "invalid policy shape");
    shape
}

/// A dense layer's parameters: `[out][in]` weights, then `[out]` bias.
#[derive(Clone, Copy)]
struct Dense<S> {
    w: S,
    b: S,
}

impl<S> Dense<S> {
    /// `out = f(W·x + b)` element-wise, checking each `W·x + b` is finite before `f` (which
    /// also catches any non-finite weight or bias: it makes its row's sum non-finite). The
    /// bias, the check and `f` share one pass over `out`.
    // Inlined where there is an FPU: no frame of its own above the kernel's (the deepest
    // point of the adaptation's stack); soft-float cores keep one copy (flash).
    #[cfg_attr(not(all(target_arch = "arm", target_abi = "eabi")), inline(always))]
    fn forward<T: Real>(self, x: &[T], out: &mut [T], f: impl Fn(T) -> T) -> Result<(), PolicyError>
    where
        S: ParamSource<T>,
    {
        let finite = if super::dense::HARD_FLOAT {
            self.w.affine_map(self.b, x, out, f)
        } else {
            // One copy of the layer code whatever `f` (flash counts more than time here).
            self.w.affine(self.b, x, out);
            let finite = out.iter().all(|o| o.is_finite());
            out.iter_mut().for_each(|o| *o = f(*o));
            finite
        };
        if finite {
            Ok(())
        } else {
            Err(PolicyError::NonFiniteOutput)
        }
    }

    /// `out = tanh(W·x + b)` (a hidden layer), checked as in [`forward`](Self::forward).
    #[inline(always)]
    fn forward_tanh<T: Real>(self, x: &[T], out: &mut [T]) -> Result<(), PolicyError>
    where
        S: ParamSource<T>,
    {
        if super::dense::HARD_FLOAT {
            // In the layer's pass over its outputs.
            self.forward(x, out, T::tanh)
        } else {
            // Soft-float cores keep one copy of the layer code (flash counts more there).
            self.forward(x, out, super::dense::same)?;
            out.iter_mut().for_each(|a| *a = a.tanh());
            Ok(())
        }
    }

    /// `d_in = (Wᵀ d_out) ⊙ (1 − a_in²)`, where `a_in` (this layer's input) is a tanh
    /// layer's output; with an FPU, true when every `d_in` is finite (soft-float cores
    /// leave that to the caller and return true). Reads `W` row by row, as it is stored.
    fn backprop<T: Real>(self, d_out: &[T], a_in: &[T], d_in: &mut [T]) -> bool
    where
        S: ParamSource<T>,
    {
        if super::dense::HARD_FLOAT {
            self.w
                .transposed_map(d_out, a_in, d_in, |s, a| s * (T::ONE - a * a))
        } else {
            d_in.fill(T::ZERO);
            self.w.add_transposed(d_out, d_in);
            for (di, &a) in d_in.iter_mut().zip(a_in) {
                *di *= T::ONE - a * a;
            }
            // Checked by the caller, with the increments.
            true
        }
    }
}

/// The parameter vector cut into its layers.
struct Net<S> {
    l1: Option<Dense<S>>,
    l2: Option<Dense<S>>,
    head: Dense<S>,
    /// Gaussian log standard deviations (empty for softmax).
    log_std: S,
}

impl<S> Net<S> {
    /// Checks `shape` and the parameter count, and cuts `params` into layers.
    fn split<T: Real>(shape: &PolicyShape, params: S) -> Result<Self, PolicyError>
    where
        S: ParamSource<T>,
    {
        if !shape.is_valid() {
            return Err(PolicyError::InvalidShape);
        }
        let err = PolicyError::ParamLength(LenMismatch {
            expected: shape.n_params(),
            got: params.len(),
        });
        if params.len() != shape.n_params() {
            return Err(err);
        }
        let obs = usize::from(shape.obs_dim);
        let [h1, h2] = shape.hidden.map(usize::from);
        let act = usize::from(shape.act_dim);
        let mut rest = params;
        let mut take = |n_in: usize, n_out: usize| -> Result<Dense<S>, PolicyError> {
            let (w, r) = rest
                .split_at(n_in.checked_mul(n_out).ok_or(err)?)
                .ok_or(err)?;
            let (b, r) = r.split_at(n_out).ok_or(err)?;
            rest = r;
            Ok(Dense { w, b })
        };
        let l1 = if h1 > 0 { Some(take(obs, h1)?) } else { None };
        let l2 = if h2 > 0 { Some(take(h1, h2)?) } else { None };
        let head = take(shape.head_input(), act)?;
        Ok(Self {
            l1,
            l2,
            head,
            log_std: rest,
        })
    }

    /// Fills the hidden activations `a1`, `a2` and the head output `z` (logits or mean).
    fn forward<T: Real>(
        &self,
        obs: &[T],
        a1: &mut [T],
        a2: &mut [T],
        z: &mut [T],
    ) -> Result<(), PolicyError>
    where
        S: ParamSource<T>,
    {
        if let Some(l1) = self.l1 {
            l1.forward_tanh(obs, a1)?;
        }
        if let Some(l2) = self.l2 {
            l2.forward_tanh(a1, a2)?;
        }
        self.head
            .forward(head_input(obs, a1, a2), z, super::dense::same)
    }
}

/// The vector feeding the head: the last hidden layer present, else the observation.
/// Relies on `a1`, `a2` having been cut to the shape's sizes (empty when absent).
fn head_input<'b, T>(obs: &'b [T], a1: &'b [T], a2: &'b [T]) -> &'b [T] {
    if !a2.is_empty() {
        a2
    } else if !a1.is_empty() {
        a1
    } else {
        obs
    }
}

/// A validated action.
#[derive(Clone, Copy)]
enum Action<'a, T> {
    /// Softmax: the chosen index, in `0..act_dim`.
    Index(usize),
    /// Gaussian: the raw sample `u`, `act_dim` finite scalars.
    Real(&'a [T]),
}

fn check_len(
    got: usize,
    expected: usize,
    err: fn(LenMismatch) -> PolicyError,
) -> Result<(), PolicyError> {
    if got == expected {
        Ok(())
    } else {
        Err(err(LenMismatch { expected, got }))
    }
}

fn check_finite<T: Real>(xs: &[T]) -> Result<(), PolicyError> {
    if xs.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(PolicyError::NonFiniteInput)
    }
}

/// Checks the action's length, then its value (finite; for softmax an integer index).
fn parse_action<'a, T: Real>(
    shape: &PolicyShape,
    action: &'a [T],
) -> Result<Action<'a, T>, PolicyError> {
    check_len(
        action.len(),
        shape.action_width(),
        PolicyError::ActionLength,
    )?;
    check_finite(action)?;
    match shape.distribution {
        Distribution::Gaussian => Ok(Action::Real(action)),
        Distribution::Softmax => {
            let v = action.first().map_or(-1.0, |a| a.to_f64());
            // Saturating cast; the round trip fails for fractions and negatives.
            let k = v as usize;
            if k as f64 == v && k < usize::from(shape.act_dim) {
                Ok(Action::Index(k))
            } else {
                Err(PolicyError::ActionOutOfRange)
            }
        }
    }
}

/// Replaces logits `z` by probabilities and returns `(max z, ln Σ exp(z − max z))`.
/// Subtracting the max first keeps every `exp` in `(0, 1]`: no overflow for any finite
/// logits, and the sum is at least 1.
fn softmax_in_place<T: Real>(z: &mut [T]) -> (T, T) {
    let m = z
        .iter()
        .copied()
        .fold(z.first().copied().unwrap_or(T::ZERO), Real::max);
    let mut sum = T::ZERO;
    for zi in z.iter_mut() {
        *zi = (*zi - m).exp();
        sum += *zi;
    }
    for zi in z.iter_mut() {
        *zi = *zi / sum;
    }
    (m, sum.ln())
}

/// Turns the head output `z` into what the gradient needs — probabilities (softmax) or
/// residuals `r = (u − μ)/σ` (Gaussian) — and returns `log π(action)`.
/// For a Gaussian, `sigma` (when as long as `z`) receives `σ_j` for reuse.
fn head_log_prob<T: Real, S: ParamSource<T>>(
    log_std: S,
    action: Action<'_, T>,
    z: &mut [T],
    sigma: &mut [T],
) -> Result<T, PolicyError> {
    let lp = match action {
        Action::Index(k) => {
            let zk = z.get(k).copied().unwrap_or(T::ZERO);
            let (m, ln_sum) = softmax_in_place(z);
            zk - m - ln_sum
        }
        Action::Real(u) => {
            let half = T::from_f32(0.5);
            let ln_sqrt_2pi = T::from_f64(LN_SQRT_2PI);
            let mut lp = T::ZERO;
            let mut sigma = sigma.iter_mut();
            for ((zj, &uj), ls) in z.iter_mut().zip(u).zip(log_std.values()) {
                let s = ls.exp();
                let r = (uj - *zj) / s;
                *zj = r;
                lp += -(half * r * r) - ls - ln_sqrt_2pi;
                if let Some(out) = sigma.next() {
                    *out = s;
                }
            }
            lp
        }
    };
    if lp.is_finite() {
        Ok(lp)
    } else {
        Err(PolicyError::NonFiniteOutput)
    }
}

/// Runs the network: on return `layers.head` holds the logits (softmax) or the mean
/// (Gaussian) for `obs`.
pub fn forward<T: Real, S: ParamSource<T>>(
    shape: &PolicyShape,
    params: S,
    obs: &[T],
    layers: &mut Layers<'_, T>,
) -> Result<(), PolicyError> {
    let net = Net::split(shape, params)?;
    let [a1, a2, z] = layers.fit(shape)?;
    check_len(
        obs.len(),
        usize::from(shape.obs_dim),
        PolicyError::ObsLength,
    )?;
    check_finite(obs)?;
    net.forward(obs, a1, a2, z)
}

/// `log π(action | obs; θ)`. On return `layers.head` holds the probabilities (softmax) or
/// the residuals `(u − μ)/σ` (Gaussian).
pub fn log_prob<T: Real, S: ParamSource<T>>(
    shape: &PolicyShape,
    params: S,
    obs: &[T],
    action: &[T],
    layers: &mut Layers<'_, T>,
) -> Result<T, PolicyError> {
    let net = Net::split(shape, params)?;
    let [a1, a2, z] = layers.fit(shape)?;
    check_len(
        obs.len(),
        usize::from(shape.obs_dim),
        PolicyError::ObsLength,
    )?;
    let action = parse_action(shape, action)?;
    check_finite(obs)?;
    net.forward(obs, a1, a2, z)?;
    head_log_prob(net.log_std, action, z, &mut [])
}

/// Draws `action ~ π(·|obs; θ)` (`action_width` scalars): for softmax one
/// [`Rng::categorical`] draw over the probabilities as `f32`, written as the index; for a
/// Gaussian `u_j = μ_j + σ_j ε_j` with one [`Rng::normal`] per component, in order. On
/// error `action` is unchanged; on return `layers.head` holds the probabilities or `u`.
pub fn sample<T: Real, S: ParamSource<T>>(
    shape: &PolicyShape,
    params: S,
    obs: &[T],
    rng: &mut Rng,
    layers: &mut Layers<'_, T>,
    action: &mut [T],
) -> Result<(), PolicyError> {
    let net = Net::split(shape, params)?;
    let [a1, a2, z] = layers.fit(shape)?;
    check_len(
        obs.len(),
        usize::from(shape.obs_dim),
        PolicyError::ObsLength,
    )?;
    check_len(
        action.len(),
        shape.action_width(),
        PolicyError::ActionLength,
    )?;
    check_finite(obs)?;
    net.forward(obs, a1, a2, z)?;
    match shape.distribution {
        Distribution::Softmax => {
            softmax_in_place(z);
            let k = rng
                .categorical(z.iter().map(|p| p.to_f32()))
                .ok_or(PolicyError::NonFiniteOutput)?;
            action.fill(T::from_f32(k as f32));
        }
        Distribution::Gaussian => {
            for (zj, ls) in z.iter_mut().zip(net.log_std.values()) {
                *zj += ls.exp() * T::from_f32(rng.normal());
            }
            if !z.iter().all(|u| u.is_finite()) {
                return Err(PolicyError::NonFiniteOutput);
            }
            // Element-wise: the lengths are equal (checked above), and unlike
            // `copy_from_slice` this has no length-mismatch panic path.
            for (a, &u) in action.iter_mut().zip(z.iter()) {
                *a = u;
            }
        }
    }
    Ok(())
}

/// The most likely action: the first index of the largest logit (softmax) or the mean
/// (Gaussian). On return `layers.head` holds the logits or the mean.
pub fn mode<T: Real, S: ParamSource<T>>(
    shape: &PolicyShape,
    params: S,
    obs: &[T],
    layers: &mut Layers<'_, T>,
    action: &mut [T],
) -> Result<(), PolicyError> {
    check_len(
        action.len(),
        shape.action_width(),
        PolicyError::ActionLength,
    )?;
    forward(shape, params, obs, layers)?;
    let z = &*layers.head;
    match shape.distribution {
        Distribution::Softmax => {
            let mut best = 0;
            for (k, zk) in z.iter().enumerate() {
                if z.get(best).is_some_and(|zb| zk > zb) {
                    best = k;
                }
            }
            action.fill(T::from_f32(best as f32));
        }
        Distribution::Gaussian => {
            for (a, &mu) in action.iter_mut().zip(z) {
                *a = mu;
            }
        }
    }
    Ok(())
}

/// Adds `weight · ∇_θ log π(action | obs; θ)` to `grad` (`n_params` scalars, same layout
/// as the parameters) and returns `log π(action | obs; θ)`.
///
/// Every buffer and input is checked, and every increment is computed into `scratch` and
/// checked finite, before `grad` is touched: on error `grad` is unchanged. (Adding a finite
/// increment can still overflow an entry of `grad` that is already near the float limit.)
/// On return `scratch.act.head` holds the probabilities or residuals, `scratch.delta` the
/// deltas `δ_l`.
pub fn accumulate_grad_log_prob<T: Real, S: ParamSource<T>>(
    shape: &PolicyShape,
    params: S,
    obs: &[T],
    action: &[T],
    weight: T,
    scratch: &mut Scratch<'_, T>,
    grad: &mut [T],
) -> Result<T, PolicyError> {
    let net = Net::split(shape, params)?;
    check_len(grad.len(), shape.n_params(), PolicyError::GradLength)?;
    let [a1, a2, z] = scratch.act.fit(shape)?;
    let [d1, d2, dz] = scratch.delta.fit(shape)?;
    check_len(
        obs.len(),
        usize::from(shape.obs_dim),
        PolicyError::ObsLength,
    )?;
    let action = parse_action(shape, action)?;
    check_finite(obs)?;
    if !weight.is_finite() {
        return Err(PolicyError::NonFiniteInput);
    }

    net.forward(obs, a1, a2, z)?;
    // `dz` holds the σ_j in between.
    let lp = head_log_prob(net.log_std, action, z, dz)?;

    // δ_head = weight · ∂ log π / ∂z.
    match action {
        Action::Index(k) => {
            for (j, (d, &p)) in dz.iter_mut().zip(z.iter()).enumerate() {
                let onehot = if j == k { T::ONE } else { T::ZERO };
                *d = weight * (onehot - p);
            }
        }
        Action::Real(_) => {
            for (d, &r) in dz.iter_mut().zip(z.iter()) {
                *d = weight * (r / *d);
            }
        }
    }
    let (a1, a2) = (&*a1, &*a2);
    // With an FPU every hidden delta is checked finite as it is formed.
    let hidden_deltas_finite = if let Some(l2) = net.l2 {
        net.head.backprop(dz, a2, d2) && l2.backprop(d2, a1, d1)
    } else if net.l1.is_some() {
        net.head.backprop(dz, a1, d1)
    } else {
        true
    };

    // Each increment is δ_o·x_i or δ_o. A hidden layer's output is a tanh, |a| ≤ 1, so
    // its products are finite when the deltas are (checked with no `x`); the observation
    // is checked by size. Soft-float cores check the hidden deltas here, all with one
    // out-of-line function (a smaller frame under the gradient).
    let x_head = head_input(obs, a1, a2);
    let x_head_by_size = if net.l1.is_some() { &[] } else { x_head };
    let log_std_increments_finite = match action {
        Action::Index(_) => true,
        Action::Real(_) => z.iter().all(|&r| (weight * (r * r - T::ONE)).is_finite()),
    };
    let deltas_finite = if super::dense::HARD_FLOAT {
        hidden_deltas_finite && increments_finite(dz, x_head_by_size)
    } else {
        increments_finite(d2, a1) && increments_finite(dz, x_head)
    };
    if !(deltas_finite && increments_finite(d1, obs) && log_std_increments_finite) {
        return Err(PolicyError::NonFiniteOutput);
    }

    // Cut `grad` into the layers' weight and bias blocks (absent layers are empty).
    let (g1w, rest) = cut(grad, d1.len() * obs.len())?;
    let (g1b, rest) = cut(rest, d1.len())?;
    let (g2w, rest) = cut(rest, d2.len() * a1.len())?;
    let (g2b, rest) = cut(rest, d2.len())?;
    let (ghw, rest) = cut(rest, dz.len() * x_head.len())?;
    let (ghb, g_log_std) = cut(rest, dz.len())?;
    add_dense_grad(g1w, g1b, d1, obs);
    add_dense_grad(g2w, g2b, d2, a1);
    add_dense_grad(ghw, ghb, dz, x_head);
    if let Action::Real(_) = action {
        for (gj, &r) in g_log_std.iter_mut().zip(z.iter()) {
            *gj += weight * (r * r - T::ONE);
        }
    }
    Ok(lp)
}

/// The first `n` scalars of `g` and the rest (`n ≤ g.len()` whenever `g` holds `P`).
fn cut<T>(g: &mut [T], n: usize) -> Result<(&mut [T], &mut [T]), PolicyError> {
    let got = g.len();
    g.split_at_mut_checked(n)
        .ok_or(PolicyError::GradLength(LenMismatch { expected: n, got }))
}

fn abs<T: Real>(x: T) -> T {
    if x < T::ZERO { -x } else { x }
}

/// True when every `δ_o` and every product `δ_o·x_i` is finite: with `s = max_i |x_i|`,
/// that is every `δ_o` and every `δ_o·s` (the largest product of each row in size). With
/// no `x`, true when every `δ_o` is finite.
fn increments_finite<T: Real>(delta: &[T], x: &[T]) -> bool {
    let s = x.iter().fold(T::ZERO, |m, &e| m.max(abs(e)));
    let mut check = super::dense::Finite::new();
    for &d in delta {
        check.see(d);
        check.see(d * s);
    }
    check.ok()
}

/// Adds one dense layer's gradient: `δ xᵀ` to its weights `gw` (row-major), `δ` to its
/// bias `gb`.
fn add_dense_grad<T: Real>(gw: &mut [T], gb: &mut [T], delta: &[T], x: &[T]) {
    super::dense::add_outer(gw, delta, x);
    for (gi, &d) in gb.iter_mut().zip(delta) {
        *gi += d;
    }
}

/// Property checks shared by the tests of every policy type.
#[cfg(test)]
pub(crate) mod check {
    /// The checks every policy family runs, as one `#[test]` each over the listed types:
    /// reference log-probabilities, gradients and Hessian-vector products against finite
    /// differences, exact parameter counts, bit-identical parameter sources, runtime-shaped
    /// against const-generic code, and errors that leave the gradient untouched.
    macro_rules! standard_policy_tests {
        ($($t:ty),+) => {
            #[test]
            fn log_prob_matches_reference() {
                $(check::log_prob_matches_reference::<$t>();)+
            }
            #[test]
            fn gradient_matches_finite_differences() {
                $(check::gradient_matches_finite_differences::<$t>();)+
            }
            #[test]
            fn hvp_matches_finite_differences() {
                $(check::hvp_matches_finite_differences::<$t>();)+
            }
            #[test]
            fn n_params_is_exactly_consumed() {
                $(check::n_params_is_exactly_consumed::<$t>();)+
            }
            #[test]
            fn f32_slice_and_le_bytes_are_bit_identical() {
                $(check::f32_sources_are_bit_identical::<$t>();)+
            }
            #[test]
            fn hidden_scratch_gives_the_same_bits() {
                $(check::hidden_scratch_gives_the_same_bits::<$t>();)+
            }
            #[test]
            fn runtime_shape_matches_const_type() {
                $(check::runtime_shape_matches_const_type::<$t>();)+
            }
            #[test]
            fn errors_leave_grad_untouched() {
                $(check::errors_leave_grad_untouched::<$t>();)+
            }
        };
    }
    pub(crate) use standard_policy_tests;

    extern crate std;

    use super::*;
    use crate::dual::Dual;
    use crate::policy::{LeF32s, Policy};
    use std::vec;
    use std::vec::Vec;

    pub fn normals(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| scale * f64::from(rng.normal())).collect()
    }

    /// `|a − b| ≤ tol · max(1, |b|)`.
    pub fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    /// A random evaluation point: parameters, observation and a valid action.
    pub struct Point {
        pub params: Vec<f64>,
        pub obs: Vec<f64>,
        pub action: Vec<f64>,
    }

    pub fn point<P: Policy>(seed: u64) -> Point {
        let mut rng = Rng::new(seed);
        let params = normals(&mut rng, P::N_PARAMS, 0.7);
        let obs = normals(&mut rng, P::OBS_DIM, 1.0);
        let action = match P::SHAPE.distribution {
            Distribution::Softmax => {
                vec![f64::from(rng.next_u32() % u32::from(P::SHAPE.act_dim))]
            }
            Distribution::Gaussian => normals(&mut rng, P::ACTION_WIDTH, 1.0),
        };
        Point {
            params,
            obs,
            action,
        }
    }

    /// Head output (logits or mean) by plain indexing into the documented layout, and the
    /// number of parameters read so far.
    pub fn reference_head(shape: &PolicyShape, params: &[f64], obs: &[f64]) -> (Vec<f64>, usize) {
        let mut x = obs.to_vec();
        let mut off = 0;
        let hidden = shape.hidden.iter().filter(|&&h| h > 0).map(|&h| (h, true));
        for (n_out, is_hidden) in hidden.chain([(shape.act_dim, false)]) {
            let (n_in, n_out) = (x.len(), usize::from(n_out));
            let y = (0..n_out)
                .map(|o| {
                    let wx: f64 = (0..n_in).map(|i| params[off + o * n_in + i] * x[i]).sum();
                    let s = wx + params[off + n_out * n_in + o];
                    if is_hidden { libm::tanh(s) } else { s }
                })
                .collect();
            off += n_out * n_in + n_out;
            x = y;
        }
        (x, off)
    }

    /// `log π` straight from the textbook formulas, without any stabilisation.
    pub fn reference_log_prob(
        shape: &PolicyShape,
        params: &[f64],
        obs: &[f64],
        action: &[f64],
    ) -> f64 {
        let (z, off) = reference_head(shape, params, obs);
        match shape.distribution {
            Distribution::Softmax => {
                assert_eq!(off, params.len());
                let k = action[0] as usize;
                let sum: f64 = z.iter().map(|&v| libm::exp(v)).sum();
                libm::log(libm::exp(z[k]) / sum)
            }
            Distribution::Gaussian => {
                let log_std = &params[off..];
                assert_eq!(log_std.len(), z.len());
                let two_pi = 2.0 * core::f64::consts::PI;
                (0..z.len())
                    .map(|j| {
                        let s = libm::exp(log_std[j]);
                        let e = action[j] - z[j];
                        -e * e / (2.0 * s * s) - libm::log(s) - 0.5 * libm::log(two_pi)
                    })
                    .sum()
            }
        }
    }

    pub fn log_prob_matches_reference<P: Policy + Default>() {
        let p = P::default();
        for seed in 0..8 {
            let pt = point::<P>(seed);
            let got = p.log_prob(&pt.params[..], &pt.obs, &pt.action).unwrap();
            let want = reference_log_prob(&P::SHAPE, &pt.params, &pt.obs, &pt.action);
            assert!(close(got, want, 1e-12), "{got} vs {want}");
        }
    }

    fn grad_at<P: Policy + Default>(pt: &Point, params: &[f64], weight: f64) -> Vec<f64> {
        let mut g = vec![0.0; P::N_PARAMS];
        P::default()
            .accumulate_grad_log_prob(params, &pt.obs, &pt.action, weight, &mut g)
            .unwrap();
        g
    }

    /// `grad += w·∇log π` against central differences of `log π`, starting from a
    /// non-zero `grad` so that accumulation (not overwriting) is checked too.
    pub fn gradient_matches_finite_differences<P: Policy + Default>() {
        let p = P::default();
        let (w, h) = (0.7, 1e-5);
        for seed in 0..4 {
            let pt = point::<P>(seed);
            let init = normals(&mut Rng::new(100 + seed), P::N_PARAMS, 1.0);
            let mut grad = init.clone();
            let lp = p
                .accumulate_grad_log_prob(&pt.params[..], &pt.obs, &pt.action, w, &mut grad)
                .unwrap();
            assert_eq!(lp, p.log_prob(&pt.params[..], &pt.obs, &pt.action).unwrap());
            let mut th = pt.params.clone();
            for i in 0..P::N_PARAMS {
                th[i] = pt.params[i] + h;
                let up = p.log_prob(&th[..], &pt.obs, &pt.action).unwrap();
                th[i] = pt.params[i] - h;
                let down = p.log_prob(&th[..], &pt.obs, &pt.action).unwrap();
                th[i] = pt.params[i];
                let want = init[i] + w * (up - down) / (2.0 * h);
                assert!(
                    close(grad[i], want, 1e-6),
                    "param {i}: {} vs {want}",
                    grad[i]
                );
            }
        }
    }

    /// The trait's dual-number Hessian-vector product against central differences of the
    /// gradient along the direction.
    pub fn hvp_matches_finite_differences<P: Policy + Default>() {
        let p = P::default();
        let (w, h) = (-1.3, 1e-5);
        for seed in 0..4 {
            let pt = point::<P>(seed);
            let mut rng = Rng::new(200 + seed);
            let v = normals(&mut rng, P::N_PARAMS, 1.0);
            let init = normals(&mut rng, P::N_PARAMS, 1.0);
            let mut out = init.clone();
            let mut scratch = vec![Dual::ZERO; P::N_PARAMS];
            p.accumulate_hvp_log_prob(
                &pt.params,
                &v,
                &pt.obs,
                &pt.action,
                w,
                &mut scratch,
                &mut out,
            )
            .unwrap();
            let shifted = |s: f64| -> Vec<f64> {
                let th: Vec<f64> = pt.params.iter().zip(&v).map(|(t, d)| t + s * d).collect();
                grad_at::<P>(&pt, &th, w)
            };
            let (up, down) = (shifted(h), shifted(-h));
            for i in 0..P::N_PARAMS {
                let want = init[i] + (up[i] - down[i]) / (2.0 * h);
                assert!(close(out[i], want, 1e-6), "param {i}: {} vs {want}", out[i]);
            }
        }
    }

    /// `SHAPE.n_params()` is exactly what the code reads: one scalar fewer or more is an
    /// error, and every scalar has a non-zero gradient at a generic point.
    pub fn n_params_is_exactly_consumed<P: Policy + Default>() {
        let p = P::default();
        let pt = point::<P>(3);
        let n = P::N_PARAMS;
        for len in [n - 1, n + 1] {
            let params: Vec<f64> = (0..len)
                .map(|i| pt.params.get(i).copied().unwrap_or(0.1))
                .collect();
            let err = PolicyError::ParamLength(LenMismatch {
                expected: n,
                got: len,
            });
            assert_eq!(p.log_prob(&params[..], &pt.obs, &pt.action), Err(err));
        }
        let g = grad_at::<P>(&pt, &pt.params, 1.0);
        assert!(g.iter().all(|&gi| gi != 0.0), "unused parameter: {g:?}");
    }

    fn f32s(v: &[f64]) -> Vec<f32> {
        v.iter().map(|&x| x as f32).collect()
    }

    /// `&[f32]`, unaligned little-endian bytes (read bytewise) and word-aligned ones (read
    /// with the unrolled word loops) give bit-identical results everywhere.
    pub fn f32_sources_are_bit_identical<P: Policy + Default>() {
        for seed in 0..3 {
            f32_sources_agree::<P>(seed, false);
            f32_sources_agree::<P>(seed, true);
        }
    }

    fn f32_sources_agree<P: Policy + Default>(seed: u64, aligned: bool) {
        let p = P::default();
        let bits = |v: &[f32]| -> Vec<u32> { v.iter().map(|x| x.to_bits()).collect() };
        let pt = point::<P>(seed);
        let (params, obs, action) = (f32s(&pt.params), f32s(&pt.obs), f32s(&pt.action));
        // Words: 4-aligned; one extra so that an offset of 1 byte is misaligned.
        let mut words = vec![0u32; params.len() + 1];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        let off = if aligned { 0 } else { 1 };
        let bytes = &mut bytes[off..off + 4 * params.len()];
        for (b, x) in bytes.chunks_exact_mut(4).zip(&params) {
            b.copy_from_slice(&x.to_le_bytes());
        }
        let le = LeF32s::new(bytes).unwrap();
        assert_eq!(le.is_word_aligned(), aligned);
        let slice = &params[..];

        let lp_s = p.log_prob(slice, &obs, &action).unwrap();
        let lp_b = p.log_prob(le, &obs, &action).unwrap();
        assert_eq!(lp_s.to_bits(), lp_b.to_bits());

        let init = f32s(&normals(&mut Rng::new(seed), P::N_PARAMS, 1.0));
        let (mut g_s, mut g_b) = (init.clone(), init);
        let r_s = p
            .accumulate_grad_log_prob(slice, &obs, &action, 0.3, &mut g_s)
            .unwrap();
        let r_b = p
            .accumulate_grad_log_prob(le, &obs, &action, 0.3, &mut g_b)
            .unwrap();
        assert_eq!((r_s.to_bits(), bits(&g_s)), (r_b.to_bits(), bits(&g_b)));

        let (mut rng_s, mut rng_b) = (Rng::new(seed), Rng::new(seed));
        let mut a_s = vec![0.0f32; P::ACTION_WIDTH];
        let mut a_b = a_s.clone();
        for _ in 0..5 {
            p.sample(slice, &obs, &mut rng_s, &mut a_s).unwrap();
            p.sample(le, &obs, &mut rng_b, &mut a_b).unwrap();
            assert_eq!(bits(&a_s), bits(&a_b));
        }
        assert_eq!(rng_s, rng_b);

        p.mode(slice, &obs, &mut a_s).unwrap();
        p.mode(le, &obs, &mut a_b).unwrap();
        assert_eq!(bits(&a_s), bits(&a_b));
    }

    /// The `*_with` methods, whatever the hidden scratch held before (NaN here), give the
    /// same bits as the stack versions; a hidden scratch one scalar short is an error that
    /// leaves the gradient untouched.
    pub fn hidden_scratch_gives_the_same_bits<P: Policy + Default>() {
        let p = P::default();
        let bits = |v: &[f32]| -> Vec<u32> { v.iter().map(|x| x.to_bits()).collect() };
        let n = P::SHAPE.hidden_scratch_len();
        for seed in 0..3 {
            let pt = point::<P>(seed);
            let (params, obs, action) = (f32s(&pt.params), f32s(&pt.obs), f32s(&pt.action));
            let params = &params[..];
            let mut hidden = vec![f32::NAN; n];

            let lp = p.log_prob(params, &obs, &action).unwrap();
            let lp_with = p.log_prob_with(params, &obs, &action, &mut hidden).unwrap();
            assert_eq!(lp.to_bits(), lp_with.to_bits());

            hidden.fill(f32::NAN);
            let init = f32s(&normals(&mut Rng::new(seed), P::N_PARAMS, 1.0));
            let (mut g, mut g_with) = (init.clone(), init.clone());
            let r = p
                .accumulate_grad_log_prob(params, &obs, &action, 0.3, &mut g)
                .unwrap();
            let r_with = p
                .accumulate_grad_log_prob_with(params, &obs, &action, 0.3, &mut hidden, &mut g_with)
                .unwrap();
            assert_eq!((r.to_bits(), bits(&g)), (r_with.to_bits(), bits(&g_with)));

            let (mut rng, mut rng_with) = (Rng::new(seed), Rng::new(seed));
            let mut a = vec![0.0f32; P::ACTION_WIDTH];
            let mut a_with = a.clone();
            for _ in 0..5 {
                hidden.fill(f32::NAN);
                p.sample(params, &obs, &mut rng, &mut a).unwrap();
                p.sample_with(params, &obs, &mut rng_with, &mut hidden, &mut a_with)
                    .unwrap();
                assert_eq!(bits(&a), bits(&a_with));
            }
            assert_eq!(rng, rng_with);

            if n > 0 {
                let mut short = vec![0.0f32; n - 1];
                let mut g_short = init.clone();
                let e = p.accumulate_grad_log_prob_with(
                    params,
                    &obs,
                    &action,
                    0.3,
                    &mut short,
                    &mut g_short,
                );
                assert!(matches!(e, Err(PolicyError::ScratchLength(_))), "{e:?}");
                assert_eq!(bits(&g_short), bits(&init));
                let mut half_short = vec![0.0f32; n / 2 - 1];
                let e = p.log_prob_with(params, &obs, &action, &mut half_short);
                assert!(matches!(e, Err(PolicyError::ScratchLength(_))), "{e:?}");
            }
        }
    }

    /// The runtime-shaped functions with `Vec` scratch of exactly `scratch_len()` give the
    /// same bits as the const-generic type, and one scalar less is an error.
    pub fn runtime_shape_matches_const_type<P: Policy + Default>() {
        let p = P::default();
        let shape = P::SHAPE;
        let pt = point::<P>(11);
        let (params, obs, action) = (f32s(&pt.params), f32s(&pt.obs), f32s(&pt.action));
        let mut buf = vec![f32::NAN; shape.scratch_len()];
        let mut scratch = Scratch::from_slice(&shape, &mut buf).unwrap();

        let mut g_rt = vec![0.0f32; P::N_PARAMS];
        let mut g_ct = g_rt.clone();
        let lp_rt = accumulate_grad_log_prob(
            &shape,
            &params[..],
            &obs,
            &action,
            1.0,
            &mut scratch,
            &mut g_rt,
        )
        .unwrap();
        let lp_ct = p
            .accumulate_grad_log_prob(&params[..], &obs, &action, 1.0, &mut g_ct)
            .unwrap();
        assert_eq!(lp_rt.to_bits(), lp_ct.to_bits());
        assert!(
            g_rt.iter()
                .zip(&g_ct)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );

        let lp = log_prob(&shape, &params[..], &obs, &action, &mut scratch.act).unwrap();
        assert_eq!(lp.to_bits(), lp_ct.to_bits());

        let (mut a_rt, mut a_ct) = (vec![0.0f32; P::ACTION_WIDTH], vec![0.0f32; P::ACTION_WIDTH]);
        sample(
            &shape,
            &params[..],
            &obs,
            &mut Rng::new(4),
            &mut scratch.act,
            &mut a_rt,
        )
        .unwrap();
        p.sample(&params[..], &obs, &mut Rng::new(4), &mut a_ct)
            .unwrap();
        assert_eq!(a_rt, a_ct);
        mode(&shape, &params[..], &obs, &mut scratch.act, &mut a_rt).unwrap();
        p.mode(&params[..], &obs, &mut a_ct).unwrap();
        assert_eq!(a_rt, a_ct);

        let mut short = vec![0.0f32; shape.scratch_len() - 1];
        let err = PolicyError::ScratchLength(LenMismatch {
            expected: shape.scratch_len(),
            got: shape.scratch_len() - 1,
        });
        assert_eq!(Scratch::from_slice(&shape, &mut short).err(), Some(err));
    }

    /// Calls `accumulate_grad_log_prob` on a sentinel gradient of `grad_len` scalars and
    /// checks it fails with `want` and leaves the gradient bit-for-bit unchanged.
    pub fn expect_error<P: Policy + Default>(
        params: &[f64],
        obs: &[f64],
        action: &[f64],
        weight: f64,
        grad_len: usize,
        want: PolicyError,
    ) {
        let init = normals(&mut Rng::new(77), grad_len, 1.0);
        let mut grad = init.clone();
        let got = P::default().accumulate_grad_log_prob(params, obs, action, weight, &mut grad);
        assert_eq!(got, Err(want));
        assert!(
            grad.iter()
                .zip(&init)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
    }

    /// Every error path common to all policies, through `accumulate_grad_log_prob` (grad
    /// untouched), `log_prob` and the trait's Hessian-vector product (output untouched).
    pub fn errors_leave_grad_untouched<P: Policy + Default>() {
        let p = P::default();
        let pt = point::<P>(5);
        let (n, n_obs, n_act) = (P::N_PARAMS, P::OBS_DIM, P::ACTION_WIDTH);
        let len = |expected, got| LenMismatch { expected, got };
        let resized = |v: &[f64], m: usize| -> Vec<f64> {
            (0..m).map(|i| v.get(i).copied().unwrap_or(0.5)).collect()
        };
        let with = |v: &[f64], i: usize, x: f64| -> Vec<f64> {
            let mut v = v.to_vec();
            v[i] = x;
            v
        };
        let (th, obs, act) = (&pt.params[..], &pt.obs[..], &pt.action[..]);
        let good = |params: &[f64], obs: &[f64], action: &[f64], want| {
            expect_error::<P>(params, obs, action, 1.0, n, want);
            assert_eq!(p.log_prob(params, obs, action), Err(want));
        };

        for m in [n - 1, n + 1] {
            good(
                &resized(th, m),
                obs,
                act,
                PolicyError::ParamLength(len(n, m)),
            );
        }
        for m in [n_obs - 1, n_obs + 1] {
            good(
                th,
                &resized(obs, m),
                act,
                PolicyError::ObsLength(len(n_obs, m)),
            );
        }
        for m in [n_act - 1, n_act + 1] {
            good(
                th,
                obs,
                &resized(act, m),
                PolicyError::ActionLength(len(n_act, m)),
            );
        }
        for x in [f64::NAN, f64::INFINITY] {
            good(
                th,
                &with(obs, n_obs - 1, x),
                act,
                PolicyError::NonFiniteInput,
            );
            good(th, obs, &with(act, 0, -x), PolicyError::NonFiniteInput);
            expect_error::<P>(th, obs, act, x, n, PolicyError::NonFiniteInput);
            // First weight of the first layer, and the last parameter (a bias or log-std).
            good(&with(th, 0, x), obs, act, PolicyError::NonFiniteOutput);
            good(&with(th, n - 1, x), obs, act, PolicyError::NonFiniteOutput);
        }
        for m in [n - 1, n + 1] {
            expect_error::<P>(th, obs, act, 1.0, m, PolicyError::GradLength(len(n, m)));
        }

        let init = normals(&mut Rng::new(8), n, 1.0);
        let mut out = init.clone();
        let mut scratch = vec![Dual::ZERO; n - 1];
        let got = p.accumulate_hvp_log_prob(th, th, obs, act, 1.0, &mut scratch, &mut out);
        assert_eq!(got, Err(PolicyError::ScratchLength(len(n, n - 1))));
        let mut scratch = vec![Dual::ZERO; n];
        let got = p.accumulate_hvp_log_prob(th, &th[1..], obs, act, 1.0, &mut scratch, &mut out);
        assert_eq!(got, Err(PolicyError::GradLength(len(n, n - 1))));
        assert_eq!(out, init);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::check::{close, normals, reference_log_prob};
    use super::*;
    use std::vec;

    fn shape(distribution: Distribution, hidden: [u16; 2], act_dim: u16) -> PolicyShape {
        PolicyShape {
            distribution,
            obs_dim: 3,
            hidden,
            act_dim,
        }
    }

    /// Shapes picked at run time (as the host does from CLI flags) against the reference.
    #[test]
    fn runtime_shapes_match_reference() {
        let shapes = [
            shape(Distribution::Softmax, [0, 0], 2),
            shape(Distribution::Softmax, [7, 0], 5),
            shape(Distribution::Gaussian, [6, 2], 1),
            shape(Distribution::Gaussian, [2, 9], 4),
        ];
        let mut rng = Rng::new(21);
        for s in shapes {
            let params = normals(&mut rng, s.n_params(), 0.7);
            let obs = normals(&mut rng, 3, 1.0);
            let action = match s.distribution {
                Distribution::Softmax => vec![f64::from(s.act_dim - 1)],
                Distribution::Gaussian => normals(&mut rng, s.action_width(), 1.0),
            };
            let mut buf = vec![0.0; s.scratch_len()];
            let mut scratch = Scratch::from_slice(&s, &mut buf).unwrap();
            let mut grad = vec![0.0; s.n_params()];
            let lp = accumulate_grad_log_prob(
                &s,
                &params[..],
                &obs,
                &action,
                1.0,
                &mut scratch,
                &mut grad,
            )
            .unwrap();
            let want = reference_log_prob(&s, &params, &obs, &action);
            assert!(close(lp, want, 1e-12), "{s:?}: {lp} vs {want}");
        }
    }

    #[test]
    fn scratch_is_cut_in_order_and_may_be_longer() {
        let s = shape(Distribution::Softmax, [4, 3], 2);
        assert_eq!(s.scratch_len(), 2 * Layers::<f32>::len_for(&s));
        let mut buf: std::vec::Vec<f32> = (0..s.scratch_len() + 5).map(|i| i as f32).collect();
        let scratch = Scratch::from_slice(&s, &mut buf).unwrap();
        assert_eq!(scratch.act.h1, &[0.0, 1.0, 2.0, 3.0]);
        assert_eq!(scratch.act.h2, &[4.0, 5.0, 6.0]);
        assert_eq!(scratch.act.head, &[7.0, 8.0]);
        assert_eq!(scratch.delta.h1, &[9.0, 10.0, 11.0, 12.0]);
        assert_eq!(scratch.delta.head, &[16.0, 17.0]);
    }

    /// Each of the six scratch vectors one short is an error naming that vector's size,
    /// and `grad` is untouched.
    #[test]
    fn any_short_scratch_vector_is_an_error() {
        let s = shape(Distribution::Gaussian, [4, 3], 2);
        let params = normals(&mut Rng::new(1), s.n_params(), 0.5);
        let (obs, action) = ([0.1, 0.2, 0.3], [0.5, -0.5]);
        let sizes = [4, 3, 2];
        for i in 0..6 {
            let mut bufs = [
                vec![0.0; 4],
                vec![0.0; 3],
                vec![0.0; 2],
                vec![0.0; 4],
                vec![0.0; 3],
                vec![0.0; 2],
            ];
            bufs[i].pop();
            let [a1, a2, z, d1, d2, dz] = &mut bufs;
            let mut scratch = Scratch {
                act: Layers {
                    h1: a1,
                    h2: a2,
                    head: z,
                },
                delta: Layers {
                    h1: d1,
                    h2: d2,
                    head: dz,
                },
            };
            let mut grad = vec![1.5; s.n_params()];
            let got = accumulate_grad_log_prob(
                &s,
                &params[..],
                &obs,
                &action,
                1.0,
                &mut scratch,
                &mut grad,
            );
            let want = PolicyError::ScratchLength(LenMismatch {
                expected: sizes[i % 3],
                got: sizes[i % 3] - 1,
            });
            assert_eq!(got, Err(want));
            assert!(grad.iter().all(|&g| g == 1.5));
        }
    }

    #[test]
    fn invalid_shape_is_an_error() {
        for s in [
            shape(Distribution::Softmax, [0, 4], 3),
            shape(Distribution::Softmax, [4, 0], 1),
            PolicyShape {
                obs_dim: 0,
                ..shape(Distribution::Gaussian, [0, 0], 1)
            },
        ] {
            let params = vec![0.0f32; s.n_params()];
            let mut buf = vec![0.0f32; s.scratch_len()];
            let mut scratch = Scratch::from_slice(&s, &mut buf).unwrap();
            let got = forward(&s, &params[..], &[0.0; 3], &mut scratch.act);
            assert_eq!(got, Err(PolicyError::InvalidShape));
            let mut grad = vec![1.5f32; s.n_params()];
            let action = vec![0.0; s.action_width()];
            let got = accumulate_grad_log_prob(
                &s,
                &params[..],
                &[0.0; 3],
                &action,
                1.0,
                &mut scratch,
                &mut grad,
            );
            assert_eq!(got, Err(PolicyError::InvalidShape));
            assert!(grad.iter().all(|&g| g == 1.5));
        }
    }
}
