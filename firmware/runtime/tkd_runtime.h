/* tinykd int8 inference runtime: portable C99, no malloc, no mutable globals.
 *
 * Every kernel is bit-exact with TensorFlow Lite Micro's reference int8 kernels (default
 * build, i.e. the "double rounding" MultiplyByQuantizedMultiplier). The code generator
 * (tinykd/firmware/codegen/) computes every multiplier, shift, offset and clamp bound in
 * Python and passes them here as const parameter structs; the kernels only do integer work.
 *
 * Conventions: tensors are NHWC, row-major, int8 unless said otherwise. "offset" means the
 * negated zero point for inputs (input_offset = -zero_point) and the zero point itself for
 * outputs, as in TFLite. act_min/act_max are the fused activation clamps on the quantised
 * output range (NONE: -128..127; RELU/RELU6: derived from the output scale).
 *
 * Optimised versions: each kernel has one entry point. A Cortex-M DSP (SIMD) version goes
 * behind the same function, selected at compile time with `#if TKD_USE_DSP` inside the
 * kernel's .c file (see README.md); the portable loop stays as the reference.
 */
#ifndef TKD_RUNTIME_H
#define TKD_RUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TKD_ALIGN(n) __attribute__((aligned(n)))
#else
#define TKD_ALIGN(n)
#endif

/* 1: the kernels use the Cortex-M DSP (SIMD) extension (SMLAD on int16 pairs). Chosen
 * automatically for cores that have it (M4, M7, M33 with DSP, M55: __ARM_FEATURE_DSP);
 * build with -DTKD_USE_DSP=0 to force the portable C loops. */
#ifndef TKD_USE_DSP
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define TKD_USE_DSP 1
#else
#define TKD_USE_DSP 0
#endif
#endif

/* ---- fixed-point helpers (tkd_requant.c) -------------------------------------------- */

/* High 32 bits of 2*a*b, rounded to nearest with ties toward +infinity (gemmlowp's nudge:
 * +0.5 -> 1, -0.5 -> 0); saturates the single overflow case a == b == INT32_MIN. */
int32_t tkd_sat_rounding_doubling_high_mul(int32_t a, int32_t b);
/* x / 2^exponent rounded to nearest, ties away from zero; 0 <= exponent <= 31. */
int32_t tkd_rounding_divide_by_pot(int32_t x, int exponent);
/* x * multiplier * 2^shift where multiplier is Q0.31: TFLite's MultiplyByQuantizedMultiplier
 * (left shift before the high multiply, rounding right shift after). */
int32_t tkd_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift);
/* Same with shift <= 0 only (TFLite's ...SmallerThanOneExp, used by ADD). */
int32_t tkd_multiply_by_quantized_multiplier_smaller_than_one(int32_t x, int32_t multiplier,
                                                              int shift);
/* Same with left_shift >= 0 only (TFLite's ...GreaterThanOne, used by SOFTMAX). */
int32_t tkd_multiply_by_quantized_multiplier_greater_than_one(int32_t x, int32_t multiplier,
                                                              int left_shift);

/* ---- FULLY_CONNECTED (tkd_fully_connected.c) ------------------------------------------ */
typedef struct {
    int32_t batches;       /* rows of input */
    int32_t accum_depth;   /* input elements per row = filter columns */
    int32_t output_depth;  /* filter rows = output elements per row */
    int32_t input_offset;  /* -input zero point */
    int32_t filter_offset; /* -filter zero point (per-tensor only; 0 for per-channel) */
    int32_t output_offset; /* output zero point */
    int32_t act_min, act_max;
    int32_t per_channel;       /* 1: multiplier/shift have output_depth entries, else 1 */
    const int32_t *multiplier; /* Q0.31 */
    const int32_t *shift;      /* >0: left, <0: right */
    int32_t short_requant;     /* 1: every |accumulator| < 2^30 for any input and every
                                  shift is in -31..-1 (the code generator proves it from
                                  the weights and scales): the kernel may requantise with
                                  32-bit arithmetic; 0: the reference's 64-bit form */
} tkd_fc_params_t;

/* output[b][o] = clamp(requant(sum_i (filter[o][i]+filter_offset)*input[b][i] + bias[o])
 *                    + output_offset)
 * where bias is the FOLDED bias: the model's bias[o] + input_offset * sum_i
 * (filter[o][i]+filter_offset), which the code generator precomputes (mod 2^32, like the
 * reference's wrapping int32 accumulator). Equal to the reference's
 * sum_i (w+filter_offset)*(x+input_offset) + bias. input_offset is not read. bias may be
 * NULL (zero). */
void tkd_fully_connected_s8(const tkd_fc_params_t *p, const int8_t *input, const int8_t *filter,
                            const int32_t *bias, int8_t *output);

/* ---- CONV_2D and DEPTHWISE_CONV_2D (tkd_conv.c, tkd_depthwise_conv.c) ------------------ */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t filter_h, filter_w;
    int32_t filter_in_c;      /* conv: filter input depth (in_c / groups); depthwise: unused */
    int32_t depth_multiplier; /* depthwise: out_c = in_c * depth_multiplier; conv: unused */
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_h, pad_w; /* top/left padding (SAME padding as TFLite computes it) */
    int32_t input_offset, output_offset;
    int32_t act_min, act_max;
    const int32_t *multiplier; /* out_c entries (per-tensor weights: repeated) */
    const int32_t *shift;      /* out_c entries */
    int32_t short_requant;     /* as in tkd_fc_params_t */
} tkd_conv_params_t;

/* filter: [out_c][filter_h][filter_w][filter_in_c]; bias: [out_c] or NULL. Taps outside
 * the input image are skipped (zero padding in the real-number domain).
 * bias is the FOLDED bias (conv and depthwise): the model's bias[oc] + input_offset * (sum
 * of every tap of filter oc), precomputed by the code generator. The kernels then
 * accumulate w*x for the taps inside the image and w*(-input_offset) (the input zero
 * point, i.e. real zero) for the taps outside, which is the reference's
 * sum over inside taps of w*(x+input_offset) + bias. */
void tkd_conv_s8(const tkd_conv_params_t *p, const int8_t *input, const int8_t *filter,
                 const int32_t *bias, int8_t *output);
/* filter: [1][filter_h][filter_w][out_c]; output channel = in_channel*depth_multiplier + m. */
void tkd_depthwise_conv_s8(const tkd_conv_params_t *p, const int8_t *input, const int8_t *filter,
                           const int32_t *bias, int8_t *output);

/* ---- AVERAGE_POOL_2D / MAX_POOL_2D (tkd_pool.c) --------------------------------------- */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
    int32_t act_min, act_max;
} tkd_pool_params_t;

/* Mean of the in-image taps, rounded half away from zero. Returns 0, or -1 when a window
 * holds no input pixel (TFLM fails the same way). */
int tkd_avg_pool_s8(const tkd_pool_params_t *p, const int8_t *input, int8_t *output);
void tkd_max_pool_s8(const tkd_pool_params_t *p, const int8_t *input, int8_t *output);

/* ---- ADD (tkd_add.c) ------------------------------------------------------------------- */
typedef struct {
    int32_t dims[4];       /* output shape, padded to 4-D at the front with 1s */
    int32_t in1_stride[4]; /* element strides of input 1 per output dim (0 = broadcast) */
    int32_t in2_stride[4];
    int32_t input1_offset, input2_offset, output_offset;
    int32_t left_shift; /* 20 for int8 */
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
} tkd_add_params_t;

void tkd_add_s8(const tkd_add_params_t *p, const int8_t *input1, const int8_t *input2,
                int8_t *output);

/* ---- SOFTMAX (tkd_softmax.c) ----------------------------------------------------------- */
typedef struct {
    int32_t outer;            /* rows */
    int32_t depth;            /* elements per row (softmax axis, the last one) */
    int32_t input_multiplier; /* beta * input scale as Q(5).26 multiplier, see codegen */
    int32_t input_left_shift;
    int32_t diff_min; /* differences below this give exp() = 0 */
} tkd_softmax_params_t;

/* int8 in, int8 out (output scale 1/256, zero point -128), gemmlowp fixed-point exp. */
void tkd_softmax_s8(const tkd_softmax_params_t *p, const int8_t *input, int8_t *output);

/* ---- QUANTIZE (tkd_quantize.c) -------------------------------------------------------- */
/* int8 -> int8 with a new scale and zero point. */
void tkd_requantize_s8(const int8_t *input, int8_t *output, int32_t size, int32_t input_zp,
                       int32_t output_zp, int32_t multiplier, int32_t shift);

/* ---- RESHAPE --------------------------------------------------------------------------- */
/* Byte copy for the few reshapes the planner cannot alias (model input or output). */
void tkd_copy(const void *src, void *dst, int32_t bytes);

#ifdef __cplusplus
}
#endif
#endif /* TKD_RUNTIME_H */
