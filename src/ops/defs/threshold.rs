//! `threshold`: binary threshold per colour channel, as `cv2.threshold(..., THRESH_BINARY)`.

use super::prelude::*;
use crate::ops::point;

/// 255 where v > value, else 0, per colour channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// Threshold (x257 on 16-bit).
    pub value: f64,
}

impl Operation for Threshold {
    const SPEC: OpSpec = OpSpec {
        name: "threshold",
        aliases: &[],
        summary: "binary threshold per colour channel: 255 where v > value, else 0",
        params: &[float(
            "value",
            0.0,
            255.0,
            Some("127"),
            "threshold (x257 on 16-bit)",
        )],
        keeps_16bit: true,
        reference: "cv2.threshold(img, value, 255, cv2.THRESH_BINARY)",
        tolerance: EXACT,
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        Ok(Threshold {
            value: p.f("value"),
        })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![("value", Value::Float(self.value))]
    }

    fn cost_weight(&self) -> f64 {
        0.1
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
        Ok(point::threshold(img.into_owned(), self.value))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        Some(Step::Threshold(self.value.floor() as i32))
    }
}
