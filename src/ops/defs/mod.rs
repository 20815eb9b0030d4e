//! The list of operations. Each line of `catalog!` names an op's type and the file that
//! defines it; the macro makes the [`Op`] enum, [`CATALOG`] (in `--list-ops` order) and
//! the exhaustive matches that route each [`Op`] method to the op's [`Operation`] impl.
//! Adding an op is one file here, its `mod` line and its line in the list (see
//! CONTRIBUTING.md). Two ops that differ only in a sign or a direction share one
//! generic definition (`brightness.rs`, `morph.rs`).

use super::{OpError, OpProblem, OpSpec, Operation, Params, Value};
use crate::image::Image;
use crate::memory::Shape;
use std::borrow::Cow;

/// What every op file needs.
mod prelude {
    pub(super) use crate::image::Image;
    pub(super) use crate::memory::{self, Shape};
    #[cfg(feature = "opencl")]
    pub(super) use crate::ops::opencl::Step;
    pub(super) use crate::ops::spec::{
        choice, float, int, OpSpec, ParamSpec, Value, EXACT, ONE_LEVEL,
    };
    pub(super) use crate::ops::{odd_or_zero, OpError, OpProblem, Operation, Params};
    pub(super) use std::borrow::Cow;
}

macro_rules! catalog {
    ($($variant:ident in $module:ident),* $(,)?) => {
        $(pub use $module::$variant;)*
        pub use sobel::SobelDir;

        /// A parsed, validated operation with its parameters (see each op's struct).
        #[derive(Clone, Debug, PartialEq)]
        pub enum Op {
            $(
                #[doc = concat!("See [`", stringify!($variant), "`].")]
                $variant($variant),
            )*
        }

        /// Every operation imgproc knows, in the order `--list-ops` shows them.
        pub static CATALOG: &[OpSpec] = &[$(<$variant as Operation>::SPEC),*];

        /// Builds the op named `name` (a canonical name) from checked values.
        pub(super) fn build(name: &str, p: &Params) -> Option<Result<Op, OpProblem>> {
            $(
                if name == <$variant as Operation>::SPEC.name {
                    return Some($variant::from_params(p).map(Op::$variant));
                }
            )*
            None
        }

        impl Op {
            /// What this op declares: name, aliases, parameters, reference.
            pub fn spec(&self) -> &'static OpSpec {
                match self {
                    $(Op::$variant(_) => {
                        const SPEC: &OpSpec = &<$variant as Operation>::SPEC;
                        SPEC
                    })*
                }
            }

            fn values(&self) -> Vec<(&'static str, Value)> {
                match self {
                    $(Op::$variant(o) => o.params(),)*
                }
            }

            /// Relative cost per pixel, used to weigh items for scheduling and ETA.
            pub fn cost_weight(&self) -> f64 {
                match self {
                    $(Op::$variant(o) => o.cost_weight(),)*
                }
            }

            /// See [`Operation::is_memory_bound`].
            pub fn is_memory_bound(&self) -> bool {
                match self {
                    $(Op::$variant(o) => o.is_memory_bound(),)*
                }
            }

            /// The layout this op produces from `s`.
            pub fn output_shape(&self, s: Shape) -> Shape {
                match self {
                    $(Op::$variant(o) => o.output_shape(s),)*
                }
            }

            pub(crate) fn peak_bytes(&self, s: Shape, out: Shape, threads: u64) -> u64 {
                match self {
                    $(Op::$variant(o) => o.peak_bytes(s, out, threads),)*
                }
            }

            pub(crate) fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
                match self {
                    $(Op::$variant(o) => o.run(img),)*
                }
            }

            /// The device step for this op on `channels` 8-bit channels, `None` where
            /// it runs on the CPU.
            #[cfg(feature = "opencl")]
            pub(crate) fn lower(&self, channels: u8) -> Option<crate::ops::opencl::Step> {
                match self {
                    $(Op::$variant(o) => o.lower(channels),)*
                }
            }
        }
    };
}

mod blur;
mod box_blur;
mod brightness;
mod canny;
mod contrast;
mod crop;
mod equalize;
mod flip;
mod gamma;
mod grayscale;
mod hsv;
mod invert;
mod median;
mod morph;
mod pad;
mod resize;
mod rotate;
mod sharpen;
mod sobel;
mod threshold;

pub use brightness::Brightness;
pub use morph::Morph;

catalog! {
    Grayscale in grayscale,
    Invert in invert,
    Blur in blur,
    Canny in canny,
    Brighten in brightness,
    Darken in brightness,
    Threshold in threshold,
    Hsv in hsv,
    Sharpen in sharpen,
    Median in median,
    BoxBlur in box_blur,
    Sobel in sobel,
    Resize in resize,
    Rotate in rotate,
    Flip in flip,
    Crop in crop,
    Equalize in equalize,
    Gamma in gamma,
    Contrast in contrast,
    Erode in morph,
    Dilate in morph,
    Pad in pad,
}

impl Op {
    /// The canonical name of this op.
    pub fn name(&self) -> &'static str {
        self.spec().name
    }

    /// The canonical `name:key=value,...` text of this op, which
    /// [`super::parse_op_str`] reads back to an equal op (used to send pipelines to
    /// other ranks, and in journals).
    pub fn to_text(&self) -> String {
        let values = self.values();
        if values.is_empty() {
            return self.name().to_string();
        }
        let params: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}:{}", self.name(), params.join(","))
    }

    /// Whether 16-bit input stays 16-bit through this op; the others reduce it to
    /// 8 bits (`v / 257`, rounded) before they run.
    pub fn keeps_16bit(&self) -> bool {
        self.spec().keeps_16bit
    }
}
