//! Splitting work on one image across the rayon pool.
//!
//! Ops call these helpers instead of rayon directly so that the band size (and with it
//! the balance between scheduling overhead and parallelism) is decided in one place.
//! They run on whatever pool the caller installed, so `--threads` is never exceeded.

use rayon::prelude::*;

/// Samples per parallel task: large enough that rayon's overhead is negligible,
/// small enough that a big image spreads over every thread.
pub(crate) const TASK_SAMPLES: usize = 1 << 18;

/// Runs `f(first_row, rows)` over bands of whole rows of `out` in parallel.
pub fn bands<T: Send>(out: &mut [T], row_len: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    bands_by(out, row_len, 1, f)
}

/// [`bands`] whose bands are whole multiples of `rows` rows (the last one aside), for a
/// filter that makes several output rows at once.
pub fn bands_by<T: Send>(
    out: &mut [T],
    row_len: usize,
    rows: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    split(out, TASK_SAMPLES, row_len, rows, false, f)
}

/// [`bands`] for a pass that reads `cost` source samples per output sample: bands of
/// about [`TASK_SAMPLES`] source samples rather than output samples, so that a band
/// takes about as long as a point op's. A 12 MP halving (cost 4) made 12 bands of
/// about 46 us on gray when sized by its output, and the thread that ended first
/// waited up to a band for the other; sized by its source, two threads against one:
/// gray+alpha 1.85 -> 1.97x, RGB 1.89 -> 2.00x, RGBA 2.00 -> 2.08x, gray 1.68-1.95x
/// either way (medians of 11-15 alternating rounds; one thread unchanged).
pub fn bands_costed<T: Send>(
    out: &mut [T],
    row_len: usize,
    cost: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    split(out, TASK_SAMPLES / cost.max(1), row_len, 1, false, f)
}

/// Samples per band of [`move_bands`].
const MOVE_SAMPLES: usize = TASK_SAMPLES / 4;

/// [`bands`] of [`MOVE_SAMPLES`], for an op that only moves samples (copy, crop, pad,
/// flip).
///
/// Where `last_first`, the bands are handed out from the last to the first, which is
/// the order they run in on one thread (and on each thread within its share): for a
/// pass that reads its source back to front and walks each band's rows from the last,
/// so that the source is read as one falling stream that the hardware prefetcher
/// follows, rather than a row-long one that turns at every row (a left-right flip's
/// mirror, 1.2x faster).
///
/// The bands are a quarter of [`TASK_SAMPLES`]: at memory speed a band of
/// [`TASK_SAMPLES`] takes about 19 us, longer than a rayon thread that has run out of
/// work spins (33 yields) before it sleeps, so between ops it often falls asleep and
/// wakes late into the next (on this project's VMs a wake takes 35-40 us).
/// With bands a quarter as long, two threads against one on 12 MP: gray flip 1.74 ->
/// 1.99x and crop 1.81 -> 1.97x, RGB flip 1.97 -> 2.09x and crop 1.88 -> 1.97x (medians
/// of 7 alternating rounds); pad, copy, the other channel counts and one thread
/// unchanged.
pub fn move_bands<T: Send>(
    out: &mut [T],
    row_len: usize,
    last_first: bool,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    split(out, MOVE_SAMPLES, row_len, 1, last_first, f)
}

/// [`bands_by`], its bands of `task` samples at most, handed out from the last band
/// to the first where `last_first`.
fn split<T: Send>(
    out: &mut [T],
    task: usize,
    row_len: usize,
    rows: usize,
    last_first: bool,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if row_len == 0 || out.is_empty() {
        return;
    }
    let rows_per_band = (task / row_len)
        .min(band_rows_for_balance(out.len() / row_len))
        .max(1)
        .next_multiple_of(rows.max(1));
    let band = |(i, band): (usize, &mut [T])| f(i * rows_per_band, band);
    let bands = out.par_chunks_mut(rows_per_band * row_len).enumerate();
    if last_first {
        bands.rev().for_each(band)
    } else {
        bands.for_each(band)
    }
}

/// Bands per thread, at least, where a pool has several: with few bands the last ones
/// leave threads idle (the 7 bands of a 12 MP gray image's area resize to 0.37 ran 4
/// on one thread and 3 on the other: 1.75x at best). Not many more, since a band may
/// redo a few rows at its edges.
const BANDS_PER_THREAD: usize = 4;

/// The most rows a band of `total` rows may have so that each of the pool's threads
/// gets [`BANDS_PER_THREAD`] bands; no limit on one thread, where more bands are only
/// overhead.
fn band_rows_for_balance(total: usize) -> usize {
    match rayon::current_num_threads() {
        0 | 1 => usize::MAX,
        t => total.div_ceil(t * BANDS_PER_THREAD),
    }
}

/// Whether the CPU is an AMD one (its CPUID vendor string), where `rep movsb` is slow
/// for rows offset against each other (see [`copy_forward`]); false off x86_64.
pub fn is_amd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AMD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AMD.get_or_init(|| {
            // Leaf 0: the vendor string in EBX, EDX, ECX ("AuthenticAMD").
            let id = std::arch::x86_64::__cpuid(0);
            (id.ebx, id.edx, id.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163)
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether the CPU has AVX-512BW and VBMI, the byte permutes across a whole register
/// that the permute paths of several ops use (false off x86_64).
pub fn has_vbmi() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vbmi")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether the CPU has AVX2 (false off x86_64), for the paths that pick their kernel
/// once per call rather than through [`dispatch`].
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// A mask of the low `n` bits, all 64 from 64 on: the lanes of a masked AVX-512 load
/// or store of 64 bytes that lie inside a buffer with `n` bytes left.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn mask_low(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// A buffer of `len` elements that `fill` writes, not zeroed first. For an op that
/// only moves samples, zeroing its output is a third pass over memory beside the read
/// and the write: flip on a 12 MP RGB image spent 12% of its time in that memset.
///
/// # Safety
/// `fill` must write every element of the slice it is given before reading it.
pub unsafe fn uninit<T: Copy>(len: usize, fill: impl FnOnce(&mut [T])) -> Vec<T> {
    let mut out = Vec::with_capacity(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    // SAFETY: `MaybeUninit<T>` and `T` have the same layout, and the caller's `fill`
    // writes each element before anything reads it.
    fill(unsafe { &mut *(spare as *mut [std::mem::MaybeUninit<T>] as *mut [T]) });
    // SAFETY: the first `len` elements are now written (the caller's promise), and the
    // capacity is at least `len`.
    unsafe { out.set_len(len) };
    out
}

/// `dst.copy_from_slice(src)` (the same length) by moves of 64 elements, front to
/// back, for a row copy whose source and destination shift against each other from
/// row to row (pad's, and a crop's). `copy_from_slice` calls glibc's `memcpy`, which
/// copies rows of a few KB with `rep movsb`, and on this AMD EPYC that instruction's
/// speed depends on where the two rows sit in their cache lines relative to each
/// other: 3,000 copies of 4,000 bytes took 0.40 ms with the destination 0 or 32 bytes
/// past the source's offset and 0.87 ms at 16 (a C loop of `memcpy`, best of 60). Pad on gray ran at two
/// thirds of a whole-image copy's speed with `copy_from_slice` and at the copy's speed
/// with this. Where the offsets stay equal (flip's row copies), `rep movsb` is the
/// faster one, so those keep `copy_from_slice`. On an Intel Xeon (model 167) it is the
/// other way round: pad with `copy_from_slice` ran 1.02x (gray+alpha) to 1.26x (RGB)
/// faster than with this (median of 7 alternating rounds, 12 MP), so pad and crop call
/// this only where [`is_amd`]. Built for AVX2 where present (32-byte moves): on an AMD
/// EPYC Zen 3 pad ran 1.01x (RGBA) to 1.12x (gray) faster than with the baseline
/// build's 16-byte moves, and a gray crop 1.12x to 1.29x faster than with
/// `copy_from_slice` (other channel counts within the noise).
pub fn copy_forward<T: Copy>(dst: &mut [T], src: &[T]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn wide<T: Copy>(dst: &mut [T], src: &[T]) {
            copy_forward_generic(dst, src)
        }
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { wide(dst, src) };
    }
    copy_forward_generic(dst, src)
}

/// [`copy_forward`]'s loop, inlined into each build of it.
#[inline(always)]
fn copy_forward_generic<T: Copy>(dst: &mut [T], src: &[T]) {
    let (d, dt) = dst.as_chunks_mut::<64>();
    let (s, st) = src.as_chunks::<64>();
    for (d, s) in d.iter_mut().zip(s) {
        *d = *s;
    }
    dt.copy_from_slice(st);
}

/// Asks the CPU to start loading every cache line of `bytes`: for a row a filter reads
/// next, which the hardware prefetcher does not foresee when the reads jump from row to
/// row (box_blur's running column sums on gray: 1.07-1.16x with it; on RGBA about
/// even). A hint only; no effect off x86_64.
pub fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint, and the address is inside `bytes`.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Runs `f` over chunks of a flat buffer whose length is a multiple of `unit`. Each
/// chunk is a whole number of units and of 64 elements, so that on an aligned buffer
/// every chunk starts on a cache line (as the 64-byte vectors of the point ops want: on
/// RGB, chunks of whole pixels alone started anywhere in a line).
pub fn chunks<T: Send>(data: &mut [T], unit: usize, f: impl Fn(&mut [T]) + Sync + Send) {
    let unit = unit.max(1);
    let block = unit / gcd(unit, 64) * 64;
    let size = (TASK_SAMPLES / block).max(1) * block;
    data.par_chunks_mut(size).for_each(f);
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Reflect-101 border index (`gfedcb|abcdefgh|gfedcba`), as OpenCV's BORDER_DEFAULT.
pub fn reflect101(p: isize, len: usize) -> usize {
    let len = len as isize;
    if len == 1 {
        return 0;
    }
    let mut p = p;
    loop {
        if p < 0 {
            p = -p;
        } else if p >= len {
            p = 2 * len - p - 2;
        } else {
            return p as usize;
        }
    }
}

/// Replicate border index (`aaaaaa|abcdefgh|hhhhhhh`).
pub fn replicate(p: isize, len: usize) -> usize {
    p.clamp(0, len as isize - 1) as usize
}

/// Defines `$name(args)`, which runs `$body` compiled with the target features listed
/// in brackets when the CPU has them all (`[a] else [b]`: the first list the CPU has
/// all of), and for the baseline target otherwise. The
/// body must be plain Rust; the point is to let the compiler vectorise it wider, or use
/// an instruction (FMA for `mul_add`) instead of a library call. Results are identical
/// either way (`mul_add` is fused in both).
macro_rules! dispatch {
    ([$($f1:tt),+] else [$($f2:tt),+] $(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature($(enable = $f1),+)]
                unsafe fn widest($($arg: $ty),*) {
                    generic($($arg),*)
                }
                #[target_feature($(enable = $f2),+)]
                unsafe fn wide($($arg: $ty),*) {
                    generic($($arg),*)
                }
                if $(std::arch::is_x86_feature_detected!($f1))&&+ {
                    // SAFETY: the CPU has every feature `widest` is compiled for, checked
                    // just above.
                    return unsafe { widest($($arg),*) };
                }
                if $(std::arch::is_x86_feature_detected!($f2))&&+ {
                    // SAFETY: as above, for `wide`.
                    return unsafe { wide($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
    ([$($feature:tt),+] $(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature($(enable = $feature),+)]
                unsafe fn wide($($arg: $ty),*) {
                    generic($($arg),*)
                }
                if $(std::arch::is_x86_feature_detected!($feature))&&+ {
                    // SAFETY: the CPU has every feature `wide` is compiled for, checked
                    // just above.
                    return unsafe { wide($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}
pub(crate) use dispatch;

/// [`dispatch`] for AVX2 alone (no FMA, so no contraction can change a result).
macro_rules! avx2_dispatch {
    ($($item:tt)*) => {
        $crate::ops::par::dispatch! { ["avx2"] $($item)* }
    };
}
pub(crate) use avx2_dispatch;

/// [`dispatch`] for AVX-512BW where present, else AVX2: for integer bodies whose
/// vectors gain from twice the width (and from 32 vector registers).
macro_rules! avx512_dispatch {
    ($($item:tt)*) => {
        $crate::ops::par::dispatch! { ["avx512bw"] else ["avx2"] $($item)* }
    };
}
pub(crate) use avx512_dispatch;

/// [`dispatch`] for AVX-512F and FMA, else AVX2 and FMA: for bodies that call
/// `mul_add` (bicubic's vertical pass ran 1.03-1.07x faster with 64-byte vectors than
/// with AVX2's on an Intel Xeon).
macro_rules! fma_dispatch {
    ($($item:tt)*) => {
        $crate::ops::par::dispatch! { ["avx512f", "fma"] else ["avx2", "fma"] $($item)* }
    };
}
pub(crate) use fma_dispatch;

/// A rayon pool of `threads` threads, for tests that compare one thread against several.
#[cfg(test)]
pub(crate) fn test_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
}

/// `t.round_ties_even()` for |t| < 2^22, by adding and removing 1.5 * 2^23 in the
/// default rounding mode (round to nearest, ties to even): the sum's last bit is the
/// rounded integer. Unlike `round_ties_even`, which is a call to `rintf` without SSE4.1,
/// it vectorises on any x86-64. Sharpen's and resize's values stay within a few thousand.
#[inline(always)]
pub(crate) fn round_ties_even_small(t: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (t + MAGIC) - MAGIC
}

/// `round_ties_even_small(t).clamp(0.0, 255.0) as u8` for |t| < 2^22, in integers: the
/// rounded value read from the bits of `t + 1.5 * 2^23`, then clamped. The float-to-u8
/// cast's saturation made the compiler convert sample by sample (half of bicubic's
/// vertical pass); this vectorises.
#[inline(always)]
pub(crate) fn round_to_u8(t: f32) -> u8 {
    const MAGIC: f32 = 12_582_912.0;
    let rounded = ((t + MAGIC).to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    rounded.clamp(0, 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costed_bands_are_whole_rows_that_cover_the_output_once() {
        // 3,000 rows of 500 samples: at cost 4, bands of 131 rows rather than 524, so
        // one thread also sees several; each band is told its first row.
        let (rows, row_len) = (3000usize, 500usize);
        for threads in [1, 2] {
            for cost in [1, 4, 1000] {
                let mut out = vec![u32::MAX; rows * row_len];
                let bands = std::sync::atomic::AtomicUsize::new(0);
                test_pool(threads).install(|| {
                    bands_costed(&mut out, row_len, cost, |y0, band| {
                        assert_eq!(band.len() % row_len, 0, "whole rows");
                        bands.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        for (r, row) in band.chunks_exact_mut(row_len).enumerate() {
                            row.iter_mut().for_each(|v| *v = (y0 + r) as u32);
                        }
                    })
                });
                for (y, row) in out.chunks_exact(row_len).enumerate() {
                    assert!(row.iter().all(|&v| v == y as u32), "row {y}, cost {cost}");
                }
                let want = rows.div_ceil((TASK_SAMPLES / (row_len * cost)).max(1));
                let got = bands.into_inner();
                if threads == 1 {
                    assert_eq!(got, want, "bands at cost {cost}");
                } else {
                    assert!(got >= want.min(threads * BANDS_PER_THREAD), "{got} bands");
                }
            }
        }
    }

    #[test]
    fn chunks_are_whole_units_starting_on_64_element_boundaries() {
        for unit in [1, 2, 3, 4, 6] {
            let len = unit * 600_001;
            let mut data = vec![0u8; len];
            let base = data.as_ptr() as usize;
            let seen = std::sync::Mutex::new(Vec::new());
            chunks(&mut data, unit, |c| {
                c.iter_mut().for_each(|v| *v += 1);
                let start = c.as_ptr() as usize - base;
                seen.lock().unwrap().push((start, c.len()));
            });
            let mut seen = seen.into_inner().unwrap();
            seen.sort();
            assert!(seen.len() > 1, "unit {unit}: one chunk only");
            for &(start, n) in &seen {
                assert_eq!(start % 64, 0, "unit {unit}: chunk at {start}");
                assert_eq!(n % unit, 0, "unit {unit}: chunk of {n}");
            }
            assert!(
                data.iter().all(|&v| v == 1),
                "unit {unit}: each element once"
            );
        }
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn is_amd_agrees_with_the_kernels_vendor_id() {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let vendor = info
            .lines()
            .find_map(|l| l.strip_prefix("vendor_id"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim())
            .unwrap();
        assert_eq!(is_amd(), vendor == "AuthenticAMD", "vendor_id {vendor}");
    }

    #[test]
    fn copy_forward_copies_every_length_and_offset() {
        let src: Vec<u16> = (0..400u16).map(|i| i.wrapping_mul(40_503)).collect();
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 300] {
            for off in [0, 1, 7, 33] {
                let mut dst = vec![0u16; len + 2 * off];
                copy_forward(&mut dst[off..off + len], &src[off..off + len]);
                assert_eq!(
                    &dst[off..off + len],
                    &src[off..off + len],
                    "len {len} off {off}"
                );
                assert!(dst[..off].iter().chain(&dst[off + len..]).all(|&v| v == 0));
                let bytes: Vec<u8> = src.iter().map(|&v| v as u8).collect();
                let mut out = vec![0u8; len];
                copy_forward(&mut out, &bytes[off..off + len]);
                assert_eq!(out, &bytes[off..off + len]);
            }
        }
    }
}
