//! `erode` and `dilate`: minimum and maximum over a square window, as `cv2.erode` and
//! `cv2.dilate` with a square of ones. One definition for both; `DILATE` picks.

use super::prelude::*;
use crate::ops::filter;

/// Minimum (`DILATE` false) or maximum filter over a ksize x ksize square.
#[derive(Clone, Debug, PartialEq)]
pub struct Morph<const DILATE: bool> {
    /// Window size.
    pub ksize: u32,
    /// Times applied.
    pub iterations: u32,
}

/// Minimum filter.
pub type Erode = Morph<false>;
/// Maximum filter.
pub type Dilate = Morph<true>;

const PARAMS: &[ParamSpec] = &[
    int("ksize", 1, 255, Some("3"), "window size"),
    int("iterations", 1, 100, Some("1"), "times applied"),
];

impl<const DILATE: bool> Operation for Morph<DILATE> {
    const SPEC: OpSpec = if DILATE {
        OpSpec {
            name: "dilate",
            aliases: &[],
            summary: "maximum over a ksize x ksize square; pixels outside the image are ignored",
            params: PARAMS,
            keeps_16bit: false,
            reference: "cv2.dilate(img, np.ones((ksize, ksize)), iterations=iterations)",
            tolerance: EXACT,
        }
    } else {
        OpSpec {
            name: "erode",
            aliases: &[],
            summary: "minimum over a ksize x ksize square; pixels outside the image are ignored",
            params: PARAMS,
            keeps_16bit: false,
            reference: "cv2.erode(img, np.ones((ksize, ksize)), iterations=iterations)",
            tolerance: EXACT,
        }
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        Ok(Morph {
            ksize: p.i("ksize") as u32,
            iterations: p.i("iterations") as u32,
        })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("ksize", Value::Int(self.ksize.into())),
            ("iterations", Value::Int(self.iterations.into())),
        ]
    }

    fn cost_weight(&self) -> f64 {
        0.2 * (self.ksize * self.iterations) as f64
    }

    fn is_memory_bound(&self) -> bool {
        false
    }

    fn output_shape(&self, s: Shape) -> Shape {
        s
    }

    fn peak_bytes(&self, s: Shape, _: Shape, _: u64) -> u64 {
        // The horizontal pass's copy and the output; with more than one iteration the
        // previous output is alive too.
        let copies = if self.iterations > 1 { 3 } else { 2 };
        s.bytes() + copies * s.bytes()
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        Ok(filter::morph(&img, self.ksize, self.iterations, DILATE))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        Some(Step::Morph {
            size: self.ksize as usize,
            dilate: DILATE,
            iterations: self.iterations,
        })
    }
}
