/*
 * tinykd KWS frontend: fixed-point MFCC (see tkd_frontend.h and README.md).
 *
 * Number formats along the per-frame path (x = int16 sample, w = Hann Q15):
 *   windowed   v = (x - mean) * w >> 5                    int32, 10 fractional bits, |v| < 2^26
 *   FFT        Z = DFT_512(v[2n] + i v[2n+1]) / 16        radix 2 then 4 x radix 4, decimation in
 *                                                         frequency, Q31 twiddles (SMMUL/SMMLA),
 *                                                         /2 in every stage with twiddles
 *   split      X[k] = DFT_1024(v)[k] / 16                  int32 (|X| < 2^30.4)
 *   power      P[k] = |X[k]|^2 = 2^42 |DFT(x w / 32768)|^2 uint64 (< 2^61)
 *   mel        S = sum P * w_q15                          96 bits exact: two uint64 sums (UMLAL)
 *   log        L = log2(S) - 15 - 42                      Q16
 *   DCT        c = sum dct_q30 * L                        int64, Q46 in units of the output scale
 *   output     q = clamp(round(c / 2^46) + zero_point)    int8
 * All shifts of negative values are arithmetic; the typedef below refuses to compile where
 * they are not. The bounds behind every "fits" are in README.md.
 */
#include "tkd_frontend.h"

#include <string.h>

#include "tkd_frontend_tables.h"

typedef char tkd_requires_arithmetic_right_shift[((-8 >> 1) == -4) ? 1 : -1];

#define HALF_FFT            (TKD_FRONTEND_FFT_SIZE / 2) /* complex points */
#define QUARTER_HALF        (HALF_FFT / 2)              /* span of the radix-2 stage's halves */
#define WINDOW_SHIFT        5  /* Q15 window product -> 10 fractional bits */
#define POWER_TO_FLOAT_LOG2 42 /* P = 2^42 * |DFT(x / 32768)|^2 */
#define MEL_WEIGHT_BITS     15
#define DCT_SHIFT           46 /* Q16 log * Q30 table */

#if TKD_FRONTEND_STATIC_SCRATCH
static tkd_frontend_scratch tkd_default_scratch;
#endif

/* -DTKD_FRONTEND_PROFILE: call tkd_frontend_profile_mark(stage) as each stage of a frame ends
 * (bench/frontend_cost.py measures instructions per stage with it). Off by default. */
#ifdef TKD_FRONTEND_PROFILE
void tkd_frontend_profile_mark(int stage);
#define PROFILE_MARK(stage) tkd_frontend_profile_mark(stage)
#else
#define PROFILE_MARK(stage) ((void)0)
#endif

/* High words of 32 x 32 -> 64-bit products: floor(a b / 2^32), acc + floor(+-a b / 2^32).
 * One instruction each on cores with the DSP extension (SMMUL, SMMLA, SMMLS: the 64-bit
 * product, truncated, the same integers as the C below). */
#if defined(__ARM_FEATURE_DSP) && (defined(__GNUC__) || defined(__clang__))
#define TKD_FRONTEND_ASM 1
#else
#define TKD_FRONTEND_ASM 0
#endif
#if TKD_FRONTEND_ASM
#define TKD_UNUSED __attribute__((unused)) /* naked functions read their parameters from r0.. */
static inline int32_t mul_hi(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smmul %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline int32_t mla_hi(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smmla %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
static inline int32_t mls_hi(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smmls %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
#else
static inline int32_t mul_hi(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * b) >> 32);
}
static inline int32_t mla_hi(int32_t a, int32_t b, int32_t acc)
{
    return acc + (int32_t)(((int64_t)a * b) >> 32);
}
static inline int32_t mls_hi(int32_t a, int32_t b, int32_t acc)
{
    return acc + (int32_t)((-((int64_t)a * b)) >> 32);
}
#endif

/* A complex value (re, im) at p[0], p[1]. */
#define LOAD2(p, re, im)                                                                           \
    do {                                                                                           \
        (re) = (p)[0];                                                                             \
        (im) = (p)[1];                                                                             \
    } while (0)
#define STORE2(p, re, im)                                                                          \
    do {                                                                                           \
        (p)[0] = (re);                                                                             \
        (p)[1] = (im);                                                                             \
    } while (0)

/* acc + a * b modulo 2^64 (UMLAL: GCC otherwise spends a UMULL, ADDS, ADC and moves). */
static inline uint64_t mac_u64(uint64_t acc, uint32_t a, uint32_t b)
{
#if TKD_FRONTEND_ASM
    uint32_t lo = (uint32_t)acc, hi = (uint32_t)(acc >> 32);
    __asm__("umlal %0, %1, %2, %3" : "+r"(lo), "+r"(hi) : "r"(a), "r"(b));
    return ((uint64_t)hi << 32) | lo;
#else
    return acc + (uint64_t)a * b;
#endif
}

/* (re + i im) * (c - i s) / 2 with Q31 c, s: the twiddle W = e^{-i theta}. */
#define CMUL_HALF(re, im, c, s, out_re, out_im)                                                    \
    do {                                                                                           \
        int32_t cm_re_ = (re), cm_im_ = (im);                                                      \
        (out_re) = mla_hi(cm_im_, (s), mul_hi(cm_re_, (c)));                                       \
        (out_im) = mls_hi(cm_re_, (s), mul_hi(cm_im_, (c)));                                       \
    } while (0)

/* Index of the highest set bit of a 32-bit x > 0 (CLZ where the core has it). */
#if (defined(__GNUC__) || defined(__clang__)) && (!defined(__arm__) || defined(__ARM_FEATURE_CLZ))
static uint32_t msb32(uint32_t x)
{
    return 31u - (uint32_t)__builtin_clz(x);
}
#else
static uint32_t msb32(uint32_t x)
{
    uint32_t n = 0;
    if (x >> 16) {
        n += 16;
        x >>= 16;
    }
    if (x >> 8) {
        n += 8;
        x >>= 8;
    }
    if (x >> 4) {
        n += 4;
        x >>= 4;
    }
    if (x >> 2) {
        n += 2;
        x >>= 2;
    }
    if (x >> 1) {
        n += 1;
    }
    return n;
}
#endif

/* Index of the highest set bit, x > 0. */
static uint32_t msb64(uint64_t x)
{
    uint32_t hi = (uint32_t)(x >> 32);
    return hi ? 32u + msb32(hi) : msb32((uint32_t)x);
}

/* log2(x) in Q16 for x > 0: exponent + table lookup with linear interpolation. The table's
 * steps are < 2^9 (gen_tables.py checks), so step * rem + half < 2^32 fits uint32. */
static int32_t log2_q16(uint64_t x)
{
    uint32_t e = msb64(x);
    uint32_t m; /* mantissa with its top bit at bit 31 */
    uint32_t frac, idx, rem, interp;
    if (e >= 31) {
        m = (uint32_t)(x >> (e - 31));
    } else {
        m = (uint32_t)x << (31 - e);
    }
    frac = m & 0x7FFFFFFFu;
    idx = frac >> (31 - TKD_LOG2_TABLE_BITS);
    rem = frac & ((1u << (31 - TKD_LOG2_TABLE_BITS)) - 1u);
    interp =
        ((tkd_log2_q16[idx + 1] - tkd_log2_q16[idx]) * rem + (1u << (30 - TKD_LOG2_TABLE_BITS))) >>
        (31 - TKD_LOG2_TABLE_BITS);
    return (int32_t)(e << 16) + (int32_t)tkd_log2_q16[idx] + (int32_t)interp;
}

static int32_t frame_sum(const int16_t *x, uint32_t n)
{
    int32_t sum = 0;
    uint32_t i = 0;
#if TKD_FRONTEND_ASM
    /* 8 samples per step: SMLAD(pair, 0x00010001) adds both halves (the same int32 sum; the
     * loads may be unaligned, which LDR allows on ARMv7-M and ARMv8-M Mainline) */
    const int16_t *end = x + (n & ~7u);
    while (x != end) {
        uint32_t a, b, c, d;
        __asm__("ldr %0, [%4], #4\n\t"
                "ldr %1, [%4], #4\n\t"
                "ldr %2, [%4], #4\n\t"
                "ldr %3, [%4], #4\n\t"
                "smlad %5, %0, %6, %5\n\t"
                "smlad %5, %1, %6, %5\n\t"
                "smlad %5, %2, %6, %5\n\t"
                "smlad %5, %3, %6, %5"
                : "=&r"(a), "=&r"(b), "=&r"(c), "=&r"(d), "+r"(x), "+r"(sum)
                : "r"(0x00010001u)
                : "memory");
    }
    n &= 7u;
#endif
    for (; i < n; i++) {
        sum += x[i];
    }
    return sum;
}

/* round(sum / WINDOW), halves away from zero; C99 division truncates toward zero */
static int32_t frame_mean(int32_t sum)
{
    if (sum >= 0) {
        return (sum + TKD_FRONTEND_WINDOW / 2) / TKD_FRONTEND_WINDOW;
    }
    return -((-sum + TKD_FRONTEND_WINDOW / 2) / TKD_FRONTEND_WINDOW);
}

#define WINDOWED(i) ((((int32_t)x[(i)] - mean) * (int32_t)tkd_hann_q15[(i)]) >> WINDOW_SHIFT)

#if !TKD_FRONTEND_ASM
/* Window (DC removed) and the FFT's first stage in one pass: radix 2, decimation in
 * frequency over z[n] = v[2n] + i v[2n+1], n < 512, of which only n < 320 are non-zero (the
 * window is zero-padded to FFT_SIZE). buf[n] = (z[n] + z[n + 256]) / 2,
 * buf[n + 256] = (z[n] - z[n + 256]) W_512^n / 2. */
static void window_radix2(const int16_t *x, int32_t mean, int32_t *buf)
{
    uint32_t n;
    int32_t *lo = buf, *hi = buf + HALF_FFT;
    const int32_t *w = tkd_w1024_q31;
    /* n < 64: z[n + 256] = v[2n + 512] + i v[2n + 513] is non-zero; W_512^n = W_1024^2n */
    for (n = 0; n < (TKD_FRONTEND_WINDOW - HALF_FFT) / 2; n++, lo += 2, hi += 2, w += 4) {
        int32_t ar = WINDOWED(2 * n), ai = WINDOWED(2 * n + 1);
        int32_t br = WINDOWED(2 * n + HALF_FFT), bi = WINDOWED(2 * n + HALF_FFT + 1);
        lo[0] = (ar + br) >> 1;
        lo[1] = (ai + bi) >> 1;
        CMUL_HALF(ar - br, ai - bi, w[0], w[1], hi[0], hi[1]);
    }
    for (; n < QUARTER_HALF / 2; n++, lo += 2, hi += 2, w += 4) {
        int32_t ar = WINDOWED(2 * n), ai = WINDOWED(2 * n + 1);
        lo[0] = ar >> 1;
        lo[1] = ai >> 1;
        CMUL_HALF(ar, ai, w[0], w[1], hi[0], hi[1]);
    }
    /* n >= 128: W_1024^2n = -i W_1024^(2n - 256), i.e. cos' = -sin, sin' = cos */
    for (w = tkd_w1024_q31; n < QUARTER_HALF; n++, lo += 2, hi += 2, w += 4) {
        int32_t ar = WINDOWED(2 * n), ai = WINDOWED(2 * n + 1);
        lo[0] = ar >> 1;
        lo[1] = ai >> 1;
        CMUL_HALF(ar, ai, -w[1], w[0], hi[0], hi[1]);
    }
}
#endif

#if TKD_FRONTEND_ASM
/* window_radix2 in assembly (DSP extension): two samples per 32-bit load, (x - mean) w as
 * SMULBB/SMULTT(x, w) - SMULBB/SMULBT(mean, w) (exact: |x - mean| w < 2^31), then the same
 * shifts, sums and SMMUL/SMMLA/SMMLS as the C. Loads of x may be unaligned (ARMv7-M and
 * ARMv8-M Mainline allow it for LDR). hann[320] = 32768 is no signed halfword: fft_512 redoes
 * that pair (n = 160) in C. r0 x, r1 mean, r2 lo, r3 hann, r4 twiddles, r5 hi, r6 end of
 * the loop, r7-r12 values, lr zero. */
#define WIN_PAIR /* r9, r10 = (x - mean) w of x[2n], x[2n + 1] */                                  \
    "ldr r7, [r0], #4\n\t"                                                                         \
    "ldr r8, [r3], #4\n\t"                                                                         \
    "smulbb r9, r7, r8\n\t"                                                                        \
    "smulbb r10, r1, r8\n\t"                                                                       \
    "sub r9, r9, r10\n\t"                                                                          \
    "smultt r7, r7, r8\n\t"                                                                        \
    "smulbt r8, r1, r8\n\t"                                                                        \
    "sub r10, r7, r8\n\t"
__attribute__((naked)) static void
window_radix2_dsp(const int16_t *x TKD_UNUSED, int32_t mean TKD_UNUSED, int32_t *buf TKD_UNUSED,
                  const uint16_t *hann TKD_UNUSED, const int32_t *w1024 TKD_UNUSED)
{
    __asm__ volatile(
        "push {r4-r11, lr}\n\t"
        "ldr r4, [sp, #36]\n\t"
        "add r5, r2, #2048\n\t"
        "add r6, r0, #256\n\t"
        "1:\n\t"                           /* n < 64: z[n] and z[n + 256] */
        WIN_PAIR "ldr r7, [r0, #1020]\n\t" /* x[2n + 512], x[2n + 513] */
        "ldr r8, [r3, #1020]\n\t"
        "smulbb r11, r7, r8\n\t"
        "smulbb r12, r1, r8\n\t"
        "sub r11, r11, r12\n\t"
        "smultt r7, r7, r8\n\t"
        "smulbt r8, r1, r8\n\t"
        "sub r12, r7, r8\n\t"
        "asr r9, r9, #5\n\t"          /* ar */
        "asr r10, r10, #5\n\t"        /* ai */
        "add r7, r9, r11, asr #5\n\t" /* ar + br */
        "sub r9, r9, r11, asr #5\n\t" /* ar - br */
        "add r8, r10, r12, asr #5\n\t"
        "sub r10, r10, r12, asr #5\n\t"
        "asr r7, r7, #1\n\t"
        "asr r8, r8, #1\n\t"
        "strd r7, r8, [r2], #8\n\t"
        "ldrd r11, r12, [r4], #16\n\t"
        "smmul r7, r9, r11\n\t"
        "smmul r11, r10, r11\n\t"
        "smmla r7, r10, r12, r7\n\t"
        "smmls r11, r9, r12, r11\n\t"
        "strd r7, r11, [r5], #8\n\t"
        "cmp r0, r6\n\t"
        "bne 1b\n\t"
        "add r6, r0, #256\n\t"
        "2:\n\t"                      /* 64 <= n < 128 */
        WIN_PAIR "asr r7, r9, #6\n\t" /* ar >> 1 */
        "asr r8, r10, #6\n\t"
        "strd r7, r8, [r2], #8\n\t"
        "asr r9, r9, #5\n\t"
        "asr r10, r10, #5\n\t"
        "ldrd r11, r12, [r4], #16\n\t"
        "smmul r7, r9, r11\n\t"
        "smmul r11, r10, r11\n\t"
        "smmla r7, r10, r12, r7\n\t"
        "smmls r11, r9, r12, r11\n\t"
        "strd r7, r11, [r5], #8\n\t"
        "cmp r0, r6\n\t"
        "bne 2b\n\t"
        "sub r4, r4, #2048\n\t"
        "add r6, r0, #512\n\t"
        "mov lr, #0\n\t"
        "3:\n\t" /* n >= 128: twiddle (-sin, cos) of 2n - 256; mul_hi(a, -s) = SMMLS(a, s, 0) */
        WIN_PAIR "asr r7, r9, #6\n\t"
        "asr r8, r10, #6\n\t"
        "strd r7, r8, [r2], #8\n\t"
        "asr r9, r9, #5\n\t"
        "asr r10, r10, #5\n\t"
        "ldrd r11, r12, [r4], #16\n\t"
        "smmls r7, r9, r12, lr\n\t"
        "smmls r12, r10, r12, lr\n\t"
        "smmla r7, r10, r11, r7\n\t"
        "smmls r11, r9, r11, r12\n\t"
        "strd r7, r11, [r5], #8\n\t"
        "cmp r0, r6\n\t"
        "bne 3b\n\t"
        "pop {r4-r11, pc}\n\t");
}
#endif

/* Radix-4 decimation-in-frequency stages over blocks of 4Q complex points: a, b, c, d =
 * z[j], z[j + Q], z[j + 2Q], z[j + 3Q] become (a + b + c + d) / 2, (a - ib - c + id) W^j / 2,
 * (a - b + c - d) W^2j / 2, (a + ib - c - id) W^3j / 2 (W = e^{-2 pi i / 4Q}), stored at
 * z[j + rQ], r = 0..3. One function per Q, so that b, c, d are constant offsets from a (the
 * compiler keeps one pointer); j = 0 has no twiddles. tw: W^j, W^2j, W^3j for j = 1..Q-1. */
#define RADIX4_BUTTERFLY(p, Q, tw)                                                                 \
    do {                                                                                           \
        int32_t ar, ai, br, bi, cr, ci, dr, di, yr, yi;                                            \
        int32_t t0r, t0i, t1r, t1i, t2r, t2i, t3r, t3i;                                            \
        LOAD2(p, ar, ai);                                                                          \
        LOAD2(p + 2 * Q, br, bi);                                                                  \
        LOAD2(p + 4 * Q, cr, ci);                                                                  \
        LOAD2(p + 6 * Q, dr, di);                                                                  \
        t0r = ar + cr;                                                                             \
        t0i = ai + ci;                                                                             \
        t1r = ar - cr;                                                                             \
        t1i = ai - ci;                                                                             \
        t2r = br + dr;                                                                             \
        t2i = bi + di;                                                                             \
        t3r = br - dr;                                                                             \
        t3i = bi - di;                                                                             \
        STORE2(p, (t0r + t2r) >> 1, (t0i + t2i) >> 1);                                             \
        if ((tw) == NULL) {                                                                        \
            STORE2(p + 4 * Q, (t0r - t2r) >> 1, (t0i - t2i) >> 1);                                 \
            STORE2(p + 2 * Q, (t1r + t3i) >> 1, (t1i - t3r) >> 1);                                 \
            STORE2(p + 6 * Q, (t1r - t3i) >> 1, (t1i + t3r) >> 1);                                 \
        } else {                                                                                   \
            CMUL_HALF(t0r - t2r, t0i - t2i, (tw)[2], (tw)[3], yr, yi);                             \
            STORE2(p + 4 * Q, yr, yi);                                                             \
            CMUL_HALF(t1r + t3i, t1i - t3r, (tw)[0], (tw)[1], yr, yi);                             \
            STORE2(p + 2 * Q, yr, yi);                                                             \
            CMUL_HALF(t1r - t3i, t1i + t3r, (tw)[4], (tw)[5], yr, yi);                             \
            STORE2(p + 6 * Q, yr, yi);                                                             \
        }                                                                                          \
    } while (0)

#if TKD_FRONTEND_ASM
/* The radix-4 stages and the last stage in assembly on cores with the DSP extension: the
 * same integer operations as RADIX4_BUTTERFLY and radix4_last (each sum and difference is
 * exact in 32 bits, see README.md; SMMUL/SMMLA/SMMLS are mul_hi/mla_hi/mls_hi), with every
 * value kept in a register (GCC spends ~52 instructions per twiddled butterfly, this ~42).
 * r0 walks the b slots (post-incremented LDRD), r1 the twiddles, r2 their end in a block;
 * a, b, c, d sit in r3:r4, r5:r6, r7:r8, r9:r10. In-place sum and difference:
 * x' = x + y, y' = x' - 2y = x - y. */
#define R4_STR_(x) #x
#define R4_STR(x)  R4_STR_(x)
/* Offsets (bytes) of a, c, d from r0 once it has stepped past b. */
#define R4_LOADS(Q)                                                                                \
    "ldrd r5, r6, [r0], #8\n\t"                                                                    \
    "ldrd r3, r4, [r0, #-(8*" R4_STR(                                                              \
        Q) "+8)]\n\t"                                                                              \
           "ldrd r7, r8, [r0, #(8*" R4_STR(                                                        \
               Q) "-8)]\n\t"                                                                       \
                  "ldrd r9, r10, [r0, #(16*" R4_STR(                                               \
                      Q) "-8)]\n\t"                                                                \
                         "add r3, r3, r7\n\t"           /* t0r = ar + cr */                        \
                         "sub r7, r3, r7, lsl #1\n\t"   /* t1r = ar - cr */                        \
                         "add r4, r4, r8\n\t"           /* t0i */                                  \
                         "sub r8, r4, r8, lsl #1\n\t"   /* t1i */                                  \
                         "add r5, r5, r9\n\t"           /* t2r = br + dr */                        \
                         "sub r9, r5, r9, lsl #1\n\t"   /* t3r = br - dr */                        \
                         "add r6, r6, r10\n\t"          /* t2i */                                  \
                         "sub r10, r6, r10, lsl #1\n\t" /* t3i */                                  \
                         "add r11, r3, r5\n\t"          /* t0r + t2r */                            \
                         "sub r5, r3, r5\n\t"           /* u2r = t0r - t2r */                      \
                         "add r12, r4, r6\n\t"                                                     \
                         "sub r6, r4, r6\n\t" /* u2i */                                            \
                         "asr r11, r11, #1\n\t"                                                    \
                         "asr r12, r12, #1\n\t"                                                    \
                         "strd r11, r12, [r0, #-(8*" R4_STR(                                       \
                             Q) "+8)]\n\t"            /* a = (t0 + t2) / 2 */                      \
                                "add r3, r7, r10\n\t" /* u1r = t1r + t3i */                        \
                                "sub r7, r7, r10\n\t" /* u3r = t1r - t3i */                        \
                                "sub r4, r8, r9\n\t"  /* u1i = t1i - t3r */                        \
                                "add r8, r8, r9\n\t"  /* u3i = t1i + t3r */
/* One radix-4 stage, blocks of 4Q complex points: (buf, twiddles of j = 1..Q-1). */
#define DEFINE_RADIX4_STAGE_ASM(name, Q)                                                           \
    __attribute__((naked)) static void name(int32_t *buf TKD_UNUSED,                               \
                                            const int32_t *twiddles TKD_UNUSED)                    \
    {                                                                                              \
        __asm__ volatile("push {r4-r11, lr}\n\t"                                                   \
                         "add r2, r0, #(4096+8*" R4_STR(                                           \
                             Q) ")\n\t"                                                            \
                                "push {r2}\n\t" /* r0 at the end */                                \
                                "add r0, r0, #(8*" R4_STR(                                         \
                                    Q) ")\n\t"                                                     \
                                       "addw r2, r1, #(24*(" R4_STR(                               \
                                           Q) "-1))\n\t"                                           \
                                              "0:\n\t" R4_LOADS(Q) /* j = 0: no twiddles */        \
                         "asr r5, r5, #1\n\t"                                                      \
                         "asr r6, r6, #1\n\t"                                                      \
                         "asr r3, r3, #1\n\t"                                                      \
                         "asr r4, r4, #1\n\t"                                                      \
                         "asr r7, r7, #1\n\t"                                                      \
                         "asr r8, r8, #1\n\t"                                                      \
                         "strd r3, r4, [r0, #-8]\n\t"                                              \
                         "strd r5, r6, [r0, #(8*" R4_STR(                                          \
                             Q) "-8)]\n\t"                                                         \
                                "strd r7, r8, [r0, #(16*" R4_STR(                                  \
                                    Q) "-8)]\n\t"                                                  \
                                       "1:\n\t" R4_LOADS(                                          \
                                           Q) "ldm r1!, {r9, r10, r11, r12}\n\t" /* W^j, W^2j */   \
                                              "smmul lr, r3, r9\n\t"                               \
                                              "smmul r9, r4, r9\n\t"                               \
                                              "smmla lr, r4, r10, lr\n\t"                          \
                                              "smmls r9, r3, r10, r9\n\t"                          \
                                              "strd lr, r9, [r0, #-8]\n\t" /* b = u1 W^j / 2 */    \
                                              "smmul r3, r5, r11\n\t"                              \
                                              "smmul r11, r6, r11\n\t"                             \
                                              "smmla r3, r6, r12, r3\n\t"                          \
                                              "smmls r11, r5, r12, r11\n\t"                        \
                                              "strd r3, r11, [r0, #(8*" R4_STR(                    \
                                                  Q) "-8)]\n\t" /* c = u2 W^2j / 2 */              \
                                                     "ldrd r9, r10, [r1], #8\n\t" /* W^3j */       \
                                                     "smmul r3, r7, r9\n\t"                        \
                                                     "smmul r9, r8, r9\n\t"                        \
                                                     "smmla r3, r8, r10, r3\n\t"                   \
                                                     "smmls r9, r7, r10, r9\n\t"                   \
                                                     "strd r3, r9, [r0, #(16*" R4_STR(             \
                                                         Q) "-8)]\n\t" /* d = u3 W^3j / 2 */       \
                                                            "cmp r1, r2\n\t"                       \
                                                            "bne 1b\n\t"                           \
                                                            "subw r1, r1, #(24*(" R4_STR(          \
                                                                Q) "-1))\n\t"                      \
                                                                   "addw r0, r0, #(24*" R4_STR(    \
                                                                       Q) ")\n\t"                  \
                                                                          "ldr r3, [sp]\n\t"       \
                                                                          "cmp r0, r3\n\t"         \
                                                                          "bne 0b\n\t"             \
                                                                          "add sp, sp, #4\n\t"     \
                                                                          "pop {r4-r11, pc}\n\t"); \
    }
DEFINE_RADIX4_STAGE_ASM(radix4_span256, 64)
DEFINE_RADIX4_STAGE_ASM(radix4_span64, 16)
DEFINE_RADIX4_STAGE_ASM(radix4_span16, 4)

/* The last stage: the 8 words of a butterfly are contiguous (one LDM, one STM). */
__attribute__((naked)) static void radix4_last(int32_t *buf TKD_UNUSED)
{
    __asm__ volatile("push {r4-r11, lr}\n\t"
                     "add r1, r0, #4096\n\t"
                     "1:\n\t"
                     "ldm r0, {r2-r9}\n\t"        /* a r2:r3, b r4:r5, c r6:r7, d r8:r9 */
                     "sub r10, r2, r6\n\t"        /* t1r */
                     "add r2, r2, r6\n\t"         /* t0r */
                     "sub r11, r3, r7\n\t"        /* t1i */
                     "add r3, r3, r7\n\t"         /* t0i */
                     "sub r12, r4, r8\n\t"        /* t3r */
                     "add r6, r4, r8\n\t"         /* t2r */
                     "sub lr, r5, r9\n\t"         /* t3i */
                     "add r7, r5, r9\n\t"         /* t2i */
                     "add r4, r10, lr\n\t"        /* t1r + t3i */
                     "sub r8, r10, lr\n\t"        /* t1r - t3i */
                     "sub r5, r11, r12\n\t"       /* t1i - t3r */
                     "add r9, r11, r12\n\t"       /* t1i + t3r */
                     "add r2, r2, r6\n\t"         /* t0r + t2r */
                     "sub r6, r2, r6, lsl #1\n\t" /* t0r - t2r */
                     "add r3, r3, r7\n\t"
                     "sub r7, r3, r7, lsl #1\n\t"
                     "stm r0!, {r2-r9}\n\t"
                     "cmp r0, r1\n\t"
                     "bne 1b\n\t"
                     "pop {r4-r11, pc}\n\t");
}
#else
#define DEFINE_RADIX4_STAGE(name, Q)                                                               \
    static void name(int32_t *buf, const int32_t *twiddles)                                        \
    {                                                                                              \
        int32_t *blk, *p, *end = buf + 2 * HALF_FFT;                                               \
        for (blk = buf; blk < end; blk += 8 * (Q)) {                                               \
            const int32_t *tw = twiddles;                                                          \
            RADIX4_BUTTERFLY(blk, (Q), (const int32_t *)NULL);                                     \
            for (p = blk + 2; p < blk + 2 * (Q); p += 2, tw += 6) {                                \
                RADIX4_BUTTERFLY(p, (Q), tw);                                                      \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_RADIX4_STAGE(radix4_span256, 64)
DEFINE_RADIX4_STAGE(radix4_span64, 16)
DEFINE_RADIX4_STAGE(radix4_span16, 4)

/* The last radix-4 stage (span 4): no twiddles, no scaling. */
static void radix4_last(int32_t *buf)
{
    int32_t *a = buf, *end = buf + 2u * HALF_FFT;
    for (; a < end; a += 8) {
        int32_t ar, ai, br, bi, cr, ci, dr, di;
        int32_t t0r, t0i, t1r, t1i, t2r, t2i, t3r, t3i;
        LOAD2(a, ar, ai);
        LOAD2(a + 2, br, bi);
        LOAD2(a + 4, cr, ci);
        LOAD2(a + 6, dr, di);
        t0r = ar + cr;
        t0i = ai + ci;
        t1r = ar - cr;
        t1i = ai - ci;
        t2r = br + dr;
        t2i = bi + di;
        t3r = br - dr;
        t3i = bi - di;
        STORE2(a, t0r + t2r, t0i + t2i);
        STORE2(a + 2, t1r + t3i, t1i - t3r);
        STORE2(a + 4, t0r - t2r, t0i - t2i);
        STORE2(a + 6, t1r - t3i, t1i + t3r);
    }
}
#endif

/* 512-point complex FFT of the windowed frame, Z / 16 in digit-reversed order
 * (tkd_fft_pos). */
static void fft_512(const int16_t *x, int32_t mean, int32_t *buf)
{
#if TKD_FRONTEND_ASM
    window_radix2_dsp(x, mean, buf, tkd_hann_q15, tkd_w1024_q31);
    { /* n = 160 (hann[320] = 32768) as in window_radix2 */
        const uint32_t n = TKD_FRONTEND_WINDOW / 4;
        const int32_t *w = tkd_w1024_q31 + 4u * (n - QUARTER_HALF / 2);
        int32_t ar = WINDOWED(2 * n), ai = WINDOWED(2 * n + 1);
        buf[2 * n] = ar >> 1;
        buf[2 * n + 1] = ai >> 1;
        CMUL_HALF(ar, ai, -w[1], w[0], buf[2 * (n + QUARTER_HALF)],
                  buf[2 * (n + QUARTER_HALF) + 1]);
    }
#else
    window_radix2(x, mean, buf);
#endif
    radix4_span256(buf, tkd_r4_twiddle_q31);
    radix4_span64(buf, tkd_r4_twiddle_q31 + 6 * 63);
    radix4_span16(buf, tkd_r4_twiddle_q31 + 6 * (63 + 15));
    radix4_last(buf);
}

/* Power of DFT_1024(v) / 16 for the filterbank's bins, from Z (split of the real transform):
 * A = Z[k] + conj Z[512 - k] = 2 E[k], B = Z[k] - conj Z[512 - k] = 2i O[k],
 * X[k] = A / 2 - i W_1024^k B / 2. */
static void split_power(const int32_t *z, uint64_t *power)
{
#if TKD_FRONTEND_ASM
    /* The same integers as the C below, per bin in registers (LDRD/STRD, no reloads). */
    const uint32_t *pos = tkd_fft_pos, *pos_end = tkd_fft_pos + TKD_MEL_NUM_BINS;
    const int32_t *w = tkd_w1024_q31 + 2u * TKD_MEL_FIRST_BIN;
    while (pos != pos_end) {
        int32_t a, b, c, d, e, f, g;
        __asm__("ldr %0, [%7], #4\n\t"
                "uxth %1, %0\n\t"
                "lsr %0, %0, #16\n\t"
                "add %1, %10, %1, lsl #3\n\t" /* Z[k] */
                "add %0, %10, %0, lsl #3\n\t" /* Z[512 - k] */
                "ldrd %2, %3, [%1]\n\t"
                "ldrd %4, %5, [%0]\n\t"
                "add %0, %2, %4\n\t" /* ar */
                "sub %2, %2, %4\n\t" /* br */
                "sub %1, %3, %5\n\t" /* ai */
                "add %3, %3, %5\n\t" /* bi */
                "ldrd %4, %5, [%8], #8\n\t"
                "smmul %6, %2, %4\n\t"
                "smmul %4, %3, %4\n\t"
                "smmla %6, %3, %5, %6\n\t"   /* ur */
                "smmls %4, %2, %5, %4\n\t"   /* ui */
                "add %2, %4, %0, asr #1\n\t" /* xr = ar / 2 + ui */
                "rsb %3, %6, %1, asr #1\n\t" /* xi = ai / 2 - ur */
                "smull %4, %5, %2, %2\n\t"
                "smlal %4, %5, %3, %3\n\t"
                "strd %4, %5, [%9], #8"
                : "=&r"(a), "=&r"(b), "=&r"(c), "=&r"(d), "=&r"(e), "=&r"(f), "=&r"(g), "+r"(pos),
                  "+r"(w), "+r"(power)
                : "r"(z)
                : "memory");
    }
#else
    uint32_t k;
    for (k = 0; k < TKD_MEL_NUM_BINS; k++) {
        uint32_t pos = tkd_fft_pos[k];
        const int32_t *zk = z + 2u * (pos & 0xFFFFu), *zc = z + 2u * (pos >> 16);
        const int32_t *w = tkd_w1024_q31 + 2u * (k + TKD_MEL_FIRST_BIN);
        int32_t ar = zk[0] + zc[0], ai = zk[1] - zc[1];
        int32_t br = zk[0] - zc[0], bi = zk[1] + zc[1];
        int32_t ur, ui, xr, xi;
        CMUL_HALF(br, bi, w[0], w[1], ur, ui);
        xr = (ar >> 1) + ui; /* -i (ur + i ui) = ui - i ur */
        xi = (ai >> 1) - ur;
        power[k] = (uint64_t)((int64_t)xr * xr + (int64_t)xi * xi);
    }
#endif
}

#if TKD_FRONTEND_ASM
/* acc_lo += (P mod 2^32) w, acc_hi += (P >> 32) w over bins [k, end) (LDRD of P, two UMLAL);
 * FALL: weight 32768 - w. The same sums as the C loops. */
#define MEL_SEGMENT(FALL)                                                                          \
    do {                                                                                           \
        const uint64_t *p_ = power + k;                                                            \
        const uint16_t *wq_ = tkd_mel_weight_q15 + k, *we_ = tkd_mel_weight_q15 + end;             \
        while (wq_ != we_) {                                                                       \
            uint32_t w_, pl_, ph_;                                                                 \
            __asm__("ldrh %0, [%3], #2\n\t" FALL "ldrd %1, %2, [%4], #8\n\t"                       \
                    "umlal %5, %6, %1, %0\n\t"                                                     \
                    "umlal %7, %8, %2, %0"                                                         \
                    : "=&r"(w_), "=&r"(pl_), "=&r"(ph_), "+r"(wq_), "+r"(p_), "+r"(l0), "+r"(l1),  \
                      "+r"(h0), "+r"(h1)                                                           \
                    :                                                                              \
                    : "memory");                                                                   \
        }                                                                                          \
    } while (0)
#endif

/* S[j] = sum over bins P * w_q15, exactly, as lo + 2^32 hi with lo = sum (P mod 2^32) w and
 * hi = sum (P >> 32) w (both < 2^64: P < 2^62 and a band's weights sum to < 2^20). Segment j
 * (the rising edge of band j) adds w to band j and 32768 - w to band j - 1. */
static void mel_filterbank(const uint64_t *power, uint64_t *mel_lo, uint64_t *mel_hi)
{
    uint32_t j, k;
    for (j = 0; j < TKD_FRONTEND_NUM_MEL; j++) {
#if TKD_FRONTEND_ASM
        uint32_t l0 = 0, l1 = 0, h0 = 0, h1 = 0;
        uint32_t end = tkd_mel_band_start[j + 1];
        k = tkd_mel_band_start[j];
        MEL_SEGMENT("");
        k = end;
        end = tkd_mel_band_start[j + 2];
        MEL_SEGMENT("rsb %0, %0, #32768\n\t");
        mel_lo[j] = ((uint64_t)l1 << 32) | l0;
        mel_hi[j] = ((uint64_t)h1 << 32) | h0;
#else
        uint64_t lo = 0, hi = 0;
        uint32_t end = tkd_mel_band_start[j + 1];
        for (k = tkd_mel_band_start[j]; k < end; k++) {
            uint32_t w = tkd_mel_weight_q15[k];
            lo = mac_u64(lo, (uint32_t)power[k], w);
            hi = mac_u64(hi, (uint32_t)(power[k] >> 32), w);
        }
        end = tkd_mel_band_start[j + 2];
        for (; k < end; k++) {
            uint32_t w = (1u << MEL_WEIGHT_BITS) - tkd_mel_weight_q15[k];
            lo = mac_u64(lo, (uint32_t)power[k], w);
            hi = mac_u64(hi, (uint32_t)(power[k] >> 32), w);
        }
        mel_lo[j] = lo;
        mel_hi[j] = hi;
#endif
    }
}

/* log2(lo + 2^32 hi) in Q16, or INT32_MIN for 0. */
static int32_t log2_q16_96(uint64_t lo, uint64_t hi)
{
    uint64_t top = hi + (lo >> 32); /* the value >> 32; no carry out: hi < 2^52 */
    if (top >> 32) {
        return log2_q16(top) + (32 << 16); /* the low 32 bits are below the mantissa */
    }
    top = (top << 32) | (uint32_t)lo;
    return top ? log2_q16(top) : INT32_MIN;
}

/* Orthonormal DCT-II (Q30 rows, ln 2 / SCALE folded in) of the Q16 log energies, rounded,
 * offset by the zero point and clamped to int8. Row k is (-1)^k-symmetric about the middle
 * (gen_tables.py checks), so sum_n row[n] L[n] = sum_{n < 20} row[n] (L[n] +- L[39 - n]):
 * the same integer with half the multiplies. */
static void dct_quantise(const int32_t *logmel, int8_t *out)
{
    int32_t sum[TKD_FRONTEND_NUM_MEL / 2], dif[TKD_FRONTEND_NUM_MEL / 2];
    uint32_t k, n;
    for (n = 0; n < TKD_FRONTEND_NUM_MEL / 2; n++) {
        sum[n] = logmel[n] + logmel[TKD_FRONTEND_NUM_MEL - 1u - n];
        dif[n] = logmel[n] - logmel[TKD_FRONTEND_NUM_MEL - 1u - n];
    }
    for (k = 0; k < TKD_FRONTEND_NUM_MFCC; k++) {
        const int32_t *row = &tkd_dct_q30[k * (TKD_FRONTEND_NUM_MEL / 2)];
        const int32_t *v = (k & 1u) ? dif : sum;
        int64_t acc = 0;
        int64_t q;
        for (n = 0; n < TKD_FRONTEND_NUM_MEL / 2; n++) {
            acc += (int64_t)row[n] * v[n];
        }
        q = ((acc + ((int64_t)1 << (DCT_SHIFT - 1))) >> DCT_SHIFT) + TKD_FRONTEND_ZERO_POINT;
        if (q < -128) {
            q = -128;
        } else if (q > 127) {
            q = 127;
        }
        out[k] = (int8_t)q;
    }
}

static void frame_with_sum(const int16_t *window, int32_t sum, int8_t *out,
                           tkd_frontend_scratch *scratch)
{
    uint64_t mel_lo[TKD_FRONTEND_NUM_MEL], mel_hi[TKD_FRONTEND_NUM_MEL];
    int32_t logmel[TKD_FRONTEND_NUM_MEL];
    const int32_t floor_q16 = -(TKD_FRONTEND_LOG2_FLOOR << 16);
    const int32_t offset_q16 = -(MEL_WEIGHT_BITS + POWER_TO_FLOAT_LOG2) * 65536;
    uint32_t m;

#if TKD_FRONTEND_STATIC_SCRATCH
    if (scratch == NULL) {
        scratch = &tkd_default_scratch;
    }
#endif
    PROFILE_MARK(0);
    fft_512(window, frame_mean(sum), scratch->fft);
    PROFILE_MARK(1);
    split_power(scratch->fft, scratch->power);
    PROFILE_MARK(2);
    mel_filterbank(scratch->power, mel_lo, mel_hi);
    PROFILE_MARK(3);
    for (m = 0; m < TKD_FRONTEND_NUM_MEL; m++) {
        int32_t l = log2_q16_96(mel_lo[m], mel_hi[m]);
        /* l + offset: l < 2^23, no overflow; the floor also catches an empty band (INT32_MIN) */
        logmel[m] = (l == INT32_MIN || l + offset_q16 < floor_q16) ? floor_q16 : l + offset_q16;
    }
    PROFILE_MARK(4);
    dct_quantise(logmel, out);
    PROFILE_MARK(5);
}

void tkd_frontend_frame(const int16_t *window, int8_t *out, tkd_frontend_scratch *scratch)
{
    frame_with_sum(window, frame_sum(window, TKD_FRONTEND_WINDOW), out, scratch);
}

void tkd_frontend_run(const int16_t *audio, int8_t *features, tkd_frontend_scratch *scratch)
{
    /* each window is two hops: sum each hop once */
    int32_t prev = frame_sum(audio, TKD_FRONTEND_STRIDE);
    uint32_t f;
    for (f = 0; f < TKD_FRONTEND_NUM_FRAMES; f++) {
        const int16_t *window = audio + f * TKD_FRONTEND_STRIDE;
        int32_t next = frame_sum(window + TKD_FRONTEND_STRIDE, TKD_FRONTEND_STRIDE);
        frame_with_sum(window, prev + next, features + f * TKD_FRONTEND_NUM_MFCC, scratch);
        prev = next;
    }
}

void tkd_frontend_run_batch(const int16_t *audio, int8_t *features, uint32_t n,
                            tkd_frontend_scratch *scratch)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        tkd_frontend_run(audio + (size_t)i * TKD_FRONTEND_CLIP_SAMPLES,
                         features + (size_t)i * TKD_FRONTEND_NUM_FEATURES, scratch);
    }
}

void tkd_frontend_stream_init(tkd_frontend_stream *stream)
{
    memset(stream, 0, sizeof(*stream));
}

int tkd_frontend_stream_push(tkd_frontend_stream *stream, const int16_t *hop, int8_t *out,
                             tkd_frontend_scratch *scratch)
{
    const uint32_t hops_per_window = TKD_FRONTEND_WINDOW / TKD_FRONTEND_STRIDE;
    memmove(stream->history, stream->history + TKD_FRONTEND_STRIDE,
            sizeof(int16_t) * (TKD_FRONTEND_WINDOW - TKD_FRONTEND_STRIDE));
    memcpy(stream->history + (TKD_FRONTEND_WINDOW - TKD_FRONTEND_STRIDE), hop,
           sizeof(int16_t) * TKD_FRONTEND_STRIDE);
    if (stream->pushed < hops_per_window) {
        stream->pushed++;
    }
    if (stream->pushed < hops_per_window) {
        return 0;
    }
    tkd_frontend_frame(stream->history, out, scratch);
    return 1;
}
