/* ADD, int8, with TFLite's two-input rescaling: both inputs are moved to a common scale
 * (twice the larger input scale) with 20 bits of headroom, summed, and rescaled to the
 * output. Broadcasting is handled by per-dimension strides (0 on a broadcast dimension).
 *
 * Fast path (tensors of at least TKD_ADD_TABLE_MIN elements): an input's rescaled value
 * depends only on its int8 value, so each input's 256 rescaled values are tabulated once per
 * call with the reference arithmetic itself (exact by construction), and each element costs
 * two table loads, an add and the output stage. The output stage takes the block kernels'
 * fast form (tkd_out_fast: one SMMULR, a rounding shift with the offset folded in, SSAT) when
 * its shift is a right shift of 1..22 and the clamp ends at 127; it is exact there because
 * every |rescaled input| <= 255 * 2^20 < 2^28, so |sum| < 2^29 < 2^30 (tkd_internal.h). */
#include "tkd_internal.h"

/* Elements from which tabulating (512 reference rescalings) pays off; 0: never. */
#ifndef TKD_ADD_TABLE_MIN
#define TKD_ADD_TABLE_MIN 512
#endif

static int32_t rescale_input(int32_t q, int32_t offset, int32_t left_shift, int32_t mult,
                             int32_t shift)
{
    const int32_t shifted = (int32_t)((uint32_t)(q + offset) << left_shift);
    return tkd_multiply_by_quantized_multiplier_smaller_than_one(shifted, mult, shift);
}

static int8_t add_out(const tkd_add_params_t *p, int32_t sum)
{
    const int32_t out = tkd_multiply_by_quantized_multiplier_smaller_than_one(
                            sum, p->output_multiplier, p->output_shift) +
                        p->output_offset;
    return tkd_clamp_s8(out, p->act_min, p->act_max);
}

#if TKD_ADD_TABLE_MIN > 0
/* n elements, both inputs dense (no broadcast): tables t1, t2 indexed by the value + 128. */
static void add_dense(const tkd_add_params_t *p, const int32_t *t1, const int32_t *t2,
                      const int8_t *a, const int8_t *b, int8_t *out, int32_t n)
{
    int32_t i;
    if (p->output_shift <= -1 && p->output_shift >= -22 && p->act_max == 127 &&
        p->output_multiplier >= 0) {
        const int32_t m = p->output_multiplier, right = -p->output_shift, lo = p->act_min;
        const int32_t round =
            (int32_t)(((uint32_t)1 << (right - 1)) + ((uint32_t)p->output_offset << right));
        for (i = 0; i < n; i++) {
            out[i] = tkd_out_fast(t1[a[i]] + t2[b[i]], m, right, round, lo);
        }
    } else {
        for (i = 0; i < n; i++) {
            out[i] = add_out(p, t1[a[i]] + t2[b[i]]);
        }
    }
}

/* A tensor of the output's shape stored densely (a dimension of size 1 may carry any
 * stride: its index is always 0). */
static int is_dense(const int32_t *dims, const int32_t *stride)
{
    int32_t d, natural = 1;
    for (d = 3; d >= 0; d--) {
        if (dims[d] != 1 && stride[d] != natural) {
            return 0;
        }
        natural *= dims[d];
    }
    return 1;
}
#endif

void tkd_add_s8(const tkd_add_params_t *p, const int8_t *input1, const int8_t *input2,
                int8_t *output)
{
    int32_t i0, i1, i2, i3;
    int32_t n = 0;
#if TKD_ADD_TABLE_MIN > 0
    const int32_t total = p->dims[0] * p->dims[1] * p->dims[2] * p->dims[3];
    const int dense = is_dense(p->dims, p->in1_stride) && is_dense(p->dims, p->in2_stride);
    if (dense && total >= TKD_ADD_TABLE_MIN) {
        int32_t tab1[256], tab2[256];
        int32_t v;
        for (v = -128; v < 128; v++) {
            tab1[v + 128] = rescale_input(v, p->input1_offset, p->left_shift, p->input1_multiplier,
                                          p->input1_shift);
            tab2[v + 128] = rescale_input(v, p->input2_offset, p->left_shift, p->input2_multiplier,
                                          p->input2_shift);
        }
        add_dense(p, tab1 + 128, tab2 + 128, input1, input2, output, total);
        return;
    }
#endif
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
                    output[n++] = add_out(p, sa + sb);
                }
            }
        }
    }
}
