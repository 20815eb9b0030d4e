//! The operation catalog: names, aliases, parameters with defaults and ranges, and the
//! parsing of `"blur:sigma=2"` strings and `{"op": "blur", "sigma": 2}` objects into
//! typed [`Op`] values, plus [`apply`], which runs one op on an [`Image`].
//!
//! Everything a user can name lives in [`CATALOG`], so `--list-ops`, the manifest
//! validator and the error messages ("did you mean ...") all read one table. The
//! kernels live in the family modules below; they know nothing of files or manifests.

mod canny;
mod filter;
mod geometry;
pub mod opencl;
mod par;
mod point;

use crate::image::Image;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

pub(crate) use filter::{gaussian_ksize, ksize_for_sigma, BAND_ROWS};
pub use geometry::Filter;

/// What kind of value a parameter takes.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ParamKind {
    /// An integer in `min..=max`.
    Int {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// A number in `min..=max`.
    Float {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// One of a fixed set of words.
    Choice {
        /// The allowed words.
        values: &'static [&'static str],
    },
}

/// A parameter value, as given by the user or as a default.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A number.
    Float(f64),
    /// A word.
    Str(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Str(v) => write!(f, "{v}"),
        }
    }
}

/// One parameter of an operation.
#[derive(Debug, Serialize)]
pub struct ParamSpec {
    /// The parameter's name, as written in `op:name=value`.
    pub name: &'static str,
    /// Its type and range.
    pub kind: ParamKind,
    /// Its default; `None` for parameters that are absent unless given.
    pub default: Option<&'static str>,
    /// One line for people.
    pub help: &'static str,
}

/// One operation of the catalog.
#[derive(Debug, Serialize)]
pub struct OpSpec {
    /// Canonical name.
    pub name: &'static str,
    /// Other names: `(alias, preset parameters)`, e.g. `("custom_processing", "value=50")`.
    pub aliases: &'static [(&'static str, &'static str)],
    /// One line for people.
    pub summary: &'static str,
    /// Parameters, in the order they are listed.
    pub params: &'static [ParamSpec],
    /// Whether 16-bit input stays 16-bit through this op (else it is reduced to 8 bits first).
    pub keeps_16bit: bool,
    /// The OpenCV (or Pillow) expression this op is tested against, on RGB data.
    pub reference: &'static str,
    /// The tolerance held against that reference in the tests.
    pub tolerance: &'static str,
}

const fn int(
    name: &'static str,
    min: i64,
    max: i64,
    default: Option<&'static str>,
    help: &'static str,
) -> ParamSpec {
    ParamSpec {
        name,
        kind: ParamKind::Int { min, max },
        default,
        help,
    }
}
const fn float(
    name: &'static str,
    min: f64,
    max: f64,
    default: Option<&'static str>,
    help: &'static str,
) -> ParamSpec {
    ParamSpec {
        name,
        kind: ParamKind::Float { min, max },
        default,
        help,
    }
}
const fn choice(
    name: &'static str,
    values: &'static [&'static str],
    default: Option<&'static str>,
    help: &'static str,
) -> ParamSpec {
    ParamSpec {
        name,
        kind: ParamKind::Choice { values },
        default,
        help,
    }
}

const EXACT: &str = "bit-exact";
const ONE_LEVEL: &str = "at most 1 level on at most 0.5% of samples";

/// Every operation imgproc knows, in the order `--list-ops` shows them.
pub static CATALOG: &[OpSpec] = &[
    OpSpec {
        name: "grayscale",
        aliases: &[("greyscale", "")],
        summary: "BT.601 luma with OpenCV's fixed-point rounding; output has 1 channel (+alpha)",
        params: &[],
        keeps_16bit: true,
        reference: "cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)",
        tolerance: EXACT,
    },
    OpSpec {
        name: "invert",
        aliases: &[("color_inversion", "")],
        summary: "255 - v on colour channels; alpha kept",
        params: &[],
        keeps_16bit: true,
        reference: "cv2.bitwise_not(img)",
        tolerance: EXACT,
    },
    OpSpec {
        name: "blur",
        aliases: &[("gaussian_blur", "")],
        summary: "Gaussian blur, border reflect-101; default is cv2.GaussianBlur(img, (5,5), 0)",
        params: &[
            int("ksize", 0, 255, Some("5"), "odd kernel size; 0 derives it from sigma"),
            float("sigma", 0.0, 100.0, Some("0"), "standard deviation; 0 derives it from ksize"),
        ],
        keeps_16bit: false,
        reference: "cv2.GaussianBlur(img, (ksize, ksize), sigma)",
        tolerance: "bit-exact for the default; elsewhere at most 1 level on at most 0.5% of samples",
    },
    OpSpec {
        name: "canny",
        aliases: &[("edge_detection", "")],
        summary: "Canny edges (3x3 Sobel, L1 norm; colour uses the channel with the strongest gradient); output 1 channel",
        params: &[
            float("low", 0.0, 100000.0, Some("100"), "lower hysteresis threshold"),
            float("high", 0.0, 100000.0, Some("200"), "upper hysteresis threshold"),
        ],
        keeps_16bit: false,
        reference: "cv2.Canny(img, low, high)",
        tolerance: "at least 99.9% identical pixels",
    },
    OpSpec {
        name: "brighten",
        aliases: &[],
        summary: "add amount to colour channels, saturating",
        params: &[int("amount", 0, 255, Some("60"), "amount to add (x257 on 16-bit)")],
        keeps_16bit: true,
        reference: "cv2.add(img, amount) per channel",
        tolerance: EXACT,
    },
    OpSpec {
        name: "darken",
        aliases: &[],
        summary: "subtract amount from colour channels, saturating",
        params: &[int("amount", 0, 255, Some("60"), "amount to subtract (x257 on 16-bit)")],
        keeps_16bit: true,
        reference: "cv2.subtract(img, amount) per channel",
        tolerance: EXACT,
    },
    OpSpec {
        name: "threshold",
        aliases: &[],
        summary: "binary threshold per colour channel: 255 where v > value, else 0",
        params: &[float("value", 0.0, 255.0, Some("127"), "threshold (x257 on 16-bit)")],
        keeps_16bit: true,
        reference: "cv2.threshold(img, value, 255, cv2.THRESH_BINARY)",
        tolerance: EXACT,
    },
    OpSpec {
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
    },
    OpSpec {
        name: "sharpen",
        aliases: &[("unsharp_mask", "")],
        summary: "unsharp mask: v*(1+amount) - gaussian(v, sigma)*amount",
        params: &[
            float("sigma", 0.1, 50.0, Some("1"), "blur radius of the mask"),
            float("amount", 0.0, 10.0, Some("1"), "strength"),
        ],
        keeps_16bit: false,
        reference: "cv2.addWeighted(img, 1+amount, cv2.GaussianBlur(img, (0,0), sigma), -amount, 0)",
        tolerance: ONE_LEVEL,
    },
    OpSpec {
        name: "median",
        aliases: &[],
        summary: "median filter, border replicate",
        params: &[int("ksize", 3, 15, Some("5"), "odd window size")],
        keeps_16bit: false,
        reference: "cv2.medianBlur(img, ksize)",
        tolerance: EXACT,
    },
    OpSpec {
        name: "box_blur",
        aliases: &[],
        summary: "normalised box filter, border reflect-101",
        params: &[int("ksize", 1, 255, Some("5"), "window size")],
        keeps_16bit: false,
        reference: "cv2.blur(img, (ksize, ksize))",
        tolerance: EXACT,
    },
    OpSpec {
        name: "sobel",
        aliases: &[],
        summary: "3x3 Sobel gradient magnitude |dx|, |dy| or |dx|+|dy| per colour channel, saturated",
        params: &[choice("direction", &["x", "y", "xy"], Some("xy"), "which derivative")],
        keeps_16bit: false,
        reference: "cv2.add(cv2.convertScaleAbs(cv2.Sobel(img, cv2.CV_16S, 1, 0)), cv2.convertScaleAbs(cv2.Sobel(img, cv2.CV_16S, 0, 1)))",
        tolerance: EXACT,
    },
    OpSpec {
        name: "resize",
        aliases: &[],
        summary: "resize to width and/or height (aspect kept when one is given) or by scale",
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
    },
    OpSpec {
        name: "rotate",
        aliases: &[],
        summary: "rotate clockwise by a right angle",
        params: &[int("angle", 90, 270, Some("90"), "90, 180 or 270 degrees clockwise")],
        keeps_16bit: true,
        reference: "cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE | ROTATE_180 | ROTATE_90_COUNTERCLOCKWISE)",
        tolerance: EXACT,
    },
    OpSpec {
        name: "flip",
        aliases: &[],
        summary: "mirror: h swaps left and right, v swaps top and bottom",
        params: &[choice("axis", &["h", "v"], Some("h"), "h (horizontal mirror) or v (vertical)")],
        keeps_16bit: true,
        reference: "cv2.flip(img, 1 | 0)",
        tolerance: EXACT,
    },
    OpSpec {
        name: "crop",
        aliases: &[],
        summary: "cut out a rectangle; it must lie inside the image",
        params: &[
            int("x", 0, 1 << 30, Some("0"), "left edge"),
            int("y", 0, 1 << 30, Some("0"), "top edge"),
            int("width", 1, 1 << 30, None, "width (required)"),
            int("height", 1, 1 << 30, None, "height (required)"),
        ],
        keeps_16bit: true,
        reference: "img[y:y+height, x:x+width]",
        tolerance: EXACT,
    },
    OpSpec {
        name: "equalize",
        aliases: &[],
        summary: "histogram equalization, each colour channel on its own",
        params: &[],
        keeps_16bit: false,
        reference: "cv2.equalizeHist per channel",
        tolerance: EXACT,
    },
    OpSpec {
        name: "gamma",
        aliases: &[],
        summary: "v' = 255 * (v/255)^(1/gamma): gamma > 1 brightens",
        params: &[float("gamma", 0.01, 100.0, Some("2.2"), "gamma")],
        keeps_16bit: false,
        reference: "cv2.LUT(img, round(255*(i/255)**(1/gamma)))",
        tolerance: ONE_LEVEL,
    },
    OpSpec {
        name: "contrast",
        aliases: &[],
        summary: "v' = (v - 128) * factor + 128, saturating",
        params: &[float("factor", 0.0, 100.0, Some("1.5"), "contrast factor; 1 keeps the image")],
        keeps_16bit: false,
        reference: "cv2.LUT(img, clip(round((i-128)*factor+128)))",
        tolerance: ONE_LEVEL,
    },
    OpSpec {
        name: "erode",
        aliases: &[],
        summary: "minimum over a ksize x ksize square; pixels outside the image are ignored",
        params: &[
            int("ksize", 1, 255, Some("3"), "window size"),
            int("iterations", 1, 100, Some("1"), "times applied"),
        ],
        keeps_16bit: false,
        reference: "cv2.erode(img, np.ones((ksize, ksize)), iterations=iterations)",
        tolerance: EXACT,
    },
    OpSpec {
        name: "dilate",
        aliases: &[],
        summary: "maximum over a ksize x ksize square; pixels outside the image are ignored",
        params: &[
            int("ksize", 1, 255, Some("3"), "window size"),
            int("iterations", 1, 100, Some("1"), "times applied"),
        ],
        keeps_16bit: false,
        reference: "cv2.dilate(img, np.ones((ksize, ksize)), iterations=iterations)",
        tolerance: EXACT,
    },
];

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

/// A parsed, validated operation with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// To one gray channel.
    Grayscale,
    /// 255 - v.
    Invert,
    /// Gaussian blur.
    Blur {
        /// Odd kernel size, or 0 to derive from sigma.
        ksize: u32,
        /// Sigma, or 0 to derive from ksize.
        sigma: f64,
    },
    /// Canny edges.
    Canny {
        /// Low threshold.
        low: f64,
        /// High threshold.
        high: f64,
    },
    /// Saturating add.
    Brighten {
        /// Amount.
        amount: u8,
    },
    /// Saturating subtract.
    Darken {
        /// Amount.
        amount: u8,
    },
    /// Binary threshold.
    Threshold {
        /// Threshold.
        value: f64,
    },
    /// HSV shift.
    Hsv {
        /// Hue shift.
        hue: i32,
        /// Saturation shift.
        saturation: i32,
        /// Value shift.
        value: i32,
    },
    /// Unsharp mask.
    Sharpen {
        /// Blur sigma.
        sigma: f64,
        /// Strength.
        amount: f64,
    },
    /// Median filter.
    Median {
        /// Window.
        ksize: u32,
    },
    /// Box filter.
    BoxBlur {
        /// Window.
        ksize: u32,
    },
    /// Sobel magnitude.
    Sobel {
        /// Direction.
        direction: SobelDir,
    },
    /// Resize.
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
    /// Rotate clockwise by 90, 180 or 270 degrees.
    Rotate {
        /// Degrees.
        angle: u32,
    },
    /// Mirror.
    Flip {
        /// True for left-right, false for top-bottom.
        horizontal: bool,
    },
    /// Cut out a rectangle.
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
    /// Histogram equalization.
    Equalize,
    /// Gamma curve.
    Gamma {
        /// Gamma.
        gamma: f64,
    },
    /// Contrast stretch around 128.
    Contrast {
        /// Factor.
        factor: f64,
    },
    /// Minimum filter.
    Erode {
        /// Window.
        ksize: u32,
        /// Repetitions.
        iterations: u32,
    },
    /// Maximum filter.
    Dilate {
        /// Window.
        ksize: u32,
        /// Repetitions.
        iterations: u32,
    },
}

/// A problem found while parsing an op: `field` is the parameter (or `None` for the op itself).
#[derive(Clone, Debug, PartialEq)]
pub struct OpProblem {
    /// The parameter the problem is about, if any.
    pub field: Option<String>,
    /// What is wrong and what would be right.
    pub message: String,
}

impl OpProblem {
    fn op(message: String) -> OpProblem {
        OpProblem {
            field: None,
            message,
        }
    }
    fn param(field: &str, message: String) -> OpProblem {
        OpProblem {
            field: Some(field.to_string()),
            message,
        }
    }
}

/// An error an op raises on a particular image (for example a crop outside it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OpError(pub String);

/// Finds an op by name or alias: the spec and the alias's preset parameters.
pub fn lookup(name: &str) -> Option<(&'static OpSpec, &'static str)> {
    CATALOG.iter().find_map(|s| {
        if s.name == name {
            Some((s, ""))
        } else {
            s.aliases
                .iter()
                .find(|(a, _)| *a == name)
                .map(|(_, preset)| (s, *preset))
        }
    })
}

/// The known name (or alias) closest to `name`, for "did you mean" hints.
pub fn nearest_name(name: &str) -> Option<&'static str> {
    CATALOG
        .iter()
        .flat_map(|s| std::iter::once(s.name).chain(s.aliases.iter().map(|(a, _)| *a)))
        .map(|n| (strsim::damerau_levenshtein(name, n), n))
        .filter(|(d, n)| *d <= 3.max(n.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn unknown_op(name: &str) -> OpProblem {
    let hint = match nearest_name(name) {
        Some(n) => format!("did you mean \"{n}\"?"),
        None => "run `imgproc --list-ops` for the list".to_string(),
    };
    OpProblem::op(format!(
        "unknown operation \"{}\": {hint}",
        crate::error::shorten(name)
    ))
}

/// Parses `name` or `name:key=value,key=value` (the `--op` syntax).
pub fn parse_op_str(text: &str) -> Result<Op, Vec<OpProblem>> {
    let text = text.trim();
    let (name, rest) = match text.split_once(':') {
        Some((n, r)) => (n.trim(), Some(r)),
        None => (text, None),
    };
    let mut given = Vec::new();
    let mut problems = Vec::new();
    if let Some(rest) = rest {
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((k, _)) if given.iter().any(|(g, _)| g == k.trim()) => {
                    problems.push(OpProblem::op(format!(
                        "parameter \"{}\" is given twice: keep one",
                        crate::error::shorten(k.trim())
                    )))
                }
                Some((k, v)) => given.push((k.trim().to_string(), text_value(v.trim()))),
                None => problems.push(OpProblem::op(format!(
                    "parameter \"{part}\" has no value: write it as name=value, e.g. \"{name}:{part}=...\""
                ))),
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    build(name, given)
}

/// Parses the object form `{"op": "blur", "sigma": 2}`.
pub fn parse_op_object(
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<Op, Vec<OpProblem>> {
    let name = match map.get("op") {
        Some(serde_json::Value::String(s)) => s.as_str(),
        Some(_) => return Err(vec![OpProblem::param("op", "must be a string naming the operation".into())]),
        None => {
            return Err(vec![OpProblem::op(
                "an op object needs an \"op\" field naming the operation, e.g. {\"op\": \"blur\", \"sigma\": 2}".into(),
            )])
        }
    };
    let mut given = Vec::new();
    let mut problems = Vec::new();
    for (k, v) in map.iter().filter(|(k, _)| k.as_str() != "op") {
        match v {
            serde_json::Value::String(s) => given.push((k.clone(), Value::Str(s.clone()))),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => given.push((k.clone(), Value::Int(i))),
                None => given.push((k.clone(), Value::Float(n.as_f64().unwrap_or(f64::NAN)))),
            },
            _ => problems.push(OpProblem::param(k, "must be a number or a string".into())),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    build(name, given)
}

fn text_value(v: &str) -> Value {
    if let Ok(i) = v.parse::<i64>() {
        Value::Int(i)
    } else if let Ok(f) = v.parse::<f64>() {
        Value::Float(f)
    } else {
        Value::Str(v.to_string())
    }
}

/// Checks a value against a parameter's kind and range.
fn check_value(p: &ParamSpec, v: &Value) -> Result<Value, String> {
    match (p.kind, v) {
        (ParamKind::Int { min, max }, Value::Int(i)) => {
            if (min..=max).contains(i) {
                Ok(Value::Int(*i))
            } else {
                Err(format!(
                    "{i} is out of range: use an integer from {min} to {max}"
                ))
            }
        }
        (ParamKind::Int { min, max }, other) => Err(format!(
            "\"{other}\" is not an integer: use an integer from {min} to {max}"
        )),
        (ParamKind::Float { .. }, Value::Int(i)) => check_value(p, &Value::Float(*i as f64)),
        (ParamKind::Float { min, max }, Value::Float(f)) => {
            if f.is_finite() && *f >= min && *f <= max {
                Ok(Value::Float(*f))
            } else {
                Err(format!(
                    "{f} is out of range: use a number from {min} to {max}"
                ))
            }
        }
        (ParamKind::Float { min, max }, Value::Str(s)) => Err(format!(
            "\"{s}\" is not a number: use a number from {min} to {max}"
        )),
        (ParamKind::Choice { values }, v) => {
            let s = v.to_string();
            if values.contains(&s.as_str()) {
                Ok(Value::Str(s))
            } else {
                Err(format!(
                    "\"{s}\" is not allowed: use one of {}",
                    values.join(", ")
                ))
            }
        }
    }
}

/// Resolved parameter values of one op (defaults filled in).
struct Params(BTreeMap<&'static str, Value>);

impl Params {
    fn int(&self, k: &str) -> Option<i64> {
        match self.0.get(k) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }
    fn float(&self, k: &str) -> Option<f64> {
        match self.0.get(k) {
            Some(Value::Float(f)) => Some(*f),
            Some(Value::Int(i)) => Some(*i as f64),
            _ => None,
        }
    }
    fn word(&self, k: &str) -> Option<&str> {
        match self.0.get(k) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }
    // Values below come from the catalog's defaults or were range-checked, so the
    // fallbacks are never taken; they keep the code free of unwraps.
    fn i(&self, k: &str) -> i64 {
        self.int(k).unwrap_or(0)
    }
    fn f(&self, k: &str) -> f64 {
        self.float(k).unwrap_or(0.0)
    }
}

fn build(name: &str, given: Vec<(String, Value)>) -> Result<Op, Vec<OpProblem>> {
    let (spec, preset) = lookup(name).ok_or_else(|| vec![unknown_op(name)])?;
    let mut values: BTreeMap<&'static str, Value> = BTreeMap::new();
    for p in spec.params {
        if let Some(d) = p.default {
            values.insert(p.name, text_value(d));
        }
    }
    let preset_pairs = preset
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), text_value(v)));
    let mut problems = Vec::new();
    for (k, v) in preset_pairs.chain(given) {
        match spec.params.iter().find(|p| p.name == k) {
            Some(p) => match check_value(p, &v) {
                Ok(v) => {
                    values.insert(p.name, v);
                }
                Err(msg) => problems.push(OpProblem::param(&k, msg)),
            },
            None => {
                let known: Vec<&str> = spec.params.iter().map(|p| p.name).collect();
                let msg = if known.is_empty() {
                    format!("\"{}\" takes no parameters", spec.name)
                } else {
                    format!(
                        "unknown parameter of \"{}\": use one of {}",
                        spec.name,
                        known.join(", ")
                    )
                };
                problems.push(OpProblem::param(&k, msg));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    make_op(spec.name, &Params(values)).map_err(|p| vec![p])
}

fn odd_or_zero(field: &str, k: i64, allow_zero: bool) -> Result<u32, OpProblem> {
    if (allow_zero && k == 0) || k % 2 == 1 {
        Ok(k as u32)
    } else {
        Err(OpProblem::param(
            field,
            format!("{k} is even: use an odd size such as {}", k + 1),
        ))
    }
}

fn make_op(name: &str, p: &Params) -> Result<Op, OpProblem> {
    Ok(match name {
        "grayscale" => Op::Grayscale,
        "invert" => Op::Invert,
        "blur" => {
            let ksize = odd_or_zero("ksize", p.i("ksize"), true)?;
            let sigma = p.f("sigma");
            if ksize == 0 && sigma <= 0.0 {
                return Err(OpProblem::param(
                    "sigma",
                    "with ksize=0 give a sigma above 0".into(),
                ));
            }
            Op::Blur { ksize, sigma }
        }
        "canny" => Op::Canny {
            low: p.f("low"),
            high: p.f("high"),
        },
        "brighten" => Op::Brighten {
            amount: p.i("amount") as u8,
        },
        "darken" => Op::Darken {
            amount: p.i("amount") as u8,
        },
        "threshold" => Op::Threshold {
            value: p.f("value"),
        },
        "hsv" => Op::Hsv {
            hue: p.i("hue") as i32,
            saturation: p.i("saturation") as i32,
            value: p.i("value") as i32,
        },
        "sharpen" => Op::Sharpen {
            sigma: p.f("sigma"),
            amount: p.f("amount"),
        },
        "median" => Op::Median {
            ksize: odd_or_zero("ksize", p.i("ksize"), false)?,
        },
        "box_blur" => Op::BoxBlur {
            ksize: p.i("ksize") as u32,
        },
        "sobel" => Op::Sobel {
            direction: match p.word("direction") {
                Some("x") => SobelDir::X,
                Some("y") => SobelDir::Y,
                _ => SobelDir::Xy,
            },
        },
        "resize" => {
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
            let filter = match p.word("filter") {
                Some("nearest") => Filter::Nearest,
                Some("bicubic") => Filter::Bicubic,
                Some("lanczos3") => Filter::Lanczos3,
                Some("area") => Filter::Area,
                _ => Filter::Bilinear,
            };
            Op::Resize {
                width,
                height,
                scale,
                filter,
            }
        }
        "rotate" => {
            let angle = p.i("angle");
            if ![90, 180, 270].contains(&angle) {
                return Err(OpProblem::param(
                    "angle",
                    format!("{angle} is not a right angle: use 90, 180 or 270"),
                ));
            }
            Op::Rotate {
                angle: angle as u32,
            }
        }
        "flip" => Op::Flip {
            horizontal: p.word("axis") != Some("v"),
        },
        "crop" => {
            let (Some(width), Some(height)) = (p.int("width"), p.int("height")) else {
                return Err(OpProblem::op(
                    "crop needs width and height, e.g. \"crop:x=10,y=10,width=200,height=100\""
                        .into(),
                ));
            };
            Op::Crop {
                x: p.i("x") as u32,
                y: p.i("y") as u32,
                width: width as u32,
                height: height as u32,
            }
        }
        "equalize" => Op::Equalize,
        "gamma" => Op::Gamma {
            gamma: p.f("gamma"),
        },
        "contrast" => Op::Contrast {
            factor: p.f("factor"),
        },
        "erode" => Op::Erode {
            ksize: p.i("ksize") as u32,
            iterations: p.i("iterations") as u32,
        },
        "dilate" => Op::Dilate {
            ksize: p.i("ksize") as u32,
            iterations: p.i("iterations") as u32,
        },
        other => return Err(unknown_op(other)),
    })
}

impl Op {
    /// The canonical name of this op.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Grayscale => "grayscale",
            Op::Invert => "invert",
            Op::Blur { .. } => "blur",
            Op::Canny { .. } => "canny",
            Op::Brighten { .. } => "brighten",
            Op::Darken { .. } => "darken",
            Op::Threshold { .. } => "threshold",
            Op::Hsv { .. } => "hsv",
            Op::Sharpen { .. } => "sharpen",
            Op::Median { .. } => "median",
            Op::BoxBlur { .. } => "box_blur",
            Op::Sobel { .. } => "sobel",
            Op::Resize { .. } => "resize",
            Op::Rotate { .. } => "rotate",
            Op::Flip { .. } => "flip",
            Op::Crop { .. } => "crop",
            Op::Equalize => "equalize",
            Op::Gamma { .. } => "gamma",
            Op::Contrast { .. } => "contrast",
            Op::Erode { .. } => "erode",
            Op::Dilate { .. } => "dilate",
        }
    }

    /// The canonical `name:key=value,...` text of this op, which [`parse_op_str`] reads
    /// back to an equal op (used to send pipelines to other ranks).
    pub fn to_text(&self) -> String {
        let params: Vec<String> = match *self {
            Op::Grayscale | Op::Invert | Op::Equalize => vec![],
            Op::Blur { ksize, sigma } => vec![format!("ksize={ksize}"), format!("sigma={sigma}")],
            Op::Canny { low, high } => vec![format!("low={low}"), format!("high={high}")],
            Op::Brighten { amount } | Op::Darken { amount } => vec![format!("amount={amount}")],
            Op::Threshold { value } => vec![format!("value={value}")],
            Op::Hsv {
                hue,
                saturation,
                value,
            } => {
                vec![
                    format!("hue={hue}"),
                    format!("saturation={saturation}"),
                    format!("value={value}"),
                ]
            }
            Op::Sharpen { sigma, amount } => {
                vec![format!("sigma={sigma}"), format!("amount={amount}")]
            }
            Op::Median { ksize } | Op::BoxBlur { ksize } => vec![format!("ksize={ksize}")],
            Op::Sobel { direction } => vec![format!(
                "direction={}",
                match direction {
                    SobelDir::X => "x",
                    SobelDir::Y => "y",
                    SobelDir::Xy => "xy",
                }
            )],
            Op::Resize {
                width,
                height,
                scale,
                filter,
            } => {
                let mut v = Vec::new();
                if let Some(w) = width {
                    v.push(format!("width={w}"));
                }
                if let Some(h) = height {
                    v.push(format!("height={h}"));
                }
                if let Some(s) = scale {
                    v.push(format!("scale={s}"));
                }
                let f = match filter {
                    Filter::Nearest => "nearest",
                    Filter::Bilinear => "bilinear",
                    Filter::Bicubic => "bicubic",
                    Filter::Lanczos3 => "lanczos3",
                    Filter::Area => "area",
                };
                v.push(format!("filter={f}"));
                v
            }
            Op::Rotate { angle } => vec![format!("angle={angle}")],
            Op::Flip { horizontal } => vec![format!("axis={}", if horizontal { "h" } else { "v" })],
            Op::Crop {
                x,
                y,
                width,
                height,
            } => {
                vec![
                    format!("x={x}"),
                    format!("y={y}"),
                    format!("width={width}"),
                    format!("height={height}"),
                ]
            }
            Op::Gamma { gamma } => vec![format!("gamma={gamma}")],
            Op::Contrast { factor } => vec![format!("factor={factor}")],
            Op::Erode { ksize, iterations } | Op::Dilate { ksize, iterations } => {
                vec![format!("ksize={ksize}"), format!("iterations={iterations}")]
            }
        };
        if params.is_empty() {
            self.name().to_string()
        } else {
            format!("{}:{}", self.name(), params.join(","))
        }
    }

    /// Relative cost per pixel, used to weigh items for scheduling and ETA.
    pub fn cost_weight(&self) -> f64 {
        match self {
            Op::Grayscale
            | Op::Invert
            | Op::Brighten { .. }
            | Op::Darken { .. }
            | Op::Threshold { .. } => 0.1,
            Op::Flip { .. } | Op::Rotate { .. } | Op::Crop { .. } => 0.2,
            Op::Gamma { .. } | Op::Contrast { .. } | Op::Equalize => 0.3,
            Op::Blur { .. } | Op::BoxBlur { .. } | Op::Sobel { .. } | Op::Resize { .. } => 1.0,
            Op::Erode { ksize, iterations } | Op::Dilate { ksize, iterations } => {
                0.2 * (*ksize * *iterations) as f64
            }
            Op::Sharpen { .. } | Op::Hsv { .. } => 2.0,
            Op::Canny { .. } => 6.0,
            Op::Median { ksize } => 0.5 * (*ksize * *ksize) as f64,
        }
    }

    /// Whether the op does so little per byte that a CPU runs it at the speed of memory:
    /// point ops, lookup tables and pure copies. Sending an image to a discrete device
    /// and back moves at least the bytes such an op moves on the CPU, over a slower
    /// link, so a device pays off only for a pipeline with other work in it.
    pub fn is_memory_bound(&self) -> bool {
        matches!(
            self,
            Op::Grayscale
                | Op::Invert
                | Op::Brighten { .. }
                | Op::Darken { .. }
                | Op::Threshold { .. }
                | Op::Gamma { .. }
                | Op::Contrast { .. }
                | Op::Equalize
                | Op::Flip { .. }
                | Op::Rotate { .. }
                | Op::Crop { .. }
        )
    }

    pub(crate) fn keeps_16bit(&self) -> bool {
        lookup(self.name())
            .map(|(s, _)| s.keeps_16bit)
            .unwrap_or(false)
    }
}

/// Runs one op on an image; 16-bit images are reduced to 8 bits first for ops that
/// do not keep 16 bits (see [`OpSpec::keeps_16bit`]). Point ops work in place.
pub fn apply(op: &Op, img: Image) -> Result<Image, OpError> {
    let img = if img.is_16bit() && !op.keeps_16bit() {
        img.into_u8()
    } else {
        img
    };
    Ok(match *op {
        Op::Invert => point::invert(img),
        Op::Brighten { amount } => point::add(img, amount as i32),
        Op::Darken { amount } => point::add(img, -(amount as i32)),
        Op::Threshold { value } => point::threshold(img, value),
        Op::Hsv {
            hue,
            saturation,
            value,
        } => point::hsv_shift(img, hue, saturation, value),
        Op::Equalize => point::equalize(img),
        Op::Gamma { gamma } => point::gamma(img, gamma),
        Op::Contrast { factor } => point::contrast(img, factor),
        _ => return apply_ref(op, &img),
    })
}

/// [`apply`] on a borrowed image: ops that make a new buffer read the input in place,
/// point ops work on a copy.
pub fn apply_ref(op: &Op, img: &Image) -> Result<Image, OpError> {
    if img.is_16bit() && !op.keeps_16bit() {
        return apply(op, img.clone());
    }
    Ok(match *op {
        Op::Grayscale => point::grayscale(img),
        Op::Blur { ksize, sigma } => filter::gaussian(img, ksize, sigma),
        Op::Sharpen { sigma, amount } => filter::sharpen(img, sigma, amount),
        Op::BoxBlur { ksize } => filter::box_blur(img, ksize),
        Op::Median { ksize } => filter::median(img, ksize),
        Op::Sobel { direction } => filter::sobel(img, direction),
        Op::Erode { ksize, iterations } => filter::morph(img, ksize, iterations, false),
        Op::Dilate { ksize, iterations } => filter::morph(img, ksize, iterations, true),
        Op::Canny { low, high } => canny::canny(img, low, high),
        Op::Flip { horizontal } => geometry::flip(img, horizontal),
        Op::Rotate { angle } => geometry::rotate(img, angle),
        Op::Crop {
            x,
            y,
            width,
            height,
        } => geometry::crop(img, x, y, width, height)?,
        Op::Resize {
            width,
            height,
            scale,
            filter,
        } => {
            let (w, h) = geometry::target_size(img.width, img.height, width, height, scale)?;
            geometry::resize(img, w, h, filter)
        }
        _ => return apply(op, img.clone()),
    })
}

/// The output size an op produces from an input size (for plans and dry runs).
pub fn output_size(op: &Op, w: u32, h: u32) -> (u32, u32) {
    match *op {
        Op::Rotate { angle: 90 | 270 } => (h, w),
        Op::Crop { width, height, .. } => (width, height),
        Op::Resize {
            width,
            height,
            scale,
            ..
        } => geometry::target_size(w, h, width, height, scale).unwrap_or((w, h)),
        _ => (w, h),
    }
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
            Op::Blur {
                ksize: 0,
                sigma: 2.0
            }
        );
    }

    #[test]
    fn aliases_carry_their_presets() {
        assert_eq!(
            parse_op_str("custom_processing").unwrap(),
            Op::Hsv {
                hue: 0,
                saturation: 0,
                value: 50
            }
        );
        assert_eq!(
            parse_op_str("edge_detection").unwrap(),
            Op::Canny {
                low: 100.0,
                high: 200.0
            }
        );
        assert_eq!(parse_op_str("color_inversion").unwrap(), Op::Invert);
        assert_eq!(parse_op_str("greyscale").unwrap(), Op::Grayscale);
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
}
