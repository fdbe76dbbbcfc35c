"""The commands that put a model on a board: `firmware`, `flash`, `evaluate`.

`flash` puts an existing firmware on the board and never builds: a firmware folder
(`--firmware`), an ELF (`--elf`), or the build folder's firmware/. `firmware` and `evaluate`
on a build take the build's options (they run the stages they need first); with
`--model FILE.tflite` they work on any int8 model and take only the board, the folder and
what the run itself needs: any build option given with --model is click's usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import TinykdError
from .common import friendly_errors, model_run, open_build, refuse_given
from .options import board_option, build_options, config_option, model_option, task_option


def _existing_port(ctx, param, value: str | None) -> str | None:
    """A serial device path must exist when given (URLs and QEMU port numbers are checked later):
    refused here, before a build that would run for minutes first."""
    if value and "://" not in value and not value.isdigit() and not Path(value).exists():
        raise click.BadParameter(
            f"{value} does not exist. Plug the board in and give the port it shows up as "
            "(`tinykd doctor` lists the serial ports it finds), or leave --port out to find it by USB id.",
            ctx,
            param,
        )
    return value


evaluate_port_option = click.option(
    "--port",
    type=str,
    callback=_existing_port,
    default=None,
    help="Serial port of a hardware board (default: found by USB id). For a QEMU board: the "
    "socket://HOST:PORT of an emulator already running the firmware (e.g. started by `tinykd flash`) "
    "instead of starting QEMU here.",
)
flash_port_option = click.option(
    "--port",
    type=str,
    callback=_existing_port,
    default=None,
    help="Serial port of a hardware board (default: found by USB id). For a QEMU board: the local "
    "TCP port its serial listens on (N or socket://127.0.0.1:N; default: a free one).",
)


def _refuse_build_options(ctx: click.Context, used: set[str]) -> None:
    """A --model run uses only `used`; any other option configures a build: a usage error."""
    unused = {param.name for param in ctx.command.params} - used - {"model_file"}
    refuse_given(ctx, unused, "with --model (it works on that model alone, not on a build)")


@click.command()
@build_options
@model_option("Build firmware for this int8 .tflite instead of the build's model (output: build/<model>-<board>).")
@click.pass_context
@friendly_errors
def firmware(ctx, model_file, **opts):
    """Generate model.c/.h and the board's firmware project, compile it, check it fits."""
    if model_file:
        from ..firmware.build import build_firmware

        _refuse_build_options(ctx, used={"board", "out"})
        board, out = model_run(model_file, opts["board"], opts["out"])
        out = out / "firmware"
        summary = build_firmware(model_file, board, out).summary()
    else:
        b = open_build(opts)
        summary = b.run("firmware").info
        out = b.out / "firmware"
    click.echo(
        f"{summary['board']}: flash {summary['flash_used']:,} / {summary['flash_budget']:,} B, "
        f"RAM {summary['ram_used']:,} / {summary['ram_budget']:,} B (arena {summary['arena_bytes']:,} B)"
    )
    click.echo(f"project: {out}")


def _firmware_of_build(opts: dict):
    """The firmware project of the build folder (--out, else build/<task>-<board>), and the board it
    is for; TinykdError with the command that makes it when it is not there. Nothing is built."""
    from ..firmware.project import MANIFEST
    from ..pipeline import default_out_dir
    from .common import resolve_config

    if opts["out"]:
        folder = Path(opts["out"])
    else:
        folder = default_out_dir(resolve_config({**opts, "quick": False}))
    fw = folder / "firmware"
    if (fw / MANIFEST).is_file():
        return fw
    given = " ".join(
        f"--{key.replace('_file', '').replace('_', '-')} {value}"
        for key, value in (("task", opts["task"]), ("config_file", opts["config_file"]), ("board", opts["board"]))
        if value
    )
    made = f"tinykd firmware {given + ' ' if given else ''}--out {folder}"
    raise TinykdError(
        f"There is no firmware in {fw} to flash (flash never builds). Make it with `{made}` (it runs the "
        "build's stages first), or for a model of your own `tinykd firmware --model MODEL.tflite --board BOARD "
        "--out DIR` and then `tinykd flash --firmware DIR`."
    )


@click.command()
@task_option
@config_option
@board_option
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Build folder whose firmware/ to flash (default build/<task>-<board>).",
)
@click.option(
    "--firmware",
    "firmware_dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="A firmware folder as `tinykd firmware` wrote it (its --out, or the firmware/ project in it).",
)
@click.option(
    "--elf",
    "elf_file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="An ELF image to flash as it is (give its --board).",
)
@click.option(
    "--with",
    "tool",
    type=click.Choice(["arduino-cli", "openocd", "st-flash", "pyocd", "mass-storage"]),
    default=None,
    help="Flash with this tool (default: the first of the board's methods that is installed).",
)
@flash_port_option
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=3600.0,
    help="QEMU boards: stop the emulator after this long.",
)
@click.pass_context
@friendly_errors
def flash(ctx, task, config_file, board, out, firmware_dir, elf_file, tool, port, seconds):
    """Put an existing firmware on the board; never builds. QEMU boards: start it and print its serial address."""
    from ..device.flash import flash as flash_board
    from ..device.flash import qemu_listen_port

    if firmware_dir and elf_file:
        raise click.UsageError("Give --firmware or --elf, not both.", ctx)
    if firmware_dir or elf_file:
        refuse_given(ctx, {"task", "config_file", "out"}, "with --firmware or --elf (they name the firmware)")
        target = firmware_dir or elf_file
    else:
        target = _firmware_of_build({"task": task, "config_file": config_file, "board": board, "out": out})
    if port and board:
        from ..boards import load_board

        if load_board(board).is_qemu:
            qemu_listen_port(port)  # refuse a port QEMU cannot listen on before anything else
    flashed = flash_board(board, target, port=port, tool=tool, time_limit=seconds)
    where = flashed.url or "not found (pass --port to `tinykd evaluate`)"
    via = "" if flashed.qemu is not None else f" (flashed with {flashed.method})"
    click.echo(f"{flashed.board.name} is running the firmware{via}; serial: {where}")
    if flashed.qemu is not None:
        click.echo("QEMU runs until Ctrl-C (or --seconds). Connect with pyserial's serial_for_url.")
        try:
            flashed.qemu.wait(seconds)
        except KeyboardInterrupt:
            pass
        finally:
            flashed.close()


@click.command()
@build_options
@click.option("--host", is_flag=True, help="Only evaluate on the host (LiteRT and TFLite Micro).")
@evaluate_port_option
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Stream only the first N test examples to the device."
)
@model_option("Any int8 .tflite: build firmware for it and check it on the device against TFLite Micro.")
@click.option(
    "--farm",
    is_flag=True,
    help="Stream over a Ray device farm: one Ray actor per QEMU instance or board (Ray embedded here unless "
    "--address names a cluster).",
)
@click.option(
    "--address",
    type=str,
    default=None,
    help="Stream across the devices of every node of the Ray cluster at HOST:PORT (implies --farm): QEMU "
    "instances spread over the nodes, or each node's boards found by USB vendor id.",
)
@click.option(
    "--random",
    "random_n",
    type=click.IntRange(min=1),
    default=None,
    help="With --model: number of random inputs (100).",
)
@click.pass_context
@friendly_errors
def evaluate(ctx, host, port, limit, model_file, farm, address, random_n, **opts):
    """Measure accuracy on the device (QEMU boards are started for you) beside the host's."""
    if (farm or address) and (port or host):
        raise click.UsageError("--farm/--address find the devices themselves: leave out --port and --host.", ctx)
    if model_file:
        from ..device.check import check_model_on_device
        from ..trials import RayOptions

        _refuse_build_options(ctx, used={"board", "out", "port", "seed", "random_n", "farm", "address"})
        board, out = model_run(model_file, opts["board"], opts["out"])
        result = check_model_on_device(
            model_file,
            board,
            out,
            n=100 if random_n is None else random_n,
            port=port,
            seed=opts["seed"] or 0,
            farm=RayOptions(address=address) if (farm or address) else None,
        )
        click.echo(
            f"{result['examples']} random inputs on {result['board']}: "
            f"{result['host_vs_device']['mismatches']} outputs differ from TFLite Micro on the host "
            f"({out / 'device_check.json'})."
        )
        if result["host_vs_device"]["mismatches"]:
            sys.exit(1)
        return
    refuse_given(ctx, {"random_n"}, "without --model (a build streams its test set)")
    device: dict = {"port": port} if port else {}
    if farm or address:
        device.update(farm=True, address=address or "")
    if limit is not None:
        device["limit"] = limit
    b = open_build(opts, device=device)
    b.run("evaluate" if host else "device")
    if not host:
        b.run("report")
    click.echo(f"evaluation: {b.out / ('evaluation.json' if host else 'device.json')}, report: {b.out / 'report.md'}")


COMMANDS = [firmware, flash, evaluate]
