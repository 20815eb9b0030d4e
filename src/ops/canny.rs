//! Canny edge detection as OpenCV computes it for 8-bit images.
//!
//! 3x3 Sobel with a replicated border, L1 magnitude, the channel with the strongest
//! gradient on colour input, non-maximum suppression with OpenCV's fixed-point
//! tan(22.5 deg) test, then hysteresis over 8-connected weak pixels. Rows are computed
//! in parallel; the hysteresis fills bands of the edge map in parallel, then carries
//! the edges across the bands' edges in one sequential fill.

use super::filter::sobel_row;
use super::par;
use crate::image::Image;
use rayon::prelude::*;

// tan(22.5 deg) in 15 fractional bits, as in OpenCV.
const TG22: i64 = 13573;

/// The classified pixels of [`suppressed`] (Canny's first stages on an 8-bit image;
/// alpha is ignored): 0 weak candidate, 1 not an edge, 2 strong
/// edge, with a border of one pixel on every side that is never 0.
pub struct Candidates {
    map: Vec<u8>,
    width: u32,
    height: u32,
}

/// Rows of gradients one task holds: a band of output rows and one row above and below.
const BAND_ROWS: usize = 16;

/// Sobel gradients, the strongest channel, and non-maximum suppression. The gradients
/// are computed band by band into a few rows of scratch per task (the rows around a
/// band are computed twice, one above and one below), so that besides the image only
/// the one-byte map exists at full size: the caller can free the image before the
/// hysteresis ([`trace`]).
pub fn suppressed(img: &Image, low: f64, high: f64) -> Candidates {
    let (w, h, cn) = (
        img.width as usize,
        img.height as usize,
        img.channels as usize,
    );
    let colors = img.color_channels();
    let src = img.u8_data();
    let (mut low, mut high) = (low.floor() as i32, high.floor() as i32);
    if low > high {
        std::mem::swap(&mut low, &mut high);
    }
    // The strongest channel wins; on a tie the first in OpenCV's order, which is BGR
    // (cv2.imread's, which users compare with): blue, then green, then red. In RGB
    // order 0.2% of the edge map of a photo (Elephants) came out differently.
    let order: &[usize] = if colors >= 3 { &[2, 1, 0] } else { &[0] };
    let mw = w + 2;
    let mut map = vec![1u8; mw * (h + 2)];
    map[mw..mw * (h + 1)]
        .par_chunks_mut(BAND_ROWS * mw)
        .enumerate()
        .for_each(|(band, out)| {
            let (y0, rows) = (band * BAND_ROWS, out.len() / mw);
            // Magnitudes of rows y0-1 ..= y0+rows, with a zero border (and zero rows
            // outside the image); the winning channel's dx, dy of the band's own rows.
            let mut mag = vec![0i32; (rows + 2) * mw];
            let (mut dxs, mut dys) = (vec![0i16; rows * w], vec![0i16; rows * w]);
            let (mut dx, mut dy) = (vec![0i16; w * cn], vec![0i16; w * cn]);
            for i in 0..rows + 2 {
                let Some(y) = (y0 + i).checked_sub(1).filter(|&y| y < h) else {
                    continue;
                };
                sobel_row(src, w, h, cn, y, par::replicate, &mut dx, &mut dy);
                let mrow = &mut mag[i * mw..(i + 1) * mw];
                let own = (1..=rows).contains(&i).then(|| (i - 1) * w);
                if cn == 1 {
                    // Gray: one channel, so the magnitude is a plain vectorised loop.
                    gray_magnitude(&mut mrow[1..=w], &dx, &dy);
                    if let Some(o) = own {
                        dxs[o..o + w].copy_from_slice(&dx);
                        dys[o..o + w].copy_from_slice(&dy);
                    }
                    continue;
                }
                for x in 0..w {
                    let mut best = x * cn + order[0];
                    let mut m = (dx[best] as i32).abs() + (dy[best] as i32).abs();
                    for &c in &order[1..] {
                        let i = x * cn + c;
                        let mc = (dx[i] as i32).abs() + (dy[i] as i32).abs();
                        if mc > m {
                            m = mc;
                            best = i;
                        }
                    }
                    mrow[x + 1] = m;
                    if let Some(o) = own {
                        dxs[o + x] = dx[best];
                        dys[o + x] = dy[best];
                    }
                }
            }
            for (r, prow) in out.chunks_exact_mut(mw).enumerate() {
                let (mp, ma, mn) = (&mag[r * mw..], &mag[(r + 1) * mw..], &mag[(r + 2) * mw..]);
                suppress_row(
                    prow,
                    (mp, ma, mn),
                    (&dxs[r * w..], &dys[r * w..]),
                    w,
                    low,
                    high,
                );
            }
        });
    Candidates {
        map,
        width: img.width,
        height: img.height,
    }
}

par::avx2_dispatch! {
    /// `m = |dx| + |dy|` (the L1 gradient magnitude OpenCV's Canny uses by default).
    fn gray_magnitude(m: &mut [i32], dx: &[i16], dy: &[i16]) {
        for ((m, &x), &y) in m.iter_mut().zip(dx).zip(dy) {
            *m = (x as i32).abs() + (y as i32).abs();
        }
    }
}

/// Non-maximum suppression of one row: `prow` gets 0 (weak) or 2 (strong) where the
/// magnitude in `ma` (the row; `mp`, `mn` above and below, all bordered) is a local
/// maximum across the gradient direction given by `dxs`, `dys`, else 1.
#[inline(always)]
fn suppress_row(
    prow: &mut [u8],
    (mp, ma, mn): (&[i32], &[i32], &[i32]),
    (dxs, dys): (&[i16], &[i16]),
    w: usize,
    low: i32,
    high: i32,
) {
    suppress_span(
        &mut prow[1..=w],
        [&mp[..w + 2], &ma[..w + 2], &mn[..w + 2]],
        [&dxs[..w], &dys[..w]],
        [low, high],
    );
}

par::avx512_dispatch! {
    /// [`suppress_row`] without branches, so that it vectorises: every direction's test
    /// is made and the gradient's direction picks one. The sums fit 32 bits (a 3x3
    /// Sobel is at most 1,020, times 2^16 + [`TG22`] under 2^27).
    fn suppress_span(out: &mut [u8], m: [&[i32]; 3], d: [&[i16]; 2], limits: [i32; 2]) {
        let w = out.len();
        let [mp, ma, mn] = m;
        let (mp, ma, mn) = (&mp[..w + 2], &ma[..w + 2], &mn[..w + 2]);
        let (dxs, dys) = (&d[0][..w], &d[1][..w]);
        let [low, high] = limits;
        for x in 0..w {
            let j = x + 1;
            let v = ma[j];
            let (xs, ys) = (dxs[x] as i32, dys[x] as i32);
            let ax = xs.abs();
            let ay = ys.abs() << 15;
            let tg22x = ax * TG22 as i32;
            let tg67x = tg22x + (ax << 16);
            let across = v > ma[j - 1] && v >= ma[j + 1];
            let along = v > mp[j] && v >= mn[j];
            // The diagonal: up-right and down-left where dx and dy differ in sign,
            // up-left and down-right where they agree.
            let rising = v > mp[j + 1] && v > mn[j - 1];
            let falling = v > mp[j - 1] && v > mn[j + 1];
            let diagonal = if (xs ^ ys) < 0 { rising } else { falling };
            let is_max = if ay < tg22x {
                across
            } else if ay > tg67x {
                along
            } else {
                diagonal
            };
            out[x] = if v > low && is_max {
                if v > high {
                    2
                } else {
                    0
                }
            } else {
                1
            };
        }
    }
}

/// Hysteresis over the candidates, then the edge image (0 or 255, one channel).
pub fn trace(c: Candidates) -> Image {
    let Candidates {
        mut map,
        width,
        height,
    } = c;
    let (w, h) = (width as usize, height as usize);
    let mw = w + 2;
    // Indices are u32 (half the memory of usize) when the map allows it, which the
    // pixel limit does.
    if map.len() <= u32::MAX as usize {
        hysteresis::<u32>(&mut map, mw);
    } else {
        hysteresis::<usize>(&mut map, mw);
    }
    let fill = |out: &mut [u8]| {
        out.par_chunks_mut(w.max(1))
            .enumerate()
            .for_each(|(y, row)| {
                let mrow = &map[(y + 1) * mw + 1..(y + 1) * mw + 1 + w];
                for (o, &m) in row.iter_mut().zip(mrow) {
                    *o = if m == 2 { 255 } else { 0 };
                }
            })
    };
    // SAFETY: every pixel of every row is set from the map's row (`w` long).
    let out = unsafe { par::uninit(w * h, fill) };
    Image::from_u8(width, height, 1, out)
}

/// Bytes of the map per band of the parallel part of [`hysteresis`].
const FILL_BAND: usize = 1 << 20;

/// Grows strong edges (2) through 8-connected weak candidates (0) of `map`, a bordered
/// map `mw` wide whose border is never 0, with stacks of indices of type `I`. First
/// each band of rows in parallel, the fill kept inside its band; then one fill over
/// the whole map from the strong pixels of the rows where bands meet, which carries
/// every edge on across them. The result is the pixels joined to a strong one through
/// weak ones, which no order of filling changes.
fn hysteresis<I: Copy + Send + TryFrom<usize> + TryInto<usize>>(map: &mut [u8], mw: usize) {
    let band_rows = (FILL_BAND / mw.max(1)).max(2);
    map.par_chunks_mut(band_rows * mw).for_each(|band| {
        let stack = strong_pixels::<I>(band, 0);
        fill::<I>(band, mw, stack);
    });
    let mut stack = Vec::new();
    for first in (0..map.len()).step_by(band_rows * mw) {
        let last = (first + band_rows * mw).min(map.len()) - mw;
        for row in [first, last] {
            stack.extend(strong_pixels::<I>(&map[row..row + mw], row));
        }
    }
    fill::<I>(map, mw, stack);
}

/// The indices (plus `at`) of the strong pixels of `map`, 64 bytes at a time: a bit
/// mask of the strong ones, then its set bits.
fn strong_pixels<I: TryFrom<usize>>(map: &[u8], at: usize) -> Vec<I> {
    let mut v = Vec::new();
    for (b, block) in map.chunks(64).enumerate() {
        let mut bits = strong_mask(block);
        let at = at + b * 64;
        while bits != 0 {
            if let Ok(i) = I::try_from(at + bits.trailing_zeros() as usize) {
                v.push(i);
            }
            bits &= bits - 1;
        }
    }
    v
}

/// Bit `i` set where `block[i]` (at most 64 bytes) is 2: by SSE2 compares on whole
/// 64-byte blocks.
#[inline(always)]
fn strong_mask(block: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if let Ok(block) = <&[u8; 64]>::try_from(block) {
        use std::arch::x86_64::*;
        let mut bits = 0u64;
        for (k, part) in block.chunks_exact(16).enumerate() {
            // SAFETY: SSE2 is part of the x86_64 baseline; reads the 16 bytes of `part`.
            let m = unsafe {
                let v = _mm_loadu_si128(part.as_ptr().cast());
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(2))) as u32 as u64
            };
            bits |= m << (16 * k);
        }
        return bits;
    }
    block
        .iter()
        .enumerate()
        .fold(0, |bits, (i, &m)| bits | (u64::from(m == 2) << i))
}

/// The fill from the pixels on `stack`: each weak 8-neighbour inside `map` becomes
/// strong and is filled from in turn.
fn fill<I: Copy + TryFrom<usize> + TryInto<usize>>(map: &mut [u8], mw: usize, mut stack: Vec<I>) {
    let mw = mw as isize;
    while let Some(i) = stack.pop() {
        let Ok(i) = i.try_into() else { continue };
        for off in [-mw - 1, -mw, -mw + 1, -1, 1, mw - 1, mw, mw + 1] {
            let Some(n) = i.checked_add_signed(off).filter(|&n| n < map.len()) else {
                continue;
            };
            if map[n] == 0 {
                map[n] = 2;
                if let Ok(n) = I::try_from(n) {
                    stack.push(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Non-maximum suppression of one pixel, branch by branch as OpenCV writes it.
    fn suppress_pixel(m: [&[i32]; 3], xs: i64, ys: i64, j: usize, low: i32, high: i32) -> u8 {
        let [mp, ma, mn] = m;
        let v = ma[j];
        if v <= low {
            return 1;
        }
        let ax = xs.abs();
        let ay = ys.abs() << 15;
        let tg22x = ax * TG22;
        let is_max = if ay < tg22x {
            v > ma[j - 1] && v >= ma[j + 1]
        } else {
            let tg67x = tg22x + (ax << 16);
            if ay > tg67x {
                v > mp[j] && v >= mn[j]
            } else {
                let s: isize = if (xs ^ ys) < 0 { -1 } else { 1 };
                v > mp[(j as isize - s) as usize] && v > mn[(j as isize + s) as usize]
            }
        };
        match (is_max, v > high) {
            (false, _) => 1,
            (true, true) => 2,
            (true, false) => 0,
        }
    }

    #[test]
    fn the_vector_suppression_equals_the_per_pixel_one() {
        let mut seed = 5u32;
        let mut next = |n: u32| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) % n
        };
        for w in [1usize, 2, 15, 16, 17, 63, 64, 65, 301] {
            // Few magnitude levels, so that ties (where > and >= differ) are common;
            // gradients up to the 3x3 Sobel's 1,020 either way.
            let m: Vec<Vec<i32>> = (0..3)
                .map(|_| (0..w + 2).map(|_| next(6) as i32 * 40).collect())
                .collect();
            let dx: Vec<i16> = (0..w).map(|_| next(2041) as i16 - 1020).collect();
            let dy: Vec<i16> = (0..w).map(|_| next(2041) as i16 - 1020).collect();
            let rows = [&m[0][..], &m[1][..], &m[2][..]];
            let mut got = vec![7u8; w + 2];
            suppress_row(
                &mut got,
                (rows[0], rows[1], rows[2]),
                (&dx, &dy),
                w,
                40,
                120,
            );
            for x in 0..w {
                let want = suppress_pixel(rows, dx[x] as i64, dy[x] as i64, x + 1, 40, 120);
                assert_eq!(got[x + 1], want, "width {w}, x {x}");
            }
            assert_eq!((got[0], got[w + 1]), (7, 7), "the border is left alone");
        }
    }

    #[test]
    fn the_banded_hysteresis_equals_one_fill_over_the_map() {
        // 70,000 wide: a band is 14 rows, so 61 rows make five bands (the last of 5).
        // Weak pixels are dense, so that edges wind across the bands' edges.
        let (mw, rows) = (70_000usize, 61usize);
        let mut seed = 9u32;
        let mut map: Vec<u8> = (0..mw * rows)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                match (seed >> 24) % 100 {
                    0 => 2,
                    1..=55 => 0,
                    _ => 1,
                }
            })
            .collect();
        for (i, m) in map.iter_mut().enumerate() {
            let (x, y) = (i % mw, i / mw);
            if x == 0 || x == mw - 1 || y == 0 || y == rows - 1 {
                *m = 1;
            }
        }
        let mut want = map.clone();
        let stack: Vec<u32> = (0..want.len())
            .filter(|&i| want[i] == 2)
            .map(|i| i as u32)
            .collect();
        fill::<u32>(&mut want, mw, stack);
        hysteresis::<u32>(&mut map, mw);
        assert!(
            want.iter().filter(|&&m| m == 0).count() > 1000,
            "some weak pixels stay"
        );
        assert_eq!(map, want);
    }

    #[test]
    fn hysteresis_grows_from_every_strong_pixel_and_leaves_lone_weak_runs() {
        // Strong pixels, each joined to a run of weak ones; a weak run alone stays.
        // (One band: the test above crosses bands.)
        let mw = 70_000;
        let mut map = vec![1u8; mw * 4];
        map[mw + 1] = 2;
        map[mw + 2..mw + 10].fill(0);
        map[2 * mw + 60_000..2 * mw + 60_010].fill(0);
        map[mw + 69_990] = 0;
        map[mw + 69_991] = 2;
        map[mw + 100..mw + 105].fill(0);
        hysteresis::<u32>(&mut map, mw);
        assert!(map[mw + 1..mw + 10].iter().all(|&m| m == 2));
        assert_eq!(map[mw + 69_990], 2);
        assert!(map[mw + 100..mw + 105].iter().all(|&m| m == 0));
        assert!(map[2 * mw + 60_000..2 * mw + 60_010]
            .iter()
            .all(|&m| m == 0));
    }
}
