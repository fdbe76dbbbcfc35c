"""TFLite's quantisation arithmetic, reproduced in Python so the generated constants are the
ones TFLite Micro computes at run time (bit-exact results need the very same integers).

Every function names the TFLite / TFLite Micro routine it mirrors; tests/test_quant_arith.py
checks them against a direct transcription of the C++ and against the tflite-micro interpreter.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from tinykd.errors import TinykdError

# Fused activation codes (tflite::ActivationFunctionType) the runtime runs.
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
# tflite::Padding codes.
PADDING = {0: "SAME", 1: "VALID"}
ADD_LEFT_SHIFT = 20  # TFLite's headroom for int8 ADD (kernels/add.cc: data->left_shift)


def round_half_away(x: float) -> int:
    """std::round: nearest integer, ties away from zero (exact for any double)."""
    return int(Decimal(x).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: m = q * 2^shift with q a Q0.31 int32 (double rounding build)."""
    if m == 0.0:
        return 0, 0
    frac, shift = math.frexp(m)
    q = round_half_away(frac * (1 << 31))
    if q == (1 << 31):
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if q > (1 << 31) - 1:
        raise TinykdError(
            f"A requantisation multiplier ({m!r}) is out of range: the model's "
            "quantisation parameters are invalid. Convert the model again."
        )
    return q, shift


def unsupported_activation(act: int) -> TinykdError:
    return TinykdError(
        f"The model uses fused activation code {act}, which the tinykd runtime does not support "
        "(supported: NONE, RELU, RELU6, RELU_N1_TO_1). Use ReLU or ReLU6 in the model."
    )


def activation_range(act: int, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 (f / scale computed in float32)."""

    def q(f: float) -> int:
        return zero_point + round_half_away(float(np.float32(f) / np.float32(scale)))

    name = ACTIVATIONS.get(act)
    if name == "NONE":
        return -128, 127
    if name == "RELU":
        return max(-128, q(0.0)), 127
    if name == "RELU6":
        return max(-128, q(0.0)), min(127, q(6.0))
    if name == "RELU_N1_TO_1":
        return max(-128, q(-1.0)), min(127, q(1.0))
    raise unsupported_activation(act)


def out_size(padding: int, image: int, filt: int, stride: int, dilation: int = 1) -> int:
    """ComputeOutSize: the output extent of a conv/pool along one axis."""
    eff = (filt - 1) * dilation + 1
    if PADDING.get(padding) == "SAME":
        return (image + stride - 1) // stride
    if PADDING.get(padding) == "VALID":
        return (image + stride - eff) // stride
    raise TinykdError(f"Unknown padding code {padding} in the model. Convert the model again.")


def pad_before(stride: int, dilation: int, image: int, filt: int, out: int) -> int:
    """ComputePaddingWithOffset's padding (top or left): half the total, rounded down."""
    eff = (filt - 1) * dilation + 1
    total = max(0, (out - 1) * stride + eff - image)
    return total // 2


def short_requant(folded_bias: np.ndarray, abs_filter_sums: np.ndarray, scales: list[float]) -> int:
    """1 when the kernels may use their short requantisation (firmware/runtime/tkd_internal.h),
    i.e. when for every output channel
      - every accumulator the kernel can form has |acc| < 2^30: acc = folded bias + sum w*x
        with |x| <= 128 (inputs, and the zero point the padding uses), so
        |acc| <= |folded bias| + 128 * sum|w|; and
      - the requantisation shift is a right shift of 1..31 (multiplier below 0.5).
    Otherwise the kernels use the reference's 64-bit arithmetic; both are bit-exact."""
    for fb, sa, sc in zip(
        np.asarray(folded_bias, np.int64).reshape(-1), np.asarray(abs_filter_sums, np.int64).reshape(-1), scales
    ):
        _, shift = quantize_multiplier(sc)
        if not -31 <= shift <= -1 or abs(int(fb)) + 128 * int(sa) >= (1 << 30):
            return 0
    return 1


def conv_multiplier_per_tensor(input_scale: float, filter_scale: float, output_scale: float) -> float:
    """GetQuantizedConvolutionMultipler for per-tensor FULLY_CONNECTED, as the pinned TFLite Micro
    computes it: product and division in double. (A float32 product differs in the multiplier's
    last digits and flips rounding ties: issue 11, tests/test_fuzz_defects.py.)"""
    return float(input_scale) * float(filter_scale) / float(output_scale)


def softmax_params(beta: float, input_scale: float, what: str, int_bits: int = 5) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling + CalculateInputRadius for int8 softmax: (input multiplier,
    input left shift, diff_min). `what` names the operator in the error for a negative shift."""
    real = min(beta * input_scale * (1 << (31 - int_bits)), (1 << 31) - 1.0)
    mult, left = quantize_multiplier(real)
    if left < 0:
        raise TinykdError(
            f"{what}: beta x input scale is too small for TFLite's int8 softmax. Convert the model again."
        )
    radius = math.floor(((1 << int_bits) - 1) * float(1 << (31 - int_bits)) / float(1 << left))
    return mult, left, -radius
