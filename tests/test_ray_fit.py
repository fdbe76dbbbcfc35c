"""`tinykd fit --board nano33 --quick` runs its candidates as trials under Tune's ASHA."""

import json

from _cli import quick_config, quick_experiment


def test_fit_on_nano33_runs_through_asha(tmp_path, mnist_dir):
    out = tmp_path / "fit"
    code, output = quick_experiment("fit", out, mnist_dir, "--board", "nano33", "--widths", "8,32", "--depths", "1")
    assert code == 0, output
    fit = json.loads((out / "fit.json").read_text())
    assert fit["board"] == "nano33" and fit["scheduler"]["name"] == "ASHA (Ray Tune)"
    first, last = fit["rungs"]  # --quick: 2 student epochs, rungs at 1 and 2
    assert (first["epochs"], last["epochs"]) == (1, 2)
    # mlp-32 (largest) started first and set the bar at epoch 1; mlp-8 went on only if it cleared it.
    assert sorted(first["ranking"]) == ["mlp-32", "mlp-8"]
    stopped = first["val_errors"]["mlp-8"] > first["val_errors"]["mlp-32"]
    assert first["stopped"] == (["mlp-8"] if stopped else [])
    assert sorted(last["ranking"]) == (["mlp-32"] if stopped else ["mlp-32", "mlp-8"])
    assert fit["chosen"]["arch"] == last["ranking"][0] and fit["chosen"]["firmware"]["board"] == "nano33"
    # One bar for the search: two trials, with how many ASHA stopped.
    assert "2/2 [" in output and f"stopped {int(stopped)}" in output
    report = (out / "fit.md").read_text()
    assert "## ASHA" in report and "| rung (epochs) |" in report
    assert ("stopped by ASHA after 1 epoch" in report) == stopped


def test_temperature_alpha_search_draws_from_the_ranges_and_replays(tmp_path, mnist_dir):
    from tinykd.experiments.kd_search import search_temperature_alpha

    config = quick_config(mnist_dir)
    out = tmp_path / "search"
    found = search_temperature_alpha(config, out, "mlp-8", samples=2, temperatures=(2.0, 8.0), alphas=(0.3, 0.9))
    assert len(found) == 2 and found[0]["val_errors"] <= found[1]["val_errors"]
    for sample in found:
        assert 2.0 <= sample["temperature"] <= 8.0 and 0.3 <= sample["alpha"] <= 0.9
        assert 0 <= sample["val_errors"] < sample["val_total"] == 500
    records = {p.name: p.stat().st_mtime_ns for p in (out / "kd_search").glob("*.json")}
    assert len(records) == 2
    # The same seed draws the same samples; their kept results are reported without training.
    assert (
        search_temperature_alpha(config, out, "mlp-8", samples=2, temperatures=(2.0, 8.0), alphas=(0.3, 0.9)) == found
    )
    assert {p.name: p.stat().st_mtime_ns for p in (out / "kd_search").glob("*.json")} == records
