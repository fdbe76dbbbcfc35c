"""Code generation from .tflite: the model.h contract, determinism, planning, errors, and a
warning-free Cortex-M4 build of the runtime plus a generated model."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _tflite_models import ModelFactory  # noqa: E402

from tinykd.errors import TinykdError  # noqa: E402
from tinykd.firmware.codegen import SUPPORTED_OPS, generate_model_sources  # noqa: E402
from tinykd.firmware.host_build import runtime_sources  # noqa: E402
from tinykd.firmware.tflite_model import read_tflite  # noqa: E402

CNN = (
    (12, 12, 2),
    [
        ("conv", 4, 3, 1, "same", "relu"),
        ("maxpool", 2, 2, "valid"),
        ("dw", 3, 1, "same", 2, "relu6"),
        ("add_branch", None),
        ("avgpool", 2, 2, "valid"),
        ("flatten",),
        ("dense", 6, None),
        ("softmax",),
    ],
)


@pytest.fixture(scope="session")
def factory(tmp_path_factory):
    return ModelFactory(tmp_path_factory.getbasetemp() / "tflite_models")


@pytest.fixture(scope="module")
def cnn(factory):
    return factory.get(CNN, seed=9, name="codegen_cnn")


def macros(text: str) -> dict[str, str]:
    return dict(re.findall(r"^#define (TKD_MODEL_\w+)\s+(.+?)(?:\s*/\*.*)?$", text, re.M))


def test_header_contract(cnn, tmp_path):
    src = generate_model_sources(cnn, tmp_path)
    assert src.model_h == tmp_path / "model.h" and src.model_c == tmp_path / "model.c"
    h = src.model_h.read_text()
    m = macros(h)
    tfl = read_tflite(cnn)
    assert int(m["TKD_MODEL_INPUT_BYTES"]) == 12 * 12 * 2 == int(np.prod(src.input_shape))
    assert int(m["TKD_MODEL_OUTPUT_BYTES"]) == 6
    assert int(m["TKD_MODEL_ARENA_BYTES"]) == src.arena_bytes > 0
    tin = tfl.tensors[tfl.inputs[0]]
    assert np.float32(m["TKD_MODEL_INPUT_SCALE"].rstrip("f")) == np.float32(tin.scale[0])
    assert int(m["TKD_MODEL_INPUT_ZERO_POINT"]) == tin.zero_point[0] == src.input_zero_point
    assert np.float32(m["TKD_MODEL_OUTPUT_SCALE"].rstrip("f")) == np.float32(1 / 256)
    assert int(m["TKD_MODEL_OUTPUT_ZERO_POINT"]) == -128
    assert m["TKD_MODEL_NAME"] == f'"{cnn.stem}"'
    assert "#include <stdint.h>" in h
    assert "extern const uint8_t tkd_model_hash[8];" in h
    assert "int tkd_model_invoke(const int8_t *input, int8_t *output);" in h
    # the input and output live in the arena, exposed to the caller
    assert m["TKD_MODEL_IO_IN_ARENA"] == "1"
    assert int(m["TKD_MODEL_INPUT_OFFSET"]) == src.input_offset
    assert int(m["TKD_MODEL_OUTPUT_OFFSET"]) == src.output_offset
    assert src.input_offset + 12 * 12 * 2 <= src.arena_bytes and src.output_offset + 6 <= src.arena_bytes
    assert "int8_t *tkd_model_input(void);" in h and "int8_t *tkd_model_output(void);" in h
    c = src.model_c.read_text()
    digest = hashlib.sha256(cnn.read_bytes()).digest()[:8]
    assert "const uint8_t tkd_model_hash[8] = { " + ", ".join(f"0x{b:02x}" for b in digest) + " };" in c
    assert src.sha256 == hashlib.sha256(cnn.read_bytes()).hexdigest()
    assert "static int8_t arena[TKD_MODEL_ARENA_BYTES] TKD_ALIGN(16);" in c
    assert "malloc" not in c
    # ModelSources bookkeeping
    assert src.ops == [
        "CONV_2D",
        "MAX_POOL_2D",
        "DEPTHWISE_CONV_2D",
        "CONV_2D",
        "ADD",
        "AVERAGE_POOL_2D",
        "RESHAPE",
        "FULLY_CONNECTED",
        "SOFTMAX",
    ]
    assert src.input_shape == (1, 12, 12, 2) and src.output_shape == (1, 6)
    consts = [
        t
        for t in tfl.tensors
        if t.is_constant and t.type in ("INT8",) or (t.is_constant and t.type == "INT32" and t.scale)
    ]
    assert src.param_count == sum(t.num_elements for t in consts)
    assert src.weight_bytes == sum(t.nbytes for t in consts)
    # one static function per layer (the RESHAPE is an in-place alias with no function)
    assert len(re.findall(r"^static (?:void|int) layer_\d\d_\w+\(", c, re.M)) == len(src.ops) - 1


def test_arena_is_planned_by_lifetime(cnn, tmp_path):
    src = generate_model_sources(cnn, tmp_path)
    tfl = read_tflite(cnn)
    acts = {t for op in tfl.operators for t in op.inputs + op.outputs if t >= 0 and not tfl.tensors[t].is_constant}
    total = sum(tfl.tensors[t].nbytes for t in acts)
    assert src.activations_total_bytes == total
    # With the input and output, and with reuse, the arena is well below the sum of all tensors.
    assert src.arena_bytes <= total * 2 // 3
    # the largest single tensor (12x12x4 conv output) must fit
    assert src.arena_bytes >= 12 * 12 * 4
    # every arena offset + its tensor size stays inside the arena
    c = src.model_c.read_text()
    for m in re.finditer(r"t\d+ \[([\d, ]+)\] @ arena(?: \+ (\d+))?", c):
        size = int(np.prod([int(v) for v in m.group(1).split(",")]))
        assert int(m.group(2) or 0) + size <= src.arena_bytes
    # no two tensors that are alive at the same time share bytes (aliases share a root), except
    # an output its layer writes over the input it consumes
    plan = src.arena_plan
    assert len(plan) >= 7 and {tfl.inputs[0], tfl.outputs[0]} <= {a.tensor for a in plan}
    for i, a in enumerate(plan):
        assert a.offset % 4 == 0 and a.end <= src.arena_bytes
        for b in plan[i + 1 :]:
            if not a.may_share_bytes(b):
                assert a.end <= b.offset or b.end <= a.offset, (a, b)
    assert any(a.overwrites for a in plan)  # the conv, the pools, the ADD or the softmax


def test_deterministic_output(cnn, tmp_path):
    a = generate_model_sources(cnn, tmp_path / "a")
    b = generate_model_sources(cnn, tmp_path / "b")
    assert a.model_c.read_bytes() == b.model_c.read_bytes()
    assert a.model_h.read_bytes() == b.model_h.read_bytes()
    assert str(tmp_path) not in a.model_c.read_text()  # no absolute paths leak in


@pytest.mark.parametrize("act,opname", [("tanh", "TANH"), ("sigmoid", "LOGISTIC")])
def test_unsupported_op_is_named(factory, tmp_path, act, opname):
    path = factory.get(((8,), [("dense", 4, None), ("act", act)]), seed=1, name=act)
    with pytest.raises(TinykdError) as e:
        generate_model_sources(path, tmp_path)
    msg = str(e.value)
    assert opname in msg and all(op in msg for op in SUPPORTED_OPS)
    assert not (tmp_path / "model.c").exists()


def test_float_model_is_refused(factory, tmp_path):
    path = factory.get(((8,), [("dense", 4, "relu")]), seed=1, quantize=False, name="float")
    with pytest.raises(TinykdError, match="FLOAT32.*int8"):
        generate_model_sources(path, tmp_path)


def test_corrupt_files_are_refused(cnn, tmp_path):
    data = cnn.read_bytes()
    cases = {
        "empty.tflite": b"",
        "text.tflite": b"this is not a model at all, just some text\n" * 4,
        "half.tflite": data[: len(data) // 2],
        "head.tflite": data[:64],
        "noise.tflite": data[:8] + bytes(np.random.default_rng(0).integers(0, 256, 2000, np.uint8)),
    }
    for name, blob in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        with pytest.raises(TinykdError):
            generate_model_sources(p, tmp_path / "out")
    with pytest.raises(TinykdError, match="Cannot read"):
        generate_model_sources(tmp_path / "missing.tflite", tmp_path / "out")
    assert not (tmp_path / "out" / "model.c").exists()


def test_cortex_m4_build_is_warning_free(cnn, tmp_path):
    gcc = shutil.which("arm-none-eabi-gcc")
    assert gcc, "arm-none-eabi-gcc is required for this test"
    src = generate_model_sources(cnn, tmp_path / "model")
    rt_dir = runtime_sources()[0].parent
    flags = [
        "-mcpu=cortex-m4",
        "-mthumb",
        "-mfpu=fpv4-sp-d16",
        "-mfloat-abi=hard",
        "-O2",
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-c",
    ]
    objs = []
    for c in runtime_sources() + [src.model_c]:
        obj = tmp_path / (c.stem + ".o")
        r = subprocess.run(
            [gcc, *flags, f"-I{rt_dir}", f"-I{src.model_c.parent}", str(c), "-o", str(obj)],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0 and not r.stderr, f"{c.name}:\n{r.stderr}"
        objs.append(obj)
    # model.c's only undefined symbols are runtime functions (no libc, no malloc)
    nm = subprocess.run(
        ["arm-none-eabi-nm", "-u", str(tmp_path / "model.o")], capture_output=True, text=True, check=True
    ).stdout.split()
    undefined = [s for s in nm if s != "U"]
    assert undefined and all(s.startswith("tkd_") for s in undefined), undefined


def test_generated_c_is_tidy(cnn, tmp_path):
    """Designated initialisers, comments cut to a sane length (TFLite tensor names run to
    hundreds of characters), lines within the house column limit, no dead statements."""
    src = generate_model_sources(cnn, tmp_path)
    tfl = read_tflite(cnn)
    assert max(len(t.name) for t in tfl.tensors) > 100  # the converter's long fused names
    c, h = src.model_c.read_text(), src.model_h.read_text()
    for text in (c, h):
        too_long = [line for line in text.splitlines() if len(line) > 100]
        assert not too_long, too_long
    assert re.search(r"^static const tkd_conv_params_t layer_00_conv_2d_params = \{\n    \.batches = 1,$", c, re.M)
    assert "    .stride_h = 1, .stride_w = 1,\n" in c
    assert "    .dims = { " in c and "(void)input" not in c and "(void)output" not in c
    assert "...: INT32 [" in c  # a long bias name, cut
    # one header comment with the model's sizes
    assert c.startswith("/* Generated by tinykd from codegen_cnn")
    assert f" * arena       {src.arena_bytes} bytes" in c and f" * MACs        {src.macs} per inference" in c


def test_model_facts_round_trip(cnn, tmp_path):
    from tinykd.firmware.codegen import ModelSources

    src = generate_model_sources(cnn, tmp_path)
    assert ModelSources.from_dir(tmp_path) == src
    assert src.input_bytes == 12 * 12 * 2 and src.output_bytes == 6
    assert ModelSources.from_dir(tmp_path / "nothing") is None
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(TinykdError, match="model.json.*tinykd firmware --model"):
        ModelSources.from_dir(tmp_path)


# Same-size layers in a chain, so the smallest arena needs each layer to write over the input
# it consumes: 3x3 and 1x1 convs that keep or narrow the channels (with a lead), max and average
# pools (stride 1), an ADD, a strided conv
OVERWRITE = (
    (10, 10, 8),
    [
        ("conv", 8, 3, 1, "same", "relu"),
        ("conv", 8, 1, 1, "same", None),
        ("maxpool", 2, 1, "same"),
        ("conv", 8, 3, 1, "same", "relu"),
        ("avgpool", 3, 1, "same"),
        ("conv", 4, 1, 1, "same", "relu6"),
        ("add_branch", None),
        ("conv", 6, 3, 2, "same", "relu6"),
        ("flatten",),
        ("dense", 5, None),
        ("softmax",),
    ],
)


@pytest.mark.parametrize(
    "flags",
    [(), ("-DTKD_CONV_COL_MAX=0",), ("-DTKD_USE_DSP=1", "-DTKD_DSP_EMULATE")],
    ids=["portable", "reference-loops", "dsp-emulated"],
)
def test_io_in_arena_and_overwriting_layers_are_bit_exact(factory, cnn, tmp_path, flags):
    """On the host: the input written at tkd_model_input(), tkd_model_invoke(NULL, NULL), the
    output read at tkd_model_output(), equal to TFLite Micro on every byte, for models whose
    layers write over the inputs they consume, in the portable, reference-loop and (emulated)
    DSP builds of the kernels; and the copying form of tkd_model_invoke gives the same."""
    import ctypes

    from _tflite_models import random_inputs, tflm_outputs

    from tinykd.firmware.host_build import build_shared_library

    for k, path in enumerate([factory.get(OVERWRITE, seed=3, name="overwrite"), cnn]):
        src = generate_model_sources(path, tmp_path / str(k))
        overwrites = [a for a in src.arena_plan if a.overwrites]
        assert len(overwrites) >= (8 if k == 0 else 1), overwrites
        lib = ctypes.CDLL(
            str(build_shared_library(runtime_sources() + [src.model_c], [src.model_c.parent], extra_flags=flags))
        )
        lib.tkd_model_input.restype = lib.tkd_model_output.restype = ctypes.POINTER(ctypes.c_int8)
        lib.tkd_model_invoke.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        xs = random_inputs(src.input_shape, 6, seed=11)
        refs = tflm_outputs(path, xs)
        assert np.unique(np.concatenate([r.reshape(-1) for r in refs])).size >= 3
        for x, ref in zip(xs, refs):
            x = np.ascontiguousarray(x, np.int8).reshape(-1)
            ctypes.memmove(lib.tkd_model_input(), x.ctypes.data, x.size)
            assert lib.tkd_model_invoke(None, None) == 0
            got = np.ctypeslib.as_array(lib.tkd_model_output(), (src.output_bytes,)).copy()
            np.testing.assert_array_equal(got, ref.reshape(-1))
            out = np.zeros(src.output_bytes, np.int8)  # the copying form: any buffers
            assert lib.tkd_model_invoke(x.ctypes.data, out.ctypes.data) == 0
            np.testing.assert_array_equal(out, ref.reshape(-1))
