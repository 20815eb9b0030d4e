// Helpers shared by every kernel file (the files are compiled as one program, this first).
#pragma OPENCL FP_CONTRACT OFF

// Unaligned 16-lane loads and stores. PoCL splits vstore16 into single-byte stores; on
// CPU devices (built with -DIMGPROC_UNALIGNED) a vector type declared with 1-byte
// alignment gives plain unaligned vector moves instead.
#ifdef IMGPROC_UNALIGNED
typedef uchar16 __attribute__((aligned(1))) uchar16_u;
typedef ushort16 __attribute__((aligned(1))) ushort16_u;
typedef uint16 __attribute__((aligned(1))) uint16_u;
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
