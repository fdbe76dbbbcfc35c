"""CONV_2D -> tkd_conv_s8 and DEPTHWISE_CONV_2D -> tkd_depthwise_conv_s8 (one params struct,
tkd_conv_params_t, for both)."""

from __future__ import annotations

import numpy as np

from tinykd.errors import TinykdError
from tinykd.firmware.tflite_model import Operator

from ..cfmt import Field, c_struct, shape
from ..emit import EmitContext, Layer
from ..quant import PADDING, activation_range, out_size, pad_before, short_requant


def emit_conv_2d(ctx: EmitContext, index: int, op: Operator, fn: str) -> Layer:
    return _emit(ctx, index, op, fn, depthwise=False)


def emit_depthwise_conv_2d(ctx: EmitContext, index: int, op: Operator, fn: str) -> Layer:
    return _emit(ctx, index, op, fn, depthwise=True)


def _emit(ctx: EmitContext, index: int, op: Operator, fn: str, depthwise: bool) -> Layer:
    g = ctx.g
    x = g.act(op, op.inputs[0])
    w = g.const(op, op.inputs[1], ("INT8",), "filter")
    y = g.act(op, op.outputs[0])
    o = op.options
    if len(x.shape) != 4 or len(w.shape) != 4 or len(y.shape) != 4:
        raise TinykdError(
            f"{op.opcode} operator #{op.index} needs 4-D NHWC tensors; the "
            "model is damaged or uses an unsupported layout."
        )
    n, ih, iw, ic = x.shape
    _, oh, ow, oc = y.shape
    if depthwise:
        _, kh, kw, woc = w.shape
        filter_in_c = 1
        if woc != oc or ic == 0 or oc % ic:
            raise TinykdError(
                f"DEPTHWISE_CONV_2D operator #{op.index}: filter "
                f"{shape(w.shape)} does not fit input {shape(x.shape)} and "
                f"output {shape(y.shape)}; the model is damaged."
            )
        mult = oc // ic
        opt_mult = int(o.get("DepthMultiplier", mult))
        if opt_mult != mult:  # TFLite Micro's kernel walks the channels with the option's value
            raise TinykdError(
                f"DEPTHWISE_CONV_2D operator #{op.index} has depth_multiplier {opt_mult} in its options, but "
                f"its input {shape(x.shape)} and output {shape(y.shape)} give {mult}; the model is damaged. "
                "Convert it again."
            )
    else:
        woc, kh, kw, filter_in_c = w.shape
        if woc != oc or filter_in_c == 0 or ic % filter_in_c or oc % (ic // filter_in_c):
            raise TinykdError(
                f"CONV_2D operator #{op.index}: filter {shape(w.shape)} does "
                f"not fit input {shape(x.shape)} and output "
                f"{shape(y.shape)}; the model is damaged."
            )
        mult = 1
    sh, sw = int(o.get("StrideH", 1)), int(o.get("StrideW", 1))
    dh, dw = int(o.get("DilationHFactor", 1)), int(o.get("DilationWFactor", 1))
    pad = int(o.get("Padding", 0))
    g.check_window(op, filter_height=kh, filter_width=kw, stride_h=sh, stride_w=sw, dilation_h=dh, dilation_w=dw)
    if min(sh, sw, dh, dw) < 1:
        raise TinykdError(f"{op.opcode} operator #{op.index} has a stride or dilation below 1; the model is damaged.")
    if (out_size(pad, ih, kh, sh, dh), out_size(pad, iw, kw, sw, dw)) != (oh, ow) or y.shape[0] != n:
        raise TinykdError(
            f"{op.opcode} operator #{op.index}: output {shape(y.shape)} does not "
            f"match input {shape(x.shape)} with {PADDING.get(pad)} padding; "
            "the model is damaged."
        )
    ph, pw = pad_before(sh, dh, ih, kh, oh), pad_before(sw, dw, iw, kw, ow)
    qdim = 3 if depthwise else 0
    if len(w.scale) > 1 and (len(w.scale) != oc or w.quantized_dimension != qdim):
        raise TinykdError(
            f"{op.opcode} operator #{op.index} has filter scales along an unexpected dimension; the model is damaged."
        )
    wscales = list(w.scale) if len(w.scale) > 1 else [w.scale[0]] * oc
    scales = [x.scale[0] * s / y.scale[0] for s in wscales]
    g.check_multipliers(op, scales)
    mname, sname, defs = ctx.requant_arrays(fn, scales)
    lo, hi = activation_range(ctx.fused_activation(op), y.scale[0], y.zero_point[0])
    wname = ctx.const_array(w, f"{fn}_filter", "int8_t", 16)
    wa = w.array().reshape(w.shape).astype(np.int64)
    axes = (0, 1, 2) if depthwise else (1, 2, 3)
    bname, fb = ctx.folded_bias(op, 2, fn, oc, -x.zero_point[0], wa.sum(axis=axes))
    g.check_accumulators(op, fb, np.abs(wa).sum(axis=axes))
    bounded = short_requant(fb, np.abs(wa).sum(axis=axes), scales)
    defs.append(
        c_struct(
            "tkd_conv_params_t",
            f"{fn}_params",
            [
                Field("batches", n),
                (Field("in_h", ih), Field("in_w", iw), Field("in_c", ic)),
                (Field("out_h", oh), Field("out_w", ow), Field("out_c", oc)),
                (Field("filter_h", kh), Field("filter_w", kw), Field("filter_in_c", filter_in_c)),
                Field("depth_multiplier", mult),
                (Field("stride_h", sh), Field("stride_w", sw)),
                (Field("dilation_h", dh), Field("dilation_w", dw)),
                (Field("pad_h", ph), Field("pad_w", pw)),
                (Field("input_offset", -x.zero_point[0]), Field("output_offset", y.zero_point[0])),
                (Field("act_min", lo), Field("act_max", hi, ctx.activation_name(op))),
                Field("multiplier", mname),
                Field("shift", sname),
                Field("short_requant", bounded, "|acc| < 2^30, right shifts only"),
            ],
        )
    )
    kern = "tkd_depthwise_conv_s8" if depthwise else "tkd_conv_s8"
    what = f"x{mult} " if depthwise else ""
    return Layer(
        index,
        op,
        fn,
        f"{op.opcode} {kh}x{kw} {what}{shape(x.shape)} -> {shape(y.shape)}, "
        f"stride {sh}x{sw}, {PADDING.get(pad)}, {ctx.activation_name(op)}",
        defs,
        [f"{kern}(&{fn}_params, {{in0}}, {wname}, {bname}, {{out}});"],
        [x.index],
        y.index,
        macs=n * oh * ow * oc * kh * kw * filter_in_c,
    )
