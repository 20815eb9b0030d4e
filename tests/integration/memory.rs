//! `--max-memory-mb` holds for the real process: an item over it is refused before its
//! pixels exist, and an item allowed exactly what it was told it needs runs within it,
//! measured as the peak resident size the kernel reports for the child (`wait4`).

use assert_cmd::cargo::cargo_bin;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// What a finished run left: exit code, standard output and error, peak resident KiB.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    max_rss_kib: u64,
}

/// Runs `imgproc ARGS` in `dir` and measures its peak resident size with GNU time
/// (`wait4`'s figure for a child of this process would include the test process's own
/// size at the fork, which Linux keeps across the exec).
fn run_measured(dir: &Path, args: &[&str]) -> Run {
    let rss = dir.join(".max-rss");
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&rss)
        .arg(cargo_bin("imgproc"))
        .args(args)
        .current_dir(dir)
        .env("IMGPROC_PROGRESS_INTERVAL", "0")
        .stdin(Stdio::null())
        .output()
        .expect("GNU time (/usr/bin/time, Debian package time) runs imgproc");
    let report = std::fs::read_to_string(&rss).unwrap();
    Run {
        code: out.status.code().expect("imgproc exited"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        // The last line (an abnormal exit adds one before it).
        max_rss_kib: report
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no figure from GNU time: {report}")),
    }
}

/// A gray PNG of `w` x `h` written row by row (it never exists in memory whole).
fn huge_gray_png(path: &Path, w: u32, h: u32) {
    let file = std::io::BufWriter::new(File::create(path).unwrap());
    let mut enc = png::Encoder::new(file, w, h);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fastest);
    let mut writer = enc.write_header().unwrap().into_stream_writer().unwrap();
    let row: Vec<u8> = (0..w).map(|x| (x / 64 % 256) as u8).collect();
    for _ in 0..h {
        writer.write_all(&row).unwrap();
    }
    writer.finish().unwrap();
}

/// A textured RGB image, `w` x `h`, in `format`.
fn textured(path: &Path, w: u32, h: u32, format: image::ImageFormat) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let v = (x * 7 + y * 13) ^ (x.wrapping_mul(y) >> 5);
        image::Rgb([v as u8, (v >> 3) as u8, (x / 16 + y / 16) as u8])
    });
    img.save_with_format(path, format).unwrap();
}

#[test]
fn an_item_over_the_memory_cap_fails_before_its_pixels_exist() {
    let dir = tempfile::tempdir().unwrap();
    // 400 megapixels: 400 MB of gray pixels once decoded, a few hundred KB on disk.
    huge_gray_png(&dir.path().join("huge.png"), 20_000, 20_000);
    let common = [
        "--op",
        "blur",
        "-o",
        "out",
        "--max-pixels",
        "500000000",
        "--backend",
        "cpu",
    ];

    let dry = run_measured(
        dir.path(),
        &[
            &common[..],
            &["--max-memory-mb", "64", "--dry-run", "huge.png"],
        ]
        .concat(),
    );
    assert_eq!(dry.code, 1, "{}{}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout.contains("WOULD FAIL: above --max-memory-mb 64"),
        "{}",
        dry.stdout
    );

    let run = run_measured(
        dir.path(),
        &[&common[..], &["--max-memory-mb", "64", "huge.png"]].concat(),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("above --max-memory-mb 64")
            && run.stderr.contains("needs about")
            && run.stderr.contains("20000x20000 gray 8-bit"),
        "{}",
        run.stderr
    );
    // Nothing was processed, so no rate is claimed.
    assert!(!run.stderr.contains("MP/s"), "{}", run.stderr);
    assert!(!dir.path().join("out/huge.png").exists());
    // The 400 MB image was never allocated.
    assert!(
        run.max_rss_kib < 64 * 1024,
        "peak resident size {} KiB",
        run.max_rss_kib
    );
}

/// Runs `args` on `input` with --max-memory-mb 1 to learn what the item needs, then
/// with exactly that: it must succeed, with a peak resident size within the figure
/// plus what the process uses on a tiny image with the same ops.
fn holds(dir: &Path, input: &str, args: &[&str]) -> (u64, u64, u64) {
    let refused = run_measured(dir, &[args, &["--max-memory-mb", "1", input]].concat());
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    let need: u64 = refused
        .stderr
        .split("raise --max-memory-mb to ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no figure in: {}", refused.stderr));
    let limit = need.to_string();
    let ok = run_measured(dir, &[args, &["--max-memory-mb", &limit, input]].concat());
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let base = run_measured(dir, &[args, &["tiny.png"]].concat());
    assert_eq!(base.code, 0, "{}", base.stderr);
    let item_kib = ok.max_rss_kib.saturating_sub(base.max_rss_kib);
    assert!(
        item_kib <= need * 1024,
        "{input} {args:?}: the item's peak was {item_kib} KiB above a tiny image's, over the {need} MiB it was allowed"
    );
    (need, ok.max_rss_kib, base.max_rss_kib)
}

#[test]
fn memory_cap_holds_on_a_large_png_and_a_large_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    textured(
        &dir.path().join("big.png"),
        4000,
        3000,
        image::ImageFormat::Png,
    );
    textured(
        &dir.path().join("big.jpg"),
        4000,
        3000,
        image::ImageFormat::Jpeg,
    );
    textured(&dir.path().join("tiny.png"), 8, 8, image::ImageFormat::Png);
    for (input, ops) in [
        ("big.png", "blur"),
        ("big.png", "canny"),
        ("big.jpg", "sharpen"),
        ("big.jpg", "resize:scale=0.5"),
    ] {
        for format in ["png", "jpeg"] {
            let args = [
                "--op",
                ops,
                "--format",
                format,
                "-o",
                "out",
                "-q",
                "--backend",
                "cpu",
            ];
            let (need, rss, base) = holds(dir.path(), input, &args);
            eprintln!(
                "{input} {ops} -> {format}: allowed {need} MiB, peak resident {} MiB ({} MiB on a tiny image)",
                rss / 1024,
                base / 1024
            );
        }
    }
}
