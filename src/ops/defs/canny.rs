//! `canny`: Canny edges, as `cv2.Canny` (3x3 Sobel, L1 norm).

use super::prelude::*;
use crate::ops::canny;

/// Canny edges; the output has one channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Canny {
    /// Low hysteresis threshold.
    pub low: f64,
    /// High hysteresis threshold.
    pub high: f64,
}

impl Operation for Canny {
    const SPEC: OpSpec = OpSpec {
        name: "canny",
        aliases: &[("edge_detection", "")],
        summary: "Canny edges (3x3 Sobel, L1 norm; colour uses the channel with the strongest gradient); output 1 channel",
        params: &[
            float("low", 0.0, 100000.0, Some("100"), "lower hysteresis threshold"),
            float("high", 0.0, 100000.0, Some("200"), "upper hysteresis threshold"),
        ],
        keeps_16bit: false,
        reference: "cv2.Canny(img, low, high)",
        tolerance: "at least 99.9% identical pixels",
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        Ok(Canny {
            low: p.f("low"),
            high: p.f("high"),
        })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("low", Value::Float(self.low)),
            ("high", Value::Float(self.high)),
        ]
    }

    fn cost_weight(&self) -> f64 {
        6.0
    }

    fn is_memory_bound(&self) -> bool {
        false
    }

    fn output_shape(&self, s: Shape) -> Shape {
        s.with_channels(1)
    }

    fn peak_bytes(&self, s: Shape, out: Shape, threads: u64) -> u64 {
        // The image and the bordered one-byte map, with each task's band of gradients
        // (magnitudes i32 of 18 bordered rows, dx and dy i16 of 16, one Sobel row of
        // every channel); then the map, the edge stack (u32, at most one entry a pixel,
        // twice that for the vector's growth) and the output.
        let bordered = (s.width as u64 + 2) * (s.height as u64 + 2);
        let band = 18 * (s.width as u64 + 2) * 4 + 2 * 16 * s.width as u64 * 2;
        let gradients = s.bytes() + bordered + threads * (band + 4 * s.row_bytes());
        let hysteresis = bordered + 2 * bordered * 4 + out.bytes();
        gradients.max(hysteresis)
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        let candidates = canny::suppressed(&img, self.low, self.high);
        // The image is no longer needed: free it (when it is ours) before the trace.
        drop(img);
        Ok(canny::trace(candidates))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        let (mut lo, mut hi) = (self.low.floor() as i32, self.high.floor() as i32);
        if lo > hi {
            std::mem::swap(&mut lo, &mut hi);
        }
        Some(Step::Canny { low: lo, high: hi })
    }
}
