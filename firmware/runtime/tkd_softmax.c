/* SOFTMAX, int8 in, int8 out (scale 1/256, zero point -128), with the fixed-point arithmetic
 * TFLite specifies for it (gemmlowp's exp and reciprocal on Q-format int32 values):
 *   1. per row, d = x - max(x); rows entries with d < diff_min contribute exp = 0;
 *   2. d is scaled by beta*input_scale into Q5.26 (multiplier computed at codegen time);
 *   3. exp(d) for d <= 0 in Q0.31, summed in Q12.19;
 *   4. 1/sum by Newton-Raphson in Q0.31 after normalising the sum into [1, 2);
 *   5. out = exp * (1/sum), shifted to 8 bits, minus 128, saturated.
 * All fixed-point values are raw int32; "Qm" below is the number of integer bits m. */
#include "tkd_runtime.h"

#define SCALED_DIFF_INT_BITS 5  /* Q5.26 input differences */
#define ACCUM_INT_BITS       12 /* Q12.19 sum of exps */

/* Multiplication of two fixed-point numbers: integer bits add up. */
static int32_t fx_mul(int32_t a, int32_t b)
{
    return tkd_sat_rounding_doubling_high_mul(a, b);
}

/* x * 2^exponent, rounding when exponent < 0 and saturating when exponent > 0. */
static int32_t fx_mul_pot(int32_t x, int exponent)
{
    if (exponent < 0) {
        return tkd_rounding_divide_by_pot(x, -exponent);
    }
    if (exponent > 0) {
        const int32_t limit = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
        if (x > limit) {
            return INT32_MAX;
        }
        if (x < -limit) {
            return INT32_MIN;
        }
        return (int32_t)((uint32_t)x << exponent);
    }
    return x;
}

/* exp(a) for a in [-1/4, 0), a and result in Q0.31: Taylor series around -1/8. */
static int32_t exp_quarter_interval(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668; /* exp(-1/8) in Q0.31 */
    const int32_t one_third = 715827883;             /* 1/3 in Q0.31 */
    const int32_t x = a + (1 << 28);                 /* a + 1/8 */
    const int32_t x2 = fx_mul(x, x);
    const int32_t x3 = fx_mul(x2, x);
    const int32_t x4 = fx_mul(x2, x2);
    const int32_t x4_over_4 = fx_mul_pot(x4, -2);
    const int32_t poly = fx_mul_pot(fx_mul(x4_over_4 + x3, one_third) + x2, -1);
    return exp_minus_one_eighth + fx_mul(exp_minus_one_eighth, x + poly);
}

/* exp(a) for a <= 0, a in Q5.26, result in Q0.31. */
static int32_t exp_on_negative_values(int32_t a)
{
    /* exp(-2^k) in Q0.31 for k = -2 .. 4 (the bits of the integer/quarter part of -a). */
    static const int32_t exp_of_minus_pot[7] = { 1672461947, 1302514674, 790015084, 290630308,
                                                 39332535,   720401,     242 };
    const int frac_bits = 31 - SCALED_DIFF_INT_BITS;
    const int32_t one_quarter = (int32_t)1 << (frac_bits - 2);
    const int32_t a_mod_quarter_minus_quarter = (a & (one_quarter - 1)) - one_quarter;
    int32_t result =
        exp_quarter_interval(fx_mul_pot(a_mod_quarter_minus_quarter, SCALED_DIFF_INT_BITS));
    const int32_t remainder = a_mod_quarter_minus_quarter - a;
    int k;
    for (k = -2; k < SCALED_DIFF_INT_BITS; k++) {
        if (remainder & ((int32_t)1 << (frac_bits + k))) {
            result = fx_mul(result, exp_of_minus_pot[k + 2]);
        }
    }
    if (a == 0) {
        result = INT32_MAX; /* 1.0 in Q0.31 saturates to the largest value */
    }
    return result;
}

/* 1 / (1 + x) for x in [0, 1), x and result in Q0.31 (Newton-Raphson, 3 iterations in Q2.29). */
static int32_t one_over_one_plus_x(int32_t x)
{
    const int32_t c48_over_17 = 1515870810;       /* Q2.29 */
    const int32_t cminus32_over_17 = -1010580540; /* Q2.29 */
    const int32_t one_q2 = (int32_t)1 << 29;
    /* (x + 1) / 2 rounded half away from zero, in Q0.31 */
    const int64_t sum = (int64_t)x + (int64_t)INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t r = c48_over_17 + fx_mul(half_denominator, cminus32_over_17);
    int i;
    for (i = 0; i < 3; i++) {
        const int32_t hd_times_r = fx_mul(half_denominator, r); /* Q2.29 */
        const int32_t one_minus = one_q2 - hd_times_r;          /* Q2.29 */
        r = r + fx_mul_pot(fx_mul(r, one_minus), 2);            /* Q4 -> Q2 */
    }
    /* r is 1/(half denominator) in Q2.29; halve it by reading it as Q1.30, then to Q0.31. */
    return fx_mul_pot(r, 1);
}

static int count_leading_zeros(uint32_t x)
{
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        n++;
    }
    return n;
}

void tkd_softmax_s8(const tkd_softmax_params_t *p, const int8_t *input, int8_t *output)
{
    int32_t row, c;
    for (row = 0; row < p->outer; row++) {
        const int8_t *in = input + row * p->depth;
        int8_t *out = output + row * p->depth;
        int32_t max_in = -128;
        int32_t sum = 0; /* Q12.19 */
        int headroom, bits_over_unit;
        int32_t reciprocal;
        for (c = 0; c < p->depth; c++) {
            max_in = in[c] > max_in ? in[c] : max_in;
        }
        for (c = 0; c < p->depth; c++) {
            const int32_t diff = (int32_t)in[c] - max_in;
            if (diff >= p->diff_min) {
                const int32_t scaled = tkd_multiply_by_quantized_multiplier_greater_than_one(
                    diff, p->input_multiplier, p->input_left_shift);
                sum += fx_mul_pot(exp_on_negative_values(scaled), -ACCUM_INT_BITS);
            }
        }
        /* Normalise the sum to [1, 2) and take its reciprocal. */
        headroom = count_leading_zeros((uint32_t)sum);
        bits_over_unit = ACCUM_INT_BITS - headroom;
        reciprocal =
            one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - ((uint32_t)1 << 31)));
        for (c = 0; c < p->depth; c++) {
            const int32_t diff = (int32_t)in[c] - max_in;
            int32_t v = -128;
            if (diff >= p->diff_min) {
                const int32_t scaled = tkd_multiply_by_quantized_multiplier_greater_than_one(
                    diff, p->input_multiplier, p->input_left_shift);
                const int32_t e = exp_on_negative_values(scaled);
                v = tkd_rounding_divide_by_pot(fx_mul(reciprocal, e), bits_over_unit + 31 - 8) -
                    128;
                v = v > 127 ? 127 : v;
                v = v < -128 ? -128 : v;
            }
            out[c] = (int8_t)v;
        }
    }
}
