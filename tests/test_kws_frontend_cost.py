"""The KWS frontend's instruction budget on QEMU mps2-an386 (Cortex-M4, -icount shift=0).

Counts under -icount shift=0 are deterministic (one instruction = 1 ns of virtual time, read
with SysTick), so this is a check of the budget, not a timing test. The harness is
firmware/frontend/bench (bench_main.c + frontend_cost.py), the same one the README's and
benchmarks/kws.md's per-stage numbers come from."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from _frontend_bench import frontend_cost

from tinykd.data.kws import frontend as fe

# Instructions per 1 s clip (49 frames). Was 6.2 M (radix-2 FFT with int64 products), 2.29 M
# with v2's FFT in C; about 1.90 M (max 1.904 M) with the DSP assembly of the FFT stages, split,
# mel and hop sums (same bytes). Issue 11 asks for <= 2 M.
BUDGET = 2_000_000


@pytest.fixture(scope="module")
def cost():
    assert shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"), (
        "arm-none-eabi-gcc and qemu-system-arm are required for this test"
    )
    assert shutil.which("espeak-ng"), "espeak-ng is required for this test"
    bench = frontend_cost()
    audio = bench.default_clips()
    return audio, bench.measure(audio)


def test_frontend_instructions_per_clip_within_budget(cost):
    audio, c = cost
    assert len(c.per_clip) == len(audio)
    assert max(c.per_clip) <= BUDGET, c.per_clip
    # nearly data-independent: speech, tones, silence and full-scale noise cost within 5 %
    assert min(c.per_clip) > 0.95 * max(c.per_clip), c.per_clip


def test_bench_features_are_the_host_bytes_and_stages_add_up(cost):
    audio, c = cost
    np.testing.assert_array_equal(c.features, fe.features(audio))
    stages = sum(c.stages.values())
    mean = sum(c.per_clip) / len(c.per_clip)
    assert set(c.stages) == {"window", "fft", "power", "mel", "log", "dct"}
    assert all(v > 0 for v in c.stages.values()), c.stages
    assert abs(stages - mean) < 0.05 * mean, (c.stages, mean)
    assert c.stages["fft"] == max(c.stages.values())
