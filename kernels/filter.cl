// Neighbourhood filters on interleaved 8-bit images, bit-exact with src/ops/filter.rs.
#pragma OPENCL FP_CONTRACT OFF

inline int reflect101(int p, int len) {
    if (len == 1) return 0;
    while (p < 0 || p >= len) p = p < 0 ? -p : 2 * len - p - 2;
    return p;
}

inline int replicate(int p, int len) { return clamp(p, 0, len - 1); }

// Horizontal pass of a separable filter with integer weights: sums in 32 bits.
__kernel void k_sep_h(__global const uchar* src, __global uint* tmp, int w, int h, int cn,
                    __global const uint* k, int ks) {
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= w || y >= h) return;
    int a = ks / 2;
    for (int c = 0; c < cn; c++) {
        uint s = 0;
        for (int i = 0; i < ks; i++) s += k[i] * (uint)src[(y * w + reflect101(x + i - a, w)) * cn + c];
        tmp[(y * w + x) * cn + c] = s;
    }
}

// Vertical pass; mode 0: Gaussian, (s + 2^15) >> 16; mode 1: box through OpenCV's
// 16-bit fixed-point reciprocal, ((s + delta) * scale) >> 16.
__kernel void k_sep_v(__global const uint* tmp, __global uchar* dst, int w, int h, int cn,
                    __global const uint* k, int ks, int mode, uint delta, uint scale) {
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= w || y >= h) return;
    int a = ks / 2;
    for (int c = 0; c < cn; c++) {
        uint s = 0;
        for (int j = 0; j < ks; j++) s += k[j] * tmp[(reflect101(y + j - a, h) * w + x) * cn + c];
        uint v = mode == 0 ? (s + 32768u) >> 16 : ((s + delta) * scale) >> 16;
        dst[(y * w + x) * cn + c] = (uchar)min(v, 255u);
    }
}

// v*(1+amount) - blurred*amount on colour channels, rounded half to even.
__kernel void k_unsharp(__global uchar* img, __global const uchar* blurred, int n, int cn, int colors,
                      float a, float b) {
    int i = get_global_id(0);
    if (i >= n) return;
    for (int c = 0; c < colors; c++) {
        int j = i * cn + c;
        float t = (float)img[j] * a + (float)blurred[j] * b;
        img[j] = (uchar)clamp(rint(t), 0.0f, 255.0f);
    }
}

inline void sobel_at(__global const uchar* src, int w, int h, int cn, int x, int y, int c, int repl,
                     int* dx, int* dy) {
    int ym = repl ? replicate(y - 1, h) : reflect101(y - 1, h);
    int yp = repl ? replicate(y + 1, h) : reflect101(y + 1, h);
    int xm = repl ? replicate(x - 1, w) : reflect101(x - 1, w);
    int xp = repl ? replicate(x + 1, w) : reflect101(x + 1, w);
#define P(yy, xx) ((int)src[((yy) * w + (xx)) * cn + c])
    *dx = (P(ym, xp) - P(ym, xm)) + 2 * (P(y, xp) - P(y, xm)) + (P(yp, xp) - P(yp, xm));
    *dy = (P(yp, xm) + 2 * P(yp, x) + P(yp, xp)) - (P(ym, xm) + 2 * P(ym, x) + P(ym, xp));
#undef P
}

// |dx|, |dy| or |dx|+|dy| saturated, per colour channel; alpha copied. dir: 0 x, 1 y, 2 xy.
__kernel void k_sobel(__global const uchar* src, __global uchar* dst, int w, int h, int cn, int colors, int dir) {
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= w || y >= h) return;
    for (int c = 0; c < cn; c++) {
        int o = (y * w + x) * cn + c;
        if (c >= colors) { dst[o] = src[o]; continue; }
        int dx, dy;
        sobel_at(src, w, h, cn, x, y, c, 0, &dx, &dy);
        int ax = min((int)abs(dx), 255), ay = min((int)abs(dy), 255);
        dst[o] = (uchar)(dir == 0 ? ax : dir == 1 ? ay : min(ax + ay, 255));
    }
}

// Median over a k x k window (k <= 7), border replicate.
__kernel void k_median(__global const uchar* src, __global uchar* dst, int w, int h, int cn, int k) {
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= w || y >= h) return;
    int a = k / 2, n = k * k;
    for (int c = 0; c < cn; c++) {
        uchar v[49];
        int m = 0;
        for (int j = 0; j < k; j++)
            for (int i = 0; i < k; i++)
                v[m++] = src[(replicate(y + j - a, h) * w + replicate(x + i - a, w)) * cn + c];
        // Partial selection sort up to the middle element.
        for (int i = 0; i <= n / 2; i++) {
            int best = i;
            for (int j = i + 1; j < n; j++) if (v[j] < v[best]) best = j;
            uchar t = v[i]; v[i] = v[best]; v[best] = t;
        }
        dst[(y * w + x) * cn + c] = v[n / 2];
    }
}

// One pass of erosion (dilate = 0) or dilation along x (horiz = 1) or y; the window is
// clipped to the image, as OpenCV's default border value does.
__kernel void k_morph(__global const uchar* src, __global uchar* dst, int w, int h, int cn, int k,
                    int dilate, int horiz) {
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= w || y >= h) return;
    int a = k / 2;
    int len = horiz ? w : h, pos = horiz ? x : y;
    int lo = max(pos - a, 0), hi = min(pos + k - a, len);
    for (int c = 0; c < cn; c++) {
        uchar m = dilate ? 0 : 255;
        for (int p = lo; p < hi; p++) {
            uchar v = horiz ? src[(y * w + p) * cn + c] : src[(p * w + x) * cn + c];
            m = dilate ? max(m, v) : min(m, v);
        }
        dst[(y * w + x) * cn + c] = m;
    }
}
