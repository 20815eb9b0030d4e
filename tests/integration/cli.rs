//! The real `imgproc` executable: manifests, errors and exit codes, quick mode,
//! atomic outputs, reports, formats, orientation and determinism.

use assert_cmd::Command;
use imgproc::codec::{decode, encode, DecodeOptions, EncodeOptions, Frame, OutputFormat};
use imgproc::image::Image;
use predicates::prelude::*;
use std::path::{Path, PathBuf};

/// A scratch folder with helpers to write inputs and run the binary in it.
struct TestEnv {
    dir: tempfile::TempDir,
}

impl TestEnv {
    fn new() -> TestEnv {
        TestEnv {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }
    fn image(&self, rel: &str, img: Image, format: OutputFormat) -> PathBuf {
        let bytes = encode(
            vec![Frame {
                image: img,
                delay_ms: 0,
            }],
            &EncodeOptions {
                format,
                quality: 92,
            },
        )
        .unwrap();
        self.write(rel, &bytes)
    }
    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("imgproc").unwrap();
        c.current_dir(self.dir.path())
            .env("IMGPROC_PROGRESS_INTERVAL", "0");
        c
    }
    fn read_image(&self, rel: &str) -> Image {
        read_image(&self.path(rel))
    }
    fn files_under(&self, rel: &str) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(p: &Path, base: &Path, out: &mut Vec<String>) {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        walk(&path, base, out);
                    } else if e.file_name() != JOURNAL {
                        out.push(path.strip_prefix(base).unwrap().display().to_string());
                    }
                }
            }
        }
        walk(&self.path(rel), &self.path(rel), &mut out);
        out.sort();
        out
    }
}

/// The run journal (run metadata beside the outputs, tested on its own).
const JOURNAL: &str = ".imgproc-journal";

fn read_image(p: &Path) -> Image {
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    decode(
        &bytes,
        &DecodeOptions {
            auto_orient: false,
            ..DecodeOptions::default()
        },
    )
    .unwrap()
    .frames
    .remove(0)
    .image
}

fn gradient(w: u32, h: u32, cn: u8) -> Image {
    let mut data = Vec::with_capacity((w * h * cn as u32) as usize);
    for y in 0..h {
        for x in 0..w {
            for c in 0..cn as u32 {
                data.push(((x * 7 + y * 3 + c * 50) % 256) as u8);
            }
        }
    }
    Image::from_u8(w, h, cn, data)
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

fn report_of(stdout: &[u8]) -> serde_json::Value {
    serde_json::from_slice(stdout).unwrap_or_else(|e| {
        panic!(
            "report is not JSON: {e}: {}",
            String::from_utf8_lossy(stdout)
        )
    })
}

#[test]
fn manifest_run_writes_outputs_and_a_full_report() {
    let env = TestEnv::new();
    env.image("in/a.png", gradient(64, 48, 3), OutputFormat::Png);
    env.image("in/b.png", gradient(40, 30, 4), OutputFormat::Png);
    env.write(
        "jobs.json",
        br#"{"version": 1, "output_dir": "out", "defaults": {"quality": 80},
             "jobs": [
               {"input": "in/a.png", "ops": ["edge_detection"], "output": "a_edges.png"},
               {"input": "in/*.png", "ops": [{"op": "blur", "sigma": 2.0, "ksize": 0}, "grayscale"], "output": "small/{stem}.jpg"},
               {"input": "in/a.png", "ops": ["color_inversion", "blur"]}
             ]}"#,
    );
    let out = env
        .cmd()
        .args(["--manifest", "jobs.json", "--report", "-", "-q"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        env.files_under("out"),
        vec!["a_edges.png", "job2/in/a.png", "small/a.jpg", "small/b.jpg"]
    );
    let edges = env.read_image("out/a_edges.png");
    assert_eq!((edges.width, edges.height, edges.channels), (64, 48, 1));
    let inverted = env.read_image("out/job2/in/a.png");
    assert_eq!(inverted.channels, 3);

    let r = report_of(&out);
    assert_eq!(r["totals"]["items"], 4);
    assert_eq!(r["totals"]["ok"], 4);
    assert_eq!(r["totals"]["failed"], 0);
    assert!(r["wall_seconds"].as_f64().unwrap() > 0.0);
    assert!(r["imgproc_version"].is_string());
    let item = &r["items"][0];
    for key in [
        "input",
        "output",
        "ops",
        "status",
        "error",
        "width",
        "height",
        "megapixels",
        "bytes_in",
        "bytes_out",
        "decode_ms",
        "process_ms",
        "encode_ms",
        "rank",
        "backend",
    ] {
        assert!(item.get(key).is_some(), "report item lacks {key}: {item}");
    }
    assert_eq!(item["status"], "ok");
    assert_eq!(item["width"], 64);
    assert_eq!(item["backend"], "cpu");
    assert!(item["bytes_out"].as_u64().unwrap() > 0);
    assert!(r["totals"]["megapixels_per_second"].as_f64().unwrap() > 0.0);
    // Each item's start and end on the run's clock: inside the run, and at least as
    // long as its three stages.
    let wall = r["wall_seconds"].as_f64().unwrap();
    for item in r["items"].as_array().unwrap() {
        let (s, e) = (
            item["started_seconds"].as_f64().expect("started_seconds"),
            item["ended_seconds"].as_f64().expect("ended_seconds"),
        );
        let stages: f64 = ["decode_ms", "process_ms", "encode_ms"]
            .iter()
            .map(|k| item[k].as_f64().unwrap() / 1e3)
            .sum();
        assert!(0.0 <= s && s <= e && e <= wall, "{s} {e} {wall}: {item}");
        assert!(
            e - s + 1e-6 >= stages,
            "{s} {e} shorter than {stages}: {item}"
        );
    }
}

#[test]
fn an_invalid_manifest_lists_every_problem_exits_2_and_writes_nothing() {
    let env = TestEnv::new();
    env.image("a.png", gradient(8, 8, 3), OutputFormat::Png);
    env.write(
        "jobs.json",
        br#"{"version": 1, "jobs": [
              {"input": "a.png", "ops": ["grayscal", "blur:sigma=-2"]},
              {"input": "nothing/*.jpg", "ops": ["invert"]},
              {"input": "a.png", "ops": [{"op": "resize", "width": 10, "filter": "cubic"}], "outptu": "x.png"}
            ]}"#,
    );
    env.cmd()
        .args(["--manifest", "jobs.json"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "jobs[0].ops[0]: unknown operation \"grayscal\": did you mean \"grayscale\"?",
        ))
        .stderr(predicate::str::contains("jobs[0].ops[1].sigma"))
        .stderr(predicate::str::contains(
            "jobs[1].input: \"nothing/*.jpg\" matches no file",
        ))
        .stderr(predicate::str::contains("jobs[2].ops[0].filter"))
        .stderr(predicate::str::contains(
            "jobs[2].outptu: unknown field: did you mean \"output\"?",
        ))
        .stderr(predicate::str::contains("5 problems"));
    assert!(!env.path("out").exists());
}

#[test]
fn invalid_json_names_line_and_column() {
    let env = TestEnv::new();
    env.write(
        "jobs.json",
        b"{\n  \"version\": 1,\n  \"jobs\": [\n    {\"input\": \"a.png\" \"ops\": []}\n  ]\n}\n",
    );
    env.cmd()
        .args(["--manifest", "jobs.json"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("jobs.json").and(predicate::str::contains("line 4, column")),
        );
}

#[test]
fn duplicate_outputs_and_outputs_over_inputs_are_refused() {
    let env = TestEnv::new();
    env.image("a.png", gradient(8, 8, 3), OutputFormat::Png);
    env.image("b.png", gradient(8, 8, 3), OutputFormat::Png);
    env.write(
        "jobs.json",
        br#"{"version": 1, "output_dir": ".", "jobs": [
              {"input": "*.png", "ops": ["invert"], "output": "same.png"},
              {"input": "a.png", "ops": ["invert"], "output": "b.png"}
            ]}"#,
    );
    env.cmd()
        .args(["--manifest", "jobs.json"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("add {stem} or {index}"))
        .stderr(predicate::str::contains("is also an input"));
    assert!(!env.path("same.png").exists());
}

#[test]
fn manifest_from_stdin_resolves_against_the_current_folder() {
    let env = TestEnv::new();
    env.image("a.png", gradient(16, 16, 3), OutputFormat::Png);
    env.cmd()
        .args(["--manifest", "-", "-q"])
        .write_stdin(r#"{"version": 1, "jobs": [{"input": "a.png", "ops": ["threshold"], "output": "t.png"}]}"#)
        .assert()
        .success();
    assert!(env.path("out/t.png").is_file());
}

#[test]
fn output_dir_flag_overrides_the_manifest() {
    let env = TestEnv::new();
    env.image("a.png", gradient(16, 16, 3), OutputFormat::Png);
    env.write("m.json", br#"{"version": 1, "output_dir": "ignored", "jobs": [{"input": "a.png", "ops": [], "output": "a.bmp"}]}"#);
    env.cmd()
        .args(["-m", "m.json", "-o", "elsewhere", "-q"])
        .assert()
        .success();
    assert!(env.path("elsewhere/a.bmp").is_file());
    assert!(!env.path("ignored").exists());
}

#[test]
fn quick_mode_runs_the_ops_over_the_given_files() {
    let env = TestEnv::new();
    env.image("p/a.png", gradient(30, 20, 3), OutputFormat::Png);
    env.image("p/b.png", gradient(30, 20, 3), OutputFormat::Png);
    env.cmd()
        .args([
            "--op",
            "grayscale",
            "--op",
            "blur:sigma=2,ksize=0",
            "-o",
            "q",
            "--format",
            "webp",
            "-q",
            "p/*.png",
        ])
        .assert()
        .success();
    assert_eq!(env.files_under("q"), vec!["a.webp", "b.webp"]);
    assert_eq!(
        env.read_image("q/a.webp").channels,
        3,
        "lossless WebP stores gray as RGB"
    );
    env.cmd()
        .args(["--op", "grayscale", "p/a.png"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("-o DIR"));
    env.cmd()
        .args(["--op", "bluur", "-o", "q", "p/a.png"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("did you mean \"blur\""));
}

#[test]
fn a_bad_input_fails_alone_with_exit_1_and_fail_fast_stops_the_rest() {
    let env = TestEnv::new();
    for i in 0..4 {
        env.image(
            &format!("in/ok{i}.png"),
            gradient(32, 32, 3),
            OutputFormat::Png,
        );
    }
    let good = std::fs::read(env.path("in/ok0.png")).unwrap();
    env.write("in/truncated.png", &good[..good.len() / 2]);
    env.write("in/garbage.png", b"this is not an image at all");
    let out = env
        .cmd()
        .args([
            "--op",
            "invert",
            "-o",
            "out",
            "--report",
            "-",
            "--threads",
            "1",
            "in/*.png",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "garbage.png: unsupported: not a recognised image format",
        ))
        .get_output()
        .stdout
        .clone();
    let r = report_of(&out);
    assert_eq!(r["totals"]["ok"], 4);
    assert_eq!(r["totals"]["failed"], 2);
    let kinds: Vec<&str> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["error_kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"unsupported") && kinds.contains(&"decode"),
        "{kinds:?}"
    );
    assert_eq!(env.files_under("out").len(), 4);

    // With --fail-fast, one thread and one item in flight, the largest-first order puts
    // the unreadable (cost unknown, weighted as 1 MP) items first: the batch stops at the
    // first failure. (Items already in flight when a failure arrives still complete.)
    let out = env
        .cmd()
        .args([
            "--op",
            "invert",
            "-o",
            "ff",
            "--report",
            "-",
            "--threads",
            "1",
            "--fail-fast",
            "--prefetch",
            "1",
            "-q",
            "in/*.png",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let r = report_of(&out);
    assert_eq!(r["totals"]["failed"], 1);
    assert_eq!(r["totals"]["skipped"], 5);
    assert!(env.files_under("ff").is_empty());
}

#[test]
fn oversized_images_are_refused_from_the_header() {
    let env = TestEnv::new();
    env.image("big.png", gradient(100, 100, 3), OutputFormat::Png);
    env.cmd()
        .args([
            "--op",
            "invert",
            "-o",
            "out",
            "--max-pixels",
            "5000",
            "big.png",
        ])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("too large").and(predicate::str::contains("--max-pixels")),
        );
}

#[test]
fn outputs_are_replaced_atomically_and_no_temporary_files_remain() {
    let env = TestEnv::new();
    env.image("a.png", gradient(50, 50, 3), OutputFormat::Png);
    env.write("out/a.png", b"old content");
    env.cmd()
        .args(["--op", "invert", "-o", "out", "-q", "a.png"])
        .assert()
        .success();
    assert_eq!(env.files_under("out"), vec!["a.png"]);
    assert_eq!(env.read_image("out/a.png").width, 50);
}

#[test]
fn skip_existing_resumes_without_redoing_work() {
    let env = TestEnv::new();
    env.image("a.png", gradient(20, 20, 3), OutputFormat::Png);
    env.image("b.png", gradient(20, 20, 3), OutputFormat::Png);
    env.write("out/a.png", b"kept");
    let out = env
        .cmd()
        .args([
            "--op",
            "invert",
            "-o",
            "out",
            "--skip-existing",
            "--report",
            "-",
            "-q",
            "a.png",
            "b.png",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(std::fs::read(env.path("out/a.png")).unwrap(), b"kept");
    let r = report_of(&out);
    assert_eq!(r["totals"]["skipped"], 1);
    assert_eq!(r["totals"]["ok"], 1);
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let env = TestEnv::new();
    env.image("a.png", gradient(200, 100, 3), OutputFormat::Png);
    env.write(
        "m.json",
        br#"{"version": 1, "jobs": [{"input": "a.png", "ops": ["blur"], "output": "x.jpg"}]}"#,
    );
    env.cmd()
        .args(["-m", "m.json", "--dry-run"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("200x100 0.02 MP")
                .and(predicate::str::contains("1 items, 0.02 megapixels")),
        );
    assert!(!env.path("out").exists());
}

#[test]
fn list_ops_names_every_op_and_its_parameters() {
    let env = TestEnv::new();
    env.cmd().arg("--list-ops").assert().success().stdout(
        predicate::str::contains("custom_processing (= hsv:value=50)")
            .and(predicate::str::contains("sigma")),
    );
    let out = env
        .cmd()
        .args(["--list-ops", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    for n in [
        "grayscale",
        "invert",
        "blur",
        "canny",
        "brighten",
        "darken",
        "threshold",
        "hsv",
        "sharpen",
        "median",
        "box_blur",
        "sobel",
        "resize",
        "rotate",
        "flip",
        "crop",
        "equalize",
        "gamma",
        "contrast",
        "erode",
        "dilate",
    ] {
        assert!(names.contains(&n), "{n} missing from --list-ops --json");
    }
}

#[test]
fn usage_errors_exit_2() {
    let env = TestEnv::new();
    env.cmd()
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nothing to do"));
    env.cmd()
        .args(["--threads", "0", "-m", "x.json"])
        .assert()
        .code(2);
    env.cmd()
        .args(["-m", "missing.json"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read the manifest"));
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let env = TestEnv::new();
    for i in 0..3 {
        env.image(
            &format!("in/{i}.png"),
            gradient(300 + i * 50, 200, 3),
            OutputFormat::Png,
        );
    }
    for t in ["1", "2", "3"] {
        env.cmd()
            .args([
                "--op",
                "blur",
                "--op",
                "canny",
                "--op",
                "dilate",
                "-o",
                &format!("t{t}"),
                "--threads",
                t,
                "-q",
                "in/*.png",
            ])
            .assert()
            .success();
    }
    for i in 0..3 {
        let a = std::fs::read(env.path(&format!("t1/{i}.png"))).unwrap();
        for t in ["t2", "t3"] {
            assert_eq!(
                a,
                std::fs::read(env.path(&format!("{t}/{i}.png"))).unwrap(),
                "{t}/{i}.png"
            );
        }
    }
}

/// Puts an EXIF APP1 segment with the given orientation right after a JPEG's SOI marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_is_applied_unless_told_not_to() {
    let env = TestEnv::new();
    let plain = encode(
        vec![Frame {
            image: gradient(40, 20, 3),
            delay_ms: 0,
        }],
        &EncodeOptions {
            format: OutputFormat::Jpeg,
            quality: 90,
        },
    )
    .unwrap();
    env.write("rot.jpg", &with_exif_orientation(&plain, 6));
    env.cmd()
        .args([
            "--op", "invert", "-o", "a", "--format", "png", "-q", "rot.jpg",
        ])
        .assert()
        .success();
    let img = env.read_image("a/rot.png");
    assert_eq!((img.width, img.height), (20, 40));
    env.cmd()
        .args([
            "--op",
            "invert",
            "-o",
            "b",
            "--format",
            "png",
            "--no-auto-orient",
            "-q",
            "rot.jpg",
        ])
        .assert()
        .success();
    let img = env.read_image("b/rot.png");
    assert_eq!((img.width, img.height), (40, 20));
}

#[test]
fn animated_gifs_keep_every_frame() {
    let env = TestEnv::new();
    let frames: Vec<Frame> = (0..3)
        .map(|i| Frame {
            image: gradient(24 + i, 16, 4).clone(),
            delay_ms: 100,
        })
        .collect();
    // All frames of a GIF share the canvas size: use the first frame's.
    let frames: Vec<Frame> = frames
        .into_iter()
        .map(|f| Frame {
            image: imgproc::ops::apply(
                &imgproc::ops::parse_op_str("crop:width=24,height=16").unwrap(),
                f.image,
            )
            .unwrap(),
            delay_ms: 100,
        })
        .collect();
    let bytes = encode(
        frames,
        &EncodeOptions {
            format: OutputFormat::Gif,
            quality: 90,
        },
    )
    .unwrap();
    env.write("anim.gif", &bytes);
    env.cmd()
        .args(["--op", "invert", "-o", "out", "-q", "anim.gif"])
        .assert()
        .success();
    let back = decode(
        &std::fs::read(env.path("out/anim.gif")).unwrap(),
        &DecodeOptions::default(),
    )
    .unwrap();
    assert_eq!(back.frames.len(), 3);
    assert_eq!(back.frames[1].delay_ms, 100);
}

#[test]
fn sixteen_bit_png_stays_sixteen_bit_through_ops_that_keep_it() {
    let env = TestEnv::new();
    let data: Vec<u16> = (0..20 * 10 * 3).map(|i| (i * 211 % 65536) as u16).collect();
    env.image(
        "deep.png",
        Image::from_u16(20, 10, 3, data.clone()),
        OutputFormat::Png,
    );
    env.cmd()
        .args([
            "--op", "invert", "--op", "flip", "-o", "out", "-q", "deep.png",
        ])
        .assert()
        .success();
    let img = env.read_image("out/deep.png");
    assert!(img.is_16bit());
    env.cmd()
        .args(["--op", "blur", "-o", "out8", "-q", "deep.png"])
        .assert()
        .success();
    assert!(!env.read_image("out8/deep.png").is_16bit());
}

#[test]
fn every_valid_pngsuite_file_converts_and_every_corrupt_one_fails_alone() {
    let env = TestEnv::new();
    let suite = corpus().join("pngsuite");
    let names: Vec<String> = std::fs::read_dir(&suite)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".png"))
        .collect();
    let corrupt = names.iter().filter(|n| n.starts_with('x')).count();
    assert!(
        names.len() > 100 && corrupt > 10,
        "PngSuite looks incomplete: {} files",
        names.len()
    );
    let suite_glob = format!("{}/*.png", suite.display());
    let webp_glob = format!("{}/graphics/*.webp", corpus().display());
    let out = env
        .cmd()
        .args([
            "--op",
            "invert",
            "-o",
            "out",
            "--format",
            "png",
            "--report",
            "-",
            "-q",
            &suite_glob,
            &webp_glob,
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let r = report_of(&out);
    for item in r["items"].as_array().unwrap() {
        let name = Path::new(item["input"].as_str().unwrap())
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let expected = if name.starts_with('x') {
            "failed"
        } else {
            "ok"
        };
        assert_eq!(item["status"], expected, "{name}: {}", item["error"]);
    }
    assert_eq!(r["totals"]["failed"].as_u64().unwrap() as usize, corrupt);
    // Gray 16-bit and RGBA 16-bit PngSuite files keep their depth.
    assert!(env.read_image("out/basn0g16.png").is_16bit());
    assert!(env.read_image("out/basn6a16.png").has_alpha());
}

#[test]
fn a_batch_of_real_photos_runs_end_to_end() {
    let env = TestEnv::new();
    let photos = corpus().join("photos");
    let manifest = format!(
        r#"{{"version": 1, "output_dir": "{}", "jobs": [
            {{"input": "{p}/Aqua.jpg", "ops": ["edge_detection"], "output": "edges/{{stem}}.png"}},
            {{"input": "{p}/FreshFlower.jpg", "ops": ["custom_processing", "resize:width=320"], "output": "{{stem}}.jpg"}},
            {{"input": "{p}/GreenMeadow.jpg", "ops": ["grayscale", "threshold"], "output": "{{stem}}.tiff"}}
        ]}}"#,
        env.path("out").display(),
        p = photos.display()
    );
    env.write("m.json", manifest.as_bytes());
    env.cmd().args(["-m", "m.json", "-q"]).assert().success();
    assert_eq!(
        env.files_under("out"),
        vec!["FreshFlower.jpg", "GreenMeadow.tiff", "edges/Aqua.png"]
    );
    assert_eq!(env.read_image("out/FreshFlower.jpg").width, 320);
}

#[test]
fn progress_lines_report_items_and_throughput_when_not_a_terminal() {
    let env = TestEnv::new();
    env.image("a.png", gradient(64, 64, 3), OutputFormat::Png);
    env.image("b.png", gradient(64, 64, 3), OutputFormat::Png);
    env.cmd()
        .args(["--op", "invert", "-o", "out", "a.png", "b.png"])
        .assert()
        .success()
        .stderr(
            predicate::str::contains("items")
                .and(predicate::str::contains("MP/s"))
                .and(predicate::str::contains("done: 2/2 items")),
        );
}

#[test]
fn outputs_that_would_leave_output_dir_are_manifest_errors() {
    let env = TestEnv::new();
    env.image("in/a.png", gradient(16, 16, 3), OutputFormat::Png);
    env.image("in/...png", gradient(16, 16, 3), OutputFormat::Png);
    let victim = env.write("victim.png", b"keep");
    let absolute = env.path("abs.png");
    for (job, output) in [
        (
            r#"{"input": "in/a.png", "ops": ["invert"], "output": "../../x.png"}"#,
            "x.png",
        ),
        (
            &*format!(
                r#"{{"input": "in/a.png", "ops": ["invert"], "output": "{}"}}"#,
                absolute.display()
            ),
            "abs.png",
        ),
        (
            r#"{"input": "in/...png", "ops": ["invert"], "output": "{stem}/{name}"}"#,
            "...png",
        ),
        (
            r#"{"input": "in/a.png", "ops": ["invert"], "output": "../victim.png"}"#,
            "victim.png",
        ),
    ] {
        env.write(
            "jobs.json",
            format!(r#"{{"version": 1, "output_dir": "out", "jobs": [{job}]}}"#).as_bytes(),
        );
        for dry in [true, false] {
            let mut c = env.cmd();
            c.args(["-m", "jobs.json", "-q"]);
            if dry {
                c.arg("--dry-run");
            }
            c.assert().code(2).stderr(
                predicate::str::contains("jobs[0].output")
                    .and(predicate::str::contains("outside output_dir"))
                    .and(predicate::str::contains(output)),
            );
        }
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert!(!absolute.exists());
    assert!(!env.path("out").exists());
}

#[cfg(unix)]
#[test]
fn a_symlinked_folder_inside_output_dir_is_refused_but_output_dir_may_be_a_link() {
    let env = TestEnv::new();
    env.image("in/a.png", gradient(16, 16, 3), OutputFormat::Png);
    std::fs::create_dir_all(env.path("elsewhere")).unwrap();
    std::fs::create_dir_all(env.path("out")).unwrap();
    std::os::unix::fs::symlink(env.path("elsewhere"), env.path("out/link")).unwrap();
    env.write(
        "jobs.json",
        br#"{"version": 1, "output_dir": "out", "jobs": [{"input": "in/a.png", "ops": ["invert"], "output": "link/a.png"}]}"#,
    );
    env.cmd()
        .args(["-m", "jobs.json", "-q"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("through a symbolic link"));
    assert!(!env.path("elsewhere/a.png").exists());
    // output_dir itself may be a link (a scratch area mounted elsewhere, say).
    std::fs::create_dir_all(env.path("real")).unwrap();
    std::os::unix::fs::symlink(env.path("real"), env.path("out2")).unwrap();
    env.cmd()
        .args(["--op", "invert", "-o", "out2", "-q", "in/a.png"])
        .assert()
        .success();
    assert!(env.path("real/a.png").is_file());
}

#[test]
fn pipes_devices_and_repeated_or_huge_op_strings_are_refused_up_front() {
    let env = TestEnv::new();
    env.image("a.png", gradient(16, 16, 3), OutputFormat::Png);
    let fifo = env.path("fifo.png");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    // A FIFO would block a reader forever; /dev/zero never ends.
    env.cmd()
        .args(["--op", "invert", "-o", "out", "fifo.png", "/dev/zero"])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("is a named pipe (FIFO)")
                .and(predicate::str::contains("\"/dev/zero\" is a device")),
        );
    env.cmd()
        .args(["--op", "blur:sigma=1,sigma=2", "-o", "out", "a.png"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("\"sigma\" is given twice"));
    // In a manifest: one command-line argument cannot be that long.
    let huge = "x".repeat(1_000_000);
    env.write(
        "huge.json",
        format!(r#"{{"version": 1, "jobs": [{{"input": "a.png", "ops": ["{huge}"]}}]}}"#)
            .as_bytes(),
    );
    let out = env
        .cmd()
        .args(["-m", "huge.json", "-o", "out"])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(
        out.len() < 1000,
        "the op name was echoed whole: {} bytes",
        out.len()
    );
    assert!(String::from_utf8_lossy(&out).contains("(1000000 characters)"));
    assert!(!env.path("out").exists());
}

/// A small tmpfs mounted for one test (needs root, as CI has), unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(path: PathBuf, size: &str, read_only: bool) -> SmallDisk {
        std::fs::create_dir_all(&path).unwrap();
        let mut opts = format!("size={size}");
        if read_only {
            opts.push_str(",ro");
        }
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs failed: this test needs root");
        SmallDisk(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_and_a_read_only_one_say_so_and_leave_no_temporary_file() {
    let env = TestEnv::new();
    env.image("a.png", gradient(256, 256, 3), OutputFormat::Png);
    env.image("b.png", gradient(8, 8, 3), OutputFormat::Png);
    let full = SmallDisk::mount(env.path("full"), "64k", false);
    // The journal fits; the first image's output does not.
    let out = env
        .cmd()
        .args([
            "--op", "invert", "--format", "bmp", "-o", "full/o", "--report", "r.json", "a.png",
        ])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&out);
    assert!(err.contains("the disk is full"), "{err}");
    let left: Vec<_> = std::fs::read_dir(env.path("full/o"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n != ".imgproc-journal")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    drop(full);
    let _ro = SmallDisk::mount(env.path("ro"), "64k", true);
    let out = env
        .cmd()
        .args(["--op", "invert", "-o", "ro/o", "b.png"])
        .assert()
        .code(3)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&out);
    assert!(err.contains("the filesystem is read-only"), "{err}");
}

#[test]
fn dash_streams_one_image_through_stdin_and_stdout() {
    let env = TestEnv::new();
    let input = env.image("a.png", gradient(48, 32, 3), OutputFormat::Png);
    env.cmd()
        .args([
            "--op", "invert", "--format", "png", "-o", "out", "-q", "a.png",
        ])
        .assert()
        .success();
    let reference = std::fs::read(env.path("out/a.png")).unwrap();
    // File to standard output.
    let out = env
        .cmd()
        .args(["--op", "invert", "--format", "png", "-o", "-", "a.png"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(out == reference, "-o - differs from the file output");
    // Standard input to standard output, and to a folder.
    let bytes = std::fs::read(&input).unwrap();
    let out = env
        .cmd()
        .args(["--op", "invert", "--format", "png", "-o", "-", "-"])
        .write_stdin(bytes.clone())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(out == reference, "stdin to stdout differs");
    env.cmd()
        .args(["--op", "invert", "--format", "png", "-o", "from_stdin", "-"])
        .write_stdin(bytes)
        .assert()
        .success();
    assert!(std::fs::read(env.path("from_stdin/stdin.png")).unwrap() == reference);
    // Everything else with - says what works, and creates no folder named -.
    for args in [
        vec!["--op", "invert", "-o", "-", "a.png"],
        vec![
            "--op", "invert", "--format", "png", "-o", "-", "a.png", "a.png",
        ],
        vec![
            "--op", "invert", "--format", "png", "-o", "-", "--report", "r.json", "a.png",
        ],
        vec!["-m", "jobs.json", "-o", "-"],
    ] {
        env.cmd()
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("-o -"));
    }
    assert!(!env.path("-").exists());
    // A broken image on standard input fails like a broken file.
    env.cmd()
        .args(["--op", "invert", "--format", "png", "-o", "-", "-"])
        .write_stdin(b"not an image".to_vec())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("standard input"));
}

#[test]
fn dry_run_lists_what_would_fail_and_exits_1() {
    let env = TestEnv::new();
    env.image("big.png", gradient(200, 100, 3), OutputFormat::Png);
    env.image("small.png", gradient(10, 10, 3), OutputFormat::Png);
    env.write("broken.png", b"not an image");
    let args = ["--op", "invert", "-o", "out", "--max-pixels", "10000"];
    env.cmd()
        .args(args)
        .args(["--dry-run", "big.png", "small.png", "broken.png"])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("200x100 0.02 MP; WOULD FAIL: above --max-pixels 10000")
                .and(predicate::str::contains(
                    "WOULD FAIL: the header cannot be read",
                ))
                .and(predicate::str::contains("2 would fail")),
        );
    // The real run fails exactly those.
    env.cmd()
        .args(args)
        .args(["-q", "big.png", "small.png", "broken.png"])
        .assert()
        .code(1);
    assert_eq!(env.files_under("out"), vec!["small.png"]);
    env.cmd()
        .args(args)
        .args(["--dry-run", "small.png"])
        .assert()
        .success();
}

#[cfg(unix)]
#[test]
fn a_planted_symlink_swarm_never_redirects_a_write() {
    let env = TestEnv::new();
    env.image("a.png", gradient(32, 32, 3), OutputFormat::Png);
    let victim = env.write("victim.txt", b"keep");
    std::fs::create_dir_all(env.path("out")).unwrap();
    let link =
        |name: &str| std::os::unix::fs::symlink(&victim, env.path("out").join(name)).unwrap();
    // Every name the old temporary-file pattern could take for nearby pids, one with
    // the current pattern's shape, and the output path itself.
    let me = std::process::id();
    for pid in me.saturating_sub(200)..me + 800 {
        for n in 0..2 {
            link(&format!(".a.png.imgproc-{pid}-{n}.tmp"));
        }
    }
    link(".a.png.AAAAAAAAAA.imgproc-tmp");
    link("a.png");
    let planted = std::fs::read_dir(env.path("out")).unwrap().count();
    for extra in [&[][..], &["--resume"][..], &["--skip-existing"][..]] {
        env.cmd()
            .args(["--op", "invert", "-o", "out", "-q", "a.png"])
            .args(extra)
            .assert()
            .success();
    }
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"keep",
        "the victim was written"
    );
    let out = std::fs::symlink_metadata(env.path("out/a.png")).unwrap();
    assert!(out.file_type().is_file(), "the output is still a link");
    // Links that are not imgproc's own temporary files are left alone, and none of ours
    // is left behind: the planted ones (less the output's), plus the output and journal.
    assert_eq!(
        std::fs::read_dir(env.path("out")).unwrap().count(),
        planted - 1 + 2
    );
}

#[test]
fn files_from_takes_names_as_they_are_by_line_or_nul() {
    let env = TestEnv::new();
    env.image("in/a b.png", gradient(9, 7, 3), OutputFormat::Png);
    env.image("in/we[i]rd.png", gradient(9, 7, 1), OutputFormat::Png);
    env.image("in/other.png", gradient(5, 5, 3), OutputFormat::Png);
    // NUL-separated on stdin, as `find -print0` writes: a space and glob characters
    // are part of the names, never patterns (`we[i]rd` would match nothing as a glob).
    env.cmd()
        .args([
            "--files-from",
            "-",
            "-0",
            "--op",
            "invert",
            "-o",
            "out",
            "-q",
        ])
        .write_stdin("in/a b.png\0in/we[i]rd.png\0")
        .assert()
        .success();
    assert_eq!(env.files_under("out"), ["a b.png", "we[i]rd.png"]);
    // One per line from a file, beside an input on the command line.
    env.write("list.txt", b"in/a b.png\n\nin/we[i]rd.png\n");
    env.cmd()
        .args([
            "--files-from",
            "list.txt",
            "--op",
            "invert",
            "-o",
            "out2",
            "-q",
        ])
        .arg("in/other.png")
        .assert()
        .success();
    assert_eq!(env.files_under("out2").len(), 3);
    // A name that does not exist is a usage error that names it; nothing is written.
    env.write("bad.txt", b"in/a b.png\nin/missing.png\n");
    env.cmd()
        .args(["--files-from", "bad.txt", "--op", "invert", "-o", "out3"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("--files-from name 2")
                .and(predicate::str::contains("missing.png")),
        );
    assert!(!env.path("out3").exists());
    // -0 alone, and --files-from with a manifest, are refused.
    env.cmd()
        .args(["-0", "--op", "invert", "-o", "o", "in/other.png"])
        .assert()
        .code(2);
    env.write("jobs.json", br#"{"jobs": []}"#);
    env.cmd()
        .args(["--files-from", "list.txt", "-m", "jobs.json"])
        .assert()
        .code(2);
}

#[test]
fn completions_and_the_man_page_are_generated() {
    let env = TestEnv::new();
    let run = |args: &[&str]| {
        env.cmd()
            .args(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };
    let bash = run(&["completions", "bash"]);
    env.write("imgproc.bash", &bash);
    // The script parses, and registers itself for imgproc.
    let check = std::process::Command::new("bash")
        .args(["-c", "source ./imgproc.bash && complete -p imgproc"])
        .current_dir(env.path(""))
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    assert!(String::from_utf8_lossy(&check.stdout).contains("_imgproc imgproc"));
    let bash = String::from_utf8(bash).unwrap();
    assert!(bash.contains("--files-from") && bash.contains("--no-shrink-on-load"));
    assert!(String::from_utf8(run(&["completions", "zsh"]))
        .unwrap()
        .starts_with("#compdef imgproc"));
    assert!(String::from_utf8(run(&["completions", "fish"]))
        .unwrap()
        .contains("complete -c imgproc -s m -l manifest"));
    env.cmd()
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bash, zsh, fish"));
    let man = String::from_utf8(run(&["man"])).unwrap();
    assert!(man.contains(".TH imgproc 1"), "{man}");
    assert!(
        man.contains("files\\-from") && man.contains("Exit codes"),
        "{man}"
    );
}

#[test]
fn events_stream_one_json_line_per_thing_that_happens() {
    let env = TestEnv::new();
    env.image("in/a.png", gradient(9, 7, 3), OutputFormat::Png);
    env.image("in/b.png", gradient(8, 6, 3), OutputFormat::Png);
    env.write("in/bad.png", b"not an image");
    let out = env
        .cmd()
        .args(["--op", "invert", "-o", "out", "-q", "--events", "-"])
        .args(["in/a.png", "in/b.png", "in/bad.png"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let events: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_finished"));
    let count = |k: &str| kinds.iter().filter(|&&x| x == k).count();
    assert_eq!(count("item_started"), 3, "{kinds:?}");
    assert_eq!(count("item_done"), 2, "{kinds:?}");
    assert_eq!(count("item_failed"), 1, "{kinds:?}");
    for e in &events {
        assert_eq!(e["v"], 1);
        assert!(e["t"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(events[0]["items"], 3);
    let failed = events.iter().find(|e| e["event"] == "item_failed").unwrap();
    assert!(failed["input"].as_str().unwrap().ends_with("bad.png"));
    assert_eq!(failed["error_kind"], "unsupported");
    let last = events.last().unwrap();
    assert_eq!(last["exit_code"], 1);
    assert_eq!(last["totals"]["ok"], 2);
    // Both on standard output cannot work; the usage error says which to move.
    env.cmd()
        .args([
            "--op", "invert", "-o", "o2", "--events", "-", "--report", "-", "in/a.png",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--events - and --report -"));
}

#[test]
fn a_csv_report_has_a_row_per_item() {
    let env = TestEnv::new();
    env.image("in/a,b.png", gradient(9, 7, 3), OutputFormat::Png);
    env.image("in/=c.png", gradient(8, 6, 3), OutputFormat::Png);
    env.cmd()
        .args(["--op", "invert", "-o", "out", "-q", "--report", "r.CSV"])
        .args(["in/a,b.png", "in/=c.png"])
        .assert()
        .success();
    let text = String::from_utf8(std::fs::read(env.path("r.CSV")).unwrap()).unwrap();
    let rows: Vec<&str> = text.split("\r\n").filter(|r| !r.is_empty()).collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows[0].starts_with("input,output,ops,status,"), "{text}");
    // A comma in a name is quoted; a name that starts like a formula is defused.
    assert!(
        text.contains("\"./in/a,b.png\",\"out/a,b.png\",invert,ok,"),
        "{text}"
    );
    assert!(text.contains("./in/=c.png,out/=c.png,invert,ok,"), "{text}");
}
