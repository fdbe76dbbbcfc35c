/* FULLY_CONNECTED, int8 activations and weights, int32 bias (TFLM reference semantics:
 * per-tensor weights may carry a zero point, per-channel weights are symmetric).
 *
 * The bias is the folded one (see tkd_runtime.h): input_offset * row sums is already in it,
 * so the inner loop is a plain int8 dot product.
 *   portable: four output rows at a time share each input byte load;
 *   DSP:      the input is sign-extended to int16 pairs once per call (a stack buffer of
 *             up to TKD_FC_X16_MAX inputs), then four rows at a time, four inputs per step:
 *             one LDRD of input pairs, per row one weight word, two SXTB16 and two SMLAD
 *             (23 instructions per 16 MACs on Armv7E-M / Armv8-M, a loop in inline assembly
 *             that keeps its 13 values in registers; GCC's version of the same C spilled).
 *             Longer inputs: the input word is extended per block of four rows. */
#include "tkd_internal.h"

/* DSP: inputs the pre-extended buffer holds (2 bytes of stack each); 0: never. */
#ifndef TKD_FC_X16_MAX
#define TKD_FC_X16_MAX 1024
#endif

#if TKD_USE_DSP && TKD_FC_X16_MAX > 0
/* acc[r] += sum over 4 * steps inputs of x * row r, rows w, w + n, w + 2n, w + 3n; x16: the
 * input as int16 pairs (words (x0,x2) (x1,x3) per four inputs), steps >= 1. Not inlined: the
 * loop needs 13 registers, which only a function of its own has free. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static void fc_rows4(const uint32_t *x16, const int8_t *w, int32_t n, int32_t steps, int32_t *acc)
{
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TKD_DSP_EMULATE)
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const int8_t *w2 = w + 2 * n;
    const uint32_t *end = x16 + 2 * steps;
    uint32_t x0, x1, t0, t1;
    __asm__(
        "1:\n\t"
        "ldrd   %[x0], %[x1], [%[xp]], #8\n\t"
        "ldr    %[t0], [%[w0], %[n]]\n\t"
        "sxtb16 %[t1], %[t0]\n\t"
        "sxtb16 %[t0], %[t0], ror #8\n\t"
        "smlad  %[a1], %[x0], %[t1], %[a1]\n\t"
        "smlad  %[a1], %[x1], %[t0], %[a1]\n\t"
        "ldr    %[t0], [%[w0]], #4\n\t"
        "sxtb16 %[t1], %[t0]\n\t"
        "sxtb16 %[t0], %[t0], ror #8\n\t"
        "smlad  %[a0], %[x0], %[t1], %[a0]\n\t"
        "smlad  %[a0], %[x1], %[t0], %[a0]\n\t"
        "ldr    %[t0], [%[w2], %[n]]\n\t"
        "sxtb16 %[t1], %[t0]\n\t"
        "sxtb16 %[t0], %[t0], ror #8\n\t"
        "smlad  %[a3], %[x0], %[t1], %[a3]\n\t"
        "smlad  %[a3], %[x1], %[t0], %[a3]\n\t"
        "ldr    %[t0], [%[w2]], #4\n\t"
        "sxtb16 %[t1], %[t0]\n\t"
        "sxtb16 %[t0], %[t0], ror #8\n\t"
        "smlad  %[a2], %[x0], %[t1], %[a2]\n\t"
        "smlad  %[a2], %[x1], %[t0], %[a2]\n\t"
        "cmp    %[xp], %[end]\n\t"
        "bne    1b"
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [xp] "+r"(x16), [w0] "+r"(w),
          [w2] "+r"(w2), [x0] "=&r"(x0), [x1] "=&r"(x1), [t0] "=&r"(t0), [t1] "=&r"(t1)
        : [n] "r"(n), [end] "r"(end)
        : "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
#else
    int32_t i, r;
    for (i = 0; i < steps; i++, x16 += 2) {
        for (r = 0; r < 4; r++) {
            const uint32_t wv = tkd_read_s8x4(w + r * n + 4 * i);
            acc[r] = tkd_smlad(x16[0], tkd_sxtb16(wv), acc[r]);
            acc[r] = tkd_smlad(x16[1], tkd_sxtb16_ror8(wv), acc[r]);
        }
    }
#endif
}
#endif

/* One output row, any filter offset (the reference loop, used for the leftover rows). */
static int32_t dot_row(const int8_t *in, const int8_t *w, int32_t n, int32_t filter_offset,
                       int32_t acc)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        acc += ((int32_t)w[i] + filter_offset) * (int32_t)in[i];
    }
    return acc;
}

void tkd_fully_connected_s8(const tkd_fc_params_t *p, const int8_t *input, const int8_t *filter,
                            const int32_t *bias, int8_t *output)
{
    const int32_t n = p->accum_depth;
    const int32_t pc = p->per_channel ? 1 : 0;
    const tkd_out_t os = tkd_fc_out_stage(p);
    int32_t b, o;
#if TKD_USE_DSP && TKD_FC_X16_MAX > 0
    uint32_t x16[TKD_FC_X16_MAX / 2];
    const int32_t steps = n >> 2;
#endif
    for (b = 0; b < p->batches; b++) {
        const int8_t *in = input + (int32_t)b * n;
        int8_t *out = output + (int32_t)b * p->output_depth;
        o = 0;
#if TKD_USE_DSP && TKD_FC_X16_MAX > 0
        if (p->filter_offset == 0 && n <= TKD_FC_X16_MAX && steps > 0 && p->output_depth >= 4) {
            int32_t i;
            for (i = 0; i < steps; i++) {
                const uint32_t x = tkd_read_s8x4(in + 4 * i);
                x16[2 * i] = tkd_sxtb16(x);
                x16[2 * i + 1] = tkd_sxtb16_ror8(x);
            }
            for (; o + 4 <= p->output_depth; o += 4) {
                const int8_t *w0 = filter + (int32_t)o * n;
                int32_t acc[4];
                acc[0] = bias ? bias[o] : 0, acc[1] = bias ? bias[o + 1] : 0;
                acc[2] = bias ? bias[o + 2] : 0, acc[3] = bias ? bias[o + 3] : 0;
                fc_rows4(x16, w0, n, steps, acc);
                for (i = 4 * steps; i < n; i++) {
                    const int32_t x = in[i];
                    acc[0] += (int32_t)w0[i] * x;
                    acc[1] += (int32_t)w0[n + i] * x;
                    acc[2] += (int32_t)w0[2 * n + i] * x;
                    acc[3] += (int32_t)w0[3 * n + i] * x;
                }
                tkd_out1(&os, pc * o, acc[0], out + o);
                tkd_out1(&os, pc * (o + 1), acc[1], out + o + 1);
                tkd_out1(&os, pc * (o + 2), acc[2], out + o + 2);
                tkd_out1(&os, pc * (o + 3), acc[3], out + o + 3);
            }
        }
#endif
        if (p->filter_offset == 0) {
            for (; o + 4 <= p->output_depth; o += 4) {
                const int8_t *w0 = filter + (int32_t)o * n;
                const int8_t *w1 = w0 + n;
                const int8_t *w2 = w1 + n;
                const int8_t *w3 = w2 + n;
                int32_t a0 = bias ? bias[o] : 0, a1 = bias ? bias[o + 1] : 0;
                int32_t a2 = bias ? bias[o + 2] : 0, a3 = bias ? bias[o + 3] : 0;
                int32_t i = 0;
#if TKD_USE_DSP
                for (; i + 4 <= n; i += 4) {
                    const uint32_t x = tkd_read_s8x4(in + i);
                    const uint32_t x02 = tkd_sxtb16(x), x13 = tkd_sxtb16_ror8(x);
                    uint32_t w = tkd_read_s8x4(w0 + i);
                    a0 = tkd_smlad(x02, tkd_sxtb16(w), a0);
                    a0 = tkd_smlad(x13, tkd_sxtb16_ror8(w), a0);
                    w = tkd_read_s8x4(w1 + i);
                    a1 = tkd_smlad(x02, tkd_sxtb16(w), a1);
                    a1 = tkd_smlad(x13, tkd_sxtb16_ror8(w), a1);
                    w = tkd_read_s8x4(w2 + i);
                    a2 = tkd_smlad(x02, tkd_sxtb16(w), a2);
                    a2 = tkd_smlad(x13, tkd_sxtb16_ror8(w), a2);
                    w = tkd_read_s8x4(w3 + i);
                    a3 = tkd_smlad(x02, tkd_sxtb16(w), a3);
                    a3 = tkd_smlad(x13, tkd_sxtb16_ror8(w), a3);
                }
#endif
                for (; i < n; i++) {
                    const int32_t x = in[i];
                    a0 += (int32_t)w0[i] * x;
                    a1 += (int32_t)w1[i] * x;
                    a2 += (int32_t)w2[i] * x;
                    a3 += (int32_t)w3[i] * x;
                }
                out[o] = tkd_out(&os, pc * o, a0);
                out[o + 1] = tkd_out(&os, pc * (o + 1), a1);
                out[o + 2] = tkd_out(&os, pc * (o + 2), a2);
                out[o + 3] = tkd_out(&os, pc * (o + 3), a3);
            }
        }
        for (; o < p->output_depth; o++) {
            const int32_t acc =
                dot_row(in, filter + (int32_t)o * n, n, p->filter_offset, bias ? bias[o] : 0);
            out[o] = tkd_out(&os, pc * o, acc);
        }
    }
}
