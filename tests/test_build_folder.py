"""A build folder remembers how it was made: later commands on it start from its config.toml and
never retrain it silently."""

import shutil

import pytest
from click.testing import CliRunner

from tinykd.cli import main


@pytest.fixture
def finished_build(quick_build, tmp_path):
    """A copy of the session's finished --quick MNIST build, so that tests may try to change it."""
    folder = tmp_path / "b"
    shutil.copytree(quick_build.out, folder)
    return folder


def snapshot(folder):
    return {name: (folder / name).read_bytes() for name in ("config.toml", "stages.json", "model_int8.tflite")}


def test_later_command_starts_from_the_recorded_quick_configuration(finished_build):
    before = snapshot(finished_build)
    # No --quick here: the recorded quick settings must be used, not the full defaults.
    result = CliRunner().invoke(main, ["export", "--out", str(finished_build)])
    assert result.exit_code == 0, result.output
    assert "running" not in result.output and "[export] up to date" in result.output
    assert snapshot(finished_build)["model_int8.tflite"] == before["model_int8.tflite"]
    assert snapshot(finished_build)["config.toml"] == before["config.toml"]


def test_a_build_made_only_to_look_leaves_the_folder_as_it_was(finished_build, quick_build):
    """Fingerprints asked of other settings (as a refusal check or a script does) rewrite nothing:
    the folder's config.toml still describes its finished stages, so later commands reuse them."""
    import dataclasses

    from tinykd.pipeline import Build

    before = snapshot(finished_build)
    base = quick_build.config
    changed = dataclasses.replace(base, teacher=dataclasses.replace(base.teacher, learning_rate=1e-4))
    assert not Build(changed, finished_build, log=lambda m: None).is_done("train-teacher")
    assert snapshot(finished_build) == before
    result = CliRunner().invoke(main, ["export", "--out", str(finished_build)])
    assert result.exit_code == 0 and "[export] up to date" in result.output, result.output


@pytest.mark.parametrize(
    "args,option,stage",
    [
        (["--temperature", "3"], "--temperature", "distill"),
        (["--epochs", "7"], "--epochs", "distill"),
        (["--teacher-epochs", "1"], "--teacher-epochs", "train-teacher"),
        (["--seed", "5", "-T", "3"], "--seed and --temperature", "train-teacher"),
        (["--board", "mps2-an500"], "--board", "firmware"),
    ],
)
def test_option_that_changes_a_finished_stage_is_refused(finished_build, args, option, stage):
    before = snapshot(finished_build)
    result = CliRunner().invoke(main, ["convert", "--out", str(finished_build), *args])
    assert result.exit_code == 2, result.output
    assert f"{option} would change its finished stage [{stage}]" in result.output
    assert "--force" in result.output and "--out NEW" in result.output
    assert snapshot(finished_build) == before  # nothing ran, nothing was rewritten


def test_another_task_on_a_build_folder_is_refused(finished_build):
    result = CliRunner().invoke(main, ["evaluate", "--host", "--out", str(finished_build), "--task", "kws"])
    assert result.exit_code == 2, result.output
    assert "holds a 'mnist' build" in result.output and "--task kws" in result.output


def test_measurement_settings_are_taken_as_given(finished_build):
    """--limit changes how many test examples reach the device, not a model: no refusal."""
    from tinykd.config import load_toml

    result = CliRunner().invoke(main, ["evaluate", "--out", str(finished_build), "--limit", "3"])
    assert result.exit_code == 0, result.output
    assert load_toml(finished_build / "config.toml")["device"]["limit"] == 3
    assert "[device] running" in result.output and "[distill] running" not in result.output
