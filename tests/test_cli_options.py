"""Each command takes only the options it uses; --task and --method come from the registries;
--model runs refuse build options; the README's examples parse."""

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tinykd.boards import DEFAULT_BOARD
from tinykd.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"

DATA = {"--task", "--config", "--data-dir", "--keywords", "--seed", "--quick"}
EXPERIMENT = DATA | {"--board", "--teacher", "--teacher-epochs", "--teacher-model", "--epochs", "--qat-epochs"}
RAY = {"--address", "--cpus-per-trial"}
DISTILL = {"--temperature", "--alpha", "--method"}
BUILD = EXPERIMENT | DISTILL | {"--ship", "--student", "--out", "--force"}
STAGES = ("build", "train-teacher", "distill", "qat", "convert", "export", "report")

EXPECTED = {
    **{stage: BUILD for stage in STAGES},
    "firmware": BUILD | {"--model"},
    "flash": {"--task", "--config", "--board", "--out", "--firmware", "--elf", "--with", "--port", "--seconds"},
    "evaluate": BUILD | {"--host", "--port", "--limit", "--model", "--random", "--farm", "--address"},
    "data": DATA,
    "sweep": EXPERIMENT
    | RAY
    | {"--out", "--temperatures", "--alphas", "--students", "--methods", "--seeds", "--int8", "--baselines"},
    "fit": EXPERIMENT
    | DISTILL
    | RAY
    | {"--out", "--widths", "--depths", "--max-latency", "--budget-usd", "--min-epochs"},
    "reproduce": {"--quick", "--out", "--data-dir", "--seed"},
    "boards": {"--select", "--model", "--max-latency-ms", "--board", "--out"},
    "doctor": {"--data-dir"},
    "bench": {"--out", "--fuzz", "--hostile", "--seed"},
}


def options_of(command: click.Command) -> set[str]:
    return {
        name
        for param in command.params
        if isinstance(param, click.Option)
        for name in param.opts
        if name.startswith("--") and name != "--help"
    }


def run(*args):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_each_command_takes_exactly_its_options():
    assert set(main.commands) == set(EXPECTED)
    assert {name: options_of(command) for name, command in main.commands.items()} == EXPECTED
    synth_kws = {"--out", "--clips", "--keywords", "--recipe", "--backgrounds", "--seed"}
    assert options_of(main.commands["data"].commands["synth-kws"]) == synth_kws
    assert options_of(main.commands["data"].commands["transfer"]) == {"--model", "--real-clips", "--keywords", "--out"}


@pytest.mark.parametrize(
    "args",
    [
        ["firmware", "--port", "/dev/ttyACM0"],
        ["data", "--out", "x"],
        ["data", "--board", "nano33"],
        ["sweep", "--temperature", "4"],
        ["doctor", "--task", "kws"],
        ["reproduce", "hinton-mnist", "--epochs", "3"],
    ],
)
def test_an_option_the_command_does_not_use_is_refused(args):
    code, output = run(*args)
    assert code == 2 and "No such option" in output


def test_task_and_method_choices_are_the_registries():
    from tinykd.data import TASKS
    from tinykd.distill.methods import METHODS

    params = {p.name: p for p in main.commands["build"].params}
    assert params["task"].type.choices == tuple(TASKS)
    assert params["method"].type.choices == tuple(METHODS)  # registry order: hinton first
    code, output = run("distill", "--method", "Hinton")
    assert code == 2 and "Unknown distillation method 'Hinton'" in output and ", ".join(METHODS) in output
    code, output = run("data", "--task", "cifar")
    assert code == 2 and "Unknown task 'cifar'. Choose one of: " + ", ".join(TASKS) in output


@pytest.mark.parametrize(
    "args,refused",
    [
        (["evaluate", "--model", "m.tflite", "--temperature", "4"], "--temperature"),
        (["evaluate", "--model", "m.tflite", "--quick", "--limit", "3"], "--quick and --limit"),
        (["evaluate", "--model", "m.tflite", "--host"], "--host"),
        (["evaluate", "--random", "5"], "--random"),
        (["firmware", "--model", "m.tflite", "--seed", "1"], "--seed"),
        (["firmware", "--model", "m.tflite", "--task", "kws", "--force"], "--task and --force"),
    ],
)
def test_model_runs_refuse_the_options_of_a_build(args, refused, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, output = run(*args)
    assert code == 2 and f"Error: {refused} " in output, output
    assert not (tmp_path / "build").exists()


def test_model_runs_take_board_out_port_random_and_seed(tmp_path, monkeypatch):
    import tinykd.device.check
    import tinykd.firmware.build

    calls = []

    def check(model, board, out, *, n, port, seed, farm):
        calls.append((model, board, Path(out), n, port, seed) + ((farm.address,) if farm else ()))
        return {"examples": n, "board": board, "host_vs_device": {"mismatches": 0}}

    class Firmware:
        def summary(self):
            sizes = dict(flash_used=1, flash_budget=2, ram_used=3, ram_budget=4, arena_bytes=5)
            return {"board": calls[-1][1], **sizes}

    def build_firmware(model, board, out):
        calls.append((model, board, Path(out)))
        return Firmware()

    monkeypatch.setattr(tinykd.device.check, "check_model_on_device", check)
    monkeypatch.setattr(tinykd.firmware.build, "build_firmware", build_firmware)
    monkeypatch.chdir(tmp_path)
    assert run("evaluate", "--model", "m.tflite")[0] == 0
    assert calls[-1] == ("m.tflite", DEFAULT_BOARD, Path(f"build/m-{DEFAULT_BOARD}"), 100, None, 0)
    args = ["--model", "m.tflite", "--board", "nano33", "--out", "o", "--port", "/dev/null", "--random", "7"]
    assert run("evaluate", *args, "--seed", "3")[0] == 0
    assert calls[-1] == ("m.tflite", "nano33", Path("o"), 7, "/dev/null", 3)
    assert run("evaluate", "--model", "m.tflite", "--address", "10.0.0.5:6379")[0] == 0
    assert calls[-1][-1] == "10.0.0.5:6379", "--address reaches the device farm"
    code, output = run("firmware", "--model", "m.tflite")
    assert code == 0 and calls[-1] == ("m.tflite", DEFAULT_BOARD, Path(f"build/m-{DEFAULT_BOARD}/firmware"))
    assert f"project: build/m-{DEFAULT_BOARD}/firmware" in output
    assert run("firmware", "--model", "m.tflite", "--board", "nano33", "--out", "o")[0] == 0
    assert calls[-1] == ("m.tflite", "nano33", Path("o/firmware"))


def test_evaluate_on_a_build_passes_port_and_limit_to_the_device_settings(monkeypatch):
    import tinykd.cli.device

    seen = {}

    def open_build(opts, device=None):
        seen.update(opts=opts, device=device)
        raise click.exceptions.Exit(0)

    monkeypatch.setattr(tinykd.cli.device, "open_build", open_build)
    assert run("evaluate", "--port", "/dev/null", "--limit", "10", "-T", "4")[0] == 0
    assert seen["device"] == {"port": "/dev/null", "limit": 10} and seen["opts"]["temperature"] == 4.0


def _readme_commands() -> list[list[str]]:
    text = README.read_text()
    section = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    lines = [line.split("#", 1)[0] for line in section.splitlines() if line.startswith("tinykd ")]
    return [re.sub(r"[\[\]]", "", line).split()[1:] for line in lines]


def test_every_readme_example_parses():
    commands = _readme_commands()
    assert len(commands) >= 20
    for args in commands:
        # --help acts once every option has parsed: an option the command lacks fails first
        code, output = run(*args, "--help")
        assert code == 0, f"tinykd {' '.join(args)}: {output}"
