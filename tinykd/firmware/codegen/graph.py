"""The model graph as the code generator sees it: one subgraph, supported operators only, one
int8 input and one int8 output, float boundary QUANTIZE/DEQUANTIZE peeled off. Every check
raises a TinykdError that names the tensor or operator and says what to do."""

from __future__ import annotations

from tinykd.errors import TinykdError
from tinykd.firmware.tflite_model import Operator, Tensor, TfliteModel

from .ops import SUPPORTED_OPS


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
                "an activation. Convert the model again with the TFLite converter (constants folded)."
            )
        return t

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
        t.array()  # checks the data length
        return t
