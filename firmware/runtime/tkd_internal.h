/* Helpers shared by the runtime's kernels (not part of the public API).
 *
 * - tkd_rq(): TFLite's double-rounding MultiplyByQuantizedMultiplier, in a 64-bit form for
 *   any accumulator and a short 32-bit form for layers whose accumulators the code generator
 *   proves small, both for multipliers in [0, INT32_MAX] (what the code generator emits:
 *   quantize_multiplier never returns a negative Q0.31 value).
 * - tkd_out(): requantise, add the output offset, clamp, as one output stage.
 * - SIMD helpers for the DSP paths: on a core with the Armv7E-M / Armv8-M DSP extension they
 *   are one instruction each, written as GCC inline assembly (no <arm_acle.h>: the
 *   arm-none-eabi-gcc 7 that the Arduino Mbed core ships lacks __smlad, __sxtb16, __ssat & co.,
 *   and inline assembly builds the same on any GCC >= 7 and clang); with TKD_DSP_EMULATE (host
 *   testing of the DSP code structure) they are plain C with identical results.
 */
#ifndef TKD_INTERNAL_H
#define TKD_INTERNAL_H

#include <string.h>

#include "tkd_runtime.h"

#if defined(__GNUC__) || defined(__clang__)
#define TKD_INLINE static inline __attribute__((always_inline))
#else
#define TKD_INLINE static inline
#endif

/* The 64-bit form. Why it equals tkd_multiply_by_quantized_multiplier: SaturatingRoundingDoublingHighMul
 * is trunc((a*b + nudge) / 2^31) with nudge = 2^30 for a*b >= 0 and 1 - 2^30 otherwise;
 * for a*b < 0 truncation is a ceiling, and ceil((p + 1 - 2^30) / 2^31) =
 * floor((p + 2^30) / 2^31), so both signs are floor((p + 2^30) / 2^31) -- an arithmetic
 * shift of the 64-bit sum. Saturation only happens for a == b == INT32_MIN, impossible with
 * mult >= 0. The rounding right shift is the reference's mask/threshold form. */
typedef struct {
    int32_t mult, left, right, mask, half;
} tkd_rq_t;

/* Per-channel constants of the reference requantisation. */
TKD_INLINE tkd_rq_t tkd_rq_make(int32_t mult, int32_t shift)
{
    tkd_rq_t r;
    r.mult = mult;
    r.left = shift > 0 ? shift : 0;
    r.right = shift > 0 ? 0 : -shift;
    r.mask = (int32_t)(((uint32_t)1 << r.right) - 1u);
    r.half = r.mask >> 1;
    return r;
}

/* Any accumulator: the reference's arithmetic (see above). */
TKD_INLINE int32_t tkd_rq_apply(const tkd_rq_t *r, int32_t acc)
{
    const int64_t p = (int64_t)(int32_t)((uint32_t)acc << r->left) * r->mult;
    const int32_t hi = (int32_t)((p + ((int64_t)1 << 30)) >> 31);
    const int32_t threshold = r->half + (int32_t)((uint32_t)hi >> 31);
    return (hi >> r->right) + ((hi & r->mask) > threshold ? 1 : 0);
}

/* Short form, exact when |acc| < 2^30 and -31 <= shift <= -1 (the code generator's
 * short_requant flag says both hold for the whole layer):
 * - 2*acc does not overflow, and (2*acc*mult + 2^31) >> 32 equals
 *   floor((acc*mult + 2^30) / 2^31), the high multiply above (SMMULR: one instruction);
 * - |hi| <= |acc| < 2^30, so hi + 2^(right-1) cannot overflow, and the rounding right shift
 *   (ties away from zero) is (hi + 2^(right-1) - (hi < 0)) >> right, as right >= 1. */
/* SMMULR: (a * b + 2^31) >> 32, the rounded high word of the 64-bit product. */
TKD_INLINE int32_t tkd_smmulr(int32_t a, int32_t b)
{
#if TKD_USE_DSP && defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TKD_DSP_EMULATE)
    int32_t hi;
    __asm__("smmulr %0, %1, %2" : "=r"(hi) : "r"(a), "r"(b));
    return hi;
#else
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
#endif
}

TKD_INLINE int32_t tkd_rq_short(int32_t acc, int32_t mult, int32_t shift)
{
    const int32_t hi = tkd_smmulr((int32_t)((uint32_t)acc << 1), mult);
    const int32_t right = -shift;
    const int32_t round = (int32_t)((uint32_t)1 << (right - 1));
    return (hi + round - (int32_t)((uint32_t)hi >> 31)) >> right;
}

/* Requantise with the form the layer allows. */
TKD_INLINE int32_t tkd_rq(int32_t acc, int32_t mult, int32_t shift, int32_t is_short)
{
    if (is_short) {
        return tkd_rq_short(acc, mult, shift);
    } else {
        const tkd_rq_t r = tkd_rq_make(mult, shift);
        return tkd_rq_apply(&r, acc);
    }
}

TKD_INLINE int8_t tkd_clamp_s8(int32_t v, int32_t lo, int32_t hi)
{
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return (int8_t)v;
}

/* A layer's output stage, copied into a local so the compiler keeps it in registers (int8
 * stores could alias the params struct, forcing reloads through the pointer). */
typedef struct {
    const int32_t *mult, *shift;
    int32_t offset, lo, hi, is_short;
    int32_t fast; /* tkd_out2/tkd_out4 may take their fast form (see there) */
} tkd_out_t;

TKD_INLINE int8_t tkd_out(const tkd_out_t *o, int32_t ch, int32_t acc)
{
    return tkd_clamp_s8(tkd_rq(acc, o->mult[ch], o->shift[ch], o->is_short) + o->offset, o->lo,
                        o->hi);
}

/* Clamp to [-128, 127]: one SSAT where the core has it (any Armv7-M or later, DSP or not). */
TKD_INLINE int32_t tkd_sat_s8(int32_t v)
{
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT && !defined(TKD_DSP_EMULATE)
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(v));
    return r;
#else
    return v < -128 ? -128 : (v > 127 ? 127 : v);
#endif
}

/* The output stage of one channel for the 1, 2 or 4 pixels of a block: the channel's
 * multiplier and shift are loaded, and its rounding constant built, once per block.
 * Fast form (o->fast, decided once per layer by tkd_out_stage): short requantisation,
 * every right shift <= 22, and a clamp range ending at 127 (no activation, or a ReLU whose
 * range reaches the top of int8: what QAT-trained models have). Then
 * - the output offset rides in the rounding constant: adding offset * 2^right before the
 *   arithmetic shift adds exactly offset after it (floor((x + k 2^r) / 2^r) =
 *   floor(x / 2^r) + k), and nothing overflows: |hi| < 2^30, round <= 2^21 and
 *   |offset| * 2^right <= 2^7 * 2^22 = 2^29;
 * - the clamp is one SSAT to [-128, 127] and, where act_min > -128 (a ReLU whose zero point
 *   is above -128), a max with act_min: clamp(x, lo, 127) = max(clamp(x, -128, 127), lo)
 *   for any lo >= -128.
 * An output then costs LSL, SMMULR, SUB, ADD, ASR, SSAT (+ CMP/MOVLT) and the store;
 * otherwise tkd_out. */
#define TKD_OUT_FAST_CONSTS(o, ch)                                                                 \
    const int32_t fm_ = (o)->mult[ch], fr_ = -(o)->shift[ch], fl_ = (o)->lo;                       \
    const int32_t fk_ = (int32_t)(((uint32_t)1 << (fr_ - 1)) + ((uint32_t)(o)->offset << fr_))

TKD_INLINE int8_t tkd_out_fast(int32_t acc, int32_t m, int32_t right, int32_t round, int32_t lo)
{
    const int32_t hi = tkd_smmulr((int32_t)((uint32_t)acc << 1), m);
    const int32_t v = tkd_sat_s8((hi + round - (int32_t)((uint32_t)hi >> 31)) >> right);
    return (int8_t)(v < lo ? lo : v);
}

/* Any output stage, n outputs of one channel (tkd_requant.c): the general form kept out of
 * line, so each fast block carries one call instead of a copy of both requantisations. */
void tkd_out_n(const tkd_out_t *o, int32_t ch, const int32_t *acc, int32_t n, int8_t *out,
               int32_t stride);

TKD_INLINE void tkd_out1(const tkd_out_t *o, int32_t ch, int32_t a0, int8_t *out)
{
    if (o->fast) {
        TKD_OUT_FAST_CONSTS(o, ch);
        out[0] = tkd_out_fast(a0, fm_, fr_, fk_, fl_);
    } else {
        tkd_out_n(o, ch, &a0, 1, out, 1);
    }
}

TKD_INLINE void tkd_out2(const tkd_out_t *o, int32_t ch, int32_t a0, int32_t a1, int8_t *out,
                         int32_t stride)
{
    if (o->fast) {
        TKD_OUT_FAST_CONSTS(o, ch);
        out[0] = tkd_out_fast(a0, fm_, fr_, fk_, fl_);
        out[stride] = tkd_out_fast(a1, fm_, fr_, fk_, fl_);
    } else {
        const int32_t acc[2] = { a0, a1 };
        tkd_out_n(o, ch, acc, 2, out, stride);
    }
}

TKD_INLINE void tkd_out4(const tkd_out_t *o, int32_t ch, int32_t a0, int32_t a1, int32_t a2,
                         int32_t a3, int8_t *out, int32_t stride)
{
    if (o->fast) {
        TKD_OUT_FAST_CONSTS(o, ch);
        out[0] = tkd_out_fast(a0, fm_, fr_, fk_, fl_);
        out[stride] = tkd_out_fast(a1, fm_, fr_, fk_, fl_);
        out[2 * stride] = tkd_out_fast(a2, fm_, fr_, fk_, fl_);
        out[3 * stride] = tkd_out_fast(a3, fm_, fr_, fk_, fl_);
    } else {
        const int32_t acc[4] = { a0, a1, a2, a3 };
        tkd_out_n(o, ch, acc, 4, out, stride);
    }
}

/* A layer's output stage: the one constructor for every kernel that requantises an int32
 * accumulator (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D). `channels` is the number of
 * multiplier/shift entries (1 for a per-tensor FULLY_CONNECTED); they are scanned once per
 * kernel call to decide the fast form of tkd_out1/2/4 (tkd_out ignores it). */
TKD_INLINE tkd_out_t tkd_out_stage(const int32_t *mult, const int32_t *shift, int32_t channels,
                                   int32_t offset, int32_t act_min, int32_t act_max,
                                   int32_t is_short)
{
    tkd_out_t o;
    int32_t ch;
    o.mult = mult;
    o.shift = shift;
    o.offset = offset;
    o.lo = act_min;
    o.hi = act_max;
    o.is_short = is_short;
    o.fast = is_short && act_max == 127;
    for (ch = 0; o.fast && ch < channels; ch++) {
        o.fast = shift[ch] >= -22; /* short_requant already says shift <= -1 */
    }
    return o;
}

/* CONV_2D and DEPTHWISE_CONV_2D share their parameter struct. */
TKD_INLINE tkd_out_t tkd_conv_out_stage(const tkd_conv_params_t *p)
{
    return tkd_out_stage(p->multiplier, p->shift, p->out_c, p->output_offset, p->act_min,
                         p->act_max, p->short_requant);
}

/* The reference loops of CONV_2D and DEPTHWISE_CONV_2D walk the output pixels px = 0 ..
 * batches * out_h * out_w - 1 in NHWC order (pixel px's outputs at output + px * out_c).
 * Its window: the pixel's batch of the input and where filter tap (0, 0) falls in it (outside
 * the image with padding). */
typedef struct {
    const int8_t *in_b;
    int32_t iy0, ix0;
} tkd_window_t;

TKD_INLINE tkd_window_t tkd_conv_window(const tkd_conv_params_t *p, const int8_t *input, int32_t px)
{
    const int32_t pixels = p->out_h * p->out_w;
    const int32_t b = px / pixels, oy = (px - b * pixels) / p->out_w, ox = px % p->out_w;
    tkd_window_t w;
    w.in_b = input + (int32_t)b * p->in_h * p->in_w * p->in_c;
    w.iy0 = oy * p->stride_h - p->pad_h;
    w.ix0 = ox * p->stride_w - p->pad_w;
    return w;
}

/* The input pixel (in_c bytes) under filter tap (fy, fx) of a window, 0 outside the image. */
TKD_INLINE const int8_t *tkd_window_tap(const tkd_conv_params_t *p, const tkd_window_t *w,
                                        int32_t fy, int32_t fx)
{
    const int32_t iy = w->iy0 + p->dilation_h * fy, ix = w->ix0 + p->dilation_w * fx;
    if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
        return 0;
    }
    return w->in_b + ((int32_t)iy * p->in_w + ix) * p->in_c;
}

/* One output pixel of a reference loop: its window and its out_c outputs. */
typedef void (*tkd_conv_pixel_fn)(const tkd_conv_params_t *p, const tkd_window_t *win,
                                  const int8_t *filter, const int32_t *bias, const tkd_out_t *os,
                                  int8_t *out);

/* The reference loops of CONV_2D and DEPTHWISE_CONV_2D: `pixel` on every output pixel. */
TKD_INLINE void tkd_conv_pixels(const tkd_conv_params_t *p, const int8_t *input,
                                const int8_t *filter, const int32_t *bias, int8_t *output,
                                tkd_conv_pixel_fn pixel)
{
    const tkd_out_t os = tkd_conv_out_stage(p);
    const int32_t pixels = p->batches * p->out_h * p->out_w;
    int32_t px;
    for (px = 0; px < pixels; px++) {
        const tkd_window_t win = tkd_conv_window(p, input, px);
        pixel(p, &win, filter, bias, &os, output + px * p->out_c);
    }
}

TKD_INLINE tkd_out_t tkd_fc_out_stage(const tkd_fc_params_t *p)
{
    return tkd_out_stage(p->multiplier, p->shift, p->per_channel ? p->output_depth : 1,
                         p->output_offset, p->act_min, p->act_max, p->short_requant);
}

/* Four int8 values from any address (unaligned word loads are fine on M3 and later). */
TKD_INLINE uint32_t tkd_read_s8x4(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

#if TKD_USE_DSP
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TKD_DSP_EMULATE)
/* bytes 0 and 2, sign-extended to two int16 lanes */
TKD_INLINE uint32_t tkd_sxtb16(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
    return r;
}
/* bytes 1 and 3 (SXTB16 with its built-in rotate by 8) */
TKD_INLINE uint32_t tkd_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
/* Two words p[O/4], p[O/4 + 1] (O: a constant byte offset, multiple of 4, < 1024) in one
 * LDRD; GCC splits 64-bit loads of this kind into two LDRs. The "m" operand tells the
 * compiler which memory the instruction reads, so it is ordered after the stores that wrote
 * it. */
#define TKD_LDRD(P, O, LO, HI)                                                                     \
    __asm__("ldrd %0, %1, [%2, #%c3]"                                                              \
            : "=&r"(LO), "=&r"(HI)                                                                 \
            : "r"(P), "n"(O), "m"(*(const uint32_t (*)[2])((const char *)(P) + (O))))
/* acc + lo(a)*lo(b) + hi(a)*hi(b), int16 lanes, wrapping (the Q flag it may set is never
 * read, so it needs no clobber) */
TKD_INLINE int32_t tkd_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
/* acc + lo(a)*lo(b) */
TKD_INLINE int32_t tkd_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlabb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
/* acc + hi(a)*hi(b) */
TKD_INLINE int32_t tkd_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlatt %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
#else
/* Plain C twins (host testing with -DTKD_USE_DSP=1 -DTKD_DSP_EMULATE). */
#define TKD_LDRD(P, O, LO, HI)                                                                     \
    do {                                                                                           \
        (LO) = (P)[(O) / 4];                                                                       \
        (HI) = (P)[(O) / 4 + 1];                                                                   \
    } while (0)
TKD_INLINE int32_t tkd_lo16(uint32_t x)
{
    return (int32_t)(int16_t)(uint16_t)(x & 0xFFFFu);
}
TKD_INLINE int32_t tkd_hi16(uint32_t x)
{
    return (int32_t)(int16_t)(uint16_t)(x >> 16);
}
TKD_INLINE uint32_t tkd_sxtb16(uint32_t x)
{
    const uint32_t lo = (uint32_t)(int32_t)(int8_t)(uint8_t)(x & 0xFFu) & 0xFFFFu;
    const uint32_t hi = (uint32_t)(int32_t)(int8_t)(uint8_t)((x >> 16) & 0xFFu) & 0xFFFFu;
    return lo | (hi << 16);
}
TKD_INLINE uint32_t tkd_sxtb16_ror8(uint32_t x)
{
    return tkd_sxtb16((x >> 8) | (x << 24));
}
TKD_INLINE int32_t tkd_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(tkd_lo16(a) * tkd_lo16(b)) +
                     (uint32_t)(tkd_hi16(a) * tkd_hi16(b)));
}
TKD_INLINE int32_t tkd_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(tkd_lo16(a) * tkd_lo16(b)));
}
TKD_INLINE int32_t tkd_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(tkd_hi16(a) * tkd_hi16(b)));
}
#endif
#endif /* TKD_USE_DSP */

#endif /* TKD_INTERNAL_H */
