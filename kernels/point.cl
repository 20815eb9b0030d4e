// Point operations on interleaved 8-bit images (cn channels; with 2 or 4 channels the
// last one is alpha and is left alone). Bit-exact with src/ops/point.rs: no contraction
// of a*b+c into fma.
//
// Each work-item handles 16 consecutive bytes with vector types, so that a CPU device
// (PoCL) runs whole SIMD registers and a GPU makes 16-byte coalesced accesses; the last
// partial chunk is done byte by byte. Launches round the work-item count up to the
// work-group size, so every kernel checks its range.
#pragma OPENCL FP_CONTRACT OFF

// Each work-item covers SPAN bytes (16 on GPUs, more on CPU devices: see common.cl):
// whole 16-byte vectors, then single bytes at the end of the image.
#define FOR_SPAN(nbytes, VEC, ONE)                         \
    int o = get_global_id(0) * SPAN;                       \
    int end = min(o + SPAN, nbytes);                       \
    uchar16 keep = alpha_lanes(cn);                        \
    int j = o;                                             \
    for (; j + 16 <= end; j += 16) { VEC }                 \
    for (; j < end; j++) if (!is_alpha(j, cn)) { ONE }

__kernel void k_invert(__global uchar* img, int nbytes, int cn) {
    FOR_SPAN(nbytes,
        uchar16 v = LOAD16(uchar, img + j);
        STORE16(uchar, select((uchar16)255 - v, v, keep), img + j);,
        img[j] = 255 - img[j];)
}

// Adds amount (negative: subtracts), saturating.
__kernel void k_add_sat(__global uchar* img, int nbytes, int cn, int amount) {
    uchar a = (uchar)min(abs(amount), 255u);
    if (amount >= 0) {
        FOR_SPAN(nbytes,
            uchar16 v = LOAD16(uchar, img + j);
            STORE16(uchar, select(add_sat(v, (uchar16)a), v, keep), img + j);,
            img[j] = add_sat(img[j], a);)
    } else {
        FOR_SPAN(nbytes,
            uchar16 v = LOAD16(uchar, img + j);
            STORE16(uchar, select(sub_sat(v, (uchar16)a), v, keep), img + j);,
            img[j] = sub_sat(img[j], a);)
    }
}

// 255 where the value exceeds t, else 0.
__kernel void k_threshold(__global uchar* img, int nbytes, int cn, int t) {
    // t < 0: everything exceeds it; t >= 255: nothing does.
    uchar16 all = t < 0 ? (uchar16)255 : (uchar16)0;
    uchar16 tt = (uchar16)(uchar)clamp(t, 0, 255);
    FOR_SPAN(nbytes,
        uchar16 v = LOAD16(uchar, img + j);
        uchar16 r = as_uchar16(v > tt) | all;
        STORE16(uchar, select(r, v, keep), img + j);,
        img[j] = (int)img[j] > t ? 255 : 0;)
}

__kernel void k_lut(__global uchar* img, int nbytes, int cn, __global const uchar* table) {
    int o = get_global_id(0) * SPAN;
    int end = min(o + SPAN, nbytes);
    for (int j = o; j < end; j++)
        if (!is_alpha(j, cn)) img[j] = table[img[j]];
}

// OpenCV's 15-bit luma of unsigned r, g, b (scalars or vectors).
#define GRAY_OF(r, g, b) (((r) * 9798u + (g) * 19235u + (b) * 3735u + 16384u) >> 15)

// RGB(A) to gray(+alpha), OpenCV's 15-bit coefficients; 16 pixels per work-item.
__kernel void k_grayscale(__global const uchar* src, __global uchar* dst, int n, int cn) {
    int i = get_global_id(0) * 16;
    if (i + 16 <= n) {
        uchar16 r, g, b, a;
        if (cn == 3) load_rgb16(src + i * 3, &r, &g, &b);
        else load_rgba16(src + i * 4, &r, &g, &b, &a);
        uint16 y = GRAY_OF(convert_uint16(r), convert_uint16(g), convert_uint16(b));
        uchar16 gy = convert_uchar16(y);
        if (cn == 4) {
            uchar16 lo = (uchar16)(gy.s0, a.s0, gy.s1, a.s1, gy.s2, a.s2, gy.s3, a.s3, gy.s4, a.s4, gy.s5, a.s5, gy.s6, a.s6, gy.s7, a.s7);
            uchar16 hi = (uchar16)(gy.s8, a.s8, gy.s9, a.s9, gy.sa, a.sa, gy.sb, a.sb, gy.sc, a.sc, gy.sd, a.sd, gy.se, a.se, gy.sf, a.sf);
            STORE16(uchar, lo, dst + i * 2);
            STORE16(uchar, hi, dst + i * 2 + 16);
        } else {
            STORE16(uchar, gy, dst + i);
        }
    } else {
        for (int j = i; j < n; j++) {
            __global const uchar* p = src + j * cn;
            uchar gy = (uchar)GRAY_OF((uint)p[0], (uint)p[1], (uint)p[2]);
            if (cn == 4) {
                dst[j * 2] = gy;
                dst[j * 2 + 1] = p[3];
            } else {
                dst[j] = gy;
            }
        }
    }
}

// OpenCV's 8-bit HSV round trip with shifts, one pixel. Pixels x < vector_end truncate
// the final x*255 (OpenCV's vector blocks), the rest round half to even (its scalar tail).
inline void hsv_pixel(__global uchar* p, int x, int vector_end, int dh, int ds, int dv,
                      __global const int* sdiv, __global const int* hdiv) {
    int r = p[0], g = p[1], b = p[2];
    int v = max(max(r, g), b);
    int diff = v - min(min(r, g), b);
    int s = (diff * sdiv[v] + 2048) >> 12;
    int hr = v == r ? g - b : (v == g ? b - r + 2 * diff : r - g + 4 * diff);
    int hh = (hr * hdiv[diff] + 2048) >> 12;
    if (hh < 0) hh += 180;
    hh += dh;
    if (hh < 0) hh += 180; else if (hh >= 180) hh -= 180;
    s = clamp(s + ds, 0, 255);
    v = clamp(v + dv, 0, 255);
    float sf = (float)s * (1.0f / 255.0f), vf = (float)v * (1.0f / 255.0f);
    float hf = (float)hh * (6.0f / 180.0f);
    float sector = floor(hf);
    float frac = hf - sector;
    float t0 = vf;
    float t1 = vf * (1.0f - sf);
    float t2 = vf * (1.0f - sf * frac);
    float t3 = vf * (1.0f - sf * (1.0f - frac));
    int sec = (int)sector;
    float rf = sec == 1 ? t2 : (sec == 2 || sec == 3) ? t1 : sec == 4 ? t3 : t0;
    float gf = sec == 0 ? t3 : sec == 3 ? t2 : (sec == 4 || sec == 5) ? t1 : t0;
    float bf = sec == 2 ? t3 : (sec == 3 || sec == 4) ? t0 : sec == 5 ? t2 : t1;
    float out[3] = {255.0f * rf, 255.0f * gf, 255.0f * bf};
    for (int c = 0; c < 3; c++) {
        float q = x < vector_end ? trunc(out[c]) : rint(out[c]);
        p[c] = (uchar)clamp(q, 0.0f, 255.0f);
    }
}

inline int16 gather16(__global const int* t, int16 i) {
    return (int16)(t[i.s0], t[i.s1], t[i.s2], t[i.s3], t[i.s4], t[i.s5], t[i.s6], t[i.s7],
                   t[i.s8], t[i.s9], t[i.sa], t[i.sb], t[i.sc], t[i.sd], t[i.se], t[i.sf]);
}

// The same for 16 pixels at once, lane by lane identical to hsv_pixel: the grid is
// (groups of 16 pixels, rows).
__kernel void k_hsv(__global uchar* img, int w, int h, int cn, int vector_end,
                    int dh, int ds, int dv, __global const int* sdiv, __global const int* hdiv) {
    int x0 = get_global_id(0) * 16, y = get_global_id(1);
    if (x0 >= w || y >= h) return;
    __global uchar* row = img + y * w * cn;
    if (x0 + 16 > w) {
        for (int x = x0; x < w; x++) hsv_pixel(row + x * cn, x, vector_end, dh, ds, dv, sdiv, hdiv);
        return;
    }
    uchar16 r8, g8, b8, a8;
    if (cn == 3) load_rgb16(row + x0 * 3, &r8, &g8, &b8);
    else load_rgba16(row + x0 * 4, &r8, &g8, &b8, &a8);
    int16 r = convert_int16(r8), g = convert_int16(g8), b = convert_int16(b8);
    int16 v = max(max(r, g), b);
    int16 diff = v - min(min(r, g), b);
    int16 s = (diff * gather16(sdiv, v) + 2048) >> 12;
    int16 hr = select(select(r - g + 4 * diff, b - r + 2 * diff, v == g), g - b, v == r);
    int16 hh = (hr * gather16(hdiv, diff) + 2048) >> 12;
    hh = select(hh, hh + 180, hh < 0);
    hh += dh;
    hh = select(select(hh, hh - 180, hh >= 180), hh + 180, hh < 0);
    s = clamp(s + ds, 0, 255);
    v = clamp(v + dv, 0, 255);
    float16 sf = convert_float16(s) * (1.0f / 255.0f), vf = convert_float16(v) * (1.0f / 255.0f);
    float16 hf = convert_float16(hh) * (6.0f / 180.0f);
    float16 sector = floor(hf);
    float16 frac = hf - sector;
    float16 t0 = vf;
    float16 t1 = vf * (1.0f - sf);
    float16 t2 = vf * (1.0f - sf * frac);
    float16 t3 = vf * (1.0f - sf * (1.0f - frac));
    int16 sec = convert_int16(sector);
    float16 rf = select(select(select(t0, t3, sec == 4), t1, sec == 2 || sec == 3), t2, sec == 1);
    float16 gf = select(select(select(t0, t1, sec == 4 || sec == 5), t2, sec == 3), t3, sec == 0);
    float16 bf = select(select(select(t1, t2, sec == 5), t0, sec == 3 || sec == 4), t3, sec == 2);
    int16 xs = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) + x0;
    int16 trunc_lane = xs < vector_end;
    float16 ro = 255.0f * rf, go = 255.0f * gf, bo = 255.0f * bf;
    ro = select(rint(ro), trunc(ro), trunc_lane);
    go = select(rint(go), trunc(go), trunc_lane);
    bo = select(rint(bo), trunc(bo), trunc_lane);
    r8 = convert_uchar16(clamp(ro, 0.0f, 255.0f));
    g8 = convert_uchar16(clamp(go, 0.0f, 255.0f));
    b8 = convert_uchar16(clamp(bo, 0.0f, 255.0f));
    if (cn == 3) store_rgb16(r8, g8, b8, row + x0 * 3);
    else store_rgba16(r8, g8, b8, a8, row + x0 * 4);
}
