//! The normalised box filter (`box_blur`) by running column sums.
//!
//! The general separable convolution of `filter.rs` multiplies every tap by its weight
//! and divides each sum with a 64-bit fixed-point product; for a box every weight is 1,
//! so this module only adds. Each band keeps the horizontal window sums of the last
//! `k` rows and one column sum per sample: an output row is the column sums divided by
//! the area, and moving down one row adds the new row's sums and subtracts the oldest.
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
    // sample of each of its rows (`finish_row` over the whole row).
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
    /// Writes the output rows of `band`, the first of which is image row `y0`.
    fn band(&self, y0: usize, band: &mut [u8], div: Div16) {
        let (k, stride) = (self.k, self.w * self.cn);
        let above = (k / 2) as isize;
        let mut padded = vec![0u8; (self.w + k - 1) * self.cn];
        // Horizontal sums of the window's rows, oldest at `ring[y % k]` for logical row y.
        let mut ring = vec![vec![0u16; stride]; k];
        let mut fresh = vec![0u16; stride];
        let mut column = vec![0u16; stride];
        for j in 0..k as isize {
            let y = y0 as isize - above + j;
            let slot = y.rem_euclid(k as isize) as usize;
            self.horizontal(y, &mut padded, &mut ring[slot]);
            add_row(&mut column, &ring[slot]);
        }
        let rows = band.len() / stride;
        for (r, out) in band.chunks_exact_mut(stride).enumerate() {
            let y = (y0 + r) as isize;
            // The row that enters the window for y + 1 and the one that leaves it.
            let (enter, leave) = (y - above + k as isize, y - above);
            let slot = leave.rem_euclid(k as isize) as usize;
            if y0 + r + 1 < self.h && r + 1 < rows {
                self.prefetch(enter + 1);
                self.horizontal(enter, &mut padded, &mut fresh);
                finish_row(out, &mut column, &fresh, &ring[slot], div);
                std::mem::swap(&mut ring[slot], &mut fresh);
            } else {
                finish_row(out, &mut column, &ring[slot], &ring[slot], div);
            }
        }
    }

    /// Asks the CPU to start loading logical row `y`, which the next output row reads
    /// first (reading each new row straight from memory was half the time of the
    /// horizontal sums).
    fn prefetch(&self, y: isize) {
        let stride = self.w * self.cn;
        let sy = par::reflect101(y, self.h);
        par::prefetch(&self.src[sy * stride..(sy + 1) * stride]);
    }

    /// The horizontal window sums of logical row `y` (reflected into the image): the
    /// interior straight from the image row, the `k / 2` pixels at each end from a
    /// reflected copy of the pixels they reach.
    fn horizontal(&self, y: isize, padded: &mut [u8], sums: &mut [u16]) {
        let (w, cn, k) = (self.w, self.cn, self.k);
        let stride = w * cn;
        let sy = par::reflect101(y, self.h);
        let row = &self.src[sy * stride..(sy + 1) * stride];
        let (left, right) = (k / 2, k - 1 - k / 2);
        // `count` pixels of the row from pixel `from` (which may lie outside it) into
        // `padded`, reflected.
        let reflected = |padded: &mut [u8], from: isize, count: usize| {
            for i in 0..count {
                let sx = par::reflect101(from + i as isize, w);
                padded[i * cn..(i + 1) * cn].copy_from_slice(&row[sx * cn..(sx + 1) * cn]);
            }
        };
        if w < k {
            reflected(padded, -(left as isize), w + k - 1);
            return window_sums(sums, padded, cn, k);
        }
        window_sums(&mut sums[left * cn..(w - right) * cn], row, cn, k);
        reflected(padded, -(left as isize), left + k - 1);
        window_sums(&mut sums[..left * cn], padded, cn, k);
        reflected(padded, (w - right - left) as isize, right + k - 1);
        window_sums(&mut sums[(w - right) * cn..], padded, cn, k);
    }
}

/// `sums[i]` = the sum of `K` samples of `from` from `i`, `cn` apart, kept in registers.
#[inline(always)]
fn window_sums_k<const K: usize>(sums: &mut [u16], from: &[u8], cn: usize) {
    let n = sums.len();
    let taps: [&[u8]; K] = std::array::from_fn(|j| &from[j * cn..j * cn + n]);
    for (i, s) in sums.iter_mut().enumerate() {
        *s = taps.iter().map(|t| t[i] as u16).sum();
    }
}

par::avx2_dispatch! {
    /// `sums[i]` = the sum of `k` samples of `from` from `i`, `cn` apart (`from` holds
    /// at least `sums.len() + (k - 1) * cn` samples).
    fn window_sums(sums: &mut [u16], from: &[u8], cn: usize, k: usize) {
        match k {
            3 => window_sums_k::<3>(sums, from, cn),
            5 => window_sums_k::<5>(sums, from, cn),
            7 => window_sums_k::<7>(sums, from, cn),
            _ => {
                for (s, &p) in sums.iter_mut().zip(from) {
                    *s = p as u16;
                }
                for j in 1..k {
                    for (s, &p) in sums.iter_mut().zip(&from[j * cn..]) {
                        *s += p as u16;
                    }
                }
            }
        }
    }
}

par::avx2_dispatch! {
    /// `column += rows`, sample by sample.
    fn add_row(column: &mut [u16], row: &[u16]) {
        for (c, &r) in column.iter_mut().zip(row) {
            *c = c.wrapping_add(r);
        }
    }
}

/// One output row from the column sums, which then move down a row: `enter` comes in,
/// `leave` goes out (the same row at the band's end, which changes nothing).
fn finish_row(out: &mut [u8], column: &mut [u16], enter: &[u16], leave: &[u16], div: Div16) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        let done = unsafe { finish_row_avx2(out, column, enter, leave, div) };
        return finish_row_scalar(
            &mut out[done..],
            &mut column[done..],
            &enter[done..],
            &leave[done..],
            div,
        );
    }
    finish_row_scalar(out, column, enter, leave, div)
}

/// [`finish_row`], sample by sample: the reference of the vector path, and its tail.
fn finish_row_scalar(out: &mut [u8], column: &mut [u16], enter: &[u16], leave: &[u16], div: Div16) {
    for (((o, c), &e), &l) in out.iter_mut().zip(column.iter_mut()).zip(enter).zip(leave) {
        *o = div.apply(*c);
        *c = c.wrapping_add(e).wrapping_sub(l);
    }
}

/// [`finish_row`] 32 samples at a time; returns how many samples it did.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn finish_row_avx2(
    out: &mut [u8],
    column: &mut [u16],
    enter: &[u16],
    leave: &[u16],
    div: Div16,
) -> usize {
    use std::arch::x86_64::*;
    const N: usize = 32;
    let n = out
        .len()
        .min(column.len())
        .min(enter.len())
        .min(leave.len())
        / N
        * N;
    let add = _mm256_set1_epi16(div.add as i16);
    let mul = _mm256_set1_epi16(div.mul as i16);
    let shift = _mm_cvtsi32_si128(div.shift as i32);
    let load = |v: &[u16]| {
        let v: &[u16; 16] = v.try_into().expect("16 samples");
        // SAFETY: reads the 32 bytes of `v`, unaligned.
        unsafe { _mm256_loadu_si256(v.as_ptr().cast()) }
    };
    for i in (0..n).step_by(N) {
        let (c0, c1) = (load(&column[i..i + 16]), load(&column[i + 16..i + N]));
        let quotient =
            |c| _mm256_srl_epi16(_mm256_mulhi_epu16(_mm256_add_epi16(c, add), mul), shift);
        // packus interleaves the 128-bit lanes of its two inputs; the permute restores
        // their order.
        let packed =
            _mm256_permute4x64_epi64::<0xD8>(_mm256_packus_epi16(quotient(c0), quotient(c1)));
        let o: &mut [u8; N] = (&mut out[i..i + N]).try_into().expect("32 bytes");
        // SAFETY: writes the 32 bytes of `o`, unaligned.
        unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), packed) };
        for (h, c) in [(0, c0), (16, c1)] {
            let moved = _mm256_sub_epi16(
                _mm256_add_epi16(c, load(&enter[i + h..i + h + 16])),
                load(&leave[i + h..i + h + 16]),
            );
            let c: &mut [u16; 16] = (&mut column[i + h..i + h + 16])
                .try_into()
                .expect("16 samples");
            // SAFETY: writes the 32 bytes of `c`, unaligned.
            unsafe { _mm256_storeu_si256(c.as_mut_ptr().cast(), moved) };
        }
    }
    n
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
    fn the_vector_row_finish_equals_the_scalar_one() {
        let div = Div16::find(25, 255 * 25, filter::box_division(25)).expect("ksize 5");
        for n in [0, 1, 31, 32, 33, 100, 6375] {
            let column: Vec<u16> = (0..n as u16).map(|i| i % 6376).collect();
            let enter: Vec<u16> = (0..n as u16).map(|i| (i * 7) % 1276).collect();
            let leave: Vec<u16> = column.iter().map(|&c| c.min(1275) / 2).collect();
            let (mut c1, mut c2) = (column.clone(), column.clone());
            let (mut o1, mut o2) = (vec![0u8; n], vec![1u8; n]);
            finish_row(&mut o1, &mut c1, &enter, &leave, div);
            finish_row_scalar(&mut o2, &mut c2, &enter, &leave, div);
            assert_eq!((o1, c1), (o2, c2), "{n} samples");
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
