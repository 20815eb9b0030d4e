//! `median`: median filter, as `cv2.medianBlur` (border replicate).

use super::prelude::*;
use crate::ops::median;

/// Median filter over a ksize x ksize window.
#[derive(Clone, Debug, PartialEq)]
pub struct Median {
    /// Odd window size.
    pub ksize: u32,
}

impl Operation for Median {
    const SPEC: OpSpec = OpSpec {
        name: "median",
        aliases: &[],
        summary: "median filter, border replicate",
        params: &[int("ksize", 3, 15, Some("5"), "odd window size")],
        keeps_16bit: false,
        reference: "cv2.medianBlur(img, ksize)",
        tolerance: EXACT,
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        Ok(Median {
            ksize: odd_or_zero("ksize", p.i("ksize"), false)?,
        })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![("ksize", Value::Int(self.ksize.into()))]
    }

    fn cost_weight(&self) -> f64 {
        0.5 * (self.ksize * self.ksize) as f64
    }

    fn is_memory_bound(&self) -> bool {
        false
    }

    fn output_shape(&self, s: Shape) -> Shape {
        s
    }

    fn peak_bytes(&self, s: Shape, _: Shape, threads: u64) -> u64 {
        // Per task: a tile of lanes (about 16 KiB, up to three times that for small
        // kernels) and the row pointers; for 5x5, seven padded rows instead.
        let row = u64::from(s.width + 4) * u64::from(s.channels);
        2 * s.bytes() + threads * ((48 << 10) + 16 * self.ksize as u64).max(7 * row)
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        Ok(median::median(&img, self.ksize))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        (self.ksize <= 7).then_some(Step::Median(self.ksize as usize))
    }
}
