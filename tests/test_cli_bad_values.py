"""A value the user gave is used or refused with a message (exit 2), never replaced by another and
never answered with a traceback."""

import pytest
from click.testing import CliRunner

from tinykd.cli import main


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def assert_refused(result, *phrases: str):
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in result.output, result.output


def test_data_dir_that_does_not_exist_is_refused_even_when_tinykd_data_has_mnist(tmp_path, mnist_dir):
    result = run("data", "--data-dir", str(tmp_path / "nowhere"), env={"TINYKD_DATA": str(mnist_dir)})
    assert_refused(result, "not found in --data-dir", "nowhere")


@pytest.mark.parametrize("value", ["0", "-5"])
def test_random_count_below_one_is_refused(value, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\0" * 64)
    result = run("evaluate", "--model", str(model), "--random", value)
    assert_refused(result, "--random", "is not in the range x>=1")


@pytest.mark.parametrize("value", ["0", "-1"])
def test_limit_below_one_is_refused(value):
    assert_refused(run("evaluate", "--limit", value), "--limit", "is not in the range x>=1")


def test_unwritable_output_folder_is_a_message(quick_build):
    tflite = str(quick_build.out / "model_int8.tflite")
    for command in (["firmware", "--model", tflite], ["evaluate", "--model", tflite, "--random", "1"]):
        result = run(*command, "--out", "/proc/tinykd-test")
        assert_refused(result, "Cannot write", "--out")
