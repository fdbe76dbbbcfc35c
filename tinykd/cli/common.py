"""What the commands share besides options: errors as messages, options to configuration, output folders."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable
from pathlib import Path

import click
from click.core import ParameterSource

from ..errors import TinykdError

# CLI option -> place in the nested configuration (tinykd.config); None means "not given".
CONFIG_PATHS = {
    "board": ("board",),
    "seed": ("seed",),
    "data_dir": ("data", "dir"),
    "keywords": ("data", "keywords"),
    "epochs": ("student", "epochs"),
    "teacher_epochs": ("teacher", "epochs"),
    "qat_epochs": ("qat", "epochs"),
    "temperature": ("distill", "temperature"),
    "alpha": ("distill", "alpha"),
    "method": ("distill", "method"),
    "ship": ("distill", "ship"),
    "teacher": ("teacher", "arch"),
    "student": ("student", "arch"),
    "teacher_model": ("teacher", "model"),
}
_PATHS = ("data_dir", "teacher_model")


def log(message: str) -> None:
    click.echo(message, err=True)


def friendly_errors(func):
    """Turn TinykdError into its message and exit status 2; never show a traceback for those."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except TinykdError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            # a device run says itself what it kept (tinykd.device.run.DeviceRunInterrupted)
            message = getattr(exc, "message", None) or (
                "interrupted: finished stages and the last epoch checkpoint are kept; "
                "run the same command again to resume."
            )
            click.echo(message, err=True)
            sys.exit(130)

    return wrapper


def overrides(opts: dict) -> dict:
    """Map the options a command took onto the nested configuration."""
    result: dict = {}
    for key, path in CONFIG_PATHS.items():
        value = opts.get(key)
        if value is None:
            continue
        target = result
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = str(value) if key in _PATHS else value
    return result


def resolve_config(opts: dict, device: dict | None = None):
    """The configuration the options ask for (defaults < --config file < --quick < options)."""
    from ..config import resolve

    extra = overrides(opts)
    if device:
        extra["device"] = device
    return resolve(task=opts["task"], config_file=opts["config_file"], quick=opts["quick"], overrides=extra)


def out_dir(given: str | None, default: Path) -> Path:
    """--out when given, else the command's default folder."""
    return Path(given) if given else default


def open_build(opts: dict, device: dict | None = None):
    """The build in --out (or the default folder): a folder that holds a build starts from its own
    config.toml; options that would retrain a finished stage there are refused (see pipeline.folder)."""
    from ..pipeline import Build, default_out_dir
    from ..pipeline.folder import resolve_for_folder

    folder = Path(opts["out"]) if opts["out"] else default_out_dir(resolve_config(opts, device))
    given = {f"--{key.replace('_', '-')}": overrides({key: opts.get(key)}) for key in CONFIG_PATHS}
    config = resolve_for_folder(
        folder,
        task=opts["task"],
        config_file=opts["config_file"],
        quick=opts["quick"],
        given={flag: override for flag, override in given.items() if override},
        device=device,
        force=opts["force"],
    )
    return Build(config, folder, force=opts["force"], log=log)


def model_run(model_file: str, board: str | None, out: str | None) -> tuple[str, Path]:
    """Board and folder of a --model run: the default board, build/<model name>-<board>."""
    from ..boards import DEFAULT_BOARD

    board = board or DEFAULT_BOARD
    return board, out_dir(out, Path("build") / f"{Path(model_file).stem}-{board}")


def refuse_given(ctx: click.Context, names: Iterable[str], why: str) -> None:
    """click's usage error (exit 2) when one of these options was given: this use ignores it."""
    given = [
        param.opts[0]
        for param in ctx.command.params
        if param.name in names
        and ctx.get_parameter_source(param.name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    ]
    if given:
        names = " and ".join([", ".join(given[:-1]), given[-1]] if len(given) > 1 else given)
        raise click.UsageError(f"{names} {'does' if len(given) == 1 else 'do'} not apply {why}.", ctx)
