"""SOFTMAX (int8 in, int8 out with scale 1/256 and zero point -128) -> tkd_softmax_s8."""

from __future__ import annotations

import math

import numpy as np

from tinykd.errors import TinykdError
from tinykd.firmware.tflite_model import Operator

from ..cfmt import Field, c_struct, shape
from ..emit import EmitContext, Layer
from ..quant import softmax_params


def emit_softmax(ctx: EmitContext, index: int, op: Operator, fn: str) -> Layer:
    g = ctx.g
    x, y = g.act(op, op.inputs[0]), g.act(op, op.outputs[0])
    if abs(y.scale[0] - 1.0 / 256) > 1e-8 * 1.0 / 256 or y.zero_point[0] != -128:
        raise TinykdError(
            f"SOFTMAX operator #{op.index} has output scale {y.scale[0]} and zero "
            f"point {y.zero_point[0]}; int8 softmax needs 1/256 and -128 (what "
            "the TFLite converter produces). Convert the model again."
        )
    if x.shape != y.shape or not x.shape:
        raise TinykdError(f"SOFTMAX operator #{op.index} changes the shape; the model is damaged.")
    beta = float(np.float32(op.options.get("Beta", 1.0)))
    if not (math.isfinite(beta) and beta > 0):
        raise TinykdError(
            f"SOFTMAX operator #{op.index} has beta {beta}; it must be a finite positive number. The "
            "file is damaged: convert the model again."
        )
    depth = x.shape[-1]
    mult, left, diff_min = softmax_params(beta, x.scale[0], f"SOFTMAX operator #{op.index}")
    params = c_struct(
        "tkd_softmax_params_t",
        f"{fn}_params",
        [
            Field("outer", x.num_elements // depth, "rows"),
            Field("depth", depth, "row length"),
            Field("input_multiplier", mult),
            Field("input_left_shift", left),
            Field("diff_min", diff_min),
        ],
    )
    return Layer(
        index,
        op,
        fn,
        f"SOFTMAX {shape(x.shape)}, beta {beta:g}",
        [params],
        [f"tkd_softmax_s8(&{fn}_params, {{in0}}, {{out}});"],
        [x.index],
        y.index,
    )
