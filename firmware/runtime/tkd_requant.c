/* Fixed-point helpers shared by the kernels. These reproduce, in our own words, the integer
 * arithmetic TFLite (and gemmlowp) specify for requantisation in the default
 * ("double rounding") build that the TFLite Micro reference kernels use:
 *   - a high multiply of 2*a*b keeping the top 32 bits, rounded to nearest, ties upward;
 *   - a rounding right shift, ties away from zero;
 *   - multiply by a Q0.31 multiplier and a power-of-two shift = left shift (if any), high
 *     multiply, rounding right shift (if any).
 * Signed overflow is avoided: the 64-bit product of two int32 fits, and the left shifts are
 * done on uint32 (wrapping like TFLite's `x * (1 << s)` does on two's complement targets). */
#include "tkd_internal.h"

int32_t tkd_sat_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    int64_t ab;
    int64_t nudge;
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    /* C99 division truncates toward zero, as the reference does. */
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

int32_t tkd_rounding_divide_by_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    /* >> on a negative int32 is an arithmetic shift on every compiler we target (gcc, clang,
     * armcc all document it); the reference relies on the same. */
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static int32_t shl32(int32_t x, int s)
{
    return (int32_t)((uint32_t)x << s);
}

int32_t tkd_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return tkd_rounding_divide_by_pot(
        tkd_sat_rounding_doubling_high_mul(shl32(x, left), multiplier), right);
}

int32_t tkd_multiply_by_quantized_multiplier_smaller_than_one(int32_t x, int32_t multiplier,
                                                              int shift)
{
    return tkd_rounding_divide_by_pot(tkd_sat_rounding_doubling_high_mul(x, multiplier), -shift);
}

int32_t tkd_multiply_by_quantized_multiplier_greater_than_one(int32_t x, int32_t multiplier,
                                                              int left_shift)
{
    return tkd_sat_rounding_doubling_high_mul(shl32(x, left_shift), multiplier);
}

void tkd_copy(const void *src, void *dst, int32_t bytes)
{
    const uint8_t *s = (const uint8_t *)src;
    uint8_t *d = (uint8_t *)dst;
    int32_t i;
    if (s == d) {
        return;
    }
    for (i = 0; i < bytes; i++) {
        d[i] = s[i];
    }
}

void tkd_out_n(const tkd_out_t *o, int32_t ch, const int32_t *acc, int32_t n, int8_t *out,
               int32_t stride)
{
    const tkd_rq_t r = tkd_rq_make(o->mult[ch], o->shift[ch]);
    int32_t j;
    for (j = 0; j < n; j++) {
        const int32_t v =
            o->is_short ? tkd_rq_short(acc[j], r.mult, -r.right) : tkd_rq_apply(&r, acc[j]);
        out[j * stride] = tkd_clamp_s8(v + o->offset, o->lo, o->hi);
    }
}
