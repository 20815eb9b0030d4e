//! `contrast`: v' = (v - 128) * factor + 128, saturating, as `cv2.LUT(img, clip(round((i-128)*factor+128)))`.

use super::prelude::*;
use crate::ops::point;

/// Contrast stretch around 128.
#[derive(Clone, Debug, PartialEq)]
pub struct Contrast {
    /// contrast factor; 1 keeps the image
    pub factor: f64,
}

impl Operation for Contrast {
    const SPEC: OpSpec = OpSpec {
        name: "contrast",
        aliases: &[],
        summary: "v' = (v - 128) * factor + 128, saturating",
        params: &[float(
            "factor",
            0.0,
            100.0,
            Some("1.5"),
            "contrast factor; 1 keeps the image",
        )],
        keeps_16bit: false,
        reference: "cv2.LUT(img, clip(round((i-128)*factor+128)))",
        tolerance: ONE_LEVEL,
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        Ok(Contrast {
            factor: p.f("factor"),
        })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![("factor", Value::Float(self.factor))]
    }

    fn cost_weight(&self) -> f64 {
        0.3
    }

    fn is_memory_bound(&self) -> bool {
        true
    }

    fn output_shape(&self, s: Shape) -> Shape {
        s
    }

    fn peak_bytes(&self, s: Shape, _: Shape, _: u64) -> u64 {
        s.bytes()
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        Ok(point::contrast(img.into_owned(), self.factor))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        Some(Step::Lut(point::contrast_lut(self.factor)))
    }
}
