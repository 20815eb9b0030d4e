//! The median filter (`cv2.medianBlur`, border replicate) on 8-bit images.
//!
//! Every output sample is the median of its channel's `ksize` x `ksize` window. Both
//! paths run comparator networks across many samples at once, so that each comparator
//! becomes a vector min and max:
//! - 5x5, the default, makes output rows in pairs. The two windows of a pair share four
//!   source rows: those are sorted per sample column once, and the 20 shared values of
//!   a window are cut down to the six that can still be its median (ranks 7 to 12 of
//!   the 20); each window then adds its own fifth row. That is about 91 min/max per
//!   sample, where one network over all 25 values of a window needs 226.
//! - Any other size gathers the whole window into lanes and runs a pruned Batcher
//!   network over them.

use super::par;
use crate::image::Image;

/// Median of each channel over a `ksize` square (odd), border replicate, as
/// `cv2.medianBlur`; samples equal to OpenCV's.
pub fn median(img: &Image, ksize: u32) -> Image {
    if ksize == 5 {
        median5(img)
    } else {
        median_lanes(img, ksize)
    }
}

/// Comparators of Batcher's odd-even merge sort for `n` (a power of two) elements.
fn batcher(n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut p = 1;
    while p < n {
        let mut k = p;
        while k >= 1 {
            for j in (k % p..n - k).step_by(2 * k) {
                for i in 0..k.min(n - j - k) {
                    if (i + j) / (p * 2) == (i + j + k) / (p * 2) {
                        out.push((i + j, i + j + k));
                    }
                }
            }
            k /= 2;
        }
        p *= 2;
    }
    out
}

/// A selection network: the comparators of a sorting network for `n` values that can
/// influence position `n / 2` (the median), in order. Positions `n..` hold padding that
/// sorts above everything, so the median of the `n` real values stays at `n / 2`.
pub(crate) fn median_network(n: usize) -> (usize, Vec<(usize, usize)>) {
    let size = n.next_power_of_two();
    let all = batcher(size);
    let mut needed = vec![false; size];
    needed[n / 2] = true;
    let mut kept = Vec::new();
    for &(a, b) in all.iter().rev() {
        if needed[a] || needed[b] {
            needed[a] = true;
            needed[b] = true;
            kept.push((a, b));
        }
    }
    kept.reverse();
    (size, kept)
}

par::avx2_dispatch! {
    /// Runs `net` over `lanes` (each `len` samples, laid end to end) with element-wise
    /// min/max: every sample position is an independent selection, so this vectorises.
    fn run_network(lanes: &mut [u8], len: usize, net: &[(usize, usize)]) {
        for &(a, b) in net {
            let (lo, hi) = lanes.split_at_mut(b * len);
            let x = &mut lo[a * len..(a + 1) * len];
            let y = &mut hi[..len];
            for (x, y) in x.iter_mut().zip(y.iter_mut()) {
                let (mn, mx) = ((*x).min(*y), (*x).max(*y));
                *x = mn;
                *y = mx;
            }
        }
    }
}

/// The median of any odd `ksize`: each output row is cut into tiles small enough for
/// the L1 cache; a tile gathers its `ksize^2` shifted source segments and runs a
/// selection network across them.
fn median_lanes(img: &Image, ksize: u32) -> Image {
    let (w, h, cn) = (
        img.width as usize,
        img.height as usize,
        img.channels as usize,
    );
    let k = ksize as usize;
    let a = (k / 2) as isize;
    let src = img.u8_data();
    let stride = w * cn;
    let (size, net) = median_network(k * k);
    // A multiple of 32 samples and of the pixel size, about 16 KiB of lanes in all.
    let unit = 32 * cn;
    let tile = ((16 * 1024 / size) / unit).max(1) * unit;
    let tile = tile.min(stride);
    // Not zeroed first (see `median5`).
    let fill = |out: &mut [u8]| {
        par::bands(out, stride, |y0, band| {
            let mut lanes = vec![255u8; size * tile];
            for (r, row) in band.chunks_exact_mut(stride).enumerate() {
                let y = y0 + r;
                let rows: Vec<&[u8]> = (0..k)
                    .map(|j| {
                        let sy = par::replicate(y as isize + j as isize - a, h);
                        &src[sy * stride..(sy + 1) * stride]
                    })
                    .collect();
                for t0 in (0..stride).step_by(tile) {
                    let len = tile.min(stride - t0);
                    for (j, srow) in rows.iter().enumerate() {
                        for i in 0..k {
                            let off = (i as isize - a) * cn as isize;
                            let lane = &mut lanes[(j * k + i) * len..(j * k + i + 1) * len];
                            let (lo, hi) = (t0 as isize + off, (t0 + len) as isize + off);
                            if lo >= 0 && hi <= stride as isize {
                                lane.copy_from_slice(&srow[lo as usize..hi as usize]);
                            } else {
                                for (n, v) in lane.iter_mut().enumerate() {
                                    let s = t0 + n;
                                    let sx = par::replicate((s / cn) as isize + i as isize - a, w);
                                    *v = srow[sx * cn + s % cn];
                                }
                            }
                        }
                    }
                    lanes[k * k * len..size * len].fill(255);
                    run_network(&mut lanes[..size * len], len, &net);
                    let m = k * k / 2;
                    row[t0..t0 + len].copy_from_slice(&lanes[m * len..(m + 1) * len]);
                }
            }
        });
    };
    // SAFETY: each row is written tile by tile, every tile from the middle lane.
    let out = unsafe { par::uninit(src.len(), fill) };
    Image::from_u8(img.width, img.height, img.channels, out)
}

/// Straight-line comparators over the array `$v`: each `(a, b, keep)` puts the smaller
/// of `v[a]`, `v[b]` in `v[a]` and the larger in `v[b]`, or (`Lo`, `Hi`) only the one
/// that later comparators or the result read.
macro_rules! network {
    ($v:ident; $(($a:literal, $b:literal, $k:ident))*) => {
        $(network!(@ $v, $a, $b, $k);)*
    };
    (@ $v:ident, $a:literal, $b:literal, Both) => {{
        let (x, y) = ($v[$a], $v[$b]);
        $v[$a] = x.min(y);
        $v[$b] = x.max(y);
    }};
    (@ $v:ident, $a:literal, $b:literal, Lo) => {
        $v[$a] = $v[$a].min($v[$b])
    };
    (@ $v:ident, $a:literal, $b:literal, Hi) => {
        $v[$b] = $v[$a].max($v[$b])
    };
}

/// Sorts four values.
#[inline(always)]
fn sort4(v: &mut [u8; 4]) {
    network!(v; (0, 1, Both) (2, 3, Both) (0, 2, Both) (1, 3, Both) (1, 2, Both));
}

/// Given five sorted columns of four (column `d` in `v[4d..4d + 4]`), leaves ranks 7
/// to 12 of the 20 values, sorted, in `v[7..13]`. Once five more values join, the
/// median of the 25 (rank 12) is one of those six or one of the five: at most five
/// values can come below it from outside the 20, and at most five above.
///
/// Batcher's odd-even merge sort of 32 (the columns already sorted, the top 12
/// positions above everything), with every comparator removed that cannot change
/// `v[7..13]` or never exchanges on sorted columns: 64 comparators, 114 min/max.
#[inline(always)]
fn middle_of_20(v: &mut [u8; 20]) {
    network!(v;
        (0, 4, Both) (1, 5, Both) (2, 6, Both) (3, 7, Both) (8, 12, Both) (9, 13, Both)
        (10, 14, Both) (11, 15, Both) (2, 4, Both) (3, 5, Both) (10, 12, Both)
        (11, 13, Both) (1, 2, Both) (3, 4, Both) (5, 6, Both) (9, 10, Both) (11, 12, Both)
        (13, 14, Both) (0, 8, Both) (1, 9, Both) (2, 10, Both) (3, 11, Both) (4, 12, Both)
        (5, 13, Both) (6, 14, Both) (7, 15, Lo) (4, 8, Both) (5, 9, Both) (6, 10, Both)
        (7, 11, Both) (2, 4, Both) (3, 5, Both) (6, 8, Both) (7, 9, Both) (10, 12, Both)
        (11, 13, Both) (1, 2, Both) (3, 4, Both) (5, 6, Both) (7, 8, Both) (9, 10, Both)
        (11, 12, Both) (13, 14, Lo) (0, 16, Hi) (1, 17, Hi) (2, 18, Hi) (3, 19, Hi)
        (8, 16, Both) (9, 17, Both) (10, 18, Lo) (11, 19, Lo) (4, 8, Hi) (5, 9, Hi)
        (6, 10, Both) (7, 11, Both) (12, 16, Lo) (13, 17, Lo) (6, 8, Hi) (7, 9, Both)
        (10, 12, Both) (11, 13, Lo) (7, 8, Both) (9, 10, Both) (11, 12, Both)
    );
}

/// Given the six middle values of [`middle_of_20`] sorted in `v[0..6]`, 255 in `v[6]`
/// and `v[7]`, and a window's other five values in `v[8..13]`, leaves the window's
/// median (rank 5 of these eleven) in `v[5]`. Pruned from Batcher's sort of 16 the same
/// way: 20 comparators, 29 min/max.
#[inline(always)]
fn median_of_6_and_5(v: &mut [u8; 13]) {
    network!(v;
        (8, 9, Both) (10, 11, Both) (8, 10, Both) (9, 11, Both) (9, 10, Both) (8, 12, Both)
        (10, 12, Both) (9, 10, Both) (11, 12, Both) (0, 8, Hi) (1, 9, Hi) (2, 10, Hi)
        (3, 11, Lo) (4, 12, Lo) (4, 8, Hi) (5, 9, Lo) (6, 10, Lo) (3, 5, Hi) (6, 8, Lo)
        (5, 6, Lo)
    );
}

/// Samples per block of the 5x5 kernel: one AVX-512 vector, two AVX2 ones. Rows are
/// padded to whole blocks, so that no sample falls to a scalar remainder loop (which
/// costs about as much as the vector loop on a 4,000-sample row).
const BLOCK: usize = 64;

par::avx512_dispatch! {
    /// Sorts the four rows per sample: `cols[r][i]` becomes the rank-`r` value of
    /// `rows[0][i]..rows[3][i]`.
    fn sort_columns(rows: [&[u8]; 4], cols: [&mut [u8]; 4]) {
        // Element by element (no `map`), so that the compiler sees every length.
        let [r0, r1, r2, r3] = rows;
        let [c0, c1, c2, c3] = cols;
        let n = [r0.len(), r1.len(), r2.len(), r3.len(), c0.len(), c1.len(), c2.len(), c3.len()];
        let n = n.into_iter().min().unwrap_or(0);
        let (r0, r1, r2, r3) = (&r0[..n], &r1[..n], &r2[..n], &r3[..n]);
        let (c0, c1, c2, c3) = (&mut c0[..n], &mut c1[..n], &mut c2[..n], &mut c3[..n]);
        for i in 0..n {
            let mut v = [r0[i], r1[i], r2[i], r3[i]];
            sort4(&mut v);
            (c0[i], c1[i], c2[i], c3[i]) = (v[0], v[1], v[2], v[3]);
        }
    }
}

/// The block at sample `at` of a padded row and of its four right neighbours (`cn`
/// samples apart): the five columns of the windows of that block. Written out element
/// by element, so that each stays a register value of known length.
#[inline(always)]
fn window(row: &[u8], at: usize, cn: usize) -> [&[u8; BLOCK]; 5] {
    let block = |d: usize| -> &[u8; BLOCK] {
        let from = at + d * cn;
        row[from..from + BLOCK]
            .try_into()
            .expect("padded rows hold every block")
    };
    [block(0), block(1), block(2), block(3), block(4)]
}

par::avx512_dispatch! {
    /// One pair of 5x5 median rows, `out0.len()` samples (a multiple of [`BLOCK`]).
    /// `cols` are the four shared source rows sorted per sample, `top` and `bottom`
    /// the rows above and below them, all padded with two replicated pixels (`2 * cn`
    /// samples) on the left and at least `2 * cn` samples on the right; `out0` is the
    /// upper output row.
    fn median5_rows(cols: [&[u8]; 4], top: &[u8], bottom: &[u8], cn: usize, out0: &mut [u8], out1: &mut [u8]) {
        let blocks = out0.chunks_exact_mut(BLOCK).zip(out1.chunks_exact_mut(BLOCK));
        for (j, (out0, out1)) in blocks.enumerate() {
            let at = j * BLOCK;
            let (c0, c1) = (window(cols[0], at, cn), window(cols[1], at, cn));
            let (c2, c3) = (window(cols[2], at, cn), window(cols[3], at, cn));
            let (t, b) = (window(top, at, cn), window(bottom, at, cn));
            for i in 0..BLOCK {
                let mut v = [
                    c0[0][i], c1[0][i], c2[0][i], c3[0][i], c0[1][i], c1[1][i], c2[1][i], c3[1][i],
                    c0[2][i], c1[2][i], c2[2][i], c3[2][i], c0[3][i], c1[3][i], c2[3][i], c3[3][i],
                    c0[4][i], c1[4][i], c2[4][i], c3[4][i],
                ];
                middle_of_20(&mut v);
                let mut u = [255u8; 13];
                u[..6].copy_from_slice(&v[7..13]);
                let mut l = u;
                (u[8], u[9], u[10], u[11], u[12]) = (t[0][i], t[1][i], t[2][i], t[3][i], t[4][i]);
                (l[8], l[9], l[10], l[11], l[12]) = (b[0][i], b[1][i], b[2][i], b[3][i], b[4][i]);
                median_of_6_and_5(&mut u);
                median_of_6_and_5(&mut l);
                out0[i] = u[5];
                out1[i] = l[5];
            }
        }
    }
}

/// Fills the two-pixel margins around the `stride` samples at `2 * cn` of a padded row
/// by replicating its first and last pixels.
fn replicate_margins(row: &mut [u8], cn: usize, stride: usize) {
    let pad = 2 * cn;
    let end = pad + stride;
    for j in 0..pad {
        row[j] = row[pad + j % cn];
        row[end + j] = row[end - cn + j % cn];
    }
}

/// The 5x5 median, two output rows at a time (see the module header).
fn median5(img: &Image) -> Image {
    let (w, h, cn) = (
        img.width as usize,
        img.height as usize,
        img.channels as usize,
    );
    let src = img.u8_data();
    let stride = w * cn;
    let pad = 2 * cn;
    let row = |y: isize| {
        let sy = par::replicate(y, h);
        &src[sy * stride..(sy + 1) * stride]
    };
    // Whole blocks go straight to the output rows; the last part block goes through
    // `tail` and is copied out.
    let whole = stride / BLOCK * BLOCK;
    let padded = whole + BLOCK + 2 * pad;
    // Not zeroed first: a one-thread memset of the whole output, overwritten by the
    // bands (RGBA at two threads scaled 1.70-1.74x with it).
    let fill = |out: &mut [u8]| {
        par::bands_by(out, stride, 2, |y0, band| {
            let mut cols: [Vec<u8>; 4] = std::array::from_fn(|_| vec![0u8; padded]);
            let mut top = vec![0u8; padded];
            let mut bottom = top.clone();
            let mut spare = vec![0u8; stride];
            let mut tail = [[0u8; BLOCK]; 2];
            let mut rows = band.chunks_exact_mut(stride);
            let mut y = y0 as isize;
            while let Some(out0) = rows.next() {
                let out1 = match rows.next() {
                    Some(r) => r,
                    None => &mut spare[..],
                };
                sort_columns(
                    [row(y - 1), row(y), row(y + 1), row(y + 2)],
                    cols.each_mut().map(|c| &mut c[pad..pad + stride]),
                );
                for c in &mut cols {
                    replicate_margins(c, cn, stride);
                }
                for (buf, sy) in [(&mut top, y - 2), (&mut bottom, y + 3)] {
                    buf[pad..pad + stride].copy_from_slice(row(sy));
                    replicate_margins(buf, cn, stride);
                }
                let cols = cols.each_ref().map(|c| &c[..]);
                median5_rows(
                    cols,
                    &top,
                    &bottom,
                    cn,
                    &mut out0[..whole],
                    &mut out1[..whole],
                );
                if whole < stride {
                    let [t0, t1] = &mut tail;
                    let rest = cols.map(|c| &c[whole..]);
                    median5_rows(rest, &top[whole..], &bottom[whole..], cn, t0, t1);
                    out0[whole..].copy_from_slice(&t0[..stride - whole]);
                    out1[whole..].copy_from_slice(&t1[..stride - whole]);
                }
                y += 2;
            }
        });
    };
    // SAFETY: each pair of rows is written whole: the whole blocks by `median5_rows`,
    // the rest from `tail`.
    let out = unsafe { par::uninit(src.len(), fill) };
    Image::from_u8(img.width, img.height, img.channels, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The median of each window, by sorting it: the reference for both paths.
    fn naive(img: &Image, k: usize) -> Vec<u8> {
        let (w, h, cn) = (
            img.width as usize,
            img.height as usize,
            img.channels as usize,
        );
        let src = img.u8_data();
        let a = (k / 2) as isize;
        let mut out = vec![0u8; src.len()];
        let mut win = Vec::with_capacity(k * k);
        for y in 0..h {
            for x in 0..w {
                for c in 0..cn {
                    win.clear();
                    for j in -a..=a {
                        for i in -a..=a {
                            let sy = par::replicate(y as isize + j, h);
                            let sx = par::replicate(x as isize + i, w);
                            win.push(src[(sy * w + sx) * cn + c]);
                        }
                    }
                    win.sort_unstable();
                    out[(y * w + x) * cn + c] = win[k * k / 2];
                }
            }
        }
        out
    }

    fn noise(w: u32, h: u32, cn: u8, seed: u32, levels: u32) -> Image {
        let mut s = seed;
        let data = (0..w as usize * h as usize * cn as usize)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((s >> 24) % levels) as u8
            })
            .collect();
        Image::from_u8(w, h, cn, data)
    }

    /// `v` is a 0-1 input where `lists` give the lengths of sorted runs laid end to end.
    fn sorted_01(cuts: &[usize], lens: &[usize]) -> Vec<u8> {
        cuts.iter()
            .zip(lens)
            .flat_map(|(&c, &l)| (0..l).map(move |i| u8::from(i >= c)))
            .collect()
    }

    #[test]
    fn middle_of_20_keeps_ranks_7_to_12_of_sorted_columns() {
        // The 0-1 principle: a min/max network that is right on every 0-1 input of its
        // domain (here, sorted columns) is right on every input of that domain.
        for code in 0..5usize.pow(5) {
            let cuts: Vec<usize> = (0..5).map(|d| code / 5usize.pow(d) % 5).collect();
            let mut v: [u8; 20] = sorted_01(&cuts, &[4; 5]).try_into().unwrap();
            let mut want = v;
            want.sort_unstable();
            middle_of_20(&mut v);
            assert_eq!(v[7..13], want[7..13], "columns cut at {cuts:?}");
        }
    }

    #[test]
    fn median_of_6_and_5_finds_rank_5() {
        for cut in 0..=6 {
            for bits in 0..32u32 {
                let mut v = [255u8; 13];
                v[..6].copy_from_slice(&sorted_01(&[cut], &[6]));
                for d in 0..5 {
                    v[8 + d] = (bits >> d & 1) as u8;
                }
                let mut all: Vec<u8> = v[..6].iter().chain(&v[8..]).copied().collect();
                all.sort_unstable();
                median_of_6_and_5(&mut v);
                assert_eq!(v[5], all[5], "cut {cut}, bits {bits:05b}");
            }
        }
    }

    #[test]
    fn both_paths_equal_sorting_each_window_at_awkward_sizes() {
        let sizes = [
            (1, 1),
            (1, 6),
            (6, 1),
            (2, 3),
            (3, 2),
            (5, 5),
            (7, 4),
            (33, 17),
            (67, 9),
            (130, 3),
        ];
        for (w, h) in sizes {
            for cn in 1..=4u8 {
                // Few levels make ties, which a wrong network gets wrong most often.
                for levels in [3, 256] {
                    let img = noise(w, h, cn, w * 31 + h * 7 + u32::from(cn), levels);
                    for k in [3, 5, 7] {
                        let want = naive(&img, k as usize);
                        assert_eq!(
                            median(&img, k).u8_data(),
                            &want[..],
                            "{w}x{h}x{cn}, ksize {k}, {levels} levels"
                        );
                    }
                    let lanes = median_lanes(&img, 5);
                    assert_eq!(lanes.u8_data(), median5(&img).u8_data(), "{w}x{h}x{cn}");
                }
            }
        }
    }

    #[test]
    fn parallel_bands_equal_one_band() {
        // Rows of 111 samples: a band is 2,362 rows (even, as 5x5 needs), so 5,001 rows
        // make three bands, the last one odd.
        let img = noise(37, 5001, 3, 9, 256);
        let one = par::test_pool(1);
        let many = par::test_pool(4);
        for k in [3, 5] {
            let a = one.install(|| median(&img, k));
            let b = many.install(|| median(&img, k));
            assert_eq!(a, b, "ksize {k}");
        }
        assert_eq!(median(&img, 5).u8_data(), &naive(&img, 5)[..]);
    }

    #[test]
    fn median_network_selects_the_median_of_every_permutation_sample() {
        for k in [3usize, 5, 7] {
            let n = k * k;
            let (size, net) = median_network(n);
            let mut seed = 12345u64;
            for _ in 0..2000 {
                let mut v: Vec<u8> = (0..n)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        (seed >> 56) as u8
                    })
                    .collect();
                let mut lanes = v.clone();
                lanes.resize(size, 255);
                run_network(&mut lanes, 1, &net);
                v.sort_unstable();
                assert_eq!(lanes[n / 2], v[n / 2], "k={k}");
            }
        }
    }
}
