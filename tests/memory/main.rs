//! Checks the memory model (`src/memory.rs`) against what the code really allocates.
//!
//! `--max-memory-mb` refuses an item from an estimate made before anything is
//! allocated, so the estimate must be an upper bound of the real peak. This test binary
//! counts every allocation made through Rust's allocator, runs each op, codec and whole
//! pipeline on images of several shapes, depths and thread counts, one case at a time
//! (hence `harness = false`: no other test allocates meanwhile), and fails when the
//! measured peak exceeds the model, or when the model is so loose that it would refuse
//! images that fit. libjpeg-turbo allocates with C's malloc, which this cannot see; the
//! integration test `memory_cap_holds_*` measures the whole process's peak instead.
//!
//! `MEMORY_TABLE=1` prints every case.

use imgproc::codec::{self, DecodeOptions, EncodeOptions, Frame, OutputFormat};
use imgproc::image::Image;
use imgproc::memory::{self, Shape};
use imgproc::ops;
use imgproc::pipeline::{self, ItemSpec};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, SeqCst) + by;
    PEAK.fetch_max(now, SeqCst);
}

// SAFETY: every call is passed on to the system allocator unchanged; the counters
// only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        CURRENT.fetch_sub(l.size(), SeqCst);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            if new > l.size() {
                // A moving realloc holds both blocks for a moment.
                grew(new);
                CURRENT.fetch_sub(l.size(), SeqCst);
            } else {
                CURRENT.fetch_sub(l.size() - new, SeqCst);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result and the peak bytes it had allocated at once beyond
/// what was allocated before it started.
fn measure<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let base = CURRENT.load(SeqCst);
    PEAK.store(base, SeqCst);
    let r = f();
    (r, (PEAK.load(SeqCst) - base) as u64)
}

/// A deterministic image with texture (so that edges, medians and codecs do real work).
fn image(w: u32, h: u32, cn: u8, deep: bool) -> Image {
    let n = w as usize * h as usize * cn as usize;
    let v = |i: usize| {
        let (x, y) = (
            (i / cn as usize) % w as usize,
            i / (cn as usize * w as usize),
        );
        ((x * 7 + y * 13) ^ ((i * 2_654_435_761) >> 24) & 63) + (x / 40 + y / 30) * 97
    };
    if deep {
        Image::from_u16(
            w,
            h,
            cn,
            (0..n).map(|i| (v(i) * 167 % 65536) as u16).collect(),
        )
    } else {
        Image::from_u8(w, h, cn, (0..n).map(|i| (v(i) % 256) as u8).collect())
    }
}

fn shape_of(img: &Image) -> Shape {
    Shape {
        width: img.width,
        height: img.height,
        channels: img.channels,
        deep: img.is_16bit(),
    }
}

const OPS: &[&str] = &[
    "grayscale",
    "invert",
    "blur",
    "blur:sigma=5,ksize=0",
    "canny",
    "canny:low=1,high=2",
    "brighten",
    "darken",
    "threshold",
    "custom_processing",
    "sharpen",
    "sharpen:sigma=4,amount=1",
    "median",
    "median:ksize=9",
    "box_blur",
    "box_blur:ksize=31",
    "sobel",
    "sobel:direction=x",
    "resize:scale=0.5",
    "resize:scale=0.37,filter=lanczos3",
    "resize:scale=2.2,filter=lanczos3",
    "resize:scale=2",
    "resize:scale=0.3,filter=area",
    "resize:scale=0.5,filter=area",
    "resize:scale=1.7,filter=bicubic",
    "resize:scale=0.5,filter=nearest",
    "rotate:angle=90",
    "rotate:angle=180",
    "flip",
    "crop:x=1,y=1,width=18,height=18",
    "equalize",
    "gamma",
    "contrast",
    "erode",
    "dilate:ksize=7,iterations=3",
    "pad:top=3,bottom=1,left=2,right=5,value=9",
];

struct Tally {
    cases: usize,
    failures: Vec<String>,
    worst_ratio: f64,
    verbose: bool,
}

impl Tally {
    /// Records one case: `model` must be at least `measured`, and at most `slack`
    /// times it plus 8 MiB (the model's fixed allowances: 4 MiB and 64 KiB a thread
    /// per item, and a quarter for the allocator).
    fn check(&mut self, what: String, measured: u64, model: u64, slack: f64) {
        self.cases += 1;
        let ratio = model as f64 / measured.max(1) as f64;
        if self.verbose {
            println!("{what:70} measured {measured:>11} model {model:>11} ratio {ratio:.2}");
        }
        if measured > model {
            self.failures.push(format!(
                "{what}: measured {measured} bytes, above the model's {model}"
            ));
        } else if model as f64 > slack * measured as f64 + (8 << 20) as f64 {
            self.failures.push(format!(
                "{what}: the model's {model} bytes is over {slack} times the measured {measured}: it would refuse images that fit"
            ));
        }
        if measured > 4 << 20 {
            self.worst_ratio = self.worst_ratio.max(ratio);
        }
    }
}

fn ops_cases(t: &mut Tally, threads: usize) {
    for (w, h) in [(601u32, 457u32), (2000, 20), (20, 1500)] {
        for cn in [1u8, 2, 3, 4] {
            for deep in [false, true] {
                for text in OPS {
                    let op = ops::parse_op_str(text).expect("a valid op");
                    let img = image(w, h, cn, deep);
                    let shape = shape_of(&img);
                    let (out, peak) = measure(|| ops::apply(&op, img));
                    let out = out.expect("the op runs");
                    let (model_out, model) = memory::op_need(&op, shape, threads as u64);
                    assert_eq!(
                        model_out,
                        shape_of(&out),
                        "{text} on {w}x{h}x{cn} deep={deep}: output shape"
                    );
                    // The input was allocated before measuring; the model counts it.
                    t.check(
                        format!(
                            "op {text} {w}x{h}x{cn} {}-bit {threads} threads",
                            if deep { 16 } else { 8 }
                        ),
                        peak + shape.bytes(),
                        model,
                        3.0,
                    );
                }
            }
        }
    }
}

fn encoded(img: Image, format: OutputFormat, progressive: bool) -> Vec<u8> {
    if progressive {
        let img = img.into_u8();
        let pf = match img.channels {
            1 => turbojpeg::PixelFormat::GRAY,
            3 => turbojpeg::PixelFormat::RGB,
            _ => turbojpeg::PixelFormat::RGBA,
        };
        let mut c = turbojpeg::Compressor::new().expect("libjpeg-turbo");
        c.set_progressive(true).expect("progressive");
        c.set_quality(90).expect("quality");
        c.set_subsamp(if img.channels == 1 {
            turbojpeg::Subsamp::Gray
        } else {
            turbojpeg::Subsamp::Sub2x2
        })
        .expect("subsampling");
        let t = turbojpeg::Image {
            pixels: img.u8_data(),
            width: img.width as usize,
            pitch: img.stride(),
            height: img.height as usize,
            format: pf,
        };
        return c.compress_to_vec(t).expect("a progressive JPEG");
    }
    codec::encode(
        vec![Frame {
            image: img,
            delay_ms: 0,
        }],
        &EncodeOptions {
            format,
            quality: 90,
        },
    )
    .expect("encodes")
}

fn pipeline_cases(t: &mut Tally, threads: usize) {
    let formats: Vec<(String, OutputFormat, bool)> = OutputFormat::ALL
        .iter()
        .map(|(n, f)| (n.to_string(), *f, false))
        .chain([("progressive-jpeg".to_string(), OutputFormat::Jpeg, true)])
        .collect();
    for (w, h) in [(1024u32, 700u32), (3000, 24)] {
        for cn in [1u8, 2, 3, 4] {
            for deep in [false, true] {
                for (name, input_format, progressive) in &formats {
                    let keeps_16 = matches!(input_format, OutputFormat::Png | OutputFormat::Tiff);
                    if deep && (!keeps_16 || *progressive) || *progressive && cn % 2 == 0 {
                        continue;
                    }
                    let input = encoded(image(w, h, cn, deep), *input_format, *progressive);
                    let layout = codec::probe(Cursor::new(&input[..]), &input, true)
                        .expect("a readable header");
                    // Every output format without ops, and a few pipelines into PNG.
                    let plain = OutputFormat::ALL.iter().map(|&(n, f)| (n, f, &[][..]));
                    let piped = [
                        &["blur"][..],
                        &["canny"][..],
                        &["resize:scale=0.5", "rotate:angle=90"][..],
                    ]
                    .into_iter()
                    .map(|o| ("png", OutputFormat::Png, o));
                    for (out_name, out_format, ops_text) in plain.chain(piped) {
                        {
                            let spec = ItemSpec {
                                ops: ops_text
                                    .iter()
                                    .map(|o| ops::parse_op_str(o).expect("op"))
                                    .collect(),
                                decode: DecodeOptions::default(),
                                encode: EncodeOptions {
                                    format: out_format,
                                    quality: 90,
                                },
                            };
                            let (out, peak) = measure(|| pipeline::process_item(&spec, &input));
                            out.expect("the item runs");
                            let need = pipeline::memory_need(&spec, input.len() as u64, &layout);
                            t.check(
                                format!("item {name}->{out_name} {ops_text:?} {w}x{h}x{cn} {}-bit {threads} threads", if deep { 16 } else { 8 }),
                                peak + input.len() as u64,
                                need.peak(),
                                // JPEG in or out: libjpeg-turbo's buffers (the
                                // encoder's, a progressive decoder's coefficients) are
                                // in the model but invisible to this allocator.
                                if out_format == OutputFormat::Jpeg || *progressive { 6.0 } else { 4.0 },
                            );
                        }
                    }
                }
            }
        }
    }
}

/// `MEMORY_FILE=path MEMORY_OPS=blur,canny MEMORY_FORMAT=png`: one item, measured.
fn one_file(path: &str) {
    let input = std::fs::read(path).expect("MEMORY_FILE is readable");
    let ops_text = std::env::var("MEMORY_OPS").unwrap_or_default();
    let format = std::env::var("MEMORY_FORMAT").unwrap_or_else(|_| "png".into());
    let spec = ItemSpec {
        ops: ops_text
            .split(',')
            .filter(|o| !o.is_empty())
            .map(|o| ops::parse_op_str(o).expect("op"))
            .collect(),
        decode: DecodeOptions::default(),
        encode: EncodeOptions {
            format: OutputFormat::from_name(&format).expect("MEMORY_FORMAT is a format"),
            quality: 90,
        },
    };
    let layout = codec::probe(Cursor::new(&input[..]), &input, true).expect("a header");
    let (out, peak) = measure(|| pipeline::process_item(&spec, &input));
    out.expect("the item runs");
    let need = pipeline::memory_need(&spec, input.len() as u64, &layout);
    println!(
        "{path} {ops_text} -> {format}: measured {} MiB (input included), model {}",
        memory::mib(peak + input.len() as u64),
        need.describe()
    );
}

fn main() {
    if let Ok(path) = std::env::var("MEMORY_FILE") {
        return one_file(&path);
    }
    // A new op needs cases here before its memory model is trusted.
    for spec in ops::CATALOG {
        assert!(
            OPS.iter()
                .any(|t| ops::parse_op_str(t).is_ok_and(|op| op.name() == spec.name)),
            "tests/memory has no case for the op \"{}\": add one to OPS",
            spec.name
        );
    }
    let mut t = Tally {
        cases: 0,
        failures: Vec::new(),
        worst_ratio: 0.0,
        verbose: std::env::var_os("MEMORY_TABLE").is_some(),
    };
    for threads in [1, 6] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        pool.install(|| {
            // Let every worker thread make its one-off allocations first.
            for text in OPS {
                let op = ops::parse_op_str(text).expect("a valid op");
                let _ = ops::apply(&op, image(64, 48, 3, false));
            }
            ops_cases(&mut t, threads);
            pipeline_cases(&mut t, threads);
        });
    }
    println!(
        "memory model: {} cases, worst model/measured ratio above 4 MiB {:.2}",
        t.cases, t.worst_ratio
    );
    if !t.failures.is_empty() {
        for f in &t.failures {
            eprintln!("FAIL {f}");
        }
        eprintln!("{} of {} cases failed", t.failures.len(), t.cases);
        std::process::exit(1);
    }
}
