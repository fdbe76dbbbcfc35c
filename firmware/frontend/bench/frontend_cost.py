#!/usr/bin/env python3
"""Instructions per 1 s clip of the KWS frontend on QEMU mps2-an386 (Cortex-M4), per stage.

    python firmware/frontend/bench/frontend_cost.py            # a table of the stages
    python firmware/frontend/bench/frontend_cost.py --json     # the same numbers as JSON

Builds `bench_main.c` + `../tkd_frontend.c` with arm-none-eabi-gcc (-mcpu=cortex-m4 -mthumb
-O2, as the firmware), runs it under `qemu-system-arm -M mps2-an386 -icount shift=0` (one
instruction = 1 ns of virtual time; SysTick at 25 MHz ticks every 40 instructions) and reads
back, per clip, the instruction count of `tkd_frontend_run` and its 490 feature bytes. A second
build with -DTKD_FRONTEND_PROFILE gives the instructions per stage (the marks' own cost taken
out). Counts under -icount are deterministic: the same build and clip give the same number.
`tests/test_kws_frontend_cost.py` uses `measure` to hold the frontend to its budget.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FRONTEND_DIR = HERE.parent
CFLAGS = ("-mcpu=cortex-m4", "-mthumb", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror")
STAGES = ("window", "fft", "power", "mel", "log", "dct")
FRAMES = 49


@dataclass
class Cost:
    per_clip: list[int]  # instructions of tkd_frontend_run, one per clip
    features: np.ndarray  # int8 [N, 49, 10] as the device computed them
    stages: dict[str, int] = field(default_factory=dict)  # instructions per clip, mean over clips
    compiler: str = ""


def _tools() -> tuple[str, str]:
    gcc, qemu = shutil.which("arm-none-eabi-gcc"), shutil.which("qemu-system-arm")
    if not gcc or not qemu:
        raise RuntimeError("arm-none-eabi-gcc and qemu-system-arm are needed to measure the frontend")
    return gcc, qemu


def write_audio(audio: np.ndarray, path: Path, name: str = "bench_audio") -> None:
    """int16 clips [N, samples] as a C header: N_CLIPS and `name`[N_CLIPS][samples]."""
    with open(path, "w") as f:
        f.write(f"#define N_CLIPS {len(audio)}\nstatic const int16_t {name}[N_CLIPS][{audio.shape[1]}] = {{\n")
        for clip in audio:
            f.write("{" + ",".join(map(str, clip.tolist())) + "},\n")
        f.write("};\n")


def build(main_c: Path, work: Path, elf: Path, cflags=CFLAGS, link_ld: Path = HERE / "link.ld") -> None:
    """`main_c` + ../tkd_frontend.c as a bare-metal image (`link_ld`; headers also from `work`)."""
    gcc, _ = _tools()
    cmd = [
        gcc,
        *cflags,
        "-ffreestanding",
        "-nostartfiles",
        "-T",
        str(link_ld),
        "-I",
        str(FRONTEND_DIR),
        "-I",
        str(work),
        str(main_c),
        str(FRONTEND_DIR / "tkd_frontend.c"),
        "-o",
        str(elf),
        "-lc",
        "-lgcc",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"build failed: {' '.join(cmd)}\n{r.stderr}")


def run_qemu(elf: Path, machine: str = "mps2-an386", icount: bool = True, timeout: int = 600) -> str:
    """What `elf` writes by semihosting under QEMU; with `icount`, one instruction = 1 ns."""
    _, qemu = _tools()
    run = subprocess.run(
        [qemu, "-M", machine, "-nographic", "-monitor", "none"]
        + (["-icount", "shift=0"] if icount else [])
        + ["-semihosting-config", "enable=on,target=native", "-kernel", str(elf)],
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )
    if run.returncode != 0:
        raise RuntimeError(f"QEMU failed ({run.returncode}): {run.stderr[-2000:]}")
    return run.stdout + run.stderr


def _build_and_run(audio: np.ndarray, work: Path, profile: bool, extra: tuple[str, ...]) -> tuple[list[str], str]:
    gcc, _ = _tools()
    write_audio(audio, work / "bench_audio.h")
    elf = work / ("bench_profile.elf" if profile else "bench.elf")
    build(HERE / "bench_main.c", work, elf, (*CFLAGS, *extra, *(["-DTKD_FRONTEND_PROFILE"] if profile else [])))
    output = run_qemu(elf)
    version = subprocess.run([gcc, "-dumpversion"], capture_output=True, text=True, timeout=30).stdout.strip()
    return output.splitlines(), f"arm-none-eabi-gcc {version}"


def measure(audio: np.ndarray, stages: bool = True, extra_cflags: tuple[str, ...] = ()) -> Cost:
    """Run int16 clips [N, 16000] through the frontend on QEMU mps2-an386."""
    audio = np.ascontiguousarray(np.asarray(audio, dtype=np.int16).reshape(-1, 16000))
    with tempfile.TemporaryDirectory(prefix="tkd-frontend-cost-") as tmp:
        lines, compiler = _build_and_run(audio, Path(tmp), False, extra_cflags)
        clips = [line.split() for line in lines if line.startswith("clip ")]
        if len(clips) != len(audio):
            raise RuntimeError(f"expected {len(audio)} clip lines, got: {lines[-5:]}")
        per_clip = [int(c[2]) for c in clips]
        feats = np.array([np.frombuffer(bytes.fromhex(c[3]), np.int8) for c in clips]).reshape(-1, FRAMES, 10)
        cost = Cost(per_clip, feats, compiler=compiler)
        if stages:
            lines, _ = _build_and_run(audio, Path(tmp), True, extra_cflags)
            row = [line.split() for line in lines if line.startswith("stages ")]
            if not row:
                raise RuntimeError(f"no stage line: {lines[-5:]}")
            values = [int(v) for v in row[0][1:]]
            calls, per_stage, mark = values[0], values[1 : 1 + len(STAGES)], values[-1]
            marks_per_stage = calls // len(STAGES)
            n = len(audio)
            cost.stages = {s: round((t - mark * marks_per_stage) / n) for s, t in zip(STAGES, per_stage)}
    return cost


def default_clips() -> np.ndarray:
    """Eight clips: espeak-ng words with noise, a tone, noise, a chirp, silence, full scale."""
    sys.path.insert(0, str(FRONTEND_DIR.parents[1]))
    from tinykd.data.kws import synth

    t = np.arange(16000) / 16000
    rng = np.random.default_rng(11)
    words = [synth.speak(synth.clip_spec(7, w, i)) for i, w in enumerate(("yes", "stop", "marvin", "seven"))]
    others = [
        np.round(8000 * np.sin(2 * np.pi * 1000 * t)),
        rng.normal(0, 300, 16000),
        np.round(6000 * np.sin(2 * np.pi * (100 * t + 1900 * t**2))),
        np.zeros(16000),
        rng.integers(-32768, 32768, 16000),
    ]
    return np.stack(words + [np.clip(o, -32768, 32767).astype(np.int16) for o in others])


def main(argv: list[str]) -> int:
    audio = default_clips()
    cost = measure(audio)
    total = sum(cost.per_clip) / len(cost.per_clip)
    result = {
        "machine": "QEMU mps2-an386 (Cortex-M4), -icount shift=0",
        "compiler": cost.compiler,
        "cflags": " ".join(CFLAGS),
        "clips": len(audio),
        "per_clip_mean": round(total),
        "per_clip_min": min(cost.per_clip),
        "per_clip_max": max(cost.per_clip),
        "stages_per_clip": cost.stages,
    }
    if "--json" in argv:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['machine']}, {result['compiler']} {result['cflags']}, {len(audio)} clips")
    print(f"{'stage':<8} {'instr/clip':>12} {'instr/frame':>12} {'share':>6}")
    for s, v in cost.stages.items():
        print(f"{s:<8} {v:>12,} {v / FRAMES:>12,.0f} {v / total:>6.1%}")
    spread = f"(min {min(cost.per_clip):,}, max {max(cost.per_clip):,})"
    print(f"{'total':<8} {round(total):>12,} {total / FRAMES:>12,.0f}   {spread}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
