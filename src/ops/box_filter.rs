//! The normalised box filter (`box_blur`) by running column sums.
//!
//! The general separable convolution of `filter.rs` multiplies every tap by its weight
//! and divides each sum with a 64-bit fixed-point product; for a box every weight is 1,
//! so this module only adds. Each band keeps one column sum per sample, the sum of the
//! window's k rows: moving down a row adds the entering image row and subtracts the
//! leaving one (read k rows ago, still in the cache), and each output sample is the
//! sum of k column sums, `cn` apart, divided by the area. No row of horizontal sums is
//! written and read back.
//! The division is a 16-bit multiply-high chosen and checked against OpenCV's 32-bit
//! reciprocal for every possible sum, so results stay bit-exact. Windows whose sums
//! do not fit 16 bits (ksize above 16) keep the separable path.

use super::{filter, par};
use rayon::prelude::*;

/// Division of a window sum by the area as `((s + add) * mul) >> 16 >> shift`, in 16-bit
/// lanes; equal to OpenCV's `((s + delta) * scale) >> 32` for every sum it is built for.
#[derive(Clone, Copy, Debug)]
struct Div16 {
    add: u16,
    mul: u16,
    shift: u32,
}

impl Div16 {
    #[inline(always)]
    fn apply(self, s: u16) -> u8 {
        // The high half as u16 before the shift, so that it is one `pmulhuw`.
        let high = ((s.wrapping_add(self.add) as u32 * self.mul as u32) >> 16) as u16;
        (high >> self.shift) as u8
    }

    /// The most precise 16-bit form of `reference` (a division of sums up to `max_sum`
    /// by `area`, rounded as `floor((s + add) / area)`), checked for every sum; `None`
    /// when no form fits 16 bits.
    fn find(area: u32, max_sum: u32, reference: impl Fn(u32) -> u8) -> Option<Div16> {
        let first = (0..=max_sum).find(|&s| reference(s) >= 1)?;
        let add = area.checked_sub(first)?;
        if max_sum + add > u16::MAX as u32 {
            return None;
        }
        (0..=16).rev().find_map(|shift| {
            let mul = (1u64 << (16 + shift)).div_ceil(area as u64);
            let d = Div16 {
                add: add as u16,
                mul: u16::try_from(mul).ok()?,
                shift,
            };
            (0..=max_sum)
                .all(|s| d.apply(s as u16) == reference(s))
                .then_some(d)
        })
    }
}

/// The box filter of `ksize` over 8-bit samples, bit-exact with OpenCV's `blur` (border
/// reflect-101, anchor `ksize / 2`); `None` for a window over 16, or one whose division
/// has no exact 16-bit form (ksize 14).
pub(crate) fn box_blur_u8(
    src: &[u8],
    w: usize,
    h: usize,
    cn: usize,
    ksize: usize,
) -> Option<Vec<u8>> {
    let area = (ksize * ksize) as u32;
    if !(1..=16).contains(&ksize) {
        return None;
    }
    if ksize == 1 || src.is_empty() {
        // A 1x1 mean is the image itself.
        return Some(src.to_vec());
    }
    let div = Div16::find(area, 255 * area, filter::box_division(area))?;
    let stride = w * cn;
    let rows_per_band = (par::TASK_SAMPLES / stride).max(64);
    let rows = Rows {
        src,
        w,
        h,
        cn,
        k: ksize,
    };
    let fill = |out: &mut [u8]| {
        out.par_chunks_mut(rows_per_band * stride)
            .enumerate()
            .for_each(|(i, band)| rows.band(i * rows_per_band, band, div))
    };
    // SAFETY: the bands cover the output in whole rows, and `Rows::band` writes every
    // sample of each of its rows (`window_divide` over the whole row).
    Some(unsafe { par::uninit(src.len(), fill) })
}

/// The image and window one band reads.
struct Rows<'a> {
    src: &'a [u8],
    w: usize,
    h: usize,
    cn: usize,
    k: usize,
}

impl Rows<'_> {
    /// Logical row `y`, reflected into the image.
    fn row(&self, y: isize) -> &[u8] {
        let stride = self.w * self.cn;
        let sy = par::reflect101(y, self.h);
        &self.src[sy * stride..(sy + 1) * stride]
    }

    /// Writes the output rows of `band`, the first of which is image row `y0`.
    fn band(&self, y0: usize, band: &mut [u8], div: Div16) {
        let (k, cn, w) = (self.k, self.cn, self.w);
        let stride = w * cn;
        let above = (k / 2) as isize;
        // The sums of the window's k rows, sample by sample, with the `k / 2` pixels
        // before the row and the `k - 1 - k / 2` after it reflected in: each output
        // sample is then the sum of k of them, `cn` apart.
        let mut column = vec![0u16; (w + k - 1) * cn];
        let interior = (k / 2) * cn..(k / 2) * cn + stride;
        for j in 0..k as isize {
            add_row(
                &mut column[interior.clone()],
                self.row(y0 as isize - above + j),
            );
        }
        let rows = band.len() / stride;
        for (r, out) in band.chunks_exact_mut(stride).enumerate() {
            self.reflect_edges(&mut column);
            window_divide(out, &column, cn, k, div);
            if r + 1 < rows {
                // The row that enters the window for the next output row and the one
                // that leaves it (read k rows ago, still in the cache).
                let y = (y0 + r) as isize;
                let (enter, leave) = (y - above + k as isize, y - above);
                // Start loading the row the next step adds.
                par::prefetch(self.row(enter + 1));
                move_down(
                    &mut column[interior.clone()],
                    self.row(enter),
                    self.row(leave),
                );
            }
        }
    }

    /// Copies the column sums of the pixels that the window reaches beyond the row's
    /// ends from the pixels they reflect (border reflect-101).
    fn reflect_edges(&self, column: &mut [u16]) {
        let (k, cn, w) = (self.k, self.cn, self.w);
        let left = k / 2;
        for p in (0..left).chain(left + w..w + k - 1) {
            let sx = par::reflect101(p as isize - left as isize, w);
            column.copy_within((left + sx) * cn..(left + sx + 1) * cn, p * cn);
        }
    }
}

par::avx2_dispatch! {
    /// `column += row`, sample by sample.
    fn add_row(column: &mut [u16], row: &[u8]) {
        for (c, &p) in column.iter_mut().zip(row) {
            *c = c.wrapping_add(p as u16);
        }
    }
}

par::avx512_dispatch! {
    /// `column += enter - leave`, sample by sample: the window moves down a row.
    fn move_down(column: &mut [u16], enter: &[u8], leave: &[u8]) {
        let n = column.len();
        let (enter, leave) = (&enter[..n], &leave[..n]);
        for i in 0..n {
            column[i] = column[i].wrapping_add(enter[i] as u16).wrapping_sub(leave[i] as u16);
        }
    }
}

/// Samples per block of [`window_divide`]'s loop for the window sizes it has no
/// specialised loop for.
const BLOCK: usize = 512;

/// `out[i]` = the sum of the `K` column sums from `i`, `cn` apart, divided by the area.
#[inline(always)]
fn window_divide_k<const K: usize>(out: &mut [u8], column: &[u16], cn: usize, div: Div16) {
    let n = out.len();
    let taps: [&[u16]; K] = std::array::from_fn(|j| &column[j * cn..j * cn + n]);
    for (i, o) in out.iter_mut().enumerate() {
        let s = taps.iter().fold(0u16, |s, t| s.wrapping_add(t[i]));
        *o = div.apply(s);
    }
}

par::avx512_dispatch! {
    /// `out[i]` = the sum of the `k` column sums from `i`, `cn` apart, divided by the
    /// area.
    fn window_divide(out: &mut [u8], column: &[u16], cn: usize, k: usize, div: Div16) {
        match k {
            3 => window_divide_k::<3>(out, column, cn, div),
            5 => window_divide_k::<5>(out, column, cn, div),
            7 => window_divide_k::<7>(out, column, cn, div),
            _ => {
                // In blocks, so that the partial sums stay in the first-level cache.
                let mut sums = [0u16; BLOCK];
                for (b, out) in out.chunks_mut(BLOCK).enumerate() {
                    let (at, sums) = (b * BLOCK, &mut sums[..out.len()]);
                    sums.copy_from_slice(&column[at..at + out.len()]);
                    for j in 1..k {
                        let tap = &column[at + j * cn..at + j * cn + out.len()];
                        for (s, &c) in sums.iter_mut().zip(tap) {
                            *s = s.wrapping_add(c);
                        }
                    }
                    for (o, &s) in out.iter_mut().zip(sums.iter()) {
                        *o = div.apply(s);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Image;

    #[test]
    fn the_16_bit_division_exists_and_is_exact_for_every_window_up_to_16() {
        // ksize 1 copies the image and needs no division. ksize 14 (area 196, sums to
        // 49,980) has no exact 16-bit form and keeps the separable path.
        let mut without = Vec::new();
        for k in 2..=16u32 {
            let area = k * k;
            let reference = filter::box_division(area);
            let Some(d) = Div16::find(area, 255 * area, reference) else {
                without.push(k);
                continue;
            };
            for s in 0..=255 * area {
                assert_eq!(d.apply(s as u16), reference(s), "ksize {k}, sum {s}");
            }
        }
        assert_eq!(without, [14]);
    }

    #[test]
    fn the_vector_window_division_equals_a_scalar_sum() {
        // Every window size, channel count and row lengths around the vector widths;
        // column sums up to the largest a window of 16 rows makes (16 x 255).
        let mut seed = 7u32;
        for k in 2..=16usize {
            let area = (k * k) as u32;
            let Some(div) = Div16::find(area, 255 * area, filter::box_division(area)) else {
                continue;
            };
            for cn in 1..=4 {
                for n in [1, 15, 16, 31, 32, 33, 63, 64, 65, 200] {
                    let n = n * cn;
                    let column: Vec<u16> = (0..n + (k - 1) * cn)
                        .map(|_| {
                            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                            ((seed >> 8) % (k as u32 * 255 + 1)) as u16
                        })
                        .collect();
                    let mut out = vec![0u8; n];
                    window_divide(&mut out, &column, cn, k, div);
                    let want: Vec<u8> = (0..n)
                        .map(|i| {
                            let s: u32 = (0..k).map(|j| column[i + j * cn] as u32).sum();
                            filter::box_division(area)(s)
                        })
                        .collect();
                    assert_eq!(out, want, "ksize {k}, {cn} channels, {n} samples");
                }
            }
        }
    }

    #[test]
    fn running_sums_equal_the_separable_filter_at_awkward_sizes() {
        let mut seed = 0x9e3779b9u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for &(w, h) in &[(1, 1), (2, 3), (3, 1), (5, 7), (17, 2), (33, 70), (130, 9)] {
            for cn in 1..=4u8 {
                let data = (0..w * h * cn as u32).map(|_| next() as u8).collect();
                let img = Image::from_u8(w, h, cn, data);
                for k in 1..=17usize {
                    let fast = box_blur_u8(img.u8_data(), w as usize, h as usize, cn as usize, k);
                    let Some(fast) = fast else {
                        assert!(k == 14 || k == 17, "ksize {k} has running sums");
                        continue;
                    };
                    let slow = filter::box_blur_separable(&img, k as u32);
                    assert_eq!(fast, slow.u8_data(), "{w}x{h}x{cn}, ksize {k}");
                }
            }
        }
        // Several bands on more than one thread, against one thread.
        let (w, h) = (61usize, 700usize);
        let data: Vec<u8> = (0..w * h * 3).map(|_| next() as u8).collect();
        let pool = par::test_pool(4);
        let one = par::test_pool(1);
        let many = pool.install(|| box_blur_u8(&data, w, h, 3, 5));
        let single = one.install(|| box_blur_u8(&data, w, h, 3, 5));
        assert_eq!(many, single);
        let img = Image::from_u8(w as u32, h as u32, 3, data);
        assert_eq!(
            single.unwrap(),
            filter::box_blur_separable(&img, 5).u8_data()
        );
    }
}
