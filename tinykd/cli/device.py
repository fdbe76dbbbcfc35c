"""The commands that put a model on a board: `firmware`, `flash`, `evaluate`.

On a build they take the build's options (they run the stages they need first); with
`--model FILE.tflite` they work on any int8 model and take only the board, the folder and
what the run itself needs: any build option given with --model is click's usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import friendly_errors, model_run, open_build, refuse_given
from .options import build_options, model_option


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


@click.command()
@build_options
@flash_port_option
@click.option("--seconds", type=float, default=3600.0, help="QEMU boards: stop the emulator after this long.")
@friendly_errors
def flash(port, seconds, **opts):
    """Put the built firmware on the board. QEMU boards: start it and print its serial address."""
    from ..device.flash import flash as flash_board
    from ..device.flash import qemu_listen_port

    b = open_build(opts)
    if port and b.board.is_qemu:
        qemu_listen_port(port)  # refuse a port QEMU cannot listen on before building anything
    b.run("firmware")
    flashed = flash_board(b.board, b.out / "firmware", port=port, time_limit=seconds)
    click.echo(f"{b.board.name} is running the firmware; serial: {flashed.url}")
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
    "--random",
    "random_n",
    type=click.IntRange(min=1),
    default=None,
    help="With --model: number of random inputs (100).",
)
@click.pass_context
@friendly_errors
def evaluate(ctx, host, port, limit, model_file, random_n, **opts):
    """Measure accuracy on the device (QEMU boards are started for you) beside the host's."""
    if model_file:
        from ..device.check import check_model_on_device

        _refuse_build_options(ctx, used={"board", "out", "port", "seed", "random_n"})
        board, out = model_run(model_file, opts["board"], opts["out"])
        result = check_model_on_device(
            model_file, board, out, n=100 if random_n is None else random_n, port=port, seed=opts["seed"] or 0
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
    if limit is not None:
        device["limit"] = limit
    b = open_build(opts, device=device)
    b.run("evaluate" if host else "device")
    if not host:
        b.run("report")
    click.echo(f"evaluation: {b.out / ('evaluation.json' if host else 'device.json')}, report: {b.out / 'report.md'}")


COMMANDS = [firmware, flash, evaluate]
