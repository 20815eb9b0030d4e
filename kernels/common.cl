// Helpers shared by every kernel file (the files are compiled as one program, this first).
#pragma OPENCL FP_CONTRACT OFF

// Bytes per work-item of the point kernels: one vector on GPUs, where neighbouring
// work-items then read neighbouring bytes; more on CPU devices (PoCL runs a work-group's
// items as a loop, and a longer run per item halves the time of a point op).
#ifndef SPAN
#define SPAN 16
#endif

// Unaligned 16-lane loads and stores. PoCL splits vstore16 into single-byte stores; on
// CPU devices (built with -DIMGPROC_UNALIGNED) a vector type declared with 1-byte
// alignment gives plain unaligned vector moves instead.
#ifdef IMGPROC_UNALIGNED
typedef uchar16 __attribute__((aligned(1))) uchar16_u;
typedef ushort16 __attribute__((aligned(1))) ushort16_u;
typedef uint16 __attribute__((aligned(1))) uint16_u;
typedef short16 __attribute__((aligned(1))) short16_u;
typedef int16 __attribute__((aligned(1))) int16_u;
#define LOAD16(T, p) (*(const __global T##16_u*)(p))
#define STORE16(T, v, p) (*(__global T##16_u*)(p) = (v))
#else
#define LOAD16(T, p) vload16(0, (const __global T*)(p))
#define STORE16(T, v, p) vstore16((v), 0, (__global T*)(p))
#endif

// Lanes of a 16-byte chunk that hold alpha (chunks start on a pixel boundary when cn
// is 2 or 4, the only layouts with alpha): all ones there, zero elsewhere.
inline uchar16 alpha_lanes(int cn) {
    const uchar16 lane = (uchar16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    if (cn != 2 && cn != 4) return (uchar16)0;
    uchar m = (uchar)(cn - 1);
    return as_uchar16((lane & (uchar16)m) == (uchar16)m);
}

// Whether byte `byte` of an interleaved image is alpha.
inline int is_alpha(int byte, int cn) { return (cn == 2 || cn == 4) && byte % cn == cn - 1; }

// The three planes of 16 interleaved RGB pixels (48 bytes at p). Swizzles, which the
// compiler turns into byte shuffles; PoCL's shuffle2 builtin goes element by element.
inline void load_rgb16(const __global uchar* p, uchar16* r, uchar16* g, uchar16* b) {
    uchar16 a0 = LOAD16(uchar, p), a1 = LOAD16(uchar, p + 16), a2 = LOAD16(uchar, p + 32);
    *r = (uchar16)(a0.s0369, a0.scf, a1.s258b, a1.se, a2.s147a, a2.sd);
    *g = (uchar16)(a0.s147a, a0.sd, a1.s0369, a1.scf, a2.s258b, a2.se);
    *b = (uchar16)(a0.s258b, a0.se, a1.s147a, a1.sd, a2.s0369, a2.scf);
}

// The inverse of load_rgb16.
inline void store_rgb16(uchar16 r, uchar16 g, uchar16 b, __global uchar* p) {
    uchar16 a0 = (uchar16)(r.s0, g.s0, b.s0, r.s1, g.s1, b.s1, r.s2, g.s2, b.s2, r.s3, g.s3, b.s3, r.s4, g.s4, b.s4, r.s5);
    uchar16 a1 = (uchar16)(g.s5, b.s5, r.s6, g.s6, b.s6, r.s7, g.s7, b.s7, r.s8, g.s8, b.s8, r.s9, g.s9, b.s9, r.sa, g.sa);
    uchar16 a2 = (uchar16)(b.sa, r.sb, g.sb, b.sb, r.sc, g.sc, b.sc, r.sd, g.sd, b.sd, r.se, g.se, b.se, r.sf, g.sf, b.sf);
    STORE16(uchar, a0, p);
    STORE16(uchar, a1, p + 16);
    STORE16(uchar, a2, p + 32);
}

// 16 RGBA pixels (64 bytes at p) as planes.
inline void load_rgba16(const __global uchar* p, uchar16* r, uchar16* g, uchar16* b, uchar16* a) {
    uint16 px = LOAD16(uint, p);
    *r = convert_uchar16(px & 255u);
    *g = convert_uchar16((px >> 8) & 255u);
    *b = convert_uchar16((px >> 16) & 255u);
    *a = convert_uchar16(px >> 24);
}

inline void store_rgba16(uchar16 r, uchar16 g, uchar16 b, uchar16 a, __global uchar* p) {
    uint16 px = convert_uint16(r) | (convert_uint16(g) << 8) | (convert_uint16(b) << 16) | (convert_uint16(a) << 24);
    STORE16(uint, px, p);
}

// Border rules: reflect-101 (OpenCV's default) and replicate.
inline int reflect101(int p, int len) {
    if (len == 1) return 0;
    while (p < 0 || p >= len) p = p < 0 ? -p : 2 * len - p - 2;
    return p;
}

inline int replicate(int p, int len) { return clamp(p, 0, len - 1); }

// Stores chunk v at byte xb of a row of rb bytes; past the row's end nothing is written.
inline void store_chunk(uchar16 v, __global uchar* row, int xb, int rb) {
    if (xb + 16 <= rb) {
        STORE16(uchar, v, row + xb);
    } else {
        uchar t[16];
        vstore16(v, 0, t);
        for (int b = xb; b < rb; b++) row[b] = t[b - xb];
    }
}

// Copies bytes xb..xb+15 of a row of rb bytes from s to d, fewer at the row's end.
inline void copy_chunk(const __global uchar* s, __global uchar* d, int xb, int rb) {
    if (xb + 16 <= rb) STORE16(uchar, LOAD16(uchar, s + xb), d + xb);
    else for (int b = xb; b < rb; b++) d[b] = s[b];
}
