"""Helpers for the tests that drive the CLI in-process: run a command, the quick experiment
settings `sweep` and `fit` share, and the check that bad input is refused."""

from __future__ import annotations

from click.testing import CliRunner

from tinykd.cli import main
from tinykd.config import resolve

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(*args) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def quick_experiment(command: str, out, mnist_dir, *extra) -> tuple[int, str]:
    """`tinykd <command> --quick` on the test MNIST with a small teacher trained for one epoch:
    the tests check the machinery, not MNIST accuracy."""
    return run(
        command,
        "--quick",
        "--data-dir",
        str(mnist_dir),
        "--out",
        str(out),
        "--teacher",
        "mlp-64",
        "--teacher-epochs",
        "1",
        *extra,
    )


def quick_config(mnist_dir):
    """The resolved config of `quick_experiment`'s settings, for tests that call the
    experiments' functions directly."""
    return resolve(
        task="mnist",
        quick=True,
        overrides={
            "data": {"dir": str(mnist_dir)},
            "teacher": {"arch": "mlp-64", "epochs": 1},
            "student": {"epochs": 1},
        },
    )


def assert_refused(command: str, out, args, message: str) -> None:
    """`tinykd <command> --out OUT ARGS` exits 2 with `message` and no traceback."""
    code, output = run(command, "--out", str(out), *args)
    assert code == 2, output
    assert message in output and "Traceback" not in output
