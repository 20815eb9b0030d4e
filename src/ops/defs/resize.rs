//! `resize`: to a width and/or height or by a scale, as `cv2.resize` (lanczos3 as
//! Pillow's LANCZOS).

use super::prelude::*;
use crate::ops::geometry::{self, Filter};

/// Resize.
#[derive(Clone, Debug, PartialEq)]
pub struct Resize {
    /// Target width, if given.
    pub width: Option<u32>,
    /// Target height, if given.
    pub height: Option<u32>,
    /// Scale, if given (instead of width and height).
    pub scale: Option<f64>,
    /// Interpolation.
    pub filter: Filter,
}

const FILTERS: [(&str, Filter); 5] = [
    ("nearest", Filter::Nearest),
    ("bilinear", Filter::Bilinear),
    ("bicubic", Filter::Bicubic),
    ("lanczos3", Filter::Lanczos3),
    ("area", Filter::Area),
];

impl Resize {
    /// For shrink-on-load: when this resize shrinks a `w`x`h` image by `at_least` times
    /// or more in both dimensions, the same resize with its target size fixed (so that
    /// it gives that size from a smaller decode of the same image too) and that size.
    /// `None` for `nearest`, whose point is to pick samples rather than average them:
    /// a reduced decode has already averaged them.
    pub fn fixed_downscale(&self, w: u32, h: u32, at_least: u32) -> Option<(Resize, (u32, u32))> {
        if self.filter == Filter::Nearest {
            return None;
        }
        let (tw, th) = geometry::target_size(w, h, self.width, self.height, self.scale).ok()?;
        if tw.saturating_mul(at_least) > w || th.saturating_mul(at_least) > h {
            return None;
        }
        let fixed = Resize {
            width: Some(tw),
            height: Some(th),
            scale: None,
            filter: self.filter,
        };
        Some((fixed, (tw, th)))
    }
}

impl Operation for Resize {
    const SPEC: OpSpec = OpSpec {
        name: "resize",
        aliases: &[],
        summary: "resize to width and/or height (aspect kept when one is given) or by scale; \
                  as the first op on a JPEG it shrinks 2x or more (any filter but nearest), the \
                  JPEG is decoded at 1/2, 1/4 or 1/8 scale, at least twice the target size, and \
                  resized the rest of the way (--no-shrink-on-load decodes it whole)",
        params: &[
            int("width", 1, 65535, None, "target width"),
            int("height", 1, 65535, None, "target height"),
            float("scale", 0.001, 100.0, None, "scale factor (instead of width/height)"),
            choice(
                "filter",
                &["nearest", "bilinear", "bicubic", "lanczos3", "area"],
                Some("bilinear"),
                "interpolation",
            ),
        ],
        keeps_16bit: false,
        reference: "cv2.resize(img, (w, h), interpolation=INTER_NEAREST|LINEAR|CUBIC|AREA); lanczos3: Pillow Image.resize(LANCZOS)",
        tolerance: "nearest bit-exact; others at most 1 level on at most 0.5% of samples",
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        let width = p.int("width").map(|v| v as u32);
        let height = p.int("height").map(|v| v as u32);
        let scale = p.float("scale");
        if scale.is_some() && (width.is_some() || height.is_some()) {
            return Err(OpProblem::param(
                "scale",
                "give either scale or width/height, not both".into(),
            ));
        }
        if scale.is_none() && width.is_none() && height.is_none() {
            return Err(OpProblem::op(
                "resize needs a size: width, height (the other follows the aspect ratio) or scale, e.g. \"resize:width=800\"".into(),
            ));
        }
        let filter = FILTERS
            .iter()
            .find(|(name, _)| Some(*name) == p.word("filter"))
            .map_or(Filter::Bilinear, |(_, f)| *f);
        Ok(Resize {
            width,
            height,
            scale,
            filter,
        })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        let mut v = Vec::new();
        if let Some(w) = self.width {
            v.push(("width", Value::Int(w.into())));
        }
        if let Some(h) = self.height {
            v.push(("height", Value::Int(h.into())));
        }
        if let Some(s) = self.scale {
            v.push(("scale", Value::Float(s)));
        }
        let filter = FILTERS.iter().find(|(_, f)| *f == self.filter);
        v.push((
            "filter",
            Value::Str(filter.map_or("bilinear", |(n, _)| n).into()),
        ));
        v
    }

    fn cost_weight(&self) -> f64 {
        1.0
    }

    fn is_memory_bound(&self) -> bool {
        false
    }

    fn output_shape(&self, s: Shape) -> Shape {
        let (w, h) = geometry::target_size(s.width, s.height, self.width, self.height, self.scale)
            .unwrap_or((s.width, s.height));
        s.with_size(w, h)
    }

    fn peak_bytes(&self, s: Shape, out: Shape, threads: u64) -> u64 {
        let (w, h) = (s.width as u64, s.height as u64);
        let (dw, dh) = (out.width as u64, out.height as u64);
        // Lanczos resizes rows first into an image of the new width and old height.
        let between = if self.filter == Filter::Lanczos3 {
            dw * h * s.channels as u64
        } else {
            0
        };
        // Coefficient tables for both axes, and 16 bytes a sample of rows per task.
        let tables = 64 * (w + h + dw + dh);
        let rows = threads * 16 * out.row_bytes();
        s.bytes() + out.bytes() + between + tables + rows
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        let (w, h) =
            geometry::target_size(img.width, img.height, self.width, self.height, self.scale)?;
        Ok(geometry::resize(&img, w, h, self.filter))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        (self.filter != Filter::Lanczos3).then_some(Step::Resize {
            width: self.width,
            height: self.height,
            scale: self.scale,
            filter: self.filter,
        })
    }
}
