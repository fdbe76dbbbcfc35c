"""Random int8 models for fuzzing the tinykd runtime against TFLite Micro.

`random_spec(seed)` draws a small model description (plain data: a family, an input shape,
a list of layers, the calibration range and the conversion options); `build_tflite(spec,
path)` builds it as a tf_keras model with weights drawn from the spec's seed and converts it
with the TF converter to full int8 (representative dataset, TFLITE_BUILTINS_INT8). The same
seed gives the same spec and the same .tflite bytes.

What the specs cover (only ops the tinykd runtime supports come out of the converter):
- FULLY_CONNECTED stacks (1-96 units, per-tensor weights as the converter makes them, or
  per-channel via `_experimental_disable_per_channel_quantization_for_dense_layers=False`),
  batched inputs (rank-2 inputs: FULLY_CONNECTED over rows), SOFTMAX heads;
- CONV_2D (kernel 1-5, stride 1-3, dilation 1-3 at stride 1, SAME/VALID), DEPTHWISE_CONV_2D
  (depth multiplier 1-3, same options), MAX_POOL_2D / AVERAGE_POOL_2D (SAME/VALID, strides),
  residual ADDs (x + conv(x), and the sum of two branches of different scales), RESHAPE
  (flatten before a dense head);
- per-channel or per-tensor conv weights (`per_tensor` disables per-channel quantisation);
- scales over many decades: every layer's weights and the input range are multiplied by a
  random power of ten; skewed input ranges (all positive, all negative, offset) put the
  input zero point at -128 / 127 / anywhere; ReLU outputs put zero points at -128;
- fused NONE / RELU / RELU6; int8 input/output or float input/output (QUANTIZE first,
  DEQUANTIZE last).
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import tinykd  # noqa: F401  (sets TF_USE_LEGACY_KERAS before tensorflow loads)

ACTS = (None, "relu", "relu6")
FAMILIES = ("dense", "conv")
MAX_MACS = 250_000  # keeps one model's conversion and runs well under a second


@dataclass
class ModelSpec:
    """A random model, as data. `seed` reproduces it: random_spec(seed) == this spec."""

    seed: int
    family: str
    input_shape: tuple[int, ...]
    layers: list[dict[str, Any]]
    input_range: tuple[float, float]  # calibration data is uniform in this range
    float_io: bool = False
    per_tensor: bool = False  # conv weights per tensor (the converter's per-channel off)
    dense_per_channel: bool = False  # FULLY_CONNECTED weights per channel
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = []
        for L in self.layers:
            kind = L["kind"]
            keys = [f"{k}={v}" for k, v in L.items() if k not in ("kind", "wscale")]
            parts.append(f"{kind}({', '.join(keys)})")
        io = "float-io" if self.float_io else "int8-io"
        q = "per-tensor" if self.per_tensor else "per-channel"
        fc = "fc-per-channel" if self.dense_per_channel else "fc-per-tensor"
        lo, hi = self.input_range
        return (
            f"seed {self.seed}: {self.family} {list(self.input_shape)} in [{lo:.3g}, {hi:.3g}], {io}, {q}, {fc}: "
            + " -> ".join(parts)
        )


# ---- drawing a spec --------------------------------------------------------------------------


def _act(rng: np.random.Generator):
    return ACTS[int(rng.integers(len(ACTS)))]


def _decade(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(10.0 ** rng.uniform(lo, hi))


def _input_range(rng: np.random.Generator) -> tuple[float, float]:
    s = _decade(rng, -3, 3)
    kind = int(rng.integers(5))
    if kind == 0:
        return (-s, s)
    if kind == 1:  # all positive: the input zero point at -128
        return (0.0, s)
    if kind == 2:  # all negative: the zero point at 127
        return (-s, 0.0)
    if kind == 3:  # offset, not containing zero (the converter widens it to include 0)
        a = float(rng.uniform(0.2, 3.0)) * s
        return (a, a + s)
    a = float(rng.uniform(-1.0, 1.0))  # skewed around zero
    return (s * (a - 1.0) / 2.0, s * (a + 1.0) / 2.0)


def _conv_out(size: int, k: int, stride: int, dil: int, padding: str) -> int:
    eff = (k - 1) * dil + 1
    if padding == "same":
        return (size + stride - 1) // stride
    return (size - eff) // stride + 1 if size >= eff else 0


def _spatial_layer(rng: np.random.Generator, shape: list[int], allow_residual: bool) -> dict[str, Any] | None:
    h, w, c = shape
    r = float(rng.random())
    if r < 0.32:
        kind = "conv"
    elif r < 0.57:
        kind = "dw"
    elif r < 0.72:
        kind = "maxpool" if rng.random() < 0.5 else "avgpool"
    else:
        kind = "residual" if allow_residual else "conv"
    if kind in ("conv", "dw"):
        k = int(rng.integers(1, 6))
        kh, kw = (k, k) if rng.random() < 0.7 else (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        stride, dil = 1, 1
        if rng.random() < 0.3:
            dil = int(rng.integers(2, 4))
        elif rng.random() < 0.5:
            stride = int(rng.integers(2, 4))
        padding = "same" if rng.random() < 0.5 else "valid"
        oh, ow = _conv_out(h, kh, stride, dil, padding), _conv_out(w, kw, stride, dil, padding)
        if oh < 1 or ow < 1:
            padding = "same"
            oh, ow = _conv_out(h, kh, stride, dil, padding), _conv_out(w, kw, stride, dil, padding)
        L: dict[str, Any] = {"kind": kind, "kh": kh, "kw": kw, "stride": stride, "dilation": dil}
        L.update(padding=padding, act=_act(rng), wscale=_decade(rng, -2.5, 1.5), bias=bool(rng.random() < 0.85))
        if kind == "conv":
            L["filters"] = int(rng.integers(1, 97)) if rng.random() < 0.6 else int(rng.integers(1, 17))
            oc = L["filters"]
        else:
            L["multiplier"] = int(rng.integers(1, 4))
            oc = c * L["multiplier"]
            if oc > 96:
                L["multiplier"] = 1
                oc = c
        shape[:] = [oh, ow, oc]
        return L
    if kind in ("maxpool", "avgpool"):
        k = int(rng.integers(1, 4))
        stride = int(rng.integers(1, 4))
        padding = "same" if rng.random() < 0.5 else "valid"
        if padding == "valid" and (h < k or w < k):
            padding = "same"
        oh, ow = _conv_out(h, k, stride, 1, padding), _conv_out(w, k, stride, 1, padding)
        shape[:] = [oh, ow, c]
        return {"kind": kind, "k": k, "stride": stride, "padding": padding}
    # residual: x + conv(x) (same shape), or conv_a(x) + conv_b(x) with different scales
    k = int(rng.integers(1, 4))
    two = bool(rng.random() < 0.4)
    filters = int(rng.integers(1, 49)) if two else c
    L = {"kind": "residual", "k": k, "two_branches": two, "filters": filters, "inner_act": _act(rng)}
    L.update(act=_act(rng), wscale=_decade(rng, -2, 1), wscale2=_decade(rng, -2, 1))
    shape[:] = [h, w, filters]
    return L


def _dense_stack(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    layers = []
    for k in range(n):
        # a dense layer reading a single value converts to MUL (not supported): only the last
        # layer may have one unit
        first = 1 if k == n - 1 else 2
        units = int(rng.integers(first, 97)) if rng.random() < 0.7 else int(rng.integers(first, 9))
        layers.append({"kind": "dense", "units": units, "act": _act(rng), "wscale": _decade(rng, -2.5, 1.5)})
        layers[-1]["bias"] = bool(rng.random() < 0.85)
    return layers


def _macs(spec: ModelSpec) -> int:
    shape = list(spec.input_shape)
    total = 0
    for L in spec.layers:
        k = L["kind"]
        if k == "dense":
            total += int(np.prod(shape)) * L["units"]
            shape = shape[:-1] + [L["units"]] if len(shape) > 1 else [L["units"]]
        elif k == "flatten":
            shape = [int(np.prod(shape))]
        elif k in ("conv", "dw", "maxpool", "avgpool", "residual"):
            h, w, c = shape
            if k in ("conv", "dw"):
                oh = _conv_out(h, L["kh"], L["stride"], L["dilation"], L["padding"])
                ow = _conv_out(w, L["kw"], L["stride"], L["dilation"], L["padding"])
                oc = L["filters"] if k == "conv" else c * L["multiplier"]
                total += oh * ow * oc * L["kh"] * L["kw"] * (c if k == "conv" else 1)
                shape = [oh, ow, oc]
            elif k == "residual":
                total += h * w * L["filters"] * L["k"] ** 2 * c * (2 if L["two_branches"] else 1)
                shape = [h, w, L["filters"]]
            else:
                shape = [
                    _conv_out(h, L["k"], L["stride"], 1, L["padding"]),
                    _conv_out(w, L["k"], L["stride"], 1, L["padding"]),
                    c,
                ]
    return total


def random_spec(seed: int, family: str | None = None) -> ModelSpec:
    """A random model description; `family` ("dense" or "conv") forces the kind of model."""
    rng = np.random.default_rng([seed, 0x7D6B])
    fam = family or FAMILIES[int(rng.integers(len(FAMILIES)))]
    float_io = bool(rng.random() < 0.3)
    per_tensor = bool(rng.random() < 0.25)
    dense_pc = bool(rng.random() < 0.2)
    rngs = rng.spawn(1)[0]
    for _attempt in range(50):
        r = np.random.default_rng(rngs.integers(1 << 62))
        if fam == "dense":
            n_in = int(r.integers(2, 97)) if r.random() < 0.8 else int(r.integers(2, 9))
            shape: tuple[int, ...] = (n_in,) if r.random() < 0.8 else (int(r.integers(2, 6)), n_in)
            depth = int(r.integers(1, 5)) if r.random() < 0.8 else int(r.integers(5, 9))
            layers = _dense_stack(r, depth)
        else:
            h, w = int(r.integers(1, 13)), int(r.integers(1, 13))
            c = int(r.integers(1, 17)) if r.random() < 0.8 else int(r.integers(17, 97))
            shape = (h, w, c)
            cur = [h, w, c]
            layers = []
            for _ in range(int(r.integers(1, 5))):
                L = _spatial_layer(r, cur, allow_residual=True)
                if L is not None:
                    layers.append(L)
            if r.random() < 0.4:
                layers.append({"kind": "flatten"})
                layers += _dense_stack(r, int(r.integers(1, 3)))
        if r.random() < 0.2:
            last = layers[-1]
            if last["kind"] == "dense" and last["units"] >= 2:
                layers.append({"kind": "softmax", "beta": 1.0})
        spec = ModelSpec(seed, fam, tuple(shape), layers, _input_range(r), float_io, per_tensor, dense_pc)
        if 0 < _macs(spec) <= MAX_MACS:
            return spec
    # a last resort that always fits
    return ModelSpec(seed, "dense", (8,), _dense_stack(r, 1), (-1.0, 1.0), float_io, per_tensor, dense_pc)


# ---- building and converting -----------------------------------------------------------------


def _tf():
    import tensorflow as tf
    import tf_keras as keras

    return tf, keras


def _set_weights(layer, rng: np.random.Generator, wscale: float, bias: bool) -> None:
    ws = layer.get_weights()
    if not ws:
        return
    new = []
    for k, wt in enumerate(ws):
        if k == 0:
            fan_in = int(np.prod(wt.shape[:-1])) if wt.ndim > 1 else 1
            if wt.ndim == 4 and layer.__class__.__name__ == "DepthwiseConv2D":
                fan_in = int(np.prod(wt.shape[:2]))
            v = rng.normal(0.0, 1.0 / np.sqrt(max(fan_in, 1)), wt.shape)
            # a few channels with much smaller or larger weights: per-channel scales vary
            if wt.ndim >= 2 and rng.random() < 0.5:
                v = v * (10.0 ** rng.uniform(-1.5, 0.5, wt.shape[-1]))
            new.append((v * wscale).astype(np.float32))
        else:
            b = rng.normal(0.0, 0.5, wt.shape) * wscale if bias else np.zeros(wt.shape)
            new.append(b.astype(np.float32))
    layer.set_weights(new)


def build_keras(spec: ModelSpec):
    """The spec as a tf_keras functional model with weights from the spec's seed."""
    tf, keras = _tf()
    L_ = keras.layers
    rng = np.random.default_rng([spec.seed, 0xB17D])
    inp = keras.Input(shape=spec.input_shape, batch_size=1, name="input")
    x = inp
    # explicit names: keras' automatic ones count up within a process, and they end up in the
    # .tflite's tensor names, so the same seed would not give the same bytes
    names = (f"l{n}" for n in range(1000))
    for L in spec.layers:
        k = L["kind"]
        if k == "dense":
            lay = L_.Dense(L["units"], activation=L["act"], use_bias=True, name=next(names))
            x = lay(x)
            _set_weights(lay, rng, L["wscale"], L["bias"])
        elif k == "flatten":
            x = L_.Flatten(name=next(names))(x)
        elif k == "softmax":
            x = L_.Softmax(name=next(names))(x)
        elif k == "conv":
            lay = L_.Conv2D(
                L["filters"],
                (L["kh"], L["kw"]),
                strides=L["stride"],
                dilation_rate=L["dilation"],
                padding=L["padding"],
                activation=L["act"],
                name=next(names),
            )
            x = lay(x)
            _set_weights(lay, rng, L["wscale"], L["bias"])
        elif k == "dw":
            lay = L_.DepthwiseConv2D(
                (L["kh"], L["kw"]),
                strides=L["stride"],
                dilation_rate=L["dilation"],
                padding=L["padding"],
                depth_multiplier=L["multiplier"],
                activation=L["act"],
                name=next(names),
            )
            x = lay(x)
            _set_weights(lay, rng, L["wscale"], L["bias"])
        elif k in ("maxpool", "avgpool"):
            cls = L_.MaxPooling2D if k == "maxpool" else L_.AveragePooling2D
            x = cls(L["k"], strides=L["stride"], padding=L["padding"], name=next(names))(x)
        elif k == "residual":
            a = L_.Conv2D(L["filters"], L["k"], padding="same", activation=L["inner_act"], name=next(names))
            ya = a(x)
            _set_weights(a, rng, L["wscale"], True)
            if L["two_branches"]:
                b = L_.Conv2D(L["filters"], L["k"], padding="same", name=next(names))
                yb = b(x)
                _set_weights(b, rng, L["wscale2"], True)
                x = L_.Add(name=next(names))([ya, yb])
            else:
                x = L_.Add(name=next(names))([x, ya])
            if L["act"] is not None:
                x = L_.Activation(L["act"], name=next(names))(x)
        else:
            raise ValueError(f"unknown layer kind {k!r}")
    return keras.Model(inp, x, name="fuzz")


def calibration_data(spec: ModelSpec, n: int = 24) -> list[np.ndarray]:
    rng = np.random.default_rng([spec.seed, 0xCA1B])
    lo, hi = spec.input_range
    shape = (1, *spec.input_shape)
    data = [rng.uniform(lo, hi, shape).astype(np.float32) for _ in range(n - 2)]
    data += [np.full(shape, lo, np.float32), np.full(shape, hi, np.float32)]
    return data


def build_tflite(spec: ModelSpec, path: str | os.PathLike) -> Path:
    """Convert the spec's model to a full-int8 .tflite at `path` (written atomically)."""
    tf, _ = _tf()
    tf.config.experimental.enable_op_determinism()
    model = build_keras(spec)
    calib = calibration_data(spec)

    def rep():
        for c in calib:
            yield [c]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if spec.per_tensor:
        conv._experimental_disable_per_channel = True
    conv._experimental_disable_per_channel_quantization_for_dense_layers = not spec.dense_per_channel
    if not spec.float_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Statistics for quantized inputs were expected"
        data = conv.convert()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def spec_copy(spec: ModelSpec, **changes) -> ModelSpec:
    """A copy of `spec` with some fields changed (e.g. float_io=True)."""
    s = copy.deepcopy(spec)
    for k, v in changes.items():
        setattr(s, k, v)
    return s
