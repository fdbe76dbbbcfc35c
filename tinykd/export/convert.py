"""Full-integer conversion: int8 weights, activations, input and output."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tinykd  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from ..fileio import write_bytes


@dataclass(frozen=True)
class QuantParams:
    shape: tuple[int, ...]
    scale: float
    zero_point: int


@dataclass(frozen=True)
class IoQuantization:
    input: QuantParams
    output: QuantParams


def convert_int8(model: keras.Model, representative: np.ndarray, out_path: str | Path,
                 samples: int = 500) -> Path:
    """Convert to a .tflite with only TFLITE_BUILTINS_INT8 ops and int8 input/output.

    `representative` is training data; the first `samples` rows calibrate activation ranges
    (QAT models already carry their ranges and use it only for the input).
    """
    calibration = representative[:samples].astype(np.float32)

    def dataset():
        for row in calibration:
            yield [row[None, ...]]

    # Converting from a SavedModel with a fixed batch of 1 gives tensors without a dynamic
    # batch dimension, which is what a microcontroller runtime wants.
    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with _quiet_stderr():
        flatbuffer = converter.convert()
    return write_bytes(out_path, flatbuffer)


def tflite_io_quantization(tflite_path: str | Path) -> IoQuantization:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite_path))
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()

    def params(d) -> QuantParams:
        scale, zero_point = d["quantization"]
        return QuantParams(tuple(int(v) for v in d["shape"]), float(scale), int(zero_point))

    return IoQuantization(params(inp), params(out))


def quantize_input(x: np.ndarray, q: QuantParams) -> np.ndarray:
    """Float inputs to the int8 the model (and the device) takes, as TFLite's QUANTIZE does."""
    return np.clip(np.round(x / q.scale) + q.zero_point, -128, 127).astype(np.int8)


class _quiet_stderr:
    """The MLIR converter prints pages of C++ logging to fd 2; keep it unless conversion fails."""

    def __enter__(self):
        self._saved = os.dup(2)
        self._log = tempfile.TemporaryFile()
        os.dup2(self._log.fileno(), 2)
        return self

    def __exit__(self, exc_type, exc, tb):
        os.dup2(self._saved, 2)
        os.close(self._saved)
        if exc_type is not None:
            self._log.seek(0)
            os.write(2, self._log.read()[-4000:])
        self._log.close()
        return False
