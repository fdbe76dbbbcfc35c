/* ADD, int8, with TFLite's two-input rescaling: both inputs are moved to a common scale
 * (twice the larger input scale) with 20 bits of headroom, summed, and rescaled to the
 * output. Broadcasting is handled by per-dimension strides (0 on a broadcast dimension). */
#include "tkd_runtime.h"

static int32_t rescale_input(int32_t q, int32_t offset, int32_t left_shift, int32_t mult,
                             int32_t shift)
{
    const int32_t shifted = (int32_t)((uint32_t)(q + offset) << left_shift);
    return tkd_multiply_by_quantized_multiplier_smaller_than_one(shifted, mult, shift);
}

void tkd_add_s8(const tkd_add_params_t *p, const int8_t *input1, const int8_t *input2,
                int8_t *output)
{
    int32_t i0, i1, i2, i3;
    int32_t n = 0;
    for (i0 = 0; i0 < p->dims[0]; i0++) {
        for (i1 = 0; i1 < p->dims[1]; i1++) {
            for (i2 = 0; i2 < p->dims[2]; i2++) {
                for (i3 = 0; i3 < p->dims[3]; i3++) {
                    const int32_t a = input1[i0 * p->in1_stride[0] + i1 * p->in1_stride[1] +
                                             i2 * p->in1_stride[2] + i3 * p->in1_stride[3]];
                    const int32_t b = input2[i0 * p->in2_stride[0] + i1 * p->in2_stride[1] +
                                             i2 * p->in2_stride[2] + i3 * p->in2_stride[3]];
                    const int32_t sa = rescale_input(a, p->input1_offset, p->left_shift,
                                                     p->input1_multiplier, p->input1_shift);
                    const int32_t sb = rescale_input(b, p->input2_offset, p->left_shift,
                                                     p->input2_multiplier, p->input2_shift);
                    int32_t out = tkd_multiply_by_quantized_multiplier_smaller_than_one(
                                      sa + sb, p->output_multiplier, p->output_shift) +
                                  p->output_offset;
                    out = out < p->act_min ? p->act_min : out;
                    out = out > p->act_max ? p->act_max : out;
                    output[n++] = (int8_t)out;
                }
            }
        }
    }
}
