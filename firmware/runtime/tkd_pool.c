/* AVERAGE_POOL_2D and MAX_POOL_2D, int8 (input and output share scale and zero point). */
#include "tkd_runtime.h"

static int32_t imax(int32_t a, int32_t b)
{
    return a > b ? a : b;
}
static int32_t imin(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

/* Both pools in one loop nest: a window's taps that fall outside the input are skipped, so
 * TFLM's reference semantics hold at the borders (the average divides by the taps inside,
 * the maximum starts from -128). `is_max` is a constant at each call: the compiler keeps one
 * specialised copy per pool. Returns -1 (average only) if a window holds no input pixel. */
static inline int pool_s8(const tkd_pool_params_t *p, const int8_t *input, int8_t *output,
                          int is_max)
{
    int32_t b, oy, ox, c, fy, fx;
    for (b = 0; b < p->batches; b++) {
        for (oy = 0; oy < p->out_h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            const int32_t fy0 = imax(0, -iy0), fy1 = imin(p->filter_h, p->in_h - iy0);
            for (ox = 0; ox < p->out_w; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                const int32_t fx0 = imax(0, -ix0), fx1 = imin(p->filter_w, p->in_w - ix0);
                const int32_t count = imax(0, fy1 - fy0) * imax(0, fx1 - fx0);
                if (count == 0 && !is_max) {
                    return -1;
                }
                for (c = 0; c < p->channels; c++) {
                    int32_t acc = is_max ? -128 : 0;
                    for (fy = fy0; fy < fy1; fy++) {
                        for (fx = fx0; fx < fx1; fx++) {
                            const int32_t v =
                                input[(((int32_t)b * p->in_h + iy0 + fy) * p->in_w + ix0 + fx) *
                                          p->channels +
                                      c];
                            acc = is_max ? imax(acc, v) : acc + v;
                        }
                    }
                    if (!is_max) {
                        /* Round half away from zero; C99 division truncates toward zero. */
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                    acc = imin(imax(acc, p->act_min), p->act_max);
                    output[(((int32_t)b * p->out_h + oy) * p->out_w + ox) * p->channels + c] =
                        (int8_t)acc;
                }
            }
        }
    }
    return 0;
}

int tkd_avg_pool_s8(const tkd_pool_params_t *p, const int8_t *input, int8_t *output)
{
    return pool_s8(p, input, output, 0);
}

void tkd_max_pool_s8(const tkd_pool_params_t *p, const int8_t *input, int8_t *output)
{
    (void)pool_s8(p, input, output, 1);
}
