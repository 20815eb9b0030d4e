// Geometry on interleaved 8-bit images, bit-exact with src/ops/geometry.rs. Resize reads
// coordinate and weight tables computed on the host by the CPU code.
#pragma OPENCL FP_CONTRACT OFF

inline void vflip_chunk(__global const uchar* src, __global uchar* dst, int w, int h, int cn, int xb) {
    int y = get_global_id(1);
    int rb = w * cn;
    if (xb >= rb || y >= h) return;
    copy_chunk(src + (h - 1 - y) * rb, dst + y * rb, xb, rb);
}

// Vertical flip (horizontal = 0): the grid is (runs of SPAN bytes of a row, rows).
// Horizontal flip: (groups of 16 pixels, rows), reversed with vector swizzles.
__kernel void k_flip(__global const uchar* src, __global uchar* dst, int w, int h, int cn, int horizontal) {
    if (!horizontal) {
        int first = get_global_id(0) * SPAN;
        for (int xb = first; xb < first + SPAN; xb += 16) vflip_chunk(src, dst, w, h, cn, xb);
        return;
    }
    int y = get_global_id(1);
    int rb = w * cn;
    int x0 = get_global_id(0) * 16;
    if (x0 >= w || y >= h) return;
    __global const uchar* s = src + y * rb;
    __global uchar* d = dst + y * rb;
    // The source of output pixels x0..x0+15 is pixels w-16-x0..w-1-x0, reversed.
    int sx = w - 16 - x0;
    if (x0 + 16 <= w && cn == 1) {
        STORE16(uchar, LOAD16(uchar, s + sx).sfedcba9876543210, d + x0);
    } else if (x0 + 16 <= w && cn == 4) {
        STORE16(uint, LOAD16(uint, s + sx * 4).sfedcba9876543210, d + x0 * 4);
    } else if (x0 + 16 <= w && cn == 3) {
        // Output byte 3p + c is source byte 45 - 3p + c of the 48 loaded.
        uchar16 a0 = LOAD16(uchar, s + sx * 3), a1 = LOAD16(uchar, s + sx * 3 + 16);
        uchar16 a2 = LOAD16(uchar, s + sx * 3 + 32);
        uchar16 o0 = (uchar16)(a2.sdef, a2.sabc, a2.s789, a2.s456, a2.s123, a1.se);
        uchar16 o1 = (uchar16)(a1.sf, a2.s0, a1.sbcd, a1.s89a, a1.s567, a1.s234, a0.sf, a1.s0);
        uchar16 o2 = (uchar16)(a1.s1, a0.scde, a0.s9ab, a0.s678, a0.s345, a0.s012);
        STORE16(uchar, o0, d + x0 * 3);
        STORE16(uchar, o1, d + x0 * 3 + 16);
        STORE16(uchar, o2, d + x0 * 3 + 32);
    } else if (x0 + 16 <= w && cn == 2) {
        STORE16(ushort, LOAD16(ushort, s + sx * 2).sfedcba9876543210, d + x0 * 2);
    } else {
        int end = min(x0 + 16, w);
        for (int x = x0; x < end; x++)
            for (int c = 0; c < cn; c++) d[x * cn + c] = s[(w - 1 - x) * cn + c];
    }
}

// Output is ow x oh; angle 90, 180 or 270 clockwise.
__kernel void k_rotate(__global const uchar* src, __global uchar* dst, int w, int h, int cn, int angle) {
    int ow = angle == 180 ? w : h, oh = angle == 180 ? h : w;
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= ow || y >= oh) return;
    int sx, sy;
    if (angle == 90) { sx = y; sy = h - 1 - x; }
    else if (angle == 180) { sx = w - 1 - x; sy = h - 1 - y; }
    else { sx = w - 1 - y; sy = x; }
    for (int c = 0; c < cn; c++) dst[(y * ow + x) * cn + c] = src[(sy * w + sx) * cn + c];
}

// The grid is (16-byte chunks of an output row, output rows).
inline void crop_chunk(__global const uchar* src, __global uchar* dst, int w, int cn, int x0, int y0, int cw, int ch, int xb) {
    int y = get_global_id(1);
    int rb = cw * cn;
    if (xb >= rb || y >= ch) return;
    copy_chunk(src + ((y + y0) * w + x0) * cn, dst + y * rb, xb, rb);
}

__kernel void k_crop(__global const uchar* src, __global uchar* dst, int w, int cn, int x0, int y0, int cw, int ch) {
    int first = get_global_id(0) * SPAN;
    for (int xb = first; xb < first + SPAN; xb += 16) crop_chunk(src, dst, w, cn, x0, y0, cw, ch, xb);
}

// Nearest neighbour through index tables (source pixel of each output x and y).
__kernel void k_resize_nearest(__global const uchar* src, __global uchar* dst, int sw, int cn, int dw, int dh,
                             __global const int* xs, __global const int* ys) {
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= dw || y >= dh) return;
    for (int c = 0; c < cn; c++) dst[(y * dw + x) * cn + c] = src[(ys[y] * sw + xs[x]) * cn + c];
}

// Horizontal sum of output column x on source row sy: for each output x, taps[x*ks + j]
// is a source x (already clamped) and alpha[x*ks + j] its fixed-point weight.
inline int resize_hsum(__global const uchar* src, int sw, int cn, int sy, int x, int c,
                       __global const int* taps, __global const int* alpha, int ks) {
    int s = 0;
    for (int j = 0; j < ks; j++) s += (int)src[(sy * sw + taps[x * ks + j]) * cn + c] * alpha[x * ks + j];
    return s;
}

// Horizontal pass of linear/cubic resize for every source row: fixed-point sums.
__kernel void k_resize_h(__global const uchar* src, __global int* tmp, int sw, int sh, int cn, int dw,
                       __global const int* taps, __global const int* alpha, int ks) {
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= dw || y >= sh) return;
    for (int c = 0; c < cn; c++) tmp[(y * dw + x) * cn + c] = resize_hsum(src, sw, cn, y, x, c, taps, alpha, ks);
}

// Vertical pass. Linear: OpenCV's 16-bit multiply-high arithmetic; cubic: fused
// multiply-adds in single precision, rounded half to even.
__kernel void k_resize_v(__global const int* tmp, __global uchar* dst, int dw, int dh, int cn,
                       __global const int* rows, __global const int* beta, int ks, int cubic) {
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= dw || y >= dh) return;
    for (int c = 0; c < cn; c++) {
        int i = x * cn + c;
        int v;
        if (!cubic) {
            int s0 = tmp[rows[y * ks] * dw * cn + i], s1 = tmp[rows[y * ks + 1] * dw * cn + i];
            int t = (((s0 >> 4) * beta[y * ks]) >> 16) + (((s1 >> 4) * beta[y * ks + 1]) >> 16);
            v = (t + 2) >> 2;
        } else {
            float scale = 1.0f / (2048.0f * 2048.0f);
            float b[4];
            for (int j = 0; j < 4; j++) b[j] = (float)beta[y * ks + j] * scale;
            float t = (float)tmp[rows[y * ks + 3] * dw * cn + i] * b[3];
            t = fma((float)tmp[rows[y * ks + 2] * dw * cn + i], b[2], t);
            t = fma((float)tmp[rows[y * ks + 1] * dw * cn + i], b[1], t);
            t = fma((float)tmp[rows[y * ks] * dw * cn + i], b[0], t);
            v = (int)clamp(rint(t), 0.0f, 255.0f);
        }
        dst[(y * dw + x) * cn + c] = (uchar)clamp(v, 0, 255);
    }
}

// Both passes at once for CPU devices: each output sample recomputes the horizontal sums
// of its source rows instead of reading them from an intermediate buffer (for a large
// image that buffer is four bytes per sample, written and read back through memory).
// The arithmetic is k_resize_h then k_resize_v, step for step; the vertical step is
// written out again rather than shared with k_resize_v through a helper taking the four
// sums, which PoCL compiled 20-25% slower (measured at 4 MP, bilinear and bicubic).
__kernel void k_resize_direct(__global const uchar* src, __global uchar* dst, int sw, int cn, int dw, int dh,
                              __global const int* taps, __global const int* alpha,
                              __global const int* rows, __global const int* beta, int ks, int cubic) {
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= dw || y >= dh) return;
    for (int c = 0; c < cn; c++) {
        int v;
        if (!cubic) {
            int s0 = resize_hsum(src, sw, cn, rows[y * ks], x, c, taps, alpha, ks);
            int s1 = resize_hsum(src, sw, cn, rows[y * ks + 1], x, c, taps, alpha, ks);
            int t = (((s0 >> 4) * beta[y * ks]) >> 16) + (((s1 >> 4) * beta[y * ks + 1]) >> 16);
            v = (t + 2) >> 2;
        } else {
            float scale = 1.0f / (2048.0f * 2048.0f);
            float b[4];
            for (int j = 0; j < 4; j++) b[j] = (float)beta[y * ks + j] * scale;
            float t = (float)resize_hsum(src, sw, cn, rows[y * ks + 3], x, c, taps, alpha, ks) * b[3];
            t = fma((float)resize_hsum(src, sw, cn, rows[y * ks + 2], x, c, taps, alpha, ks), b[2], t);
            t = fma((float)resize_hsum(src, sw, cn, rows[y * ks + 1], x, c, taps, alpha, ks), b[1], t);
            t = fma((float)resize_hsum(src, sw, cn, rows[y * ks], x, c, taps, alpha, ks), b[0], t);
            v = (int)clamp(rint(t), 0.0f, 255.0f);
        }
        dst[(y * dw + x) * cn + c] = (uchar)clamp(v, 0, 255);
    }
}

// Area averaging by an integer factor (fx x fy source pixels per output pixel).
__kernel void k_resize_area_int(__global const uchar* src, __global uchar* dst, int sw, int cn, int dw, int dh,
                              int fx, int fy) {
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= dw || y >= dh) return;
    float scale = 1.0f / (float)(fx * fy);
    for (int c = 0; c < cn; c++) {
        uint s = 0;
        for (int j = 0; j < fy; j++)
            for (int i = 0; i < fx; i++) s += src[((y * fy + j) * sw + x * fx + i) * cn + c];
        uint v = (fx == 2 && fy == 2) ? (s + 2) >> 2 : (uint)min(rint((float)s * scale), 255.0f);
        dst[(y * dw + x) * cn + c] = (uchar)v;
    }
}
