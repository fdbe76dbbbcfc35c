"""RESHAPE: no code when the planner lets the output share the input's bytes (in_place),
a tkd_copy otherwise (the model's output buffer is the caller's)."""

from __future__ import annotations

from tinykd.errors import TinykdError
from tinykd.firmware.tflite_model import Operator

from ..cfmt import shape
from ..emit import EmitContext, Layer


def emit_reshape(ctx: EmitContext, index: int, op: Operator, fn: str) -> Layer:
    g = ctx.g
    x, y = g.act(op, op.inputs[0]), g.act(op, op.outputs[0])
    if x.num_elements != y.num_elements:
        raise TinykdError(f"RESHAPE operator #{op.index} changes the element count; the model is damaged.")
    if (x.scale[0], x.zero_point[0]) != (y.scale[0], y.zero_point[0]):
        raise TinykdError(f"RESHAPE operator #{op.index} changes quantisation; the model is damaged.")
    return Layer(
        index,
        op,
        fn,
        f"RESHAPE {shape(x.shape)} -> {shape(y.shape)}",
        [],
        [f"tkd_copy({{in0}}, {{out}}, {x.nbytes});"],
        [x.index],
        y.index,
        in_place=True,
    )
