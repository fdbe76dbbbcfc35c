"""Bit-exactness of the tinykd int8 runtime (firmware/runtime) with TFLite Micro.

Each model below is a tiny random tf_keras model converted to full int8; the generated
model.c + runtime, compiled for the host, must give every output byte equal to the
tflite-micro Python interpreter (its reference kernels) on random int8 inputs. The
fixed-point helpers are also checked one by one against a Python reference."""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _fixed_point import INT32_MAX, INT32_MIN, py_mbqm, py_rdbpot, py_srdhm, wrap32  # noqa: E402
from _tflite_models import (
    GeneratedModel,
    ModelFactory,
    random_inputs,  # noqa: E402
    tflm_outputs,
)

from tinykd.bench.runtime import MODELS as BENCH_MODELS  # noqa: E402
from tinykd.firmware import codegen  # noqa: E402
from tinykd.firmware.host_build import build_shared_library, runtime_sources  # noqa: E402


@pytest.fixture(scope="session")
def factory(tmp_path_factory):
    return ModelFactory(tmp_path_factory.getbasetemp() / "tflite_models")


def check_bit_exact(path: Path, out_dir: Path, n: int = 12, seed: int = 7) -> GeneratedModel:
    gm = GeneratedModel(path, out_dir)
    xs = random_inputs(gm.sources.input_shape, n, seed)
    refs = tflm_outputs(path, xs)
    # The comparison must mean something: outputs vary, not all saturated to one value.
    assert np.unique(np.concatenate([r.reshape(-1) for r in refs])).size >= 3
    for k, (x, ref) in enumerate(zip(xs, refs)):
        got = gm.run(x)
        assert got.shape == ref.shape
        diff = np.flatnonzero(got.reshape(-1) != ref.reshape(-1))
        assert diff.size == 0, (
            f"input #{k}: {diff.size} of {ref.size} bytes differ, first at "
            f"{diff[0]}: ours {got.reshape(-1)[diff[0]]}, TFLM "
            f"{ref.reshape(-1)[diff[0]]}"
        )
    return gm


# ---- every kernel, several shapes and parameters -------------------------------------------

KERNEL_CASES = {
    "fc_relu": ((20,), [("dense", 12, "relu"), ("dense", 7, None)]),
    "fc_relu6_3d_keepdims": ((3, 10), [("dense", 6, "relu6")]),
    "conv_same_s1_relu": ((9, 9, 3), [("conv", 5, 3, 1, "same", "relu")]),
    "conv_valid_s2": ((11, 10, 4), [("conv", 6, 3, 2, "valid", None)]),
    "conv_same_s2_k5_relu6": ((10, 9, 2), [("conv", 3, 5, 2, "same", "relu6")]),
    "dw_same_s1_dm1": ((8, 8, 4), [("dw", 3, 1, "same", 1, "relu")]),
    "dw_valid_s2_dm2": ((9, 10, 3), [("dw", 3, 2, "valid", 2, None)]),
    "dw_same_s2_dm2_relu6": ((7, 8, 3), [("dw", 3, 2, "same", 2, "relu6")]),
    "maxpool_valid_avgpool_same": (
        (8, 9, 4),
        [("conv", 4, 1, 1, "valid", None), ("maxpool", 2, 2, "valid"), ("avgpool", 3, 1, "same")],
    ),
    "pools_same_s2_odd": (
        (7, 7, 3),
        [("conv", 3, 1, 1, "valid", "relu"), ("avgpool", 3, 2, "same"), ("maxpool", 3, 2, "same")],
    ),
    "add_same_shape": ((6, 6, 4), [("conv", 4, 3, 1, "same", "relu"), ("add_branch", "relu")]),
    "add_broadcast": ((5, 4, 6), [("conv", 6, 1, 1, "valid", None), ("add_bcast",)]),
    "add_const": ((4, 4, 3), [("conv", 5, 3, 1, "same", "relu"), ("add_const",)]),
    # >= 512 elements: the inputs' rescaled values tabulated once per call (tkd_add.c)
    "add_same_shape_table": ((12, 12, 6), [("conv", 6, 3, 1, "same", "relu"), ("add_branch", None)]),
    "add_const_table": ((10, 10, 6), [("conv", 6, 3, 1, "same", None), ("add_const",)]),
    "softmax": ((16,), [("dense", 10, None), ("softmax",)]),
    "softmax_rows": ((4, 6), [("dense", 9, None), ("softmax",)]),
    "reshape_of_input": ((4, 4, 3), [("flatten",), ("dense", 7, "relu")]),
    "reshape_to_output": ((5, 4, 2), [("conv", 3, 3, 2, "same", None), ("flatten",)]),
    "reshape_flatten_dense": ((4, 4, 3), [("conv", 4, 3, 1, "same", "relu"), ("flatten",), ("dense", 5, None)]),
}


@pytest.mark.parametrize("name", sorted(KERNEL_CASES))
def test_kernel_bit_exact(name, factory, tmp_path):
    path = factory.get(KERNEL_CASES[name], seed=3, name=name)
    check_bit_exact(path, tmp_path)


@pytest.mark.parametrize("name", ["fc_relu", "conv_valid_s2", "dw_valid_s2_dm2"])
def test_per_tensor_weights_bit_exact(name, factory, tmp_path):
    path = factory.get(KERNEL_CASES[name], seed=5, per_tensor=True, name=name + "_pt")
    from tinykd.firmware.tflite_model import read_tflite

    m = read_tflite(path)
    weights = [
        m.tensors[op.inputs[1]]
        for op in m.operators
        if op.opcode in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")
    ]
    assert weights and all(len(w.scale) == 1 for w in weights)  # really per-tensor
    check_bit_exact(path, tmp_path)


def test_float_io_model_peels_boundary_quantize(factory, tmp_path):
    """Float in/out: the generated model takes the int8 that QUANTIZE would produce and
    returns the int8 that DEQUANTIZE would read; TFLM's float results must match exactly."""
    path = factory.get(KERNEL_CASES["conv_valid_s2"], seed=4, int8_io=False, name="float_io")
    gm = GeneratedModel(path, tmp_path)
    s = gm.sources
    assert any("QUANTIZE" in n for n in s.notes) and "QUANTIZE" not in s.ops
    xs = random_inputs(s.input_shape, 6, 11)
    xf = [((x.astype(np.int32) - s.input_zero_point) * np.float32(s.input_scale)).astype(np.float32) for x in xs]
    refs = tflm_outputs(path, xf)
    for x, ref in zip(xs, refs):
        q = gm.run(x).astype(np.int32)
        ours = (np.float64(np.float32(s.output_scale)) * (q - s.output_zero_point)).astype(np.float32)
        np.testing.assert_array_equal(ours, ref)


# ---- whole models ----------------------------------------------------------------------------

# The benchmark's models (tinykd bench): the runtime is measured on what is checked here.
MLP = BENCH_MODELS["mnist_mlp_784_300_300_10"]
CNN = BENCH_MODELS["small_cnn"]


def test_mlp_784_300_300_10_bit_exact(factory, tmp_path):
    gm = check_bit_exact(factory.get(MLP, seed=1, name="mlp"), tmp_path, n=20)
    s = gm.sources
    assert s.ops == ["FULLY_CONNECTED"] * 3 + ["SOFTMAX"]
    assert s.param_count == 784 * 300 + 300 + 300 * 300 + 300 + 300 * 10 + 10
    # The input and output live in the arena: the 784-byte input + the first 300-byte hidden
    # tensor at the peak (the rest reuses the input's bytes).
    assert s.arena_bytes <= 784 + 304
    assert s.activations_total_bytes == 784 + 300 + 300 + 10 + 10


def test_small_cnn_bit_exact(factory, tmp_path):
    gm = check_bit_exact(factory.get(CNN, seed=2, name="cnn"), tmp_path, n=10)
    s = gm.sources
    assert s.ops == ["CONV_2D", "MAX_POOL_2D", "CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED"]
    text = s.model_c.read_text()
    layers = text.split("/* ---- layers ---- */")[1].split("int tkd_model_invoke_profile(")[0]
    assert "In place" in layers and "tkd_copy" not in layers  # RESHAPE aliased, no copy
    assert s.arena_bytes < s.activations_total_bytes


# ---- fixed-point helpers against a Python reference ------------------------------------------


@pytest.fixture(scope="module")
def rt():
    lib = ctypes.CDLL(str(build_shared_library(runtime_sources())))
    for fn, args in [
        ("tkd_sat_rounding_doubling_high_mul", [ctypes.c_int32] * 2),
        ("tkd_rounding_divide_by_pot", [ctypes.c_int32, ctypes.c_int]),
        ("tkd_multiply_by_quantized_multiplier", [ctypes.c_int32, ctypes.c_int32, ctypes.c_int]),
        ("tkd_multiply_by_quantized_multiplier_smaller_than_one", [ctypes.c_int32, ctypes.c_int32, ctypes.c_int]),
        ("tkd_multiply_by_quantized_multiplier_greater_than_one", [ctypes.c_int32, ctypes.c_int32, ctypes.c_int]),
    ]:
        getattr(lib, fn).restype = ctypes.c_int32
        getattr(lib, fn).argtypes = args
    return lib


EDGE = [
    0,
    1,
    -1,
    2,
    -2,
    3,
    -3,
    5,
    -5,
    255,
    -255,
    256,
    -256,
    1 << 30,
    -(1 << 30),
    INT32_MAX,
    INT32_MIN,
    INT32_MIN + 1,
    INT32_MAX - 1,
    12345678,
    -12345678,
]


def test_srdhm_edge_cases(rt):
    rng = np.random.default_rng(0)
    pairs = [(a, b) for a in EDGE for b in EDGE]
    pairs += [tuple(int(v) for v in rng.integers(INT32_MIN, INT32_MAX, 2, endpoint=True)) for _ in range(3000)]
    for a, b in pairs:
        assert rt.tkd_sat_rounding_doubling_high_mul(a, b) == py_srdhm(a, b), (a, b)
    assert rt.tkd_sat_rounding_doubling_high_mul(INT32_MIN, INT32_MIN) == INT32_MAX
    # exact ties: 2*a*b/2^32 = +0.5 rounds up to 1, -0.5 rounds up to 0 (gemmlowp's nudge)
    assert rt.tkd_sat_rounding_doubling_high_mul(1 << 15, 1 << 15) == 1
    assert rt.tkd_sat_rounding_doubling_high_mul(-(1 << 15), 1 << 15) == 0
    assert rt.tkd_sat_rounding_doubling_high_mul(-3 << 15, 1 << 15) == -1  # -1.5 -> -1


def test_rounding_divide_by_pot_ties_and_negatives(rt):
    assert [rt.tkd_rounding_divide_by_pot(x, 1) for x in (3, -3, 1, -1, 2, -2)] == [2, -2, 1, -1, 1, -1]
    assert rt.tkd_rounding_divide_by_pot(INT32_MIN, 31) == -1
    assert rt.tkd_rounding_divide_by_pot(INT32_MAX, 31) == 1
    assert rt.tkd_rounding_divide_by_pot(-5, 2) == -1 and rt.tkd_rounding_divide_by_pot(-6, 2) == -2
    rng = np.random.default_rng(1)
    for x in EDGE + [int(v) for v in rng.integers(INT32_MIN, INT32_MAX, 2000, endpoint=True)]:
        for e in (0, 1, 2, 7, 16, 30, 31):
            assert rt.tkd_rounding_divide_by_pot(x, e) == py_rdbpot(x, e), (x, e)


def test_multiply_by_quantized_multiplier(rt):
    rng = np.random.default_rng(2)
    mults = [0, 1, 1 << 30, INT32_MAX, 1518500250, 1073741825]
    mults += [int(v) for v in rng.integers(1 << 30, INT32_MAX, 50, endpoint=True)]
    xs = EDGE + [int(v) for v in rng.integers(-(1 << 20), 1 << 20, 40)]
    for m in mults:
        for x in xs:
            for s in (-31, -20, -9, -1, 0, 1, 3):
                assert rt.tkd_multiply_by_quantized_multiplier(x, m, s) == py_mbqm(x, m, s), (x, m, s)
            for s in (-12, -1, 0):
                assert rt.tkd_multiply_by_quantized_multiplier_smaller_than_one(x, m, s) == py_rdbpot(
                    py_srdhm(x, m), -s
                )
            for s in (0, 4, 10):
                assert rt.tkd_multiply_by_quantized_multiplier_greater_than_one(x, m, s) == py_srdhm(wrap32(x << s), m)


def test_quantize_multiplier_matches_tflite_definition():
    assert codegen.quantize_multiplier(0.5) == (1 << 30, 0)
    assert codegen.quantize_multiplier(1.0) == (1 << 30, 1)
    assert codegen.quantize_multiplier(0.0) == (0, 0)
    assert codegen.quantize_multiplier(2.0**-40) == (0, 0)  # flushed to zero
    assert codegen.quantize_multiplier(1.0 - 2.0**-40) == (1 << 30, 1)  # rounds up to 2^31
    assert codegen.quantize_multiplier(0.75) == (1610612736, 0)
    q, s = codegen.quantize_multiplier(0.0123)
    assert (1 << 30) <= q < (1 << 31) and abs(q * 2.0 ** (s - 31) - 0.0123) < 1e-11
    assert codegen.round_half_away(2.5) == 3 and codegen.round_half_away(-2.5) == -3
    assert codegen.round_half_away(0.49999999999999994) == 0


def test_requantize_kernel_all_int8_values(rt):
    lib = ctypes.CDLL(str(build_shared_library(runtime_sources())))
    f = lib.tkd_requantize_s8
    f.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int32,
        ctypes.c_int32,
        ctypes.c_int32,
        ctypes.c_int32,
        ctypes.c_int32,
    ]
    x = np.arange(-128, 128, dtype=np.int8)
    for ratio, zin, zout in [(1.0, 0, 0), (0.37, -5, 12), (2.9, 100, -128), (0.0039, -128, 127), (1.5, 3, 3)]:
        m, s = codegen.quantize_multiplier(ratio)
        out = np.zeros_like(x)
        f(x.ctypes.data, out.ctypes.data, x.size, zin, zout, m, s)
        ref = [min(127, max(-128, py_mbqm(int(v) - zin, m, s) + zout)) for v in x]
        np.testing.assert_array_equal(out, np.array(ref, np.int8))
        # and it approximates the real rescaling to within one step
        real = np.clip(np.round((x.astype(np.float64) - zin) * ratio) + zout, -128, 127)
        assert np.abs(out.astype(np.int32) - real).max() <= 1
