/* CONV_2D, int8, per-channel requantisation (TFLM reference semantics: taps that fall
 * outside the image contribute nothing in the real-number domain; grouped convolution when
 * filter_in_c < in_c).
 *
 * The bias is the folded one (see tkd_runtime.h): it already holds input_offset * (sum of
 * the filter), so a tap outside the image must add filter * input zero point, and a tap
 * inside adds filter * input. Both paths below do exactly that.
 *
 * Blocked path (groups == 1), portable C or DSP: each output pixel's receptive field is one
 * contiguous column of K = filter_h * filter_w * in_c bytes -- the input pixel itself for a
 * 1x1 stride-1 unpadded conv, otherwise gathered into a bounded stack buffer with padding
 * filled with the input zero point.
 * - DSP, K <= TKD_CONV_QUAD_K: four pixels at a time (conv_cols4). The four columns are
 *   sign-extended to int16 pairs once, then per filter and four K steps: 1 filter word,
 *   2 SXTB16, 4 LDRD of column words and 8 SMLAD for 16 MACs, 4 accumulators.
 * - Otherwise pixels two at a time, two filters per block (2x2): with DSP the two columns
 *   are sign-extended once per pixel pair, then per four K steps and two filters: 4 column
 *   words, 2 filter words, 4 SXTB16 and 8 SMLAD for 16 MACs; without DSP the same 2x2 block
 *   in scalar C (each byte load feeds two MACs). */
#include "tkd_internal.h"

/* GCC's pre-allocation scheduler hoists loads far ahead of their multiplies, which with
 * 4 to 8 accumulators live spills to the stack inside the inner loops. Registers matter
 * more than load latency on an in-order M-profile core. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

/* Column bytes per pixel the blocked path gathers on the stack (two columns are live, and
 * with DSP their int16 expansion: 6 * TKD_CONV_COL_MAX bytes of stack in all).
 * Larger receptive fields (and grouped convs) use the reference loop; -DTKD_CONV_COL_MAX=0
 * forces the reference loop everywhere (the tests use that to check it too). */
#ifndef TKD_CONV_COL_MAX
#define TKD_CONV_COL_MAX 576
#endif
/* DSP: receptive fields up to this many bytes go four pixels at a time (conv_cols4): each
 * pixel's column is gathered (K <= TKD_CONV_COL_MAX) and sign-extended into a stack buffer of
 * 8 * TKD_CONV_QUAD_K bytes holding the four columns as int16 pairs. 576 = a 3x3 filter on
 * 64 channels (ResNet-8's widest); 0: never. */
#ifndef TKD_CONV_QUAD_K
#define TKD_CONV_QUAD_K 576
#endif
#if TKD_CONV_QUAD_K > TKD_CONV_COL_MAX
#undef TKD_CONV_QUAD_K
#define TKD_CONV_QUAD_K TKD_CONV_COL_MAX
#endif

/* Reference loop, one output pixel: every filter over its window (grouped: each filter sees
 * its group's channels). */
static void conv_pixel(const tkd_conv_params_t *p, const tkd_window_t *win, const int8_t *filter,
                       const int32_t *bias, const tkd_out_t *os, int8_t *out)
{
    const int32_t filters_per_group = p->out_c / (p->in_c / p->filter_in_c);
    const int32_t zp = -p->input_offset;
    int32_t oc, fy, fx, ic;
    for (oc = 0; oc < p->out_c; oc++) {
        const int32_t group_base = (oc / filters_per_group) * p->filter_in_c;
        int32_t acc = bias ? bias[oc] : 0;
        for (fy = 0; fy < p->filter_h; fy++) {
            for (fx = 0; fx < p->filter_w; fx++) {
                const int8_t *w =
                    filter + (((int32_t)oc * p->filter_h + fy) * p->filter_w + fx) * p->filter_in_c;
                const int8_t *in = tkd_window_tap(p, win, fy, fx);
                if (in) {
                    in += group_base;
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
        out[oc] = tkd_out(os, oc, acc);
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
#define TKD_DOT2X2_STEP(KK, XX)                                                                    \
    do {                                                                                           \
        const uint32_t a02 = (XX)[0], a13 = (XX)[1], b02 = (XX)[2], b13 = (XX)[3];                 \
        uint32_t ww = tkd_read_s8x4(w + (KK));                                                     \
        uint32_t w02 = tkd_sxtb16(ww), w13 = tkd_sxtb16_ror8(ww);                                  \
        a00 = tkd_smlad(a02, w02, a00);                                                            \
        a00 = tkd_smlad(a13, w13, a00);                                                            \
        a10 = tkd_smlad(b02, w02, a10);                                                            \
        a10 = tkd_smlad(b13, w13, a10);                                                            \
        ww = tkd_read_s8x4(w1 + (KK));                                                             \
        w02 = tkd_sxtb16(ww);                                                                      \
        w13 = tkd_sxtb16_ror8(ww);                                                                 \
        a01 = tkd_smlad(a02, w02, a01);                                                            \
        a01 = tkd_smlad(a13, w13, a01);                                                            \
        a11 = tkd_smlad(b02, w02, a11);                                                            \
        a11 = tkd_smlad(b13, w13, a11);                                                            \
    } while (0)
    for (; k + 8 <= K; k += 8, x16 += 8) { /* two steps per iteration: less loop overhead */
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
static void conv_cols(const tkd_conv_params_t *p, const tkd_out_t *osp, const int8_t *cols,
                      int32_t n, const int8_t *filter, const int32_t *bias, int32_t K,
                      uint32_t *x16, int8_t *out)
{
    const tkd_out_t os = *osp;
    int32_t oc = 0;
    int32_t acc[4];
#if TKD_USE_DSP
    if (n == 2) {
        expand_2(cols, K, x16);
    }
#endif
    if (n == 2) {
        for (; oc + 2 <= p->out_c; oc += 2) {
            acc[0] = acc[2] = bias ? bias[oc] : 0;
            acc[1] = acc[3] = bias ? bias[oc + 1] : 0;
            dot_2x2(cols, x16, filter + (int32_t)oc * K, K, acc);
            tkd_out2(&os, oc, acc[0], acc[2], out + oc, p->out_c);
            tkd_out2(&os, oc + 1, acc[1], acc[3], out + oc + 1, p->out_c);
        }
    }
    for (; oc < p->out_c; oc++) {
        const int8_t *w = filter + (int32_t)oc * K;
        int32_t j;
        for (j = 0; j < n; j++) {
            out[j * p->out_c + oc] =
                tkd_out(&os, oc, dot_1(cols + j * K, w, K, bias ? bias[oc] : 0));
        }
    }
}

#if TKD_USE_DSP && TKD_CONV_QUAD_K > 0
/* Pixel j of a block of four: its column a sign-extended once to int16 pairs into the block's
 * buffer, which holds per four K steps the words (p0 k0,k2) (p0 k1,k3) (p1 ..) (p1 ..)
 * (p2 ..) (p2 ..) (p3 ..) (p3 ..); the K % 4 last bytes go to tail[4 * j ..]. */
static void expand_1(const int8_t *a, int32_t K, uint32_t *x16, int8_t *tail)
{
    int32_t k;
    for (k = 0; k + 8 <= K; k += 8, x16 += 16) {
        const uint32_t x = tkd_read_s8x4(a + k), y = tkd_read_s8x4(a + k + 4);
        x16[0] = tkd_sxtb16(x);
        x16[1] = tkd_sxtb16_ror8(x);
        x16[8] = tkd_sxtb16(y);
        x16[9] = tkd_sxtb16_ror8(y);
    }
    if (k + 4 <= K) {
        const uint32_t x = tkd_read_s8x4(a + k);
        x16[0] = tkd_sxtb16(x);
        x16[1] = tkd_sxtb16_ror8(x);
        k += 4;
    }
    for (; k < K; k++) {
        tail[k & 3] = a[k];
    }
}

/* Four pixels x one filter per block: the filter word of four K steps is loaded and extended
 * once for four pixels (1 load + 2 SXTB16 + 4 LDRD of column words + 8 SMLAD per 16 MACs),
 * and only 4 accumulators are live, so the loop runs in registers (the 2x2 blocks of
 * conv_cols spill: 4 accumulators + 4 column words + 2 filter words + pointers exceed the
 * 14 allocatable registers). Each filter's output constants then serve 4 outputs
 * (tkd_out4). */
static void conv_cols4(const tkd_conv_params_t *p, const tkd_out_t *osp, const int8_t *tails,
                       const int8_t *filter, const int32_t *bias, int32_t K, const uint32_t *x16,
                       int8_t *out)
{
    const tkd_out_t os = *osp;
    const int32_t K4 = K & ~3, C = p->out_c;
    int32_t oc;
    for (oc = 0; oc < C; oc++) {
        const int8_t *w = filter + (int32_t)oc * K;
        const uint32_t *x = x16;
        int32_t a0 = bias ? bias[oc] : 0, a1 = a0, a2 = a0, a3 = a0;
        int32_t k = 0;
#define TKD_QUAD_STEP(KK, XO)                                                                      \
    do {                                                                                           \
        const uint32_t ww = tkd_read_s8x4(w + (KK));                                               \
        const uint32_t w02 = tkd_sxtb16(ww), w13 = tkd_sxtb16_ror8(ww);                            \
        uint32_t lo, hi; /* each pixel's two words of this step in one LDRD */                     \
        TKD_LDRD(x, (XO), lo, hi);                                                                 \
        a0 = tkd_smlad(lo, w02, a0);                                                               \
        a0 = tkd_smlad(hi, w13, a0);                                                               \
        TKD_LDRD(x, (XO) + 8, lo, hi);                                                             \
        a1 = tkd_smlad(lo, w02, a1);                                                               \
        a1 = tkd_smlad(hi, w13, a1);                                                               \
        TKD_LDRD(x, (XO) + 16, lo, hi);                                                            \
        a2 = tkd_smlad(lo, w02, a2);                                                               \
        a2 = tkd_smlad(hi, w13, a2);                                                               \
        TKD_LDRD(x, (XO) + 24, lo, hi);                                                            \
        a3 = tkd_smlad(lo, w02, a3);                                                               \
        a3 = tkd_smlad(hi, w13, a3);                                                               \
    } while (0)
        for (; k + 16 <= K4; k += 16, x += 32) { /* 4 steps per iteration: less overhead */
            TKD_QUAD_STEP(k, 0);
            TKD_QUAD_STEP(k + 4, 32);
            TKD_QUAD_STEP(k + 8, 64);
            TKD_QUAD_STEP(k + 12, 96);
        }
        if (k + 8 <= K4) {
            TKD_QUAD_STEP(k, 0);
            TKD_QUAD_STEP(k + 4, 32);
            k += 8, x += 16;
        }
        if (k < K4) {
            TKD_QUAD_STEP(k, 0);
            k += 4;
        }
#undef TKD_QUAD_STEP
        for (; k < K; k++) {
            const int32_t wv = w[k];
            a0 += (int32_t)tails[k - K4] * wv;
            a1 += (int32_t)tails[4 + k - K4] * wv;
            a2 += (int32_t)tails[8 + k - K4] * wv;
            a3 += (int32_t)tails[12 + k - K4] * wv;
        }
        tkd_out4(&os, oc, a0, a1, a2, a3, out + oc, C);
    }
}
#endif

static void conv_blocked(const tkd_conv_params_t *p, const int8_t *input, const int8_t *filter,
                         const int32_t *bias, int8_t *output)
{
    const int32_t K = p->filter_h * p->filter_w * p->in_c;
    const int direct = p->filter_h == 1 && p->filter_w == 1 && p->stride_h == 1 &&
                       p->stride_w == 1 && p->pad_h == 0 && p->pad_w == 0 && p->in_h == p->out_h &&
                       p->in_w == p->out_w;
    const tkd_out_t os = tkd_conv_out_stage(p);
    int8_t cols[2 * TKD_CONV_COL_MAX] TKD_ALIGN(4);
#if TKD_USE_DSP
    /* 2 columns of K <= TKD_CONV_COL_MAX as int16 pairs, or 4 of K <= TKD_CONV_QUAD_K */
    uint32_t x16[(TKD_CONV_QUAD_K > TKD_CONV_COL_MAX / 2 ? 2 * TKD_CONV_QUAD_K : TKD_CONV_COL_MAX)];
#if TKD_CONV_QUAD_K > 0
    int8_t tails[16];
#endif
#else
    uint32_t *x16 = 0;
#endif
    const int32_t pixels = p->out_h * p->out_w;
    int32_t b, px, n;
    for (b = 0; b < p->batches; b++) {
        const int8_t *in_b = input + (int32_t)b * p->in_h * p->in_w * p->in_c;
        int8_t *out_b = output + (int32_t)b * pixels * p->out_c;
        for (px = 0; px < pixels; px += n) {
            const int8_t *c;
            int32_t j;
#if TKD_USE_DSP && TKD_CONV_QUAD_K > 0
            n = K <= TKD_CONV_QUAD_K && px + 4 <= pixels ? 4 : (px + 1 < pixels ? 2 : 1);
#else
            n = px + 1 < pixels ? 2 : 1;
#endif
#if TKD_USE_DSP && TKD_CONV_QUAD_K > 0
            if (n == 4) {
                for (j = 0; j < 4; j++) {
                    if (direct) {
                        c = in_b + (px + j) * K;
                    } else {
                        gather(p, in_b, (px + j) / p->out_w, (px + j) % p->out_w, cols);
                        c = cols;
                    }
                    expand_1(c, K, x16 + 2 * j, tails + 4 * j);
                }
                conv_cols4(p, &os, tails, filter, bias, K, x16, out_b + px * p->out_c);
                continue;
            }
#endif
            if (direct) {
                c = in_b + px * K;
            } else {
                for (j = 0; j < n; j++) {
                    gather(p, in_b, (px + j) / p->out_w, (px + j) % p->out_w, cols + j * K);
                }
                c = cols;
            }
            conv_cols(p, &os, c, n, filter, bias, K, x16, out_b + px * p->out_c);
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
    tkd_conv_pixels(p, input, filter, bias, output, conv_pixel);
}
