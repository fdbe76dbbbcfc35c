"""`tinykd sweep`: a tiny grid through the CLI, resuming, bad grid values, and the Pareto front."""

import json

import numpy as np
import pytest
from _cli import PNG_SIGNATURE, quick_experiment

from tinykd.experiments.pareto import pareto_front


def quick_sweep(out, mnist_dir, *extra):
    return quick_experiment(
        "sweep",
        out,
        mnist_dir,
        "--epochs",
        "1",
        "--students",
        "mlp-16",
        "--temperatures",
        "1,4",
        *extra,
    )


def test_sweep_writes_points_table_and_plots_and_resumes(tmp_path, mnist_dir):
    out = tmp_path / "sweep"
    code, output = quick_sweep(out, mnist_dir)
    assert code == 0, output
    assert "3 points trained, 0 finished earlier" in output

    keys = ["mlp-16__baseline", "mlp-16__hinton__T1__a0.9", "mlp-16__hinton__T4__a0.9"]
    assert sorted(p.stem for p in (out / "points").glob("*.json")) == keys
    summary = json.loads((out / "sweep.json").read_text())
    assert [p["key"] for p in summary["points"]] == keys
    assert summary["test_examples"] == 500 and summary["board"] == "mps2-an386"
    for point in summary["points"]:
        assert point["test_total"] == 500 and 0 <= point["test_errors"] < 500
        assert point["val_total"] == 500 and 0 <= point["val_errors"] < 500
    baseline, *kd = summary["points"]
    assert baseline["method"] == "none" and baseline["int8"] is None
    for point in kd:
        q = point["int8"]
        assert q["test_total"] == 500 and 0 <= q["test_errors"] < 500
        # int8 after one QAT epoch stays close to the float student it came from
        assert abs(q["test_errors"] - point["test_errors"]) <= 50
        # Flash holds at least the int8 weights; RAM at least the tensor arena; mps2-an386 has room
        assert q["flash_used"] >= q["params"] > 12_000 and q["ram_used"] >= q["arena_bytes"]
        assert q["fits"] and q["flash_budget"] == 4_194_304
        assert (out / q["tflite"]).is_file()
    assert summary["pareto_front_flash"] and set(summary["pareto_front_flash"]) <= set(keys[1:])

    soft = summary["soft_targets"]["probabilities"]
    assert set(soft) == {"1", "4"}
    p1, p4 = np.asarray(soft["1"]), np.asarray(soft["4"])
    assert abs(p1.sum() - 1) < 1e-4 and abs(p4.sum() - 1) < 1e-4
    # A higher temperature softens the targets: more entropy, a smaller top probability.
    entropy = lambda p: -(p * np.log(np.clip(p, 1e-12, None))).sum()  # noqa: E731
    assert entropy(p4) > entropy(p1) and p4.max() < p1.max()

    plots = ["errors_vs_temperature.png", "int8_errors_vs_temperature.png", "accuracy_vs_flash.png", "soft_targets.png"]
    assert sorted(summary["plots"]) == sorted(f"plots/{p}" for p in plots)
    table = (out / "sweep.md").read_text()
    for name in plots:
        assert (out / "plots" / name).read_bytes()[:8] == PNG_SIGNATURE
        assert f"](plots/{name})" in table
    assert "| mlp-16 | none (labels only) |" in table and "| mlp-16 | hinton | 4 | 0.9 |" in table

    # Rerun with one point lost and one measured with other firmware sources: the lost one trains
    # again, the other only has its firmware measured again, the baseline is kept untouched.
    baseline_mtime = (out / "points" / f"{keys[0]}.json").stat().st_mtime_ns
    (out / "points" / f"{keys[2]}.json").unlink()
    stale = json.loads((out / "points" / f"{keys[1]}.json").read_text())
    stale["firmware_sources"] = "older-runtime"
    (out / "points" / f"{keys[1]}.json").write_text(json.dumps(stale))
    code, output = quick_sweep(out, mnist_dir)
    assert code == 0, output
    assert "1 points trained, 2 finished earlier" in output
    assert f"{keys[0]}: finished earlier, kept" in output
    assert f"{keys[1]}: finished earlier; the firmware sources changed" in output
    assert (out / "points" / f"{keys[0]}.json").stat().st_mtime_ns == baseline_mtime
    assert json.loads((out / "points" / f"{keys[1]}.json").read_text())["firmware_sources"] != "older-runtime"
    again = json.loads((out / "sweep.json").read_text())
    # Same seed, same settings, same sources: the retrained and the re-measured points come out the same.
    for i in (1, 2):
        assert again["points"][i] == summary["points"][i] | {"seconds": again["points"][i]["seconds"]}


def test_pareto_front_on_a_hand_made_case():
    costs = [10, 20, 30, 15, 20, 40, 5]
    accuracies = [0.50, 0.70, 0.90, 0.40, 0.70, 0.85, 0.50]
    # 6 (cost 5) beats 0 (same accuracy, dearer); 3 is beaten by 6; 4 repeats 1; 5 is beaten by 2.
    assert pareto_front(costs, accuracies) == [6, 1, 2]
    assert pareto_front([], []) == []
    assert pareto_front([3], [0.1]) == [0]
    with pytest.raises(ValueError):
        pareto_front([1, 2], [0.5])


def test_sweep_over_seeds_gives_mean_spread_and_verdict(tmp_path, mnist_dir):
    out = tmp_path / "seeds"
    code, output = quick_experiment(
        "sweep", out, mnist_dir, "--epochs", "1", "--students", "mlp-16", "--temperatures", "4",
        "--seeds", "3,4", "--no-int8",
    )  # fmt: skip
    assert code == 0, output
    keys = [
        "mlp-16__baseline__s3",
        "mlp-16__hinton__T4__a0.9__s3",
        "mlp-16__baseline__s4",
        "mlp-16__hinton__T4__a0.9__s4",
    ]
    summary = json.loads((out / "sweep.json").read_text())
    assert [p["key"] for p in summary["points"]] == keys
    by_key = {p["key"]: p for p in summary["points"]}
    # Another seed is another student: other initial weights and batches.
    assert by_key[keys[0]]["test_errors"] != by_key[keys[2]]["test_errors"]
    stored = {k: json.loads((out / "points" / f"{k}.json").read_text()) for k in keys}
    assert [stored[k]["settings"]["seed"] for k in keys] == [3, 3, 4, 4]

    baseline, hinton = summary["over_seeds"]
    assert baseline["method"] == "none" and baseline["seeds"] == [3, 4] and baseline["verdict"] == ""
    errors = [by_key[keys[0]]["test_errors"], by_key[keys[2]]["test_errors"]]
    assert baseline["float_errors"]["values"] == errors
    assert baseline["float_errors"]["mean"] == pytest.approx(sum(errors) / 2)
    assert baseline["float_errors"]["sd"] == pytest.approx(abs(errors[0] - errors[1]) / 2**0.5, abs=1e-3)
    assert hinton["method"] == "hinton" and hinton["verdict"] in ("better", "worse", "within spread")
    # Paired: each seed's KD student against the baseline of the same seed.
    differences = [by_key[keys[1]]["test_errors"] - errors[0], by_key[keys[3]]["test_errors"] - errors[1]]
    assert hinton["paired"]["differences"] == differences and baseline["paired"] is None
    table = (out / "sweep.md").read_text()
    assert "| paired difference |" in table and f"{hinton['paired']['mean']:+.1f} ± " in table
    assert "## Over seeds 3, 4" in table and "| mlp-16 | 3 | none (labels only) |" in table
    assert (out / "plots" / "errors_over_seeds.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "](plots/errors_over_seeds.png)" in table


def test_seed_verdict_needs_the_spreads_apart():
    from tinykd.experiments.seed_stats import Spread, verdict

    baseline = Spread((100, 104, 102))  # 102 ± 2
    assert verdict(Spread((90, 92, 94)), baseline) == "better"  # 92 ± 2: 94 < 100
    assert verdict(Spread((95, 99, 103)), baseline) == "within spread"  # 99 ± 4 reaches 100
    assert verdict(Spread((110, 112, 114)), baseline) == "worse"
    assert Spread((7,)).sd == 0.0 and Spread((7,)).text() == "7.0 ± 0.0"


def test_bad_seeds_are_named():
    from tinykd.errors import TinykdError
    from tinykd.experiments.sweep_grid import parse_grid

    with pytest.raises(TinykdError, match=r"--seeds: 'x' is not a whole number"):
        parse_grid("4", "0.9", "mlp-16", "hinton", "0,x")
    assert parse_grid("4", "0.9", "mlp-16", "hinton", "2,1,2").seeds == (2, 1)


def test_paired_difference_with_a_student_t_interval():
    from tinykd.experiments.seed_stats import over_seeds

    def point(method, seed, errors):
        return {
            "student": "mlp-8",
            "method": method,
            "temperature": 4.0,
            "alpha": 0.9,
            "int8": None,
            "settings": {"seed": seed},
            "test_errors": errors,
        }

    # Baselines far apart (sd 20), the method always 5-7 fewer: the spreads overlap, the pairs do not.
    base = [point("none", s, e) for s, e in ((0, 100), (1, 140), (2, 120))]
    kd = [point("hinton", s, e) for s, e in ((0, 95), (1, 133), (2, 114))]
    _, hinton = over_seeds(base + kd)
    assert hinton.verdict == "within spread"
    p = hinton.paired
    assert p.differences == (-5, -7, -6) and p.mean == -6 and p.sd == 1
    low, high = p.interval()  # t(0.975, 2) = 4.303: -6 ± 4.303 / sqrt(3)
    assert abs(low - (-6 - 2.4843)) < 1e-3 and abs(high - (-6 + 2.4843)) < 1e-3
    assert p.verdict == "fewer errors" and hinton.to_dict()["paired"]["verdict"] == "fewer errors"
    # A noisy difference straddles 0; more errors the other way; one pair gives no interval.
    noisy = [point("hinton", s, e) for s, e in ((0, 90), (1, 150), (2, 119))]
    assert over_seeds(base + noisy)[1].paired.verdict == "no difference shown"
    worse = [point("hinton", s, e) for s, e in ((0, 110), (1, 151), (2, 129))]
    assert over_seeds(base + worse)[1].paired.verdict == "more errors"
    assert over_seeds(base + kd[:1])[1].paired is None
