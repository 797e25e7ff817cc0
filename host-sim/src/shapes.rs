//! From a runtime [`PolicyShape`] to a compile-time policy type.
//!
//! The core's [`sgmrl::adapt::Adapter`] is generic over a zero-sized policy type whose
//! sizes are const generics, exactly as firmware instantiates it. The host evaluates a
//! bundle or checkpoint with that same code, so it needs one instantiation per shape it
//! supports; [`with_policy`] picks it, and returns [`UnsupportedShape`] (listing the
//! supported ones) otherwise. Add a line to the `supported!` macro below to support another shape.

use sgmrl::policy::{GaussianMlp, Policy, PolicyShape, SoftmaxLinear, SoftmaxMlp};

use crate::config::shape_name;

/// Code to run with a concrete policy type.
pub trait PolicyVisitor {
    /// What the code returns.
    type Output;
    /// Runs with policy type `P`.
    fn visit<P: Policy + Default + Copy + Send + Sync + 'static>(self) -> Self::Output;
}

/// A shape with no compiled instantiation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "policy {} has no compiled evaluation path; supported: {}",
    shape_name(.0),
    supported_shapes().iter().map(shape_name).collect::<Vec<_>>().join(", ")
)]
pub struct UnsupportedShape(pub PolicyShape);

macro_rules! supported {
    ($($ty:ty),* $(,)?) => {
        /// Every shape [`with_policy`] dispatches to.
        pub fn supported_shapes() -> Vec<PolicyShape> {
            vec![$(<$ty as Policy>::SHAPE),*]
        }

        /// Calls `visitor` with the policy type whose shape is `shape`.
        pub fn with_policy<V: PolicyVisitor>(
            shape: &PolicyShape,
            visitor: V,
        ) -> Result<V::Output, UnsupportedShape> {
            $(
                if *shape == <$ty as Policy>::SHAPE {
                    return Ok(visitor.visit::<$ty>());
                }
            )*
            Err(UnsupportedShape(*shape))
        }
    };
}

supported!(
    // nav2d, Gaussian: linear, one hidden layer (the embedded sizes), two layers (the
    // paper's 2→100→100→2 and smaller).
    GaussianMlp<2, 0, 0, 2>,
    GaussianMlp<2, 8, 0, 2>,
    GaussianMlp<2, 16, 0, 2>,
    GaussianMlp<2, 32, 0, 2>,
    GaussianMlp<2, 64, 0, 2>,
    GaussianMlp<2, 16, 16, 2>,
    GaussianMlp<2, 32, 32, 2>,
    GaussianMlp<2, 64, 64, 2>,
    GaussianMlp<2, 100, 100, 2>,
    // nav2d-discrete, softmax over 9 moves.
    SoftmaxLinear<2, 9>,
    SoftmaxMlp<2, 16, 0, 9>,
    SoftmaxMlp<2, 32, 0, 9>,
    SoftmaxMlp<2, 64, 64, 9>,
    SoftmaxMlp<2, 100, 100, 9>,
    // MuJoCo (Table 2): HalfCheetah 17→…→6, Swimmer 8→…→2; the paper's 100×100 and the
    // small sizes of the reduced and smoke settings.
    GaussianMlp<17, 16, 0, 6>,
    GaussianMlp<17, 32, 32, 6>,
    GaussianMlp<17, 64, 64, 6>,
    GaussianMlp<17, 100, 100, 6>,
    GaussianMlp<8, 16, 0, 2>,
    GaussianMlp<8, 32, 32, 2>,
    GaussianMlp<8, 64, 64, 2>,
    GaussianMlp<8, 100, 100, 2>,
    // diffdrive: softmax over 6 wheel commands (linear fits an M0), and the continuous
    // variant's Gaussian over 2 commands.
    SoftmaxLinear<6, 6>,
    SoftmaxMlp<6, 16, 0, 6>,
    SoftmaxMlp<6, 32, 0, 6>,
    GaussianMlp<6, 0, 0, 2>,
    GaussianMlp<6, 16, 0, 2>,
    GaussianMlp<6, 32, 0, 2>,
);

#[cfg(test)]
mod tests {
    use super::*;
    use sgmrl::policy::Distribution;

    struct NParams;
    impl PolicyVisitor for NParams {
        type Output = (PolicyShape, usize);
        fn visit<P: Policy + Default + Copy + Send + Sync + 'static>(self) -> Self::Output {
            (P::SHAPE, P::N_PARAMS)
        }
    }

    #[test]
    fn dispatches_each_supported_shape_to_its_type() {
        for s in supported_shapes() {
            assert_eq!(with_policy(&s, NParams).unwrap(), (s, s.n_params()));
        }
        let paper = PolicyShape {
            distribution: Distribution::Gaussian,
            obs_dim: 2,
            hidden: [100, 100],
            act_dim: 2,
        };
        assert_eq!(with_policy(&paper, NParams).unwrap().1, 10_604);
    }

    #[test]
    fn unsupported_shape_is_a_one_line_error_listing_alternatives() {
        let s = PolicyShape {
            distribution: Distribution::Gaussian,
            obs_dim: 2,
            hidden: [50, 50],
            act_dim: 2,
        };
        let e = with_policy(&s, NParams).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("policy 2→50→50→2 (Gaussian) has no compiled"),
            "{msg}"
        );
        assert!(msg.contains("2→100→100→2 (Gaussian)"), "{msg}");
        assert!(!msg.contains('\n'));
    }
}
