//! `pad`: add a border of one colour around the image, as
//! `cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value)`.
//!
//! The first op added after the catalog became one file per op; CONTRIBUTING.md walks
//! through it. The border is `value` on colour channels and opaque where the image has
//! alpha. It runs on the CPU (a copy, at the speed of memory; no device kernel).

use super::prelude::*;
use crate::image::Samples;
use crate::ops::par;

/// Add a border.
#[derive(Clone, Debug, PartialEq)]
pub struct Pad {
    /// Rows added above.
    pub top: u32,
    /// Rows added below.
    pub bottom: u32,
    /// Columns added on the left.
    pub left: u32,
    /// Columns added on the right.
    pub right: u32,
    /// Gray level of the border's colour channels (x257 on 16-bit).
    pub value: u8,
}

impl Operation for Pad {
    const SPEC: OpSpec = OpSpec {
        name: "pad",
        aliases: &[],
        summary: "add a border: value on colour channels, opaque alpha",
        params: &[
            int("top", 0, 65535, Some("0"), "rows added above"),
            int("bottom", 0, 65535, Some("0"), "rows added below"),
            int("left", 0, 65535, Some("0"), "columns added on the left"),
            int("right", 0, 65535, Some("0"), "columns added on the right"),
            int("value", 0, 255, Some("0"), "gray level of the border (x257 on 16-bit)"),
        ],
        keeps_16bit: true,
        reference: "cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(v, v, v, 255))",
        tolerance: EXACT,
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        let side = |k| p.i(k) as u32;
        Ok(Pad {
            top: side("top"),
            bottom: side("bottom"),
            left: side("left"),
            right: side("right"),
            value: p.i("value") as u8,
        })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("top", Value::Int(self.top.into())),
            ("bottom", Value::Int(self.bottom.into())),
            ("left", Value::Int(self.left.into())),
            ("right", Value::Int(self.right.into())),
            ("value", Value::Int(self.value.into())),
        ]
    }

    fn cost_weight(&self) -> f64 {
        0.2
    }

    fn is_memory_bound(&self) -> bool {
        true
    }

    fn output_shape(&self, s: Shape) -> Shape {
        s.with_size(
            s.width.saturating_add(self.left).saturating_add(self.right),
            s.height
                .saturating_add(self.top)
                .saturating_add(self.bottom),
        )
    }

    fn peak_bytes(&self, s: Shape, out: Shape, _: u64) -> u64 {
        s.bytes() + out.bytes()
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        let (w, h) = (img.width as u64, img.height as u64);
        let ow = w + self.left as u64 + self.right as u64;
        let oh = h + self.top as u64 + self.bottom as u64;
        if ow > u32::MAX as u64 || oh > u32::MAX as u64 || ow * oh > 1 << 32 {
            return Err(OpError(format!(
                "padding {w}x{h} to {ow}x{oh} makes the image too large: use smaller borders"
            )));
        }
        let alpha = img.has_alpha();
        let (ow32, oh32, cn) = (ow as u32, oh as u32, img.channels);
        Ok(match &img.samples {
            Samples::U8(d) => {
                let fill = fill(cn, alpha, self.value, u8::MAX);
                Image::from_u8(ow32, oh32, cn, self.pad(d, img.width, img.height, &fill))
            }
            Samples::U16(d) => {
                let fill = fill(cn, alpha, self.value as u16 * 257, u16::MAX);
                Image::from_u16(ow32, oh32, cn, self.pad(d, img.width, img.height, &fill))
            }
        })
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        None
    }
}

/// One border pixel: `v` on colour channels, `opaque` on alpha (the last channel of
/// gray+alpha and RGBA).
fn fill<T: Copy>(cn: u8, alpha: bool, v: T, opaque: T) -> Vec<T> {
    let mut px = vec![v; cn as usize];
    if alpha {
        px[cn as usize - 1] = opaque;
    }
    px
}

impl Pad {
    /// The padded samples of a `w` x `h` image whose pixels are `fill.len()` samples:
    /// bands of output rows in parallel, each row written once (border, then source).
    fn pad<T: Copy + Send + Sync>(&self, src: &[T], w: u32, h: u32, fill: &[T]) -> Vec<T> {
        let cn = fill.len();
        let (w, h) = (w as usize, h as usize);
        let (left, right) = (self.left as usize * cn, self.right as usize * cn);
        let top = self.top as usize;
        let row = w * cn;
        let out_row = left + row + right;
        let border: Vec<T> = fill.iter().copied().cycle().take(out_row).collect();
        let out_len = out_row * (h + top + self.bottom as usize);
        // The row copies: see `par::copy_forward` for which is faster where.
        let forward = par::is_amd();
        let fill_rows = |out: &mut [T]| {
            par::move_bands(out, out_row, false, |y0, band| {
                for (r, orow) in band.chunks_exact_mut(out_row).enumerate() {
                    let y = y0 + r;
                    match y.checked_sub(top).filter(|&sy| sy < h) {
                        Some(sy) => {
                            orow[..left].copy_from_slice(&border[..left]);
                            let (o, s) =
                                (&mut orow[left..left + row], &src[sy * row..(sy + 1) * row]);
                            if forward {
                                par::copy_forward(o, s);
                            } else {
                                o.copy_from_slice(s);
                            }
                            orow[left + row..].copy_from_slice(&border[..right]);
                        }
                        None => orow.copy_from_slice(&border),
                    }
                }
            })
        };
        // SAFETY: every output row is written whole (border, or border and source).
        unsafe { par::uninit(out_len, fill_rows) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{apply, parse_op_str, Op};

    #[test]
    fn pads_each_side_with_the_value_and_opaque_alpha() {
        // 2x1 gray+alpha: (10, 20) (30, 40).
        let img = Image::from_u8(2, 1, 2, vec![10, 20, 30, 40]);
        let op = parse_op_str("pad:top=1,left=2,right=1,value=7").unwrap();
        let out = apply(&op, img).unwrap();
        assert_eq!((out.width, out.height, out.channels), (5, 2, 2));
        let b = [7, 255];
        let mut want = Vec::new();
        for _ in 0..5 {
            want.extend_from_slice(&b);
        }
        want.extend_from_slice(&[7, 255, 7, 255, 10, 20, 30, 40, 7, 255]);
        assert_eq!(out.u8_data(), &want[..]);
    }

    #[test]
    fn rows_longer_than_a_copy_block_match_a_pixel_by_pixel_pad() {
        // Odd widths at 1 to 4 channels: rows of 70 to 524 samples go through
        // `copy_forward`'s 64-sample moves and its tail, at every alignment.
        for (w, h, cn) in [(131u32, 5u32, 1u8), (70, 3, 2), (97, 4, 3), (131, 2, 4)] {
            let n = (w * h) as usize * cn as usize;
            let data: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
            let img = Image::from_u8(w, h, cn, data.clone());
            let (t, b, l, r) = (1usize, 2usize, 3usize, 5usize);
            let op = parse_op_str("pad:top=1,bottom=2,left=3,right=5,value=9").unwrap();
            let out = apply(&op, img).unwrap();
            let (ow, c) = (w as usize + l + r, cn as usize);
            let alpha = cn == 2 || cn == 4;
            let mut want = Vec::new();
            for y in 0..h as usize + t + b {
                for x in 0..ow {
                    let inside =
                        (t..t + h as usize).contains(&y) && (l..l + w as usize).contains(&x);
                    for k in 0..c {
                        want.push(if inside {
                            data[((y - t) * w as usize + x - l) * c + k]
                        } else if alpha && k == c - 1 {
                            255
                        } else {
                            9
                        });
                    }
                }
            }
            assert_eq!(out.u8_data(), &want[..], "{w}x{h}x{cn}");
        }
    }

    #[test]
    fn sixteen_bits_stay_sixteen_with_the_value_scaled() {
        let img = Image::from_u16(1, 1, 3, vec![1, 2, 3]);
        let out = apply(&parse_op_str("pad:bottom=1,value=1").unwrap(), img).unwrap();
        assert!(out.is_16bit());
        match out.samples {
            Samples::U16(d) => assert_eq!(d, vec![1, 2, 3, 257, 257, 257]),
            Samples::U8(_) => unreachable!("checked above"),
        }
    }

    #[test]
    fn zero_borders_keep_the_image_and_sizes_are_planned() {
        let img = Image::from_u8(3, 2, 3, (0..18).collect());
        let op = parse_op_str("pad").unwrap();
        assert_eq!(apply(&op, img.clone()).unwrap(), img);
        let op = parse_op_str("pad:top=1,bottom=2,left=3,right=4").unwrap();
        assert_eq!(crate::ops::output_size(&op, 10, 10), (17, 13));
        assert!(matches!(op, Op::Pad(Pad { right: 4, .. })));
    }
}
