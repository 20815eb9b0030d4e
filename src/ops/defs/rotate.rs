//! `rotate`: clockwise by a right angle, as `cv2.rotate`.

use super::prelude::*;
use crate::ops::geometry;

/// Rotate clockwise by 90, 180 or 270 degrees.
#[derive(Clone, Debug, PartialEq)]
pub struct Rotate {
    /// Degrees clockwise.
    pub angle: u32,
}

impl Operation for Rotate {
    const SPEC: OpSpec = OpSpec {
        name: "rotate",
        aliases: &[],
        summary: "rotate clockwise by a right angle",
        params: &[int(
            "angle",
            90,
            270,
            Some("90"),
            "90, 180 or 270 degrees clockwise",
        )],
        keeps_16bit: true,
        reference:
            "cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE | ROTATE_180 | ROTATE_90_COUNTERCLOCKWISE)",
        tolerance: EXACT,
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        let angle = p.i("angle");
        if ![90, 180, 270].contains(&angle) {
            return Err(OpProblem::param(
                "angle",
                format!("{angle} is not a right angle: use 90, 180 or 270"),
            ));
        }
        Ok(Rotate {
            angle: angle as u32,
        })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![("angle", Value::Int(self.angle.into()))]
    }

    fn cost_weight(&self) -> f64 {
        0.2
    }

    fn is_memory_bound(&self) -> bool {
        true
    }

    fn output_shape(&self, s: Shape) -> Shape {
        match self.angle {
            90 | 270 => s.with_size(s.height, s.width),
            _ => s,
        }
    }

    fn peak_bytes(&self, s: Shape, out: Shape, _: u64) -> u64 {
        s.bytes() + out.bytes()
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        Ok(geometry::rotate(&img, self.angle))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        Some(Step::Rotate(self.angle))
    }
}
