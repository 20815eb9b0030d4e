//! The in-memory image that operations work on.
//!
//! A plain interleaved buffer with 1 to 4 channels (gray, gray+alpha, RGB, RGBA) in
//! 8 or 16 bits per sample. It exists so that the operation kernels depend on nothing
//! but slices, and so that 16-bit data can flow through the ops that support it.

/// Sample storage of an [`Image`]: 8 or 16 bits per sample, interleaved, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Samples {
    /// 8 bits per sample.
    U8(Vec<u8>),
    /// 16 bits per sample.
    U16(Vec<u16>),
}

/// An interleaved image: `channels` is 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Samples per pixel: 1, 2, 3 or 4; 2 and 4 carry alpha as the last channel.
    pub channels: u8,
    /// The samples, `width * height * channels` of them.
    pub samples: Samples,
}

impl Image {
    /// Builds an 8-bit image; `data.len()` must be `width * height * channels`.
    pub fn from_u8(width: u32, height: u32, channels: u8, data: Vec<u8>) -> Image {
        debug_assert_eq!(
            data.len(),
            width as usize * height as usize * channels as usize
        );
        Image {
            width,
            height,
            channels,
            samples: Samples::U8(data),
        }
    }

    /// Builds a 16-bit image; `data.len()` must be `width * height * channels`.
    pub fn from_u16(width: u32, height: u32, channels: u8, data: Vec<u16>) -> Image {
        debug_assert_eq!(
            data.len(),
            width as usize * height as usize * channels as usize
        );
        Image {
            width,
            height,
            channels,
            samples: Samples::U16(data),
        }
    }

    /// True when the last channel is alpha (2 or 4 channels).
    pub fn has_alpha(&self) -> bool {
        self.channels == 2 || self.channels == 4
    }

    /// Number of colour (non-alpha) channels: 1 or 3.
    pub fn color_channels(&self) -> usize {
        if self.channels >= 3 {
            3
        } else {
            1
        }
    }

    /// True for 16 bits per sample.
    pub fn is_16bit(&self) -> bool {
        matches!(self.samples, Samples::U16(_))
    }

    /// Pixels in millions.
    pub fn megapixels(&self) -> f64 {
        crate::item::megapixels(self.width, self.height)
    }

    /// Converts to 8 bits per sample (rounding `v / 257`); 8-bit images are returned as is.
    pub fn into_u8(self) -> Image {
        match self.samples {
            Samples::U8(_) => self,
            Samples::U16(v) => {
                let data = v.iter().map(|&s| u16_to_u8(s)).collect();
                Image::from_u8(self.width, self.height, self.channels, data)
            }
        }
    }

    /// The 8-bit samples. Panics on a 16-bit image: call [`Image::into_u8`] first.
    pub fn u8_data(&self) -> &[u8] {
        match &self.samples {
            Samples::U8(v) => v,
            Samples::U16(_) => panic!("u8_data on a 16-bit image"),
        }
    }

    /// Row length in samples.
    pub fn stride(&self) -> usize {
        self.width as usize * self.channels as usize
    }
}

/// One 16-bit sample as 8 bits, `v / 257` rounded. With t = v + 128, t / 257 is
/// (t - t / 256) / 256 for every 16-bit v (a test checks all of them): shifts and a
/// subtraction, which vectorise where a division does not.
#[inline(always)]
pub(crate) fn u16_to_u8(v: u16) -> u8 {
    let t = v as u32 + 128;
    ((t - (t >> 8)) >> 8) as u8
}
