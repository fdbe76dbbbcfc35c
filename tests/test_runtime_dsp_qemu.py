"""Bit-exactness of the runtime's optimised paths.

- On QEMU (the real thing): firmware with the DSP (SIMD) kernels, built for mps2-an386
  (Cortex-M4; TKD_USE_DSP is chosen automatically from __ARM_FEATURE_DSP) and, for one model,
  for the M7/M33/M55 boards, runs random and extreme int8 inputs; every output byte must equal
  the tflite-micro interpreter's on the host. The ELF must really contain SMLAD/SXTB16.
- On the host: the portable build, the same DSP code structure with the intrinsics emulated
  in C (-DTKD_DSP_EMULATE), the reference loops forced (-DTKD_CONV_COL_MAX=0
  -DTKD_DW_TAPS_MAX=0), and the short requantisation and the blocks' output stage (its fast
  form included) against a Python model of TFLite's arithmetic.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from _fixed_point import INT32_MAX, INT32_MIN, py_mbqm  # noqa: E402
from _tflite_models import ModelFactory, random_inputs, tflm_outputs  # noqa: E402

from tinykd.bench import runtime as runtime_bench  # noqa: E402
from tinykd.firmware.codegen import generate_model_sources  # noqa: E402
from tinykd.firmware.host_build import (
    build_shared_library,
    runtime_dir,  # noqa: E402
    runtime_sources,
)

# Mixed models: each firmware build covers several kernel configurations.
MIX_A = (
    (11, 10, 3),
    [
        ("conv", 6, 5, 2, "same", "relu6"),  # K = 75 (K % 4 = 3), padding
        ("dw", 3, 1, "same", 1, "relu"),  # 6 channels: 4 + 2 tail
        ("dw", 3, 2, "valid", 2, None),  # depth multiplier 2: reference
        ("flatten",),
        ("dense", 7, None),
    ],
)  # 7 rows: 4 + 3 tail
MIX_B = (
    (9, 9, 4),
    [
        ("conv", 8, 1, 1, "valid", "relu"),  # 1x1 direct, 81 pixels (odd)
        ("dw", 3, 1, "same", 1, "relu6"),
        ("conv", 5, 3, 1, "same", None),  # K = 72, 5 filters (odd)
        ("maxpool", 2, 2, "valid"),
        ("flatten",),
        ("dense", 10, None),
        ("softmax",),
    ],
)
# The 4-pixel conv blocks, the depthwise pixel pairs and the fast output stage: leftovers of
# every size and every tail.
MIX_C = (
    (7, 5, 3),
    [
        ("conv", 7, 3, 1, "same", "relu"),  # K = 27, 35 px: 8 quads + 3
        ("dw", 3, 1, "same", 1, None),  # 7 ch (4 + 3), pairs across
        # row ends, 1 odd px, all borders
        ("dw", 3, 2, "same", 1, "relu"),  # stride 2: 4x3 = 12 px
        ("conv", 15, 1, 1, "valid", "relu"),  # 1x1 direct, K = 7 (tail 3)
        ("conv", 5, 3, 1, "same", None),  # K = 135 > 128: 2x2 blocks
        ("dw", 5, 1, "same", 1, "relu6"),  # 25 taps: looped pairs, clamp
        ("conv", 6, 2, 1, "valid", None),  # K = 20, 3x2 = 6 px: quad + 2
        ("flatten",),
        ("dense", 6, None),
    ],
)
MIX_D = (
    (6, 6, 1),
    [
        ("conv", 5, 3, 1, "valid", None),  # K = 9 (tail 1), 16 px
        ("conv", 6, (1, 2), 1, "valid", "relu"),  # K = 10 (tail 2), 12 px
        ("dw", 3, 1, "valid", 1, None),  # 6 ch, one pair, no padding
        ("dw", (1, 2), 1, "same", 1, "relu"),  # 2 taps, 2 px
        ("flatten",),
        ("dense", 5, None),
    ],
)
PER_TENSOR = ((10, 9, 2), [("conv", 4, 3, 2, "valid", "relu"), ("flatten",), ("dense", 9, None)])

HOST_CASES = {
    "mix_a": MIX_A,
    "mix_b": MIX_B,
    "mix_c": MIX_C,
    "mix_d": MIX_D,
    "fc_only": ((37,), [("dense", 13, "relu"), ("dense", 6, None)]),
    "conv_dilated": ((9, 9, 2), [("conv", 3, 3, 1, "same", None)]),
    # 3x3 on 40 channels: K = 360 > 128 in 4-pixel blocks; ADD of 12x12x40 (tabulated inputs)
    "resnet_block": (
        (12, 12, 40),
        [("conv", 40, 3, 1, "same", "relu"), ("add_branch", "relu"), ("conv", 9, 3, 2, "valid", None)],
    ),
}


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    return ModelFactory(tmp_path_factory.getbasetemp() / "tflite_models")


# the benchmark's small models go through the app on QEMU; the MLPerf Tiny classes through the
# benchmark's profile harness (inputs compiled in: no serial link for 27 KB inputs)
SMALL_BENCH = ["ds_cnn_kws", "mnist_mlp_784_300_300_10", "small_cnn"]
MLPERF_BENCH = ["fc_autoencoder", "mobilenet_v1_025_vww", "resnet8_cifar"]


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bench_models")


def _refs_vary(refs) -> None:
    # The comparison must mean something: outputs vary, not all saturated to one value.
    assert np.unique(np.concatenate([r.reshape(-1) for r in refs])).size >= 3


# ---- host: DSP structure with emulated intrinsics, reference loops --------------------------


def _host_model(tflite: Path, out: Path, flags: list[str]):
    src = generate_model_sources(tflite, out)
    lib = ctypes.CDLL(
        str(build_shared_library(runtime_sources() + [src.model_c], include_dirs=[out], extra_flags=flags))
    )
    lib.tkd_model_invoke.restype = ctypes.c_int
    lib.tkd_model_invoke.argtypes = [ctypes.c_void_p, ctypes.c_void_p]

    def run(x):
        x = np.ascontiguousarray(x, dtype=np.int8).reshape(-1)
        y = np.zeros(int(np.prod(src.output_shape)), np.int8)
        assert lib.tkd_model_invoke(x.ctypes.data, y.ctypes.data) == 0
        return y

    return src, run


@pytest.mark.parametrize(
    "variant,flags",
    [
        ("portable", []),
        ("dsp_emulated", ["-DTKD_USE_DSP=1", "-DTKD_DSP_EMULATE"]),
        (
            "reference_loops",
            ["-DTKD_CONV_COL_MAX=0", "-DTKD_DW_TAPS_MAX=0", "-DTKD_ADD_TABLE_MIN=0", "-DTKD_FC_X16_MAX=0"],
        ),
    ],
)
@pytest.mark.parametrize("name", sorted(HOST_CASES))
def test_optimised_paths_on_host(name, variant, flags, factory, tmp_path):
    path = factory.get(HOST_CASES[name], seed=21, name="dsp_" + name)
    if name == "conv_dilated":  # dilation 2: the gather's per-tap branch
        path = _dilated_model(tmp_path)
    src, run = _host_model(path, tmp_path / "m", flags)
    xs = random_inputs(src.input_shape, 10, 5)
    refs = tflm_outputs(path, xs)
    _refs_vary(refs)
    for k, (x, ref) in enumerate(zip(xs, refs)):
        np.testing.assert_array_equal(run(x), ref.reshape(-1), err_msg=f"{variant} input #{k}")


def _dilated_model(tmp_path: Path) -> Path:
    import tf_keras as keras

    keras.utils.set_random_seed(4)
    inp = keras.Input((9, 9, 2), batch_size=1)
    x = keras.layers.Conv2D(3, 3, padding="same", dilation_rate=2, activation="relu")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=2)(x)
    model = keras.Model(inp, x)
    from _tflite_models import convert_full_int8

    return convert_full_int8(model, tmp_path / "dilated.tflite", seed=4)


SHIM = r"""
#include "tkd_internal.h"
int32_t shim_short(int32_t acc, int32_t m, int32_t s) { return tkd_rq_short(acc, m, s); }
int32_t shim_long(int32_t acc, int32_t m, int32_t s) { return tkd_rq(acc, m, s, 0); }
"""


@pytest.mark.parametrize("flags", [[], ["-DTKD_USE_DSP=1", "-DTKD_DSP_EMULATE"]])
def test_requantisation_forms_match_tflite(flags, tmp_path):
    shim = tmp_path / "shim.c"
    shim.write_text(SHIM)
    lib = ctypes.CDLL(str(build_shared_library([shim], extra_flags=flags)))
    for fn in ("shim_short", "shim_long"):
        getattr(lib, fn).restype = ctypes.c_int32
        getattr(lib, fn).argtypes = [ctypes.c_int32] * 3
    rng = np.random.default_rng(9)
    bound = (1 << 30) - 1
    accs = (
        [0, 1, -1, bound, -bound, 12345, -12345]
        + [int(v) for v in rng.integers(-bound, bound, 300)]
        + [int(v) for v in rng.integers(-5000, 5000, 300)]
    )
    mults = [0, 1 << 30, INT32_MAX] + [int(v) for v in rng.integers(1 << 30, INT32_MAX, 12)]
    for m in mults:
        for s in (-1, -2, -7, -15, -24, -31):
            for a in accs:
                want = py_mbqm(a, m, s)
                assert lib.shim_short(a, m, s) == want, (a, m, s)
                assert lib.shim_long(a, m, s) == want, (a, m, s)
    # the long form is exact everywhere, also where the short one's preconditions fail
    for m in mults:
        for s in (3, 1, 0, -1, -31):
            for a in [INT32_MIN, INT32_MAX, INT32_MIN + 1, 1 << 30, -(1 << 30)] + accs[:50]:
                assert lib.shim_long(a, m, s) == py_mbqm(a, m, s), (a, m, s)
    # ties: the high multiply rounds -2.5 up to -2 (then -2 / 2 = -1), while the rounding
    # shift takes -3 / 2 = -1.5 away from zero to -2
    assert lib.shim_short(-5, 1 << 30, -1) == -1 == py_mbqm(-5, 1 << 30, -1)
    assert lib.shim_short(-3, INT32_MAX, -1) == -2 == py_mbqm(-3, INT32_MAX, -1)
    assert lib.shim_short(3, INT32_MAX, -1) == 2 == py_mbqm(3, INT32_MAX, -1)


OUT_SHIM = r"""
#include "tkd_internal.h"
/* n outputs of one channel through tkd_out4 / tkd_out2 / tkd_out1 (fast form when fast) */
void shim_out(int32_t fast, int32_t mult, int32_t shift, int32_t offset, int32_t lo, int32_t hi,
              int32_t is_short, const int32_t *acc, int32_t n, int8_t *out)
{
    tkd_out_t o;
    int32_t j = 0;
    o.mult = &mult; o.shift = &shift; o.offset = offset; o.lo = lo; o.hi = hi;
    o.is_short = is_short; o.fast = fast;
    for (; j + 4 <= n; j += 4) tkd_out4(&o, 0, acc[j], acc[j + 1], acc[j + 2], acc[j + 3], out + j, 1);
    for (; j + 2 <= n; j += 2) tkd_out2(&o, 0, acc[j], acc[j + 1], out + j, 1);
    for (; j < n; j++) tkd_out1(&o, 0, acc[j], out + j);
}
int32_t shim_fast_flag(const int32_t *shift, int32_t n, int32_t lo, int32_t hi, int32_t is_short)
{
    tkd_conv_params_t p;
    memset(&p, 0, sizeof p);
    p.out_c = n; p.shift = shift; p.act_min = lo; p.act_max = hi; p.short_requant = is_short;
    return tkd_conv_out_stage(&p).fast;
}
"""


@pytest.mark.parametrize("flags", [[], ["-DTKD_USE_DSP=1", "-DTKD_DSP_EMULATE"]])
def test_block_output_stage_matches_tflite(flags, tmp_path):
    """The blocks' output stage (tkd_out1/2/4): its fast form (offset folded into the
    rounding constant, one saturation) and its general form against TFLite's arithmetic,
    at the fast form's limits: right shifts 1..22, offsets -128 and 127, |acc| near 2^30,
    clamps starting anywhere in int8."""
    shim = tmp_path / "out_shim.c"
    shim.write_text(OUT_SHIM)
    lib = ctypes.CDLL(str(build_shared_library(runtime_sources() + [shim], extra_flags=flags)))
    i32p = np.ctypeslib.ndpointer(np.int32, flags="C_CONTIGUOUS")
    lib.shim_out.argtypes = [ctypes.c_int32] * 7 + [i32p, ctypes.c_int32, np.ctypeslib.ndpointer(np.int8)]
    lib.shim_fast_flag.argtypes = [i32p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32]
    rng = np.random.default_rng(12)
    bound = (1 << 30) - 1
    accs = np.array(
        [0, 1, -1, bound, -bound, 3, -3] + list(rng.integers(-bound, bound, 60)) + list(rng.integers(-3000, 3000, 60)),
        np.int32,
    )
    for m in [1 << 30, INT32_MAX, int(rng.integers(1 << 30, INT32_MAX))]:
        for right in (1, 2, 7, 13, 22):
            for offset in (-128, 127, 0, -5):
                # fast with lo > -128: a ReLU whose zero point is above -128 (lo = offset)
                for fast, lo, hi in (
                    (1, -128, 127),
                    (1, offset, 127),
                    (1, -31, 127),
                    (0, -128, 127),
                    (0, offset, 127),
                    (0, -128, 3),
                ):
                    if fast and right > 22:
                        continue
                    lo = max(lo, -128)
                    out = np.zeros(accs.size, np.int8)
                    lib.shim_out(fast, m, -right, offset, lo, hi, 1, accs, accs.size, out)
                    want = [min(hi, max(lo, py_mbqm(int(a), m, -right) + offset)) for a in accs]
                    np.testing.assert_array_equal(
                        out,
                        np.array(want, np.int8),
                        err_msg=f"m={m} right={right} off={offset} fast={fast} [{lo}, {hi}]",
                    )
    # the general form also takes the 64-bit requantisation (not short)
    out = np.zeros(accs.size, np.int8)
    lib.shim_out(0, INT32_MAX, 2, 3, -128, 127, 0, accs, accs.size, out)
    np.testing.assert_array_equal(
        out, np.array([min(127, max(-128, py_mbqm(int(a), INT32_MAX, 2) + 3)) for a in accs], np.int8)
    )
    # the layer's fast flag: short requantisation, a clamp ending at 127, right shifts <= 22
    sh = np.array([-7, -22, -1], np.int32)
    assert lib.shim_fast_flag(sh, 3, -128, 127, 1) == 1
    assert lib.shim_fast_flag(sh, 3, -128, 127, 0) == 0
    assert lib.shim_fast_flag(sh, 3, -31, 127, 1) == 1
    assert lib.shim_fast_flag(sh, 3, -128, 126, 1) == 0
    assert lib.shim_fast_flag(np.array([-7, -23, -1], np.int32), 3, -128, 127, 1) == 0


def test_short_requant_flag_is_proved_by_codegen(factory, tmp_path):
    """The generator sets the flag only when its bound holds; a layer with a tiny output
    scale (a multiplier >= 0.5) must get the long form."""
    from tinykd.firmware import codegen

    fb = np.array([100, -200])
    sums = np.array([1000, 2000])
    assert codegen.short_requant(fb, sums, [0.01, 0.2]) == 1
    assert codegen.short_requant(fb, sums, [0.01, 0.7]) == 0  # shift 0
    assert codegen.short_requant(fb, sums, [0.01, 3.0]) == 0  # left shift
    assert (
        codegen.short_requant(np.array([1 << 29, 0]), np.array([1 << 22, 0]), [0.01, 0.01]) == 0
    )  # |acc| may reach 2^30
    src = generate_model_sources(factory.get(MIX_A, seed=21, name="dsp_mix_a"), tmp_path)
    flags = re.findall(r"^    \.short_requant = ([01]),", src.model_c.read_text(), re.M)
    assert len(flags) == src.ops.count("CONV_2D") + src.ops.count("DEPTHWISE_CONV_2D") + src.ops.count(
        "FULLY_CONNECTED"
    )


# ---- QEMU: the DSP firmware -----------------------------------------------------------------


def _require_tools():
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-objdump", "qemu-system-arm"):
        assert shutil.which(tool), f"{tool} is required for these tests"


def _check_on_device(tflite: Path, board: str, out: Path, n: int, seed: int = 3) -> dict:
    from tinykd.device.evaluate import run_on_device
    from tinykd.firmware.build import build_firmware

    fw = build_firmware(tflite, board, out)
    dis = subprocess.run(
        ["arm-none-eabi-objdump", "-d", str(fw.build.elf)], capture_output=True, text=True, check=True
    ).stdout
    # the DSP kernels are really in the image (chosen from __ARM_FEATURE_DSP, not by hand)
    assert "smlad" in dis and "sxtb16" in dis, "no DSP instructions in the firmware"
    shape = fw.sources.input_shape
    xs = random_inputs(shape, n, seed)
    refs = tflm_outputs(tflite, xs)
    _refs_vary(refs)
    x = np.stack([v.reshape(-1) for v in xs])
    run = run_on_device(board, fw.build.elf, x, expected_sha256=fw.sources.sha256, instances=1, progress=False)
    ref = np.stack([r.reshape(-1) for r in refs])
    bad = np.flatnonzero(np.any(run.outputs != ref, axis=1))
    assert bad.size == 0, (
        f"{board}: inputs {bad.tolist()} differ from TFLite Micro, first: "
        f"ours {run.outputs[bad[0]].tolist()} TFLM {ref[bad[0]].tolist()}"
    )
    return {"counts": run.counts, "macs": fw.sources.macs}


@pytest.mark.parametrize("name", ["mix_a", "mix_b", "mix_c", "mix_d", "per_tensor"])
def test_dsp_kernels_bit_exact_on_m4(name, factory, tmp_path):
    _require_tools()
    spec = {"mix_a": MIX_A, "mix_b": MIX_B, "mix_c": MIX_C, "mix_d": MIX_D, "per_tensor": PER_TENSOR}[name]
    path = factory.get(spec, seed=21, per_tensor=name == "per_tensor", name="dsp_" + name)
    _check_on_device(path, "mps2-an386", tmp_path / "fw", n=10)


@pytest.mark.parametrize("name", SMALL_BENCH)
def test_dsp_models_bit_exact_on_m4(name, bench_dir, tmp_path):
    _require_tools()
    res = _check_on_device(runtime_bench.make_model(name, bench_dir), "mps2-an386", tmp_path / "fw", n=6)
    # and the DSP build is fast: instructions per MAC well below the portable C's (~2.9
    # MLP, ~6.3 CNN, ~4 DS-CNN measured); generous bounds, QEMU counts are deterministic
    per_mac = float(np.median(res["counts"])) / res["macs"]
    assert per_mac < {"mnist_mlp_784_300_300_10": 2.4, "small_cnn": 5.5, "ds_cnn_kws": 3.4}[name]


@pytest.mark.parametrize("name", MLPERF_BENCH)
def test_dsp_mlperf_models_bit_exact_on_m4(name, bench_dir, tmp_path):
    """The MLPerf Tiny classes with the DSP kernels on QEMU M4 (the 3x3 convs with K up to
    576 in 4-pixel blocks, the tabulated ADD, the FC assembly loop, per-tensor FC), every
    output byte vs TFLM; and faster than TFLM + CMSIS-NN's figure of issue 11."""
    _require_tools()
    from tinykd.bench.profile import profile_layers

    tflite = runtime_bench.make_model(name, bench_dir)
    n_in = runtime_bench._input_bytes(tflite)
    x = np.random.default_rng(7).integers(-128, 128, (2, n_in), dtype=np.int16).astype(np.int8)
    x = np.concatenate([x, np.full((1, n_in), -128, np.int8)])
    ys, layers, counts, src = profile_layers(tflite, x, tmp_path / "fw")
    ref = runtime_bench.tflm_reference(tflite, x, src.input_shape)
    assert np.unique(ref).size >= 2  # (the wake-word model has 2 classes)
    np.testing.assert_array_equal(ys, ref)
    assert sum(L.macs for L in layers) == src.macs
    assert np.median(counts) < 0.85 * runtime_bench.TFLM_CMSIS_NN[name]


@pytest.mark.parametrize("board", ["mps2-an500", "mps2-an505", "mps3-an547"])
def test_dsp_kernels_bit_exact_on_m7_m33_m55(board, factory, tmp_path):
    _require_tools()
    path = factory.get(MIX_B, seed=21, name="dsp_mix_b")
    _check_on_device(path, board, tmp_path / "fw", n=4)


def test_runtime_dir_has_no_foreign_headers():
    # written here, not copied: no CMSIS / TF licence headers in the runtime
    for f in runtime_dir().iterdir():
        text = f.read_text(errors="replace")
        assert "Copyright" not in text and "SPDX" not in text, f.name
