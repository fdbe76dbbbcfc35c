/* DEPTHWISE_CONV_2D, int8, per-channel requantisation, any depth multiplier.
 *
 * The bias is the folded one (see tkd_runtime.h): taps outside the image add
 * filter * input zero point, taps inside add filter * input.
 *
 * Blocked path (depth multiplier 1, the common case), portable C or DSP: per output pixel
 * the addresses of its filter_h * filter_w input pixels are listed once (a tap outside the
 * image points at a stack row of zero-point bytes), then channels go four at a time. With
 * DSP the filter is sign-extended to int16 pairs once per call and output pixels go in
 * pairs: per tap one filter word pair serves both pixels, each pixel's input word is
 * SXTB16-extended and multiplied lane by lane (SMLABB / SMLATT) into 2 x 4 accumulators,
 * and each channel's output constants serve both outputs (tkd_out2); a 3x3 filter is
 * written out tap by tap. Without DSP, one pixel at a time in scalar C. Other depth
 * multipliers and very large filters / channel counts use the reference loop. */
#include "tkd_internal.h"

/* GCC's pre-allocation scheduler hoists the pixel pair's input loads far ahead of their
 * multiplies; with 8 accumulators live that spills to the stack on every tap. Registers
 * matter more than load latency on an in-order M-profile core. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

#ifndef TKD_DW_TAPS_MAX
#define TKD_DW_TAPS_MAX 64 /* filter_h * filter_w the blocked path handles; 0: never */
#endif
#define TKD_DW_PAD_MAX 512 /* channels the zero-point row holds */
#define TKD_DW_W16_MAX 640 /* DSP: filter_h * filter_w * channels pre-extended on the stack */

/* Reference loop, one output pixel: each channel's depth_multiplier filters over its window. */
static void dw_pixel(const tkd_conv_params_t *p, const tkd_window_t *win, const int8_t *filter,
                     const int32_t *bias, const tkd_out_t *os, int8_t *out)
{
    const int32_t zp = -p->input_offset;
    int32_t ic, m, fy, fx;
    for (ic = 0; ic < p->in_c; ic++) {
        for (m = 0; m < p->depth_multiplier; m++) {
            const int32_t oc = ic * p->depth_multiplier + m;
            int32_t acc = bias ? bias[oc] : 0;
            for (fy = 0; fy < p->filter_h; fy++) {
                for (fx = 0; fx < p->filter_w; fx++) {
                    const int32_t w = filter[((int32_t)fy * p->filter_w + fx) * p->out_c + oc];
                    const int8_t *in = tkd_window_tap(p, win, fy, fx);
                    acc += w * (in ? in[ic] : zp);
                }
            }
            out[oc] = tkd_out(os, oc, acc);
        }
    }
}

#if TKD_DW_TAPS_MAX > 0
/* The input address of every tap of output pixel px (row-major over the batch's out_h x
 * out_w), a zero-point row for taps outside the image, written to taps[0], taps[step], ... */
static void dw_taps(const tkd_conv_params_t *p, const int8_t *in_b, const int8_t *pad, int32_t px,
                    const int8_t **taps, int32_t step)
{
    const int32_t oy = px / p->out_w, ox = px - oy * p->out_w;
    const int32_t iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
    int32_t fy, fx;
    for (fy = 0; fy < p->filter_h; fy++) {
        const int32_t iy = iy0 + p->dilation_h * fy;
        const int y_in = iy >= 0 && iy < p->in_h;
        for (fx = 0; fx < p->filter_w; fx++, taps += step) {
            const int32_t ix = ix0 + p->dilation_w * fx;
            *taps = (y_in && ix >= 0 && ix < p->in_w)
                        ? in_b + ((int32_t)iy * p->in_w + ix) * p->in_c
                        : pad;
        }
    }
}

/* Channels [c0, C) of one pixel, one at a time (the C % 4 leftovers). */
static void dw_channels(const tkd_out_t *os, const int8_t *const *taps, int32_t step, int32_t ntaps,
                        const int8_t *filter, const int32_t *bias, int32_t c0, int32_t C,
                        int8_t *out)
{
    int32_t c, t;
    for (c = c0; c < C; c++) {
        int32_t acc = bias ? bias[c] : 0;
        const int8_t *w = filter + c;
        for (t = 0; t < ntaps; t++, w += C) {
            acc += (int32_t)taps[t * step][c] * (int32_t)*w;
        }
        out[c] = tkd_out(os, c, acc);
    }
}

#if TKD_USE_DSP

/* One tap of a pixel pair on a 4-channel group, TO = 8 * tap (bytes): tp holds the pair's
 * tap addresses interleaved (tp[2t] first pixel, tp[2t + 1] second), wg the group's filter
 * words already extended to int16 pairs (w02 = channels 0 and 2, w13 = 1 and 3), which feed
 * both pixels. */
#define TKD_DW_PAIR_TAP(TO)                                                                        \
    do {                                                                                           \
        uint32_t w02, w13, x, x02;                                                                 \
        const int8_t *p0, *p1;                                                                     \
        w02 = wg[(TO) / 4];                                                                        \
        w13 = wg[(TO) / 4 + 1];                                                                    \
        p0 = tp[(TO) / 4];                                                                         \
        x = tkd_read_s8x4(p0 + c);                                                                 \
        x02 = tkd_sxtb16(x);                                                                       \
        x = tkd_sxtb16_ror8(x);                                                                    \
        a0 = tkd_smlabb(x02, w02, a0);                                                             \
        a2 = tkd_smlatt(x02, w02, a2);                                                             \
        a1 = tkd_smlabb(x, w13, a1);                                                               \
        a3 = tkd_smlatt(x, w13, a3);                                                               \
        p1 = tp[(TO) / 4 + 1]; /* loaded late: one register fewer live */                          \
        x = tkd_read_s8x4(p1 + c);                                                                 \
        x02 = tkd_sxtb16(x);                                                                       \
        x = tkd_sxtb16_ror8(x);                                                                    \
        b0 = tkd_smlabb(x02, w02, b0);                                                             \
        b2 = tkd_smlatt(x02, w02, b2);                                                             \
        b1 = tkd_smlabb(x, w13, b1);                                                               \
        b3 = tkd_smlatt(x, w13, b3);                                                               \
    } while (0)

/* Channels c..c+3 of a pixel pair (see TKD_DW_PAIR_TAP), outputs at out[c..c+3] and
 * out[C + c..]. A 3x3 filter (the DS-CNN's) is written out tap by tap: addresses and filter
 * words at fixed offsets and no loop counter -- with 8 accumulators live there is no spare
 * register for one. */
TKD_INLINE void dw_pair_group(const tkd_out_t *os, const int8_t *const *tp, const uint32_t *wg,
                              const int32_t *bias, int32_t c, int32_t ntaps, int32_t C, int8_t *out)
{
    int32_t a0 = bias ? bias[c] : 0, a1 = bias ? bias[c + 1] : 0;
    int32_t a2 = bias ? bias[c + 2] : 0, a3 = bias ? bias[c + 3] : 0;
    int32_t b0 = a0, b1 = a1, b2 = a2, b3 = a3;
    int32_t t;
    if (ntaps == 9) {
        TKD_DW_PAIR_TAP(0);
        TKD_DW_PAIR_TAP(8);
        TKD_DW_PAIR_TAP(16);
        TKD_DW_PAIR_TAP(24);
        TKD_DW_PAIR_TAP(32);
        TKD_DW_PAIR_TAP(40);
        TKD_DW_PAIR_TAP(48);
        TKD_DW_PAIR_TAP(56);
        TKD_DW_PAIR_TAP(64);
    } else {
        for (t = 0; t < ntaps; t++, tp += 2, wg += 2) {
            TKD_DW_PAIR_TAP(0);
        }
    }
    if (os->fast) {
        tkd_out2(os, c, a0, b0, out + c, C);
        tkd_out2(os, c + 1, a1, b1, out + c + 1, C);
        tkd_out2(os, c + 2, a2, b2, out + c + 2, C);
        tkd_out2(os, c + 3, a3, b3, out + c + 3, C);
    } else { /* stored first: no accumulator lives across the calls (no spills above) */
        const int32_t acc[8] = { a0, b0, a1, b1, a2, b2, a3, b3 };
        for (t = 0; t < 4; t++) {
            tkd_out_n(os, c + t, acc + 2 * t, 2, out + c + t, C);
        }
    }
}
#undef TKD_DW_PAIR_TAP
#endif

static void dw_blocked(const tkd_conv_params_t *p, const int8_t *input, const int8_t *filter,
                       const int32_t *bias, int8_t *output)
{
    const int8_t *taps[2 * TKD_DW_TAPS_MAX];
    int8_t pad[TKD_DW_PAD_MAX] TKD_ALIGN(4);
    const tkd_out_t os = tkd_conv_out_stage(p);
    const int32_t ntaps = p->filter_h * p->filter_w;
    const int32_t C = p->in_c;
    const int32_t pixels = p->out_h * p->out_w;
    int32_t b, px, c, t;
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
        int8_t *out_b = output + (int32_t)b * pixels * C;
        px = 0;
#if TKD_USE_DSP
        /* Output pixels in pairs (consecutive in memory, across row ends too, so an odd
         * width leaves at most one pixel per batch): each filter word serves two pixels,
         * each channel's output constants two outputs. */
        for (; w16 && px + 2 <= pixels; px += 2) {
            int8_t *out = out_b + px * C;
            dw_taps(p, in_b, pad, px, taps, 2);
            dw_taps(p, in_b, pad, px + 1, taps + 1, 2);
            for (c = 0; c + 4 <= C; c += 4) {
                dw_pair_group(&os, taps, w16 + (c >> 2) * ntaps * 2, bias, c, ntaps, C, out);
            }
            dw_channels(&os, taps, 2, ntaps, filter, bias, c, C, out);
            dw_channels(&os, taps + 1, 2, ntaps, filter, bias, c, C, out + C);
        }
#endif
        /* One pixel at a time: the portable build, and the DSP build's last odd pixel or a
         * filter too large to pre-extend. */
        for (; px < pixels; px++) {
            int8_t *out = out_b + px * C;
            dw_taps(p, in_b, pad, px, taps, 1);
            for (c = 0; c + 4 <= C; c += 4) {
                int32_t acc[4];
                acc[0] = bias ? bias[c] : 0, acc[1] = bias ? bias[c + 1] : 0;
                acc[2] = bias ? bias[c + 2] : 0, acc[3] = bias ? bias[c + 3] : 0;
#if TKD_USE_DSP
                if (w16) { /* filter pairs extended once per call (see above) */
                    const uint32_t *wg = w16 + (c >> 2) * ntaps * 2;
                    for (t = 0; t < ntaps; t++, wg += 2) {
                        const uint32_t xv = tkd_read_s8x4(taps[t] + c);
                        const uint32_t x02 = tkd_sxtb16(xv), x13 = tkd_sxtb16_ror8(xv);
                        acc[0] = tkd_smlabb(x02, wg[0], acc[0]);
                        acc[2] = tkd_smlatt(x02, wg[0], acc[2]);
                        acc[1] = tkd_smlabb(x13, wg[1], acc[1]);
                        acc[3] = tkd_smlatt(x13, wg[1], acc[3]);
                    }
                } else {
                    const int8_t *w = filter + c;
                    for (t = 0; t < ntaps; t++, w += C) {
                        const uint32_t xv = tkd_read_s8x4(taps[t] + c);
                        const uint32_t wv = tkd_read_s8x4(w);
                        const uint32_t x02 = tkd_sxtb16(xv), x13 = tkd_sxtb16_ror8(xv);
                        const uint32_t w02 = tkd_sxtb16(wv), w13 = tkd_sxtb16_ror8(wv);
                        acc[0] = tkd_smlabb(x02, w02, acc[0]);
                        acc[2] = tkd_smlatt(x02, w02, acc[2]);
                        acc[1] = tkd_smlabb(x13, w13, acc[1]);
                        acc[3] = tkd_smlatt(x13, w13, acc[3]);
                    }
                }
#else
                {
                    const int8_t *w = filter + c;
                    for (t = 0; t < ntaps; t++, w += C) {
                        const int8_t *x = taps[t] + c;
                        acc[0] += (int32_t)x[0] * (int32_t)w[0];
                        acc[1] += (int32_t)x[1] * (int32_t)w[1];
                        acc[2] += (int32_t)x[2] * (int32_t)w[2];
                        acc[3] += (int32_t)x[3] * (int32_t)w[3];
                    }
                }
#endif
                tkd_out1(&os, c, acc[0], out + c);
                tkd_out1(&os, c + 1, acc[1], out + c + 1);
                tkd_out1(&os, c + 2, acc[2], out + c + 2);
                tkd_out1(&os, c + 3, acc[3], out + c + 3);
            }
            dw_channels(&os, taps, 1, ntaps, filter, bias, c, C, out);
        }
    }
}

#endif

void tkd_depthwise_conv_s8(const tkd_conv_params_t *p, const int8_t *input, const int8_t *filter,
                           const int32_t *bias, int8_t *output)
{
#if TKD_DW_TAPS_MAX > 0
    if (p->depth_multiplier == 1 && p->filter_h * p->filter_w <= TKD_DW_TAPS_MAX &&
        p->in_c <= TKD_DW_PAD_MAX) {
        dw_blocked(p, input, filter, bias, output);
        return;
    }
#endif
    tkd_conv_pixels(p, input, filter, bias, output, dw_pixel);
}
