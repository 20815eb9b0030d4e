//! What an operation declares about itself for people and for parsers: its name,
//! aliases, parameters (kind, range, default) and the reference it is tested against.
//! `--list-ops`, the manifest validator and the "did you mean" hints read these
//! declarations; each op's own file in `defs/` writes one.

use serde::Serialize;
use std::fmt;

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

/// An integer parameter in `min..=max`.
pub(crate) const fn int(
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
/// A number parameter in `min..=max`.
pub(crate) const fn float(
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
/// A parameter taking one of `values`.
pub(crate) const fn choice(
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

/// The tolerance of ops that match their reference exactly.
pub(crate) const EXACT: &str = "bit-exact";
/// The tolerance of ops with floating-point steps.
pub(crate) const ONE_LEVEL: &str = "at most 1 level on at most 0.5% of samples";
