//! The HTML report: one self-contained page that draws itself from the report's data.
//!
//! The page (`page.html`: markup, style and script, no network) carries the report as
//! JSON in a `<script type="application/json">` element and builds the timeline,
//! charts, tables and gallery in the browser. Keeping the drawing in the page means one
//! renderer: `scripts/report_html.py` makes the same page from a JSON report by putting
//! that report in the same place. Items travel as columns (`{"input": [...],
//! "status": [...]}`) with times rounded to 0.1 ms, so a 20,000-item run stays a few MB;
//! the page also takes them as the JSON report's list of records.

use super::Report;
use serde_json::{Map, Value};
use std::path::Path;

/// The page; its data goes where [`DATA_MARK`] stands.
const PAGE: &str = include_str!("page.html");

/// The placeholder for the data, inside the page's data element.
pub const DATA_MARK: &str = "__IMGPROC_REPORT_DATA__";

/// The page for `report`, to be written at `path` (thumbnail paths are made relative
/// to its folder).
pub fn page(report: &Report, path: &Path) -> std::io::Result<String> {
    let mut data = serde_json::to_value(report).map_err(std::io::Error::other)?;
    let base = path.parent().unwrap_or(Path::new(""));
    if let Some(items) = data.get_mut("items").and_then(Value::as_array_mut) {
        for item in items.iter_mut() {
            if let Some(t) = item.get_mut("thumbnails").and_then(Value::as_object_mut) {
                for p in t.values_mut() {
                    if let Some(s) = p.as_str() {
                        *p = Value::String(relative_to(Path::new(s), base));
                    }
                }
            }
        }
        let columns = columns(std::mem::take(items));
        data["items"] = Value::Object(columns);
    }
    let json = serde_json::to_string(&data).map_err(std::io::Error::other)?;
    Ok(PAGE.replacen(DATA_MARK, &script_safe(&json), 1))
}

/// Records to columns: every key any record has, with `null` where a record lacks it;
/// floats rounded to four decimals.
fn columns(records: Vec<Value>) -> Map<String, Value> {
    let mut keys: Vec<String> = Vec::new();
    for r in &records {
        if let Some(o) = r.as_object() {
            for k in o.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
    }
    let mut cols: Vec<Vec<Value>> = vec![Vec::with_capacity(records.len()); keys.len()];
    for mut r in records {
        for (k, col) in keys.iter().zip(cols.iter_mut()) {
            let v = r.get_mut(k).map(Value::take).unwrap_or(Value::Null);
            col.push(round(v));
        }
    }
    keys.into_iter()
        .zip(cols)
        .map(|(k, c)| (k, Value::Array(c)))
        .collect()
}

fn round(v: Value) -> Value {
    match v.as_f64() {
        Some(f) if v.is_f64() => {
            serde_json::Number::from_f64((f * 1e4).round() / 1e4).map_or(Value::Null, Value::Number)
        }
        _ => v,
    }
}

/// `p` relative to `base` when it lies below it; else `p` made absolute.
fn relative_to(p: &Path, base: &Path) -> String {
    match p.strip_prefix(base) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string(),
    }
}

/// JSON that cannot end its `<script>` element or open a comment in it, whatever the
/// file names in it hold: `<`, `>` and `&` written as `\u` escapes (the same string to
/// `JSON.parse`).
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_become_columns_with_rounded_floats() {
        let cols = columns(vec![
            json!({"input": "a", "t": 1.234567, "n": 3}),
            json!({"input": "b", "extra": true}),
        ]);
        assert_eq!(
            Value::Object(cols),
            json!({"input": ["a", "b"], "t": [1.2346, null], "n": [3, null], "extra": [null, true]})
        );
    }

    #[test]
    fn hostile_names_cannot_leave_the_data_element() {
        let s = script_safe(&json!({"input": "</script><script>alert(1)</script>&"}).to_string());
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        let back: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back["input"], "</script><script>alert(1)</script>&");
    }

    #[test]
    fn thumbnails_are_relative_to_the_page() {
        assert_eq!(
            relative_to(Path::new("out/run_thumbs/1-after.jpg"), Path::new("out")),
            "run_thumbs/1-after.jpg"
        );
        assert_eq!(
            relative_to(Path::new("run_thumbs/1-after.jpg"), Path::new("")),
            "run_thumbs/1-after.jpg"
        );
        assert!(relative_to(Path::new("a/x.jpg"), Path::new("b")).starts_with('/'));
    }

    #[test]
    fn the_page_has_one_place_for_the_data() {
        assert_eq!(PAGE.matches(DATA_MARK).count(), 1);
    }
}
