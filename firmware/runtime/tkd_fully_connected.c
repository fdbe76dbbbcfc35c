/* FULLY_CONNECTED, int8 activations and weights, int32 bias (TFLM reference semantics:
 * per-tensor weights may carry a zero point, per-channel weights are symmetric). */
#include "tkd_runtime.h"

void tkd_fully_connected_s8(const tkd_fc_params_t *p, const int8_t *input,
                            const int8_t *filter, const int32_t *bias, int8_t *output)
{
    int32_t b, o, i;
    for (b = 0; b < p->batches; b++) {
        const int8_t *in_row = input + (int32_t)b * p->accum_depth;
        for (o = 0; o < p->output_depth; o++) {
            const int8_t *w_row = filter + (int32_t)o * p->accum_depth;
            const int32_t ch = p->per_channel ? o : 0;
            int32_t acc = 0;
            /* Portable loop. A DSP version (SMLAD on pairs) would go here under TKD_USE_DSP. */
            for (i = 0; i < p->accum_depth; i++) {
                acc += ((int32_t)w_row[i] + p->filter_offset) *
                       ((int32_t)in_row[i] + p->input_offset);
            }
            if (bias) {
                acc += bias[o];
            }
            acc = tkd_multiply_by_quantized_multiplier(acc, p->multiplier[ch], p->shift[ch]);
            acc += p->output_offset;
            acc = acc < p->act_min ? p->act_min : acc;
            acc = acc > p->act_max ? p->act_max : acc;
            output[(int32_t)b * p->output_depth + o] = (int8_t)acc;
        }
    }
}
