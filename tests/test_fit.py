"""`tinykd fit --board B` (here the micro:bit: 256 KB flash, 16 KB RAM, a Cortex-M0) and
`tinykd fit --budget-usd N`: sizing, rejection with sizes, ASHA (Ray Tune, embedded Ray), latency
limit, the cheapest board each candidate fits, errors."""

import json

import pytest
from _cli import PNG_SIGNATURE, quick_experiment

from tinykd.config import resolve
from tinykd.experiments.fit import candidate_archs, estimate_latency_ms, next_command, parse_sizes
from tinykd.models import build_model, count_params

FLASH = 262_144  # the micro:bit's: a 784-1024-10 MLP (~0.8 MB of int8 weights) cannot fit


def quick_fit(out, mnist_dir, widths, *extra):
    return quick_experiment(
        "fit",
        out,
        mnist_dir,
        "--board",
        "microbit",
        "--widths",
        widths,
        "--depths",
        "1",
        *extra,
    )


def test_fit_rejects_what_does_not_fit_halves_and_reports(tmp_path, mnist_dir):
    out = tmp_path / "fit"
    code, output = quick_fit(out, mnist_dir, "8,16,1024")
    assert code == 0, output
    fit = json.loads((out / "fit.json").read_text())
    assert fit["board"] == "microbit" and fit["flash_budget"] == FLASH and fit["ram_budget"] == 16_384
    by_arch = {c["arch"]: c for c in fit["candidates"]}
    assert set(by_arch) == {"mlp-8", "mlp-16", "mlp-1024"}

    big = by_arch["mlp-1024"]
    assert not big["fits"] and big["flash_used"] > big["flash_budget"] == FLASH
    assert big["flash_used"] > big["params"] >= 784 * 1024 + 1024 * 10  # at least its int8 weights
    assert big["rejected"] == f"over flash by {big['flash_used'] - FLASH:,} B"
    assert big["val_errors_by_epochs"] == {}  # never trained
    for small in ("mlp-8", "mlp-16"):
        assert by_arch[small]["fits"] and by_arch[small]["rejected"] is None
        assert by_arch[small]["flash_used"] < by_arch["mlp-1024"]["flash_used"]
        assert by_arch[small]["macs"] == by_arch[small]["params"]  # one MAC per weight in an MLP

    # ASHA, largest first, one trial at a time (--quick: rungs at 1 and 2 epochs): mlp-16 sets the
    # bar at epoch 1 and goes on; mlp-8 goes on only if it is at least as good there.
    assert fit["scheduler"]["name"] == "ASHA (Ray Tune)" and fit["scheduler"]["reduction_factor"] == 2
    first, last = fit["rungs"]
    assert first["epochs"] == 1 and sorted(first["ranking"]) == ["mlp-16", "mlp-8"] and last["epochs"] == 2
    errors = first["val_errors"]
    small_stopped = errors["mlp-8"] > errors["mlp-16"]
    assert first["stopped"] == (["mlp-8"] if small_stopped else []) and last["stopped"] == []
    assert sorted(last["ranking"]) == (["mlp-16"] if small_stopped else ["mlp-16", "mlp-8"])
    assert by_arch["mlp-8"]["val_errors_by_epochs"].keys() == ({"1"} if small_stopped else {"1", "2"})

    chosen = fit["chosen"]
    assert chosen["arch"] == last["ranking"][0]
    assert chosen["firmware"]["fits"] and chosen["firmware"]["board"] == "microbit"
    assert 0 <= chosen["test_errors_int8"] < chosen["test_total"] == 500
    assert (out / chosen["tflite"]).is_file()
    assert fit["next_command"].startswith(f"tinykd build --student {chosen['arch']} --board microbit")
    assert f"next: {fit['next_command']}" in output
    assert (out / "plots" / "fit_front.png").read_bytes()[:8] == PNG_SIGNATURE
    report = (out / "fit.md").read_text()
    assert "](plots/fit_front.png)" in report and fit["next_command"] in report
    assert "## ASHA" in report and f"| 1 | {', '.join(f'{a} {errors[a]}' for a in first['ranking'])} |" in report
    assert f"rejected: over flash by {big['flash_used'] - FLASH:,} B" in report

    # The same command again: sizes, recorded rungs and the finished winner are all reused, and
    # ASHA decides on the numbers of the first run again (checkpoints have moved on since).
    sizes = {p.name: p.stat().st_mtime_ns for p in (out / "sizes").glob("*/*.json")}
    code, output = quick_fit(out, mnist_dir, "8,16,1024")
    assert code == 0, output
    assert "int8 model finished earlier, kept" in output
    again = json.loads((out / "fit.json").read_text())
    assert again["rungs"] == fit["rungs"] and again["chosen"] == fit["chosen"]

    # A latency limit between the two: the larger is dropped before training; sizes come from the cache.
    limit = (by_arch["mlp-8"]["latency_ms_estimate"] + by_arch["mlp-16"]["latency_ms_estimate"]) / 2
    code, output = quick_fit(out, mnist_dir, "8,16", "--max-latency", f"{limit:.4f}")
    assert code == 0, output
    assert {p.name: p.stat().st_mtime_ns for p in (out / "sizes").glob("*/*.json")} == sizes
    fit = json.loads((out / "fit.json").read_text())
    by_arch = {c["arch"]: c for c in fit["candidates"]}
    assert by_arch["mlp-16"]["rejected"] == (
        f"estimated {by_arch['mlp-16']['latency_ms_estimate']:.2f} ms > {fit['max_latency_ms']:g} ms"
    )
    assert fit["chosen"]["arch"] == "mlp-8" and fit["max_latency_ms"] == pytest.approx(limit, abs=1e-4)

    # Nothing fits: a clear error with the smallest candidate's sizes (from the cache: no compile).
    code, output = quick_fit(out, mnist_dir, "1024")
    assert code == 2, output
    assert "No candidate fits microbit" in output and f"{big['flash_used']:,} B" in output
    assert "Traceback" not in output

    # A price instead of a board: each candidate on the cheapest board where it fits and meets the
    # latency limit. Both fit the $4 Pico (Cortex-M0+ at 133 MHz, ~6.6 instructions per MAC); with
    # a limit between their Pico latencies the larger moves up to the $13.19 Nucleo-F411RE (M4 at 100 MHz).
    from tinykd.boards import load_board

    pico, nucleo = load_board("pico"), load_board("nucleo-f411re")
    macs = {"mlp-8": 784 * 8 + 8 * 10, "mlp-16": 784 * 16 + 16 * 10}
    limit = (estimate_latency_ms(macs["mlp-8"], pico) + estimate_latency_ms(macs["mlp-16"], pico)) / 2
    assert estimate_latency_ms(macs["mlp-16"], nucleo) < limit
    budget = ("--widths", "8,16", "--depths", "1", "--budget-usd", "16", "--max-latency", f"{limit:.4f}")
    code, output = quick_experiment("fit", out, mnist_dir, *budget)
    assert code == 0, output
    fit = json.loads((out / "fit.json").read_text())
    assert fit["budget_usd"] == 16 and fit["boards"][0]["board"] == "pico"
    assert all(b["price_usd"] <= 16 for b in fit["boards"]) and "nano33" not in [b["board"] for b in fit["boards"]]
    by_arch = {c["arch"]: c for c in fit["candidates"]}
    assert by_arch["mlp-8"]["board"] == "pico" and by_arch["mlp-16"]["board"] == "nucleo-f411re"
    assert fit["chosen"]["firmware"]["board"] == fit["board"] == by_arch[fit["chosen"]["arch"]]["board"]
    assert f"--board {fit['board']}" in fit["next_command"]
    assert "Price budget $16" in (out / "fit.md").read_text()
    code, output = quick_experiment("fit", out, mnist_dir, "--widths", "8", "--depths", "1", "--budget-usd", "2")
    assert code == 2 and "No board costs at most $2: the cheapest is pico at $4.00" in output
    code, output = quick_fit(out, mnist_dir, "8", "--budget-usd", "20")
    assert code == 2 and "leave out --board" in output


def test_candidates_are_buildable_mlps_and_latency_scales_with_macs():
    widths, depths = parse_sizes("64, 16,16", "2,1")
    assert (widths, depths) == ([16, 64], [1, 2])
    names = candidate_archs(widths, depths)
    assert names == ["mlp-16", "mlp-64", "mlp-16-16", "mlp-64-64"]
    model = build_model(names[-1], (28, 28, 1), 10)
    assert count_params(model) == 784 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10
    # 1 M MACs at 1.54 instructions each on the 25 MHz M4 of mps2-an386: 61.6 ms; on the 16 MHz
    # Cortex-M0 of the micro:bit (no DSP: 6.63 instructions per MAC) 414.4 ms.
    from tinykd.boards import load_board

    assert estimate_latency_ms(1_000_000, load_board("mps2-an386")) == pytest.approx(61.6)
    assert estimate_latency_ms(1_000_000, load_board("microbit")) == pytest.approx(414.375)
    assert estimate_latency_ms(1_000_000, load_board("mps2-an385")) == pytest.approx(112.8)


def test_next_command_carries_non_default_distillation_settings():
    assert next_command("mlp-64", "nano33", resolve()) == "tinykd build --student mlp-64 --board nano33"
    config = resolve(overrides={"distill": {"temperature": 4.0, "method": "rkd"}})
    assert next_command("mlp-64", "nano33", config) == "tinykd build --student mlp-64 --board nano33 --method rkd -T 4"


def test_kws_candidates_are_ds_cnns_sized_with_the_device_frontend(tmp_path):
    """KWS: `fit` searches DS-CNN channels x blocks; each candidate is sized with the MFCC frontend
    the device runs (its code and the 1 s raw-audio buffer count), so a 16 KB micro:bit is refused
    what a Nano 33 BLE takes. No training: sizes come from the untrained model."""
    import numpy as np

    from tinykd.boards import load_board
    from tinykd.data import get_task
    from tinykd.experiments.fit import FAMILIES
    from tinykd.experiments.fit_sizing import placed_candidate
    from tinykd.experiments.points import Experiment

    family = FAMILIES["kws"]
    widths, depths = parse_sizes("8", "2", family)
    assert candidate_archs(widths, depths, family) == ["ds-cnn-8x2"]
    model = build_model("ds-cnn-8x2", (49, 10, 1), 12)
    pointwise = [x.name for x in model.layers if x.name in {"pw1", "pw2", "pw3"}]
    assert model.name == "ds-cnn-8x2" and pointwise == ["pw1", "pw2"]

    config = resolve(task="kws", quick=True)
    dataset = type("Data", (), {})()
    dataset.input_shape, dataset.num_classes = (49, 10, 1), 12
    dataset.x_train = np.random.default_rng(0).uniform(-80, 40, (64, 49, 10, 1)).astype(np.float32)
    experiment = Experiment(config, tmp_path, dataset, get_task("kws"), tmp_path / "t.keras", "t", log=print)
    nano = placed_candidate(experiment, "ds-cnn-8x2", [load_board("nano33")], None)
    assert nano.size.board == "nano33" and not nano.rejected
    assert nano.size.ram_used > 32_000, "the 16 000-sample int16 audio buffer is part of the firmware"
    tiny = placed_candidate(experiment, "ds-cnn-8x2", [load_board("microbit")], None)
    assert tiny.rejected.startswith("over RAM by")
    assert next_command("ds-cnn-8x2", "nano33", config).startswith("tinykd build --task kws --student ds-cnn-8x2")
