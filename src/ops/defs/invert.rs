//! `invert`: 255 - v on colour channels, as `cv2.bitwise_not`.

use super::prelude::*;
use crate::ops::point;

/// 255 - v (65535 - v on 16 bits); alpha kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Invert;

impl Operation for Invert {
    const SPEC: OpSpec = OpSpec {
        name: "invert",
        aliases: &[("color_inversion", "")],
        summary: "255 - v on colour channels; alpha kept",
        params: &[],
        keeps_16bit: true,
        reference: "cv2.bitwise_not(img)",
        tolerance: EXACT,
    };

    fn from_params(_: &Params) -> Result<Self, OpProblem> {
        Ok(Invert)
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
        s
    }

    fn peak_bytes(&self, s: Shape, _: Shape, _: u64) -> u64 {
        s.bytes()
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        Ok(point::invert(img.into_owned()))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        Some(Step::Invert)
    }
}
