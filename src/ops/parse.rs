//! Text and JSON to [`Op`]: the `--op` syntax `"blur:sigma=2"`, the manifest's object
//! form `{"op": "blur", "sigma": 2}`, alias presets, range checks against each op's
//! declared parameters, and the messages that say which parameter is wrong and what
//! would be right. Building the op from checked values is the op's own job
//! ([`super::Operation::from_params`]).

use super::defs::{self, CATALOG};
use super::spec::{OpSpec, ParamKind, ParamSpec, Value};
use super::Op;
use std::collections::BTreeMap;

/// A problem found while parsing an op: `field` is the parameter (or `None` for the op itself).
#[derive(Clone, Debug, PartialEq)]
pub struct OpProblem {
    /// The parameter the problem is about, if any.
    pub field: Option<String>,
    /// What is wrong and what would be right.
    pub message: String,
}

impl OpProblem {
    pub(crate) fn op(message: String) -> OpProblem {
        OpProblem {
            field: None,
            message,
        }
    }
    pub(crate) fn param(field: &str, message: String) -> OpProblem {
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
    crate::error::nearest(
        name,
        CATALOG
            .iter()
            .flat_map(|s| std::iter::once(s.name).chain(s.aliases.iter().map(|(a, _)| *a))),
    )
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
pub(crate) struct Params(BTreeMap<&'static str, Value>);

impl Params {
    pub(crate) fn int(&self, k: &str) -> Option<i64> {
        match self.0.get(k) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }
    pub(crate) fn float(&self, k: &str) -> Option<f64> {
        match self.0.get(k) {
            Some(Value::Float(f)) => Some(*f),
            Some(Value::Int(i)) => Some(*i as f64),
            _ => None,
        }
    }
    pub(crate) fn word(&self, k: &str) -> Option<&str> {
        match self.0.get(k) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }
    // Values below come from the catalog's defaults or were range-checked, so the
    // fallbacks are never taken; they keep the code free of unwraps.
    pub(crate) fn i(&self, k: &str) -> i64 {
        self.int(k).unwrap_or(0)
    }
    pub(crate) fn f(&self, k: &str) -> f64 {
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
    defs::build(spec.name, &Params(values))
        .unwrap_or_else(|| Err(unknown_op(spec.name)))
        .map_err(|p| vec![p])
}

/// `k` as a window size: odd, or 0 where `allow_zero`.
pub(crate) fn odd_or_zero(field: &str, k: i64, allow_zero: bool) -> Result<u32, OpProblem> {
    if (allow_zero && k == 0) || k % 2 == 1 {
        Ok(k as u32)
    } else {
        Err(OpProblem::param(
            field,
            format!("{k} is even: use an odd size such as {}", k + 1),
        ))
    }
}
