//! `hsv`: shift hue, saturation and value in OpenCV's 8-bit HSV (the course project's
//! "custom processing" is `value=50`).

use super::prelude::*;
use crate::ops::point;

/// HSV shift: hue wraps around the circle, saturation and value saturate.
#[derive(Clone, Debug, PartialEq)]
pub struct Hsv {
    /// Hue shift in OpenCV units (180 is the full circle).
    pub hue: i32,
    /// Saturation shift.
    pub saturation: i32,
    /// Value shift.
    pub value: i32,
}

impl Operation for Hsv {
    const SPEC: OpSpec = OpSpec {
        name: "hsv",
        aliases: &[("custom_processing", "value=50")],
        summary: "shift hue (wrapping around the circle), saturation and value (saturating) in OpenCV's 8-bit HSV",
        params: &[
            int("hue", -180, 180, Some("0"), "hue shift in OpenCV units (0..180 is the full circle)"),
            int("saturation", -255, 255, Some("0"), "saturation shift"),
            int("value", -255, 255, Some("0"), "value (brightness) shift"),
        ],
        keeps_16bit: false,
        reference: "RGB2HSV, cv2.add on the channel, HSV2RGB",
        tolerance: ONE_LEVEL,
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        Ok(Hsv {
            hue: p.i("hue") as i32,
            saturation: p.i("saturation") as i32,
            value: p.i("value") as i32,
        })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("hue", Value::Int(self.hue.into())),
            ("saturation", Value::Int(self.saturation.into())),
            ("value", Value::Int(self.value.into())),
        ]
    }

    fn cost_weight(&self) -> f64 {
        2.0
    }

    fn is_memory_bound(&self) -> bool {
        false
    }

    fn output_shape(&self, s: Shape) -> Shape {
        // Gray gains colour channels.
        s.with_channels(if s.channels < 3 {
            s.channels + 2
        } else {
            s.channels
        })
    }

    fn peak_bytes(&self, s: Shape, out: Shape, _: u64) -> u64 {
        // Gray is widened to a copy first; the shift itself works in place.
        let copy = if s.channels < 3 { out.bytes() } else { 0 };
        s.bytes() + copy
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        Ok(point::hsv_shift(
            img.into_owned(),
            self.hue,
            self.saturation,
            self.value,
        ))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, channels: u8) -> Option<Step> {
        (channels >= 3).then_some(Step::Hsv([self.hue, self.saturation, self.value]))
    }
}
