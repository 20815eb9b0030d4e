//! `equalize`: histogram equalization per colour channel, as `cv2.equalizeHist`.

use super::prelude::*;
use crate::ops::point;

/// Histogram equalization, each colour channel on its own.
#[derive(Clone, Debug, PartialEq)]
pub struct Equalize;

impl Operation for Equalize {
    const SPEC: OpSpec = OpSpec {
        name: "equalize",
        aliases: &[],
        summary: "histogram equalization, each colour channel on its own",
        params: &[],
        keeps_16bit: false,
        reference: "cv2.equalizeHist per channel",
        tolerance: EXACT,
    };

    fn from_params(_: &Params) -> Result<Self, OpProblem> {
        Ok(Equalize)
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![]
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
        Ok(point::equalize(img.into_owned()))
    }

    /// The histogram needs the whole image before any pixel changes: no kernel yet.
    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        None
    }
}
