"""Every distillation method through the build: tiny --quick builds sharing one loaded teacher
(`teacher.model`), up to the host int8 evaluation; the method's extra models in the artifacts
and the evaluation; the teacher file's fingerprint; user errors in the method settings."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from click.testing import CliRunner

from tinykd.cli import main
from tinykd.config import merge, resolve
from tinykd.errors import TinykdError
from tinykd.pipeline import Build

# Smaller than --quick: a 64-unit teacher and a 32-unit student, two epochs of small batches.
SMALL = {
    "data": {"train_limit": 1500, "val_size": 300, "test_limit": 300},
    "teacher": {"arch": "mlp-64", "epochs": 2, "batch_size": 32},
    "student": {"arch": "mlp-32", "epochs": 2, "batch_size": 32},
    "qat": {"epochs": 1, "batch_size": 32, "calibration_samples": 50},
}


def small_config(mnist_dir, **sections):
    config = resolve(task="mnist", quick=True, overrides={**SMALL, "data": {**SMALL["data"], "dir": str(mnist_dir)}})
    return merge(config, sections, "test") if sections else config


@pytest.fixture(scope="module")
def shared_teacher(mnist_dir, tmp_path_factory):
    """One teacher trained by a build, then loaded by every method's build (as the comparison does)."""
    build = Build(small_config(mnist_dir), tmp_path_factory.mktemp("teacher"), log=lambda m: None)
    build.run("train-teacher")
    return build.out / "teacher.keras"


METHODS = {
    "ensemble": ({"teachers": 2}, ["teacher1.keras"], ["teacher1", "ensemble"]),
    "specialists": (
        {"specialists": 2, "specialist_classes": 2, "specialist_epochs": 1},
        ["specialist0.keras", "specialist1.keras", "specialists.json"],
        ["specialists"],
    ),
    "online": ({"temperature": 1.0, "alpha": 0.5}, ["peer.keras"], ["peer"]),
    "self": ({"generations": 2, "temperature": 1.0, "alpha": 0.5}, ["generation1.keras"], ["generation1"]),
}


@pytest.mark.parametrize("method", list(METHODS))
def test_build_runs_the_method_to_the_host_evaluation(method, mnist_dir, shared_teacher, tmp_path):
    settings, artifacts, models = METHODS[method]
    config = small_config(mnist_dir, teacher={"model": str(shared_teacher)}, distill={"method": method, **settings})
    build = Build(config, tmp_path / method, log=lambda m: None)
    build.run("evaluate")
    out = build.out
    stages = json.loads((out / "stages.json").read_text())
    assert set(stages) == {"train-teacher", "extra-teachers", "distill", "qat", "convert", "evaluate"}
    for record in stages.values():
        assert all((out / a).is_file() for a in record["artifacts"])
    listed = [a for record in stages.values() for a in record["artifacts"]]
    assert all(a in listed for a in artifacts), (artifacts, listed)

    # The teacher was loaded, not trained: same file, known by its sha256.
    info = stages["train-teacher"]["info"]
    assert info["sha256"] == hashlib.sha256(shared_teacher.read_bytes()).hexdigest()
    assert not (out / "history" / "teacher.json").exists()

    evaluation = json.loads((out / "evaluation.json").read_text())
    results = evaluation["models"]
    assert set(models) <= set(results)
    total = evaluation["test_examples"]
    assert total == 300
    # Two epochs on 1 500 examples: far from chance (270 errors of 300), teacher-made models too.
    for name in ["int8_tflm", "student", *models]:
        assert results[name]["errors"] < 0.4 * total, (name, results[name]["errors"])
    # ensemble and specialists: T and alpha ("auto") chosen by the search with all their teachers;
    # online and self train peers or generations alongside, so they keep the given T and alpha.
    choice = json.loads((out / "distillation.json").read_text())["choice"]
    if method in ("ensemble", "specialists"):
        assert choice["searched"] and len(choice["points"]) == 4
        assert (choice["temperature"], choice["alpha"]) in {(p["temperature"], p["alpha"]) for p in choice["points"]}
    else:
        assert not choice["searched"] and (choice["temperature"], choice["alpha"]) == (1.0, 0.5)
    if method == "specialists":
        groups = json.loads((out / "specialists.json").read_text())["groups"]
        assert len(groups) == 2 and all(len(g) == 2 for g in groups)
        assert [s["classes"] for s in evaluation["specialists"]] == groups
        assert all(s["errors"] < 0.3 * s["total"] for s in evaluation["specialists"])  # 3 outputs each

    if method == "ensemble":
        # Resumable: the same config again redoes nothing.
        logs = []
        Build(config, out, log=logs.append).run("evaluate")
        assert logs and all("up to date" in line for line in logs), logs


def test_teacher_model_fingerprint_is_its_bytes(mnist_dir, shared_teacher, tmp_path):
    build = Build(small_config(mnist_dir, teacher={"model": str(shared_teacher)}), tmp_path / "a", log=lambda m: None)
    build.run("train-teacher")
    # The same bytes elsewhere: the same teacher, nothing to redo.
    copy = tmp_path / "copy.keras"
    shutil.copyfile(shared_teacher, copy)
    assert Build(small_config(mnist_dir, teacher={"model": str(copy)}), build.out, log=lambda m: None).is_done(
        "train-teacher"
    )
    # Other bytes: a different teacher, so the stage (and all after it) is redone.
    other = tmp_path / "other.keras"
    other.write_bytes(shared_teacher.read_bytes() + b"\0")
    assert not Build(small_config(mnist_dir, teacher={"model": str(other)}), build.out, log=lambda m: None).is_done(
        "train-teacher"
    )


def test_teacher_model_for_another_task_is_a_user_error(mnist_dir, tmp_path):
    import tf_keras as keras

    import tinykd  # noqa: F401
    from tinykd.models.store import save_model

    inputs = keras.Input(shape=(4,))
    wrong = save_model(keras.Model(inputs, keras.layers.Dense(3, name="logits")(inputs)), tmp_path / "wrong.keras")
    build = Build(small_config(mnist_dir, teacher={"model": str(wrong)}), tmp_path / "b", log=lambda m: None)
    with pytest.raises(TinykdError, match=r"inputs of shape \(4,\) and has 3 outputs"):
        build.run("train-teacher")


@pytest.mark.parametrize(
    "distill, message",
    [
        ({"method": "dark"}, "Unknown distillation method 'dark'"),
        ({"method": "ensemble", "teachers": 1}, "teachers must be at least 2"),
        ({"mean": "median"}, "mean must be 'arithmetic'"),
        ({"specialists": 0}, "specialists >= 1"),
        ({"specialist_classes": 1}, "specialist_classes >= 2"),
        ({"generations": 0}, "generations must be at least 1"),
        ({"peer": "transformer-9000"}, "transformer-9000"),
    ],
)
def test_bad_method_settings_are_user_errors(distill, message):
    with pytest.raises(TinykdError, match=message):
        resolve(task="mnist", quick=True, overrides={"distill": distill})


def test_cli_methods_and_teacher_model_option(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "build",
            "--quick",
            "--method",
            "specialists",
            "--teacher-model",
            str(tmp_path / "missing.keras"),
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert result.exit_code == 2 and "missing.keras" in result.output and "not a .keras or .h5 file" in result.output
    help_text = runner.invoke(main, ["build", "--help"]).output
    assert "--teacher-model" in help_text
    assert all(m in help_text for m in ("ensemble", "specialists", "online", "self"))
