/*
 * tinykd KWS frontend: fixed-point MFCC (see tkd_frontend.h and README.md).
 *
 * Number formats along the per-frame path (x = int16 sample):
 *   windowed   xw = (x - mean) * hann_q15 >> 12          int32, 3 fractional bits, |xw| < 2^19
 *   FFT        512-point complex FFT of xw[2n] + i xw[2n+1], twiddles Q30, int32 x int32 -> int64
 *   split      X2[k] = 2 * DFT_1024(xw)[k]                int32 (|X2| < 2^31)
 *   power      P[k] = |X2[k]|^2 = 2^8 * |DFT(x_int)|^2    uint64 (< 2^60)
 *   mel        acc = sum (P >> s) * w_q15                 uint64, s chosen per frame for headroom
 *   log        L = log2(acc) + s - 15 - 38                 Q16; 2^-38 turns P into float-audio power
 *   DCT        c = sum dct_q30 * L                         int64, Q46 in units of the output scale
 *   output     q = clamp(round(c / 2^46) + zero_point)     int8
 * All shifts of negative values are arithmetic; the typedef below refuses to compile where
 * they are not.
 */
#include "tkd_frontend.h"

#include <string.h>

#include "tkd_frontend_tables.h"

typedef char tkd_requires_arithmetic_right_shift[((-8 >> 1) == -4) ? 1 : -1];

#define HALF_FFT            (TKD_FRONTEND_FFT_SIZE / 2) /* complex points */
#define QUARTER_FFT         (TKD_FRONTEND_FFT_SIZE / 4)
#define WINDOW_FRAC_BITS    3
#define POWER_TO_FLOAT_LOG2 38 /* P = 2^38 * |DFT(x / 32768)|^2 */
#define MEL_WEIGHT_BITS     15
#define MEL_HEADROOM_BITS   20 /* sum of Q15 weights in a band < 2^20 (checked by gen_tables.py) */
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

static int32_t cos_at(uint32_t k) /* cos(2 pi k / FFT_SIZE), k < FFT_SIZE/2, Q30 */
{
    return (k <= QUARTER_FFT) ? tkd_cos_q30[k] : -tkd_cos_q30[HALF_FFT - k];
}

static int32_t sin_at(uint32_t k) /* sin(2 pi k / FFT_SIZE), k < FFT_SIZE/2, Q30 */
{
    return (k <= QUARTER_FFT) ? tkd_cos_q30[QUARTER_FFT - k] : tkd_cos_q30[k - QUARTER_FFT];
}

static int64_t round_shift30(int64_t v)
{
    return (v + ((int64_t)1 << 29)) >> 30;
}

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

/* Window the frame (DC removed) and load it bit-reversed as 512 complex points. */
static void load_windowed(const int16_t *x, int32_t *buf)
{
    int32_t sum = 0;
    int32_t mean;
    uint32_t n;
    for (n = 0; n < TKD_FRONTEND_WINDOW; n++) {
        sum += x[n];
    }
    /* round(sum / WINDOW), halves away from zero; C99 division truncates toward zero */
    if (sum >= 0) {
        mean = (sum + TKD_FRONTEND_WINDOW / 2) / TKD_FRONTEND_WINDOW;
    } else {
        mean = -((-sum + TKD_FRONTEND_WINDOW / 2) / TKD_FRONTEND_WINDOW);
    }
    memset(buf, 0, sizeof(int32_t) * TKD_FRONTEND_FFT_SIZE);
    for (n = 0; n < TKD_FRONTEND_WINDOW; n++) {
        uint32_t wi = (n <= TKD_FRONTEND_WINDOW / 2) ? n : (TKD_FRONTEND_WINDOW - n);
        /* |x - mean| <= 65535 and w <= 32768: the product fits in int32 */
        int32_t v = ((x[n] - mean) * (int32_t)tkd_hann_q15[wi] + (1 << (14 - WINDOW_FRAC_BITS))) >>
                    (15 - WINDOW_FRAC_BITS);
        buf[2u * tkd_bitrev9[n >> 1] + (n & 1u)] = v;
    }
}

/* In-place radix-2 decimation-in-time FFT over HALF_FFT complex points (input bit-reversed).
 * Every value stays below 640 * 2^19 < 2^29 in magnitude, so int32 holds it; the twiddle
 * products are int32 x int32 -> int64 (one SMULL/SMLAL each on Cortex-M). */
static void fft_512(int32_t *buf)
{
    uint32_t len, half, i, j, step;
    for (len = 2; len <= HALF_FFT; len <<= 1) {
        half = len >> 1;
        step = TKD_FRONTEND_FFT_SIZE / len; /* twiddle index in units of 2 pi / FFT_SIZE */
        for (j = 0; j < half; j++) {
            int32_t wr = cos_at(j * step);
            int32_t wi = -sin_at(j * step); /* e^{-i theta} */
            for (i = j; i < HALF_FFT; i += len) {
                int32_t *a = &buf[2u * i];
                int32_t *b = &buf[2u * (i + half)];
                int32_t tr = (int32_t)round_shift30((int64_t)b[0] * wr - (int64_t)b[1] * wi);
                int32_t ti = (int32_t)round_shift30((int64_t)b[0] * wi + (int64_t)b[1] * wr);
                int32_t ar = a[0], ai = a[1];
                a[0] = ar + tr;
                a[1] = ai + ti;
                b[0] = ar - tr;
                b[1] = ai - ti;
            }
        }
    }
}

/* Power of 2 * DFT_1024 for the bins the mel filterbank uses; returns the OR of all of
 * them (its highest set bit is the largest power's).
 * |Z| components < 2^29, so A, B < 2^30 and |2 X[k]| <= 2 * 640 * 2^19 < 2^31: int32. */
static uint64_t split_power(const int32_t *z, uint64_t *power)
{
    uint64_t any_p = 0;
    uint32_t k;
    for (k = TKD_MEL_FIRST_BIN; k < TKD_MEL_FIRST_BIN + TKD_MEL_NUM_BINS; k++) {
        uint32_t kc = HALF_FFT - k;
        int32_t zr = z[2u * k], zi = z[2u * k + 1u];
        int32_t cr = z[2u * kc], ci = -z[2u * kc + 1u]; /* conj(Z[N/2 - k]) */
        int32_t ar = zr + cr, ai = zi + ci;             /* 2 E[k] */
        int32_t br = zr - cr, bi = zi - ci;             /* 2 i O[k] */
        int32_t c = cos_at(k), s = sin_at(k);
        /* 2 X[k] = A - i W^k B, W = e^{-i 2 pi / 1024} */
        int32_t xr = (int32_t)(ar + round_shift30((int64_t)c * bi - (int64_t)s * br));
        int32_t xi = (int32_t)(ai - round_shift30((int64_t)s * bi + (int64_t)c * br));
        uint64_t p = (uint64_t)((int64_t)xr * xr) + (uint64_t)((int64_t)xi * xi);
        power[k - TKD_MEL_FIRST_BIN] = p;
        any_p |= p;
    }
    return any_p;
}

/* mel[j] = sum over bins (P >> shift) * weight, band by band: the bins of segment j (rising
 * edge of band j) add w to band j and 32768 - w to band j - 1. Products of a uint64 by a Q15
 * weight as two 32-bit multiplies (UMLAL + MLA), exact modulo 2^64; the headroom shift keeps
 * every sum below 2^64. shift < 32 (the power is < 2^63). */
static void mel_filterbank(const uint64_t *power, uint32_t shift, uint64_t *mel)
{
    uint64_t prev_rise = 0;
    uint32_t j, k;
    for (j = 0; j <= TKD_FRONTEND_NUM_MEL; j++) {
        uint64_t rise = 0, fall = 0;       /* the low 32-bit halves' products (UMLAL) */
        uint32_t rise_hi = 0, fall_hi = 0; /* the high halves' products, mod 2^32 (MLA) */
        for (k = tkd_mel_band_start[j]; k < tkd_mel_band_start[j + 1]; k++) {
            uint32_t lo = (uint32_t)power[k], hi = (uint32_t)(power[k] >> 32);
            uint32_t w = tkd_mel_weight_q15[k];
            uint32_t wf = (1u << MEL_WEIGHT_BITS) - w;
            uint32_t plo = (lo >> shift) | ((hi << 1) << (31u - shift)); /* shift = 0 too */
            uint32_t phi = hi >> shift;
            rise += (uint64_t)plo * w;
            rise_hi += phi * w;
            fall += (uint64_t)plo * wf;
            fall_hi += phi * wf;
        }
        rise += (uint64_t)rise_hi << 32;
        fall += (uint64_t)fall_hi << 32;
        if (j >= 1u) {
            mel[j - 1u] = prev_rise + fall;
        }
        prev_rise = rise;
    }
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
        const int32_t *row = &tkd_dct_q30[k * TKD_FRONTEND_NUM_MEL];
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

void tkd_frontend_frame(const int16_t *window, int8_t *out, tkd_frontend_scratch *scratch)
{
    uint64_t mel[TKD_FRONTEND_NUM_MEL];
    int32_t logmel[TKD_FRONTEND_NUM_MEL];
    uint64_t any_p;
    uint32_t shift = 0, m;
    int32_t floor_q16 = -(TKD_FRONTEND_LOG2_FLOOR << 16);
    int32_t offset_q16;

#if TKD_FRONTEND_STATIC_SCRATCH
    if (scratch == NULL) {
        scratch = &tkd_default_scratch;
    }
#endif
    load_windowed(window, scratch->fft);
    PROFILE_MARK(0);
    fft_512(scratch->fft);
    PROFILE_MARK(1);
    any_p = split_power(scratch->fft, scratch->power);
    PROFILE_MARK(2);

    /* Block floating point: shift the powers so the weighted band sums fit in 64 bits. */
    if (any_p != 0) {
        uint32_t bits = msb64(any_p) + 1u;
        if (bits + MEL_HEADROOM_BITS > 64u) {
            shift = bits + MEL_HEADROOM_BITS - 64u;
        }
    }
    mel_filterbank(scratch->power, shift, mel);
    PROFILE_MARK(3);

    offset_q16 = ((int32_t)shift - MEL_WEIGHT_BITS - POWER_TO_FLOAT_LOG2) * 65536;
    for (m = 0; m < TKD_FRONTEND_NUM_MEL; m++) {
        int32_t l = floor_q16;
        if (mel[m] != 0) {
            l = log2_q16(mel[m]) + offset_q16;
            if (l < floor_q16) {
                l = floor_q16;
            }
        }
        logmel[m] = l;
    }
    PROFILE_MARK(4);

    dct_quantise(logmel, out);
    PROFILE_MARK(5);
}

void tkd_frontend_run(const int16_t *audio, int8_t *features, tkd_frontend_scratch *scratch)
{
    uint32_t f;
    for (f = 0; f < TKD_FRONTEND_NUM_FRAMES; f++) {
        tkd_frontend_frame(audio + f * TKD_FRONTEND_STRIDE, features + f * TKD_FRONTEND_NUM_MFCC,
                           scratch);
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
