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
    assert_refused(result, "--data-dir", "nowhere", "does not exist")


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
        assert_refused(result, "cannot be written", "--out")


# ---- every command, every option, one bad value each ------------------------------------------

# A value each option must refuse (before any long work) with exit 2, no traceback and a message
# that names what was wrong.
BAD_VALUES = {
    "--task": "bogus",
    "--config": "/nonexistent/tinykd.toml",
    "--data-dir": "/nonexistent/data",
    "--seed": "-1",
    "--board": "bogus-board",
    "--teacher": "bogus-arch",
    "--teacher-epochs": "-1",
    "--teacher-model": "/nonexistent/teacher.keras",
    "--epochs": "-1",
    "--qat-epochs": "-1",
    "--temperature": "0",
    "--alpha": "1.5",
    "--method": "bogus",
    "--ship": "sometimes",
    "--student": "bogus-arch",
    "--out": "/proc/tinykd-test/out",
    "--port": "/dev/tinykd-no-such-port",
    "--limit": "0",
    "--model": "/nonexistent/model.tflite",
    "--random": "0",
    "--seconds": "-1",
    "--fuzz": "0",
    "--hostile": "0",
    "--clips": "0",
    "--temperatures": "warm",
    "--alphas": "2",
    "--students": "bogus-arch",
    "--methods": "bogus",
    "--seeds": "0,x",
    "--widths": "wide",
    "--depths": "deep",
    "--max-latency": "-1",
    "--max-latency-ms": "-1",
    "--budget-usd": "-5",
    "--firmware": "/nonexistent/firmware",
    "--elf": "/nonexistent/firmware.elf",
    "--with": "bogus-tool",
    "--min-epochs": "-1",
    "--cpus-per-trial": "0",
    "--keywords": "Yes,no",
    "--recipe": "bogus",
    "--backgrounds": "/nonexistent/noise",
    "--real-clips": "/nonexistent/clips",
}
# What a command needs besides the bad option to get as far as checking it.
REQUIRED = {
    "data synth-kws": ["--out", "{tmp}"],
    "data transfer": ["--model", "{model}", "--real-clips", "{tmp}"],
    "reproduce": ["hinton-mnist"],
}
# Options that only apply beside another one.
COMPANION = {"--random": ["--model", "{model}"], "--port": ["--board", "nano33"]}


def _commands():
    import click

    for name, command in sorted(main.commands.items()):
        if isinstance(command, click.Group):
            for sub_name, sub in sorted(command.commands.items()):
                yield f"{name} {sub_name}", sub
        yield name, command


def _cases():
    for name, command in _commands():
        for param in command.params:
            option = param.opts[0] if param.opts else None
            if option in BAD_VALUES and not getattr(param, "is_flag", False):
                yield name, option
            elif option and option.startswith("--") and not getattr(param, "is_flag", False):
                if option not in ("--address", "--help"):
                    yield name, option  # an option nobody listed: the test fails below and says so


@pytest.mark.parametrize("command,option", sorted(set(_cases())))
def test_every_option_refuses_a_bad_value(command, option, tmp_path, quick_build):
    assert option in BAD_VALUES, f"{command} {option}: add a bad value for it to BAD_VALUES"
    fill = {"{tmp}": str(tmp_path / "o"), "{model}": str(quick_build.out / "model_int8.tflite")}
    args = command.split() + [fill.get(a, a) for a in REQUIRED.get(command, [])]
    takes_out = any("--out" in p.opts for p in dict(_commands())[command].params)
    if takes_out and option != "--out" and command not in REQUIRED:
        args += ["--out", str(tmp_path / "out")]
    args += [fill.get(a, a) for a in COMPANION.get(option, [])] + [option, BAD_VALUES[option]]
    result = run(*args)
    text = result.output
    assert result.exit_code == 2, f"tinykd {' '.join(args)} -> exit {result.exit_code}:\n{text[-1500:]}"
    assert "Traceback" not in text and (result.exception is None or isinstance(result.exception, SystemExit))
    named = (BAD_VALUES[option], option, option.lstrip("-"), option.lstrip("-").replace("-", " "))
    assert any(n.lower() in text.lower() for n in named), f"the message does not name {option}:\n{text}"
    assert len([line for line in text.splitlines() if line.strip()]) <= 8, text
