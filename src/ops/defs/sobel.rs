//! `sobel`: 3x3 Sobel gradient magnitude per colour channel, as OpenCV's
//! `convertScaleAbs(Sobel(...))`.

use super::prelude::*;
use crate::ops::filter;

/// Which derivative `sobel` computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SobelDir {
    /// |d/dx|
    X,
    /// |d/dy|
    Y,
    /// |d/dx| + |d/dy|, saturated
    Xy,
}

/// Sobel gradient magnitude.
#[derive(Clone, Debug, PartialEq)]
pub struct Sobel {
    /// Which derivative.
    pub direction: SobelDir,
}

impl Operation for Sobel {
    const SPEC: OpSpec = OpSpec {
        name: "sobel",
        aliases: &[],
        summary: "3x3 Sobel gradient magnitude |dx|, |dy| or |dx|+|dy| per colour channel, saturated",
        params: &[choice("direction", &["x", "y", "xy"], Some("xy"), "which derivative")],
        keeps_16bit: false,
        reference: "cv2.add(cv2.convertScaleAbs(cv2.Sobel(img, cv2.CV_16S, 1, 0)), cv2.convertScaleAbs(cv2.Sobel(img, cv2.CV_16S, 0, 1)))",
        tolerance: EXACT,
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        let direction = match p.word("direction") {
            Some("x") => SobelDir::X,
            Some("y") => SobelDir::Y,
            _ => SobelDir::Xy,
        };
        Ok(Sobel { direction })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        let d = match self.direction {
            SobelDir::X => "x",
            SobelDir::Y => "y",
            SobelDir::Xy => "xy",
        };
        vec![("direction", Value::Str(d.into()))]
    }

    fn cost_weight(&self) -> f64 {
        1.0
    }

    fn is_memory_bound(&self) -> bool {
        false
    }

    fn output_shape(&self, s: Shape) -> Shape {
        s
    }

    fn peak_bytes(&self, s: Shape, _: Shape, threads: u64) -> u64 {
        // Two rows of 16-bit gradients per task.
        2 * s.bytes() + memory::task_rows(s, threads, 2, 2)
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        Ok(filter::sobel(&img, self.direction))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        Some(Step::Sobel(match self.direction {
            SobelDir::X => 0,
            SobelDir::Y => 1,
            SobelDir::Xy => 2,
        }))
    }
}
