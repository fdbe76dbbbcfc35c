"""A distillation method added from outside the package: a teacher-assistant method (Mirzadeh et
al. 2020: teacher -> assistant -> student) defined here, registered with `register_method`, and
run through a --quick build to the report without a line of tinykd changed. Also: the pipeline
names no method, and the registry refuses what it could not use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tinykd
from tinykd.config import resolve
from tinykd.distill.methods import (
    METHODS,
    RECIPES,
    BuildRecipe,
    Hinton,
    register_method,
    single_teacher_methods,
    unregister_method,
)
from tinykd.errors import TinykdError
from tinykd.pipeline import Build

ASSISTANT_ARCH = "mlp-48"


class Assistant(Hinton):
    """Hinton's loss, with the trained assistant as the student's teacher."""

    name = "assistant"
    needs_teacher = True


class AssistantRecipe(BuildRecipe):
    name = "assistant"
    method = Assistant
    extra_models = True

    def extra_model_settings(self, config):
        return (super().extra_model_settings(config), ASSISTANT_ARCH, config.distill.temperature)

    def train_extra_models(self, build):
        kd = build.config.distill
        assistant = build.new_model(ASSISTANT_ARCH)
        result = build.train(
            "extra-teachers",
            assistant,
            build.config.teacher,
            (Hinton(kd.temperature, kd.alpha), build.load_model("teacher")),
        )
        build.save_history("assistant", result)
        return [build.save_model(assistant, "assistant")], {"assistant_seconds": result.seconds}

    def kd_pair(self, build, stage):
        return self.make(build.config.distill), build.load_model("assistant")

    def evaluate_models(self, build):
        from tinykd.evaluate import predict_logits

        return {"assistant": predict_logits(build.load_model("assistant"), build.dataset.x_test)}, {"assistant": 1}

    def model_label(self, name):
        return "teacher assistant (float)" if name == "assistant" else None


@pytest.fixture
def assistant():
    recipe = register_method(AssistantRecipe())
    try:
        yield recipe
    finally:
        unregister_method("assistant")


SMALL = {
    "data": {"train_limit": 1200, "val_size": 300, "test_limit": 300},
    "teacher": {"arch": "mlp-64", "epochs": 2, "batch_size": 32},
    "student": {"arch": "mlp-32", "epochs": 2, "batch_size": 32},
    "qat": {"epochs": 1, "batch_size": 32, "calibration_samples": 50},
}


def test_a_method_registered_from_outside_runs_through_the_build(assistant, mnist_dir, tmp_path):
    assert list(METHODS)[-1] == "assistant" and METHODS["assistant"] is Assistant
    assert "assistant" not in single_teacher_methods()
    overrides = {**SMALL, "data": {**SMALL["data"], "dir": str(mnist_dir)}, "distill": {"method": "assistant"}}
    config = resolve(task="mnist", quick=True, overrides=overrides)
    build = Build(config, tmp_path / "b", log=lambda m: None)
    build.run("report")
    out = build.out
    stages = json.loads((out / "stages.json").read_text())
    assert stages["extra-teachers"]["artifacts"] == ["assistant.keras"]
    assert (out / "history" / "assistant.json").is_file()
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["assistant"] == 1
    for name in ("assistant", "student", "int8_tflm"):
        assert evaluation["models"][name]["errors"] < 0.4 * evaluation["test_examples"], name
    report = (out / "report.md").read_text()
    assert "| teacher assistant (float) |" in report
    # Listed right after the teacher, as every method's own models are.
    rows = [line for line in report.splitlines() if line.startswith("| ") and "(float)" in line]
    assert rows[0].startswith("| teacher (float)") and rows[1].startswith("| teacher assistant (float)")

    # Its fingerprint settings are its own: a change to them redoes its stage, not the teacher's.
    logs = []
    again = resolve(task="mnist", quick=True, overrides={**overrides, "distill": {"method": "assistant", "alpha": 0.5}})
    rebuilt = Build(again, out, log=logs.append)
    assert rebuilt.is_done("train-teacher") and rebuilt.is_done("extra-teachers")
    assert not rebuilt.is_done("distill")
    hotter = resolve(
        task="mnist", quick=True, overrides={**overrides, "distill": {"method": "assistant", "temperature": 4.0}}
    )
    assert not Build(hotter, out, log=lambda m: None).is_done("extra-teachers")


def test_an_unregistered_method_is_a_user_error_that_lists_the_registry(assistant):
    resolve(task="mnist", quick=True, overrides={"distill": {"method": "assistant"}})
    unregister_method("assistant")
    with pytest.raises(TinykdError, match=r"Unknown distillation method 'assistant'; choose one of hinton, ensemble"):
        resolve(task="mnist", quick=True, overrides={"distill": {"method": "assistant"}})


def test_registry_refuses_duplicates_and_mismatched_recipes(assistant):
    with pytest.raises(TinykdError, match="registered already"):
        register_method(AssistantRecipe())
    assert register_method(AssistantRecipe(), replace=True).name == "assistant"

    class Misnamed(AssistantRecipe):
        name = "helper"

    with pytest.raises(TinykdError, match="name of its method class"):
        register_method(Misnamed())
    with pytest.raises(TinykdError, match="BuildRecipe instance"):
        register_method(Assistant)
    assert "helper" not in RECIPES


def test_the_pipeline_names_no_method():
    sources = {p.name: p.read_text() for p in (Path(tinykd.__file__).parent / "pipeline").glob("*.py")}
    for name in METHODS:
        for module, text in sources.items():
            assert f'"{name}"' not in text and f"'{name}'" not in text, (name, module)
