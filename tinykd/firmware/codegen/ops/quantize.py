"""QUANTIZE inside the model (int8 -> int8 with a new scale) -> tkd_requantize_s8, and
DEQUANTIZE inside the model, which is refused (boundary ones are peeled off by graph.py)."""

from __future__ import annotations

from tinykd.errors import TinykdError
from tinykd.firmware.tflite_model import Operator

from ..cfmt import shape
from ..emit import EmitContext, Layer
from ..quant import quantize_multiplier


def emit_quantize(ctx: EmitContext, index: int, op: Operator, fn: str) -> Layer:
    g = ctx.g
    x = g.tensor(op.inputs[0])
    if x.type != "INT8":
        raise TinykdError(
            f"QUANTIZE operator #{op.index} converts {x.type} inside the model; "
            "the tinykd runtime only takes a float input through a QUANTIZE at "
            "the very start. Convert the model to full int8."
        )
    x, y = g.act(op, op.inputs[0]), g.act(op, op.outputs[0])
    g.check_multipliers(op, [x.scale[0] / y.scale[0]])
    m, s = quantize_multiplier(x.scale[0] / y.scale[0])
    return Layer(
        index,
        op,
        fn,
        f"QUANTIZE int8 {shape(x.shape)}: scale {x.scale[0]:.6g} -> {y.scale[0]:.6g}",
        [],
        [f"tkd_requantize_s8({{in0}}, {{out}}, {x.num_elements}, {x.zero_point[0]}, {y.zero_point[0]}, {m}, {s});"],
        [x.index],
        y.index,
    )


def emit_dequantize(ctx: EmitContext, index: int, op: Operator, fn: str) -> Layer:
    raise TinykdError(
        f"DEQUANTIZE operator #{op.index} is inside the model; the tinykd "
        "runtime only accepts DEQUANTIZE as the very last operator (its float "
        "output is left to the caller). Convert the model to full int8."
    )
