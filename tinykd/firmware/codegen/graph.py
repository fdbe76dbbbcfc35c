"""The model graph as the code generator sees it: one subgraph, supported operators only, one
int8 input and one int8 output, float boundary QUANTIZE/DEQUANTIZE peeled off. Every check
raises a TinykdError that names the tensor or operator and says what to do."""

from __future__ import annotations

import math

import numpy as np

from tinykd.errors import TinykdError
from tinykd.firmware.tflite_model import Operator, Tensor, TfliteModel

from .ops import SUPPORTED_OPS

# (required inputs, optional inputs after them) of every supported operator; each has one output.
ARITY = {
    "ADD": (2, 0),
    "AVERAGE_POOL_2D": (1, 0),
    "CONV_2D": (2, 1),
    "DEPTHWISE_CONV_2D": (2, 1),
    "DEQUANTIZE": (1, 0),
    "FULLY_CONNECTED": (2, 1),
    "MAX_POOL_2D": (1, 0),
    "QUANTIZE": (1, 0),
    "RESHAPE": (1, 1),
    "SOFTMAX": (1, 0),
}
# The options table each operator reads (TFLite Micro reads a missing or mismatched table as
# all zeros: stride 0, no filter size, beta 0): (type, required).
OPTIONS = {
    "ADD": ("AddOptions", False),
    "AVERAGE_POOL_2D": ("Pool2DOptions", True),
    "CONV_2D": ("Conv2DOptions", True),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", True),
    "FULLY_CONNECTED": ("FullyConnectedOptions", False),
    "MAX_POOL_2D": ("Pool2DOptions", True),
    "RESHAPE": ("ReshapeOptions", False),
    "SOFTMAX": ("SoftmaxOptions", True),
}
# No tensor of a microcontroller model comes near this; a bigger one is a damaged shape (and
# the runtime counts elements in int32).
MAX_TENSOR_BYTES = 1 << 28
# The smallest activation scale: TFLite turns RELU6's 6.0 / scale into an int32 clamp bound,
# which overflows below 6 / 2^31 (and no real model comes near: 256 steps of 2^-28 span 1e-6).
MIN_ACT_SCALE = 2.0**-28
# The largest filter size, stride or dilation of a conv/pool (a filter width of 2^20 on a
# 5-pixel row ran differently in TFLite Micro and here).
MAX_WINDOW = 1024


class Graph:
    """The model with its tensors checked, boundary QUANTIZE/DEQUANTIZE peeled off."""

    def __init__(self, m: TfliteModel):
        self.m = m
        self.t = m.tensors
        self.notes: list[str] = []
        if m.num_subgraphs != 1:
            raise TinykdError(
                f"{m.path.name} has {m.num_subgraphs} subgraphs (control flow such as WHILE or "
                "IF); the tinykd runtime runs single-graph models only. Remove the control flow "
                "from the model, or run it with TensorFlow Lite Micro itself."
            )
        supported = ", ".join(SUPPORTED_OPS)
        for op in m.operators:
            if op.opcode not in SUPPORTED_OPS:
                raise TinykdError(
                    f"{m.path.name} uses the operator {op.opcode} (operator #{op.index}), which "
                    f"the tinykd runtime does not support. Supported operators: "
                    f"{supported}. Replace that layer in the model (e.g. tanh/sigmoid "
                    "by ReLU) and convert it again, or run it with TensorFlow Lite Micro itself."
                )
        for op in m.operators:
            self._check_arity(op)
            self._check_options(op)
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
            self._check_boundary(first, self.input, first.outputs[0])
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
            self._check_boundary(last, last.inputs[0], self.output)
            self.output = last.inputs[0]
            self.notes.append("float output: the boundary DEQUANTIZE is left to the caller")
        if not self.ops:
            raise TinykdError(
                f"{m.path.name} only converts between float and int8; there is no layer to run. Export the real model."
            )
        for ti in (self.input, self.output):
            self._check_act(ti, "the model input" if ti == self.input else "the model output")
        self._check_order()

    def _check_boundary(self, op: Operator, src: int, dst: int) -> None:
        """A peeled QUANTIZE/DEQUANTIZE is the caller's: the float tensor the caller sees and the
        int8 tensor the model runs on must have the same shape."""
        a, b = self.t[src], self.t[dst]
        if a.shape != b.shape:
            raise self._damaged(
                f"the boundary {op.opcode} operator #{op.index} turns {a.type} {list(a.shape)} into "
                f"{b.type} {list(b.shape)}: a conversion between float and int8 keeps the shape"
            )

    def _damaged(self, what: str) -> TinykdError:
        return TinykdError(
            f"{self.m.path.name}: {what}. The file is damaged or was not written by the TFLite "
            "converter; convert the model again (e.g. with `tinykd convert`)."
        )

    def _check_arity(self, op: Operator) -> None:
        if op.opcode not in ARITY:  # an operator added to ops/ without an entry here
            return
        need, optional = ARITY[op.opcode]
        if not need <= len(op.inputs) <= need + optional or len(op.outputs) != 1:
            raise self._damaged(
                f"{op.opcode} operator #{op.index} has {len(op.inputs)} inputs and {len(op.outputs)} "
                f"outputs, where it takes {need}{f'-{need + optional}' if optional else ''} inputs and 1 output"
            )
        for k, ti in enumerate(op.inputs[:need]):
            if ti < 0:
                raise self._damaged(f"input {k + 1} of {op.opcode} operator #{op.index} is missing (tensor -1)")

    def _check_options(self, op: Operator) -> None:
        if op.opcode not in OPTIONS:
            return
        want, required = OPTIONS[op.opcode]
        if op.options_type == want or (not op.options_type and not required):
            return
        have = f"options of type {op.options_type}" if op.options_type else "no options"
        raise self._damaged(f"{op.opcode} operator #{op.index} has {have}, where it needs {want}")

    def _check_order(self) -> None:
        """Every operator reads only the model input, constants and tensors computed by an
        earlier operator, and computes a tensor nobody else computes (no cycles, no tensor used
        before it is produced, no constant or the model input overwritten)."""
        produced = {self.input}
        for op in self.ops:
            for ti in op.inputs:
                if ti >= 0 and not self.t[ti].is_constant and ti not in produced:
                    raise self._damaged(
                        f"{op.opcode} operator #{op.index} reads tensor {ti} ({self.t[ti].name!r}) before any "
                        "operator computes it (operators out of order, or a cycle in the graph)"
                    )
            ti = op.outputs[0]
            t = self.t[ti]
            if t.is_constant or ti in produced:
                what = "a constant" if t.is_constant else "a tensor that is already computed (or the model input)"
                raise self._damaged(f"{op.opcode} operator #{op.index} writes {what}: tensor {ti} ({t.name!r})")
            produced.add(ti)

    def _uses(self, ti: int) -> int:
        return sum(op.inputs.count(ti) for op in self.m.operators)

    def tensor(self, ti: int) -> Tensor:
        return self.t[ti]

    def _check_quant(self, t: Tensor, what: str) -> None:
        """Scales finite and positive, one zero point per scale, int8 zero points in int8."""
        bad = [s for s in t.scale if not (math.isfinite(s) and s > 0)]
        if bad or len(t.zero_point) != len(t.scale):
            raise TinykdError(
                f"Tensor {t.name!r} ({what}) has invalid quantisation: scales {list(t.scale)[:4]}"
                f"{'...' if len(t.scale) > 4 else ''} ({len(t.scale)}), zero points "
                f"{list(t.zero_point)[:4]}{'...' if len(t.zero_point) > 4 else ''} ({len(t.zero_point)}); "
                "every scale must be a finite positive number, with one zero point each. The file is "
                "damaged: convert the model again with full-integer quantisation."
            )
        if t.type == "INT8" and any(not -128 <= z <= 127 for z in t.zero_point):
            raise TinykdError(
                f"Tensor {t.name!r} ({what}) is int8 but has a zero point outside -128..127 "
                f"({[z for z in t.zero_point if not -128 <= z <= 127][0]}). The file is damaged: convert the "
                "model again."
            )

    def _check_size(self, t: Tensor, what: str) -> None:
        if t.num_elements == 0:
            raise TinykdError(
                f"Tensor {t.name!r} ({what}) has no elements (shape {list(t.shape)}); the tinykd runtime "
                "needs every tensor to hold data. The file is damaged, or the model has an empty layer: "
                "convert the model again."
            )
        if t.num_elements * (t.itemsize if t.type in ("INT8", "INT32") else 4) > MAX_TENSOR_BYTES:
            raise TinykdError(
                f"Tensor {t.name!r} ({what}) has shape {list(t.shape)}, over {MAX_TENSOR_BYTES >> 20} MiB: "
                "more than any microcontroller holds. The file is damaged or not a microcontroller "
                "model; convert a smaller model."
            )

    def _check_act(self, ti: int, what: str) -> Tensor:
        t = self.t[ti]
        self._check_size(t, what)
        if t.type != "INT8":
            raise TinykdError(
                f"Tensor {t.name!r} ({what}) is {t.type}; the tinykd runtime runs full-int8 "
                "models only (int8 activations, input and output). This looks like a float or "
                "hybrid model: convert with a representative dataset, "
                "supported_ops=[TFLITE_BUILTINS_INT8] and inference_input_type/"
                "inference_output_type=tf.int8 (`tinykd convert` does this)."
            )
        if len(t.scale) != 1:
            raise TinykdError(
                f"Tensor {t.name!r} ({what}) has no per-tensor quantisation (scale "
                f"{list(t.scale)}). Convert the model with full-integer quantisation."
            )
        self._check_quant(t, what)
        if t.scale[0] < MIN_ACT_SCALE:
            raise TinykdError(
                f"Tensor {t.name!r} ({what}) has the scale {t.scale[0]:g}, below {MIN_ACT_SCALE:g}: its "
                "activation range does not fit int32 (no real model has such a scale). The file is damaged: "
                "convert the model again."
            )
        if t.is_constant:
            raise TinykdError(
                f"Tensor {t.name!r} ({what}) is a constant where the runtime needs "
                "an activation. Convert the model again with the TFLite converter (constants folded)."
            )
        return t

    def check_multipliers(self, op: Operator, multipliers) -> None:
        """The real requantisation multipliers (input scale x weight scale / output scale) of
        `op` must be below 2^31: TFLite's and the runtime's left shift of the accumulator is at
        most 31 bits (a bigger one is undefined behaviour in both). Only damaged scales (e.g.
        1e38) come near."""
        bad = [m for m in multipliers if not (math.isfinite(m) and 0 <= m < 2.0**31)]
        if bad:
            raise TinykdError(
                f"{op.opcode} operator #{op.index} needs the requantisation multiplier {bad[0]:g} (its input, "
                "weight and output scales together), outside what TFLite's int8 arithmetic can shift "
                "(below 2^31). The scales in the file are damaged: convert the model again."
            )

    def check_accumulators(self, op: Operator, folded_bias, abs_filter_sums) -> None:
        """Every int32 accumulator the kernel can form must fit: |folded bias| + 128 * sum|w|
        < 2^31 per output channel (inputs are int8, |x| <= 128). Real biases are far smaller;
        a bias near 2^31 (a damaged file) would overflow int32 in the runtime and in TFLite."""
        fb = np.abs(np.asarray(folded_bias, dtype=object).reshape(-1))
        sa = np.asarray(abs_filter_sums, dtype=np.int64).reshape(-1)
        worst = max((int(b) + 128 * int(a) for b, a in zip(fb, sa)), default=0)
        if worst >= 1 << 31:
            raise TinykdError(
                f"{op.opcode} operator #{op.index} can form accumulators up to {worst} (its bias plus "
                "its weights times the input range), beyond int32: the bias values in the file are "
                "damaged. Convert the model again."
            )

    def check_window(self, op: Operator, **params: int) -> None:
        """Filter sizes, strides and dilations of conv/pool operators: 1..MAX_WINDOW."""
        for name, v in params.items():
            if not 1 <= v <= MAX_WINDOW:
                raise TinykdError(
                    f"{op.opcode} operator #{op.index} has {name} {v}; tinykd takes 1 to {MAX_WINDOW} (no "
                    "microcontroller image axis is longer). The file is damaged: convert the model again."
                )

    def act(self, op: Operator, ti: int) -> Tensor:
        return self._check_act(ti, f"{op.opcode} operator #{op.index}")

    def const(self, op: Operator, ti: int, types: tuple[str, ...], what: str) -> Tensor:
        t = self.t[ti]
        if not t.is_constant:
            raise TinykdError(
                f"The {what} of {op.opcode} operator #{op.index} ({t.name!r}) is not a constant; "
                "the tinykd runtime needs constant weights. Convert the model with its weights as "
                "constants (a Keras model saved after training, then the TFLite converter)."
            )
        if t.type not in types:
            raise TinykdError(
                f"The {what} of {op.opcode} operator #{op.index} ({t.name!r}) is {t.type}; the "
                f"tinykd runtime needs {' or '.join(types)}. Convert the model to full int8 "
                "(int8 weights, int32 biases)."
            )
        self._check_size(t, f"the {what} of {op.opcode} operator #{op.index}")
        if t.type == "INT8":
            if not t.scale:
                raise TinykdError(
                    f"The {what} of {op.opcode} operator #{op.index} ({t.name!r}) is int8 without "
                    "quantisation parameters. Convert the model with full-integer quantisation."
                )
            self._check_quant(t, f"the {what} of {op.opcode} operator #{op.index}")
        t.array()  # checks the data length
        return t
