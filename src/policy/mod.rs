//! Policies over one flat parameter vector.
//!
//! # Parameter layout (shared by the core, the host's batched kernels and the bundle)
//! A policy is a stack of dense layers `input → hidden[0] → hidden[1] → head`, where a
//! hidden size of 0 means the layer is absent (`hidden = [0, 0]` is a linear policy,
//! `[h, 0]` has one hidden layer). Hidden layers use `tanh`; the head is linear. The
//! parameters are stored layer by layer, each layer as its weight matrix in row-major
//! order (`[out][in]`, so row `o` holds the weights into output `o`) followed by its bias
//! (`[out]`). A Gaussian policy appends its state-independent log standard deviations
//! (`[act_dim]`). For `SoftmaxLinear<2, 3>` that is `W[0][0], W[0][1], W[1][0], …, W[2][1],
//! b[0], b[1], b[2]`: logits = W·obs + b.
//!
//! # Actions on the wire
//! An action is a slice of [`PolicyShape::action_width`] scalars: one scalar holding the
//! chosen index for a softmax policy (exact for every index below 2²⁴), the raw sample
//! `u` (before the recipe's scaling and clipping) for a Gaussian one. Log-probabilities are
//! of exactly these values.
//!
//! # Where parameters live
//! Parameters are read through [`ParamSource`], implemented by `&[T]` (RAM) and by
//! [`LeF32s`] (little-endian bytes, e.g. a bundle in flash read without copying and with
//! no alignment assumption). That is what lets the device adapt with only one RAM copy.
//! Dense layers run their products through [`ParamSource::affine_map`] and
//! [`ParamSource::transposed_map`]: RAM slices and word-aligned bytes
//! ([`LeF32s::is_word_aligned`]; for `f32` on a little-endian target, the very same code
//! as RAM slices) take unrolled loops with word loads, other sources read scalar by
//! scalar, with the same arithmetic and the same bits.

use crate::dual::Dual;
use crate::math::Real;
use crate::name::{self, UnknownName};
use crate::rng::Rng;

pub(crate) mod dense;
pub mod gaussian;
pub mod net;
pub mod softmax;

pub use gaussian::GaussianMlp;
pub use softmax::{SoftmaxLinear, SoftmaxMlp};

/// The action distribution a policy's head parameterises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Distribution {
    /// Categorical over `act_dim` discrete actions; logits from the head.
    Softmax,
    /// Diagonal Gaussian over `act_dim` reals; the head gives the mean, log-std is learned.
    Gaussian,
}

impl Distribution {
    /// Every distribution, in declaration order.
    pub const ALL: [Self; 2] = [Self::Softmax, Self::Gaussian];
    /// [`Distribution::name`] of each of [`Distribution::ALL`].
    pub const NAMES: [&'static str; 2] = [Self::ALL[0].name(), Self::ALL[1].name()];

    /// The name users see (`softmax`, `gaussian`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Softmax => "softmax",
            Self::Gaussian => "gaussian",
        }
    }
}

impl core::str::FromStr for Distribution {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        name::find(&Self::ALL, |d| d.name(), s, "distribution", &Self::NAMES)
    }
}

/// Architecture of a policy, as recorded in a bundle. Sizes are counts of scalars.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PolicyShape {
    /// Head distribution.
    pub distribution: Distribution,
    /// Observation length.
    pub obs_dim: u16,
    /// Hidden layer widths; 0 = absent. `[0, h]` with `h > 0` is invalid.
    pub hidden: [u16; 2],
    /// Number of discrete actions (softmax) or action dimensions (Gaussian).
    pub act_dim: u16,
}

impl PolicyShape {
    /// True when the shape is one this crate can run: positive input and output sizes, a
    /// second hidden layer only after a first, and at least 2 actions for a softmax.
    pub const fn is_valid(&self) -> bool {
        let [h1, h2] = self.hidden;
        let min_act = match self.distribution {
            Distribution::Softmax => 2,
            Distribution::Gaussian => 1,
        };
        self.obs_dim > 0 && self.act_dim >= min_act && !(h1 == 0 && h2 > 0)
    }

    /// Width of the layer feeding the head.
    pub const fn head_input(&self) -> usize {
        let [h1, h2] = self.hidden;
        if h2 > 0 {
            h2 as usize
        } else if h1 > 0 {
            h1 as usize
        } else {
            self.obs_dim as usize
        }
    }

    /// Number of parameters `P` (scalars in the flat vector).
    pub const fn n_params(&self) -> usize {
        let obs = self.obs_dim as usize;
        let [h1, h2] = self.hidden;
        let (h1, h2) = (h1 as usize, h2 as usize);
        let act = self.act_dim as usize;
        let mut n = 0;
        if h1 > 0 {
            n += h1 * obs + h1;
        }
        if h2 > 0 {
            n += h2 * h1 + h2;
        }
        n += act * self.head_input() + act;
        if let Distribution::Gaussian = self.distribution {
            n += act;
        }
        n
    }

    /// Scalars per action on the wire: 1 for softmax, `act_dim` for Gaussian.
    pub const fn action_width(&self) -> usize {
        match self.distribution {
            Distribution::Softmax => 1,
            Distribution::Gaussian => self.act_dim as usize,
        }
    }

    /// Scalars of scratch [`net::accumulate_grad_log_prob`] needs ([`net::Scratch`]): an
    /// activation and a delta vector per layer, `2·(hidden[0] + hidden[1] + act_dim)`.
    /// Forward-only calls need half of it ([`net::Layers`]).
    pub const fn scratch_len(&self) -> usize {
        let [h1, h2] = self.hidden;
        2 * (h1 as usize + h2 as usize + self.act_dim as usize)
    }

    /// Scalars of the hidden layers' part of [`scratch_len`](Self::scratch_len):
    /// activations and deltas of the hidden layers, `2·(hidden[0] + hidden[1])` (the
    /// head's are `act_dim` each). This is the part that grows with the network's width;
    /// the `*_with` methods of [`Policy`] take it from the caller (the adapter keeps it in
    /// its memory buffer rather than on the stack). Forward-only calls use the first half.
    pub const fn hidden_scratch_len(&self) -> usize {
        let [h1, h2] = self.hidden;
        2 * (h1 as usize + h2 as usize)
    }

    /// Multiply-accumulates of one forward pass (the cost yardstick for the device).
    pub const fn forward_macs(&self) -> usize {
        let obs = self.obs_dim as usize;
        let [h1, h2] = self.hidden;
        let (h1, h2) = (h1 as usize, h2 as usize);
        let mut n = 0;
        if h1 > 0 {
            n += h1 * obs;
        }
        if h2 > 0 {
            n += h2 * h1;
        }
        n + self.act_dim as usize * self.head_input()
    }
}

/// A buffer whose length is not the one required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LenMismatch {
    /// Required length, in scalars.
    pub expected: usize,
    /// Length given.
    pub got: usize,
}

/// Why a policy call could not be computed. Never caused by a well-formed bundle and
/// matching buffers; each variant names the caller's mistake or the bad value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PolicyError {
    /// The parameter source does not hold exactly `P` scalars.
    ParamLength(LenMismatch),
    /// The gradient buffer is not `P` long.
    GradLength(LenMismatch),
    /// The observation is not `obs_dim` long.
    ObsLength(LenMismatch),
    /// The action slice is not `action_width` long.
    ActionLength(LenMismatch),
    /// A scratch buffer is shorter than required (see [`net`] and
    /// [`PolicyShape::scratch_len`]).
    ScratchLength(LenMismatch),
    /// The shape is not [`PolicyShape::is_valid`] (runtime-shaped calls in [`net`]).
    InvalidShape,
    /// A discrete action is not an integer in `0..act_dim`.
    ActionOutOfRange,
    /// An observation, action or gradient weight is NaN or infinite.
    NonFiniteInput,
    /// A computed value (pre-activation, log-probability, sample or gradient increment) is
    /// NaN or infinite: from a non-finite parameter or from overflow.
    NonFiniteOutput,
}

impl core::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ParamLength(LenMismatch { expected, got }) => {
                write!(f, "policy needs {expected} parameters, got {got}")
            }
            Self::GradLength(LenMismatch { expected, got }) => {
                write!(f, "gradient buffer must hold {expected} scalars, got {got}")
            }
            Self::ObsLength(LenMismatch { expected, got }) => {
                write!(f, "observation must have {expected} scalars, got {got}")
            }
            Self::ActionLength(LenMismatch { expected, got }) => {
                write!(f, "action must have {expected} scalars, got {got}")
            }
            Self::ScratchLength(LenMismatch { expected, got }) => {
                write!(f, "scratch buffer must hold {expected} scalars, got {got}")
            }
            Self::InvalidShape => f.write_str("invalid policy shape"),
            Self::ActionOutOfRange => f.write_str("discrete action index out of range"),
            Self::NonFiniteInput => {
                f.write_str("non-finite observation, action or gradient weight")
            }
            Self::NonFiniteOutput => f.write_str("policy produced a non-finite value"),
        }
    }
}

/// Read-only access to a flat parameter vector wherever it is stored.
///
/// Implementations are cheap to copy views. Reading is sequential (`values`), which is how
/// dense layers consume weights and keeps bounds checks out of inner loops.
pub trait ParamSource<T: Real>: Copy {
    /// Number of scalars.
    fn len(self) -> usize;
    /// True when there are no scalars.
    fn is_empty(self) -> bool {
        self.len() == 0
    }
    /// The first `mid` scalars and the rest; `None` if `mid > len`.
    fn split_at(self, mid: usize) -> Option<(Self, Self)>;
    /// The scalars in order.
    fn values(self) -> impl Iterator<Item = T>;

    /// `out = W·x + b` for a dense layer whose weights `W` are these scalars (row-major,
    /// `out.len()` rows of `x.len()`) and whose bias `b` is `bias`: `out[o] = (Σ_i
    /// W[o][i]·x[i]) + b[o]`, each row summed from 0 for `i = 0, 1, …`, then the bias added.
    /// Sizes are the caller's to get right (they follow from a validated shape); with others,
    /// outputs past the shortest operand are unspecified. The default reads [`values`];
    /// sources with their scalars at hand as a slice override it with unrolled loops
    /// (identical bits).
    ///
    /// [`values`]: ParamSource::values
    fn affine(self, bias: Self, x: &[T], out: &mut [T]) {
        dense::affine_values(self.values(), bias.values(), x, out);
    }

    /// `out[o] = f((Σ_i W[o][i]·x[i]) + b[o])`: [`affine`](ParamSource::affine) with `f`
    /// (an activation) applied to each output in the same pass. Returns true when every
    /// value given to `f` was finite (which catches a non-finite weight or bias too: it
    /// makes its row's sum non-finite). Same size rules and default.
    fn affine_map(self, bias: Self, x: &[T], out: &mut [T], f: impl Fn(T) -> T) -> bool {
        dense::affine_map_values(self.values(), bias.values(), x, out, f)
    }

    /// `y += Wᵀ·d` for a dense layer whose weights `W` are these scalars (row-major,
    /// `d.len()` rows of `y.len()`): for each row `o` in turn, `y[i] += W[o][i]·d[o]`.
    /// Backpropagates the layer's output deltas `d` to its input. Same size rules and
    /// default as [`affine`](ParamSource::affine).
    fn add_transposed(self, d: &[T], y: &mut [T]) {
        dense::add_transposed_values(self.values(), d, y);
    }

    /// `y[i] = f(Σ_o W[o][i]·d[o], aux[i])`, the sum from 0 over the rows `o` in turn:
    /// [`add_transposed`](ParamSource::add_transposed) into a zeroed `y`, with `f` (the
    /// derivative of an activation) applied to each sum and the matching scalar of `aux`
    /// in the same pass. Returns true when every result of `f` is finite. Same size rules
    /// and default.
    fn transposed_map(self, d: &[T], aux: &[T], y: &mut [T], f: impl Fn(T, T) -> T) -> bool {
        dense::transposed_map_values(self.values(), d, aux, y, f)
    }
}

impl<T: Real> ParamSource<T> for &[T] {
    #[inline]
    fn len(self) -> usize {
        <[T]>::len(self)
    }
    #[inline]
    fn split_at(self, mid: usize) -> Option<(Self, Self)> {
        self.split_at_checked(mid)
    }
    #[inline]
    fn values(self) -> impl Iterator<Item = T> {
        self.iter().copied()
    }
    fn affine(self, bias: Self, x: &[T], out: &mut [T]) {
        dense::affine(self, bias, x, out, dense::same);
    }
    #[inline(always)]
    fn affine_map(self, bias: Self, x: &[T], out: &mut [T], f: impl Fn(T) -> T) -> bool {
        dense::affine_map(self, bias, x, out, dense::same, f)
    }
    fn add_transposed(self, d: &[T], y: &mut [T]) {
        dense::add_transposed(self, d, y, dense::same);
    }
    #[inline(always)]
    fn transposed_map(self, d: &[T], aux: &[T], y: &mut [T], f: impl Fn(T, T) -> T) -> bool {
        dense::transposed_map(self, d, aux, y, dense::same, f)
    }
}

/// A view of little-endian `f32`s in a byte slice of any alignment (e.g. in flash).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeF32s<'a> {
    bytes: &'a [u8],
}

impl<'a> LeF32s<'a> {
    /// The view, or `None` unless `bytes.len()` is a multiple of 4.
    pub const fn new(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len().is_multiple_of(4) {
            Some(Self { bytes })
        } else {
            None
        }
    }
    /// The underlying bytes.
    pub const fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// The scalars as `f32` in order.
    pub fn iter(&self) -> impl Iterator<Item = f32> + 'a {
        let bytes: &'a [u8] = self.bytes;
        bytes
            .as_chunks::<4>()
            .0
            .iter()
            .map(|b| f32::from_le_bytes(*b))
    }
    /// True when the bytes start at a multiple of 4: dense layers then read the weights
    /// with word loads in unrolled loops (several times fewer instructions on a Cortex-M4F
    /// than the bytewise path, same bits). Keep a bundle in flash at a 4-aligned address
    /// to get this; the bundle format puts the parameters at a multiple of 4 from its start.
    pub fn is_word_aligned(&self) -> bool {
        self.words().is_some()
    }

    /// The bytes as little-endian words, when they are word-aligned. (On soft-float cores
    /// the dense loops are not unrolled and read bytewise either way.)
    fn words(&self) -> Option<&'a [u32]> {
        bytemuck::try_cast_slice(self.bytes).ok()
    }

    /// True when `T` scalars are read through [`scalars`](Self::scalars) rather than
    /// [`words`](Self::words): `T` is `f32` and the target is little-endian (an `f32` then
    /// *is* its little-endian bytes).
    fn as_slice_of<T: Real>() -> bool {
        cfg!(target_endian = "little") && T::slice_from_f32(&[]).is_some()
    }

    /// The scalars as a slice of `T` when [`as_slice_of`](Self::as_slice_of) and the bytes
    /// are word-aligned: dense layers then run the very code of parameters in RAM.
    fn scalars<T: Real>(&self) -> Option<&'a [T]> {
        // Soft-float cores run the plain loops, which read bytes as well as words.
        if !(Self::as_slice_of::<T>() && dense::UNROLLED) {
            return None;
        }
        T::slice_from_f32(bytemuck::try_cast_slice(self.bytes).ok()?)
    }

    /// Scalar `i`, if in range.
    pub fn get(&self, i: usize) -> Option<f32> {
        self.bytes
            .as_chunks::<4>()
            .0
            .get(i)
            .map(|b| f32::from_le_bytes(*b))
    }
}

impl<'a, T: Real> ParamSource<T> for LeF32s<'a> {
    #[inline]
    fn len(self) -> usize {
        self.bytes.len() / 4
    }
    #[inline]
    fn split_at(self, mid: usize) -> Option<(Self, Self)> {
        let (a, b) = self.bytes.split_at_checked(mid.checked_mul(4)?)?;
        Some((Self { bytes: a }, Self { bytes: b }))
    }
    #[inline]
    fn values(self) -> impl Iterator<Item = T> {
        let bytes: &'a [u8] = self.bytes;
        bytes
            .as_chunks::<4>()
            .0
            .iter()
            .map(|b| T::from_f32(f32::from_le_bytes(*b)))
    }
    fn affine(self, bias: Self, x: &[T], out: &mut [T]) {
        if let (Some(w), Some(b)) = (self.scalars::<T>(), bias.scalars::<T>()) {
            return w.affine(b, x, out);
        }
        match (self.words(), bias.words()) {
            (Some(w), Some(b)) if dense::UNROLLED && !Self::as_slice_of::<T>() => {
                dense::affine(w, b, x, out, le_word)
            }
            _ => dense::affine_values(self.values(), bias.values(), x, out),
        }
    }
    #[inline(always)]
    fn affine_map(self, bias: Self, x: &[T], out: &mut [T], f: impl Fn(T) -> T) -> bool {
        if let (Some(w), Some(b)) = (self.scalars::<T>(), bias.scalars::<T>()) {
            return w.affine_map(b, x, out, f);
        }
        match (self.words(), bias.words()) {
            (Some(w), Some(b)) if dense::UNROLLED && !Self::as_slice_of::<T>() => {
                dense::affine_map(w, b, x, out, le_word, f)
            }
            _ => dense::affine_map_values(self.values(), bias.values(), x, out, f),
        }
    }
    fn add_transposed(self, d: &[T], y: &mut [T]) {
        if let Some(w) = self.scalars::<T>() {
            return w.add_transposed(d, y);
        }
        match self.words() {
            Some(w) if dense::UNROLLED && !Self::as_slice_of::<T>() => {
                dense::add_transposed(w, d, y, le_word)
            }
            _ => dense::add_transposed_values(ParamSource::<T>::values(self), d, y),
        }
    }
    #[inline(always)]
    fn transposed_map(self, d: &[T], aux: &[T], y: &mut [T], f: impl Fn(T, T) -> T) -> bool {
        if let Some(w) = self.scalars::<T>() {
            return w.transposed_map(d, aux, y, f);
        }
        match self.words() {
            Some(w) if dense::UNROLLED && !Self::as_slice_of::<T>() => {
                dense::transposed_map(w, d, aux, y, le_word, f)
            }
            _ => dense::transposed_map_values(ParamSource::<T>::values(self), d, aux, y, f),
        }
    }
}

/// A little-endian stored `f32` word as a scalar (a plain load on little-endian targets).
#[inline(always)]
fn le_word<T: Real>(w: u32) -> T {
    T::from_f32(f32::from_bits(u32::from_le(w)))
}

/// Parameters `θ + ε·v` as dual numbers, built on the fly from two equal-length slices.
/// Feeding this to [`Policy::accumulate_grad_log_prob`] gives `∇²log π · v` in the tangents.
#[derive(Clone, Copy, Debug)]
pub struct DualParams<'a, T> {
    /// Point `θ`.
    pub params: &'a [T],
    /// Direction `v`.
    pub direction: &'a [T],
}

impl<'a, T: Real> ParamSource<Dual<T>> for DualParams<'a, T> {
    #[inline]
    fn len(self) -> usize {
        self.params.len().min(self.direction.len())
    }
    #[inline]
    fn split_at(self, mid: usize) -> Option<(Self, Self)> {
        let (p0, p1) = self.params.split_at_checked(mid)?;
        let (d0, d1) = self.direction.split_at_checked(mid)?;
        Some((
            Self {
                params: p0,
                direction: d0,
            },
            Self {
                params: p1,
                direction: d1,
            },
        ))
    }
    #[inline]
    fn values(self) -> impl Iterator<Item = Dual<T>> {
        self.params
            .iter()
            .zip(self.direction)
            .map(|(&p, &d)| Dual::new(p, d))
    }
}

/// A policy whose architecture is fixed at compile time (a zero-sized type).
///
/// All methods are generic over the scalar `T` (f32 on the device, f64 or duals in tests)
/// and over where the parameters live (`S`). None of them allocates or panics; a buffer of
/// the wrong length or a non-finite input is a [`PolicyError`].
pub trait Policy {
    /// The architecture, as a bundle records it.
    const SHAPE: PolicyShape;
    /// Number of parameters `P`.
    const N_PARAMS: usize = Self::SHAPE.n_params();
    /// Observation length.
    const OBS_DIM: usize = Self::SHAPE.obs_dim as usize;
    /// Scalars per action on the wire.
    const ACTION_WIDTH: usize = Self::SHAPE.action_width();

    /// Draws an action `a ~ π(·|obs; θ)` into `action` (`ACTION_WIDTH` scalars).
    fn sample<T: Real, S: ParamSource<T>>(
        &self,
        params: S,
        obs: &[T],
        rng: &mut Rng,
        action: &mut [T],
    ) -> Result<(), PolicyError>;

    /// The most likely action (argmax for softmax, the mean for Gaussian), for evaluation.
    fn mode<T: Real, S: ParamSource<T>>(
        &self,
        params: S,
        obs: &[T],
        action: &mut [T],
    ) -> Result<(), PolicyError>;

    /// `log π(action | obs; θ)`.
    fn log_prob<T: Real, S: ParamSource<T>>(
        &self,
        params: S,
        obs: &[T],
        action: &[T],
    ) -> Result<T, PolicyError>;

    /// Adds `weight · ∇_θ log π(action | obs; θ)` to `grad` (`P` scalars) and returns
    /// `log π(action | obs; θ)`. On error `grad` is left unchanged.
    fn accumulate_grad_log_prob<T: Real, S: ParamSource<T>>(
        &self,
        params: S,
        obs: &[T],
        action: &[T],
        weight: T,
        grad: &mut [T],
    ) -> Result<T, PolicyError>;

    /// [`Policy::sample`], with the hidden layers' activations in `hidden` (at least half
    /// of [`PolicyShape::hidden_scratch_len`] scalars; overwritten) instead of on the stack.
    /// Same result, same bits. The default ignores `hidden` and calls
    /// [`Policy::sample`].
    fn sample_with<T: Real, S: ParamSource<T>>(
        &self,
        params: S,
        obs: &[T],
        rng: &mut Rng,
        hidden: &mut [T],
        action: &mut [T],
    ) -> Result<(), PolicyError> {
        let _ = hidden;
        self.sample(params, obs, rng, action)
    }

    /// [`Policy::log_prob`], with the hidden layers' activations in `hidden` (as for
    /// [`Policy::sample_with`]). The default ignores `hidden`.
    fn log_prob_with<T: Real, S: ParamSource<T>>(
        &self,
        params: S,
        obs: &[T],
        action: &[T],
        hidden: &mut [T],
    ) -> Result<T, PolicyError> {
        let _ = hidden;
        self.log_prob(params, obs, action)
    }

    /// [`Policy::accumulate_grad_log_prob`], with the hidden layers' activations and
    /// deltas in `hidden` (at least [`PolicyShape::hidden_scratch_len`] scalars;
    /// overwritten) instead of on the stack. Same result, same bits. The default ignores
    /// `hidden`.
    #[allow(clippy::too_many_arguments)] // the formula's terms and the scratch
    fn accumulate_grad_log_prob_with<T: Real, S: ParamSource<T>>(
        &self,
        params: S,
        obs: &[T],
        action: &[T],
        weight: T,
        hidden: &mut [T],
        grad: &mut [T],
    ) -> Result<T, PolicyError> {
        let _ = hidden;
        self.accumulate_grad_log_prob(params, obs, action, weight, grad)
    }

    /// Adds `weight · ∇²_θ log π(action | obs; θ) · direction` to `out`, exactly, by
    /// running the gradient on dual numbers. `scratch` must hold `P` duals; it is
    /// overwritten. Host-side reference for the batched Hessian-vector kernels.
    #[allow(clippy::too_many_arguments)] // each argument is one term of the formula
    fn accumulate_hvp_log_prob<T: Real>(
        &self,
        params: &[T],
        direction: &[T],
        obs: &[T],
        action: &[T],
        weight: T,
        scratch: &mut [Dual<T>],
        out: &mut [T],
    ) -> Result<(), PolicyError> {
        let n = Self::N_PARAMS;
        if direction.len() != n || out.len() != n {
            return Err(PolicyError::GradLength(LenMismatch {
                expected: n,
                got: direction.len().min(out.len()),
            }));
        }
        let got = scratch.len();
        let scratch = scratch
            .get_mut(..n)
            .ok_or(PolicyError::ScratchLength(LenMismatch { expected: n, got }))?;
        scratch.fill(Dual::ZERO);
        let obs_d = DualObs(obs);
        let mut obs_buf = [Dual::<T>::ZERO; MAX_DUAL_IO];
        let obs_dual = obs_d.fill(&mut obs_buf)?;
        let mut act_buf = [Dual::<T>::ZERO; MAX_DUAL_IO];
        let act_dual = DualObs(action).fill(&mut act_buf)?;
        self.accumulate_grad_log_prob(
            DualParams { params, direction },
            obs_dual,
            act_dual,
            Dual::constant(weight),
            scratch,
        )?;
        for (o, s) in out.iter_mut().zip(scratch.iter()) {
            *o += s.eps;
        }
        Ok(())
    }
}

/// Largest observation or action length [`Policy::accumulate_hvp_log_prob`] lifts to duals
/// on the stack.
pub const MAX_DUAL_IO: usize = 64;

struct DualObs<'a, T>(&'a [T]);

impl<'a, T: Real> DualObs<'a, T> {
    fn fill<'b>(&self, buf: &'b mut [Dual<T>; MAX_DUAL_IO]) -> Result<&'b [Dual<T>], PolicyError> {
        let out = buf
            .get_mut(..self.0.len())
            .ok_or(PolicyError::ScratchLength(LenMismatch {
                expected: self.0.len(),
                got: MAX_DUAL_IO,
            }))?;
        for (d, &x) in out.iter_mut().zip(self.0) {
            *d = Dual::constant(x);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_params_follows_the_layout() {
        let lin = PolicyShape {
            distribution: Distribution::Softmax,
            obs_dim: 2,
            hidden: [0, 0],
            act_dim: 3,
        };
        assert_eq!(lin.n_params(), 3 * 2 + 3);
        let paper = PolicyShape {
            distribution: Distribution::Gaussian,
            obs_dim: 2,
            hidden: [100, 100],
            act_dim: 2,
        };
        // host.md: the paper's 2→100→100→2 Gaussian has 10,604 parameters.
        assert_eq!(paper.n_params(), 10_604);
        let one = PolicyShape {
            hidden: [16, 0],
            ..paper
        };
        assert_eq!(one.n_params(), 16 * 2 + 16 + 2 * 16 + 2 + 2);
    }

    #[test]
    fn invalid_shapes_are_rejected() {
        let s = PolicyShape {
            distribution: Distribution::Softmax,
            obs_dim: 2,
            hidden: [0, 4],
            act_dim: 3,
        };
        assert!(!s.is_valid());
        assert!(
            !PolicyShape {
                hidden: [0, 0],
                act_dim: 1,
                ..s
            }
            .is_valid()
        );
        assert!(
            !PolicyShape {
                hidden: [0, 0],
                obs_dim: 0,
                ..s
            }
            .is_valid()
        );
        assert!(
            PolicyShape {
                hidden: [4, 0],
                ..s
            }
            .is_valid()
        );
    }

    #[test]
    fn le_f32s_reads_unaligned_bytes() {
        let mut bytes = [0u8; 13];
        bytes[1..5].copy_from_slice(&1.5f32.to_le_bytes());
        bytes[5..9].copy_from_slice(&(-2.0f32).to_le_bytes());
        bytes[9..13].copy_from_slice(&0.25f32.to_le_bytes());
        let v = LeF32s::new(&bytes[1..]).unwrap();
        let got: heapless::Vec<f32, 3> = ParamSource::<f32>::values(v).collect();
        assert_eq!(got.as_slice(), &[1.5, -2.0, 0.25]);
        let (a, b) = ParamSource::<f32>::split_at(v, 1).unwrap();
        assert_eq!(ParamSource::<f32>::len(a), 1);
        assert_eq!(ParamSource::<f32>::len(b), 2);
        assert!(ParamSource::<f32>::split_at(v, 4).is_none());
        assert!(LeF32s::new(&bytes[..3]).is_none());
    }
}
