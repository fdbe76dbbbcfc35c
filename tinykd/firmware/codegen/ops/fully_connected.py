"""FULLY_CONNECTED -> tkd_fully_connected_s8 (firmware/runtime/tkd_fully_connected.c)."""

from __future__ import annotations

import numpy as np

from tinykd.errors import TinykdError
from tinykd.firmware.tflite_model import Operator

from ..cfmt import Field, c_struct, shape
from ..emit import EmitContext, Layer
from ..quant import activation_range, conv_multiplier_per_tensor, short_requant


def emit_fully_connected(ctx: EmitContext, index: int, op: Operator, fn: str) -> Layer:
    g = ctx.g
    x = g.act(op, op.inputs[0])
    w = g.const(op, op.inputs[1], ("INT8",), "weights")
    y = g.act(op, op.outputs[0])
    if int(op.options.get("WeightsFormat", 0)) != 0 or len(w.shape) != 2:
        raise TinykdError(
            f"FULLY_CONNECTED operator #{op.index} uses a weights format the "
            "tinykd runtime does not support (shuffled or not 2-D). Convert "
            "the model with default options."
        )
    out_depth, accum = w.shape
    if (
        accum == 0
        or x.num_elements % accum
        or y.num_elements != x.num_elements // accum * out_depth
        or not y.shape
        or y.shape[-1] != out_depth  # TFLite Micro takes the rows from the output's last dimension
    ):
        raise TinykdError(
            f"FULLY_CONNECTED operator #{op.index}: input {shape(x.shape)}, "
            f"weights {shape(w.shape)} and output {shape(y.shape)} do not "
            "fit together; the model is damaged."
        )
    batches = x.num_elements // accum
    per_channel = len(w.scale) > 1
    if per_channel:
        if len(w.scale) != out_depth or w.quantized_dimension != 0:
            raise TinykdError(
                f"FULLY_CONNECTED operator #{op.index} has {len(w.scale)} "
                f"weight scales along dimension {w.quantized_dimension} for {out_depth} outputs (dimension 0); "
                "the model is damaged. Convert it again."
            )
        scales = [x.scale[0] * s / y.scale[0] for s in w.scale]
        filter_offset = 0
    else:
        scales = [conv_multiplier_per_tensor(x.scale[0], w.scale[0], y.scale[0])]
        filter_offset = -w.zero_point[0]
    g.check_multipliers(op, scales)
    mname, sname, defs = ctx.requant_arrays(fn, scales)
    lo, hi = activation_range(ctx.fused_activation(op), y.scale[0], y.zero_point[0])
    wname = ctx.const_array(w, f"{fn}_weights", "int8_t", 16)
    wo = w.array().reshape(out_depth, accum).astype(np.int64) + filter_offset
    bname, fb = ctx.folded_bias(op, 2, fn, out_depth, -x.zero_point[0], wo.sum(axis=1))
    g.check_accumulators(op, fb, np.abs(wo).sum(axis=1))
    bounded = short_requant(fb, np.abs(wo).sum(axis=1), scales * (out_depth if len(scales) == 1 else 1))
    defs.append(
        c_struct(
            "tkd_fc_params_t",
            f"{fn}_params",
            [
                Field("batches", batches),
                (Field("accum_depth", accum), Field("output_depth", out_depth)),
                Field("input_offset", -x.zero_point[0]),
                Field("filter_offset", filter_offset),
                Field("output_offset", y.zero_point[0]),
                (Field("act_min", lo), Field("act_max", hi, ctx.activation_name(op))),
                Field("per_channel", 1 if per_channel else 0),
                Field("multiplier", mname),
                Field("shift", sname),
                Field("short_requant", bounded, "|acc| < 2^30, right shifts only"),
            ],
        )
    )
    return Layer(
        index,
        op,
        fn,
        f"FULLY_CONNECTED {accum} -> {out_depth}"
        f"{' x' + str(batches) if batches > 1 else ''}, "
        f"{'per-channel' if per_channel else 'per-tensor'}, {ctx.activation_name(op)}",
        defs,
        [f"tkd_fully_connected_s8(&{fn}_params, {{in0}}, {wname}, {bname}, {{out}});"],
        [x.index],
        y.index,
        macs=batches * accum * out_depth,
    )
