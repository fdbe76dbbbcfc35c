"""Helpers for the runtime/codegen tests: tiny random tf_keras models converted to full-int8
.tflite files, the TFLite Micro reference interpreter, and the generated C run via ctypes.

Models are cached per test session (keyed by their spec) so each converts once."""

from __future__ import annotations

import ctypes
import hashlib
import os
from pathlib import Path

import numpy as np

import tinykd  # noqa: F401  (sets TF_USE_LEGACY_KERAS before tensorflow loads)
from tinykd.models.from_spec import build_from_spec as build_keras


def _tf():
    import tensorflow as tf
    import tf_keras as keras

    return tf, keras


def convert_full_int8(
    model, out_path: Path, seed: int, int8_io: bool = True, per_tensor: bool = False, quantize: bool = True
) -> Path:
    tf, _ = _tf()
    rng = np.random.default_rng(seed)
    shape = (1, *model.input_shape[1:])
    calib = [rng.normal(0.0, 1.0, shape).astype(np.float32) for _ in range(24)]

    def rep():
        for c in calib:
            yield [c]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if not quantize:  # a plain float model
        out_path.write_bytes(conv.convert())
        return out_path
    if per_tensor:
        conv._experimental_disable_per_channel = True
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    data = conv.convert()
    out_path.write_bytes(data)
    return out_path


class ModelFactory:
    """Builds and caches .tflite files under one session directory."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def get(
        self,
        spec: tuple,
        seed: int = 0,
        int8_io: bool = True,
        per_tensor: bool = False,
        quantize: bool = True,
        name: str | None = None,
    ) -> Path:
        key = hashlib.sha256(repr((spec, seed, int8_io, per_tensor, quantize)).encode()).hexdigest()[:12]
        path = self.root / f"{name or 'm'}_{key}.tflite"
        if not path.exists():
            tf, _ = _tf()
            tf.config.experimental.enable_op_determinism()
            model = build_keras(spec, seed)
            tmp = path.with_name(path.name + ".tmp")
            convert_full_int8(model, tmp, seed, int8_io, per_tensor, quantize)
            os.replace(tmp, path)
        return path


def tflm_outputs(tflite_path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Outputs of the TFLite Micro reference interpreter for each input (shape of the model)."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_file(str(tflite_path))
    outs = []
    for x in inputs:
        interp.set_input(x, 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)).copy())
    return outs


class GeneratedModel:
    """The generated model.c + the runtime, compiled for the host and loaded with ctypes."""

    def __init__(self, tflite_path: Path, out_dir: Path):
        from tinykd.firmware.codegen import generate_model_sources
        from tinykd.firmware.host_build import build_shared_library, runtime_sources

        self.sources = generate_model_sources(tflite_path, out_dir)
        lib_path = build_shared_library(
            runtime_sources() + [self.sources.model_c], include_dirs=[self.sources.model_h.parent]
        )
        self.lib = ctypes.CDLL(str(lib_path))
        self.lib.tkd_model_invoke.restype = ctypes.c_int
        self.lib.tkd_model_invoke.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.in_bytes = int(np.prod(self.sources.input_shape))
        self.out_bytes = int(np.prod(self.sources.output_shape))

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.int8).reshape(-1)
        assert x.size == self.in_bytes
        out = np.zeros(self.out_bytes, dtype=np.int8)
        rc = self.lib.tkd_model_invoke(x.ctypes.data, out.ctypes.data)
        assert rc == 0, f"tkd_model_invoke returned {rc}"
        return out.reshape(self.sources.output_shape)


def random_inputs(shape, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    xs = [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(n)]
    # extremes too: all -128, all 127
    xs.append(np.full(shape, -128, np.int8))
    xs.append(np.full(shape, 127, np.int8))
    return xs
