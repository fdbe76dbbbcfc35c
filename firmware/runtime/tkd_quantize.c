/* QUANTIZE inside an int8 model: int8 -> int8 with a new scale and zero point (a float
 * model's boundary QUANTIZE/DEQUANTIZE is left to the caller, see model.h). */
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
