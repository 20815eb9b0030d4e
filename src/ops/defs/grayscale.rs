//! `grayscale`: BT.601 luma, as `cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)`.

use super::prelude::*;
use crate::ops::point;

/// To one gray channel (alpha kept).
#[derive(Clone, Debug, PartialEq)]
pub struct Grayscale;

impl Operation for Grayscale {
    const SPEC: OpSpec = OpSpec {
        name: "grayscale",
        aliases: &[("greyscale", "")],
        summary: "BT.601 luma with OpenCV's fixed-point rounding; output has 1 channel (+alpha)",
        params: &[],
        keeps_16bit: true,
        reference: "cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)",
        tolerance: EXACT,
    };

    fn from_params(_: &Params) -> Result<Self, OpProblem> {
        Ok(Grayscale)
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![]
    }

    fn cost_weight(&self) -> f64 {
        0.1
    }

    fn is_memory_bound(&self) -> bool {
        true
    }

    fn output_shape(&self, s: Shape) -> Shape {
        s.with_channels(if s.channels >= 3 {
            s.channels - 2
        } else {
            s.channels
        })
    }

    fn peak_bytes(&self, s: Shape, out: Shape, _: u64) -> u64 {
        s.bytes() + out.bytes()
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        Ok(point::grayscale(&img))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, channels: u8) -> Option<Step> {
        (channels >= 3).then_some(Step::Gray)
    }
}
