"""Build random models, run them on tinykd's runtime (host build) and on TFLite Micro, and
compare every output byte.

`run_fuzz(n_models, seed, inputs_per_model, out_dir)` is the entry point; `check_model`
runs one model (by its seed) and is what a failure's reproduction line calls.

Per model: the .tflite (random_models), model.c/.h from the code generator, the runtime +
model compiled for the host (portable kernels, `tinykd.firmware.host_build`) and loaded with
ctypes, and the `tflite-micro` interpreter. Inputs: random int8 bytes, all -128, all 127,
and inputs aimed at rounding ties (ties.py). A float-input model takes floats: the int8
inputs above mapped to their exact float values, uniform floats over the calibrated range,
and floats on the input QUANTIZE's own rounding ties ((k + 1/2) * scale and its float
neighbours). On our side the float boundary is the caller's (the generated model runs int8 in,
int8 out): quantize_f32 / dequantize_f32, TFLite Micro's float32 arithmetic in numpy; float
outputs are compared bit for bit.
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinykd.fuzz import random_models, ties

MAX_DETAILS = 5  # mismatching elements kept per failing model


@dataclass
class ModelResult:
    seed: int
    spec: str  # the spec's description (layers and their parameters)
    ops: list[str]  # operator sequence in the .tflite
    inputs: int = 0
    bytes_compared: int = 0
    mismatching_bytes: int = 0
    tie_inputs: int = 0
    ties_landed: int = 0  # aimed elements put exactly on a rounding edge
    error: str | None = None  # code generator / build / interpreter failure
    details: list[str] = field(default_factory=list)  # first mismatches
    path: str = ""
    family: str | None = None  # the forced family, if any (needed to reproduce)

    @property
    def failed(self) -> bool:
        return self.error is not None or self.mismatching_bytes > 0

    def reproduce(self) -> str:
        fam = f", family={self.family!r}" if self.family else ""
        return f"python -c 'from tinykd.fuzz import check_model; print(check_model({self.seed}{fam}))'"


@dataclass
class FuzzReport:
    models: int = 0
    inputs: int = 0
    bytes_compared: int = 0
    mismatching_bytes: int = 0
    errors: int = 0  # models the code generator refused or that failed to build/run
    tie_inputs: int = 0
    ties_landed: int = 0
    seconds: float = 0.0
    op_counts: dict[str, int] = field(default_factory=dict)
    failures: list[ModelResult] = field(default_factory=list)

    @property
    def failing_models(self) -> int:
        return len(self.failures)

    def add(self, r: ModelResult) -> None:
        self.models += 1
        self.inputs += r.inputs
        self.bytes_compared += r.bytes_compared
        self.mismatching_bytes += r.mismatching_bytes
        self.tie_inputs += r.tie_inputs
        self.ties_landed += r.ties_landed
        self.errors += r.error is not None
        for op in r.ops:
            self.op_counts[op] = self.op_counts.get(op, 0) + 1
        if r.failed:
            self.failures.append(r)

    def summary(self) -> str:
        lines = [
            f"{self.models} models, {self.inputs} inputs ({self.tie_inputs} aimed at ties, "
            f"{self.ties_landed} elements on a rounding edge), {self.bytes_compared} output bytes "
            f"compared, {self.mismatching_bytes} mismatching; {self.errors} models failed to "
            f"generate/build/run; {self.seconds:.0f} s",
            "ops: " + ", ".join(f"{k} {v}" for k, v in sorted(self.op_counts.items())),
        ]
        for f in self.failures:
            lines.append(f"FAIL {f.spec}")
            lines.append(f"  ops {' '.join(f.ops)}")
            if f.error:
                lines.append(f"  error: {f.error}")
            else:
                lines.append(f"  {f.mismatching_bytes} of {f.bytes_compared} bytes differ")
            lines += [f"  {d}" for d in f.details]
            lines.append(f"  reproduce: {f.reproduce()}")
        return "\n".join(lines)


# ---- the two sides ---------------------------------------------------------------------------


class HostModel:
    """model.c + the runtime compiled for the host (portable kernels), via ctypes."""

    def __init__(self, tflite_path: Path, out_dir: Path):
        from tinykd.firmware.codegen import generate_model_sources
        from tinykd.firmware.host_build import build_shared_library, runtime_sources

        out_dir.mkdir(parents=True, exist_ok=True)
        self.sources = generate_model_sources(tflite_path, out_dir)
        lib_path = build_shared_library(
            runtime_sources() + [self.sources.model_c], include_dirs=[self.sources.model_h.parent]
        )
        lib = ctypes.CDLL(str(lib_path))
        lib.tkd_model_invoke.restype = ctypes.c_int
        lib.tkd_model_invoke.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.lib = lib
        self.in_n = int(np.prod(self.sources.input_shape))
        self.out_n = int(np.prod(self.sources.output_shape))

    def run_int8(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.int8).reshape(-1)
        assert x.size == self.in_n
        out = np.zeros(self.out_n, np.int8)
        rc = self.lib.tkd_model_invoke(x.ctypes.data, out.ctypes.data)
        if rc != 0:
            raise RuntimeError(f"tkd_model_invoke returned {rc}")
        return out

    def quantize(self, xf: np.ndarray) -> np.ndarray:
        xf = np.ascontiguousarray(xf, dtype=np.float32).reshape(-1)
        return quantize_f32(xf, self.sources.input_scale, self.sources.input_zero_point)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(q, dtype=np.int8).reshape(-1)
        return dequantize_f32(q, self.sources.output_scale, self.sources.output_zero_point)


def quantize_f32(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """A float model's input QUANTIZE as TFLM's reference does it for int8: round(x / scale)
    (float32 division, ties away from zero) + zero point, saturated."""
    v = (np.asarray(x, np.float32) / np.float32(scale)).astype(np.float64)
    r = np.sign(v) * np.floor(np.abs(v) + 0.5)  # exact in float64 for float32 values
    r = np.clip(np.nan_to_num(r, nan=-1000.0), -1000, 1000).astype(np.int64) + int(zero_point)
    return np.clip(r, -128, 127).astype(np.int8)


def dequantize_f32(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """A float model's output DEQUANTIZE: float32(double(scale) * (q - zero point))."""
    d = np.float64(np.float32(scale)) * (np.asarray(q, np.int64) - int(zero_point))
    return d.astype(np.float32)


class TflmModel:
    def __init__(self, tflite_path: Path):
        from tflite_micro.python.tflite_micro import runtime

        self.interp = runtime.Interpreter.from_file(str(tflite_path))

    def run(self, x: np.ndarray) -> np.ndarray:
        self.interp.set_input(x, 0)
        self.interp.invoke()
        return np.array(self.interp.get_output(0)).copy()


# ---- inputs --------------------------------------------------------------------------------


def _float_ties(scale: float, zp: int, shape, rng: np.random.Generator) -> np.ndarray:
    """Floats on the boundary QUANTIZE's ties: float32((k + 1/2) * scale), or a neighbour."""
    k = rng.integers(-128 - zp, 128 - zp, size=shape).astype(np.float64)
    v = ((k + 0.5) * np.float64(scale)).astype(np.float32)
    nudge = rng.integers(-1, 2, size=shape)
    v = np.where(nudge > 0, np.nextafter(v, np.float32(np.inf)), v)
    v = np.where(nudge < 0, np.nextafter(v, np.float32(-np.inf)), v)
    return v.astype(np.float32)


def make_inputs(model, host: HostModel, n_random: int, n_ties: int, rng: np.random.Generator):
    """(kind, input) pairs in the model's input type; and the number of elements on ties."""
    s = host.sources
    shape = tuple(model.tensors[model.inputs[0]].shape)
    int8s: list[tuple[str, np.ndarray]] = []
    for _ in range(n_random):
        int8s.append(("random", rng.integers(-128, 128, size=s.input_shape).astype(np.int8)))
    int8s.append(("all -128", np.full(s.input_shape, -128, np.int8)))
    int8s.append(("all 127", np.full(s.input_shape, 127, np.int8)))
    landed = 0
    n_tie = 0
    for _ in range(n_ties):
        t = ties.tie_input(model, rng)
        if t is None:
            break
        int8s.append(("tie", t[0]))
        landed += t[1]
        n_tie += 1
    float_in = model.tensors[model.inputs[0]].type == "FLOAT32"
    if not float_in:
        return [(k, x.reshape(shape)) for k, x in int8s], n_tie, landed
    sc, zp = np.float32(s.input_scale), s.input_zero_point
    out = [(k, ((x.astype(np.int32) - zp) * sc).astype(np.float32).reshape(shape)) for k, x in int8s]
    lo, hi = float((-128 - zp) * sc), float((127 - zp) * sc)
    for _ in range(max(1, n_random // 2)):
        out.append(("float uniform", rng.uniform(lo, hi, size=shape).astype(np.float32)))
    for _ in range(max(1, n_ties // 2)):
        out.append(("float quantize tie", _float_ties(float(sc), zp, shape, rng)))
        n_tie += 1
    return out, n_tie, landed


# ---- one model --------------------------------------------------------------------------------


def check_model(
    seed: int,
    out_dir: str | os.PathLike | None = None,
    inputs_per_model: int = 8,
    family: str | None = None,
    isolate: bool = True,
) -> ModelResult:
    """Build the model of `seed`, run both sides on its inputs, compare every output byte
    (in a forked child when `isolate`, so that a crash is reported, not fatal)."""
    import tempfile

    from tinykd.firmware.tflite_model import read_tflite

    spec = random_models.random_spec(seed, family)
    root = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="tinykd-fuzz-"))
    root.mkdir(parents=True, exist_ok=True)
    res = ModelResult(seed, spec.describe(), [], family=family)
    path = root / f"fuzz_{seed}.tflite"
    res.path = str(path)
    try:
        if not path.exists():
            random_models.build_tflite(spec, path)
        model = read_tflite(path)
        res.ops = [op.opcode for op in model.operators]
    except Exception as e:  # noqa: BLE001 -- every failure is reported with its model
        msg = str(e).strip().splitlines()
        res.error = f"convert: {type(e).__name__}: {msg[-1][-400:] if msg else ''}"
        return res
    if isolate:
        return _in_child(res, root, inputs_per_model)
    return _compare(res, model, path, root, inputs_per_model)


def _in_child(res: ModelResult, root: Path, inputs_per_model: int) -> ModelResult:
    """_compare in a forked child: a crash of the interpreter or of the generated C (an
    abort, a segfault) becomes this model's error instead of ending the whole run. The
    parent has converted the model already (TensorFlow is not used after the fork)."""
    import multiprocessing as mp

    from tinykd.firmware.tflite_model import read_tflite

    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def child():
        try:
            out = _compare(res, read_tflite(res.path), Path(res.path), root, inputs_per_model)
        except BaseException as e:  # noqa: BLE001
            out = f"{type(e).__name__}: {e}"
        send.send(out)
        send.close()

    proc = ctx.Process(target=child)
    proc.start()
    send.close()
    try:
        out = recv.recv()
    except EOFError:
        out = None
    proc.join()
    if isinstance(out, ModelResult):
        return out
    res.error = out if isinstance(out, str) else f"crashed: the process died with exit code {proc.exitcode}"
    res.error = "tflm/codegen/build/run: " + res.error
    return res


def _compare(res: ModelResult, model, path: Path, root: Path, inputs_per_model: int) -> ModelResult:
    seed = res.seed
    stage = "tflm"
    try:
        tflm = TflmModel(path)
        stage = "codegen/build"
        host = HostModel(path, root / f"fuzz_{seed}")
    except Exception as e:  # noqa: BLE001 -- every failure is a finding, reported with its model
        msg = str(e).strip().splitlines()
        res.error = f"{stage}: {type(e).__name__}: {msg[-1][-400:] if msg else ''}"
        return res
    rng = np.random.default_rng([seed, 0x1B9C])
    n_ties = max(1, inputs_per_model // 2)
    n_random = max(1, inputs_per_model - n_ties)
    inputs, res.tie_inputs, res.ties_landed = make_inputs(model, host, n_random, n_ties, rng)
    float_in = model.tensors[model.inputs[0]].type == "FLOAT32"
    float_out = model.tensors[model.outputs[0]].type == "FLOAT32"
    for k, (kind, x) in enumerate(inputs):
        try:
            ref = tflm.run(x)
            q = host.quantize(x) if float_in else x
            got = host.run_int8(q)
            if float_out:
                got = host.dequantize(got)
            got = got.reshape(ref.shape).astype(ref.dtype)
        except Exception as e:  # noqa: BLE001
            res.error = f"input #{k} ({kind}): {type(e).__name__}: {e}"
            return res
        res.inputs += 1
        a, b = got.reshape(-1).view(np.uint8), ref.reshape(-1).view(np.uint8)
        res.bytes_compared += a.size
        bad = int(np.count_nonzero(a != b))
        if bad:
            res.mismatching_bytes += bad
            el = np.flatnonzero(got.reshape(-1) != ref.reshape(-1))
            for e in el[: max(0, MAX_DETAILS - len(res.details))]:
                res.details.append(
                    f"input #{k} ({kind}): output element {e}: ours {got.reshape(-1)[e]!r}, TFLM {ref.reshape(-1)[e]!r}"
                )
    return res


def model_seeds(n_models: int, seed: int) -> list[int]:
    """The per-model seeds of a run: distinct runs (seeds) draw disjoint models."""
    return [seed * 1_000_000 + k for k in range(n_models)]


def run_fuzz(
    n_models: int,
    seed: int = 0,
    inputs_per_model: int = 8,
    out_dir: str | os.PathLike | None = None,
    family: str | None = None,
    progress: bool = True,
    seeds: list[int] | None = None,
) -> FuzzReport:
    """Generate `n_models` random int8 models from `seed` (or the given model `seeds`), compare
    tinykd's runtime with TFLite Micro on `inputs_per_model` inputs each (half random, half
    aimed at ties, plus all -128 / all 127) and return the counts and every failing model."""
    import tempfile

    from tqdm import tqdm

    root = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="tinykd-fuzz-"))
    rep = FuzzReport()
    t0 = time.monotonic()
    todo = list(seeds) if seeds is not None else model_seeds(n_models, seed)
    bar = tqdm(todo, desc="fuzz", unit="model", disable=not progress)
    for s in bar:
        rep.add(check_model(s, root, inputs_per_model, family))
        bar.set_postfix(bytes=rep.bytes_compared, bad=rep.mismatching_bytes, fail=rep.failing_models)
    rep.seconds = time.monotonic() - t0
    return rep
