"""What an operator's emitter returns (`Layer`) and what it works with (`EmitContext`: the
checked graph, and the model's constant arrays emitted so far).

An emitter is `emit(ctx, index, op, fn) -> Layer` (see ops/__init__.py for the registry):
it checks the operator, computes its constants with quant.py, adds weight arrays through
the context and returns the layer's C: constant definitions and body statements in which
{in0}, {in1} and {out} stand for the tensors' locations (filled in once the arena is planned).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tinykd.errors import TinykdError
from tinykd.firmware.tflite_model import Operator, Tensor

from .cfmt import c_array, comment_text, shape
from .quant import ACTIVATIONS, quantize_multiplier, unsupported_activation

if TYPE_CHECKING:
    from .graph import Graph


@dataclass
class Layer:
    index: int
    op: Operator
    fn: str  # C function name
    summary: str  # one-line description for the comments
    consts: list[str]  # C definitions of the layer's own arrays and params struct
    body: list[str]  # statements; {in0}, {in1}, {out} stand for the tensors' locations
    inputs: list[int]  # activation tensors read (in the order of the {inK} placeholders)
    output: int
    fallible: bool = False  # the body returns the kernel's status
    macs: int = 0
    in_place: bool = False  # the output may be the input's bytes (RESHAPE): no code then


@dataclass
class EmitContext:
    g: Graph
    const_names: dict[int, str] = field(default_factory=dict)
    const_defs: list[str] = field(default_factory=list)
    param_count: int = 0
    weight_bytes: int = 0
    counted: set[int] = field(default_factory=set)  # bias tensors already counted (emitted folded)

    def fused_activation(self, op: Operator) -> int:
        a = int(op.options.get("FusedActivationFunction", 0))
        if a not in ACTIVATIONS:
            raise unsupported_activation(a)
        return a

    def activation_name(self, op: Operator) -> str:
        return ACTIVATIONS[self.fused_activation(op)]

    def const_array(self, t: Tensor, name: str, ctype: str, per_line: int) -> str:
        """The C name of constant tensor `t`, emitted once under the name of its first user."""
        if t.index in self.const_names:
            return self.const_names[t.index]
        self.const_names[t.index] = name
        self.const_defs.append(
            f"/* {comment_text(t.name)}: {t.type} {shape(t.shape)} */\n" + c_array(ctype, name, t.array(), per_line, 16)
        )
        self.param_count += t.num_elements
        self.weight_bytes += t.nbytes
        return name

    @staticmethod
    def requant_arrays(fn: str, scales: list[float]) -> tuple[str, str, list[str]]:
        """Per-channel multiplier and shift arrays for `scales`: (names, C definitions)."""
        mult, shift = zip(*(quantize_multiplier(s) for s in scales))
        return (
            f"{fn}_multiplier",
            f"{fn}_shift",
            [
                c_array("int32_t", f"{fn}_multiplier", np.array(mult), 8, None),
                c_array("int32_t", f"{fn}_shift", np.array(shift), 16, None),
            ],
        )

    def folded_bias(
        self, op: Operator, idx: int, fn: str, n: int, input_offset: int, filter_sums: np.ndarray
    ) -> tuple[str, np.ndarray]:
        """The bias the FC/conv kernels take (C name, and the unwrapped values): the model's bias
        (or 0) + input_offset times the sum of each output's filter taps, wrapped to int32 like
        the reference's accumulator (integer addition mod 2^32 is associative, so the sum is
        bit-exact). The kernels then skip the per-MAC `x + input_offset` (see
        firmware/runtime/tkd_runtime.h)."""
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
            what = f"{comment_text(b.name)}: INT32 {shape(b.shape)}"
        sums = np.asarray(filter_sums, dtype=np.int64).reshape(-1)
        folded = (bias + int(input_offset) * sums + (1 << 31)) % (1 << 32) - (1 << 31)
        self.const_defs.append(
            f"/* {what},\n * plus input offset {input_offset} x filter sums (folded). */\n"
            + c_array("int32_t", f"{fn}_bias", folded, 8, 16)
        )
        return f"{fn}_bias", bias + int(input_offset) * sums
