"""Run models on the host and turn their outputs into errors, accuracy and confusion matrices."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm


@dataclass
class ClassificationResult:
    name: str
    errors: int
    total: int
    confusion: list[list[int]]  # rows: true class, columns: predicted class

    @property
    def accuracy(self) -> float:
        return 1.0 - self.errors / self.total if self.total else 0.0

    def per_class_accuracy(self) -> list[float]:
        m = np.asarray(self.confusion)
        return [float(m[i, i] / m[i].sum()) if m[i].sum() else 0.0 for i in range(len(m))]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "errors": self.errors,
            "total": self.total,
            "accuracy": round(self.accuracy, 6),
            "per_class_accuracy": [round(a, 6) for a in self.per_class_accuracy()],
            "confusion": self.confusion,
        }


def classification_result(name: str, scores: np.ndarray, labels: np.ndarray, num_classes: int) -> ClassificationResult:
    predicted = np.argmax(scores, axis=-1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    return ClassificationResult(name, int((predicted != labels).sum()), int(len(labels)), confusion.tolist())


def predict_logits(model, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    return model.predict(x, batch_size=batch_size, verbose=0)


def int8_outputs_litert(tflite_path: str | Path, x_int8: np.ndarray, label: str = "LiteRT int8") -> np.ndarray:
    """Outputs of the int8 model in LiteRT (the TensorFlow Lite runtime), one sample at a time.

    Built-in kernels without the XNNPACK delegate: deterministic on every machine. They are
    not TFLite Micro's reference kernels, and their requantisation rounds differently, so a
    few outputs may differ from TFLite Micro by one step (the report counts them).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(tflite_path),
        num_threads=1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    outputs = np.empty((len(x_int8), *out["shape"][1:]), dtype=np.int8)
    for i in tqdm(range(len(x_int8)), desc=label, unit="sample", mininterval=1.0, leave=False):
        interpreter.set_tensor(inp["index"], x_int8[i : i + 1].reshape(inp["shape"]))
        interpreter.invoke()
        outputs[i] = interpreter.get_tensor(out["index"])[0]
    return outputs


@dataclass(frozen=True)
class ModelIo:
    """A .tflite's input and output as the device sees them: int8 tensors with their scale and
    zero point. float_input / float_output: the .tflite itself takes / gives float32 through a
    boundary QUANTIZE / DEQUANTIZE (the code generator leaves those to the host), and the scale
    and zero point are then those of the int8 tensor behind it."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    float_input: bool
    float_output: bool
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int


def model_io(tflite_path: str | Path) -> ModelIo:
    """The input/output facts of a full-int8 .tflite with one input and one output, float
    boundary or not."""
    from tinykd.errors import TinykdError
    from tinykd.firmware.tflite_model import read_tflite

    m = read_tflite(tflite_path)
    name = Path(tflite_path).name
    if len(m.inputs) != 1 or len(m.outputs) != 1:
        raise TinykdError(
            f"{name} has {len(m.inputs)} inputs and {len(m.outputs)} outputs; tinykd evaluates models "
            "with exactly one input and one output tensor. Export a model with a single input and output."
        )

    def inner(ti: int, opcode: str, side: str) -> int:
        """The int8 tensor behind a float boundary tensor (the QUANTIZE's output, the DEQUANTIZE's input)."""
        t = m.tensors[ti]
        if t.type == "INT8":
            return ti
        for op in m.operators:
            if opcode == "QUANTIZE" and op.opcode == opcode and op.inputs[0] == ti:
                return op.outputs[0]
            if opcode == "DEQUANTIZE" and op.opcode == opcode and op.outputs[0] == ti:
                return op.inputs[0]
        raise TinykdError(
            f"The {side} {t.name!r} of {name} is {t.type}, and no {opcode} connects it to an int8 tensor: "
            "this is not a full-int8 model. Convert it with a representative dataset and "
            "supported_ops=[TFLITE_BUILTINS_INT8] (`tinykd convert` does this)."
        )

    ti, to = inner(m.inputs[0], "QUANTIZE", "input"), inner(m.outputs[0], "DEQUANTIZE", "output")
    for t in (m.tensors[ti], m.tensors[to]):
        if t.type != "INT8" or len(t.scale) != 1 or t.scale[0] <= 0:
            raise TinykdError(
                f"Tensor {t.name!r} of {name} is {t.type} with scales {list(t.scale)}; tinykd needs an int8 "
                "input and output with one scale each. Convert the model with full-integer quantisation."
            )
    outer_in, outer_out = m.tensors[m.inputs[0]], m.tensors[m.outputs[0]]
    return ModelIo(
        tuple(int(d) for d in outer_in.shape),
        tuple(int(d) for d in outer_out.shape),
        outer_in.type == "FLOAT32",
        outer_out.type == "FLOAT32",
        float(m.tensors[ti].scale[0]),
        int(m.tensors[ti].zero_point[0]),
        float(m.tensors[to].scale[0]),
        int(m.tensors[to].zero_point[0]),
    )


def float_inputs_for(x_int8: np.ndarray, io: ModelIo) -> np.ndarray:
    """The float32 inputs whose TFLM QUANTIZE gives exactly x_int8: (q - zero point) * scale in
    float32 (dividing by the scale again lands within an ulp of the integer, far from a tie)."""
    q = np.asarray(x_int8, dtype=np.int32) - io.input_zero_point
    return (q.astype(np.float32) * np.float32(io.input_scale)).astype(np.float32)


def int8_before_dequantize(values: np.ndarray, scale: float, zero_point: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLM's int8 tensor before a DEQUANTIZE, from the DEQUANTIZE's float32 outputs.

    DEQUANTIZE maps the 256 int8 values to 256 distinct float32 values (neighbours differ by
    the scale, far more than an ulp of the largest), so the map is inverted exactly by a
    table. Returns (int8 values, known): `known` is False where a value is none of the 256."""
    from tinykd.fuzz.compare import dequantize_f32

    q = np.arange(-128, 128, dtype=np.int8)
    table = dequantize_f32(q, scale, zero_point).view(np.uint32)
    order = np.argsort(table)
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    pos = np.clip(np.searchsorted(table[order], bits), 0, 255)
    known = table[order][pos] == bits
    return np.where(known, q[order][pos], 0).astype(np.int8), known


def random_float_inputs(n: int, io: ModelIo, seed: int) -> np.ndarray:
    """N float32 inputs in the model's calibrated range, the floats its int8 input can stand
    for: [(-128 - zero point) * scale, (127 - zero point) * scale]. Half uniform over the range,
    half on the input QUANTIZE's rounding ties ((k + 1/2) * scale, or a float neighbour),
    where rounding differently from TFLM would show."""
    rng = np.random.default_rng(seed)
    shape = (n, *io.input_shape[1:])
    sc, zp = np.float32(io.input_scale), io.input_zero_point
    lo, hi = float((-128 - zp) * sc), float((127 - zp) * sc)
    x = rng.uniform(lo, hi, size=shape).astype(np.float32)
    k = rng.integers(-128 - zp, 127 - zp, size=shape).astype(np.float64)
    ties = ((k + 0.5) * np.float64(sc)).astype(np.float32)
    nudge = rng.integers(-1, 2, size=shape)
    ties = np.where(nudge > 0, np.nextafter(ties, np.float32(np.inf)), ties)
    ties = np.where(nudge < 0, np.nextafter(ties, np.float32(-np.inf)), ties)
    x[1::2] = ties[1::2]
    return x.astype(np.float32)


def outputs_tflm(tflite_path: str | Path, x: np.ndarray, label: str = "TFLM") -> np.ndarray:
    """Outputs of the model in the TFLite Micro interpreter, one sample at a time, in the
    model's own input and output types (int8, or float32 for a float boundary)."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(str(tflite_path))
    details = interpreter.get_input_details(0)
    shape, dtype = details["shape"], details["dtype"]
    x = np.asarray(x)
    if x.dtype != dtype:
        from tinykd.errors import TinykdError

        raise TinykdError(
            f"{Path(tflite_path).name} takes {np.dtype(dtype).name} input; got {x.dtype.name}. "
            "Quantise float inputs with the model's input scale and zero point for an int8 model, "
            "or pass floats to a float-input model."
        )
    outputs = []
    for i in tqdm(range(len(x)), desc=label, unit="sample", mininterval=1.0, leave=False):
        interpreter.set_input(x[i : i + 1].reshape(shape), 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0)[0]).copy())
    return np.asarray(outputs, dtype=interpreter.get_output_details(0)["dtype"])


def int8_outputs_tflm(tflite_path: str | Path, x_int8: np.ndarray, label: str = "TFLM int8") -> np.ndarray:
    """Outputs of the int8 model in the TFLite Micro interpreter: the reference kernels a device runs.

    A model with a float boundary (QUANTIZE first, DEQUANTIZE last) runs on the floats its
    int8 input stands for (exactly those int8 values after its QUANTIZE), and its float
    outputs are mapped back to the int8 tensor before its DEQUANTIZE (exactly: see
    int8_before_dequantize), so the result is what the device's int8 model must give."""
    from tflite_micro.python.tflite_micro import runtime

    x_int8 = np.asarray(x_int8)
    interpreter = runtime.Interpreter.from_file(str(tflite_path))
    float_in = interpreter.get_input_details(0)["dtype"] == np.float32
    float_out = interpreter.get_output_details(0)["dtype"] == np.float32
    if not (float_in or float_out):
        return outputs_tflm(tflite_path, x_int8, label).astype(np.int8)
    io = model_io(tflite_path)
    y = outputs_tflm(tflite_path, float_inputs_for(x_int8, io) if float_in else x_int8, label)
    if not float_out:
        return y.astype(np.int8)
    q, known = int8_before_dequantize(y, io.output_scale, io.output_zero_point)
    if not known.all():
        from tinykd.errors import TinykdError

        raise TinykdError(
            f"TFLite Micro's float outputs of {Path(tflite_path).name} are not the DEQUANTIZE of any int8 "
            "value with the model's output scale and zero point; the model's last operator is not a "
            "plain DEQUANTIZE of its int8 output. Convert it with inference_output_type=tf.int8."
        )
    return q
