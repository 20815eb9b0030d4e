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
        // Gray (and gray+alpha) stays as it is: an owned image is returned untouched
        // (`point::grayscale` copies a borrowed one).
        Ok(match img {
            Cow::Owned(img) if img.channels < 3 => img,
            img => point::grayscale(&img),
        })
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, channels: u8) -> Option<Step> {
        (channels >= 3).then_some(Step::Gray)
    }
}

#[cfg(test)]
mod tests {
    use crate::image::Image;
    use crate::ops::{apply, apply_ref, parse_op_str};

    #[test]
    fn gray_and_gray_alpha_come_back_unchanged_owned_or_borrowed() {
        let op = parse_op_str("grayscale").unwrap();
        for (w, h, cn) in [(1u32, 1u32, 1u8), (131, 67, 1), (97, 300, 2)] {
            let n = (w * h) as usize * cn as usize;
            let d8: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
            let d16: Vec<u16> = (0..n).map(|i| (i * 4099 % 65521) as u16).collect();
            for img in [
                Image::from_u8(w, h, cn, d8.clone()),
                Image::from_u16(w, h, cn, d16.clone()),
            ] {
                assert_eq!(apply_ref(&op, &img).unwrap(), img);
                assert_eq!(apply(&op, img.clone()).unwrap(), img);
            }
        }
    }
}
