/* QUANTIZE (int8 -> int8 and float -> int8) and DEQUANTIZE (int8 -> float). */
#include "tkd_runtime.h"

void tkd_requantize_s8(const int8_t *input, int8_t *output, int32_t size, int32_t input_zp,
                       int32_t output_zp, int32_t multiplier, int32_t shift)
{
    int32_t i;
    for (i = 0; i < size; i++) {
        int32_t v =
            tkd_multiply_by_quantized_multiplier((int32_t)input[i] - input_zp, multiplier, shift) +
            output_zp;
        v = v < -128 ? -128 : v;
        v = v > 127 ? 127 : v;
        output[i] = (int8_t)v;
    }
}

/* Round half away from zero in float without libm (same result as C99 roundf). */
static float round_half_away(float x)
{
    float t;
    if (!(x > -8388608.0f && x < 8388608.0f)) {
        return x; /* already an integer (|x| >= 2^23), or NaN */
    }
    t = (float)(int32_t)x; /* truncation toward zero */
    if (x >= 0.0f) {
        return (x - t >= 0.5f) ? t + 1.0f : t;
    }
    return (t - x >= 0.5f) ? t - 1.0f : t;
}

void tkd_quantize_f32_s8(const float *input, int8_t *output, int32_t size, float scale,
                         int32_t zero_point)
{
    int32_t i;
    for (i = 0; i < size; i++) {
        const float r = round_half_away(input[i] / scale);
        int32_t v;
        /* Out-of-range values saturate (clamp before the cast, which would be undefined). */
        if (r >= 1000.0f) {
            v = 1000;
        } else if (r <= -1000.0f || r != r) {
            v = -1000;
        } else {
            v = (int32_t)r;
        }
        v += zero_point;
        v = v < -128 ? -128 : v;
        v = v > 127 ? 127 : v;
        output[i] = (int8_t)v;
    }
}

void tkd_dequantize_s8_f32(const int8_t *input, float *output, int32_t size, float scale,
                           int32_t zero_point)
{
    int32_t i;
    for (i = 0; i < size; i++) {
        output[i] = (float)((double)scale * (double)((int32_t)input[i] - zero_point));
    }
}
