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


def int8_outputs_tflm(tflite_path: str | Path, x_int8: np.ndarray, label: str = "TFLM int8") -> np.ndarray:
    """Outputs of the int8 model in the TFLite Micro interpreter: the reference kernels a device runs."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(str(tflite_path))
    shape = interpreter.get_input_details(0)["shape"]
    outputs = []
    for i in tqdm(range(len(x_int8)), desc=label, unit="sample", mininterval=1.0, leave=False):
        interpreter.set_input(x_int8[i : i + 1].reshape(shape), 0)
        interpreter.invoke()
        outputs.append(interpreter.get_output(0)[0].copy())
    return np.asarray(outputs, dtype=np.int8)
