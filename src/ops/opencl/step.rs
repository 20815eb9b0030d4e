//! Device steps: what an op lowers to (each op's `lower` in ops/defs), one variant per
//! way of running kernels. Most are ready to run as lowered; crop and resize depend on
//! the image's size and are fitted to it ([`Step::fit`]) just before they run.

use crate::ops::geometry::{self, Filter, ResizePlan};
use crate::ops::OpError;

/// One op, ready to enqueue on a device.
#[derive(Debug)]
pub(crate) enum Step {
    /// 255 - v on colour channels, in place.
    Invert,
    /// Saturating add of a signed amount to colour channels, in place.
    AddSat(i32),
    /// 255 where v > t, else 0, in place.
    Threshold(i32),
    /// A lookup table on colour channels, in place.
    Lut([u8; 256]),
    /// BT.601 luma of 3 or 4 channels.
    Gray,
    /// HSV shift of hue, saturation and value, in place.
    Hsv([i32; 3]),
    /// A separable Gaussian with this integer (Q8) kernel.
    Gauss(Vec<u32>),
    /// A box filter of `size` with its fixed-point normalisation.
    Box {
        /// Window size.
        size: usize,
        /// Rounding term.
        delta: u32,
        /// Fixed-point reciprocal of the area.
        scale: u32,
    },
    /// v*a + gaussian(v)*b with this Q8 kernel, in place.
    Sharpen {
        /// The blur's kernel.
        kernel: Vec<u32>,
        /// Weight of the image.
        a: f32,
        /// Weight of the blurred image.
        b: f32,
    },
    /// Sobel magnitude: 0 = x, 1 = y, 2 = both.
    Sobel(i32),
    /// Median over a 3, 5 or 7 window.
    Median(usize),
    /// Erode or dilate.
    Morph {
        /// Window size.
        size: usize,
        /// Maximum (else minimum).
        dilate: bool,
        /// Times applied.
        iterations: u32,
    },
    /// Canny with integer thresholds, low <= high.
    Canny {
        /// Low threshold.
        low: i32,
        /// High threshold.
        high: i32,
    },
    /// Mirror left-right (true) or top-bottom.
    Flip(bool),
    /// Clockwise by 90, 180 or 270 degrees.
    Rotate(u32),
    /// Cut out a rectangle (checked against the image by [`Step::fit`]).
    Crop {
        /// Left.
        x: u32,
        /// Top.
        y: u32,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// A resize as the op states it; [`Step::fit`] makes it a [`Step::ResizeTo`].
    Resize {
        /// Target width, if given.
        width: Option<u32>,
        /// Target height, if given.
        height: Option<u32>,
        /// Scale, if given.
        scale: Option<f64>,
        /// Interpolation.
        filter: Filter,
    },
    /// A resize to `dw` x `dh` with its coefficients.
    ResizeTo {
        /// Width.
        dw: usize,
        /// Height.
        dh: usize,
        /// The kernels' plan.
        plan: ResizePlan,
    },
}

impl Step {
    /// This step for a `w` x `h` image: `None` where that size leaves it to the CPU (a
    /// resize to the same size, or one only the CPU does exactly); an error where the op
    /// refuses the image (a crop outside it).
    pub(super) fn fit(self, w: usize, h: usize) -> Result<Option<Step>, OpError> {
        Ok(Some(match self {
            Step::Crop {
                x,
                y,
                width,
                height,
            } => {
                geometry::check_crop(w as u32, h as u32, x, y, width, height)?;
                self
            }
            Step::Resize {
                width,
                height,
                scale,
                filter,
            } => {
                let (dw, dh) = geometry::target_size(w as u32, h as u32, width, height, scale)?;
                let (dw, dh) = (dw as usize, dh as usize);
                if (dw, dh) == (w, h) {
                    return Ok(None);
                }
                match geometry::resize_plan(w, h, dw, dh, filter) {
                    ResizePlan::CpuOnly => return Ok(None),
                    plan => Step::ResizeTo { dw, dh, plan },
                }
            }
            other => other,
        }))
    }
}
