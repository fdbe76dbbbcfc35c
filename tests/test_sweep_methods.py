"""Sweeps and searches over methods with models of their own (ensemble, specialists): the members
trained once per experiment by the pipeline's extra-teachers stage, every point of one
architecture (the baseline too) starting from the same weights, and the CLI sweep resuming."""

import json

import numpy as np
from _cli import quick_config, quick_experiment

from tinykd.experiments import points
from tinykd.experiments.points import StudentSpec


def test_every_student_starts_from_the_baselines_weights_and_ensembles_get_their_members(
    tmp_path, mnist_dir, monkeypatch
):
    experiment = points.open_experiment(quick_config(mnist_dir), tmp_path / "exp", log=lambda m: None)
    seen = {}

    def record(experiment, model, kd, spec, section, **kwargs):
        seen[spec.key] = ([w.copy() for w in model.get_weights()], kd)

    monkeypatch.setattr(points, "_learn", record)
    specs = [
        StudentSpec("mlp-16", None),
        StudentSpec("mlp-16", "hinton", 4.0, 0.9),
        StudentSpec("mlp-16", "ensemble", 4.0, 0.9),
        StudentSpec("mlp-16", "specialists", 2.0, 0.5),
    ]
    for spec in specs:
        experiment.prepare_models(spec.method)
        points.train_student(experiment, spec, 1, tmp_path / "ckpt" / spec.key)
    start = seen[specs[0].key][0]
    for spec in specs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(start, seen[spec.key][0], strict=True)), spec.key
    assert seen[specs[0].key][1] == (None, None)

    ensemble, teacher = seen[specs[2].key][1]
    assert type(ensemble).__name__ == "Ensemble" and len(ensemble.teachers) == 1  # + the teacher: 2
    assert (float(ensemble.temperature), float(ensemble.alpha)) == (4.0, 0.9)
    assert (tmp_path / "exp" / "extra-ensemble" / "teacher1.keras").is_file()
    assert (tmp_path / "exp" / "extra-specialists" / "specialist0.keras").is_file()
    # The members are known by their build's fingerprint: a point's settings change with them.
    settings = experiment.student_settings(specs[2])
    assert settings["extra_models"] == experiment.extra_build("ensemble").fingerprint("extra-teachers")
    assert "extra_models" not in experiment.student_settings(specs[1])


def test_sweep_over_ensemble_trains_its_members_once_and_resumes(tmp_path, mnist_dir):
    out = tmp_path / "sweep"
    args = ("--epochs", "1", "--students", "mlp-16", "--temperatures", "4", "--methods", "ensemble")
    code, output = quick_experiment("sweep", out, mnist_dir, *args)
    assert code == 0, output
    assert "2 points trained, 0 finished earlier" in output
    summary = json.loads((out / "sweep.json").read_text())
    keys = [p["key"] for p in summary["points"]]
    assert keys == ["mlp-16__baseline", "mlp-16__ensemble__T4__a0.9"]
    kd = summary["points"][1]
    assert kd["method"] == "ensemble" and kd["int8"]["test_total"] == 500 and 0 <= kd["int8"]["test_errors"] < 500
    stages = json.loads((out / "extra-ensemble" / "stages.json").read_text())
    assert set(stages) == {"train-teacher", "extra-teachers"}
    # The point learned from the members its settings name: the ones the driver trained (trials
    # only read them).
    point = json.loads((out / "points" / "mlp-16__ensemble__T4__a0.9.json").read_text())
    assert point["settings"]["extra_models"] == stages["extra-teachers"]["fingerprint"]
    members = (out / "extra-ensemble" / "teacher1.keras").stat().st_mtime_ns

    code, output = quick_experiment("sweep", out, mnist_dir, *args)
    assert code == 0, output
    assert "0 points trained, 2 finished earlier" in output
    assert (out / "extra-ensemble" / "teacher1.keras").stat().st_mtime_ns == members


def test_the_search_takes_ensembles_and_refuses_peers(tmp_path, mnist_dir):
    import dataclasses

    import pytest

    from tinykd.errors import TinykdError
    from tinykd.experiments.kd_search import search_temperature_alpha

    assert {"hinton", "ensemble", "specialists"} <= set(points.searchable_methods())
    assert not {"online", "self"} & set(points.searchable_methods())
    config = quick_config(mnist_dir)
    online = dataclasses.replace(config, distill=dataclasses.replace(config.distill, method="online"))
    with pytest.raises(TinykdError, match="'online' trains peers or generations with the student"):
        search_temperature_alpha(online, tmp_path / "s", "mlp-8", samples=1)
    assert not (tmp_path / "s").exists()  # refused before anything was written
