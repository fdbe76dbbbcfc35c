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


def _tf():
    import tensorflow as tf
    import tf_keras as keras
    return tf, keras


def build_keras(spec: tuple, seed: int):
    """spec = (input_shape, [layer tuples]) -> a functional tf_keras model with random weights.

    Layer tuples: ("dense", units, act), ("conv", filters, k, stride, padding, act),
    ("dw", k, stride, padding, depth_multiplier, act), ("maxpool", k, stride, padding),
    ("avgpool", k, stride, padding), ("flatten",), ("reshape", shape), ("softmax",),
    ("act", name) e.g. tanh, ("add_branch", "conv", filters) : x + conv1x1(x) (same shape),
    ("add_broadcast",) : x + a per-channel constant from a Dense on pooled x.
    """
    tf, keras = _tf()
    keras.utils.set_random_seed(seed)
    input_shape, layers_spec = spec
    inp = keras.Input(input_shape, batch_size=1)
    x = inp
    for ls in layers_spec:
        kind = ls[0]
        if kind == "dense":
            x = keras.layers.Dense(ls[1], activation=ls[2])(x)
        elif kind == "conv":
            x = keras.layers.Conv2D(ls[1], ls[2], strides=ls[3], padding=ls[4], activation=ls[5])(x)
        elif kind == "dw":
            x = keras.layers.DepthwiseConv2D(ls[1], strides=ls[2], padding=ls[3],
                                             depth_multiplier=ls[4], activation=ls[5])(x)
        elif kind == "maxpool":
            x = keras.layers.MaxPooling2D(ls[1], strides=ls[2], padding=ls[3])(x)
        elif kind == "avgpool":
            x = keras.layers.AveragePooling2D(ls[1], strides=ls[2], padding=ls[3])(x)
        elif kind == "flatten":
            x = keras.layers.Flatten()(x)
        elif kind == "reshape":
            x = keras.layers.Reshape(ls[1])(x)
        elif kind == "softmax":
            x = keras.layers.Softmax()(x)
        elif kind == "act":
            x = keras.layers.Activation(ls[1])(x)
        elif kind == "add_branch":
            y = keras.layers.Conv2D(x.shape[-1], 1, activation=ls[1])(x)
            x = keras.layers.Add()([x, y])
        elif kind == "add_bcast":
            # [1,H,W,C] + [1,1,1,C]: a full-size VALID conv gives the per-channel term
            y = keras.layers.Conv2D(x.shape[-1], (x.shape[1], x.shape[2]))(x)
            x = keras.layers.Lambda(lambda t: t[0] + t[1])([x, y])
        elif kind == "add_const":
            c = np.random.default_rng(seed + 2).normal(0, 1, (1, *x.shape[1:])).astype(np.float32)
            x = keras.layers.Lambda(lambda t, c=c: t + tf.constant(c))(x)
        else:
            raise ValueError(kind)
    model = keras.Model(inp, x)
    # Random, non-zero biases so the bias path is exercised (Keras starts them at 0).
    rng = np.random.default_rng(seed + 1)
    for layer in model.layers:
        ws = layer.get_weights()
        if len(ws) == 2:
            layer.set_weights([ws[0], rng.normal(0.0, 0.2, ws[1].shape).astype(np.float32)])
    return model


def convert_full_int8(model, out_path: Path, seed: int, int8_io: bool = True,
                      per_tensor: bool = False, quantize: bool = True) -> Path:
    tf, _ = _tf()
    rng = np.random.default_rng(seed)
    shape = (1, *model.input_shape[1:])
    calib = [rng.normal(0.0, 1.0, shape).astype(np.float32) for _ in range(24)]

    def rep():
        for c in calib:
            yield [c]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if not quantize:            # a plain float model
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

    def get(self, spec: tuple, seed: int = 0, int8_io: bool = True, per_tensor: bool = False,
            quantize: bool = True, name: str | None = None) -> Path:
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
            runtime_sources() + [self.sources.model_c], include_dirs=[self.sources.model_h.parent])
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
