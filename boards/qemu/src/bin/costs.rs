//! Instructions of single policy calls on the device: where an adaptation step's
//! instructions go. `bench.sh` runs it on mps2-an386 and puts its lines in docs/device.md.
//!
//! For the default embedded policy (GaussianMlp 2→16→2), the mid size (2→32→32→2) and the
//! paper's size (2→100→100→2), with parameters read from word-aligned little-endian bytes
//! (as from a bundle in flash): `mode` (one forward pass), `sample` (forward pass and a
//! Gaussian draw: what `Adapter::act` runs) and `accumulate_grad_log_prob` (forward and
//! backward pass: what the gradient runs per step), plus `tanh` and `Rng::normal` per call,
//! and the paper's 100→100 hidden layer on its own: its forward product with bias and tanh
//! (`ParamSource::affine_map`) and its backward product with the tanh derivative
//! (`ParamSource::transposed_map`). Counts include ~14 instructions of counter overhead
//! per measurement.
//!
//! And for the diffdrive robot's policy (SoftmaxMlp 6→16→6, what the real boards run), whose
//! `sample` is the policy's part of a control tick. On the microbit (16 KB RAM) only the
//! per-call functions and the diffdrive policy run: the other policies' buffers do not fit.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use sgmrl_qemu::{code, exit};

mod run {
    use core::hint::black_box;
    use sgmrl::math::Real;
    use sgmrl::policy::{LeF32s, Policy};
    use sgmrl::rng::Rng;
    use sgmrl_qemu::icount;
    use sgmrl_qemu::out::Line;

    /// Parameters of the largest policy measured.
    #[cfg(not(machine = "microbit"))]
    const MAX_P: usize = 10_604;
    /// Parameters of the largest policy measured (the diffdrive policy's).
    #[cfg(machine = "microbit")]
    const MAX_P: usize = 214;

    /// Word-aligned storage for the parameters' bytes.
    #[repr(C, align(4))]
    pub struct Words(pub [u8; 4 * MAX_P]);

    pub static mut BYTES: Words = Words([0; 4 * MAX_P]);
    pub static mut GRAD: [f32; MAX_P] = [0.0; MAX_P];

    fn instr(f: impl FnOnce()) -> u32 {
        let ((), n) = icount::count(f);
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    pub fn policy<P: Policy + Default>(name: &str, bytes: &mut [u8], grad: &mut [f32]) {
        let n = P::N_PARAMS;
        let (Some(bytes), Some(grad)) = (bytes.get_mut(..4 * n), grad.get_mut(..n)) else {
            return;
        };
        let mut rng = Rng::new(1);
        for c in bytes.chunks_exact_mut(4) {
            c.copy_from_slice(&(0.2 * rng.normal()).to_le_bytes());
        }
        let Some(params) = LeF32s::new(bytes) else {
            return;
        };
        let p = P::default();
        let obs = [0.3f32, -0.2, 0.1, 0.05, 0.2, -0.1];
        let mut act = [0.0f32; 6];
        let (Some(obs), Some(act)) = (obs.get(..P::OBS_DIM), act.get_mut(..P::ACTION_WIDTH)) else {
            return;
        };
        let fwd = instr(|| {
            let _ = p.mode(params, black_box(obs), act);
        });
        let smp = instr(|| {
            let _ = p.sample(params, black_box(obs), &mut rng, act);
        });
        let grd = instr(|| {
            let _ = p.accumulate_grad_log_prob(params, black_box(obs), act, 0.5, grad);
        });
        let s = P::SHAPE;
        let f = s.forward_macs() as u32;
        let first = u32::from(s.obs_dim) * u32::from(s.hidden[0]);
        Line::new("costs: ")
            .s(name)
            .s(" (P = ")
            .u(n as u32)
            .s(", word-aligned: ")
            .s(if params.is_word_aligned() {
                "yes"
            } else {
                "no"
            })
            .s("): mode (forward, ")
            .u(f)
            .s(" MACs) ")
            .u(fwd)
            .s(", sample ")
            .u(smp)
            .s(", accumulate_grad_log_prob (")
            .u(3 * f - first)
            .s(" MACs) ")
            .u(grd)
            .s(" instructions")
            .print();
    }

    /// The two products of one 100→100 tanh layer, weights read from word-aligned bytes.
    #[cfg(not(machine = "microbit"))]
    pub fn layer(bytes: &mut [u8]) {
        use sgmrl::policy::ParamSource;
        const N: usize = 100;
        let Some(bytes) = bytes.get_mut(..4 * (N * N + N)) else {
            return;
        };
        let mut rng = Rng::new(2);
        for c in bytes.chunks_exact_mut(4) {
            c.copy_from_slice(&(0.1 * rng.normal()).to_le_bytes());
        }
        let Some((w, b)) = LeF32s::new(bytes).and_then(|p| ParamSource::<f32>::split_at(p, N * N))
        else {
            return;
        };
        let mut x = [0.0f32; N];
        x.iter_mut().for_each(|v| *v = 0.5 * rng.normal());
        let mut out = [0.0f32; N];
        let fwd = instr(|| {
            black_box(w.affine_map(b, black_box(&x), &mut out, Real::tanh));
        });
        let d = out;
        let mut y = [0.0f32; N];
        let bwd = instr(|| {
            black_box(w.transposed_map(black_box(&d), &x, &mut y, |s, a| s * (1.0 - a * a)));
        });
        let macs = (N * N) as u32;
        Line::new("costs: paper hidden layer 100-100 (")
            .u(macs)
            .s(" MACs each): affine_map with tanh ")
            .u(fwd)
            .s(", transposed_map with its derivative ")
            .u(bwd)
            .s(" instructions")
            .print();
    }

    pub fn functions() {
        let xs = [0.1f32, -0.4, 0.7, 1.3, -2.2, 3.0, 0.01, -0.6];
        let mut acc = 0.0f32;
        let base = instr(|| xs.iter().for_each(|&x| acc += black_box(x)));
        let tanh = instr(|| xs.iter().for_each(|&x| acc += Real::tanh(black_box(x))));
        let exp = instr(|| xs.iter().for_each(|&x| acc += Real::exp(black_box(x))));
        let mut rng = Rng::new(3);
        let normal = instr(|| (0..8).for_each(|_| acc += rng.normal()));
        Line::new("costs: per call (mean of 8): tanh ")
            .u(tanh.saturating_sub(base) / 8)
            .s(", expf ")
            .u(exp.saturating_sub(base) / 8)
            .s(", Rng::normal ")
            .u(normal.saturating_sub(base) / 8)
            .s(" instructions")
            .print();
        black_box(acc);
    }
}

#[entry]
fn main() -> ! {
    let Some(p) = cortex_m::Peripherals::take() else {
        exit(code::FAIL)
    };
    sgmrl_qemu::icount::start(p.SYST);
    // SAFETY: the only references to these statics, taken once in `main`, which never
    // returns.
    let (Some(bytes), Some(grad)) = (unsafe { (&raw mut run::BYTES).as_mut() }, unsafe {
        (&raw mut run::GRAD).as_mut()
    }) else {
        exit(code::FAIL)
    };
    run::functions();
    #[cfg(not(machine = "microbit"))]
    {
        run::layer(&mut bytes.0);
        run::policy::<sgmrl::policy::GaussianMlp<2, 16, 0, 2>>(
            "default 2-16-2",
            &mut bytes.0,
            grad,
        );
        run::policy::<sgmrl::policy::GaussianMlp<2, 32, 32, 2>>(
            "mid 2-32-32-2",
            &mut bytes.0,
            grad,
        );
        run::policy::<sgmrl::policy::GaussianMlp<2, 100, 100, 2>>(
            "paper 2-100-100-2",
            &mut bytes.0,
            grad,
        );
    }
    run::policy::<sgmrl::policy::SoftmaxMlp<6, 16, 0, 6>>(
        "diffdrive 6-16-6 softmax",
        &mut bytes.0,
        grad,
    );
    exit(code::PASS)
}
