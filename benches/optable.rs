//! Per-op throughput on one image, one thread, printed as JSON lines: the Rust half of
//! scripts/bench_vs_opencv.py, which runs the same ops with OpenCV on the same pixels.
//!
//!     cargo bench --bench optable -- --image photo.png --jpeg photo.jpg [--iters 7] [--threads 1] [--ops-only]
//!     cargo bench --bench optable -- --image photo.png --backend opencl [--device 0]
//!     cargo bench --bench optable -- --image photo.png --serve [--threads 1] [--depth 16]
//!         (then `OP ITERS [WARM_MS]` lines; `via8:OP` times the op through 8 bits and back)
//!     cargo bench --bench optable -- --names          (the ops of the table, one a line)
//!     cargo bench --bench optable -- --image photo.png --jpeg photo.jpg --codecs-only
//!
//! With `--backend opencl` each op line also gives `cl_mp_s` (device, upload and
//! download included) and `kernel_mp_s` (the kernels alone), or null where the op has
//! no kernel, and `memory_bound` (`Op::is_memory_bound`, which `auto` goes by); the CPU
//! and the device then alternate run by run, so that both see the same machine load
//! (each timed run right after an untimed one of the same side), and `mp_s` is the CPU
//! with `--threads` threads.

use imgproc::codec::{self, DecodeOptions, EncodeOptions, Frame, OutputFormat};
use imgproc::image::Image;
use imgproc::ops::{apply, apply_ref, parse_op_str, Op};
use std::time::Instant;

/// The ops of the comparison, as op strings (the OpenCV side uses the same names), and
/// first [`COPY`].
const OPS: &[&str] = &[
    COPY,
    "grayscale",
    "invert",
    "blur",
    "canny",
    "brighten",
    "darken",
    "threshold",
    "custom_processing",
    "sharpen",
    "median",
    "box_blur",
    "sobel",
    "resize:scale=0.5,filter=bilinear",
    "resize:scale=0.37,filter=bilinear",
    "resize:scale=1.5,filter=bilinear",
    "resize:scale=0.37,filter=bicubic",
    "resize:scale=0.37,filter=area",
    "resize:scale=0.37,filter=lanczos3",
    "rotate",
    "flip",
    "equalize",
    "gamma",
    "contrast",
    "erode",
    "dilate",
    "crop:x=100,y=100,width=3000,height=2000",
    "pad:top=16,bottom=16,left=16,right=16",
];

/// Not an op but the table's yardstick: a copy of the whole image into a new buffer (a
/// `crop` of all of it: row copies in parallel bands, as the ops that only move bytes
/// write). Flip, rotate and pad read each sample once and write it once into a new
/// buffer, so they cannot beat it: its row is their memory bound, at each channel and
/// thread count.
const COPY: &str = "copy";

/// The op behind an op string of the table: [`COPY`] is a whole-image crop.
fn table_op(text: &str, img: &Image) -> Op {
    let text = match text {
        COPY => format!("crop:width={},height={}", img.width, img.height),
        _ => text.to_string(),
    };
    parse_op_str(&text).expect("op")
}

/// Ops that imgproc runs in place, and that the OpenCV side runs with `dst=` its input.
const IN_PLACE: &[&str] = &[
    "invert",
    "brighten",
    "darken",
    "threshold",
    "gamma",
    "contrast",
    "custom_processing",
    "equalize",
];

/// Prefix of a `--serve` op that times [`via_8bit`] instead of the op itself.
const VIA8: &str = "via8:";

/// One timed CPU run of `op`, as the OpenCV side runs it: point ops in place on the
/// buffer in `work`, the others reading `img` and allocating their output. A 16-bit
/// image reduced to 8 bits for the op is a new buffer anyway, so ops that do not keep
/// 16 bits read `img` there.
fn timed_run(op: &Op, in_place: bool, img: &Image, work: &mut Option<Image>) -> f64 {
    let in_place = in_place && (!img.is_16bit() || op.keeps_16bit());
    let t = Instant::now();
    if in_place {
        *work = Some(apply(op, work.take().expect("buffer")).expect("apply"));
    } else {
        std::hint::black_box(apply_ref(op, img).expect("apply"));
    }
    t.elapsed().as_secs_f64()
}

/// The yardstick of the 16-bit table: what a user gets by converting a 16-bit image to
/// 8 bits, running the op there and converting back (`v / 257` rounded, then `v * 257`),
/// both conversions in parallel chunks that the compiler vectorises. An op that keeps
/// 16 bits should beat it (it keeps precision as well), and one that reduces to 8 bits
/// should be no slower (it skips the way back).
fn via_8bit(op: &Op, img: &Image) -> f64 {
    use imgproc::image::Samples;
    let Samples::U16(wide) = &img.samples else {
        panic!("{VIA8} needs --depth 16");
    };
    let t = Instant::now();
    let narrow = convert(wide, |s| {
        let t = s as u32 + 128;
        ((t - (t >> 8)) >> 8) as u8
    });
    let narrow = Image::from_u8(img.width, img.height, img.channels, narrow);
    let out = apply(op, narrow).expect("apply");
    let back = convert(out.u8_data(), |s| s as u16 * 257);
    std::hint::black_box(Image::from_u16(out.width, out.height, out.channels, back));
    t.elapsed().as_secs_f64()
}

/// `f` of every sample of `src` into a new buffer, in parallel chunks, without zeroing
/// the buffer first (a one-thread memset, and page faults where the allocator maps
/// fresh memory, would make the yardstick slower than it need be).
fn convert<A: Copy + Sync, B: Copy + Send>(src: &[A], f: impl Fn(A) -> B + Sync) -> Vec<B> {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 16;
    let mut out: Vec<B> = Vec::with_capacity(src.len());
    out.spare_capacity_mut()[..src.len()]
        .par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(o, s)| {
            for (o, &s) in o.iter_mut().zip(s) {
                o.write(f(s));
            }
        });
    // SAFETY: the chunks pair up over all of `src.len()` samples, and each was written.
    unsafe { out.set_len(src.len()) };
    out
}

/// `--depth 16`: the decoded 8-bit image as 16 bits, each sample `v * 256` plus a low
/// byte that varies from sample to sample, so that the low bits carry something.
fn widen(img: Image) -> Image {
    let data = img
        .u8_data()
        .iter()
        .enumerate()
        .map(|(i, &v)| (v as u16) << 8 | (i.wrapping_mul(151) & 0xff) as u16)
        .collect();
    Image::from_u16(img.width, img.height, img.channels, data)
}

/// `--serve`: reads lines `OP ITERS [WARM_MS]` on standard input and answers each with
/// a JSON line of the op's median MP/s over ITERS runs (null where the image cannot take
/// it), timed as the table times it, after untimed runs for WARM_MS milliseconds (at
/// least one). scripts/bench_vs_opencv.py drives it so that imgproc and OpenCV alternate
/// op by op, round after round, on a machine whose speed drifts. The warm-up is for
/// several threads: after an idle spell this VM's kernel packs the pool's threads onto
/// one vCPU for tens of milliseconds (README, Speed), so a short timed
/// burst straight after the other side's turn measured one core, not two.
fn serve(img: &Image) {
    use std::io::{BufRead, Write};
    let mp = img.megapixels();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("read standard input");
        let mut words = line.split_whitespace();
        let (Some(op_text), Some(iters)) = (words.next(), words.next()) else {
            continue;
        };
        let iters: usize = iters.parse().expect("ITERS");
        let warm_ms: u64 = words.next().map_or(0, |w| w.parse().expect("WARM_MS"));
        let (via8, op_name) = match op_text.strip_prefix(VIA8) {
            Some(rest) => (true, rest),
            None => (false, op_text),
        };
        let op = table_op(op_name, img);
        let rate = if apply_ref(&op, img).is_err() {
            "null".to_string()
        } else if via8 {
            let warm = Instant::now();
            while warm.elapsed().as_millis() < u128::from(warm_ms) {
                via_8bit(&op, img);
            }
            let secs = median((0..iters).map(|_| via_8bit(&op, img)).collect());
            format!("{:.1}", mp / secs)
        } else {
            let in_place = IN_PLACE.iter().any(|p| op_text.starts_with(p));
            let mut work = Some(img.clone());
            let warm = Instant::now();
            while warm.elapsed().as_millis() < u128::from(warm_ms) {
                timed_run(&op, in_place, img, &mut work);
            }
            let secs = median(
                (0..iters)
                    .map(|_| timed_run(&op, in_place, img, &mut work))
                    .collect(),
            );
            format!("{:.1}", mp / secs)
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{{\"name\": \"{op_text}\", \"mp_s\": {rate}}}").expect("write");
        out.flush().expect("flush");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    // As the imgproc binary does, before any thread starts.
    imgproc::ops::opencl::pin_cpu_device_threads();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--names") {
        OPS.iter().for_each(|o| println!("{o}"));
        return;
    }
    let Some(image) = arg(&args, "--image") else {
        eprintln!("usage: cargo bench --bench optable -- --image FILE [--jpeg FILE] [--iters N] [--threads N] [--only OP]");
        return;
    };
    let iters: usize = arg(&args, "--iters")
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let threads: usize = arg(&args, "--threads")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let only = arg(&args, "--only");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let gpu = (arg(&args, "--backend").as_deref() == Some("opencl")).then(|| {
        let device = arg(&args, "--device")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        imgproc::ops::opencl::shared(device).expect("an OpenCL device")
    });
    let bytes = std::fs::read(&image).expect("read --image");
    let mut img = codec::decode(&bytes, &DecodeOptions::default())
        .expect("decode --image")
        .frames
        .remove(0)
        .image;
    if arg(&args, "--depth").as_deref() == Some("16") && !img.is_16bit() {
        img = widen(img);
    }
    let mp = img.megapixels();
    let time = |f: &mut dyn FnMut() -> f64| median((0..iters).map(|_| f()).collect());
    if args.iter().any(|a| a == "--serve") {
        pool.install(|| serve(&img));
        return;
    }
    pool.install(|| {
        let codecs_only = args.iter().any(|a| a == "--codecs-only");
        for op_text in OPS
            .iter()
            .filter(|_| !codecs_only)
            .filter(|o| only.as_deref().is_none_or(|x| o.starts_with(x)))
        {
            let op = table_op(op_text, &img);
            // An op this image's channel count does not take (hsv on gray) is listed
            // with null.
            if let Err(e) = apply_ref(&op, &img) {
                eprintln!("optable: {op_text} on {} channels: {}", img.channels, e.0);
                println!("{{\"name\": \"{op_text}\", \"mp_s\": null}}");
                continue;
            }
            // Like the OpenCV side: point ops work in place on one buffer; the others
            // read the input and allocate their output (the input is not freed in the timing).
            let in_place = IN_PLACE.iter().any(|p| op_text.starts_with(p));
            let mut work = Some(img.clone());
            let mut cpu_once = || timed_run(&op, in_place, &img, &mut work);
            let Some(g) = &gpu else {
                let secs = time(&mut cpu_once);
                println!("{{\"name\": \"{op_text}\", \"mp_s\": {:.1}}}", mp / secs);
                continue;
            };
            // The CPU and the device alternate, so that both see the same machine load.
            let (mut cpu, mut total, mut kernel) = (Vec::new(), Vec::new(), Vec::new());
            let mut dev_work = Some(img.clone());
            // The whole path, timed as a pipeline runs it (upload, kernels, download).
            // In-place ops get their own output back, as on the CPU side.
            let mut dev_once = || {
                let input = match dev_work.take() {
                    Some(w) if in_place => w,
                    _ => img.clone(),
                };
                let t = Instant::now();
                let run = g.run(std::slice::from_ref(&op), input);
                let secs = t.elapsed().as_secs_f64();
                match run {
                    Ok((out, used)) => {
                        dev_work = Some(out);
                        (used == "opencl").then_some(secs)
                    }
                    Err(e) => {
                        eprintln!("optable: {op_text} failed on the device: {e:?}");
                        None
                    }
                }
            };
            for _ in 0..iters {
                // Each side runs once untimed, then timed, so that each is measured in its
                // own steady state: right after the other, rayon's threads may still spin
                // while the device's start, after a pause an idle virtual CPU takes
                // milliseconds to wake, and the other side's buffers have pushed this
                // side's out of the cache.
                cpu_once();
                cpu.push(cpu_once());
                dev_once();
                if let Some(t) = dev_once() {
                    total.push(t);
                }
                // The kernels alone come last: they work on a copy of the image, which
                // would push the pipeline's own buffer out of the cache.
                if let Ok(Some(k)) = g.kernel_seconds(&op, &img) {
                    kernel.push(k);
                }
            }
            let rate = |v: Vec<f64>| {
                if v.is_empty() {
                    "null".to_string()
                } else {
                    format!("{:.1}", mp / median(v))
                }
            };
            println!(
                "{{\"name\": \"{op_text}\", \"mp_s\": {:.1}, \"cl_mp_s\": {}, \"kernel_mp_s\": {}, \"memory_bound\": {}}}",
                mp / median(cpu),
                rate(total),
                rate(kernel),
                op.is_memory_bound()
            );
        }
        if only.is_some() || gpu.is_some() || args.iter().any(|a| a == "--ops-only") {
            return;
        }
        if let Some(jpeg) = arg(&args, "--jpeg") {
            let jb = std::fs::read(&jpeg).expect("read --jpeg");
            let secs = time(&mut || {
                let t = Instant::now();
                std::hint::black_box(
                    codec::decode(&jb, &DecodeOptions::default()).expect("decode"),
                );
                t.elapsed().as_secs_f64()
            });
            println!("{{\"name\": \"jpeg decode\", \"mp_s\": {:.1}}}", mp / secs);
        }
        for (name, format) in [
            ("jpeg encode q90 4:2:0", OutputFormat::Jpeg),
            ("png encode", OutputFormat::Png),
        ] {
            let opts = EncodeOptions {
                format,
                quality: 90,
            };
            let secs = time(&mut || {
                let f = vec![Frame {
                    image: img.clone(),
                    delay_ms: 0,
                }];
                let t = Instant::now();
                std::hint::black_box(codec::encode(f, &opts).expect("encode"));
                t.elapsed().as_secs_f64()
            });
            println!("{{\"name\": \"{name}\", \"mp_s\": {:.1}}}", mp / secs);
        }
        let png = codec::encode(
            vec![Frame {
                image: img.clone(),
                delay_ms: 0,
            }],
            &EncodeOptions {
                format: OutputFormat::Png,
                quality: 90,
            },
        )
        .expect("encode png");
        let secs = time(&mut || {
            let t = Instant::now();
            std::hint::black_box(codec::decode(&png, &DecodeOptions::default()).expect("decode"));
            t.elapsed().as_secs_f64()
        });
        println!("{{\"name\": \"png decode\", \"mp_s\": {:.1}}}", mp / secs);
    });
}

/// mimalloc keeps freed pages for reuse: without it every multi-megabyte buffer is
/// mmapped, faulted in page by page and unmapped again (measured: 2-5x slower ops).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
