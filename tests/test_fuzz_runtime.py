"""Generated models (tinykd.fuzz): random int8 models on tinykd's runtime (host build) against
the TFLite Micro interpreter, every output byte.

The reduced set here runs fixed seeds of the families that are bit-exact today: convolution
models (CONV_2D, DEPTHWISE_CONV_2D, pools, residual ADDs, int8 and float I/O, per-channel and
per-tensor conv weights, dense heads only with per-channel weights) and per-channel
FULLY_CONNECTED stacks. Seeds whose models contain a per-tensor FULLY_CONNECTED are left out:
they hit the defect written up in tests/test_fuzz_defects.py (its fix comes with that file).
The counts are asserted exactly, so a change of the generator that silently drops models or
inputs shows up. A larger run: `python -c "from tinykd.fuzz import run_fuzz;
print(run_fuzz(300, seed=2, out_dir='fuzz-out').summary())"`.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from tinykd.fuzz import random_models, run_fuzz, ties
from tinykd.fuzz.tflm_math import (
    EDGE_TOLERANCE,
    edge_distance,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
)

CONV_SEEDS = [0, 1, 3, 4, 5, 6, 11, 19, 20, 21, 27, 29, 30, 34, 36, 39, 42, 46, 49]
DENSE_PER_CHANNEL_SEEDS = [24, 26, 31]


def _no_per_tensor_fc(seed: int, family: str) -> bool:
    spec = random_models.random_spec(seed, family)
    has_fc = any(L["kind"] == "dense" for L in spec.layers)
    return not has_fc or (spec.dense_per_channel and not spec.per_tensor)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz")
    conv = run_fuzz(0, inputs_per_model=8, out_dir=out, family="conv", progress=False, seeds=CONV_SEEDS)
    dense = run_fuzz(0, inputs_per_model=8, out_dir=out, family="dense", progress=False, seeds=DENSE_PER_CHANNEL_SEEDS)
    return out, conv, dense


def test_seeds_avoid_the_known_defect():
    assert all(_no_per_tensor_fc(s, "conv") for s in CONV_SEEDS)
    assert all(_no_per_tensor_fc(s, "dense") for s in DENSE_PER_CHANNEL_SEEDS)


def test_generated_models_bit_exact(reports):
    _, conv, dense = reports
    for rep in (conv, dense):
        assert rep.errors == 0, rep.summary()
        assert rep.mismatching_bytes == 0, rep.summary()
    # what was compared, exactly: a generator change that loses models or inputs fails here
    assert (conv.models, conv.inputs, conv.bytes_compared) == (19, 194, 58974), conv.summary()
    assert (dense.models, dense.inputs, dense.bytes_compared) == (3, 34, 2282), dense.summary()
    ops = set(conv.op_counts) | set(dense.op_counts)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D"} <= ops
    assert {"FULLY_CONNECTED", "RESHAPE", "QUANTIZE", "DEQUANTIZE"} <= ops
    # the tie search lands: most aimed inputs put at least one element on a rounding edge
    assert conv.ties_landed >= conv.models and dense.ties_landed >= 10


def test_same_seed_same_model_bytes(reports, tmp_path):
    out, _, _ = reports
    seed = CONV_SEEDS[0]
    again = random_models.build_tflite(random_models.random_spec(seed, "conv"), tmp_path / "again.tflite")
    assert again.read_bytes() == (out / f"fuzz_{seed}.tflite").read_bytes()
    assert random_models.random_spec(seed, "conv") == random_models.random_spec(seed, "conv")


def test_tie_input_is_on_an_edge(reports):
    """Aimed elements really sit on a rounding edge of TFLM's arithmetic (recomputed from the
    model's weights): a multiplier a few units off changes their result."""
    from tinykd.firmware.tflite_model import read_tflite

    out, _, _ = reports
    model = read_tflite(out / f"fuzz_{DENSE_PER_CHANNEL_SEEDS[0]}.tflite")
    layer, _ = ties.first_aimed_layer(model)
    assert layer is not None and layer.opcode == "FULLY_CONNECTED"
    rng = np.random.default_rng(5)
    on_edge = landed_total = 0
    for _ in range(6):
        x, landed = ties.tie_input(model, rng)
        landed_total += landed
        rows = x.reshape(-1, layer.w.shape[1]).astype(np.int64) - layer.in_zp
        acc = layer.w @ rows.T + layer.bias[:, None]
        for j, b in np.ndindex(acc.shape):
            a = int(acc[j, b])
            q, s = layer.mults[j]
            if a == 0 or edge_distance(a, q, s) > EDGE_TOLERANCE:
                continue
            on_edge += 1
            k = (2 * EDGE_TOLERANCE) // abs(a) + 1  # moves the product past the edge
            near = {multiply_by_quantized_multiplier(a, q + d, s) for d in (-k, 0, k)}
            assert len(near) == 2, (a, q, s)
    assert landed_total >= 4 and on_edge >= landed_total


def test_tflm_math_matches_the_runtime():
    """The Python model of TFLM's requantisation (used to aim at ties) equals the runtime's."""
    from tinykd.firmware.host_build import build_shared_library, runtime_sources

    lib = ctypes.CDLL(str(build_shared_library(runtime_sources())))
    f = lib.tkd_multiply_by_quantized_multiplier
    f.restype = ctypes.c_int32
    f.argtypes = [ctypes.c_int32, ctypes.c_int32, ctypes.c_int]
    rng = np.random.default_rng(9)
    for _ in range(5000):
        q, s = quantize_multiplier(float(10.0 ** rng.uniform(-7, 0.9)))
        bits = int(rng.integers(1, 31 - max(s, 0)))
        a = int(rng.integers(-(1 << bits), 1 << bits))
        assert multiply_by_quantized_multiplier(a, q, s) == f(a, q, s), (a, q, s)
