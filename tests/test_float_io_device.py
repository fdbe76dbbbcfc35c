"""Issue 11, defect 3: int8 models with float input and output (QUANTIZE first, DEQUANTIZE
last, as the TF converter makes them without inference_input_type=tf.int8) end to end.

`tinykd evaluate --model M --random N` draws float inputs in the model's calibrated range,
quantises them on the host with TFLite Micro's QUANTIZE arithmetic, runs the int8 model on
QEMU mps2-an386, dequantises the device's int8 outputs with TFLM's DEQUANTIZE arithmetic and
compares them bit for bit with the TFLM interpreter's float outputs on the same float inputs
(and the int8 bytes with TFLM's int8 tensor before its DEQUANTIZE)."""

import json
import shutil

import numpy as np
import pytest

from tinykd.evaluate import host as H
from tinykd.fuzz.compare import dequantize_f32, quantize_f32
from tinykd.fuzz.random_models import ModelSpec, build_tflite

CNN = [
    {"kind": "conv", "kh": 3, "kw": 3, "stride": 1, "dilation": 1, "padding": "same", "act": "relu"},
    {"kind": "dw", "kh": 3, "kw": 3, "stride": 2, "dilation": 1, "padding": "same", "act": "relu6"},
    {"kind": "conv", "kh": 1, "kw": 1, "stride": 1, "dilation": 1, "padding": "valid", "act": None},
    {"kind": "maxpool", "k": 2, "stride": 2, "padding": "valid"},
    {"kind": "flatten"},
    {"kind": "dense", "units": 10, "act": None},
    {"kind": "softmax"},
]


def float_io_cnn(path, seed=1101):
    """A small CNN converted with float input and output (the converter's default)."""
    layers = []
    for L, extra in zip(CNN, ({"filters": 8}, {"multiplier": 1}, {"filters": 16}, {}, {}, {"units": 10}, {})):
        L = {**L, **extra}
        if L["kind"] in ("conv", "dw", "dense"):
            L.update(wscale=1.0, bias=True)
        layers.append(L)
    return build_tflite(ModelSpec(seed, "conv", (12, 12, 3), layers, (-1.5, 2.5), float_io=True), path)


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    return float_io_cnn(tmp_path_factory.mktemp("floatio") / "cnn_float_io.tflite")


def test_the_model_really_has_float_io(float_model):
    from tinykd.firmware.tflite_model import read_tflite

    m = read_tflite(float_model)
    assert m.tensors[m.inputs[0]].type == "FLOAT32" and m.tensors[m.outputs[0]].type == "FLOAT32"
    assert m.operators[0].opcode == "QUANTIZE" and m.operators[-1].opcode == "DEQUANTIZE"


def test_host_boundary_is_tflm_and_recovers_the_int8_tensor_before_dequantize(float_model):
    """The host's QUANTIZE of float inputs and the exact inverse of TFLM's DEQUANTIZE."""
    io = H.model_io(float_model)
    assert io.float_input and io.float_output
    q = np.arange(-128, 128, dtype=np.int8)
    f = dequantize_f32(q, io.output_scale, io.output_zero_point)
    back, known = H.int8_before_dequantize(f, io.output_scale, io.output_zero_point)
    assert known.all() and np.array_equal(back, q)
    _, known = H.int8_before_dequantize(np.nextafter(f[5:6], np.float32(9)), io.output_scale, io.output_zero_point)
    assert not known.any()  # a float no int8 value dequantises to
    # int8 inputs through the float interpreter: exactly what the int8 tensor would see
    x = np.random.default_rng(0).integers(-128, 128, size=(3, *io.input_shape[1:]), dtype=np.int8)
    xf = H.float_inputs_for(x, io)
    assert np.array_equal(quantize_f32(xf, io.input_scale, io.input_zero_point), x)
    ints = H.int8_outputs_tflm(float_model, x)
    floats = H.outputs_tflm(float_model, xf)
    assert floats.dtype == np.float32 and ints.dtype == np.int8
    assert np.array_equal(dequantize_f32(ints, io.output_scale, io.output_zero_point), floats)


def test_random_float_inputs_lie_in_the_calibrated_range_and_include_ties(float_model):
    io = H.model_io(float_model)
    x = H.random_float_inputs(40, io, seed=3)
    lo = (-128 - io.input_zero_point) * np.float32(io.input_scale)
    hi = (127 - io.input_zero_point) * np.float32(io.input_scale)
    assert x.dtype == np.float32 and x.shape == (40, *io.input_shape[1:])
    assert x.min() >= lo - io.input_scale and x.max() <= hi + io.input_scale
    v = x.astype(np.float64) / io.input_scale
    assert np.isclose(v - np.floor(v), 0.5, atol=1e-3).mean() > 0.2  # a share on QUANTIZE's ties


def test_evaluate_model_random_on_qemu_float_io(float_model, tmp_path):
    """`tinykd evaluate --model --random` on a float-I/O model: 0 mismatches, float and int8."""
    assert shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")
    from tinykd.device.check import check_model_on_device

    n = 16
    result = check_model_on_device(float_model, "mps2-an386", tmp_path, n=n, seed=5)
    saved = json.loads((tmp_path / "device_check.json").read_text())
    assert saved["host_vs_device"] == result["host_vs_device"]
    inp, out = saved["input"], saved["output"]
    assert inp["type"] == "float32" and out["type"] == "float32"
    assert inp["quantized_on"] == "host" and out["dequantized_on"] == "host"
    cmp = saved["host_vs_device"]
    assert cmp["compared"] == "float32" and cmp["values"] == n * 10
    assert cmp["mismatches"] == 0 and cmp["max_difference"] == 0.0, cmp
    assert saved["int8_host_vs_device"]["mismatches"] == 0
    assert saved["int8_host_vs_device"]["unknown_host_values"] == 0
    assert saved["examples"] == n
