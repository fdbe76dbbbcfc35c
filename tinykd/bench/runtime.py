"""Benchmark the tinykd int8 runtime on QEMU mps2-an386 (Cortex-M4): instructions per
inference and per MAC, portable C vs the DSP (SIMD) kernels, arena bytes vs TFLite Micro's,
runtime .text size. Every run is also checked byte for byte against the tflite-micro
interpreter (a benchmark of wrong answers would mean nothing).

    tinykd bench --out OUT_DIR                          # writes OUT_DIR/runtime_bench.json
    python benchmarks/runtime_bench.py [OUT_DIR]        # the same, from a checkout
    python benchmarks/runtime_bench.py --layers [OUT_DIR]   # DS-CNN per layer (DSP build)

`run_runtime_bench(out_dir) -> dict` is the importable entry point (also `tinykd.bench`).

QEMU with `-icount shift=0` counts executed INSTRUCTIONS (SysTick, resolution 40), not
cycles: a real M4 takes more cycles than instructions (loads, SMLAD are 1-2 cycles, flash
wait states, branches)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..models.from_spec import build_from_spec
from .models import fc_autoencoder, mobilenet_v1_vww, resnet8_cifar

BOARD = "mps2-an386"
N_INPUTS = 8  # inferences per model and variant (counts are deterministic)
# the large models: fewer inferences (QEMU is slow on them; every count is the same)
N_INPUTS_LARGE = {"mobilenet_v1_025_vww": 2, "resnet8_cifar": 2, "fc_autoencoder": 4}

# (input shape, layers): the same small spec language as tests/_tflite_models.py
MODELS = {
    "mnist_mlp_784_300_300_10": (
        (784,),
        [("dense", 300, "relu"), ("dense", 300, "relu"), ("dense", 10, None), ("softmax",)],
    ),
    "small_cnn": (
        (28, 28, 1),
        [
            ("conv", 8, 3, 1, "same", "relu"),
            ("maxpool", 2, 2, "valid"),
            ("conv", 16, 3, 1, "same", "relu"),
            ("avgpool", 2, 2, "valid"),
            ("flatten",),
            ("dense", 10, None),
        ],
    ),
    "ds_cnn_kws": (
        (49, 10, 1),
        [("conv", 64, (10, 4), 2, "same", "relu")]
        + [("dw", 3, 1, "same", 1, "relu"), ("conv", 64, 1, 1, "same", "relu")] * 4
        + [("avgpool", (25, 5), 1, "valid"), ("flatten",), ("dense", 12, None), ("softmax",)],
    ),
    # the MLPerf Tiny classes of issue 11 (tinykd/bench/models.py)
    "mobilenet_v1_025_vww": mobilenet_v1_vww,
    "fc_autoencoder": fc_autoencoder,
    "resnet8_cifar": resnet8_cifar,
}
# Instructions per inference of TFLM + CMSIS-NN on QEMU mps2-an386 for these model classes
# (issue 11: TFLM 90b983c2 + CMSIS-NN 4ab83cc3, cortex_m_generic flags, -O2).
TFLM_CMSIS_NN = {
    "ds_cnn_kws": 7.70e6,
    "mobilenet_v1_025_vww": 24.10e6,
    "fc_autoencoder": 0.583e6,
    "resnet8_cifar": 29.86e6,
}


# The KWS model takes the device frontend's MFCC features: int8 with scale 0.5 and zero point
# 45 (firmware/frontend/tkd_frontend.h; the app refuses other input quantisation), i.e. real
# values in [-86.5, 41]. Calibrating on that exact range gives the converter those numbers.
INPUT_RANGES = {"ds_cnn_kws": (-86.5, 41.0)}
# Models converted with per-tensor weights: the autoencoder's Dense layers, as the converter
# made them for the public MLPerf Tiny model (per-channel everywhere else).
PER_TENSOR = {"fc_autoencoder"}


def convert_int8(model, path: Path, seed: int, input_range=None, per_tensor: bool = False) -> Path:
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    shape = (1, *model.input_shape[1:])
    if input_range:
        lo, hi = input_range
        calib = [rng.uniform(lo, hi, shape).astype(np.float32) for _ in range(24)]
        for c in calib:
            c.reshape(-1)[:2] = (lo, hi)
    else:
        calib = [rng.normal(0.0, 1.0, shape).astype(np.float32) for _ in range(24)]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if per_tensor:
        conv._experimental_disable_per_channel = True
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([c] for c in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    path.write_bytes(conv.convert())
    return path


def make_model(name: str, out_dir: Path, seed: int = 0) -> Path:
    path = Path(out_dir) / f"{name}.tflite"
    if not path.exists():
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        tmp = path.with_name(path.name + ".tmp")
        spec = MODELS[name]
        model = spec(seed) if callable(spec) else build_from_spec(spec, seed)
        convert_int8(model, tmp, seed, INPUT_RANGES.get(name), per_tensor=name in PER_TENSOR)
        os.replace(tmp, path)
    return path


def tflm_reference(tflite: Path, x: np.ndarray, shape) -> np.ndarray:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_file(str(tflite))
    out = []
    for row in x:
        interp.set_input(row.reshape(shape), 0)
        interp.invoke()
        out.append(np.array(interp.get_output(0)).reshape(-1).copy())
    return np.stack(out)


@contextlib.contextmanager
def _capture_fds():
    """Capture what C++ code prints on file descriptors 1 and 2."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile(mode="w+b") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        box = {}
        try:
            yield box
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            f.seek(0)
            box["text"] = f.read().decode(errors="replace")


def tflm_arena_bytes(tflite: Path) -> int | None:
    """Arena TFLite Micro's recording allocator needs for the model (print_allocations)."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_file(str(tflite))
    with _capture_fds() as box:
        interp.print_allocations()
    m = re.search(r"\[RecordingMicroAllocator\] Arena allocation total (\d+) bytes", box["text"])
    return int(m.group(1)) if m else None


def _runtime_text_bytes(fw_dir: Path) -> int:
    """.text of the runtime's object files (kernels used by this model, after gc-sections the
    linker keeps a subset; here the sum over the runtime's objects as compiled)."""
    total = 0
    for obj in sorted((fw_dir / "build" / "runtime").glob("*.o")):
        r = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True, text=True, check=True)
        total += sum(int(v) for k, v in re.findall(r"^(\.text\S*)\s+(\d+)", r.stdout, re.M))
    return total


def _linked_runtime_text(fw_dir: Path) -> int:
    """Bytes of runtime code the linker kept in firmware.elf (symbols from runtime/*.o)."""
    mapfile = (fw_dir / "build" / "firmware.map").read_text(errors="replace")
    mapfile = mapfile.split("Linker script and memory map", 1)[-1]  # skip discarded sections
    total = 0
    for m in re.finditer(r"^ \.text\.\S+\s*\n?\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+build/runtime/", mapfile, re.M):
        total += int(m.group(1), 16)
    return total


def _input_bytes(tflite: Path) -> int:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_file(str(tflite))
    return int(np.prod(interp.get_input_details(0)["shape"]))


def build_variant(tflite: Path, out: Path, dsp: bool):
    """Generate + compile the firmware with the DSP kernels on or off."""
    from ..boards import load_board
    from ..firmware.codegen import generate_model_sources
    from ..firmware.project import build_project, generate_project

    board = load_board(BOARD)
    src = generate_model_sources(tflite, out / "model")
    proj = generate_project(board, out / "model", out)
    if not dsp:
        mk = (out / "Makefile").read_text()
        mk = mk.replace("$(EXTRA_CFLAGS)", "$(EXTRA_CFLAGS) -DTKD_USE_DSP=0")
        (out / "Makefile").write_text(mk)
    res = build_project(proj)
    return src, res


def run_runtime_bench(out_dir: str | os.PathLike, models=None) -> dict:
    """Build every model portable and DSP with the profile harness (tinykd.bench.profile),
    run it on QEMU, compare every output with TFLM, write out_dir/runtime_bench.json and
    return the same dict: instructions per inference (and per layer and layer type, first
    input), arena (ours, which holds the input and output, vs TFLM's), runtime .text."""
    from .profile import profile_layers

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "board": BOARD,
        "unit": "instructions (QEMU -icount shift=0)",
        "models": {},
    }
    for name in models or MODELS:
        tflite = make_model(name, out_dir)
        entry: dict = {"tflite_bytes": tflite.stat().st_size}
        n_inputs = N_INPUTS_LARGE.get(name, N_INPUTS)
        for variant in ("portable", "dsp"):
            t0 = time.perf_counter()
            fw_dir = out_dir / name / variant
            n_in = _input_bytes(tflite)
            x = np.random.default_rng(1).integers(-128, 128, (n_inputs, n_in), dtype=np.int16).astype(np.int8)
            ys, layers, counts, src = profile_layers(tflite, x, fw_dir, board=BOARD, dsp=variant == "dsp")
            ref = tflm_reference(tflite, x, src.input_shape)
            mismatches = int(np.any(ys != ref, axis=1).sum())
            if mismatches:
                raise RuntimeError(
                    f"{name} ({variant}): {mismatches} of {n_inputs} outputs differ from TFLite Micro; "
                    "the benchmark is void"
                )
            by_kind: dict = {}
            for L in layers:
                k = by_kind.setdefault(L.kind, {"instructions": 0, "macs": 0, "layers": 0})
                k["instructions"] += L.instructions
                k["macs"] += L.macs
                k["layers"] += 1
            for k in by_kind.values():
                k["per_mac"] = round(k["instructions"] / k["macs"], 3) if k["macs"] else None
            entry["macs"] = src.macs
            # the input and output live in the arena (model.h): it is the whole comparison
            entry["arena_bytes"] = src.arena_bytes
            entry["arena_with_io_bytes"] = src.arena_bytes
            entry[variant] = {
                "inputs": n_inputs,
                "instructions_per_inference": int(np.median(counts)),
                "instructions_min_max": [int(counts.min()), int(counts.max())],
                "instructions_per_mac": round(float(np.median(counts)) / src.macs, 3),
                "mismatches_vs_tflm": mismatches,
                "layers": [
                    {"index": L.index, "summary": L.summary, "kind": L.kind, "macs": L.macs}
                    | {"instructions": L.instructions}
                    for L in layers
                ],
                "by_layer_type": by_kind,
                "runtime_text_linked": _linked_runtime_text(fw_dir),
                "runtime_text_all_kernels": _runtime_text_bytes(fw_dir),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        entry["tflm_arena_bytes"] = tflm_arena_bytes(tflite)
        if name in TFLM_CMSIS_NN:
            entry["tflm_cmsis_nn_instructions"] = TFLM_CMSIS_NN[name]
            ours = entry["dsp"]["instructions_per_inference"]
            entry["ratio_dsp_vs_tflm_cmsis_nn"] = round(ours / TFLM_CMSIS_NN[name], 3)
        if entry["tflm_arena_bytes"]:
            entry["arena_ratio_vs_tflm"] = round(entry["arena_with_io_bytes"] / entry["tflm_arena_bytes"], 3)
        results["models"][name] = entry
    (out_dir / "runtime_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def run_layer_bench(out_dir: str | os.PathLike, dsp: bool = True) -> dict:
    """Per-layer instructions of the DS-CNN: firmwares of its first 1, 2 and 3 layers, each
    followed by the model's own tail (average pool, FC, softmax), so successive differences
    are the depthwise and the pointwise layer; the first conv is the 1-layer count minus the
    tail (84 260 instructions with the runtime of benchmarks/runtime.md).
    Checked against TFLite Micro like the main benchmark. Writes out_dir/layer_bench.json."""
    from ..device.evaluate import run_on_device

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shape, layers = MODELS["ds_cnn_kws"]
    counts = {}
    for n in (1, 2, 3):
        path = out_dir / f"ds_cnn_first{n}.tflite"
        if not path.exists():
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
            convert_int8(build_from_spec((shape, layers[:n] + layers[-4:]), 0), path, 0, INPUT_RANGES["ds_cnn_kws"])
        src, res = build_variant(path, out_dir / f"first{n}", dsp=dsp)
        x = np.random.default_rng(1).integers(-128, 128, (4, int(np.prod(src.input_shape))))
        x = x.astype(np.int8)
        run = run_on_device(BOARD, res.elf, x, expected_sha256=src.sha256, instances=1, progress=False)
        if np.any(run.outputs != tflm_reference(path, x, src.input_shape)):
            raise RuntimeError(f"first {n} layers: outputs differ from TFLite Micro")
        counts[n] = int(np.median(run.counts))
    result = {"first_conv_plus_tail": counts[1], "depthwise": counts[2] - counts[1], "pointwise": counts[3] - counts[2]}
    (out_dir / "layer_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str]) -> int:
    """`python benchmarks/runtime_bench.py [--layers] [OUT_DIR]`: run a benchmark, print its JSON."""
    if len(argv) > 1 and argv[1] == "--layers":
        out = Path(argv[2]) if len(argv) > 2 else Path("build") / "runtime-bench-layers"
        print(json.dumps(run_layer_bench(out), indent=2))
        return 0
    out = Path(argv[1]) if len(argv) > 1 else Path("build") / "runtime-bench"
    res = run_runtime_bench(out)
    print(json.dumps(res, indent=2))
    return 0
