//! The item pipeline: one input's bytes in, the encoded output's bytes out.
//!
//! This is a pure function of its arguments: it reads no files, writes nothing and
//! knows nothing of threads or ranks. The single-process runner, the distributed
//! workers and the tests all call it, so they cannot disagree about results.

use crate::codec::{self, DecodeOptions, EncodeOptions, OutputFormat};
use crate::error::ItemError;
use crate::image::Image;
use crate::item::{megapixels, BackendUsed, ItemStats};
use crate::memory::{self, Layout};
use crate::ops::opencl::{Gpu, RunError};
use crate::ops::{self, Op};
use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

/// Everything needed to process one input, independent of where its bytes come from.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemSpec {
    /// The operations, applied in order.
    pub ops: Vec<Op>,
    /// Decoding limits and orientation.
    pub decode: DecodeOptions,
    /// Output format and quality.
    pub encode: EncodeOptions,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct WireSpec {
    ops: Vec<String>,
    format: String,
    quality: u8,
    max_pixels: u64,
    max_alloc: u64,
    auto_orient: bool,
    shrink_on_load: bool,
}

impl ItemSpec {
    /// The spec as text, for sending to another rank.
    pub fn to_wire(&self) -> String {
        let format = OutputFormat::ALL
            .iter()
            .find(|(_, f)| *f == self.encode.format)
            .map(|(n, _)| n.to_string())
            .unwrap_or_default();
        let w = WireSpec {
            ops: self.ops.iter().map(Op::to_text).collect(),
            format,
            quality: self.encode.quality,
            max_pixels: self.decode.max_pixels,
            max_alloc: self.decode.max_alloc,
            auto_orient: self.decode.auto_orient,
            shrink_on_load: self.decode.shrink_on_load,
        };
        serde_json::to_string(&w).unwrap_or_default()
    }

    /// Reads a spec made by [`ItemSpec::to_wire`].
    pub fn from_wire(text: &str) -> Result<ItemSpec, String> {
        let w: WireSpec = serde_json::from_str(text).map_err(|e| format!("bad item spec: {e}"))?;
        let ops = w
            .ops
            .iter()
            .map(|o| ops::parse_op_str(o).map_err(|e| format!("bad op {o:?} in item spec: {e:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        let format = OutputFormat::from_name(&w.format)
            .ok_or_else(|| format!("bad format {:?} in item spec", w.format))?;
        Ok(ItemSpec {
            ops,
            decode: DecodeOptions {
                max_pixels: w.max_pixels,
                max_alloc: w.max_alloc,
                auto_orient: w.auto_orient,
                shrink_on_load: w.shrink_on_load,
            },
            encode: EncodeOptions {
                format,
                quality: w.quality,
            },
        })
    }
}

/// The result of a successful item.
#[derive(Clone, Debug)]
pub struct ItemOutput {
    /// The encoded output file.
    pub bytes: Vec<u8>,
    /// Its statistics: size as stored, stage timings, what ran the ops.
    pub stats: ItemStats,
    /// Something the user should hear about although the item succeeded (a device
    /// that failed, the CPU taking over); the runner prints it through the progress
    /// layer, on rank 0 under MPI.
    pub warning: Option<String>,
    /// Thumbnails of the decoded input and of the result, when asked for.
    pub previews: Option<Previews>,
}

/// Small JPEG thumbnails of one item for a report's gallery, made while its pixels are
/// in memory: the input as decoded (oriented, first frame) and the result before
/// encoding.
#[derive(Clone, Debug, PartialEq)]
pub struct Previews {
    /// The input's thumbnail.
    pub before: Vec<u8>,
    /// The result's thumbnail.
    pub after: Vec<u8>,
}

/// The longest side of a preview thumbnail, in pixels.
pub const PREVIEW_EDGE: u32 = 160;

/// JPEG quality of preview thumbnails: small files that still show detail.
const PREVIEW_QUALITY: u8 = 80;

/// A JPEG thumbnail of `img` no larger than [`PREVIEW_EDGE`] on either side (never
/// enlarged), by [`ops::thumbnail`]; alpha is dropped and 16 bits reduced to 8.
pub fn preview(img: &Image) -> Result<Vec<u8>, ItemError> {
    let (w, h) = (img.width.max(1), img.height.max(1));
    let scale = (PREVIEW_EDGE as f64 / w.max(h) as f64).min(1.0);
    let tw = ((w as f64 * scale).round() as u32).clamp(1, PREVIEW_EDGE);
    let th = ((h as f64 * scale).round() as u32).clamp(1, PREVIEW_EDGE);
    let small = ops::thumbnail(img, tw, th);
    let frame = codec::Frame {
        image: small,
        delay_ms: 0,
    };
    codec::encode(
        vec![frame],
        &EncodeOptions {
            format: OutputFormat::Jpeg,
            quality: PREVIEW_QUALITY,
        },
    )
}

pub use crate::item::BackendChoice;

/// Below this size `auto` keeps an image on the CPU: the transfer would not pay off.
/// A first estimate, not yet measured on a GPU (see the README).
pub const AUTO_MIN_MEGAPIXELS: f64 = 2.0;

/// Whether `auto` runs an item's ops on a device: only on a GPU, only for an image of
/// at least [`AUTO_MIN_MEGAPIXELS`], and only when some op that the device runs on
/// `channels` channels is not memory-bound ([`Op::is_memory_bound`]). For a pipeline
/// of point ops and copies alone, the upload and the download move as many bytes as a
/// CPU pass does, over a slower link, so it stays on the CPU at any size. (A long chain
/// of such ops could pay off on a device that keeps it in its own memory; that is not
/// modelled.)
pub fn auto_uses_device(gpu: bool, megapixels: f64, channels: u8, ops: &[Op]) -> bool {
    gpu && megapixels >= AUTO_MIN_MEGAPIXELS
        && ops
            .iter()
            .any(|op| !op.is_memory_bound() && Gpu::supports(op, channels))
}

/// Where one item's ops run.
#[derive(Clone, Copy)]
pub enum Backend<'a> {
    /// Rayon threads.
    Cpu,
    /// The device, for every item.
    OpenCl(&'a Gpu),
    /// A GPU where [`auto_uses_device`] says so, else rayon threads.
    Auto(&'a AutoDevice),
}

/// The GPU `--backend auto` may use, looked for when the first item that would use
/// one comes: listing OpenCL devices loads every installed driver (PoCL alone keeps
/// 60-70 MB resident and takes 40 ms or more), which a run of small images, or of
/// point ops, never needs. `auto` uses GPUs only, so a CPU device is not even opened.
pub struct AutoDevice {
    index: Option<usize>,
    local_rank: usize,
    found: std::sync::OnceLock<Option<Arc<Gpu>>>,
}

impl AutoDevice {
    /// Device `index` (see `--list-devices`), or with none the `local_rank`-th device
    /// modulo their number, so that the ranks on a node spread over its GPUs.
    pub fn new(index: Option<usize>, local_rank: usize) -> AutoDevice {
        AutoDevice {
            index,
            local_rank,
            found: std::sync::OnceLock::new(),
        }
    }

    /// The device, if it is a GPU that opens; the first call looks.
    pub fn gpu(&self) -> Option<&Gpu> {
        self.found
            .get_or_init(|| {
                if !gpu_device_nodes_exist() {
                    return None;
                }
                let devices = crate::ops::opencl::list_devices().ok()?;
                let index = self.index.unwrap_or(self.local_rank % devices.len().max(1));
                if !devices.get(index)?.gpu {
                    return None;
                }
                crate::ops::opencl::shared(index).ok()
            })
            .as_deref()
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Decodes `input`, runs `spec.ops` on every frame and encodes the result, on the CPU.
pub fn process_item(spec: &ItemSpec, input: &[u8]) -> Result<ItemOutput, ItemError> {
    process_item_on(spec, input, Backend::Cpu, false)
}

/// [`process_item`] with the ops on `backend`, and with [`Previews`] when `previews`.
/// A device error falls back to the CPU for this item, with a warning; it never fails
/// the item. A preview that cannot be made is left out; it never fails the item either.
pub fn process_item_on(
    spec: &ItemSpec,
    input: &[u8],
    backend: Backend,
    previews: bool,
) -> Result<ItemOutput, ItemError> {
    let t = Instant::now();
    let (ops, min) = match shrink_on_load(spec, input) {
        Some((first, min)) => {
            let mut ops = spec.ops.clone();
            ops[0] = first;
            (Cow::Owned(ops), Some(min))
        }
        None => (Cow::Borrowed(&spec.ops[..]), None),
    };
    let budget = |layout: &Layout| check_memory(spec, input.len() as u64, layout);
    let decoded = codec::decode_at_least(input, &spec.decode, &budget, min)?;
    let decode_ms = ms(t);
    let before = previews
        .then(|| decoded.frames.first().and_then(|f| preview(&f.image).ok()))
        .flatten();
    let mp = megapixels(decoded.width, decoded.height);
    let gpu = match backend {
        Backend::Cpu => None,
        Backend::OpenCl(g) => Some(g),
        Backend::Auto(a) => {
            let channels = decoded.frames.first().map_or(0, |f| f.image.channels);
            // Whether a GPU would pay off is known without one: only then look.
            if auto_uses_device(true, mp, channels, &ops) {
                a.gpu()
            } else {
                None
            }
        }
    };

    let t = Instant::now();
    let (width, height) = (decoded.width, decoded.height);
    let mut used = BackendUsed::Cpu;
    let mut warning = None;
    let frames = match gpu {
        Some(g) => match run_on_device(g, &ops, decoded.frames) {
            Ok((frames, what)) => {
                used = what;
                frames
            }
            Err(RunError::Op { op, error }) => {
                return Err(ItemError::Op {
                    op: op.into(),
                    message: error.0,
                })
            }
            Err(RunError::Device(msg)) => {
                warning = Some(format!(
                    "OpenCL device {} failed ({msg}); this item ran on the CPU",
                    g.info().name
                ));
                used = BackendUsed::CpuAfterDeviceError;
                let again = codec::decode_at_least(input, &spec.decode, &budget, min)?;
                run_on_cpu(&ops, again.frames)?
            }
        },
        None => run_on_cpu(&ops, decoded.frames)?,
    };
    let process_ms = ms(t);
    let previews = before.and_then(|before| {
        let after = preview(&frames.first()?.image).ok()?;
        Some(Previews { before, after })
    });

    let t = Instant::now();
    let bytes = codec::encode(frames, &spec.encode)?;
    let encode_ms = ms(t);
    Ok(ItemOutput {
        stats: ItemStats {
            width: Some(width),
            height: Some(height),
            bytes_in: input.len() as u64,
            bytes_out: bytes.len() as u64,
            decode_ms,
            process_ms,
            encode_ms,
            backend: used,
        },
        bytes,
        warning,
        previews,
    })
}

/// A downscale is decoded reduced only when it shrinks by this much or more.
const SHRINK_AT_LEAST: u32 = 2;

/// The JPEG is decoded reduced to no less than this many times the target size (in
/// each dimension), so that the resize after it still averages several samples per
/// output pixel: quality stays within 1 dB PSNR of a full-size decode (measured by
/// scripts/thumbnail_quality.py).
const SHRINK_MARGIN: u32 = 2;

/// Shrink-on-load: when `spec` starts with a resize that shrinks a JPEG `input` by
/// [`SHRINK_AT_LEAST`] or more in both dimensions, the op to run first instead (the
/// same resize to the size it would have given on the full image, whatever size the
/// decoder returns) and the smallest size the decoder may return. `None` when off
/// (`--no-shrink-on-load`), for other inputs, and for `nearest` (see
/// [`ops::Resize::fixed_downscale`]).
fn shrink_on_load(spec: &ItemSpec, input: &[u8]) -> Option<(Op, (u32, u32))> {
    if !spec.decode.shrink_on_load {
        return None;
    }
    let Some(Op::Resize(r)) = spec.ops.first() else {
        return None;
    };
    let (w, h) = codec::reducible_jpeg_size(input, spec.decode.auto_orient)?;
    let (fixed, (tw, th)) = r.fixed_downscale(w, h, SHRINK_AT_LEAST)?;
    Some((Op::Resize(fixed), (tw * SHRINK_MARGIN, th * SHRINK_MARGIN)))
}

/// Whether this machine shows a GPU to programs: a device node of NVIDIA's driver
/// (`/dev/nvidia0`...), AMD's compute driver (`/dev/kfd`), or any DRM render node
/// (`/dev/dri/renderD*`: Intel, AMD, Mesa), which every OpenCL GPU driver on Linux
/// opens. Without one, `auto` does not load the OpenCL drivers only to find CPU
/// devices (PoCL's loading alone made an 18 MP item 0.4 s slower and 50 MB larger).
/// Elsewhere than Linux: true, and the drivers are asked.
pub fn gpu_device_nodes_exist() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let any_in = |dir: &str, prefix: &str| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
    };
    std::path::Path::new("/dev/kfd").exists()
        || any_in("/dev", "nvidia")
        || any_in("/dev/dri", "renderD")
}

/// What an item of `layout` needs in memory with this spec, on the current pool.
pub fn memory_need(spec: &ItemSpec, input_len: u64, layout: &Layout) -> memory::Need {
    memory::need(
        input_len,
        layout,
        &spec.ops,
        spec.encode.format,
        rayon::current_num_threads(),
    )
}

/// Refuses an item whose estimated peak is above `--max-memory-mb`, before any pixel
/// buffer exists; the message names the limit and what the item needs.
fn check_memory(spec: &ItemSpec, input_len: u64, layout: &Layout) -> Result<(), ItemError> {
    let need = memory_need(spec, input_len, layout);
    if need.peak() <= spec.decode.max_alloc {
        return Ok(());
    }
    Err(ItemError::Limits(over_memory_message(
        &need,
        layout,
        spec.decode.max_alloc,
    )))
}

/// "needs about 812 MiB (...) for this 8000x6000 RGB 8-bit image with its ops and
/// encoding, above --max-memory-mb 512: ..."
fn over_memory_message(need: &memory::Need, layout: &Layout, limit: u64) -> String {
    let s = layout.shape;
    let kind = ["gray", "gray+alpha", "RGB", "RGBA"]
        .get(s.channels.saturating_sub(1) as usize)
        .unwrap_or(&"");
    let frames = if layout.frames > 1 {
        format!(" ({} frames so far)", layout.frames)
    } else {
        String::new()
    };
    format!(
        "needs about {} for this {}x{} {kind} {}-bit image{frames} with its ops and encoding, above --max-memory-mb {}: raise --max-memory-mb to {} or more to process it",
        need.describe(),
        s.width,
        s.height,
        if s.deep { 16 } else { 8 },
        memory::mib(limit),
        memory::mib(need.peak())
    )
}

fn run_on_cpu(ops: &[Op], frames: Vec<codec::Frame>) -> Result<Vec<codec::Frame>, ItemError> {
    let mut out = Vec::with_capacity(frames.len());
    for mut frame in frames {
        for op in ops {
            frame.image = ops::apply(op, frame.image).map_err(|e| ItemError::Op {
                op: op.name().to_string(),
                message: e.0,
            })?;
        }
        out.push(frame);
    }
    Ok(out)
}

fn run_on_device(
    g: &Gpu,
    ops: &[Op],
    frames: Vec<codec::Frame>,
) -> Result<(Vec<codec::Frame>, BackendUsed), RunError> {
    let mut out = Vec::with_capacity(frames.len());
    let mut what = BackendUsed::Cpu;
    for mut frame in frames {
        let (img, used) = g.run(ops, frame.image)?;
        frame.image = img;
        what = used;
        out.push(frame);
    }
    Ok((out, what))
}

/// [`process_item`], with a panic anywhere inside (a decoder bug, say) turned into an
/// [`ItemError::Panic`] for this item instead of taking the process down.
pub fn process_item_guarded(
    spec: &ItemSpec,
    input: &[u8],
    backend: Backend,
    previews: bool,
) -> Result<ItemOutput, ItemError> {
    let caught = crate::guard::item_scope(|| {
        catch_unwind(AssertUnwindSafe(|| {
            process_item_on(spec, input, backend, previews)
        }))
    });
    match caught {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(ItemError::Panic(msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_survive_the_wire() {
        let spec = ItemSpec {
            ops: vec![
                ops::parse_op_str("blur:sigma=1.5,ksize=0").unwrap(),
                ops::parse_op_str("custom_processing").unwrap(),
            ],
            decode: DecodeOptions {
                max_pixels: 1234,
                max_alloc: 99,
                auto_orient: false,
                shrink_on_load: false,
            },
            encode: EncodeOptions {
                format: OutputFormat::WebP,
                quality: 77,
            },
        };
        assert_eq!(ItemSpec::from_wire(&spec.to_wire()).unwrap(), spec);
        assert!(ItemSpec::from_wire("{}").is_err());
    }

    fn spec_of(ops_text: &[&str], shrink: bool) -> ItemSpec {
        ItemSpec {
            ops: ops_text
                .iter()
                .map(|t| ops::parse_op_str(t).unwrap())
                .collect(),
            decode: DecodeOptions {
                shrink_on_load: shrink,
                ..DecodeOptions::default()
            },
            encode: EncodeOptions {
                format: OutputFormat::Png,
                quality: 90,
            },
        }
    }

    #[test]
    fn shrink_on_load_only_for_a_first_resize_shrinking_a_jpeg_twice() {
        let jpeg = include_bytes!("../tests/fixtures/jpeg/base420.jpg"); // 97x61
        let rotated = include_bytes!("../tests/fixtures/jpeg/orient6.jpg"); // 61x97 shown
        let png = include_bytes!("../tests/fixtures/tiny_rgb.png");
        let plan = |ops: &[&str], shrink, input: &[u8]| {
            shrink_on_load(&spec_of(ops, shrink), input).map(|(op, min)| (op.to_text(), min))
        };
        assert_eq!(
            plan(&["resize:width=40,filter=area", "blur"], true, jpeg),
            Some(("resize:width=40,height=25,filter=area".into(), (80, 50)))
        );
        // The target is after orientation.
        assert_eq!(
            plan(&["resize:scale=0.25"], true, rotated),
            Some(("resize:width=15,height=24,filter=bilinear".into(), (30, 48)))
        );
        // Off, nearest, not first, not 2x smaller, not a JPEG.
        assert_eq!(plan(&["resize:width=40"], false, jpeg), None);
        assert_eq!(plan(&["resize:width=40,filter=nearest"], true, jpeg), None);
        assert_eq!(plan(&["blur", "resize:width=40"], true, jpeg), None);
        assert_eq!(plan(&["resize:width=49"], true, jpeg), None);
        assert_eq!(plan(&["resize:width=40,height=40"], true, jpeg), None);
        assert_eq!(plan(&["resize:width=8"], true, png), None);
    }

    #[test]
    fn a_shrunk_decode_gives_the_same_size_and_nearly_the_same_pixels() {
        let input = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/corpus/photos/Garden.jpg"),
        )
        .unwrap();
        let run = |shrink| {
            let out =
                process_item(&spec_of(&["resize:width=256,filter=area"], shrink), &input).unwrap();
            codec::decode(&out.bytes, &DecodeOptions::default())
                .unwrap()
                .frames
                .remove(0)
                .image
        };
        let (fast, exact) = (run(true), run(false));
        assert_eq!((fast.width, fast.height), (256, 160));
        assert_eq!((exact.width, exact.height), (256, 160));
        // Decoded at 1/4 (640x400, at least twice the target): close, not identical.
        let (a, b) = (fast.u8_data(), exact.u8_data());
        let mse = a
            .iter()
            .zip(b)
            .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        let psnr = 10.0 * (255.0f64 * 255.0 / mse).log10();
        assert!(a != b, "shrink-on-load did not change the decode");
        assert!(
            psnr > 35.0,
            "PSNR {psnr:.1} dB against the full-size decode"
        );
    }

    #[test]
    fn backend_names_round_trip() {
        for c in [
            BackendChoice::Cpu,
            BackendChoice::OpenCl,
            BackendChoice::Auto,
        ] {
            assert_eq!(BackendChoice::from_name(c.name()), Some(c));
        }
        assert_eq!(BackendChoice::from_name("gpu"), None);
    }

    #[test]
    fn auto_sends_only_real_work_to_a_gpu() {
        let ops = |text: &[&str]| -> Vec<Op> {
            text.iter().map(|t| ops::parse_op_str(t).unwrap()).collect()
        };
        let big = AUTO_MIN_MEGAPIXELS * 4.0;
        // Work per pixel, large image, GPU: the device.
        assert!(auto_uses_device(true, big, 3, &ops(&["blur"])));
        assert!(auto_uses_device(true, big, 3, &ops(&["invert", "canny"])));
        assert!(auto_uses_device(
            true,
            AUTO_MIN_MEGAPIXELS,
            3,
            &ops(&["median"])
        ));
        // Too small, or not a GPU.
        assert!(!auto_uses_device(
            true,
            AUTO_MIN_MEGAPIXELS * 0.9,
            3,
            &ops(&["blur"])
        ));
        assert!(!auto_uses_device(false, big, 3, &ops(&["blur"])));
        // Point ops and copies only: the CPU at any size.
        let light = ops(&["grayscale", "invert", "brighten", "threshold", "gamma"]);
        assert!(!auto_uses_device(true, big * 100.0, 3, &light));
        let copies = ops(&["flip", "rotate:angle=90", "crop:x=0,y=0,width=8,height=8"]);
        assert!(!auto_uses_device(true, big, 3, &copies));
        assert!(!auto_uses_device(true, big, 3, &[]));
        // The only heavy op has no kernel (lanczos3, hsv on gray): nothing to gain.
        assert!(!auto_uses_device(
            true,
            big,
            3,
            &ops(&["invert", "resize:scale=0.5,filter=lanczos3"])
        ));
        assert!(!auto_uses_device(
            true,
            big,
            1,
            &ops(&["custom_processing"])
        ));
        assert!(auto_uses_device(true, big, 3, &ops(&["custom_processing"])));
    }
}
