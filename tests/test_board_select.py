"""`tinykd boards` lists every board with core, clock, budgets and price; `boards --select` ranks
the boards a model fits by price, with latency from instructions counted on QEMU for the model."""

import json
from pathlib import Path

import pytest

from tests._cli import run
from tinykd.boards import list_boards
from tinykd.experiments.board_select import CYCLES_PER_INSTRUCTION, select_boards


def test_boards_lists_at_least_twelve_with_core_budgets_and_price():
    code, out = run("boards")
    assert code == 0, out
    lines = out.strip().splitlines()
    header, rows = lines[0].split(), lines[1:]
    assert header[:7] == ["board", "core", "MHz", "flash", "KB", "RAM", "KB"]
    boards = list_boards()
    assert len(rows) == len(boards) >= 12
    priced = [b for b in boards if b.price_usd is not None]
    assert len(priced) >= 8, "most boards are real ones a user can buy"
    for b in priced:
        assert b.price_source.startswith("https://") and b.price_date, b.name
        row = next(r for r in rows if r.split()[0] == b.name)
        assert f"{b.price_usd:.2f}" in row.split() and b.core in row.split()
        # The budget shown is what the application may use: the board's minus the OS core's share.
        assert str((b.flash_bytes - b.mbed_flash_allowance) // 1024) in row.split()


def test_select_ranks_the_default_mnist_model(quick_build, tmp_path):
    out = tmp_path / "select"
    code, text = run("boards", "--select", "--model", str(quick_build.out), "--out", str(out))
    assert code == 0, text
    data = json.loads((out / "select.json").read_text())
    assert data["model_sha256"] and Path(data["model"]).name == "model_int8.tflite"
    chosen = [row for row in data["boards"] if row["chosen"]]
    assert len(chosen) >= 5, "a --quick MNIST MLP fits every priced board"
    assert [row["price_usd"] for row in chosen] == sorted(row["price_usd"] for row in chosen)
    m4 = data["core_timings"]["cortex-m4"]
    assert m4["qemu_board"] == "mps2-an386" and m4["instructions"] > 10_000
    nano = next(row for row in data["boards"] if row["board"] == "nano33")
    assert nano["latency_ms_lower_bound"] == pytest.approx(
        m4["instructions"] * CYCLES_PER_INSTRUCTION / 64e6 * 1e3, abs=1e-4
    )
    assert "| 1 |" in (out / "select.md").read_text()
    assert (out / "select.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_select_with_a_latency_limit_drops_slow_boards(tmp_path):
    from tinykd.bench.runtime import INPUT_RANGES, MODELS, convert_int8
    from tinykd.models.from_spec import build_from_spec

    model = convert_int8(
        build_from_spec(MODELS["ds_cnn_kws"], 0), tmp_path / "ds_cnn.tflite", 0, INPUT_RANGES["ds_cnn_kws"]
    )
    # Two boards of different cores and clocks keep the test short; the MNIST test above runs them all.
    pair = ["nano33", "portenta-h7"]
    unlimited = select_boards(model, tmp_path / "all", boards=pair, log=lambda m: None)
    known = [c for c in unlimited.chosen if c.latency_ms is not None]
    assert len({round(c.latency_ms, 3) for c in known}) >= 2, "boards of different clocks differ in latency"
    # A limit between the fastest and the slowest board keeps exactly the boards under it.
    limit = (min(c.latency_ms for c in known) + max(c.latency_ms for c in known)) / 2
    limited = select_boards(model, tmp_path / "limited", boards=pair, max_latency_ms=limit, log=lambda m: None)
    kept = {c.board.name for c in limited.chosen}
    assert kept == {c.board.name for c in known if c.latency_ms <= limit}
    assert kept == {"portenta-h7"}, "the 480 MHz M7 is the fast one"
    slow = next(c for c in limited.choices if c.latency_ms is not None and c.latency_ms > limit)
    assert slow.why_not.startswith("too slow")
    data = json.loads((tmp_path / "limited" / "select.json").read_text())
    assert data["max_latency_ms"] == limit and data["cheapest"] == limited.chosen[0].board.name


def test_select_says_when_nothing_fits(tmp_path, quick_build):
    # A virtual board named on purpose is sized and timed too; it has no price ("virtual").
    sel = select_boards(
        quick_build.out, tmp_path, boards=["nano33", "mps2-an386"], max_latency_ms=1e-6, log=lambda m: None
    )
    assert not sel.chosen and all(c.why_not.startswith("too slow") for c in sel.choices)
    text = (tmp_path / "select.md").read_text()
    assert "No board fits" in text and "| mps2-an386 | cortex-m4f | 25 | virtual |" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--select"], "--select needs the model"),
        (["--select", "--model", "/nonexistent/m.tflite"], "does not exist"),
        (["--model", "x.tflite"], "go with --select"),
    ],
)
def test_select_bad_input_is_explained(args, message, tmp_path):
    code, out = run("boards", *args, "--out", str(tmp_path / "o"))
    assert code == 2 and message in out and "Traceback" not in out
