//! `blur`: Gaussian blur, as `cv2.GaussianBlur` (border reflect-101).

use super::prelude::*;
use crate::ops::filter;

/// Gaussian blur.
#[derive(Clone, Debug, PartialEq)]
pub struct Blur {
    /// Odd kernel size, or 0 to derive it from sigma.
    pub ksize: u32,
    /// Sigma, or 0 to derive it from ksize.
    pub sigma: f64,
}

impl Operation for Blur {
    const SPEC: OpSpec = OpSpec {
        name: "blur",
        aliases: &[("gaussian_blur", "")],
        summary: "Gaussian blur, border reflect-101; default is cv2.GaussianBlur(img, (5,5), 0)",
        params: &[
            int(
                "ksize",
                0,
                255,
                Some("5"),
                "odd kernel size; 0 derives it from sigma",
            ),
            float(
                "sigma",
                0.0,
                100.0,
                Some("0"),
                "standard deviation; 0 derives it from ksize",
            ),
        ],
        keeps_16bit: false,
        reference: "cv2.GaussianBlur(img, (ksize, ksize), sigma)",
        tolerance:
            "bit-exact for the default; elsewhere at most 1 level on at most 0.5% of samples",
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        let ksize = odd_or_zero("ksize", p.i("ksize"), true)?;
        let sigma = p.f("sigma");
        if ksize == 0 && sigma <= 0.0 {
            return Err(OpProblem::param(
                "sigma",
                "with ksize=0 give a sigma above 0".into(),
            ));
        }
        Ok(Blur { ksize, sigma })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("ksize", Value::Int(self.ksize.into())),
            ("sigma", Value::Float(self.sigma)),
        ]
    }

    fn cost_weight(&self) -> f64 {
        1.0
    }

    fn is_memory_bound(&self) -> bool {
        false
    }

    fn output_shape(&self, s: Shape) -> Shape {
        s
    }

    fn peak_bytes(&self, s: Shape, _: Shape, threads: u64) -> u64 {
        let k = filter::gaussian_ksize(self.ksize, self.sigma) as u64;
        2 * s.bytes() + memory::separable_scratch(s, k, threads)
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        Ok(filter::gaussian(&img, self.ksize, self.sigma))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        let n = filter::gaussian_ksize(self.ksize, self.sigma);
        Some(Step::Gauss(filter::gaussian_kernel_q8(
            n as usize, self.sigma,
        )))
    }
}
