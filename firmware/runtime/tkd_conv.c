/* CONV_2D, int8, per-channel requantisation (TFLM reference semantics: taps that fall
 * outside the image contribute nothing in the real-number domain; grouped convolution when
 * filter_in_c < in_c).
 *
 * The bias is the folded one (see tkd_runtime.h): it already holds input_offset * (sum of
 * the filter), so a tap outside the image must add filter * input zero point, and a tap
 * inside adds filter * input. Both paths below do exactly that.
 *
 * Blocked path (groups == 1), portable C or DSP: output pixels two at a time; each pixel's receptive field is one
 * contiguous column of K = filter_h * filter_w * in_c bytes -- the input pixel itself for a
 * 1x1 stride-1 unpadded conv, otherwise gathered into a bounded stack buffer with padding
 * filled with the input zero point. Two columns times two filters make a 2x2 block of dot
 * products: with DSP the two columns are sign-extended to int16 pairs once per pixel pair,
 * then per four K steps and two filters: 4 column words, 2 filter words, 4 SXTB16 and
 * 8 SMLAD for 16 MACs;
 * without, the same 2x2 block in scalar C (each byte load feeds two MACs). */
#include "tkd_internal.h"

/* Column bytes per pixel the blocked path gathers on the stack (two columns are live, and
 * with DSP their int16 expansion: 6 * TKD_CONV_COL_MAX bytes of stack in all).
 * Larger receptive fields (and grouped convs) use the reference loop; -DTKD_CONV_COL_MAX=0
 * forces the reference loop everywhere (the tests use that to check it too). */
#ifndef TKD_CONV_COL_MAX
#define TKD_CONV_COL_MAX 512
#endif

static void conv_portable(const tkd_conv_params_t *p, const int8_t *input, const int8_t *filter,
                          const int32_t *bias, int8_t *output)
{
    const int32_t filters_per_group = p->out_c / (p->in_c / p->filter_in_c);
    const int32_t zp = -p->input_offset;
    const tkd_out_t os = tkd_conv_out_stage(p);
    int32_t b, oy, ox, oc, fy, fx, ic;
    for (b = 0; b < p->batches; b++) {
        for (oy = 0; oy < p->out_h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            for (ox = 0; ox < p->out_w; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int8_t *out = output + (((int32_t)b * p->out_h + oy) * p->out_w + ox) * p->out_c;
                for (oc = 0; oc < p->out_c; oc++) {
                    const int32_t group_base = (oc / filters_per_group) * p->filter_in_c;
                    int32_t acc = bias ? bias[oc] : 0;
                    for (fy = 0; fy < p->filter_h; fy++) {
                        const int32_t iy = iy0 + p->dilation_h * fy;
                        const int y_in = iy >= 0 && iy < p->in_h;
                        for (fx = 0; fx < p->filter_w; fx++) {
                            const int32_t ix = ix0 + p->dilation_w * fx;
                            const int8_t *w = filter + (((int32_t)oc * p->filter_h + fy) *
                                                        p->filter_w + fx) * p->filter_in_c;
                            if (y_in && ix >= 0 && ix < p->in_w) {
                                const int8_t *in = input + (((int32_t)b * p->in_h + iy) *
                                                            p->in_w + ix) * p->in_c + group_base;
                                for (ic = 0; ic < p->filter_in_c; ic++) {
                                    acc += (int32_t)w[ic] * (int32_t)in[ic];
                                }
                            } else {
                                for (ic = 0; ic < p->filter_in_c; ic++) {
                                    acc += (int32_t)w[ic] * zp;
                                }
                            }
                        }
                    }
                    out[oc] = tkd_out(&os, oc, acc);
                }
            }
        }
    }
}

#if TKD_CONV_COL_MAX > 0
/* Receptive field of output pixel (oy, ox) as K contiguous bytes, padding = zero point.
 * Without dilation the in-image taps of one filter row are adjacent in NHWC memory: one copy
 * per row (a 10x4 filter on one channel copies 10 runs of up to 4 bytes, not 40 taps). */
static void gather(const tkd_conv_params_t *p, const int8_t *in_b, int32_t oy, int32_t ox,
                   int8_t *col)
{
    const int32_t iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
    const int8_t zp = (int8_t)(-p->input_offset);
    const int32_t c = p->in_c;
    const int32_t row = p->filter_w * c;
    int32_t fy, fx, k;
    for (fy = 0; fy < p->filter_h; fy++, col += row) {
        const int32_t iy = iy0 + p->dilation_h * fy;
        if (iy < 0 || iy >= p->in_h) {
            for (k = 0; k < row; k++) {
                col[k] = zp;
            }
        } else if (p->dilation_w == 1) {
            /* taps fx in [f0, f1) are inside the image */
            const int32_t f0 = ix0 >= 0 ? 0 : (-ix0 < p->filter_w ? -ix0 : p->filter_w);
            const int32_t f1 = p->in_w - ix0 < p->filter_w ? p->in_w - ix0 : p->filter_w;
            const int8_t *src = in_b + ((int32_t)iy * p->in_w + ix0) * c;
            for (k = 0; k < f0 * c; k++) {
                col[k] = zp;
            }
            for (; k < f1 * c; k++) {
                col[k] = src[k];
            }
            for (; k < row; k++) {
                col[k] = zp;
            }
        } else {
            for (fx = 0; fx < p->filter_w; fx++) {
                const int32_t ix = ix0 + p->dilation_w * fx;
                const int8_t *src = in_b + ((int32_t)iy * p->in_w + ix) * c;
                for (k = 0; k < c; k++) {
                    col[fx * c + k] = (ix >= 0 && ix < p->in_w) ? src[k] : zp;
                }
            }
        }
    }
}

#if TKD_USE_DSP
/* Columns a and b = a + K sign-extended once to int16 pairs, interleaved the way dot_2x2
 * reads them: per four K steps the words (a0,a2) (a1,a3) (b0,b2) (b1,b3). Every output
 * channel then reuses them: the inner loop only extends the filter bytes. */
static void expand_2(const int8_t *a, int32_t K, uint32_t *x16)
{
    const int8_t *b = a + K;
    int32_t k;
    for (k = 0; k + 4 <= K; k += 4, x16 += 4) {
        const uint32_t xa = tkd_read_s8x4(a + k), xb = tkd_read_s8x4(b + k);
        x16[0] = tkd_sxtb16(xa);
        x16[1] = tkd_sxtb16_ror8(xa);
        x16[2] = tkd_sxtb16(xb);
        x16[3] = tkd_sxtb16_ror8(xb);
    }
}
#endif

/* acc[0] += a.w0, acc[1] += a.w1, acc[2] += b.w0, acc[3] += b.w1 with b = a + K, w1 = w0 + K;
 * with DSP, x16 holds a and b expanded by expand_2 (the K % 4 tail comes from a and b). */
TKD_INLINE void dot_2x2(const int8_t *a, const uint32_t *x16, const int8_t *w, int32_t K,
                        int32_t *acc)
{
    const int8_t *bp = a + K, *w1 = w + K;
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    int32_t k = 0;
#if TKD_USE_DSP
#define TKD_DOT2X2_STEP(KK, XX)                                                              \
    do {                                                                                     \
        const uint32_t a02 = (XX)[0], a13 = (XX)[1], b02 = (XX)[2], b13 = (XX)[3];           \
        uint32_t ww = tkd_read_s8x4(w + (KK));                                               \
        uint32_t w02 = tkd_sxtb16(ww), w13 = tkd_sxtb16_ror8(ww);                            \
        a00 = tkd_smlad(a02, w02, a00);                                                      \
        a00 = tkd_smlad(a13, w13, a00);                                                      \
        a10 = tkd_smlad(b02, w02, a10);                                                      \
        a10 = tkd_smlad(b13, w13, a10);                                                      \
        ww = tkd_read_s8x4(w1 + (KK));                                                       \
        w02 = tkd_sxtb16(ww);                                                                \
        w13 = tkd_sxtb16_ror8(ww);                                                           \
        a01 = tkd_smlad(a02, w02, a01);                                                      \
        a01 = tkd_smlad(a13, w13, a01);                                                      \
        a11 = tkd_smlad(b02, w02, a11);                                                      \
        a11 = tkd_smlad(b13, w13, a11);                                                      \
    } while (0)
    for (; k + 8 <= K; k += 8, x16 += 8) {   /* two steps per iteration: less loop overhead */
        TKD_DOT2X2_STEP(k, x16);
        TKD_DOT2X2_STEP(k + 4, x16 + 4);
    }
    for (; k + 4 <= K; k += 4, x16 += 4) {
        TKD_DOT2X2_STEP(k, x16);
    }
#undef TKD_DOT2X2_STEP
#else
    (void)x16;
#endif
    for (; k < K; k++) {
        const int32_t xa = a[k], xb = bp[k], w0v = w[k], w1v = w1[k];
        a00 += xa * w0v;
        a01 += xa * w1v;
        a10 += xb * w0v;
        a11 += xb * w1v;
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

static int32_t dot_1(const int8_t *a, const int8_t *w, int32_t K, int32_t acc)
{
    int32_t k = 0;
#if TKD_USE_DSP
    for (; k + 4 <= K; k += 4) {
        const uint32_t xa = tkd_read_s8x4(a + k), ww = tkd_read_s8x4(w + k);
        acc = tkd_smlad(tkd_sxtb16(xa), tkd_sxtb16(ww), acc);
        acc = tkd_smlad(tkd_sxtb16_ror8(xa), tkd_sxtb16_ror8(ww), acc);
    }
#endif
    for (; k < K; k++) {
        acc += (int32_t)a[k] * (int32_t)w[k];
    }
    return acc;
}

/* cols: one column (n == 1) or two adjacent ones (n == 2); out: the first pixel's outputs. */
static void conv_cols(const tkd_conv_params_t *p, const int8_t *cols, int32_t n,
                      const int8_t *filter, const int32_t *bias, int32_t K, int8_t *out)
{
    const tkd_out_t os = tkd_conv_out_stage(p);
    int32_t oc = 0;
    int32_t acc[4];
#if TKD_USE_DSP
    uint32_t x16[TKD_CONV_COL_MAX]; /* 2 * K int16 */
    if (n == 2) {
        expand_2(cols, K, x16);
    }
#else
    const uint32_t *x16 = 0;
#endif
    if (n == 2) {
        for (; oc + 2 <= p->out_c; oc += 2) {
            acc[0] = acc[2] = bias ? bias[oc] : 0;
            acc[1] = acc[3] = bias ? bias[oc + 1] : 0;
            dot_2x2(cols, x16, filter + (int32_t)oc * K, K, acc);
            out[oc] = tkd_out(&os, oc, acc[0]);
            out[oc + 1] = tkd_out(&os, oc + 1, acc[1]);
            out[p->out_c + oc] = tkd_out(&os, oc, acc[2]);
            out[p->out_c + oc + 1] = tkd_out(&os, oc + 1, acc[3]);
        }
    }
    for (; oc < p->out_c; oc++) {
        const int8_t *w = filter + (int32_t)oc * K;
        int32_t j;
        for (j = 0; j < n; j++) {
            out[j * p->out_c + oc] = tkd_out(&os, oc, dot_1(cols + j * K, w, K,
                                                             bias ? bias[oc] : 0));
        }
    }
}

static void conv_blocked(const tkd_conv_params_t *p, const int8_t *input, const int8_t *filter,
                     const int32_t *bias, int8_t *output)
{
    const int32_t K = p->filter_h * p->filter_w * p->in_c;
    const int direct = p->filter_h == 1 && p->filter_w == 1 && p->stride_h == 1 &&
                       p->stride_w == 1 && p->pad_h == 0 && p->pad_w == 0 &&
                       p->in_h == p->out_h && p->in_w == p->out_w;
    int8_t cols[2 * TKD_CONV_COL_MAX] TKD_ALIGN(4);
    const int32_t pixels = p->out_h * p->out_w;
    int32_t b, px;
    for (b = 0; b < p->batches; b++) {
        const int8_t *in_b = input + (int32_t)b * p->in_h * p->in_w * p->in_c;
        int8_t *out_b = output + (int32_t)b * pixels * p->out_c;
        for (px = 0; px < pixels; px += 2) {
            const int32_t n = px + 1 < pixels ? 2 : 1;
            const int8_t *c;
            if (direct) {
                c = in_b + px * K;
            } else {
                int32_t j;
                for (j = 0; j < n; j++) {
                    gather(p, in_b, (px + j) / p->out_w, (px + j) % p->out_w, cols + j * K);
                }
                c = cols;
            }
            conv_cols(p, c, n, filter, bias, K, out_b + px * p->out_c);
        }
    }
}

#endif

void tkd_conv_s8(const tkd_conv_params_t *p, const int8_t *input, const int8_t *filter,
                 const int32_t *bias, int8_t *output)
{
#if TKD_CONV_COL_MAX > 0
    if (p->filter_in_c == p->in_c && p->filter_h * p->filter_w * p->in_c <= TKD_CONV_COL_MAX) {
        conv_blocked(p, input, filter, bias, output);
        return;
    }
#endif
    conv_portable(p, input, filter, bias, output);
}
