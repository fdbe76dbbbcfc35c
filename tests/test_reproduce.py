"""`tinykd reproduce hinton-mnist`: the quick run end to end through the CLI, its resume, and the bias correction."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from click.testing import CliRunner

from tinykd.cli import main
from tinykd.experiments.hinton_mnist import (
    BIAS_GRID,
    PAPER_BIAS,
    Settings,
    choose_bias,
    errors_with_bias,
    plan,
    raise_class_bias,
    shifted_logits,
)

# Class 3 is under-predicted: examples 0 and 1 (both 3s) need its logit raised by more than
# 0.8 and 1.5; examples 2 and 3 turn wrong once it is raised by more than 3 and 2.
HAND_LOGITS = np.array(
    [
        [1.0, 0.0, 0.0, 0.2],
        [0.0, 2.0, 0.0, 0.5],
        [3.0, 0.0, 0.0, 0.0],
        [0.0, 2.0, 0.0, 0.0],
    ],
    dtype=np.float32,
)
HAND_LABELS = np.array([3, 3, 0, 1])


def test_bias_correction_on_a_hand_made_case():
    assert errors_with_bias(HAND_LOGITS, HAND_LABELS, 3, 0.0) == (2, 2)
    assert errors_with_bias(HAND_LOGITS, HAND_LABELS, 3, 1.0) == (1, 1)
    assert errors_with_bias(HAND_LOGITS, HAND_LABELS, 3, 1.7) == (0, 0)
    assert errors_with_bias(HAND_LOGITS, HAND_LABELS, 3, 2.5) == (1, 0)
    assert errors_with_bias(HAND_LOGITS, HAND_LABELS, 3, 3.5) == (2, 0)
    # Zero errors for 1.5 < delta < 2: grid points 1.6 .. 1.9, the middle one of four is 1.8.
    assert choose_bias(HAND_LOGITS, HAND_LABELS, 3) == pytest.approx(1.8)
    assert BIAS_GRID.min() == 0.0 and BIAS_GRID.max() >= PAPER_BIAS


def test_raising_the_bias_in_the_model_shifts_only_that_logit():
    from tinykd.evaluate.host import predict_logits
    from tinykd.models import build_model

    model = build_model("mlp-6", (2, 3), 5)
    x = np.random.default_rng(0).random((7, 2, 3), dtype=np.float32)
    before = predict_logits(model, x)
    raise_class_bias(model, 3, 2.25)
    after = predict_logits(model, x)
    np.testing.assert_allclose(after, shifted_logits(before, 3, 2.25), atol=1e-5)
    assert not np.allclose(after[:, 3], before[:, 3])


def test_rows_are_judged_within_the_tolerance_and_the_title_follows():
    from tinykd.experiments.hinton_mnist_report import title
    from tinykd.report.hinton2015 import within_tolerance

    assert within_tolerance("teacher", 77)[0] and not within_tolerance("teacher", 78)[0]
    assert within_tolerance("teacher", 40)[0]  # better than the paper counts
    assert within_tolerance("kd-800", 85)[0] and not within_tolerance("kd-800", 86)[0]
    # The labels-only baseline must be close on both sides.
    assert [within_tolerance("baseline-800", e)[0] for e in (123, 124, 168, 169)] == [False, True, True, False]
    assert within_tolerance("kd-800", 149)[1] == "no: +101% vs the paper (needs ≤ 85)"

    def rows(teacher, kd):
        return [
            {"name": "teacher", "errors": teacher},
            {"name": "kd-800", "errors": kd},
            {"name": "kd-30-T4", "errors": 1},
        ]

    assert title(rows(70, 80)).endswith(": reproduced (within ±15% of the paper's errors)")
    assert ": 1 of 2 rows with a paper number reproduced" in title(rows(70, 149))
    assert ": not reproduced" in title(rows(131, 149))


def _row_files(out):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted((out / "rows").glob("*.json"))}


def _numbers(row: dict) -> dict:
    """A row without its timings: what the same seed must reproduce exactly."""
    return {k: v for k, v in row.items() if k not in ("train_seconds", "wall_seconds")}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("repro")
    args = ["reproduce", "hinton-mnist", "--quick", "--out", str(out), "--data-dir", str(mnist_dir)]
    started = time.perf_counter()
    result = CliRunner().invoke(main, args)
    first_seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    return out, args, result, first_seconds


def test_quick_run_writes_every_row_with_sane_numbers(quick_run):
    out, _, result, _ = quick_run
    assert str(out / "hinton-mnist.md") in result.output
    data = json.loads((out / "results.json").read_text())
    rows = {r["name"]: r for r in data["rows"]}
    expected = [r.name for r in plan(Settings.for_run(quick=True))]
    assert list(rows) == expected
    for r in rows.values():
        assert r["total"] == 1000 and 0 <= r["errors"] <= r["total"]
        assert sum(r["errors_per_class"]) == r["errors"]
        assert (out / "rows" / f"{r['name']}.json").is_file()
    # Ten classes: chance makes ~900 errors of 1000; even two quick epochs do far better.
    assert rows["teacher"]["errors"] < 400
    assert rows["baseline-800"]["errors"] < 400

    omit = rows["omit3"]
    assert omit["transfer_examples"] < rows["kd-800"]["transfer_examples"] - 100  # ~10 % of the digits are 3s
    bias = omit["bias_correction"]
    threes = bias["class_test_examples"]
    assert 50 < threes < 200 and bias["before"]["class_errors"] == omit["errors_per_class"][3] <= threes
    assert bias["paper"]["delta"] == PAPER_BIAS
    assert bias["validation"]["delta"] in set(BIAS_GRID.tolist())
    for key in ("paper", "validation"):
        assert 0 <= bias[key]["class_errors"] <= min(threes, bias[key]["errors"])
    # Raising the bias of 3 can only turn 3s from wrong to right.
    assert bias["paper"]["class_errors"] <= bias["before"]["class_errors"]

    table = (out / "hinton-mnist.md").read_text()
    for r in rows.values():
        assert r["experiment"] in table
    assert "on 3s" in table and "chosen on validation" in table and "| 67 |" in table
    assert (out / "errors-vs-T.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "training-curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Two quick epochs are far from the paper: the title must not claim a reproduction.
    assert table.startswith("# Hinton, Vinyals & Dean (2015) §3, MNIST: not reproduced")
    assert "| no: +" in table and "(needs ≤ 77)" in table and "(needs 124–168)" in table
    # The teacher learns from every training image and is watched on the test set, once per epoch.
    teacher = rows["teacher"]
    assert teacher["transfer_examples"] == rows["baseline-800"]["transfer_examples"] + 500
    assert teacher["curve"]["on"] == "test" and len(teacher["curve"]["errors"]) == teacher["settings"]["epochs"]
    assert teacher["settings"]["optimizer"] == "sgd" and rows["kd-800"]["settings"]["optimizer"] == "adam"
    assert rows["kd-800"]["curve"]["on"] == "val" and rows["kd-800"]["curve"]["total"] == 500


def test_rerun_skips_finished_rows_and_a_redone_row_gives_the_same_numbers(quick_run):
    out, args, _, first_seconds = quick_run
    before = _row_files(out)
    results_before = json.loads((out / "results.json").read_text())

    started = time.perf_counter()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert time.perf_counter() - started < first_seconds / 2
    assert _row_files(out) == before
    assert json.loads((out / "results.json").read_text()) == results_before

    # One row lost: only it is trained again, with the same seed to the same numbers.
    redone = out / "rows" / "kd-30-T2p5.json"
    old = json.loads(redone.read_text())
    redone.unlink()
    third = CliRunner().invoke(main, args)
    assert third.exit_code == 0, third.output
    assert _numbers(json.loads(redone.read_text())) == _numbers(old)
    after = _row_files(out)
    assert {k: v for k, v in after.items() if k != redone.name} == {k: v for k, v in before.items() if k != redone.name}


def test_unwritable_out_is_a_clear_error(tmp_path, mnist_dir):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(
        main, ["reproduce", "hinton-mnist", "--quick", "--out", str(blocker / "x"), "--data-dir", str(mnist_dir)]
    )
    assert result.exit_code == 2
    assert "--out" in result.output
