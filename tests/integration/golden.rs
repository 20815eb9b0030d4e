//! Every op against the references made by scripts/make_references.py with OpenCV
//! (Pillow for lanczos3). The tolerance of each op is stated here, not in the data.

use imgproc::codec::{decode, DecodeOptions};
use imgproc::image::Image;
use imgproc::ops::{apply, parse_op_str};
use std::path::Path;

/// How close imgproc must be to the reference.
#[derive(Debug, Clone, Copy)]
enum Tolerance {
    /// Identical samples.
    Exact,
    /// No sample off by more than 1, and at most 0.5% of samples off at all (on a
    /// fixture so small that one sample is over 0.1%, at most 3 samples).
    OneLevel,
    /// At least 99.9% of pixels identical (Canny).
    Pixels999,
}

fn tolerance(op: &str) -> Tolerance {
    let name = op.split(':').next().unwrap_or(op);
    match name {
        "grayscale" | "invert" | "threshold" | "brighten" | "darken" | "flip" | "rotate"
        | "crop" | "median" | "box_blur" | "sobel" | "erode" | "dilate" | "equalize" | "pad" => {
            Tolerance::Exact
        }
        "blur" if op == "blur" => Tolerance::Exact,
        "resize" if op.contains("nearest") => Tolerance::Exact,
        "canny" => Tolerance::Pixels999,
        _ => Tolerance::OneLevel,
    }
}

fn load(path: &Path) -> Image {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decode(&bytes, &DecodeOptions::default())
        .unwrap()
        .frames
        .remove(0)
        .image
}

struct Diff {
    samples: usize,
    differing: usize,
    max: u8,
}

fn diff(a: &[u8], b: &[u8]) -> Diff {
    let mut d = Diff {
        samples: a.len(),
        differing: 0,
        max: 0,
    };
    for (x, y) in a.iter().zip(b) {
        let e = x.abs_diff(*y);
        if e > 0 {
            d.differing += 1;
            d.max = d.max.max(e);
        }
    }
    d
}

fn check(op: &str, ours: &Image, reference: &Image) -> Result<String, String> {
    if (ours.width, ours.height, ours.channels)
        != (reference.width, reference.height, reference.channels)
    {
        return Err(format!(
            "shape {}x{}x{} differs from the reference's {}x{}x{}",
            ours.width,
            ours.height,
            ours.channels,
            reference.width,
            reference.height,
            reference.channels
        ));
    }
    let d = diff(ours.u8_data(), reference.u8_data());
    let share = d.differing as f64 / d.samples.max(1) as f64;
    let summary = format!(
        "{} of {} samples differ ({:.3}%), max {}",
        d.differing,
        d.samples,
        share * 100.0,
        d.max
    );
    let ok = match tolerance(op) {
        Tolerance::Exact => d.differing == 0,
        Tolerance::OneLevel => d.max <= 1 && (share <= 0.005 || d.differing <= 3),
        Tolerance::Pixels999 => share <= 0.001,
    };
    if ok {
        Ok(summary)
    } else {
        Err(format!("{summary}, beyond {:?}", tolerance(op)))
    }
}

#[test]
fn every_op_matches_its_reference() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("golden/cases.json")).unwrap())
            .unwrap();
    let cases = index["cases"].as_array().unwrap();
    assert!(
        cases.len() > 150,
        "the reference set looks incomplete: {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in cases {
        let (fixture, op, golden) = (
            case["fixture"].as_str().unwrap(),
            case["op"].as_str().unwrap(),
            case["golden"].as_str().unwrap(),
        );
        let input = load(&root.join("fixtures").join(fixture));
        let reference = load(&root.join("golden").join(golden));
        let parsed = parse_op_str(op).unwrap_or_else(|e| panic!("{op}: {e:?}"));
        let result = match apply(&parsed, input) {
            Ok(ours) => check(op, &ours, &reference),
            Err(e) => Err(format!("failed: {e}")),
        };
        match result {
            Ok(summary) => eprintln!("ok   {fixture:<17} {op:<40} {summary}"),
            Err(why) => {
                eprintln!("FAIL {fixture:<17} {op:<40} {why}");
                failures.push(format!("{fixture} {op}: {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases off their reference:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_tolerance_table_is_strict_where_the_issue_says_so() {
    for op in [
        "grayscale",
        "invert",
        "threshold",
        "brighten",
        "darken",
        "blur",
        "flip",
        "rotate",
        "crop",
        "median",
        "box_blur",
        "sobel",
        "erode",
        "dilate",
        "equalize",
    ] {
        assert!(matches!(tolerance(op), Tolerance::Exact), "{op}");
    }
    assert!(matches!(tolerance("canny"), Tolerance::Pixels999));
}
