"""Full-integer conversion: int8 weights, activations, input and output."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

import tinykd  # noqa: F401

from ..errors import TinykdError
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


def int8_range(scale: float, zero_point: int) -> tuple[float, float]:
    """The real values int8 codes -128 and 127 stand for under (scale, zero point)."""
    return (
        float(np.float32(scale) * np.float32(-128 - zero_point)),
        float(np.float32(scale) * np.float32(127 - zero_point)),
    )


def _fix_input_range(model: keras.Model, lo: float, hi: float) -> int:
    """Set the range of a QAT model's input fake-quantiser (tfmot's QuantizeLayer) to
    [lo, hi]; the converter takes the input quantisation from it. Returns how many were set."""
    fixed = 0
    for layer in model.layers:
        if type(layer).__name__ != "QuantizeLayer":
            continue
        mins = [w for w in layer.weights if w.name.split("/")[-1].startswith(layer.name + "_min")]
        maxs = [w for w in layer.weights if w.name.split("/")[-1].startswith(layer.name + "_max")]
        if len(mins) != 1 or len(maxs) != 1:
            raise TinykdError(
                f"The QAT model's input quantiser {layer.name!r} has no single min/max variable "
                f"({[w.name for w in layer.weights]}); this tensorflow-model-optimization version "
                "is not supported. Install the version pinned in pyproject.toml."
            )
        mins[0].assign(np.float32(lo))
        maxs[0].assign(np.float32(hi))
        fixed += 1
    return fixed


def convert_int8(
    model: keras.Model,
    representative: np.ndarray,
    out_path: str | Path,
    samples: int = 500,
    input_quantization: tuple[float, int] | None = None,
) -> Path:
    """Convert to a .tflite with only TFLITE_BUILTINS_INT8 ops and int8 input/output.

    `representative` is training data; the first `samples` rows calibrate activation ranges
    (QAT models already carry their ranges and use it only for the input).

    `input_quantization` = (scale, zero point) fixes the input tensor's quantisation (e.g. to
    the device's feature extractor's) instead of deriving it from the data's range: the
    input range is pinned to what int8 -128..127 stand for (the QAT input quantiser's
    min/max, and two calibration rows at those extremes), and the result is checked.
    """
    calibration = representative[:samples].astype(np.float32)
    if input_quantization is not None:
        scale, zero_point = float(input_quantization[0]), int(input_quantization[1])
        lo, hi = int8_range(scale, zero_point)
        if not lo < 0.0 < hi:
            raise TinykdError(
                f"The fixed input quantisation (scale {scale}, zero point {zero_point}) does not "
                "represent 0.0 inside int8 -128..127; TFLite needs the input range to contain 0. "
                "Choose a zero point within -128..127 and a positive scale."
            )
        _fix_input_range(model, lo, hi)
        extremes = np.stack(
            [np.full(calibration.shape[1:], lo, np.float32), np.full(calibration.shape[1:], hi, np.float32)]
        )
        calibration = np.concatenate([extremes, calibration])

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
    if input_quantization is not None:
        got = _input_quantization_of(flatbuffer)
        if got != (np.float32(scale), zero_point):
            raise TinykdError(
                f"The int8 model's input quantisation came out as scale {got[0]!r}, zero point "
                f"{got[1]}, not the required scale {scale!r}, zero point {zero_point} (the "
                "device's feature extractor writes exactly that). The model was not written. "
                "The QAT model's input quantiser was probably replaced or the converter changed; "
                "retrain (tinykd build --force) with the pinned TensorFlow versions."
            )
    return write_bytes(out_path, flatbuffer)


def _input_quantization_of(flatbuffer: bytes) -> tuple[np.float32, int]:
    from ai_edge_litert.interpreter import Interpreter

    (inp,) = Interpreter(model_content=flatbuffer).get_input_details()
    scales, zero_points = inp["quantization_parameters"]["scales"], inp["quantization_parameters"]["zero_points"]
    if inp["dtype"] != np.int8 or len(scales) != 1 or len(zero_points) != 1:
        return (np.float32(np.nan), 0)
    return (np.float32(scales[0]), int(zero_points[0]))


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
