//! A bounded mutation fuzzer for the two places hostile bytes enter: the manifest
//! parser and decode + pipeline + encode. It runs on stable Rust as an ordinary test
//! binary (`harness = false`), so CI runs it for a few seconds per target on every
//! change; `FUZZ_SECONDS=600 cargo test --release --test fuzz` runs it for longer
//! (`FUZZ_ONLY=manifest` or `image` for one target).
//!
//! Findings are panics (anywhere: `process_item` is called without its guard), an
//! input that takes longer than `SLOW` to process, and for manifests an accepted plan
//! with an output outside `output_dir`. Each finding is saved under
//! `target/fuzz-findings/` and fails the run. Mutations are byte flips, inserted
//! interesting values, chunk copies and deletions, and splices of two seeds, with the
//! seed of the random generator printed so that a run can be repeated (`FUZZ_SEED`).

use imgproc::codec::{self, DecodeOptions, EncodeOptions, Frame, OutputFormat};
use imgproc::image::Image;
use imgproc::manifest::{self, PlanOptions};
use imgproc::ops;
use imgproc::pipeline::{self, ItemSpec};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One input taking longer than this is a finding (the limits below keep honest
/// inputs far under it).
const SLOW: Duration = Duration::from_secs(10);

/// xorshift64*: small, fast, and repeatable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    &[0],
    &[0xFF],
    &[0x7F],
    &[0x80],
    &[0xFF, 0xFF],
    &[0, 0],
    &[0xFF, 0xFF, 0xFF, 0x7F],
    &[0, 0, 0, 0x80],
    &[0xFF, 0xFF, 0xFF, 0xFF],
    &[1, 0, 0, 0],
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], tokens: &[&[u8]], data: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            2 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let i = rng.below(len + 1);
                if rng.below(2) == 0 && i + v.len() <= len {
                    data[i..i + v.len()].copy_from_slice(v);
                } else {
                    data.splice(i..i, v.iter().copied());
                }
            }
            3 if len > 1 => {
                let a = rng.below(len);
                let n = 1 + rng.below((len - a).min(64));
                data.drain(a..a + n);
            }
            4 if len > 1 => {
                let a = rng.below(len);
                let n = 1 + rng.below((len - a).min(256));
                let chunk = data[a..a + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            5 if !tokens.is_empty() => {
                let t = tokens[rng.below(tokens.len())];
                let at = rng.below(len + 1);
                data.splice(at..at, t.iter().copied());
            }
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            _ if len > 1 => {
                data.truncate(rng.below(len));
            }
            _ => data.push(rng.next() as u8),
        }
    }
    data.truncate(1 << 20);
}

struct Fuzzer {
    rng: Rng,
    budget: Duration,
    findings: Vec<String>,
    out: PathBuf,
}

impl Fuzzer {
    /// Runs `check` on mutations of `seeds` for the time budget; returns executions.
    fn run(
        &mut self,
        name: &str,
        seeds: &[Vec<u8>],
        tokens: &[&[u8]],
        check: &dyn Fn(&[u8]) -> Result<(), String>,
    ) -> u64 {
        let start = Instant::now();
        let mut execs = 0u64;
        let mut case = Vec::new();
        while start.elapsed() < self.budget {
            case.clear();
            case.extend_from_slice(&seeds[self.rng.below(seeds.len())]);
            mutate(&mut self.rng, seeds, tokens, &mut case);
            let t = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| check(&case)));
            let took = t.elapsed();
            execs += 1;
            let problem = match outcome {
                Err(p) => Some(format!(
                    "panic: {}",
                    p.downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default()
                )),
                Ok(Err(e)) => Some(e),
                Ok(Ok(())) if took > SLOW => Some(format!("took {:.1} s", took.as_secs_f64())),
                Ok(Ok(())) => None,
            };
            if let Some(problem) = problem {
                let file = self.out.join(format!("{name}-{execs}.bin"));
                let _ = std::fs::create_dir_all(&self.out);
                let _ = std::fs::write(&file, &case);
                self.findings.push(format!(
                    "{name}: {problem} (input saved as {})",
                    file.display()
                ));
            }
        }
        println!(
            "fuzz {name}: {execs} executions in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        execs
    }
}

fn manifest_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"output_dir": "out", "jobs": [{"inputs": ["in/*.png"], "ops": ["blur", "canny"]}]}"#,
        r#"{"output_dir": "out", "jobs": [{"inputs": ["in/a.png"], "ops": [{"op": "resize", "scale": 0.5}], "output": "{stem}/{name}", "format": "jpeg", "quality": 80}]}"#,
        r#"{"output_dir": "out", "format": "webp", "jobs": [{"input": "in/b.jpg", "ops": ["hsv:hue=10,saturation=-5", "crop:x=1,y=1,width=2,height=2"], "output": "x/{stem}.{ext}"}]}"#,
        r#"{"jobs": [{"inputs": ["in"], "ops": []}]}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

const MANIFEST_TOKENS: &[&[u8]] = &[
    b"\"inputs\"",
    b"\"input\"",
    b"\"output\"",
    b"\"output_dir\"",
    b"\"ops\"",
    b"\"jobs\"",
    b"\"format\"",
    b"\"quality\"",
    b"\"..\"",
    b"\"/\"",
    b"\"../x.png\"",
    b"\"/etc/passwd\"",
    b"\"{stem}\"",
    b"\"{name}\"",
    b"\"{ext}\"",
    b"{stem}/../",
    b"**/",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"\"",
    b"\\u0000",
    b"1e999",
    b"-0",
    b"18446744073709551616",
    b"null",
    b"true",
    b"\"blur:sigma=1e308\"",
    b"\"resize:scale=1e-9\"",
    b"\"median:ksize=99999\"",
];

fn check_manifest(base: &Path, bytes: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(bytes);
    let opts = PlanOptions::default();
    if let Ok(plan) = manifest::parse(&text, "fuzz.json", base, &opts) {
        for item in &plan.items {
            let inside = item.output.starts_with(&plan.output_dir)
                && !item
                    .output
                    .components()
                    .any(|c| c == std::path::Component::ParentDir);
            if !inside {
                return Err(format!(
                    "accepted an output outside output_dir: {}",
                    item.output.display()
                ));
            }
        }
    }
    Ok(())
}

fn tiny(cn: u8) -> Image {
    let data = (0..12 * 9 * cn as u32)
        .map(|i| (i * 37 % 256) as u8)
        .collect();
    Image::from_u8(12, 9, cn, data)
}

fn image_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (_, format) in OutputFormat::ALL {
        for cn in [1u8, 3, 4] {
            let frames = if format == OutputFormat::Gif { 2 } else { 1 };
            let frames = (0..frames)
                .map(|_| Frame {
                    image: tiny(cn),
                    delay_ms: 10,
                })
                .collect();
            if let Ok(b) = codec::encode(
                frames,
                &EncodeOptions {
                    format,
                    quality: 80,
                },
            ) {
                seeds.push(b);
            }
        }
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for e in std::fs::read_dir(fixtures).into_iter().flatten().flatten() {
        if let Ok(b) = std::fs::read(e.path()) {
            if b.len() < 64 << 10 {
                seeds.push(b);
            }
        }
    }
    seeds
}

const PIPELINES: &[&[&str]] = &[
    &[],
    &["blur"],
    &["canny"],
    &["custom_processing", "grayscale"],
    &["resize:scale=0.5", "rotate:angle=90"],
    &["median", "equalize", "sharpen"],
    &["crop:x=1,y=1,width=4,height=4"],
];

fn check_image(bytes: &[u8]) -> Result<(), String> {
    // The first byte picks the pipeline and output format, so they are fuzzed too.
    let pick = bytes.first().copied().unwrap_or(0) as usize;
    let spec = ItemSpec {
        ops: PIPELINES[pick % PIPELINES.len()]
            .iter()
            .map(|o| ops::parse_op_str(o).map_err(|e| format!("{e:?}")))
            .collect::<Result<_, _>>()?,
        decode: DecodeOptions {
            max_pixels: 1 << 22,
            max_alloc: 256 << 20,
            auto_orient: true,
            shrink_on_load: true,
        },
        encode: EncodeOptions {
            format: OutputFormat::ALL[pick / 8 % OutputFormat::ALL.len()].1,
            quality: 75,
        },
    };
    // Errors are fine (most mutations are not images); panics and hangs are not.
    let _ = pipeline::process_item(&spec, bytes);
    Ok(())
}

fn main() {
    let seconds: f64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8.0);
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
        | 1;
    println!("fuzz: FUZZ_SEED={seed}, {seconds} s per target");
    // Panics are findings, reported with their message below; keep the log short.
    std::panic::set_hook(Box::new(|_| {}));
    let mut f = Fuzzer {
        rng: Rng(seed),
        budget: Duration::from_secs_f64(seconds),
        findings: Vec::new(),
        out: Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-findings"),
    };

    let dir = tempfile::tempdir().expect("a temporary folder");
    for name in ["in/a.png", "in/b.jpg", "in/sub/c.png"] {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("folders");
        std::fs::write(&p, b"not read by the parser").expect("a file");
    }
    let base = dir.path().to_path_buf();
    // `FUZZ_ONLY=manifest` or `FUZZ_ONLY=image` runs one target.
    let only = std::env::var("FUZZ_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only == name;
    if wanted("manifest") {
        f.run("manifest", &manifest_seeds(), MANIFEST_TOKENS, &|b| {
            check_manifest(&base, b)
        });
    }

    // One thread: the fuzzer measures one input at a time.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a thread pool");
    if wanted("image") {
        let seeds = image_seeds();
        pool.install(|| f.run("image", &seeds, &[], &check_image));
    }

    if !f.findings.is_empty() {
        for x in &f.findings {
            eprintln!("FINDING {x}");
        }
        std::process::exit(1);
    }
}
