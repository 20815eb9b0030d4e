// Point operations on interleaved 8-bit images (cn channels; with 2 or 4 channels the
// last one is alpha and is left alone). Bit-exact with src/ops/point.rs: no contraction
// of a*b+c into fma.
//
// Each work-item handles 16 consecutive bytes with vector types, so that a CPU device
// (PoCL) runs whole SIMD registers and a GPU makes 16-byte coalesced accesses; the last
// partial chunk is done byte by byte. Launches round the work-item count up to the
// work-group size, so every kernel checks its range.
#pragma OPENCL FP_CONTRACT OFF

__kernel void k_invert(__global uchar* img, int nbytes, int cn) {
    int o = get_global_id(0) * 16;
    if (o + 16 <= nbytes) {
        uchar16 v = LOAD16(uchar, img + o);
        STORE16(uchar, select((uchar16)255 - v, v, alpha_lanes(cn)), img + o);
    } else {
        for (int j = o; j < nbytes; j++) if (!is_alpha(j, cn)) img[j] = 255 - img[j];
    }
}

// Adds amount (negative: subtracts), saturating.
__kernel void k_add_sat(__global uchar* img, int nbytes, int cn, int amount) {
    int o = get_global_id(0) * 16;
    uchar a = (uchar)min(abs(amount), 255u);
    if (o + 16 <= nbytes) {
        uchar16 v = LOAD16(uchar, img + o);
        uchar16 r = amount >= 0 ? add_sat(v, (uchar16)a) : sub_sat(v, (uchar16)a);
        STORE16(uchar, select(r, v, alpha_lanes(cn)), img + o);
    } else {
        for (int j = o; j < nbytes; j++)
            if (!is_alpha(j, cn)) img[j] = amount >= 0 ? add_sat(img[j], a) : sub_sat(img[j], a);
    }
}

// 255 where the value exceeds t, else 0.
__kernel void k_threshold(__global uchar* img, int nbytes, int cn, int t) {
    int o = get_global_id(0) * 16;
    uchar tt = (uchar)clamp(t, 0, 255);
    if (o + 16 <= nbytes) {
        uchar16 v = LOAD16(uchar, img + o);
        uchar16 r = t < 0 ? (uchar16)255 : as_uchar16(v > (uchar16)tt);
        STORE16(uchar, select(r, v, alpha_lanes(cn)), img + o);
    } else {
        for (int j = o; j < nbytes; j++)
            if (!is_alpha(j, cn)) img[j] = (int)img[j] > t ? 255 : 0;
    }
}

__kernel void k_lut(__global uchar* img, int nbytes, int cn, __global const uchar* table) {
    int o = get_global_id(0) * 16;
    int end = min(o + 16, nbytes);
    for (int j = o; j < end; j++)
        if (!is_alpha(j, cn)) img[j] = table[img[j]];
}

// The three planes of 16 interleaved RGB pixels (48 bytes at p).
inline void load_rgb16(__global const uchar* p, uchar16* r, uchar16* g, uchar16* b) {
    uchar16 a0 = LOAD16(uchar, p), a1 = LOAD16(uchar, p + 16), a2 = LOAD16(uchar, p + 32);
    // First pass: the lanes that come from a0 and a1 (indices 0-31), then a2 (32-47).
    uchar16 r01 = shuffle2(a0, a1, (uchar16)(0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 0, 0, 0, 0, 0));
    uchar16 g01 = shuffle2(a0, a1, (uchar16)(1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 0, 0, 0, 0, 0));
    uchar16 b01 = shuffle2(a0, a1, (uchar16)(2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 0, 0, 0, 0, 0, 0));
    *r = shuffle2(r01, a2, (uchar16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 17, 20, 23, 26, 29));
    *g = shuffle2(g01, a2, (uchar16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 18, 21, 24, 27, 30));
    *b = shuffle2(b01, a2, (uchar16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 19, 22, 25, 28, 31));
}

inline void store_rgb16(uchar16 r, uchar16 g, uchar16 b, __global uchar* p) {
    uchar16 rg0 = shuffle2(r, g, (uchar16)(0, 16, 0, 1, 17, 0, 2, 18, 0, 3, 19, 0, 4, 20, 0, 5));
    uchar16 a0 = shuffle2(rg0, b, (uchar16)(0, 1, 16, 3, 4, 17, 6, 7, 18, 9, 10, 19, 12, 13, 20, 15));
    uchar16 rg1 = shuffle2(r, g, (uchar16)(21, 0, 6, 22, 0, 7, 23, 0, 8, 24, 0, 9, 25, 0, 10, 26));
    uchar16 a1 = shuffle2(rg1, b, (uchar16)(0, 21, 2, 3, 22, 5, 6, 23, 8, 9, 24, 11, 12, 25, 14, 15));
    uchar16 rg2 = shuffle2(r, g, (uchar16)(0, 11, 27, 0, 12, 28, 0, 13, 29, 0, 14, 30, 0, 15, 31, 0));
    uchar16 a2 = shuffle2(rg2, b, (uchar16)(26, 1, 2, 27, 4, 5, 28, 7, 8, 29, 10, 11, 30, 13, 14, 31));
    STORE16(uchar, a0, p);
    STORE16(uchar, a1, p + 16);
    STORE16(uchar, a2, p + 32);
}

inline uint gray_of(uint r, uint g, uint b) { return (r * 9798u + g * 19235u + b * 3735u + 16384u) >> 15; }

// RGB(A) to gray(+alpha), OpenCV's 15-bit coefficients; 16 pixels per work-item.
__kernel void k_grayscale(__global const uchar* src, __global uchar* dst, int n, int cn) {
    int i = get_global_id(0) * 16;
    if (i + 16 <= n) {
        uchar16 r, g, b, a;
        if (cn == 3) {
            load_rgb16(src + i * 3, &r, &g, &b);
        } else {
            uint16 px = LOAD16(uint, (src + i * 4));
            r = convert_uchar16(px & 255u);
            g = convert_uchar16((px >> 8) & 255u);
            b = convert_uchar16((px >> 16) & 255u);
            a = convert_uchar16(px >> 24);
        }
        uint16 y = (convert_uint16(r) * 9798u + convert_uint16(g) * 19235u + convert_uint16(b) * 3735u + 16384u) >> 15;
        uchar16 gy = convert_uchar16(y);
        if (cn == 4) {
            STORE16(uchar, shuffle2(gy, a, (uchar16)(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)), dst + i * 2);
            STORE16(uchar, shuffle2(gy, a, (uchar16)(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)), dst + i * 2 + 16);
        } else {
            STORE16(uchar, gy, dst + i);
        }
    } else {
        for (int j = i; j < n; j++) {
            __global const uchar* p = src + j * cn;
            uchar gy = (uchar)gray_of(p[0], p[1], p[2]);
            if (cn == 4) {
                dst[j * 2] = gy;
                dst[j * 2 + 1] = p[3];
            } else {
                dst[j] = gy;
            }
        }
    }
}
// OpenCV's 8-bit HSV round trip with shifts. Pixels x < vector_end truncate the final
// x*255 (OpenCV's vector blocks), the rest round half to even (its scalar tail).
__kernel void k_hsv(__global uchar* img, int w, int h, int cn, int vector_end,
                  int dh, int ds, int dv, __global const int* sdiv, __global const int* hdiv) {
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= w || y >= h) return;
    __global uchar* p = img + (y * w + x) * cn;
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
