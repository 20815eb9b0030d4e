//! The operations: what each one is, declared once, and how to run it.
//!
//! Every op lives in its own file under `defs/`: a struct holding its parameters and
//! an [`Operation`] impl with its name, aliases, parameters with ranges and defaults,
//! how it is built from checked values, its cost, its memory need, its CPU
//! implementation and its lowering to a device step. The list in `defs/mod.rs` turns
//! those into the [`Op`] enum and [`CATALOG`] with exhaustive matches, so an op is
//! either complete or does not compile. `--list-ops`, the manifest validator, the wire
//! format (the text form) and the golden tests all read from there.
//!
//! The algorithms themselves live in the family modules (`point`, `filter`,
//! `geometry`, `canny`), shared by the ops that use them; they know nothing of files,
//! manifests or ranks.

mod box_filter;
mod canny;
mod defs;
mod filter;
mod geometry;
mod median;
#[cfg(feature = "opencl")]
pub mod opencl;
#[cfg(not(feature = "opencl"))]
#[path = "opencl_absent.rs"]
pub mod opencl;
mod par;
mod parse;
mod point;
mod spec;

use crate::image::Image;
use crate::memory::Shape;
use std::borrow::Cow;

pub use defs::*;
pub(crate) use filter::BAND_ROWS;
pub use geometry::{thumbnail, Filter};
pub use parse::{lookup, nearest_name, parse_op_object, parse_op_str, OpError, OpProblem};
pub(crate) use parse::{odd_or_zero, Params};
pub use spec::{OpSpec, ParamKind, ParamSpec, Value};

/// Everything one operation declares, in one place. Each op in `defs/` implements it;
/// none of the methods has a default, so a new op compiles only once every part is
/// written (see CONTRIBUTING.md).
pub(crate) trait Operation: Sized {
    /// Name, aliases, summary, parameters with ranges and defaults, and the reference
    /// it is tested against.
    const SPEC: OpSpec;

    /// Builds the op from values already checked against [`Operation::SPEC`] (kind and
    /// range) with defaults filled in; checks what ranges cannot say (odd sizes,
    /// parameters that exclude each other).
    fn from_params(p: &Params) -> Result<Self, OpProblem>;

    /// The parameter values in the order of `SPEC.params`, absent optional ones left
    /// out: the canonical text form, which parses back to an equal op.
    fn params(&self) -> Vec<(&'static str, Value)>;

    /// Relative cost per pixel, used to weigh items for scheduling and ETA.
    fn cost_weight(&self) -> f64;

    /// Whether the op does so little per byte that a CPU runs it at the speed of
    /// memory (point ops, lookup tables, copies): a discrete device pays off only for a
    /// pipeline with other work in it.
    fn is_memory_bound(&self) -> bool;

    /// The layout the op produces from `s` (size and channels).
    fn output_shape(&self, s: Shape) -> Shape;

    /// The most bytes alive while the op runs on an `s` image giving `out`, its input
    /// included, with `threads` rayon threads (see `memory`).
    fn peak_bytes(&self, s: Shape, out: Shape, threads: u64) -> u64;

    /// Runs the op on the CPU. Ops that work in place take the image with
    /// `into_owned` (a copy only when it was borrowed); the others read it.
    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError>;

    /// The device step that gives exactly [`Operation::run`]'s result on `channels`
    /// 8-bit channels, or `None` where the op runs on the CPU.
    #[cfg(feature = "opencl")]
    fn lower(&self, channels: u8) -> Option<opencl::Step>;
}

/// Runs one op on an image; 16-bit images are reduced to 8 bits first for ops that
/// do not keep 16 bits (see [`OpSpec::keeps_16bit`]). Point ops work in place.
pub fn apply(op: &Op, img: Image) -> Result<Image, OpError> {
    let img = if img.is_16bit() && !op.keeps_16bit() {
        // The 16-bit input goes before the op runs, as the memory model counts it.
        let reduced = point::reduced_to_u8(&img);
        drop(img);
        reduced
    } else {
        img
    };
    op.run(Cow::Owned(img))
}

/// [`apply`] on a borrowed image: ops that make a new buffer read the input in place,
/// point ops work on a copy.
pub fn apply_ref(op: &Op, img: &Image) -> Result<Image, OpError> {
    if img.is_16bit() && !op.keeps_16bit() {
        return op.run(Cow::Owned(point::reduced_to_u8(img)));
    }
    op.run(Cow::Borrowed(img))
}

/// The output size an op produces from an input size (for plans and dry runs).
pub fn output_size(op: &Op, w: u32, h: u32) -> (u32, u32) {
    let s = op.output_shape(Shape {
        width: w,
        height: h,
        channels: 3,
        deep: false,
    });
    (s.width, s.height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_string_and_object_forms_alike() {
        let a = parse_op_str("blur:sigma=2,ksize=0").unwrap();
        let obj = serde_json::json!({"op": "blur", "sigma": 2, "ksize": 0});
        let b = parse_op_object(obj.as_object().unwrap()).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a,
            Op::Blur(Blur {
                ksize: 0,
                sigma: 2.0
            })
        );
    }

    #[test]
    fn aliases_carry_their_presets() {
        assert_eq!(
            parse_op_str("custom_processing").unwrap(),
            Op::Hsv(Hsv {
                hue: 0,
                saturation: 0,
                value: 50
            })
        );
        assert_eq!(
            parse_op_str("edge_detection").unwrap(),
            Op::Canny(Canny {
                low: 100.0,
                high: 200.0
            })
        );
        assert_eq!(parse_op_str("color_inversion").unwrap(), Op::Invert(Invert));
        assert_eq!(parse_op_str("greyscale").unwrap(), Op::Grayscale(Grayscale));
    }

    #[test]
    fn unknown_names_suggest_the_nearest() {
        let e = parse_op_str("grayscal").unwrap_err();
        assert!(
            e[0].message.contains("did you mean \"grayscale\""),
            "{:?}",
            e
        );
        let e = parse_op_str("blurr").unwrap_err();
        assert!(e[0].message.contains("\"blur\""), "{:?}", e);
    }

    #[test]
    fn out_of_range_and_even_sizes_name_the_parameter() {
        let e = parse_op_str("blur:sigma=-1").unwrap_err();
        assert_eq!(e[0].field.as_deref(), Some("sigma"));
        let e = parse_op_str("median:ksize=4").unwrap_err();
        assert_eq!(e[0].field.as_deref(), Some("ksize"));
        assert!(e[0].message.contains("odd"));
        let e = parse_op_str("flip:axis=diagonal").unwrap_err();
        assert!(e[0].message.contains("h, v"));
        let e = parse_op_str("invert:amount=3").unwrap_err();
        assert!(e[0].message.contains("takes no parameters"));
    }

    #[test]
    fn canonical_text_parses_back_to_the_same_op() {
        for text in [
            "grayscale",
            "blur:sigma=1.37,ksize=0",
            "canny:low=30.5,high=90",
            "custom_processing",
            "hsv:hue=-30,saturation=12",
            "sharpen:sigma=2.5,amount=0.25",
            "sobel:direction=y",
            "resize:scale=0.37,filter=lanczos3",
            "resize:width=100,height=50,filter=area",
            "flip:axis=v",
            "crop:x=1,y=2,width=3,height=4",
            "gamma:gamma=0.45",
            "contrast:factor=0.8",
            "erode:ksize=5,iterations=2",
            "threshold:value=200.5",
            "darken:amount=7",
        ] {
            let op = parse_op_str(text).unwrap();
            assert_eq!(
                parse_op_str(&op.to_text()).unwrap(),
                op,
                "{text} -> {}",
                op.to_text()
            );
        }
    }

    #[test]
    fn resize_needs_exactly_one_way_to_size() {
        assert!(parse_op_str("resize").is_err());
        assert!(parse_op_str("resize:scale=0.5,width=10").is_err());
        assert!(parse_op_str("resize:width=10").is_ok());
    }

    #[test]
    fn every_catalog_default_parses() {
        for spec in CATALOG {
            let text = match spec.name {
                "resize" => "resize:scale=0.5".to_string(),
                "crop" => "crop:width=1,height=1".to_string(),
                n => n.to_string(),
            };
            assert!(parse_op_str(&text).is_ok(), "{text}");
            for (alias, _) in spec.aliases {
                assert!(parse_op_str(alias).is_ok(), "{alias}");
            }
        }
    }

    /// Every op, with every parameter set (ints to their maximum): the canonical text parses back to an equal op, names the op, and
    /// lists the parameters in the declared order.
    #[test]
    fn every_op_text_round_trips_with_every_parameter_set() {
        for spec in CATALOG {
            let params: Vec<String> = spec
                .params
                .iter()
                .filter(|p| !(spec.name == "resize" && p.name == "scale"))
                .map(|p| {
                    let v = match p.kind {
                        // Every int range here ends on a valid value (odd sizes, 270 degrees).
                        ParamKind::Int { max, .. } => max.to_string(),
                        ParamKind::Float { min, max } => ((min + max) / 3.0).to_string(),
                        ParamKind::Choice { values } => values[values.len() - 1].to_string(),
                    };
                    format!("{}={v}", p.name)
                })
                .collect();
            let text = format!("{}:{}", spec.name, params.join(","));
            let op = parse_op_str(&text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert_eq!(op.name(), spec.name);
            assert_eq!(op.spec().name, spec.name);
            let canonical = op.to_text();
            assert_eq!(
                parse_op_str(&canonical).unwrap(),
                op,
                "{text} -> {canonical}"
            );
            let order: Vec<&str> = canonical
                .split_once(':')
                .map(|(_, ps)| {
                    ps.split(',')
                        .filter_map(|kv| kv.split('=').next())
                        .collect()
                })
                .unwrap_or_default();
            let declared: Vec<&str> = spec
                .params
                .iter()
                .map(|p| p.name)
                .filter(|n| order.contains(n))
                .collect();
            assert_eq!(order, declared, "{canonical}");
        }
    }

    /// The output shape the plan and the memory model use is the shape the op makes.
    #[test]
    fn declared_output_shapes_are_what_the_ops_produce() {
        for spec in CATALOG {
            let text = match spec.name {
                "resize" => "resize:scale=0.5".to_string(),
                "crop" => "crop:x=1,y=2,width=5,height=3".to_string(),
                "pad" => "pad:top=1,left=2".to_string(),
                n => n.to_string(),
            };
            let op = parse_op_str(&text).unwrap();
            for cn in 1..=4u8 {
                let img = Image::from_u8(9, 7, cn, vec![100; 9 * 7 * cn as usize]);
                let out = apply(&op, img).unwrap();
                let s = op.output_shape(Shape {
                    width: 9,
                    height: 7,
                    channels: cn,
                    deep: false,
                });
                assert_eq!(
                    (s.width, s.height, s.channels),
                    (out.width, out.height, out.channels),
                    "{text} on {cn} channels"
                );
            }
        }
    }
}
