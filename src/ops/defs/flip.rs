//! `flip`: mirror left-right or top-bottom, as `cv2.flip`.

use super::prelude::*;
use crate::ops::geometry;

/// Mirror.
#[derive(Clone, Debug, PartialEq)]
pub struct Flip {
    /// True for left-right, false for top-bottom.
    pub horizontal: bool,
}

impl Operation for Flip {
    const SPEC: OpSpec = OpSpec {
        name: "flip",
        aliases: &[],
        summary: "mirror: h swaps left and right, v swaps top and bottom",
        params: &[choice(
            "axis",
            &["h", "v"],
            Some("h"),
            "h (horizontal mirror) or v (vertical)",
        )],
        keeps_16bit: true,
        reference: "cv2.flip(img, 1 | 0)",
        tolerance: EXACT,
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        Ok(Flip {
            horizontal: p.word("axis") != Some("v"),
        })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        let axis = if self.horizontal { "h" } else { "v" };
        vec![("axis", Value::Str(axis.into()))]
    }

    fn cost_weight(&self) -> f64 {
        0.2
    }

    fn is_memory_bound(&self) -> bool {
        true
    }

    fn output_shape(&self, s: Shape) -> Shape {
        s
    }

    fn peak_bytes(&self, s: Shape, out: Shape, _: u64) -> u64 {
        s.bytes() + out.bytes()
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        Ok(geometry::flip(&img, self.horizontal))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        Some(Step::Flip(self.horizontal))
    }
}
