"""The operators the tinykd runtime runs, each with its emitter (emit(ctx, index, op, fn) ->
Layer, see ../emit.py). SUPPORTED_OPS is this registry's keys: adding an operator means
adding its emitter here (and its kernel in firmware/runtime)."""

from __future__ import annotations

from collections.abc import Callable

from tinykd.firmware.tflite_model import Operator

from ..emit import EmitContext, Layer
from .add import emit_add
from .conv import emit_conv_2d, emit_depthwise_conv_2d
from .fully_connected import emit_fully_connected
from .pool import emit_average_pool_2d, emit_max_pool_2d
from .quantize import emit_dequantize, emit_quantize
from .reshape import emit_reshape
from .softmax import emit_softmax

Emitter = Callable[[EmitContext, int, Operator, str], Layer]

EMITTERS: dict[str, Emitter] = {
    "ADD": emit_add,
    "AVERAGE_POOL_2D": emit_average_pool_2d,
    "CONV_2D": emit_conv_2d,
    "DEPTHWISE_CONV_2D": emit_depthwise_conv_2d,
    "DEQUANTIZE": emit_dequantize,
    "FULLY_CONNECTED": emit_fully_connected,
    "MAX_POOL_2D": emit_max_pool_2d,
    "QUANTIZE": emit_quantize,
    "RESHAPE": emit_reshape,
    "SOFTMAX": emit_softmax,
}
SUPPORTED_OPS: tuple[str, ...] = tuple(EMITTERS)

__all__ = ["EMITTERS", "SUPPORTED_OPS", "Emitter"]
