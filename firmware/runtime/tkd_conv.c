/* CONV_2D, int8, per-channel requantisation (TFLM reference semantics: taps that fall
 * outside the image are skipped; grouped convolution when filter_in_c < in_c). */
#include "tkd_runtime.h"

void tkd_conv_s8(const tkd_conv_params_t *p, const int8_t *input, const int8_t *filter,
                 const int32_t *bias, int8_t *output)
{
    const int32_t filters_per_group = p->out_c / (p->in_c / p->filter_in_c);
    int32_t b, oy, ox, oc, fy, fx, ic;
    for (b = 0; b < p->batches; b++) {
        for (oy = 0; oy < p->out_h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            for (ox = 0; ox < p->out_w; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int8_t *out = output + (((int32_t)b * p->out_h + oy) * p->out_w + ox) * p->out_c;
                for (oc = 0; oc < p->out_c; oc++) {
                    const int32_t group_base = (oc / filters_per_group) * p->filter_in_c;
                    int32_t acc = 0;
                    for (fy = 0; fy < p->filter_h; fy++) {
                        const int32_t iy = iy0 + p->dilation_h * fy;
                        if (iy < 0 || iy >= p->in_h) {
                            continue;
                        }
                        for (fx = 0; fx < p->filter_w; fx++) {
                            const int32_t ix = ix0 + p->dilation_w * fx;
                            const int8_t *in;
                            const int8_t *w;
                            if (ix < 0 || ix >= p->in_w) {
                                continue;
                            }
                            in = input + (((int32_t)b * p->in_h + iy) * p->in_w + ix) * p->in_c +
                                 group_base;
                            w = filter + (((int32_t)oc * p->filter_h + fy) * p->filter_w + fx) *
                                             p->filter_in_c;
                            for (ic = 0; ic < p->filter_in_c; ic++) {
                                acc += (int32_t)w[ic] * ((int32_t)in[ic] + p->input_offset);
                            }
                        }
                    }
                    if (bias) {
                        acc += bias[oc];
                    }
                    acc = tkd_multiply_by_quantized_multiplier(acc, p->multiplier[oc],
                                                               p->shift[oc]);
                    acc += p->output_offset;
                    acc = acc < p->act_min ? p->act_min : acc;
                    acc = acc > p->act_max ? p->act_max : acc;
                    out[oc] = (int8_t)acc;
                }
            }
        }
    }
}
