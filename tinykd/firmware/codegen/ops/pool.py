"""AVERAGE_POOL_2D -> tkd_avg_pool_s8 and MAX_POOL_2D -> tkd_max_pool_s8 (tkd_pool.c)."""

from __future__ import annotations

from tinykd.errors import TinykdError
from tinykd.firmware.tflite_model import Operator

from ..cfmt import Field, c_struct, shape
from ..emit import EmitContext, Layer
from ..quant import PADDING, activation_range, out_size, pad_before


def emit_average_pool_2d(ctx: EmitContext, index: int, op: Operator, fn: str) -> Layer:
    return _emit(ctx, index, op, fn, avg=True)


def emit_max_pool_2d(ctx: EmitContext, index: int, op: Operator, fn: str) -> Layer:
    return _emit(ctx, index, op, fn, avg=False)


def _emit(ctx: EmitContext, index: int, op: Operator, fn: str, avg: bool) -> Layer:
    g = ctx.g
    x, y = g.act(op, op.inputs[0]), g.act(op, op.outputs[0])
    o = op.options
    if len(x.shape) != 4 or len(y.shape) != 4 or x.shape[3] != y.shape[3] or x.shape[0] != y.shape[0]:
        raise TinykdError(f"{op.opcode} operator #{op.index} needs matching 4-D NHWC tensors; the model is damaged.")
    n, ih, iw, c = x.shape
    _, oh, ow, _ = y.shape
    kh, kw = int(o.get("FilterHeight", 1)), int(o.get("FilterWidth", 1))
    sh, sw = int(o.get("StrideH", 1)), int(o.get("StrideW", 1))
    pad = int(o.get("Padding", 0))
    g.check_window(op, filter_height=kh, filter_width=kw, stride_h=sh, stride_w=sw)
    if min(kh, kw, sh, sw) < 1 or (out_size(pad, ih, kh, sh), out_size(pad, iw, kw, sw)) != (oh, ow):
        raise TinykdError(
            f"{op.opcode} operator #{op.index}: output {shape(y.shape)} does not "
            f"match input {shape(x.shape)}; the model is damaged."
        )
    ph, pw = pad_before(sh, 1, ih, kh, oh), pad_before(sw, 1, iw, kw, ow)
    lo, hi = activation_range(ctx.fused_activation(op), y.scale[0], y.zero_point[0])
    params = c_struct(
        "tkd_pool_params_t",
        f"{fn}_params",
        [
            Field("batches", n),
            (Field("in_h", ih), Field("in_w", iw), Field("channels", c)),
            (Field("out_h", oh), Field("out_w", ow)),
            (Field("filter_h", kh), Field("filter_w", kw)),
            (Field("stride_h", sh), Field("stride_w", sw)),
            (Field("pad_h", ph), Field("pad_w", pw)),
            (Field("act_min", lo), Field("act_max", hi, ctx.activation_name(op))),
        ],
    )
    summary = (
        f"{op.opcode} {kh}x{kw} {shape(x.shape)} -> {shape(y.shape)}, stride "
        f"{sh}x{sw}, {PADDING.get(pad)}, {ctx.activation_name(op)}"
    )
    if avg:
        body = [f"return tkd_avg_pool_s8(&{fn}_params, {{in0}}, {{out}});"]
    else:
        body = [f"tkd_max_pool_s8(&{fn}_params, {{in0}}, {{out}});"]
    return Layer(index, op, fn, summary, [params], body, [x.index], y.index, fallible=avg)
