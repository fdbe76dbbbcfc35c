"""Generate model.c / model.h for the tinykd int8 runtime (firmware/runtime) from a .tflite.

`generate_model_sources(tflite_path, out_dir)` writes two files that read like hand-written C:
weights and biases as aligned `static const` arrays, every requantisation constant computed
here (the way TFLite / TFLite Micro compute them, so results are bit-exact), one static
function per layer calling the runtime, and a static arena whose offsets come from tensor
lifetimes (greedy first-fit by size; RESHAPE is an alias, not a copy).

The model's single input and output are not in the arena: the first layer reads the
caller's input buffer and the last layer writes the caller's output buffer directly.

The device application depends on the model.h contract (see `_header`): TKD_MODEL_* macros,
`tkd_model_hash` and `int tkd_model_invoke(const int8_t *input, int8_t *output)`.

A float-input model whose input goes straight into QUANTIZE, or whose output comes straight
from DEQUANTIZE, is accepted: those boundary ops are left to the caller (the contract's int8
input/output are the QUANTIZE output and DEQUANTIZE input; use TKD_MODEL_INPUT_SCALE/ZERO_POINT
to quantise). Every other tensor must be int8 (int32 for biases).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np

from tinykd import fileio
from tinykd.errors import TinykdError
from tinykd.firmware.tflite_model import Operator, Tensor, TfliteModel, read_tflite

SUPPORTED_OPS = (
    "ADD",
    "AVERAGE_POOL_2D",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEQUANTIZE",
    "FULLY_CONNECTED",
    "MAX_POOL_2D",
    "QUANTIZE",
    "RESHAPE",
    "SOFTMAX",
)
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
_PADDING = {0: "SAME", 1: "VALID"}
ARENA_ALIGN = 4  # byte alignment of every tensor inside the arena
ADD_LEFT_SHIFT = 20  # TFLite's headroom for int8 ADD


@dataclass
class ModelSources:
    model_c: Path
    model_h: Path
    name: str
    sha256: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    arena_bytes: int
    activations_total_bytes: int  # sum of all non-constant tensors, incl. input and output
    weight_bytes: int  # weights + biases as stored (int8 / int32)
    param_count: int
    macs: int
    ops: list[str] = field(default_factory=list)
    # (tensor, alias root, arena offset, bytes, first layer, last layer) for arena tensors
    arena_plan: list[tuple[int, int, int, int, int, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [self.model_h, self.model_c]


# ---- TFLite's quantisation arithmetic, reproduced in Python ----------------------------------


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


def activation_range(act: int, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 (f / scale computed in float32)."""

    def q(f: float) -> int:
        return zero_point + round_half_away(float(np.float32(f) / np.float32(scale)))

    name = _ACTIVATIONS.get(act)
    if name == "NONE":
        return -128, 127
    if name == "RELU":
        return max(-128, q(0.0)), 127
    if name == "RELU6":
        return max(-128, q(0.0)), min(127, q(6.0))
    if name == "RELU_N1_TO_1":
        return max(-128, q(-1.0)), min(127, q(1.0))
    raise _unsupported_activation(act)


def _unsupported_activation(act: int) -> TinykdError:
    return TinykdError(
        f"The model uses fused activation code {act}, which the tinykd runtime does not support "
        "(supported: NONE, RELU, RELU6, RELU_N1_TO_1). Use ReLU or ReLU6 in the model."
    )


def out_size(padding: int, image: int, filt: int, stride: int, dilation: int = 1) -> int:
    eff = (filt - 1) * dilation + 1
    if _PADDING.get(padding) == "SAME":
        return (image + stride - 1) // stride
    if _PADDING.get(padding) == "VALID":
        return (image + stride - eff) // stride
    raise TinykdError(f"Unknown padding code {padding} in the model. Convert the model again.")


def pad_before(stride: int, dilation: int, image: int, filt: int, out: int) -> int:
    eff = (filt - 1) * dilation + 1
    total = max(0, (out - 1) * stride + eff - image)
    return total // 2


# ---- graph checks ---------------------------------------------------------------------------


def _supported_list() -> str:
    return ", ".join(SUPPORTED_OPS)


class _Graph:
    """The model with its tensors checked, boundary QUANTIZE/DEQUANTIZE peeled off."""

    def __init__(self, m: TfliteModel):
        self.m = m
        self.t = m.tensors
        self.notes: list[str] = []
        if m.num_subgraphs != 1:
            raise TinykdError(
                f"{m.path.name} has {m.num_subgraphs} subgraphs (control flow such as WHILE or "
                "IF); the tinykd runtime runs single-graph models only. Remove the control flow "
                "or use --runtime tflm."
            )
        for op in m.operators:
            if op.opcode not in SUPPORTED_OPS:
                raise TinykdError(
                    f"{m.path.name} uses the operator {op.opcode} (operator #{op.index}), which "
                    f"the tinykd runtime does not support. Supported operators: "
                    f"{_supported_list()}. Replace that layer in the model (e.g. tanh/sigmoid "
                    "by ReLU) or use --runtime tflm."
                )
        if len(m.inputs) != 1 or len(m.outputs) != 1:
            raise TinykdError(
                f"{m.path.name} has {len(m.inputs)} inputs and {len(m.outputs)} outputs; the "
                "tinykd firmware contract takes exactly one input and one output tensor. "
                "Export a model with a single input and a single output."
            )
        if not m.operators:
            raise TinykdError(f"{m.path.name} has no operators. Convert the model again.")
        self.ops: list[Operator] = list(m.operators)
        self.input = m.inputs[0]
        self.output = m.outputs[0]
        # Peel float boundary ops: float32 input -> QUANTIZE, DEQUANTIZE -> float32 output.
        first = self.ops[0]
        if (
            self.t[self.input].type == "FLOAT32"
            and first.opcode == "QUANTIZE"
            and first.inputs[0] == self.input
            and self._uses(self.input) == 1
        ):
            self.ops.pop(0)
            self.input = first.outputs[0]
            self.notes.append("float input: the boundary QUANTIZE is left to the caller")
        last = self.ops[-1] if self.ops else None
        if (
            last is not None
            and self.t[self.output].type == "FLOAT32"
            and last.opcode == "DEQUANTIZE"
            and last.outputs[0] == self.output
        ):
            self.ops.pop()
            self.output = last.inputs[0]
            self.notes.append("float output: the boundary DEQUANTIZE is left to the caller")
        if not self.ops:
            raise TinykdError(
                f"{m.path.name} only converts between float and int8; there is no layer to run. Export the real model."
            )
        for ti in (self.input, self.output):
            self._check_act(ti, "the model input" if ti == self.input else "the model output")

    def _uses(self, ti: int) -> int:
        return sum(op.inputs.count(ti) for op in self.m.operators)

    def tensor(self, ti: int) -> Tensor:
        return self.t[ti]

    def _check_act(self, ti: int, what: str) -> Tensor:
        t = self.t[ti]
        if t.type != "INT8":
            raise TinykdError(
                f"Tensor {t.name!r} ({what}) is {t.type}; the tinykd runtime runs full-int8 "
                "models only (int8 activations, input and output). This looks like a float or "
                "hybrid model: convert with a representative dataset, "
                "supported_ops=[TFLITE_BUILTINS_INT8] and inference_input_type/"
                "inference_output_type=tf.int8 (`tinykd convert` does this)."
            )
        if len(t.scale) != 1 or t.scale[0] <= 0:
            raise TinykdError(
                f"Tensor {t.name!r} ({what}) has no per-tensor quantisation (scale "
                f"{list(t.scale)}). Convert the model with full-integer quantisation."
            )
        if t.is_constant:
            raise TinykdError(
                f"Tensor {t.name!r} ({what}) is a constant where the runtime needs "
                "an activation. Convert the model again or use --runtime tflm."
            )
        return t

    def act(self, op: Operator, ti: int) -> Tensor:
        return self._check_act(ti, f"{op.opcode} operator #{op.index}")

    def const(self, op: Operator, ti: int, types: tuple[str, ...], what: str) -> Tensor:
        t = self.t[ti]
        if not t.is_constant:
            raise TinykdError(
                f"The {what} of {op.opcode} operator #{op.index} ({t.name!r}) is not a constant; "
                "the tinykd runtime needs constant weights. Use --runtime tflm for this model."
            )
        if t.type not in types:
            raise TinykdError(
                f"The {what} of {op.opcode} operator #{op.index} ({t.name!r}) is {t.type}; the "
                f"tinykd runtime needs {' or '.join(types)}. Convert the model to full int8 "
                "(int8 weights, int32 biases)."
            )
        t.array()  # checks the data length
        return t


# ---- C emission helpers ------------------------------------------------------------------------


def _c_float(x: float) -> str:
    s = f"{float(np.float32(x)):.9g}"
    if not any(c in s for c in ".en"):
        s += ".0"
    return s + "f"


def _c_ident(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", s)


def _c_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.append("_")
    return '"' + "".join(out) + '"'


def _c_array(ctype: str, name: str, values: np.ndarray, per_line: int, align: int | None) -> str:
    vals = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    if ctype == "int32_t":
        vals = [v if int(v) != -(1 << 31) else "INT32_MIN" for v in vals]
    lines = []
    for i in range(0, len(vals), per_line):
        lines.append("    " + ", ".join(vals[i : i + per_line]) + ",")
    al = f" TKD_ALIGN({align})" if align else ""
    return f"static const {ctype} {name}[{len(vals)}]{al} = {{\n" + "\n".join(lines) + "\n};\n"


def _shape(s) -> str:
    return "[" + ", ".join(str(d) for d in s) + "]"


@dataclass
class _Layer:
    index: int
    op: Operator
    fn: str  # C function name
    summary: str  # one-line description for the comment
    consts: list[str]  # C definitions of arrays and param structs
    body: list[str]  # statements; use {in0}, {in1}, {out} placeholders
    inputs: list[int]  # activation tensor indices used (in order of placeholders)
    output: int
    fallible: bool = False
    macs: int = 0


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
        mult, shift = quantize_multiplier(sc)
        if not -31 <= shift <= -1 or abs(int(fb)) + 128 * int(sa) >= (1 << 30):
            return 0
    return 1


class _Generator:
    def __init__(self, g: _Graph):
        self.g = g
        self.const_names: dict[int, str] = {}
        self.const_defs: list[str] = []
        self.param_count = 0
        self.weight_bytes = 0
        self.counted: set[int] = set()  # bias tensors already counted (emitted folded)

    # Constant tensors are emitted once, under the name of their first user.
    def _const_array(self, t: Tensor, name: str, ctype: str, per_line: int) -> str:
        if t.index in self.const_names:
            return self.const_names[t.index]
        self.const_names[t.index] = name
        self.const_defs.append(
            f"/* {t.name}: {t.type} {_shape(t.shape)} */\n" + _c_array(ctype, name, t.array(), per_line, 16)
        )
        self.param_count += t.num_elements
        self.weight_bytes += t.nbytes
        return name

    def layer(self, i: int, op: Operator) -> _Layer:
        fn = f"layer_{i:02d}_{op.opcode.lower()}"
        return getattr(self, "_" + op.opcode.lower())(i, op, fn)

    def _fused(self, op: Operator) -> int:
        a = int(op.options.get("FusedActivationFunction", 0))
        if a not in _ACTIVATIONS:
            raise _unsupported_activation(a)
        return a

    def _requant_arrays(self, fn: str, scales: list[float]) -> tuple[str, str, list[str]]:
        mult, shift = zip(*(quantize_multiplier(s) for s in scales))
        return (
            f"{fn}_multiplier",
            f"{fn}_shift",
            [
                _c_array("int32_t", f"{fn}_multiplier", np.array(mult), 8, None),
                _c_array("int32_t", f"{fn}_shift", np.array(shift), 16, None),
            ],
        )

    def _folded_bias(
        self, op: Operator, idx: int, fn: str, n: int, input_offset: int, filter_sums: np.ndarray
    ) -> tuple[str, np.ndarray]:
        """The bias the FC/conv kernels take (C name, and the unwrapped values): the model's bias (or 0)
        + input_offset times the sum of each output's filter taps, wrapped to int32 like the reference's accumulator
        (integer addition mod 2^32 is associative, so the sum is bit-exact). The kernels then
        skip the per-MAC `x + input_offset` (see firmware/runtime/tkd_runtime.h)."""
        bias = np.zeros(n, dtype=np.int64)
        what = "no bias"
        if len(op.inputs) > idx and op.inputs[idx] >= 0:
            b = self.g.const(op, op.inputs[idx], ("INT32",), "bias")
            if b.num_elements != n:
                raise TinykdError(
                    f"The bias of {op.opcode} operator #{op.index} has "
                    f"{b.num_elements} values for {n} output channels: the model "
                    "is damaged."
                )
            if b.index not in self.counted:
                self.counted.add(b.index)
                self.param_count += b.num_elements
                self.weight_bytes += b.nbytes
            bias = b.array().reshape(-1).astype(np.int64)
            what = f"{b.name}: INT32 {_shape(b.shape)}"
        sums = np.asarray(filter_sums, dtype=np.int64).reshape(-1)
        folded = (bias + int(input_offset) * sums + (1 << 31)) % (1 << 32) - (1 << 31)
        self.const_defs.append(
            f"/* {what}, plus input offset {input_offset} x filter sums (folded) */\n"
            + _c_array("int32_t", f"{fn}_bias", folded, 8, 16)
        )
        return f"{fn}_bias", bias + int(input_offset) * sums

    def _fully_connected(self, i, op, fn) -> _Layer:
        g = self.g
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
        if accum == 0 or x.num_elements % accum or y.num_elements != x.num_elements // accum * out_depth:
            raise TinykdError(
                f"FULLY_CONNECTED operator #{op.index}: input {_shape(x.shape)}, "
                f"weights {_shape(w.shape)} and output {_shape(y.shape)} do not "
                "fit together; the model is damaged."
            )
        batches = x.num_elements // accum
        per_channel = len(w.scale) > 1
        if per_channel:
            if len(w.scale) != out_depth:
                raise TinykdError(
                    f"FULLY_CONNECTED operator #{op.index} has {len(w.scale)} "
                    f"weight scales for {out_depth} outputs; the model is damaged."
                )
            scales = [x.scale[0] * s / y.scale[0] for s in w.scale]
            filter_offset = 0
        else:
            # GetQuantizedConvolutionMultipler: the product is taken in float32.
            scales = [float(np.float32(x.scale[0]) * np.float32(w.scale[0])) / y.scale[0]]
            filter_offset = -w.zero_point[0]
        mname, sname, defs = self._requant_arrays(fn, scales)
        lo, hi = activation_range(self._fused(op), y.scale[0], y.zero_point[0])
        wname = self._const_array(w, f"{fn}_weights", "int8_t", 16)
        wo = w.array().reshape(out_depth, accum).astype(np.int64) + filter_offset
        bname, fb = self._folded_bias(op, 2, fn, out_depth, -x.zero_point[0], wo.sum(axis=1))
        bounded = short_requant(fb, np.abs(wo).sum(axis=1), scales * (out_depth if len(scales) == 1 else 1))
        defs.append(
            f"static const tkd_fc_params_t {fn}_params = {{\n"
            f"    {batches}, {accum}, {out_depth}, /* batches, accum_depth, output_depth */\n"
            f"    {-x.zero_point[0]}, {filter_offset}, {y.zero_point[0]}, "
            f"/* input, filter, output offsets */\n"
            f"    {lo}, {hi}, /* activation clamp */\n"
            f"    {1 if per_channel else 0}, {mname}, {sname},\n"
            f"    {bounded} /* short requantisation: |acc| < 2^30, right shifts only */\n}};\n"
        )
        act = _ACTIVATIONS[self._fused(op)]
        return _Layer(
            i,
            op,
            fn,
            f"FULLY_CONNECTED {accum} -> {out_depth}"
            f"{' x' + str(batches) if batches > 1 else ''}, "
            f"{'per-channel' if per_channel else 'per-tensor'}, {act}",
            defs,
            [f"tkd_fully_connected_s8(&{fn}_params, {{in0}}, {wname}, {bname}, {{out}});"],
            [x.index],
            y.index,
            macs=batches * accum * out_depth,
        )

    def _conv_common(self, i, op, fn, depthwise: bool) -> _Layer:
        g = self.g
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
                    f"{_shape(w.shape)} does not fit input {_shape(x.shape)} and "
                    f"output {_shape(y.shape)}; the model is damaged."
                )
            mult = oc // ic
        else:
            woc, kh, kw, filter_in_c = w.shape
            if woc != oc or filter_in_c == 0 or ic % filter_in_c or oc % (ic // filter_in_c):
                raise TinykdError(
                    f"CONV_2D operator #{op.index}: filter {_shape(w.shape)} does "
                    f"not fit input {_shape(x.shape)} and output "
                    f"{_shape(y.shape)}; the model is damaged."
                )
            mult = 1
        sh, sw = int(o.get("StrideH", 1)), int(o.get("StrideW", 1))
        dh, dw = int(o.get("DilationHFactor", 1)), int(o.get("DilationWFactor", 1))
        pad = int(o.get("Padding", 0))
        if min(sh, sw, dh, dw) < 1:
            raise TinykdError(
                f"{op.opcode} operator #{op.index} has a stride or dilation below 1; the model is damaged."
            )
        if (out_size(pad, ih, kh, sh, dh), out_size(pad, iw, kw, sw, dw)) != (oh, ow) or y.shape[0] != n:
            raise TinykdError(
                f"{op.opcode} operator #{op.index}: output {_shape(y.shape)} does not "
                f"match input {_shape(x.shape)} with {_PADDING.get(pad)} padding; "
                "the model is damaged."
            )
        ph, pw = pad_before(sh, dh, ih, kh, oh), pad_before(sw, dw, iw, kw, ow)
        qdim = 3 if depthwise else 0
        if len(w.scale) > 1 and (len(w.scale) != oc or w.quantized_dimension != qdim):
            raise TinykdError(
                f"{op.opcode} operator #{op.index} has filter scales along an "
                "unexpected dimension; the model is damaged."
            )
        wscales = list(w.scale) if len(w.scale) > 1 else [w.scale[0]] * oc
        scales = [x.scale[0] * s / y.scale[0] for s in wscales]
        mname, sname, defs = self._requant_arrays(fn, scales)
        lo, hi = activation_range(self._fused(op), y.scale[0], y.zero_point[0])
        wname = self._const_array(w, f"{fn}_filter", "int8_t", 16)
        wa = w.array().reshape(w.shape).astype(np.int64)
        axes = (0, 1, 2) if depthwise else (1, 2, 3)
        bname, fb = self._folded_bias(op, 2, fn, oc, -x.zero_point[0], wa.sum(axis=axes))
        bounded = short_requant(fb, np.abs(wa).sum(axis=axes), scales)
        defs.append(
            f"static const tkd_conv_params_t {fn}_params = {{\n"
            f"    {n}, {ih}, {iw}, {ic}, /* batches, input h, w, c */\n"
            f"    {oh}, {ow}, {oc}, /* output h, w, c */\n"
            f"    {kh}, {kw}, {filter_in_c}, {mult}, /* filter h, w, in_c, depth multiplier */\n"
            f"    {sh}, {sw}, {dh}, {dw}, {ph}, {pw}, /* stride, dilation, padding (h, w) */\n"
            f"    {-x.zero_point[0]}, {y.zero_point[0]}, {lo}, {hi}, "
            f"/* input/output offsets, activation clamp */\n"
            f"    {mname}, {sname},\n"
            f"    {bounded} /* short requantisation: |acc| < 2^30, right shifts only */\n}};\n"
        )
        kern = "tkd_depthwise_conv_s8" if depthwise else "tkd_conv_s8"
        act = _ACTIVATIONS[self._fused(op)]
        macs = n * oh * ow * oc * kh * kw * filter_in_c
        what = f"x{mult} " if depthwise else ""
        return _Layer(
            i,
            op,
            fn,
            f"{op.opcode} {kh}x{kw} {what}{_shape(x.shape)} -> {_shape(y.shape)}, "
            f"stride {sh}x{sw}, {_PADDING.get(pad)}, {act}",
            defs,
            [f"{kern}(&{fn}_params, {{in0}}, {wname}, {bname}, {{out}});"],
            [x.index],
            y.index,
            macs=macs,
        )

    def _conv_2d(self, i, op, fn):
        return self._conv_common(i, op, fn, depthwise=False)

    def _depthwise_conv_2d(self, i, op, fn):
        return self._conv_common(i, op, fn, depthwise=True)

    def _pool(self, i, op, fn, avg: bool) -> _Layer:
        g = self.g
        x, y = g.act(op, op.inputs[0]), g.act(op, op.outputs[0])
        o = op.options
        if len(x.shape) != 4 or len(y.shape) != 4 or x.shape[3] != y.shape[3] or x.shape[0] != y.shape[0]:
            raise TinykdError(
                f"{op.opcode} operator #{op.index} needs matching 4-D NHWC tensors; the model is damaged."
            )
        n, ih, iw, c = x.shape
        _, oh, ow, _ = y.shape
        kh, kw = int(o.get("FilterHeight", 1)), int(o.get("FilterWidth", 1))
        sh, sw = int(o.get("StrideH", 1)), int(o.get("StrideW", 1))
        pad = int(o.get("Padding", 0))
        if min(kh, kw, sh, sw) < 1 or (out_size(pad, ih, kh, sh), out_size(pad, iw, kw, sw)) != (oh, ow):
            raise TinykdError(
                f"{op.opcode} operator #{op.index}: output {_shape(y.shape)} does not "
                f"match input {_shape(x.shape)}; the model is damaged."
            )
        ph, pw = pad_before(sh, 1, ih, kh, oh), pad_before(sw, 1, iw, kw, ow)
        lo, hi = activation_range(self._fused(op), y.scale[0], y.zero_point[0])
        defs = [
            f"static const tkd_pool_params_t {fn}_params = {{\n"
            f"    {n}, {ih}, {iw}, {c}, {oh}, {ow}, /* batches, input h, w, c, output h, w */\n"
            f"    {kh}, {kw}, {sh}, {sw}, {ph}, {pw}, /* filter, stride, padding (h, w) */\n"
            f"    {lo}, {hi} /* activation clamp */\n}};\n"
        ]
        act = _ACTIVATIONS[self._fused(op)]
        summary = (
            f"{op.opcode} {kh}x{kw} {_shape(x.shape)} -> {_shape(y.shape)}, stride "
            f"{sh}x{sw}, {_PADDING.get(pad)}, {act}"
        )
        if avg:
            body = [f"return tkd_avg_pool_s8(&{fn}_params, {{in0}}, {{out}});"]
        else:
            body = [f"tkd_max_pool_s8(&{fn}_params, {{in0}}, {{out}});"]
        return _Layer(i, op, fn, summary, defs, body, [x.index], y.index, fallible=avg)

    def _average_pool_2d(self, i, op, fn):
        return self._pool(i, op, fn, avg=True)

    def _max_pool_2d(self, i, op, fn):
        return self._pool(i, op, fn, avg=False)

    def _add(self, i, op, fn) -> _Layer:
        g = self.g
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
                args.append(self._const_array(t, f"{fn}_operand{k + 1}", "int8_t", 16))
            else:
                t = g.act(op, ti)
                args.append(f"{{in{len(acts)}}}")
                acts.append(ti)
            operands.append(t)
        if not acts:
            raise TinykdError(
                f"ADD operator #{op.index} adds two constants; the converter "
                "should have folded it. Convert the model again."
            )
        a, b = operands
        if max(len(a.shape), len(b.shape), len(y.shape)) > 4:
            raise TinykdError(
                f"ADD operator #{op.index} has tensors of more than 4 dimensions; "
                "the tinykd runtime broadcasts up to 4-D. Reshape in the model."
            )
        dims = [1] * (4 - len(y.shape)) + list(y.shape)

        def strides(t: Tensor) -> list[int]:
            s = [1] * (4 - len(t.shape)) + list(t.shape)
            out, step = [0] * 4, 1
            for d in range(3, -1, -1):
                if s[d] == dims[d]:
                    out[d] = step if s[d] != 1 else 0
                elif s[d] == 1:
                    out[d] = 0
                else:
                    raise TinykdError(
                        f"ADD operator #{op.index}: shapes {_shape(a.shape)} and "
                        f"{_shape(b.shape)} do not broadcast to {_shape(y.shape)}; "
                        "the model is damaged."
                    )
                step *= s[d]
            return out

        s1, s2 = strides(a), strides(b)
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
        lo, hi = activation_range(self._fused(op), y.scale[0], y.zero_point[0])
        defs = [
            f"static const tkd_add_params_t {fn}_params = {{\n"
            f"    {{{', '.join(map(str, dims))}}}, /* output dims (4-D) */\n"
            f"    {{{', '.join(map(str, s1))}}}, /* input 1 strides */\n"
            f"    {{{', '.join(map(str, s2))}}}, /* input 2 strides */\n"
            f"    {-a.zero_point[0]}, {-b.zero_point[0]}, {y.zero_point[0]}, {ADD_LEFT_SHIFT}, "
            f"/* offsets, left shift */\n"
            f"    {m1}, {sh1}, {m2}, {sh2}, {mo}, {sho}, /* multipliers, shifts */\n"
            f"    {lo}, {hi} /* activation clamp */\n}};\n"
        ]
        act = _ACTIVATIONS[self._fused(op)]
        return _Layer(
            i,
            op,
            fn,
            f"ADD {_shape(a.shape)} + {_shape(b.shape)} -> {_shape(y.shape)}, {act}",
            defs,
            [f"tkd_add_s8(&{fn}_params, {args[0]}, {args[1]}, {{out}});"],
            acts,
            y.index,
        )

    def _softmax(self, i, op, fn) -> _Layer:
        g = self.g
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
        depth = x.shape[-1]
        outer = x.num_elements // depth
        int_bits = 5
        real = min(beta * x.scale[0] * (1 << (31 - int_bits)), (1 << 31) - 1.0)
        mult, left = quantize_multiplier(real)
        if left < 0:
            raise TinykdError(
                f"SOFTMAX operator #{op.index}: beta x input scale is too small "
                "for TFLite's int8 softmax. Convert the model again."
            )
        radius = math.floor(((1 << int_bits) - 1) * float(1 << (31 - int_bits)) / float(1 << left))
        diff_min = -radius
        defs = [
            f"static const tkd_softmax_params_t {fn}_params = {{\n"
            f"    {outer}, {depth}, /* rows, row length */\n"
            f"    {mult}, {left}, {diff_min} /* input multiplier, left shift, diff_min */\n}};\n"
        ]
        return _Layer(
            i,
            op,
            fn,
            f"SOFTMAX {_shape(x.shape)}, beta {beta:g}",
            defs,
            [f"tkd_softmax_s8(&{fn}_params, {{in0}}, {{out}});"],
            [x.index],
            y.index,
        )

    def _quantize(self, i, op, fn) -> _Layer:
        g = self.g
        x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
        if x.type != "INT8":
            raise TinykdError(
                f"QUANTIZE operator #{op.index} converts {x.type} inside the model; "
                "the tinykd runtime only takes a float input through a QUANTIZE at "
                "the very start. Convert the model to full int8."
            )
        x, y = g.act(op, op.inputs[0]), g.act(op, op.outputs[0])
        m, s = quantize_multiplier(x.scale[0] / y.scale[0])
        return _Layer(
            i,
            op,
            fn,
            f"QUANTIZE int8 {_shape(x.shape)}: scale {x.scale[0]:.6g} -> {y.scale[0]:.6g}",
            [],
            [f"tkd_requantize_s8({{in0}}, {{out}}, {x.num_elements}, {x.zero_point[0]}, {y.zero_point[0]}, {m}, {s});"],
            [x.index],
            y.index,
        )

    def _dequantize(self, i, op, fn):
        raise TinykdError(
            f"DEQUANTIZE operator #{op.index} is inside the model; the tinykd "
            "runtime only accepts DEQUANTIZE as the very last operator (its float "
            "output is left to the caller). Convert the model to full int8."
        )

    def _reshape(self, i, op, fn) -> _Layer:
        g = self.g
        x, y = g.act(op, op.inputs[0]), g.act(op, op.outputs[0])
        if x.num_elements != y.num_elements:
            raise TinykdError(f"RESHAPE operator #{op.index} changes the element count; the model is damaged.")
        if (x.scale[0], x.zero_point[0]) != (y.scale[0], y.zero_point[0]):
            raise TinykdError(f"RESHAPE operator #{op.index} changes quantisation; the model is damaged.")
        return _Layer(
            i,
            op,
            fn,
            f"RESHAPE {_shape(x.shape)} -> {_shape(y.shape)}",
            [],
            [f"tkd_copy({{in0}}, {{out}}, {x.nbytes});"],
            [x.index],
            y.index,
        )


# ---- memory planning ----------------------------------------------------------------------------


def _plan(layers: list[_Layer], g: _Graph):
    """Place tensors. Returns (tensor -> C location, arena bytes, layers that are pure aliases,
    plan entries (tensor, root, offset, bytes, first layer, last layer))."""
    # Alias groups: a RESHAPE output shares its input's storage unless it is the model output.
    group: dict[int, int] = {}
    alias_layers: set[int] = set()

    def root(t: int) -> int:
        while group.get(t, t) != t:
            t = group[t]
        return t

    for L in layers:
        if L.op.opcode == "RESHAPE" and L.output != g.output:
            group[L.output] = root(L.inputs[0])
            alias_layers.add(L.index)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    size: dict[int, int] = {}
    for k, L in enumerate(layers):
        for t in L.inputs + [L.output]:
            r = root(t)
            first[r] = min(first.get(r, k), k)
            last[r] = max(last.get(r, k), k)
            size[r] = max(size.get(r, 0), g.tensor(t).nbytes)
    loc: dict[int, str] = {}
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    order = sorted((r for r in size if r not in (g.input, g.output)), key=lambda r: (-size[r], first[r], r))
    arena = 0
    offsets: dict[int, int] = {}
    for r in order:
        busy = sorted((o, s) for o, s, f, end in placed if not (end < first[r] or f > last[r]))
        off = 0
        for o, s in busy:
            if off + size[r] <= o:
                break
            off = max(off, (o + s + ARENA_ALIGN - 1) // ARENA_ALIGN * ARENA_ALIGN)
        placed.append((off, size[r], first[r], last[r]))
        offsets[r] = off
        arena = max(arena, off + size[r])
    entries = {}
    for L in layers:
        for t in L.inputs + [L.output]:
            r = root(t)
            if r in offsets and t != g.output:
                entries[t] = (t, r, offsets[r], g.tensor(t).nbytes, first[r], last[r])
            if r == g.input:
                loc[t] = "input"
            elif t == g.output:
                loc[t] = "output"
            elif r == g.output:  # a RESHAPE of the model output reads the caller's buffer
                loc[t] = "output"
            else:
                loc[t] = f"arena + {offsets[r]}" if offsets[r] else "arena"
    arena = (arena + 15) // 16 * 16
    return loc, arena, alias_layers, [entries[t] for t in sorted(entries)]


# ---- the two files ------------------------------------------------------------------------------


def _header(src: ModelSources, in_t: Tensor, out_t: Tensor) -> str:
    return f"""/* Generated by tinykd from {src.name}.tflite (sha256 {src.sha256[:16]}...). Do not edit.
 * Input  {_shape(src.input_shape)} int8, scale {src.input_scale:.9g}, zero point {src.input_zero_point}
 * Output {_shape(src.output_shape)} int8, scale {src.output_scale:.9g}, zero point {src.output_zero_point}
 * Arena  {src.arena_bytes} bytes (all activation tensors together: {src.activations_total_bytes} bytes);
 *        {src.param_count} parameters in {src.weight_bytes} bytes of const data; {src.macs} MACs.
 */
#ifndef TKD_MODEL_H
#define TKD_MODEL_H
#include <stdint.h>

#define TKD_MODEL_INPUT_BYTES   {in_t.num_elements}      /* int8 elements of the single input tensor */
#define TKD_MODEL_OUTPUT_BYTES  {out_t.num_elements}
#define TKD_MODEL_ARENA_BYTES   {src.arena_bytes}
#define TKD_MODEL_INPUT_SCALE   {_c_float(src.input_scale)}
#define TKD_MODEL_INPUT_ZERO_POINT  {src.input_zero_point}
#define TKD_MODEL_OUTPUT_SCALE  {_c_float(src.output_scale)}
#define TKD_MODEL_OUTPUT_ZERO_POINT {src.output_zero_point}
#define TKD_MODEL_NAME {_c_string(src.name)}

#ifdef __cplusplus
extern "C" {{
#endif

extern const uint8_t tkd_model_hash[8];   /* first 8 bytes of SHA-256 of the .tflite file */

/* Runs the model. Returns 0 on success. input and output may live anywhere (not in the arena). */
int tkd_model_invoke(const int8_t *input, int8_t *output);

#ifdef __cplusplus
}}
#endif
#endif /* TKD_MODEL_H */
"""


def generate_model_sources(tflite_path: str | Path, out_dir: str | Path) -> ModelSources:
    """Write model.h and model.c for the int8 model in `tflite_path` into `out_dir`."""
    tflite_path = Path(tflite_path)
    m = read_tflite(tflite_path)
    g = _Graph(m)
    gen = _Generator(g)
    layers = [gen.layer(k, op) for k, op in enumerate(g.ops)]
    loc, arena_bytes, alias_layers, plan = _plan(layers, g)
    in_t, out_t = g.tensor(g.input), g.tensor(g.output)
    produced = {L.output for L in layers}
    if g.output not in produced:
        raise TinykdError(
            f"The output tensor of {tflite_path.name} is not computed by any operator. Convert the model again."
        )
    acts = {t for L in layers for t in L.inputs + [L.output]}
    name = tflite_path.stem
    src = ModelSources(
        model_c=Path(out_dir) / "model.c",
        model_h=Path(out_dir) / "model.h",
        name=name,
        sha256=m.sha256,
        input_shape=tuple(in_t.shape),
        output_shape=tuple(out_t.shape),
        input_scale=in_t.scale[0],
        input_zero_point=in_t.zero_point[0],
        output_scale=out_t.scale[0],
        output_zero_point=out_t.zero_point[0],
        arena_bytes=arena_bytes,
        activations_total_bytes=sum(g.tensor(t).nbytes for t in acts),
        weight_bytes=gen.weight_bytes,
        param_count=gen.param_count,
        macs=sum(L.macs for L in layers),
        ops=[L.op.opcode for L in layers],
        arena_plan=plan,
        notes=list(g.notes),
    )

    c: list[str] = []
    c.append(f"""/* Generated by tinykd from {name}.tflite. Do not edit: regenerate with `tinykd firmware`.
 *
 * sha256      {m.sha256}
 * input       {_shape(src.input_shape)} int8, scale {src.input_scale:.9g}, zero point {src.input_zero_point}
 * output      {_shape(src.output_shape)} int8, scale {src.output_scale:.9g}, zero point {src.output_zero_point}
 * parameters  {src.param_count} ({src.weight_bytes} bytes of int8 weights and int32 biases)
 * MACs        {src.macs} per inference
 * arena       {src.arena_bytes} bytes (sum of all activation tensors: {src.activations_total_bytes}
 *             bytes; input and output stay in the caller's buffers)
 * runtime     firmware/runtime ({len(layers)} layers, int8, bit-exact with TFLite Micro)
""")
    for note in g.notes:
        c.append(f" * note        {note}\n")
    c.append(" *\n * Layers:\n")
    for L in layers:
        c.append(f" *   {L.index:2d} {L.summary}\n")
    c.append(' */\n#include <stddef.h>\n#include <stdint.h>\n\n#include "model.h"\n#include "tkd_runtime.h"\n\n')
    h = bytes.fromhex(m.sha256[:16])
    c.append("const uint8_t tkd_model_hash[8] = {" + ", ".join(f"0x{b:02x}" for b in h) + "};\n\n")
    if arena_bytes:
        c.append(
            "/* Activations, placed by lifetime (offsets below). */\n"
            "static int8_t arena[TKD_MODEL_ARENA_BYTES] TKD_ALIGN(16);\n\n"
        )

    c.append("/* ---- weights and biases ---- */\n\n")
    c.extend(d + "\n" for d in gen.const_defs)
    c.append("/* ---- layers ---- */\n\n")
    calls = []
    for L in layers:
        in_loc = [loc[t] for t in L.inputs]
        out_loc = loc[L.output]
        tdesc = ", ".join(f"t{t} {_shape(g.tensor(t).shape)} @ {loc[t]}" for t in L.inputs)
        head = (
            f"/* Layer {L.index}: {L.summary}.\n * in: {tdesc}; "
            f"out: t{L.output} {_shape(g.tensor(L.output).shape)} @ {out_loc}"
        )
        if L.index in alias_layers:
            c.append(head + "\n * In place: the output is the same bytes as the input, no code. */\n\n")
            continue
        c.append(head + " */\n")
        c.extend(L.consts)
        uses_in, uses_out = "input" in in_loc, out_loc == "output"
        args = (["const int8_t *input"] if uses_in else []) + (["int8_t *output"] if uses_out else [])
        c.append(f"static {'int' if L.fallible else 'void'} {L.fn}({', '.join(args) or 'void'})\n{{\n")
        fmt = {f"in{k}": v for k, v in enumerate(in_loc)}
        fmt["out"] = out_loc
        for stmt in L.body:
            c.append("    " + stmt.format(**fmt) + "\n")
        c.append("}\n\n")
        call_args = ", ".join((["input"] if uses_in else []) + (["output"] if uses_out else []))
        if L.fallible:
            calls.append(f"    if ({L.fn}({call_args}) != 0) {{\n        return {L.index + 1};\n    }}\n")
        else:
            calls.append(f"    {L.fn}({call_args});\n")
    c.append(
        "/* Runs the layers in order. Returns 0, or 1 + the index of a layer that failed. */\n"
        "int tkd_model_invoke(const int8_t *input, int8_t *output)\n{\n"
    )
    c.extend(calls)
    c.append("    (void)input;\n    (void)output;\n    return 0;\n}\n")
    out_dir = Path(out_dir)
    fileio.write_text(src.model_h, _header(src, in_t, out_t))
    fileio.write_text(src.model_c, "".join(c))
    return src
