//! `gamma`: v' = 255 * (v/255)^(1/gamma): gamma > 1 brightens, as `cv2.LUT(img, round(255*(i/255)**(1/gamma)))`.

use super::prelude::*;
use crate::ops::point;

/// Gamma curve.
#[derive(Clone, Debug, PartialEq)]
pub struct Gamma {
    /// gamma
    pub gamma: f64,
}

impl Operation for Gamma {
    const SPEC: OpSpec = OpSpec {
        name: "gamma",
        aliases: &[],
        summary: "v' = 255 * (v/255)^(1/gamma): gamma > 1 brightens",
        params: &[float("gamma", 0.01, 100.0, Some("2.2"), "gamma")],
        keeps_16bit: false,
        reference: "cv2.LUT(img, round(255*(i/255)**(1/gamma)))",
        tolerance: ONE_LEVEL,
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        Ok(Gamma {
            gamma: p.f("gamma"),
        })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![("gamma", Value::Float(self.gamma))]
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
        Ok(point::gamma(img.into_owned(), self.gamma))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        Some(Step::Lut(point::gamma_lut(self.gamma)))
    }
}
