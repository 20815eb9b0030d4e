//! `box_blur`: normalised box filter, as `cv2.blur` (border reflect-101).

use super::prelude::*;
use crate::ops::filter;

/// Mean over a ksize x ksize window.
#[derive(Clone, Debug, PartialEq)]
pub struct BoxBlur {
    /// Window size.
    pub ksize: u32,
}

impl Operation for BoxBlur {
    const SPEC: OpSpec = OpSpec {
        name: "box_blur",
        aliases: &[],
        summary: "normalised box filter, border reflect-101",
        params: &[int("ksize", 1, 255, Some("5"), "window size")],
        keeps_16bit: false,
        reference: "cv2.blur(img, (ksize, ksize))",
        tolerance: EXACT,
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        Ok(BoxBlur {
            ksize: p.i("ksize") as u32,
        })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![("ksize", Value::Int(self.ksize.into()))]
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
        2 * s.bytes() + memory::separable_scratch(s, self.ksize as u64, threads)
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        Ok(filter::box_blur(&img, self.ksize))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        // The device sums in 16 bits: at most 256 samples of 255.
        let area = self.ksize * self.ksize;
        (area <= 256).then(|| {
            let (delta, scale) = filter::box_fixed_point(area);
            Step::Box {
                size: self.ksize as usize,
                delta,
                scale,
            }
        })
    }
}
