/* FULLY_CONNECTED, int8 activations and weights, int32 bias (TFLM reference semantics:
 * per-tensor weights may carry a zero point, per-channel weights are symmetric).
 *
 * The bias is the folded one (see tkd_runtime.h): input_offset * row sums is already in it,
 * so the inner loop is a plain int8 dot product.
 *   portable: four output rows at a time share each input byte load;
 *   DSP:      four rows at a time, four inputs per step: the input word is sign-extended
 *             once into two int16 pairs (SXTB16) and used by eight SMLADs. */
#include "tkd_internal.h"

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
    for (b = 0; b < p->batches; b++) {
        const int8_t *in = input + (int32_t)b * n;
        int8_t *out = output + (int32_t)b * p->output_depth;
        o = 0;
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
