//! `sharpen`: unsharp mask, as `cv2.addWeighted(img, 1+amount, GaussianBlur(img), -amount, 0)`.

use super::prelude::*;
use crate::ops::filter;

/// Unsharp mask: v*(1+amount) - gaussian(v, sigma)*amount.
#[derive(Clone, Debug, PartialEq)]
pub struct Sharpen {
    /// Blur radius of the mask.
    pub sigma: f64,
    /// Strength.
    pub amount: f64,
}

impl Operation for Sharpen {
    const SPEC: OpSpec = OpSpec {
        name: "sharpen",
        aliases: &[("unsharp_mask", "")],
        summary: "unsharp mask: v*(1+amount) - gaussian(v, sigma)*amount",
        params: &[
            float("sigma", 0.1, 50.0, Some("1"), "blur radius of the mask"),
            float("amount", 0.0, 10.0, Some("1"), "strength"),
        ],
        keeps_16bit: false,
        reference:
            "cv2.addWeighted(img, 1+amount, cv2.GaussianBlur(img, (0,0), sigma), -amount, 0)",
        tolerance: ONE_LEVEL,
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        Ok(Sharpen {
            sigma: p.f("sigma"),
            amount: p.f("amount"),
        })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("sigma", Value::Float(self.sigma)),
            ("amount", Value::Float(self.amount)),
        ]
    }

    fn cost_weight(&self) -> f64 {
        2.0
    }

    fn is_memory_bound(&self) -> bool {
        false
    }

    fn output_shape(&self, s: Shape) -> Shape {
        s
    }

    fn peak_bytes(&self, s: Shape, _: Shape, threads: u64) -> u64 {
        let k = filter::ksize_for_sigma(self.sigma) as u64;
        // The image and the result: the blur is mixed in row by row (no blurred copy).
        2 * s.bytes() + memory::separable_scratch(s, k, threads)
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        Ok(filter::sharpen(&img, self.sigma, self.amount))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        let n = filter::ksize_for_sigma(self.sigma) as usize;
        Some(Step::Sharpen {
            kernel: filter::gaussian_kernel_q8(n, self.sigma),
            a: (1.0 + self.amount) as f32,
            b: (-self.amount) as f32,
        })
    }
}
