"""T and alpha chosen on validation (`--temperature auto --alpha auto`, the default), early
stopping of the student and its baseline, and the better of the two shipped: on the shared
--quick MNIST build, and on a dataset made here where a label-shifted teacher makes KD lose."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _cli import run

from tinykd.config import resolve
from tinykd.errors import TinykdError
from tinykd.pipeline import STAGES, Build
from tinykd.pipeline.stages import stage_fingerprint

# ---------------------------------------------------------------------------- configuration


def test_auto_is_the_default_and_a_number_still_fixes_it(tmp_path):
    kd = resolve().distill
    assert (kd.temperature, kd.alpha) == ("auto", "auto") and kd.searched
    fixed = resolve(overrides={"distill": {"temperature": 4, "alpha": 0.5}}).distill
    assert (fixed.temperature, fixed.alpha, fixed.searched) == (4.0, 0.5, False)
    half = resolve(overrides={"distill": {"temperature": 8.0}}).distill
    assert half.searched and half.numbers() == (8.0, 0.9)
    toml = tmp_path / "kd.toml"
    toml.write_text('[distill]\ntemperature = "AUTO"\nalpha = 0.25\n')
    assert (resolve(config_file=toml).distill.temperature, resolve(config_file=toml).distill.alpha) == ("auto", 0.25)
    toml.write_text('[distill]\ntemperature = "warm"\n')
    with pytest.raises(TinykdError, match='must be a number or "auto"'):
        resolve(config_file=toml)
    with pytest.raises(TinykdError, match="search_alphas must be"):
        resolve(overrides={"distill": {"search_alphas": [0.5, 1.5]}})


def test_cli_takes_auto_or_a_number():
    from tinykd.cli.options import AutoOrNumber

    assert [AutoOrNumber().convert(v, None, None) for v in ("auto", " Auto", "4", "0.5")] == ["auto", "auto", 4.0, 0.5]
    code, output = run("distill", "--temperature", "warm")
    assert code == 2 and "'warm' is neither a number nor 'auto'" in output


def test_distill_fingerprint_follows_the_search_only_when_it_runs(mnist_dir):
    def fingerprint(**kd):
        return stage_fingerprint(resolve(overrides={"data": {"dir": str(mnist_dir)}, "distill": kd}), "distill")

    auto = fingerprint()
    assert fingerprint(search_temperatures=[1.0, 4.0]) != auto  # another grid may choose another T
    assert fingerprint(patience=1) != auto
    fixed = fingerprint(temperature=4.0, alpha=0.5)
    assert fixed != auto
    # with both fixed nothing is searched: the grid does not matter
    assert fingerprint(temperature=4.0, alpha=0.5, search_temperatures=[1.0, 4.0]) == fixed


# ---------------------------------------------------------------------------- early stopping


def test_early_stopping_keeps_the_best_epoch_and_resumes_to_it(tmp_path):
    import tf_keras as keras

    from tinykd.distill import Distiller, train
    from tinykd.distill.training import seed_everything
    from tinykd.models import build_model

    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, 6, 6, 1)).astype(np.float32)
    y = (x[:, :3].mean(axis=(1, 2, 3)) > 0).astype(np.int64)
    # Validation labels half right, half noise: its accuracy peaks early and wanders after.
    x_val = rng.normal(size=(200, 6, 6, 1)).astype(np.float32)
    y_val = (x_val[:, :3].mean(axis=(1, 2, 3)) > 0).astype(np.int64)
    y_val[100:] = rng.integers(0, 2, 100)

    def fit(folder):
        seed_everything(5)
        model = build_model("mlp-16", (6, 6, 1), 2)
        options = dict(epochs=12, batch_size=32, learning_rate=0.05, seed=5, max_shift=0, patience=2)
        return model, train(Distiller(model), x, y, (x_val, y_val), checkpoint_dir=folder, **options)

    model, result = fit(tmp_path / "run")
    accuracy = result.history["val_accuracy"]
    assert result.epochs == 12 and result.epochs_run == len(accuracy) < 12  # it stopped early
    assert result.best_epoch == int(np.argmax(accuracy)) + 1 and result.epochs_run - result.best_epoch == 2
    kept = keras.metrics.SparseCategoricalAccuracy()
    kept.update_state(y_val, model.predict(x_val, verbose=0))
    assert float(kept.result()) == pytest.approx(accuracy[result.best_epoch - 1])  # the best weights, restored
    # Run again on the same checkpoints: nothing more is trained, the same best weights come back.
    again, second = fit(tmp_path / "run")
    assert (second.best_epoch, second.epochs_run) == (result.best_epoch, result.epochs_run)
    for a, b in zip(again.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------- the quick MNIST build


def test_quick_build_reports_the_search_and_the_decision(quick_build):
    out = quick_build.out
    report = json.loads((out / "report.json").read_text())
    kd = report["distillation"]
    search = kd["choice"]
    assert search["searched"] and search["temperatures"] == [2.0, 8.0] and search["alphas"] == [0.5, 0.9]
    assert len(search["points"]) == 4 and search["epochs"] == 1
    best = min(search["points"], key=lambda p: (p["val_errors"], p["val_loss"]))
    assert (kd["temperature"], kd["alpha"]) == (best["temperature"], best["alpha"])
    val = {name: m["val_errors"] for name, m in kd["models"].items()}
    assert kd["shipped"] == ("student" if val["student"] < val["baseline"] else "baseline")
    assert (
        kd["won_on_test_errors"]
        == report["results"][kd["not_shipped"]]["errors"] - report["results"][kd["shipped"]]["errors"]
    )
    for m in kd["models"].values():  # early stopping recorded: the epoch kept, of those trained
        assert 1 <= m["best_epoch"] <= m["epochs_run"] <= kd["max_epochs"] == 2
    records = json.loads((out / "stages.json").read_text())
    assert records["qat"]["info"]["from"] == kd["shipped"]
    assert records["distill"]["info"]["temperature"] == kd["temperature"]
    md = (out / "report.md").read_text()
    assert (
        "| T \\ alpha | 0.5 | 0.9 |" in md and f"Chosen: **T = {kd['temperature']:g}, alpha = {kd['alpha']:g}**" in md
    )
    assert "(chosen on validation)" in md
    shipped = "**Shipped: the KD student.**" if kd["shipped"] == "student" else "**Shipped: the no-KD baseline."
    assert shipped in md and "![kd_search](plots/kd_search.png)" in md
    assert (out / "plots" / "kd_search.png").stat().st_size > 5000
    # The chosen T/alpha is part of the finished build: the same configuration finds every stage done.
    again = Build(quick_build.config, out, log=lambda m: None)
    assert all(again.is_done(stage) for stage in STAGES)


# ---------------------------------------------------------------------------- a dataset where KD loses


def _quadrants(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """8x8 grey images of 4 classes: a bright 4x4 block in the class's quadrant, over noise."""
    y = rng.integers(0, 4, n)
    x = rng.integers(0, 90, (n, 8, 8)).astype(np.uint8)
    for i, k in enumerate(y):
        r, c = 4 * (k // 2), 4 * (k % 2)
        x[i, r : r + 4, c : c + 4] = rng.integers(150, 256, (4, 4))
    return x, y.astype(np.uint8)


def test_kd_that_loses_ships_the_baseline_and_says_so(tmp_path):
    """A teacher trained on shifted labels (class k taught as k + 1) is confidently wrong: at every
    T and alpha of the search the distilled student does worse on validation than the baseline, so
    the baseline goes into QAT, int8 and the firmware, and the report says distillation did not help."""
    import tf_keras as keras

    from tinykd.data import load_dataset
    from tinykd.models import build_model

    rng = np.random.default_rng(0)
    (x_train, y_train), (x_test, y_test) = _quadrants(800, rng), _quadrants(200, rng)
    data = tmp_path / "quadrants.npz"
    np.savez(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    overrides = {
        "data": {"dir": str(data)},
        "student": {"arch": "mlp-32", "batch_size": 32, "learning_rate": 0.005, "epochs": 4},
        "qat": {"batch_size": 32},
    }
    config = resolve(task="image", quick=True, overrides=overrides)
    d = load_dataset(config)
    keras.utils.set_random_seed(0)
    teacher = build_model("mlp-32", d.input_shape, d.num_classes)
    teacher.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(d.x_train, (d.y_train + 1) % 4, epochs=8, batch_size=32, verbose=0)
    teacher.save(tmp_path / "shifted_teacher.keras")
    config = resolve(
        task="image", quick=True, overrides={**overrides, "teacher": {"model": str(tmp_path / "shifted_teacher.keras")}}
    )
    out = tmp_path / "build"
    build = Build(config, out, log=lambda m: None)
    build.run("report")  # every stage but the device's (QEMU): the decision is made before it

    report = json.loads((out / "report.json").read_text())
    kd, results = report["distillation"], report["results"]
    assert results["teacher"]["errors"] > 0.9 * report["dataset"]["test"]  # the teacher is wrong on purpose
    assert kd["choice"]["searched"] and len(kd["choice"]["points"]) == 4
    assert kd["shipped"] == "baseline" and not kd["kd_helped_on_validation"]
    assert kd["models"]["student"]["val_errors"] > kd["models"]["baseline"]["val_errors"]
    assert build.records["qat"].info["from"] == "baseline"
    # The int8 model is the baseline's: within a few errors of it, far from the distilled student.
    assert abs(results["int8_tflm"]["errors"] - results["baseline"]["errors"]) <= 3
    assert results["student"]["errors"] > results["int8_tflm"]["errors"] + 10
    md = (out / "report.md").read_text()
    assert "**Shipped: the no-KD baseline. Distillation did not help on this data:**" in md
    assert "shipped int8, from the baseline (TFLite Micro)" in md
    assert f"the KD student made {kd['models']['student']['val_errors']} validation errors" in md

    # --ship kd carries the losing KD student on all the same, and the report says it was asked for.
    config = resolve(
        task="image",
        quick=True,
        overrides={
            **overrides,
            "teacher": {"model": str(tmp_path / "shifted_teacher.keras")},
            "distill": {"ship": "kd"},
        },
    )
    build = Build(config, out, log=lambda m: None)
    build.run("report")
    forced = json.loads((out / "report.json").read_text())
    kd_forced, results_forced = forced["distillation"], forced["results"]
    assert kd_forced["ship"] == "kd" and kd_forced["shipped"] == "student"
    assert build.records["qat"].info["from"] == "student"
    # Same seeds, same models: the forced build trains the two students to the same errors.
    assert kd_forced["models"] == kd["models"]
    assert abs(results_forced["int8_tflm"]["errors"] - results_forced["student"]["errors"]) <= 10
    md = (out / "report.md").read_text()
    assert "**Shipped: the KD student, as asked ([distill] ship = kd), not chosen on validation.**" in md
    assert "distillation did not help on validation" in md
