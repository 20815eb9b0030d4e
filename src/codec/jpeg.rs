//! JPEG decoding through libjpeg-turbo, the library behind OpenCV's `imread`.
//!
//! Decoding with the same library and the same settings (accurate integer IDCT, smooth
//! chroma upsampling) gives the same pixels as `cv2.imread`, so a bit-exact op on a
//! JPEG input gives an OpenCV script's bytes; zune-jpeg (through the `image` crate)
//! differed by up to 5 levels on 3-21% of the samples of the corpus photos. It is also
//! faster on progressive files, and it can decode at 1/2, 1/4 or 1/8 scale inside the
//! DCT ("shrink-on-load") for a pipeline that starts by shrinking the image.
//!
//! Only what libjpeg-turbo decodes to the pixels imgproc holds comes here: 8-bit lossy
//! JPEGs in YCbCr, RGB or gray. CMYK and YCCK files (which TurboJPEG only returns as
//! CMYK), 12-bit and lossless ones go to the `image` crate as before.

use crate::error::ItemError;
use std::cell::RefCell;
use std::ffi::CStr;
use turbojpeg::raw;

/// What the frame header says, for a JPEG that [`decode`] handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Width as stored.
    pub width: u32,
    /// Height as stored.
    pub height: u32,
    /// Gray (one channel) rather than colour (three).
    pub gray: bool,
    /// Progressive (all coefficients are held until the last scan).
    pub progressive: bool,
}

/// A TurboJPEG decompressor, one per thread: making one costs an allocation and a
/// table setup that a stream of small photos would pay per item.
struct Handle(raw::tjhandle);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { raw::tj3Destroy(self.0) }
    }
}

thread_local! {
    static HANDLE: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's decompressor.
fn with_handle<T>(f: impl FnOnce(raw::tjhandle) -> Result<T, ItemError>) -> Result<T, ItemError> {
    HANDLE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            // SAFETY: tj3Init has no preconditions; a null return is checked.
            let h = unsafe { raw::tj3Init(raw::TJINIT_TJINIT_DECOMPRESS as libc::c_int) };
            if h.is_null() {
                return Err(ItemError::Decode(
                    "libjpeg-turbo could not start a decompressor (out of memory?)".into(),
                ));
            }
            *slot = Some(Handle(h));
        }
        match slot.as_ref() {
            Some(h) => f(h.0),
            None => Err(ItemError::Decode("no JPEG decompressor".into())),
        }
    })
}

/// The last error on `h`: its message, and whether it was only a warning (the image
/// was decoded whole, as libjpeg does for a truncated file: OpenCV keeps it too).
fn last_error(h: raw::tjhandle) -> (String, bool) {
    // SAFETY: `h` is a live handle; the string it returns lives as long as the handle
    // and is copied at once.
    unsafe {
        let msg = CStr::from_ptr(raw::tj3GetErrorStr(h))
            .to_string_lossy()
            .into_owned();
        let warning = raw::tj3GetErrorCode(h) == raw::TJERR_TJERR_WARNING as libc::c_int;
        (msg, warning)
    }
}

fn get(h: raw::tjhandle, param: raw::TJPARAM) -> libc::c_int {
    // SAFETY: `h` is a live handle; reading a parameter has no other effect.
    unsafe { raw::tj3Get(h, param as libc::c_int) }
}

/// Reads the frame header of `bytes`, or `None` when libjpeg-turbo should not decode
/// it (not a JPEG, CMYK/YCCK, 12-bit, lossless) and the `image` crate takes over.
pub fn header(bytes: &[u8]) -> Option<Header> {
    with_handle(|h| {
        // SAFETY: the pointer and length describe `bytes`, which outlives the call.
        let rc = unsafe { raw::tj3DecompressHeader(h, bytes.as_ptr(), bytes.len() as _) };
        let none = || ItemError::Decode(String::new());
        if rc != 0 {
            return Err(none());
        }
        let colorspace = get(h, raw::TJPARAM_TJPARAM_COLORSPACE) as raw::TJCS;
        let precision = get(h, raw::TJPARAM_TJPARAM_PRECISION);
        let lossless = get(h, raw::TJPARAM_TJPARAM_LOSSLESS) != 0;
        let gray = match colorspace {
            raw::TJCS_TJCS_GRAY => true,
            raw::TJCS_TJCS_YCbCr | raw::TJCS_TJCS_RGB => false,
            _ => return Err(none()),
        };
        if precision != 8 || lossless {
            return Err(none());
        }
        let (w, hgt) = (
            get(h, raw::TJPARAM_TJPARAM_JPEGWIDTH),
            get(h, raw::TJPARAM_TJPARAM_JPEGHEIGHT),
        );
        if w <= 0 || hgt <= 0 {
            return Err(none());
        }
        Ok(Header {
            width: w as u32,
            height: hgt as u32,
            gray,
            progressive: get(h, raw::TJPARAM_TJPARAM_PROGRESSIVE) != 0,
        })
    })
    .ok()
}

/// The DCT scales imgproc decodes at, largest reduction first: libjpeg-turbo has SIMD
/// code for these.
const SCALES: [u32; 3] = [8, 4, 2];

/// The size of a `w`x`h` JPEG decoded at 1/`denom` (libjpeg rounds up).
pub fn scaled_size(w: u32, h: u32, denom: u32) -> (u32, u32) {
    (w.div_ceil(denom), h.div_ceil(denom))
}

/// The largest reduction 1/`denom` that leaves the image at least `min` in both
/// dimensions (as stored), or 1 for none.
pub fn shrink_denominator(w: u32, h: u32, min: (u32, u32)) -> u32 {
    SCALES
        .into_iter()
        .find(|&d| {
            let (sw, sh) = scaled_size(w, h, d);
            sw >= min.0 && sh >= min.1
        })
        .unwrap_or(1)
}

/// Decodes `bytes` (whose header is `head`) at 1/`denom` scale into RGB or gray samples.
pub fn decode(bytes: &[u8], head: &Header, denom: u32) -> Result<Vec<u8>, ItemError> {
    let (w, h) = scaled_size(head.width, head.height, denom);
    let channels = if head.gray { 1 } else { 3 };
    let (pitch, len) = (w as usize * channels, w as usize * h as usize * channels);
    // First into a buffer that is not zeroed (zeroing was a measurable share of small
    // photos' time): a clean success writes every sample.
    let mut out: Vec<u8> = Vec::with_capacity(len);
    // SAFETY: `out` has room for `len` = pitch * height bytes.
    if unsafe { decode_into(bytes, head, denom, out.as_mut_ptr(), pitch)? } {
        // SAFETY: tj3Decompress8 returned 0, which it does only after writing every
        // scanline of the scaled image: all `len` = pitch * height bytes.
        unsafe { out.set_len(len) };
        return Ok(out);
    }
    // A warning (a truncated or corrupt scan): libjpeg-turbo goes on and fills what is
    // missing with gray, as OpenCV keeps it. But TurboJPEG also reports a fatal error
    // that follows a warning as a warning (tj3GetErrorCode reads one flag), so nothing
    // proves every row was written: decode again into zeroed memory.
    let mut out = vec![0u8; len];
    // SAFETY: as above.
    unsafe { decode_into(bytes, head, denom, out.as_mut_ptr(), pitch)? };
    Ok(out)
}

/// Decodes into `dst`: `Ok(true)` for a clean success, `Ok(false)` for a warning, an
/// error for a fatal error.
///
/// # Safety
/// `dst` must be valid for writes of `pitch` times the scaled height bytes.
unsafe fn decode_into(
    bytes: &[u8],
    head: &Header,
    denom: u32,
    dst: *mut u8,
    pitch: usize,
) -> Result<bool, ItemError> {
    let format = if head.gray {
        raw::TJPF_TJPF_GRAY
    } else {
        raw::TJPF_TJPF_RGB
    };
    with_handle(|hd| {
        let scale = raw::tjscalingfactor {
            num: 1,
            denom: denom as libc::c_int,
        };
        // SAFETY: `hd` is live; the scaling factor is one of libjpeg-turbo's own.
        if unsafe { raw::tj3SetScalingFactor(hd, scale) } != 0 {
            return Err(ItemError::Decode(last_error(hd).0));
        }
        // SAFETY: `dst` has room for pitch * height bytes of the scaled image (this
        // function's contract), which is what tj3Decompress8 writes at most for this
        // scaling factor and format.
        let rc = unsafe {
            raw::tj3Decompress8(
                hd,
                bytes.as_ptr(),
                bytes.len() as _,
                dst,
                pitch as libc::c_int,
                format,
            )
        };
        if rc == 0 {
            return Ok(true);
        }
        match last_error(hd) {
            (_, true) => Ok(false),
            (msg, false) => Err(ItemError::Decode(msg)),
        }
    })
}

/// The marker segments of a JPEG before its first scan, as (marker, body): it stops at
/// the start of scan or the end of the image, at a byte that is not a marker, and at a
/// segment that runs past the end of `bytes`.
pub fn header_segments(bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut i = 2;
    std::iter::from_fn(move || loop {
        if i + 4 > bytes.len() || bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        match marker {
            // A fill byte, and the markers without a length.
            0xFF => i += 1,
            0x01 | 0xD0..=0xD7 => i += 2,
            0xDA | 0xD9 => return None,
            _ => {
                let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
                let body = bytes.get(i + 4..i + 2 + len)?;
                i += 2 + len;
                return Some((marker, body));
            }
        }
    })
}

/// The EXIF orientation of a JPEG (1 to 8), from the first APP1 "Exif" segment before
/// the first scan, as OpenCV and the `image` crate read it.
pub fn exif_orientation(bytes: &[u8]) -> Option<u8> {
    let (_, body) = header_segments(bytes)
        .find(|(marker, body)| *marker == 0xE1 && body.starts_with(b"Exif\0\0"))?;
    image::metadata::Orientation::from_exif_chunk(&body[6..]).map(|o| o.to_exif())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_reduction_that_keeps_the_minimum() {
        assert_eq!(shrink_denominator(5640, 3172, (512, 288)), 8);
        assert_eq!(shrink_denominator(5640, 3172, (1024, 576)), 4);
        assert_eq!(shrink_denominator(5640, 3172, (705, 398)), 4);
        assert_eq!(shrink_denominator(5640, 3172, (705, 397)), 8);
        assert_eq!(shrink_denominator(5640, 3172, (705, 396)), 8);
        assert_eq!(shrink_denominator(5640, 3172, (2821, 10)), 1);
        assert_eq!(scaled_size(5641, 3172, 8), (706, 397));
    }

    #[test]
    fn orientation_is_read_from_exif_and_garbage_is_none() {
        // SOI, APP1 "Exif" with a little-endian TIFF header, one IFD entry 0x0112 = 6.
        let mut tiff = b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x06\0\0\0".to_vec();
        tiff.extend_from_slice(&[0, 0, 0, 0]);
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE1];
        let len = (2 + 6 + tiff.len()) as u16;
        jpeg.extend_from_slice(&len.to_be_bytes());
        jpeg.extend_from_slice(b"Exif\0\0");
        jpeg.extend_from_slice(&tiff);
        jpeg.extend_from_slice(&[0xFF, 0xDA, 0, 2]);
        assert_eq!(exif_orientation(&jpeg), Some(6));
        // A length running past the end, and a truncated marker.
        assert_eq!(exif_orientation(&jpeg[..12]), None);
        assert_eq!(exif_orientation(&[0xFF, 0xD8, 0xFF]), None);
        assert_eq!(header(b"not a jpeg at all"), None);
    }
}
