//! Bytes to pixels and back.
//!
//! Decoding detects the format from the bytes (never the extension), checks the
//! dimensions in the header against the limits before any pixel buffer exists, applies
//! EXIF orientation, and keeps 16-bit samples and alpha. Animated GIFs decode to all
//! their frames. JPEG is decoded and encoded with libjpeg-turbo (the `turbojpeg`
//! crate; see [`jpeg`] for why), every other format with the `image` crate.

use crate::error::ItemError;
use crate::image::{Image, Samples};
use crate::memory::{Coding, Layout, Shape};
use image::metadata::Orientation;
use image::{AnimationDecoder, DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use std::io::Cursor;

pub mod jpeg;

/// Limits and choices for decoding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodeOptions {
    /// Largest accepted `width * height`. Default 268,435,456 (2^28).
    pub max_pixels: u64,
    /// Largest allocation a decoder may make, in bytes. Default 4 GiB.
    pub max_alloc: u64,
    /// Apply EXIF orientation. Default true.
    pub auto_orient: bool,
    /// When the first op shrinks a JPEG by 2x or more, decode it reduced in the DCT
    /// (see [`decode_at_least`]) and resize the rest of the way. Default true.
    pub shrink_on_load: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_pixels: 1 << 28,
            max_alloc: 4 << 30,
            auto_orient: true,
            shrink_on_load: true,
        }
    }
}

/// Output formats imgproc writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// JPEG (8-bit, gray or 4:2:0 colour; alpha is dropped).
    Jpeg,
    /// PNG (8 or 16 bit, alpha kept).
    Png,
    /// WebP, lossless (8-bit, alpha kept).
    WebP,
    /// TIFF (8 or 16 bit, alpha kept).
    Tiff,
    /// BMP (8-bit).
    Bmp,
    /// GIF (8-bit, 256 colours per frame; animations keep every frame).
    Gif,
    /// QOI (8-bit RGB or RGBA).
    Qoi,
}

impl OutputFormat {
    /// All formats with their names, as accepted in manifests and `--format`.
    pub const ALL: [(&'static str, OutputFormat); 7] = [
        ("jpeg", OutputFormat::Jpeg),
        ("png", OutputFormat::Png),
        ("webp", OutputFormat::WebP),
        ("tiff", OutputFormat::Tiff),
        ("bmp", OutputFormat::Bmp),
        ("gif", OutputFormat::Gif),
        ("qoi", OutputFormat::Qoi),
    ];

    /// The format for a file extension (case-insensitive), if imgproc writes it.
    pub fn from_extension(ext: &str) -> Option<OutputFormat> {
        match ext.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" => Some(OutputFormat::Jpeg),
            "png" => Some(OutputFormat::Png),
            "webp" => Some(OutputFormat::WebP),
            "tif" | "tiff" => Some(OutputFormat::Tiff),
            "bmp" => Some(OutputFormat::Bmp),
            "gif" => Some(OutputFormat::Gif),
            "qoi" => Some(OutputFormat::Qoi),
            _ => None,
        }
    }

    /// The format for a name as written in a manifest (`"jpeg"`, `"png"`, ...).
    pub fn from_name(name: &str) -> Option<OutputFormat> {
        Self::from_extension(name)
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpg",
            OutputFormat::Png => "png",
            OutputFormat::WebP => "webp",
            OutputFormat::Tiff => "tiff",
            OutputFormat::Bmp => "bmp",
            OutputFormat::Gif => "gif",
            OutputFormat::Qoi => "qoi",
        }
    }
}

/// One decoded frame; `delay_ms` is its display time in an animation.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The pixels.
    pub image: Image,
    /// Display time in milliseconds (0 for still images).
    pub delay_ms: u32,
}

/// A decoded input: one frame, or several for an animated GIF.
#[derive(Debug)]
pub struct Decoded {
    /// The frames, at least one.
    pub frames: Vec<Frame>,
    /// Width as stored in the file (before orientation).
    pub width: u32,
    /// Height as stored in the file (before orientation).
    pub height: u32,
}

fn unknown_format() -> ItemError {
    ItemError::Unsupported(
        "not a recognised image format (JPEG, PNG, GIF, BMP, TIFF, WebP, PNM and QOI are read)"
            .into(),
    )
}

fn reader(bytes: &[u8]) -> Result<ImageReader<Cursor<&[u8]>>, ItemError> {
    ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ItemError::Io(e.to_string()))
}

fn map_image_error(e: image::ImageError) -> ItemError {
    use image::ImageError as E;
    match e {
        E::Decoding(d) => ItemError::Decode(d.to_string()),
        E::Unsupported(u) => ItemError::Unsupported(u.to_string()),
        E::Limits(l) => ItemError::Limits(format!(
            "{l}: raise --max-pixels or --max-memory-mb if this image is expected"
        )),
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ItemError::Decode("the file is truncated".into())
        }
        E::IoError(io) => ItemError::Decode(io.to_string()),
        E::Encoding(e) => ItemError::Encode(e.to_string()),
        E::Parameter(p) => ItemError::Decode(p.to_string()),
    }
}

fn check_pixels(w: u32, h: u32, opts: &DecodeOptions) -> Result<(), ItemError> {
    if w == 0 || h == 0 {
        // Found by tests/fuzz: a GIF 0 pixels wide decoded, and blur then panicked.
        return Err(ItemError::Decode(format!(
            "the header says {w}x{h}: an image with no pixels"
        )));
    }
    let px = w as u64 * h as u64;
    if px > opts.max_pixels {
        return Err(ItemError::Limits(format!(
            "{w}x{h} is {:.1} megapixels, above --max-pixels {} ({:.1} MP): raise --max-pixels to process it",
            px as f64 / 1e6,
            opts.max_pixels,
            opts.max_pixels as f64 / 1e6
        )));
    }
    Ok(())
}

/// Whether a JPEG's frame header says progressive (or another multi-scan coding),
/// from the markers before the first scan. When `head` ends before the frame header
/// the answer is "progressive", the costlier case.
pub fn jpeg_is_progressive(head: &[u8]) -> bool {
    jpeg::header_segments(head)
        .find_map(|(marker, _)| match marker {
            // Baseline, extended sequential, lossless (Huffman or arithmetic).
            0xC0 | 0xC1 | 0xC3 | 0xC9 | 0xCB => Some(false),
            0xC2 | 0xC5..=0xC7 | 0xCA | 0xCD..=0xCF => Some(true),
            _ => None,
        })
        .unwrap_or(true)
}

fn coding(format: ImageFormat, head: &[u8]) -> Coding {
    match format {
        // Only the JPEGs libjpeg-turbo does not take come here (see `jpeg`).
        ImageFormat::Jpeg => Coding::OtherJpeg {
            progressive: jpeg_is_progressive(head),
        },
        ImageFormat::Png => Coding::Png,
        ImageFormat::WebP => Coding::WebP,
        ImageFormat::Tiff => Coding::Tiff,
        ImageFormat::Gif => Coding::Gif,
        _ => Coding::Plain,
    }
}

fn orientation_of(decoder: &mut dyn ImageDecoder, auto_orient: bool) -> Orientation {
    if !auto_orient {
        return Orientation::NoTransforms;
    }
    // Pillow and others write the EXIF of WebP and PNG with the `Exif\0\0` prefix of
    // JPEG's APP1 segment, where the decoders expect the TIFF header at once (half of
    // a set of rotated WebP test files came out unrotated). Pillow, libvips and
    // browsers read both. The EXIF is read once; a format whose orientation is not in
    // an EXIF chunk (TIFF's tag) is asked for it after.
    let exif = decoder.exif_metadata().ok().flatten();
    exif.as_deref()
        .and_then(|chunk| {
            Orientation::from_exif_chunk(chunk.strip_prefix(b"Exif\0\0").unwrap_or(chunk))
        })
        .filter(|&o| o != Orientation::NoTransforms)
        .or_else(|| decoder.orientation().ok())
        .unwrap_or(Orientation::NoTransforms)
}

/// The layout of what `decoder` will produce, from its header alone.
fn layout_of(decoder: &dyn ImageDecoder, coding: Coding, orientation: Orientation) -> Layout {
    use image::ColorType as C;
    let (w, h) = decoder.dimensions();
    let color = decoder.color_type();
    let (channels, deep, converted) = match color {
        C::L8 => (1, false, false),
        C::La8 => (2, false, false),
        C::Rgb8 => (3, false, false),
        C::Rgba8 => (4, false, false),
        C::L16 => (1, true, false),
        C::La16 => (2, true, false),
        C::Rgb16 => (3, true, false),
        C::Rgba16 => (4, true, false),
        c if c.has_alpha() => (4, true, true),
        _ => (3, true, true),
    };
    let rotated = turns(orientation);
    let (width, height) = if rotated { (h, w) } else { (w, h) };
    Layout {
        shape: Shape {
            width,
            height,
            channels,
            deep,
        },
        decoder_pixel_bytes: color.bytes_per_pixel(),
        converted,
        rotated,
        coding,
        frames: 1,
    }
}

/// The layout an input will decode to, from its header: `reader` reads the input from
/// its start, `head` is its first bytes (64 KiB or so, to tell progressive JPEGs).
pub fn probe<R: std::io::BufRead + std::io::Seek>(
    reader: R,
    head: &[u8],
    auto_orient: bool,
) -> Result<Layout, ItemError> {
    if head.starts_with(&[0xFF, 0xD8]) {
        if let Some(h) = jpeg::header(head) {
            return Ok(jpeg_layout(&h, jpeg_orientation(head, auto_orient)));
        }
    }
    let reader = ImageReader::new(reader)
        .with_guessed_format()
        .map_err(|e| ItemError::Io(e.to_string()))?;
    let format = reader.format().ok_or_else(unknown_format)?;
    let mut decoder = reader.into_decoder().map_err(map_image_error)?;
    let orientation = orientation_of(&mut decoder, auto_orient);
    Ok(layout_of(&decoder, coding(format, head), orientation))
}

/// Decodes an input, checking the header against `opts` before allocating pixels.
pub fn decode(bytes: &[u8], opts: &DecodeOptions) -> Result<Decoded, ItemError> {
    decode_within(bytes, opts, &|_| Ok(()))
}

/// [`decode`], asking `budget` whether the image's [`Layout`] may be processed before
/// any pixel buffer exists (and again for each further frame of an animation).
pub fn decode_within(
    bytes: &[u8],
    opts: &DecodeOptions,
    budget: &dyn Fn(&Layout) -> Result<(), ItemError>,
) -> Result<Decoded, ItemError> {
    decode_at_least(bytes, opts, budget, None)
}

/// [`decode_within`], allowed to return a smaller image when the caller shrinks it to
/// `min` (width, height after orientation) or less anyway: a JPEG is then decoded at
/// the largest DCT reduction (1/2, 1/4, 1/8) that leaves at least `min`. Every other
/// input, and a JPEG too small to reduce, decodes at full size. `budget` is asked about
/// the full-size image, an upper bound.
pub fn decode_at_least(
    bytes: &[u8],
    opts: &DecodeOptions,
    budget: &dyn Fn(&Layout) -> Result<(), ItemError>,
    min: Option<(u32, u32)>,
) -> Result<Decoded, ItemError> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        if let Some(head) = jpeg::header(bytes) {
            return decode_jpeg(bytes, &head, opts, budget, min);
        }
    }
    let mut reader = reader(bytes)?;
    let format = reader.format().ok_or_else(unknown_format)?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(opts.max_alloc);
    reader.limits(limits.clone());
    if format == ImageFormat::Gif {
        return decode_gif(bytes, opts, limits, budget);
    }
    let mut decoder = reader.into_decoder().map_err(map_image_error)?;
    let (w, h) = decoder.dimensions();
    check_pixels(w, h, opts)?;
    let orientation = orientation_of(&mut decoder, opts.auto_orient);
    budget(&layout_of(&decoder, coding(format, bytes), orientation))?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(map_image_error)?;
    img.apply_orientation(orientation);
    Ok(Decoded {
        frames: vec![Frame {
            image: from_dynamic(img),
            delay_ms: 0,
        }],
        width: w,
        height: h,
    })
}

/// The EXIF orientation of a JPEG, or none when `auto_orient` is off.
fn jpeg_orientation(bytes: &[u8], auto_orient: bool) -> Orientation {
    jpeg::exif_orientation(bytes)
        .filter(|_| auto_orient)
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms)
}

fn turns(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// The layout of a JPEG that libjpeg-turbo decodes, at full size.
fn jpeg_layout(head: &jpeg::Header, orientation: Orientation) -> Layout {
    let rotated = turns(orientation);
    let (width, height) = if rotated {
        (head.height, head.width)
    } else {
        (head.width, head.height)
    };
    let channels = if head.gray { 1 } else { 3 };
    Layout {
        shape: Shape {
            width,
            height,
            channels,
            deep: false,
        },
        decoder_pixel_bytes: channels,
        converted: false,
        rotated,
        coding: if head.progressive {
            Coding::ProgressiveJpeg
        } else {
            Coding::Jpeg
        },
        frames: 1,
    }
}

/// The size after orientation of a JPEG input that [`decode_at_least`] can decode
/// reduced, read from its header; `None` for any other input.
pub fn reducible_jpeg_size(bytes: &[u8], auto_orient: bool) -> Option<(u32, u32)> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let head = jpeg::header(bytes)?;
    let s = jpeg_layout(&head, jpeg_orientation(bytes, auto_orient)).shape;
    Some((s.width, s.height))
}

fn decode_jpeg(
    bytes: &[u8],
    head: &jpeg::Header,
    opts: &DecodeOptions,
    budget: &dyn Fn(&Layout) -> Result<(), ItemError>,
    min: Option<(u32, u32)>,
) -> Result<Decoded, ItemError> {
    check_pixels(head.width, head.height, opts)?;
    let orientation = jpeg_orientation(bytes, opts.auto_orient);
    let layout = jpeg_layout(head, orientation);
    budget(&layout)?;
    let denom = match min {
        // `min` is after orientation; the decoder works on the stored image.
        Some((w, h)) if layout.rotated => jpeg::shrink_denominator(head.width, head.height, (h, w)),
        Some(m) => jpeg::shrink_denominator(head.width, head.height, m),
        None => 1,
    };
    let pixels = jpeg::decode(bytes, head, denom)?;
    let (w, h) = jpeg::scaled_size(head.width, head.height, denom);
    let mut image = Image::from_u8(w, h, layout.shape.channels, pixels);
    if orientation != Orientation::NoTransforms {
        let mut d = to_dynamic(image);
        d.apply_orientation(orientation);
        image = from_dynamic(d);
    }
    Ok(Decoded {
        frames: vec![Frame { image, delay_ms: 0 }],
        width: head.width,
        height: head.height,
    })
}

fn decode_gif(
    bytes: &[u8],
    opts: &DecodeOptions,
    limits: image::Limits,
    budget: &dyn Fn(&Layout) -> Result<(), ItemError>,
) -> Result<Decoded, ItemError> {
    let mut decoder =
        image::codecs::gif::GifDecoder::new(Cursor::new(bytes)).map_err(map_image_error)?;
    let (w, h) = decoder.dimensions();
    check_pixels(w, h, opts)?;
    let mut layout = layout_of(&decoder, Coding::Gif, Orientation::NoTransforms);
    budget(&layout)?;
    decoder.set_limits(limits).map_err(map_image_error)?;
    let mut frames = Vec::new();
    for f in decoder.into_frames() {
        // Each frame adds one image to what the item holds: ask before decoding it.
        layout.frames = frames.len() as u32 + 1;
        budget(&layout)?;
        let f = f.map_err(map_image_error)?;
        let (num, den) = f.delay().numer_denom_ms();
        let delay_ms = num.checked_div(den).unwrap_or(0);
        let buf = f.into_buffer();
        frames.push(Frame {
            image: from_dynamic(DynamicImage::ImageRgba8(buf)),
            delay_ms,
        });
    }
    if frames.is_empty() {
        return Err(ItemError::Decode("the GIF has no frames".into()));
    }
    Ok(Decoded {
        frames,
        width: w,
        height: h,
    })
}

/// Converts the `image` crate's representation into ours, keeping depth and alpha.
pub fn from_dynamic(img: DynamicImage) -> Image {
    let (w, h) = (img.width(), img.height());
    match img {
        DynamicImage::ImageLuma8(b) => Image::from_u8(w, h, 1, b.into_raw()),
        DynamicImage::ImageLumaA8(b) => Image::from_u8(w, h, 2, b.into_raw()),
        DynamicImage::ImageRgb8(b) => Image::from_u8(w, h, 3, b.into_raw()),
        DynamicImage::ImageRgba8(b) => Image::from_u8(w, h, 4, b.into_raw()),
        DynamicImage::ImageLuma16(b) => Image::from_u16(w, h, 1, b.into_raw()),
        DynamicImage::ImageLumaA16(b) => Image::from_u16(w, h, 2, b.into_raw()),
        DynamicImage::ImageRgb16(b) => Image::from_u16(w, h, 3, b.into_raw()),
        DynamicImage::ImageRgba16(b) => Image::from_u16(w, h, 4, b.into_raw()),
        other if other.color().has_alpha() => {
            Image::from_u16(w, h, 4, other.into_rgba16().into_raw())
        }
        other => Image::from_u16(w, h, 3, other.into_rgb16().into_raw()),
    }
}

/// Converts our image into the `image` crate's representation.
pub fn to_dynamic(img: Image) -> DynamicImage {
    use image::ImageBuffer as B;
    let (w, h, c) = (img.width, img.height, img.channels);
    // The buffer lengths match by construction of `Image`, so `from_raw` cannot fail.
    let bad = || DynamicImage::new_rgb8(w, h);
    match (img.samples, c) {
        (Samples::U8(d), 1) => B::from_raw(w, h, d)
            .map(DynamicImage::ImageLuma8)
            .unwrap_or_else(bad),
        (Samples::U8(d), 2) => B::from_raw(w, h, d)
            .map(DynamicImage::ImageLumaA8)
            .unwrap_or_else(bad),
        (Samples::U8(d), 3) => B::from_raw(w, h, d)
            .map(DynamicImage::ImageRgb8)
            .unwrap_or_else(bad),
        (Samples::U8(d), _) => B::from_raw(w, h, d)
            .map(DynamicImage::ImageRgba8)
            .unwrap_or_else(bad),
        (Samples::U16(d), 1) => B::from_raw(w, h, d)
            .map(DynamicImage::ImageLuma16)
            .unwrap_or_else(bad),
        (Samples::U16(d), 2) => B::from_raw(w, h, d)
            .map(DynamicImage::ImageLumaA16)
            .unwrap_or_else(bad),
        (Samples::U16(d), 3) => B::from_raw(w, h, d)
            .map(DynamicImage::ImageRgb16)
            .unwrap_or_else(bad),
        (Samples::U16(d), _) => B::from_raw(w, h, d)
            .map(DynamicImage::ImageRgba16)
            .unwrap_or_else(bad),
    }
}

/// Encoding choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Output format.
    pub format: OutputFormat,
    /// JPEG quality 1-100 (ignored by the lossless formats). Default 90.
    pub quality: u8,
}

fn drop_alpha(img: Image) -> Image {
    if !img.has_alpha() {
        return img;
    }
    let img = img.into_u8();
    let cn = img.channels as usize;
    let data: Vec<u8> = img
        .u8_data()
        .chunks_exact(cn)
        .flat_map(|p| p[..cn - 1].iter().copied())
        .collect();
    Image::from_u8(img.width, img.height, img.channels - 1, data)
}

fn encode_err(e: impl std::fmt::Display) -> ItemError {
    ItemError::Encode(e.to_string())
}

/// Encodes frames; every format but GIF writes the first frame only.
pub fn encode(frames: Vec<Frame>, opts: &EncodeOptions) -> Result<Vec<u8>, ItemError> {
    // Room for the output at once, a little more than the raw pixels (what a
    // lossless encoder writes at worst): growing by doubling would copy it several
    // times and leave the allocator holding every smaller block. Pages never
    // written are never resident. (libjpeg-turbo makes its own buffer.)
    let raw: usize = if opts.format == OutputFormat::Jpeg {
        0
    } else {
        frames
            .iter()
            .map(|f| {
                f.image.width as usize
                    * f.image.height as usize
                    * f.image.channels as usize
                    * if f.image.is_16bit() { 2 } else { 1 }
            })
            .sum()
    };
    let mut out = Vec::with_capacity(raw + raw / 64);
    if opts.format == OutputFormat::Gif {
        encode_gif(frames, &mut out)?;
        return Ok(out);
    }
    let Some(first) = frames.into_iter().next() else {
        return Err(ItemError::Encode("nothing to encode".into()));
    };
    let img = first.image;
    match opts.format {
        OutputFormat::Jpeg => return encode_jpeg(img, opts.quality),
        // Written above, with every frame.
        OutputFormat::Gif => {}
        OutputFormat::Png => {
            use image::codecs::png::{CompressionType, FilterType, PngEncoder};
            // zlib level 1, OpenCV's default too: several times faster than level 6.
            let enc = PngEncoder::new_with_quality(
                &mut out,
                CompressionType::Level(1),
                FilterType::Adaptive,
            );
            to_dynamic(img)
                .write_with_encoder(enc)
                .map_err(encode_err)?;
        }
        OutputFormat::WebP => {
            let dynimg = to_dynamic(img.into_u8());
            let dynimg = if dynimg.color().has_alpha() {
                DynamicImage::ImageRgba8(dynimg.into_rgba8())
            } else {
                DynamicImage::ImageRgb8(dynimg.into_rgb8())
            };
            let enc = image::codecs::webp::WebPEncoder::new_lossless(&mut out);
            dynimg.write_with_encoder(enc).map_err(encode_err)?;
        }
        OutputFormat::Tiff => {
            // The TIFF encoder has no gray+alpha: such images are written as RGBA.
            let d = match to_dynamic(img) {
                d @ DynamicImage::ImageLumaA8(_) => DynamicImage::ImageRgba8(d.into_rgba8()),
                d @ DynamicImage::ImageLumaA16(_) => DynamicImage::ImageRgba16(d.into_rgba16()),
                d => d,
            };
            d.write_to(&mut Cursor::new(&mut out), ImageFormat::Tiff)
                .map_err(encode_err)?;
        }
        OutputFormat::Bmp => {
            to_dynamic(img.into_u8())
                .write_to(&mut Cursor::new(&mut out), ImageFormat::Bmp)
                .map_err(encode_err)?;
        }
        OutputFormat::Qoi => {
            let d = to_dynamic(img.into_u8());
            let d = if d.color().has_alpha() {
                DynamicImage::ImageRgba8(d.into_rgba8())
            } else {
                DynamicImage::ImageRgb8(d.into_rgb8())
            };
            d.write_to(&mut Cursor::new(&mut out), ImageFormat::Qoi)
                .map_err(encode_err)?;
        }
    }
    Ok(out)
}

/// Every frame as an animated GIF (looping when there is more than one).
fn encode_gif(frames: Vec<Frame>, out: &mut Vec<u8>) -> Result<(), ItemError> {
    let mut enc = image::codecs::gif::GifEncoder::new_with_speed(out, 10);
    if frames.len() > 1 {
        enc.set_repeat(image::codecs::gif::Repeat::Infinite)
            .map_err(encode_err)?;
    }
    for f in frames {
        let rgba = to_dynamic(f.image).into_rgba8();
        let delay = image::Delay::from_numer_denom_ms(f.delay_ms, 1);
        enc.encode_frame(image::Frame::from_parts(rgba, 0, 0, delay))
            .map_err(encode_err)?;
    }
    Ok(())
}

/// Baseline JPEG through libjpeg-turbo: 4:2:0 for colour, alpha dropped.
fn encode_jpeg(img: Image, quality: u8) -> Result<Vec<u8>, ItemError> {
    let img = drop_alpha(img.into_u8());
    let (format, subsamp) = if img.channels == 1 {
        (turbojpeg::PixelFormat::GRAY, turbojpeg::Subsamp::Gray)
    } else {
        (turbojpeg::PixelFormat::RGB, turbojpeg::Subsamp::Sub2x2)
    };
    let timg = turbojpeg::Image {
        pixels: img.u8_data(),
        width: img.width as usize,
        pitch: img.stride(),
        height: img.height as usize,
        format,
    };
    let buf = turbojpeg::compress(timg, quality as i32, subsamp).map_err(encode_err)?;
    Ok(buf.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cn: u8) -> Image {
        let data = (0..16 * 8 * cn as u32)
            .map(|i| (i * 37 % 256) as u8)
            .collect();
        Image::from_u8(16, 8, cn, data)
    }

    #[test]
    fn lossless_formats_round_trip() {
        for (name, fmt) in OutputFormat::ALL {
            if matches!(fmt, OutputFormat::Jpeg | OutputFormat::Gif) {
                continue;
            }
            for cn in [3u8, 4] {
                let img = sample(cn);
                let bytes = encode(
                    vec![Frame {
                        image: img.clone(),
                        delay_ms: 0,
                    }],
                    &EncodeOptions {
                        format: fmt,
                        quality: 90,
                    },
                )
                .unwrap();
                let back = decode(&bytes, &DecodeOptions::default()).unwrap();
                assert_eq!(back.frames[0].image, img, "{name} with {cn} channels");
            }
        }
    }

    /// A TIFF-header EXIF block whose only entry is orientation `n`.
    fn exif_orientation_block(n: u16) -> Vec<u8> {
        let mut t = b"MM\0\x2a\0\0\0\x08\0\x01".to_vec();
        t.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]);
        t.extend_from_slice(&n.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        t
    }

    /// A 5x3 RGB PNG with an eXIf chunk holding `exif`.
    fn png_with_exif(exif: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, 5, 3);
        enc.set_color(png::ColorType::Rgb);
        let mut w = enc.write_header().unwrap();
        w.write_chunk(png::chunk::ChunkType(*b"eXIf"), exif)
            .unwrap();
        w.write_image_data(&[7u8; 5 * 3 * 3]).unwrap();
        drop(w);
        out
    }

    /// A 5x3 lossless WebP in the extended format with an EXIF chunk holding `exif`.
    fn webp_with_exif(exif: &[u8]) -> Vec<u8> {
        let simple = encode(
            vec![Frame {
                image: Image::from_u8(5, 3, 3, vec![7; 45]),
                delay_ms: 0,
            }],
            &EncodeOptions {
                format: OutputFormat::WebP,
                quality: 90,
            },
        )
        .unwrap();
        // RIFF size WEBP, then the VP8L chunk: keep it, add VP8X before and EXIF after.
        let vp8l = &simple[12..];
        let chunk = |tag: &[u8; 4], body: &[u8]| {
            let mut c = tag.to_vec();
            c.extend_from_slice(&(body.len() as u32).to_le_bytes());
            c.extend_from_slice(body);
            if body.len() % 2 == 1 {
                c.push(0);
            }
            c
        };
        // Flags: EXIF present (0x08); canvas 5x3 stored as width-1, height-1 in 24 bits.
        let vp8x = [0x08, 0, 0, 0, 4, 0, 0, 2, 0, 0];
        let mut body = b"WEBP".to_vec();
        body.extend(chunk(b"VP8X", &vp8x));
        body.extend_from_slice(vp8l);
        body.extend(chunk(b"EXIF", exif));
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&(body.len() as u32).to_le_bytes());
        file.extend(body);
        file
    }

    #[test]
    fn exif_orientation_is_read_with_and_without_the_exif_prefix() {
        let bare = exif_orientation_block(6);
        let prefixed = [b"Exif\0\0".as_slice(), &bare].concat();
        for exif in [&bare, &prefixed] {
            for (name, file) in [("png", png_with_exif(exif)), ("webp", webp_with_exif(exif))] {
                let d = decode(&file, &DecodeOptions::default()).unwrap();
                let img = &d.frames[0].image;
                // Orientation 6 turns the 5x3 image a quarter: 3x5.
                assert_eq!(
                    (img.width, img.height),
                    (3, 5),
                    "{name}, {} bytes of EXIF",
                    exif.len()
                );
                let kept = DecodeOptions {
                    auto_orient: false,
                    ..DecodeOptions::default()
                };
                let d = decode(&file, &kept).unwrap();
                assert_eq!((d.frames[0].image.width, d.frames[0].image.height), (5, 3));
                // The probe (--dry-run, the memory check) agrees.
                let layout = probe(Cursor::new(&file[..]), &file, true).unwrap();
                assert_eq!(
                    (layout.shape.width, layout.shape.height),
                    (3, 5),
                    "{name} probe"
                );
            }
        }
    }

    #[test]
    fn an_image_without_pixels_is_a_decode_error() {
        // A GIF whose logical screen is 0 pixels wide, with one 1x1 frame.
        let gif: &[u8] = &[
            b'G', b'I', b'F', b'8', b'9', b'a', 0, 0, 9, 0, 0x80, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF,
            0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0, 0x3B,
        ];
        let e = decode(gif, &DecodeOptions::default()).unwrap_err();
        assert_eq!(e.kind(), "decode", "{e}");
        assert!(e.to_string().contains("0x9"), "{e}");
    }

    #[test]
    fn gray_alpha_is_written_as_tiff() {
        for deep in [false, true] {
            let img = sample(2);
            let img = if deep {
                Image::from_u16(
                    16,
                    8,
                    2,
                    img.u8_data().iter().map(|&v| v as u16 * 257).collect(),
                )
            } else {
                img
            };
            let bytes = encode(
                vec![Frame {
                    image: img.clone(),
                    delay_ms: 0,
                }],
                &EncodeOptions {
                    format: OutputFormat::Tiff,
                    quality: 90,
                },
            )
            .unwrap();
            let back = decode(&bytes, &DecodeOptions::default()).unwrap();
            let back = &back.frames[0].image;
            assert_eq!((back.channels, back.is_16bit()), (4, deep));
            let gray = to_dynamic(img).into_rgba16().into_raw();
            assert_eq!(to_dynamic(back.clone()).into_rgba16().into_raw(), gray);
        }
    }

    #[test]
    fn oversized_header_is_refused_before_decoding() {
        let bytes = encode(
            vec![Frame {
                image: sample(3),
                delay_ms: 0,
            }],
            &EncodeOptions {
                format: OutputFormat::Png,
                quality: 90,
            },
        )
        .unwrap();
        let opts = DecodeOptions {
            max_pixels: 100,
            ..DecodeOptions::default()
        };
        let e = decode(&bytes, &opts).unwrap_err();
        assert_eq!(e.kind(), "limits");
        assert!(e.to_string().contains("--max-pixels"), "{e}");
    }

    #[test]
    fn garbage_is_unsupported_and_a_truncated_jpeg_never_panics() {
        assert_eq!(
            decode(b"hello world, not an image", &DecodeOptions::default())
                .unwrap_err()
                .kind(),
            "unsupported"
        );
        let bytes = encode(
            vec![Frame {
                image: sample(3),
                delay_ms: 0,
            }],
            &EncodeOptions {
                format: OutputFormat::Jpeg,
                quality: 90,
            },
        )
        .unwrap();
        let e = decode(&bytes[..bytes.len() / 2], &DecodeOptions::default());
        // libjpeg-turbo fills a truncated scan with gray; either an error or a full-size image is fine,
        // but never a panic.
        if let Ok(d) = e {
            assert_eq!((d.frames[0].image.width, d.frames[0].image.height), (16, 8));
        }
    }
}
