// Neighbourhood filters on interleaved 8-bit images, bit-exact with src/ops/filter.rs.
//
// The grid is (runs of SPAN bytes of a row, rows), and a run goes in 16-byte chunks
// (see common.cl for SPAN). A chunk whose whole neighbourhood lies inside the row runs
// on vectors (neighbours of a sample are whole pixels, cn bytes, away); chunks at the
// left and right borders, and the partial chunk at the end of a row, run byte by byte
// with the border rule. Rows outside the image are mapped once per
// work-item.
#pragma OPENCL FP_CONTRACT OFF

// Horizontal weighted sum of chunk xb of row y (lanes past the row end are zero).
inline ushort16 hsum16(__global const uchar* src, int w, int cn, int y, int xb,
                       __global const uint* k, int ks) {
    int rb = w * cn, a = ks / 2;
    __global const uchar* row = src + y * rb;
    if (xb - a * cn >= 0 && xb + 16 + a * cn <= rb) {
        ushort16 s = (ushort16)0;
        for (int i = 0; i < ks; i++) s += (ushort)k[i] * convert_ushort16(LOAD16(uchar, row + xb + (i - a) * cn));
        return s;
    }
    ushort t[16];
    for (int l = 0; l < 16; l++) {
        int b = xb + l;
        uint s = 0;
        if (b < rb) {
            int x = b / cn, c = b - x * cn;
            for (int i = 0; i < ks; i++) s += k[i] * (uint)row[reflect101(x + i - a, w) * cn + c];
        }
        t[l] = (ushort)s;
    }
    return vload16(0, t);
}

// Horizontal pass of a separable filter with integer weights summing to at most 256
// (Gaussian) or at most 16 ones (box), so that a sum fits 16 bits.
inline void sep_h_chunk(__global const uchar* src, __global ushort* tmp, int w, int h, int cn,
                      __global const uint* k, int ks, int xb) {
    int y = get_global_id(1);
    int rb = w * cn;
    if (xb >= rb || y >= h) return;
    ushort16 s = hsum16(src, w, cn, y, xb, k, ks);
    __global ushort* out = tmp + y * rb;
    if (xb + 16 <= rb) {
        STORE16(ushort, s, out + xb);
    } else {
        ushort t[16];
        vstore16(s, 0, t);
        for (int b = xb; b < rb; b++) out[b] = t[b - xb];
    }
}

__kernel void k_sep_h(__global const uchar* src, __global ushort* tmp, int w, int h, int cn,
                      __global const uint* k, int ks) {
    int first = get_global_id(0) * SPAN;
    for (int xb = first; xb < first + SPAN; xb += 16) sep_h_chunk(src, tmp, w, h, cn, k, ks, xb);
}

// The vertical sum s of a separable filter to 8 bits (scalar or vector); mode 0:
// Gaussian, (s + 2^15) >> 16; mode 1: box through OpenCV 5's 32-bit fixed-point
// reciprocal, ((s + delta) * scale) >> 32 (the high half of the product).
#define SEP_ROUND(s, mode, delta, scale) \
    ((mode) == 0 ? ((s) + 32768u) >> 16 : mul_hi((s) + (delta), (s) * 0u + (scale)))

// Vertical pass (see SEP_ROUND for mode, delta and scale).
inline void sep_v_chunk(__global const ushort* tmp, __global uchar* dst, int w, int h, int cn,
                      __global const uint* k, int ks, int mode, uint delta, uint scale, int xb) {
    int y = get_global_id(1);
    int rb = w * cn;
    if (xb >= rb || y >= h) return;
    int a = ks / 2;
    if (xb + 16 <= rb) {
        uint16 s = (uint16)0;
        for (int j = 0; j < ks; j++)
            s += k[j] * convert_uint16(LOAD16(ushort, tmp + reflect101(y + j - a, h) * rb + xb));
        uint16 v = SEP_ROUND(s, mode, delta, scale);
        STORE16(uchar, convert_uchar16_sat(v), dst + y * rb + xb);
    } else {
        for (int b = xb; b < rb; b++) {
            uint s = 0;
            for (int j = 0; j < ks; j++) s += k[j] * (uint)tmp[reflect101(y + j - a, h) * rb + b];
            uint v = SEP_ROUND(s, mode, delta, scale);
            dst[y * rb + b] = (uchar)min(v, 255u);
        }
    }
}

__kernel void k_sep_v(__global const ushort* tmp, __global uchar* dst, int w, int h, int cn,
                      __global const uint* k, int ks, int mode, uint delta, uint scale) {
    int first = get_global_id(0) * SPAN;
    for (int xb = first; xb < first + SPAN; xb += 16) sep_v_chunk(tmp, dst, w, h, cn, k, ks, mode, delta, scale, xb);
}

// v*(1+amount) - blurred*amount on colour channels, rounded half to even; SPAN bytes
// per work-item.
__kernel void k_unsharp(__global uchar* img, __global const uchar* blurred, int nbytes, int cn,
                        float a, float b) {
    int o = get_global_id(0) * SPAN;
    int end = min(o + SPAN, nbytes);
    uchar16 keep = alpha_lanes(cn);
    int j = o;
    for (; j + 16 <= end; j += 16) {
        uchar16 v = LOAD16(uchar, img + j);
        float16 t = convert_float16(v) * a + convert_float16(LOAD16(uchar, blurred + j)) * b;
        uchar16 r = convert_uchar16_sat(clamp(rint(t), 0.0f, 255.0f));
        STORE16(uchar, select(r, v, keep), img + j);
    }
    for (; j < end; j++) {
        if (is_alpha(j, cn)) continue;
        float t = (float)img[j] * a + (float)blurred[j] * b;
        img[j] = (uchar)clamp(rint(t), 0.0f, 255.0f);
    }
}

// |dx|, |dy| or |dx|+|dy| saturated, per colour channel, border reflect-101; alpha
// copied. dir: 0 x, 1 y, 2 xy.
inline void sobel_chunk(__global const uchar* src, __global uchar* dst, int w, int h, int cn, int dir, int xb) {
    int y = get_global_id(1);
    int rb = w * cn;
    if (xb >= rb || y >= h) return;
    __global const uchar* rm = src + reflect101(y - 1, h) * rb;
    __global const uchar* r0 = src + y * rb;
    __global const uchar* rp = src + reflect101(y + 1, h) * rb;
    if (xb - cn >= 0 && xb + 16 + cn <= rb) {
#define L(r, d) convert_short16(LOAD16(uchar, (r) + xb + (d)))
        short16 dx = (L(rm, cn) - L(rm, -cn)) + (short)2 * (L(r0, cn) - L(r0, -cn)) + (L(rp, cn) - L(rp, -cn));
        short16 dy = (L(rp, -cn) + (short)2 * L(rp, 0) + L(rp, cn)) - (L(rm, -cn) + (short)2 * L(rm, 0) + L(rm, cn));
#undef L
        ushort16 ax = min(convert_ushort16(abs(dx)), (ushort)255), ay = min(convert_ushort16(abs(dy)), (ushort)255);
        ushort16 m = dir == 0 ? ax : dir == 1 ? ay : min(ax + ay, (ushort)255);
        STORE16(uchar, select(convert_uchar16(m), vload16(0, r0 + xb), alpha_lanes(cn)), dst + y * rb + xb);
    } else {
        int end = min(xb + 16, rb);
        for (int b = xb; b < end; b++) {
            if (is_alpha(b, cn)) { dst[y * rb + b] = r0[b]; continue; }
            int x = b / cn, c = b - x * cn;
            int xm = reflect101(x - 1, w) * cn + c, xp = reflect101(x + 1, w) * cn + c, xc = x * cn + c;
            int dx = (rm[xp] - rm[xm]) + 2 * (r0[xp] - r0[xm]) + (rp[xp] - rp[xm]);
            int dy = (rp[xm] + 2 * rp[xc] + rp[xp]) - (rm[xm] + 2 * rm[xc] + rm[xp]);
            int ax = min(abs(dx), 255u), ay = min(abs(dy), 255u);
            dst[y * rb + b] = (uchar)(dir == 0 ? ax : dir == 1 ? ay : min(ax + ay, 255));
        }
    }
}

__kernel void k_sobel(__global const uchar* src, __global uchar* dst, int w, int h, int cn, int dir) {
    int first = get_global_id(0) * SPAN;
    for (int xb = first; xb < first + SPAN; xb += 16) sobel_chunk(src, dst, w, h, cn, dir, xb);
}

// Median over a k x k window (k <= 7), border replicate. net holds the compare-exchange
// pairs of a selection network (from src/ops/filter.rs) over `size` inputs padded with
// 255; its element k*k/2 is the median.
inline void median_chunk(__global const uchar* src, __global uchar* dst, int w, int h, int cn, int k,
                       __global const int2* net, int nlen, int size, int xb) {
    int y = get_global_id(1);
    int rb = w * cn;
    if (xb >= rb || y >= h) return;
    int a = k / 2, n = k * k;
    if (xb - a * cn >= 0 && xb + 16 + a * cn <= rb) {
        // Unrolled networks generated from the CPU's (see median_source in opencl/mod.rs);
        // the border bytes below run the same network from `net`.
        uchar16 m = k == 3 ? median3_vec(src, rb, h, y, cn, xb)
                  : k == 5 ? median5_vec(src, rb, h, y, cn, xb)
                           : median7_vec(src, rb, h, y, cn, xb);
        STORE16(uchar, m, dst + y * rb + xb);
    } else {
        int end = min(xb + 16, rb);
        for (int b = xb; b < end; b++) {
            int x = b / cn, c = b - x * cn;
            uchar v[64];
            int m = 0;
            for (int j = 0; j < k; j++)
                for (int i = 0; i < k; i++)
                    v[m++] = src[replicate(y + j - a, h) * rb + replicate(x + i - a, w) * cn + c];
            for (; m < size; m++) v[m] = 255;
            for (int p = 0; p < nlen; p++) {
                int2 e = net[p];
                uchar x0 = v[e.x], z = v[e.y];
                v[e.x] = min(x0, z);
                v[e.y] = max(x0, z);
            }
            dst[y * rb + b] = v[n / 2];
        }
    }
}

__kernel void k_median(__global const uchar* src, __global uchar* dst, int w, int h, int cn, int k,
                       __global const int2* net, int nlen, int size) {
    int first = get_global_id(0) * SPAN;
    for (int xb = first; xb < first + SPAN; xb += 16) median_chunk(src, dst, w, h, cn, k, net, nlen, size, xb);
}

// Erosion (OP min, NONE 255) or dilation (OP max, NONE 0) across chunk xb of row y,
// the window clipped to the row (lanes past the row end are NONE).
#define MORPH_H16(NAME, OP, NONE)                                                              \
__attribute__((always_inline)) inline uchar16 NAME##_h16(__global const uchar* src, int w, int cn, int y, int xb, const int k) { \
    int rb = w * cn, a = k / 2;                                                                \
    __global const uchar* row = src + y * rb;                                                  \
    if (xb - a * cn >= 0 && xb + 16 + (k - 1 - a) * cn <= rb) {                                \
        uchar16 m = LOAD16(uchar, row + xb - a * cn);                                          \
        for (int i = 1; i < k; i++) m = OP(m, LOAD16(uchar, row + xb + (i - a) * cn));         \
        return m;                                                                              \
    }                                                                                          \
    uchar t[16];                                                                               \
    for (int l = 0; l < 16; l++) {                                                             \
        int b = xb + l;                                                                        \
        uchar m = NONE;                                                                        \
        if (b < rb) {                                                                          \
            int x = b / cn, c = b - x * cn;                                                    \
            int lo = max(x - a, 0), hi = min(x + k - a, w);                                    \
            for (int p = lo; p < hi; p++) m = OP(m, row[p * cn + c]);                          \
        }                                                                                      \
        t[l] = m;                                                                              \
    }                                                                                          \
    return vload16(0, t);                                                                      \
}

MORPH_H16(erode, min, 255)
MORPH_H16(dilate, max, 0)

// One pass of erosion (dilate = 0) or dilation along x (horiz = 1) or y; the window is
// clipped to the image, as OpenCV's default border value does.
inline void morph_chunk(__global const uchar* src, __global uchar* dst, int w, int h, int cn, int k,
                      int dilate, int horiz, int xb) {
    int y = get_global_id(1);
    int rb = w * cn;
    if (xb >= rb || y >= h) return;
    if (horiz) {
        uchar16 m = dilate ? dilate_h16(src, w, cn, y, xb, k) : erode_h16(src, w, cn, y, xb, k);
        store_chunk(m, dst + y * rb, xb, rb);
        return;
    }
    int a = k / 2;
    int lo = max(y - a, 0), hi = min(y + k - a, h);
    if (xb + 16 <= rb) {
        uchar16 m = LOAD16(uchar, src + lo * rb + xb);
        for (int p = lo + 1; p < hi; p++) {
            uchar16 v = LOAD16(uchar, src + p * rb + xb);
            m = dilate ? max(m, v) : min(m, v);
        }
        STORE16(uchar, m, dst + y * rb + xb);
    } else {
        for (int b = xb; b < rb; b++) {
            uchar m = dilate ? 0 : 255;
            for (int p = lo; p < hi; p++) m = dilate ? max(m, src[p * rb + b]) : min(m, src[p * rb + b]);
            dst[y * rb + b] = m;
        }
    }
}

__kernel void k_morph(__global const uchar* src, __global uchar* dst, int w, int h, int cn, int k,
                      int dilate, int horiz) {
    int first = get_global_id(0) * SPAN;
    for (int xb = first; xb < first + SPAN; xb += 16) morph_chunk(src, dst, w, h, cn, k, dilate, horiz, xb);
}

// The fused kernels below keep the last few horizontal results of one 16-byte column
// chunk in a ring while walking down a band of rows, so the image is read once and
// written once, with no intermediate buffer. They take windows of up to FUSED_MAX taps;
// larger ones use the two-pass kernels above.
#define FUSED_MAX 15

// Gaussian (mode 0) or box (mode 1) blur in one pass, as k_sep_h then k_sep_v. The grid
// is (16-byte chunks of a row, bands of `band` rows).
__kernel void k_sep_fused(__global const uchar* src, __global uchar* dst, int w, int h, int cn,
                          __global const uint* k, int ks, int mode, uint delta, uint scale, int band) {
    int xb = get_global_id(0) * 16, y0 = get_global_id(1) * band;
    int rb = w * cn;
    if (xb >= rb || y0 >= h) return;
    int y1 = min(y0 + band, h), a = ks / 2;
    ushort16 ring[FUSED_MAX];
    for (int j = 0; j < ks - 1; j++) ring[j] = hsum16(src, w, cn, reflect101(y0 - a + j, h), xb, k, ks);
    for (int y = y0; y < y1; y++) {
        ring[ks - 1] = hsum16(src, w, cn, reflect101(y + ks - 1 - a, h), xb, k, ks);
        uint16 s = (uint16)0;
        for (int j = 0; j < ks; j++) s += k[j] * convert_uint16(ring[j]);
        for (int j = 0; j < ks - 1; j++) ring[j] = ring[j + 1];
        uint16 v = SEP_ROUND(s, mode, delta, scale);
        store_chunk(convert_uchar16_sat(v), dst + y * rb, xb, rb);
    }
}

// Erosion (OP min, NONE 255) and dilation (OP max, NONE 0) in one pass each, as k_morph
// across then down; rows outside the image are left out of the window. The grid is
// (16-byte chunks, bands of rows). The default 3x3 window has its own walker with the
// ring in registers (PoCL leaves a ring array in memory even for a constant k).
#define MORPH_FUSED(NAME, OP, NONE)                                                            \
__attribute__((always_inline)) inline void NAME##_band(__global const uchar* src, __global uchar* dst, int w, int h, int cn,  \
                        const int k, int xb, int y0, int y1) {                                 \
    int rb = w * cn, a = k / 2;                                                                \
    uchar16 ring[FUSED_MAX];                                                                   \
    for (int j = 0; j < k - 1; j++) {                                                          \
        int sy = y0 - a + j;                                                                   \
        ring[j] = sy >= 0 && sy < h ? NAME##_h16(src, w, cn, sy, xb, k) : (uchar16)NONE;       \
    }                                                                                          \
    for (int y = y0; y < y1; y++) {                                                            \
        int sy = y + k - 1 - a;                                                                \
        ring[k - 1] = sy < h ? NAME##_h16(src, w, cn, sy, xb, k) : (uchar16)NONE;              \
        uchar16 m = ring[0];                                                                   \
        for (int j = 1; j < k; j++) m = OP(m, ring[j]);                                        \
        for (int j = 0; j < k - 1; j++) ring[j] = ring[j + 1];                                 \
        store_chunk(m, dst + y * rb, xb, rb);                                                  \
    }                                                                                          \
}                                                                                              \
/* The 3x3 window (the default) with the ring in three variables. */                         \
__attribute__((always_inline)) inline void NAME##_band3(__global const uchar* src,             \
        __global uchar* dst, int w, int h, int cn, int xb, int y0, int y1) {                   \
    int rb = w * cn;                                                                           \
    uchar16 r0 = y0 > 0 ? NAME##_h16(src, w, cn, y0 - 1, xb, 3) : (uchar16)NONE;               \
    uchar16 r1 = NAME##_h16(src, w, cn, y0, xb, 3);                                            \
    for (int y = y0; y < y1; y++) {                                                            \
        uchar16 r2 = y + 1 < h ? NAME##_h16(src, w, cn, y + 1, xb, 3) : (uchar16)NONE;         \
        uchar16 m = OP(OP(r0, r1), r2);                                                        \
        r0 = r1;                                                                               \
        r1 = r2;                                                                               \
        store_chunk(m, dst + y * rb, xb, rb);                                                  \
    }                                                                                          \
}                                                                                              \
__kernel void k_##NAME##_fused(__global const uchar* src, __global uchar* dst, int w, int h,   \
                               int cn, int k, int band) {                                      \
    int xb = get_global_id(0) * 16, y0 = get_global_id(1) * band;                              \
    if (xb >= w * cn || y0 >= h) return;                                                       \
    int y1 = min(y0 + band, h);                                                                \
    if (k == 3) NAME##_band3(src, dst, w, h, cn, xb, y0, y1);                                  \
    else NAME##_band(src, dst, w, h, cn, k, xb, y0, y1);                                       \
}

MORPH_FUSED(erode, min, 255)
MORPH_FUSED(dilate, max, 0)
