/* DEPTHWISE_CONV_2D, int8, per-channel requantisation, any depth multiplier.
 *
 * The bias is the folded one (see tkd_runtime.h): taps outside the image add
 * filter * input zero point, taps inside add filter * input.
 *
 * Blocked path (depth multiplier 1, the common case), portable C or DSP: per output pixel
 * the addresses of its filter_h * filter_w input pixels are listed once (a tap outside the
 * image points at a stack row of zero-point bytes), then channels go four at a time: with
 * DSP each tap is one input word and one filter word, sign-extended by SXTB16 into int16
 * pairs and multiplied lane by lane (SMLABB / SMLATT) into four accumulators. Other depth
 * multipliers and very large filters / channel counts use the reference loop. */
#include "tkd_internal.h"

#ifndef TKD_DW_TAPS_MAX
#define TKD_DW_TAPS_MAX 64     /* filter_h * filter_w the blocked path handles; 0: never */
#endif
#define TKD_DW_PAD_MAX 512     /* channels the zero-point row holds */
#define TKD_DW_W16_MAX 640     /* DSP: filter_h * filter_w * channels pre-extended on the stack */

static void dw_reference(const tkd_conv_params_t *p, const int8_t *input, const int8_t *filter,
                         const int32_t *bias, int8_t *output)
{
    const int32_t zp = -p->input_offset;
    const tkd_out_t os = tkd_conv_out_stage(p);
    int32_t b, oy, ox, ic, m, fy, fx;
    for (b = 0; b < p->batches; b++) {
        for (oy = 0; oy < p->out_h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            for (ox = 0; ox < p->out_w; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int8_t *out = output + (((int32_t)b * p->out_h + oy) * p->out_w + ox) * p->out_c;
                for (ic = 0; ic < p->in_c; ic++) {
                    for (m = 0; m < p->depth_multiplier; m++) {
                        const int32_t oc = ic * p->depth_multiplier + m;
                        int32_t acc = bias ? bias[oc] : 0;
                        for (fy = 0; fy < p->filter_h; fy++) {
                            const int32_t iy = iy0 + p->dilation_h * fy;
                            for (fx = 0; fx < p->filter_w; fx++) {
                                const int32_t ix = ix0 + p->dilation_w * fx;
                                const int32_t w =
                                    filter[((int32_t)fy * p->filter_w + fx) * p->out_c + oc];
                                int32_t v = zp;
                                if (iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w) {
                                    v = input[(((int32_t)b * p->in_h + iy) * p->in_w + ix) *
                                                  p->in_c + ic];
                                }
                                acc += w * v;
                            }
                        }
                        out[oc] = tkd_out(&os, oc, acc);
                    }
                }
            }
        }
    }
}

#if TKD_DW_TAPS_MAX > 0
static void dw_blocked(const tkd_conv_params_t *p, const int8_t *input, const int8_t *filter,
                       const int32_t *bias, int8_t *output)
{
    const int8_t *taps[TKD_DW_TAPS_MAX];
    int8_t pad[TKD_DW_PAD_MAX] TKD_ALIGN(4);
    const tkd_out_t os = tkd_conv_out_stage(p);
    const int32_t ntaps = p->filter_h * p->filter_w;
    const int32_t C = p->in_c;
    int32_t b, oy, ox, fy, fx, c, t;
#if TKD_USE_DSP
    /* Filter words of each 4-channel group and tap, sign-extended to int16 pairs once:
     * w16[(group * ntaps + tap) * 2 + {0, 1}] = channels {0,2}, {1,3} of the group. */
    uint32_t w16buf[TKD_DW_W16_MAX / 2];
    const uint32_t *w16 = 0;
    if (ntaps * C <= TKD_DW_W16_MAX) {
        for (c = 0; c + 4 <= C; c += 4) {
            for (t = 0; t < ntaps; t++) {
                const uint32_t wv = tkd_read_s8x4(filter + (int32_t)t * C + c);
                w16buf[((c >> 2) * ntaps + t) * 2] = tkd_sxtb16(wv);
                w16buf[((c >> 2) * ntaps + t) * 2 + 1] = tkd_sxtb16_ror8(wv);
            }
        }
        w16 = w16buf;
    }
#endif
    for (c = 0; c < C; c++) {
        pad[c] = (int8_t)(-p->input_offset);
    }
    for (b = 0; b < p->batches; b++) {
        const int8_t *in_b = input + (int32_t)b * p->in_h * p->in_w * C;
        for (oy = 0; oy < p->out_h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            for (ox = 0; ox < p->out_w; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int8_t *out = output + (((int32_t)b * p->out_h + oy) * p->out_w + ox) * C;
                t = 0;
                for (fy = 0; fy < p->filter_h; fy++) {
                    const int32_t iy = iy0 + p->dilation_h * fy;
                    for (fx = 0; fx < p->filter_w; fx++, t++) {
                        const int32_t ix = ix0 + p->dilation_w * fx;
                        taps[t] = (iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w)
                                      ? in_b + ((int32_t)iy * p->in_w + ix) * C
                                      : pad;
                    }
                }
                c = 0;
                for (; c + 4 <= C; c += 4) {
                    int32_t a0 = bias ? bias[c] : 0, a1 = bias ? bias[c + 1] : 0;
                    int32_t a2 = bias ? bias[c + 2] : 0, a3 = bias ? bias[c + 3] : 0;
#if TKD_USE_DSP
                    if (w16) {   /* filter pairs extended once per call (see below) */
                        const uint32_t *wg = w16 + (c >> 2) * ntaps * 2;
                        for (t = 0; t < ntaps; t++, wg += 2) {
                            const uint32_t xv = tkd_read_s8x4(taps[t] + c);
                            const uint32_t x02 = tkd_sxtb16(xv), x13 = tkd_sxtb16_ror8(xv);
                            a0 = tkd_smlabb(x02, wg[0], a0);
                            a2 = tkd_smlatt(x02, wg[0], a2);
                            a1 = tkd_smlabb(x13, wg[1], a1);
                            a3 = tkd_smlatt(x13, wg[1], a3);
                        }
                    } else {
                        const int8_t *w = filter + c;
                        for (t = 0; t < ntaps; t++, w += C) {
                            const uint32_t xv = tkd_read_s8x4(taps[t] + c);
                            const uint32_t wv = tkd_read_s8x4(w);
                            const uint32_t x02 = tkd_sxtb16(xv), x13 = tkd_sxtb16_ror8(xv);
                            const uint32_t w02 = tkd_sxtb16(wv), w13 = tkd_sxtb16_ror8(wv);
                            a0 = tkd_smlabb(x02, w02, a0);
                            a2 = tkd_smlatt(x02, w02, a2);
                            a1 = tkd_smlabb(x13, w13, a1);
                            a3 = tkd_smlatt(x13, w13, a3);
                        }
                    }
#else
                    {
                        const int8_t *w = filter + c;
                        for (t = 0; t < ntaps; t++, w += C) {
                            const int8_t *x = taps[t] + c;
                            a0 += (int32_t)x[0] * (int32_t)w[0];
                            a1 += (int32_t)x[1] * (int32_t)w[1];
                            a2 += (int32_t)x[2] * (int32_t)w[2];
                            a3 += (int32_t)x[3] * (int32_t)w[3];
                        }
                    }
#endif
                    out[c] = tkd_out(&os, c, a0);
                    out[c + 1] = tkd_out(&os, c + 1, a1);
                    out[c + 2] = tkd_out(&os, c + 2, a2);
                    out[c + 3] = tkd_out(&os, c + 3, a3);
                }
                for (; c < C; c++) {
                    int32_t acc = bias ? bias[c] : 0;
                    const int8_t *w = filter + c;
                    for (t = 0; t < ntaps; t++, w += C) {
                        acc += (int32_t)taps[t][c] * (int32_t)*w;
                    }
                    out[c] = tkd_out(&os, c, acc);
                }
            }
        }
    }
}

#endif

void tkd_depthwise_conv_s8(const tkd_conv_params_t *p, const int8_t *input,
                           const int8_t *filter, const int32_t *bias, int8_t *output)
{
#if TKD_DW_TAPS_MAX > 0
    if (p->depth_multiplier == 1 && p->filter_h * p->filter_w <= TKD_DW_TAPS_MAX &&
        p->in_c <= TKD_DW_PAD_MAX) {
        dw_blocked(p, input, filter, bias, output);
        return;
    }
#endif
    dw_reference(p, input, filter, bias, output);
}
