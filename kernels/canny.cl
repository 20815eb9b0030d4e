// Canny edges, bit-exact with src/ops/canny.rs: replicate-border Sobel, L1 magnitude,
// the strongest channel, OpenCV's fixed-point non-maximum suppression, and hysteresis:
// on GPUs by parallel passes until nothing changes (k_canny_grow), on CPU devices by
// tracing each edge depth first in one pass (k_canny_trace).
#pragma OPENCL FP_CONTRACT OFF

// mag is (w+2) x (h+2) with a zero border; dxs, dys are w x h.
inline void grad_pixel(__global const uchar* src, __global int* mag, __global short* dxs, __global short* dys,
                       int w, int h, int cn, int colors, int x, int y) {
    int ym = replicate(y - 1, h), yp = replicate(y + 1, h), xm = replicate(x - 1, w), xp = replicate(x + 1, w);
    int best = -1, bdx = 0, bdy = 0;
    for (int i = 0; i < colors; i++) {
        int c = colors == 3 ? 2 - i : i;  // blue, green, red: see k_canny_grad
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

// Colour plane c (0-2) of pixels x..x+15 of a row of 1, 3 or 4 channels.
inline short16 plane16(__global const uchar* row, int x, int cn, int c) {
    uchar16 p0, p1, p2, p3;
    if (cn == 1) return convert_short16(LOAD16(uchar, row + x));
    if (cn == 3) load_rgb16(row + x * 3, &p0, &p1, &p2);
    else load_rgba16(row + x * 4, &p0, &p1, &p2, &p3);
    return convert_short16(c == 0 ? p0 : c == 1 ? p1 : p2);
}

// Gradients of 16 pixels per work-item: (groups of 16 pixels, rows). The strongest
// channel wins; on a tie the first in OpenCV's BGR order (blue, then green, then red),
// as in grad_pixel and src/ops/canny.rs.
__kernel void k_canny_grad(__global const uchar* src, __global int* mag, __global short* dxs, __global short* dys,
                           int w, int h, int cn, int colors) {
    int x0 = get_global_id(0) * 16, y = get_global_id(1);
    if (x0 >= w || y >= h) return;
    if (x0 < 1 || x0 + 17 > w || cn == 2) {
        for (int x = x0; x < min(x0 + 16, w); x++) grad_pixel(src, mag, dxs, dys, w, h, cn, colors, x, y);
        return;
    }
    __global const uchar* rm = src + replicate(y - 1, h) * w * cn;
    __global const uchar* r0 = src + y * w * cn;
    __global const uchar* rp = src + replicate(y + 1, h) * w * cn;
    short16 best = (short16)-1, bdx = (short16)0, bdy = (short16)0;
    for (int i = 0; i < colors; i++) {
        int c = colors == 3 ? 2 - i : i;
        short16 mm = plane16(rm, x0 - 1, cn, c), m0 = plane16(rm, x0, cn, c), mp = plane16(rm, x0 + 1, cn, c);
        short16 cm = plane16(r0, x0 - 1, cn, c), cp = plane16(r0, x0 + 1, cn, c);
        short16 pm = plane16(rp, x0 - 1, cn, c), p0 = plane16(rp, x0, cn, c), pp = plane16(rp, x0 + 1, cn, c);
        short16 dx = (mp - mm) + (short)2 * (cp - cm) + (pp - pm);
        short16 dy = (pm + (short)2 * p0 + pp) - (mm + (short)2 * m0 + mp);
        short16 m = as_short16(abs(dx)) + as_short16(abs(dy));
        short16 more = m > best;
        best = select(best, m, more);
        bdx = select(bdx, dx, more);
        bdy = select(bdy, dy, more);
    }
    STORE16(int, convert_int16(best), mag + (y + 1) * (w + 2) + x0 + 1);
    STORE16(short, bdx, dxs + y * w + x0);
    STORE16(short, bdy, dys + y * w + x0);
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

// Grows the weak candidates of pixels x0..x0+n-1 of row y, forward or backward.
inline int grow_run(__global uchar* map, int mw, int y, int x0, int n, int forward) {
    __global uchar* row = map + (y + 1) * mw + 1;
    if (n == 16 && !any(LOAD16(uchar, row + x0) == (uchar16)0)) return 0;
    int grew = 0;
    for (int t = 0; t < n; t++) {
        int i = (y + 1) * mw + 1 + (forward ? x0 + t : x0 + n - 1 - t);
        if (map[i] != 0) continue;
        if (map[i - mw - 1] == 2 || map[i - mw] == 2 || map[i - mw + 1] == 2 || map[i - 1] == 2 ||
            map[i + 1] == 2 || map[i + mw - 1] == 2 || map[i + mw] == 2 || map[i + mw + 1] == 2) {
            map[i] = 2;
            grew = 1;
        }
    }
    return grew;
}

// One hysteresis pass over (16-pixel chunks, rows). Most chunks hold no weak candidate
// and are skipped after one vector test; in the others every candidate next to a strong
// edge becomes strong, scanning forward and back so that a chain inside the chunk
// grows in one pass. Updates only turn 0 into 2, so passes that race with each other
// still reach the same fixed point; the host repeats them until one changes nothing.
__kernel void k_canny_grow(__global uchar* map, int w, int h, __global int* changed) {
    int x0 = get_global_id(0) * 16, y = get_global_id(1);
    if (x0 >= w || y >= h) return;
    int n = min(16, w - x0);
    int grew = grow_run(map, w + 2, y, x0, n, 1);
    grew |= grow_run(map, w + 2, y, x0, n, 0);
    if (grew) *changed = 1;
}

// Marks the weak neighbours of pixel i strong and pushes them on the stack; on overflow
// the pixel stays marked but unexpanded, and the flag makes the host finish with passes.
inline int expand(__global uchar* map, int mw, int i, __global int* st, int top, int cap,
                  __global int* overflow) {
    const int d[8] = {-mw - 1, -mw, -mw + 1, -1, 1, mw - 1, mw, mw + 1};
    for (int k = 0; k < 8; k++) {
        int j = i + d[k];
        if (map[j] != 0) continue;
        map[j] = 2;
        if (top < cap) st[top++] = j;
        else *overflow = 1;
    }
    return top;
}

// Hysteresis for CPU devices, in one pass: a work-item per band of rows finds the strong
// pixels of its band and traces their weak neighbours depth first, across band borders
// too. Whoever marks a pixel expands it, so every chain is followed to its end; two
// work-items marking the same pixel is harmless as updates only turn 0 into 2.
__kernel void k_canny_trace(__global uchar* map, int w, int h, int band, __global int* stack,
                            __global int* overflow) {
    int y0 = get_global_id(0) * band;
    if (y0 >= h) return;
    int y1 = min(y0 + band, h);
    int mw = w + 2;
    __global int* st = stack + y0 * w;
    int cap = (y1 - y0) * w;
    for (int y = y0; y < y1; y++) {
        __global uchar* row = map + (y + 1) * mw + 1;
        for (int x0 = 0; x0 < w; x0 += 16) {
            int n = min(16, w - x0);
            if (n == 16 && !any(LOAD16(uchar, row + x0) == (uchar16)2)) continue;
            for (int t = 0; t < n; t++) {
                int i = (y + 1) * mw + 1 + x0 + t;
                if (map[i] != 2) continue;
                int top = expand(map, mw, i, st, 0, cap, overflow);
                while (top > 0) {
                    top--;
                    top = expand(map, mw, st[top], st, top, cap, overflow);
                }
            }
        }
    }
}

__kernel void k_canny_out(__global const uchar* map, __global uchar* dst, int w, int h) {
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= w || y >= h) return;
    dst[y * w + x] = map[(y + 1) * (w + 2) + x + 1] == 2 ? 255 : 0;
}
