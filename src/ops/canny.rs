//! Canny edge detection as OpenCV computes it for 8-bit images.
//!
//! 3x3 Sobel with a replicated border, L1 magnitude, the channel with the strongest
//! gradient on colour input, non-maximum suppression with OpenCV's fixed-point
//! tan(22.5 deg) test, then hysteresis over 8-connected weak pixels. Rows are computed
//! in parallel; the hysteresis is a sequential flood fill over the edge map.

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
/// maximum across the gradient direction given by `dxs`, `dys`.
#[inline(always)]
fn suppress_row(
    prow: &mut [u8],
    (mp, ma, mn): (&[i32], &[i32], &[i32]),
    (dxs, dys): (&[i16], &[i16]),
    w: usize,
    low: i32,
    high: i32,
) {
    for x in 0..w {
        let j = x + 1;
        let m = ma[j];
        if m <= low {
            continue;
        }
        let (xs, ys) = (dxs[x] as i64, dys[x] as i64);
        let ax = xs.abs();
        let ay = ys.abs() << 15;
        let tg22x = ax * TG22;
        let is_max = if ay < tg22x {
            m > ma[j - 1] && m >= ma[j + 1]
        } else {
            let tg67x = tg22x + (ax << 16);
            if ay > tg67x {
                m > mp[j] && m >= mn[j]
            } else {
                let s: isize = if (xs ^ ys) < 0 { -1 } else { 1 };
                m > mp[(j as isize - s) as usize] && m > mn[(j as isize + s) as usize]
            }
        };
        if is_max {
            prow[j] = if m > high { 2 } else { 0 };
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
    let mut out = vec![0u8; w * h];
    out.par_chunks_mut(w.max(1))
        .enumerate()
        .for_each(|(y, row)| {
            let mrow = &map[(y + 1) * mw + 1..(y + 1) * mw + 1 + w];
            for (o, &m) in row.iter_mut().zip(mrow) {
                *o = if m == 2 { 255 } else { 0 };
            }
        });
    Image::from_u8(width, height, 1, out)
}

/// Grows strong edges (2) through 8-connected weak candidates (0) of `map`, a bordered
/// map `mw` wide whose border is never 0, with a stack of indices of type `I`.
fn hysteresis<I: Copy + TryFrom<usize> + TryInto<usize>>(map: &mut [u8], mw: usize) {
    let idx = |i: usize| I::try_from(i).ok();
    let mut stack: Vec<I> = (0..map.len())
        .filter(|&i| map[i] == 2)
        .filter_map(idx)
        .collect();
    while let Some(i) = stack.pop() {
        let Ok(i) = i.try_into() else { continue };
        for off in [
            -(mw as isize) - 1,
            -(mw as isize),
            -(mw as isize) + 1,
            -1,
            1,
            mw as isize - 1,
            mw as isize,
            mw as isize + 1,
        ] {
            let n = (i as isize + off) as usize;
            if map[n] == 0 {
                map[n] = 2;
                if let Some(n) = idx(n) {
                    stack.push(n);
                }
            }
        }
    }
}
