//! How much memory one item needs, worked out from its header before any pixel exists.
//!
//! `--max-memory-mb` is a promise about a whole item: the input's bytes, the decoder's
//! buffers, every op's input, output and scratch, and the encoder's buffers and output.
//! The pipeline asks [`need`] for an upper bound on the peak from the header alone and
//! refuses the item when it is over the limit, so that nothing is allocated for an image
//! that would not fit; `--dry-run` prints the same figure. The bounds are derived from
//! what the code allocates (each op's buffers, rayon's per-task scratch, each codec's
//! working copies) and checked against a counting allocator by `tests/memory`, and
//! against the peak resident size of the real binary by the integration tests.
//!
//! Pure arithmetic on sizes: this module knows nothing of files, threads or ranks (the
//! caller says how many threads run an op's tasks).

use crate::codec::OutputFormat;
use crate::ops::{self, Op};

/// The pixel layout of an image at one stage of an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Samples per pixel, 1 to 4.
    pub channels: u8,
    /// 16 bits per sample (else 8).
    pub deep: bool,
}

impl Shape {
    /// Pixels.
    pub fn pixels(&self) -> u64 {
        self.width as u64 * self.height as u64
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> u64 {
        self.width as u64 * self.channels as u64 * self.sample_bytes()
    }

    /// Bytes of the whole image.
    pub fn bytes(&self) -> u64 {
        self.row_bytes() * self.height as u64
    }

    fn sample_bytes(&self) -> u64 {
        if self.deep {
            2
        } else {
            1
        }
    }

    fn to_8bit(self) -> Shape {
        Shape {
            deep: false,
            ..self
        }
    }

    pub(crate) fn with_channels(self, channels: u8) -> Shape {
        Shape { channels, ..self }
    }

    pub(crate) fn with_size(self, width: u32, height: u32) -> Shape {
        Shape {
            width,
            height,
            ..self
        }
    }
}

/// What a decoder's header says about an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The decoded image as imgproc holds it (after orientation).
    pub shape: Shape,
    /// Bytes per pixel of the decoder's own buffer (it may differ from ours, for a
    /// float TIFF say, and then a converted copy exists for a moment).
    pub decoder_pixel_bytes: u8,
    /// Whether the decoder's buffer is converted into a new one.
    pub converted: bool,
    /// Whether EXIF orientation turns the image (a rotated copy is made).
    pub rotated: bool,
    /// How the input is coded.
    pub coding: Coding,
    /// Frames held at once (an animated GIF's frames are all decoded first).
    pub frames: u32,
}

impl Layout {
    /// Width and height as stored in the file, before orientation.
    pub fn stored_size(&self) -> (u32, u32) {
        let s = self.shape;
        if self.rotated {
            (s.height, s.width)
        } else {
            (s.width, s.height)
        }
    }
}

/// The decoders, by how much they hold beside their output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// Baseline JPEG through libjpeg-turbo: an MCU row of component samples.
    Jpeg,
    /// Progressive JPEG through libjpeg-turbo: every DCT coefficient of the image (2
    /// bytes a sample of each component), kept until the last scan.
    ProgressiveJpeg,
    /// A JPEG libjpeg-turbo does not take (CMYK, YCCK, 12-bit), through zune-jpeg.
    OtherJpeg {
        /// Progressive (zune then holds every coefficient too).
        progressive: bool,
    },
    /// PNG: rows, the zlib window, and for Adam7 a buffer per pass.
    Png,
    /// WebP: the decoder's RGBA or YUV planes.
    WebP,
    /// TIFF: the decoder reads strips into a buffer, then converts.
    Tiff,
    /// GIF: one canvas and one RGBA frame per frame.
    Gif,
    /// Formats decoded straight into the output (BMP, QOI, PNM).
    Plain,
}

/// Upper bounds on the bytes alive during each stage of one item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Need {
    /// During decoding.
    pub decode: u64,
    /// During the ops (the largest of all of them).
    pub ops: u64,
    /// During encoding.
    pub encode: u64,
}

impl Need {
    /// The peak over the whole item.
    pub fn peak(&self) -> u64 {
        self.decode.max(self.ops).max(self.encode)
    }

    /// "812 MiB (decode 310, ops 812, encode 402)", for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} MiB (decode {}, ops {}, encode {})",
            mib(self.peak()),
            mib(self.decode),
            mib(self.ops),
            mib(self.encode)
        )
    }
}

/// Bytes as whole MiB, rounded up.
pub fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

/// Allocations too small to model one by one (kernel tables, rayon's job records,
/// format headers) and the allocator's own rounding, per item.
const SLACK: u64 = 4 << 20;
/// The same, per thread that runs an op's tasks.
const SLACK_PER_THREAD: u64 = 64 << 10;

/// The peak an item needs: `input_len` bytes of input held throughout, the image of
/// `layout`, each op of `ops` in turn with `threads` threads, and the encoder for
/// `format`.
pub fn need(
    input_len: u64,
    layout: &Layout,
    ops: &[Op],
    format: OutputFormat,
    threads: usize,
) -> Need {
    let threads = threads.max(1) as u64;
    let frames = layout.frames.max(1) as u64;
    let base = input_len + SLACK + SLACK_PER_THREAD * threads;

    let decode = base + decode_bytes(layout) + (frames - 1) * layout.shape.bytes();

    let mut shape = layout.shape;
    let mut ops_peak = 0;
    for op in ops {
        let (out, peak) = op_need(op, shape, threads);
        // The other frames are held, each at the larger of its sizes before and after.
        let others = (frames - 1) * shape.bytes().max(out.bytes());
        ops_peak = ops_peak.max(peak + others);
        shape = out;
    }
    let ops = base + ops_peak;

    let held = frames * shape.bytes();
    let encode = base + held.saturating_sub(shape.bytes()) + encode_bytes(shape, format, frames);
    // The allocator rounds blocks up and keeps freed pages for reuse (for 50 ms, see
    // main.rs), so the process holds more than the item allocates at once: measured up
    // to 5% on the peak resident size with no delay, 15% with it (a 12 MP sharpen, in
    // tests/integration/memory.rs); a quarter on top.
    let rounded = |b: u64| b + b / 4;
    Need {
        decode: rounded(decode),
        ops: rounded(ops),
        encode: rounded(encode),
    }
}

/// The decoder's peak, its output included.
fn decode_bytes(layout: &Layout) -> u64 {
    let s = layout.shape;
    let native = s.pixels() * layout.decoder_pixel_bytes as u64;
    let rows = 16 * s.width as u64 * 4 * 8;
    let own = match layout.coding {
        // libjpeg-turbo decodes into the output through an MCU row of samples.
        Coding::Jpeg => native + rows,
        // Its coefficients: 2 bytes a sample, each component at full size in the worst
        // case (4:4:4), padded to whole 16x16 MCUs; beside the output.
        Coding::ProgressiveJpeg => {
            let padded = (s.width as u64 + 16) * (s.height as u64 + 16);
            native + 2 * padded * s.channels as u64 + rows
        }
        // zune-jpeg: the output and one plane per component, plus row buffers; all
        // coefficients (as for libjpeg-turbo, at 4 bytes a sample) when progressive.
        Coding::OtherJpeg { progressive } => {
            2 * native + rows + if progressive { 4 * s.pixels() * 3 } else { 0 }
        }
        // Adam7 keeps a pass buffer of the image's size.
        Coding::Png => 2 * native + rows + (256 << 10),
        // RGBA planes (4 bytes a pixel) or YUV, then the output.
        Coding::WebP => native + 4 * s.pixels() + rows,
        Coding::Tiff => 2 * native + rows,
        // The canvas, the frame and its RGBA copy.
        Coding::Gif => 3 * 4 * s.pixels() + rows,
        Coding::Plain => native + rows,
    };
    let converted = if layout.converted { s.bytes() } else { 0 };
    let rotated = if layout.rotated { s.bytes() } else { 0 };
    // The conversion and the rotation each hold the old buffer and the new one.
    own.max(native + converted).max(s.bytes() + rotated)
}

/// The output shape of `op` on `s`, and the peak while it runs (its input included).
pub fn op_need(op: &Op, s: Shape, threads: u64) -> (Shape, u64) {
    // Ops that do not keep 16 bits first make an 8-bit copy of the input.
    let (s, convert) = if s.deep && !op.keeps_16bit() {
        (s.to_8bit(), s.bytes() + s.to_8bit().bytes())
    } else {
        (s, 0)
    };
    // Each op declares its output layout and its peak (in its file under ops/defs).
    let out = op.output_shape(s);
    let peak = op.peak_bytes(s, out, threads);
    // Kernel tables, row pointers and rayon's job records.
    let small = (64 << 10) + threads * (16 << 10);
    (out, peak.max(convert) + small)
}

/// Scratch rows of one parallel task on `s`: `n` rows of its row at `b` bytes a sample,
/// for each of `threads` tasks.
pub(crate) fn task_rows(s: Shape, threads: u64, n: u64, b: u64) -> u64 {
    threads * n * s.row_bytes() * b
}

/// The scratch of `filter::separable`: per task, a band of 16-bit horizontal sums
/// (`BAND_ROWS` or more rows, plus the kernel's height) and a 32-bit row.
pub(crate) fn separable_scratch(s: Shape, k: u64, threads: u64) -> u64 {
    let row = s.row_bytes();
    let band = (ops::BAND_ROWS as u64).max(65536 / row.max(1));
    let band = band.min(s.height as u64);
    threads * ((band + k) * row * 2 + row * 4)
}

/// The encoder's peak for frames of `s` (their pixels included).
fn encode_bytes(s: Shape, format: OutputFormat, frames: u64) -> u64 {
    let image = s.bytes();
    let px = s.pixels();
    let eight = s.to_8bit().bytes();
    // The 8-bit copy made for formats that only take 8 bits.
    let narrowed = if s.deep { image + eight } else { image };
    match format {
        OutputFormat::Jpeg => {
            // libjpeg-turbo's worst-case buffer (tjBufSize: 3 bytes a pixel for 4:2:0,
            // 2 for gray), its copy into ours, and the alpha-free copy.
            let buf = px * 3 + 2048;
            let no_alpha = if s.channels.is_multiple_of(2) {
                px * 3
            } else {
                0
            };
            narrowed + no_alpha + 2 * buf
        }
        // Filtered rows and zlib's output in a growing vector, for 8 or 16 bits.
        // 16-bit samples are first copied to big-endian bytes.
        OutputFormat::Png => {
            let factor = if s.deep { 5 } else { 4 };
            image + factor * image + 4 * s.row_bytes() + (512 << 10)
        }
        // RGB(A) copy, the encoder's ARGB planes and transforms, and its output.
        OutputFormat::WebP => narrowed + 16 * px,
        // Gray+alpha is widened to RGBA first (twice the bytes); the encoder then
        // holds about three copies of what it writes.
        OutputFormat::Tiff => {
            let written = if s.channels == 2 { 2 * image } else { image };
            let widened = if s.channels == 2 { written } else { 0 };
            image + widened + 3 * written + 4 * s.row_bytes()
        }
        OutputFormat::Bmp => narrowed + 2 * px * 4,
        // RGB(A) copy, and the output in a growing vector (5 bytes a pixel at worst).
        OutputFormat::Qoi => narrowed + 4 * px + 2 * 5 * px,
        // Per frame: the RGBA copy, the palette indices, the LZW output.
        OutputFormat::Gif => image + (frames.min(2)) * 4 * px + 4 * px,
    }
}
