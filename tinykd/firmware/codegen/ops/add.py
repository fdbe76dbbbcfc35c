"""ADD (int8, with 4-D broadcasting and constant operands) -> tkd_add_s8 (tkd_add.c)."""

from __future__ import annotations

from tinykd.errors import TinykdError
from tinykd.firmware.tflite_model import Operator, Tensor

from ..cfmt import Field, c_struct, shape
from ..emit import EmitContext, Layer
from ..quant import ADD_LEFT_SHIFT, activation_range, quantize_multiplier


def _broadcast_strides(op: Operator, t: Tensor, a: Tensor, b: Tensor, y: Tensor, dims: list[int]) -> list[int]:
    """Element strides of `t` along the 4-D output dims `dims` (0 where `t` is broadcast)."""
    s = [1] * (4 - len(t.shape)) + list(t.shape)
    out, step = [0] * 4, 1
    for d in range(3, -1, -1):
        if s[d] == dims[d]:
            out[d] = step if s[d] != 1 else 0
        elif s[d] == 1:
            out[d] = 0
        else:
            raise TinykdError(
                f"ADD operator #{op.index}: shapes {shape(a.shape)} and "
                f"{shape(b.shape)} do not broadcast to {shape(y.shape)}; "
                "the model is damaged."
            )
        step *= s[d]
    return out


def emit_add(ctx: EmitContext, index: int, op: Operator, fn: str) -> Layer:
    g = ctx.g
    y = g.act(op, op.outputs[0])
    operands, acts, args = [], [], []
    for k, ti in enumerate(op.inputs[:2]):
        t = g.tensor(ti)
        if t.is_constant:  # e.g. x + a constant vector: kept as an int8 array
            g.const(op, ti, ("INT8",), f"input {k + 1}")
            if len(t.scale) != 1 or t.scale[0] <= 0:
                raise TinykdError(
                    f"The constant input of ADD operator #{op.index} is not "
                    "quantised per tensor. Convert the model to full int8."
                )
            args.append(ctx.const_array(t, f"{fn}_operand{k + 1}", "int8_t", 16))
        else:
            t = g.act(op, ti)
            args.append(f"{{in{len(acts)}}}")
            acts.append(ti)
        operands.append(t)
    if not acts:
        raise TinykdError(
            f"ADD operator #{op.index} adds two constants; the converter should have folded it. "
            "Convert the model again."
        )
    a, b = operands
    if max(len(a.shape), len(b.shape), len(y.shape)) > 4:
        raise TinykdError(
            f"ADD operator #{op.index} has tensors of more than 4 dimensions; "
            "the tinykd runtime broadcasts up to 4-D. Reshape in the model."
        )
    dims = [1] * (4 - len(y.shape)) + list(y.shape)
    s1, s2 = (_broadcast_strides(op, t, a, b, y, dims) for t in (a, b))
    twice_max = 2.0 * max(a.scale[0], b.scale[0])
    m1, sh1 = quantize_multiplier(a.scale[0] / twice_max)
    m2, sh2 = quantize_multiplier(b.scale[0] / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * y.scale[0]))
    if max(sh1, sh2, sho) > 0:
        raise TinykdError(
            f"ADD operator #{op.index} needs an output scale that is too small "
            "for TFLite's int8 ADD rescaling; the model's quantisation is "
            "invalid. Convert the model again."
        )
    lo, hi = activation_range(ctx.fused_activation(op), y.scale[0], y.zero_point[0])
    params = c_struct(
        "tkd_add_params_t",
        f"{fn}_params",
        [
            Field("dims", dims, "output shape, 4-D"),
            Field("in1_stride", s1, "0: broadcast"),
            Field("in2_stride", s2),
            (Field("input1_offset", -a.zero_point[0]), Field("input2_offset", -b.zero_point[0])),
            Field("output_offset", y.zero_point[0]),
            Field("left_shift", ADD_LEFT_SHIFT),
            (Field("input1_multiplier", m1), Field("input1_shift", sh1)),
            (Field("input2_multiplier", m2), Field("input2_shift", sh2)),
            (Field("output_multiplier", mo), Field("output_shift", sho)),
            (Field("act_min", lo), Field("act_max", hi, ctx.activation_name(op))),
        ],
    )
    return Layer(
        index,
        op,
        fn,
        f"ADD {shape(a.shape)} + {shape(b.shape)} -> {shape(y.shape)}, {ctx.activation_name(op)}",
        [params],
        [f"tkd_add_s8(&{fn}_params, {args[0]}, {args[1]}, {{out}});"],
        acts,
        y.index,
    )
