"""Hostile model files (issue 12), a reduced campaign: a few hundred damaged copies of the
hand-built tiny models (every supported operator), each through the reader and the code
generator, the accepted ones compiled with ASan + UBSan and run, and compared with TFLite
Micro. No Python traceback, no sanitizer report, no mismatch. (The 10 000-case run is
`tinykd bench --hostile 10000`, see benchmarks/reliability.md.)"""

from __future__ import annotations

import numpy as np

from tinykd.fuzz import hostile
from tinykd.fuzz.mutate import RAW_KINDS, STRUCTURE_KINDS, raw_mutation, structure_mutation
from tinykd.fuzz.tiny_models import KINDS, tiny_model

N_CASES = 200


def test_hostile_campaign_has_no_findings(tmp_path):
    rep = hostile.run_hostile(N_CASES, seed=12, out_dir=tmp_path, progress=False, corpus=hostile.tiny_corpus(tmp_path))
    assert rep.cases == N_CASES
    assert rep.findings == [], rep.summary()
    assert sum(rep.counts.values()) == N_CASES
    # the campaign exercises every side: refused files, accepted ones compared with TFLM
    assert rep.counts[hostile.CLEAR_BOTH] > 0 and rep.counts[hostile.CLEAR_TFLM_RAN] > 0
    assert rep.counts[hostile.MATCHED] > 0 and rep.bytes_compared > 0 and rep.mismatching_bytes == 0
    assert rep.sanitized_runs > 0


def test_every_mutation_kind_produces_a_file():
    rng = np.random.default_rng(0)
    for kind in KINDS:
        buf = tiny_model(kind)
        for k in STRUCTURE_KINDS:
            data, desc = structure_mutation(buf, rng, k)
            assert data[4:8] == b"TFL3" and desc
        for k in RAW_KINDS:
            data, desc = raw_mutation(buf, rng, k)
            assert desc.startswith(k)


def test_the_valid_corpus_itself_matches_tflite_micro(tmp_path):
    for kind in KINDS:
        path = tmp_path / f"{kind}.tflite"
        path.write_bytes(tiny_model(kind, 3))
        r = hostile.judge_file(path, tmp_path / kind)
        assert r.outcome == hostile.MATCHED, (kind, r.detail)


def test_bench_takes_fuzz_or_hostile_not_both():
    from click.testing import CliRunner

    from tinykd.cli import main

    result = CliRunner().invoke(main, ["bench", "--fuzz", "1", "--hostile", "1"])
    assert result.exit_code == 2 and "give one of them" in result.output
