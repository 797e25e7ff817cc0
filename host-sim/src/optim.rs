//! The outer optimiser: ascent on the meta-gradient (`θ ← θ + step`).

use sgmrl::math::Real;

/// Outer optimiser and its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerConfig {
    /// Adam (Kingma & Ba) with bias correction, as an ascent step.
    Adam {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Denominator floor.
        eps: f32,
    },
    /// Plain gradient ascent `θ ← θ + lr·g`.
    Sgd {
        /// Learning rate.
        lr: f32,
    },
}

impl OptimizerConfig {
    /// Adam with the usual `β = (0.9, 0.999)`, `ε = 1e-8`.
    pub const fn adam(lr: f32) -> Self {
        Self::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl Default for OptimizerConfig {
    /// Adam with learning rate 1e-3 (the paper's Table 1 setting).
    fn default() -> Self {
        Self::adam(1e-3)
    }
}

/// Optimiser state for `P` parameters.
#[derive(Clone, Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Optimizer {
    /// Fresh state.
    pub fn new(config: OptimizerConfig, n_params: usize) -> Self {
        Self {
            config,
            m: vec![0.0; n_params],
            v: vec![0.0; n_params],
            t: 0,
        }
    }

    /// State saved in a checkpoint: `(config, first moments, second moments, steps taken)`.
    pub fn state(&self) -> (OptimizerConfig, &[f32], &[f32], i32) {
        (self.config, &self.m, &self.v, self.t)
    }

    /// Rebuilds the state saved by [`Optimizer::state`]; `None` if the moment vectors differ
    /// in length.
    pub fn from_state(config: OptimizerConfig, m: Vec<f32>, v: Vec<f32>, t: i32) -> Option<Self> {
        (m.len() == v.len()).then_some(Self { config, m, v, t })
    }

    /// The configuration.
    pub fn config(&self) -> OptimizerConfig {
        self.config
    }

    /// One ascent step along `grad` (an estimate of `∇V`).
    pub fn ascend(&mut self, params: &mut [f32], grad: &[f32]) {
        assert_eq!(params.len(), grad.len());
        assert_eq!(params.len(), self.m.len());
        match self.config {
            OptimizerConfig::Sgd { lr } => {
                for (p, &g) in params.iter_mut().zip(grad) {
                    *p += lr * g;
                }
            }
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                self.t = self.t.saturating_add(1);
                let c1 = 1.0 - beta1.powi(self.t);
                let c2 = 1.0 - beta2.powi(self.t);
                for (((p, &g), m), v) in params
                    .iter_mut()
                    .zip(grad)
                    .zip(&mut self.m)
                    .zip(&mut self.v)
                {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    let m_hat = *m / c1;
                    let v_hat = *v / c2;
                    *p += lr * m_hat / (Real::sqrt(v_hat) + eps);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_first_step_moves_each_coordinate_by_lr_towards_the_gradient() {
        let mut o = Optimizer::new(OptimizerConfig::adam(0.01), 3);
        let mut p = [0.0f32, 1.0, -1.0];
        o.ascend(&mut p, &[2.0, -0.5, 0.0]);
        assert!((p[0] - 0.01).abs() < 1e-6);
        assert!((p[1] - 0.99).abs() < 1e-6);
        assert_eq!(p[2], -1.0);
    }

    #[test]
    fn adam_ascends_a_concave_quadratic() {
        let mut o = Optimizer::new(OptimizerConfig::adam(0.05), 2);
        let mut p = [3.0f32, -2.0];
        for _ in 0..2000 {
            let g = [-(p[0] - 1.0), -(p[1] + 0.5)];
            o.ascend(&mut p, &g);
        }
        assert!(
            (p[0] - 1.0).abs() < 1e-2 && (p[1] + 0.5).abs() < 1e-2,
            "{p:?}"
        );
    }

    #[test]
    fn state_round_trips() {
        let mut a = Optimizer::new(OptimizerConfig::adam(0.1), 2);
        let mut p = [0.0f32, 0.0];
        a.ascend(&mut p, &[1.0, -2.0]);
        let (c, m, v, t) = a.state();
        let mut b = Optimizer::from_state(c, m.to_vec(), v.to_vec(), t).unwrap();
        let mut q = p;
        a.ascend(&mut p, &[0.5, 0.5]);
        b.ascend(&mut q, &[0.5, 0.5]);
        assert_eq!(p, q);
        assert!(Optimizer::from_state(c, vec![0.0; 2], vec![0.0; 3], 0).is_none());
    }

    #[test]
    fn sgd_is_plain_ascent() {
        let mut o = Optimizer::new(OptimizerConfig::Sgd { lr: 0.5 }, 2);
        let mut p = [1.0f32, 1.0];
        o.ascend(&mut p, &[2.0, -4.0]);
        assert_eq!(p, [2.0, -1.0]);
    }
}
