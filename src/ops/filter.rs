//! Neighbourhood filters: Gaussian and box blur, sharpen, Sobel, erode, dilate (the
//! median has its own module, `median`).
//!
//! The blurs share one separable engine with integer kernels, so that they reproduce
//! OpenCV's 8-bit fixed-point arithmetic exactly (a horizontal pass into a wider
//! integer type, a vertical pass, one rounding at the end). Work is split into bands
//! of rows; each band filters the rows it needs into a small buffer that stays in cache.

use super::{box_filter, par};
use crate::image::Image;
use std::ops::{Add, Mul};

/// An integer accumulator type of the separable engine.
pub trait Acc:
    Copy + Send + Sync + Default + Add<Output = Self> + Mul<Output = Self> + From<u8>
{
}
impl Acc for u16 {}
impl Acc for u32 {}

/// Rows per band of the separable engine (plus the kernel's margin).
pub(crate) const BAND_ROWS: usize = 32;

/// Filters every channel of an 8-bit image with the separable kernel `kh` (horizontal)
/// and `kv` (vertical), border reflect-101, anchor at the centre (`k/2`), and maps each
/// vertical sum to a sample with `finish`.
pub fn separable<H: Acc, V: Acc + From<H>>(
    img: &Image,
    kh: &[H],
    kv: &[V],
    finish: impl Fn(V) -> u8 + Sync + Send,
) -> Vec<u8> {
    separable_then(img, kh, kv, finish, |_, _| {})
}

/// [`separable`], then `post(y, row)` on each output row `y` as soon as it is made,
/// while it is in cache: for a filter whose result mixes the blur with the source
/// (sharpen), one pass over memory fewer than mixing afterwards.
pub fn separable_then<H: Acc, V: Acc + From<H>>(
    img: &Image,
    kh: &[H],
    kv: &[V],
    finish: impl Fn(V) -> u8 + Sync + Send,
    post: impl Fn(usize, &mut [u8]) + Sync + Send,
) -> Vec<u8> {
    let (w, cn) = (img.width as usize, img.channels as usize);
    let src = img.u8_data();
    let stride = w * cn;
    // Every sample is written by its band, so the output is not zeroed first.
    let mut out = Vec::with_capacity(src.len());
    let rows_per_band = BAND_ROWS.max((1 << 16) / stride.max(1));
    let shape = Band {
        src,
        w,
        h: img.height as usize,
        cn,
        rows_per_band,
    };
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    #[cfg(target_arch = "x86_64")]
    let avx512 = std::arch::is_x86_feature_detected!("avx512bw");
    use rayon::prelude::*;
    out.spare_capacity_mut()
        .par_chunks_mut(rows_per_band * stride)
        .enumerate()
        .for_each(|(i, out_band)| {
            // SAFETY: `MaybeUninit<u8>` and `u8` have the same layout, and `band`
            // writes every sample of `out_band` before anything reads it.
            let out_band = unsafe { &mut *(out_band as *mut [_] as *mut [u8]) };
            #[cfg(target_arch = "x86_64")]
            if avx512 {
                // SAFETY: the CPU has AVX-512BW, checked above.
                return unsafe { band_avx512(&shape, i, out_band, kh, kv, &finish, &post) };
            }
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU has AVX2, checked above.
                return unsafe { band_avx2(&shape, i, out_band, kh, kv, &finish, &post) };
            }
            band(&shape, i, out_band, kh, kv, &finish, &post)
        });
    // SAFETY: the bands cover the whole output (par_chunks_mut over its full length),
    // and each wrote every one of its samples.
    unsafe { out.set_len(src.len()) };
    out
}

/// What every band of [`separable`] shares.
struct Band<'a> {
    src: &'a [u8],
    w: usize,
    h: usize,
    cn: usize,
    rows_per_band: usize,
}

/// [`band`] compiled for AVX2: twice as many samples a vector instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn band_avx2<H: Acc, V: Acc + From<H>>(
    b: &Band,
    index: usize,
    out_band: &mut [u8],
    kh: &[H],
    kv: &[V],
    finish: &(impl Fn(V) -> u8 + Sync),
    post: &(impl Fn(usize, &mut [u8]) + Sync),
) {
    band(b, index, out_band, kh, kv, finish, post)
}

/// [`band`] compiled for AVX-512BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
unsafe fn band_avx512<H: Acc, V: Acc + From<H>>(
    b: &Band,
    index: usize,
    out_band: &mut [u8],
    kh: &[H],
    kv: &[V],
    finish: &(impl Fn(V) -> u8 + Sync),
    post: &(impl Fn(usize, &mut [u8]) + Sync),
) {
    band(b, index, out_band, kh, kv, finish, post)
}

/// Band `index` of [`separable`]: the horizontal pass of the rows it needs into a
/// buffer, then the vertical pass into `out_band`. Kernels of 3, 5 and 7 taps (every
/// default) run each pass in one sweep with the taps unrolled.
#[inline(always)]
fn band<H: Acc, V: Acc + From<H>>(
    b: &Band,
    index: usize,
    out_band: &mut [u8],
    kh: &[H],
    kv: &[V],
    finish: &(impl Fn(V) -> u8 + Sync),
    post: &(impl Fn(usize, &mut [u8]) + Sync),
) {
    let stride = b.w * b.cn;
    let (kx, ky) = (kh.len(), kv.len());
    let (ax, ay) = (kx / 2, ky / 2);
    let y0 = index * b.rows_per_band;
    let rows = out_band.len() / stride;
    let mut hbuf = vec![H::default(); (rows + ky - 1) * stride];
    for (i, hrow) in hbuf.chunks_exact_mut(stride).enumerate() {
        let sy = par::reflect101(y0 as isize + i as isize - ay as isize, b.h);
        hfilter(
            &b.src[sy * stride..(sy + 1) * stride],
            hrow,
            b.w,
            b.cn,
            kh,
            ax,
        );
    }
    let mut acc = vec![V::default(); stride];
    for (r, out_row) in out_band.chunks_exact_mut(stride).enumerate() {
        let window = &hbuf[r * stride..(r + ky) * stride];
        match ky {
            3 => vfilter_n::<3, H, V>(window, stride, kv, out_row, finish),
            5 => vfilter_n::<5, H, V>(window, stride, kv, out_row, finish),
            7 => vfilter_n::<7, H, V>(window, stride, kv, out_row, finish),
            _ => {
                acc.iter_mut().for_each(|a| *a = V::default());
                for (hrow, &k) in window.chunks_exact(stride).zip(kv) {
                    for (a, &s) in acc.iter_mut().zip(hrow) {
                        *a = *a + k * V::from(s);
                    }
                }
                for (o, &a) in out_row.iter_mut().zip(&acc) {
                    *o = finish(a);
                }
            }
        }
        post(y0 + r, out_row);
    }
}

/// The vertical pass of one output row in one sweep: `window` holds the `N` rows of
/// horizontal sums it needs, `stride` samples each.
#[inline(always)]
fn vfilter_n<const N: usize, H: Acc, V: Acc + From<H>>(
    window: &[H],
    stride: usize,
    kv: &[V],
    out: &mut [u8],
    finish: &impl Fn(V) -> u8,
) {
    let k: [V; N] = std::array::from_fn(|i| kv[i]);
    let rows: [&[H]; N] = std::array::from_fn(|i| &window[i * stride..][..out.len()]);
    for (x, o) in out.iter_mut().enumerate() {
        let mut a = V::default();
        for i in 0..N {
            a = a + k[i] * V::from(rows[i][x]);
        }
        *o = finish(a);
    }
}

/// One row of the horizontal pass, reflect-101 at both ends (inlined into [`band`], so
/// that it is built for AVX2 with it).
#[inline(always)]
fn hfilter<H: Acc>(src: &[u8], out: &mut [H], w: usize, cn: usize, k: &[H], anchor: usize) {
    let kn = k.len();
    let right = kn - 1 - anchor;
    let border = |x: usize, out: &mut [H]| {
        for c in 0..cn {
            let mut s = H::default();
            for (i, &kk) in k.iter().enumerate() {
                let sx = par::reflect101(x as isize + i as isize - anchor as isize, w);
                s = s + kk * H::from(src[sx * cn + c]);
            }
            out[x * cn + c] = s;
        }
    };
    if w < kn {
        (0..w).for_each(|x| border(x, out));
        return;
    }
    let (lo, hi) = (anchor * cn, (w - right) * cn);
    let inner = &mut out[lo..hi];
    match kn {
        3 => hfilter_n::<3, H>(src, inner, cn, k),
        5 => hfilter_n::<5, H>(src, inner, cn, k),
        7 => hfilter_n::<7, H>(src, inner, cn, k),
        _ => {
            inner.iter_mut().for_each(|o| *o = H::default());
            for (i, &kk) in k.iter().enumerate() {
                let s = &src[i * cn..i * cn + (hi - lo)];
                for (o, &v) in inner.iter_mut().zip(s) {
                    *o = *o + kk * H::from(v);
                }
            }
        }
    }
    (0..anchor).chain(w - right..w).for_each(|x| border(x, out));
}

/// The inner part of a horizontal row in one sweep, `N` taps unrolled.
#[inline(always)]
fn hfilter_n<const N: usize, H: Acc>(src: &[u8], inner: &mut [H], cn: usize, k: &[H]) {
    let k: [H; N] = std::array::from_fn(|i| k[i]);
    let taps: [&[u8]; N] = std::array::from_fn(|i| &src[i * cn..][..inner.len()]);
    for (x, o) in inner.iter_mut().enumerate() {
        let mut a = H::default();
        for i in 0..N {
            a = a + k[i] * H::from(taps[i][x]);
        }
        *o = a;
    }
}

/// OpenCV's Gaussian kernel in double precision (getGaussianKernelBitExact).
fn gaussian_kernel(n: usize, sigma: f64) -> Vec<f64> {
    if sigma <= 0.0 {
        match n {
            1 => return vec![1.0],
            3 => return vec![0.25, 0.5, 0.25],
            5 => return vec![0.0625, 0.25, 0.375, 0.25, 0.0625],
            7 => {
                return vec![
                    0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125,
                ]
            }
            _ => {}
        }
    }
    let sigma = if sigma > 0.0 {
        sigma
    } else {
        (n as f64).mul_add(0.15, 0.35)
    };
    let scale2 = -0.125 / (sigma * sigma);
    let half = (n - 1) / 2;
    let vals: Vec<f64> = (0..half)
        .map(|i| {
            let x = 1 - n as i64 + 2 * i as i64;
            ((x * x) as f64 * scale2).exp()
        })
        .collect();
    let sum = vals.iter().sum::<f64>() * 2.0 + 1.0;
    let mul = 1.0 / sum;
    let mut k = vec![0.0; n];
    for (i, v) in vals.iter().enumerate() {
        k[i] = v * mul;
        k[n - 1 - i] = v * mul;
    }
    k[half] = mul;
    k
}

/// The kernel in 8 fractional bits with OpenCV's error diffusion, summing to exactly 256.
pub(crate) fn gaussian_kernel_q8(n: usize, sigma: f64) -> Vec<u32> {
    let k = gaussian_kernel(n, sigma);
    let half = n / 2;
    let mut out = vec![0i64; n];
    let (mut err, mut sum) = (0.0f64, 0i64);
    for i in 0..half {
        let adj = k[i] * 256.0 + err;
        let v = adj.round_ties_even() as i64;
        err = adj - v as f64;
        out[i] = v;
        out[n - 1 - i] = v;
        sum += v;
    }
    out[half] = 256 - 2 * sum;
    out.into_iter().map(|v| v.max(0) as u32).collect()
}

/// Kernel size OpenCV derives from sigma for 8-bit images.
pub fn ksize_for_sigma(sigma: f64) -> u32 {
    ((sigma * 6.0 + 1.0).round_ties_even() as u32) | 1
}

/// The kernel size a blur uses: `ksize`, or for 0 the one OpenCV derives from sigma.
pub fn gaussian_ksize(ksize: u32, sigma: f64) -> u32 {
    if ksize == 0 {
        ksize_for_sigma(sigma)
    } else {
        ksize
    }
}

/// Gaussian blur of every channel, bit-exact with OpenCV's 8-bit GaussianBlur.
pub fn gaussian(img: &Image, ksize: u32, sigma: f64) -> Image {
    let out = gaussian_then(img, ksize, sigma, |_, _| {});
    Image::from_u8(img.width, img.height, img.channels, out)
}

/// [`gaussian`]'s samples, with `post(y, row)` run on each blurred row as it is made
/// (see [`separable_then`]).
fn gaussian_then(
    img: &Image,
    ksize: u32,
    sigma: f64,
    post: impl Fn(usize, &mut [u8]) + Sync + Send,
) -> Vec<u8> {
    let n = gaussian_ksize(ksize, sigma) as usize;
    let k = gaussian_kernel_q8(n, sigma);
    // Horizontal sums fit 16 bits (255 * 256). When the kernel values share a factor
    // 2^s, the vertical sum fits 16 bits too and the fast path is exact.
    let tz = k
        .iter()
        .map(|v| v.trailing_zeros())
        .min()
        .unwrap_or(0)
        .min(8);
    let reduced: Vec<u16> = k.iter().map(|v| (v >> tz) as u16).collect();
    if 255u64 * (256 >> tz) * (256 >> tz) <= u16::MAX as u64 {
        let shift = 16 - 2 * tz;
        let round = 1u16 << (shift - 1);
        separable_then::<u16, u16>(
            img,
            &reduced,
            &reduced,
            move |v| ((v as u32 + round as u32) >> shift) as u8,
            post,
        )
    } else {
        let kh: Vec<u16> = k.iter().map(|&v| v as u16).collect();
        separable_then::<u16, u32>(
            img,
            &kh,
            &k,
            |v| ((v + (1 << 15)) >> 16).min(255) as u8,
            post,
        )
    }
}

/// OpenCV 5 divides the 16-bit window sums of `blur` (area at most 256) by a 32-bit
/// fixed-point reciprocal: `((s + delta) * scale) >> 32`. Returns `(delta, scale)`.
///
/// Measured against OpenCV 5.0 on photo crops and noise for every ksize 2 to 16 (and
/// checked for every possible sum): this equals rounding half up for areas that are not
/// powers of two, and `(s + area/2 + 1) / area` for those that are. The 16-bit
/// reciprocal of OpenCV 4 (`>> 16`) differs on up to 0.5% of samples of real photos.
pub(crate) fn box_fixed_point(area: u32) -> (u32, u32) {
    if area == 1 {
        // (s + 1) * (2^32 - 1) >> 32 == s for every 8-bit s.
        return (1, u32::MAX);
    }
    let scalef = 4294967296.0 / area as f64;
    let mut div_scale = scalef.floor() as u32;
    let mut div_delta = area / 2;
    if scalef - (div_scale as f64) < 0.5 {
        div_delta += 1;
    } else {
        div_scale += 1;
    }
    (div_delta, div_scale)
}

/// OpenCV 5's division of a box's window sum by its `area` (at most 256), through
/// [`box_fixed_point`].
pub(crate) fn box_division(area: u32) -> impl Fn(u32) -> u8 + Copy + Send + Sync {
    let (delta, scale) = box_fixed_point(area);
    move |s| ((u64::from(s + delta) * u64::from(scale)) >> 32) as u8
}

/// Normalised box filter, bit-exact with OpenCV's 8-bit `blur`: by running sums
/// ([`box_filter`]) up to ksize 16, by the separable convolution above that.
pub fn box_blur(img: &Image, ksize: u32) -> Image {
    let (w, h, cn) = (
        img.width as usize,
        img.height as usize,
        img.channels as usize,
    );
    match box_filter::box_blur_u8(img.u8_data(), w, h, cn, ksize as usize) {
        Some(out) => Image::from_u8(img.width, img.height, img.channels, out),
        None => box_blur_separable(img, ksize),
    }
}

/// [`box_blur`] through [`separable`]: for windows over 16, and the reference the
/// running sums are tested against.
pub(crate) fn box_blur_separable(img: &Image, ksize: u32) -> Image {
    let k = ksize as usize;
    let ones16 = vec![1u16; k];
    let area = (k * k) as u32;
    let out = if area <= 256 {
        let divide = box_division(area);
        separable::<u16, u16>(img, &ones16, &ones16, move |s| divide(u32::from(s)))
    } else {
        let ones32 = vec![1u32; k];
        let scale = 1.0 / area as f64;
        separable::<u16, u32>(img, &ones16, &ones32, move |s| {
            (s as f64 * scale).round_ties_even().min(255.0) as u8
        })
    };
    Image::from_u8(img.width, img.height, img.channels, out)
}

/// Unsharp mask on colour channels: v*(1+amount) - gaussian(v)*amount, in single
/// precision as OpenCV's addWeighted; alpha kept.
pub fn sharpen(img: &Image, sigma: f64, amount: f64) -> Image {
    let (a, b) = ((1.0 + amount) as f32, (-amount) as f32);
    // A whole amount (the default 1: 2v - blur) makes the single-precision sum an exact
    // integer, so 16-bit integer arithmetic gives the same bytes, twice as wide a step.
    let whole = amount.fract() == 0.0 && amount <= 10.0;
    let cn = img.channels as usize;
    let src = img.u8_data();
    let stride = img.width as usize * cn;
    // Alpha (the last sample of each pixel of 2 or 4 channels) is kept: marked in a
    // block of 64 samples, a whole number of pixels.
    let alpha: [u8; 64] = std::array::from_fn(|i| {
        if cn.is_multiple_of(2) && i % cn == cn - 1 {
            0xFF
        } else {
            0
        }
    });
    // Each blurred row is mixed with its source row as soon as it is made, in cache:
    // no image-sized blurred buffer, one pass over memory fewer.
    let out = gaussian_then(img, 0, sigma, |y, row| {
        let s = &src[y * stride..(y + 1) * stride];
        if whole {
            sharpen_mix_whole(row, s, a as i16, b as i16, &alpha);
        } else {
            sharpen_mix(row, s, a, b, &alpha);
        }
    });
    Image::from_u8(img.width, img.height, img.channels, out)
}

/// Runs `mix(sample, blurred)` over `o` (which holds the blurred samples), in blocks
/// of 64 samples where `alpha` marks the samples copied from `s` unchanged (a blend, so
/// that the loop vectorises; a separate pass to put alpha back took a fifth of a
/// 2-channel sharpen).
#[inline(always)]
fn mix_keeping_alpha(o: &mut [u8], s: &[u8], alpha: &[u8; 64], mix: impl Fn(u8, u8) -> u8) {
    let s = &s[..o.len()];
    let mut oc = o.chunks_exact_mut(64);
    let mut sc = s.chunks_exact(64);
    for (o, s) in (&mut oc).zip(&mut sc) {
        for i in 0..64 {
            o[i] = (mix(s[i], o[i]) & !alpha[i]) | (s[i] & alpha[i]);
        }
    }
    let (o, s) = (oc.into_remainder(), sc.remainder());
    for i in 0..o.len() {
        o[i] = (mix(s[i], o[i]) & !alpha[i]) | (s[i] & alpha[i]);
    }
}

par::avx512_dispatch! {
    /// `o = s * a + o * b` (`o` holds the blurred samples), rounded half to even and
    /// saturated, in single precision as OpenCV's addWeighted; the samples `alpha`
    /// marks are `s`'s.
    fn sharpen_mix(o: &mut [u8], s: &[u8], a: f32, b: f32, alpha: &[u8; 64]) {
        mix_keeping_alpha(o, s, alpha, |s, bv| {
            par::round_to_u8(s as f32 * a + bv as f32 * b)
        })
    }
}

par::avx512_dispatch! {
    /// [`sharpen_mix`] for whole weights `a` and `b` (|a| <= 11, |b| <= 10): the sum in
    /// 16 bits, saturated.
    fn sharpen_mix_whole(o: &mut [u8], s: &[u8], a: i16, b: i16, alpha: &[u8; 64]) {
        mix_keeping_alpha(o, s, alpha, |s, bv| {
            (s as i16 * a + bv as i16 * b).clamp(0, 255) as u8
        })
    }
}

/// 3x3 Sobel derivatives of one row: `dx` and `dy` for all `w * cn` samples.
#[allow(clippy::too_many_arguments)]
pub fn sobel_row(
    src: &[u8],
    w: usize,
    h: usize,
    cn: usize,
    y: usize,
    border: fn(isize, usize) -> usize,
    dx: &mut [i16],
    dy: &mut [i16],
) {
    let stride = w * cn;
    let row = |yy: isize| {
        let sy = border(yy, h);
        &src[sy * stride..(sy + 1) * stride]
    };
    let (up, mid, down) = (row(y as isize - 1), row(y as isize), row(y as isize + 1));
    let edge = |x: usize, dx: &mut [i16], dy: &mut [i16]| {
        let xl = border(x as isize - 1, w) * cn;
        let xr = border(x as isize + 1, w) * cn;
        let xc = x * cn;
        for c in 0..cn {
            let p = |r: &[u8], i: usize| r[i + c] as i16;
            dx[xc + c] = (p(up, xr) - p(up, xl))
                + 2 * (p(mid, xr) - p(mid, xl))
                + (p(down, xr) - p(down, xl));
            dy[xc + c] = (p(down, xl) + 2 * p(down, xc) + p(down, xr))
                - (p(up, xl) + 2 * p(up, xc) + p(up, xr));
        }
    };
    if w < 3 {
        (0..w).for_each(|x| edge(x, dx, dy));
        return;
    }
    sobel_interior(
        up,
        mid,
        down,
        cn,
        &mut dx[cn..stride - cn],
        &mut dy[cn..stride - cn],
    );
    edge(0, dx, dy);
    edge(w - 1, dx, dy);
}

par::avx2_dispatch! {
    /// The Sobel sums for samples 1..w-1 of a row, as straight slice arithmetic.
    fn sobel_interior(up: &[u8], mid: &[u8], down: &[u8], cn: usize, dx: &mut [i16], dy: &mut [i16]) {
        let n = dx.len().min(dy.len());
        let (ul, ur, uc) = (&up[..n], &up[2 * cn..2 * cn + n], &up[cn..cn + n]);
        let (ml, mr) = (&mid[..n], &mid[2 * cn..2 * cn + n]);
        let (dl, dr, dc) = (&down[..n], &down[2 * cn..2 * cn + n], &down[cn..cn + n]);
        let (dx, dy) = (&mut dx[..n], &mut dy[..n]);
        for i in 0..n {
            let (ul, ur, uc) = (ul[i] as i16, ur[i] as i16, uc[i] as i16);
            let (dl, dr, dc) = (dl[i] as i16, dr[i] as i16, dc[i] as i16);
            dx[i] = (ur - ul) + 2 * (mr[i] as i16 - ml[i] as i16) + (dr - dl);
            dy[i] = (dl + 2 * dc + dr) - (ul + 2 * uc + ur);
        }
    }
}

par::avx2_dispatch! {
    /// `out = |d|`, saturated to 255, as `cv2.convertScaleAbs`.
    fn sobel_abs(out: &mut [u8], d: &[i16]) {
        for (o, &v) in out.iter_mut().zip(d) {
            *o = v.unsigned_abs().min(255) as u8;
        }
    }
}

par::avx2_dispatch! {
    /// `out = |dx| + |dy|`, each saturated to 255 and their sum too, as `cv2.add` of two
    /// `convertScaleAbs`.
    fn sobel_abs_sum(out: &mut [u8], dx: &[i16], dy: &[i16]) {
        for ((o, &x), &y) in out.iter_mut().zip(dx).zip(dy) {
            let (ax, ay) = (x.unsigned_abs().min(255) as u8, y.unsigned_abs().min(255) as u8);
            *o = ax.saturating_add(ay);
        }
    }
}

/// Sobel gradient magnitude per colour channel, saturated to 8 bits; alpha kept.
pub fn sobel(img: &Image, dir: super::SobelDir) -> Image {
    use super::SobelDir;
    let (w, h, cn) = (
        img.width as usize,
        img.height as usize,
        img.channels as usize,
    );
    let colors = img.color_channels();
    let src = img.u8_data();
    let stride = w * cn;
    // Not zeroed first: a one-thread memset of the whole output that the bands then
    // overwrite (RGBA at two threads scaled 1.72x with it).
    let fill = |out: &mut [u8]| {
        par::bands(out, stride, |y0, band| {
            let (mut dx, mut dy) = (vec![0i16; stride], vec![0i16; stride]);
            for (r, row) in band.chunks_exact_mut(stride).enumerate() {
                sobel_row(src, w, h, cn, y0 + r, par::reflect101, &mut dx, &mut dy);
                match dir {
                    SobelDir::X => sobel_abs(row, &dx),
                    SobelDir::Y => sobel_abs(row, &dy),
                    SobelDir::Xy => sobel_abs_sum(row, &dx, &dy),
                }
                if colors < cn {
                    let srow = &src[(y0 + r) * stride..(y0 + r + 1) * stride];
                    for (o, s) in row.chunks_exact_mut(cn).zip(srow.chunks_exact(cn)) {
                        o[cn - 1] = s[cn - 1];
                    }
                }
            }
        });
    };
    // SAFETY: every sample of every row is written by `sobel_abs` or `sobel_abs_sum`
    // (the whole row of `dx`/`dy`), alpha after that.
    let out = unsafe { par::uninit(src.len(), fill) };
    Image::from_u8(img.width, img.height, img.channels, out)
}

/// Erosion (minimum) or dilation (maximum) over a `ksize` square, every channel;
/// pixels outside the image are ignored, as OpenCV's default border value does.
pub fn morph(img: &Image, ksize: u32, iterations: u32, dilate: bool) -> Image {
    let mut out = morph_once(img, ksize as usize, dilate);
    for _ in 1..iterations {
        out = morph_once(&out, ksize as usize, dilate);
    }
    out
}

fn morph_once(img: &Image, k: usize, dilate: bool) -> Image {
    let (w, h, cn) = (
        img.width as usize,
        img.height as usize,
        img.channels as usize,
    );
    let src = img.u8_data();
    let stride = w * cn;
    if k == 3 && w >= 2 {
        // The 3x3 window vertically first, straight from the image rows (two output
        // rows at a time share the extremum of their middle two rows), into a row that
        // stays in the first-level cache, then across it: no image-sized or band-sized
        // intermediate is written and read back.
        let row = |y: usize| &src[y * stride..(y + 1) * stride];
        let across3 = |out: &mut [u8], v: &[u8]| {
            let n = stride - 2 * cn;
            fold3(
                &mut out[cn..cn + n],
                &v[..n],
                &v[cn..cn + n],
                &v[2 * cn..],
                dilate,
            );
            fold3(&mut out[..cn], &v[..cn], &v[..cn], &v[cn..2 * cn], dilate);
            let (l, m) = (stride - cn, stride - 2 * cn);
            fold3(&mut out[l..], &v[m..l], &v[l..], &v[l..], dilate);
        };
        let fill = |out: &mut [u8]| {
            par::bands_by(out, stride, 2, |y0, band| {
                let (mut v0, mut v1) = (vec![0u8; stride], vec![0u8; stride]);
                let n = band.len() / stride;
                let mut pairs = band.chunks_exact_mut(2 * stride);
                for (p, pair) in pairs.by_ref().enumerate() {
                    // Rows y and y + 1; at an image edge the row beyond is ignored
                    // (folded as the edge row itself).
                    let y = y0 + 2 * p;
                    let (o0, o1) = pair.split_at_mut(stride);
                    let (above, below) = (row(y.saturating_sub(1)), row((y + 2).min(h - 1)));
                    fold_pair(&mut v0, &mut v1, above, row(y), row(y + 1), below, dilate);
                    across3(o0, &v0);
                    across3(o1, &v1);
                }
                let last = pairs.into_remainder();
                if !last.is_empty() {
                    let y = y0 + n - 1;
                    let (above, below) = (row(y.saturating_sub(1)), row((y + 1).min(h - 1)));
                    fold3(&mut v0, above, row(y), below, dilate);
                    across3(last, &v0);
                }
            });
        };
        // SAFETY: every band writes each of its rows, pairs and the last odd row, each
        // whole by `across3`'s three folds.
        let out = unsafe { par::uninit(src.len(), fill) };
        return Image::from_u8(img.width, img.height, img.channels, out);
    }
    let a = k / 2;
    // Horizontal pass of source row `sy` into `row`.
    let across = |sy: usize, row: &mut [u8]| {
        let s = &src[sy * stride..(sy + 1) * stride];
        row.copy_from_slice(s);
        for i in 0..k {
            if i == a {
                continue;
            }
            // Window column i reads x + i - a; pixels outside the image are ignored.
            let off = i as isize - a as isize;
            let (lo, hi) = (
                (-off).max(0) as usize,
                (w as isize - off).min(w as isize).max(0) as usize,
            );
            if lo >= hi {
                continue;
            }
            let dst = &mut row[lo * cn..hi * cn];
            let from = &s[(lo as isize + off) as usize * cn..(hi as isize + off) as usize * cn];
            fold(dst, from, dilate);
        }
    };
    // Each band folds the rows of its windows from a scratch of its own rows' horizontal
    // passes (and the few beyond its edges), which stays in the cache: no image-sized
    // intermediate is written and read back.
    let fill = |out: &mut [u8]| {
        par::bands_by(out, stride, 1, |y0, band| {
            let n = band.len() / stride;
            let (ylo, yhi) = (y0.saturating_sub(a), (y0 + n + a).min(h));
            let mut rows = vec![0u8; (yhi - ylo) * stride];
            for (i, row) in rows.chunks_exact_mut(stride).enumerate() {
                across(ylo + i, row);
            }
            let row_of = |sy: usize| &rows[(sy - ylo) * stride..(sy - ylo + 1) * stride];
            for (r, row) in band.chunks_exact_mut(stride).enumerate() {
                let y = y0 + r;
                row.copy_from_slice(row_of(y));
                for sy in y.saturating_sub(a)..(y + k - a).min(h) {
                    if sy != y {
                        fold(row, row_of(sy), dilate);
                    }
                }
            }
        });
    };
    // SAFETY: every band writes each of its rows, a copy and folds.
    let out = unsafe { par::uninit(src.len(), fill) };
    Image::from_u8(img.width, img.height, img.channels, out)
}

par::avx2_dispatch! {
    /// `dst = max(dst, src)` (dilate) or `min` (erode), element-wise.
    fn fold(dst: &mut [u8], src: &[u8], dilate: bool) {
        if dilate {
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = (*d).max(s));
        } else {
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = (*d).min(s));
        }
    }
}

par::avx512_dispatch! {
    /// `dst = max(a, b, c)` (dilate) or `min`, element-wise.
    fn fold3(dst: &mut [u8], a: &[u8], b: &[u8], c: &[u8], dilate: bool) {
        let n = dst.len();
        let (a, b, c) = (&a[..n], &b[..n], &c[..n]);
        if dilate {
            for i in 0..n {
                dst[i] = a[i].max(b[i]).max(c[i]);
            }
        } else {
            for i in 0..n {
                dst[i] = a[i].min(b[i]).min(c[i]);
            }
        }
    }
}

par::avx512_dispatch! {
    /// `o0 = max(a, b, c)` and `o1 = max(b, c, d)` (dilate) or `min`, element-wise,
    /// sharing `max(b, c)`.
    fn fold_pair(o0: &mut [u8], o1: &mut [u8], a: &[u8], b: &[u8], c: &[u8], d: &[u8], dilate: bool) {
        let n = o0.len();
        let (o1, a, b, c, d) = (&mut o1[..n], &a[..n], &b[..n], &c[..n], &d[..n]);
        if dilate {
            for i in 0..n {
                let m = b[i].max(c[i]);
                o0[i] = m.max(a[i]);
                o1[i] = m.max(d[i]);
            }
        } else {
            for i in 0..n {
                let m = b[i].min(c[i]);
                o0[i] = m.min(a[i]);
                o1[i] = m.min(d[i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What OpenCV 5's `blur` gives for a window sum `s` over `area` samples, as
    /// measured (scripts: the closing note of this change): round half up, except for
    /// powers of two, where a sum one below the half rounds up too.
    fn opencv_box_rounding(s: u32, area: u32) -> u32 {
        if area.is_power_of_two() {
            (s + area / 2 + 1) / area
        } else {
            (s + area / 2) / area
        }
    }

    #[test]
    fn small_rounding_equals_round_ties_even() {
        let mut t = -3000.0f32;
        while t <= 3000.0 {
            for x in [
                t,
                t + 0.5,
                t - 0.5,
                t + 0.25,
                t + 0.499_999_97,
                t + 0.500_000_06,
            ] {
                assert_eq!(par::round_ties_even_small(x), x.round_ties_even(), "{x}");
                let clamped = x.round_ties_even().clamp(0.0, 255.0) as u8;
                assert_eq!(par::round_to_u8(x), clamped, "{x}");
            }
            t += 0.125;
        }
        // Every value sharpen's mix can produce, for amounts across the range.
        for amount in [0.0f64, 0.1, 0.37, 0.6, 1.0, 2.5, 7.3, 10.0] {
            let (a, b) = ((1.0 + amount) as f32, (-amount) as f32);
            for o in 0..=255u8 {
                for bv in 0..=255u8 {
                    let t = o as f32 * a + bv as f32 * b;
                    assert_eq!(par::round_ties_even_small(t), t.round_ties_even(), "{t}");
                    let clamped = t.round_ties_even().clamp(0.0, 255.0) as u8;
                    assert_eq!(par::round_to_u8(t), clamped, "{t}");
                }
            }
        }
    }

    #[test]
    fn box_reciprocal_rounds_every_sum_as_opencv_5() {
        for k in 1..=16u32 {
            let area = k * k;
            let (delta, scale) = box_fixed_point(area);
            for s in 0..=255 * area {
                let ours = ((u64::from(s + delta) * u64::from(scale)) >> 32) as u32;
                let want = if area == 1 {
                    s
                } else {
                    opencv_box_rounding(s, area)
                };
                assert_eq!(ours, want, "ksize {k}, sum {s}");
            }
        }
    }

    #[test]
    fn default_gaussian_kernel_is_binomial() {
        assert_eq!(gaussian_kernel_q8(5, 0.0), vec![16, 64, 96, 64, 16]);
        for (n, s) in [(7usize, 1.0), (9, 2.0), (5, 0.8), (3, 5.0)] {
            assert_eq!(
                gaussian_kernel_q8(n, s).iter().sum::<u32>(),
                256,
                "n={n} sigma={s}"
            );
        }
    }

    #[test]
    fn blur_of_a_flat_image_is_flat() {
        let img = Image::from_u8(9, 7, 3, vec![77; 9 * 7 * 3]);
        for (k, s) in [(5, 0.0), (0, 2.0), (3, 0.0), (11, 0.0)] {
            assert!(gaussian(&img, k, s).u8_data().iter().all(|&v| v == 77));
        }
        assert!(box_blur(&img, 17).u8_data().iter().all(|&v| v == 77));
        assert!(box_blur(&img, 4).u8_data().iter().all(|&v| v == 77));
    }

    #[test]
    fn parallel_bands_equal_one_band() {
        // A tall image spans many bands; compare against the same image filtered in a 1-thread pool.
        let (w, h) = (37usize, 400usize);
        let data: Vec<u8> = (0..w * h * 3).map(|i| (i * 7919 % 251) as u8).collect();
        let img = Image::from_u8(w as u32, h as u32, 3, data);
        let one = par::test_pool(1);
        let many = par::test_pool(4);
        let a = one.install(|| gaussian(&img, 5, 0.0));
        let b = many.install(|| gaussian(&img, 5, 0.0));
        assert_eq!(a, b);
    }

    /// Erosion or dilation by the definition: every window sample, those outside the
    /// image skipped.
    fn naive_morph(data: &[u8], w: usize, h: usize, cn: usize, k: usize, dilate: bool) -> Vec<u8> {
        let a = (k / 2) as isize;
        let mut out = vec![0u8; data.len()];
        for y in 0..h {
            for x in 0..w {
                for c in 0..cn {
                    let mut v = if dilate { 0u8 } else { 255u8 };
                    for dy in -a..=a {
                        for dx in -a..=a {
                            let (sy, sx) = (y as isize + dy, x as isize + dx);
                            if sy < 0 || sx < 0 || sy >= h as isize || sx >= w as isize {
                                continue;
                            }
                            let s = data[(sy as usize * w + sx as usize) * cn + c];
                            v = if dilate { v.max(s) } else { v.min(s) };
                        }
                    }
                    out[(y * w + x) * cn + c] = v;
                }
            }
        }
        out
    }

    fn noise(len: usize, mut seed: u32) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn erode_and_dilate_equal_a_naive_window_across_bands() {
        // Rows of 9,000 samples: a band is 30 rows, so 101 rows make four bands, the
        // last with an odd row.
        let (w, h, cn) = (3000usize, 101usize, 3usize);
        let data = noise(w * h * cn, 3);
        let img = Image::from_u8(w as u32, h as u32, cn as u8, data.clone());
        for k in [3usize, 5] {
            for dilate in [false, true] {
                let got = morph_once(&img, k, dilate);
                let want = naive_morph(&data, w, h, cn, k, dilate);
                assert!(got.u8_data() == want.as_slice(), "k {k}, dilate {dilate}");
            }
        }
    }

    #[test]
    fn erode_and_dilate_equal_a_naive_window_at_awkward_sizes() {
        for cn in 1..=4usize {
            for (w, h) in [
                (1usize, 1usize),
                (1, 4),
                (2, 1),
                (2, 2),
                (3, 3),
                (5, 2),
                (33, 7),
                (70, 5),
            ] {
                let data = noise(w * h * cn, (w * 31 + h * 7 + cn) as u32);
                let img = Image::from_u8(w as u32, h as u32, cn as u8, data.clone());
                for k in [1usize, 3, 5] {
                    for dilate in [false, true] {
                        let got = morph_once(&img, k, dilate);
                        let want = naive_morph(&data, w, h, cn, k, dilate);
                        assert!(
                            got.u8_data() == want.as_slice(),
                            "{w}x{h}x{cn}, k {k}, dilate {dilate}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn sharpen_mixes_colour_samples_and_keeps_alpha_at_every_channel_count() {
        let mut seed = 17u32;
        for cn in 1..=4u8 {
            for (w, h) in [(1u32, 1u32), (37, 5), (200, 3)] {
                let data: Vec<u8> = (0..w * h * cn as u32)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        (seed >> 24) as u8
                    })
                    .collect();
                let img = Image::from_u8(w, h, cn, data.clone());
                let bl = gaussian(&img, 0, 1.0);
                // A fractional amount (single precision), and whole ones (16-bit integers).
                for amount in [1.5f64, 1.0, 3.0, 10.0] {
                    let got = sharpen(&img, 1.0, amount);
                    let (wa, wb) = ((1.0 + amount) as f32, (-amount) as f32);
                    for (i, (&g, (&s, &b))) in got
                        .u8_data()
                        .iter()
                        .zip(data.iter().zip(bl.u8_data()))
                        .enumerate()
                    {
                        let alpha = (cn == 2 || cn == 4) && i % cn as usize == cn as usize - 1;
                        let want = if alpha {
                            s
                        } else {
                            (s as f32 * wa + b as f32 * wb)
                                .round_ties_even()
                                .clamp(0.0, 255.0) as u8
                        };
                        assert_eq!(
                            g, want,
                            "{cn} channels, {w}x{h}, amount {amount}, sample {i}"
                        );
                    }
                }
            }
        }
    }
}
