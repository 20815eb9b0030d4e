// Canny edges, bit-exact with src/ops/canny.rs: replicate-border Sobel, L1 magnitude,
// the strongest channel, OpenCV's fixed-point non-maximum suppression, and hysteresis
// by repeated propagation until nothing changes.
#pragma OPENCL FP_CONTRACT OFF

inline int repl(int p, int len) { return clamp(p, 0, len - 1); }

// mag is (w+2) x (h+2) with a zero border; dxs, dys are w x h.
__kernel void k_canny_grad(__global const uchar* src, __global int* mag, __global short* dxs, __global short* dys,
                         int w, int h, int cn, int colors) {
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= w || y >= h) return;
    int ym = repl(y - 1, h), yp = repl(y + 1, h), xm = repl(x - 1, w), xp = repl(x + 1, w);
    int best = -1, bdx = 0, bdy = 0;
    for (int c = 0; c < colors; c++) {
#define P(yy, xx) ((int)src[((yy) * w + (xx)) * cn + c])
        int dx = (P(ym, xp) - P(ym, xm)) + 2 * (P(y, xp) - P(y, xm)) + (P(yp, xp) - P(yp, xm));
        int dy = (P(yp, xm) + 2 * P(yp, x) + P(yp, xp)) - (P(ym, xm) + 2 * P(ym, x) + P(ym, xp));
#undef P
        int m = (int)abs(dx) + (int)abs(dy);
        if (m > best) { best = m; bdx = dx; bdy = dy; }
    }
    mag[(y + 1) * (w + 2) + x + 1] = best;
    dxs[y * w + x] = (short)bdx;
    dys[y * w + x] = (short)bdy;
}

// map is (w+2) x (h+2), initialised to 1: 0 weak candidate, 1 no edge, 2 strong edge.
__kernel void k_canny_nms(__global const int* mag, __global const short* dxs, __global const short* dys,
                        __global uchar* map, int w, int h, int low, int high) {
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= w || y >= h) return;
    int mw = w + 2;
    __global const int* mp = mag + y * mw;
    __global const int* ma = mag + (y + 1) * mw;
    __global const int* mn = mag + (y + 2) * mw;
    int j = x + 1;
    int m = ma[j];
    if (m <= low) return;
    long xs = dxs[y * w + x], ys = dys[y * w + x];
    long ax = xs < 0 ? -xs : xs;
    long ay = (ys < 0 ? -ys : ys) << 15;
    long tg22x = ax * 13573;
    int is_max;
    if (ay < tg22x) {
        is_max = m > ma[j - 1] && m >= ma[j + 1];
    } else {
        long tg67x = tg22x + (ax << 16);
        if (ay > tg67x) {
            is_max = m > mp[j] && m >= mn[j];
        } else {
            int s = (xs ^ ys) < 0 ? -1 : 1;
            is_max = m > mp[j - s] && m > mn[j + s];
        }
    }
    if (is_max) map[(y + 1) * mw + j] = m > high ? 2 : 0;
}

__kernel void k_canny_grow(__global uchar* map, int w, int h, __global int* changed) {
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= w || y >= h) return;
    int mw = w + 2;
    int i = (y + 1) * mw + x + 1;
    if (map[i] != 0) return;
    if (map[i - mw - 1] == 2 || map[i - mw] == 2 || map[i - mw + 1] == 2 || map[i - 1] == 2 ||
        map[i + 1] == 2 || map[i + mw - 1] == 2 || map[i + mw] == 2 || map[i + mw + 1] == 2) {
        map[i] = 2;
        *changed = 1;
    }
}

__kernel void k_canny_out(__global const uchar* map, __global uchar* dst, int w, int h) {
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= w || y >= h) return;
    dst[y * w + x] = map[(y + 1) * (w + 2) + x + 1] == 2 ? 255 : 0;
}
