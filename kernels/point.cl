// Point operations on interleaved 8-bit images (cn channels; with 2 or 4 channels
// the last one is alpha and is left alone). One work-item per pixel.
// Bit-exact with src/ops/point.rs: no contraction of a*b+c into fma.
#pragma OPENCL FP_CONTRACT OFF

__kernel void k_invert(__global uchar* img, int n, int cn, int colors) {
    int i = get_global_id(0);
    if (i >= n) return;
    __global uchar* p = img + i * cn;
    for (int c = 0; c < colors; c++) p[c] = 255 - p[c];
}

__kernel void k_add_sat(__global uchar* img, int n, int cn, int colors, int amount) {
    int i = get_global_id(0);
    if (i >= n) return;
    __global uchar* p = img + i * cn;
    for (int c = 0; c < colors; c++) p[c] = (uchar)clamp((int)p[c] + amount, 0, 255);
}

__kernel void k_threshold(__global uchar* img, int n, int cn, int colors, int t) {
    int i = get_global_id(0);
    if (i >= n) return;
    __global uchar* p = img + i * cn;
    for (int c = 0; c < colors; c++) p[c] = p[c] > t ? 255 : 0;
}

__kernel void k_lut(__global uchar* img, int n, int cn, int colors, __global const uchar* table) {
    int i = get_global_id(0);
    if (i >= n) return;
    __global uchar* p = img + i * cn;
    for (int c = 0; c < colors; c++) p[c] = table[p[c]];
}

// RGB(A) to gray(+alpha), OpenCV's 15-bit coefficients.
__kernel void k_grayscale(__global const uchar* src, __global uchar* dst, int n, int cn) {
    int i = get_global_id(0);
    if (i >= n) return;
    __global const uchar* p = src + i * cn;
    uint g = ((uint)p[0] * 9798u + (uint)p[1] * 19235u + (uint)p[2] * 3735u + 16384u) >> 15;
    if (cn == 4) {
        dst[i * 2] = (uchar)g;
        dst[i * 2 + 1] = p[3];
    } else {
        dst[i] = (uchar)g;
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
