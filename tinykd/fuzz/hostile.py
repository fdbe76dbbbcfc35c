"""Hostile model files: damaged .tflite files against the reader and the code generator.

`run_hostile(n_cases, seed, out_dir) -> HostileReport` takes a small corpus of valid int8
models (random_models, converted once and kept in `out_dir/corpus`), damages one copy per
case (mutate.py: structure-aware edits through the flatbuffers object API, and raw byte
flips, overwrites and truncations) and checks what tinykd does with it:

1. `generate_model_sources` on the damaged file, in a forked child (memory and time
   limited). It must end in a TinykdError with a one-paragraph message or in model.c/.h;
   any other exception is a finding (`traceback`).
2. In the same child, after our verdict is sent, the TFLite Micro interpreter loads and runs
   the damaged file (it may abort the child: that counts as TFLM refusing it).
3. When our generator accepted the file, model.c is compiled with the runtime and a small
   driver into a host executable with `-fsanitize=address,undefined -fno-sanitize-recover=all`
   (input and output in exactly-sized heap buffers, so any read or write outside an array is
   reported), and run on a few inputs (random, all -128, all 127). A sanitizer report or a
   crash is a finding (`sanitizer`); the outputs are compared byte for byte with TFLite
   Micro's when TFLM runs the file: a difference is a finding (`mismatch`).

Outcomes per case: `clear error, TFLM refused too`, `clear error, TFLM runs it` (we are
stricter: e.g. an operator or a zero-size tensor tinykd does not support), `matched TFLM`,
`generated, TFLM refused` (sanitizer-clean, outputs not comparable), and the findings:
`traceback`, `unclear error` (an empty or multi-paragraph message), `sanitizer`,
`mismatch`, `build failed` (the generated C does not compile), `timeout`.
Every finding's damaged file is kept in `out_dir/findings/` with its description.

Longer than 400 lines on purpose: the forked child, the sanitizer build and the judging are one
protocol whose order matters (our verdict is sent before TFLM may abort the child); the damage
itself lives in mutate.py and the valid corpus in tiny_models.py / random_models.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tinykd.fuzz.mutate import mutate

CLEAR_BOTH = "clear error, TFLM refused too"
CLEAR_TFLM_RAN = "clear error, TFLM runs it"
MATCHED = "matched TFLM"
GEN_TFLM_REFUSED = "generated, TFLM refused"
FINDINGS = ("traceback", "unclear error", "sanitizer", "mismatch", "build failed", "timeout")
OUTCOMES = (CLEAR_BOTH, CLEAR_TFLM_RAN, MATCHED, GEN_TFLM_REFUSED, *FINDINGS)

SAN_FLAGS = (
    "-std=c99",
    "-O1",
    "-g",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
)
CHILD_TIMEOUT = 120.0  # seconds for our generator + TFLM on one file
RUN_TIMEOUT = 60.0  # seconds for the sanitized executable
CHILD_MEMORY = 4 << 30  # address-space limit of the child (bytes)
N_RANDOM_INPUTS = 3

DRIVER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include "model.h"

/* Reads N inputs of TKD_MODEL_INPUT_BYTES from stdin, writes N outputs to stdout. Each
 * buffer is allocated with its exact size, so the sanitizer sees any access past it. */
int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1;
    for (int k = 0; k < n; k++) {
        int8_t *in = (int8_t *)malloc(TKD_MODEL_INPUT_BYTES ? TKD_MODEL_INPUT_BYTES : 1);
        int8_t *out = (int8_t *)malloc(TKD_MODEL_OUTPUT_BYTES ? TKD_MODEL_OUTPUT_BYTES : 1);
        if (!in || !out) {
            return 4;
        }
        if (fread(in, 1, TKD_MODEL_INPUT_BYTES, stdin) != (size_t)TKD_MODEL_INPUT_BYTES) {
            return 5;
        }
        int rc = tkd_model_invoke(in, out);
        if (rc != 0) {
            fprintf(stderr, "tkd_model_invoke returned %d\n", rc);
            return 3;
        }
        fwrite(out, 1, TKD_MODEL_OUTPUT_BYTES, stdout);
        free(in);
        free(out);
    }
    return 0;
}
"""


@dataclass
class CaseResult:
    index: int
    corpus_model: str
    mutation: str
    outcome: str
    detail: str = ""  # our message, the traceback, the sanitizer report, the mismatch
    tflm: str = ""  # "ran" or why TFLM refused
    path: str = ""  # the damaged file (kept for findings)

    @property
    def finding(self) -> bool:
        return self.outcome in FINDINGS


@dataclass
class HostileReport:
    cases: int = 0
    seconds: float = 0.0
    corpus: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    by_mutation: dict[str, dict[str, int]] = field(default_factory=dict)
    sanitized_builds: int = 0  # distinct generated model.c compiled with the sanitizers
    sanitized_runs: int = 0  # executions of a sanitized build (one per accepted case)
    inputs_run: int = 0
    bytes_compared: int = 0
    mismatching_bytes: int = 0
    findings: list[CaseResult] = field(default_factory=list)

    @property
    def n_findings(self) -> int:
        return len(self.findings)

    def add(self, r: CaseResult) -> None:
        self.cases += 1
        self.counts[r.outcome] = self.counts.get(r.outcome, 0) + 1
        kinds = sorted({part.split(":")[0].strip() for part in r.mutation.split(";")})
        for kind in kinds:
            row = self.by_mutation.setdefault(kind, {})
            row[r.outcome] = row.get(r.outcome, 0) + 1
        if r.finding:
            self.findings.append(r)

    def summary(self) -> str:
        lines = [
            f"{self.cases} damaged model files from {len(self.corpus)} valid models, {self.seconds:.0f} s",
            *(f"  {k:<32} {v}" for k, v in self.counts.items()),
            f"  sanitized builds {self.sanitized_builds}, sanitized runs {self.sanitized_runs}, "
            f"inputs {self.inputs_run}, output bytes compared with TFLM {self.bytes_compared}, "
            f"mismatching {self.mismatching_bytes}",
        ]
        for f in self.findings[:50]:
            lines.append(f"FINDING {f.outcome}: case {f.index} ({f.corpus_model}): {f.mutation}")
            lines += [f"  {x}" for x in f.detail.strip().splitlines()[-12:]]
            lines.append(f"  file: {f.path}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        d = asdict(self)
        d["findings"] = [asdict(f) for f in self.findings]
        return d


# ---- the corpus of valid models --------------------------------------------------------------


def build_corpus(n_models: int, seed: int, directory: Path) -> list[Path]:
    """`n_models` valid random int8 models (random_models), built once in a subprocess (so
    TensorFlow never loads into this process, which forks per case) and kept in `directory`."""
    from tinykd.fuzz.random_models import FAMILIES

    directory.mkdir(parents=True, exist_ok=True)
    seeds = [(seed * 1000 + k, FAMILIES[k % len(FAMILIES)]) for k in range(n_models)]
    paths = [directory / f"corpus_{s}_{fam}.tflite" for s, fam in seeds]
    todo = [(s, fam, str(p)) for (s, fam), p in zip(seeds, paths) if not p.exists()]
    if todo:
        code = (
            "import sys, json\n"
            "from tinykd.fuzz.random_models import build_tflite, random_spec\n"
            "for s, fam, p in json.loads(sys.argv[1]):\n"
            "    build_tflite(random_spec(s, fam), p)\n"
        )
        import json

        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        r = subprocess.run([sys.executable, "-c", code, json.dumps(todo)], capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"building the corpus failed:\n{r.stderr[-3000:]}")
    return paths


def tiny_corpus(directory: Path, seeds: tuple[int, ...] = (0, 1)) -> list[Path]:
    """The hand-built models of tiny_models.py (every supported operator, no TensorFlow)."""
    from tinykd.fuzz.tiny_models import KINDS, tiny_model

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in KINDS:
        for s in seeds:
            p = directory / f"tiny_{kind}_{s}.tflite"
            if not p.exists():
                p.write_bytes(tiny_model(kind, s))
            paths.append(p)
    return paths


# ---- one case: our generator and TFLM in a forked child ---------------------------------------


def _inputs(n_bytes: int, shape, case_seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng([case_seed, 0x4057])
    xs = [rng.integers(-128, 128, size=n_bytes).astype(np.int8) for _ in range(N_RANDOM_INPUTS)]
    xs += [np.full(n_bytes, -128, np.int8), np.full(n_bytes, 127, np.int8)]
    return xs


def _one_paragraph(msg: str) -> bool:
    m = msg.strip()
    return bool(m) and "\n\n" not in m and "Traceback" not in m


def _child(path: Path, gen_dir: Path, case_seed: int, send) -> None:
    """Runs in the forked child: our verdict first, then TFLM's (which may abort)."""
    import resource

    from tinykd.errors import TinykdError
    from tinykd.firmware.codegen import generate_model_sources

    try:
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))
    except (ValueError, OSError):
        pass
    import faulthandler

    faulthandler.disable()  # TFLM may crash on a damaged file: that is its answer, not ours
    try:  # TFLM reports what it refuses on stderr: thousands of lines in a campaign
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        pass
    src = None
    try:
        src = generate_model_sources(path, gen_dir)
        send.send(("gen", "ok", src))
    except TinykdError as e:
        send.send(("gen", "error", str(e)))
    except BaseException:  # noqa: BLE001 -- exactly what this harness looks for
        send.send(("gen", "traceback", traceback.format_exc()))
    try:
        from tflite_micro.python.tflite_micro import runtime

        from tinykd.fuzz.compare import quantize_f32

        interp = runtime.Interpreter.from_file(str(path))
        det = interp.get_input_details(0)
        if src is None:  # only whether TFLM takes the file: one run on zeros
            interp.set_input(np.zeros(det["shape"], det["dtype"]), 0)
            interp.invoke()
            send.send(("tflm", "ran", None))
            return
        n_in = int(np.prod(src.input_shape, dtype=np.int64))
        ours, outs = [], []
        for x in _inputs(n_in, src.input_shape, case_seed):
            if det["dtype"] == np.float32:
                xf = ((x.astype(np.int32) - src.input_zero_point) * np.float32(src.input_scale)).astype(np.float32)
                interp.set_input(xf.reshape(det["shape"]), 0)
                ours.append(quantize_f32(xf, src.input_scale, src.input_zero_point))
            else:
                interp.set_input(x.reshape(det["shape"]).astype(det["dtype"]), 0)
                ours.append(x)
            interp.invoke()
            outs.append(np.array(interp.get_output(0)).copy())
        out_float = outs[0].dtype == np.float32  # we dequantize ours the way model.h says
        send.send(("tflm", "ran", (ours, outs, out_float)))
    except BaseException as e:  # noqa: BLE001 -- TFLM refusing the file
        send.send(("tflm", "refused", f"{type(e).__name__}: {str(e)[:300]}"))


def _run_child(path: Path, gen_dir: Path, case_seed: int) -> tuple[tuple | None, tuple | None, str]:
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(path, gen_dir, case_seed, send))
    proc.start()
    send.close()
    gen = tflm = None
    deadline = time.monotonic() + CHILD_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if not recv.poll(max(0.0, deadline - time.monotonic())):
                break
            msg = recv.recv()
            if msg[0] == "gen":
                gen = msg
            else:
                tflm = msg
                break
    except (EOFError, OSError):
        pass
    timed_out = proc.is_alive() and (gen is None or tflm is None)
    if proc.is_alive():
        proc.kill()
    proc.join()
    note = ""
    if tflm is None:
        note = "timed out" if timed_out else f"the process died (exit code {proc.exitcode})"
    return gen, tflm, note


# ---- the sanitized build -------------------------------------------------------------------


class SanitizedBuilder:
    """The runtime compiled once with the sanitizers; one executable per distinct model.c."""

    def __init__(self, work: Path):
        from tinykd.firmware.host_build import find_compiler, runtime_dir, runtime_sources

        self.cc = find_compiler()
        self.work = work
        self.rt_dir = runtime_dir()
        work.mkdir(parents=True, exist_ok=True)
        self.driver = work / "driver.c"
        self.driver.write_text(DRIVER_C)
        self.objects: list[Path] = []
        for src in runtime_sources():
            h = hashlib.sha256(src.read_bytes() + " ".join(SAN_FLAGS).encode())
            for hdr in sorted(self.rt_dir.glob("*.h")):
                h.update(hdr.read_bytes())
            obj = work / f"{src.stem}_{h.hexdigest()[:12]}.o"
            if not obj.exists():
                self._cc(["-c", str(src), "-o", str(obj)])
            self.objects.append(obj)
        self.exes: dict[str, Path] = {}
        self.builds = 0

    def _cc(self, args: list[str], flags: tuple[str, ...] = SAN_FLAGS) -> None:
        cmd = [self.cc, *flags, f"-I{self.rt_dir}", *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise BuildFailed(r.stderr[-3000:])

    def executable(self, model_c: Path) -> Path:
        text = model_c.read_text()
        # the same layers and constants give the same program, whatever the file's hash
        key_text = re.sub(r"(sha256 +[0-9a-f]+|tkd_model_hash\[8\] = \{[^}]*\})", "", text)
        key = hashlib.sha256(key_text.encode()).hexdigest()[:20]
        exe = self.exes.get(key)
        if exe is not None and exe.exists():
            return exe
        exe = self.work / f"model_{key}"
        # model.c is mostly constant arrays: -O0 compiles it in half the time, same checks
        flags = tuple(f for f in SAN_FLAGS if f not in ("-O1", "-g")) + ("-O0",)
        args = [f"-I{model_c.parent}", str(model_c), str(self.driver), *map(str, self.objects), "-o", str(exe)]
        self._cc(args, flags)
        self.builds += 1
        self.exes[key] = exe
        return exe


class BuildFailed(Exception):
    pass


def _run_exe(exe: Path, inputs: list[np.ndarray]) -> tuple[int, bytes, str]:
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0:exitcode=86:allocator_may_return_null=1"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1:exitcode=87"
    data = b"".join(np.ascontiguousarray(x, np.int8).tobytes() for x in inputs)
    r = subprocess.run([str(exe), str(len(inputs))], input=data, capture_output=True, timeout=RUN_TIMEOUT, env=env)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


# ---- the campaign ------------------------------------------------------------------------------


def check_case(
    index: int, corpus_path: Path, buf: bytes, seed: int, work: Path, builder: SanitizedBuilder, rep: HostileReport
) -> CaseResult:
    """Damage `buf` (the valid model at corpus_path) as case `index` of run `seed` and judge it."""
    rng = np.random.default_rng([seed, index, 0x4057])
    data, desc = mutate(buf, rng)
    path = work / f"case_{index}.tflite"
    path.write_bytes(data)
    res = CaseResult(index, corpus_path.name, desc, CLEAR_BOTH, path=str(path))
    return judge(res, path, work / f"case_{index}", seed * 1_000_003 + index, builder, rep)


def judge_file(path: str | os.PathLike, work: str | os.PathLike | None = None) -> CaseResult:
    """Judge one (damaged) model file as the campaign does: what a regression test calls."""
    work = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="tinykd-hostile-"))
    res = CaseResult(0, Path(path).name, "as given", CLEAR_BOTH, path=str(path))
    return judge(res, Path(path), work / "gen", 0, SanitizedBuilder(work / "sanitized"), HostileReport())


def judge(
    res: CaseResult, path: Path, gen_dir: Path, case_seed: int, builder: SanitizedBuilder, rep: HostileReport
) -> CaseResult:
    from tinykd.fuzz.compare import dequantize_f32

    gen, tflm, note = _run_child(path, gen_dir, case_seed)
    tflm_ran = tflm is not None and tflm[1] == "ran"
    res.tflm = "ran" if tflm_ran else (tflm[2] if tflm is not None else note)
    if gen is None:
        res.outcome, res.detail = "timeout", f"our generator did not answer: {note}"
        return res
    if gen[1] == "traceback":
        res.outcome, res.detail = "traceback", gen[2]
        return res
    if gen[1] == "error":
        res.detail = gen[2]
        if not _one_paragraph(gen[2]):
            res.outcome = "unclear error"
        else:
            res.outcome = CLEAR_TFLM_RAN if tflm_ran else CLEAR_BOTH
        return res
    src = gen[2]
    try:
        exe = builder.executable(Path(src.model_c))
    except BuildFailed as e:
        res.outcome, res.detail = "build failed", str(e)
        return res
    except subprocess.TimeoutExpired:
        res.outcome, res.detail = "timeout", "compiling the generated C took over 600 s"
        return res
    n_in = int(np.prod(src.input_shape, dtype=np.int64))
    n_out = int(np.prod(src.output_shape, dtype=np.int64))
    ours_in = tflm[2][0] if tflm_ran else _inputs(n_in, src.input_shape, case_seed)
    try:
        rc, out, err = _run_exe(exe, ours_in)
    except subprocess.TimeoutExpired:
        res.outcome, res.detail = "timeout", f"the sanitized model ran over {RUN_TIMEOUT:.0f} s"
        return res
    rep.sanitized_runs += 1
    if rc not in (0, 3) or "Sanitizer" in err or "runtime error:" in err:
        res.outcome, res.detail = "sanitizer", f"exit code {rc}\n{err[-4000:]}"
        return res
    if not tflm_ran:
        res.outcome = GEN_TFLM_REFUSED
        res.detail = err.strip() if rc == 3 else ""
        return res
    refs, out_float = tflm[2][1], tflm[2][2]
    if rc == 3:
        res.outcome, res.detail = "mismatch", f"TFLM ran the model but tkd_model_invoke failed: {err.strip()}"
        return res
    got_all = np.frombuffer(out, np.int8)
    bad_total = 0
    for k, ref in enumerate(refs):
        got = got_all[k * n_out : (k + 1) * n_out]
        if out_float:
            got = dequantize_f32(got, src.output_scale, src.output_zero_point)
        a = np.ascontiguousarray(got).reshape(-1).view(np.uint8)
        b = np.ascontiguousarray(ref).reshape(-1).view(np.uint8)
        rep.inputs_run += 1
        rep.bytes_compared += b.size
        bad = int(np.count_nonzero(a != b)) if a.size == b.size else max(a.size, b.size)
        if bad and not bad_total:
            res.detail = f"input #{k}: {bad} of {b.size} output bytes differ (ours {a.size} bytes)"
        bad_total += bad
    rep.mismatching_bytes += bad_total
    res.outcome = "mismatch" if bad_total else MATCHED
    return res


def run_hostile(
    n_cases: int,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    corpus_models: int = 16,
    progress: bool = True,
    corpus: list[Path] | None = None,
) -> HostileReport:
    """Damage `n_cases` copies of valid models (`corpus_models` random converted ones and the
    six tiny hand-built ones; case k: corpus model k mod n, mutation drawn from (seed, k)) and
    judge each (module docstring); return the counts."""
    import shutil

    from tflite_micro.python.tflite_micro import runtime  # noqa: F401
    from tqdm import tqdm

    # loaded here, once: every forked child runs the same code (and does not import it again)
    import tinykd.firmware.codegen  # noqa: F401
    import tinykd.fuzz.compare  # noqa: F401

    root = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="tinykd-hostile-"))
    root.mkdir(parents=True, exist_ok=True)
    if corpus is not None:
        paths = list(corpus)
    else:
        paths = build_corpus(corpus_models, seed, root / "corpus") + tiny_corpus(root / "corpus")
    bufs = [p.read_bytes() for p in paths]
    rep = HostileReport(corpus=[p.name for p in paths])
    work = root / "cases"
    work.mkdir(exist_ok=True)
    keep = root / "findings"
    builder = SanitizedBuilder(root / "sanitized")
    t0 = time.monotonic()
    bar = tqdm(range(n_cases), desc="hostile", unit="file", disable=not progress)
    for k in bar:
        i = k % len(paths)
        r = check_case(k, paths[i], bufs[i], seed, work, builder, rep)
        if r.finding:
            keep.mkdir(exist_ok=True)
            dst = keep / f"case_{k}_{r.outcome.replace(' ', '_')}.tflite"
            shutil.copyfile(r.path, dst)
            (keep / (dst.stem + ".txt")).write_text(f"{r.mutation}\n{r.detail}\n")
            r.path = str(dst)
        for p in (work / f"case_{k}.tflite", work / f"case_{k}"):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()
        rep.add(r)
        rep.sanitized_builds = builder.builds
        bar.set_postfix(findings=rep.n_findings, matched=rep.counts[MATCHED])
    rep.seconds = time.monotonic() - t0
    return rep


def _main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--corpus-models", type=int, default=16)
    ap.add_argument("--out", default="build/hostile")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    rep = run_hostile(a.n, a.seed, a.out, a.corpus_models)
    Path(a.out, "hostile.json").write_text(json.dumps(rep.to_json(), indent=1, default=str) + "\n")
    print(rep.summary())
    return 1 if rep.findings else 0


if __name__ == "__main__":
    raise SystemExit(_main())
