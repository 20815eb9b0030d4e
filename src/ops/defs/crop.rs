//! `crop`: cut out a rectangle that lies inside the image, as `img[y:y+h, x:x+w]`.

use super::prelude::*;
use crate::ops::geometry;

/// Cut out a rectangle.
#[derive(Clone, Debug, PartialEq)]
pub struct Crop {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl Operation for Crop {
    const SPEC: OpSpec = OpSpec {
        name: "crop",
        aliases: &[],
        summary: "cut out a rectangle; it must lie inside the image",
        params: &[
            int("x", 0, 1 << 30, Some("0"), "left edge"),
            int("y", 0, 1 << 30, Some("0"), "top edge"),
            int("width", 1, 1 << 30, None, "width (required)"),
            int("height", 1, 1 << 30, None, "height (required)"),
        ],
        keeps_16bit: true,
        reference: "img[y:y+height, x:x+width]",
        tolerance: EXACT,
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        let (Some(width), Some(height)) = (p.int("width"), p.int("height")) else {
            return Err(OpProblem::op(
                "crop needs width and height, e.g. \"crop:x=10,y=10,width=200,height=100\"".into(),
            ));
        };
        Ok(Crop {
            x: p.i("x") as u32,
            y: p.i("y") as u32,
            width: width as u32,
            height: height as u32,
        })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("x", Value::Int(self.x.into())),
            ("y", Value::Int(self.y.into())),
            ("width", Value::Int(self.width.into())),
            ("height", Value::Int(self.height.into())),
        ]
    }

    fn cost_weight(&self) -> f64 {
        0.2
    }

    fn is_memory_bound(&self) -> bool {
        true
    }

    fn output_shape(&self, s: Shape) -> Shape {
        s.with_size(self.width, self.height)
    }

    fn peak_bytes(&self, s: Shape, out: Shape, _: u64) -> u64 {
        s.bytes() + out.bytes()
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        geometry::crop(&img, self.x, self.y, self.width, self.height)
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        Some(Step::Crop {
            x: self.x,
            y: self.y,
            width: self.width,
            height: self.height,
        })
    }
}
